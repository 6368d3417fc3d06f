#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The synth-worker's integration tests: real espeak-ng engine processes,
//! real PostgreSQL and RabbitMQ (a fresh database and topology per test).

mod app;
mod audio;
mod cloning;
mod consumer;
mod e2e;
mod engine;
mod helpers;
mod kokoro;
mod neural;
mod observability;
mod openai;
mod ssml;
