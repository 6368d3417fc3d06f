//! Clones onto Kokoro in progress (table `voice_clones`): the durable job
//! of a `processing` voice and, once it is finished, the outbox of its
//! event (docs/architecture.md, "Cloning").
//!
//! - The gateway inserts the voice (`processing`) and this row in one
//!   transaction, after the samples are in the object store, then
//!   publishes a `clone-voice.v1` job: a fast path only.
//! - A worker **claims** the row ([`VoiceClone::claim`]) whether a job
//!   brought it or its own scan found it ([`VoiceClone::due`]): a row no
//!   job reached (lost by the broker, or never published) is found all the
//!   same; a claim that expired (its worker died) is taken over.
//! - [`VoiceClone::finish`] sets the voice `ready` or `failed` and marks
//!   the row finished in one transaction; the event is published after,
//!   and the row deleted once it was ([`VoiceClone::forget`]). A finished
//!   row whose event is unpublished is the scan's to publish again
//!   ([`VoiceClone::unannounced`]).
//! - Deleting the voice deletes the row (a foreign key): a worker that
//!   finishes a deleted voice changes nothing.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text, Timestamptz};

use crate::schema::{voice_clones, voices};
use crate::voices::cloned::ClonedVoice;

/// A row of `voice_clones`.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = voice_clones)]
pub struct VoiceClone {
    pub voice_id: String,
    /// The samples are `{samples_key}/{i}.wav`, `i` in `0..samples`.
    pub samples_key: String,
    pub samples: i32,
    pub attempts: i32,
    pub claimed_until: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// A clone a worker claimed: the voice and where its samples are.
#[derive(Debug, Clone)]
pub struct ClaimedClone {
    pub voice: ClonedVoice,
    pub job: VoiceClone,
}

#[derive(QueryableByName)]
struct VoiceId {
    #[diesel(sql_type = Text)]
    voice_id: String,
}

impl VoiceClone {
    /// The object-store key of a voice's samples (their prefix).
    pub fn samples_prefix(voice_id: &str) -> String {
        format!("voice-samples/{voice_id}")
    }

    /// The key of sample `index` under `prefix`.
    pub fn sample_key(prefix: &str, index: i32) -> String {
        format!("{prefix}/{index}.wav")
    }

    /// Deletes the `count` samples under `prefix` (kept only while the
    /// voice is made); what fails is logged, and a later settle or delete
    /// tries again.
    pub async fn delete_samples(store: &dyn object_store::ObjectStore, prefix: &str, count: i32) {
        use object_store::ObjectStoreExt;
        for i in 0..count {
            let key = object_store::path::Path::from(Self::sample_key(prefix, i));
            match store.delete(&key).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => tracing::warn!(error = %e, key = %key, "sample not deleted"),
            }
        }
    }

    /// Inserts the `processing` voice and its clone job at once.
    pub fn insert_with_voice(
        conn: &mut PgConnection,
        voice: &ClonedVoice,
        samples: i32,
    ) -> QueryResult<ClonedVoice> {
        conn.transaction(|conn| {
            let created = ClonedVoice::insert(conn, voice)?;
            diesel::insert_into(voice_clones::table)
                .values(VoiceClone {
                    voice_id: voice.id.clone(),
                    samples_key: Self::samples_prefix(&voice.id),
                    samples,
                    attempts: 0,
                    claimed_until: None,
                    finished_at: None,
                    created_at: Utc::now(),
                })
                .execute(conn)?;
            Ok(created)
        })
    }

    /// Claims `voice_id`'s clone for `lease_ms` (on the database's clock)
    /// when it is unfinished and under no live claim; `None` otherwise
    /// (another worker searches it, it is finished, or it is gone).
    pub fn claim(
        conn: &mut PgConnection,
        voice_id: &str,
        lease_ms: i64,
    ) -> QueryResult<Option<ClaimedClone>> {
        conn.transaction(|conn| {
            let claimed = diesel::sql_query(
                "UPDATE voice_clones SET attempts = attempts + 1, \
                 claimed_until = now() + make_interval(secs => $2::float8 / 1000) \
                 WHERE voice_id = $1 AND finished_at IS NULL \
                 AND (claimed_until IS NULL OR claimed_until < now()) \
                 RETURNING voice_id",
            )
            .bind::<Text, _>(voice_id)
            .bind::<BigInt, _>(lease_ms)
            .get_result::<VoiceId>(conn)
            .optional()?;
            let Some(VoiceId { voice_id }) = claimed else {
                return Ok(None);
            };
            let job = voice_clones::table
                .find(&voice_id)
                .select(VoiceClone::as_select())
                .first(conn)?;
            let voice = voices::table
                .find(&voice_id)
                .select(ClonedVoice::as_select())
                .first(conn)?;
            Ok(Some(ClaimedClone { voice, job }))
        })
    }

    /// Extends a live claim on an unfinished clone to `lease_ms` from now
    /// (the worker searching it renews it every third of that).
    pub fn renew(conn: &mut PgConnection, voice_id: &str, lease_ms: i64) -> QueryResult<bool> {
        let n = diesel::sql_query(
            "UPDATE voice_clones SET claimed_until = now() + make_interval(secs => $2::float8 / 1000) \
             WHERE voice_id = $1 AND finished_at IS NULL",
        )
        .bind::<Text, _>(voice_id)
        .bind::<BigInt, _>(lease_ms)
        .execute(conn)?;
        Ok(n == 1)
    }

    /// Gives a claim back at once (a transient failure): the next scan or
    /// job takes it.
    pub fn release(conn: &mut PgConnection, voice_id: &str) -> QueryResult<()> {
        diesel::update(voice_clones::table.find(voice_id))
            .filter(voice_clones::finished_at.is_null())
            .set(voice_clones::claimed_until.eq(None::<DateTime<Utc>>))
            .execute(conn)?;
        Ok(())
    }

    /// Unfinished clones created before `created_before` under no live
    /// claim, oldest first: what no job reached, or whose worker died.
    pub fn due(
        conn: &mut PgConnection,
        created_before: DateTime<Utc>,
        limit: i64,
    ) -> QueryResult<Vec<String>> {
        let rows: Vec<VoiceId> = diesel::sql_query(
            "SELECT voice_id FROM voice_clones WHERE finished_at IS NULL \
             AND (claimed_until IS NULL OR claimed_until < now()) AND created_at < $1 \
             ORDER BY created_at LIMIT $2",
        )
        .bind::<Timestamptz, _>(created_before)
        .bind::<BigInt, _>(limit)
        .load(conn)?;
        Ok(rows.into_iter().map(|r| r.voice_id).collect())
    }

    /// Sets the voice `status` (`ready` or `failed`) with `params` and the
    /// clone finished, in one transaction, if the voice is still
    /// `processing`; `false` if it is not (finished before, or deleted).
    pub fn finish(
        conn: &mut PgConnection,
        voice_id: &str,
        status: &str,
        params: &serde_json::Value,
    ) -> QueryResult<bool> {
        conn.transaction(|conn| {
            let n = diesel::update(voices::table.find(voice_id))
                .filter(voices::status.eq("processing"))
                .set((voices::status.eq(status), voices::params.eq(params)))
                .execute(conn)?;
            if n == 0 {
                return Ok(false);
            }
            diesel::update(voice_clones::table.find(voice_id))
                .set((
                    voice_clones::finished_at.eq(Utc::now()),
                    voice_clones::claimed_until.eq(None::<DateTime<Utc>>),
                ))
                .execute(conn)?;
            Ok(true)
        })
    }

    /// Finished clones whose event is still unpublished, finished before
    /// `finished_before`, oldest first.
    pub fn unannounced(
        conn: &mut PgConnection,
        finished_before: DateTime<Utc>,
        limit: i64,
    ) -> QueryResult<Vec<VoiceClone>> {
        voice_clones::table
            .filter(voice_clones::finished_at.lt(finished_before))
            .order(voice_clones::finished_at.asc())
            .limit(limit)
            .select(VoiceClone::as_select())
            .load(conn)
    }

    /// The event was published: the row goes.
    pub fn forget(conn: &mut PgConnection, voice_id: &str) -> QueryResult<()> {
        diesel::delete(voice_clones::table.find(voice_id)).execute(conn)?;
        Ok(())
    }

    /// The clone job of `voice_id`, if it has one.
    pub fn find(conn: &mut PgConnection, voice_id: &str) -> QueryResult<Option<VoiceClone>> {
        voice_clones::table
            .find(voice_id)
            .select(VoiceClone::as_select())
            .first(conn)
            .optional()
    }
}

/// How many claims a clone gets before it fails: a worker that dies in
/// it every time (the samples crash it) does not take workers down for
/// ever.
pub fn attempts_exhausted(attempts: i32, max: i32) -> bool {
    attempts > max
}
