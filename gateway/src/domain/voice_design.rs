//! A designed voice: `POST /v1/voices` with a JSON body
//! `{"name", "description"?, "design": {"from": [{"voiceId", "weight"}, …]}}`
//! makes a workspace voice of one to four natural (Kokoro) voices of one
//! language, their style vectors mixed by the weights (≥ 0, normalised to
//! sum to 1; a weight of 0 leaves its voice out). With
//! `"design": {"gender", "accent", "description"?}` instead, the recipe is
//! that of the designed preset (`shared::voices::designed`) of that gender
//! and accent whose measured traits best fit the description's words,
//! skipping those the workspace already has. The recipe is stored
//! with the voice, so it never changes: the same recipe renders the same
//! audio as the inline blend `voice(w)+voice(w)` would. Every field is
//! checked here, once; the blend itself by `shared::voices::resolve`, the
//! same rules as an inline blend (known Kokoro voices, one language, no
//! voice twice, at most 4).

use serde::{Deserialize, Serialize};

use shared::http::ApiError;
use shared::voices::{self, EngineVoice, designed};

/// The JSON body of a designed voice.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DesignVoiceRequest {
    /// 1 to 100 characters.
    pub name: String,
    /// At most 500 characters.
    #[serde(default)]
    pub description: Option<String>,
    pub design: Design,
}

/// Either `from` (a recipe) or `gender` and `accent` (and optionally
/// `description`): a designed preset that fits, as a voice of the
/// workspace.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Design {
    /// One to four natural (Kokoro) voices of one language, by id or pack
    /// name, each with its weight.
    #[serde(default)]
    pub from: Option<Vec<DesignPart>>,
    /// `female` or `male` (with `accent`).
    #[serde(default)]
    #[schema(example = "female")]
    pub gender: Option<String>,
    /// `american` or `british` (with `gender`).
    #[serde(default)]
    #[schema(example = "british")]
    pub accent: Option<String>,
    /// Words the voice should fit, at most 500 characters: pitch (`low`,
    /// `deep`, `high`, `bright`, …), liveliness (`calm`, `even`, `lively`,
    /// `expressive`, …) and pace (`slow`, `unhurried`, `brisk`, `fast`, …);
    /// other words are not measured and count for nothing.
    #[serde(default)]
    #[schema(example = "low, calm, unhurried")]
    pub description: Option<String>,
}

impl Design {
    /// Whether this is a described design (gender and accent), not a recipe.
    pub fn is_described(&self) -> bool {
        self.from.is_none()
    }
}

/// One voice of a recipe and its weight.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DesignPart {
    #[schema(example = "af_bella")]
    pub voice_id: String,
    /// At least 0; the weights are normalised to sum to 1.
    #[schema(example = 2.0)]
    pub weight: f64,
}

/// A design as checked: what the voice row keeps.
#[derive(Debug, Clone)]
pub struct Designed {
    pub name: String,
    pub description: Option<String>,
    pub language: String,
    /// The members' gender when they share one.
    pub gender: Option<String>,
    pub engine: EngineVoice,
    /// The recipe by preset id, weights normalised, zero weights left out.
    pub recipe: Vec<DesignPart>,
    /// The designed preset a described design took its recipe from.
    pub preset: Option<String>,
}

const MAX_NAME_CHARS: usize = 100;
const MAX_DESCRIPTION_CHARS: usize = 500;
const MAX_VOICES: usize = 4;

/// Checks `request` (a 422 naming the field at fault for anything wrong);
/// `has` tells whether the workspace already has a voice of these engine
/// parameters (a described design skips those).
pub fn design(
    request: DesignVoiceRequest,
    has: impl Fn(&EngineVoice) -> bool,
) -> Result<Designed, ApiError> {
    let name = request.name.trim().to_owned();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        return Err(ApiError::unprocessable(
            "invalid_name",
            format!("name is required, 1 to {MAX_NAME_CHARS} characters"),
        )
        .with_param("name"));
    }
    let description = request
        .description
        .map(|d| d.trim().to_owned())
        .filter(|d| !d.is_empty());
    if description.as_ref().is_some_and(|d| {
        d.chars().count() > MAX_DESCRIPTION_CHARS || d.chars().any(char::is_control)
    }) {
        return Err(ApiError::unprocessable(
            "invalid_description",
            format!("description is at most {MAX_DESCRIPTION_CHARS} characters, without control characters"),
        )
        .with_param("description"));
    }
    let design = request.design;
    let Some(from) = design.from else {
        return described(name, description, design, has);
    };
    if design.gender.is_some() || design.accent.is_some() || design.description.is_some() {
        return Err(ApiError::unprocessable(
            "invalid_design",
            "a design is either from (voices and weights) or gender and accent (and description), not both",
        )
        .with_param("design"));
    }
    if from.is_empty() || from.len() > MAX_VOICES {
        return Err(ApiError::unprocessable(
            if from.is_empty() {
                "design_required"
            } else {
                "too_many_voices"
            },
            format!(
                "design.from names 1 to {MAX_VOICES} natural voices; it has {}",
                from.len()
            ),
        )
        .with_param("design.from"));
    }
    for (i, part) in from.iter().enumerate() {
        // An id, never blend syntax: the recipe is built from these.
        let id = part.voice_id.trim();
        if id.is_empty()
            || id.len() > 64
            || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            return Err(ApiError::unprocessable(
                "unknown_voice",
                format!(
                    "design.from[{i}].voiceId {} is not a voice id; GET /v1/voices?engine=kokoro lists the natural voices",
                    voices::resolve::shown(id)
                ),
            )
            .with_param(format!("design.from[{i}].voiceId")));
        }
        if !part.weight.is_finite() || part.weight < 0.0 || part.weight > 1e6 {
            return Err(ApiError::unprocessable(
                "invalid_voice_weight",
                format!(
                    "design.from[{i}].weight is {}; a weight is a number from 0 to 1000000",
                    part.weight
                ),
            )
            .with_param(format!("design.from[{i}].weight")));
        }
    }
    // Below a billionth a weight is nothing (and has no decimal form).
    let used: Vec<&DesignPart> = from.iter().filter(|p| p.weight >= 1e-9).collect();
    let total: f64 = used.iter().map(|p| p.weight).sum();
    if used.is_empty() || total <= 0.0 {
        return Err(ApiError::unprocessable(
            "invalid_voice_weight",
            "at least one weight of design.from must be above 0",
        )
        .with_param("design.from"));
    }
    // The same checks and the same normalisation as an inline blend: the
    // recipe is one, so it renders exactly as `voice(w)+voice(w)` would.
    let blend = used
        .iter()
        .map(|p| format!("{}({})", p.voice_id.trim(), decimal(p.weight)))
        .collect::<Vec<_>>()
        .join("+");
    let invalid = |e: voices::resolve::VoiceError| {
        ApiError::unprocessable(e.code(), e.to_string()).with_param("design.from")
    };
    let resolved = voices::resolve(&blend).map_err(invalid)?.ok_or_else(|| {
        ApiError::unprocessable("unknown_voice", "design.from names no voice")
            .with_param("design.from")
    })?;
    let members: Vec<&voices::Preset> = used
        .iter()
        .filter_map(|p| voices::lookup(p.voice_id.trim()))
        .collect();
    if members.len() != used.len() || resolved.voice.kokoro.is_none() {
        return Err(ApiError::unprocessable(
            "voice_not_blendable",
            "a designed voice is made of natural (Kokoro) voices; GET /v1/voices?engine=kokoro lists them",
        )
        .with_param("design.from"));
    }
    let language = members[0].language.to_owned();
    let gender = members
        .iter()
        .all(|m| m.gender == members[0].gender)
        .then(|| members[0].gender.as_str().to_owned());
    let recipe = members
        .iter()
        .zip(&used)
        .map(|(m, p)| DesignPart {
            voice_id: m.id.clone(),
            weight: p.weight / total,
        })
        .collect();
    Ok(Designed {
        name,
        description,
        language,
        gender,
        engine: resolved.voice,
        recipe,
        preset: None,
    })
}

/// The recipe of a designed preset by preset id, its weights exact.
pub fn recipe_of(d: &designed::Designed) -> Vec<DesignPart> {
    d.weights()
        .into_iter()
        .map(|(pack, weight)| DesignPart {
            voice_id: voices::kokoro::voice_id(pack),
            weight,
        })
        .collect()
}

/// A described design: the designed preset that fits (see the module docs).
fn described(
    name: String,
    description: Option<String>,
    design: Design,
    has: impl Fn(&EngineVoice) -> bool,
) -> Result<Designed, ApiError> {
    let (Some(gender), Some(accent)) = (design.gender, design.accent) else {
        return Err(ApiError::unprocessable(
            "design_required",
            "a design names from (voices and weights), or gender and accent (and a description)",
        )
        .with_param("design"));
    };
    let gender = voices::Gender::parse(gender.trim()).ok_or_else(|| {
        ApiError::unprocessable(
            "invalid_gender",
            format!(
                "design.gender {} is not female or male",
                voices::resolve::shown(&gender)
            ),
        )
        .with_param("design.gender")
    })?;
    let language = designed::designed_language(&accent).ok_or_else(|| {
        ApiError::unprocessable(
            "unsupported_accent",
            format!(
                "design.accent {} is not one of the designed voices' accents: american or british",
                voices::resolve::shown(&accent)
            ),
        )
        .with_param("design.accent")
    })?;
    let words = design.description.unwrap_or_default();
    if words.chars().count() > MAX_DESCRIPTION_CHARS || words.chars().any(char::is_control) {
        return Err(ApiError::unprocessable(
            "invalid_design",
            format!("design.description is at most {MAX_DESCRIPTION_CHARS} characters, without control characters"),
        )
        .with_param("design.description"));
    }
    let offered = |d: &designed::Designed| voices::preset(&d.id).is_some();
    let taken = |d: &designed::Designed| voices::preset(&d.id).is_some_and(|p| has(&p.voice));
    let picked = designed::pick(language, gender, &words, offered, taken)
        .and_then(|d| voices::preset(&d.id))
        .ok_or_else(|| {
            ApiError::unprocessable(
                "no_matching_voice",
                format!(
                    "this workspace already has every designed {} {} voice installed here; design one from voices instead",
                    designed::accent_of(language).unwrap_or(language),
                    gender.as_str()
                ),
            )
            .with_param("design")
        })?;
    let recipe = designed::row(&picked.id).map(recipe_of).unwrap_or_default();
    Ok(Designed {
        name,
        description: description.or_else(|| Some(picked.description.clone())),
        language: language.to_owned(),
        gender: Some(gender.as_str().to_owned()),
        engine: picked.voice.clone(),
        recipe,
        preset: Some(picked.id.clone()),
    })
}

/// `w` as a blend weight: a plain decimal of at most 12 fractional digits
/// (`2`, `0.5`, `0.333333333333`).
fn decimal(w: f64) -> String {
    let s = format!("{w:.12}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(from: &[(&str, f64)]) -> DesignVoiceRequest {
        DesignVoiceRequest {
            name: "Narrator".into(),
            description: None,
            design: Design {
                from: Some(
                    from.iter()
                        .map(|&(v, w)| DesignPart {
                            voice_id: v.into(),
                            weight: w,
                        })
                        .collect(),
                ),
                ..Design::default()
            },
        }
    }

    fn code(from: &[(&str, f64)]) -> String {
        design(request(from), |_| false)
            .unwrap_err()
            .code
            .into_owned()
    }

    fn described(gender: &str, accent: &str, words: &str) -> String {
        let request = DesignVoiceRequest {
            name: "Narrator".into(),
            description: None,
            design: Design {
                gender: Some(gender.into()),
                accent: Some(accent.into()),
                description: Some(words.into()),
                ..Design::default()
            },
        };
        design(request, |_| false).unwrap_err().code.into_owned()
    }

    #[test]
    fn every_bad_described_design_is_a_422() {
        assert_eq!(described("robot", "british", ""), "invalid_gender");
        assert_eq!(described("female", "martian", ""), "unsupported_accent");
        assert_eq!(described("female", "british", "a\u{1}b"), "invalid_design");
        assert_eq!(
            described("female", "british", &"x".repeat(501)),
            "invalid_design"
        );
        // The process catalog here has no Kokoro packs: nothing to pick.
        assert_eq!(described("female", "british", "low"), "no_matching_voice");
        let mut both = request(&[("af_bella", 1.0)]);
        both.design.gender = Some("female".into());
        assert_eq!(design(both, |_| false).unwrap_err().code, "invalid_design");
        let empty = DesignVoiceRequest {
            name: "N".into(),
            description: None,
            design: Design::default(),
        };
        assert_eq!(
            design(empty, |_| false).unwrap_err().code,
            "design_required"
        );
    }

    #[test]
    fn weights_become_blend_decimals() {
        assert_eq!(decimal(2.0), "2");
        assert_eq!(decimal(0.5), "0.5");
        assert_eq!(decimal(1.0 / 3.0), "0.333333333333");
        assert_eq!(decimal(1e6), "1000000");
    }

    #[test]
    fn every_bad_design_is_a_422_naming_its_field() {
        assert_eq!(code(&[]), "design_required");
        assert_eq!(
            code(&[("a", 1.0), ("b", 1.0), ("c", 1.0), ("d", 1.0), ("e", 1.0)]),
            "too_many_voices"
        );
        assert_eq!(code(&[("x", -1.0)]), "invalid_voice_weight");
        assert_eq!(code(&[("x", f64::NAN)]), "invalid_voice_weight");
        assert_eq!(code(&[("x", 0.0)]), "invalid_voice_weight");
        let mut long = request(&[("x", 1.0)]);
        long.name = "n".repeat(101);
        assert_eq!(design(long, |_| false).unwrap_err().code, "invalid_name");
        let mut blank = request(&[("x", 1.0)]);
        blank.name = "  ".into();
        assert_eq!(design(blank, |_| false).unwrap_err().code, "invalid_name");
        let mut bad = request(&[("x", 1.0)]);
        bad.description = Some("a\u{0}b".into());
        assert_eq!(
            design(bad, |_| false).unwrap_err().code,
            "invalid_description"
        );
    }
}
