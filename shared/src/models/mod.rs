//! Rows of the tables more than one service touches, and the queries on
//! them; each function takes `&mut PgConnection` and returns `QueryResult`.

pub mod generation;
pub mod usage;
pub mod webhook;
pub mod workspace;

pub use generation::{Generation, GenerationStatus, NewGeneration};
pub use usage::NewUsageEvent;
pub use webhook::{NewWebhookEndpoint, WebhookEndpoint};
pub use workspace::{NewWorkspace, Workspace};
