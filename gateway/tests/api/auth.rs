use diesel::prelude::*;

use shared::schema::api_keys;

use crate::helpers::*;

#[tokio::test]
async fn missing_malformed_and_unknown_keys_are_401() {
    let app = spawn_app().await;
    let url = format!("{}/v1/generations", app.address);
    let body = app.seed_body();

    let missing = app.client.post(&url).json(&body).send().await.unwrap();
    assert_error(missing, 401, "missing_api_key").await;

    let basic = app
        .client
        .post(&url)
        .header("Authorization", "Basic Zm9vOmJhcg==")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_error(basic, 401, "invalid_authorization").await;

    let noise = app
        .client
        .post(&url)
        .bearer_auth("vp_not-a-key")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_error(noise, 401, "invalid_api_key").await;

    // Well formed, right checksum, but never issued.
    let unknown = shared::api_key::generate().secret;
    let response = app
        .client
        .post(&url)
        .bearer_auth(&unknown)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_error(response, 401, "invalid_api_key").await;
}

#[tokio::test]
async fn expired_and_revoked_keys_are_401_with_their_own_codes() {
    let app = spawn_app().await;
    let expired = key_with_scopes(&app, &["generations:write"]);
    let revoked = key_with_scopes(&app, &["generations:write"]);
    let mut conn = connect(&app.settings);
    let past = chrono::Utc::now() - chrono::Duration::minutes(1);
    diesel::update(
        api_keys::table
            .filter(api_keys::secret_sha256.eq(shared::api_key::hash(&expired).to_vec())),
    )
    .set(api_keys::expires_at.eq(Some(past)))
    .execute(&mut conn)
    .unwrap();
    diesel::update(
        api_keys::table
            .filter(api_keys::secret_sha256.eq(shared::api_key::hash(&revoked).to_vec())),
    )
    .set(api_keys::revoked_at.eq(Some(past)))
    .execute(&mut conn)
    .unwrap();

    assert_error(
        app.post_generation_with_key(&app.seed_body(), &expired)
            .await,
        401,
        "key_expired",
    )
    .await;
    assert_error(
        app.post_generation_with_key(&app.seed_body(), &revoked)
            .await,
        401,
        "key_revoked",
    )
    .await;
}

#[tokio::test]
async fn a_key_without_the_scope_gets_403_naming_it() {
    let app = spawn_app().await;
    let read_only = key_with_scopes(&app, &["generations:read"]);

    let response = app
        .post_generation_with_key(&app.seed_body(), &read_only)
        .await;

    let body = assert_error(response, 403, "insufficient_scope").await;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("generations:write")
    );
}

#[tokio::test]
async fn a_plan_without_api_access_gets_403_plan_required() {
    let app = spawn_app().await;
    let (_, free_key) = new_workspace(&app.settings, "hobby", "free");

    let response = app
        .post_generation_with_key(&app.seed_body(), &free_key)
        .await;

    assert_error(response, 403, "plan_required").await;
}

#[tokio::test]
async fn key_service_down_is_503_with_retry_after_never_500() {
    let mut settings = settings();
    settings.gateway.key_service_url = "http://127.0.0.1:1".into();
    let gateway = gateway::Application::build(settings.clone()).await.unwrap();
    let address = format!("http://127.0.0.1:{}", gateway.port());
    tokio::spawn(gateway.run_until_stopped());
    let (_, key) = new_workspace(&settings, "acme", "scale");

    let response = reqwest::Client::new()
        .post(format!("{address}/v1/generations"))
        .bearer_auth(key)
        .json(&serde_json::json!({"text": SEED_TEXT, "voiceId": SEED_VOICE}))
        .send()
        .await
        .unwrap();

    assert!(response.headers().contains_key("retry-after"));
    assert_error(response, 503, "key_service_unavailable").await;
}
