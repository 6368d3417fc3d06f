//! Piper neural voices (VITS models in ONNX) in an engine process, run by
//! ONNX Runtime through `ort` (loaded from a shared library at run time).
//!
//! Text becomes speech the way Piper does it: sentence by sentence,
//! libespeak-ng phonemises each clause in IPA (in the model's espeak-ng
//! voice), the clause's punctuation is kept, language-switch marks like
//! `(en)` are dropped, the string is NFD-normalised, and each character is
//! mapped through the model's `phoneme_id_map` as `^ _ p₁ _ p₂ _ … pₙ _ $`.
//! One inference per sentence with the model's `noise_scale`,
//! `length_scale / speed` and `noise_w`; 0.2 s of silence after each.
//!
//! Invariants: one ONNX Runtime environment per process (created at the
//! greeting, so a broken library is found at start-up), each model loaded
//! once, on its first request (a worker that never renders a neural voice
//! never pays for one), at most [`MAX_MODELS`] kept.
//!
//! Word timestamps: the model gives audio only (no phoneme durations), so
//! sentence starts are exact and the words of a sentence share its voiced
//! span in proportion to their letters (an estimate).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use ort::environment::Environment;
use ort::session::Session;
use ort::value::Tensor;
use serde::Deserialize;
use unicode_normalization::UnicodeNormalization;

use super::ffi::Espeak;
use super::protocol::{PiperRequest, WordMark};
use super::{EngineRefusal, Synthesis};
use crate::text::sentences;

/// Silence after each sentence, as Piper's `sentence_silence`.
const SENTENCE_SILENCE_SECS: f32 = 0.2;
/// Models kept loaded in one process (each is ~100 MB).
const MAX_MODELS: usize = 2;
/// Below this amplitude a sample is silence (for word spans).
const SILENCE: u16 = 300;

const PAD: char = '_';
const BOS: char = '^';
const EOS: char = '$';

/// What the engine needs of a model's `.onnx.json`.
#[derive(Debug, Clone, Deserialize)]
pub struct ModelConfig {
    pub audio: AudioConfig,
    pub espeak: EspeakConfig,
    pub inference: InferenceConfig,
    pub phoneme_id_map: HashMap<String, Vec<i64>>,
    #[serde(default)]
    pub num_speakers: u32,
}

#[derive(Debug, Clone, Deserialize)]
pub struct AudioConfig {
    pub sample_rate: u32,
}

#[derive(Debug, Clone, Deserialize)]
pub struct EspeakConfig {
    pub voice: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct InferenceConfig {
    pub noise_scale: f32,
    pub length_scale: f32,
    pub noise_w: f32,
}

impl ModelConfig {
    pub fn load(model: &Path) -> Result<Self, String> {
        let path = config_path(model);
        let json = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        serde_json::from_str(&json).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// `^ _ p₁ _ … pₙ _ $`; phonemes missing from the map are skipped (as
    /// Piper does) and returned.
    pub fn phoneme_ids(&self, phonemes: &str) -> (Vec<i64>, Vec<char>) {
        let id = |c: char| {
            let mut buf = [0u8; 4];
            self.phoneme_id_map.get(c.encode_utf8(&mut buf) as &str)
        };
        let mut ids = Vec::with_capacity(phonemes.len() * 2 + 3);
        let mut missing = Vec::new();
        ids.extend(id(BOS).into_iter().flatten());
        ids.extend(id(PAD).into_iter().flatten());
        for c in phonemes.chars() {
            match id(c) {
                Some(i) => {
                    ids.extend(i);
                    ids.extend(id(PAD).into_iter().flatten());
                }
                None => missing.push(c),
            }
        }
        ids.extend(id(EOS).into_iter().flatten());
        (ids, missing)
    }
}

/// `model.onnx` → `model.onnx.json`.
pub fn config_path(model: &Path) -> PathBuf {
    let mut p = model.as_os_str().to_owned();
    p.push(".json");
    PathBuf::from(p)
}

/// Piper's phoneme string of one sentence: each clause's phonemes followed
/// by its punctuation (`,` `:` `;` with a space after), NFD-normalised,
/// language-switch marks removed.
pub fn sentence_phonemes(
    espeak: &mut Espeak,
    voice: &str,
    sentence: &str,
) -> Result<String, EngineRefusal> {
    let mut out = String::new();
    for (clause, punct) in clauses(sentence) {
        let phonemes = espeak
            .phonemes(voice, &clause)
            .map_err(|e| refusal("voice_unavailable", e.to_string()))?;
        let phonemes = strip_language_marks(&phonemes);
        if phonemes.trim().is_empty() && punct.is_none() {
            continue;
        }
        if !out.is_empty() && !out.ends_with(' ') {
            out.push(' ');
        }
        out.push_str(phonemes.trim());
        match punct {
            Some(p @ ('.' | '!' | '?')) => out.push(p),
            Some(p) => {
                out.push(p);
                out.push(' ');
            }
            None => {}
        }
    }
    Ok(out.trim_end().nfd().collect())
}

/// The clauses of a sentence with the punctuation that ends each (Piper
/// keeps `, : ; . ! ?`), split where that mark is followed by a space or
/// the end.
pub fn clauses(sentence: &str) -> Vec<(String, Option<char>)> {
    let chars: Vec<char> = sentence.chars().collect();
    let mut out = Vec::new();
    let mut current = String::new();
    for (i, &c) in chars.iter().enumerate() {
        let ends = matches!(c, ',' | ':' | ';' | '.' | '!' | '?')
            && chars.get(i + 1).is_none_or(|n| n.is_whitespace());
        if ends {
            // "..." or "?!" end a clause as a whole, like espeak-ng's
            // own clause ends: none of it is read aloud.
            let text = current.trim_end_matches(['.', ',', ';', ':', '!', '?', '…']);
            out.push((text.to_owned(), Some(c)));
            current.clear();
        } else {
            current.push(c);
        }
    }
    if !current.trim().is_empty() {
        out.push((current, None));
    }
    out.retain(|(text, punct)| !text.trim().is_empty() || punct.is_some());
    out
}

/// Drops `(en)`-style language-switch marks espeak-ng inserts.
fn strip_language_marks(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(open) = rest.find('(') {
        out.push_str(&rest[..open]);
        match rest[open..].find(')') {
            Some(close)
                if rest[open + 1..open + close]
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-') =>
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
    out
}

/// A piece of an SSML document: text to speak, or a pause.
#[derive(Debug, Clone, PartialEq)]
pub enum Segment {
    Text(String),
    Break(u32),
}

/// What of SSML a Piper voice can follow, from the same parser and
/// allow-list as every engine (`shared::ssml`): `<break>` becomes silence,
/// `<p>` and `<s>` end sentences, `<sub>` speaks its alias, other elements
/// are read as their text; entities and numeric character references
/// (`&#233;`, `&#xE9;`) are decoded by the parser. SSML that does not pass
/// the allow-list is refused (`invalid_ssml`), as it is for espeak-ng.
pub fn ssml_segments(ssml: &str) -> Result<Vec<Segment>, EngineRefusal> {
    let doc = shared::ssml::parse(ssml)
        .map_err(|e| refusal("invalid_ssml", format!("invalid SSML: {e}")))?;
    Ok(doc
        .spoken()
        .into_iter()
        .map(|s| match s {
            shared::ssml::Spoken::Text(t) => Segment::Text(t),
            shared::ssml::Spoken::Pause { ms } => {
                Segment::Break(ms.min(shared::ssml::MAX_BREAK_MS))
            }
        })
        .collect())
}

struct Model {
    path: PathBuf,
    config: ModelConfig,
    session: Session,
}

/// The Piper side of an engine process.
pub struct Piper {
    /// The process's one ONNX Runtime environment; sessions are built in it.
    environment: Environment,
    threads: usize,
    models: Vec<Model>,
}

impl Piper {
    /// Loads ONNX Runtime from `library` and creates this process's
    /// environment; models load later, on demand.
    pub fn init(library: &Path, threads: usize) -> Result<Self, String> {
        let environment = super::onnx_environment(library, "voiceprod-piper")?;
        Ok(Self {
            environment,
            threads: threads.max(1),
            models: Vec::new(),
        })
    }

    fn model(&mut self, path: &Path) -> Result<&mut Model, EngineRefusal> {
        if let Some(i) = self.models.iter().position(|m| m.path == path) {
            // Most recently used last.
            let m = self.models.remove(i);
            self.models.push(m);
        } else {
            let config = ModelConfig::load(path).map_err(|m| refusal("voice_unavailable", m))?;
            let unloadable = |e: String| {
                refusal(
                    "voice_unavailable",
                    format!("cannot load the voice model {}: {e}", path.display()),
                )
            };
            let session =
                super::onnx_session(&self.environment, self.threads, path).map_err(unloadable)?;
            tracing::info!(model = %path.display(), threads = self.threads, "Piper model loaded");
            if self.models.len() >= MAX_MODELS {
                self.models.remove(0);
            }
            self.models.push(Model {
                path: path.to_owned(),
                config,
                session,
            });
        }
        self.models
            .last_mut()
            .ok_or_else(|| refusal("synthesis_failed", "no model".to_owned()))
    }

    /// The sample rate of a model (loads its config only).
    pub fn sample_rate_of(path: &Path) -> Option<u32> {
        ModelConfig::load(path).ok().map(|c| c.audio.sample_rate)
    }

    /// Renders `text` (plain, or SSML) with the model of `request`.
    pub fn synthesize(
        &mut self,
        espeak: &mut Espeak,
        text: &str,
        ssml: bool,
        request: &PiperRequest,
        max_samples: Option<u64>,
    ) -> Result<(Synthesis, u32), EngineRefusal> {
        let limit = max_samples.unwrap_or(u64::MAX);
        let over = |samples: &[i16]| {
            (samples.len() as u64 > limit).then(|| {
                refusal(
                    "audio_too_long",
                    format!("the audio passed its ceiling of {limit} samples"),
                )
            })
        };
        let model = self.model(&request.model)?;
        let rate = model.config.audio.sample_rate;
        let voice = model.config.espeak.voice.clone();
        let mut samples: Vec<i16> = Vec::new();
        let mut words: Vec<WordMark> = Vec::new();
        let segments = if ssml {
            ssml_segments(text)?
        } else {
            vec![Segment::Text(text.to_owned())]
        };
        let silence = (SENTENCE_SILENCE_SECS * rate as f32) as usize;
        for segment in segments {
            let text = match segment {
                Segment::Break(ms) => {
                    samples.resize(samples.len() + (ms as usize * rate as usize / 1000), 0);
                    if let Some(e) = over(&samples) {
                        return Err(e);
                    }
                    continue;
                }
                Segment::Text(t) => t,
            };
            let chars: Vec<char> = text.chars().collect();
            for (start, end) in sentences(&text) {
                let sentence: String = chars[start..end].iter().collect();
                let phonemes = sentence_phonemes(espeak, &voice, &sentence)?;
                let (ids, missing) = model.config.phoneme_ids(&phonemes);
                if !missing.is_empty() {
                    tracing::debug!(?missing, "phonemes missing from the model's map");
                }
                if ids.len() <= 3 {
                    continue;
                }
                let audio = infer(model, ids, request)?;
                let offset = samples.len();
                if !ssml {
                    words.extend(estimate_words(&chars, start, end, &audio, offset));
                }
                samples.extend_from_slice(&audio);
                samples.resize(samples.len() + silence, 0);
                if let Some(e) = over(&samples) {
                    return Err(e);
                }
            }
        }
        Ok((
            Synthesis {
                samples,
                words,
                sample_rate: rate,
            },
            rate,
        ))
    }
}

/// One inference: ids in, s16 audio out (scaled to full range like Piper).
fn infer(
    model: &mut Model,
    ids: Vec<i64>,
    request: &PiperRequest,
) -> Result<Vec<i16>, EngineRefusal> {
    let failed = |e: ort::Error| refusal("synthesis_failed", format!("inference failed: {e}"));
    let inf = &model.config.inference;
    let speed = if request.speed.is_finite() && request.speed > 0.0 {
        request.speed
    } else {
        1.0
    };
    let n = ids.len();
    let input = Tensor::from_array(([1usize, n], ids)).map_err(failed)?;
    let lengths = Tensor::from_array(([1usize], vec![n as i64])).map_err(failed)?;
    let scales = Tensor::from_array((
        [3usize],
        vec![inf.noise_scale, inf.length_scale / speed, inf.noise_w],
    ))
    .map_err(failed)?;
    let speaker = if model.config.num_speakers > 1 {
        let sid = i64::from(request.speaker.unwrap_or(0));
        Some(Tensor::from_array(([1usize], vec![sid])).map_err(failed)?)
    } else {
        None
    };
    let outputs = match speaker {
        Some(sid) => model.session.run(ort::inputs![
            "input" => input,
            "input_lengths" => lengths,
            "scales" => scales,
            "sid" => sid
        ]),
        None => model.session.run(ort::inputs![
            "input" => input,
            "input_lengths" => lengths,
            "scales" => scales
        ]),
    }
    .map_err(failed)?;
    let Some((_, output)) = outputs.iter().next() else {
        return Err(refusal(
            "synthesis_failed",
            "the model gave no output".to_owned(),
        ));
    };
    let (_, audio) = output.try_extract_tensor::<f32>().map_err(failed)?;
    let peak = audio.iter().fold(0.01f32, |m, s| m.max(s.abs()));
    let scale = 32767.0 / peak;
    Ok(audio
        .iter()
        .map(|s| (s * scale).clamp(-32768.0, 32767.0) as i16)
        .collect())
}

/// The words of `chars[start..end]` spread over the sentence's voiced span
/// in proportion to their letters and digits.
fn estimate_words(
    chars: &[char],
    start: usize,
    end: usize,
    audio: &[i16],
    offset: usize,
) -> Vec<WordMark> {
    let mut tokens: Vec<(usize, usize, usize)> = Vec::new();
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
        let weight = chars[s..i].iter().filter(|c| c.is_alphanumeric()).count();
        if weight > 0 {
            tokens.push((s, i - s, weight));
        }
    }
    let voiced_start = audio
        .iter()
        .position(|s| s.unsigned_abs() >= SILENCE)
        .unwrap_or(0);
    let voiced_end = audio
        .iter()
        .rposition(|s| s.unsigned_abs() >= SILENCE)
        .map_or(audio.len(), |p| p + 1);
    let span = voiced_end.saturating_sub(voiced_start) as f64;
    let total: usize = tokens.iter().map(|t| t.2).sum();
    let mut done = 0usize;
    tokens
        .into_iter()
        .map(|(s, len, weight)| {
            let at = voiced_start as f64 + span * done as f64 / total.max(1) as f64;
            done += weight;
            WordMark {
                char_start: s as u32,
                char_len: len as u32,
                sample: (offset + at as usize) as u64,
                end: None,
            }
        })
        .collect()
}

fn refusal(code: &str, message: String) -> EngineRefusal {
    EngineRefusal {
        code: code.to_owned(),
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clauses_keep_their_punctuation() {
        assert_eq!(
            clauses("Hello, world: yes; no. 3.14 ok"),
            vec![
                ("Hello".to_owned(), Some(',')),
                (" world".to_owned(), Some(':')),
                (" yes".to_owned(), Some(';')),
                (" no".to_owned(), Some('.')),
                (" 3.14 ok".to_owned(), None),
            ]
        );
        assert_eq!(
            clauses("Wait... what?!"),
            vec![
                ("Wait".to_owned(), Some('.')),
                (" what".to_owned(), Some('!'))
            ]
        );
    }

    #[test]
    fn language_marks_are_dropped() {
        assert_eq!(
            strip_language_marks("ʃˈɑːl (fr)vˈaɪ(en) (x y)"),
            "ʃˈɑːl vˈaɪ (x y)"
        );
    }

    #[test]
    fn ids_are_bos_pad_then_each_phoneme_and_pad_then_eos() {
        let config: ModelConfig = serde_json::from_str(
            r#"{"audio": {"sample_rate": 22050}, "espeak": {"voice": "en-us"},
               "inference": {"noise_scale": 0.667, "length_scale": 1, "noise_w": 0.8},
               "phoneme_id_map": {"_": [0], "^": [1], "$": [2], "a": [14], "b": [15], " ": [3]}}"#,
        )
        .unwrap();
        let (ids, missing) = config.phoneme_ids("ab ?");
        assert_eq!(ids, vec![1, 0, 14, 0, 15, 0, 3, 0, 2]);
        assert_eq!(missing, vec!['?']);
    }

    #[test]
    fn ssml_breaks_become_pauses_and_tags_are_dropped() {
        let got = ssml_segments(
            r#"<speak>Hi &amp; bye<break time="300ms"/>Next<break strength="strong"/><emphasis>x</emphasis><break time="2s"/></speak>"#,
        )
        .unwrap();
        assert_eq!(
            got,
            vec![
                Segment::Text("Hi & bye".into()),
                Segment::Break(300),
                Segment::Text("Next".into()),
                Segment::Break(1000),
                Segment::Text("x".into()),
                Segment::Break(2000),
            ]
        );
    }

    #[test]
    fn numeric_character_references_are_decoded_like_named_ones() {
        let got = ssml_segments("<speak>Caf&#233; caf&#xE9; caf\u{e9} &lt;b&gt;</speak>").unwrap();
        assert_eq!(got, vec![Segment::Text("Café café café <b>".into())]);
    }

    #[test]
    fn ssml_off_the_allow_list_is_refused_here_too() {
        let err = ssml_segments(r#"<speak>Hi<audio src="/etc/passwd"/></speak>"#).unwrap_err();
        assert_eq!(err.code, "invalid_ssml");
        assert!(err.message.contains("<audio>"), "{}", err.message);
    }
}
