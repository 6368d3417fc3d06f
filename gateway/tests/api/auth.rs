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

/// How often the key service answered a verification with `status`, from
/// its own `/metrics` (what reached it, seen from outside the gateway).
async fn verifications(app: &TestApp, status: &str) -> f64 {
    let mut request = app
        .client
        .get(format!("{}/metrics", app.settings.gateway.key_service_url));
    if let Some(token) = &app.settings.telemetry.metrics_token {
        request = request.bearer_auth(secrecy::ExposeSecret::expose_secret(token));
    }
    let text = request.send().await.unwrap().text().await.unwrap();
    testkit::metric_value(
        &text,
        "voiceprod_http_request_duration_seconds_count",
        &[("route", shared::keys_api::VERIFY_PATH), ("status", status)],
    )
    .unwrap_or(0.0)
}

/// Once the gateway listens for invalidations: the (re)connect clears the
/// cache, which would make a verification just before it count twice.
async fn ready(app: &TestApp) {
    eventually("the gateway to be ready", || async {
        let r = app
            .client
            .get(format!("{}/readyz", app.address))
            .send()
            .await
            .ok()?;
        r.status().is_success().then_some(())
    })
    .await;
}

/// A client whose connections come from `ip` (any of 127.0.0.0/8 on Linux).
fn client_from(ip: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(ip.parse::<std::net::IpAddr>().unwrap())
        .build()
        .unwrap()
}

async fn workspace_with(client: &reqwest::Client, app: &TestApp, key: &str) -> reqwest::Response {
    client
        .get(format!("{}/v1/workspace", app.address))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_flood_of_random_keys_asks_the_key_service_once_per_key_and_evicts_no_known_key() {
    let mut settings = settings();
    // A small cache of known keys, so that a flood would overflow it.
    settings.gateway.key_cache_capacity = 20;
    settings.gateway.key_negative_cache_ttl_ms = 60_000;
    settings.gateway.auth_failures_per_address = 10_000;
    let app = spawn_app_with(settings).await;
    ready(&app).await;
    let good = workspace_with(&app.client, &app, &app.api_key).await;
    assert_eq!(good.status().as_u16(), 200);
    assert_eq!(verifications(&app, "200").await, 1.0);

    let flood: Vec<String> = (0..30)
        .map(|_| shared::api_key::generate().secret)
        .collect();
    for _round in 0..3 {
        for key in &flood {
            assert_error(
                workspace_with(&app.client, &app, key).await,
                401,
                "invalid_api_key",
            )
            .await;
        }
    }

    // Once per key within the TTL, and the known key still answered from
    // its cache entry (no second verification).
    assert_eq!(verifications(&app, "404").await, 30.0);
    let good = workspace_with(&app.client, &app, &app.api_key).await;
    assert_eq!(good.status().as_u16(), 200);
    assert_eq!(verifications(&app, "200").await, 1.0);
}

#[tokio::test]
async fn failed_authentications_from_one_address_get_429_with_retry_after_and_spare_other_addresses()
 {
    let mut settings = settings();
    settings.gateway.auth_failures_per_address = 5;
    settings.gateway.auth_failure_window_secs = 60;
    // The known key's verification outlives the test, however slow the machine.
    settings.gateway.key_cache_ttl_ms = 600_000;
    let app = spawn_app_with(settings).await;
    ready(&app).await;
    let other = client_from("127.0.0.2");
    // A known key whose cache entry exists before the flood.
    assert_eq!(
        workspace_with(&other, &app, &app.api_key)
            .await
            .status()
            .as_u16(),
        200
    );

    for _ in 0..5 {
        let key = shared::api_key::generate().secret;
        assert_error(
            workspace_with(&app.client, &app, &key).await,
            401,
            "invalid_api_key",
        )
        .await;
    }
    let key = shared::api_key::generate().secret;
    let refused = workspace_with(&app.client, &app, &key).await;
    let retry_after: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after), "Retry-After {retry_after}");
    assert_error(refused, 429, "too_many_auth_failures").await;
    // Malformed keys count too and are refused the same way; a forged
    // X-Forwarded-For changes nothing without a trusted proxy.
    let forged = app
        .client
        .get(format!("{}/v1/workspace", app.address))
        .bearer_auth("vp_noise")
        .header("x-forwarded-for", "203.0.113.5")
        .send()
        .await
        .unwrap();
    assert_error(forged, 429, "too_many_auth_failures").await;
    // A key verified moments ago keeps working from the limited address
    // (others behind the same NAT); one that needs a lookup is refused.
    assert_eq!(
        workspace_with(&app.client, &app, &app.api_key)
            .await
            .status()
            .as_u16(),
        200
    );
    let unverified = key_with_scopes(&app, &["generations:write"]);
    assert_error(
        workspace_with(&app.client, &app, &unverified).await,
        429,
        "too_many_auth_failures",
    )
    .await;
    // Refused before the lookup: the key service saw the first five only.
    assert_eq!(verifications(&app, "404").await, 5.0);

    // Another address is not affected, its cached key works without a
    // new verification, and its own failures have their own budget.
    assert_eq!(
        workspace_with(&other, &app, &app.api_key)
            .await
            .status()
            .as_u16(),
        200
    );
    assert_eq!(verifications(&app, "200").await, 1.0);
    let key = shared::api_key::generate().secret;
    assert_error(
        workspace_with(&other, &app, &key).await,
        401,
        "invalid_api_key",
    )
    .await;
}

#[tokio::test]
async fn behind_a_trusted_proxy_failures_count_per_forwarded_client() {
    let mut settings = settings();
    settings.gateway.auth_failures_per_address = 3;
    settings.gateway.trusted_proxies = vec!["127.0.0.1".to_owned()];
    let app = spawn_app_with(settings).await;
    let via_proxy = |client_ip: &str, key: &str| {
        app.client
            .get(format!("{}/v1/workspace", app.address))
            .bearer_auth(key.to_owned())
            .header("x-forwarded-for", client_ip.to_owned())
            .send()
    };

    for _ in 0..3 {
        let key = shared::api_key::generate().secret;
        assert_error(
            via_proxy("198.51.100.1", &key).await.unwrap(),
            401,
            "invalid_api_key",
        )
        .await;
    }
    let key = shared::api_key::generate().secret;
    assert_error(
        via_proxy("198.51.100.1", &key).await.unwrap(),
        429,
        "too_many_auth_failures",
    )
    .await;
    // What the client puts left of the proxy's entry is not believed.
    assert_error(
        via_proxy("198.51.100.2, 198.51.100.1", &key).await.unwrap(),
        429,
        "too_many_auth_failures",
    )
    .await;
    // Another client behind the same proxy is not affected.
    let ok = via_proxy("198.51.100.2", &app.api_key).await.unwrap();
    assert_eq!(ok.status().as_u16(), 200);
}

#[tokio::test]
async fn an_invalidation_forgets_unknown_keys_so_no_new_secret_is_shadowed() {
    let mut settings = settings();
    settings.gateway.key_negative_cache_ttl_ms = 60_000;
    let app = spawn_app_with(settings).await;
    // A secret the gateway has just been told is unknown…
    let secret = shared::api_key::generate();
    assert_error(
        workspace_with(&app.client, &app, &secret.secret).await,
        401,
        "invalid_api_key",
    )
    .await;
    // …becomes a key (as a rotation's new secret does).
    let ws = shared::ids::WorkspaceId::parse(&app.workspace_id).unwrap();
    key_service::keys::ApiKey::insert(
        &mut connect(&app.settings),
        &key_service::keys::NewApiKey {
            id: uuid::Uuid::now_v7(),
            workspace_id: ws.0,
            name: "late",
            secret_sha256: &secret.sha256,
            prefix: &secret.display_prefix,
            scopes: vec!["usage:read".to_owned()],
            expires_at: None,
            credit_limit: None,
            rotated_from: None,
        },
    )
    .unwrap();
    // A rotation invalidates keys on every gateway.
    let created: serde_json::Value = app
        .client
        .post(format!("{}/v1/keys", app.address))
        .bearer_auth(&app.api_key)
        .json(&serde_json::json!({ "name": "to rotate", "scopes": ["usage:read"] }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let rotated = app
        .client
        .post(format!(
            "{}/v1/keys/{}/rotate",
            app.address,
            created["id"].as_str().unwrap()
        ))
        .bearer_auth(&app.api_key)
        .json(&serde_json::json!({ "gracePeriodSeconds": 0 }))
        .send()
        .await
        .unwrap();
    assert!(rotated.status().is_success(), "{}", rotated.status());

    let response = workspace_with(&app.client, &app, &secret.secret).await;
    assert_eq!(response.status().as_u16(), 200);
}
