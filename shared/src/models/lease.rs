//! Worker leases, the re-drive of lost jobs and the maximum age of a
//! generation: the queries behind "nothing stays `processing` for ever"
//! (docs/architecture.md, "Leases and re-drive").
//!
//! - A worker **claims** a `processing` generation when a copy of its job
//!   arrives and holds the claim as a lease (`lease_until`, on the
//!   database's clock) that it renews while it renders. Two workers never
//!   render one generation at once: a copy that finds another worker's
//!   live lease is dropped.
//! - Every job message carries the re-drive number it was published with;
//!   a copy older than the row's `redrives` was superseded by a re-drive
//!   and is dropped too, so re-drives do not pile up copies.
//! - The gateway's sweeper **re-drives** a generation that is processing,
//!   was published, is under no live lease, and was published before the
//!   newest job the workers have taken from the queue (or the queue is
//!   empty): no queued copy can still reach it.
//! - A generation still processing after the maximum age is failed
//!   (`generation_timeout`) by [`Generation::fail`], refunded once.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Int4, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use uuid::Uuid;

use crate::models::{Generation, GenerationStatus};
use crate::schema::{generations, job_queue_progress};

/// What became of a worker's claim on a generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// The worker holds the lease now: render.
    Claimed,
    /// Not processing any more (finished, or gone): nothing to render.
    Finished,
    /// Another worker holds a live lease: it renders.
    Held,
    /// A re-drive published a newer copy of the job than this one.
    Superseded,
}

#[derive(QueryableByName)]
struct Id {
    #[diesel(sql_type = SqlUuid)]
    #[allow(dead_code)]
    id: Uuid,
}

#[derive(QueryableByName)]
struct LeaseState {
    #[diesel(sql_type = Text)]
    status: String,
    #[diesel(sql_type = Int4)]
    redrives: i32,
}

/// A generation the sweeper re-publishes: its id, the re-drive number the
/// new copy carries, and the creating request's trace.
#[derive(Debug, Clone, QueryableByName)]
pub struct Redrive {
    #[diesel(sql_type = SqlUuid)]
    pub id: Uuid,
    #[diesel(sql_type = Int4)]
    pub redrives: i32,
    #[diesel(sql_type = Nullable<Text>)]
    pub traceparent: Option<String>,
}

impl Generation {
    /// Claims `id` under `worker` (a claim name of one delivery) for
    /// `lease_ms` from now if it is processing, under no live lease, and
    /// `redrive` (the copy's number) is not older than the row's.
    pub fn claim(
        conn: &mut PgConnection,
        id: Uuid,
        worker: &str,
        lease_ms: i64,
        redrive: i32,
    ) -> QueryResult<Claim> {
        let claimed: Option<Id> = diesel::sql_query(
            "UPDATE generations SET claimed_by = $2, \
                 lease_until = now() + $3 * interval '1 millisecond' \
             WHERE id = $1 AND status = 'processing' AND redrives <= $4 \
               AND (lease_until IS NULL OR lease_until < now()) \
             RETURNING id",
        )
        .bind::<SqlUuid, _>(id)
        .bind::<Text, _>(worker)
        .bind::<BigInt, _>(lease_ms)
        .bind::<Int4, _>(redrive)
        .get_result(conn)
        .optional()?;
        if claimed.is_some() {
            return Ok(Claim::Claimed);
        }
        // Why not (the rare path): read the row as it is now.
        let state: Option<LeaseState> =
            diesel::sql_query("SELECT status, redrives FROM generations WHERE id = $1")
                .bind::<SqlUuid, _>(id)
                .get_result(conn)
                .optional()?;
        Ok(match state {
            None => Claim::Finished,
            Some(s) if s.status != GenerationStatus::Processing.as_str() => Claim::Finished,
            Some(s) if s.redrives > redrive => Claim::Superseded,
            Some(_) => Claim::Held,
        })
    }

    /// Extends `worker`'s lease on `id` to `lease_ms` from now; `false` if
    /// the worker holds it no more (finished elsewhere, timed out, or
    /// claimed by another worker after it expired): stop rendering.
    pub fn renew_lease(
        conn: &mut PgConnection,
        id: Uuid,
        worker: &str,
        lease_ms: i64,
    ) -> QueryResult<bool> {
        let n = diesel::sql_query(
            "UPDATE generations SET lease_until = now() + $3 * interval '1 millisecond' \
             WHERE id = $1 AND claimed_by = $2 AND status = 'processing'",
        )
        .bind::<SqlUuid, _>(id)
        .bind::<Text, _>(worker)
        .bind::<BigInt, _>(lease_ms)
        .execute(conn)?;
        Ok(n == 1)
    }

    /// Gives up `worker`'s lease on `id` (its job goes back to the queue),
    /// so the next copy to arrive may claim it at once.
    pub fn release_lease(conn: &mut PgConnection, id: Uuid, worker: &str) -> QueryResult<()> {
        diesel::update(generations::table.find(id))
            .filter(generations::claimed_by.eq(worker))
            .filter(generations::status.eq(GenerationStatus::Processing.as_str()))
            .set(generations::lease_until.eq(None::<DateTime<Utc>>))
            .execute(conn)?;
        Ok(())
    }

    /// Gives up every lease of the worker whose claims are named
    /// `{worker}/…` (its shutdown); how many.
    pub fn release_leases_of(conn: &mut PgConnection, worker: &str) -> QueryResult<usize> {
        diesel::sql_query(
            "UPDATE generations SET lease_until = NULL \
             WHERE status = 'processing' AND lease_until IS NOT NULL \
               AND left(claimed_by, length($1) + 1) = $1 || '/'",
        )
        .bind::<Text, _>(worker)
        .execute(conn)
    }

    /// Re-drives up to `limit` generations, oldest first: processing,
    /// published, last published before `published_before`, and under no
    /// live lease. Each gets the next re-drive number (which supersedes
    /// every older copy) and `redriven_at = at`; the caller publishes them.
    /// Only generations of `characters` in the range (one lane's: the queue
    /// whose progress `published_before` comes from).
    pub fn redrive_due(
        conn: &mut PgConnection,
        published_before: DateTime<Utc>,
        at: DateTime<Utc>,
        limit: i64,
        characters: std::ops::RangeInclusive<i64>,
    ) -> QueryResult<Vec<Redrive>> {
        diesel::sql_query(
            "UPDATE generations g SET redrives = g.redrives + 1, redriven_at = $2 \
             FROM (SELECT id FROM generations \
                   WHERE status = 'processing' AND published_at IS NOT NULL \
                     AND COALESCE(redriven_at, published_at) < $1 \
                     AND (lease_until IS NULL OR lease_until < now()) \
                     AND characters BETWEEN $4 AND $5 \
                   ORDER BY created_at LIMIT $3 \
                   FOR UPDATE SKIP LOCKED) due \
             WHERE g.id = due.id \
             RETURNING g.id, g.redrives, g.traceparent",
        )
        .bind::<Timestamptz, _>(published_before)
        .bind::<Timestamptz, _>(at)
        .bind::<BigInt, _>(limit)
        .bind::<BigInt, _>(*characters.start())
        .bind::<BigInt, _>(*characters.end())
        .load(conn)
    }

    /// Up to `limit` generations still processing that were created before
    /// `created_before`, oldest first: past the maximum age.
    pub fn processing_since_before(
        conn: &mut PgConnection,
        created_before: DateTime<Utc>,
        limit: i64,
    ) -> QueryResult<Vec<Uuid>> {
        generations::table
            .filter(generations::status.eq(GenerationStatus::Processing.as_str()))
            .filter(generations::created_at.lt(created_before))
            .order(generations::created_at.asc())
            .limit(limit)
            .select(generations::id)
            .load(conn)
    }

    /// When the oldest processing generation was created.
    pub fn oldest_processing(conn: &mut PgConnection) -> QueryResult<Option<DateTime<Utc>>> {
        generations::table
            .filter(generations::status.eq(GenerationStatus::Processing.as_str()))
            .select(diesel::dsl::min(generations::created_at))
            .first(conn)
    }
}

/// How far the workers have consumed a jobs queue.
pub struct QueueProgress;

impl QueueProgress {
    /// A worker took a job published at `published_at` from `queue`.
    pub fn advance(
        conn: &mut PgConnection,
        queue: &str,
        published_at: DateTime<Utc>,
    ) -> QueryResult<()> {
        diesel::insert_into(job_queue_progress::table)
            .values((
                job_queue_progress::queue.eq(queue),
                job_queue_progress::consumed_through.eq(published_at),
            ))
            .on_conflict(job_queue_progress::queue)
            .do_update()
            .set(
                job_queue_progress::consumed_through.eq(diesel::dsl::sql::<Timestamptz>(
                    "GREATEST(job_queue_progress.consumed_through, EXCLUDED.consumed_through)",
                )),
            )
            .execute(conn)?;
        Ok(())
    }

    /// The publish time of the newest job taken from `queue`, if any.
    pub fn consumed_through(
        conn: &mut PgConnection,
        queue: &str,
    ) -> QueryResult<Option<DateTime<Utc>>> {
        job_queue_progress::table
            .find(queue)
            .select(job_queue_progress::consumed_through)
            .first(conn)
            .optional()
    }
}
