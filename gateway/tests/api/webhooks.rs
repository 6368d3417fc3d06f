//! `/v1/webhooks`: endpoints, rotation, test events, the delivery log and
//! manual retry, through the real gateway; the delivery tests also run a
//! real webhook dispatcher and receiver, and check signatures with the
//! independent `standardwebhooks` crate.

use serde_json::{Value, json};
use standardwebhooks::Webhook;
use testkit::receiver::{Receiver, Reply};

use crate::helpers::*;

async fn post_webhook(app: &TestApp, body: &Value) -> reqwest::Response {
    app.client
        .post(format!("{}/v1/webhooks", app.address))
        .bearer_auth(&app.api_key)
        .json(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn registering_an_endpoint_shows_its_secret_once() {
    let app = spawn_app().await;

    let response = post_webhook(
        &app,
        &json!({"url": "https://example.com/hooks", "events": ["generation.completed"]}),
    )
    .await;

    assert_eq!(response.status().as_u16(), 201);
    let created: Value = response.json().await.unwrap();
    assert!(created["id"].as_str().unwrap().starts_with("wh_"));
    let secret = created["secret"].as_str().unwrap();
    let key = secret.strip_prefix("whsec_").unwrap();
    use base64::Engine as _;
    assert!(
        base64::engine::general_purpose::STANDARD
            .decode(key)
            .unwrap()
            .len()
            >= 24
    );
    let list = app.get_json("/v1/webhooks").await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    assert_eq!(list["data"][0]["id"], created["id"]);
    assert_eq!(list["data"][0]["events"], json!(["generation.completed"]));
    assert!(list["data"][0].get("secret").is_none());
}

#[tokio::test]
async fn bad_urls_and_events_are_400() {
    let app = spawn_app().await;
    let cases = [
        (
            json!({"url": "ftp://example.com", "events": ["generation.completed"]}),
            "invalid_url",
        ),
        (
            json!({"url": "not a url", "events": ["generation.completed"]}),
            "invalid_url",
        ),
        (
            json!({"url": "https://user:pw@example.com", "events": ["generation.completed"]}),
            "invalid_url",
        ),
        (
            json!({"url": "https://example.com", "events": []}),
            "invalid_events",
        ),
        (
            json!({"url": "https://example.com", "events": ["generation.started"]}),
            "invalid_events",
        ),
    ];
    for (body, code) in cases {
        assert_error(post_webhook(&app, &body).await, 400, code).await;
    }
    let list = app.get_json("/v1/webhooks").await;
    assert!(list["data"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn endpoints_of_another_workspace_are_not_listed() {
    let app = spawn_app().await;
    post_webhook(
        &app,
        &json!({"url": "https://example.com/a", "events": ["generation.completed"]}),
    )
    .await;
    let (_, other_key) = new_workspace(&app.settings, "other", "scale");

    let theirs = app.get_json_with_key("/v1/webhooks", &other_key).await;

    assert!(theirs["data"].as_array().unwrap().is_empty());
}

// ---- one endpoint: get, patch, delete, rotate, test, deliveries ----------

async fn send(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    body: Option<&Value>,
) -> reqwest::Response {
    send_as(app, &app.api_key, method, path, body).await
}

async fn send_as(
    app: &TestApp,
    key: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<&Value>,
) -> reqwest::Response {
    let mut request = app
        .client
        .request(method, format!("{}{path}", app.address))
        .bearer_auth(key);
    if let Some(body) = body {
        request = request.json(body);
    }
    request.send().await.unwrap()
}

async fn create(app: &TestApp, url: &str, events: &[&str]) -> Value {
    let response = post_webhook(app, &json!({"url": url, "events": events})).await;
    assert_eq!(response.status().as_u16(), 201);
    response.json().await.unwrap()
}

/// A dispatcher on the app's database and broker, as in production.
async fn spawn_dispatcher(
    app: &TestApp,
    tweak: impl FnOnce(&mut shared::settings::Settings),
) -> tokio_util::sync::CancellationToken {
    let mut settings = app.settings.clone();
    tweak(&mut settings);
    let dispatcher = webhook_dispatcher::Application::build(settings)
        .await
        .unwrap();
    let stop = dispatcher.shutdown_token();
    tokio::spawn(dispatcher.run_until_stopped());
    stop
}

async fn deliveries(app: &TestApp, id: &str, query: &str) -> Value {
    let response = app
        .get(&format!("/v1/webhooks/{id}/deliveries{query}"))
        .await;
    assert_eq!(response.status().as_u16(), 200);
    response.json().await.unwrap()
}

#[tokio::test]
async fn endpoint_can_be_read_patched_and_deleted() {
    let app = spawn_app().await;
    let created = create(&app, "https://example.com/a", &["generation.completed"]).await;
    let path = format!("/v1/webhooks/{}", created["id"].as_str().unwrap());

    let got = app.get_json(&path).await;
    assert_eq!(got["url"], "https://example.com/a");
    assert!(got.get("secret").is_none(), "the secret is shown once");

    let patched = send(
        &app,
        reqwest::Method::PATCH,
        &path,
        Some(
            &json!({"events": ["generation.failed", "voice.ready"], "description": "ops",
                     "url": "https://example.com/b", "enabled": false}),
        ),
    )
    .await;
    assert_eq!(patched.status().as_u16(), 200);
    let patched: Value = patched.json().await.unwrap();
    assert_eq!(
        patched["events"],
        json!(["generation.failed", "voice.ready"])
    );
    assert_eq!(
        (
            &patched["url"],
            &patched["description"],
            &patched["enabled"]
        ),
        (
            &json!("https://example.com/b"),
            &json!("ops"),
            &json!(false)
        )
    );
    assert!(patched["disabledReason"].is_string());

    let cleared: Value = send(
        &app,
        reqwest::Method::PATCH,
        &path,
        Some(&json!({"description": null, "enabled": true})),
    )
    .await
    .json()
    .await
    .unwrap();
    assert!(cleared.get("description").is_none());
    assert_eq!(cleared["enabled"], true);
    assert!(cleared.get("disabledReason").is_none());
    assert_eq!(cleared["url"], "https://example.com/b", "left alone");

    let deleted = send(&app, reqwest::Method::DELETE, &path, None).await;
    assert_eq!(deleted.status().as_u16(), 204);
    assert_error(app.get(&path).await, 404, "not_found").await;
    assert_error(
        send(&app, reqwest::Method::DELETE, &path, None).await,
        404,
        "not_found",
    )
    .await;
}

#[tokio::test]
async fn another_workspaces_endpoint_is_404_on_every_route_and_unchanged() {
    let app = spawn_app().await;
    let created = create(&app, "https://example.com/a", &["generation.completed"]).await;
    let id = created["id"].as_str().unwrap();
    let (_, other) = new_workspace(&app.settings, "other", "scale");
    let dlv = shared::ids::DeliveryId::new();
    use reqwest::Method as M;
    let patch = json!({"enabled": false});
    let calls: [(M, String, Option<&Value>); 8] = [
        (M::GET, format!("/v1/webhooks/{id}"), None),
        (M::PATCH, format!("/v1/webhooks/{id}"), Some(&patch)),
        (M::DELETE, format!("/v1/webhooks/{id}"), None),
        (M::POST, format!("/v1/webhooks/{id}/rotate-secret"), None),
        (M::POST, format!("/v1/webhooks/{id}/test"), None),
        (M::GET, format!("/v1/webhooks/{id}/deliveries"), None),
        (
            M::POST,
            format!("/v1/webhooks/{id}/deliveries/{dlv}/retry"),
            None,
        ),
        (M::GET, "/v1/webhooks/wh_nonsense".to_owned(), None),
    ];

    for (method, path, body) in calls {
        assert_error(
            send_as(&app, &other, method.clone(), &path, body).await,
            404,
            "not_found",
        )
        .await;
    }

    let mine = app.get_json(&format!("/v1/webhooks/{id}")).await;
    assert_eq!(mine["enabled"], true);
    assert!(mine.get("previousSecretExpiresAt").is_none(), "not rotated");
}

#[tokio::test]
async fn bad_inputs_are_400_in_the_envelope_and_change_nothing() {
    let app = spawn_app().await;
    let created = create(&app, "https://example.com/a", &["generation.completed"]).await;
    let id = created["id"].as_str().unwrap();
    let path = format!("/v1/webhooks/{id}");
    for (body, code) in [
        (json!({"url": "ftp://example.com"}), "invalid_url"),
        (json!({"events": []}), "invalid_events"),
        (json!({"events": ["webhook.test"]}), "invalid_events"),
        (
            json!({"description": "x".repeat(501)}),
            "invalid_description",
        ),
        (json!({"description": "a\u{0}b"}), "invalid_description"),
        (json!({"enabled": "yes"}), "invalid_json"),
        (json!({"secret": "whsec_mine"}), "invalid_json"),
    ] {
        let response = send(&app, reqwest::Method::PATCH, &path, Some(&body)).await;
        let status = response.status().as_u16();
        let error: Value = response.json().await.unwrap();
        assert_eq!(status, 400, "{body} → {error}");
        if code != "invalid_json" {
            assert_eq!(error["error"]["code"], code, "{body}");
        }
    }
    for query in [
        "?limit=0",
        "?limit=101",
        "?cursor=abc",
        "?status=done",
        "?x=1",
    ] {
        let response = app.get(&format!("{path}/deliveries{query}")).await;
        assert_eq!(response.status().as_u16(), 400, "{query}");
        let listed = app.get(&format!("/v1/webhooks{query}")).await;
        assert_eq!(listed.status().as_u16(), 400, "{query}");
    }
    let unchanged = app.get_json(&path).await;
    assert_eq!(unchanged["url"], "https://example.com/a");
    assert_eq!(unchanged["events"], json!(["generation.completed"]));
}

#[tokio::test]
async fn the_webhook_routes_need_the_webhooks_manage_scope() {
    let app = spawn_app().await;
    let created = create(&app, "https://example.com/a", &["generation.completed"]).await;
    let id = created["id"].as_str().unwrap();
    let key = key_with_scopes(&app, &["generations:read"]);
    use reqwest::Method as M;
    for (method, path) in [
        (M::GET, format!("/v1/webhooks/{id}")),
        (M::DELETE, format!("/v1/webhooks/{id}")),
        (M::POST, format!("/v1/webhooks/{id}/rotate-secret")),
        (M::POST, format!("/v1/webhooks/{id}/test")),
        (M::GET, format!("/v1/webhooks/{id}/deliveries")),
    ] {
        assert_error(
            send_as(&app, &key, method, &path, None).await,
            403,
            "insufficient_scope",
        )
        .await;
    }
}

#[tokio::test]
async fn endpoints_are_listed_newest_first_in_pages() {
    let app = spawn_app().await;
    let mut ids = Vec::new();
    for n in 0..3 {
        let created = create(&app, &format!("https://example.com/{n}"), &["voice.ready"]).await;
        ids.push(created["id"].as_str().unwrap().to_owned());
    }

    let first = app.get_json("/v1/webhooks?limit=2").await;
    let cursor = first["nextCursor"].as_str().unwrap();
    let second = app
        .get_json(&format!("/v1/webhooks?limit=2&cursor={cursor}"))
        .await;

    let listed = |page: &Value| -> Vec<String> {
        page["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(first["hasMore"], true);
    assert_eq!(listed(&first), [ids[2].clone(), ids[1].clone()]);
    assert_eq!(second["hasMore"], false);
    assert!(second["nextCursor"].is_null());
    assert_eq!(listed(&second), [ids[0].clone()]);
}

#[tokio::test]
async fn private_targets_are_refused_at_registration_unless_allowed() {
    let mut settings = settings();
    settings.webhooks.allowed_target_cidrs = vec![];
    let app = spawn_app_with(settings).await;
    for url in [
        "http://127.0.0.1:8080/hooks",
        "http://localhost/hooks",
        "http://10.0.0.1/",
        "http://169.254.169.254/latest/meta-data",
        "http://100.64.0.1/",
        "http://[::1]/",
        "http://[fd00::1]/",
        "http://[::ffff:192.168.0.1]/",
        "http://0.0.0.0/",
        "http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/",
        "http://[64:ff9b:1::a00:1]/",
    ] {
        let body = assert_error(
            post_webhook(&app, &json!({"url": url, "events": ["voice.ready"]})).await,
            400,
            "url_not_allowed",
        )
        .await;
        assert_eq!(body["error"]["param"], "url", "{url}");
        let message = body["error"]["message"].as_str().unwrap();
        if url.contains("localhost") {
            // What a name resolved to is the operator's business.
            for leak in ["127.0.0.1", "::1", "loopback"] {
                assert!(!message.contains(leak), "{message}");
            }
        }
    }
    let public = create(&app, "https://93.184.216.34/hooks", &["voice.ready"]).await;
    assert_error(
        send(
            &app,
            reqwest::Method::PATCH,
            &format!("/v1/webhooks/{}", public["id"].as_str().unwrap()),
            Some(&json!({"url": "http://192.168.1.1/"})),
        )
        .await,
        400,
        "url_not_allowed",
    )
    .await;

    let list = app.get_json("/v1/webhooks").await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    assert_eq!(list["data"][0]["url"], "https://93.184.216.34/hooks");
}

// ---- with a real dispatcher and receiver ---------------------------------

#[tokio::test]
async fn test_event_arrives_signed_and_shows_in_the_delivery_log() {
    let app = spawn_app().await;
    let stop = spawn_dispatcher(&app, |_| {}).await;
    let receiver = Receiver::start().await;
    let created = create(&app, &receiver.url("/hooks"), &["generation.completed"]).await;
    let id = created["id"].as_str().unwrap();
    let secret = created["secret"].as_str().unwrap();

    let sent = send(
        &app,
        reqwest::Method::POST,
        &format!("/v1/webhooks/{id}/test"),
        None,
    )
    .await;
    assert_eq!(sent.status().as_u16(), 202);
    let sent: Value = sent.json().await.unwrap();
    let request = eventually("the webhook", || async { receiver.requests().pop() }).await;

    Webhook::new(secret)
        .unwrap()
        .verify(&request.body, &request.header_map())
        .expect("verifies with the Standard Webhooks library");
    assert_eq!(request.header("webhook-id"), sent["eventId"].as_str());
    let body = request.json();
    assert_eq!(body["event"], "webhook.test");
    assert_eq!(body["data"]["endpointId"], id);

    let log = eventually("the succeeded delivery in the log", || async {
        let page = deliveries(&app, id, "?status=succeeded").await;
        (page["data"].as_array().unwrap().len() == 1).then_some(page)
    })
    .await;
    let delivery = &log["data"][0];
    assert!(delivery["id"].as_str().unwrap().starts_with("dlv_"));
    assert_eq!(delivery["eventId"], sent["eventId"]);
    assert_eq!(delivery["event"], "webhook.test");
    assert_eq!(delivery["attempts"].as_array().unwrap().len(), 1);
    assert_eq!(delivery["attempts"][0]["attempt"], 1);
    assert_eq!(delivery["attempts"][0]["statusCode"], 204);
    assert!(delivery["attempts"][0]["durationMs"].is_i64());
    assert_eq!(log["hasMore"], false);
    let failed = deliveries(&app, id, "?status=failed").await;
    assert!(failed["data"].as_array().unwrap().is_empty());
    stop.cancel();
}

#[tokio::test]
async fn after_a_rotation_both_secrets_sign_for_the_overlap() {
    let app = spawn_app().await;
    let stop = spawn_dispatcher(&app, |_| {}).await;
    let receiver = Receiver::start().await;
    let created = create(&app, &receiver.url("/hooks"), &["generation.completed"]).await;
    let id = created["id"].as_str().unwrap();
    let old_secret = created["secret"].as_str().unwrap();

    let rotated = send(
        &app,
        reqwest::Method::POST,
        &format!("/v1/webhooks/{id}/rotate-secret"),
        None,
    )
    .await;
    assert_eq!(rotated.status().as_u16(), 200);
    let rotated: Value = rotated.json().await.unwrap();
    let new_secret = rotated["secret"].as_str().unwrap();
    assert_ne!(new_secret, old_secret);
    let overlap_until =
        chrono::DateTime::parse_from_rfc3339(rotated["previousSecretExpiresAt"].as_str().unwrap())
            .unwrap();
    let hours = (overlap_until.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_minutes();
    assert!((23 * 60..=24 * 60).contains(&hours), "{hours} minutes");
    let got = app.get_json(&format!("/v1/webhooks/{id}")).await;
    assert!(got.get("secret").is_none());

    send(
        &app,
        reqwest::Method::POST,
        &format!("/v1/webhooks/{id}/test"),
        None,
    )
    .await;
    let request = eventually("the webhook", || async { receiver.requests().pop() }).await;

    let signatures = request.header("webhook-signature").unwrap();
    assert_eq!(signatures.split(' ').count(), 2, "{signatures}");
    for secret in [old_secret, new_secret] {
        Webhook::new(secret)
            .unwrap()
            .verify(&request.body, &request.header_map())
            .expect("verifies with either secret during the overlap");
    }
    // Each signature on its own matches exactly one secret.
    for (secret, signature) in [new_secret, old_secret].iter().zip(signatures.split(' ')) {
        let mut headers = request.header_map();
        headers.insert("webhook-signature", signature.parse().unwrap());
        Webhook::new(secret)
            .unwrap()
            .verify(&request.body, &headers)
            .unwrap();
    }
    stop.cancel();
}

#[tokio::test]
async fn manual_retry_resends_a_failed_delivery_with_the_same_webhook_id() {
    let app = spawn_app().await;
    // No automatic retries: the first failure is final.
    let stop = spawn_dispatcher(&app, |s| s.dispatcher.retry_schedule_secs = vec![]).await;
    let receiver = Receiver::start().await;
    receiver.script([Reply::status(500).body("broken")]);
    let created = create(&app, &receiver.url("/hooks"), &["generation.completed"]).await;
    let id = created["id"].as_str().unwrap();
    send(
        &app,
        reqwest::Method::POST,
        &format!("/v1/webhooks/{id}/test"),
        None,
    )
    .await;
    let failed = eventually("the failed delivery in the log", || async {
        let page = deliveries(&app, id, "?status=failed").await;
        page["data"].as_array().unwrap().first().cloned()
    })
    .await;
    let dlv = failed["id"].as_str().unwrap();
    assert_eq!(failed["attempts"][0]["statusCode"], 500);
    assert_eq!(failed["attempts"][0]["responseBody"], "broken");

    let retried = send(
        &app,
        reqwest::Method::POST,
        &format!("/v1/webhooks/{id}/deliveries/{dlv}/retry"),
        None,
    )
    .await;
    assert_eq!(retried.status().as_u16(), 202);
    let retried: Value = retried.json().await.unwrap();
    assert_eq!(retried["status"], "pending");

    let succeeded = eventually("the succeeded delivery in the log", || async {
        let page = deliveries(&app, id, "?status=succeeded").await;
        page["data"].as_array().unwrap().first().cloned()
    })
    .await;
    assert_eq!(succeeded["id"], dlv, "the same delivery, not a new one");
    let codes: Vec<&Value> = succeeded["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| &a["statusCode"])
        .collect();
    assert_eq!(codes, [&json!(500), &json!(204)]);
    let requests = receiver.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(
        requests[0].header("webhook-id"),
        requests[1].header("webhook-id")
    );
    let missing = shared::ids::DeliveryId::new();
    assert_error(
        send(
            &app,
            reqwest::Method::POST,
            &format!("/v1/webhooks/{id}/deliveries/{missing}/retry"),
            None,
        )
        .await,
        404,
        "not_found",
    )
    .await;
    stop.cancel();
}

#[tokio::test]
async fn retry_sends_a_waiting_delivery_now_is_409_while_in_flight_and_a_disabled_endpoint_gets_no_test()
 {
    let app = spawn_app().await;
    let stop = spawn_dispatcher(&app, |s| {
        s.dispatcher.retry_schedule_secs = vec![3600, 3600]
    })
    .await;
    let receiver = Receiver::start().await;
    // First attempt fails (next retry in an hour); the manual retry is held
    // by the receiver for 3 s, during which a second retry is refused.
    receiver.script([
        Reply::status(503),
        Reply::status(204).delay(std::time::Duration::from_secs(3)),
    ]);
    let created = create(&app, &receiver.url("/hooks"), &["generation.completed"]).await;
    let id = created["id"].as_str().unwrap();
    send(
        &app,
        reqwest::Method::POST,
        &format!("/v1/webhooks/{id}/test"),
        None,
    )
    .await;
    let pending = eventually("the pending delivery in the log", || async {
        let page = deliveries(&app, id, "?status=pending").await;
        page["data"]
            .as_array()
            .unwrap()
            .first()
            .filter(|d| d["attempts"].as_array().unwrap().len() == 1)
            .cloned()
    })
    .await;
    let retry_path = format!(
        "/v1/webhooks/{id}/deliveries/{}/retry",
        pending["id"].as_str().unwrap()
    );

    // Waiting an hour for its retry: sent now instead.
    let retried = send(&app, reqwest::Method::POST, &retry_path, None).await;
    assert_eq!(retried.status().as_u16(), 202);
    eventually("the second request", || async {
        (receiver.requests().len() == 2).then_some(())
    })
    .await;

    // The receiver is holding that attempt: the dispatcher is sending it.
    assert_error(
        send(&app, reqwest::Method::POST, &retry_path, None).await,
        409,
        "delivery_in_flight",
    )
    .await;
    let done = eventually("the retried delivery to succeed", || async {
        let page = deliveries(&app, id, "?status=succeeded").await;
        page["data"].as_array().unwrap().first().cloned()
    })
    .await;
    assert_eq!(done["attempts"].as_array().unwrap().len(), 2);
    assert_eq!(
        receiver.requests().len(),
        2,
        "the in-flight attempt was not sent twice"
    );

    send(
        &app,
        reqwest::Method::PATCH,
        &format!("/v1/webhooks/{id}"),
        Some(&json!({"enabled": false})),
    )
    .await;
    assert_error(
        send(
            &app,
            reqwest::Method::POST,
            &format!("/v1/webhooks/{id}/test"),
            None,
        )
        .await,
        409,
        "endpoint_disabled",
    )
    .await;
    stop.cancel();
}
