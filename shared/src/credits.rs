//! Credit arithmetic (docs/architecture.md, Guarantees): one credit per started
//! 1,000 characters, at least one, characters counted as Unicode scalar
//! values (what `str::chars` yields), so "é" is one character whether the
//! client sent it precomposed or not — it is what was sent that is counted.

/// Characters billed per credit.
pub const CHARACTERS_PER_CREDIT: u64 = 1000;

/// Unicode scalar values in `text`.
pub fn characters(text: &str) -> u64 {
    text.chars().count() as u64
}

/// `ceil(characters / 1000)`, at least 1.
pub fn credits_for_characters(characters: u64) -> u64 {
    characters.div_ceil(CHARACTERS_PER_CREDIT).max(1)
}

/// The credits a text costs.
pub fn credits_for(text: &str) -> u64 {
    credits_for_characters(characters(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_characters_cost_one_credit() {
        assert_eq!(credits_for(""), 1);
    }

    #[test]
    fn boundaries_around_a_thousand() {
        assert_eq!(credits_for("a"), 1);
        assert_eq!(credits_for(&"a".repeat(999)), 1);
        assert_eq!(credits_for(&"a".repeat(1000)), 1);
        assert_eq!(credits_for(&"a".repeat(1001)), 2);
        assert_eq!(credits_for(&"a".repeat(100_000)), 100);
    }

    #[test]
    fn multi_byte_characters_count_once_each() {
        // 1000 two-byte, three-byte and four-byte scalar values: 1 credit,
        // though their UTF-8 is 2000, 3000 and 4000 bytes long.
        for c in ['é', '語', '🎤'] {
            let text: String = std::iter::repeat_n(c, 1000).collect();
            assert!(text.len() >= 2000);
            assert_eq!(characters(&text), 1000);
            assert_eq!(credits_for(&text), 1);
            let text: String = std::iter::repeat_n(c, 1001).collect();
            assert_eq!(credits_for(&text), 2);
        }
    }

    #[test]
    fn combining_marks_are_scalar_values_of_their_own() {
        // "e" + COMBINING ACUTE ACCENT is two scalar values.
        assert_eq!(characters("e\u{301}"), 2);
    }
}
