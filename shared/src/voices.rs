//! The preset voice catalog: static, in code, with ids that never change
//! from build to build. Each preset names the espeak-ng voice and the
//! variant, pitch and rate that give it its sound. `voice_8f2a1c` is the
//! default English voice (the one API.md's example uses).
//!
//! The foundation ships a small catalog; the 300+ presets are issue 5.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Gender {
    Female,
    Male,
    Neutral,
}

/// A preset voice and how the engine renders it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Preset {
    pub id: &'static str,
    pub name: &'static str,
    /// BCP 47 language tag.
    pub language: &'static str,
    pub gender: Gender,
    pub description: &'static str,
    /// espeak-ng voice name (`espeak-ng --voices`).
    pub espeak_voice: &'static str,
    /// espeak-ng variant (`espeak-ng --voices=variant`), if any.
    pub variant: Option<&'static str>,
    /// Base pitch, 0–100 (espeak-ng's default is 50).
    pub pitch: u8,
    /// Speaking rate in words per minute at speed 1.0 (espeak-ng's default is 175).
    pub rate: u16,
}

/// The id of the default English voice.
pub const DEFAULT_VOICE_ID: &str = "voice_8f2a1c";

pub const PRESETS: &[Preset] = &[
    Preset {
        id: DEFAULT_VOICE_ID,
        name: "Avery",
        language: "en-US",
        gender: Gender::Male,
        description: "Clear American English; the default voice.",
        espeak_voice: "en-us",
        variant: None,
        pitch: 50,
        rate: 175,
    },
    Preset {
        id: "voice_3c71e9",
        name: "Harper",
        language: "en-US",
        gender: Gender::Female,
        description: "Bright American English.",
        espeak_voice: "en-us",
        variant: Some("f3"),
        pitch: 60,
        rate: 170,
    },
    Preset {
        id: "voice_a41d07",
        name: "Oliver",
        language: "en-GB",
        gender: Gender::Male,
        description: "Received Pronunciation, unhurried.",
        espeak_voice: "en-gb",
        variant: None,
        pitch: 45,
        rate: 160,
    },
    Preset {
        id: "voice_5be2f4",
        name: "Camille",
        language: "fr-FR",
        gender: Gender::Female,
        description: "Standard French.",
        espeak_voice: "fr-fr",
        variant: Some("f2"),
        pitch: 55,
        rate: 170,
    },
    Preset {
        id: "voice_d90a63",
        name: "Lukas",
        language: "de-DE",
        gender: Gender::Male,
        description: "Standard German.",
        espeak_voice: "de",
        variant: None,
        pitch: 48,
        rate: 165,
    },
    Preset {
        id: "voice_6f18b2",
        name: "Lucía",
        language: "es-ES",
        gender: Gender::Female,
        description: "Castilian Spanish.",
        espeak_voice: "es",
        variant: Some("f1"),
        pitch: 58,
        rate: 175,
    },
];

/// The preset with this id.
pub fn preset(id: &str) -> Option<&'static Preset> {
    PRESETS.iter().find(|p| p.id == id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_well_formed() {
        let mut ids: Vec<&str> = PRESETS.iter().map(|p| p.id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), PRESETS.len());
        for id in ids {
            let hex = id.strip_prefix("voice_").unwrap();
            assert_eq!(hex.len(), 6);
            assert!(
                hex.bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
            );
        }
    }

    #[test]
    fn the_seed_voice_is_english() {
        assert_eq!(preset("voice_8f2a1c").unwrap().espeak_voice, "en-us");
    }
}
