//! The test kit of every crate's integration tests, the end-to-end tests
//! and the benchmarks (a dev-dependency; the bench links it as it runs
//! these stacks): a fresh, migrated database per test and a unique AMQP
//! prefix ([`test_settings`]), so tests run in parallel on the one
//! PostgreSQL and RabbitMQ; the services started in-process on them
//! ([`stack::Stack`]); a real HTTP receiver standing in for a customer's
//! webhook endpoint ([`receiver`]); a capture of the JSON log lines
//! ([`logs`]); and [`eventually`], the one way a test waits for an effect.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod logs;
pub mod receiver;
pub mod stack;

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use diesel::{Connection, PgConnection, RunQueryDsl};
use secrecy::SecretString;

use shared::settings::{ONNXRUNTIME_LIB, Settings};

/// The seed request's text (docs/api.md), what most tests render.
pub const SEED_TEXT: &str = "Welcome to Voice Production AI. Let's build something that speaks.";

/// Prose of varied, numbered sentences, as many as fit in `characters`
/// characters: a long text whose every sentence differs (for the parts of
/// a long generation, say).
pub fn long_prose(characters: usize) -> String {
    const SENTENCES: [&str; 5] = [
        "The committee met on Tuesday to discuss the harbour's new timetable.",
        "Nobody expected the ferry to arrive before noon, least of all the captain.",
        "Three hundred and twelve passengers waited patiently on the pier.",
        "A gull stole a sandwich from a child, who laughed instead of crying.",
        "By evening the fog had lifted, and the lighthouse blinked in the dusk.",
    ];
    let mut out = String::new();
    for i in 0.. {
        let next = format!("{} Section {i}. ", SENTENCES[i % SENTENCES.len()]);
        if out.chars().count() + next.chars().count() > characters {
            break;
        }
        out.push_str(&next);
    }
    out.trim_end().to_owned()
}

/// The root mean square of 16-bit samples: above ~300 is speech, not
/// silence, at the levels the engines render.
pub fn rms(samples: &[i16]) -> f64 {
    let sum: f64 = samples.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
    (sum / samples.len().max(1) as f64).sqrt()
}

/// `samples` as a mono 16-bit WAV file at `rate` Hz (an upload's sample).
pub fn wav(samples: &[i16], rate: u32) -> Vec<u8> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut out = std::io::Cursor::new(Vec::new());
    let mut w = hound::WavWriter::new(&mut out, spec).unwrap();
    for &s in samples {
        w.write_sample(s).unwrap();
    }
    w.finalize().unwrap();
    out.into_inner()
}

/// The server tests run against (`VOICEPROD_TEST_DATABASE_URL`, default
/// the local PostgreSQL's `postgres` database).
pub fn admin_database_url() -> String {
    std::env::var("VOICEPROD_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// Test databases older than this are dropped by the next test run.
const STALE_AFTER_SECS: u64 = 3600;

#[derive(diesel::QueryableByName)]
struct Datname {
    #[diesel(sql_type = diesel::sql_types::Text)]
    datname: String,
}

/// Drops the databases of earlier test runs: `test_<unix time>_<uuid>`
/// created over an hour ago. Best effort; a failure only leaves them.
fn drop_stale_databases(conn: &mut PgConnection, now: u64) {
    let Ok(names) =
        diesel::sql_query("SELECT datname FROM pg_database WHERE datname LIKE 'test\\_%'")
            .load::<Datname>(conn)
    else {
        return;
    };
    for Datname { datname } in names {
        let created = datname
            .split('_')
            .nth(1)
            .and_then(|t| t.parse::<u64>().ok());
        if created.is_some_and(|t| t + STALE_AFTER_SECS < now) {
            let _ = diesel::sql_query(format!("DROP DATABASE IF EXISTS {datname} WITH (FORCE)"))
                .execute(conn);
        }
    }
}

/// Creates `test_<unix time>_<uuid>`, migrates it, and returns its URL.
pub fn fresh_database() -> anyhow::Result<String> {
    let admin = admin_database_url();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let name = format!("test_{now}_{}", uuid::Uuid::new_v4().simple());
    let mut conn = PgConnection::establish(&admin)?;
    drop_stale_databases(&mut conn, now);
    diesel::sql_query(format!("CREATE DATABASE {name}")).execute(&mut conn)?;
    let mut url = url::Url::parse(&admin)?;
    url.set_path(&name);
    let url = url.to_string();
    let mut conn = PgConnection::establish(&url)?;
    shared::db::run_migrations(&mut conn)?;
    Ok(url)
}

/// The models `deploy/fetch-models` put in the repository's `.cache/models`,
/// or `VOICEPROD_MODELS_DIR` when set (as `deploy/fetch-models` reads it).
pub fn models_dir() -> PathBuf {
    match std::env::var_os("VOICEPROD_MODELS_DIR") {
        Some(dir) => dir.into(),
        None => std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../.cache/models"),
    }
}

/// An exclusive, auto-deleted queue on `broker`'s events exchange bound to
/// `binding` (`voice.*`, `generation.*`), consumed without acks: what the
/// services publish, as a test sees it. Keep the channel while consuming.
pub async fn event_tap(
    broker: &shared::amqp::Broker,
    binding: &str,
) -> (lapin::Channel, lapin::Consumer) {
    use lapin::options::{BasicConsumeOptions, QueueBindOptions, QueueDeclareOptions};
    use lapin::types::FieldTable;
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
    ch.queue_bind(
        q.name().clone(),
        broker.topology().events_exchange().into(),
        binding.into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    let no_ack = BasicConsumeOptions {
        no_ack: true,
        ..Default::default()
    };
    let consumer = ch
        .basic_consume(
            q.name().clone(),
            "tap".into(),
            no_ack,
            FieldTable::default(),
        )
        .await
        .unwrap();
    (ch, consumer)
}

/// A real person's speech: the five LibriVox clips (one male reader,
/// 24.7 s, 16 kHz mono WAV) `deploy/fetch-models` takes from the
/// pocketsphinx 5.1.1 sdist, each as its WAV file's bytes.
pub fn librivox_samples() -> Vec<Vec<u8>> {
    let dir = models_dir().join("reference/librivox");
    ["0870", "0880", "0890", "0920", "0930"]
        .iter()
        .map(|clip| {
            let path = dir.join(format!("{clip}.wav"));
            std::fs::read(&path).unwrap_or_else(|e| {
                panic!(
                    "{} is missing ({e}); run deploy/fetch-models",
                    path.display()
                )
            })
        })
        .collect()
}

/// Default settings pointed at a fresh database, a unique queue prefix,
/// a temporary audio directory, and port 0 everywhere.
pub fn test_settings() -> anyhow::Result<Settings> {
    let mut s = Settings::defaults()?;
    s.database.url = SecretString::from(fresh_database()?);
    s.database.pool_max_size = 8;
    if let Ok(amqp) = std::env::var("VOICEPROD_TEST_AMQP_URL") {
        s.amqp.url = SecretString::from(amqp);
    } else {
        s.amqp.url = SecretString::from("amqp://guest:guest@127.0.0.1:5672/%2f");
    }
    s.amqp.prefix = format!("test-{}.", uuid::Uuid::new_v4().simple());
    // Queues of finished tests disappear a minute after their last consumer.
    s.amqp.queue_expires_ms = Some(60_000);
    // Classic queues: cheap to create and expire by the hundred (see
    // `AmqpSettings::quorum_queues`); `broker.rs` in the gateway's tests
    // checks the quorum topology itself.
    s.amqp.quorum_queues = false;
    s.gateway.port = 0;
    s.key_service.port = 0;
    s.worker.port = 0;
    s.dispatcher.port = 0;
    s.worker.engines = 1;
    // Tests run many workers at once: no engines kept for interactive work
    // (the engine tests start pools with a reserve of their own).
    s.worker.interactive_engines = 0;
    let models = models_dir();
    s.piper.voices_dir = models.join("voices");
    s.piper.onnxruntime = models.join("onnxruntime").join(ONNXRUNTIME_LIB);
    s.kokoro.dir = models.join("kokoro");
    s.cloning.encoder = models.join("encoder").join("embedder.int8.onnx");
    s.dispatcher.poll_interval_ms = 100;
    // Tests deliver to a receiver on 127.0.0.1, as the dev stack does.
    s.webhooks.allowed_target_cidrs = vec!["127.0.0.0/8".to_owned(), "::1/128".to_owned()];
    s.gateway.sweeper_interval_ms = 200;
    s.gateway.sweeper_grace_ms = 1_000;
    s.storage.root =
        std::env::temp_dir().join(format!("voiceprod-test-{}", uuid::Uuid::new_v4().simple()));
    Ok(s)
}

/// The value of one sample in a Prometheus text exposition: the series
/// `name` whose labels include all of `labels`; `None` if there is none.
pub fn metric_value(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (series_name, series_labels) = match series.split_once('{') {
                Some((n, rest)) => (n, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            let matches = series_name == name
                && labels.iter().all(|(k, v)| {
                    series_labels
                        .split(',')
                        .any(|p| p == format!("{k}=\"{v}\""))
                });
            matches.then(|| value.parse().ok()).flatten()
        })
}

/// How long [`eventually`] waits.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// Polls `check` every 25 ms until it returns `Some`, and panics naming
/// `what` after [`DEADLINE`].
pub async fn eventually<T, F, Fut>(what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    eventually_within(DEADLINE, what, check).await
}

/// [`eventually`] with a deadline of its own: for a test whose point is
/// that the effect comes within `deadline`.
pub async fn eventually_within<T, F, Fut>(deadline: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let until = tokio::time::Instant::now() + deadline;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < until,
            "timed out after {deadline:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}
