//! Long text is rendered in pieces: split after sentence ends (and at line
//! breaks), packed into chunks of at most [`CHUNK_CHARS`] characters, so
//! the engines render one generation's chunks in parallel and no frame
//! between worker and engine grows with the text. A sentence longer than a
//! chunk is cut at its last space that fits (or hard, if it has none).
//! Positions are in characters (Unicode scalar values), like credits.

/// Characters per chunk at most.
pub const CHUNK_CHARS: usize = 800;
/// Characters of a streamed render's first chunk at most: its audio is the
/// first a listener hears, so it should be a sentence, not a paragraph.
pub const FIRST_STREAM_CHARS: usize = 200;

/// How many characters of `text` its first streamed chunk takes: the first
/// sentence, when it has at most [`FIRST_STREAM_CHARS`], else as much as
/// fits up to a space (as [`chunks`] cuts a long sentence).
pub fn first_stream_chars(text: &str) -> usize {
    match sentences(text).first() {
        Some(&(s, e)) if e - s <= FIRST_STREAM_CHARS => e,
        _ => chunks(text, FIRST_STREAM_CHARS)
            .first()
            .map_or(0, |c| c.text.chars().count()),
    }
}

/// A piece of the text and where it starts in the whole, in characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    pub text: String,
    pub char_start: usize,
}

fn ends_sentence(c: char) -> bool {
    matches!(c, '.' | '!' | '?' | '…' | '。' | '！' | '？' | '؟' | '।')
}

/// Sentences of `text` as (start, end) character ranges covering all of it,
/// the whitespace after a sentence included: a sentence ends at terminal
/// punctuation before a space or the end (so `3.5` does not end one), and
/// at a line break, as espeak-ng ends them. Chunks end at these, and the
/// Piper engine renders one at a time.
pub fn sentences(text: &str) -> Vec<(usize, usize)> {
    sentences_of(&text.chars().collect::<Vec<_>>())
}

fn sentences_of(chars: &[char]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let boundary =
            c == '\n' || (ends_sentence(c) && chars.get(i + 1).is_none_or(|n| n.is_whitespace()));
        i += 1;
        if boundary {
            // The whitespace after a sentence belongs to it.
            while i < chars.len() && chars[i].is_whitespace() {
                i += 1;
            }
            out.push((start, i));
            start = i;
        }
    }
    if start < chars.len() {
        out.push((start, chars.len()));
    }
    out
}

/// Splits `text` into chunks of at most `max` characters at sentence ends.
pub fn chunks(text: &str, max: usize) -> Vec<Chunk> {
    let chars: Vec<char> = text.chars().collect();
    let max = max.max(1);
    let mut pieces: Vec<(usize, usize)> = Vec::new();
    for (mut s, e) in sentences_of(&chars) {
        while e - s > max {
            let cut = (s + 1..s + max)
                .rev()
                .find(|&i| chars[i].is_whitespace())
                .map_or(s + max, |i| i + 1);
            pieces.push((s, cut));
            s = cut;
        }
        pieces.push((s, e));
    }
    let mut out: Vec<(usize, usize)> = Vec::new();
    for (s, e) in pieces {
        match out.last_mut() {
            Some(last) if e - last.0 <= max => last.1 = e,
            _ => out.push((s, e)),
        }
    }
    out.into_iter()
        .map(|(s, e)| Chunk {
            text: chars[s..e].iter().collect(),
            char_start: s,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_cover_the_text_and_end_at_sentences() {
        let text = "One. Two! Three? Four\nFive. Six… Seven";
        let got = chunks(text, 12);
        let joined: String = got.iter().map(|c| c.text.as_str()).collect();
        assert_eq!(joined, text);
        assert_eq!(got[0].text, "One. Two! ");
        for c in &got {
            assert!(c.text.chars().count() <= 12, "{c:?}");
            assert_eq!(
                text.chars()
                    .skip(c.char_start)
                    .take(c.text.chars().count())
                    .collect::<String>(),
                c.text
            );
        }
    }

    #[test]
    fn a_stream_starts_with_the_first_sentence_or_a_cut_of_a_long_one() {
        assert_eq!(first_stream_chars("Hi there. How are you? Fine."), 10);
        assert_eq!(first_stream_chars("One sentence only"), 17);
        let long = "word ".repeat(60);
        let n = first_stream_chars(&long);
        assert!(n <= FIRST_STREAM_CHARS && n > 150, "{n}");
        assert!(long[..n].ends_with(' '));
        assert_eq!(first_stream_chars(""), 0);
    }

    #[test]
    fn a_sentence_longer_than_a_chunk_is_cut_at_a_space() {
        let got = chunks("aaaa bbbb cccc dddd.", 10);
        assert_eq!(got[0].text, "aaaa bbbb ");
        assert!(got.iter().all(|c| c.text.chars().count() <= 10));
        assert_eq!(chunks("abcdefghijkl", 5).len(), 3);
    }

    #[test]
    fn sentences_end_at_terminal_punctuation_and_line_breaks() {
        let text = "One. Two!  Three\nFour 3.5 five";
        let got: Vec<String> = sentences(text)
            .into_iter()
            .map(|(s, e)| text.chars().skip(s).take(e - s).collect())
            .collect();
        assert_eq!(got, vec!["One. ", "Two!  ", "Three\n", "Four 3.5 five"]);
    }

    #[test]
    fn decimals_and_abbreviations_without_a_space_do_not_split() {
        assert_eq!(chunks("Pi is 3.14 exactly.", 800).len(), 1);
    }
}
