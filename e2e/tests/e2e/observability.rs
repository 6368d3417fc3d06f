//! Observability across the whole path, all four services in this process:
//! one generation is one W3C trace from the POST to the webhook (the
//! receiver gets a `traceparent` of the caller's trace, and every service's
//! JSON log lines of that work carry its `trace_id`), and each service's
//! `/metrics` counts the traffic it served.

use std::time::Duration;

use serde_json::{Value, json};
use shared::trace::TraceContext;
use testkit::eventually_within;
use testkit::logs::Watch;
use testkit::metric_value;
use testkit::receiver::Receiver;

use crate::helpers::{settings, start_stack};

const DEADLINE: Duration = Duration::from_secs(60);
const CALLER_SPAN: &str = "00f067aa0ba902b7";

async fn scrape(base: &str) -> String {
    let response = reqwest::get(format!("{base}/metrics")).await.unwrap();
    assert_eq!(response.status().as_u16(), 200, "GET {base}/metrics");
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    response.text().await.unwrap()
}

/// Polls `base`/metrics until the sample is `expected` (counters of the
/// last step may be recorded a moment after its effect is visible).
async fn wait_for_metric(base: &str, name: &str, labels: &[(&str, &str)], expected: f64) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let text = scrape(base).await;
        let value = metric_value(&text, name, labels);
        if value == Some(expected) {
            return text;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{base}: {name}{labels:?} is {value:?}, expected {expected}\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn logged<'a>(lines: &'a [Value], message: &str) -> Vec<&'a Value> {
    lines.iter().filter(|l| l["message"] == message).collect()
}

#[tokio::test]
async fn a_generation_is_one_trace_from_the_post_to_the_webhook_and_every_service_counts_it() {
    let mut settings = settings(1);
    settings.gateway.metrics_enabled = true;
    let stack = start_stack(settings).await;
    let receiver = Receiver::start().await;
    let hook = stack
        .post(
            "/v1/webhooks",
            json!({"url": receiver.url("/hooks"), "events": ["generation.completed"]}),
        )
        .await;
    assert_eq!(hook.status().as_u16(), 201);
    let trace_id = format!("{:032x}", uuid::Uuid::new_v4().as_u128());
    let logs = Watch::start(&trace_id);
    let accepted = ("method", "POST");
    let route = ("route", "/v1/generations");
    let before = metric_value(
        &scrape(&stack.gateway).await,
        "voiceprod_http_request_duration_seconds_count",
        &[accepted, route, ("status", "202")],
    )
    .unwrap_or(0.0);

    // Act: the caller is in a trace of its own.
    let response = stack
        .client
        .post(format!("{}/v1/generations", stack.gateway))
        .bearer_auth(&stack.api_key)
        .header("traceparent", format!("00-{trace_id}-{CALLER_SPAN}-01"))
        .json(
            &json!({"text": "One trace, end to end.", "voiceId": "voice_8f2a1c", "format": "wav"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 202);
    let request_id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let delivered = eventually_within(DEADLINE, "the webhook", || async {
        receiver.requests().into_iter().next()
    })
    .await;

    // The webhook continues the caller's trace, from a span of its own.
    let traceparent = delivered
        .header("traceparent")
        .expect("the webhook carries a traceparent");
    let received = TraceContext::parse(traceparent).expect("a valid traceparent");
    assert_eq!(received.trace_id(), trace_id);
    assert_ne!(received.span_id(), CALLER_SPAN);

    // Every service logged its part of the work in that trace, in JSON.
    // The dispatcher logs its attempt a moment after the receiver has it,
    // the worker its announcement once the event is confirmed (which may be
    // after the webhook went out).
    let expected = [
        "generation finished and announced",
        "event fanned out",
        "delivery attempted",
    ];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let lines = loop {
        let lines = logs.lines();
        if expected.iter().all(|m| !logged(&lines, m).is_empty()) {
            break lines;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no attempt logged in trace {trace_id}: {lines:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let served: Vec<_> = logged(&lines, "served")
        .into_iter()
        .filter(|l| l["span"]["path"] == "/v1/generations")
        .collect();
    assert_eq!(served.len(), 1, "{lines:#?}");
    assert_eq!(served[0]["span"]["request_id"], request_id.as_str());
    assert_eq!(served[0]["span"]["trace_id"], trace_id.as_str());
    assert_eq!(served[0]["status"], 202);
    // So are the worker's and the dispatcher's lines.
    for message in expected {
        let line = logged(&lines, message)
            .into_iter()
            .next()
            .unwrap_or_else(|| panic!("no {message:?} line: {lines:#?}"));
        let spans = line["spans"].as_array().unwrap();
        assert!(
            spans.iter().any(|s| s["trace_id"] == trace_id.as_str()),
            "{message}: {line}"
        );
    }

    // Metrics: each service counted the traffic it served.
    let gateway = scrape(&stack.gateway).await;
    assert_eq!(
        metric_value(
            &gateway,
            "voiceprod_http_request_duration_seconds_count",
            &[accepted, route, ("status", "202")],
        ),
        Some(before + 1.0),
        "{gateway}"
    );
    let lookups: f64 = ["hit", "miss"]
        .iter()
        .filter_map(|r| {
            metric_value(
                &gateway,
                "voiceprod_key_cache_lookups_total",
                &[("result", r)],
            )
        })
        .sum();
    // Two requests with the key: the webhook endpoint and the generation.
    assert_eq!(lookups, 2.0, "{gateway}");
    assert!(
        !gateway.contains("/v1/generations/gen_"),
        "raw paths are no labels"
    );

    let keys = scrape(&stack.key_service).await;
    let verified = metric_value(
        &keys,
        "voiceprod_http_request_duration_seconds_count",
        &[("route", shared::keys_api::VERIFY_PATH), ("status", "200")],
    )
    .unwrap_or(0.0);
    assert!(verified >= 1.0, "{keys}");

    // The seed text is short: its job went to the interactive lane.
    let jobs = "synth.jobs.interactive";
    let worker = wait_for_metric(
        stack.worker.as_deref().unwrap(),
        "voiceprod_messages_consumed_total",
        &[("queue", jobs), ("outcome", "ack")],
        1.0,
    )
    .await;
    for (name, labels) in [
        ("voiceprod_synthesis_seconds_count", ("format", "wav")),
        (
            "voiceprod_generations_finished_total",
            ("status", "completed"),
        ),
        ("voiceprod_queue_lag_seconds_count", ("queue", jobs)),
    ] {
        assert_eq!(metric_value(&worker, name, &[labels]), Some(1.0), "{name}");
    }
    let synthesis = metric_value(
        &worker,
        "voiceprod_synthesis_seconds_sum",
        &[("format", "wav")],
    );
    assert!(synthesis.is_some_and(|s| s > 0.0 && s < 60.0), "{worker}");
    let lag = metric_value(
        &worker,
        "voiceprod_queue_lag_seconds_sum",
        &[("queue", jobs)],
    );
    assert!(lag.is_some_and(|s| (0.0..60.0).contains(&s)), "{worker}");

    let dispatcher = wait_for_metric(
        stack.dispatcher.as_deref().unwrap(),
        "voiceprod_webhook_attempts_total",
        &[("outcome", "succeeded")],
        1.0,
    )
    .await;
    assert_eq!(
        metric_value(
            &dispatcher,
            "voiceprod_messages_consumed_total",
            &[("queue", "webhooks.events"), ("outcome", "ack")],
        ),
        Some(1.0),
        "{dispatcher}"
    );
    assert_eq!(
        metric_value(
            &dispatcher,
            "voiceprod_queue_lag_seconds_count",
            &[("queue", "webhooks.events")],
        ),
        Some(1.0),
        "{dispatcher}"
    );
}
