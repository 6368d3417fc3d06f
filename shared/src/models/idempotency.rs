//! `idempotency_keys`: one row per (workspace, `Idempotency-Key`) for 24 h,
//! holding the request's hash, the API key that sent it and, once it
//! succeeded, its response.
//!
//! Invariants: the primary key decides a race — exactly one request inserts
//! the claim and runs; the others find it and wait for its response (or get
//! 409 when their body differs). A row belongs to the API key whose request
//! claimed it (`api_key_id`): only that key may wait for it, replay it or
//! take it over; any other key of the workspace is `OtherKey` (a row with
//! no key, from before migration 000010, is `OtherKey` to every key). A
//! stored response never holds a secret (the gateway strips it before
//! `settle`). Only the claim's `owner` may store a
//! response or release the claim, so a claim taken over after it was
//! abandoned (no response a minute after it was made: a crash) cannot be
//! settled twice. Expired rows are deleted when their key is used again and
//! by `purge_expired`.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

use crate::schema::idempotency_keys;

/// How long a key and its response are kept.
pub const TTL: chrono::Duration = chrono::Duration::hours(24);
/// A claim without a response this old is abandoned and may be taken over.
pub const ABANDONED_AFTER: chrono::Duration = chrono::Duration::seconds(60);

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = idempotency_keys)]
pub struct IdempotencyRecord {
    pub workspace_id: Uuid,
    pub idempotency_key: String,
    pub request_hash: Vec<u8>,
    pub route: String,
    pub owner: Uuid,
    pub response_status: Option<i16>,
    pub response_headers: Option<serde_json::Value>,
    pub response_body: Option<Vec<u8>>,
    pub created_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    /// The API key whose request claimed the key; `None`: unknown (a row
    /// from before migration 000010, replayed to no key).
    pub api_key_id: Option<Uuid>,
}

/// What `claim` found.
#[derive(Debug)]
pub enum ClaimOutcome {
    /// This request holds the claim and runs.
    Owned,
    /// The first request's response, to be returned again.
    Replay(Box<IdempotencyRecord>),
    /// The key was used with another request.
    Mismatch,
    /// The key was used by another API key of the workspace.
    OtherKey,
    /// The first request is still running.
    InProgress,
}

#[derive(Insertable)]
#[diesel(table_name = idempotency_keys)]
struct NewClaim<'a> {
    workspace_id: Uuid,
    idempotency_key: &'a str,
    request_hash: &'a [u8],
    route: &'a str,
    owner: Uuid,
    api_key_id: Uuid,
}

/// Claims `key` for the request hashed `hash`, sent with the API key
/// `api_key_id`, on behalf of `owner`.
pub fn claim(
    conn: &mut PgConnection,
    workspace_id: Uuid,
    key: &str,
    route: &str,
    hash: &[u8],
    owner: Uuid,
    api_key_id: Uuid,
) -> QueryResult<ClaimOutcome> {
    let now = Utc::now();
    let this = idempotency_keys::table
        .filter(idempotency_keys::workspace_id.eq(workspace_id))
        .filter(idempotency_keys::idempotency_key.eq(key));
    diesel::delete(this.filter(idempotency_keys::created_at.lt(now - TTL))).execute(conn)?;
    let inserted = diesel::insert_into(idempotency_keys::table)
        .values(&NewClaim {
            workspace_id,
            idempotency_key: key,
            request_hash: hash,
            route,
            owner,
            api_key_id,
        })
        .on_conflict_do_nothing()
        .execute(conn)?;
    if inserted == 1 {
        return Ok(ClaimOutcome::Owned);
    }
    let Some(found) = this
        .select(IdempotencyRecord::as_select())
        .first(conn)
        .optional()?
    else {
        // Released between our insert and this read: the caller tries again.
        return Ok(ClaimOutcome::InProgress);
    };
    // Before anything else: whether it is ours. Another key learns nothing
    // of the request, its answer or whether it is still running.
    if found.api_key_id != Some(api_key_id) {
        return Ok(ClaimOutcome::OtherKey);
    }
    if found.request_hash != hash {
        return Ok(ClaimOutcome::Mismatch);
    }
    if found.response_status.is_some() {
        return Ok(ClaimOutcome::Replay(Box::new(found)));
    }
    if found.created_at < now - ABANDONED_AFTER {
        let taken = diesel::update(this)
            .filter(idempotency_keys::owner.eq(found.owner))
            .filter(idempotency_keys::response_status.is_null())
            .set((
                idempotency_keys::owner.eq(owner),
                idempotency_keys::created_at.eq(now),
            ))
            .execute(conn)?;
        if taken == 1 {
            return Ok(ClaimOutcome::Owned);
        }
    }
    Ok(ClaimOutcome::InProgress)
}

/// Stores the response of the claim `owner` holds; `false` if it does not
/// hold it (any more). Run it in the transaction of the request's effect
/// where there is one, so effect and response commit together.
pub fn settle(
    conn: &mut PgConnection,
    workspace_id: Uuid,
    key: &str,
    owner: Uuid,
    status: i16,
    headers: serde_json::Value,
    body: &[u8],
) -> QueryResult<bool> {
    let n = diesel::update(idempotency_keys::table)
        .filter(idempotency_keys::workspace_id.eq(workspace_id))
        .filter(idempotency_keys::idempotency_key.eq(key))
        .filter(idempotency_keys::owner.eq(owner))
        .filter(idempotency_keys::response_status.is_null())
        .set((
            idempotency_keys::response_status.eq(status),
            idempotency_keys::response_headers.eq(headers),
            idempotency_keys::response_body.eq(body),
            idempotency_keys::completed_at.eq(Utc::now()),
        ))
        .execute(conn)?;
    Ok(n == 1)
}

/// Locks the claim `owner` holds until the caller's transaction ends;
/// `false` if it does not hold it (any more). Held, the claim cannot be
/// taken over, so a `settle` later in the transaction succeeds: a batch of
/// creates holds its claims before it charges anything.
pub fn hold(
    conn: &mut PgConnection,
    workspace_id: Uuid,
    key: &str,
    owner: Uuid,
) -> QueryResult<bool> {
    let held: Option<Uuid> = idempotency_keys::table
        .filter(idempotency_keys::workspace_id.eq(workspace_id))
        .filter(idempotency_keys::idempotency_key.eq(key))
        .filter(idempotency_keys::owner.eq(owner))
        .filter(idempotency_keys::response_status.is_null())
        .select(idempotency_keys::owner)
        .for_update()
        .first(conn)
        .optional()?;
    Ok(held.is_some())
}

/// Gives up the claim (the request failed and may be retried with the key).
pub fn release(
    conn: &mut PgConnection,
    workspace_id: Uuid,
    key: &str,
    owner: Uuid,
) -> QueryResult<()> {
    diesel::delete(idempotency_keys::table)
        .filter(idempotency_keys::workspace_id.eq(workspace_id))
        .filter(idempotency_keys::idempotency_key.eq(key))
        .filter(idempotency_keys::owner.eq(owner))
        .filter(idempotency_keys::response_status.is_null())
        .execute(conn)?;
    Ok(())
}

/// Deletes keys older than the TTL; how many.
pub fn purge_expired(conn: &mut PgConnection) -> QueryResult<usize> {
    diesel::delete(idempotency_keys::table)
        .filter(idempotency_keys::created_at.lt(Utc::now() - TTL))
        .execute(conn)
}
