//! RabbitMQ, one module per role: the topology of docs/architecture.md
//! declared in code ([`topology`]), a connection that comes back by itself
//! ([`connection`]), a publisher that waits for the broker's confirm
//! ([`publisher`]), the consumer loop every queue consumer runs
//! ([`consumer`]), and the listener of a replica's private queue
//! ([`listener`]).
//!
//! Names carry `amqp.prefix`, so each test gets a topology of its own.

pub mod connection;
pub mod consumer;
pub mod listener;
pub mod publisher;
pub mod topology;

pub use connection::Broker;
pub use consumer::{Incoming, Outcome, retry_delay, run_consumer};
pub use listener::{Listener, run_private_listener};
pub use publisher::Publisher;
pub use topology::Topology;

/// Header with the publish time in milliseconds since the epoch (the AMQP
/// `timestamp` property only has seconds): the queue lag metric.
pub const PUBLISHED_AT_HEADER: &str = "x-published-at-ms";
/// Routing key of synthesis jobs on the jobs exchange.
pub const SYNTH_ROUTING_KEY: &str = "synth";

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("broker unreachable")]
    Unreachable(#[source] lapin::Error),
    #[error("timed out talking to the broker")]
    Timeout,
    #[error(transparent)]
    Amqp(#[from] lapin::Error),
    #[error("the broker refused the message (nack)")]
    Nacked,
    #[error("the message could not be routed to any queue")]
    Unroutable,
    #[error("could not encode the message")]
    Encode(#[from] serde_json::Error),
}
