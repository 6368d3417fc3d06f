#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The synth-worker's integration tests: real espeak-ng engine processes,
//! real PostgreSQL and RabbitMQ (a fresh database and topology per test).
//! The tests through all four services are in `e2e/`.

mod app;
mod audio;
mod consumer;
mod engine;
mod helpers;
mod kokoro;
mod leases;
mod neural;
mod parts;
mod previews;
mod ssml;
