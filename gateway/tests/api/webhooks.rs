use serde_json::{Value, json};

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
    let list: Value = app.get("/v1/webhooks").await.json().await.unwrap();
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
    let list: Value = app.get("/v1/webhooks").await.json().await.unwrap();
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

    let theirs: Value = app
        .client
        .get(format!("{}/v1/webhooks", app.address))
        .bearer_auth(other_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();

    assert!(theirs["data"].as_array().unwrap().is_empty());
}
