//! The key-management rules on the internal API itself: the key service
//! judges a request by the calling key's own row (its scopes, expiry,
//! credit limit, whether it is still active), never by what the caller
//! says of itself.

use diesel::prelude::*;
use secrecy::ExposeSecret;
use serde_json::{Value, json};

use key_service::bootstrap::bootstrap;
use shared::api_key::SCOPES;
use shared::keys_api::workspace_keys_path;
use shared::schema::api_keys;

use crate::helpers::*;

struct Internal<'a> {
    app: &'a TestApp,
    token: String,
}

impl Internal<'_> {
    async fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = self
            .app
            .client
            .request(method, format!("{}{path}", self.app.address))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        (
            response.status().as_u16(),
            response.json().await.unwrap_or(Value::Null),
        )
    }
}

#[tokio::test]
async fn the_key_service_judges_a_request_by_the_calling_keys_own_row() {
    let app = spawn_app().await;
    let mut conn = connect(&app.settings);
    let acme = bootstrap(&mut conn, &app.settings, "acme", "scale").unwrap();
    let other = bootstrap(&mut conn, &app.settings, "other", "scale").unwrap();
    let internal = Internal {
        app: &app,
        token: app
            .settings
            .key_service
            .internal_token
            .expose_secret()
            .to_owned(),
    };
    let keys = workspace_keys_path(acme.workspace_id);
    // `callerScopes` claims every scope, as a confused gateway might.
    let create = |name: &str, scopes: &[&str], caller: &dyn std::fmt::Display| {
        json!({"name": name, "scopes": scopes, "callerScopes": SCOPES,
               "callerKeyId": caller.to_string()})
    };
    let (status, narrow) = internal
        .send(
            reqwest::Method::POST,
            &keys,
            Some(create(
                "narrow",
                &["keys:manage", "usage:read"],
                &acme.key_id,
            )),
        )
        .await;
    assert_eq!(status, 201, "{narrow}");
    let narrow_id = narrow["id"].as_str().unwrap().to_owned();
    let (status, gone) = internal
        .send(
            reqwest::Method::POST,
            &keys,
            Some(create("gone", &["keys:manage"], &acme.key_id)),
        )
        .await;
    assert_eq!(status, 201);
    let gone_id = gone["id"].as_str().unwrap().to_owned();
    let (status, _) = internal
        .send(
            reqwest::Method::DELETE,
            &format!("{keys}/{gone_id}?callerKeyId={}", acme.key_id),
            None,
        )
        .await;
    assert_eq!(status, 200);

    let wider = internal
        .send(
            reqwest::Method::POST,
            &keys,
            Some(create("wider", &["generations:write"], &narrow_id)),
        )
        .await;
    let foreign = internal
        .send(
            reqwest::Method::POST,
            &keys,
            Some(create("foreign", &["usage:read"], &other.key_id)),
        )
        .await;
    let revoked = internal
        .send(
            reqwest::Method::POST,
            &keys,
            Some(create("zombie", &["keys:manage"], &gone_id)),
        )
        .await;
    let revoke_wider = internal
        .send(
            reqwest::Method::DELETE,
            &format!("{keys}/{}?callerKeyId={narrow_id}", acme.key_id),
            None,
        )
        .await;

    assert_eq!(wider.0, 403, "{}", wider.1);
    assert_eq!(wider.1["error"]["code"], "insufficient_scope");
    assert_eq!(foreign.0, 401, "{}", foreign.1);
    assert_eq!(foreign.1["error"]["code"], "invalid_api_key");
    assert_eq!(revoked.0, 401, "{}", revoked.1);
    assert_eq!(revoked.1["error"]["code"], "key_revoked");
    assert_eq!(revoke_wider.0, 403, "{}", revoke_wider.1);
    assert_eq!(revoke_wider.1["error"]["code"], "insufficient_scope");
    let (count, revoked_count): (i64, i64) = (
        api_keys::table.count().get_result(&mut conn).unwrap(),
        api_keys::table
            .filter(api_keys::revoked_at.is_not_null())
            .count()
            .get_result(&mut conn)
            .unwrap(),
    );
    assert_eq!((count, revoked_count), (4, 1), "nothing created or revoked");
}
