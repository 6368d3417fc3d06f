//! The key lifecycle through the public API: create, list with usage,
//! rotate with grace, revoke everywhere at once, the key service going
//! down, batched lastUsedAt, and per-key credit limits.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::*;

async fn call(
    app: &TestApp,
    key: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> reqwest::Response {
    let mut request = app
        .client
        .request(method, format!("{}{path}", app.address))
        .bearer_auth(key);
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.unwrap()
}

async fn create_key(app: &TestApp, body: Value) -> Value {
    let response = call(
        app,
        &app.api_key,
        reqwest::Method::POST,
        "/v1/keys",
        Some(body),
    )
    .await;
    assert_eq!(response.status().as_u16(), 201);
    response.json().await.unwrap()
}

async fn list_keys(app: &TestApp) -> Vec<Value> {
    let body: Value = call(app, &app.api_key, reqwest::Method::GET, "/v1/keys", None)
        .await
        .json()
        .await
        .unwrap();
    body["data"].as_array().unwrap().clone()
}

async fn status_with(app: &TestApp, address: &str, key: &str) -> u16 {
    app.client
        .get(format!(
            "{address}/v1/generations/gen_{}",
            uuid::Uuid::nil().simple()
        ))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn a_created_key_works_its_secret_is_shown_once_and_the_list_shows_its_usage() {
    let app = spawn_app().await;

    let created = create_key(
        &app,
        json!({"name": "ci", "scopes": ["generations:write", "generations:read"]}),
    )
    .await;

    let secret = created["secret"].as_str().unwrap().to_owned();
    assert!(shared::api_key::is_well_formed(&secret));
    assert!(created["id"].as_str().unwrap().starts_with("key_"));
    assert!(secret.starts_with(created["prefix"].as_str().unwrap()));
    assert_eq!(
        app.post_generation_with_key(&app.seed_body(), &secret)
            .await
            .status()
            .as_u16(),
        202
    );
    let keys = list_keys(&app).await;
    assert_eq!(keys.len(), 2);
    let listed = keys.iter().find(|k| k["id"] == created["id"]).unwrap();
    assert!(listed.get("secret").is_none());
    assert_eq!(listed["name"], "ci");
    assert_eq!(
        listed["scopes"],
        json!(["generations:write", "generations:read"])
    );
    assert_eq!(listed["usage"], json!({"credits": 1, "requests": 1}));
    for field in [
        "createdAt",
        "lastUsedAt",
        "expiresAt",
        "revokedAt",
        "prefix",
    ] {
        assert!(listed.get(field).is_some(), "{field} missing from {listed}");
    }
}

#[tokio::test]
async fn a_key_cannot_create_or_rotate_keys_with_scopes_it_does_not_hold() {
    let app = spawn_app().await;
    let manager = key_with_scopes(&app, &["keys:manage", "generations:read"]);
    let full = create_key(
        &app,
        json!({"name": "full", "scopes": ["generations:write", "generations:read"]}),
    )
    .await;

    let wider = call(
        &app,
        &manager,
        reqwest::Method::POST,
        "/v1/keys",
        Some(json!({"name": "x", "scopes": ["generations:write"]})),
    )
    .await;
    let rotate = call(
        &app,
        &manager,
        reqwest::Method::POST,
        &format!("/v1/keys/{}/rotate", full["id"].as_str().unwrap()),
        Some(json!({"gracePeriodSeconds": 0})),
    )
    .await;
    let narrower = call(
        &app,
        &manager,
        reqwest::Method::POST,
        "/v1/keys",
        Some(json!({"name": "y", "scopes": ["generations:read"]})),
    )
    .await;

    assert_error(wider, 403, "insufficient_scope").await;
    assert_error(rotate, 403, "insufficient_scope").await;
    assert_eq!(narrower.status().as_u16(), 201);
    // The refused rotation left the key as it was.
    assert_eq!(
        status_with(&app, &app.address, full["secret"].as_str().unwrap()).await,
        404
    );
}

#[tokio::test]
async fn key_management_needs_the_keys_manage_scope() {
    let app = spawn_app().await;
    let writer = key_with_scopes(&app, &["generations:write"]);

    for (method, path) in [
        (reqwest::Method::GET, "/v1/keys".to_owned()),
        (
            reqwest::Method::DELETE,
            format!("/v1/keys/key_{}", uuid::Uuid::nil().simple()),
        ),
    ] {
        let response = call(&app, &writer, method, &path, None).await;
        let body = assert_error(response, 403, "insufficient_scope").await;
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("keys:manage")
        );
    }
}

#[tokio::test]
async fn bad_key_requests_are_400_and_create_nothing() {
    let app = spawn_app().await;
    let past = (chrono::Utc::now() - chrono::Duration::hours(1)).to_rfc3339();
    let cases = [
        (
            json!({"name": "x", "scopes": ["generations:fly"]}),
            "invalid_scopes",
        ),
        (json!({"name": "x", "scopes": []}), "invalid_scopes"),
        (
            json!({"name": " ", "scopes": ["usage:read"]}),
            "invalid_name",
        ),
        (
            json!({"name": "x", "scopes": ["usage:read"], "expiresAt": past}),
            "invalid_expires_at",
        ),
        (
            json!({"name": "x", "scopes": ["usage:read"], "creditLimit": -1}),
            "invalid_credit_limit",
        ),
        (
            json!({"name": "x", "scopes": ["usage:read"], "color": "red"}),
            "invalid_parameter",
        ),
    ];
    for (body, code) in cases {
        let response = call(
            &app,
            &app.api_key,
            reqwest::Method::POST,
            "/v1/keys",
            Some(body),
        )
        .await;
        assert_error(response, 400, code).await;
    }
    let own = list_keys(&app).await[0]["id"].as_str().unwrap().to_owned();
    for grace in [-1, 7 * 24 * 3600 + 1] {
        let response = call(
            &app,
            &app.api_key,
            reqwest::Method::POST,
            &format!("/v1/keys/{own}/rotate"),
            Some(json!({"gracePeriodSeconds": grace})),
        )
        .await;
        assert_error(response, 400, "invalid_grace_period").await;
    }
    assert_eq!(list_keys(&app).await.len(), 1);
}

#[tokio::test]
async fn another_workspaces_key_is_404() {
    let app = spawn_app().await;
    let (_, other_key) = new_workspace(&app.settings, "other", "scale");
    let mine = list_keys(&app).await[0]["id"].as_str().unwrap().to_owned();

    let revoke = call(
        &app,
        &other_key,
        reqwest::Method::DELETE,
        &format!("/v1/keys/{mine}"),
        None,
    )
    .await;
    let rotate = call(
        &app,
        &other_key,
        reqwest::Method::POST,
        &format!("/v1/keys/{mine}/rotate"),
        Some(json!({"gracePeriodSeconds": 0})),
    )
    .await;

    assert_error(revoke, 404, "not_found").await;
    assert_error(rotate, 404, "not_found").await;
    assert_eq!(status_with(&app, &app.address, &app.api_key).await, 404);
}

#[tokio::test]
async fn rotation_keeps_the_old_secret_working_for_the_grace_period_then_never_again() {
    let app = spawn_app().await;
    let old = create_key(
        &app,
        json!({"name": "rotating", "scopes": ["generations:read"]}),
    )
    .await;
    let old_secret = old["secret"].as_str().unwrap().to_owned();
    assert_eq!(status_with(&app, &app.address, &old_secret).await, 404);

    let rotated = call(
        &app,
        &app.api_key,
        reqwest::Method::POST,
        &format!("/v1/keys/{}/rotate", old["id"].as_str().unwrap()),
        Some(json!({"gracePeriodSeconds": 2})),
    )
    .await;

    assert_eq!(rotated.status().as_u16(), 201);
    let new: Value = rotated.json().await.unwrap();
    assert_ne!(new["id"], old["id"]);
    assert_eq!(new["rotatedFrom"], old["id"]);
    assert_eq!(new["scopes"], old["scopes"]);
    let new_secret = new["secret"].as_str().unwrap();
    assert_eq!(
        status_with(&app, &app.address, new_secret).await,
        404,
        "new secret works"
    );
    assert_eq!(
        status_with(&app, &app.address, &old_secret).await,
        404,
        "old secret works during the grace period"
    );
    eventually("the old secret to be refused", || async {
        (status_with(&app, &app.address, &old_secret).await == 401).then_some(())
    })
    .await;
    let response = call(
        &app,
        &old_secret,
        reqwest::Method::GET,
        "/v1/generations/x",
        None,
    )
    .await;
    assert_error(response, 401, "key_expired").await;
    assert_eq!(status_with(&app, &app.address, new_secret).await, 404);
}

#[tokio::test]
async fn rotation_without_grace_ends_the_old_secret_at_once() {
    let app = spawn_app().await;
    let old = create_key(&app, json!({"name": "k", "scopes": ["generations:read"]})).await;
    let old_secret = old["secret"].as_str().unwrap().to_owned();
    assert_eq!(status_with(&app, &app.address, &old_secret).await, 404);

    call(
        &app,
        &app.api_key,
        reqwest::Method::POST,
        &format!("/v1/keys/{}/rotate", old["id"].as_str().unwrap()),
        Some(json!({"gracePeriodSeconds": 0})),
    )
    .await;

    assert_eq!(status_with(&app, &app.address, &old_secret).await, 401);
}

#[tokio::test]
async fn revocation_takes_effect_at_once_on_this_gateway_and_within_a_second_on_another() {
    let app = spawn_app().await;
    let second = spawn_gateway(&app.settings).await;
    let victim = create_key(
        &app,
        json!({"name": "victim", "scopes": ["generations:read"]}),
    )
    .await;
    let secret = victim["secret"].as_str().unwrap().to_owned();
    // Both gateways have the key cached now (the TTL is 5 s).
    assert_eq!(status_with(&app, &app.address, &secret).await, 404);
    assert_eq!(status_with(&app, &second, &secret).await, 404);

    let revoked = call(
        &app,
        &app.api_key,
        reqwest::Method::DELETE,
        &format!("/v1/keys/{}", victim["id"].as_str().unwrap()),
        None,
    )
    .await;
    let done = Instant::now();

    assert_eq!(revoked.status().as_u16(), 200);
    let body: Value = revoked.json().await.unwrap();
    assert!(body["revokedAt"].is_string());
    let here = call(
        &app,
        &secret,
        reqwest::Method::GET,
        "/v1/generations/x",
        None,
    )
    .await;
    assert_error(here, 401, "key_revoked").await;
    loop {
        if status_with(&app, &second, &secret).await == 401 {
            break;
        }
        assert!(
            done.elapsed() < Duration::from_secs(1),
            "the second gateway still admits the revoked key after 1 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn with_the_key_service_down_recent_keys_keep_working_for_the_stale_window_and_unknown_keys_get_503()
 {
    let mut settings = settings();
    settings.gateway.key_cache_ttl_ms = 50;
    settings.gateway.key_stale_window_ms = 1_500;
    let app = spawn_app_with(settings).await;
    assert_eq!(status_with(&app, &app.address, &app.api_key).await, 404);

    app.key_service_stop.cancel();
    eventually("the key service to be down", || async {
        reqwest::get(format!("{}/healthz", app.settings.gateway.key_service_url))
            .await
            .is_err()
            .then_some(())
    })
    .await;

    assert_eq!(
        status_with(&app, &app.address, &app.api_key).await,
        404,
        "recently verified key still works"
    );
    let unknown = shared::api_key::generate().secret;
    let response = call(
        &app,
        &unknown,
        reqwest::Method::GET,
        "/v1/generations/x",
        None,
    )
    .await;
    assert!(response.headers().contains_key("retry-after"));
    assert_error(response, 503, "key_service_unavailable").await;
    // Past the stale window the known key is refused too: 503, never 500.
    eventually("503 while the key service is down", || async {
        (status_with(&app, &app.address, &app.api_key).await == 503).then_some(())
    })
    .await;
}

#[tokio::test]
async fn last_used_at_is_recorded_in_batches() {
    let mut settings = settings();
    settings.gateway.last_used_flush_ms = 100;
    let app = spawn_app_with(settings).await;
    let key = create_key(
        &app,
        json!({"name": "used", "scopes": ["generations:read"]}),
    )
    .await;
    let before = list_keys(&app).await;
    assert!(before.iter().find(|k| k["id"] == key["id"]).unwrap()["lastUsedAt"].is_null());

    status_with(&app, &app.address, key["secret"].as_str().unwrap()).await;

    eventually("the key usage to show", || async {
        let keys = list_keys(&app).await;
        keys.into_iter()
            .find(|k| k["id"] == key["id"])
            .and_then(|k| k["lastUsedAt"].as_str().map(str::to_owned))
    })
    .await;
}

#[tokio::test]
async fn a_keys_credit_limit_is_enforced_also_under_concurrency() {
    let app = spawn_app().await;
    let limited = create_key(
        &app,
        json!({"name": "capped", "scopes": ["generations:write"], "creditLimit": 3}),
    )
    .await;
    let secret = limited["secret"].as_str().unwrap().to_owned();

    let body = app.seed_body();
    let attempts = (0..8).map(|_| app.post_generation_with_key(&body, &secret));
    let responses = futures_util::future::join_all(attempts).await;

    let accepted = responses
        .iter()
        .filter(|r| r.status().as_u16() == 202)
        .count();
    assert_eq!(accepted, 3);
    let refused = app
        .post_generation_with_key(&app.seed_body(), &secret)
        .await;
    assert_error(refused, 402, "key_credit_limit").await;
    // The workspace's own key has no limit and still works.
    assert_eq!(
        app.post_generation(&app.seed_body())
            .await
            .status()
            .as_u16(),
        202
    );
}

/// A time `minutes` from now, as the API writes it.
fn from_now(minutes: i64) -> String {
    shared::time::format(chrono::Utc::now() + chrono::Duration::minutes(minutes))
}

/// `POST /v1/keys/{id}/rotate` of `key` (no grace) with the key `secret`.
async fn rotate_as(app: &TestApp, secret: &str, key: &Value) -> reqwest::Response {
    let path = format!("/v1/keys/{}/rotate", key["id"].as_str().unwrap());
    let body = json!({"gracePeriodSeconds": 0});
    call(app, secret, reqwest::Method::POST, &path, Some(body)).await
}

/// `DELETE /v1/keys/{id}` of `key` with the key `secret`.
async fn revoke_as(app: &TestApp, secret: &str, key: &Value) -> reqwest::Response {
    let path = format!("/v1/keys/{}", key["id"].as_str().unwrap());
    call(app, secret, reqwest::Method::DELETE, &path, None).await
}

/// A key with `keys:manage` and `generations:read` that expires in an hour
/// and may spend 1 credit, made by the workspace's own key.
async fn short_lived_manager(app: &TestApp) -> Value {
    create_key(
        app,
        json!({"name": "temp", "scopes": ["keys:manage", "generations:read"],
               "expiresAt": from_now(60), "creditLimit": 1}),
    )
    .await
}

#[tokio::test]
async fn a_key_cannot_create_a_key_that_outlives_it_or_may_spend_more() {
    let app = spawn_app().await;
    let parent = short_lived_manager(&app).await;
    let secret = parent["secret"].as_str().unwrap();
    let cases = [
        (
            json!({"name": "forever", "scopes": ["generations:read"]}),
            "expiresAt",
        ),
        (
            json!({"name": "later", "scopes": ["generations:read"],
                   "expiresAt": from_now(120), "creditLimit": 1}),
            "expiresAt",
        ),
        (
            json!({"name": "unlimited", "scopes": ["generations:read"],
                   "expiresAt": from_now(30)}),
            "creditLimit",
        ),
        (
            json!({"name": "more", "scopes": ["generations:read"],
                   "expiresAt": from_now(30), "creditLimit": 2}),
            "creditLimit",
        ),
    ];

    for (body, param) in cases {
        let response = call(&app, secret, reqwest::Method::POST, "/v1/keys", Some(body)).await;
        let error = assert_error(response, 403, "key_exceeds_parent").await;
        assert_eq!(error["error"]["param"], param, "{error}");
    }

    assert_eq!(list_keys(&app).await.len(), 2, "nothing was created");
    // A key as long-lived and as limited as its maker, or less, is fine.
    for body in [
        json!({"name": "equal", "scopes": ["keys:manage", "generations:read"],
               "expiresAt": parent["expiresAt"], "creditLimit": 1}),
        json!({"name": "narrower", "scopes": ["generations:read"],
               "expiresAt": from_now(30), "creditLimit": 0}),
    ] {
        let response = call(&app, secret, reqwest::Method::POST, "/v1/keys", Some(body)).await;
        assert_eq!(response.status().as_u16(), 201);
    }
}

#[tokio::test]
async fn a_key_cannot_rotate_a_key_that_outlives_it_or_may_spend_more() {
    let app = spawn_app().await;
    let parent = short_lived_manager(&app).await;
    let secret = parent["secret"].as_str().unwrap();
    let forever = create_key(
        &app,
        json!({"name": "forever", "scopes": ["generations:read"]}),
    )
    .await;
    let unlimited = create_key(
        &app,
        json!({"name": "unlimited", "scopes": ["generations:read"], "expiresAt": from_now(30)}),
    )
    .await;
    let within = create_key(
        &app,
        json!({"name": "within", "scopes": ["generations:read"],
               "expiresAt": from_now(30), "creditLimit": 1}),
    )
    .await;

    let error = assert_error(
        rotate_as(&app, secret, &forever).await,
        403,
        "key_exceeds_parent",
    )
    .await;
    assert_eq!(error["error"]["param"], "expiresAt");
    let error = assert_error(
        rotate_as(&app, secret, &unlimited).await,
        403,
        "key_exceeds_parent",
    )
    .await;
    assert_eq!(error["error"]["param"], "creditLimit");

    // The refused rotations changed nothing: both secrets still work.
    for key in [&forever, &unlimited] {
        assert_eq!(
            status_with(&app, &app.address, key["secret"].as_str().unwrap()).await,
            404
        );
    }
    assert_eq!(list_keys(&app).await.len(), 5);
    // A key within the caller's limits rotates, and the new key keeps them;
    // so does the caller itself.
    let rotated = rotate_as(&app, secret, &within).await;
    assert_eq!(rotated.status().as_u16(), 201);
    let rotated: Value = rotated.json().await.unwrap();
    assert_eq!(rotated["expiresAt"], within["expiresAt"]);
    assert_eq!(rotated["creditLimit"], 1);
    assert_eq!(
        rotate_as(&app, secret, &parent).await.status().as_u16(),
        201
    );
}

#[tokio::test]
async fn a_key_cannot_revoke_a_key_with_scopes_it_does_not_hold() {
    let app = spawn_app().await;
    let manager = key_with_scopes(&app, &["keys:manage", "generations:read"]);
    let wider = create_key(
        &app,
        json!({"name": "wider", "scopes": ["generations:read", "generations:write"]}),
    )
    .await;
    let narrower = create_key(
        &app,
        json!({"name": "narrower", "scopes": ["generations:read"]}),
    )
    .await;
    let own = list_keys(&app)
        .await
        .into_iter()
        .find(|k| k["name"] != "wider" && k["name"] != "narrower" && k["name"] != "limited")
        .unwrap();

    let error = assert_error(
        revoke_as(&app, &manager, &wider).await,
        403,
        "insufficient_scope",
    )
    .await;
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("generations:write"),
        "{error}"
    );
    assert_error(
        revoke_as(&app, &manager, &own).await,
        403,
        "insufficient_scope",
    )
    .await;

    // Nothing was revoked.
    assert_eq!(
        status_with(&app, &app.address, wider["secret"].as_str().unwrap()).await,
        404
    );
    assert_eq!(status_with(&app, &app.address, &app.api_key).await, 404);
    assert!(
        list_keys(&app)
            .await
            .iter()
            .all(|k| k["revokedAt"].is_null())
    );
    // A key whose scopes it holds, it may revoke.
    assert_eq!(
        revoke_as(&app, &manager, &narrower).await.status().as_u16(),
        200
    );
}
