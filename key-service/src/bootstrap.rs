//! `key-service bootstrap`: a workspace on a configured plan and its first
//! key, holding every scope. The secret is printed once and never stored.

use chrono::Utc;
use diesel::prelude::*;
use serde::Serialize;
use uuid::Uuid;

use shared::api_key::{self, SCOPES};
use shared::ids::{KeyId, WorkspaceId};
use shared::models::{NewWorkspace, Workspace};
use shared::settings::Settings;

use crate::keys::{ApiKey, NewApiKey};

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Bootstrapped {
    pub workspace_id: WorkspaceId,
    pub key_id: KeyId,
    pub api_key: String,
}

#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error("no plan named {0:?} is configured (configured: {1})")]
    UnknownPlan(String, String),
    #[error("a workspace named {0:?} exists already")]
    WorkspaceExists(String),
    #[error("workspace name must be 1 to 100 characters")]
    BadName,
    #[error(transparent)]
    Db(#[from] diesel::result::Error),
}

/// Creates the workspace and its first key in one transaction.
pub fn bootstrap(
    conn: &mut PgConnection,
    settings: &Settings,
    name: &str,
    plan_name: &str,
) -> Result<Bootstrapped, BootstrapError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(BootstrapError::BadName);
    }
    let plan = settings.plan(plan_name).ok_or_else(|| {
        let known: Vec<&str> = settings.plans.keys().map(String::as_str).collect();
        BootstrapError::UnknownPlan(plan_name.to_owned(), known.join(", "))
    })?;
    conn.transaction(|conn| {
        if Workspace::find_by_name(conn, name)?.is_some() {
            return Err(BootstrapError::WorkspaceExists(name.to_owned()));
        }
        // Periods are calendar months in UTC; see `Workspace::roll_over`.
        let period_start = shared::models::workspace::month_start(Utc::now());
        let workspace = Workspace::insert(
            conn,
            &NewWorkspace {
                id: Uuid::now_v7(),
                name,
                plan: plan_name,
                credits_included: plan.credits_included(),
                period_start,
            },
        )?;
        let secret = api_key::generate();
        let key = ApiKey::insert(
            conn,
            &NewApiKey {
                id: Uuid::now_v7(),
                workspace_id: workspace.id,
                name: "bootstrap",
                secret_sha256: &secret.sha256,
                prefix: &secret.display_prefix,
                scopes: SCOPES.iter().map(|s| (*s).to_owned()).collect(),
                expires_at: None,
                credit_limit: None,
                rotated_from: None,
            },
        )?;
        Ok(Bootstrapped {
            workspace_id: WorkspaceId(workspace.id),
            key_id: KeyId(key.id),
            api_key: secret.secret,
        })
    })
}
