//! Designed presets: natural voices that are blends of two to four
//! English Kokoro voice packs (American and British; the first pack's
//! accent is spoken, and at least 2/3 of the weight is of the voice's
//! gender), chosen offline by `bench/design-catalog`
//! (`bench/src/catalog.rs`) so that each is distinct by the speaker
//! encoder from every other natural English voice and intelligible to
//! Whisper tiny.en. The script writes `designed.tsv` (its measurements in
//! the header); this module reads it.
//!
//! Invariant: a designed preset's id is `voice_` + the first 6 hex digits
//! of the SHA-256 of `designed|RECIPE` (the recipe in blend syntax,
//! `af_bella(2)+af_sky(1)`), so the same recipe has the same id on every
//! installation, and the recipe (stored in the table, never edited)
//! renders the same voice forever. A designed preset is offered when all
//! its packs are installed, like the Kokoro presets.

use std::sync::OnceLock;

use sha2::{Digest, Sha256};

use super::catalog::{Gender, Preset};

/// The table `bench/design-catalog` wrote.
pub const TABLE: &str = include_str!("designed.tsv");

/// The words every voice is compared on when the catalog is chosen (and
/// that Whisper checks).
pub const SCREENING_TEXT: &str = "The quick morning train to Bristol was late again, so Maria called her brother from the platform. Can you bring the blue folder and seven pencils to the meeting tomorrow?";
/// Other words, for how alike a voice is to itself.
pub const OTHER_TEXT: &str = "A gentle breeze carried the smell of fresh bread down the narrow street. We should plant the tomatoes before the rain comes back next week.";

/// The header line of [`TABLE`] that gives the same-voice threshold.
const THRESHOLD_LINE: &str = "# Same-voice threshold";

/// The same-voice threshold the catalog was chosen with: the lowest
/// speaker-encoder cosine of an English Kokoro preset with itself on
/// [`OTHER_TEXT`] against [`SCREENING_TEXT`]. Two voices closer than this
/// are not told apart from one voice on two texts. `None` when the table
/// does not say.
pub fn threshold() -> Option<f32> {
    TABLE
        .lines()
        .find(|l| l.starts_with(THRESHOLD_LINE))
        .and_then(|l| l.split_once("): "))
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// One row of the table.
#[derive(Debug, Clone, PartialEq)]
pub struct Designed {
    pub id: String,
    pub name: String,
    /// `en-US` or `en-GB`.
    pub language: &'static str,
    pub gender: Gender,
    /// `low`, `mid` or `high` (terciles of median F0 within the gender).
    pub pitch: Trait,
    /// `even`, `varied` or `lively` (terciles of the F0 spread).
    pub liveliness: Trait,
    /// `unhurried`, `measured` or `brisk` (terciles of syllables per second).
    pub pace: Trait,
    /// What was measured: median F0, its 10th–90th percentile spread in
    /// semitones, syllables per second.
    pub pitch_hz: f64,
    pub spread_st: f64,
    pub syllables_per_second: f64,
    /// The highest encoder cosine to any other natural English voice.
    pub nearest_cosine: f64,
    /// `af_bella(2)+af_sky(1)`: packs and integer weights.
    pub recipe: String,
}

/// One of three levels of a measured trait (lowest first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Trait {
    Low,
    Mid,
    High,
}

/// The words of each trait's levels, lowest first.
pub const PITCH_WORDS: [&str; 3] = ["low", "mid", "high"];
pub const LIVELINESS_WORDS: [&str; 3] = ["even", "varied", "lively"];
pub const PACE_WORDS: [&str; 3] = ["unhurried", "measured", "brisk"];

impl Trait {
    fn parse(s: &str, words: [&str; 3]) -> Option<Self> {
        let i = words.iter().position(|w| *w == s)?;
        Some([Self::Low, Self::Mid, Self::High][i])
    }

    pub fn word(self, words: [&'static str; 3]) -> &'static str {
        words[self as usize]
    }
}

/// The id of a designed preset of `recipe`.
pub fn id_of(recipe: &str) -> String {
    let digest = Sha256::digest(format!("designed|{recipe}").as_bytes());
    format!("voice_{}", hex::encode(&digest[..3]))
}

/// The packs of `recipe` and their integer weights, or why not.
pub fn parse_recipe(recipe: &str) -> Result<Vec<(&str, u32)>, String> {
    recipe
        .split('+')
        .map(|term| {
            let (pack, weight) = term
                .strip_suffix(')')
                .and_then(|t| t.split_once('('))
                .ok_or_else(|| format!("{term:?} is not pack(weight)"))?;
            let weight: u32 = weight
                .parse()
                .ok()
                .filter(|w| *w > 0)
                .ok_or_else(|| format!("{term:?} has no positive integer weight"))?;
            Ok((pack, weight))
        })
        .collect()
}

/// Every row of [`TABLE`], checked once: a row that breaks an invariant
/// is a build that must not ship, so this panics (its test runs in CI).
pub fn rows() -> &'static [Designed] {
    static ROWS: OnceLock<Vec<Designed>> = OnceLock::new();
    ROWS.get_or_init(|| parse(TABLE).unwrap_or_else(|e| panic!("designed.tsv: {e}")))
}

fn parse(table: &str) -> Result<Vec<Designed>, String> {
    let known: Vec<&str> = super::kokoro::PACKS.iter().map(|(p, _, _)| *p).collect();
    let mut out = Vec::new();
    for (n, line) in table.lines().enumerate() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let at = |e: String| format!("line {}: {e}", n + 1);
        let f: Vec<&str> = line.split('\t').collect();
        let [
            id,
            name,
            language,
            gender,
            pitch,
            liveliness,
            pace,
            pitch_hz,
            spread_st,
            sps,
            nearest,
            _wer,
            recipe,
        ] = f.as_slice()
        else {
            return Err(at(format!("{} fields, 13 expected", f.len())));
        };
        if *id != id_of(recipe) {
            return Err(at(format!("id {id} is not the hash of {recipe}")));
        }
        let parts = parse_recipe(recipe).map_err(at)?;
        if !(2..=4).contains(&parts.len()) {
            return Err(at(format!(
                "{recipe} has {} packs, 2 to 4 expected",
                parts.len()
            )));
        }
        let letter = match *language {
            "en-US" => 'a',
            "en-GB" => 'b',
            other => return Err(at(format!("language {other} is not en-US or en-GB"))),
        };
        let gender = Gender::parse(gender).ok_or_else(|| at(format!("gender {gender}")))?;
        // English packs of either accent; the first is of the voice's own
        // (it decides the pronunciation); at least 2/3 of the weight is of
        // the voice's gender.
        let mut own = 0;
        for (pack, weight) in &parts {
            if !known.contains(pack) || !(pack.starts_with('a') || pack.starts_with('b')) {
                return Err(at(format!("{pack} is not a known English pack")));
            }
            if pack.as_bytes().get(1) == Some(&gender.as_str().as_bytes()[0]) {
                own += weight;
            }
        }
        if !parts[0].0.starts_with(letter) {
            return Err(at(format!(
                "{recipe} does not start with a {language} pack"
            )));
        }
        let total: u32 = parts.iter().map(|(_, w)| w).sum();
        if 3 * own < 2 * total {
            return Err(at(format!(
                "{recipe} is not at least 2/3 {} packs",
                gender.as_str()
            )));
        }
        let number = |s: &str| s.parse::<f64>().map_err(|e| at(format!("{s:?}: {e}")));
        let level =
            |s: &str, words| Trait::parse(s, words).ok_or_else(|| at(format!("trait {s:?}")));
        out.push(Designed {
            id: (*id).to_owned(),
            name: (*name).to_owned(),
            language: if letter == 'a' { "en-US" } else { "en-GB" },
            gender,
            pitch: level(pitch, PITCH_WORDS)?,
            liveliness: level(liveliness, LIVELINESS_WORDS)?,
            pace: level(pace, PACE_WORDS)?,
            pitch_hz: number(pitch_hz)?,
            spread_st: number(spread_st)?,
            syllables_per_second: number(sps)?,
            nearest_cosine: number(nearest)?,
            recipe: (*recipe).to_owned(),
        });
    }
    Ok(out)
}

/// The accent of each natural voice's language.
pub const ACCENTS: [(&str, &str); 7] = [
    ("en-US", "American"),
    ("en-GB", "British"),
    ("es", "Spanish"),
    ("fr-FR", "French"),
    ("hi", "Indian"),
    ("it", "Italian"),
    ("pt-BR", "Brazilian"),
];

/// The accent word of a natural voice's language (`American`, `British`).
pub fn accent_of(language: &str) -> Option<&'static str> {
    ACCENTS
        .iter()
        .find(|(l, _)| *l == language)
        .map(|(_, a)| *a)
}

/// The language of designed voices with this accent: `american`, `us`
/// or `en-US`; `british`, `uk`, `gb` or `en-GB` (any case).
pub fn designed_language(accent: &str) -> Option<&'static str> {
    match accent.trim().to_ascii_lowercase().as_str() {
        "american" | "us" | "en-us" => Some("en-US"),
        "british" | "uk" | "gb" | "en-gb" => Some("en-GB"),
        _ => None,
    }
}

/// Words of a description and the trait level each asks for.
const VOCABULARY: &[(&str, usize, Trait)] = &[
    // 0: pitch
    ("low", 0, Trait::Low),
    ("deep", 0, Trait::Low),
    ("deeper", 0, Trait::Low),
    ("bass", 0, Trait::Low),
    ("baritone", 0, Trait::Low),
    ("dark", 0, Trait::Low),
    ("husky", 0, Trait::Low),
    ("mid", 0, Trait::Mid),
    ("medium", 0, Trait::Mid),
    ("middle", 0, Trait::Mid),
    ("high", 0, Trait::High),
    ("higher", 0, Trait::High),
    ("bright", 0, Trait::High),
    ("light", 0, Trait::High),
    ("airy", 0, Trait::High),
    ("young", 0, Trait::High),
    ("youthful", 0, Trait::High),
    // 1: liveliness
    ("even", 1, Trait::Low),
    ("calm", 1, Trait::Low),
    ("flat", 1, Trait::Low),
    ("steady", 1, Trait::Low),
    ("soothing", 1, Trait::Low),
    ("serene", 1, Trait::Low),
    ("composed", 1, Trait::Low),
    ("monotone", 1, Trait::Low),
    ("varied", 1, Trait::Mid),
    ("natural", 1, Trait::Mid),
    ("conversational", 1, Trait::Mid),
    ("lively", 1, Trait::High),
    ("expressive", 1, Trait::High),
    ("animated", 1, Trait::High),
    ("energetic", 1, Trait::High),
    ("dynamic", 1, Trait::High),
    ("cheerful", 1, Trait::High),
    ("upbeat", 1, Trait::High),
    ("enthusiastic", 1, Trait::High),
    // 2: pace
    ("slow", 2, Trait::Low),
    ("unhurried", 2, Trait::Low),
    ("relaxed", 2, Trait::Low),
    ("leisurely", 2, Trait::Low),
    ("deliberate", 2, Trait::Low),
    ("calm", 2, Trait::Low),
    ("measured", 2, Trait::Mid),
    ("moderate", 2, Trait::Mid),
    ("brisk", 2, Trait::High),
    ("fast", 2, Trait::High),
    ("quick", 2, Trait::High),
    ("rapid", 2, Trait::High),
    ("snappy", 2, Trait::High),
    ("energetic", 2, Trait::High),
];

/// The trait levels `description` asks for (pitch, liveliness, pace),
/// from the words of [`VOCABULARY`]; other words are not measured and
/// count for nothing.
pub fn wanted_traits(description: &str) -> [Option<Trait>; 3] {
    let mut wanted = [None; 3];
    for word in description
        .split(|c: char| !c.is_alphanumeric())
        .map(str::to_lowercase)
    {
        for (w, slot, level) in VOCABULARY {
            if *w == word {
                wanted[*slot] = Some(*level);
            }
        }
    }
    wanted
}

/// The designed voice of `language` and `gender` that fits `description`
/// best (the most traits matched; table order among equals), among those
/// `offered` and not `taken`.
pub fn pick<'a>(
    language: &str,
    gender: Gender,
    description: &str,
    offered: impl Fn(&Designed) -> bool,
    taken: impl Fn(&Designed) -> bool,
) -> Option<&'a Designed> {
    let wanted = wanted_traits(description);
    let score = |d: &Designed| {
        [d.pitch, d.liveliness, d.pace]
            .iter()
            .zip(&wanted)
            .filter(|(have, want)| want.is_some_and(|w| w == **have))
            .count()
    };
    let mut best: Option<(&Designed, usize)> = None;
    for d in rows() {
        if d.language != language || d.gender != gender || !offered(d) || taken(d) {
            continue;
        }
        let s = score(d);
        if best.is_none_or(|(_, b)| s > b) {
            best = Some((d, s));
        }
    }
    best.map(|(d, _)| d)
}

impl Designed {
    /// The recipe's packs and their weights, normalised exactly from the
    /// integers of the table (not from the engine's f32 weights).
    pub fn weights(&self) -> Vec<(&str, f64)> {
        let parts = parse_recipe(&self.recipe).unwrap_or_default();
        let total: f64 = parts.iter().map(|(_, w)| f64::from(*w)).sum();
        parts
            .into_iter()
            .map(|(p, w)| (p, f64::from(w) / total))
            .collect()
    }

    /// The traits as words, then the accent: `low, lively, brisk, British`.
    pub fn traits(&self) -> String {
        format!(
            "{}, {}, {}, {}",
            self.pitch.word(PITCH_WORDS),
            self.liveliness.word(LIVELINESS_WORDS),
            self.pace.word(PACE_WORDS),
            accent_of(self.language).unwrap_or_default()
        )
    }

    /// This row as a preset, its voice the blend of `packs` (the Kokoro
    /// presets installed, found by pack name), or `None` when one of its
    /// packs is missing.
    pub fn preset<'a>(&self, packs: impl Fn(&str) -> Option<&'a Preset>) -> Option<Preset> {
        let resolved = super::resolve::resolve_in(&self.recipe, packs).ok()??;
        let members = parse_recipe(&self.recipe).ok()?;
        let total: u32 = members.iter().map(|(_, w)| w).sum();
        let parts = members
            .iter()
            .map(|(p, w)| {
                let name = super::kokoro::PACKS
                    .iter()
                    .find(|(q, _, _)| q == p)
                    .map_or(*p, |(_, n, _)| *n);
                if *w == 1 && total == members.len() as u32 {
                    name.to_owned()
                } else {
                    format!("{w}/{total} {name}")
                }
            })
            .collect::<Vec<_>>()
            .join(" + ");
        Some(Preset {
            id: self.id.clone(),
            name: self.name.clone(),
            language: self.language,
            gender: self.gender,
            description: format!(
                "{}. Designed natural voice: a blend of {parts} (Kokoro-82M).",
                capitalised(&self.traits())
            ),
            voice: resolved.voice,
        })
    }
}

fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

/// The designed presets whose packs are all among `kokoro` (the Kokoro
/// presets found on disk), in table order.
pub fn presets_over(kokoro: &[Preset]) -> Vec<Preset> {
    let by_pack = |name: &str| {
        kokoro.iter().find(|p| {
            p.voice
                .kokoro
                .as_ref()
                .is_some_and(|k| k.packs.len() == 1 && k.packs[0].name == name)
        })
    };
    rows().iter().filter_map(|d| d.preset(by_pack)).collect()
}

/// The row of a designed preset id.
pub fn row(id: &str) -> Option<&'static Designed> {
    static BY_ID: OnceLock<std::collections::HashMap<&'static str, usize>> = OnceLock::new();
    let by_id = BY_ID.get_or_init(|| {
        rows()
            .iter()
            .enumerate()
            .map(|(i, d)| (d.id.as_str(), i))
            .collect()
    });
    by_id.get(id).map(|&i| &rows()[i])
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn the_table_is_well_formed_with_unique_ids_names_and_recipes() {
        let rows = rows();
        assert!(rows.len() >= 300, "{} designed presets", rows.len());
        let ids: HashSet<&str> = rows.iter().map(|d| d.id.as_str()).collect();
        assert_eq!(ids.len(), rows.len(), "an id repeats");
        let recipes: HashSet<&str> = rows.iter().map(|d| d.recipe.as_str()).collect();
        assert_eq!(recipes.len(), rows.len(), "a recipe repeats");
        let names: HashSet<&str> = rows.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names.len(), rows.len(), "a name repeats");
        let kokoro = super::super::kokoro::all_presets();
        for d in rows {
            assert!(
                kokoro.iter().all(|k| k.id != d.id && k.name != d.name),
                "{} collides with a Kokoro preset",
                d.id
            );
        }
    }

    #[test]
    fn every_row_is_a_preset_over_all_packs_and_none_without_them() {
        let kokoro = super::super::kokoro::all_presets();
        let all = presets_over(&kokoro);
        assert_eq!(all.len(), rows().len());
        let first = &all[0];
        let k = first.voice.kokoro.as_ref().unwrap();
        assert!(k.packs.len() >= 2);
        let sum: f32 = k.packs.iter().map(|p| p.weight).sum();
        assert!((sum - 1.0).abs() < 1e-5, "{sum}");
        // Same recipe inline: the same voice (so it renders the same audio).
        let inline = super::super::resolve::resolve_in(&rows()[0].recipe, |n| {
            kokoro
                .iter()
                .find(|p| p.voice.kokoro.as_ref().unwrap().packs[0].name == n || p.id == n)
        })
        .unwrap()
        .unwrap();
        assert_eq!(inline.voice, first.voice);
        // Without one of its packs, a designed preset is not offered.
        let missing = parse_recipe(&rows()[0].recipe).unwrap()[0].0.to_owned();
        let fewer: Vec<Preset> = kokoro
            .into_iter()
            .filter(|p| p.voice.kokoro.as_ref().unwrap().packs[0].name != missing)
            .collect();
        assert!(presets_over(&fewer).iter().all(|p| p.id != rows()[0].id));
    }

    #[test]
    fn the_threshold_is_read_from_the_header() {
        let t = threshold().unwrap();
        assert!((0.8..1.0).contains(&t), "{t}");
        assert!(rows().iter().all(|d| d.nearest_cosine < f64::from(t)));
    }

    #[test]
    fn a_description_asks_for_the_traits_it_names() {
        assert_eq!(
            wanted_traits("A DEEP, calm voice; not in a hurry"),
            [Some(Trait::Low), Some(Trait::Low), Some(Trait::Low)]
        );
        assert_eq!(
            wanted_traits("bright and brisk"),
            [Some(Trait::High), None, Some(Trait::High)]
        );
        assert_eq!(wanted_traits("warm, friendly"), [None, None, None]);
        let lowest = pick("en-GB", Gender::Male, "deep", |_| true, |_| false).unwrap();
        assert_eq!(lowest.pitch, Trait::Low);
        let other = pick(
            "en-GB",
            Gender::Male,
            "deep",
            |_| true,
            |d| d.id == lowest.id,
        )
        .unwrap();
        assert_ne!(other.id, lowest.id);
        assert!(pick("en-GB", Gender::Male, "deep", |_| false, |_| false).is_none());
    }

    #[test]
    fn a_bad_row_is_refused() {
        let good = "af_bella(2)+af_sky(1)";
        let row = |id: &str, recipe: &str, lang: &str, gender: &str| {
            format!("{id}\tAda\t{lang}\t{gender}\tlow\teven\tbrisk\t200\t3\t4\t0.9\t0\t{recipe}\n")
        };
        assert!(parse(&row(&id_of(good), good, "en-US", "female")).is_ok());
        let across = "bf_emma(2)+am_adam(1)";
        assert!(parse(&row(&id_of(across), across, "en-GB", "female")).is_ok());
        assert!(parse(&row("voice_000000", good, "en-US", "female")).is_err());
        assert!(parse(&row(&id_of(good), good, "en-GB", "female")).is_err());
        assert!(parse(&row(&id_of(good), good, "en-US", "male")).is_err());
        let half = "bf_emma(1)+am_adam(1)";
        assert!(parse(&row(&id_of(half), half, "en-GB", "female")).is_err());
        let one = "af_bella(1)";
        assert!(parse(&row(&id_of(one), one, "en-US", "female")).is_err());
        let unknown = "af_bella(1)+af_nobody(1)";
        assert!(parse(&row(&id_of(unknown), unknown, "en-US", "female")).is_err());
        let foreign = "af_bella(1)+ef_dora(1)";
        assert!(parse(&row(&id_of(foreign), foreign, "en-US", "female")).is_err());
        let zero = "af_bella(0)+af_sky(1)";
        assert!(parse(&row(&id_of(zero), zero, "en-US", "female")).is_err());
    }
}
