//! `api_keys` rows: only the SHA-256 of a secret is stored, with a display
//! prefix, scopes and lifecycle timestamps.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

use shared::schema::{api_keys, workspaces};

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = api_keys)]
pub struct ApiKey {
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub name: String,
    pub prefix: String,
    pub scopes: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = api_keys)]
pub struct NewApiKey<'a> {
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub name: &'a str,
    pub secret_sha256: &'a [u8],
    pub prefix: &'a str,
    pub scopes: Vec<String>,
    pub expires_at: Option<DateTime<Utc>>,
}

impl ApiKey {
    pub fn insert(conn: &mut PgConnection, new: &NewApiKey<'_>) -> QueryResult<ApiKey> {
        diesel::insert_into(api_keys::table)
            .values(new)
            .returning(ApiKey::as_returning())
            .get_result(conn)
    }

    /// The key with this secret hash and its workspace's plan.
    pub fn find_by_hash(
        conn: &mut PgConnection,
        hash: &[u8],
    ) -> QueryResult<Option<(ApiKey, String)>> {
        api_keys::table
            .inner_join(workspaces::table)
            .filter(api_keys::secret_sha256.eq(hash))
            .select((ApiKey::as_select(), workspaces::plan))
            .first(conn)
            .optional()
    }
}
