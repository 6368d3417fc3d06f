//! The webhook dispatcher: consumes events from `webhooks.events`, fans each
//! out to the subscribed endpoints of its workspace as rows of
//! `webhook_deliveries`, and delivers those rows as signed
//! [Standard Webhooks](https://www.standardwebhooks.com/) requests with
//! retries, leases and a delivery log (docs/api.md "Webhooks").
//!
//! The database is the source of truth: an event is acked only once its
//! deliveries are committed, and a delivery is only ever sent by the
//! dispatcher holding its lease.

pub mod consumer;
pub mod delivery;
pub mod schedule;
pub mod startup;
pub mod state;
pub mod target;

pub use startup::Application;
pub use state::{DeliveryConfig, State};
