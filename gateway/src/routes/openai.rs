//! `POST /v1/audio/speech`: OpenAI's speech endpoint, so the official
//! `openai` clients work with `base_url` pointed at voiceprod. The request
//! becomes a normal generation (credits reserved in its transaction, a row
//! in `GET /v1/generations`, usage, webhooks); the handler answers with the
//! audio as the worker streams it (`crate::streams`), or, for FLAC and
//! when no chunk comes, waits for the worker to finish it
//! (`crate::completions` wakes it, the row decides) and answers with the
//! stored file.
//!
//! Mapping (documented in docs/openai-speech.md):
//! - `model`: `tts-1`, `tts-1-hd`, `gpt-4o-mini-tts` (and its dated ids)
//!   and our own `voiceprod-tts` all render with the same engine;
//! - `voice`: OpenAI's names map to English Kokoro voices, their namesakes
//!   where Kokoro has one ([`OPENAI_VOICES`]), or, on an installation
//!   without the Kokoro packs, to the English presets they named before;
//!   otherwise a preset id, a Kokoro pack name or blend
//!   (`af_bella(2)+af_sky(1)`), a ready cloned voice id of the workspace,
//!   or a preset name (case-insensitive; natural voices first, then
//!   catalog order); also as `{"id": …}`, OpenAI's custom-voice form;
//! - `response_format`: mp3 (default), opus (Ogg Opus), flac, wav, pcm
//!   (s16le); aac is refused with 400. Audio is rendered at 24 kHz, OpenAI's
//!   rate, so `pcm` reads the way OpenAI clients expect;
//! - `speed`: 0.5 to 2.0 (OpenAI allows 0.25 to 4.0; outside ours is 400);
//! - `instructions` is accepted and ignored; `stream_format` `sse` is 400.
//!
//! Errors keep our envelope, which already has OpenAI's `message`, `type`,
//! `code` and `param`. Once the generation exists, an error answer carries
//! `X-Generation-Id` and `x-should-retry: false` (the header the OpenAI
//! clients obey), so an automatic retry never charges twice: on timeout the
//! answer is 504 `generation_timeout` with a `Location` of the generation,
//! which goes on and can be fetched later.

use actix_web::http::StatusCode;
use actix_web::http::header::{HeaderName, HeaderValue, LOCATION};
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use serde::Deserialize;
use tokio::time::Instant;

use shared::http::{ApiError, ErrorEnvelope};
use shared::voices;

use crate::audio_answer;
use crate::auth::Principal;
use crate::domain::generation_request::CreateGeneration;
use crate::generations::{CREDITS_HEADER, GENERATION_HEADER, is_usable_cloned_voice};
use crate::state::State;

/// Whether the OpenAI clients may retry (they obey it over the status).
const SHOULD_RETRY: &str = "x-should-retry";
/// OpenAI's output rate: `pcm` readers assume it.
pub const SAMPLE_RATE: u32 = 24_000;
/// Models accepted; all render with the same engine.
pub const MODELS: [&str; 5] = [
    "tts-1",
    "tts-1-hd",
    "gpt-4o-mini-tts",
    "gpt-4o-mini-tts-2025-12-15",
    "voiceprod-tts",
];
/// OpenAI's voice names, the Kokoro pack each speaks with, and the preset
/// it falls back to where the Kokoro packs are not installed (the mapping
/// before Kokoro, so such an installation answers as it always did).
pub const OPENAI_VOICES: [(&str, &str, &str); 13] = [
    ("alloy", "af_alloy", "voice_8f2a1c"), // namesake; else Joe (Piper)
    ("ash", "am_michael", "voice_734bbd"), // clear, steady male; else Emil
    ("ballad", "bm_george", "voice_67bc6d"), // British, melodic male; else Carlos
    ("coral", "af_bella", "voice_526f98"), // warm, lively female; else Gaia
    ("echo", "am_echo", "voice_a41d07"),   // namesake; else Oliver
    ("fable", "bm_fable", "voice_3e7147"), // namesake (British); else Aarav
    ("onyx", "am_onyx", "voice_79d07b"),   // namesake (deep male); else Pavel
    ("nova", "af_nova", "voice_3c71e9"),   // namesake; else Harper
    ("sage", "af_sarah", "voice_49e40b"),  // calm, even female; else Priya
    ("shimmer", "af_nicole", "voice_a68be6"), // soft, close female; else Lara
    ("verse", "am_puck", "voice_da70e1"),  // expressive, playful male; else Elias
    ("marin", "af_heart", "voice_c5cfd7"), // OpenAI's best: Kokoro's best (A); else Esme
    ("cedar", "am_fenrir", "voice_211d1f"), // warm, grounded male; else Kai
];

pub fn routes(r: &mut crate::routes::Routes) {
    r.post("/v1/audio/speech", speech);
}

/// OpenAI's `audio.speech.create` body. Fields OpenAI may add later are
/// ignored, as its clients expect of a compatible server.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct SpeechRequest {
    /// `tts-1`, `tts-1-hd`, `gpt-4o-mini-tts`, … (see [`MODELS`]).
    pub model: String,
    /// The text to speak.
    pub input: String,
    /// An OpenAI voice name, a voice id, a Kokoro pack name or blend
    /// (`af_bella(2)+af_sky(1)`), or a preset name.
    pub voice: SpeechVoice,
    /// `mp3` (default), `opus`, `flac`, `wav`, `pcm`; `aac` is refused.
    #[serde(default)]
    pub response_format: Option<String>,
    /// 0.5 to 2.0 here; default 1.
    #[serde(default)]
    pub speed: Option<f64>,
    /// Accepted and ignored (the engine takes no style prompt).
    #[serde(default)]
    pub instructions: Option<String>,
    /// `audio` (default); `sse` is refused.
    #[serde(default)]
    pub stream_format: Option<String>,
}

/// `"alloy"` or OpenAI's custom-voice form `{"id": "voice_…"}`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum SpeechVoice {
    Name(String),
    Object { id: String },
}

impl SpeechVoice {
    fn as_str(&self) -> &str {
        match self {
            Self::Name(s) | Self::Object { id: s } => s,
        }
    }
}

/// The preset id an OpenAI voice name or a preset name stands for; any
/// other string is returned as is (a voice id, a Kokoro pack name or
/// blend: the generation's checks resolve it).
pub fn resolve_voice(voice: &str) -> String {
    openai_voice(voice, voices::lookup).unwrap_or_else(|| {
        if voices::lookup(voice).is_some() || voices::resolve::is_blend(voice) {
            return voice.to_owned();
        }
        // Natural voices first, as `GET /v1/voices` lists them.
        let named = |natural: bool| {
            voices::presets().iter().find(|p| {
                p.voice.engine().is_natural() == natural
                    && p.name.to_lowercase() == voice.to_lowercase()
            })
        };
        named(true)
            .or_else(|| named(false))
            .map_or_else(|| voice.to_owned(), |p| p.id.clone())
    })
}

/// The preset id of OpenAI voice `name` (any case): its Kokoro voice if
/// `lookup` finds the pack, else its fallback.
fn openai_voice<'a>(
    name: &str,
    lookup: impl Fn(&str) -> Option<&'a voices::Preset>,
) -> Option<String> {
    let lower = name.to_ascii_lowercase();
    let (_, pack, fallback) = OPENAI_VOICES.iter().find(|(n, _, _)| *n == lower)?;
    Some(lookup(pack).map_or_else(|| (*fallback).to_owned(), |p| p.id.clone()))
}

/// Our format for OpenAI's `response_format`.
fn format_of(response_format: Option<&str>) -> Result<&'static str, ApiError> {
    match response_format.unwrap_or("mp3") {
        "mp3" => Ok("mp3"),
        "opus" => Ok("ogg"),
        "flac" => Ok("flac"),
        "wav" => Ok("wav"),
        "pcm" => Ok("pcm"),
        other => Err(ApiError::bad_request(
            "unsupported_response_format",
            format!("response_format {other:?} is not supported; use mp3, opus, flac, wav or pcm"),
        )
        .with_param("response_format")),
    }
}

impl SpeechRequest {
    /// The equivalent `POST /v1/generations` body.
    fn into_generation(self) -> Result<CreateGeneration, ApiError> {
        if !MODELS.contains(&self.model.as_str()) {
            return Err(ApiError::bad_request(
                "invalid_model",
                format!(
                    "model {:?} is not available; use one of {}",
                    self.model,
                    MODELS.join(", ")
                ),
            )
            .with_param("model"));
        }
        let format = format_of(self.response_format.as_deref())?;
        if let Some(stream) = self.stream_format.as_deref()
            && stream != "audio"
        {
            return Err(ApiError::bad_request(
                "unsupported_stream_format",
                format!("stream_format {stream:?} is not supported; use audio"),
            )
            .with_param("stream_format"));
        }
        let speed = self.speed.unwrap_or(1.0);
        if !(0.5..=2.0).contains(&speed) {
            return Err(ApiError::bad_request(
                "invalid_speed",
                format!("speed {speed} is outside the 0.5 to 2.0 voiceprod renders"),
            )
            .with_param("speed"));
        }
        Ok(CreateGeneration {
            voice_id: resolve_voice(self.voice.as_str()),
            text: self.input,
            format: Some(format.to_owned()),
            text_type: None,
            sample_rate: Some(SAMPLE_RATE),
            speed: Some(speed as f32),
            metadata: None,
        })
    }
}

/// OpenAI-compatible speech: an ordinary generation (charged, listed,
/// webhooks fire) whose answer is the audio itself, once the worker is done.
#[utoipa::path(
    post,
    path = "/v1/audio/speech",
    tag = "generations",
    operation_id = "createSpeech",
    request_body = SpeechRequest,
    responses(
        (status = 200, description = "The audio, 24 kHz, in `response_format`, streamed as it is rendered (chunked; `flac` whole)", content(
            (crate::openapi::Binary = "audio/mpeg"),
            (crate::openapi::Binary = "audio/ogg"),
            (crate::openapi::Binary = "audio/flac"),
            (crate::openapi::Binary = "audio/wav"),
            (crate::openapi::Binary = "audio/L16"),
        ), headers(
            ("X-Generation-Id" = String, description = "The generation behind this answer"),
            ("X-Credits-Charged" = i64, description = "The credits charged"),
        )),
        (status = 400, description = "Malformed body, unknown model, response_format (`aac`), stream_format, speed outside 0.5–2.0", body = ErrorEnvelope),
        (status = 402, description = "Not enough credits left in this period, or over this key's limit", body = ErrorEnvelope),
        (status = 403, description = "The key lacks generations:write or the plan lacks API access", body = ErrorEnvelope),
        (status = 422, description = "Empty or too long input, control characters, unknown voice (`unknown_voice`), a Kokoro blend that is malformed or not blendable (`invalid_voice_blend`, `invalid_voice_weight`, `too_many_voices`, `duplicate_voice`, `mixed_voice_languages`, `voice_not_blendable`)", body = ErrorEnvelope),
        (status = 429, description = "Rate limited, or too many generations processing", body = ErrorEnvelope,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 502, description = "The generation failed (`generation_failed`); its credits are refunded", body = ErrorEnvelope),
        (status = 503, description = "The job queue is down or the system is busy; nothing was charged", body = ErrorEnvelope,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 504, description = "Not finished within `gateway.speech_timeout_ms` (`generation_timeout`); it goes on and is charged once: fetch it from `Location`", body = ErrorEnvelope,
            headers(("Location" = String, description = "`/v1/generations/{id}`"))),
    ),
    security(("apiKey" = ["generations:write"]))
)]
async fn speech(
    req: HttpRequest,
    state: web::Data<State>,
    principal: Principal,
    body: web::Json<SpeechRequest>,
) -> Result<HttpResponse, ApiError> {
    let started = Instant::now();
    principal.require("generations:write")?;
    let create = body.into_inner().into_generation()?;
    let cloned = is_usable_cloned_voice(&state, principal.workspace_id, &create.voice_id).await?;
    let valid = create.validate_with(&principal.plan, cloned).map_err(|e| {
        // Name OpenAI's parameters, not ours.
        let param = match e.param.as_deref() {
            Some("voiceId") => Some("voice"),
            Some("text") => Some("input"),
            Some("format") => Some("response_format"),
            _ => None,
        };
        match param {
            Some(p) => e.with_param(p),
            None => e,
        }
    })?;
    let (id, credits, answer) =
        audio_answer::accept_and_answer(&req, &state, &principal, valid, None, started).await?;
    let mut response = answer.unwrap_or_else(|e| {
        let mut r = e.error_response();
        // Charged (or refunded by the worker): an automatic retry would
        // create another generation, so tell the OpenAI clients not to.
        r.headers_mut().insert(
            HeaderName::from_static(SHOULD_RETRY),
            HeaderValue::from_static("false"),
        );
        if e.status == StatusCode::GATEWAY_TIMEOUT
            && let Ok(v) = HeaderValue::from_str(&format!("/v1/generations/{id}"))
        {
            r.headers_mut().insert(LOCATION, v);
        }
        r
    });
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&id.to_string()) {
        headers.insert(HeaderName::from_static(GENERATION_HEADER), v);
    }
    headers.insert(HeaderName::from_static(CREDITS_HEADER), credits.into());
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_the_kokoro_packs_every_openai_voice_is_its_former_english_preset() {
        // This process's catalog was built without a Kokoro directory.
        for (name, _, id) in OPENAI_VOICES {
            let preset = voices::preset(id).unwrap_or_else(|| panic!("{name} → {id} is no preset"));
            assert!(preset.language.starts_with("en"), "{name} → {id}");
            assert_eq!(resolve_voice(name), id);
            assert_eq!(resolve_voice(&name.to_uppercase()), id);
        }
    }

    #[test]
    fn with_the_kokoro_packs_every_openai_voice_is_an_english_kokoro_voice() {
        let kokoro = voices::kokoro::all_presets();
        let lookup = |v: &str| {
            kokoro.iter().find(|p| {
                p.voice
                    .kokoro
                    .as_ref()
                    .is_some_and(|k| k.packs[0].name == v)
            })
        };
        let mut seen = std::collections::HashSet::new();
        for (name, pack, _) in OPENAI_VOICES {
            let id = openai_voice(name, lookup).unwrap();
            let preset = kokoro.iter().find(|p| p.id == id).unwrap();
            assert!(preset.language.starts_with("en"), "{name} → {pack}");
            assert!(seen.insert(pack), "{pack} twice");
        }
        let by = |name: &str| {
            let id = openai_voice(name, lookup).unwrap();
            kokoro.iter().find(|p| p.id == id).unwrap().name.clone()
        };
        // The namesakes.
        for (openai, kokoro_name) in [
            ("alloy", "Alloy"),
            ("echo", "Echo"),
            ("fable", "Fable"),
            ("nova", "Nova"),
            ("onyx", "Onyx"),
        ] {
            assert_eq!(by(openai), kokoro_name);
            assert_eq!(by(&openai.to_uppercase()), kokoro_name);
        }
        assert_eq!(openai_voice("af_nova", lookup), None);
    }

    #[test]
    fn voices_resolve_by_id_and_by_name_and_pass_through_otherwise() {
        assert_eq!(resolve_voice("voice_3c71e9"), "voice_3c71e9");
        assert_eq!(resolve_voice("harper"), "voice_3c71e9");
        assert_eq!(resolve_voice("voice_nope"), "voice_nope");
        assert_eq!(
            resolve_voice("af_bella(2)+af_sky(1)"),
            "af_bella(2)+af_sky(1)"
        );
    }

    #[test]
    fn formats_map_and_aac_is_refused() {
        assert_eq!(format_of(None).unwrap(), "mp3");
        assert_eq!(format_of(Some("opus")).unwrap(), "ogg");
        let e = format_of(Some("aac")).unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert_eq!(e.param.as_deref(), Some("response_format"));
    }
}
