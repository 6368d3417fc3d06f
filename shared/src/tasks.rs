//! Background passes every service runs the same way.

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// Runs `pass` every `interval` (the first after one interval) until
/// `cancel` fires. A failed pass is logged as `what` and the next one
/// retries: for recovery loops such as the gateway's sweeper and the
/// worker's event relay, whose passes are idempotent.
pub async fn every<F, Fut, T, E>(
    interval: Duration,
    cancel: CancellationToken,
    what: &str,
    mut pass: F,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: std::fmt::Display,
{
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tokio::time::sleep(interval) => {}
        }
        if let Err(e) = pass().await {
            tracing::warn!(
                error = format!("{e:#}"),
                task = what,
                "pass failed; the next one retries"
            );
        }
    }
}
