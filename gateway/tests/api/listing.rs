//! `GET /v1/generations` (pages, status filter), `DELETE /v1/generations/{id}`,
//! and the page parameters every list shares.

use diesel::prelude::*;
use object_store::ObjectStoreExt;
use serde_json::{Value, json};

use shared::ids::{GenerationId, WorkspaceId};
use shared::models::Generation;
use shared::schema::generations;

use crate::helpers::*;

async fn create(app: &TestApp) -> GenerationId {
    let body: Value = app.create_seed_generation().await;
    GenerationId::parse(body["id"].as_str().unwrap()).unwrap()
}

#[tokio::test]
async fn list_pages_newest_first_with_an_opaque_cursor_and_filters_by_status() {
    let app = spawn_app().await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(create(&app).await);
    }
    let mut conn = connect(&app.settings);
    for id in &ids[..2] {
        Generation::fail(&mut conn, id.0, json!({"code": "x"})).unwrap();
    }

    let mut seen = Vec::new();
    let mut path = "/v1/generations?limit=2".to_owned();
    loop {
        let page = app.get_json(&path).await;
        for g in page["data"].as_array().unwrap() {
            seen.push(g["id"].as_str().unwrap().to_owned());
        }
        if !page["hasMore"].as_bool().unwrap() {
            assert_eq!(page["nextCursor"], Value::Null);
            break;
        }
        path = format!(
            "/v1/generations?limit=2&cursor={}",
            page["nextCursor"].as_str().unwrap()
        );
    }
    let newest_first: Vec<String> = ids.iter().rev().map(|i| i.to_string()).collect();
    assert_eq!(seen, newest_first);
    let failed = app.get_json("/v1/generations?status=failed").await;
    let failed: Vec<&str> = failed["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["id"].as_str().unwrap())
        .collect();
    assert_eq!(failed, [ids[1].to_string(), ids[0].to_string()]);
    assert_error(
        app.get("/v1/generations?status=done").await,
        400,
        "invalid_parameter",
    )
    .await;
    assert_error(
        app.get("/v1/generations?cursor=abc").await,
        400,
        "invalid_cursor",
    )
    .await;
    // Another workspace sees none of them.
    let (_, other) = new_workspace(&app.settings, "other", "scale");
    let theirs = app.get_json_with_key("/v1/generations", &other).await;
    assert_eq!(theirs["data"], json!([]));
}

#[tokio::test]
async fn delete_removes_audio_alignment_and_text_but_keeps_the_accounting() {
    let app = spawn_app().await;
    let id = create(&app).await;
    let ws = WorkspaceId::parse(&app.workspace_id).unwrap();
    let store = shared::storage::open(&app.settings.storage).unwrap();
    let audio = shared::storage::audio_key(ws, id, shared::formats::AudioFormat::Wav);
    let alignment = shared::alignment::alignment_key(ws, id);
    store.put(&audio, b"RIFF".to_vec().into()).await.unwrap();
    store.put(&alignment, b"{}".to_vec().into()).await.unwrap();
    let mut conn = connect(&app.settings);
    assert!(Generation::complete(&mut conn, id.0, 1000, audio.as_ref()).unwrap());
    assert_eq!(
        app.get(&format!("/v1/generations/{id}/audio"))
            .await
            .status()
            .as_u16(),
        200
    );

    let deleted = app
        .client
        .delete(format!("{}/v1/generations/{id}", app.address))
        .bearer_auth(&app.api_key)
        .send()
        .await
        .unwrap();

    assert_eq!(deleted.status().as_u16(), 204);
    assert!(store.head(&audio).await.is_err());
    assert!(store.head(&alignment).await.is_err());
    let (text, credits, characters): (String, i64, i64) = generations::table
        .find(id.0)
        .select((
            generations::text,
            generations::credits,
            generations::characters,
        ))
        .first(&mut conn)
        .unwrap();
    assert_eq!((text.as_str(), credits), ("", 1));
    assert_eq!(characters, SEED_TEXT.chars().count() as i64);
    let view = app.get_json(&format!("/v1/generations/{id}")).await;
    assert_eq!(view["deleted"], true);
    assert!(view.get("audioUrl").is_none());
    assert_error(
        app.get(&format!("/v1/generations/{id}/audio")).await,
        410,
        "generation_deleted",
    )
    .await;
    let usage = app.get_json("/v1/workspace").await;
    assert_eq!(usage["creditsUsed"], 1);
}

#[tokio::test]
async fn delete_refuses_a_processing_generation_and_another_workspaces_one() {
    let app = spawn_app().await;
    let id = create(&app).await;
    let (_, other) = new_workspace(&app.settings, "other", "scale");
    let delete = |key: String| {
        let client = app.client.clone();
        let url = format!("{}/v1/generations/{id}", app.address);
        async move { client.delete(url).bearer_auth(key).send().await.unwrap() }
    };

    assert_error(
        delete(app.api_key.clone()).await,
        409,
        "generation_processing",
    )
    .await;
    assert_error(delete(other).await, 404, "not_found").await;
    let reader = key_with_scopes(&app, &["generations:read"]);
    assert_error(delete(reader).await, 403, "insufficient_scope").await;
}

#[tokio::test]
async fn every_list_reads_limit_and_cursor_alike() {
    let app = spawn_app().await;
    let hook = json!({"url": "https://example.com/a", "events": ["generation.completed"]});
    let hook: Value = app
        .post_json("/v1/webhooks", &hook)
        .await
        .json()
        .await
        .unwrap();
    let lists = [
        "/v1/generations".to_owned(),
        "/v1/voices".to_owned(),
        "/v1/webhooks".to_owned(),
        format!("/v1/webhooks/{}/deliveries", hook["id"].as_str().unwrap()),
    ];
    for list in &lists {
        for (query, param, code) in [
            ("limit=0", "limit", "invalid_parameter"),
            ("limit=101", "limit", "invalid_parameter"),
            ("cursor=nonsense", "cursor", "invalid_cursor"),
        ] {
            let response = app.get(&format!("{list}?{query}")).await;
            assert_eq!(response.status().as_u16(), 400, "{list}?{query}");
            let error: Value = response.json().await.unwrap();
            assert_eq!(error["error"]["code"], code, "{list}?{query}: {error}");
            assert_eq!(error["error"]["param"], param, "{list}?{query}: {error}");
        }
    }
    // The default page is 20 items everywhere (the catalog has hundreds).
    let voices = app.get_json("/v1/voices").await;
    assert_eq!(voices["data"].as_array().unwrap().len(), 20, "{voices}");
    assert_eq!(voices["hasMore"], true);
    let last = voices["data"][19]["id"].as_str().unwrap();
    assert_eq!(voices["nextCursor"], last);
}
