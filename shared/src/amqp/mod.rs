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

#[cfg(test)]
mod tests {
    use super::Lane;

    #[test]
    fn short_texts_are_interactive_and_the_rest_bulk() {
        assert_eq!(Lane::of(1, 300), Lane::Interactive);
        assert_eq!(Lane::of(300, 300), Lane::Interactive);
        assert_eq!(Lane::of(301, 300), Lane::Bulk);
        assert_eq!(Lane::of(1, 0), Lane::Bulk, "0 turns the lane off");
        assert_eq!(Lane::of(-1, 300), Lane::Bulk);
    }
}

/// Header with the publish time in milliseconds since the epoch (the AMQP
/// `timestamp` property only has seconds): the queue lag metric.
pub const PUBLISHED_AT_HEADER: &str = "x-published-at-ms";
/// Routing key of synthesis jobs on the jobs exchange (the bulk lane).
pub const SYNTH_ROUTING_KEY: &str = "synth";
/// Routing key of interactive jobs on the jobs exchange.
pub const INTERACTIVE_ROUTING_KEY: &str = "synth.interactive";

/// The two lanes of synthesis jobs, each a queue of its own: short texts
/// (at most `amqp.interactive_max_chars` characters) are interactive, and
/// a worker serves them first — its engines give them the next free slot
/// before any bulk chunk — so they never wait behind long or bulk work.
/// A generation's lane is a function of its length alone, so the sweeper
/// re-publishes it where it was published.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lane {
    Interactive,
    Bulk,
}

impl Lane {
    pub const ALL: [Lane; 2] = [Lane::Interactive, Lane::Bulk];

    /// The lane of a text of `characters` characters.
    pub fn of(characters: i64, interactive_max_chars: u64) -> Self {
        if u64::try_from(characters).is_ok_and(|c| c <= interactive_max_chars) {
            Self::Interactive
        } else {
            Self::Bulk
        }
    }

    pub fn routing_key(self) -> &'static str {
        match self {
            Self::Interactive => INTERACTIVE_ROUTING_KEY,
            Self::Bulk => SYNTH_ROUTING_KEY,
        }
    }

    /// For logs and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Interactive => "interactive",
            Self::Bulk => "bulk",
        }
    }
}

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
