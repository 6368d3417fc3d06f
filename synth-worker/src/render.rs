//! From a generation row to stored audio: validate what the engine cannot
//! (voice, format, text type, SSML, sample rate), render on the pool,
//! encode, and put the file at its `audio_key`.
//!
//! Every failure is classified once, here: [`JobError::Permanent`] (this
//! input can never succeed: fail the generation, refund) or
//! [`JobError::Transient`] (infrastructure: retry the job).
//!
//! Sample rate: the engine renders at its native rate (22,050 Hz). A
//! generation asking for another rate fails with `unsupported_sample_rate`
//! rather than getting audio resampled by a low-quality shortcut.

use object_store::ObjectStoreExt;
use shared::formats::AudioFormat;
use shared::models::Generation;
use shared::storage::audio_key;
use shared::voices;

use crate::context::WorkerCtx;
use crate::engine::{EngineError, EngineRequest, RATE_MAX, RATE_MIN};
use crate::{encode, ssml};

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The generation can never succeed as asked; `code` is API-stable.
    #[error("{code}: {message}")]
    Permanent { code: &'static str, message: String },
    /// Something we depend on failed; the same job may succeed later.
    #[error(transparent)]
    Transient(#[from] anyhow::Error),
}

impl JobError {
    fn permanent(code: &'static str, message: impl Into<String>) -> Self {
        Self::Permanent {
            code,
            message: message.into(),
        }
    }

    /// The `error` object stored on the row and sent in `generation.failed`.
    pub fn to_json(code: &str, message: &str) -> serde_json::Value {
        serde_json::json!({ "code": code, "message": message })
    }
}

/// Audio that is safely in the object store.
#[derive(Debug, Clone)]
pub struct StoredAudio {
    pub storage_key: String,
    pub duration_ms: i64,
}

/// What the engine should render for `generation`, and in which format.
pub fn plan(generation: &Generation) -> Result<(EngineRequest, AudioFormat), JobError> {
    let preset = voices::preset(&generation.voice_id).ok_or_else(|| {
        JobError::permanent(
            "unknown_voice",
            format!("no voice with id {}", generation.voice_id),
        )
    })?;
    let format = AudioFormat::parse(&generation.format)
        .filter(|f| f.is_available())
        .ok_or_else(|| {
            JobError::permanent(
                "unsupported_format",
                format!("format {} is not available", generation.format),
            )
        })?;
    let ssml = match generation.text_type.as_str() {
        "text" => false,
        "ssml" => {
            ssml::validate(&generation.text)
                .map_err(|m| JobError::permanent("invalid_ssml", format!("invalid SSML: {m}")))?;
            true
        }
        other => {
            return Err(JobError::permanent(
                "invalid_text_type",
                format!("unknown textType {other}"),
            ));
        }
    };
    let voice = match preset.variant {
        Some(variant) => format!("{}+{variant}", preset.espeak_voice),
        None => preset.espeak_voice.to_owned(),
    };
    let request = EngineRequest {
        text: generation.text.clone(),
        ssml,
        voice,
        rate: scaled_rate(preset.rate, generation.speed),
        pitch: preset.pitch,
    };
    Ok((request, format))
}

/// The preset's words per minute times `speed`, within espeak-ng's range.
pub fn scaled_rate(base: u16, speed: f32) -> u16 {
    // The gateway allows 0.5–2.0; anything unusable means "normal".
    let speed = if speed.is_finite() && speed > 0.0 {
        speed
    } else {
        1.0
    };
    (f32::from(base) * speed)
        .round()
        .clamp(f32::from(RATE_MIN), f32::from(RATE_MAX)) as u16
}

/// Renders, encodes and stores the audio of a `processing` generation.
pub async fn render_and_store(
    ctx: &WorkerCtx,
    generation: &Generation,
) -> Result<StoredAudio, JobError> {
    let (request, format) = plan(generation)?;
    let rendered = ctx.engines.render(&request).await.map_err(|e| match e {
        EngineError::Refused { code, message } => JobError::Permanent {
            code: refusal_code(&code),
            message,
        },
        other => JobError::Transient(anyhow::Error::new(other).context("Failed to render")),
    })?;
    if rendered.samples.is_empty() {
        return Err(JobError::permanent(
            "no_audio",
            "the text contains nothing to speak",
        ));
    }
    if let Some(wanted) = generation
        .sample_rate
        .filter(|&r| i64::from(r) != i64::from(rendered.sample_rate))
    {
        return Err(JobError::permanent(
            "unsupported_sample_rate",
            format!(
                "this voice renders at {} Hz only; {wanted} Hz was requested",
                rendered.sample_rate
            ),
        ));
    }
    let bytes = encode::encode(format, &rendered.samples, rendered.sample_rate)
        .map_err(|e| JobError::permanent("encoding_failed", e.to_string()))?;
    let key = audio_key(generation.workspace_id.into(), generation.id.into(), format);
    // The key is a pure function of the generation, so a second render of
    // the same job overwrites the file with equivalent audio: harmless.
    ctx.store.put(&key, bytes.into()).await.map_err(|e| {
        JobError::Transient(anyhow::Error::new(e).context("Failed to store the audio"))
    })?;
    Ok(StoredAudio {
        storage_key: key.to_string(),
        duration_ms: encode::duration_ms(rendered.samples.len(), rendered.sample_rate),
    })
}

/// Engine refusal codes as API-stable `&'static str`.
fn refusal_code(code: &str) -> &'static str {
    match code {
        "voice_unavailable" => "voice_unavailable",
        "invalid_text" => "invalid_text",
        _ => "synthesis_failed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn speed_scales_the_rate_within_espeak_range() {
        assert_eq!(scaled_rate(175, 1.0), 175);
        assert_eq!(scaled_rate(175, 2.0), 350);
        assert_eq!(scaled_rate(175, 0.25), RATE_MIN);
        assert_eq!(scaled_rate(300, 2.0), RATE_MAX);
        assert_eq!(scaled_rate(175, f32::NAN), 175);
    }
}
