//! Voices: the static preset catalog (`catalog`, over espeak-ng's
//! `languages`, with the Piper models of `neural` and the Kokoro packs of
//! `kokoro` found on disk), the cloned voices of a workspace (`cloned`,
//! table `voices`), and the analysis that turns WAV samples into a cloned
//! voice's engine parameters (`analysis`). `resolve` turns the voice string
//! of a request (an id, a Kokoro pack name, a Kokoro blend) into an
//! [`EngineVoice`], what the synth-worker needs to render it.

pub mod analysis;
pub mod catalog;
pub mod cloned;
pub mod designed;
pub mod kokoro;
pub mod languages;
pub mod neural;
pub mod resolve;

use serde::{Deserialize, Serialize};

pub use catalog::{
    DEFAULT_VOICE_ID, Gender, Loaded, Preset, espeak_voice_for, load_model_dirs, load_voices_dir,
    lookup, preset, presets,
};
pub use resolve::{Resolved, VoiceError, resolve};

/// How the engine renders a voice: espeak-ng voice and variant, base pitch
/// and pitch range (0–100, espeak-ng's default 50) and words per minute at
/// speed 1.0. Stored as a cloned voice's `params` (camelCase JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EngineVoice {
    pub espeak_voice: String,
    #[serde(default)]
    pub variant: Option<String>,
    pub pitch: u8,
    #[serde(default = "default_range")]
    pub range: u8,
    pub rate: u16,
    /// Set for a neural (Piper) voice: espeak-ng then only phonemises, in
    /// `espeak_voice`, and `pitch`, `range`, `rate` are unused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub piper: Option<PiperVoice>,
    /// Set for a Kokoro voice: espeak-ng then only phonemises, in
    /// `espeak_voice` (`en-us`, `en-gb`, `es`, `fr-fr`, `hi`, `it`,
    /// `pt-br`), and `pitch`, `range`, `rate` are unused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kokoro: Option<KokoroVoice>,
}

/// A Kokoro voice: the weighted sum of the style vectors of one or more
/// voice packs (at most 4, of one language). A preset is one pack of
/// weight 1; a blend (`af_bella(2)+af_sky(1)`) several.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KokoroVoice {
    pub packs: Vec<KokoroPack>,
}

/// One voice pack of a [`KokoroVoice`]: the pack's `kokoro-js` name
/// (`af_bella`, the file `voices/af_bella.bin`) and its weight; the weights
/// of a voice are normalised (they sum to 1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KokoroPack {
    pub name: String,
    pub weight: f32,
}

/// A Piper model of the voices directory and, for a multi-speaker model,
/// the speaker.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PiperVoice {
    /// The model's file name without `.onnx` (`en_US-joe-medium`).
    pub model: String,
    /// Speaker id of a multi-speaker model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speaker: Option<u32>,
}

/// Which engine renders a voice (the voice object's `engine`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum EngineKind {
    #[serde(rename = "espeak-ng")]
    Espeak,
    #[serde(rename = "piper")]
    Piper,
    #[serde(rename = "kokoro")]
    Kokoro,
}

impl EngineKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Espeak => "espeak-ng",
            Self::Piper => "piper",
            Self::Kokoro => "kokoro",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Espeak, Self::Piper, Self::Kokoro]
            .into_iter()
            .find(|e| e.as_str() == s)
    }

    /// A neural engine, whose voices sound like people (the voice object's
    /// `natural`); espeak-ng is a formant synthesiser.
    pub fn is_natural(self) -> bool {
        matches!(self, Self::Piper | Self::Kokoro)
    }
}

fn default_range() -> u8 {
    50
}

impl EngineVoice {
    /// A Kokoro voice of `packs` (normalised weights), phonemised by
    /// espeak-ng in `espeak_voice`.
    pub fn kokoro(espeak_voice: &str, packs: Vec<KokoroPack>) -> Self {
        Self {
            espeak_voice: espeak_voice.to_owned(),
            variant: None,
            pitch: 50,
            range: 50,
            rate: 175,
            piper: None,
            kokoro: Some(KokoroVoice { packs }),
        }
    }

    pub fn engine(&self) -> EngineKind {
        if self.kokoro.is_some() {
            EngineKind::Kokoro
        } else if self.piper.is_some() {
            EngineKind::Piper
        } else {
            EngineKind::Espeak
        }
    }

    /// The name `espeak_SetVoiceByName` takes: `voice` or `voice+variant`.
    pub fn espeak_name(&self) -> String {
        match &self.variant {
            Some(v) => format!("{}+{v}", self.espeak_voice),
            None => self.espeak_voice.clone(),
        }
    }
}
