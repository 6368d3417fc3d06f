//! The gateway's integration tests: real PostgreSQL, real RabbitMQ, the
//! real key service over HTTP, a fresh database and queue prefix per test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod audio;
mod auth;
mod bad_input;
mod batching;
mod broker;
mod cloning;
mod console;
mod credits;
mod design;
mod generations;
mod helpers;
mod idempotency;
mod keys;
mod kokoro;
mod limits;
mod listing;
mod observability;
mod openapi;
mod previews;
mod redrive;
mod ssml;
mod streaming;
mod usage;
mod validation;
mod voices;
mod webhooks;
