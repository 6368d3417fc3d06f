//! The preset catalog: 300+ voices over espeak-ng's languages, built once
//! from [`LANGUAGES`] and a fixed list of personae (an espeak-ng variant
//! with its own pitch, pitch range and rate), so two presets of one
//! language never sound alike.
//!
//! Invariant: a preset's id is `voice_` + the first 6 hex digits of the
//! SHA-256 of its engine parameters, so it is the same on every build and
//! changes only if the voice itself changes. The six voices of the
//! foundation keep their hand-picked ids. Append to the tables; never
//! reorder or edit an entry (that would change or reuse an id).

use std::collections::HashMap;
use std::path::Path;
use std::sync::OnceLock;

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::EngineVoice;
use super::languages::LANGUAGES;
use super::neural::DEFAULT_MODEL;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Gender {
    Female,
    Male,
    Neutral,
}

impl Gender {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Female => "female",
            Self::Male => "male",
            Self::Neutral => "neutral",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Female, Self::Male, Self::Neutral]
            .into_iter()
            .find(|g| g.as_str() == s)
    }
}

/// A preset voice and how the engine renders it.
#[derive(Debug, Clone, PartialEq)]
pub struct Preset {
    pub id: String,
    pub name: String,
    /// BCP 47 language tag.
    pub language: &'static str,
    pub gender: Gender,
    pub description: String,
    pub voice: EngineVoice,
}

/// The id of the default English voice.
pub const DEFAULT_VOICE_ID: &str = "voice_8f2a1c";

/// A way of speaking: variant, base pitch, pitch range, words per minute.
struct Persona {
    variant: &'static str,
    gender: Gender,
    pitch: u8,
    range: u8,
    rate: u16,
    character: &'static str,
}

const fn persona(
    variant: &'static str,
    gender: Gender,
    pitch: u8,
    range: u8,
    rate: u16,
    character: &'static str,
) -> Persona {
    Persona {
        variant,
        gender,
        pitch,
        range,
        rate,
        character,
    }
}

/// Every language gets the first two and one of the next two (by parity).
const BASE: [Persona; 4] = [
    persona("f2", Gender::Female, 62, 55, 170, "warm"),
    persona("m3", Gender::Male, 44, 45, 165, "steady"),
    persona("f4", Gender::Female, 72, 65, 188, "bright, brisk"),
    persona("m1", Gender::Male, 36, 40, 182, "deep, brisk"),
];

/// The most used languages get these as well.
const EXTRA: [Persona; 3] = [
    persona("Annie", Gender::Female, 54, 35, 155, "gentle, unhurried"),
    persona("Andy", Gender::Male, 52, 70, 195, "lively, expressive"),
    persona("klatt", Gender::Neutral, 50, 30, 160, "synthetic, even"),
];

const MAJOR: &[&str] = &[
    "en-US", "en-GB", "fr-FR", "de", "es", "es-419", "it", "pt", "pt-BR", "ru", "ja", "cmn", "hi",
    "ar", "nl", "pl", "ko", "tr", "sv", "id", "vi", "uk", "cs", "el",
];

const FEMALE_NAMES: &[&str] = &[
    "Ada", "Amara", "Anika", "Aria", "Beatriz", "Chiara", "Dana", "Elif", "Elena", "Emma", "Freya",
    "Greta", "Hana", "Ines", "Ingrid", "Isla", "Jana", "Kaia", "Lara", "Leila", "Lina", "Maya",
    "Mei", "Mila", "Nadia", "Nina", "Noor", "Olga", "Paula", "Priya", "Rosa", "Sara", "Selin",
    "Sofia", "Tara", "Uma", "Vera", "Yara", "Zara", "Zoe", "Aiko", "Brigid", "Carmen", "Daria",
    "Esme", "Fatima", "Gaia", "Ilse", "Juno", "Kira",
];

const MALE_NAMES: &[&str] = &[
    "Aarav", "Adrian", "Ali", "Anton", "Bruno", "Carlos", "Dario", "Emil", "Erik", "Felix",
    "Goran", "Hugo", "Ivan", "Jonas", "Kai", "Kenji", "Leo", "Luca", "Malik", "Marco", "Mateo",
    "Milan", "Nico", "Omar", "Oskar", "Pavel", "Rafael", "Ravi", "Sami", "Sven", "Tariq", "Teo",
    "Tomas", "Viktor", "Yusuf", "Zane", "Arjun", "Bastian", "Cyrus", "Diego", "Elias", "Farid",
    "Gideon", "Hamid", "Idris", "Jakob", "Kofi", "Lars", "Mikael", "Noah",
];

const NEUTRAL_NAMES: &[&str] = &[
    "Robin", "Sasha", "Alex", "Kim", "Noa", "Eden", "Ari", "Quinn", "Remy", "Sky", "Jules", "Rio",
];

/// The foundation's hand-made presets, ids unchanged.
fn legacy() -> Vec<Preset> {
    let p = |id: &str,
             name: &str,
             language: &'static str,
             gender: Gender,
             description: &str,
             voice: &str,
             variant: Option<&str>,
             pitch: u8,
             rate: u16| Preset {
        id: id.to_owned(),
        name: name.to_owned(),
        language,
        gender,
        description: description.to_owned(),
        voice: EngineVoice {
            espeak_voice: voice.to_owned(),
            variant: variant.map(str::to_owned),
            pitch,
            range: 50,
            rate,
            piper: None,
            kokoro: None,
        },
    };
    let mut out = vec![default_voice()];
    out.extend([
        p(
            "voice_3c71e9",
            "Harper",
            "en-US",
            Gender::Female,
            "Bright American English.",
            "en-us",
            Some("f3"),
            60,
            170,
        ),
        p(
            "voice_a41d07",
            "Oliver",
            "en-GB",
            Gender::Male,
            "Received Pronunciation, unhurried.",
            // The library finds voices by file name: en-GB's file is `en`.
            "en",
            None,
            45,
            160,
        ),
        p(
            "voice_5be2f4",
            "Camille",
            "fr-FR",
            Gender::Female,
            "Standard French.",
            "fr",
            Some("f2"),
            55,
            170,
        ),
        p(
            "voice_d90a63",
            "Lukas",
            "de-DE",
            Gender::Male,
            "Standard German.",
            "de",
            None,
            48,
            165,
        ),
        p(
            "voice_6f18b2",
            "Lucía",
            "es-ES",
            Gender::Female,
            "Castilian Spanish.",
            "es",
            Some("f1"),
            58,
            175,
        ),
    ]);
    // The espeak-ng voice that was the default before the neural one: still
    // a preset, under the id its parameters give.
    let mut avery = p(
        "",
        "Avery",
        "en-US",
        Gender::Male,
        "Clear American English (espeak-ng en-us, 175 wpm); the default before the neural voice.",
        "en-us",
        None,
        50,
        175,
    );
    avery.id = stable_id(&avery.voice);
    out.push(avery);
    out
}

/// `voice_8f2a1c`: the neural en-US voice (Piper `en_US-joe-medium`),
/// known without reading its files so that every service agrees on it.
fn default_voice() -> Preset {
    Preset {
        id: DEFAULT_VOICE_ID.to_owned(),
        name: "Joe".to_owned(),
        language: "en-US",
        gender: Gender::Male,
        description:
            "Natural American English, neural (Piper en_US-joe-medium); the default voice."
                .to_owned(),
        voice: EngineVoice {
            espeak_voice: "en-us".to_owned(),
            variant: None,
            pitch: 50,
            range: 50,
            rate: 175,
            piper: Some(super::PiperVoice {
                model: DEFAULT_MODEL.to_owned(),
                speaker: None,
            }),
            kokoro: None,
        },
    }
}

/// `voice_` + 6 hex digits of the SHA-256 of the engine parameters.
fn stable_id(v: &EngineVoice) -> String {
    let key = format!(
        "{}+{}|{}|{}|{}",
        v.espeak_voice,
        v.variant.as_deref().unwrap_or(""),
        v.pitch,
        v.range,
        v.rate
    );
    let digest = Sha256::digest(key.as_bytes());
    format!("voice_{}", hex::encode(&digest[..3]))
}

fn build() -> Vec<Preset> {
    let mut all = legacy();
    for (index, &(espeak_voice, language, language_name)) in LANGUAGES.iter().enumerate() {
        let third = if index % 2 == 0 { &BASE[2] } else { &BASE[3] };
        let mut personae: Vec<&Persona> = vec![&BASE[0], &BASE[1], third];
        if MAJOR.contains(&language) {
            personae.extend(EXTRA.iter());
        }
        for (slot, p) in personae.into_iter().enumerate() {
            let names = match p.gender {
                Gender::Female => FEMALE_NAMES,
                Gender::Male => MALE_NAMES,
                Gender::Neutral => NEUTRAL_NAMES,
            };
            let name = names[(index * 7 + slot * 11) % names.len()];
            let voice = EngineVoice {
                espeak_voice: espeak_voice.to_owned(),
                variant: Some(p.variant.to_owned()),
                pitch: p.pitch,
                range: p.range,
                rate: p.rate,
                piper: None,
                kokoro: None,
            };
            all.push(Preset {
                id: stable_id(&voice),
                name: name.to_owned(),
                language,
                gender: p.gender,
                description: format!(
                    "{language_name}: a {} {} voice (espeak-ng {espeak_voice}, variant {}, {} wpm).",
                    p.character,
                    p.gender.as_str(),
                    p.variant,
                    p.rate
                ),
                voice,
            });
        }
    }
    all
}

struct Catalog {
    presets: Vec<Preset>,
    by_id: HashMap<String, usize>,
    /// Kokoro pack names (`af_nova`), aliases of their presets' ids.
    by_alias: HashMap<String, usize>,
}

impl Catalog {
    fn new(extra: Vec<Preset>) -> Self {
        let mut presets = build();
        for p in extra {
            if !presets.iter().any(|q| q.id == p.id) {
                presets.push(p);
            }
        }
        let by_id = presets
            .iter()
            .enumerate()
            .map(|(i, p)| (p.id.clone(), i))
            .collect();
        let by_alias = presets
            .iter()
            .enumerate()
            .filter_map(|(i, p)| match &p.voice.kokoro {
                Some(k) if k.packs.len() == 1 => Some((k.packs[0].name.clone(), i)),
                _ => None,
            })
            .collect();
        Self {
            presets,
            by_id,
            by_alias,
        }
    }
}

static CATALOG: OnceLock<Catalog> = OnceLock::new();

fn catalog() -> &'static Catalog {
    CATALOG.get_or_init(|| Catalog::new(Vec::new()))
}

/// How many voices each directory gave to the catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Loaded {
    pub piper: usize,
    pub kokoro: usize,
    /// Designed presets (`designed`): those whose packs are all installed.
    pub designed: usize,
}

/// Adds the Piper voices of `dir` (see `neural`) to the catalog, once per
/// process and before the catalog is first read. Returns how many voices
/// the directory gave, or `None` if the catalog was already built (then by
/// an earlier call or a read). Services call [`load_model_dirs`].
pub fn load_voices_dir(dir: &Path) -> Option<usize> {
    load_model_dirs(dir, None).map(|l| l.piper)
}

/// Adds the Piper voices of `piper_voices`, the Kokoro voices whose
/// packs are in `kokoro` (`kokoro.dir`; see `kokoro`) and the designed
/// presets over those packs (see `designed`) to the catalog, once
/// per process and before the catalog is first read, and logs what it
/// found: the gateway and the worker call it at start-up, so both know the
/// same voices. `None` if the catalog was already built.
pub fn load_model_dirs(piper_voices: &Path, kokoro: Option<&Path>) -> Option<Loaded> {
    let mut found = None;
    CATALOG.get_or_init(|| {
        let mut extra = super::neural::scan(piper_voices);
        let piper = extra.len();
        let packs = kokoro.map(super::kokoro::scan).unwrap_or_default();
        let designed = super::designed::presets_over(&packs);
        found = Some(Loaded {
            piper,
            kokoro: packs.len(),
            designed: designed.len(),
        });
        extra.extend(packs);
        extra.extend(designed);
        Catalog::new(extra)
    });
    if let Some(l) = found {
        tracing::info!(
            piper = l.piper,
            piper_dir = %piper_voices.display(),
            kokoro = l.kokoro,
            designed = l.designed,
            kokoro_dir = %kokoro.map(|k| k.display().to_string()).unwrap_or_default(),
            "neural voices loaded"
        );
        if kokoro.is_some() && l.kokoro == 0 {
            tracing::info!(
                "no Kokoro voice packs found: the Kokoro presets are not offered (deploy/fetch-models installs them)"
            );
        }
    }
    found
}

/// Every preset, in catalog order: the foundation's, the espeak-ng
/// personae, then the voices of the model directories (Piper, Kokoro,
/// designed). `GET /v1/voices`
/// lists the natural ones first, each group in this order.
pub fn presets() -> &'static [Preset] {
    &catalog().presets
}

/// The preset with this id.
pub fn preset(id: &str) -> Option<&'static Preset> {
    let c = catalog();
    c.by_id.get(id).map(|&i| &c.presets[i])
}

/// The preset with this id, or the Kokoro preset of this pack name.
pub fn lookup(voice: &str) -> Option<&'static Preset> {
    let c = catalog();
    c.by_id
        .get(voice)
        .or_else(|| c.by_alias.get(voice))
        .map(|&i| &c.presets[i])
}

/// The position of a preset in [`presets`].
pub fn preset_index(id: &str) -> Option<usize> {
    catalog().by_id.get(id).copied()
}

/// The espeak-ng voice of a catalog language (BCP 47, case-insensitive).
pub fn espeak_voice_for(language: &str) -> Option<(&'static str, &'static str)> {
    LANGUAGES
        .iter()
        .find(|(_, tag, _)| tag.eq_ignore_ascii_case(language))
        .map(|&(voice, tag, _)| (voice, tag))
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn there_are_at_least_300_presets_with_unique_well_formed_ids() {
        assert!(presets().len() >= 300, "{}", presets().len());
        let ids: HashSet<&str> = presets().iter().map(|p| p.id.as_str()).collect();
        assert_eq!(ids.len(), presets().len(), "an id collides");
        for id in ids {
            let hex = id.strip_prefix("voice_").unwrap();
            assert_eq!(hex.len(), 6);
            assert!(hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')));
        }
    }

    #[test]
    fn ids_are_stable_across_builds() {
        // Pinned: if these change, every customer's stored voiceId breaks.
        let default = preset(DEFAULT_VOICE_ID).unwrap();
        assert_eq!(default.voice.espeak_voice, "en-us");
        assert_eq!(
            default.voice.piper.as_ref().unwrap().model,
            "en_US-joe-medium"
        );
        let first_generated = &presets()[7];
        assert_eq!(first_generated.language, "af");
        assert_eq!(first_generated.id, stable_id(&first_generated.voice));
        assert_eq!(first_generated.id, "voice_def615");
    }

    #[test]
    fn presets_of_one_language_sound_different() {
        let mut seen = HashSet::new();
        for p in presets() {
            let v = &p.voice;
            assert!(
                seen.insert((
                    p.language,
                    v.variant.clone(),
                    v.pitch,
                    v.rate,
                    v.piper.clone(),
                    format!("{:?}", v.kokoro)
                )),
                "{} duplicates another voice of {}",
                p.id,
                p.language
            );
        }
    }

    #[test]
    fn kokoro_presets_join_the_catalog_with_unique_ids_and_their_pack_names_as_aliases() {
        let kokoro = super::super::kokoro::all_presets();
        let c = Catalog::new(kokoro.clone());
        assert_eq!(
            c.presets.len(),
            presets().len() + kokoro.len(),
            "an id collides"
        );
        assert_eq!(c.by_id.len(), c.presets.len());
        assert_eq!(c.by_alias.len(), 41);
        let nova = &c.presets[c.by_alias["af_nova"]];
        assert_eq!(nova.name, "Nova");
        assert_eq!(c.by_id[&nova.id], c.by_alias["af_nova"]);
        // Without the Kokoro files (the process catalog here), no alias.
        assert!(lookup("af_nova").is_none());
        assert_eq!(lookup(DEFAULT_VOICE_ID).unwrap().id, DEFAULT_VOICE_ID);
    }

    #[test]
    fn designed_presets_join_the_catalog_after_the_kokoro_ones_without_a_collision() {
        let kokoro = super::super::kokoro::all_presets();
        let designed = super::super::designed::presets_over(&kokoro);
        assert!(designed.len() >= 300, "{}", designed.len());
        let mut extra = kokoro.clone();
        extra.extend(designed.clone());
        let c = Catalog::new(extra);
        assert_eq!(
            c.presets.len(),
            presets().len() + kokoro.len() + designed.len(),
            "an id collides"
        );
        // A designed preset is a blend: no pack name is its alias.
        assert_eq!(c.by_alias.len(), kokoro.len());
        assert_eq!(c.presets.last().unwrap().id, designed.last().unwrap().id);
    }

    #[test]
    fn every_language_has_a_female_and_a_male_voice() {
        for (_, tag, _) in LANGUAGES {
            let of: Vec<&Preset> = presets().iter().filter(|p| p.language == *tag).collect();
            assert!(of.iter().any(|p| p.gender == Gender::Female), "{tag}");
            assert!(of.iter().any(|p| p.gender == Gender::Male), "{tag}");
        }
    }
}
