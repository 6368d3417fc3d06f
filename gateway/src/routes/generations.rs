//! `/v1/generations`: create (202, credits reserved with the insert, job
//! published after the commit, the cost in `X-Credits-Charged`), list
//! (newest first, cursor pages, `status` filter), get, delete (data
//! retention: audio, alignment and text go, the accounting stays), and the
//! audio with the key.
//!
//! Creation is refused before anything is charged with 503 `system_busy`
//! when more than `gateway.max_processing_generations` are processing in the
//! whole system, and with 429 `rate_limited` when the workspace already has
//! its plan's `max_in_flight` processing (counted in the create transaction).

use actix_web::http::StatusCode;
use actix_web::http::header::{CONTENT_TYPE, LOCATION};
use actix_web::{HttpMessage, HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use diesel::Connection;
use object_store::ObjectStoreExt;
use serde::{Deserialize, Serialize};

use shared::amqp::SYNTH_ROUTING_KEY;
use shared::db::DbError;
use shared::formats::AudioFormat;
use shared::http::{ApiError, ErrorEnvelope};
use shared::ids::{GenerationId, WorkspaceId};
use shared::messages::JobMessage;
use shared::models::generation::CreateError;
use shared::models::{Generation, GenerationStatus, NewGeneration};

use crate::auth::Principal;
use crate::domain::generation_request::CreateGeneration;
use crate::idempotency::Idempotency;
use crate::rate_limit::RateLimitInfo;
use crate::routes::audio::{audio_response, audio_url_of};
use crate::routes::webhooks::views::PageView;
use crate::startup::State;

/// The cost of an accepted generation, in credits (also in the body).
pub const CREDITS_HEADER: &str = "x-credits-charged";
/// Items per page when `limit` is not given, and at most.
const DEFAULT_PAGE: i64 = 20;
const MAX_PAGE: i64 = 100;

pub fn routes(r: &mut crate::routes::Routes) {
    r.post("/v1/generations", create)
        .get("/v1/generations", list)
        .get("/v1/generations/{id}", get)
        .delete("/v1/generations/{id}", delete)
        .get("/v1/generations/{id}/audio", audio);
}

/// The 202 body: exactly the shape of docs/api.md.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Accepted {
    id: GenerationId,
    /// Always `processing`.
    #[schema(value_type = String, example = "processing")]
    status: &'static str,
    #[schema(example = "voice_8f2a1c")]
    voice_id: String,
    credits: i64,
    #[serde(serialize_with = "shared::time::serialize")]
    created_at: DateTime<Utc>,
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

fn payment_required(code: &'static str, message: String) -> ApiError {
    ApiError::new(StatusCode::PAYMENT_REQUIRED, code, message)
}

/// Create a generation: credits are reserved and the job queued; the
/// result arrives by webhook or `GET /v1/generations/{id}`.
#[utoipa::path(
    post,
    path = "/v1/generations",
    tag = "generations",
    operation_id = "createGeneration",
    request_body = CreateGeneration,
    params(crate::openapi::IdempotencyKey),
    responses(
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
        (status = 503, description = "The job queue is down or the system is busy; nothing was charged", body = ErrorEnvelope,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    ),
    security(("apiKey" = ["generations:write"]))
)]
async fn create(
    req: HttpRequest,
    state: web::Data<State>,
    principal: Principal,
    idempotency: Idempotency,
    body: web::Json<CreateGeneration>,
) -> Result<HttpResponse, ApiError> {
    principal.require("generations:write")?;
    let body = body.into_inner();
    let cloned = crate::routes::voices::is_usable_cloned_voice(
        &state,
        principal.workspace_id,
        &body.voice_id,
    )
    .await?;
    let valid = body.validate_with(&principal.plan, cloned)?;
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

/// Charges and creates a validated generation in one transaction (settling
/// `claim` in it), then publishes its job: the 202 body and the row. Shared
/// with `POST /v1/audio/speech`, which then waits for the row to finish.
pub async fn accept(
    req: &HttpRequest,
    state: &State,
    principal: &Principal,
    valid: crate::domain::generation_request::ValidGeneration,
    claim: Option<crate::idempotency::Claim>,
) -> Result<(Generation, Vec<u8>), ApiError> {
    // Refuse before charging anything when the broker is down or the system
    // is overloaded: 503, nothing changed.
    state.ensure_broker().await?;
    // The system-busy guard counts in the same database round as the
    // create (when a recent count is not enough: `crate::busy`).
    let cap = state.settings.gateway.max_processing_generations;
    let count_busy = cap > 0 && state.busy.must_count(cap);

    let id = GenerationId::new();
    let new = NewGeneration {
        id: id.0,
        workspace_id: principal.workspace_id.0,
        api_key_id: Some(principal.key_id.0),
        text: valid.text,
        text_type: valid.text_type.to_owned(),
        voice_id: valid.voice_id,
        format: valid.format.as_str().to_owned(),
        sample_rate: valid.sample_rate.map(|r| r as i32),
        speed: valid.speed,
        status: GenerationStatus::Processing.as_str().to_owned(),
        credits: valid.credits as i64,
        characters: valid.characters as i64,
        metadata: valid.metadata,
        idempotency_key: None,
        request_hash: None,
        traceparent: shared::trace::current_traceparent(),
    };
    let key_limit = principal.credit_limit;
    let max_in_flight = principal.plan.max_in_flight;
    let settle = claim.clone();
    let headers_location = format!("/v1/generations/{id}");
    let created = state
        .db
        .run(move |conn| {
            let processing = if count_busy {
                let n = Generation::processing_up_to(conn, cap).map_err(DbError::from)?;
                if n >= cap {
                    return Err(system_busy());
                }
                Some(n)
            } else {
                None
            };
            conn.transaction::<_, ApiError, _>(|conn| {
                let g = Generation::create_within_limits(conn, &new, key_limit, max_in_flight)
                    .map_err(|e| match e {
                        CreateError::KeyCreditLimit => payment_required(
                            "key_credit_limit",
                            format!("this generation costs {} credits, more than this key may still spend this period", new.credits),
                        ),
                        CreateError::InsufficientCredits => payment_required(
                            "insufficient_credits",
                            format!(
                                "this generation costs {} credits, more than are left in this period",
                                new.credits
                            ),
                        ),
                        CreateError::TooManyInFlight(limit) => ApiError::new(
                            StatusCode::TOO_MANY_REQUESTS,
                            "rate_limited",
                            format!("this workspace has {limit} generations processing, its plan's limit; wait for one to finish"),
                        ),
                        CreateError::Db(e) => DbError::from(e).into(),
                    })?;
                let body = serde_json::to_vec(&Accepted::of(&g)).map_err(ApiError::internal)?;
                // With an Idempotency-Key the response is stored in this
                // transaction: charged once, answered the same every time.
                if let Some(claim) = &settle {
                    let headers = [
                        ("content-type", "application/json".to_owned()),
                        ("location", headers_location),
                        (CREDITS_HEADER, g.credits.to_string()),
                    ];
                    if !claim.settle(conn, StatusCode::ACCEPTED, &headers, &body)? {
                        return Err(ApiError::new(
                            StatusCode::CONFLICT,
                            "idempotency_request_in_progress",
                            "another request took over this Idempotency-Key; retry to get its answer",
                        ));
                    }
                }
                Ok((g, body))
            })
            .map(|created| (created, processing))
        })
        .await;
    let (created, body) = match created {
        Ok((created, processing)) => {
            if let Some(n) = processing {
                state.busy.record(n);
            }
            created
        }
        Err(e) => {
            if e.status == StatusCode::TOO_MANY_REQUESTS {
                req.extensions_mut().insert(RateLimitInfo {
                    limit: max_in_flight.unwrap_or(0),
                    remaining: 0,
                    reset_secs: 1,
                    retry_after_secs: Some(1),
                });
            }
            return Err(e);
        }
    };
    if let Some(claim) = &claim {
        claim.mark_settled();
    }

    // Committed: from here the generation is never lost. If the publish
    // fails, the sweeper publishes it later; the client still gets its 202.
    // The client does not wait longer than `PUBLISH_WAIT` for the broker's
    // confirm (a queue electing its leader after a broker restart holds it
    // for seconds): a job confirmed after that is not marked published, and
    // the sweeper's second copy is skipped by the worker.
    if tokio::time::timeout(PUBLISH_WAIT, publish_job(state, id))
        .await
        .is_err()
    {
        tracing::warn!(generation_id = %id, "no publish confirm within {PUBLISH_WAIT:?}; the sweeper will publish the job");
    }
    Ok((created, body))
}

impl Accepted {
    fn of(g: &Generation) -> Self {
        Accepted {
            id: GenerationId(g.id),
            status: "processing",
            voice_id: g.voice_id.clone(),
            credits: g.credits,
            created_at: g.created_at,
        }
    }
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
    let limit = match q.limit.unwrap_or(DEFAULT_PAGE) {
        n @ 1..=MAX_PAGE => n,
        n => {
            return Err(ApiError::bad_request(
                "invalid_parameter",
                format!("limit must be between 1 and {MAX_PAGE}, not {n}"),
            )
            .with_param("limit"));
        }
    };
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
    let bad_cursor = || {
        ApiError::bad_request(
            "invalid_cursor",
            "cursor is not one this list returned as nextCursor",
        )
        .with_param("cursor")
    };
    let after = q
        .cursor
        .map(|c| GenerationId::parse(&c).ok_or_else(bad_cursor))
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

fn system_busy() -> ApiError {
    let mut e = ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "system_busy",
        "voiceprod is busy with other work right now; nothing was charged, try again shortly",
    );
    e.retry_after_secs = Some(5);
    e
}

/// How long a request waits for the confirm of its job's publish.
const PUBLISH_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// Publishes the job (waiting for the broker's confirm) and queues the mark
/// that it was published; a failure is left to the sweeper.
pub async fn publish_job(state: &State, id: GenerationId) {
    let job = JobMessage::SynthesizeV1 { generation_id: id };
    let exchange = state.publisher.broker().topology().jobs_exchange();
    match state
        .publisher
        .publish(&exchange, SYNTH_ROUTING_KEY, &id.to_string(), &job)
        .await
    {
        // Marked in a batch with others (`crate::published`).
        Ok(()) => state.published.mark(id.0),
        Err(e) => {
            tracing::warn!(error = %e, generation_id = %id, "job not published; the sweeper will retry")
        }
    }
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
