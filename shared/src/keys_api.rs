//! The internal API between the gateway and the key service. Only the
//! SHA-256 of a secret travels for verification; a new secret travels once,
//! from the key service through the gateway to the client that asked for it.
//! Every call carries the internal token.
//!
//! Every call that creates, rotates or revokes a key names the calling key
//! (`caller_key_id`); the key service judges the request by that key's own
//! row — its scopes, expiry and credit limit, and whether it is still
//! active — never by what the request says of it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{KeyId, WorkspaceId};

/// Path of the verify endpoint on the key service.
pub const VERIFY_PATH: &str = "/internal/v1/keys/verify";
/// Path of the batched last-used updates.
pub const TOUCH_PATH: &str = "/internal/v1/keys/touch";

/// Path of a workspace's keys on the key service.
pub fn workspace_keys_path(workspace: WorkspaceId) -> String {
    format!("/internal/v1/workspaces/{workspace}/keys")
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifyRequest {
    /// Lowercase hex SHA-256 of the presented secret.
    pub key_hash: String,
}

/// What the key service knows of a key; the gateway decides what it means
/// (expired, revoked, plan without API access, over its credit limit).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct VerifiedKey {
    pub key_id: KeyId,
    pub workspace_id: WorkspaceId,
    pub scopes: Vec<String>,
    pub plan: String,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    /// Credits this key may spend per period; `None`: only the workspace's allowance.
    #[serde(default)]
    pub credit_limit: Option<i64>,
}

/// `POST /internal/v1/workspaces/{ws}/keys`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateKeyRequest {
    pub name: String,
    pub scopes: Vec<String>,
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub credit_limit: Option<i64>,
    /// The key making the request: the new key may not outlive it, spend
    /// more or hold a scope it lacks.
    pub caller_key_id: KeyId,
}

/// `POST /internal/v1/workspaces/{ws}/keys/{id}/rotate`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RotateKeyRequest {
    pub grace_period_seconds: i64,
    /// The key making the request: it must hold every scope of the rotated
    /// key, and the new key (which keeps the old one's expiry and credit
    /// limit) may not outlive it or spend more.
    pub caller_key_id: KeyId,
}

/// Query of `DELETE /internal/v1/workspaces/{ws}/keys/{id}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RevokeKeyQuery {
    /// The key making the request: it must hold every scope of the revoked key.
    pub caller_key_id: KeyId,
}

/// A key as the API shows it (never its secret or hash).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeyView {
    pub id: KeyId,
    pub name: String,
    /// The first characters of the secret, to recognise it.
    pub prefix: String,
    #[schema(example = json!(["generations:write", "generations:read"]))]
    pub scopes: Vec<String>,
    #[serde(with = "crate::time::rfc3339")]
    pub created_at: DateTime<Utc>,
    #[serde(with = "crate::time::rfc3339_opt")]
    pub last_used_at: Option<DateTime<Utc>>,
    #[serde(with = "crate::time::rfc3339_opt")]
    pub expires_at: Option<DateTime<Utc>>,
    #[serde(with = "crate::time::rfc3339_opt")]
    pub revoked_at: Option<DateTime<Utc>>,
    pub credit_limit: Option<i64>,
    pub rotated_from: Option<KeyId>,
}

/// A key just created or rotated, with its secret: shown this once.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedKey {
    #[serde(flatten)]
    pub key: KeyView,
    /// `vp_` + 40 base62 characters; shown this once, and never stored: an
    /// idempotent replay of this answer (`Idempotent-Replayed: true`) has
    /// no `secret` (rotate the key for a new one).
    #[schema(required = false)]
    pub secret: String,
}

/// One key's last use, as the gateway saw it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Touch {
    pub key_id: KeyId,
    pub last_used_at: DateTime<Utc>,
}

/// `POST /internal/v1/keys/touch`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TouchRequest {
    pub entries: Vec<Touch>,
}

/// 401 `key_revoked` / `key_expired` unless a key with these times may be
/// used now: the gateway's check of a presented key and the key service's
/// check of a key managing others give the same answer.
pub fn ensure_active(
    revoked_at: Option<DateTime<Utc>>,
    expires_at: Option<DateTime<Utc>>,
) -> Result<(), crate::http::ApiError> {
    let now = Utc::now();
    if revoked_at.is_some_and(|t| t <= now) {
        return Err(crate::http::ApiError::unauthorized(
            "key_revoked",
            "this API key has been revoked",
        ));
    }
    if expires_at.is_some_and(|t| t <= now) {
        return Err(crate::http::ApiError::unauthorized(
            "key_expired",
            "this API key has expired",
        ));
    }
    Ok(())
}
