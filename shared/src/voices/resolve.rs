//! From the voice string of a request (`voiceId`, OpenAI's `voice`) to what
//! the engine renders: a preset id, a Kokoro pack name (`af_nova`, an
//! alias of its preset), or a Kokoro blend written inline the way
//! Kokoro-FastAPI does, `af_bella(2)+af_sky(1)`.
//!
//! The gateway calls [`resolve`] to refuse a bad voice before anything is
//! charged, and stores [`Resolved::id`]; the worker calls it again on that
//! id. A cloned voice is not the catalog's: for a plain name that is no
//! preset the answer is `Ok(None)` and the caller looks further.
//!
//! Blend grammar (ASCII spaces allowed around `+`, `(` and `)`):
//!
//! ```text
//! blend  = term *3( "+" term )            ; 1 to 4 voices
//! term   = name [ "(" weight ")" ]        ; weight 1 when absent
//! name   = 1*64( a-z / A-Z / 0-9 / "_" )  ; a pack name or a preset id
//! weight = 1*12DIGIT [ "." 1*12DIGIT ]    ; positive; no sign, no exponent
//! ```
//!
//! Every voice of a blend is a Kokoro voice of one language (one espeak-ng
//! voice phonemises it: the first voice's), none twice; the weights are
//! normalised to sum 1. American and British English count as one
//! language here: `bf_emma+af_bella` speaks British English with a timbre
//! of both.
//! The stored form of a blend is canonical: pack names, the weights as
//! given (`af_bella(2)+af_sky(1)`), so resolving it again gives exactly the
//! same voice. A blend of one voice is that voice's id. Subtraction
//! (Kokoro-FastAPI's `-`) is not supported.

use super::catalog::Preset;
use super::{EngineVoice, KokoroPack, KokoroVoice};

/// The longest voice string looked at (longer is refused unread).
pub const MAX_VOICE_BYTES: usize = 256;
/// Voices in one blend at most.
pub const MAX_BLEND_VOICES: usize = 4;
const MAX_NAME_BYTES: usize = 64;
const MAX_WEIGHT_DIGITS: usize = 12;

/// A catalog voice: the id to store and the engine parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    /// A preset id, or the canonical form of a blend.
    pub id: String,
    pub voice: EngineVoice,
}

/// Why a voice string names no voice. [`VoiceError::code`] is the API's
/// stable error code (all are 422 with `param` the voice field).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum VoiceError {
    #[error("{0}")]
    Unknown(String),
    #[error("{0}")]
    Malformed(String),
    #[error("the weight {weight} of {voice} is not a positive decimal number such as 2 or 0.5")]
    Weight { voice: String, weight: String },
    #[error("a blend has at most {MAX_BLEND_VOICES} voices; this one has {0}")]
    TooMany(usize),
    #[error("{0} appears twice in the blend; give it one weight instead")]
    Duplicate(String),
    #[error("a blend's voices share one language; {0} is {1} and {2} is {3}")]
    MixedLanguages(String, &'static str, String, &'static str),
    #[error("{0} is not a Kokoro voice; only Kokoro voices can be blended")]
    NotBlendable(String),
}

impl VoiceError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unknown(_) => "unknown_voice",
            Self::Malformed(_) => "invalid_voice_blend",
            Self::Weight { .. } => "invalid_voice_weight",
            Self::TooMany(_) => "too_many_voices",
            Self::Duplicate(_) => "duplicate_voice",
            Self::MixedLanguages(..) => "mixed_voice_languages",
            Self::NotBlendable(_) => "voice_not_blendable",
        }
    }
}

/// `s` for a message: quoted, and cut short if long (it came from a client).
pub fn shown(s: &str) -> String {
    const MAX: usize = 40;
    match s.char_indices().nth(MAX) {
        None => format!("{s:?}"),
        Some((end, _)) => format!("{:?}…", &s[..end]),
    }
}

/// Whether `voice` is written as a blend (and is not a plain name).
pub fn is_blend(voice: &str) -> bool {
    voice.contains(['+', '(', ')'])
}

/// Resolves `voice` against the catalog (see the module docs).
pub fn resolve(voice: &str) -> Result<Option<Resolved>, VoiceError> {
    resolve_in(voice, super::catalog::lookup)
}

/// [`resolve`] against the presets `lookup` finds by id or alias.
pub fn resolve_in<'a>(
    voice: &str,
    lookup: impl Fn(&str) -> Option<&'a Preset>,
) -> Result<Option<Resolved>, VoiceError> {
    if !is_blend(voice) {
        return Ok(lookup(voice).map(|p| Resolved {
            id: p.id.clone(),
            voice: p.voice.clone(),
        }));
    }
    if voice.len() > MAX_VOICE_BYTES {
        return Err(VoiceError::Malformed(format!(
            "a voice blend is at most {MAX_VOICE_BYTES} bytes; this one has {}",
            voice.len()
        )));
    }
    let terms: Vec<&str> = voice.split('+').map(trim).collect();
    if terms.iter().any(|t| t.is_empty()) {
        return Err(VoiceError::Malformed(format!(
            "the blend {} has an empty part; write voices joined by +, such as af_bella(2)+af_sky(1)",
            shown(voice)
        )));
    }
    if terms.len() > MAX_BLEND_VOICES {
        return Err(VoiceError::TooMany(terms.len()));
    }
    let parsed = terms
        .iter()
        .map(|t| parse_term(t))
        .collect::<Result<Vec<_>, _>>()?;
    let mut members: Vec<(&'a Preset, &str, f64)> = Vec::with_capacity(parsed.len());
    for (name, weight) in parsed {
        let preset = match lookup(name) {
            Some(p) => p,
            None if super::cloned::is_cloned_id(name) => {
                return Err(VoiceError::NotBlendable(shown(name)));
            }
            None => return Err(unknown_in_blend(name)),
        };
        let pack = match &preset.voice.kokoro {
            Some(k) if k.packs.len() == 1 => k.packs[0].name.as_str(),
            _ => return Err(VoiceError::NotBlendable(shown(name))),
        };
        if members.iter().any(|(p, _, _)| p.id == preset.id) {
            return Err(VoiceError::Duplicate(shown(name)));
        }
        if let Some((first, first_name, _)) = members.first()
            && first.language != preset.language
            && !(is_english(first.language) && is_english(preset.language))
        {
            return Err(VoiceError::MixedLanguages(
                shown(first_name),
                first.language,
                shown(name),
                preset.language,
            ));
        }
        members.push((preset, pack, weight));
    }
    if let [(only, _, _)] = members.as_slice() {
        return Ok(Some(Resolved {
            id: only.id.clone(),
            voice: only.voice.clone(),
        }));
    }
    let total: f64 = members.iter().map(|(_, _, w)| w).sum();
    let first = members[0].0;
    let id = members
        .iter()
        .map(|(_, pack, w)| format!("{pack}({w})"))
        .collect::<Vec<_>>()
        .join("+");
    Ok(Some(Resolved {
        id,
        voice: EngineVoice {
            kokoro: Some(KokoroVoice {
                packs: members
                    .iter()
                    .map(|(_, pack, w)| KokoroPack {
                        name: (*pack).to_owned(),
                        weight: (w / total) as f32,
                    })
                    .collect(),
            }),
            ..first.voice.clone()
        },
    }))
}

/// American and British English packs blend: the first voice's accent is
/// spoken (its espeak-ng voice phonemises the text).
fn is_english(language: &str) -> bool {
    matches!(language, "en-US" | "en-GB")
}

fn trim(s: &str) -> &str {
    s.trim_matches(' ')
}

fn unknown_in_blend(name: &str) -> VoiceError {
    let why = super::kokoro::left_out_reason(name).map_or_else(
        || "GET /v1/voices?engine=kokoro lists the voices a blend can use".to_owned(),
        str::to_owned,
    );
    VoiceError::Unknown(format!("the blend names no voice {}: {why}", shown(name)))
}

/// `name` or `name(weight)`.
fn parse_term(term: &str) -> Result<(&str, f64), VoiceError> {
    let (name, weight) = match term.split_once('(') {
        None => (term, None),
        Some((name, rest)) => {
            let inner = rest.strip_suffix(')').ok_or_else(|| {
                VoiceError::Malformed(format!(
                    "{} opens a parenthesis it does not close at its end",
                    shown(term)
                ))
            })?;
            if inner.contains(['(', ')']) {
                return Err(VoiceError::Malformed(format!(
                    "{} has nested parentheses; a weight is a number, such as af_bella(2)",
                    shown(term)
                )));
            }
            (trim(name), Some(trim(inner)))
        }
    };
    if name.contains(')') {
        return Err(VoiceError::Malformed(format!(
            "{} closes a parenthesis it did not open",
            shown(term)
        )));
    }
    if name.is_empty()
        || name.len() > MAX_NAME_BYTES
        || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return Err(VoiceError::Malformed(format!(
            "{} is not a voice name (letters, digits and _, such as af_bella or voice_8f2a1c)",
            shown(name)
        )));
    }
    let weight = match weight {
        None => 1.0,
        Some(w) => parse_weight(w).ok_or_else(|| VoiceError::Weight {
            voice: shown(name),
            weight: shown(w),
        })?,
    };
    Ok((name, weight))
}

/// A positive decimal number without sign or exponent (so never NaN or
/// infinite): `2`, `0.5`, `10.25`.
fn parse_weight(w: &str) -> Option<f64> {
    let (int, frac) = match w.split_once('.') {
        None => (w, None),
        Some((i, f)) => (i, Some(f)),
    };
    let digits = |s: &str| {
        !s.is_empty() && s.len() <= MAX_WEIGHT_DIGITS && s.bytes().all(|b| b.is_ascii_digit())
    };
    if !digits(int) || frac.is_some_and(|f| !digits(f)) {
        return None;
    }
    // Below 10^12, so the canonical form (`{w}`) has 12 digits at most too.
    w.parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v > 0.0 && *v < 1e12)
}

#[cfg(test)]
mod tests {
    use super::super::catalog::Gender;
    use super::super::kokoro;
    use super::*;

    fn catalog() -> Vec<Preset> {
        let mut all = kokoro::all_presets();
        all.push(Preset {
            id: "voice_8f2a1c".to_owned(),
            name: "Joe".to_owned(),
            language: "en-US",
            gender: Gender::Male,
            description: String::new(),
            voice: EngineVoice {
                espeak_voice: "en-us".to_owned(),
                variant: None,
                pitch: 50,
                range: 50,
                rate: 175,
                piper: Some(super::super::PiperVoice {
                    model: "en_US-joe-medium".to_owned(),
                    speaker: None,
                }),
                kokoro: None,
            },
        });
        all
    }

    fn run(voice: &str) -> Result<Option<Resolved>, VoiceError> {
        let all = catalog();
        resolve_in(voice, |v| {
            all.iter().find(|p| {
                p.id == v
                    || p.voice
                        .kokoro
                        .as_ref()
                        .is_some_and(|k| k.packs[0].name == v)
            })
        })
    }

    fn code(voice: &str) -> &'static str {
        run(voice).unwrap_err().code()
    }

    fn packs(r: &Resolved) -> Vec<(String, f32)> {
        r.voice
            .kokoro
            .as_ref()
            .unwrap()
            .packs
            .iter()
            .map(|p| (p.name.clone(), p.weight))
            .collect()
    }

    #[test]
    fn a_pack_name_is_an_alias_of_its_preset_and_other_names_are_left_to_the_caller() {
        let r = run("af_nova").unwrap().unwrap();
        assert_eq!(r.id, kokoro::voice_id("af_nova"));
        assert_eq!(run(&r.id).unwrap().unwrap(), r);
        assert_eq!(run("voice_8f2a1c").unwrap().unwrap().id, "voice_8f2a1c");
        assert_eq!(run("voice_0123456789abcdef0123456789abcdef").unwrap(), None);
        assert_eq!(run(&"x".repeat(100_000)).unwrap(), None);
    }

    #[test]
    fn a_blend_is_normalised_canonical_and_resolves_again_to_the_same_voice() {
        let bella = kokoro::voice_id("af_bella");
        let r = run(&format!(" af_sky (1) + {bella}(2) ")).unwrap().unwrap();
        assert_eq!(r.id, "af_sky(1)+af_bella(2)");
        assert_eq!(
            packs(&r),
            [
                ("af_sky".to_owned(), 1.0 / 3.0),
                ("af_bella".to_owned(), 2.0 / 3.0)
            ]
        );
        assert_eq!(r.voice.espeak_voice, "en-us");
        assert_eq!(run(&r.id).unwrap().unwrap(), r);
        let unweighted = run("af_heart+af_sky+am_adam+af_nova").unwrap().unwrap();
        assert!(packs(&unweighted).iter().all(|(_, w)| *w == 0.25));
        let tiny = run("bf_emma(0.000000000001)+bm_george(999999999999)")
            .unwrap()
            .unwrap();
        assert_eq!(run(&tiny.id).unwrap().unwrap(), tiny);
        assert!(packs(&tiny)[0].1 > 0.0);
        // One voice with a weight is just that voice.
        assert_eq!(
            run("af_bella(3)").unwrap().unwrap().id,
            kokoro::voice_id("af_bella")
        );
    }

    #[test]
    fn every_bad_blend_has_its_own_code() {
        for bad in [
            "af_bella+",
            "+af_bella",
            "af_bella++af_sky",
            "af_bella(2",
            "af_bella((2))+af_sky",
            "af_bella(2)x+af_sky",
            "af_bella)+af_sky",
            "af_bélla+af_sky",
            "af_bella+af sky",
            "(2)+af_sky",
            "af_bella(+1)+af_sky",
            &format!("{}+af_sky", "a".repeat(300)),
        ] {
            assert_eq!(code(bad), "invalid_voice_blend", "{bad}");
        }
        for bad in [
            "af_bella(0)+af_sky",
            "af_bella(0.0)+af_sky",
            "af_bella(NaN)+af_sky",
            "af_bella(inf)+af_sky",
            "af_bella(1e999)+af_sky",
            "af_bella(-1)+af_sky",
            "af_bella(.5)+af_sky",
            "af_bella(5.)+af_sky",
            "af_bella()+af_sky",
            "af_bella(1.2.3)+af_sky",
            "af_bella(9999999999999)+af_sky",
            "af_bella(999999999999.999999999999)+af_sky",
        ] {
            assert_eq!(code(bad), "invalid_voice_weight", "{bad}");
        }
        assert_eq!(
            code("af_heart+af_sky+am_adam+af_nova+af_bella"),
            "too_many_voices"
        );
        assert_eq!(code("af_bella+af_sky+af_bella"), "duplicate_voice");
        assert_eq!(
            code(&format!("af_bella+{}", kokoro::voice_id("af_bella"))),
            "duplicate_voice"
        );
        assert_eq!(code("af_bella+ef_dora"), "mixed_voice_languages");
        assert_eq!(code("bf_emma+ef_dora"), "mixed_voice_languages");
        // American and British English blend; the first voice's accent is spoken.
        let british = run("bf_emma(2)+af_bella").unwrap().unwrap();
        assert_eq!(british.voice.espeak_voice, "en-gb");
        assert_eq!(british.id, "bf_emma(2)+af_bella(1)");
        let american = run("af_bella+bf_emma").unwrap().unwrap();
        assert_eq!(american.voice.espeak_voice, "en-us");
        assert_eq!(code("af_bella+voice_8f2a1c"), "voice_not_blendable");
        assert_eq!(code("voice_8f2a1c(1)"), "voice_not_blendable");
        assert_eq!(
            code("af_bella+voice_0123456789abcdef0123456789abcdef"),
            "voice_not_blendable"
        );
        assert_eq!(code("af_bella+af_nobody"), "unknown_voice");
        let ja = run("af_bella+jf_alpha").unwrap_err().to_string();
        assert!(ja.contains("Japanese"), "{ja}");
    }

    #[test]
    fn messages_never_echo_a_long_input() {
        let long = format!("af_bella({})+af_sky", "9".repeat(200));
        let message = run(&long).unwrap_err().to_string();
        assert!(message.len() < 200, "{message}");
        assert_eq!(shown("abc"), "\"abc\"");
        assert!(shown(&"é".repeat(100)).ends_with('…'));
    }
}
