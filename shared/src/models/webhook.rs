//! `webhook_endpoints`: created by the gateway, read (and disabled) by the
//! dispatcher. The secret is stored as issued (`whsec_…`) because signing
//! needs it; it leaves the database only to sign or, once, to its creator.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

use crate::schema::webhook_endpoints;

#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = webhook_endpoints)]
pub struct WebhookEndpoint {
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub url: String,
    pub description: Option<String>,
    pub events: Vec<String>,
    pub secret: String,
    pub previous_secret: Option<String>,
    pub previous_secret_expires_at: Option<DateTime<Utc>>,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub last_success_at: Option<DateTime<Utc>>,
    pub failing_since: Option<DateTime<Utc>>,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = webhook_endpoints)]
pub struct NewWebhookEndpoint {
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub url: String,
    pub description: Option<String>,
    pub events: Vec<String>,
    pub secret: String,
}

/// A `PATCH`: `None` leaves a column alone; `Some(None)` clears a nullable one.
#[derive(Debug, Default, AsChangeset)]
#[diesel(table_name = webhook_endpoints)]
pub struct EndpointChanges {
    pub url: Option<String>,
    pub description: Option<Option<String>>,
    pub events: Option<Vec<String>>,
    pub enabled: Option<bool>,
    pub disabled_reason: Option<Option<String>>,
    pub failing_since: Option<Option<DateTime<Utc>>>,
    pub updated_at: Option<DateTime<Utc>>,
}

impl WebhookEndpoint {
    pub fn insert(
        conn: &mut PgConnection,
        new: &NewWebhookEndpoint,
    ) -> QueryResult<WebhookEndpoint> {
        diesel::insert_into(webhook_endpoints::table)
            .values(new)
            .returning(WebhookEndpoint::as_returning())
            .get_result(conn)
    }

    pub fn list(conn: &mut PgConnection, workspace_id: Uuid) -> QueryResult<Vec<WebhookEndpoint>> {
        webhook_endpoints::table
            .filter(webhook_endpoints::workspace_id.eq(workspace_id))
            .order((
                webhook_endpoints::created_at.desc(),
                webhook_endpoints::id.desc(),
            ))
            .select(WebhookEndpoint::as_select())
            .load(conn)
    }

    /// Up to `limit` endpoints of the workspace, newest first (ids are
    /// UUIDv7), older than the endpoint `before` when given.
    pub fn page(
        conn: &mut PgConnection,
        workspace_id: Uuid,
        before: Option<Uuid>,
        limit: i64,
    ) -> QueryResult<Vec<WebhookEndpoint>> {
        let mut query = webhook_endpoints::table
            .filter(webhook_endpoints::workspace_id.eq(workspace_id))
            .order(webhook_endpoints::id.desc())
            .limit(limit)
            .select(WebhookEndpoint::as_select())
            .into_boxed();
        if let Some(before) = before {
            query = query.filter(webhook_endpoints::id.lt(before));
        }
        query.load(conn)
    }

    /// The endpoint `id` if it belongs to `workspace_id`.
    pub fn find_in(
        conn: &mut PgConnection,
        workspace_id: Uuid,
        id: Uuid,
    ) -> QueryResult<Option<WebhookEndpoint>> {
        webhook_endpoints::table
            .filter(webhook_endpoints::id.eq(id))
            .filter(webhook_endpoints::workspace_id.eq(workspace_id))
            .select(WebhookEndpoint::as_select())
            .first(conn)
            .optional()
    }

    /// Applies `changes` to the workspace's endpoint `id`.
    pub fn update(
        conn: &mut PgConnection,
        workspace_id: Uuid,
        id: Uuid,
        changes: &EndpointChanges,
    ) -> QueryResult<Option<WebhookEndpoint>> {
        diesel::update(
            webhook_endpoints::table
                .filter(webhook_endpoints::id.eq(id))
                .filter(webhook_endpoints::workspace_id.eq(workspace_id)),
        )
        .set(changes)
        .returning(WebhookEndpoint::as_returning())
        .get_result(conn)
        .optional()
    }

    /// Deletes the workspace's endpoint `id` (its deliveries go with it);
    /// `false` when there was none.
    pub fn delete(conn: &mut PgConnection, workspace_id: Uuid, id: Uuid) -> QueryResult<bool> {
        let deleted = diesel::delete(
            webhook_endpoints::table
                .filter(webhook_endpoints::id.eq(id))
                .filter(webhook_endpoints::workspace_id.eq(workspace_id)),
        )
        .execute(conn)?;
        Ok(deleted == 1)
    }

    /// Makes `new_secret` the secret; the current one becomes the previous
    /// secret, which keeps signing until `overlap_until` (a still-live older
    /// previous secret is dropped: at most two secrets sign at once).
    pub fn rotate_secret(
        conn: &mut PgConnection,
        workspace_id: Uuid,
        id: Uuid,
        new_secret: &str,
        overlap_until: DateTime<Utc>,
    ) -> QueryResult<Option<WebhookEndpoint>> {
        use webhook_endpoints::dsl as e;
        diesel::update(
            e::webhook_endpoints
                .filter(e::id.eq(id))
                .filter(e::workspace_id.eq(workspace_id)),
        )
        // Every right-hand side reads the row as it was: the old secret.
        .set((
            e::previous_secret.eq(e::secret.nullable()),
            e::previous_secret_expires_at.eq(Some(overlap_until)),
            e::secret.eq(new_secret),
            e::updated_at.eq(Utc::now()),
        ))
        .returning(WebhookEndpoint::as_returning())
        .get_result(conn)
        .optional()
    }

    pub fn find(conn: &mut PgConnection, id: Uuid) -> QueryResult<Option<WebhookEndpoint>> {
        webhook_endpoints::table
            .find(id)
            .select(WebhookEndpoint::as_select())
            .first(conn)
            .optional()
    }

    /// Enabled endpoints of the workspace subscribed to `event`.
    pub fn subscribed(
        conn: &mut PgConnection,
        workspace_id: Uuid,
        event: &str,
    ) -> QueryResult<Vec<WebhookEndpoint>> {
        webhook_endpoints::table
            .filter(webhook_endpoints::workspace_id.eq(workspace_id))
            .filter(webhook_endpoints::enabled.eq(true))
            .filter(webhook_endpoints::events.contains(vec![event.to_owned()]))
            .select(WebhookEndpoint::as_select())
            .load(conn)
    }

    /// The secrets that sign right now: the current one, and the previous
    /// one while its overlap after a rotation lasts.
    pub fn signing_secrets(&self, now: DateTime<Utc>) -> Vec<&str> {
        let mut secrets = vec![self.secret.as_str()];
        if let (Some(old), Some(until)) = (&self.previous_secret, self.previous_secret_expires_at)
            && now < until
        {
            secrets.push(old.as_str());
        }
        secrets
    }
}
