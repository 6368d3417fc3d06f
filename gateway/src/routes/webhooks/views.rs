//! What the webhook routes answer: endpoints (never with a secret, but for
//! the answers that issue one) and deliveries with their attempts (pages of
//! them are `crate::pagination::PageView`).

use chrono::{DateTime, Utc};
use serde::Serialize;

use shared::ids::{DeliveryId, MessageId, WebhookId};
use shared::messages::EventType;
use shared::models::{WebhookAttempt, WebhookDelivery, WebhookEndpoint};

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EndpointView {
    id: WebhookId,
    #[schema(example = "https://example.com/webhooks/voiceprod")]
    url: String,
    #[schema(value_type = Vec<EventType>)]
    events: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    enabled: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    disabled_reason: Option<String>,
    #[serde(serialize_with = "shared::time::serialize")]
    created_at: DateTime<Utc>,
    #[serde(serialize_with = "shared::time::serialize")]
    updated_at: DateTime<Utc>,
    #[serde(serialize_with = "shared::time::serialize_opt")]
    last_success_at: Option<DateTime<Utc>>,
    /// While the previous secret still signs, after a rotation.
    #[serde(
        serialize_with = "shared::time::serialize_opt",
        skip_serializing_if = "Option::is_none"
    )]
    previous_secret_expires_at: Option<DateTime<Utc>>,
    /// Only in the answers that issue a secret (create, rotate):
    /// `whsec_` + base64, shown once.
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<String>,
}

impl EndpointView {
    pub fn new(e: WebhookEndpoint, with_secret: bool) -> Self {
        let now = Utc::now();
        Self {
            id: WebhookId(e.id),
            url: e.url,
            events: e.events,
            description: e.description,
            enabled: e.enabled,
            disabled_reason: e.disabled_reason.filter(|_| !e.enabled),
            created_at: e.created_at,
            updated_at: e.updated_at,
            last_success_at: e.last_success_at,
            previous_secret_expires_at: e
                .previous_secret_expires_at
                .filter(|until| *until > now && e.previous_secret.is_some()),
            secret: with_secret.then_some(e.secret),
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AttemptView {
    attempt: i32,
    status_code: Option<i32>,
    duration_ms: i64,
    response_body: Option<String>,
    error: Option<String>,
    #[serde(serialize_with = "shared::time::serialize")]
    created_at: DateTime<Utc>,
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryView {
    id: DeliveryId,
    /// The `webhook-id` of every attempt.
    event_id: MessageId,
    #[schema(value_type = EventType)]
    event: String,
    /// `pending`, `succeeded` or `failed`.
    status: String,
    #[serde(
        serialize_with = "shared::time::serialize_opt",
        skip_serializing_if = "Option::is_none"
    )]
    next_attempt_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "shared::time::serialize")]
    created_at: DateTime<Utc>,
    /// Oldest first.
    attempts: Vec<AttemptView>,
}

impl DeliveryView {
    /// `d` with its attempts, picked out of `attempts`.
    pub fn new(d: WebhookDelivery, attempts: &[WebhookAttempt]) -> Self {
        Self {
            id: DeliveryId(d.id),
            event_id: MessageId(d.event_id),
            event: d.event_type,
            next_attempt_at: (d.status == "pending").then_some(d.next_attempt_at),
            status: d.status,
            created_at: d.created_at,
            attempts: attempts
                .iter()
                .filter(|a| a.delivery_id == d.id)
                .map(|a| AttemptView {
                    attempt: a.attempt,
                    status_code: a.status_code,
                    duration_ms: a.duration_ms,
                    response_body: a.response_body.clone(),
                    error: a.error.clone(),
                    created_at: a.created_at,
                })
                .collect(),
        }
    }
}
