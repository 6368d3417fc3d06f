//! `/v1/generations`: create (202, credits reserved with the insert, job
//! published after the commit, the cost in `X-Credits-Charged`), list
//! (newest first, cursor pages, `status` filter), get, delete (data
//! retention: audio, alignment and text go, the accounting stays), and the
//! audio with the key.
//!
//! The charge, the insert and the publish are `crate::generations::accept`
//! (shared with `POST /v1/audio/speech`); the stored audio and its URL are
//! `crate::audio`.

use actix_web::http::StatusCode;
use actix_web::http::header::{CONTENT_TYPE, HeaderName, HeaderValue, LOCATION};
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use chrono::{DateTime, Utc};
use object_store::ObjectStoreExt;
use serde::{Deserialize, Serialize};

use shared::db::DbError;
use shared::formats::AudioFormat;
use shared::http::{ApiError, ErrorEnvelope};
use shared::ids::{GenerationId, WorkspaceId};
use shared::models::{Generation, GenerationStatus};

use crate::audio::{audio_response, audio_url_of};
use crate::audio_answer;
use crate::auth::Principal;
use crate::domain::generation_request::CreateGeneration;
use crate::generations::{
    Accepted, CREDITS_HEADER, GENERATION_HEADER, accept, is_usable_cloned_voice,
};
use crate::idempotency::Idempotency;
use crate::pagination::{Page, PageView, bad_cursor};
use crate::state::State;

pub fn routes(r: &mut crate::routes::Routes) {
    r.post("/v1/generations", create)
        .get("/v1/generations", list)
        .get("/v1/generations/{id}", get)
        .delete("/v1/generations/{id}", delete)
        .get("/v1/generations/{id}/audio", audio);
}

/// A generation as `GET` shows it.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GenerationView {
    id: GenerationId,
    /// `processing`, `completed` or `failed`.
    #[schema(example = "completed")]
    status: String,
    #[schema(example = "voice_8f2a1c")]
    voice_id: String,
    /// `wav`, `mp3`, `ogg`, `flac` or `pcm`.
    #[schema(example = "wav")]
    format: String,
    credits: i64,
    characters: i64,
    #[serde(serialize_with = "shared::time::serialize")]
    created_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    duration_ms: Option<i64>,
    /// A signed, expiring URL of the audio that needs no key (completed only).
    #[serde(skip_serializing_if = "Option::is_none")]
    audio_url: Option<String>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "shared::time::serialize_opt"
    )]
    completed_at: Option<DateTime<Utc>>,
    /// Why it failed: `{"code", "message"}` (failed only).
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<serde_json::Value>,
    /// `true` once `DELETE` removed its audio and text.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    deleted: bool,
}

impl GenerationView {
    /// `audio_url`: from [`audio_url_of`], `None` unless completed.
    pub fn new(g: Generation, audio_url: Option<String>) -> Self {
        let id = GenerationId(g.id);
        Self {
            deleted: g.is_deleted(),
            audio_url,
            id,
            status: g.status,
            voice_id: g.voice_id,
            format: g.format,
            credits: g.credits,
            characters: g.characters,
            created_at: g.created_at,
            duration_ms: g.duration_ms,
            completed_at: g.completed_at,
            error: g.error,
            metadata: g.metadata,
        }
    }
}

/// Create a generation: credits are reserved and the job queued; the
/// result arrives by webhook or `GET /v1/generations/{id}`.
#[utoipa::path(
    post,
    path = "/v1/generations",
    tag = "generations",
    operation_id = "createGeneration",
    request_body = CreateGeneration,
    params(crate::openapi::IdempotencyKey, CreateQuery),
    responses(
        (status = 200, description = "With `stream=true`: the audio in `format`, streamed as it is rendered (chunked; `flac` whole once done); a replay of its Idempotency-Key answers the stored 202", content(
            (crate::openapi::Binary = "audio/mpeg"),
            (crate::openapi::Binary = "audio/ogg"),
            (crate::openapi::Binary = "audio/flac"),
            (crate::openapi::Binary = "audio/wav"),
            (crate::openapi::Binary = "audio/L16"),
        ),
            headers(
                ("Location" = String, description = "`/v1/generations/{id}`"),
                ("X-Generation-Id" = String, description = "The generation"),
                ("X-Credits-Charged" = i64, description = "The credits charged"),
            )),
        (status = 202, description = "Accepted and charged; the generation is processing", body = Accepted,
            headers(
                ("Location" = String, description = "`/v1/generations/{id}`"),
                ("X-Credits-Charged" = i64, description = "The credits charged"),
                ("Idempotent-Replayed" = String, description = "`true` when this is the stored answer to an earlier request with the same Idempotency-Key"),
            )),
        (status = 400, description = "Malformed body, unknown format or textType, speed, sampleRate or metadata out of range, bad Idempotency-Key", body = ErrorEnvelope),
        (status = 402, description = "Not enough credits left in this period (`insufficient_credits`), or over this key's limit (`key_credit_limit`)", body = ErrorEnvelope),
        (status = 403, description = "The key lacks generations:write, the plan lacks API access or the format (`format_not_in_plan`)", body = ErrorEnvelope),
        (status = 409, description = "The Idempotency-Key was used with another body or by another API key (`idempotency_key_reused`), or its first request is still running", body = ErrorEnvelope),
        (status = 422, description = "Empty or too long text, SSML that is not well-formed or uses an element or attribute off the allow-list (`invalid_ssml`, e.g. `<audio>`, a break over 10 s), SSML breaks adding up to more than 0.25 s per character of the text, at least 30 s (`audio_too_long`), control characters, unknown voice (`unknown_voice`), a Kokoro blend in `voiceId` that is malformed (`invalid_voice_blend`), has a weight that is not a positive number (`invalid_voice_weight`), more than 4 voices (`too_many_voices`), a voice twice (`duplicate_voice`), voices of two languages (`mixed_voice_languages`) or a voice that is not Kokoro's (`voice_not_blendable`), a sample rate the format cannot encode", body = ErrorEnvelope),
        (status = 429, description = "Rate limited, or the workspace has its plan's maximum of generations processing", body = ErrorEnvelope,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 502, description = "With `stream=true`: the generation failed (`generation_failed`) before its audio began; its credits are refunded", body = ErrorEnvelope),
        (status = 503, description = "The job queue is down or the system is busy; nothing was charged", body = ErrorEnvelope,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 504, description = "With `stream=true`: no audio within `gateway.speech_timeout_ms` (`generation_timeout`); it goes on and is charged once: fetch it from `Location`", body = ErrorEnvelope),
    ),
    security(("apiKey" = ["generations:write"]))
)]
async fn create(
    req: HttpRequest,
    state: web::Data<State>,
    principal: Principal,
    idempotency: Idempotency,
    query: web::Query<CreateQuery>,
    body: web::Json<CreateGeneration>,
) -> Result<HttpResponse, ApiError> {
    let started = tokio::time::Instant::now();
    principal.require("generations:write")?;
    let body = body.into_inner();
    let cloned = is_usable_cloned_voice(&state, principal.workspace_id, &body.voice_id).await?;
    let valid = body.validate_with(&principal.plan, cloned)?;
    if query.stream {
        return stream_created(&req, &state, &principal, valid, idempotency.0, started).await;
    }
    let (created, body) = accept(&req, &state, &principal, valid, idempotency.0).await?;
    Ok(HttpResponse::Accepted()
        .insert_header((
            LOCATION,
            format!("/v1/generations/{}", GenerationId(created.id)),
        ))
        .insert_header((CREDITS_HEADER, created.credits.to_string()))
        .insert_header((CONTENT_TYPE, "application/json"))
        .body(body))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CreateQuery {
    /// `true`: answer 200 with the audio as it is rendered (chunked; `flac`
    /// whole once done) instead of 202; the generation is the same, stored,
    /// charged once and announced by webhook as always.
    #[serde(default)]
    stream: bool,
}

/// `POST /v1/generations?stream=true`: the audio as the answer, with the
/// generation's `Location`, `X-Generation-Id` and `X-Credits-Charged`;
/// once the generation exists, an error answer carries them too (502
/// `generation_failed`, refunded; 504 `generation_timeout`, it goes on).
async fn stream_created(
    req: &HttpRequest,
    state: &web::Data<State>,
    principal: &Principal,
    valid: crate::domain::generation_request::ValidGeneration,
    claim: Option<crate::idempotency::Claim>,
    started: tokio::time::Instant,
) -> Result<HttpResponse, ApiError> {
    let (id, credits, answer) =
        audio_answer::accept_and_answer(req, state, principal, valid, claim, started).await?;
    let mut response = answer.unwrap_or_else(|e| e.error_response());
    let headers = response.headers_mut();
    for (name, value) in [
        (LOCATION, format!("/v1/generations/{id}")),
        (HeaderName::from_static(GENERATION_HEADER), id.to_string()),
        (HeaderName::from_static(CREDITS_HEADER), credits.to_string()),
    ] {
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(name, v);
        }
    }
    Ok(response)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Items per page, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<i64>,
    /// The `nextCursor` of the previous page.
    cursor: Option<String>,
    /// Only generations with this status: `processing`, `completed`, `failed`.
    status: Option<String>,
}

/// List generations, newest first.
#[utoipa::path(
    get,
    path = "/v1/generations",
    tag = "generations",
    operation_id = "listGenerations",
    params(ListQuery),
    responses(
        (status = 200, description = "A page of generations", body = PageView<GenerationView>),
        (status = 400, description = "limit out of range, unknown status, a cursor this list did not return", body = ErrorEnvelope),
    ),
    security(("apiKey" = ["generations:read"]))
)]
async fn list(
    state: web::Data<State>,
    principal: Principal,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    principal.require("generations:read")?;
    let q = query.into_inner();
    let page = Page::parse(q.limit, q.cursor, GenerationId::parse)?;
    let (limit, after) = (page.limit, page.after);
    let status = q
        .status
        .map(|s| {
            GenerationStatus::parse(&s).ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_parameter",
                    format!("status must be processing, completed or failed, not {s:?}"),
                )
                .with_param("status")
            })
        })
        .transpose()?;
    let workspace = principal.workspace_id.0;
    let rows = state
        .db
        .run(move |conn| {
            // The cursor is the last generation of the previous page; the
            // page continues after its (created_at, id).
            let after = match after {
                None => None,
                Some(id) => match Generation::find_in_workspace(conn, workspace, id.0)? {
                    Some(g) => Some((g.created_at, g.id)),
                    None => return Ok::<_, ApiError>(None),
                },
            };
            Ok(Some(Generation::page(
                conn,
                workspace,
                status,
                after,
                limit + 1,
            )?))
        })
        .await?
        .ok_or_else(bad_cursor)?;
    let mut rows_with_urls = Vec::with_capacity(rows.len());
    for g in rows {
        let url = audio_url_of(&state, &g).await;
        rows_with_urls.push((g, url));
    }
    Ok(HttpResponse::Ok().json(PageView::new(
        rows_with_urls,
        limit,
        |(g, _)| GenerationId(g.id).to_string(),
        |(g, url)| GenerationView::new(g, url),
    )))
}

/// Data retention: removes the audio and alignment objects and the text; the
/// row stays with its credits, characters and times (usage stays exact).
/// A generation still processing is 409 `generation_processing`: delete it
/// once it completed or failed. Deleting twice is fine (204 again).
#[utoipa::path(
    delete,
    path = "/v1/generations/{id}",
    tag = "generations",
    operation_id = "deleteGeneration",
    params(("id" = GenerationId, Path, description = "The generation")),
    responses(
        (status = 204, description = "Its audio, alignment and text are gone (also when deleted before)"),
        (status = 404, description = "No such generation in this workspace", body = ErrorEnvelope),
        (status = 409, description = "Still processing (`generation_processing`)", body = ErrorEnvelope),
        (status = 503, description = "The audio store is unavailable", body = ErrorEnvelope),
    ),
    security(("apiKey" = ["generations:write"]))
)]
async fn delete(
    state: web::Data<State>,
    principal: Principal,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    principal.require("generations:write")?;
    let id = GenerationId::parse(&path).ok_or_else(|| ApiError::not_found("generation"))?;
    let workspace = principal.workspace_id;
    let deleted = state
        .db
        .run(move |conn| {
            Ok::<_, ApiError>(match Generation::mark_deleted(conn, workspace.0, id.0)? {
                Some(g) => Ok(g),
                None => Err(Generation::find_in_workspace(conn, workspace.0, id.0)?.is_some()),
            })
        })
        .await?;
    let g = match deleted {
        Ok(g) => g,
        Err(true) => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "generation_processing",
                "the generation is still processing; delete it once it completed or failed",
            ));
        }
        Err(false) => return Err(ApiError::not_found("generation")),
    };
    let mut objects = vec![shared::alignment::alignment_key(workspace, id)];
    if let Some(key) = &g.storage_key {
        objects.push(object_store::path::Path::from(key.as_str()));
    }
    if let Some(format) = AudioFormat::parse(&g.format) {
        objects.push(shared::storage::audio_key(workspace, id, format));
    }
    for object in objects {
        match state.store.delete(&object).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => {
                return Err(ApiError::unavailable(
                    "storage_unavailable",
                    "the audio could not be removed; try again",
                    e,
                ));
            }
        }
    }
    Ok(HttpResponse::NoContent().finish())
}

async fn find(state: &State, workspace: WorkspaceId, id: &str) -> Result<Generation, ApiError> {
    let id = GenerationId::parse(id).ok_or_else(|| ApiError::not_found("generation"))?;
    state
        .db
        .run(move |conn| {
            Generation::find_in_workspace(conn, workspace.0, id.0).map_err(DbError::from)
        })
        .await?
        .ok_or_else(|| ApiError::not_found("generation"))
}

#[utoipa::path(
    get,
    path = "/v1/generations/{id}",
    tag = "generations",
    operation_id = "getGeneration",
    params(("id" = GenerationId, Path, description = "The generation")),
    responses(
        (status = 200, description = "The generation", body = GenerationView),
        (status = 404, description = "No such generation in this workspace", body = ErrorEnvelope),
    ),
    security(("apiKey" = ["generations:read"]))
)]
async fn get(
    state: web::Data<State>,
    principal: Principal,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    principal.require("generations:read")?;
    let g = find(&state, principal.workspace_id, &path).await?;
    let url = audio_url_of(&state, &g).await;
    Ok(HttpResponse::Ok().json(GenerationView::new(g, url)))
}

/// The audio of a completed generation, streamed.
#[utoipa::path(
    get,
    path = "/v1/generations/{id}/audio",
    tag = "generations",
    operation_id = "getGenerationAudio",
    params(("id" = GenerationId, Path, description = "The generation")),
    responses(
        (status = 200, description = "The audio, in the generation's format", content(
            (crate::openapi::Binary = "audio/wav"),
            (crate::openapi::Binary = "audio/mpeg"),
            (crate::openapi::Binary = "audio/ogg"),
            (crate::openapi::Binary = "audio/flac"),
            (crate::openapi::Binary = "audio/L16"),
        )),
        (status = 404, description = "No such generation in this workspace", body = ErrorEnvelope),
        (status = 409, description = "Still processing (`audio_not_ready`) or failed (`generation_failed`)", body = ErrorEnvelope),
        (status = 410, description = "Deleted with its audio (`generation_deleted`)", body = ErrorEnvelope),
        (status = 503, description = "The audio store is unavailable", body = ErrorEnvelope),
    ),
    security(("apiKey" = ["generations:read"]))
)]
async fn audio(
    state: web::Data<State>,
    principal: Principal,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    principal.require("generations:read")?;
    let g = find(&state, principal.workspace_id, &path).await?;
    audio_response(&state, g).await
}
