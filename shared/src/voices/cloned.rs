//! Cloned voices of a workspace (table `voices`, written by the gateway,
//! read by the worker). Every query is scoped by workspace: another
//! workspace's voice is "not found", exactly like a missing one.
//! Ids are `voice_` + 32 hex digits, so they never collide with a preset's
//! `voice_` + 6.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

use super::EngineVoice;
use crate::schema::voices;

/// A row of `voices`. `params` holds `{"engine": EngineVoice, "analysis": …}`.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = voices)]
pub struct ClonedVoice {
    pub id: String,
    pub workspace_id: Uuid,
    pub name: String,
    pub language: String,
    pub gender: Option<String>,
    pub description: Option<String>,
    pub status: String,
    pub params: serde_json::Value,
    pub created_at: DateTime<Utc>,
}

/// A new cloned voice's id.
pub fn new_id() -> String {
    format!("voice_{}", Uuid::now_v7().simple())
}

/// Whether `id` has the shape of a cloned voice's id.
pub fn is_cloned_id(id: &str) -> bool {
    id.strip_prefix("voice_")
        .is_some_and(|h| h.len() == 32 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
}

impl ClonedVoice {
    /// How the engine renders it; `None` if the params are unreadable.
    pub fn engine_voice(&self) -> Option<EngineVoice> {
        serde_json::from_value(self.params.get("engine")?.clone()).ok()
    }

    pub fn insert(conn: &mut PgConnection, voice: &ClonedVoice) -> QueryResult<ClonedVoice> {
        diesel::insert_into(voices::table)
            .values(voice)
            .returning(ClonedVoice::as_returning())
            .get_result(conn)
    }

    /// A voice by id, whatever its workspace (for the worker, which makes
    /// a clone from its own job row; never for an API request).
    pub fn find(conn: &mut PgConnection, id: &str) -> QueryResult<Option<ClonedVoice>> {
        voices::table
            .find(id)
            .select(ClonedVoice::as_select())
            .first(conn)
            .optional()
    }

    pub fn find_in_workspace(
        conn: &mut PgConnection,
        workspace_id: Uuid,
        id: &str,
    ) -> QueryResult<Option<ClonedVoice>> {
        if !is_cloned_id(id) {
            return Ok(None);
        }
        voices::table
            .filter(voices::id.eq(id))
            .filter(voices::workspace_id.eq(workspace_id))
            .select(ClonedVoice::as_select())
            .first(conn)
            .optional()
    }

    /// All of a workspace's cloned voices, oldest first (then by id).
    pub fn list_in_workspace(
        conn: &mut PgConnection,
        workspace_id: Uuid,
    ) -> QueryResult<Vec<ClonedVoice>> {
        voices::table
            .filter(voices::workspace_id.eq(workspace_id))
            .order((voices::created_at.asc(), voices::id.asc()))
            .select(ClonedVoice::as_select())
            .load(conn)
    }

    /// `true` if it existed in this workspace.
    pub fn delete_in_workspace(
        conn: &mut PgConnection,
        workspace_id: Uuid,
        id: &str,
    ) -> QueryResult<bool> {
        let n = diesel::delete(
            voices::table
                .filter(voices::id.eq(id))
                .filter(voices::workspace_id.eq(workspace_id)),
        )
        .execute(conn)?;
        Ok(n == 1)
    }
}
