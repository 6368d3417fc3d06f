//! The gateway's metrics (off by default on this public server, behind a
//! token when one is set), the trace context it puts on jobs (kept by the
//! sweeper's re-publish), and the request id in error bodies.

use diesel::prelude::*;
use lapin::types::AMQPValue;
use secrecy::SecretString;
use serde_json::Value;
use shared::schema::generations;
use shared::trace::TraceContext;
use testkit::metric_value;

use crate::helpers::{TestApp, assert_error, connect, settings, spawn_app, spawn_app_with};

async fn spawn_with_metrics(token: Option<&str>) -> TestApp {
    let mut s = settings();
    s.gateway.metrics_enabled = true;
    s.telemetry.metrics_token = token.map(SecretString::from);
    spawn_app_with(s).await
}

async fn scrape(app: &TestApp) -> String {
    let response = app
        .client
        .get(format!("{}/metrics", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    response.text().await.unwrap()
}

fn requests(text: &str, method: &str, route: &str, status: &str) -> f64 {
    metric_value(
        text,
        "voiceprod_http_request_duration_seconds_count",
        &[("method", method), ("route", route), ("status", status)],
    )
    .unwrap_or(0.0)
}

/// The next job on the app's queue and the `traceparent` it carries.
async fn next_job_with_trace(app: &TestApp) -> (Value, Option<TraceContext>) {
    let delivery = app.next_job_delivery().await;
    let trace = delivery
        .properties
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get("traceparent").cloned())
        .and_then(|v| match v {
            AMQPValue::LongString(s) => TraceContext::parse(&String::from_utf8_lossy(s.as_bytes())),
            _ => None,
        });
    (serde_json::from_slice(&delivery.data).unwrap(), trace)
}

#[tokio::test]
async fn metrics_are_not_served_by_the_public_gateway_unless_turned_on() {
    let app = spawn_app().await;

    let response = app
        .client
        .get(format!("{}/metrics", app.address))
        .send()
        .await
        .unwrap();

    assert_error(response, 404, "route_not_found").await;
}

#[tokio::test]
async fn metrics_count_requests_by_route_pattern_and_status() {
    let app = spawn_with_metrics(None).await;
    let before = scrape(&app).await;

    let created = app.create_seed_generation().await;
    let id = created["id"].as_str().unwrap();
    assert_eq!(
        app.get(&format!("/v1/generations/{id}")).await.status(),
        200
    );
    assert_eq!(app.get("/v1/no-such-route").await.status(), 404);

    let after = scrape(&app).await;
    assert_eq!(
        requests(&after, "POST", "/v1/generations", "202"),
        requests(&before, "POST", "/v1/generations", "202") + 1.0,
        "{after}"
    );
    assert_eq!(
        requests(&after, "GET", "/v1/generations/{id}", "200"),
        1.0,
        "{after}"
    );
    assert_eq!(requests(&after, "GET", "unmatched", "404"), 1.0, "{after}");
    // Raw paths never become labels: one series per pattern.
    assert!(!after.contains(id), "{after}");
    let sum = metric_value(
        &after,
        "voiceprod_http_request_duration_seconds_sum",
        &[("route", "/v1/generations"), ("status", "202")],
    )
    .unwrap();
    assert!(sum > 0.0 && sum < 30.0, "{sum}");
    // The first request of the key missed the cache, the next one hit it.
    let lookups = |r| {
        metric_value(
            &after,
            "voiceprod_key_cache_lookups_total",
            &[("result", r)],
        )
    };
    assert_eq!(lookups("miss"), Some(1.0), "{after}");
    assert!(lookups("hit").is_some_and(|n| n >= 1.0), "{after}");
}

#[tokio::test]
async fn a_metrics_token_is_required_when_one_is_set() {
    let app = spawn_with_metrics(Some("scrape-secret")).await;
    let get = |token: Option<&'static str>| {
        let mut request = app.client.get(format!("{}/metrics", app.address));
        if let Some(t) = token {
            request = request.bearer_auth(t);
        }
        request.send()
    };

    assert_error(get(None).await.unwrap(), 401, "invalid_metrics_token").await;
    assert_error(
        get(Some("wrong")).await.unwrap(),
        401,
        "invalid_metrics_token",
    )
    .await;
    let ok = get(Some("scrape-secret")).await.unwrap();
    assert_eq!(ok.status().as_u16(), 200);
    assert!(
        ok.text()
            .await
            .unwrap()
            .contains("voiceprod_http_request_duration_seconds")
    );
}

#[tokio::test]
async fn the_job_continues_the_callers_trace_and_the_sweeper_keeps_it() {
    let app = spawn_app().await;
    let caller = TraceContext::new_root();

    let response = app
        .client
        .post(format!("{}/v1/generations", app.address))
        .bearer_auth(&app.api_key)
        .header("traceparent", caller.to_string())
        .json(&app.seed_body())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 202);
    let (job, trace) = next_job_with_trace(&app).await;
    let trace = trace.expect("the job carries a traceparent");
    assert_eq!(trace.trace_id(), caller.trace_id());
    assert_ne!(trace.span_id(), caller.span_id());

    // As if the gateway had crashed between the commit and the publish.
    diesel::update(generations::table)
        .set(generations::published_at.eq(None::<chrono::DateTime<chrono::Utc>>))
        .execute(&mut connect(&app.settings))
        .unwrap();
    let (again, retrace) = next_job_with_trace(&app).await;

    assert_eq!(again["generationId"], job["generationId"]);
    assert_eq!(
        retrace
            .expect("the re-published job carries a traceparent")
            .trace_id(),
        caller.trace_id()
    );
}

#[tokio::test]
async fn a_request_without_traceparent_starts_a_trace_and_a_bad_one_is_replaced() {
    let app = spawn_app().await;

    app.create_seed_generation().await;
    let (_, first) = next_job_with_trace(&app).await;
    let response = app
        .client
        .post(format!("{}/v1/generations", app.address))
        .bearer_auth(&app.api_key)
        .header(
            "traceparent",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        )
        .json(&app.seed_body())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 202);
    let (_, second) = next_job_with_trace(&app).await;

    let (first, second) = (first.unwrap(), second.unwrap());
    assert_ne!(first.trace_id(), second.trace_id());
    assert_ne!(second.trace_id(), "0".repeat(32));
}

#[tokio::test]
async fn error_bodies_carry_the_request_id_of_the_response() {
    let app = spawn_app().await;

    for response in [
        app.get("/v1/no-such-route").await,
        app.client
            .get(format!("{}/v1/generations", app.address))
            .send()
            .await
            .unwrap(),
    ] {
        let header = response.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .to_owned();
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["requestId"], header.as_str(), "{body}");
    }
}
