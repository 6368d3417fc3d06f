//! [`WorkerCtx`]: everything a job needs — database, broker publisher,
//! object store and the engine pool — built once from `Settings`.
//!
//! Reads `database.*`, `amqp.*`, `storage.root`, `worker.engines` (0 = one
//! per core) and `worker.engine_program` (default: this executable).

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use object_store::ObjectStore;
use shared::amqp::{Broker, Publisher};
use shared::db::Db;
use shared::settings::Settings;

use crate::engine::EnginePool;

pub struct WorkerCtx {
    pub db: Db,
    pub broker: Arc<Broker>,
    pub publisher: Publisher,
    pub store: Arc<dyn ObjectStore>,
    pub engines: EnginePool,
}

impl WorkerCtx {
    /// Opens the store and starts the engine processes. The database and
    /// broker are connected lazily, so this succeeds while they are down.
    pub async fn build(settings: &Settings) -> anyhow::Result<Self> {
        let db = Db::new(&settings.database);
        let metrics = shared::metrics::Metrics::new(settings.telemetry.metrics_token.clone());
        let broker = Broker::with_metrics(&settings.amqp, "synth-worker", metrics);
        let publisher = Publisher::new(broker.clone());
        let store =
            shared::storage::open(&settings.storage).context("Failed to open the object store")?;
        let program = engine_program(settings)?;
        let engines = EnginePool::start(program, settings.engine_count())
            .await
            .context("Failed to start the engine processes")?;
        Ok(Self {
            db,
            broker,
            publisher,
            store,
            engines,
        })
    }
}

/// `worker.engine_program`, or this very binary (which has `engine`).
fn engine_program(settings: &Settings) -> anyhow::Result<PathBuf> {
    match &settings.worker.engine_program {
        Some(p) => Ok(p.clone()),
        None => std::env::current_exe().context("Failed to find the worker's own executable"),
    }
}
