//! Creating a generation, for every route that does (`POST
//! /v1/generations`, `POST /v1/audio/speech`) and for the sweeper:
//! [`accept`] charges and inserts a validated request in one transaction
//! with the others waiting (`crate::creates`, group commit), then
//! [`publish_job`] publishes its job with a publisher confirm.
//!
//! Creation is refused before anything is charged with 503 `system_busy`
//! when more than `gateway.max_processing_generations` are processing in the
//! whole system, and with 429 `rate_limited` when the workspace already has
//! its plan's `max_in_flight` processing (counted in the create transaction).
//! A job that is committed but not confirmed is left to the sweeper
//! (`crate::sweeper`), which calls [`publish_job`] again.

use actix_web::http::StatusCode;
use actix_web::{HttpMessage, HttpRequest};
use chrono::{DateTime, Utc};
use serde::Serialize;

use shared::amqp::Lane;
use shared::db::DbError;
use shared::http::ApiError;
use shared::ids::{GenerationId, WorkspaceId};
use shared::messages::JobMessage;
use shared::models::{Generation, GenerationStatus, NewGeneration};
use shared::voices::cloned::{self, ClonedVoice};

use crate::auth::Principal;
use crate::creates::Pending;
use crate::domain::generation_request::ValidGeneration;
use crate::idempotency::Claim;
use crate::rate_limit::RateLimitInfo;
use crate::state::State;

/// The cost of an accepted generation, in credits (also in the body).
pub const CREDITS_HEADER: &str = "x-credits-charged";
/// The generation an answer that is its audio is about (success or not).
pub const GENERATION_HEADER: &str = "x-generation-id";

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

/// Charges and creates a validated generation in one transaction (settling
/// `claim` in it) and publishes its job: the 202 body and the row. Shared
/// with `POST /v1/audio/speech`, which then waits for the row to finish.
pub async fn accept(
    req: &HttpRequest,
    state: &State,
    principal: &Principal,
    valid: ValidGeneration,
    claim: Option<Claim>,
) -> Result<(Generation, Vec<u8>), ApiError> {
    accept_as(
        req,
        state,
        principal,
        valid,
        claim,
        GenerationId::new(),
        None,
    )
    .await
}

/// As [`accept`], for a generation of id `id` chosen by the caller, whose
/// job asks the worker to stream its audio to `stream_to`
/// (`crate::streams`; the caller listens before this publishes).
pub async fn accept_as(
    req: &HttpRequest,
    state: &State,
    principal: &Principal,
    valid: ValidGeneration,
    claim: Option<Claim>,
    id: GenerationId,
    stream_to: Option<String>,
) -> Result<(Generation, Vec<u8>), ApiError> {
    // Refuse before charging anything when the broker is down or the system
    // is overloaded: 503, nothing changed.
    state.ensure_broker().await?;
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
    let max_in_flight = principal.plan.max_in_flight;
    // Charged and inserted with whatever else is waiting, in one
    // transaction; the job published with the batch's (`crate::creates`).
    let created = state
        .creates
        .create(Pending {
            new,
            key_credit_limit: principal.credit_limit,
            max_in_flight,
            claim: claim.clone(),
            stream_to,
        })
        .await;
    match created {
        Ok(created) => {
            if let Some(claim) = &claim {
                claim.mark_settled();
            }
            Ok(created)
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
            Err(e)
        }
    }
}

impl Accepted {
    pub fn of(g: &Generation) -> Self {
        Accepted {
            id: GenerationId(g.id),
            status: "processing",
            voice_id: g.voice_id.clone(),
            credits: g.credits,
            created_at: g.created_at,
        }
    }
}

/// How long a request waits for the confirm of its job's publish.
pub const PUBLISH_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// Publishes the job (waiting for the broker's confirm) and queues the mark
/// that it was published; a failure is left to the sweeper. With
/// `stream_to`, the worker streams the audio there too. A generation of
/// `characters` goes to its lane's queue (`shared::amqp::Lane`).
pub async fn publish_job(
    state: &State,
    id: GenerationId,
    characters: i64,
    stream_to: Option<String>,
) {
    let job = JobMessage::synthesize_streamed(id, stream_to);
    let exchange = state.publisher.broker().topology().jobs_exchange();
    let lane = Lane::of(characters, state.settings.amqp.interactive_max_chars);
    match state
        .publisher
        .publish(&exchange, lane.routing_key(), &id.to_string(), &job)
        .await
    {
        // Marked in a batch with others (`crate::published`).
        Ok(()) => state.published.mark(id.0),
        Err(e) => {
            tracing::warn!(error = %e, generation_id = %id, "job not published; the sweeper will retry")
        }
    }
}

/// Whether `id` is a ready cloned voice of `workspace` (for generations);
/// a voice still being cloned, or whose clone failed, is a 422.
pub async fn is_usable_cloned_voice(
    state: &State,
    workspace: WorkspaceId,
    id: &str,
) -> Result<bool, ApiError> {
    if !cloned::is_cloned_id(id) {
        return Ok(false);
    }
    let id = id.to_owned();
    let found = state
        .db
        .run(move |c| ClonedVoice::find_in_workspace(c, workspace.0, &id).map_err(DbError::from))
        .await?;
    match found.as_ref().map(|v| v.status.as_str()) {
        Some("processing") => Err(ApiError::unprocessable(
            "voice_not_ready",
            "the voice is still being cloned; use it once GET /v1/voices/{id} says ready (or voice.ready arrives)",
        )
        .with_param("voiceId")),
        Some("failed") => Err(ApiError::unprocessable(
            "voice_failed",
            "the voice could not be cloned (GET /v1/voices/{id} says why); delete it and clone again",
        )
        .with_param("voiceId")),
        Some(_) => Ok(true),
        None => Ok(false),
    }
}
