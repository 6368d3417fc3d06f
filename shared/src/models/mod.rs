//! Rows of the tables more than one service touches, and the queries on
//! them; each function takes `&mut PgConnection` and returns `QueryResult`.

pub mod create_batch;
pub mod generation;
pub mod idempotency;
pub mod lease;
pub mod part;
pub mod usage;
pub mod voice_clone;
pub mod webhook;
pub mod webhook_delivery;
pub mod workspace;

pub use generation::{Generation, GenerationStatus, NewGeneration};
pub use lease::{Claim, QueueProgress, Redrive};
pub use part::{GenerationPart, PartState};
pub use usage::NewUsageEvent;
pub use voice_clone::{ClaimedClone, VoiceClone};
pub use webhook::{EndpointChanges, NewWebhookEndpoint, WebhookEndpoint};
pub use webhook_delivery::{NewWebhookAttempt, Requeue, WebhookAttempt, WebhookDelivery};
pub use workspace::{NewWorkspace, Workspace};
