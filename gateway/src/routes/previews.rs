//! Voice previews: a short clip of a fixed sentence in a voice, for
//! choosing one (the console's Voices page plays them).
//!
//! - `GET /v1/voices/{id}/preview` (`voices:read`): any voice
//!   `GET /v1/voices/{id}` shows (presets, and this workspace's designed
//!   and cloned voices once `ready`; another workspace's is a 404 as
//!   there; one still `processing` is 422 `voice_not_ready`, a `failed`
//!   one 422 `voice_failed`, as for generations).
//! - `GET /v1/voices/preview?recipe=af_bella(2)+af_sky(1)` (`voices:read`):
//!   an unsaved blend (or any catalog voice) in the syntax
//!   `shared::voices::resolve` takes for generations. A `+` in the query
//!   string is the blend's `+` here, not a space.
//!
//! Both take `format` (`mp3`, the default, or `wav`). A preview is rendered
//! once per engine voice, text and format and kept in the object store
//! under a key derived from them (`shared::previews::key`): nothing of the
//! workspace is in it, so one recipe has one preview for everyone. It is
//! not a generation: no row, no charge, no usage. When the clip is not
//! stored yet, the gateway publishes a `preview.v1` job on the interactive
//! lane and polls the store for up to `gateway.preview_wait_ms`; then 503
//! `preview_pending` with `Retry-After` (the render goes on; a lost job is
//! harmless, the next request publishes another). A preview the worker
//! cannot render answers 502 `preview_failed` once, saying why.

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::http::header::{CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE};
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::StreamExt;
use object_store::ObjectStoreExt;
use object_store::path::Path;
use serde::Deserialize;

use shared::amqp::Lane;
use shared::db::DbError;
use shared::formats::AudioFormat;
use shared::http::{ApiError, ErrorEnvelope};
use shared::messages::JobMessage;
use shared::previews::{self, Failure};
use shared::voices::{self, EngineVoice, cloned::ClonedVoice};

use crate::auth::Principal;
use crate::state::State;

/// Says whether the clip was in the store (`hit`) or rendered for this
/// request (`miss`).
pub const CACHE_HEADER: &str = "x-preview-cache";
/// A preview never changes (its key is what is heard), but a voice id can
/// be deleted: a day in the client's cache.
const CACHE_CONTROL_VALUE: &str = "private, max-age=86400";
/// How long a client is told to wait after `preview_pending`.
const RETRY_AFTER_SECS: u64 = 5;
/// The store is looked at this often while a preview renders, at most.
const POLL_MAX: Duration = Duration::from_millis(500);

pub fn routes(r: &mut crate::routes::Routes) {
    // Before `/v1/voices/{id}` (`crate::routes::voices`), which would
    // otherwise take `preview` for an id.
    r.get("/v1/voices/preview", recipe)
        .get("/v1/voices/{id}/preview", voice);
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct FormatQuery {
    /// `mp3` (default) or `wav`.
    #[param(example = "mp3")]
    format: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RecipeQuery {
    /// A voice as `voiceId` takes it: a Kokoro blend of up to 4 voices of
    /// one language (`af_bella(2)+af_sky(1)`; a `+` is the blend's, not a
    /// space), a pack name or a preset id.
    #[param(example = "af_bella(2)+af_sky(1)")]
    recipe: Option<String>,
    /// `mp3` (default) or `wav`.
    #[param(example = "mp3")]
    format: Option<String>,
}

fn format_of(format: Option<&str>) -> Result<AudioFormat, ApiError> {
    let Some(name) = format else {
        return Ok(previews::FORMATS[0]);
    };
    previews::FORMATS
        .into_iter()
        .find(|f| f.as_str() == name)
        .ok_or_else(|| {
            ApiError::bad_request(
                "invalid_format",
                format!(
                    "a preview is mp3 or wav, not {}",
                    voices::resolve::shown(name)
                ),
            )
            .with_param("format")
        })
}

/// Hear a voice: a short clip of a fixed sentence.
#[utoipa::path(
    get,
    path = "/v1/voices/{id}/preview",
    tag = "voices",
    operation_id = "getVoicePreview",
    params(("id" = String, Path, description = "The voice (an id, or a Kokoro pack name)", example = "voice_8f2a1c"), FormatQuery),
    responses(
        (status = 200, description = "The clip: rendered once per voice and kept; not charged", content(
            (crate::openapi::Binary = "audio/mpeg"),
            (crate::openapi::Binary = "audio/wav"),
        ), headers(
            ("Cache-Control" = String, description = "`private, max-age=86400`"),
            ("X-Preview-Cache" = String, description = "`hit`: it was stored; `miss`: rendered for this request"),
        )),
        (status = 400, description = "A format other than mp3 or wav (`invalid_format`)", body = ErrorEnvelope),
        (status = 404, description = "No such voice (presets, and this workspace's voices)", body = ErrorEnvelope),
        (status = 422, description = "A voice of the workspace still processing (`voice_not_ready`) or failed (`voice_failed`)", body = ErrorEnvelope),
        (status = 502, description = "The worker cannot render this voice (`preview_failed`)", body = ErrorEnvelope),
        (status = 503, description = "Not rendered within `gateway.preview_wait_ms` (`preview_pending`: it goes on, ask again), or the job queue or store is down", body = ErrorEnvelope,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    ),
    security(("apiKey" = ["voices:read"]))
)]
async fn voice(
    state: web::Data<State>,
    principal: Principal,
    path: web::Path<String>,
    query: web::Query<FormatQuery>,
) -> Result<HttpResponse, ApiError> {
    principal.require("voices:read")?;
    let format = format_of(query.format.as_deref())?;
    let voice = engine_voice_of(&state, principal.workspace_id.0, &path).await?;
    serve_preview(&state, voice, format).await
}

/// Hear a blend before saving it: a short clip of a fixed sentence.
#[utoipa::path(
    get,
    path = "/v1/voices/preview",
    tag = "voices",
    operation_id = "previewVoiceRecipe",
    params(RecipeQuery),
    responses(
        (status = 200, description = "The clip: rendered once per recipe and kept; not charged", content(
            (crate::openapi::Binary = "audio/mpeg"),
            (crate::openapi::Binary = "audio/wav"),
        ), headers(
            ("Cache-Control" = String, description = "`private, max-age=86400`"),
            ("X-Preview-Cache" = String, description = "`hit`: it was stored; `miss`: rendered for this request"),
        )),
        (status = 400, description = "No `recipe` (`invalid_parameter`), a format other than mp3 or wav (`invalid_format`)", body = ErrorEnvelope),
        (status = 422, description = "A recipe that names no voice of the catalog (`unknown_voice`) or is not a blend that can be (`invalid_voice_blend`, `invalid_voice_weight`, `too_many_voices`, `duplicate_voice`, `mixed_voice_languages`, `voice_not_blendable`)", body = ErrorEnvelope),
        (status = 502, description = "The worker cannot render this voice (`preview_failed`)", body = ErrorEnvelope),
        (status = 503, description = "Not rendered within `gateway.preview_wait_ms` (`preview_pending`: it goes on, ask again), or the job queue or store is down", body = ErrorEnvelope,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    ),
    security(("apiKey" = ["voices:read"]))
)]
async fn recipe(
    req: HttpRequest,
    state: web::Data<State>,
    principal: Principal,
) -> Result<HttpResponse, ApiError> {
    principal.require("voices:read")?;
    // A `+` of a query string is a space to form decoding; here it is the
    // blend's `+` (`af_bella(2)+af_sky(1)` as typed), so it is kept.
    let query = web::Query::<RecipeQuery>::from_query(&req.query_string().replace('+', "%2B"))
        .map_err(|e| {
            ApiError::bad_request(
                "invalid_parameter",
                format!("the query string is invalid: {e}"),
            )
        })?
        .into_inner();
    let format = format_of(query.format.as_deref())?;
    let recipe = query
        .recipe
        .filter(|r| !r.trim().is_empty())
        .ok_or_else(|| {
            ApiError::bad_request("invalid_parameter", "recipe is required").with_param("recipe")
        })?;
    let voice = match voices::resolve(&recipe) {
        Ok(Some(resolved)) => resolved.voice,
        Ok(None) => {
            return Err(ApiError::unprocessable(
                "unknown_voice",
                format!(
                    "{} names no voice of the catalog (a voice of the workspace has its own preview: GET /v1/voices/{{id}}/preview)",
                    voices::resolve::shown(&recipe)
                ),
            )
            .with_param("recipe"));
        }
        Err(e) => return Err(ApiError::unprocessable(e.code(), e.to_string()).with_param("recipe")),
    };
    serve_preview(&state, voice, format).await
}

/// The engine voice of `id` as `GET /v1/voices/{id}` finds it: a preset
/// (or a pack name), or a ready voice of `workspace`.
async fn engine_voice_of(
    state: &State,
    workspace: uuid::Uuid,
    id: &str,
) -> Result<EngineVoice, ApiError> {
    if let Some(p) = voices::lookup(id) {
        return Ok(p.voice.clone());
    }
    let owned = id.to_owned();
    let row = state
        .db
        .run(move |c| ClonedVoice::find_in_workspace(c, workspace, &owned).map_err(DbError::from))
        .await?
        .ok_or_else(|| ApiError::not_found("voice"))?;
    match row.status.as_str() {
        "ready" => {}
        "failed" => {
            return Err(ApiError::unprocessable(
                "voice_failed",
                format!("voice {id} could not be cloned and has no preview"),
            ));
        }
        other => {
            return Err(ApiError::unprocessable(
                "voice_not_ready",
                format!("voice {id} is {other}; its preview exists once it is ready"),
            ));
        }
    }
    row.engine_voice().ok_or_else(|| {
        ApiError::internal(anyhow::anyhow!(
            "voice {id} has unreadable engine parameters"
        ))
    })
}

/// The stored preview of `voice`, rendering it first if need be.
async fn serve_preview(
    state: &State,
    voice: EngineVoice,
    format: AudioFormat,
) -> Result<HttpResponse, ApiError> {
    let text = previews::text_for(&voice);
    let key = previews::key(&voice, text, format);
    if let Some(found) = stored(state, &key, format, "hit").await? {
        return Ok(found);
    }
    state.ensure_broker().await?;
    let note = previews::error_key(&key);
    // A failure noted for an earlier request is not this one's answer.
    forget(state, &note).await;
    let job = JobMessage::PreviewV1 {
        voice,
        text: text.to_owned(),
        format,
        key: key.to_string(),
    };
    let exchange = state.publisher.broker().topology().jobs_exchange();
    let message_id = format!("preview-{}", uuid::Uuid::now_v7().simple());
    state
        .publisher
        .publish(
            &exchange,
            Lane::Interactive.routing_key(),
            &message_id,
            &job,
        )
        .await
        .map_err(|e| {
            ApiError::unavailable(
                "broker_unavailable",
                "the job queue is unavailable; try again",
                e,
            )
        })?;
    let deadline =
        tokio::time::Instant::now() + Duration::from_millis(state.settings.gateway.preview_wait_ms);
    let mut wait = Duration::from_millis(50);
    loop {
        let now = tokio::time::Instant::now();
        if now >= deadline {
            let mut pending = ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "preview_pending",
                "the preview is being rendered; ask again shortly",
            );
            pending.retry_after_secs = Some(RETRY_AFTER_SECS);
            return Err(pending);
        }
        tokio::time::sleep(wait.min(deadline - now)).await;
        wait = (wait * 2).min(POLL_MAX);
        if let Some(found) = stored(state, &key, format, "miss").await? {
            return Ok(found);
        }
        if let Some(failure) = failed(state, &note).await {
            forget(state, &note).await;
            return Err(ApiError::new(
                StatusCode::BAD_GATEWAY,
                "preview_failed",
                format!(
                    "this voice's preview cannot be rendered: {}",
                    failure.message
                ),
            ));
        }
    }
}

/// The preview at `key`, streamed, if it is stored.
async fn stored(
    state: &State,
    key: &Path,
    format: AudioFormat,
    cache: &'static str,
) -> Result<Option<HttpResponse>, ApiError> {
    let result = match state.store.get(key).await {
        Ok(result) => result,
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(e) => {
            return Err(ApiError::unavailable(
                "storage_unavailable",
                "the audio store is unavailable; try again",
                e,
            ));
        }
    };
    let size = result.meta.size;
    let stream = result
        .into_stream()
        .map(|chunk| chunk.map_err(|e| actix_web::error::ErrorInternalServerError(e.to_string())));
    Ok(Some(
        HttpResponse::Ok()
            .insert_header((CONTENT_TYPE, format.content_type()))
            .insert_header((CONTENT_LENGTH, size.to_string()))
            .insert_header((CACHE_CONTROL, CACHE_CONTROL_VALUE))
            .insert_header((CACHE_HEADER, cache))
            .streaming(stream),
    ))
}

/// Why the worker could not render the preview, if it said so.
async fn failed(state: &State, note: &Path) -> Option<Failure> {
    let bytes = state.store.get(note).await.ok()?.bytes().await.ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Removes a failure note; one that is not there is fine, and one that
/// cannot be removed only makes a later request fail fast once more.
async fn forget(state: &State, note: &Path) {
    match state.store.delete(note).await {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
        Err(e) => tracing::warn!(error = %e, %note, "could not remove a preview's failure note"),
    }
}
