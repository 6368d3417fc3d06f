//! Kokoro-82M (StyleTTS2 in ONNX, int8) in an engine process, run by ONNX
//! Runtime through `ort`.
//!
//! Text becomes speech sentence by sentence: `misaki` phonemises each
//! sentence as misaki would (libespeak-ng IPA and misaki's replacement
//! tables), the phonemes are mapped through `vocab.json` (characters not in
//! it are dropped), a sentence over [`MAX_TOKENS`] tokens is cut at its
//! last clause mark (else its last space) that fits, and consecutive
//! sentences are packed into one inference up to [`BATCH_TOKENS`] tokens.
//! Each inference: `tokens` = `0, ids…, 0`, `style` = row `N − 1` of the
//! voice (N = ids without the pads) — the weighted sum of the request's
//! packs — and `speed`; 24 kHz float audio comes back, faded over 5 ms at
//! each end so inferences join without clicks.
//!
//! Word timestamps are the model's own: `deploy/fetch-models` adds the
//! duration predictor's rounded per-token durations
//! (`/encoder/Round_output_0`, in frames of [`SAMPLES_PER_FRAME`] samples,
//! at least 1 each as the graph clips them) as a second output, and a word
//! starts at the sum of the durations of the tokens before its first
//! phoneme (`misaki` knows which phoneme that is) and ends after its last
//! (the space and punctuation after it left out).
//!
//! Invariants: one ONNX Runtime environment per process (the greeting
//! fails when the library or the Kokoro files are missing), the model is
//! loaded on the first job, voice packs are read on first use and kept
//! (54 × 510 KiB at most), a pack name is `[a-z0-9_]` only (it names a
//! file).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use ort::environment::Environment;
use ort::session::Session;
use ort::value::Tensor;
use shared::voices::KokoroPack;

use super::misaki;
use super::piper::{Segment, ssml_segments};
use super::protocol::{EngineRequest, KokoroRequest, WordMark};
use super::{EngineRefusal, Espeak, Synthesis};
use crate::text::sentences;

/// The model's output rate.
pub const SAMPLE_RATE: u32 = 24_000;
/// The most phoneme tokens of one inference (without the two pads).
pub const MAX_TOKENS: usize = 510;
/// Consecutive sentences are packed into one inference up to this.
pub const BATCH_TOKENS: usize = 400;
/// Audio samples per duration frame.
pub const SAMPLES_PER_FRAME: u64 = 600;
/// The model file in `kokoro.dir` (with the durations output).
pub const MODEL_FILE: &str = "kokoro-v1.0.int8.onnx";
/// The duration output that `deploy/fetch-models` adds to the graph.
pub const DURATIONS: &str = "/encoder/Round_output_0";
/// Rows (one per token count) and width of a voice pack.
const PACK_ROWS: usize = 510;
const STYLE_DIM: usize = 256;
const FADE_SAMPLES: usize = (SAMPLE_RATE as usize) * 5 / 1000;
/// The space token (between packed sentences).
const SPACE: i64 = 16;
/// Token ids of `; : , . ! ?` (clause marks, where a long sentence is cut).
const CLAUSE_MARKS: std::ops::RangeInclusive<i64> = 1..=6;

/// A sentence (or part of one) as tokens, with its words' first tokens.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Unit {
    pub ids: Vec<i64>,
    /// (char start in the request text, char length, first token).
    pub words: Vec<(usize, usize, usize)>,
}

/// The Kokoro side of an engine process.
pub struct Kokoro {
    environment: Environment,
    threads: usize,
    dir: PathBuf,
    vocab: HashMap<char, i64>,
    session: Option<Session>,
    packs: HashMap<String, Vec<f32>>,
    batch_tokens: usize,
}

fn refusal(code: &str, message: String) -> EngineRefusal {
    EngineRefusal {
        code: code.to_owned(),
        message,
    }
}

/// Reads `vocab.json` (`{"vocab": {"a": 43, …}}`).
pub fn load_vocab(dir: &Path) -> Result<HashMap<char, i64>, String> {
    #[derive(serde::Deserialize)]
    struct File {
        vocab: HashMap<String, i64>,
    }
    let path = dir.join("vocab.json");
    let json = std::fs::read_to_string(&path).map_err(|e| {
        format!(
            "cannot read {} ({e}); run deploy/fetch-models",
            path.display()
        )
    })?;
    let file: File = serde_json::from_str(&json).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(file
        .vocab
        .into_iter()
        .filter_map(|(k, v)| {
            let mut chars = k.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) => Some((c, v)),
                _ => None,
            }
        })
        .collect())
}

impl Kokoro {
    /// Loads ONNX Runtime from `library`, creates this process's
    /// environment and reads the vocabulary; the model loads on first use.
    pub fn init(library: &Path, threads: usize, dir: &Path) -> Result<Self, String> {
        let model = dir.join(MODEL_FILE);
        if !model.is_file() {
            return Err(format!(
                "the Kokoro model is missing at {} (run deploy/fetch-models)",
                model.display()
            ));
        }
        let vocab = load_vocab(dir)?;
        let environment = super::onnx_environment(library, "voiceprod-kokoro")?;
        Ok(Self {
            environment,
            threads: threads.max(1),
            dir: dir.to_owned(),
            vocab,
            session: None,
            packs: HashMap::new(),
            batch_tokens: BATCH_TOKENS,
        })
    }

    /// Packs sentences up to `tokens` per inference instead of
    /// [`BATCH_TOKENS`] (the benchmark compares).
    pub fn with_batch_tokens(mut self, tokens: usize) -> Self {
        self.batch_tokens = tokens.clamp(1, MAX_TOKENS);
        self
    }

    fn session(&mut self) -> Result<&mut Session, EngineRefusal> {
        if self.session.is_none() {
            let path = self.dir.join(MODEL_FILE);
            let unloadable = |e: String| {
                refusal(
                    "voice_unavailable",
                    format!("cannot load the Kokoro model {}: {e}", path.display()),
                )
            };
            let session =
                super::onnx_session(&self.environment, self.threads, &path).map_err(unloadable)?;
            if !session.outputs().iter().any(|o| o.name() == DURATIONS) {
                return Err(unloadable(format!(
                    "it has no {DURATIONS} output (the edit of deploy/fetch-models); run deploy/fetch-models"
                )));
            }
            tracing::info!(model = %path.display(), threads = self.threads, "Kokoro model loaded");
            self.session = Some(session);
        }
        self.session
            .as_mut()
            .ok_or_else(|| refusal("synthesis_failed", "no model".to_owned()))
    }

    /// One pack's 510 × 256 style vectors, read once.
    fn pack(&mut self, name: &str) -> Result<&[f32], EngineRefusal> {
        if name.is_empty()
            || name.len() > 40
            || !name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            return Err(refusal(
                "voice_unavailable",
                format!("{name:?} is not a Kokoro voice pack name"),
            ));
        }
        if !self.packs.contains_key(name) {
            let path = self.dir.join("voices").join(format!("{name}.bin"));
            let bytes = std::fs::read(&path).map_err(|e| {
                refusal(
                    "voice_unavailable",
                    format!(
                        "the Kokoro voice pack {name} is not installed on this worker ({}: {e}; run deploy/fetch-models)",
                        path.display()
                    ),
                )
            })?;
            if bytes.len() != PACK_ROWS * STYLE_DIM * 4 {
                return Err(refusal(
                    "voice_unavailable",
                    format!(
                        "the Kokoro voice pack {} has {} bytes, not {}",
                        path.display(),
                        bytes.len(),
                        PACK_ROWS * STYLE_DIM * 4
                    ),
                ));
            }
            let floats = bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            self.packs.insert(name.to_owned(), floats);
        }
        self.packs
            .get(name)
            .map(Vec::as_slice)
            .ok_or_else(|| refusal("synthesis_failed", "pack vanished".to_owned()))
    }

    /// The weighted sum of the packs (weights normalised to sum 1).
    pub fn voice(&mut self, packs: &[KokoroPack]) -> Result<Vec<f32>, EngineRefusal> {
        let total: f32 = packs
            .iter()
            .filter(|p| p.weight.is_finite() && p.weight > 0.0)
            .map(|p| p.weight)
            .sum();
        if packs.is_empty()
            || packs.len() > 8
            || total <= 0.0
            || packs
                .iter()
                .any(|p| !p.weight.is_finite() || p.weight <= 0.0)
        {
            return Err(refusal(
                "voice_unavailable",
                "a Kokoro voice needs 1 to 8 packs with positive weights".to_owned(),
            ));
        }
        let mut style = vec![0f32; PACK_ROWS * STYLE_DIM];
        for p in packs {
            let w = p.weight / total;
            let pack = self.pack(&p.name)?;
            for (s, v) in style.iter_mut().zip(pack) {
                *s += w * v;
            }
        }
        Ok(style)
    }

    /// Renders `request` (plain text or SSML) with the voice of `kokoro`.
    pub fn synthesize(
        &mut self,
        espeak: &mut Espeak,
        request: &EngineRequest,
        kokoro: &KokoroRequest,
    ) -> Result<Synthesis, EngineRefusal> {
        let limit = request.max_samples.unwrap_or(u64::MAX);
        let over = |n: usize| {
            (n as u64 > limit).then(|| {
                refusal(
                    "audio_too_long",
                    format!("the audio passed its ceiling of {limit} samples"),
                )
            })
        };
        let style = self.voice(&kokoro.packs)?;
        let speed = if kokoro.speed.is_finite() && kokoro.speed > 0.0 {
            kokoro.speed.clamp(0.25, 4.0)
        } else {
            1.0
        };
        let segments = if request.ssml {
            ssml_segments(&request.text)?
        } else {
            vec![Segment::Text(request.text.clone())]
        };
        let mut samples: Vec<i16> = Vec::new();
        let mut words: Vec<WordMark> = Vec::new();
        for segment in segments {
            let text = match segment {
                Segment::Break(ms) => {
                    let n = ms as usize * SAMPLE_RATE as usize / 1000;
                    samples.resize(samples.len() + n, 0);
                    if let Some(e) = over(samples.len()) {
                        return Err(e);
                    }
                    continue;
                }
                Segment::Text(t) => t,
            };
            let units = batches(
                espeak,
                &self.vocab,
                &request.voice,
                &text,
                self.batch_tokens,
            )?;
            for batch in units {
                if batch.ids.is_empty() {
                    continue;
                }
                let (audio, frames) = self.infer(&batch.ids, &style, speed)?;
                let offset = samples.len();
                if !request.ssml {
                    // Sample at which token t starts: the pad's and the
                    // tokens' durations before it.
                    let mut starts = Vec::with_capacity(frames.len());
                    let mut sum = 0u64;
                    for d in &frames {
                        starts.push(sum);
                        sum += d;
                    }
                    let sample = |token: usize| {
                        let frames = starts.get(token + 1).copied().unwrap_or(sum);
                        offset as u64 + (frames * SAMPLES_PER_FRAME).min(audio.len() as u64)
                    };
                    for (k, &(char_start, char_len, token)) in batch.words.iter().enumerate() {
                        // A word ends with its last phoneme: before the
                        // next word, less the space and marks between.
                        let mut end = batch.words.get(k + 1).map_or(batch.ids.len(), |w| w.2);
                        while end > token + 1 && batch.ids[end - 1] <= SPACE {
                            end -= 1;
                        }
                        words.push(WordMark {
                            char_start: char_start as u32,
                            char_len: char_len as u32,
                            sample: sample(token),
                            end: Some(sample(end.max(token + 1))),
                        });
                    }
                }
                samples.extend_from_slice(&audio);
                if let Some(e) = over(samples.len()) {
                    return Err(e);
                }
            }
        }
        Ok(Synthesis {
            samples,
            words,
            sample_rate: SAMPLE_RATE,
        })
    }

    /// One inference: s16 audio (faded at both ends) and each padded
    /// token's duration in frames.
    pub fn infer(
        &mut self,
        ids: &[i64],
        style: &[f32],
        speed: f32,
    ) -> Result<(Vec<i16>, Vec<u64>), EngineRefusal> {
        let failed = |e: ort::Error| refusal("synthesis_failed", format!("inference failed: {e}"));
        let n = ids.len().min(MAX_TOKENS);
        let row = n.max(1) - 1;
        let style_row = style[row * STYLE_DIM..(row + 1) * STYLE_DIM].to_vec();
        let mut tokens = Vec::with_capacity(n + 2);
        tokens.push(0);
        tokens.extend_from_slice(&ids[..n]);
        tokens.push(0);
        let session = self.session()?;
        let tokens = Tensor::from_array(([1usize, n + 2], tokens)).map_err(failed)?;
        let style = Tensor::from_array(([1usize, STYLE_DIM], style_row)).map_err(failed)?;
        let speed = Tensor::from_array(([1usize], vec![speed])).map_err(failed)?;
        let outputs = session
            .run(ort::inputs![
                "tokens" => tokens,
                "style" => style,
                "speed" => speed
            ])
            .map_err(failed)?;
        let missing = |what: &str| refusal("synthesis_failed", format!("the model gave no {what}"));
        let (_, audio) = outputs
            .get("audio")
            .ok_or_else(|| missing("audio"))?
            .try_extract_tensor::<f32>()
            .map_err(failed)?;
        let (_, durations) = outputs
            .get(DURATIONS)
            .ok_or_else(|| missing("durations"))?
            .try_extract_tensor::<f32>()
            .map_err(failed)?;
        let frames = durations
            .iter()
            .map(|d| if d.is_finite() { d.max(1.0) as u64 } else { 1 })
            .collect();
        let mut pcm: Vec<i16> = audio
            .iter()
            .map(|s| (s * 32767.0).clamp(-32768.0, 32767.0) as i16)
            .collect();
        fade(&mut pcm);
        Ok((pcm, frames))
    }
}

/// A sentence's tokens (its phonemes through `vocab`, unknown characters
/// dropped) and words (positions offset by `char_offset`).
pub fn unit(vocab: &HashMap<char, i64>, phonemes: &misaki::Phonemes, char_offset: usize) -> Unit {
    let mut ids = Vec::with_capacity(phonemes.text.len());
    // Tokens before each phoneme character.
    let mut before = Vec::with_capacity(phonemes.text.len() + 1);
    for c in phonemes.text.chars() {
        before.push(ids.len());
        if let Some(&id) = vocab.get(&c) {
            ids.push(id);
        }
    }
    before.push(ids.len());
    let words = phonemes
        .words
        .iter()
        .map(|w| {
            let token = before[w.phoneme.min(before.len() - 1)];
            (char_offset + w.char_start, w.char_len, token)
        })
        .collect();
    Unit { ids, words }
}

/// The inferences of a plain text: its sentences phonemised in `voice`,
/// cut to [`MAX_TOKENS`], packed up to `batch_tokens`.
pub fn batches(
    espeak: &mut Espeak,
    vocab: &HashMap<char, i64>,
    voice: &str,
    text: &str,
    batch_tokens: usize,
) -> Result<Vec<Unit>, EngineRefusal> {
    let chars: Vec<char> = text.chars().collect();
    let mut units = Vec::new();
    for (start, end) in sentences(text) {
        let sentence: String = chars[start..end].iter().collect();
        let phonemes = misaki::phonemize(espeak, voice, &sentence)
            .map_err(|e| refusal("voice_unavailable", e.to_string()))?;
        units.extend(split(unit(vocab, &phonemes, start), MAX_TOKENS));
    }
    Ok(pack_units(units, batch_tokens.clamp(1, MAX_TOKENS)))
}

/// A linear fade over [`FADE_SAMPLES`] at both ends.
fn fade(samples: &mut [i16]) {
    let n = samples.len();
    let f = FADE_SAMPLES.min(n / 2);
    for i in 0..f {
        let gain = i as f32 / f as f32;
        samples[i] = (f32::from(samples[i]) * gain) as i16;
        samples[n - 1 - i] = (f32::from(samples[n - 1 - i]) * gain) as i16;
    }
}

/// Cuts a unit into pieces of at most `max` tokens: after the last clause
/// mark followed by a space that fits, else at the last space, else hard.
pub fn split(mut unit: Unit, max: usize) -> Vec<Unit> {
    let mut out = Vec::new();
    while unit.ids.len() > max {
        let ids = &unit.ids;
        let clause = (1..max)
            .rev()
            .find(|&i| ids[i] == SPACE && CLAUSE_MARKS.contains(&ids[i - 1]));
        let space = (1..max).rev().find(|&i| ids[i] == SPACE);
        // The cut token: a space is dropped, a hard cut keeps every token.
        let (cut, skip) = match clause.or(space) {
            Some(i) => (i, 1),
            None => (max, 0),
        };
        let rest_ids = unit.ids.split_off(cut + skip);
        unit.ids.truncate(cut);
        let (head, tail): (Vec<_>, Vec<_>) = unit.words.into_iter().partition(|w| w.2 < cut);
        out.push(Unit {
            ids: std::mem::take(&mut unit.ids),
            words: head,
        });
        unit = Unit {
            ids: rest_ids,
            words: tail
                .into_iter()
                .map(|(c, l, t)| (c, l, t.saturating_sub(cut + skip)))
                .collect(),
        };
    }
    out.push(unit);
    out
}

/// Packs consecutive units into batches of at most `max` tokens, a space
/// between two units.
pub fn pack_units(units: Vec<Unit>, max: usize) -> Vec<Unit> {
    let mut out: Vec<Unit> = Vec::new();
    for unit in units {
        if unit.ids.is_empty() {
            continue;
        }
        match out.last_mut() {
            Some(last) if last.ids.len() + 1 + unit.ids.len() <= max => {
                last.ids.push(SPACE);
                let shift = last.ids.len();
                last.ids.extend_from_slice(&unit.ids);
                last.words
                    .extend(unit.words.into_iter().map(|(c, l, t)| (c, l, t + shift)));
            }
            _ => out.push(unit),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(ids: &[i64], words: &[(usize, usize, usize)]) -> Unit {
        Unit {
            ids: ids.to_vec(),
            words: words.to_vec(),
        }
    }

    #[test]
    fn long_units_are_cut_after_a_clause_mark_then_at_a_space() {
        // a b , c d . e   (3 = ",", 4 = ".")
        let u = unit(
            &[43, 16, 44, 3, 16, 45, 16, 46, 4, 16, 47],
            &[(0, 1, 0), (2, 1, 2), (5, 1, 5), (7, 1, 7), (10, 1, 10)],
        );
        let got = split(u, 8);
        assert_eq!(got[0].ids, vec![43, 16, 44, 3]);
        assert_eq!(got[0].words, vec![(0, 1, 0), (2, 1, 2)]);
        assert_eq!(got[1].ids, vec![45, 16, 46, 4, 16, 47]);
        assert_eq!(got[1].words, vec![(5, 1, 0), (7, 1, 2), (10, 1, 5)]);
        assert!(
            split(unit(&[43; 12], &[]), 5)
                .iter()
                .all(|u| u.ids.len() <= 5)
        );
        assert_eq!(split(unit(&[43; 12], &[]), 5).len(), 3);
    }

    #[test]
    fn units_are_packed_with_a_space_and_their_words_shift() {
        let got = pack_units(
            vec![
                unit(&[43, 4], &[(0, 1, 0)]),
                unit(&[44, 4], &[(3, 1, 0)]),
                unit(&[45, 46, 47, 4], &[(6, 3, 0)]),
            ],
            6,
        );
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].ids, vec![43, 4, 16, 44, 4]);
        assert_eq!(got[0].words, vec![(0, 1, 0), (3, 1, 3)]);
        assert_eq!(got[1].words, vec![(6, 3, 0)]);
    }
}
