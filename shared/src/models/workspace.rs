//! `workspaces`: a plan, its allowance for the period, and what is used.
//! Credits move only through `reserve_credits` and `refund_credits`, single
//! conditional UPDATEs, so concurrent requests can never overspend.

use chrono::{DateTime, Utc};
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

impl Workspace {
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

    /// Takes `credits` from the allowance if they fit; `false` when they do not.
    pub fn reserve_credits(conn: &mut PgConnection, id: Uuid, credits: i64) -> QueryResult<bool> {
        let updated = diesel::update(workspaces::table)
            .filter(workspaces::id.eq(id))
            .filter((workspaces::credits_used + credits).le(workspaces::credits_included))
            .set(workspaces::credits_used.eq(workspaces::credits_used + credits))
            .execute(conn)?;
        Ok(updated == 1)
    }

    /// Gives `credits` back (a failed generation), never below zero.
    pub fn refund_credits(conn: &mut PgConnection, id: Uuid, credits: i64) -> QueryResult<()> {
        diesel::sql_query(
            "UPDATE workspaces SET credits_used = GREATEST(credits_used - $1, 0) WHERE id = $2",
        )
        .bind::<diesel::sql_types::Int8, _>(credits)
        .bind::<diesel::sql_types::Uuid, _>(id)
        .execute(conn)?;
        Ok(())
    }
}
