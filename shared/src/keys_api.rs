//! The internal key-verification call between the gateway and the key
//! service: only the SHA-256 of a secret travels, never the secret.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{KeyId, WorkspaceId};

/// Path of the verify endpoint on the key service.
pub const VERIFY_PATH: &str = "/internal/v1/keys/verify";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifyRequest {
    /// Lowercase hex SHA-256 of the presented secret.
    pub key_hash: String,
}

/// What the key service knows of a key; the gateway decides what it means
/// (expired, revoked, plan without API access).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct VerifiedKey {
    pub key_id: KeyId,
    pub workspace_id: WorkspaceId,
    pub scopes: Vec<String>,
    pub plan: String,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}
