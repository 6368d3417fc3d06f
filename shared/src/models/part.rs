//! Parts of a long generation (docs/architecture.md, "Parts"): the queries
//! by which workers share one generation's render. The worker holding the
//! generation's lease creates the rows; any worker claims a part under a
//! lease of its own (`lease_until`, on the database's clock, renewed while
//! it renders), stores its audio and marks it done; an expired claim may
//! be taken over, so a part whose worker died is rendered again, and only
//! that part.

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Int4, Jsonb, Nullable, Text, Uuid as SqlUuid};
use uuid::Uuid;

/// Where one part stands.
#[derive(Debug, Clone, PartialEq, QueryableByName)]
pub struct PartState {
    #[diesel(sql_type = Int4)]
    pub part: i32,
    #[diesel(sql_type = Bool)]
    pub done: bool,
    /// A live claim of some worker.
    #[diesel(sql_type = Bool)]
    pub held: bool,
    #[diesel(sql_type = Int4)]
    pub attempts: i32,
    #[diesel(sql_type = Nullable<Jsonb>)]
    pub error: Option<serde_json::Value>,
}

#[derive(QueryableByName)]
struct Part {
    #[diesel(sql_type = Int4)]
    part: i32,
}

pub struct GenerationPart;

impl GenerationPart {
    /// Makes sure `generation` has rows for parts `0..parts` (a second call,
    /// by the next delivery of its job, keeps what was done).
    pub fn ensure(conn: &mut PgConnection, generation: Uuid, parts: i32) -> QueryResult<()> {
        diesel::sql_query(
            "INSERT INTO generation_parts (generation_id, part) \
             SELECT $1, p FROM generate_series(0, $2 - 1) p \
             ON CONFLICT DO NOTHING",
        )
        .bind::<SqlUuid, _>(generation)
        .bind::<Int4, _>(parts)
        .execute(conn)?;
        Ok(())
    }

    /// Claims the first part of `generation` that is neither done, failed
    /// nor under a live claim, for `claim` and `lease_ms` from now; `None`
    /// when there is none (or the generation is no longer processing).
    pub fn claim_next(
        conn: &mut PgConnection,
        generation: Uuid,
        claim: &str,
        lease_ms: i64,
    ) -> QueryResult<Option<i32>> {
        let claimed: Option<Part> = diesel::sql_query(
            "UPDATE generation_parts p SET claimed_by = $2, \
                 lease_until = now() + $3 * interval '1 millisecond', attempts = p.attempts + 1 \
             FROM (SELECT gp.part FROM generation_parts gp \
                   JOIN generations g ON g.id = gp.generation_id AND g.status = 'processing' \
                   WHERE gp.generation_id = $1 AND gp.done_at IS NULL AND gp.error IS NULL \
                     AND (gp.lease_until IS NULL OR gp.lease_until < now()) \
                   ORDER BY gp.part LIMIT 1 \
                   FOR UPDATE OF gp SKIP LOCKED) next \
             WHERE p.generation_id = $1 AND p.part = next.part \
             RETURNING p.part",
        )
        .bind::<SqlUuid, _>(generation)
        .bind::<Text, _>(claim)
        .bind::<BigInt, _>(lease_ms)
        .get_result(conn)
        .optional()?;
        Ok(claimed.map(|p| p.part))
    }

    /// Extends `claim`'s lease on the part; `false` if it holds it no more
    /// (done, or taken over after it expired): stop rendering it.
    pub fn renew(
        conn: &mut PgConnection,
        generation: Uuid,
        part: i32,
        claim: &str,
        lease_ms: i64,
    ) -> QueryResult<bool> {
        let n = diesel::sql_query(
            "UPDATE generation_parts SET lease_until = now() + $4 * interval '1 millisecond' \
             WHERE generation_id = $1 AND part = $2 AND claimed_by = $3 AND done_at IS NULL",
        )
        .bind::<SqlUuid, _>(generation)
        .bind::<Int4, _>(part)
        .bind::<Text, _>(claim)
        .bind::<BigInt, _>(lease_ms)
        .execute(conn)?;
        Ok(n == 1)
    }

    /// Marks the part done by `claim` (its audio is stored); `false` if the
    /// claim was lost meanwhile (another worker renders it: equivalent).
    pub fn finish(
        conn: &mut PgConnection,
        generation: Uuid,
        part: i32,
        claim: &str,
    ) -> QueryResult<bool> {
        let n = diesel::sql_query(
            "UPDATE generation_parts SET done_at = now(), lease_until = NULL \
             WHERE generation_id = $1 AND part = $2 AND claimed_by = $3 AND done_at IS NULL",
        )
        .bind::<SqlUuid, _>(generation)
        .bind::<Int4, _>(part)
        .bind::<Text, _>(claim)
        .execute(conn)?;
        Ok(n == 1)
    }

    /// Makes a done part free again: its stored audio is gone or
    /// unreadable (a coordinator that died after deleting the parts'
    /// audio but before completing the generation), so it is rendered anew.
    pub fn reopen(conn: &mut PgConnection, generation: Uuid, part: i32) -> QueryResult<()> {
        diesel::sql_query(
            "UPDATE generation_parts SET done_at = NULL, lease_until = NULL \
             WHERE generation_id = $1 AND part = $2 AND done_at IS NOT NULL",
        )
        .bind::<SqlUuid, _>(generation)
        .bind::<Int4, _>(part)
        .execute(conn)?;
        Ok(())
    }

    /// Records why the part can never render: the generation fails.
    pub fn fail(
        conn: &mut PgConnection,
        generation: Uuid,
        part: i32,
        claim: &str,
        error: &serde_json::Value,
    ) -> QueryResult<()> {
        diesel::sql_query(
            "UPDATE generation_parts SET error = $4, lease_until = NULL \
             WHERE generation_id = $1 AND part = $2 AND claimed_by = $3 AND done_at IS NULL",
        )
        .bind::<SqlUuid, _>(generation)
        .bind::<Int4, _>(part)
        .bind::<Text, _>(claim)
        .bind::<Jsonb, _>(error)
        .execute(conn)?;
        Ok(())
    }

    /// Gives `claim`'s lease on the part up, so the next claim takes it.
    pub fn release(
        conn: &mut PgConnection,
        generation: Uuid,
        part: i32,
        claim: &str,
    ) -> QueryResult<()> {
        diesel::sql_query(
            "UPDATE generation_parts SET lease_until = NULL \
             WHERE generation_id = $1 AND part = $2 AND claimed_by = $3 AND done_at IS NULL",
        )
        .bind::<SqlUuid, _>(generation)
        .bind::<Int4, _>(part)
        .bind::<Text, _>(claim)
        .execute(conn)?;
        Ok(())
    }

    /// Gives up every part lease of the worker whose claims are named
    /// `{worker}/…` (its shutdown); how many.
    pub fn release_all_of(conn: &mut PgConnection, worker: &str) -> QueryResult<usize> {
        diesel::sql_query(
            "UPDATE generation_parts SET lease_until = NULL \
             WHERE done_at IS NULL AND lease_until IS NOT NULL \
               AND left(claimed_by, length($1) + 1) = $1 || '/'",
        )
        .bind::<Text, _>(worker)
        .execute(conn)
    }

    /// Every part of `generation`, in order.
    pub fn states(conn: &mut PgConnection, generation: Uuid) -> QueryResult<Vec<PartState>> {
        diesel::sql_query(
            "SELECT part, done_at IS NOT NULL AS done, \
                    COALESCE(lease_until >= now(), false) AS held, attempts, error \
             FROM generation_parts WHERE generation_id = $1 ORDER BY part",
        )
        .bind::<SqlUuid, _>(generation)
        .load(conn)
    }
}
