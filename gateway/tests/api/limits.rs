//! Requests per second per key, generations in flight per workspace, and
//! the system's own overload guard.

use diesel::prelude::*;
use futures_util::future::join_all;
use serde_json::json;

use shared::models::Generation;
use shared::schema::{generations, workspaces};

use crate::helpers::*;

fn assert_rate_headers(r: &reqwest::Response) {
    for h in [
        "x-ratelimit-limit",
        "x-ratelimit-remaining",
        "x-ratelimit-reset",
    ] {
        assert!(
            r.headers().contains_key(h),
            "{h} missing: {:?}",
            r.headers()
        );
    }
}

#[tokio::test]
async fn a_key_over_its_rate_gets_429_rate_limited_with_retry_after_and_rate_headers() {
    let mut settings = settings();
    settings
        .plans
        .insert("slow".into(), plan(None, Some(1), None));
    let app = spawn_app_with(settings).await;
    let (_, key) = new_workspace(&app.settings, "slow-ws", "slow");
    let get = || {
        app.client
            .get(format!("{}/v1/workspace", app.address))
            .bearer_auth(&key)
            .send()
    };

    let responses: Vec<_> = join_all((0..5).map(|_| get())).await;

    let mut limited = 0;
    for r in responses {
        let r = r.unwrap();
        assert_rate_headers(&r);
        assert_eq!(r.headers()["x-ratelimit-limit"], "1");
        if r.status().as_u16() == 429 {
            limited += 1;
            assert!(
                r.headers()["retry-after"]
                    .to_str()
                    .unwrap()
                    .parse::<u64>()
                    .unwrap()
                    >= 1
            );
            assert_eq!(r.headers()["x-ratelimit-remaining"], "0");
            assert_error(r, 429, "rate_limited").await;
        } else {
            assert_eq!(r.status().as_u16(), 200);
        }
    }
    assert!(limited >= 1, "5 requests at once on a 1/s plan");
    // Another key is not affected.
    assert_eq!(app.get("/v1/workspace").await.status().as_u16(), 200);
}

#[tokio::test]
async fn generations_in_flight_are_limited_exactly_per_workspace() {
    let mut settings = settings();
    settings
        .plans
        .insert("pair".into(), plan(None, None, Some(2)));
    let app = spawn_app_with(settings).await;
    let (_, key) = new_workspace(&app.settings, "pair-ws", "pair");
    let body = app.seed_body();

    let responses = join_all((0..6).map(|_| app.post_generation_with_key(&body, &key))).await;

    let mut accepted = Vec::new();
    for r in responses {
        if r.status().as_u16() == 202 {
            accepted.push(r.json::<serde_json::Value>().await.unwrap());
        } else {
            assert_rate_headers(&r);
            assert_eq!(r.headers()["x-ratelimit-limit"], "2");
            assert!(r.headers().contains_key("retry-after"));
            assert_error(r, 429, "rate_limited").await;
        }
    }
    assert_eq!(accepted.len(), 2);
    let mut conn = connect(&app.settings);
    let used: i64 = workspaces::table
        .filter(workspaces::name.eq("pair-ws"))
        .select(workspaces::credits_used)
        .first(&mut conn)
        .unwrap();
    assert_eq!(used, 2, "refused ones are not charged");
    // Once one finishes, there is room for one more.
    let done = shared::ids::GenerationId::parse(accepted[0]["id"].as_str().unwrap()).unwrap();
    Generation::fail(&mut conn, done.0, json!({"code": "x"})).unwrap();
    assert_eq!(
        app.post_generation_with_key(&body, &key)
            .await
            .status()
            .as_u16(),
        202
    );
}

#[tokio::test]
async fn an_overloaded_system_answers_503_system_busy_and_charges_nothing() {
    let mut settings = settings();
    settings.gateway.max_processing_generations = 1;
    let app = spawn_app_with(settings).await;
    assert_eq!(
        app.post_generation(&app.seed_body())
            .await
            .status()
            .as_u16(),
        202
    );

    let busy = app.post_generation(&app.seed_body()).await;

    assert!(busy.headers().contains_key("retry-after"));
    assert_error(busy, 503, "system_busy").await;
    let rows: i64 = generations::table
        .count()
        .get_result(&mut connect(&app.settings))
        .unwrap();
    assert_eq!(rows, 1);
}

#[tokio::test]
async fn successful_answers_carry_the_rate_limit_headers() {
    let app = spawn_app().await;

    let response = app.post_generation(&app.seed_body()).await;

    assert_eq!(response.status().as_u16(), 202);
    assert_rate_headers(&response);
    assert_eq!(response.headers()["x-ratelimit-limit"], "10000");
}
