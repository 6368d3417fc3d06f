//! Audio URLs and downloads. Completion is the worker's job; here a
//! generation is completed the way the worker does it (object stored, row
//! completed), so the gateway's side is tested on its own.

use diesel::prelude::*;
use object_store::ObjectStoreExt;
use serde_json::Value;

use shared::formats::AudioFormat;
use shared::ids::{GenerationId, WorkspaceId};
use shared::models::Generation;

use crate::helpers::*;

async fn completed_generation(app: &TestApp) -> (String, Vec<u8>) {
    let created: Value = app.create_seed_generation().await;
    let id = GenerationId::parse(created["id"].as_str().unwrap()).unwrap();
    let ws = WorkspaceId::parse(&app.workspace_id).unwrap();
    let bytes = b"RIFF\x24\x00\x00\x00WAVEfmt not really audio, but bytes to serve".to_vec();
    let key = shared::storage::audio_key(ws, id, AudioFormat::Wav);
    let store = shared::storage::open(&app.settings.storage).unwrap();
    store.put(&key, bytes.clone().into()).await.unwrap();
    assert!(Generation::complete(&mut connect(&app.settings), id.0, 1234, key.as_ref()).unwrap());
    (id.to_string(), bytes)
}

#[tokio::test]
async fn completed_generation_has_a_signed_url_that_serves_without_a_key() {
    let app = spawn_app().await;
    let (id, bytes) = completed_generation(&app).await;

    let body = app.get_json(&format!("/v1/generations/{id}")).await;
    assert_eq!(body["status"], "completed");
    assert_eq!(body["durationMs"], 1234);
    assert!(body["completedAt"].is_string());
    let url = body["audioUrl"].as_str().unwrap();
    assert!(url.starts_with(&app.settings.gateway.public_base_url));
    // The test's public base URL is the default; point the request at this app.
    let path = &url[app.settings.gateway.public_base_url.len()..];

    let response = app
        .client
        .get(format!("{}{path}", app.address))
        .send()
        .await
        .unwrap();

    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.headers()["content-type"], "audio/wav");
    assert_eq!(response.bytes().await.unwrap().to_vec(), bytes);
    let with_key = app.get(&format!("/v1/generations/{id}/audio")).await;
    assert_eq!(with_key.status().as_u16(), 200);
    assert_eq!(with_key.bytes().await.unwrap().to_vec(), bytes);
}

#[tokio::test]
async fn tampered_and_expired_audio_urls_are_403() {
    let app = spawn_app().await;
    let (id, _) = completed_generation(&app).await;
    let body = app.get_json(&format!("/v1/generations/{id}")).await;
    let url = body["audioUrl"].as_str().unwrap();
    let path = &url[app.settings.gateway.public_base_url.len()..];
    let get = |p: String| {
        let client = app.client.clone();
        let address = app.address.clone();
        async move { client.get(format!("{address}{p}")).send().await.unwrap() }
    };

    // A flipped signature digit, a later expiry, another generation, no signature.
    let sig_at = path.find("signature=").unwrap() + "signature=".len();
    let mut flipped = path.to_owned();
    let c = if &path[sig_at..sig_at + 1] == "0" {
        "1"
    } else {
        "0"
    };
    flipped.replace_range(sig_at..sig_at + 1, c);
    assert_error(get(flipped).await, 403, "invalid_signature").await;
    let expires: i64 = path
        .split("expires=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let extended = path.replace(
        &format!("expires={expires}"),
        &format!("expires={}", expires + 3600),
    );
    assert_error(get(extended).await, 403, "invalid_signature").await;
    let other = path.replace(&id, &format!("gen_{}", uuid::Uuid::now_v7().simple()));
    assert_error(get(other).await, 403, "invalid_signature").await;
    assert_error(
        get(format!("/v1/audio/{id}")).await,
        403,
        "invalid_signature",
    )
    .await;

    // A correctly signed URL whose time is up.
    let key = secrecy::ExposeSecret::expose_secret(&app.settings.audio_urls.signing_key)
        .as_bytes()
        .to_vec();
    let past = chrono::Utc::now().timestamp() - 10;
    let expired = shared::signing::audio_url("", &key, &id, past);
    assert_error(get(expired).await, 403, "url_expired").await;
}

#[tokio::test]
async fn audio_of_a_processing_generation_is_409() {
    let app = spawn_app().await;
    let created: Value = app.create_seed_generation().await;

    let response = app
        .get(&format!(
            "/v1/generations/{}/audio",
            created["id"].as_str().unwrap()
        ))
        .await;

    assert_error(response, 409, "audio_not_ready").await;
    let rows: i64 = shared::schema::generations::table
        .count()
        .get_result(&mut connect(&app.settings))
        .unwrap();
    assert_eq!(rows, 1);
}
