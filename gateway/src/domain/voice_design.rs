//! A designed voice: `POST /v1/voices` with a JSON body
//! `{"name", "description"?, "design": {"from": [{"voiceId", "weight"}, …]}}`
//! makes a workspace voice of one to four natural (Kokoro) voices of one
//! language, their style vectors mixed by the weights (≥ 0, normalised to
//! sum to 1; a weight of 0 leaves its voice out). The recipe is stored
//! with the voice, so it never changes: the same recipe renders the same
//! audio as the inline blend `voice(w)+voice(w)` would. Every field is
//! checked here, once; the blend itself by `shared::voices::resolve`, the
//! same rules as an inline blend (known Kokoro voices, one language, no
//! voice twice, at most 4).

use serde::{Deserialize, Serialize};

use shared::http::ApiError;
use shared::voices::{self, EngineVoice};

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

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Design {
    /// One to four natural (Kokoro) voices of one language, by id or pack
    /// name, each with its weight.
    pub from: Vec<DesignPart>,
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
}

const MAX_NAME_CHARS: usize = 100;
const MAX_DESCRIPTION_CHARS: usize = 500;
const MAX_VOICES: usize = 4;

/// Checks `request` (a 422 naming the field at fault for anything wrong).
pub fn design(request: DesignVoiceRequest) -> Result<Designed, ApiError> {
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
    let from = request.design.from;
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
                from: from
                    .iter()
                    .map(|&(v, w)| DesignPart {
                        voice_id: v.into(),
                        weight: w,
                    })
                    .collect(),
            },
        }
    }

    fn code(from: &[(&str, f64)]) -> String {
        design(request(from)).unwrap_err().code.into_owned()
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
        assert_eq!(design(long).unwrap_err().code, "invalid_name");
        let mut blank = request(&[("x", 1.0)]);
        blank.name = "  ".into();
        assert_eq!(design(blank).unwrap_err().code, "invalid_name");
        let mut bad = request(&[("x", 1.0)]);
        bad.description = Some("a\u{0}b".into());
        assert_eq!(design(bad).unwrap_err().code, "invalid_description");
    }
}
