//! What one key may do to another (issue 15). A key never makes a key —
//! by creating or rotating it — that outlives it, may spend more than it,
//! or holds a scope it lacks; and it never revokes or rotates a key that
//! holds a scope it lacks.
//!
//! The rule is judged here, on the calling key's own row read from
//! `api_keys` (`caller`), not on what the gateway says of it: a stale cache
//! or a bug in the gateway cannot widen a key, and a key revoked or expired
//! since the gateway verified it manages nothing.
//!
//! Refusals are 403: `insufficient_scope` (a scope the caller lacks; `param`
//! `scopes` on create) and `key_exceeds_parent` (`param` `expiresAt` or
//! `creditLimit`, the field of the new key that is too wide); an inactive
//! or unknown caller is 401 like any inactive key.

use chrono::{DateTime, Utc};
use diesel::PgConnection;
use uuid::Uuid;

use shared::db::DbError;
use shared::http::ApiError;
use shared::ids::KeyId;

use crate::keys::ApiKey;

/// What a created or rotated key would be allowed.
pub struct Grant<'a> {
    pub scopes: &'a [String],
    pub expires_at: Option<DateTime<Utc>>,
    pub credit_limit: Option<i64>,
}

/// The calling key's row if it belongs to this workspace and is active now;
/// otherwise 401 with the codes the gateway uses for such a key.
pub fn caller(conn: &mut PgConnection, workspace: Uuid, id: KeyId) -> Result<ApiKey, ApiError> {
    let key = ApiKey::find_in_workspace(conn, workspace, id.0)
        .map_err(DbError::from)?
        .ok_or_else(|| ApiError::unauthorized("invalid_api_key", "the API key is not valid"))?;
    shared::keys_api::ensure_active(key.revoked_at, key.expires_at)?;
    Ok(key)
}

/// 403 `insufficient_scope` unless `caller` holds every scope in `scopes`;
/// `doing` says what it tried ("grant", "revoke a key holding").
pub fn holds(caller: &ApiKey, scopes: &[String], doing: &str) -> Result<(), ApiError> {
    match scopes.iter().find(|s| !caller.scopes.contains(s)) {
        None => Ok(()),
        Some(s) => Err(ApiError::forbidden(
            "insufficient_scope",
            format!("a key cannot {doing} the scope {s}, which it does not hold itself"),
        )),
    }
}

fn exceeds(param: &str, message: String) -> ApiError {
    ApiError::forbidden("key_exceeds_parent", message).with_param(param)
}

/// 403 unless `grant` is within `caller`: its scopes, an expiry no later
/// than the caller's, a credit limit no higher than the caller's. `None`
/// means no expiry or no limit, so it exceeds any caller that has one.
pub fn may_issue(caller: &ApiKey, grant: &Grant<'_>) -> Result<(), ApiError> {
    holds(caller, grant.scopes, "grant").map_err(|e| e.with_param("scopes"))?;
    if let Some(until) = caller.expires_at
        && grant.expires_at.is_none_or(|t| t > until)
    {
        return Err(exceeds(
            "expiresAt",
            format!(
                "this key expires at {}; a key it makes must expire by then",
                shared::time::format(until)
            ),
        ));
    }
    if let Some(limit) = caller.credit_limit
        && grant.credit_limit.is_none_or(|c| c > limit)
    {
        return Err(exceeds(
            "creditLimit",
            format!(
                "this key may spend {limit} credits per period; a key it makes must have a creditLimit of at most {limit}"
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(scopes: &[&str], expires_at: Option<DateTime<Utc>>, limit: Option<i64>) -> ApiKey {
        ApiKey {
            id: Uuid::nil(),
            workspace_id: Uuid::nil(),
            name: "k".into(),
            secret_sha256: vec![],
            prefix: "vp_".into(),
            scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
            created_at: Utc::now(),
            expires_at,
            revoked_at: None,
            last_used_at: None,
            rotated_from: None,
            credit_limit: limit,
        }
    }

    fn code_and_param(r: Result<(), ApiError>) -> Option<(String, Option<String>)> {
        r.err().map(|e| (e.code.to_string(), e.param))
    }

    #[test]
    fn a_grant_may_equal_its_maker_but_never_exceed_it() {
        let soon = Utc::now() + chrono::Duration::hours(1);
        let later = soon + chrono::Duration::seconds(1);
        let maker = key(&["usage:read", "keys:manage"], Some(soon), Some(5));
        let scopes = vec!["usage:read".to_owned()];
        let grant = |expires_at, credit_limit| Grant {
            scopes: &scopes,
            expires_at,
            credit_limit,
        };
        let forbidden =
            |param: &str| Some(("key_exceeds_parent".to_owned(), Some(param.to_owned())));

        assert_eq!(
            code_and_param(may_issue(&maker, &grant(Some(soon), Some(5)))),
            None
        );
        assert_eq!(
            code_and_param(may_issue(&maker, &grant(Some(soon), Some(0)))),
            None
        );
        assert_eq!(
            code_and_param(may_issue(&maker, &grant(None, Some(5)))),
            forbidden("expiresAt")
        );
        assert_eq!(
            code_and_param(may_issue(&maker, &grant(Some(later), Some(5)))),
            forbidden("expiresAt")
        );
        assert_eq!(
            code_and_param(may_issue(&maker, &grant(Some(soon), None))),
            forbidden("creditLimit")
        );
        assert_eq!(
            code_and_param(may_issue(&maker, &grant(Some(soon), Some(6)))),
            forbidden("creditLimit")
        );
        let unlimited = key(&["usage:read"], None, None);
        assert_eq!(
            code_and_param(may_issue(&unlimited, &grant(None, None))),
            None
        );
        let wider = vec!["generations:write".to_owned()];
        let wide = Grant {
            scopes: &wider,
            expires_at: None,
            credit_limit: None,
        };
        assert_eq!(
            code_and_param(may_issue(&unlimited, &wide)),
            Some(("insufficient_scope".to_owned(), Some("scopes".to_owned())))
        );
    }
}
