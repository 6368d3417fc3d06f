//! Joining rendered pieces into one track, and word timestamps from the
//! engine's word events.
//!
//! Joins are click-free by construction: each piece fades in and out over
//! [`FADE_MS`] (espeak-ng pieces begin and end in silence, so nothing
//! audible is lost), so the track is continuous at every join.
//! A word starts at its event's sample and ends where the engine says it
//! ends (Kokoro), else where the next word of its piece starts (or the
//! piece ends), pulled back over trailing silence,
//! so the words are in order, never overlap and the last one ends where the
//! speech does.

use shared::alignment::{Alignment, Word};

use crate::engine::WordMark;

pub const FADE_MS: u32 = 5;
/// Below this amplitude a sample counts as silence for word ends.
const SILENCE: u16 = 300;

/// One rendered chunk of the text.
#[derive(Debug, Clone)]
pub struct Piece {
    pub samples: Vec<i16>,
    pub words: Vec<WordMark>,
    /// Where the chunk starts in the whole text, in characters.
    pub char_start: usize,
}

/// A word with sample positions in the joined track.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    start: usize,
    end: usize,
    char_start: usize,
    char_end: usize,
}

/// Fades a piece in and out over [`FADE_MS`], as [`join`] does to each.
pub fn fade_edges(samples: &mut [i16], rate: u32) {
    let n = samples.len();
    let f = ((rate * FADE_MS / 1000) as usize).min(n / 2);
    for i in 0..f {
        let gain = i as f32 / f as f32;
        samples[i] = (f32::from(samples[i]) * gain) as i16;
        samples[n - 1 - i] = (f32::from(samples[n - 1 - i]) * gain) as i16;
    }
}

/// The joined track and its words.
pub fn join(pieces: Vec<Piece>, rate: u32, text: &str) -> (Vec<i16>, Alignment) {
    let chars: Vec<char> = text.chars().collect();
    let total: usize = pieces.iter().map(|p| p.samples.len()).sum();
    let mut track = Vec::with_capacity(total);
    let mut spans: Vec<Span> = Vec::new();
    for mut piece in pieces {
        let offset = track.len();
        let n = piece.samples.len();
        fade_edges(&mut piece.samples, rate);
        let mut marks = piece.words;
        marks.sort_by_key(|m| m.sample);
        for (k, m) in marks.iter().enumerate() {
            let start = (m.sample as usize).min(n);
            let next = marks.get(k + 1).map_or(n, |x| (x.sample as usize).min(n));
            // An end the engine knows wins; it never passes the next start.
            let next = m.end.map_or(next, |e| (e as usize).min(next));
            let mut end = next.max(start);
            while end > start + 1 && piece.samples[end - 1].unsigned_abs() < SILENCE {
                end -= 1;
            }
            let char_start = (piece.char_start + m.char_start as usize).min(chars.len());
            let mut char_end = (char_start + m.char_len as usize).min(chars.len());
            // The engine's word stops before punctuation; subtitles want it.
            while char_end < chars.len()
                && !chars[char_end].is_whitespace()
                && !chars[char_end].is_alphanumeric()
            {
                char_end += 1;
            }
            spans.push(Span {
                start: offset + start,
                end: offset + end,
                char_start,
                char_end,
            });
        }
        track.extend_from_slice(&piece.samples);
    }
    let ms = |s: usize| (s as u64 * 1000) / u64::from(rate.max(1));
    let words = spans
        .into_iter()
        .filter_map(|s| {
            let word: String = chars[s.char_start..s.char_end].iter().collect();
            let word = word.trim().to_owned();
            (!word.is_empty()).then(|| Word {
                word,
                start_ms: ms(s.start),
                end_ms: ms(s.end),
                char_start: s.char_start as u64,
                char_end: s.char_end as u64,
            })
        })
        .collect();
    let alignment = Alignment {
        duration_ms: ms(track.len()),
        words,
    };
    (track, alignment)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn piece(level: i16, n: usize, char_start: usize, marks: &[(u32, u32, u64)]) -> Piece {
        Piece {
            samples: vec![level; n],
            words: marks
                .iter()
                .map(|&(c, l, s)| WordMark {
                    char_start: c,
                    char_len: l,
                    sample: s,
                    end: None,
                })
                .collect(),
            char_start,
        }
    }

    #[test]
    fn joins_are_continuous_and_words_map_to_the_whole_text() {
        let text = "Hi there. Bye now.";
        let a = piece(10_000, 1000, 0, &[(0, 2, 0), (3, 6, 400)]);
        let b = piece(-10_000, 1000, 10, &[(0, 3, 100), (4, 4, 500)]);
        let (track, alignment) = join(vec![a, b], 1000, text);
        assert_eq!(track.len(), 2000);
        let max_step = track
            .windows(2)
            .map(|w| (i32::from(w[0]) - i32::from(w[1])).abs())
            .max()
            .unwrap();
        assert!(max_step <= 10_000 / 5 + 1, "step {max_step}");
        let words: Vec<(&str, u64, u64)> = alignment
            .words
            .iter()
            .map(|w| (w.word.as_str(), w.start_ms, w.end_ms))
            .collect();
        assert_eq!(
            words,
            [
                ("Hi", 0, 400),
                ("there.", 400, 999),
                ("Bye", 1100, 1500),
                ("now.", 1500, 1999)
            ]
        );
        assert_eq!(alignment.duration_ms, 2000);
    }

    #[test]
    fn a_word_ends_where_its_sound_ends() {
        let mut p = piece(5_000, 1000, 0, &[(0, 1, 0), (2, 1, 800)]);
        p.samples[300..800].fill(0);
        let (_, alignment) = join(vec![p], 1000, "a b");
        assert_eq!(alignment.words[0].end_ms, 300);
    }
}
