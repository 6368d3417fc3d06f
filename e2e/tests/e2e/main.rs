//! The end-to-end tests: key-service, gateway, synth-worker (with real
//! engine processes) and webhook-dispatcher in this process
//! (`testkit::stack::Stack`), on a fresh database and AMQP prefix per test,
//! over real PostgreSQL, RabbitMQ and HTTP; nothing is mocked. Run with
//! `cargo test -p e2e`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cloning;
mod design;
mod helpers;
mod kokoro;
mod lanes;
mod observability;
mod openai;
mod previews;
mod whole_path;
