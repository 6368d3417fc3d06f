//! Audio delivery: streaming a stored file, and the signed, expiring
//! `audioUrl` (`/v1/audio/{id}?expires=…&signature=…`) that needs no key.
//! A tampered or expired URL is 403; the signature is checked in constant
//! time before the database is touched.

use actix_web::http::header::{CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_LENGTH, CONTENT_TYPE};
use actix_web::{HttpResponse, web};
use futures_util::StreamExt;
use object_store::ObjectStoreExt;
use secrecy::ExposeSecret;
use serde::Deserialize;

use shared::db::DbError;
use shared::http::{ApiError, ErrorEnvelope};
use shared::ids::GenerationId;
use shared::models::{Generation, GenerationStatus};
use shared::signing::{self, AudioUrlCheck};

use crate::routes::generations::stored_audio;
use crate::startup::State;

pub fn routes(r: &mut crate::routes::Routes) {
    r.get("/v1/audio/{id}", signed);
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

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Signature {
    /// Unix seconds after which the URL is refused.
    expires: Option<String>,
    /// The URL's signature.
    signature: Option<String>,
}

/// The audio behind a signed `audioUrl`; needs no key.
#[utoipa::path(
    get,
    path = "/v1/audio/{id}",
    tag = "generations",
    operation_id = "getSignedAudio",
    params(("id" = GenerationId, Path, description = "The generation"), Signature),
    responses(
        (status = 200, description = "The audio, in the generation's format", content(
            (crate::openapi::Binary = "audio/wav"),
            (crate::openapi::Binary = "audio/mpeg"),
            (crate::openapi::Binary = "audio/ogg"),
            (crate::openapi::Binary = "audio/flac"),
            (crate::openapi::Binary = "audio/L16"),
        )),
        (status = 400, description = "A query string that cannot be read", body = ErrorEnvelope),
        (status = 403, description = "A tampered (`invalid_signature`) or expired (`url_expired`) URL", body = ErrorEnvelope),
        (status = 404, description = "No such generation", body = ErrorEnvelope),
        (status = 409, description = "Still processing, or failed", body = ErrorEnvelope),
        (status = 410, description = "Deleted with its audio", body = ErrorEnvelope),
        (status = 503, description = "The audio store is unavailable", body = ErrorEnvelope),
    ),
    security(())
)]
async fn signed(
    state: web::Data<State>,
    path: web::Path<String>,
    query: web::Query<Signature>,
) -> Result<HttpResponse, ApiError> {
    let refused = || {
        ApiError::forbidden(
            "invalid_signature",
            "this audio URL is not valid; get a fresh one from GET /v1/generations/{id}",
        )
    };
    let id = GenerationId::parse(&path).ok_or_else(refused)?;
    let expires: i64 = query
        .expires
        .as_deref()
        .and_then(|e| e.parse().ok())
        .ok_or_else(refused)?;
    let signature = query.signature.as_deref().ok_or_else(refused)?;
    let key = state
        .settings
        .audio_urls
        .signing_key
        .expose_secret()
        .as_bytes();
    let now = chrono::Utc::now().timestamp();
    match signing::verify_audio_url(key, &id.to_string(), expires, signature, now) {
        AudioUrlCheck::Valid => {}
        AudioUrlCheck::Invalid => return Err(refused()),
        AudioUrlCheck::Expired => {
            return Err(ApiError::forbidden(
                "url_expired",
                "this audio URL has expired; get a fresh one from GET /v1/generations/{id}",
            ));
        }
    }
    let g = state
        .db
        .run(move |conn| Generation::find(conn, id.0).map_err(DbError::from))
        .await?
        .ok_or_else(|| ApiError::not_found("generation"))?;
    audio_response(&state, g).await
}
