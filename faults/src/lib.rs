//! The fault suite's harness (issue 8). The cases in `tests/cases/` run the
//! four services as real processes (the built binaries, configured through
//! `VOICEPROD__*` variables) on a PostgreSQL and a RabbitMQ node of the
//! suite's own, started by `deploy/tests/faults`, which the cases kill,
//! stop and restart through `deploy/tests/faults ctl`.
//!
//! Environment (set by `deploy/tests/faults`): `FAULTS_CTL` (the script),
//! `FAULTS_BIN_DIR` (where the service binaries are), `FAULTS_PORT_BASE`
//! (services on BASE.., the webhook receiver on BASE+10), `FAULTS_PG_URL`
//! (the suite's PostgreSQL, database `postgres`), `FAULTS_AMQP_URL` (the
//! suite's RabbitMQ), `FAULTS_LOG_DIR` (service logs, one folder per case).
//!
//! This is test support: it panics on what it cannot set up.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod checks;
pub mod env;
pub mod load;
pub mod receiver;
pub mod stack;

pub use env::Env;
pub use load::post_many;
pub use receiver::Receiver;
pub use stack::{Posted, Service, Stack};
