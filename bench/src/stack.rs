//! The services a benchmark measures, started in this process on a fresh
//! database and AMQP prefix by the test kit's `Stack` (as the end-to-end
//! tests start them), and a bootstrapped workspace with one API key. The
//! services run until the process exits.

use anyhow::Context as _;
use shared::settings::Settings;
pub use testkit::stack::{Stack, bootstrap};

/// Which services besides key-service and the gateway.
#[derive(Debug, Clone, Copy)]
pub struct With {
    pub worker: bool,
    pub dispatcher: bool,
}

/// A fresh database and AMQP prefix (see `testkit::test_settings`).
pub async fn settings() -> anyhow::Result<Settings> {
    tokio::task::spawn_blocking(testkit::test_settings)
        .await
        .context("Failed to create a database")?
}

/// Back to the production defaults where the test settings differ for
/// speed of tests (pool size, worker engines, dispatcher poll, sweeper,
/// quorum queues); the database, prefix, ports and storage stay the test's.
pub fn production_defaults(settings: &mut Settings) -> anyhow::Result<()> {
    let d = Settings::defaults()?;
    settings.database.pool_max_size = d.database.pool_max_size;
    settings.worker.engines = d.worker.engines;
    settings.worker.interactive_engines = d.worker.interactive_engines;
    settings.dispatcher.poll_interval_ms = d.dispatcher.poll_interval_ms;
    settings.gateway.sweeper_interval_ms = d.gateway.sweeper_interval_ms;
    settings.gateway.sweeper_grace_ms = d.gateway.sweeper_grace_ms;
    settings.amqp.quorum_queues = d.amqp.quorum_queues;
    Ok(())
}

/// The worker's engine processes, for a benchmark's description.
pub fn engines(settings: &Settings) -> String {
    format!(
        "{} espeak-ng, {} Piper and {} Kokoro engine process(es), and {} espeak-ng, {} Piper and {} \
         Kokoro more kept for interactive work",
        settings.engine_count(),
        settings.piper.engines,
        settings.kokoro.engines,
        settings.worker.interactive_engines,
        settings.worker.interactive_engines,
        settings.kokoro.interactive_engines,
    )
}

/// Starts key-service and the gateway (and what `with` asks for), waits
/// until the gateway is ready, and bootstraps a workspace `bench` on `plan`.
pub async fn start(settings: Settings, with: With, plan: &str) -> anyhow::Result<Stack> {
    let mut builder = Stack::builder(settings)
        .workspace("bench", plan)
        .wait_ready();
    if with.worker {
        builder = builder.worker();
    }
    if with.dispatcher {
        builder = builder.dispatcher();
    }
    builder.start().await
}
