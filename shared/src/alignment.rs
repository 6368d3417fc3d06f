//! Word timestamps of a generation: written by the worker next to the
//! audio (`{workspace}/{generation}.alignment.json`), served by the gateway
//! as JSON or as SRT / WebVTT subtitles. Times are milliseconds from the
//! start of the audio; words are in order and never overlap.

use object_store::path::Path;
use serde::{Deserialize, Serialize};

use crate::ids::{GenerationId, WorkspaceId};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Alignment {
    pub duration_ms: u64,
    pub words: Vec<Word>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Word {
    pub word: String,
    pub start_ms: u64,
    pub end_ms: u64,
    /// Position in the request's text, in Unicode scalar values.
    pub char_start: u64,
    pub char_end: u64,
}

/// Where a generation's alignment is stored.
pub fn alignment_key(workspace: WorkspaceId, generation: GenerationId) -> Path {
    Path::from(format!("{workspace}/{generation}.alignment.json"))
}

/// Subtitle cues: up to 7 words or 3.5 s, broken after a sentence's end.
fn cues(a: &Alignment) -> Vec<(u64, u64, String)> {
    let mut out: Vec<(u64, u64, String)> = Vec::new();
    let mut current: Vec<&Word> = Vec::new();
    for w in &a.words {
        current.push(w);
        let first = current[0].start_ms;
        let ends_sentence = w.word.ends_with(['.', '!', '?', '。', '！', '？']);
        if current.len() >= 7 || w.end_ms.saturating_sub(first) >= 3_500 || ends_sentence {
            out.push(cue(&current));
            current.clear();
        }
    }
    if !current.is_empty() {
        out.push(cue(&current));
    }
    out
}

fn cue(words: &[&Word]) -> (u64, u64, String) {
    let text = words
        .iter()
        .map(|w| w.word.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    (words[0].start_ms, words[words.len() - 1].end_ms, text)
}

fn timestamp(ms: u64, separator: char) -> String {
    format!(
        "{:02}:{:02}:{:02}{separator}{:03}",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    )
}

/// SubRip subtitles.
pub fn to_srt(a: &Alignment) -> String {
    cues(a)
        .into_iter()
        .enumerate()
        .map(|(i, (start, end, text))| {
            format!(
                "{}\n{} --> {}\n{text}\n\n",
                i + 1,
                timestamp(start, ','),
                timestamp(end, ',')
            )
        })
        .collect()
}

/// WebVTT subtitles.
pub fn to_vtt(a: &Alignment) -> String {
    let mut out = String::from("WEBVTT\n\n");
    for (start, end, text) in cues(a) {
        out.push_str(&format!(
            "{} --> {}\n{text}\n\n",
            timestamp(start, '.'),
            timestamp(end, '.')
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn word(w: &str, start_ms: u64, end_ms: u64) -> Word {
        Word {
            word: w.to_owned(),
            start_ms,
            end_ms,
            char_start: 0,
            char_end: 0,
        }
    }

    #[test]
    fn subtitles_break_at_sentences_and_format_times() {
        let a = Alignment {
            duration_ms: 3_700_000,
            words: vec![
                word("Hello", 0, 400),
                word("world.", 450, 900),
                word("Again", 3_600_000, 3_600_500),
            ],
        };
        assert_eq!(
            to_srt(&a),
            "1\n00:00:00,000 --> 00:00:00,900\nHello world.\n\n2\n01:00:00,000 --> 01:00:00,500\nAgain\n\n"
        );
        assert!(to_vtt(&a).starts_with("WEBVTT\n\n00:00:00.000 --> 00:00:00.900\nHello world.\n"));
    }
}
