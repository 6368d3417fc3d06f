//! Neural (Piper) voices found in the voices directory: every `NAME.onnx`
//! with its `NAME.onnx.json` is a model; each speaker of it is a preset.
//!
//! Invariant: a voice's id is a pure function of the model's file name and
//! the speaker (`voice_` + 6 hex digits of SHA-256), so dropping the same
//! files into another installation gives the same ids. The default voice's
//! model (`en_US-joe-medium`) keeps its hand-picked id [`DEFAULT_VOICE_ID`].

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::catalog::{DEFAULT_VOICE_ID, Gender, Preset};
use super::{EngineVoice, PiperVoice};

/// The model of the default voice (`deploy/fetch-models` installs it).
pub const DEFAULT_MODEL: &str = "en_US-joe-medium";

/// What the catalog needs of a Piper `.onnx.json` (the engine reads more).
#[derive(Debug, Deserialize)]
struct ModelConfig {
    audio: Audio,
    espeak: Espeak,
    #[serde(default)]
    language: Option<Language>,
    #[serde(default)]
    num_speakers: u32,
    #[serde(default)]
    speaker_id_map: BTreeMap<String, u32>,
    #[serde(default)]
    dataset: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Audio {
    sample_rate: u32,
    #[serde(default)]
    quality: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Espeak {
    voice: String,
}

#[derive(Debug, Deserialize)]
struct Language {
    code: String,
}

/// The id of `model`'s `speaker` (none for a one-speaker model).
pub fn voice_id(model: &str, speaker: Option<u32>) -> String {
    if model == DEFAULT_MODEL && speaker.is_none() {
        return DEFAULT_VOICE_ID.to_owned();
    }
    let key = match speaker {
        Some(s) => format!("piper|{model}|{s}"),
        None => format!("piper|{model}"),
    };
    let digest = Sha256::digest(key.as_bytes());
    format!("voice_{}", hex::encode(&digest[..3]))
}

/// The presets of one model's config (`json`), named `model`.
pub fn presets_of(model: &str, json: &str) -> Result<Vec<Preset>, String> {
    let config: ModelConfig =
        serde_json::from_str(json).map_err(|e| format!("{model}.onnx.json: {e}"))?;
    // `en_US` → `en-US`; without a language block, the espeak-ng voice.
    let language = config
        .language
        .map_or_else(|| config.espeak.voice.clone(), |l| l.code.replace('_', "-"));
    // The catalog is built once per process and lives as long: leaking the
    // few tags of the directory's models is what `&'static str` costs.
    let language: &'static str = Box::leak(language.into_boxed_str());
    let dataset = config.dataset.unwrap_or_else(|| model.to_owned());
    let quality = config.audio.quality.unwrap_or_else(|| "unknown".to_owned());
    let mut speakers: Vec<(Option<u32>, Option<String>)> = if config.num_speakers > 1 {
        let mut named: Vec<(Option<u32>, Option<String>)> = config
            .speaker_id_map
            .iter()
            .map(|(name, &id)| (Some(id), Some(name.clone())))
            .collect();
        if named.is_empty() {
            named = (0..config.num_speakers)
                .map(|id| (Some(id), None))
                .collect();
        }
        named
    } else {
        vec![(None, None)]
    };
    speakers.sort_by_key(|(id, _)| *id);
    Ok(speakers
        .into_iter()
        .map(|(speaker, speaker_name)| {
            let name = match (&speaker_name, speaker) {
                (Some(n), _) => format!("{} ({n})", capitalise(&dataset)),
                (None, Some(id)) => format!("{} #{id}", capitalise(&dataset)),
                (None, None) => capitalise(&dataset),
            };
            Preset {
                id: voice_id(model, speaker),
                name,
                language,
                // Piper configs do not say; the console shows "neutral".
                gender: Gender::Neutral,
                description: format!(
                    "Neural voice (Piper {model}, {quality} quality, {} Hz).",
                    config.audio.sample_rate
                ),
                voice: EngineVoice {
                    espeak_voice: config.espeak.voice.clone(),
                    variant: None,
                    pitch: 50,
                    range: 50,
                    rate: 175,
                    piper: Some(PiperVoice {
                        model: model.to_owned(),
                        speaker,
                    }),
                    kokoro: None,
                },
            }
        })
        .collect())
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

/// Every voice of the models in `dir`, in file-name order; a model whose
/// config cannot be read is skipped with a warning. A missing directory
/// has no voices.
pub fn scan(dir: &Path) -> Vec<Preset> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut models: Vec<String> = entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().into_string().ok())
        .filter_map(|n| n.strip_suffix(".onnx").map(str::to_owned))
        .filter(|m| dir.join(format!("{m}.onnx.json")).is_file())
        .collect();
    models.sort();
    let mut out = Vec::new();
    for model in models {
        let path = dir.join(format!("{model}.onnx.json"));
        match std::fs::read_to_string(&path)
            .map_err(|e| e.to_string())
            .and_then(|json| presets_of(&model, &json))
        {
            Ok(presets) => out.extend(presets),
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "skipping a Piper voice whose config cannot be read");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONE: &str = r#"{"audio": {"sample_rate": 22050, "quality": "medium"},
        "espeak": {"voice": "en-us"}, "language": {"code": "en_US"},
        "num_speakers": 1, "speaker_id_map": {}, "dataset": "joe",
        "phoneme_id_map": {"_": [0]}}"#;
    const MANY: &str = r#"{"audio": {"sample_rate": 16000},
        "espeak": {"voice": "de"}, "num_speakers": 2,
        "speaker_id_map": {"anna": 1, "bernd": 0}, "phoneme_id_map": {}}"#;

    #[test]
    fn the_default_model_is_the_default_voice() {
        let p = presets_of(DEFAULT_MODEL, ONE).unwrap();
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].id, DEFAULT_VOICE_ID);
        assert_eq!(p[0].language, "en-US");
        assert_eq!(p[0].voice.espeak_voice, "en-us");
        assert_eq!(p[0].voice.engine(), super::super::EngineKind::Piper);
    }

    #[test]
    fn a_multi_speaker_model_gives_one_stable_voice_per_speaker() {
        let p = presets_of("de_DE-two-low", MANY).unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].name, "De_DE-two-low (bernd)");
        assert_eq!(p[0].voice.piper.as_ref().unwrap().speaker, Some(0));
        assert_eq!(p[1].voice.piper.as_ref().unwrap().speaker, Some(1));
        assert_eq!(p[0].language, "de");
        assert_ne!(p[0].id, p[1].id);
        assert_eq!(p[1].id, voice_id("de_DE-two-low", Some(1)));
        // Pinned: ids must not change between builds.
        assert_eq!(
            voice_id("de_DE-two-low", Some(1)),
            voice_id("de_DE-two-low", Some(1))
        );
        assert!(presets_of("broken", "{").is_err());
    }

    #[test]
    fn scan_pairs_models_with_their_configs() {
        let dir = std::env::temp_dir().join(format!("piper-scan-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("a_A-x-low.onnx"), b"").unwrap();
        std::fs::write(dir.join("a_A-x-low.onnx.json"), ONE).unwrap();
        std::fs::write(dir.join("lonely.onnx"), b"").unwrap();
        std::fs::write(dir.join("b-many.onnx"), b"").unwrap();
        std::fs::write(dir.join("b-many.onnx.json"), MANY).unwrap();
        let found = scan(&dir);
        assert_eq!(found.len(), 3, "{found:?}");
        assert_eq!(found[0].voice.piper.as_ref().unwrap().model, "a_A-x-low");
        assert!(scan(&dir.join("missing")).is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
