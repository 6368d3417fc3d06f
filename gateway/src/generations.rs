//! Creating a generation, for every route that does (`POST
//! /v1/generations`, `POST /v1/audio/speech`) and for the sweeper:
//! [`accept`] charges and inserts a validated request in one transaction,
//! then [`publish_job`] publishes its job with a publisher confirm.
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
use diesel::Connection;
use serde::Serialize;

use shared::amqp::SYNTH_ROUTING_KEY;
use shared::db::DbError;
use shared::http::ApiError;
use shared::ids::{GenerationId, WorkspaceId};
use shared::messages::JobMessage;
use shared::models::generation::CreateError;
use shared::models::{Generation, GenerationStatus, NewGeneration};
use shared::voices::cloned::{self, ClonedVoice};

use crate::auth::Principal;
use crate::domain::generation_request::ValidGeneration;
use crate::idempotency::Claim;
use crate::rate_limit::RateLimitInfo;
use crate::state::State;

/// The cost of an accepted generation, in credits (also in the body).
pub const CREDITS_HEADER: &str = "x-credits-charged";

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
/// `claim` in it), then publishes its job: the 202 body and the row. Shared
/// with `POST /v1/audio/speech`, which then waits for the row to finish.
pub async fn accept(
    req: &HttpRequest,
    state: &State,
    principal: &Principal,
    valid: ValidGeneration,
    claim: Option<Claim>,
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

fn payment_required(code: &'static str, message: String) -> ApiError {
    ApiError::new(StatusCode::PAYMENT_REQUIRED, code, message)
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
    let job = JobMessage::synthesize(id);
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

/// Whether `id` is a ready cloned voice of `workspace` (for generations).
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
    Ok(found.is_some_and(|v| v.status == "ready"))
}
