//! Test support shared by every crate's integration tests (feature
//! `testing`): a fresh, migrated database per test and a unique AMQP
//! prefix, so tests run in parallel on the one PostgreSQL and RabbitMQ;
//! a real HTTP receiver standing in for a customer's webhook endpoint; and
//! a capture of the JSON log lines.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod logs;
pub mod receiver;

use diesel::{Connection, PgConnection, RunQueryDsl};
use secrecy::SecretString;

use crate::settings::Settings;

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
    crate::db::run_migrations(&mut conn)?;
    Ok(url)
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
    // The models `deploy/fetch-models` put in the repository's .cache.
    let models = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../.cache/models");
    s.piper.voices_dir = models.join("voices");
    s.piper.onnxruntime = models.join("onnxruntime/libonnxruntime.so.1.32.0");
    s.kokoro.dir = models.join("kokoro");
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
