//! The event consumer: turns one event from `webhooks.events` into one
//! pending `webhook_deliveries` row per enabled endpoint of its workspace
//! subscribed to its type (or, for `webhook.test`, to its one target
//! endpoint), then acks.
//!
//! Invariants: the rows of one event are inserted in one transaction and the
//! message is acked only after it commits (docs/architecture.md "Messaging"), so
//! an event is never lost; `ON CONFLICT (event_id, endpoint_id) DO NOTHING`
//! makes a redelivered event a no-op, so it is never fanned out twice. The
//! HTTP work happens later, in the delivery loop, never here: a slow
//! receiver cannot hold up the queue.

use diesel::prelude::*;
use shared::amqp::{Incoming, Outcome};
use shared::db::DbError;
use shared::messages::{Event, EventMessage};
use shared::models::WebhookEndpoint;
use shared::schema::webhook_deliveries;
use uuid::Uuid;

use crate::state::State;

/// Where the stored payload keeps the event's `traceparent` (not part of
/// the event: the webhook body is rendered from the event's own fields).
pub const TRACE_FIELD: &str = "traceparent";

/// Handles one delivery of the events queue; `run_consumer` settles it.
pub async fn handle(ctx: &State, incoming: Incoming) -> Outcome {
    let event = match serde_json::from_slice::<EventMessage>(&incoming.data) {
        Ok(EventMessage::V1(event)) => event,
        Err(e) => {
            // A poison message: it will never parse, so dead-letter it.
            tracing::warn!(error = %e, message_id = ?incoming.message_id, "unparseable event rejected");
            return Outcome::Reject;
        }
    };
    let (event_id, event_type) = (event.id, event.event);
    match fan_out(ctx, event).await {
        Ok(created) => {
            tracing::info!(%event_id, event = event_type.as_str(), created, redelivered = incoming.redelivered, "event fanned out");
            if created > 0 {
                ctx.wake.notify_one();
            }
            Outcome::Ack
        }
        Err(e) => {
            // Nothing was committed (one transaction): put it back.
            tracing::warn!(error = %e, unavailable = e.is_unavailable(), %event_id, "could not record deliveries; requeueing");
            Outcome::Retry
        }
    }
}

#[derive(Insertable)]
#[diesel(table_name = webhook_deliveries)]
struct NewDelivery {
    id: Uuid,
    event_id: Uuid,
    endpoint_id: Uuid,
    workspace_id: Uuid,
    event_type: String,
    payload: serde_json::Value,
    status: &'static str,
}

/// Inserts the pending deliveries of `event`; returns how many were new.
/// `next_attempt_at` takes the column default, `now()`: due at once.
pub async fn fan_out(ctx: &State, event: Event) -> Result<usize, DbError> {
    // The whole event is stored, so the body (and a fresh audioUrl) can be
    // rendered at send time, after the message itself is long gone.
    let mut payload = serde_json::to_value(&event)
        .map_err(|e| DbError::Query(diesel::result::Error::SerializationError(Box::new(e))))?;
    // The event's trace goes with it, so every attempt (even a retry hours
    // later) continues it and sends it on as the webhook's `traceparent`.
    if let (Some(traceparent), Some(fields)) = (
        shared::trace::current_traceparent(),
        payload.as_object_mut(),
    ) {
        fields.insert(TRACE_FIELD.to_owned(), traceparent.into());
    }
    ctx.db
        .run(move |conn| {
            conn.transaction::<_, DbError, _>(|conn| {
                let endpoints = match event.target_endpoint {
                    // `webhook.test`: that one endpoint, if it is still the
                    // workspace's and enabled; subscriptions do not matter.
                    Some(target) => WebhookEndpoint::find_in(conn, event.workspace_id.0, target.0)?
                        .into_iter()
                        .filter(|e| e.enabled)
                        .collect(),
                    None => WebhookEndpoint::subscribed(
                        conn,
                        event.workspace_id.0,
                        event.event.as_str(),
                    )?,
                };
                let rows: Vec<NewDelivery> = endpoints
                    .iter()
                    .map(|endpoint| NewDelivery {
                        id: Uuid::now_v7(),
                        event_id: event.id.0,
                        endpoint_id: endpoint.id,
                        workspace_id: event.workspace_id.0,
                        event_type: event.event.as_str().to_owned(),
                        payload: payload.clone(),
                        status: "pending",
                    })
                    .collect();
                if rows.is_empty() {
                    return Ok(0);
                }
                Ok(diesel::insert_into(webhook_deliveries::table)
                    .values(&rows)
                    .on_conflict((
                        webhook_deliveries::event_id,
                        webhook_deliveries::endpoint_id,
                    ))
                    .do_nothing()
                    .execute(conn)?)
            })
        })
        .await
}
