//! Kokoro-82M voices: the 41 voice packs of `kokoro-js` 1.2.1 whose
//! language espeak-ng phonemises the way misaki does (American and British
//! English, Spanish, French, Hindi, Italian, Brazilian Portuguese), each a
//! preset when its pack `voices/NAME.bin` is in `kokoro.dir`.
//!
//! Invariant: a preset's id is `voice_` + the first 6 hex digits of the
//! SHA-256 of `kokoro|NAME`, so the same files give the same ids on every
//! installation; the pack name (`af_heart`) is an alias of that id.
//!
//! Left out: the Japanese (`j*`) and Mandarin (`z*`) packs. Kokoro was
//! trained on misaki's own G2P for those languages (pyopenjtalk, pypinyin
//! and jieba), which espeak-ng's IPA does not reproduce; a request for one
//! is `unknown_voice` with that reason.

use std::path::Path;

use sha2::{Digest, Sha256};

use super::catalog::{Gender, Preset};
use super::{EngineVoice, KokoroPack};

/// The size of every pack: 510 style vectors of 256 float32.
pub const PACK_BYTES: u64 = 510 * 256 * 4;

/// A language Kokoro speaks through espeak-ng: the pack names' first
/// letter, the BCP 47 tag, the espeak-ng voice that phonemises it, and the
/// English name.
struct Language {
    letter: u8,
    tag: &'static str,
    espeak: &'static str,
    name: &'static str,
}

const LANGUAGES: [Language; 7] = [
    Language {
        letter: b'a',
        tag: "en-US",
        espeak: "en-us",
        name: "American English",
    },
    Language {
        letter: b'b',
        tag: "en-GB",
        espeak: "en-gb",
        name: "British English",
    },
    Language {
        letter: b'e',
        tag: "es",
        espeak: "es",
        name: "Spanish",
    },
    Language {
        letter: b'f',
        tag: "fr-FR",
        espeak: "fr-fr",
        name: "French",
    },
    Language {
        letter: b'h',
        tag: "hi",
        espeak: "hi",
        name: "Hindi",
    },
    Language {
        letter: b'i',
        tag: "it",
        espeak: "it",
        name: "Italian",
    },
    Language {
        letter: b'p',
        tag: "pt-BR",
        espeak: "pt-br",
        name: "Brazilian Portuguese",
    },
];

/// The packs that become presets: pack name, human name and, for English,
/// the overall grade `kokoro-js` gives it. Within a language and gender,
/// best graded first (the order `GET /v1/voices` lists them).
pub const PACKS: [(&str, &str, Option<&str>); 41] = [
    ("af_heart", "Heart", Some("A")),
    ("af_bella", "Bella", Some("A-")),
    ("af_nicole", "Nicole", Some("B-")),
    ("af_aoede", "Aoede", Some("C+")),
    ("af_kore", "Kore", Some("C+")),
    ("af_sarah", "Sarah", Some("C+")),
    ("af_alloy", "Alloy", Some("C")),
    ("af_nova", "Nova", Some("C")),
    ("af_sky", "Sky", Some("C-")),
    ("af_jessica", "Jessica", Some("D")),
    ("af_river", "River", Some("D")),
    ("am_fenrir", "Fenrir", Some("C+")),
    ("am_michael", "Michael", Some("C+")),
    ("am_puck", "Puck", Some("C+")),
    ("am_echo", "Echo", Some("D")),
    ("am_eric", "Eric", Some("D")),
    ("am_liam", "Liam", Some("D")),
    ("am_onyx", "Onyx", Some("D")),
    ("am_santa", "Santa", Some("D-")),
    ("am_adam", "Adam", Some("F+")),
    ("bf_emma", "Emma", Some("B-")),
    ("bf_isabella", "Isabella", Some("C")),
    ("bf_alice", "Alice", Some("D")),
    ("bf_lily", "Lily", Some("D")),
    ("bm_fable", "Fable", Some("C")),
    ("bm_george", "George", Some("C")),
    ("bm_lewis", "Lewis", Some("D+")),
    ("bm_daniel", "Daniel", Some("D")),
    ("ef_dora", "Dora", None),
    ("em_alex", "Alex", None),
    ("em_santa", "Santa", None),
    ("ff_siwis", "Siwis", None),
    ("hf_alpha", "Alpha", None),
    ("hf_beta", "Beta", None),
    ("hm_omega", "Omega", None),
    ("hm_psi", "Psi", None),
    ("if_sara", "Sara", None),
    ("im_nicola", "Nicola", None),
    ("pf_dora", "Dora", None),
    ("pm_alex", "Alex", None),
    ("pm_santa", "Santa", None),
];

/// The `kokoro-js` packs deliberately not offered (see the module docs).
pub const LEFT_OUT: [&str; 13] = [
    "jf_alpha",
    "jf_gongitsune",
    "jf_nezumi",
    "jf_tebukuro",
    "jm_kumo",
    "zf_xiaobei",
    "zf_xiaoni",
    "zf_xiaoxiao",
    "zf_xiaoyi",
    "zm_yunjian",
    "zm_yunxi",
    "zm_yunxia",
    "zm_yunyang",
];

/// Why a left-out pack is not a voice here, for the error message.
pub fn left_out_reason(name: &str) -> Option<&'static str> {
    if !LEFT_OUT.contains(&name) {
        return None;
    }
    Some(if name.starts_with('j') {
        "Kokoro's Japanese voices need misaki's Japanese G2P, which voiceprod does not have"
    } else {
        "Kokoro's Mandarin voices need misaki's Chinese G2P, which voiceprod does not have"
    })
}

/// The stable id of pack `name`.
pub fn voice_id(name: &str) -> String {
    let digest = Sha256::digest(format!("kokoro|{name}").as_bytes());
    format!("voice_{}", hex::encode(&digest[..3]))
}

fn language_of(name: &str) -> Option<&'static Language> {
    let letter = *name.as_bytes().first()?;
    LANGUAGES.iter().find(|l| l.letter == letter)
}

/// The engine parameters of one pack of weight 1.
fn engine_voice(name: &str, language: &Language) -> EngineVoice {
    EngineVoice::kokoro(
        language.espeak,
        vec![KokoroPack {
            name: name.to_owned(),
            weight: 1.0,
        }],
    )
}

/// The preset of `PACKS` entry `(name, human, grade)`.
fn preset_of(name: &str, human: &str, grade: Option<&str>) -> Option<Preset> {
    let language = language_of(name)?;
    let gender = match name.as_bytes().get(1) {
        Some(b'f') => Gender::Female,
        Some(b'm') => Gender::Male,
        _ => return None,
    };
    let graded = grade.map_or_else(String::new, |g| format!("; its authors grade it {g}"));
    Some(Preset {
        id: voice_id(name),
        name: human.to_owned(),
        language: language.tag,
        gender,
        description: format!(
            "Natural {} {} voice (Kokoro-82M {name}{graded}).",
            language.name,
            gender.as_str()
        ),
        voice: engine_voice(name, language),
    })
}

/// Every preset of [`PACKS`], whether or not its file is installed.
pub fn all_presets() -> Vec<Preset> {
    PACKS
        .iter()
        .filter_map(|&(name, human, grade)| preset_of(name, human, grade))
        .collect()
}

/// The presets whose pack is installed in `dir` (`dir/voices/NAME.bin`,
/// [`PACK_BYTES`] long), in [`PACKS`] order. A pack of another size is
/// skipped with a warning (a truncated download would fail every job); a
/// missing directory has no voices.
pub fn scan(dir: &Path) -> Vec<Preset> {
    let voices = dir.join("voices");
    let mut out = Vec::new();
    for &(name, human, grade) in &PACKS {
        let path = voices.join(format!("{name}.bin"));
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        if !meta.is_file() || meta.len() != PACK_BYTES {
            tracing::warn!(
                path = %path.display(),
                bytes = meta.len(),
                expected = PACK_BYTES,
                "skipping a Kokoro voice pack of the wrong size; run deploy/fetch-models"
            );
            continue;
        }
        out.extend(preset_of(name, human, grade));
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn there_are_41_presets_in_7_languages_with_stable_unique_ids() {
        let all = all_presets();
        assert_eq!(all.len(), 41);
        let ids: HashSet<&str> = all.iter().map(|p| p.id.as_str()).collect();
        assert_eq!(ids.len(), 41, "an id collides");
        let languages: HashSet<&str> = all.iter().map(|p| p.language).collect();
        assert_eq!(languages.len(), 7, "{languages:?}");
        // Pinned: if this changes, every stored voiceId of Kokoro breaks.
        assert_eq!(voice_id("af_heart"), "voice_44977c");
        let nova = all.iter().find(|p| p.name == "Nova").unwrap();
        assert_eq!(nova.id, voice_id("af_nova"));
        assert_eq!(nova.language, "en-US");
        assert_eq!(nova.gender, Gender::Female);
        assert_eq!(nova.voice.espeak_voice, "en-us");
        assert_eq!(nova.voice.engine(), super::super::EngineKind::Kokoro);
        assert_eq!(
            nova.voice.kokoro.as_ref().unwrap().packs,
            vec![KokoroPack {
                name: "af_nova".to_owned(),
                weight: 1.0
            }]
        );
        let george = all.iter().find(|p| p.name == "George").unwrap();
        assert_eq!(
            (
                george.language,
                george.gender,
                george.voice.espeak_voice.as_str()
            ),
            ("en-GB", Gender::Male, "en-gb")
        );
        let counts = |tag: &str| all.iter().filter(|p| p.language == tag).count();
        assert_eq!(
            [
                counts("en-US"),
                counts("en-GB"),
                counts("es"),
                counts("fr-FR"),
                counts("hi"),
                counts("it"),
                counts("pt-BR")
            ],
            [20, 8, 3, 1, 4, 2, 3]
        );
    }

    #[test]
    fn japanese_and_mandarin_packs_are_left_out_with_a_reason() {
        for name in LEFT_OUT {
            assert!(!PACKS.iter().any(|(p, _, _)| *p == name));
            assert!(left_out_reason(name).is_some());
        }
        assert!(left_out_reason("af_heart").is_none());
    }

    #[test]
    fn scan_lists_only_installed_packs_of_the_right_size() {
        let dir = std::env::temp_dir().join(format!("kokoro-scan-{}", uuid::Uuid::new_v4()));
        let voices = dir.join("voices");
        std::fs::create_dir_all(&voices).unwrap();
        let pack = |name: &str, len: u64| {
            std::fs::File::create(voices.join(format!("{name}.bin")))
                .unwrap()
                .set_len(len)
                .unwrap();
        };
        pack("bm_george", PACK_BYTES);
        pack("af_heart", PACK_BYTES);
        pack("af_bella", PACK_BYTES - 4);
        pack("jf_alpha", PACK_BYTES);
        pack("xx_unknown", PACK_BYTES);
        let found: Vec<String> = scan(&dir).into_iter().map(|p| p.name).collect();
        assert_eq!(found, ["Heart", "George"]);
        assert!(scan(&dir.join("missing")).is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
