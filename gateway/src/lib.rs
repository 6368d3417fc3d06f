//! gateway: the public REST API (`/v1/*`). Authenticates keys through the
//! key service, validates requests, reserves credits and creates
//! generations in one transaction, publishes jobs with publisher confirms,
//! serves audio (with the key, or through a signed expiring URL), and
//! registers webhook endpoints.

pub mod audio;
pub mod audio_answer;
pub mod auth;
pub mod auth_limit;
pub mod busy;
pub mod completions;
pub mod creates;
pub mod domain;
pub mod generations;
pub mod idempotency;
pub mod key_service;
pub mod keys_listener;
pub mod last_used;
pub mod openapi;
pub mod pagination;
pub mod published;
pub mod rate_limit;
pub mod routes;
pub mod startup;
pub mod state;
pub mod streams;
pub mod sweeper;

pub use startup::Application;
