//! Test support shared by every crate's integration tests (feature
//! `testing`): a fresh, migrated database per test and a unique AMQP
//! prefix, so tests run in parallel on the one PostgreSQL and RabbitMQ;
//! and a real HTTP receiver standing in for a customer's webhook endpoint.
#![allow(clippy::unwrap_used, clippy::expect_used)]

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

/// Creates `test_<uuid>`, migrates it, and returns its URL.
pub fn fresh_database() -> anyhow::Result<String> {
    let admin = admin_database_url();
    let name = format!("test_{}", uuid::Uuid::new_v4().simple());
    let mut conn = PgConnection::establish(&admin)?;
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
    s.gateway.port = 0;
    s.key_service.port = 0;
    s.worker.port = 0;
    s.dispatcher.port = 0;
    s.worker.engines = 1;
    s.dispatcher.poll_interval_ms = 100;
    // Tests deliver to a receiver on 127.0.0.1, as the dev stack does.
    s.webhooks.allowed_target_cidrs = vec!["127.0.0.0/8".to_owned(), "::1/128".to_owned()];
    s.gateway.sweeper_interval_ms = 200;
    s.gateway.sweeper_grace_ms = 1_000;
    s.storage.root =
        std::env::temp_dir().join(format!("voiceprod-test-{}", uuid::Uuid::new_v4().simple()));
    Ok(s)
}
