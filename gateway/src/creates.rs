//! Group commit of creates (`POST /v1/generations`, `POST /v1/audio/speech`):
//! a request hands its validated generation to [`Creates`] and waits; a
//! committer takes whatever is waiting when it is free — no timer, at most
//! `gateway.create_batch_max` — and decides and writes all of it in one
//! transaction (`shared::models::create_batch`): one lock per workspace,
//! multi-row inserts, one commit. Each request is decided exactly as if it
//! ran alone, in arrival order, so a batch never overspends and a 402 goes
//! to the requests that no longer fit. `gateway.create_committers`
//! committers run at once (different workspaces commit in parallel; one
//! hot workspace's batches follow one another on its row lock).
//!
//! Idempotency claims are locked first in the transaction (`Claim::hold`):
//! a claim another request took over answers 409 and is not charged; a
//! held one is settled with the 202 in the same transaction. A batch that
//! fails with a database error is run again one request at a time, so only
//! the requests that fail alone fail. The 202s follow the commit and then
//! the broker's confirms of the batch's jobs, published together
//! (`crate::generations::publish_job`); nothing is answered 202 that is not
//! committed.

use std::sync::Arc;

use actix_web::http::StatusCode;
use diesel::{Connection, PgConnection};
use tokio::sync::{Mutex, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use shared::db::DbError;
use shared::http::ApiError;
use shared::ids::GenerationId;
use shared::models::create_batch::{Create, Refusal, create_many};
use shared::models::{Generation, NewGeneration};
use shared::trace::TraceContext;

use crate::generations::{Accepted, CREDITS_HEADER, PUBLISH_WAIT, publish_job};
use crate::idempotency::Claim;
use crate::state::State;

/// A validated create waiting for its batch.
pub struct Pending {
    pub new: NewGeneration,
    pub key_credit_limit: Option<i64>,
    pub max_in_flight: Option<i64>,
    /// The request's `Idempotency-Key` claim, settled with the 202.
    pub claim: Option<Claim>,
    /// Where the job asks for its audio to be streamed (`crate::streams`).
    pub stream_to: Option<String>,
}

/// The 202 body and the row, or the request's error.
pub type Outcome = Result<(Generation, Vec<u8>), ApiError>;

/// The queue of creates and its committers' end of it.
pub struct Creates {
    tx: mpsc::UnboundedSender<(Pending, oneshot::Sender<Outcome>)>,
    rx: Mutex<mpsc::UnboundedReceiver<(Pending, oneshot::Sender<Outcome>)>>,
}

impl Default for Creates {
    fn default() -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        Self {
            tx,
            rx: Mutex::new(rx),
        }
    }
}

impl Creates {
    /// Queues `pending` for the next batch and waits for its outcome.
    pub async fn create(&self, pending: Pending) -> Outcome {
        let (reply, outcome) = oneshot::channel();
        if self.tx.send((pending, reply)).is_err() {
            return Err(stopping());
        }
        outcome.await.unwrap_or_else(|_| Err(stopping()))
    }
}

fn stopping() -> ApiError {
    ApiError::unavailable(
        "service_unavailable",
        "the gateway is stopping; nothing was charged, try again",
        anyhow::anyhow!("no committer took the create"),
    )
}

/// Runs the committers until `stop` (cancel it once the HTTP server has
/// stopped: a request in flight waits for a committer).
pub async fn run(state: Arc<State>, stop: CancellationToken) {
    let committers = state.settings.gateway.create_committers.max(1);
    futures_util::future::join_all((0..committers).map(|_| committer(state.clone(), stop.clone())))
        .await;
}

async fn committer(state: Arc<State>, stop: CancellationToken) {
    let max = state.settings.gateway.create_batch_max.max(1);
    loop {
        let batch = {
            let mut rx = state.creates.rx.lock().await;
            let first = tokio::select! {
                () = stop.cancelled() => return,
                first = rx.recv() => match first {
                    Some(first) => first,
                    None => return,
                },
            };
            let mut batch = vec![first];
            while batch.len() < max {
                match rx.try_recv() {
                    Ok(next) => batch.push(next),
                    Err(_) => break,
                }
            }
            batch
        };
        let (pending, replies): (Vec<Pending>, Vec<oneshot::Sender<Outcome>>) =
            batch.into_iter().unzip();
        state
            .publisher
            .broker()
            .metrics()
            .observe_create_batch(pending.len());
        let jobs: Vec<(Option<String>, Option<String>)> = pending
            .iter()
            .map(|p| (p.new.traceparent.clone(), p.stream_to.clone()))
            .collect();
        let outcomes = commit(&state, pending).await;
        // Publishing and answering go on beside the next batch.
        let state = state.clone();
        tokio::spawn(async move {
            publish_accepted(&state, &outcomes, &jobs).await;
            for (reply, outcome) in replies.into_iter().zip(outcomes) {
                // A client that went away is answered by nobody; its
                // generation is committed and published all the same.
                let _ = reply.send(outcome);
            }
        });
    }
}

/// The batch's transaction (and the system-busy count before it).
async fn commit(state: &State, pending: Vec<Pending>) -> Vec<Outcome> {
    let n = pending.len();
    let cap = state.settings.gateway.max_processing_generations;
    let count_busy = cap > 0 && state.busy.must_count(cap);
    let committed = state
        .db
        .run(move |conn| {
            let processing = if count_busy {
                let n = Generation::processing_up_to(conn, cap)?;
                if n >= cap {
                    return Ok::<_, DbError>((
                        Some(n),
                        pending.iter().map(|_| Err(system_busy())).collect(),
                    ));
                }
                Some(n)
            } else {
                None
            };
            Ok((processing, commit_or_one_by_one(conn, &pending)))
        })
        .await;
    match committed {
        Ok((processing, outcomes)) => {
            if let Some(n) = processing {
                state.busy.record(n);
            }
            outcomes
        }
        Err(e) => {
            let e = ApiError::from(e);
            (0..n).map(|_| Err(copy_of(&e))).collect()
        }
    }
}

/// The batch in one transaction; if that fails, each request in its own,
/// so a request that fails alone fails only itself.
fn commit_or_one_by_one(conn: &mut PgConnection, pending: &[Pending]) -> Vec<Outcome> {
    match conn.transaction(|conn| commit_batch(conn, pending)) {
        Ok(outcomes) => outcomes,
        Err(e) if pending.len() == 1 || e.is_unavailable() => {
            let e = ApiError::from(e);
            pending.iter().map(|_| Err(copy_of(&e))).collect()
        }
        Err(e) => {
            tracing::warn!(error = %e, batch = pending.len(), "a batch of creates failed; committing them one by one");
            pending
                .iter()
                .map(|p| {
                    conn.transaction(|conn| commit_batch(conn, std::slice::from_ref(p)))
                        .map_err(ApiError::from)
                        .and_then(|mut outcomes| {
                            outcomes.pop().unwrap_or_else(|| {
                                Err(ApiError::internal(anyhow::anyhow!("no outcome")))
                            })
                        })
                })
                .collect()
        }
    }
}

/// Holds the claims, decides and writes the creates, settles the claims of
/// those accepted: the outcome of each request.
fn commit_batch(conn: &mut PgConnection, pending: &[Pending]) -> Result<Vec<Outcome>, DbError> {
    // Claims first, in one order for every transaction.
    let mut claimed: Vec<(usize, &Claim)> = pending
        .iter()
        .enumerate()
        .filter_map(|(i, p)| p.claim.as_ref().map(|c| (i, c)))
        .collect();
    claimed.sort_by(|a, b| a.1.lock_order().cmp(&b.1.lock_order()));
    let mut lost = vec![false; pending.len()];
    for (i, claim) in claimed {
        lost[i] = !claim.hold(conn)?;
    }
    let creates: Vec<Create<'_>> = pending
        .iter()
        .zip(&lost)
        .filter(|(_, lost)| !**lost)
        .map(|(p, _)| Create {
            new: &p.new,
            key_credit_limit: p.key_credit_limit,
            max_in_flight: p.max_in_flight,
        })
        .collect();
    let mut decided = create_many(conn, &creates)?.into_iter();
    let mut outcomes = Vec::with_capacity(pending.len());
    for (p, lost) in pending.iter().zip(lost) {
        if lost {
            outcomes.push(Err(claim_lost()));
            continue;
        }
        let Some(outcome) = decided.next() else {
            return Err(DbError::Query(diesel::result::Error::NotFound));
        };
        outcomes.push(match outcome {
            Ok(g) => Ok(accepted(conn, p, g)?),
            Err(refusal) => Err(refused(refusal, p.new.credits)),
        });
    }
    Ok(outcomes)
}

/// The 202 body of `g`, stored with the request's claim.
fn accepted(
    conn: &mut PgConnection,
    p: &Pending,
    g: Generation,
) -> Result<(Generation, Vec<u8>), DbError> {
    let body = serde_json::to_vec(&Accepted::of(&g))
        .map_err(|e| DbError::Query(diesel::result::Error::SerializationError(Box::new(e))))?;
    if let Some(claim) = &p.claim {
        let headers = [
            ("content-type", "application/json".to_owned()),
            (
                "location",
                format!("/v1/generations/{}", GenerationId(g.id)),
            ),
            (CREDITS_HEADER, g.credits.to_string()),
        ];
        // Held since the start of the transaction, so it cannot be lost.
        if !claim.settle(conn, StatusCode::ACCEPTED, &headers, &body)? {
            return Err(DbError::Query(diesel::result::Error::NotFound));
        }
    }
    Ok((g, body))
}

/// Publishes the jobs of the accepted creates at once and waits for their
/// confirms, at most `PUBLISH_WAIT`: a job not confirmed by then is left to
/// the sweeper (`crate::sweeper`); the client still gets its 202. Each job
/// carries the trace of the request that created it and where to stream
/// its audio (`jobs`, by index).
async fn publish_accepted(
    state: &State,
    outcomes: &[Outcome],
    jobs: &[(Option<String>, Option<String>)],
) {
    let jobs: Vec<(GenerationId, i64, TraceContext, Option<String>)> = outcomes
        .iter()
        .zip(jobs)
        .filter_map(|(o, (trace, stream_to))| {
            let (g, _) = o.as_ref().ok()?;
            let trace = trace
                .as_deref()
                .and_then(TraceContext::parse)
                .unwrap_or_else(TraceContext::new_root);
            Some((GenerationId(g.id), g.characters, trace, stream_to.clone()))
        })
        .collect();
    if jobs.is_empty() {
        return;
    }
    let ids = jobs.len();
    let all = futures_util::future::join_all(jobs.into_iter().map(
        |(id, characters, trace, stream_to)| {
            trace.scope(publish_job(state, id, characters, stream_to))
        },
    ));
    if tokio::time::timeout(PUBLISH_WAIT, all).await.is_err() {
        tracing::warn!(
            jobs = ids,
            "not every publish confirmed within {PUBLISH_WAIT:?}; the sweeper will publish the rest"
        );
    }
}

fn refused(refusal: Refusal, credits: i64) -> ApiError {
    match refusal {
        Refusal::KeyCreditLimit => payment_required(
            "key_credit_limit",
            format!(
                "this generation costs {credits} credits, more than this key may still spend this period"
            ),
        ),
        Refusal::InsufficientCredits => payment_required(
            "insufficient_credits",
            format!("this generation costs {credits} credits, more than are left in this period"),
        ),
        Refusal::TooManyInFlight(limit) => ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!(
                "this workspace has {limit} generations processing, its plan's limit; wait for one to finish"
            ),
        ),
    }
}

fn claim_lost() -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "idempotency_request_in_progress",
        "another request took over this Idempotency-Key; retry to get its answer",
    )
}

fn payment_required(code: &'static str, message: String) -> ApiError {
    ApiError::new(StatusCode::PAYMENT_REQUIRED, code, message)
}

pub fn system_busy() -> ApiError {
    let mut e = ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "system_busy",
        "voiceprod is busy with other work right now; nothing was charged, try again shortly",
    );
    e.retry_after_secs = Some(5);
    e
}

/// The same answer for another request of the batch (an `ApiError` is
/// not `Clone`: its cause is kept as text).
fn copy_of(e: &ApiError) -> ApiError {
    let mut copy = ApiError::new(e.status, e.code.clone(), e.message.clone());
    copy.retry_after_secs = e.retry_after_secs;
    copy.param = e.param.clone();
    if let Some(source) = &e.source {
        copy.source = Some(anyhow::anyhow!("{source:#}"));
    }
    copy
}
