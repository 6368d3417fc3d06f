//! Many generations created in one transaction: the gateway's group commit
//! of `POST /v1/generations` (`gateway::creates`). Every create of a batch
//! is decided exactly as if it ran alone, in the batch's order: its key's
//! credit limit, the workspace's credits, the plan's in-flight limit. One
//! lock of each workspace row and one statement per kind of row serve the
//! whole batch, and a single commit makes all of it durable.
//!
//! Locks are taken in one order by every batch — the workspace rows by id,
//! then the keys' advisory locks by lock number — so two batches never
//! deadlock. `Generation::create_within_limits` is a batch of one.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

use crate::models::generation::{Generation, NewGeneration, key_spent_this_period};
use crate::models::usage::NewUsageEvent;
use crate::models::workspace::{Workspace, month_start};
use crate::schema::{generations, usage_events, workspaces};

/// One create of a batch, with the limits of the request that sent it.
pub struct Create<'a> {
    pub new: &'a NewGeneration,
    /// The API key's credit limit per period, if it has one.
    pub key_credit_limit: Option<i64>,
    /// The plan's limit of generations processing at once, if it has one.
    pub max_in_flight: Option<i64>,
}

/// Why a create was refused; nothing of it was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// More than the workspace has left in this period (or no such workspace).
    InsufficientCredits,
    /// More than the key may still spend in this period.
    KeyCreditLimit,
    /// The workspace already has this many processing, its plan's limit.
    TooManyInFlight(i64),
}

/// What a workspace of the batch has, once locked.
struct Budget {
    used: i64,
    included: i64,
    /// Processing now (counted up to the highest limit of the batch).
    in_flight: i64,
    /// Credits this batch reserves.
    reserved: i64,
}

/// Decides and writes `creates` in the caller's transaction, in order: the
/// outcome of each, at the same index. An `Err` is a database error: the
/// caller rolls the whole transaction back.
pub fn create_many(
    conn: &mut PgConnection,
    creates: &[Create<'_>],
) -> QueryResult<Vec<Result<Generation, Refusal>>> {
    if creates.is_empty() {
        return Ok(Vec::new());
    }
    let mut budgets = lock_workspaces(conn, creates)?;
    count_in_flight(conn, creates, &mut budgets)?;
    let mut spent = lock_keys(conn, creates)?;

    let mut outcomes: Vec<Option<Refusal>> = Vec::with_capacity(creates.len());
    let mut accepted: Vec<&NewGeneration> = Vec::new();
    for c in creates {
        let refusal = decide(c, &mut budgets, &mut spent);
        if refusal.is_none() {
            accepted.push(c.new);
        }
        outcomes.push(refusal);
    }
    if accepted.is_empty() {
        return Ok(outcomes
            .into_iter()
            .map(|r| Err(r.unwrap_or(Refusal::InsufficientCredits)))
            .collect());
    }

    let rows: Vec<Generation> = diesel::insert_into(generations::table)
        .values(accepted.clone())
        .returning(Generation::as_returning())
        .get_results(conn)?;
    let mut by_id: HashMap<Uuid, Generation> = rows.into_iter().map(|g| (g.id, g)).collect();
    reserve(conn, &budgets)?;
    let charges: Vec<NewUsageEvent> = accepted
        .iter()
        .map(|new| NewUsageEvent {
            id: Uuid::now_v7(),
            workspace_id: new.workspace_id,
            api_key_id: new.api_key_id,
            generation_id: Some(new.id),
            kind: "charge",
            credits: new.credits,
            characters: new.characters,
        })
        .collect();
    diesel::insert_into(usage_events::table)
        .values(&charges)
        .execute(conn)?;

    creates
        .iter()
        .zip(outcomes)
        .map(|(c, refusal)| match refusal {
            Some(r) => Ok(Err(r)),
            None => by_id
                .remove(&c.new.id)
                .map(Ok)
                .ok_or(diesel::result::Error::NotFound),
        })
        .collect()
}

/// The outcome of `c` given what the batch has decided before it; an
/// accepted create takes its share of every budget at once.
fn decide(
    c: &Create<'_>,
    budgets: &mut HashMap<Uuid, Budget>,
    spent: &mut HashMap<Uuid, i64>,
) -> Option<Refusal> {
    let credits = c.new.credits;
    let Some(budget) = budgets.get_mut(&c.new.workspace_id) else {
        return Some(Refusal::InsufficientCredits);
    };
    let key = match (c.key_credit_limit, c.new.api_key_id) {
        (Some(limit), Some(key)) => {
            let so_far = spent.get(&key).copied().unwrap_or(0);
            if so_far.saturating_add(credits) > limit {
                return Some(Refusal::KeyCreditLimit);
            }
            Some(key)
        }
        _ => None,
    };
    if budget
        .used
        .saturating_add(budget.reserved)
        .saturating_add(credits)
        > budget.included
    {
        return Some(Refusal::InsufficientCredits);
    }
    if let Some(limit) = c.max_in_flight
        && budget.in_flight >= limit
    {
        return Some(Refusal::TooManyInFlight(limit));
    }
    budget.reserved += credits;
    budget.in_flight += 1;
    if let Some(key) = key {
        *spent.entry(key).or_default() += credits;
    }
    None
}

/// Raises each workspace's `credits_used` by what the batch reserved, in
/// one statement (the rows are locked already).
fn reserve(conn: &mut PgConnection, budgets: &HashMap<Uuid, Budget>) -> QueryResult<()> {
    let (ids, credits): (Vec<Uuid>, Vec<i64>) = budgets
        .iter()
        .filter(|(_, b)| b.reserved > 0)
        .map(|(id, b)| (*id, b.reserved))
        .unzip();
    diesel::sql_query(
        "UPDATE workspaces w SET credits_used = w.credits_used + r.credits \
         FROM unnest($1::uuid[], $2::bigint[]) AS r(id, credits) WHERE w.id = r.id",
    )
    .bind::<diesel::sql_types::Array<diesel::sql_types::Uuid>, _>(ids)
    .bind::<diesel::sql_types::Array<diesel::sql_types::BigInt>, _>(credits)
    .execute(conn)?;
    Ok(())
}

/// Locks the batch's workspace rows in id order, starting the current
/// period first where a new month has begun.
fn lock_workspaces(
    conn: &mut PgConnection,
    creates: &[Create<'_>],
) -> QueryResult<HashMap<Uuid, Budget>> {
    let mut ids: Vec<Uuid> = creates.iter().map(|c| c.new.workspace_id).collect();
    ids.sort();
    ids.dedup();
    let locked: Vec<(Uuid, i64, i64, DateTime<Utc>)> = workspaces::table
        .filter(workspaces::id.eq_any(&ids))
        .order(workspaces::id)
        .select((
            workspaces::id,
            workspaces::credits_used,
            workspaces::credits_included,
            workspaces::period_start,
        ))
        .for_update()
        .load(conn)?;
    let this_period = month_start(Utc::now());
    let mut budgets = HashMap::with_capacity(locked.len());
    for (id, mut used, included, period_start) in locked {
        if period_start < this_period && Workspace::roll_over(conn, id)? {
            used = 0;
        }
        budgets.insert(
            id,
            Budget {
                used,
                included,
                in_flight: 0,
                reserved: 0,
            },
        );
    }
    Ok(budgets)
}

/// Counts what each workspace with an in-flight limit has processing, up
/// to the highest limit its creates carry. Runs after the row lock, so a
/// concurrent batch of the same workspace has committed or not begun.
fn count_in_flight(
    conn: &mut PgConnection,
    creates: &[Create<'_>],
    budgets: &mut HashMap<Uuid, Budget>,
) -> QueryResult<()> {
    let mut caps: HashMap<Uuid, i64> = HashMap::new();
    for c in creates {
        if let Some(limit) = c.max_in_flight {
            let cap = caps.entry(c.new.workspace_id).or_default();
            *cap = (*cap).max(limit);
        }
    }
    for (workspace, cap) in caps {
        if let Some(b) = budgets.get_mut(&workspace) {
            b.in_flight = Generation::processing_count(conn, workspace, cap)?;
        }
    }
    Ok(())
}

/// Takes the advisory lock of every key with a credit limit (in lock
/// order) and reads what it spent this period.
fn lock_keys(conn: &mut PgConnection, creates: &[Create<'_>]) -> QueryResult<HashMap<Uuid, i64>> {
    let mut keys: Vec<(Uuid, Uuid)> = creates
        .iter()
        .filter(|c| c.key_credit_limit.is_some())
        .filter_map(|c| c.new.api_key_id.map(|k| (k, c.new.workspace_id)))
        .collect();
    keys.sort_by_key(|(k, _)| (super::generation::key_lock_number(*k), *k));
    keys.dedup();
    let mut spent = HashMap::with_capacity(keys.len());
    for (key, workspace) in keys {
        spent.insert(key, key_spent_this_period(conn, workspace, key)?);
    }
    Ok(spent)
}
