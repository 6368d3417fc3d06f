//! `workspaces`: a plan, its allowance for the period, and what is used.
//! Credits move only through `reserve_credits` and `refund_credits`, single
//! conditional UPDATEs, so concurrent requests can never overspend.
//!
//! Periods are calendar months in UTC. There is no cron: the first
//! reservation, refund or read of a workspace in a new month rolls it over
//! (`roll_over`), one conditional UPDATE that resets `credits_used` and
//! moves `period_start`, so it happens atomically and exactly once however
//! many requests race (the losers re-check the condition after the winner's
//! row lock and find nothing to do). The ledger is never touched: usage of
//! a period is the ledger's rows since `period_start`. `credits_included` is
//! the plan's allowance at bootstrap, `i64::MAX` for an unlimited plan.

use chrono::{DateTime, Datelike, Months, TimeZone, Utc};
use diesel::prelude::*;
use uuid::Uuid;

use crate::schema::workspaces;

#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = workspaces)]
pub struct Workspace {
    pub id: Uuid,
    pub name: String,
    pub plan: String,
    pub credits_included: i64,
    pub credits_used: i64,
    pub period_start: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = workspaces)]
pub struct NewWorkspace<'a> {
    pub id: Uuid,
    pub name: &'a str,
    pub plan: &'a str,
    pub credits_included: i64,
    pub period_start: DateTime<Utc>,
}

/// The first instant of `t`'s calendar month in UTC.
pub fn month_start(t: DateTime<Utc>) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(t.year(), t.month(), 1, 0, 0, 0)
        .single()
        .unwrap_or(t)
}

/// The end (exclusive) of the period that starts at `start`.
pub fn period_end(start: DateTime<Utc>) -> DateTime<Utc> {
    start.checked_add_months(Months::new(1)).unwrap_or(start)
}

impl Workspace {
    /// Whether the allowance is unlimited.
    pub fn unlimited(&self) -> bool {
        self.credits_included == crate::settings::UNLIMITED_CREDITS
    }

    /// Starts the current month's period if the stored one is from an
    /// earlier month: `credits_used` back to 0, `period_start` to the first
    /// of this month. `true` if this call did it.
    pub fn roll_over(conn: &mut PgConnection, id: Uuid) -> QueryResult<bool> {
        Self::roll_over_at(conn, id, Utc::now())
    }

    /// `roll_over` as if it were `now` (tests travel in time with it).
    pub fn roll_over_at(
        conn: &mut PgConnection,
        id: Uuid,
        now: DateTime<Utc>,
    ) -> QueryResult<bool> {
        let start = month_start(now);
        let n = diesel::update(workspaces::table)
            .filter(workspaces::id.eq(id))
            .filter(workspaces::period_start.lt(start))
            .set((
                workspaces::credits_used.eq(0),
                workspaces::period_start.eq(start),
            ))
            .execute(conn)?;
        Ok(n == 1)
    }

    /// The workspace, rolled over first if a new month has begun.
    pub fn current(conn: &mut PgConnection, id: Uuid) -> QueryResult<Workspace> {
        Self::roll_over(conn, id)?;
        Self::find(conn, id)
    }

    pub fn find(conn: &mut PgConnection, id: Uuid) -> QueryResult<Workspace> {
        workspaces::table
            .find(id)
            .select(Workspace::as_select())
            .first(conn)
    }

    pub fn find_by_name(conn: &mut PgConnection, name: &str) -> QueryResult<Option<Workspace>> {
        workspaces::table
            .filter(workspaces::name.eq(name))
            .select(Workspace::as_select())
            .first(conn)
            .optional()
    }

    pub fn insert(conn: &mut PgConnection, new: &NewWorkspace<'_>) -> QueryResult<Workspace> {
        diesel::insert_into(workspaces::table)
            .values(new)
            .returning(Workspace::as_returning())
            .get_result(conn)
    }

    /// Takes `credits` from the allowance if they fit; `false` when they do
    /// not. Rolls the period over first, in the caller's transaction.
    pub fn reserve_credits(conn: &mut PgConnection, id: Uuid, credits: i64) -> QueryResult<bool> {
        Self::roll_over(conn, id)?;
        let updated = diesel::update(workspaces::table)
            .filter(workspaces::id.eq(id))
            .filter((workspaces::credits_used + credits).le(workspaces::credits_included))
            .set(workspaces::credits_used.eq(workspaces::credits_used + credits))
            .execute(conn)?;
        Ok(updated == 1)
    }

    /// Gives `credits` back (a failed generation) to the current period,
    /// never below zero; the refund's ledger row is in this period too.
    pub fn refund_credits(conn: &mut PgConnection, id: Uuid, credits: i64) -> QueryResult<()> {
        Self::roll_over(conn, id)?;
        diesel::sql_query(
            "UPDATE workspaces SET credits_used = GREATEST(credits_used - $1, 0) WHERE id = $2",
        )
        .bind::<diesel::sql_types::Int8, _>(credits)
        .bind::<diesel::sql_types::Uuid, _>(id)
        .execute(conn)?;
        Ok(())
    }
}
