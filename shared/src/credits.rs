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

/// The most audio one generation may produce per character it is charged
/// for (markup included), so a credit cannot buy unbounded audio. Measured
/// on espeak-ng (`en-us`): prose takes 0.06 s a character at speed 1 and
/// 0.13 s at speed 0.5 (80 wpm, espeak-ng's floor, which also bounds
/// nested `prosody rate`); digits 0.30 s; phone numbers, the slowest text
/// found, 0.42 s and 0.86 s at speed 0.5. The worker fails a render over
/// it permanently (`audio_too_long`, refunded).
pub const MAX_AUDIO_SECS_PER_CHARACTER: f64 = 1.0;
/// The ceiling of a very short text, whatever its length.
pub const MIN_AUDIO_CEILING_SECS: u64 = 30;
/// Silence is the cheapest amplification, so SSML `<break>`s together may
/// add at most this much per character (at least [`MIN_AUDIO_CEILING_SECS`]
/// in all); the gateway refuses more at request time (422
/// `audio_too_long`), since it can add them up there.
pub const MAX_PAUSE_SECS_PER_CHARACTER: f64 = 0.25;

fn ceiling_ms(characters: u64, secs_per_character: f64) -> u64 {
    let per_character = (characters as f64 * secs_per_character * 1000.0) as u64;
    per_character.max(MIN_AUDIO_CEILING_SECS * 1000)
}

/// The audio ceiling of a text of `characters`, in milliseconds.
pub fn max_audio_ms(characters: u64) -> u64 {
    ceiling_ms(characters, MAX_AUDIO_SECS_PER_CHARACTER)
}

/// The most `<break>` time a text of `characters` may ask for, in ms.
pub fn max_pause_ms(characters: u64) -> u64 {
    ceiling_ms(characters, MAX_PAUSE_SECS_PER_CHARACTER)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_audio_ceiling_has_a_floor_and_grows_per_character() {
        assert_eq!(max_audio_ms(1), 30_000);
        assert_eq!(max_audio_ms(1000), 1_000_000);
        assert_eq!(max_pause_ms(40), 30_000);
        assert_eq!(max_pause_ms(400), 100_000);
    }

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
