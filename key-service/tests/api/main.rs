//! key-service integration tests on a fresh database each.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod bootstrap;
mod helpers;
mod keys;
mod secrets;
mod verify;
