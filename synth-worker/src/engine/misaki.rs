//! Kokoro's phonemes: what misaki (hexgrad/misaki `espeak.py`, the G2P
//! Kokoro was trained on) makes of libespeak-ng's IPA, rebuilt on this
//! process's libespeak-ng, and where each word of the text starts in them.
//!
//! The pipeline is phonemizer's (`preserve_punctuation=True`,
//! `with_stress=True`, `tie='^'`): the text is cut at runs of the marks
//! `;:,.!?¡¿—…"«»“”(){}[]` (with the whitespace around them; `.` and `,`
//! between digits are not marks), each piece between marks is phonemised
//! (`espeak_TextToPhonemes` in IPA with a tie), language-switch flags like
//! `(fr)` are dropped, and the marks are put back verbatim. Then misaki's
//! fixed replacements: for English (`en-us`, `en-gb`) `EspeakFallback.E2M`
//! plus the accent's own, for the other languages `EspeakG2P.e2m` (with
//! parentheses read as `«»`), and the tie is removed. Every replacement is
//! inside a phoneme word, so they are applied word by word and each
//! word's position stays known.
//!
//! Words: a piece whose espeak words match its text words one to one maps
//! directly. espeak-ng joins some words (`of the` → `ʌvðə`) and splits
//! others (`123` → three words); then each text word is phonemised alone
//! and aligned to the piece's phonemes by edit distance, character by
//! character, so a word starts at the first phoneme aligned to it (inside
//! a joined espeak word, at its share of that word).
//!
//! Differences from misaki, on purpose: English language-switch flags are
//! dropped (misaki keeps them, and their letters would be read); misaki's
//! English lexicon (gold/silver dictionaries) is not used — every word
//! goes through espeak-ng, which is misaki's fallback for words not in it.

use super::ffi::{Espeak, SynthError};

/// phonemizer's default punctuation marks.
const MARKS: &[char] = &[
    ';', ':', ',', '.', '!', '?', '¡', '¿', '—', '…', '"', '«', '»', '“', '”', '(', ')', '{', '}',
    '[', ']',
];

/// The edit-distance alignment is used up to this many cells; beyond, a
/// piece's words share its phonemes in proportion to their own phonemes.
const MAX_ALIGN_CELLS: usize = 4_000_000;

/// Which of misaki's replacement tables applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    /// `EspeakFallback(british=False)`.
    AmericanEnglish,
    /// `EspeakFallback(british=True)`.
    BritishEnglish,
    /// `EspeakG2P` (Spanish, French, Hindi, Italian, Portuguese, …).
    Other,
}

impl Table {
    /// The table for an espeak-ng voice name (`en-us`, `en-gb`, `es`, …).
    pub fn for_voice(voice: &str) -> Self {
        let base = voice
            .split('+')
            .next()
            .unwrap_or(voice)
            .to_ascii_lowercase();
        match base.as_str() {
            "en-us" | "en-029" | "en-us-nyc" => Self::AmericanEnglish,
            v if v == "en" || v.starts_with("en-") => Self::BritishEnglish,
            _ => Self::Other,
        }
    }
}

/// A word of the text and where its phonemes start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WordStart {
    /// Characters from the start of the phonemised text.
    pub char_start: usize,
    pub char_len: usize,
    /// Characters from the start of [`Phonemes::text`].
    pub phoneme: usize,
}

/// The phoneme string of a text (before the vocabulary filter) and its
/// words, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Phonemes {
    pub text: String,
    pub words: Vec<WordStart>,
}

/// Phonemises `text` in `voice` as misaki does, with word starts.
pub fn phonemize(espeak: &mut Espeak, voice: &str, text: &str) -> Result<Phonemes, SynthError> {
    let table = Table::for_voice(voice);
    let mut chars: Vec<char> = text.chars().collect();
    if table == Table::Other {
        // EspeakG2P: angles to curly quotes, parentheses to angles (and
        // back at the end), so parentheses are marks and kept.
        for c in &mut chars {
            *c = match *c {
                '«' => '“',
                '»' => '”',
                '(' => '«',
                ')' => '»',
                other => other,
            };
        }
    }
    let mut out: Vec<char> = Vec::new();
    let mut words = Vec::new();
    for (start, end, is_mark) in runs(&chars) {
        if is_mark {
            out.extend_from_slice(&chars[start..end]);
            continue;
        }
        let piece: String = chars[start..end].iter().collect();
        let raw = clean(&espeak.phonemes_tied(voice, &piece)?);
        let espeak_words: Vec<&str> = raw.split(' ').filter(|w| !w.is_empty()).collect();
        if espeak_words.is_empty() {
            continue;
        }
        let text_words = text_words(&chars, start, end);
        let starts = if text_words.len() == espeak_words.len() {
            (0..text_words.len()).map(|i| (i, 0)).collect()
        } else {
            let own = text_words
                .iter()
                .map(|&(s, e)| {
                    let word: String = chars[s..e].iter().collect();
                    espeak.phonemes_tied(voice, &word).map(|p| clean(&p))
                })
                .collect::<Result<Vec<_>, _>>()?;
            align(&espeak_words, &own)
        };
        // Each espeak word replaced; word positions follow.
        let mut offsets = Vec::with_capacity(espeak_words.len());
        let mut lengths = Vec::with_capacity(espeak_words.len());
        for (k, w) in espeak_words.iter().enumerate() {
            if k > 0 {
                out.push(' ');
            }
            let replaced = replace(table, w);
            offsets.push(out.len());
            lengths.push((w.chars().count(), replaced.chars().count()));
            out.extend(replaced.chars());
        }
        for (&(s, e), &(k, r)) in text_words.iter().zip(&starts) {
            let (raw_len, new_len) = lengths[k];
            let inside = (r * new_len + raw_len / 2)
                .checked_div(raw_len)
                .unwrap_or(0);
            words.push(WordStart {
                char_start: s,
                char_len: e - s,
                phoneme: offsets[k] + inside.min(new_len),
            });
        }
    }
    // misaki strips the result.
    let lead = out.iter().take_while(|c| c.is_whitespace()).count();
    while out.last().is_some_and(|c| c.is_whitespace()) {
        out.pop();
    }
    let mut text: String = out[lead.min(out.len())..].iter().collect();
    if table == Table::Other {
        text = text.replace('«', "(").replace('»', ")");
    }
    let len = text.chars().count();
    for w in &mut words {
        w.phoneme = w.phoneme.saturating_sub(lead).min(len);
    }
    // Monotonic whatever the alignment said.
    let mut floor = 0;
    for w in &mut words {
        w.phoneme = w.phoneme.max(floor);
        floor = w.phoneme;
    }
    Ok(Phonemes { text, words })
}

/// Whether `chars[i]` is a punctuation mark as phonemizer sees it: `.`
/// and `,` with a digit on both sides are decimal separators.
fn is_mark(chars: &[char], i: usize) -> bool {
    let c = chars[i];
    if !MARKS.contains(&c) {
        return false;
    }
    if c == '.' || c == ',' {
        let before = i > 0 && chars[i - 1].is_ascii_digit();
        let after = chars.get(i + 1).is_some_and(char::is_ascii_digit);
        return !(before && after);
    }
    true
}

/// The text cut into pieces and mark runs (start, end, is a mark run): a
/// mark run is a maximal run of marks and whitespace holding a mark.
fn runs(chars: &[char]) -> Vec<(usize, usize, bool)> {
    let mut out = Vec::new();
    let mut i = 0;
    let mut piece_start = 0;
    while i < chars.len() {
        if chars[i].is_whitespace() || is_mark(chars, i) {
            let s = i;
            let mut has_mark = false;
            while i < chars.len() && (chars[i].is_whitespace() || is_mark(chars, i)) {
                has_mark |= is_mark(chars, i);
                i += 1;
            }
            if has_mark {
                if piece_start < s {
                    out.push((piece_start, s, false));
                }
                out.push((s, i, true));
                piece_start = i;
            }
        } else {
            i += 1;
        }
    }
    if piece_start < chars.len() {
        out.push((piece_start, chars.len(), false));
    }
    out.retain(|&(s, e, mark)| mark || chars[s..e].iter().any(|c| !c.is_whitespace()));
    out
}

/// Whitespace-separated words of `chars[start..end]` that hold a letter or
/// digit.
fn text_words(chars: &[char], start: usize, end: usize) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut i = start;
    while i < end {
        if chars[i].is_whitespace() {
            i += 1;
            continue;
        }
        let s = i;
        while i < end && !chars[i].is_whitespace() {
            i += 1;
        }
        if chars[s..i].iter().any(|c| c.is_alphanumeric()) {
            out.push((s, i));
        }
    }
    out
}

/// espeak-ng's output with language-switch flags (`(fr)`, tied `(f^r)`)
/// dropped and whitespace collapsed to single spaces.
fn clean(phonemes: &str) -> String {
    let mut out = String::with_capacity(phonemes.len());
    let mut rest = phonemes;
    while let Some(open) = rest.find('(') {
        out.push_str(&rest[..open]);
        match rest[open..].find(')') {
            Some(close)
                if rest[open + 1..open + close]
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '^') =>
            {
                rest = &rest[open + close + 1..];
            }
            _ => {
                out.push('(');
                rest = &rest[open + 1..];
            }
        }
    }
    out.push_str(rest);
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// misaki's `EspeakFallback.E2M`, longest first (its sort order).
const ENGLISH: &[(&str, &str)] = &[
    ("ʔˌn\u{329}", "ʔn"),
    ("ʔn\u{329}", "ʔn"),
    ("a^ɪ", "I"),
    ("a^ʊ", "W"),
    ("d^ʒ", "ʤ"),
    ("e^ɪ", "A"),
    ("t^ʃ", "ʧ"),
    ("ɔ^ɪ", "Y"),
    ("ə^l", "ᵊl"),
    ("ʲo", "jo"),
    ("ʲə", "jə"),
    ("e", "A"),
    ("ʲ", ""),
    ("ɚ", "əɹ"),
    ("r", "ɹ"),
    ("x", "k"),
    ("ç", "k"),
    ("ɐ", "ə"),
    ("ɬ", "l"),
    ("\u{303}", ""),
];

/// misaki's `EspeakG2P.e2m` (version 1.0), in its (sorted) order.
const OTHER: &[(&str, &str)] = &[
    ("a^ɪ", "I"),
    ("a^ʊ", "W"),
    ("d^z", "ʣ"),
    ("d^ʒ", "ʤ"),
    ("e^ɪ", "A"),
    ("o^ʊ", "O"),
    ("s^s", "S"),
    ("t^s", "ʦ"),
    ("t^ʃ", "ʧ"),
    ("ə^ʊ", "Q"),
    ("ɔ^ɪ", "Y"),
];

/// misaki's replacements on one espeak word, tie removed.
pub fn replace(table: Table, word: &str) -> String {
    let mut s = word.to_owned();
    match table {
        Table::Other => {
            for (old, new) in OTHER {
                s = s.replace(old, new);
            }
            s = s.replace(['^', '-'], "");
        }
        Table::AmericanEnglish | Table::BritishEnglish => {
            for (old, new) in ENGLISH {
                s = s.replace(old, new);
            }
            s = syllabic(&s);
            if table == Table::BritishEnglish {
                s = s
                    .replace("e^ə", "ɛː")
                    .replace("iə", "ɪə")
                    .replace("ə^ʊ", "Q");
            } else {
                s = s
                    .replace("o^ʊ", "O")
                    .replace("ɜːɹ", "ɜɹ")
                    .replace("ɜː", "ɜɹ")
                    .replace("ɪə", "iə")
                    .replace('ː', "");
            }
            // "for espeak < 1.52", and version 1.0's flap and glottal stop.
            s = s.replace('o', "ɔ").replace('ɾ', "T").replace('ʔ', "t");
            s = s.replace('^', "");
        }
    }
    s
}

/// `re.sub(r'(\S)\u0329', r'ᵊ\1', s)`, then any syllabic mark left dropped.
fn syllabic(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len() + 4);
    let mut i = 0;
    while i < chars.len() {
        if chars.get(i + 1) == Some(&'\u{329}') && !chars[i].is_whitespace() {
            out.push('ᵊ');
            out.push(chars[i]);
            i += 2;
        } else {
            if chars[i] != '\u{329}' {
                out.push(chars[i]);
            }
            i += 1;
        }
    }
    out
}

/// For each text word, the espeak word it starts in and the character
/// offset inside it: an edit-distance alignment of the piece's phonemes
/// with the text words' own phonemes (spaces left out).
fn align(espeak_words: &[&str], own: &[String]) -> Vec<(usize, usize)> {
    // a: the piece's phoneme characters with (espeak word, offset).
    let mut a: Vec<(char, usize, usize)> = Vec::new();
    for (k, w) in espeak_words.iter().enumerate() {
        a.extend(w.chars().enumerate().map(|(r, c)| (c, k, r)));
    }
    // b: the text words' own phoneme characters with their word.
    let mut b: Vec<(char, usize)> = Vec::new();
    for (i, w) in own.iter().enumerate() {
        b.extend(w.chars().filter(|c| *c != ' ').map(|c| (c, i)));
    }
    let mut first: Vec<Option<usize>> = vec![None; own.len()];
    let (n, m) = (a.len(), b.len());
    if n == 0 {
        return vec![(0, 0); own.len()];
    }
    if m == 0 || n.saturating_mul(m) > MAX_ALIGN_CELLS {
        // In proportion to each word's own phonemes.
        let total: usize = own.iter().map(|w| w.chars().count().max(1)).sum();
        let mut done = 0;
        for (i, w) in own.iter().enumerate() {
            first[i] = Some(done * n / total.max(1));
            done += w.chars().count().max(1);
        }
    } else {
        // Levenshtein with a backtrace: 0 diagonal, 1 up (a only), 2 left.
        let mut prev: Vec<u32> = (0..=m as u32).collect();
        let mut moves = vec![0u8; (n + 1) * (m + 1)];
        moves[1..=m].fill(2);
        for i in 1..=n {
            let mut cur = vec![i as u32; m + 1];
            moves[i * (m + 1)] = 1;
            for j in 1..=m {
                let diag = prev[j - 1] + u32::from(a[i - 1].0 != b[j - 1].0);
                let up = prev[j] + 1;
                let left = cur[j - 1] + 1;
                let (cost, mv) = if diag <= up && diag <= left {
                    (diag, 0)
                } else if up <= left {
                    (up, 1)
                } else {
                    (left, 2)
                };
                cur[j] = cost;
                moves[i * (m + 1) + j] = mv;
            }
            prev = cur;
        }
        let (mut i, mut j) = (n, m);
        while i > 0 || j > 0 {
            match moves[i * (m + 1) + j] {
                0 if i > 0 && j > 0 => {
                    first[b[j - 1].1] = Some(i - 1);
                    i -= 1;
                    j -= 1;
                }
                1 if i > 0 => i -= 1,
                _ => {
                    // b's character has no partner: its word starts here.
                    first[b[j - 1].1] = Some(i.min(n - 1));
                    j -= 1;
                }
            }
        }
    }
    // A word aligned to nothing starts where the next one does.
    let mut next = n - 1;
    let mut starts = vec![(0, 0); own.len()];
    for i in (0..own.len()).rev() {
        let at = first[i].unwrap_or(next).min(next);
        next = at;
        starts[i] = (a[at].1, a[at].2);
    }
    starts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_are_runs_with_their_whitespace_and_decimals_are_not_marks() {
        let chars: Vec<char> = "Hi, there! Pi is 3.14 \"ok\"".chars().collect();
        let got: Vec<(String, bool)> = runs(&chars)
            .into_iter()
            .map(|(s, e, m)| (chars[s..e].iter().collect(), m))
            .collect();
        let want = [
            ("Hi", false),
            (", ", true),
            ("there", false),
            ("! ", true),
            ("Pi is 3.14", false),
            (" \"", true),
            ("ok", false),
            ("\"", true),
        ];
        let want: Vec<(String, bool)> = want.iter().map(|(s, m)| (s.to_string(), *m)).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn english_replacements_follow_misaki() {
        let us = Table::AmericanEnglish;
        let gb = Table::BritishEnglish;
        assert_eq!(replace(us, "həlˈo^ʊ"), "həlˈO");
        assert_eq!(replace(gb, "həlˈə^ʊ"), "həlˈQ");
        assert_eq!(replace(us, "wˈɜːld"), "wˈɜɹld");
        assert_eq!(replace(gb, "wˈɜːld"), "wˈɜːld");
        assert_eq!(replace(us, "bˈʌʔn\u{329}"), "bˈʌtn");
        assert_eq!(replace(us, "lˈɪɾə^l"), "lˈɪTᵊl");
        assert_eq!(replace(us, "ʧˈɜːt^ʃ"), "ʧˈɜɹʧ");
        // E2M turns `e` into `A` before the British `e^ə` → `ɛː` can match.
        assert_eq!(replace(gb, "sˈe^əz"), "sˈAəz");
    }

    #[test]
    fn other_languages_use_the_short_table_and_lose_hyphens() {
        assert_eq!(replace(Table::Other, "t^sˈa-o^ʊ"), "ʦˈaO");
    }

    #[test]
    fn language_flags_are_dropped_and_spaces_collapsed() {
        assert_eq!(clean("ʃˈɑːl  (f^r)vˈa^ɪ(e^n) (x y)"), "ʃˈɑːl vˈa^ɪ (x y)");
    }

    #[test]
    fn alignment_splits_joined_words_and_joins_split_ones() {
        // "in the house" → espeak "ɪnðə hˈa^ʊs".
        let own = ["ɪn".to_owned(), "ðə".to_owned(), "hˈa^ʊs".to_owned()];
        assert_eq!(
            align(&["ɪnðə", "hˈa^ʊs"], &own),
            vec![(0, 0), (0, 2), (1, 0)]
        );
        // "12 cats" → "twˈɛlv kˈats" vs own "twˈɛlv" and "kˈats", with a
        // number read as two espeak words.
        let own = ["twˈɛnti wˈʌn".to_owned(), "kˈats".to_owned()];
        assert_eq!(
            align(&["twˈɛnti", "wˈʌn", "kˈats"], &own),
            vec![(0, 0), (2, 0)]
        );
    }
}
