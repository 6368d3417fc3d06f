//! `preview.v1` jobs (`shared::previews`): render a fixed sentence in an
//! engine voice with the generations' render path (`render::plan`,
//! `render::produce`, at interactive priority) and put the clip in the
//! object store at the job's key, for the gateway to serve.
//!
//! No database, no lease, no event: a preview is a pure function of its
//! job, so a second copy of a job only writes the same clip again (and a
//! copy that finds the clip already there does nothing). A job whose key is
//! not the key of its voice, text and format is refused unrendered: the
//! store is written only where `shared::previews::key` says. A preview that
//! can never render (a voice this worker lacks) leaves its reason at
//! `shared::previews::error_key`; a transient failure is retried.

use object_store::ObjectStoreExt;
use object_store::path::Path;
use shared::amqp::Outcome;
use shared::formats::AudioFormat;
use shared::models::Generation;
use shared::previews::{self, Failure};
use shared::voices::EngineVoice;

use crate::engine::Priority;
use crate::render::{self, JobError, Plan};
use crate::state::State;

/// The voice id a preview's render is logged with (it has no generation).
const PREVIEW_VOICE_ID: &str = "voice_preview";

/// Decides about one `preview.v1` job.
pub async fn handle(
    ctx: &State,
    voice: EngineVoice,
    text: &str,
    format: AudioFormat,
    key: &str,
) -> Outcome {
    let expected = previews::key(&voice, text, format);
    if expected.as_ref() != key {
        tracing::error!(
            key,
            expected = %expected,
            "preview job's key is not its voice's; rejecting"
        );
        return Outcome::Reject;
    }
    match render_and_store(ctx, &voice, text, format, &expected).await {
        Ok(()) => Outcome::Ack,
        Err(JobError::Permanent { code, message }) => {
            tracing::warn!(code, message, "preview cannot be rendered");
            let failure = Failure {
                code: code.to_owned(),
                message,
            };
            match serde_json::to_vec(&failure) {
                Ok(note) => {
                    let at = previews::error_key(&expected);
                    if let Err(e) = ctx.store.put(&at, note.into()).await {
                        tracing::warn!(error = %e, "could not store why the preview failed");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "could not encode why the preview failed"),
            }
            Outcome::Ack
        }
        Err(JobError::Transient(e)) => {
            tracing::warn!(
                error = format!("{e:#}"),
                "preview failed for now; it will be retried"
            );
            Outcome::Retry
        }
    }
}

/// Renders `text` in `voice` as `format` and puts it at `key`, unless a
/// clip is already there.
async fn render_and_store(
    ctx: &State,
    voice: &EngineVoice,
    text: &str,
    format: AudioFormat,
    key: &Path,
) -> Result<(), JobError> {
    match ctx.store.head(key).await {
        Ok(_) => {
            tracing::info!(%key, "preview already stored");
            return Ok(());
        }
        Err(object_store::Error::NotFound { .. }) => {}
        Err(e) => {
            return Err(JobError::Transient(
                anyhow::Error::new(e).context("Failed to look for the preview"),
            ));
        }
    }
    let row = Generation::unsaved(PREVIEW_VOICE_ID, text, format.as_str(), 1.0);
    let plan = Plan {
        priority: Priority::Interactive,
        ..render::plan(&row, voice, &ctx.voices_dir)?
    };
    let started = std::time::Instant::now();
    let produced = render::produce(render::pool_of(ctx, &plan), &plan).await?;
    ctx.store
        .put(key, produced.bytes.into())
        .await
        .map_err(|e| {
            JobError::Transient(anyhow::Error::new(e).context("Failed to store the preview"))
        })?;
    tracing::info!(
        %key,
        duration_ms = produced.duration_ms,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "preview rendered and stored"
    );
    Ok(())
}
