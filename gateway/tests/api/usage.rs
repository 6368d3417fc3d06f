//! `GET /v1/workspace` and `GET /v1/usage`.

use chrono::Utc;
use diesel::prelude::*;
use serde_json::{Value, json};

use shared::models::Generation;
use shared::schema::usage_events;

use crate::helpers::*;

async fn get_json(app: &TestApp, path: &str, key: &str) -> (u16, Value) {
    let r = app
        .client
        .get(format!("{}{path}", app.address))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

#[tokio::test]
async fn workspace_shows_plan_allowance_used_credits_and_the_period() {
    let app = spawn_app().await;
    let two = json!({"text": "a".repeat(1500), "voiceId": SEED_VOICE, "format": "wav"});
    assert_eq!(app.post_generation(&two).await.status().as_u16(), 202);

    let (status, body) = get_json(&app, "/v1/workspace", &app.api_key).await;

    assert_eq!(status, 200);
    assert_eq!(body["id"], app.workspace_id.as_str());
    assert_eq!(body["plan"], "scale");
    assert_eq!(body["creditsIncluded"], 1000);
    assert_eq!(body["creditsUsed"], 2);
    assert_eq!(body["creditsRemaining"], 998);
    let start = chrono::DateTime::parse_from_rfc3339(body["period"]["start"].as_str().unwrap())
        .unwrap()
        .with_timezone(&Utc);
    let end = chrono::DateTime::parse_from_rfc3339(body["period"]["end"].as_str().unwrap())
        .unwrap()
        .with_timezone(&Utc);
    assert_eq!(start, shared::models::workspace::month_start(Utc::now()));
    assert!(start <= Utc::now() && Utc::now() < end);
}

#[tokio::test]
async fn usage_by_day_has_every_day_with_zeros_and_nets_refunds() {
    let app = spawn_app().await;
    let today = Utc::now().date_naive();
    let first: Value = app.create_seed_generation().await;
    let two = json!({"text": "a".repeat(1500), "voiceId": SEED_VOICE, "format": "wav"});
    assert_eq!(app.post_generation(&two).await.status().as_u16(), 202);
    let mut conn = connect(&app.settings);
    // The first one was charged two days ago and then failed (refunded today).
    let id = shared::ids::GenerationId::parse(first["id"].as_str().unwrap()).unwrap();
    diesel::update(usage_events::table.filter(usage_events::generation_id.eq(id.0)))
        .set(usage_events::created_at.eq(Utc::now() - chrono::Duration::days(2)))
        .execute(&mut conn)
        .unwrap();
    Generation::fail(&mut conn, id.0, json!({"code": "x"})).unwrap();
    let from = today - chrono::Duration::days(3);

    let (status, body) = get_json(
        &app,
        &format!("/v1/usage?from={from}&to={today}&groupBy=day"),
        &app.api_key,
    )
    .await;

    assert_eq!(status, 200, "{body}");
    let data = body["data"].as_array().unwrap();
    assert_eq!(data.len(), 4, "{body}");
    let seed_chars = SEED_TEXT.chars().count() as i64;
    let row = |i: usize| {
        (
            data[i]["credits"].as_i64().unwrap(),
            data[i]["characters"].as_i64().unwrap(),
            data[i]["generations"].as_i64().unwrap(),
            data[i]["refunds"].as_i64().unwrap(),
        )
    };
    assert_eq!(data[0]["date"], from.to_string());
    assert_eq!(row(0), (0, 0, 0, 0));
    assert_eq!(row(1), (1, seed_chars, 1, 0));
    assert_eq!(row(2), (0, 0, 0, 0));
    assert_eq!(row(3), (2 - 1, 1500 - seed_chars, 1, 1));
    assert_eq!(data[3]["date"], today.to_string());
    assert_eq!(body["total"]["credits"], 2);
}

#[tokio::test]
async fn usage_by_key_splits_the_ledger_per_key() {
    let app = spawn_app().await;
    let other = key_with_scopes(&app, &["generations:write"]);
    assert_eq!(
        app.post_generation(&app.seed_body())
            .await
            .status()
            .as_u16(),
        202
    );
    let two = json!({"text": "a".repeat(1500), "voiceId": SEED_VOICE, "format": "wav"});
    assert_eq!(
        app.post_generation_with_key(&two, &other)
            .await
            .status()
            .as_u16(),
        202
    );

    let (status, body) = get_json(&app, "/v1/usage?groupBy=key", &app.api_key).await;

    assert_eq!(status, 200, "{body}");
    let data = body["data"].as_array().unwrap();
    assert_eq!(data.len(), 2, "{body}");
    assert_eq!(data[0]["credits"], 2);
    assert_eq!(data[1]["credits"], 1);
    assert!(data[0]["keyId"].as_str().unwrap().starts_with("key_"));
    assert_ne!(data[0]["keyId"], data[1]["keyId"]);
}

#[tokio::test]
async fn usage_needs_its_scope_and_valid_parameters() {
    let app = spawn_app().await;
    let writer = key_with_scopes(&app, &["generations:write"]);

    for path in ["/v1/workspace", "/v1/usage"] {
        let r = app
            .client
            .get(format!("{}{path}", app.address))
            .bearer_auth(&writer)
            .send()
            .await
            .unwrap();
        assert_error(r, 403, "insufficient_scope").await;
    }
    for query in [
        "groupBy=week",
        "from=yesterday",
        "from=2026-02-01&to=2026-01-01",
        "from=2020-01-01&to=2026-01-01",
    ] {
        assert_error(
            app.get(&format!("/v1/usage?{query}")).await,
            400,
            "invalid_parameter",
        )
        .await;
    }
}
