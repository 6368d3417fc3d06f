//! `POST /v1/generations` bodies: the JSON as sent, and the checks that
//! turn it into a `ValidGeneration` (or the first error, in docs/api.md's
//! envelope, with the offending `param`).

use serde::Deserialize;

use shared::credits;
use shared::formats::AudioFormat;
use shared::http::ApiError;
use shared::settings::Plan;
use shared::voices;

pub const MAX_TEXT_CHARACTERS: u64 = 100_000;
pub const MAX_METADATA_BYTES: usize = 4096;
pub const SAMPLE_RATES: [u32; 6] = [8000, 16000, 22050, 24000, 44100, 48000];

/// The body as sent. Unknown fields are refused (400) rather than ignored,
/// so a typo such as `voice_id` is not silently dropped.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = json!({"text": "Welcome to Voice Production AI. Let's build something that speaks.", "voiceId": "voice_8f2a1c", "format": "wav"}))]
pub struct CreateGeneration {
    /// 1 to 100,000 characters (plain text, or SSML with `textType: ssml`).
    pub text: String,
    /// A preset voice id, a Kokoro pack name (`af_nova`), a Kokoro blend of
    /// up to 4 voices of one language (`af_bella(2)+af_sky(1)`, pack names or
    /// ids; the weight defaults to 1), or a ready cloned voice of this
    /// workspace. A name or a blend is stored as its canonical form (the
    /// preset id; the blend with pack names).
    #[schema(example = "voice_8f2a1c")]
    pub voice_id: String,
    /// `wav`, `mp3` (default), `ogg` (Opus), `flac` or `pcm` (s16le), as the plan allows.
    #[serde(default)]
    #[schema(example = "wav")]
    pub format: Option<String>,
    /// `text` (default) or `ssml`. SSML may use only `speak`, `p`, `s`,
    /// `break` (`time` up to 10s, `strength`), `prosody` (`rate` 50%–200%
    /// or a keyword, `pitch`, `range`, `volume`), `emphasis`, `say-as`,
    /// `sub`, `phoneme` and `mark`, with no DOCTYPE and no processing
    /// instruction; anything else, `<audio>` included, is 422
    /// `invalid_ssml` naming it. Breaks adding up to more than 0.25 s per
    /// character of the text (at least 30 s) are 422 `audio_too_long`.
    #[serde(default)]
    pub text_type: Option<String>,
    /// One of 8000, 16000, 22050, 24000, 44100, 48000 Hz.
    #[serde(default)]
    pub sample_rate: Option<u32>,
    /// 0.5 to 2.0 (default 1.0).
    #[serde(default)]
    pub speed: Option<f32>,
    /// A JSON object of at most 4 KiB, echoed in the webhooks.
    #[serde(default)]
    pub metadata: Option<serde_json::Value>,
}

#[derive(Debug, Clone)]
pub struct ValidGeneration {
    pub text: String,
    pub voice_id: String,
    pub format: AudioFormat,
    pub text_type: &'static str,
    pub sample_rate: Option<u32>,
    pub speed: f32,
    pub metadata: Option<serde_json::Value>,
    pub characters: u64,
    pub credits: u64,
}

impl CreateGeneration {
    /// Validation when the voice can only be a preset.
    pub fn validate(self, plan: &Plan) -> Result<ValidGeneration, ApiError> {
        self.validate_with(plan, false)
    }

    /// `cloned_voice`: `voice_id` is a ready cloned voice of the caller's
    /// workspace (the handler looked it up); otherwise it must be a preset.
    pub fn validate_with(
        self,
        plan: &Plan,
        cloned_voice: bool,
    ) -> Result<ValidGeneration, ApiError> {
        let format = match self.format.as_deref() {
            None => AudioFormat::Mp3,
            Some(f) => AudioFormat::parse(f).ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_format",
                    format!("unknown format {f:?}; use one of wav, mp3, ogg, flac, pcm"),
                )
                .with_param("format")
            })?,
        };
        let text_type = match self.text_type.as_deref() {
            None | Some("text") => "text",
            Some("ssml") => "ssml",
            Some(other) => {
                return Err(ApiError::bad_request(
                    "invalid_text_type",
                    format!("textType {other:?} is not text or ssml"),
                )
                .with_param("textType"));
            }
        };
        let speed = self.speed.unwrap_or(1.0);
        if !(0.5..=2.0).contains(&speed) || !speed.is_finite() {
            return Err(ApiError::bad_request(
                "invalid_speed",
                format!("speed {speed} is outside 0.5 to 2.0"),
            )
            .with_param("speed"));
        }
        if let Some(rate) = self.sample_rate
            && !SAMPLE_RATES.contains(&rate)
        {
            return Err(ApiError::bad_request(
                "invalid_sample_rate",
                format!("sampleRate {rate} is not one of {SAMPLE_RATES:?}"),
            )
            .with_param("sampleRate"));
        }
        if let Some(metadata) = &self.metadata {
            if !metadata.is_object() {
                return Err(ApiError::bad_request(
                    "invalid_metadata",
                    "metadata must be a JSON object",
                )
                .with_param("metadata"));
            }
            let encoded = serde_json::to_vec(metadata).unwrap_or_default();
            // PostgreSQL's jsonb cannot hold NUL: refused here, before it
            // could fail the group commit the request joins.
            if encoded.windows(6).any(|w| w == b"\\u0000") {
                return Err(ApiError::bad_request(
                    "invalid_metadata",
                    "metadata holds a NUL character (\\u0000), which is not accepted",
                )
                .with_param("metadata"));
            }
            let size = if encoded.is_empty() {
                usize::MAX
            } else {
                encoded.len()
            };
            if size > MAX_METADATA_BYTES {
                return Err(ApiError::bad_request(
                    "metadata_too_large",
                    format!("metadata is {size} bytes; the limit is {MAX_METADATA_BYTES}"),
                )
                .with_param("metadata"));
            }
        }
        let characters = credits::characters(&self.text);
        if self.text.trim().is_empty() {
            return Err(ApiError::unprocessable("text_empty", "text is empty").with_param("text"));
        }
        if characters > MAX_TEXT_CHARACTERS {
            return Err(ApiError::unprocessable(
                "text_too_long",
                format!("text has {characters} characters; the limit is {MAX_TEXT_CHARACTERS}"),
            )
            .with_param("text"));
        }
        if self
            .text
            .chars()
            .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
        {
            return Err(ApiError::unprocessable(
                "text_invalid",
                "text contains control characters",
            )
            .with_param("text"));
        }
        if text_type == "ssml" {
            check_ssml(&self.text, characters)?;
        }
        let voice_id = if cloned_voice {
            self.voice_id
        } else {
            resolve_voice(&self.voice_id)?
        };
        if !plan.formats.iter().any(|f| f == format.as_str()) {
            return Err(ApiError::forbidden(
                "format_not_in_plan",
                format!("the plan does not include {format}"),
            )
            .with_param("format"));
        }
        if let Some(rate) = self.sample_rate
            && !format.supports_sample_rate(rate)
        {
            return Err(ApiError::unprocessable(
                "unsupported_sample_rate",
                format!(
                    "{format} cannot be encoded at {rate} Hz; Opus (ogg) takes 8000, 12000, 16000, 24000 or 48000"
                ),
            )
            .with_param("sampleRate"));
        }
        Ok(ValidGeneration {
            characters,
            credits: credits::credits_for_characters(characters),
            text: self.text,
            voice_id,
            format,
            text_type,
            sample_rate: self.sample_rate,
            speed,
            metadata: self.metadata,
        })
    }
}

/// The id to store for a catalog voice (`voices::resolve`: a preset id, a
/// Kokoro pack name, a Kokoro blend), or the 422 that says why there is none.
fn resolve_voice(voice: &str) -> Result<String, ApiError> {
    match voices::resolve(voice) {
        Ok(Some(resolved)) => Ok(resolved.id),
        Ok(None) => Err(ApiError::unprocessable(
            "unknown_voice",
            format!(
                "no voice {} in this workspace; GET /v1/voices lists them",
                voices::resolve::shown(voice)
            ),
        )
        .with_param("voiceId")),
        Err(e) => Err(ApiError::unprocessable(e.code(), e.to_string()).with_param("voiceId")),
    }
}

/// SSML is parsed and checked against the allow-list of `shared::ssml`
/// (422 `invalid_ssml` naming the element or attribute), and its breaks
/// together may not ask for more silence than the text may buy
/// (`shared::credits::max_pause_ms`, 422 `audio_too_long`).
fn check_ssml(text: &str, characters: u64) -> Result<(), ApiError> {
    shared::ssml::parse_within_ceiling(text, characters)
        .map(drop)
        .map_err(|r| ApiError::unprocessable(r.code, r.message).with_param("text"))
}
