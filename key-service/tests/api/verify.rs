use secrecy::ExposeSecret;
use serde_json::{Value, json};

use key_service::bootstrap::bootstrap;
use shared::keys_api::VERIFY_PATH;

use crate::helpers::*;

#[tokio::test]
async fn verify_answers_the_key_of_a_hash_and_404_for_an_unknown_one() {
    let app = spawn_app().await;
    let out = bootstrap(&mut connect(&app.settings), &app.settings, "dev", "scale").unwrap();
    let token = app
        .settings
        .key_service
        .internal_token
        .expose_secret()
        .to_owned();
    let url = format!("{}{VERIFY_PATH}", app.address);

    let known = app
        .client
        .post(&url)
        .bearer_auth(&token)
        .json(&json!({"keyHash": hex::encode(shared::api_key::hash(&out.api_key))}))
        .send()
        .await
        .unwrap();
    let unknown = app
        .client
        .post(&url)
        .bearer_auth(&token)
        .json(&json!({"keyHash": hex::encode([7u8; 32])}))
        .send()
        .await
        .unwrap();

    assert_eq!(known.status().as_u16(), 200);
    let body: Value = known.json().await.unwrap();
    assert_eq!(body["keyId"], out.key_id.to_string());
    assert_eq!(body["workspaceId"], out.workspace_id.to_string());
    assert_eq!(body["plan"], "scale");
    assert!(body["revokedAt"].is_null());
    assert_eq!(unknown.status().as_u16(), 404);
}

#[tokio::test]
async fn verify_refuses_callers_without_the_internal_token() {
    let app = spawn_app().await;
    let url = format!("{}{VERIFY_PATH}", app.address);
    let body = json!({"keyHash": hex::encode([7u8; 32])});

    let none = app.client.post(&url).json(&body).send().await.unwrap();
    let wrong = app
        .client
        .post(&url)
        .bearer_auth("not-the-token-at-all")
        .json(&body)
        .send()
        .await
        .unwrap();

    assert_eq!(none.status().as_u16(), 401);
    assert_eq!(wrong.status().as_u16(), 401);
    let envelope: Value = wrong.json().await.unwrap();
    assert_eq!(envelope["error"]["code"], "invalid_internal_token");
}

#[tokio::test]
async fn a_malformed_hash_is_400() {
    let app = spawn_app().await;
    let token = app
        .settings
        .key_service
        .internal_token
        .expose_secret()
        .to_owned();

    let response = app
        .client
        .post(format!("{}{VERIFY_PATH}", app.address))
        .bearer_auth(token)
        .json(&json!({"keyHash": "abc"}))
        .send()
        .await
        .unwrap();

    assert_eq!(response.status().as_u16(), 400);
}
