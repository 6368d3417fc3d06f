//! `api_keys` rows: only the SHA-256 of a secret is stored, with a display
//! prefix, scopes and lifecycle timestamps. Rotation makes a new row
//! (`rotated_from` the old one) and gives the old one an expiry at the end
//! of the grace period; revocation stamps `revoked_at`. Neither is undone.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

use shared::ids::KeyId;
use shared::keys_api::KeyView;
use shared::schema::{api_keys, workspaces};

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = api_keys)]
pub struct ApiKey {
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub name: String,
    pub secret_sha256: Vec<u8>,
    pub prefix: String,
    pub scopes: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub rotated_from: Option<Uuid>,
    pub credit_limit: Option<i64>,
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
    pub credit_limit: Option<i64>,
    pub rotated_from: Option<Uuid>,
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

    /// The key if it belongs to this workspace (otherwise not found).
    pub fn find_in_workspace(
        conn: &mut PgConnection,
        workspace_id: Uuid,
        id: Uuid,
    ) -> QueryResult<Option<ApiKey>> {
        api_keys::table
            .filter(api_keys::id.eq(id))
            .filter(api_keys::workspace_id.eq(workspace_id))
            .select(ApiKey::as_select())
            .first(conn)
            .optional()
    }

    /// The workspace's keys, newest first.
    pub fn list(conn: &mut PgConnection, workspace_id: Uuid) -> QueryResult<Vec<ApiKey>> {
        api_keys::table
            .filter(api_keys::workspace_id.eq(workspace_id))
            .order((api_keys::created_at.desc(), api_keys::id.desc()))
            .select(ApiKey::as_select())
            .load(conn)
    }

    /// Stamps `revoked_at` (once; a second revocation changes nothing).
    pub fn revoke(conn: &mut PgConnection, id: Uuid, now: DateTime<Utc>) -> QueryResult<ApiKey> {
        diesel::update(api_keys::table.find(id))
            .filter(api_keys::revoked_at.is_null())
            .set(api_keys::revoked_at.eq(now))
            .execute(conn)?;
        api_keys::table
            .find(id)
            .select(ApiKey::as_select())
            .first(conn)
    }

    /// Ends the key at `until` unless it already ends sooner.
    pub fn expire_by(
        conn: &mut PgConnection,
        id: Uuid,
        until: DateTime<Utc>,
    ) -> QueryResult<ApiKey> {
        diesel::update(api_keys::table.find(id))
            .filter(
                api_keys::expires_at
                    .is_null()
                    .or(api_keys::expires_at.gt(until)),
            )
            .set(api_keys::expires_at.eq(until))
            .execute(conn)?;
        api_keys::table
            .find(id)
            .select(ApiKey::as_select())
            .first(conn)
    }

    /// Moves `last_used_at` forward (never back: batches may arrive late).
    pub fn touch(conn: &mut PgConnection, id: Uuid, at: DateTime<Utc>) -> QueryResult<()> {
        diesel::update(api_keys::table.find(id))
            .filter(
                api_keys::last_used_at
                    .is_null()
                    .or(api_keys::last_used_at.lt(at)),
            )
            .set(api_keys::last_used_at.eq(at))
            .execute(conn)?;
        Ok(())
    }

    pub fn hash_hex(&self) -> String {
        hex::encode(&self.secret_sha256)
    }

    pub fn view(&self) -> KeyView {
        KeyView {
            id: KeyId(self.id),
            name: self.name.clone(),
            prefix: self.prefix.clone(),
            scopes: self.scopes.clone(),
            created_at: self.created_at,
            last_used_at: self.last_used_at,
            expires_at: self.expires_at,
            revoked_at: self.revoked_at,
            credit_limit: self.credit_limit,
            rotated_from: self.rotated_from.map(KeyId),
        }
    }
}
