//! An answer that is the audio of a generation it creates: `POST
//! /v1/audio/speech` and `POST /v1/generations?stream=true`. The audio
//! goes out as the worker streams it (`crate::streams`): chunked, the
//! first sentence as soon as it is rendered; FLAC (whose header needs the
//! whole), and a generation that finishes before any chunk reached us, is
//! answered with the stored file once the row says it is done
//! (`crate::completions` wakes the wait). A clean end of a streamed body
//! means a completed, charged generation; anything else breaks the
//! transfer, never passes a short file as whole.

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::http::header::CACHE_CONTROL;
use actix_web::{HttpRequest, HttpResponse, web};
use tokio::time::Instant;

use shared::db::DbError;
use shared::formats::AudioFormat;
use shared::http::ApiError;
use shared::ids::GenerationId;
use shared::models::{Generation, GenerationStatus};

use crate::audio::audio_response;
use crate::auth::Principal;
use crate::completions::announced;
use crate::domain::generation_request::ValidGeneration;
use crate::generations::accept_as;
use crate::idempotency::Claim;
use crate::state::State;
use crate::streams::{Chunk, Receiving};

/// Re-read the row this often even when no event arrives (events lost in
/// a reconnect), and much more often while the listener is down.
const SAFETY_POLL: Duration = Duration::from_secs(2);
const FALLBACK_POLL: Duration = Duration::from_millis(250);

/// Accepts `valid` (charged and queued as every generation, `claim`
/// settled with it) and answers with its audio, waiting at most
/// `gateway.speech_timeout_ms` from `started` for it to begin: the id,
/// the credits charged, and the answer — its audio, or (once the
/// generation exists) why there is none: 502 `generation_failed`
/// (refunded) or 504 `generation_timeout` (it goes on, charged once).
/// `Err` is a refusal before anything was charged.
pub async fn accept_and_answer(
    req: &HttpRequest,
    state: &web::Data<State>,
    principal: &Principal,
    valid: ValidGeneration,
    claim: Option<Claim>,
    started: Instant,
) -> Result<(GenerationId, i64, Result<HttpResponse, ApiError>), ApiError> {
    // Listen before the job is published, so no chunk is missed.
    let id = GenerationId::new();
    let format = valid.format;
    let stream = (format != AudioFormat::Flac).then(|| state.streams.open(id));
    let stream_to = stream
        .as_ref()
        .map(|_| state.streams.routing_key().to_owned());
    let (g, _) = accept_as(req, state, principal, valid, claim, id, stream_to).await?;
    let credits = g.credits;
    let deadline = started + Duration::from_millis(state.settings.gateway.speech_timeout_ms);
    let answer = match wait_for(state, &g, stream, deadline).await {
        Ok(Waited::Audio(first, stream)) => Ok(streamed(state.clone(), g, format, first, stream)),
        Ok(Waited::Finished(done)) => finished(state, *done).await,
        Ok(Waited::TimedOut) => Err(timed_out(id, state)),
        Err(e) => Err(e),
    };
    Ok((id, credits, answer))
}

/// What an answer waited for.
enum Waited {
    /// The first chunk of streamed audio, and the rest to come.
    Audio(Chunk, Receiving),
    /// The generation finished (completed or failed) before any audio was
    /// streamed to us: answered from the row and the stored file.
    Finished(Box<Generation>),
    TimedOut,
}

/// Waits until the first streamed audio of generation `g` arrives on
/// `stream`, or it is no longer processing, or `deadline` passes.
/// Subscribes before each read of the row, so an event between the two is
/// not missed. A render that failed before sending audio (its job is
/// retried, or the generation failed), or a stream joined after its start,
/// is not an answer: the next attempt or the row is.
async fn wait_for(
    state: &State,
    g: &Generation,
    mut stream: Option<Receiving>,
    deadline: Instant,
) -> Result<Waited, ApiError> {
    let id = GenerationId(g.id);
    let workspace = g.workspace_id;
    let mut rx = state.completions.subscribe();
    loop {
        let row = state
            .db
            .run(move |conn| {
                Generation::find_in_workspace(conn, workspace, id.0).map_err(DbError::from)
            })
            .await?
            .ok_or_else(|| ApiError::internal(anyhow::anyhow!("generation {id} vanished")))?;
        if row.status() != GenerationStatus::Processing {
            return Ok(Waited::Finished(Box::new(row)));
        }
        if Instant::now() >= deadline {
            return Ok(Waited::TimedOut);
        }
        let poll = if state.completions.is_listening() {
            SAFETY_POLL
        } else {
            FALLBACK_POLL
        };
        let chunk = async {
            match stream.as_mut() {
                Some(s) => s.recv().await,
                None => std::future::pending().await,
            }
        };
        let got = tokio::select! {
            _ = tokio::time::sleep_until(deadline) => None,
            _ = tokio::time::sleep(poll) => None,
            _ = announced(&mut rx, id) => None,
            Some(chunk) = chunk => Some(chunk),
        };
        if let Some(chunk) = got.filter(|c| c.header.seq == 0 && c.header.error.is_none())
            && let Some(stream) = stream.take()
        {
            return Ok(Waited::Audio(chunk, stream));
        }
    }
}

/// The longest pause between two chunks of a stream before the answer is
/// ended as broken (a worker that died mid-render: its job is retried,
/// but this answer cannot be resumed).
const STREAM_IDLE: Duration = Duration::from_secs(60);

/// Where a streamed answer is.
enum Phase {
    /// The next chunk expected is number `seq` (the first is at hand).
    Streaming {
        pending: Option<Chunk>,
        seq: u32,
    },
    /// The last chunk went out: the end waits for the generation.
    Completing,
    Ended,
}

/// The audio as the worker streams it: chunked, in order, from `first` to
/// the chunk marked last; the body ends once the generation has completed
/// too (the worker stores the file and completes the row just after its
/// last chunk), so a clean end means a completed, charged generation. A
/// gap, another attempt's chunk, an error, a pause over [`STREAM_IDLE`] or
/// a generation that does not complete within it ends the body without its
/// final chunk: the client sees a broken transfer, never a short file
/// passed as whole.
fn streamed(
    state: web::Data<State>,
    g: Generation,
    format: AudioFormat,
    first: Chunk,
    stream: Receiving,
) -> HttpResponse {
    let attempt = first.header.attempt;
    let start = Phase::Streaming {
        pending: Some(first),
        seq: 0,
    };
    let id = GenerationId(g.id);
    let g = std::sync::Arc::new(g);
    let broken = move |why: String| {
        tracing::warn!(generation_id = %id, why, "a streamed answer broke; ending it");
        Err(std::io::Error::other(why))
    };
    let body = futures_util::stream::unfold((start, stream), move |(phase, mut stream)| {
        let (state, g) = (state.clone(), g.clone());
        async move {
            let (pending, seq) = match phase {
                Phase::Ended => return None,
                Phase::Completing => {
                    let deadline = Instant::now() + STREAM_IDLE;
                    let why = match wait_for(&state, &g, None, deadline).await {
                        Ok(Waited::Finished(row))
                            if row.status() == GenerationStatus::Completed =>
                        {
                            return None;
                        }
                        Ok(Waited::Finished(row)) => format!("the generation {}", row.status),
                        Ok(_) => format!("the generation did not complete within {STREAM_IDLE:?}"),
                        Err(e) => e.to_string(),
                    };
                    return Some((broken(why), (Phase::Ended, stream)));
                }
                Phase::Streaming { pending, seq } => (pending, seq),
            };
            let chunk = match pending {
                Some(first) => first,
                None => match tokio::time::timeout(STREAM_IDLE, stream.recv()).await {
                    Ok(Some(chunk)) => chunk,
                    Ok(None) | Err(_) => {
                        let why = format!("no audio for {STREAM_IDLE:?}");
                        return Some((broken(why), (Phase::Ended, stream)));
                    }
                },
            };
            let h = &chunk.header;
            if h.attempt != attempt || h.seq != seq || h.error.is_some() {
                let why = format!(
                    "the render stopped mid-stream (chunk {} of attempt {}, expected {seq} of {attempt}; error {:?})",
                    h.seq, h.attempt, h.error
                );
                return Some((broken(why), (Phase::Ended, stream)));
            }
            let next = if h.last {
                Phase::Completing
            } else {
                Phase::Streaming {
                    pending: None,
                    seq: seq + 1,
                }
            };
            Some((Ok(chunk.audio), (next, stream)))
        }
    });
    HttpResponse::Ok()
        .content_type(format.content_type())
        .insert_header((CACHE_CONTROL, "no-store"))
        .streaming(body)
}

/// The audio of a finished generation, or why there is none.
async fn finished(state: &State, g: Generation) -> Result<HttpResponse, ApiError> {
    if g.status() == GenerationStatus::Failed {
        let reason = g
            .error
            .as_ref()
            .and_then(|e| e.get("message"))
            .and_then(|m| m.as_str())
            .unwrap_or("synthesis failed");
        return Err(ApiError::new(
            StatusCode::BAD_GATEWAY,
            "generation_failed",
            format!(
                "generation {} failed: {reason}; its credits were refunded",
                GenerationId(g.id)
            ),
        ));
    }
    audio_response(state, g).await
}

fn timed_out(id: GenerationId, state: &State) -> ApiError {
    ApiError::new(
        StatusCode::GATEWAY_TIMEOUT,
        "generation_timeout",
        format!(
            "generation {id} did not finish within {} ms; it goes on and is charged once: \
             fetch it with GET /v1/generations/{id}",
            state.settings.gateway.speech_timeout_ms
        ),
    )
}
