//! `webhook_deliveries` and `webhook_attempts` as the API reads them: the
//! delivery log of an endpoint, newest first, each delivery with its
//! attempts; and the manual retry. The dispatcher's own queries (the lease)
//! live in `webhook-dispatcher/src/delivery/store.rs`.
//!
//! Every query is scoped by workspace and endpoint, so another workspace's
//! delivery is simply not found.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

use crate::schema::{webhook_attempts, webhook_deliveries};

/// Delivery statuses, as stored and as the API shows them.
pub const DELIVERY_STATUSES: [&str; 3] = ["pending", "succeeded", "failed"];

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = webhook_deliveries)]
pub struct WebhookDelivery {
    pub id: Uuid,
    pub event_id: Uuid,
    pub endpoint_id: Uuid,
    pub workspace_id: Uuid,
    pub event_type: String,
    pub status: String,
    pub attempts: i32,
    pub next_attempt_at: DateTime<Utc>,
    pub last_attempt_at: Option<DateTime<Utc>>,
    pub last_status_code: Option<i32>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// One HTTP attempt of a delivery.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = webhook_attempts)]
pub struct WebhookAttempt {
    pub id: Uuid,
    pub delivery_id: Uuid,
    pub attempt: i32,
    pub status_code: Option<i32>,
    pub error: Option<String>,
    pub response_body: Option<String>,
    pub duration_ms: i64,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = webhook_attempts)]
pub struct NewWebhookAttempt<'a> {
    pub id: Uuid,
    pub delivery_id: Uuid,
    pub workspace_id: Uuid,
    pub attempt: i32,
    pub status_code: Option<i32>,
    pub error: Option<&'a str>,
    pub response_body: Option<&'a str>,
    pub duration_ms: i64,
}

/// What a manual retry found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requeue {
    /// Due now (it was settled, or waiting for its next retry).
    Requeued,
    /// Being sent by a dispatcher right now: nothing changed.
    InFlight,
    NotFound,
}

impl WebhookDelivery {
    /// Up to `limit` deliveries of the endpoint, newest first, older than
    /// the delivery `before` when given, optionally of one status.
    pub fn page(
        conn: &mut PgConnection,
        workspace_id: Uuid,
        endpoint_id: Uuid,
        status: Option<&str>,
        before: Option<Uuid>,
        limit: i64,
    ) -> QueryResult<Vec<WebhookDelivery>> {
        use webhook_deliveries::dsl as d;
        let mut query = d::webhook_deliveries
            .filter(d::workspace_id.eq(workspace_id))
            .filter(d::endpoint_id.eq(endpoint_id))
            .select(WebhookDelivery::as_select())
            .order(d::id.desc())
            .limit(limit)
            .into_boxed();
        if let Some(status) = status {
            query = query.filter(d::status.eq(status.to_owned()));
        }
        if let Some(before) = before {
            query = query.filter(d::id.lt(before));
        }
        query.load(conn)
    }

    pub fn find(
        conn: &mut PgConnection,
        workspace_id: Uuid,
        endpoint_id: Uuid,
        id: Uuid,
    ) -> QueryResult<Option<WebhookDelivery>> {
        use webhook_deliveries::dsl as d;
        d::webhook_deliveries
            .filter(d::id.eq(id))
            .filter(d::workspace_id.eq(workspace_id))
            .filter(d::endpoint_id.eq(endpoint_id))
            .select(WebhookDelivery::as_select())
            .first(conn)
            .optional()
    }

    /// The manual retry, "send it now": a settled delivery becomes
    /// `pending` and due now, and a pending one waiting for its next retry
    /// is made due now; either way the next dispatcher round sends it again
    /// (same `webhook-id`). Its attempt count is kept, so an exhausted
    /// delivery gets exactly one new attempt. A delivery under a
    /// dispatcher's lease right now is left alone (`InFlight`): moving its
    /// `next_attempt_at` would break the lease and send the attempt twice.
    pub fn requeue(
        conn: &mut PgConnection,
        workspace_id: Uuid,
        endpoint_id: Uuid,
        id: Uuid,
    ) -> QueryResult<Requeue> {
        use webhook_deliveries::dsl as d;
        conn.transaction(|conn| {
            let ours = d::webhook_deliveries
                .filter(d::id.eq(id))
                .filter(d::workspace_id.eq(workspace_id))
                .filter(d::endpoint_id.eq(endpoint_id));
            let settled = diesel::update(ours.filter(d::status.ne("pending")))
                .set((
                    d::status.eq("pending"),
                    d::next_attempt_at.eq(diesel::dsl::now),
                    d::leased_until.eq(None::<DateTime<Utc>>),
                ))
                .execute(conn)?;
            if settled == 1 {
                return Ok(Requeue::Requeued);
            }
            let waiting = diesel::update(
                ours.filter(d::status.eq("pending")).filter(
                    d::leased_until
                        .is_null()
                        .or(d::leased_until.le(diesel::dsl::now)),
                ),
            )
            .set((
                d::next_attempt_at.eq(diesel::dsl::now),
                d::leased_until.eq(None::<DateTime<Utc>>),
            ))
            .execute(conn)?;
            if waiting == 1 {
                return Ok(Requeue::Requeued);
            }
            Ok(match Self::find(conn, workspace_id, endpoint_id, id)? {
                Some(_) => Requeue::InFlight,
                None => Requeue::NotFound,
            })
        })
    }
}

impl WebhookAttempt {
    /// The attempts of these deliveries, oldest first.
    pub fn of_deliveries(
        conn: &mut PgConnection,
        delivery_ids: &[Uuid],
    ) -> QueryResult<Vec<WebhookAttempt>> {
        use webhook_attempts::dsl as a;
        a::webhook_attempts
            .filter(a::delivery_id.eq_any(delivery_ids))
            .order((a::delivery_id, a::attempt))
            .select(WebhookAttempt::as_select())
            .load(conn)
    }

    pub fn insert(conn: &mut PgConnection, new: &NewWebhookAttempt<'_>) -> QueryResult<usize> {
        diesel::insert_into(webhook_attempts::table)
            .values(new)
            .execute(conn)
    }
}
