//! The delivery log's queries: claiming due deliveries under a lease, and
//! recording what an attempt did.
//!
//! The lease: claiming moves `next_attempt_at` to `now() + lease` in the
//! same statement that selects due rows `FOR UPDATE SKIP LOCKED`, so two
//! dispatchers never claim one row, and a claimed row is invisible to every
//! dispatcher until the lease ends. A dispatcher killed mid-send simply lets
//! its lease run out; the row is due again and another one sends it
//! (at-least-once; receivers deduplicate on `webhook-id`).
//!
//! The fence: the lease's end time, read back from the claim, is the token
//! of ownership. A result is recorded only `WHERE next_attempt_at = lease
//! end`, so a dispatcher that overran its lease (and whose row was claimed
//! again) cannot overwrite the newer owner's outcome.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Int4, Jsonb, Timestamptz, Uuid as SqlUuid};
use shared::models::{NewWebhookAttempt, WebhookAttempt, WebhookEndpoint};
use shared::schema::{webhook_deliveries as d, webhook_endpoints as e};
use uuid::Uuid;

/// A delivery this dispatcher holds the lease of.
#[derive(Debug, Clone, QueryableByName)]
pub struct Claimed {
    #[diesel(sql_type = SqlUuid)]
    pub id: Uuid,
    #[diesel(sql_type = SqlUuid)]
    pub event_id: Uuid,
    #[diesel(sql_type = SqlUuid)]
    pub endpoint_id: Uuid,
    #[diesel(sql_type = SqlUuid)]
    pub workspace_id: Uuid,
    #[diesel(sql_type = Jsonb)]
    pub payload: serde_json::Value,
    /// Attempts made before this one.
    #[diesel(sql_type = Int4)]
    pub attempts: i32,
    /// When the lease ends; also the fencing token of [`record`].
    #[diesel(sql_type = Timestamptz)]
    pub lease_until: DateTime<Utc>,
}

/// Claims up to `limit` due deliveries for `lease_ms`.
pub fn claim(conn: &mut PgConnection, lease_ms: i64, limit: i64) -> QueryResult<Vec<Claimed>> {
    diesel::sql_query(
        "UPDATE webhook_deliveries AS d
            SET next_attempt_at = now() + $1 * interval '1 millisecond',
                leased_until = now() + $1 * interval '1 millisecond'
          WHERE d.id IN (
                SELECT id FROM webhook_deliveries
                 WHERE status = 'pending' AND next_attempt_at <= now()
                 ORDER BY next_attempt_at
                 LIMIT $2
                   FOR UPDATE SKIP LOCKED)
      RETURNING d.id, d.event_id, d.endpoint_id, d.workspace_id, d.payload, d.attempts,
                d.next_attempt_at AS lease_until",
    )
    .bind::<BigInt, _>(lease_ms)
    .bind::<BigInt, _>(limit)
    .load(conn)
}

/// The endpoints of the claimed deliveries (deleted ones are simply absent).
pub fn endpoints(conn: &mut PgConnection, ids: &[Uuid]) -> QueryResult<Vec<WebhookEndpoint>> {
    e::table
        .filter(e::id.eq_any(ids))
        .select(WebhookEndpoint::as_select())
        .load(conn)
}

/// What one attempt saw, for the delivery log.
#[derive(Debug, Clone, Default)]
pub struct AttemptLog {
    pub status_code: Option<i32>,
    pub error: Option<String>,
    pub response_body: Option<String>,
    pub duration_ms: i64,
}

/// What becomes of a delivery after an attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// 2xx: done; the endpoint is healthy.
    Succeeded,
    /// Failed; try again at this time.
    RetryAt(DateTime<Utc>),
    /// Failed and the schedule is exhausted.
    Exhausted,
    /// 410 Gone: failed, and the endpoint is disabled at once.
    Gone,
    /// Not attempted and never will be (endpoint disabled, payload
    /// unreadable): failed without counting an attempt.
    Abandoned,
}

/// Records an attempt under the lease of `claimed`, with its row in the
/// attempt log; `false` when the lease was lost (the row was claimed again
/// or changed), and nothing was written. An endpoint failing for
/// `disable_after_days` without a success is disabled.
pub fn record(
    conn: &mut PgConnection,
    claimed: &Claimed,
    log: &AttemptLog,
    verdict: &Verdict,
    disable_after_days: u32,
) -> QueryResult<bool> {
    conn.transaction(|conn| {
        let (status, next, attempts) = match verdict {
            Verdict::Succeeded => ("succeeded", claimed.lease_until, claimed.attempts + 1),
            Verdict::RetryAt(at) => ("pending", *at, claimed.attempts + 1),
            Verdict::Exhausted | Verdict::Gone => {
                ("failed", claimed.lease_until, claimed.attempts + 1)
            }
            Verdict::Abandoned => ("failed", claimed.lease_until, claimed.attempts),
        };
        let attempted = *verdict != Verdict::Abandoned;
        let updated = diesel::update(d::table)
            .filter(d::id.eq(claimed.id))
            .filter(d::status.eq("pending"))
            .filter(d::next_attempt_at.eq(claimed.lease_until))
            .set((
                d::status.eq(status),
                d::attempts.eq(attempts),
                d::next_attempt_at.eq(next),
                d::leased_until.eq(None::<DateTime<Utc>>),
                d::last_error.eq(&log.error),
                d::last_status_code.eq(log.status_code),
                d::last_response_body.eq(&log.response_body),
                d::last_duration_ms.eq(attempted.then_some(log.duration_ms)),
                d::last_attempt_at.eq(attempted.then(Utc::now)),
            ))
            .execute(conn)?;
        if updated == 0 {
            return Ok(false);
        }
        if attempted {
            WebhookAttempt::insert(
                conn,
                &NewWebhookAttempt {
                    id: Uuid::now_v7(),
                    delivery_id: claimed.id,
                    workspace_id: claimed.workspace_id,
                    attempt: attempts,
                    status_code: log.status_code,
                    error: log.error.as_deref(),
                    response_body: log.response_body.as_deref(),
                    duration_ms: log.duration_ms,
                },
            )?;
        }
        match verdict {
            Verdict::Succeeded => {
                // Only when it changes something that matters: otherwise every
                // concurrent success to one endpoint would queue on that
                // endpoint row's lock, serialising its deliveries across all
                // dispatchers. A row the WHERE skips is not locked.
                diesel::sql_query(
                    "UPDATE webhook_endpoints SET last_success_at = now(), failing_since = NULL
                      WHERE id = $1
                        AND (failing_since IS NOT NULL OR last_success_at IS NULL
                             OR last_success_at < now() - interval '1 second')",
                )
                .bind::<SqlUuid, _>(claimed.endpoint_id)
                .execute(conn)?;
            }
            Verdict::RetryAt(_) | Verdict::Exhausted => {
                mark_failing(conn, claimed.endpoint_id, disable_after_days)?
            }
            Verdict::Gone => {
                mark_failing(conn, claimed.endpoint_id, disable_after_days)?;
                disable(conn, claimed.endpoint_id, "the endpoint answered 410 Gone")?;
            }
            Verdict::Abandoned => {}
        }
        Ok(true)
    })
}

/// Sets `failing_since` on the first failure since the last success, and
/// disables an endpoint that has failed for days without one.
fn mark_failing(conn: &mut PgConnection, endpoint_id: Uuid, days: u32) -> QueryResult<()> {
    diesel::sql_query(
        "UPDATE webhook_endpoints SET failing_since = COALESCE(failing_since, now())
          WHERE id = $1",
    )
    .bind::<SqlUuid, _>(endpoint_id)
    .execute(conn)?;
    diesel::sql_query(
        "UPDATE webhook_endpoints
            SET enabled = false, updated_at = now(),
                disabled_reason = 'failing without a success for ' || $2 || ' days'
          WHERE id = $1 AND enabled AND failing_since < now() - $2 * interval '1 day'",
    )
    .bind::<SqlUuid, _>(endpoint_id)
    .bind::<BigInt, _>(i64::from(days))
    .execute(conn)?;
    Ok(())
}

fn disable(conn: &mut PgConnection, endpoint_id: Uuid, reason: &str) -> QueryResult<()> {
    diesel::update(e::table.filter(e::id.eq(endpoint_id)))
        .set((
            e::enabled.eq(false),
            e::disabled_reason.eq(reason),
            e::updated_at.eq(Utc::now()),
        ))
        .execute(conn)?;
    Ok(())
}
