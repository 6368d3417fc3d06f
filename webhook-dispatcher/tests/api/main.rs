//! Integration tests of the webhook dispatcher against the real PostgreSQL,
//! RabbitMQ and a local HTTP receiver: one binary, modules by behaviour.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod consumer;
mod crash;
mod delivery;
mod helpers;
mod lease;
mod replicas;
mod retries;
