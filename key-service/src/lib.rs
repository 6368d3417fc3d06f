//! key-service: workspaces and API keys. Owns `workspaces` and `api_keys`;
//! answers the gateway's internal verify calls; bootstraps a workspace and
//! its first key from the command line.

pub mod bootstrap;
pub mod delegation;
pub mod keys;
pub mod routes;
pub mod startup;
pub mod state;

pub use startup::Application;
