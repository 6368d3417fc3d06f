//! `Idempotency-Key` on `POST /v1/generations`, `/v1/keys`, `/v1/webhooks`.

use diesel::prelude::*;
use futures_util::future::join_all;
use serde_json::{Value, json};

use shared::schema::{generations, usage_events, workspaces};

use crate::helpers::*;

async fn post(app: &TestApp, path: &str, key: &str, body: &Value) -> reqwest::Response {
    post_as(app, &app.api_key, path, key, body).await
}

/// `POST path` with the API key `secret` and `Idempotency-Key: key`.
async fn post_as(
    app: &TestApp,
    secret: &str,
    path: &str,
    key: &str,
    body: &Value,
) -> reqwest::Response {
    app.client
        .post(format!("{}{path}", app.address))
        .bearer_auth(secret)
        .header("Idempotency-Key", key)
        .json(body)
        .send()
        .await
        .unwrap()
}

/// The status and JSON body of a response.
async fn answer(response: reqwest::Response) -> (u16, Value) {
    (
        response.status().as_u16(),
        response.json().await.unwrap_or(Value::Null),
    )
}

/// Every stored response body, as text.
fn stored_bodies(app: &TestApp) -> Vec<String> {
    use shared::schema::idempotency_keys;
    let bodies: Vec<Option<Vec<u8>>> = idempotency_keys::table
        .select(idempotency_keys::response_body)
        .load(&mut connect(&app.settings))
        .unwrap();
    bodies
        .into_iter()
        .flatten()
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .collect()
}

/// A key creation, a webhook registration and a generation, each sent by
/// the workspace's own key with an `Idempotency-Key`: (path, key, body).
async fn three_first_requests(
    app: &TestApp,
    receiver: &testkit::receiver::Receiver,
) -> Vec<(&'static str, &'static str, Value)> {
    let requests = vec![
        (
            "/v1/keys",
            "first-key",
            json!({"name": "ci", "scopes": ["generations:read"]}),
        ),
        (
            "/v1/webhooks",
            "first-hook",
            json!({"url": receiver.url("/hooks"), "events": ["generation.completed"]}),
        ),
        ("/v1/generations", "first-gen", app.seed_body()),
    ];
    for (path, key, body) in &requests {
        let status = post(app, path, key, body).await.status().as_u16();
        assert!(status == 201 || status == 202, "{path}: {status}");
    }
    requests
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
    let receiver = testkit::receiver::Receiver::start().await;
    let key_body = json!({"name": "ci", "scopes": ["generations:read"]});
    let hook_body = json!({"url": receiver.url("/hooks"), "events": ["generation.completed"]});

    let keys = join_all((0..3).map(|_| post(&app, "/v1/keys", "new-key", &key_body))).await;
    let hooks = join_all((0..3).map(|_| post(&app, "/v1/webhooks", "new-hook", &hook_body))).await;

    // One answer shows the secret; the replays are the same object without it.
    for responses in [keys, hooks] {
        let mut bodies = Vec::new();
        for r in responses {
            assert_eq!(r.status().as_u16(), 201);
            bodies.push(r.json::<Value>().await.unwrap());
        }
        let with_secret = bodies.iter().filter(|b| b.get("secret").is_some()).count();
        assert_eq!(with_secret, 1, "{bodies:?}");
        for b in &mut bodies {
            b.as_object_mut().unwrap().remove("secret");
        }
        assert!(bodies.windows(2).all(|w| w[0] == w[1]), "{bodies:?}");
    }
    let listed = app.get_json("/v1/keys").await;
    assert_eq!(
        listed["data"].as_array().unwrap().len(),
        2,
        "bootstrap + one"
    );
    let listed = app.get_json("/v1/webhooks").await;
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

#[tokio::test]
async fn a_key_without_the_scope_cannot_replay_another_keys_request() {
    let app = spawn_app().await;
    let receiver = testkit::receiver::Receiver::start().await;
    let requests = three_first_requests(&app, &receiver).await;
    let reader = key_with_scopes(&app, &["usage:read"]);

    for (path, key, body) in &requests {
        let (status, answer) = answer(post_as(&app, &reader, path, key, body).await).await;

        assert_eq!(status, 403, "{path}: {answer}");
        assert_eq!(answer["error"]["code"], "insufficient_scope", "{path}");
        let text = answer.to_string();
        assert!(!text.contains("vp_") && !text.contains("whsec_"), "{text}");
    }
    assert_eq!(charged(&app), (1, 1, 1));
}

#[tokio::test]
async fn another_key_of_the_workspace_gets_409_for_an_idempotency_key_it_did_not_use() {
    let app = spawn_app().await;
    let receiver = testkit::receiver::Receiver::start().await;
    let requests = three_first_requests(&app, &receiver).await;
    let other = key_with_scopes(&app, &shared::api_key::SCOPES);

    for (path, key, body) in &requests {
        let (status, answer) = answer(post_as(&app, &other, path, key, body).await).await;

        assert_eq!(status, 409, "{path}: {answer}");
        assert_eq!(answer["error"]["code"], "idempotency_key_reused", "{path}");
        assert_eq!(answer["error"]["param"], "Idempotency-Key");
        assert!(!answer.to_string().contains("secret"), "{answer}");
    }
    // Nothing was created or charged again.
    assert_eq!(charged(&app), (1, 1, 1));
    let hooks = app.get_json("/v1/webhooks").await;
    assert_eq!(hooks["data"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_replay_by_the_same_key_answers_the_object_without_its_secret() {
    let app = spawn_app().await;
    let receiver = testkit::receiver::Receiver::start().await;
    let cases = [
        (
            "/v1/keys",
            json!({"name": "ci", "scopes": ["generations:read"]}),
            "vp_",
        ),
        (
            "/v1/webhooks",
            json!({"url": receiver.url("/hooks"), "events": ["generation.completed"]}),
            "whsec_",
        ),
    ];

    for (path, body, prefix) in cases {
        let (first_status, mut first) = answer(post(&app, path, path, &body).await).await;
        let again = post(&app, path, path, &body).await;
        assert_eq!(again.headers()["idempotent-replayed"], "true");
        let (again_status, again) = answer(again).await;

        assert_eq!((first_status, again_status), (201, 201), "{path}");
        assert!(
            first["secret"].as_str().unwrap().starts_with(prefix),
            "{first}"
        );
        assert!(again.get("secret").is_none(), "{path} replayed {again}");
        first.as_object_mut().unwrap().remove("secret");
        assert_eq!(first, again, "{path}");
    }
}

#[tokio::test]
async fn no_stored_answer_holds_a_key_or_webhook_secret() {
    let app = spawn_app().await;
    let receiver = testkit::receiver::Receiver::start().await;
    let key: Value = post(
        &app,
        "/v1/keys",
        "k",
        &json!({"name": "ci", "scopes": ["generations:read"]}),
    )
    .await
    .json()
    .await
    .unwrap();
    let hook: Value = post(
        &app,
        "/v1/webhooks",
        "h",
        &json!({"url": receiver.url("/hooks"), "events": ["generation.completed"]}),
    )
    .await
    .json()
    .await
    .unwrap();
    let secrets = [
        key["secret"].as_str().unwrap(),
        hook["secret"].as_str().unwrap(),
    ];

    let bodies = stored_bodies(&app);

    assert_eq!(bodies.len(), 2, "both answers are stored");
    for body in &bodies {
        for secret in secrets {
            assert!(!body.contains(secret), "stored in plaintext: {body}");
        }
        assert!(
            !body.contains("\"secret\"") && !body.contains("whsec_"),
            "{body}"
        );
    }
}

#[tokio::test]
async fn migration_10_scrubs_secrets_stored_before_it_and_keeps_generation_replays() {
    use diesel::sql_types::{Bytea, SmallInt, Text, Uuid as SqlUuid};
    let app = spawn_app().await;
    let generation = app.create_seed_generation().await;
    let workspace = shared::ids::WorkspaceId::parse(&app.workspace_id)
        .unwrap()
        .0;
    let leaked = shared::api_key::generate().secret;
    let mut conn = connect(&app.settings);
    // The table as it was before migration 000010, with what the gateway
    // stored then: a key's 201 with its secret, a generation's 202.
    diesel::connection::SimpleConnection::batch_execute(
        &mut conn,
        "ALTER TABLE idempotency_keys DROP COLUMN IF EXISTS api_key_id; \
         DELETE FROM __diesel_schema_migrations WHERE version = '20261124000010'",
    )
    .unwrap();
    let legacy = [
        (
            "old-key",
            "/v1/keys",
            json!({"name": "ci", "scopes": ["generations:read"]}),
            201,
            json!({"id": "key_0", "name": "ci", "secret": leaked}),
        ),
        (
            "old-gen",
            "/v1/generations",
            app.seed_body(),
            202,
            generation.clone(),
        ),
    ];
    for (key, route, request, status, response) in &legacy {
        let hash = shared::api_key::hash(&format!("POST {route}\n{request}"));
        diesel::sql_query(
            "INSERT INTO idempotency_keys (workspace_id, idempotency_key, request_hash, route, \
             owner, response_status, response_headers, response_body, completed_at) \
             VALUES ($1, $2, $3, $4, gen_random_uuid(), $5, '{\"content-type\": \"application/json\"}', $6, now())",
        )
        .bind::<SqlUuid, _>(workspace)
        .bind::<Text, _>(*key)
        .bind::<Bytea, _>(hash.to_vec())
        .bind::<Text, _>(*route)
        .bind::<SmallInt, _>(*status as i16)
        .bind::<Bytea, _>(serde_json::to_vec(response).unwrap())
        .execute(&mut conn)
        .unwrap();
    }

    shared::db::run_migrations(&mut conn).unwrap();

    for body in stored_bodies(&app) {
        assert!(!body.contains(&leaked), "still stored: {body}");
    }
    // The generation's answer still replays to the key that made it; the
    // key's answer, whose maker is unknown, replays to no one.
    let (status, replayed) =
        answer(post(&app, "/v1/generations", "old-gen", &app.seed_body()).await).await;
    assert_eq!((status, &replayed), (202, &generation));
    let (status, refused) = answer(
        post(
            &app,
            "/v1/keys",
            "old-key",
            &json!({"name": "ci", "scopes": ["generations:read"]}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 409, "{refused}");
    assert!(!refused.to_string().contains(&leaked));
}
