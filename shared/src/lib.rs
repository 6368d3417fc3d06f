//! What two or more voiceprod services need, and nothing else.

pub mod alignment;
pub mod amqp;
pub mod api_key;
pub mod credits;
pub mod db;
pub mod formats;
pub mod http;
pub mod ids;
pub mod keys_api;
pub mod messages;
pub mod metrics;
pub mod models;
pub mod previews;
pub mod schema;
pub mod server;
pub mod settings;
pub mod signing;
pub mod ssml;
pub mod storage;
pub mod streams;
pub mod targets;
pub mod tasks;
pub mod telemetry;
pub mod time;
pub mod trace;
pub mod voices;
