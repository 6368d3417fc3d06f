//! `Idempotency-Key` on `POST /v1/generations`, `/v1/keys`, `/v1/webhooks`.

use diesel::prelude::*;
use futures_util::future::join_all;
use serde_json::{Value, json};

use shared::schema::{generations, usage_events, workspaces};

use crate::helpers::*;

async fn post(app: &TestApp, path: &str, key: &str, body: &Value) -> reqwest::Response {
    app.client
        .post(format!("{}{path}", app.address))
        .bearer_auth(&app.api_key)
        .header("Idempotency-Key", key)
        .json(body)
        .send()
        .await
        .unwrap()
}

fn charged(app: &TestApp) -> (i64, i64, i64) {
    let mut conn = connect(&app.settings);
    let used: i64 = workspaces::table
        .select(workspaces::credits_used)
        .first(&mut conn)
        .unwrap();
    let rows: i64 = generations::table.count().get_result(&mut conn).unwrap();
    let charges: i64 = usage_events::table.count().get_result(&mut conn).unwrap();
    (used, rows, charges)
}

#[tokio::test]
async fn a_repeated_generation_returns_the_first_response_and_charges_once() {
    let app = spawn_app().await;
    let body = app.seed_body();

    let first = post(&app, "/v1/generations", "order-1", &body).await;
    let again = post(&app, "/v1/generations", "order-1", &body).await;

    assert_eq!(first.status().as_u16(), 202);
    assert_eq!(again.status().as_u16(), 202);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(again.headers()["x-credits-charged"], "1");
    assert_eq!(again.headers()["location"], first.headers()["location"]);
    let first: Value = first.json().await.unwrap();
    let again: Value = again.json().await.unwrap();
    assert_eq!(first, again);
    assert_eq!(charged(&app), (1, 1, 1));
}

#[tokio::test]
async fn racing_requests_with_one_key_resolve_to_one_generation_and_one_charge() {
    let app = spawn_app().await;
    let body = app.seed_body();

    let responses = join_all((0..8).map(|_| post(&app, "/v1/generations", "race", &body))).await;

    let mut ids = Vec::new();
    for r in responses {
        assert_eq!(r.status().as_u16(), 202);
        let b: Value = r.json().await.unwrap();
        ids.push(b["id"].as_str().unwrap().to_owned());
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert_eq!(charged(&app), (1, 1, 1));
}

#[tokio::test]
async fn the_same_key_with_another_body_is_409_and_a_refused_request_frees_its_key() {
    let app = spawn_app().await;
    assert_eq!(
        post(&app, "/v1/generations", "k", &app.seed_body())
            .await
            .status()
            .as_u16(),
        202
    );
    let other = json!({"text": "Something else.", "voiceId": SEED_VOICE, "format": "wav"});

    assert_error(
        post(&app, "/v1/generations", "k", &other).await,
        409,
        "idempotency_key_reused",
    )
    .await;
    // A 4xx is not stored: the same key works once the request is fixed.
    let bad = json!({"text": "", "voiceId": SEED_VOICE, "format": "wav"});
    assert_eq!(
        post(&app, "/v1/generations", "k2", &bad)
            .await
            .status()
            .as_u16(),
        422
    );
    assert_eq!(
        post(&app, "/v1/generations", "k2", &other)
            .await
            .status()
            .as_u16(),
        202
    );
    assert_eq!(charged(&app).0, 2);
    assert_error(
        post(&app, "/v1/generations", &"x".repeat(300), &other).await,
        400,
        "invalid_idempotency_key",
    )
    .await;
}

#[tokio::test]
async fn keys_and_webhooks_are_created_once_per_idempotency_key() {
    let app = spawn_app().await;
    let receiver = shared::testing::receiver::Receiver::start().await;
    let key_body = json!({"name": "ci", "scopes": ["generations:read"]});
    let hook_body = json!({"url": receiver.url("/hooks"), "events": ["generation.completed"]});

    let keys = join_all((0..3).map(|_| post(&app, "/v1/keys", "new-key", &key_body))).await;
    let hooks = join_all((0..3).map(|_| post(&app, "/v1/webhooks", "new-hook", &hook_body))).await;

    let mut key_bodies = Vec::new();
    for r in keys {
        assert_eq!(r.status().as_u16(), 201);
        key_bodies.push(r.json::<Value>().await.unwrap());
    }
    assert!(key_bodies.windows(2).all(|w| w[0] == w[1]));
    let mut hook_bodies = Vec::new();
    for r in hooks {
        assert_eq!(r.status().as_u16(), 201);
        hook_bodies.push(r.json::<Value>().await.unwrap());
    }
    assert!(hook_bodies.windows(2).all(|w| w[0] == w[1]));
    let listed: Value = app.get("/v1/keys").await.json().await.unwrap();
    assert_eq!(
        listed["data"].as_array().unwrap().len(),
        2,
        "bootstrap + one"
    );
    let listed: Value = app.get("/v1/webhooks").await.json().await.unwrap();
    assert_eq!(listed["data"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn an_idempotency_key_expires_after_24_hours() {
    let app = spawn_app().await;
    let body = app.seed_body();
    let first: Value = post(&app, "/v1/generations", "daily", &body)
        .await
        .json()
        .await
        .unwrap();
    diesel::sql_query("UPDATE idempotency_keys SET created_at = now() - interval '25 hours'")
        .execute(&mut connect(&app.settings))
        .unwrap();

    let second: Value = post(&app, "/v1/generations", "daily", &body)
        .await
        .json()
        .await
        .unwrap();

    assert_ne!(first["id"], second["id"]);
    assert_eq!(charged(&app).0, 2);
}
