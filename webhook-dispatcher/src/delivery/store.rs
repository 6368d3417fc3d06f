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

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Int4, Jsonb, Nullable, Text, Timestamptz, Uuid as SqlUuid};
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

/// The delivery row's next state after an attempt: (status, next_attempt_at, attempts).
fn transition(claimed: &Claimed, verdict: &Verdict) -> (&'static str, DateTime<Utc>, i32) {
    match verdict {
        Verdict::Succeeded => ("succeeded", claimed.lease_until, claimed.attempts + 1),
        Verdict::RetryAt(at) => ("pending", *at, claimed.attempts + 1),
        Verdict::Exhausted | Verdict::Gone => ("failed", claimed.lease_until, claimed.attempts + 1),
        Verdict::Abandoned => ("failed", claimed.lease_until, claimed.attempts),
    }
}

/// What an attempt does to its endpoint's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Health {
    Success,
    Failing,
    Gone,
}

fn health(verdict: &Verdict) -> Option<Health> {
    match verdict {
        Verdict::Succeeded => Some(Health::Success),
        Verdict::RetryAt(_) | Verdict::Exhausted => Some(Health::Failing),
        Verdict::Gone => Some(Health::Gone),
        Verdict::Abandoned => None,
    }
}

fn apply_health(
    conn: &mut PgConnection,
    endpoint_id: Uuid,
    health: Health,
    disable_after_days: u32,
) -> QueryResult<()> {
    match health {
        Health::Success => {
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
            .bind::<SqlUuid, _>(endpoint_id)
            .execute(conn)?;
        }
        Health::Failing => mark_failing(conn, endpoint_id, disable_after_days)?,
        Health::Gone => {
            mark_failing(conn, endpoint_id, disable_after_days)?;
            disable(conn, endpoint_id, "the endpoint answered 410 Gone")?;
        }
    }
    Ok(())
}

/// One attempt's outcome, waiting to be recorded.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub claimed: Claimed,
    pub log: AttemptLog,
    pub verdict: Verdict,
}

#[derive(QueryableByName)]
struct Recorded {
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
    #[diesel(sql_type = Timestamptz)]
    lease_until: DateTime<Utc>,
}

/// Records many attempts in one transaction (one commit): for each, exactly
/// what [`record`] does — the delivery row under its lease, its attempt-log
/// row, its endpoint's health — with one statement for all the delivery
/// rows and one for all the attempt rows. Returns, in order, whether each
/// was recorded (`false`: its lease was lost and nothing of it was written).
///
/// Endpoint health is applied per endpoint in the order of the outcomes
/// (repeating the same change in one transaction changes nothing, so runs of
/// it are applied once), endpoints in id order, so that two dispatchers'
/// batches lock endpoint rows in the same order and never deadlock.
pub fn record_batch(
    conn: &mut PgConnection,
    outcomes: &[Outcome],
    disable_after_days: u32,
) -> QueryResult<Vec<bool>> {
    if outcomes.is_empty() {
        return Ok(Vec::new());
    }
    conn.transaction(|conn| {
        let now = Utc::now();
        let n = outcomes.len();
        let (mut ids, mut leases, mut statuses, mut attempts, mut nexts) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        let (mut errors, mut codes, mut bodies, mut durations, mut attempted_at) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        for o in outcomes {
            let (status, next, count) = transition(&o.claimed, &o.verdict);
            let attempted = o.verdict != Verdict::Abandoned;
            ids.push(o.claimed.id);
            leases.push(o.claimed.lease_until);
            statuses.push(status.to_owned());
            attempts.push(count);
            nexts.push(next);
            errors.push(o.log.error.clone());
            codes.push(o.log.status_code);
            bodies.push(o.log.response_body.clone());
            durations.push(attempted.then_some(o.log.duration_ms));
            attempted_at.push(attempted.then_some(now));
        }
        let recorded: Vec<Recorded> = diesel::sql_query(
            "UPDATE webhook_deliveries AS d
                SET status = v.status, attempts = v.attempts, next_attempt_at = v.next,
                    leased_until = NULL, last_error = v.error, last_status_code = v.code,
                    last_response_body = v.body, last_duration_ms = v.duration,
                    last_attempt_at = v.attempted_at
               FROM unnest($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
                    AS v(id, lease_until, status, attempts, next, error, code, body, duration,
                         attempted_at)
              WHERE d.id = v.id AND d.status = 'pending' AND d.next_attempt_at = v.lease_until
          RETURNING d.id, v.lease_until",
        )
        .bind::<Array<SqlUuid>, _>(&ids)
        .bind::<Array<Timestamptz>, _>(&leases)
        .bind::<Array<Text>, _>(&statuses)
        .bind::<Array<Int4>, _>(&attempts)
        .bind::<Array<Timestamptz>, _>(&nexts)
        .bind::<Array<Nullable<Text>>, _>(&errors)
        .bind::<Array<Nullable<Int4>>, _>(&codes)
        .bind::<Array<Nullable<Text>>, _>(&bodies)
        .bind::<Array<Nullable<BigInt>>, _>(&durations)
        .bind::<Array<Nullable<Timestamptz>>, _>(&attempted_at)
        .load(conn)?;
        let done: Vec<bool> = outcomes
            .iter()
            .map(|o| {
                recorded
                    .iter()
                    .any(|r| r.id == o.claimed.id && r.lease_until == o.claimed.lease_until)
            })
            .collect();
        let log_rows: Vec<NewWebhookAttempt<'_>> = outcomes
            .iter()
            .zip(&done)
            .filter(|(o, done)| **done && o.verdict != Verdict::Abandoned)
            .map(|(o, _)| NewWebhookAttempt {
                id: Uuid::now_v7(),
                delivery_id: o.claimed.id,
                workspace_id: o.claimed.workspace_id,
                attempt: transition(&o.claimed, &o.verdict).2,
                status_code: o.log.status_code,
                error: o.log.error.as_deref(),
                response_body: o.log.response_body.as_deref(),
                duration_ms: o.log.duration_ms,
            })
            .collect();
        if !log_rows.is_empty() {
            diesel::insert_into(shared::schema::webhook_attempts::table)
                .values(&log_rows)
                .execute(conn)?;
        }
        let mut by_endpoint: BTreeMap<Uuid, Vec<Health>> = BTreeMap::new();
        for (o, _) in outcomes.iter().zip(&done).filter(|(_, done)| **done) {
            if let Some(h) = health(&o.verdict) {
                let changes = by_endpoint.entry(o.claimed.endpoint_id).or_default();
                if changes.last() != Some(&h) {
                    changes.push(h);
                }
            }
        }
        for (endpoint_id, changes) in by_endpoint {
            for h in changes {
                apply_health(conn, endpoint_id, h, disable_after_days)?;
            }
        }
        Ok(done)
    })
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
        let (status, next, attempts) = transition(claimed, verdict);
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
        if let Some(h) = health(verdict) {
            apply_health(conn, claimed.endpoint_id, h, disable_after_days)?;
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
