//! Voices: the static preset catalog (`catalog`, over espeak-ng's
//! `languages`), the cloned voices of a workspace (`cloned`, table
//! `voices`), and the analysis that turns WAV samples into a cloned voice's
//! engine parameters (`analysis`). [`EngineVoice`] is what the synth-worker
//! needs to render either kind.

pub mod analysis;
pub mod catalog;
pub mod cloned;
pub mod languages;

use serde::{Deserialize, Serialize};

pub use catalog::{DEFAULT_VOICE_ID, Gender, Preset, espeak_voice_for, preset, presets};

/// How the engine renders a voice: espeak-ng voice and variant, base pitch
/// and pitch range (0–100, espeak-ng's default 50) and words per minute at
/// speed 1.0. Stored as a cloned voice's `params` (camelCase JSON).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EngineVoice {
    pub espeak_voice: String,
    #[serde(default)]
    pub variant: Option<String>,
    pub pitch: u8,
    #[serde(default = "default_range")]
    pub range: u8,
    pub rate: u16,
}

fn default_range() -> u8 {
    50
}

impl EngineVoice {
    /// The name `espeak_SetVoiceByName` takes: `voice` or `voice+variant`.
    pub fn espeak_name(&self) -> String {
        match &self.variant {
            Some(v) => format!("{}+{v}", self.espeak_voice),
            None => self.espeak_voice.clone(),
        }
    }
}
