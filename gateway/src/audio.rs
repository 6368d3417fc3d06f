//! A generation's stored audio, for the routes that serve it (with the
//! key, through a signed URL, as `POST /v1/audio/speech`'s answer) and the
//! alignment route that shares its checks: where it is ([`stored_audio`]:
//! 410 deleted, 409 processing or failed), its `audioUrl`
//! ([`audio_url_of`]), and the streamed answer ([`audio_response`]).

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use actix_web::http::header::{CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_LENGTH, CONTENT_TYPE};
use futures_util::StreamExt;
use object_store::ObjectStoreExt;
use secrecy::ExposeSecret;

use shared::formats::AudioFormat;
use shared::http::ApiError;
use shared::ids::GenerationId;
use shared::models::{Generation, GenerationStatus};
use shared::signing;

use crate::state::State;

/// The storage key and format of a completed generation.
pub fn stored_audio(g: &Generation) -> Result<(object_store::path::Path, AudioFormat), ApiError> {
    if g.is_deleted() {
        return Err(ApiError::new(
            StatusCode::GONE,
            "generation_deleted",
            "the generation was deleted with its audio",
        ));
    }
    match g.status() {
        GenerationStatus::Completed => {}
        GenerationStatus::Processing => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "audio_not_ready",
                "the generation is still processing; wait for generation.completed",
            ));
        }
        GenerationStatus::Failed => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "generation_failed",
                "the generation failed and has no audio",
            ));
        }
    }
    let format = AudioFormat::parse(&g.format).ok_or_else(|| {
        ApiError::internal(anyhow::anyhow!(
            "generation {} has format {}",
            g.id,
            g.format
        ))
    })?;
    let key = g.storage_key.as_deref().ok_or_else(|| {
        ApiError::internal(anyhow::anyhow!(
            "completed generation {} has no storage key",
            g.id
        ))
    })?;
    Ok((object_store::path::Path::from(key), format))
}

/// A signed URL for a generation's audio, valid for `audio_urls.ttl_secs`.
pub fn signed_audio_url(state: &State, id: GenerationId) -> String {
    let expires = chrono::Utc::now().timestamp() + state.settings.audio_urls.ttl_secs as i64;
    signing::audio_url(
        &state.settings.gateway.public_base_url,
        state
            .settings
            .audio_urls
            .signing_key
            .expose_secret()
            .as_bytes(),
        &id.to_string(),
        expires,
    )
}

/// The `audioUrl` of a generation: `None` unless it completed (and was not
/// deleted); a presigned URL of the object when the store is S3 (the
/// download then never touches the gateway), else the gateway's own signed
/// URL. Both expire after `audio_urls.ttl_secs`.
pub async fn audio_url_of(state: &State, g: &Generation) -> Option<String> {
    let id = GenerationId(g.id);
    if g.status() != GenerationStatus::Completed || g.is_deleted() {
        return None;
    }
    if let Some(key) = g.storage_key.as_deref() {
        let ttl = std::time::Duration::from_secs(state.settings.audio_urls.ttl_secs);
        let key = object_store::path::Path::from(key);
        match state.storage.presigned_get(&key, ttl).await {
            None => {}
            Some(Ok(url)) => return Some(url),
            Some(Err(e)) => {
                // The gateway's URL works on S3 too (it streams the object).
                tracing::warn!(error = %e, generation_id = %id, "could not presign the audio URL; using the gateway's");
            }
        }
    }
    Some(signed_audio_url(state, id))
}

/// Streams the generation's audio from the object store.
pub async fn audio_response(state: &State, g: Generation) -> Result<HttpResponse, ApiError> {
    let (key, format) = stored_audio(&g)?;
    let result = state.store.get(&key).await.map_err(|e| match e {
        object_store::Error::NotFound { .. } => ApiError::internal(anyhow::anyhow!(
            "audio of {} missing from the store: {e}",
            g.id
        )),
        other => ApiError::unavailable(
            "storage_unavailable",
            "the audio store is unavailable; try again",
            other,
        ),
    })?;
    let size = result.meta.size;
    let stream = result
        .into_stream()
        .map(|chunk| chunk.map_err(|e| actix_web::error::ErrorInternalServerError(e.to_string())));
    Ok(HttpResponse::Ok()
        .insert_header((CONTENT_TYPE, format.content_type()))
        .insert_header((CONTENT_LENGTH, size.to_string()))
        .insert_header((
            CONTENT_DISPOSITION,
            format!(
                "inline; filename=\"{}.{}\"",
                GenerationId(g.id),
                format.extension()
            ),
        ))
        .insert_header((CACHE_CONTROL, "private, max-age=3600"))
        .streaming(stream))
}
