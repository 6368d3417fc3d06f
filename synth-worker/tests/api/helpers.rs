//! Test support: settings on a fresh database and topology with the real
//! engine binary, row factories, and a tap on the events exchange.

use std::path::PathBuf;

use chrono::Utc;
use futures_util::StreamExt;
use lapin::options::{BasicConsumeOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use shared::amqp::{Broker, Incoming};
use shared::db::Db;
use shared::ids::GenerationId;
use shared::messages::{EventMessage, JobMessage};
use shared::models::{Generation, NewGeneration, NewWorkspace, Workspace};
use shared::settings::Settings;
use synth_worker::State;
pub use testkit::eventually;
use uuid::Uuid;

pub use testkit::DEADLINE;
pub use testkit::{SEED_TEXT as SEED, rms};

/// The engine children are this test binary's sibling: the real worker.
pub fn engine_program() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_synth-worker"))
}

pub fn settings(engines: usize) -> Settings {
    let mut s = testkit::test_settings().expect("test settings");
    s.worker.engines = engines;
    s.worker.engine_program = Some(engine_program());
    s
}

pub async fn ctx() -> (Settings, State) {
    let s = tokio::task::spawn_blocking(|| settings(1)).await.unwrap();
    let ctx = State::build(&s).await.expect("worker context");
    (s, ctx)
}

pub async fn insert_workspace(db: &Db, credits_included: i64) -> Uuid {
    db.run(move |c| {
        let id = Uuid::now_v7();
        let name = format!("ws-{}", id.simple());
        Workspace::insert(
            c,
            &NewWorkspace {
                id,
                name: &name,
                plan: "scale",
                credits_included,
                period_start: Utc::now(),
            },
        )
        .map(|w| w.id)
        .map_err(anyhow::Error::from)
    })
    .await
    .unwrap()
}

pub fn new_generation(workspace_id: Uuid, text: &str) -> NewGeneration {
    NewGeneration {
        id: Uuid::now_v7(),
        workspace_id,
        api_key_id: None,
        text: text.to_owned(),
        text_type: "text".to_owned(),
        voice_id: shared::voices::DEFAULT_VOICE_ID.to_owned(),
        format: "wav".to_owned(),
        sample_rate: None,
        speed: 1.0,
        status: "processing".to_owned(),
        credits: 1,
        characters: text.chars().count() as i64,
        metadata: None,
        idempotency_key: None,
        request_hash: None,
        traceparent: None,
    }
}

pub async fn insert_generation(db: &Db, new: NewGeneration) -> Generation {
    db.run(move |c| Generation::create(c, &new).map_err(|e| anyhow::anyhow!("{e}")))
        .await
        .unwrap()
}

pub async fn find(db: &Db, id: Uuid) -> Generation {
    db.run(move |c| Generation::find(c, id).map_err(anyhow::Error::from))
        .await
        .unwrap()
        .unwrap()
}

pub async fn workspace(db: &Db, id: Uuid) -> Workspace {
    db.run(move |c| Workspace::find(c, id).map_err(anyhow::Error::from))
        .await
        .unwrap()
}

/// A delivery of the job for `id`, as the broker would hand it over.
pub fn job(id: Uuid, redelivered: bool) -> Incoming {
    let msg = JobMessage::synthesize(GenerationId(id));
    Incoming {
        data: serde_json::to_vec(&msg).unwrap(),
        redelivered,
        message_id: Some(format!("job-{id}")),
        published_at: Some(chrono::Utc::now()),
    }
}

/// An exclusive queue bound to `generation.*` on the events exchange.
pub struct EventTap {
    consumer: lapin::Consumer,
    _channel: lapin::Channel,
}

/// One message seen by the tap.
pub struct Seen {
    pub routing_key: String,
    pub message_id: Option<String>,
    pub body: serde_json::Value,
}

impl Seen {
    pub fn event(&self) -> shared::messages::Event {
        let EventMessage::V1(e) = serde_json::from_value(self.body.clone()).unwrap();
        e
    }
}

impl EventTap {
    pub async fn bind(broker: &Broker) -> Self {
        let ch = broker.channel().await.unwrap();
        let exclusive = QueueDeclareOptions {
            exclusive: true,
            auto_delete: true,
            ..Default::default()
        };
        let q = ch
            .queue_declare("".into(), exclusive, FieldTable::default())
            .await
            .unwrap();
        let name = q.name().to_string();
        ch.queue_bind(
            name.clone().into(),
            broker.topology().events_exchange().into(),
            "generation.*".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
        let opts = BasicConsumeOptions {
            no_ack: true,
            ..Default::default()
        };
        let consumer = ch
            .basic_consume(name.into(), "tap".into(), opts, FieldTable::default())
            .await
            .unwrap();
        Self {
            consumer,
            _channel: ch,
        }
    }

    /// The next message, failing the test if none comes before the deadline.
    pub async fn next(&mut self) -> Seen {
        let d = tokio::time::timeout(DEADLINE, self.consumer.next())
            .await
            .expect("no event before the deadline")
            .expect("tap closed")
            .unwrap();
        Seen {
            routing_key: d.routing_key.to_string(),
            message_id: d.properties.message_id().as_ref().map(|m| m.to_string()),
            body: serde_json::from_slice(&d.data).unwrap(),
        }
    }
}

/// Publishes a marker after which nothing else may have been published:
/// reading up to it proves the absence of an event without waiting.
pub async fn publish_sentinel(ctx: &State) -> String {
    let marker = Uuid::new_v4().to_string();
    let exchange = ctx.broker.topology().events_exchange();
    ctx.publisher
        .publish(
            &exchange,
            "generation.sentinel",
            &marker,
            &serde_json::json!({ "sentinel": marker }),
        )
        .await
        .unwrap();
    marker
}

type EspeakJob = Box<dyn FnOnce(&mut synth_worker::engine::Espeak) + Send>;

/// Runs `f` with this test process's libespeak-ng, on the one thread that
/// owns it: the library may be initialised once per process and is not
/// thread-safe, so tests that phonemise share it.
pub fn with_espeak<T: Send + 'static>(
    f: impl FnOnce(&mut synth_worker::engine::Espeak) -> T + Send + 'static,
) -> T {
    use std::sync::mpsc;
    use std::sync::{Mutex, OnceLock};
    static JOBS: OnceLock<Mutex<mpsc::Sender<EspeakJob>>> = OnceLock::new();
    let jobs = JOBS.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<EspeakJob>();
        std::thread::spawn(move || {
            let mut espeak = synth_worker::engine::Espeak::init().expect("libespeak-ng");
            for job in rx {
                job(&mut espeak);
            }
        });
        Mutex::new(tx)
    });
    let (tx, rx) = mpsc::channel();
    jobs.lock()
        .unwrap()
        .send(Box::new(move |e: &mut synth_worker::engine::Espeak| {
            let _ = tx.send(f(e));
        }))
        .unwrap();
    rx.recv().expect("the espeak thread answers")
}
