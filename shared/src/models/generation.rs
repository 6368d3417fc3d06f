//! `generations`: created by the gateway (status `processing`, credits
//! reserved in the same transaction), completed or failed by the worker.
//! Status moves only forward, `processing` → `completed` | `failed`, by
//! conditional UPDATEs, so a redelivered job cannot finish a row twice.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

use crate::models::create_batch::{Create, Refusal, create_many};
use crate::models::usage::NewUsageEvent;
use crate::models::workspace::Workspace;
use crate::schema::generations;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GenerationStatus {
    Processing,
    Completed,
    Failed,
}

impl GenerationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Processing => "processing",
            Self::Completed => "completed",
            Self::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Processing, Self::Completed, Self::Failed]
            .into_iter()
            .find(|x| x.as_str() == s)
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = generations)]
pub struct Generation {
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub api_key_id: Option<Uuid>,
    pub text: String,
    pub text_type: String,
    pub voice_id: String,
    pub format: String,
    pub sample_rate: Option<i32>,
    pub speed: f32,
    pub status: String,
    pub credits: i64,
    pub characters: i64,
    pub duration_ms: Option<i64>,
    pub storage_key: Option<String>,
    pub error: Option<serde_json::Value>,
    pub metadata: Option<serde_json::Value>,
    pub idempotency_key: Option<String>,
    pub request_hash: Option<Vec<u8>>,
    pub created_at: DateTime<Utc>,
    pub published_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    pub event_published_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = generations)]
pub struct NewGeneration {
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub api_key_id: Option<Uuid>,
    pub text: String,
    pub text_type: String,
    pub voice_id: String,
    pub format: String,
    pub sample_rate: Option<i32>,
    pub speed: f32,
    pub status: String,
    pub credits: i64,
    pub characters: i64,
    pub metadata: Option<serde_json::Value>,
    pub idempotency_key: Option<String>,
    pub request_hash: Option<Vec<u8>>,
    /// The creating request's trace (`shared::trace::current_traceparent()`).
    pub traceparent: Option<String>,
}

/// Why a generation could not be created.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    #[error("not enough credits left in this period")]
    InsufficientCredits,
    #[error("the key's credit limit for this period would be exceeded")]
    KeyCreditLimit,
    #[error("the workspace has {0} generations in flight, its plan's limit")]
    TooManyInFlight(i64),
    #[error(transparent)]
    Db(#[from] diesel::result::Error),
}

impl From<Refusal> for CreateError {
    fn from(r: Refusal) -> Self {
        match r {
            Refusal::InsufficientCredits => Self::InsufficientCredits,
            Refusal::KeyCreditLimit => Self::KeyCreditLimit,
            Refusal::TooManyInFlight(limit) => Self::TooManyInFlight(limit),
        }
    }
}

#[derive(QueryableByName)]
struct Spent {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    spent: i64,
}

/// Net credits the key spent since its workspace's period began. Takes a
/// transaction-scoped advisory lock on the key first, so two concurrent
/// requests of one key cannot both fit under its limit.
pub(super) fn key_spent_this_period(
    conn: &mut PgConnection,
    workspace_id: Uuid,
    key: Uuid,
) -> QueryResult<i64> {
    diesel::sql_query("SELECT pg_advisory_xact_lock($1)")
        .bind::<diesel::sql_types::BigInt, _>(key_lock_number(key))
        .execute(conn)?;
    let row: Spent = diesel::sql_query(
        "SELECT COALESCE(SUM(u.credits), 0)::BIGINT AS spent FROM usage_events u \
         JOIN workspaces w ON w.id = u.workspace_id \
         WHERE u.api_key_id = $1 AND u.workspace_id = $2 AND u.created_at >= w.period_start",
    )
    .bind::<diesel::sql_types::Uuid, _>(key)
    .bind::<diesel::sql_types::Uuid, _>(workspace_id)
    .get_result(conn)?;
    Ok(row.spent)
}

/// The number of the key's advisory lock: its first 8 bytes.
pub(super) fn key_lock_number(key: Uuid) -> i64 {
    i64::from_be_bytes(key.as_bytes()[..8].try_into().unwrap_or([0; 8]))
}

impl Generation {
    /// A row that is not stored: what a render needs (benchmarks and
    /// engine tests render without a database).
    pub fn unsaved(voice_id: &str, text: &str, format: &str, speed: f32) -> Self {
        Self {
            id: Uuid::now_v7(),
            workspace_id: Uuid::now_v7(),
            api_key_id: None,
            text: text.to_owned(),
            text_type: "text".to_owned(),
            voice_id: voice_id.to_owned(),
            format: format.to_owned(),
            sample_rate: None,
            speed,
            status: "processing".to_owned(),
            credits: 1,
            characters: text.chars().count() as i64,
            duration_ms: None,
            storage_key: None,
            error: None,
            metadata: None,
            idempotency_key: None,
            request_hash: None,
            created_at: Utc::now(),
            published_at: None,
            completed_at: None,
            event_published_at: None,
        }
    }

    pub fn status(&self) -> GenerationStatus {
        GenerationStatus::parse(&self.status).unwrap_or(GenerationStatus::Processing)
    }

    /// One transaction: reserve the credits, insert the row, record the
    /// charge. Either all three happen or none.
    pub fn create(conn: &mut PgConnection, new: &NewGeneration) -> Result<Generation, CreateError> {
        Self::create_within_key_limit(conn, new, None)
    }

    /// `create`, and the key may not spend more than `key_credit_limit`
    /// credits in the workspace's current period.
    pub fn create_within_key_limit(
        conn: &mut PgConnection,
        new: &NewGeneration,
        key_credit_limit: Option<i64>,
    ) -> Result<Generation, CreateError> {
        Self::create_within_limits(conn, new, key_credit_limit, None)
    }

    /// `create_within_key_limit`, and at most `max_in_flight` generations of
    /// the workspace may be processing once this one is: a batch of one
    /// (`crate::models::create_batch`). Exact under concurrency: the count
    /// runs under the workspace's row lock, held until commit, so
    /// concurrent creations of one workspace count one after another.
    pub fn create_within_limits(
        conn: &mut PgConnection,
        new: &NewGeneration,
        key_credit_limit: Option<i64>,
        max_in_flight: Option<i64>,
    ) -> Result<Generation, CreateError> {
        let create = Create {
            new,
            key_credit_limit,
            max_in_flight,
        };
        let outcome = conn
            .transaction(|conn| create_many(conn, std::slice::from_ref(&create)))?
            .pop()
            .ok_or(diesel::result::Error::NotFound)?;
        outcome.map_err(CreateError::from)
    }

    /// Generations of the workspace processing now, counted up to `cap`.
    pub fn processing_count(
        conn: &mut PgConnection,
        workspace_id: Uuid,
        cap: i64,
    ) -> QueryResult<i64> {
        let ids: Vec<Uuid> = generations::table
            .filter(generations::workspace_id.eq(workspace_id))
            .filter(generations::status.eq(GenerationStatus::Processing.as_str()))
            .select(generations::id)
            .limit(cap)
            .load(conn)?;
        Ok(ids.len() as i64)
    }

    /// How many generations are processing in the whole system, counting
    /// no further than `cap`: it reads at most `cap` entries of the partial
    /// index, and sends one number, whatever the backlog.
    pub fn processing_up_to(conn: &mut PgConnection, cap: i64) -> QueryResult<i64> {
        #[derive(QueryableByName)]
        struct Count {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        diesel::sql_query(
            "SELECT count(*) AS n FROM \
             (SELECT 1 FROM generations WHERE status = 'processing' LIMIT $1) AS p",
        )
        .bind::<diesel::sql_types::BigInt, _>(cap)
        .get_result::<Count>(conn)
        .map(|c| c.n)
    }

    /// A page of the workspace's generations, newest first, strictly after
    /// the cursor `(created_at, id)`, optionally of one status.
    pub fn page(
        conn: &mut PgConnection,
        workspace_id: Uuid,
        status: Option<GenerationStatus>,
        after: Option<(DateTime<Utc>, Uuid)>,
        limit: i64,
    ) -> QueryResult<Vec<Generation>> {
        let mut query = generations::table
            .filter(generations::workspace_id.eq(workspace_id))
            .select(Generation::as_select())
            .order((generations::created_at.desc(), generations::id.desc()))
            .limit(limit)
            .into_boxed();
        if let Some(status) = status {
            query = query.filter(generations::status.eq(status.as_str()));
        }
        if let Some((at, id)) = after {
            query = query.filter(
                generations::created_at
                    .lt(at)
                    .or(generations::created_at.eq(at).and(generations::id.lt(id))),
            );
        }
        query.load(conn)
    }

    /// Data retention: blanks the text and metadata, drops the storage key
    /// and sets `deleted_at`, unless the generation is still processing;
    /// credits, characters and times stay for accounting. Returns the row as
    /// it was before (for its storage key), or `None` if it is not in the
    /// workspace or is still processing. (`deleted_at` is not a field of
    /// `Generation`, which other crates build by hand: an empty `text`,
    /// which creation never accepts, marks a deleted row.)
    pub fn mark_deleted(
        conn: &mut PgConnection,
        workspace_id: Uuid,
        id: Uuid,
    ) -> QueryResult<Option<Generation>> {
        conn.transaction(|conn| {
            let before: Option<Generation> = generations::table
                .filter(generations::id.eq(id))
                .filter(generations::workspace_id.eq(workspace_id))
                .filter(generations::status.ne(GenerationStatus::Processing.as_str()))
                .select(Generation::as_select())
                .for_update()
                .first(conn)
                .optional()?;
            if before.is_some() {
                diesel::update(generations::table.find(id))
                    .set((
                        generations::text.eq(""),
                        generations::metadata.eq(None::<serde_json::Value>),
                        generations::storage_key.eq(None::<String>),
                        generations::deleted_at.eq(Some(Utc::now())),
                    ))
                    .execute(conn)?;
            }
            Ok(before)
        })
    }

    /// Whether `DELETE` removed its audio and text.
    pub fn is_deleted(&self) -> bool {
        self.text.is_empty()
    }

    pub fn find(conn: &mut PgConnection, id: Uuid) -> QueryResult<Option<Generation>> {
        generations::table
            .find(id)
            .select(Generation::as_select())
            .first(conn)
            .optional()
    }

    /// The generation if it belongs to this workspace (otherwise not found).
    pub fn find_in_workspace(
        conn: &mut PgConnection,
        workspace_id: Uuid,
        id: Uuid,
    ) -> QueryResult<Option<Generation>> {
        generations::table
            .filter(generations::id.eq(id))
            .filter(generations::workspace_id.eq(workspace_id))
            .select(Generation::as_select())
            .first(conn)
            .optional()
    }

    /// The broker confirmed the job.
    pub fn mark_published(conn: &mut PgConnection, ids: &[Uuid]) -> QueryResult<usize> {
        diesel::update(generations::table.filter(generations::id.eq_any(ids)))
            .filter(generations::published_at.is_null())
            .set(generations::published_at.eq(Utc::now()))
            .execute(conn)
    }

    /// Accepted generations that were never confirmed by the broker and are
    /// older than `older_than`: what a crash between commit and publish left.
    pub fn unpublished(
        conn: &mut PgConnection,
        older_than: DateTime<Utc>,
        limit: i64,
    ) -> QueryResult<Vec<(Uuid, i64, Option<String>)>> {
        generations::table
            .filter(generations::published_at.is_null())
            .filter(generations::status.eq(GenerationStatus::Processing.as_str()))
            .filter(generations::created_at.lt(older_than))
            .order(generations::created_at.asc())
            .limit(limit)
            .select((
                generations::id,
                generations::characters,
                generations::traceparent,
            ))
            .load(conn)
    }

    /// `processing` → `completed`; `false` if it was not processing any more.
    pub fn complete(
        conn: &mut PgConnection,
        id: Uuid,
        duration_ms: i64,
        storage_key: &str,
    ) -> QueryResult<bool> {
        let n = diesel::update(generations::table.find(id))
            .filter(generations::status.eq(GenerationStatus::Processing.as_str()))
            .set((
                generations::status.eq(GenerationStatus::Completed.as_str()),
                generations::duration_ms.eq(duration_ms),
                generations::storage_key.eq(storage_key),
                generations::completed_at.eq(Utc::now()),
            ))
            .execute(conn)?;
        Ok(n == 1)
    }

    /// `processing` → `failed` and the credits refunded, in one transaction;
    /// `false` if it was not processing any more.
    pub fn fail(conn: &mut PgConnection, id: Uuid, error: serde_json::Value) -> QueryResult<bool> {
        conn.transaction(|conn| {
            let row: Option<Generation> = diesel::update(generations::table.find(id))
                .filter(generations::status.eq(GenerationStatus::Processing.as_str()))
                .set((
                    generations::status.eq(GenerationStatus::Failed.as_str()),
                    generations::error.eq(error),
                    generations::completed_at.eq(Utc::now()),
                ))
                .returning(Generation::as_returning())
                .get_result(conn)
                .optional()?;
            let Some(row) = row else {
                return Ok(false);
            };
            let refunded = NewUsageEvent {
                id: Uuid::now_v7(),
                workspace_id: row.workspace_id,
                api_key_id: row.api_key_id,
                generation_id: Some(row.id),
                kind: "refund",
                credits: -row.credits,
                characters: -row.characters,
            }
            .insert(conn)?;
            if refunded {
                Workspace::refund_credits(conn, row.workspace_id, row.credits)?;
            }
            Ok(true)
        })
    }

    /// Finished generations whose event is not published yet, finished
    /// before `finished_before`, oldest first: the worker's event relay.
    pub fn unannounced(
        conn: &mut PgConnection,
        finished_before: DateTime<Utc>,
        limit: i64,
    ) -> QueryResult<Vec<Generation>> {
        generations::table
            .filter(generations::event_published_at.is_null())
            .filter(generations::status.ne(GenerationStatus::Processing.as_str()))
            .filter(generations::completed_at.lt(finished_before))
            .order(generations::completed_at.asc())
            .limit(limit)
            .select(Generation::as_select())
            .load(conn)
    }

    /// The completion or failure event was confirmed by the broker.
    pub fn mark_event_published(conn: &mut PgConnection, id: Uuid) -> QueryResult<()> {
        diesel::update(generations::table.find(id))
            .set(generations::event_published_at.eq(Utc::now()))
            .execute(conn)?;
        Ok(())
    }
}
