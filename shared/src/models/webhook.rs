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
