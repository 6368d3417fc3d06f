//! Voice previews: `GET /v1/voices/{id}/preview` and `GET
//! /v1/voices/preview?recipe=…`. No worker runs here: the test plays it,
//! taking the `preview.v1` job from the interactive lane and putting a
//! clip at the job's key, as `synth_worker::preview` does (the end-to-end
//! test `e2e/tests/e2e/previews.rs` has a real one). A preview is stored
//! once per engine voice, text and format, is served from the store from
//! then on, and is never a generation: nothing charged, nothing counted.

use diesel::RunQueryDsl;
use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use object_store::ObjectStoreExt;
use serde_json::{Value, json};

use shared::amqp::{Broker, Lane};
use shared::formats::AudioFormat;
use shared::voices::EngineVoice;

use crate::helpers::*;

/// Jobs waiting on the app's interactive lane.
async fn interactive_jobs(app: &TestApp) -> u32 {
    let broker = Broker::new(&app.settings.amqp, "test-counter");
    let ch = broker.channel().await.unwrap();
    let queue = ch
        .queue_declare(
            broker.topology().lane_queue(Lane::Interactive).into(),
            QueueDeclareOptions {
                passive: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    queue.message_count()
}

/// Takes the next job (it must be a preview on the interactive lane) and
/// stores `clip` at its key, as a worker would; the job as JSON.
async fn render_next_preview(app: &TestApp, clip: &[u8]) -> Value {
    let delivery = app.next_job_delivery().await;
    assert_eq!(
        delivery.routing_key.as_str(),
        Lane::Interactive.routing_key()
    );
    let job: Value = serde_json::from_slice(&delivery.data).unwrap();
    assert_eq!(job["type"], "preview.v1", "{job}");
    let key = object_store::path::Path::from(job["key"].as_str().unwrap());
    let store = shared::storage::open(&app.settings.storage).unwrap();
    store.put(&key, clip.to_vec().into()).await.unwrap();
    job
}

fn generations_count(app: &TestApp) -> i64 {
    use diesel::QueryDsl;
    shared::schema::generations::table
        .count()
        .get_result(&mut connect(&app.settings))
        .unwrap()
}

/// A clip that is not silence, for the tests' comparisons.
fn clip(seed: u8) -> Vec<u8> {
    (0..4096u32).map(|i| (i as u8).wrapping_mul(seed)).collect()
}

#[tokio::test]
async fn a_preview_is_rendered_once_by_a_job_and_then_served_from_the_store_uncharged() {
    let app = spawn_app().await;
    let usage_before = app.get_json("/v1/workspace").await["creditsUsed"].clone();
    let path = format!("/v1/voices/{SEED_VOICE}/preview");

    // Not stored yet: the request publishes a job and waits for the clip.
    let first = tokio::spawn({
        let (client, url, key) = (
            app.client.clone(),
            format!("{}{path}", app.address),
            app.api_key.clone(),
        );
        async move { client.get(url).bearer_auth(key).send().await.unwrap() }
    });
    let bytes = clip(7);
    let job = render_next_preview(&app, &bytes).await;
    let preset: EngineVoice = shared::voices::lookup(SEED_VOICE).unwrap().voice.clone();
    let text = shared::previews::text_for(&preset);
    assert_eq!(job["voice"], serde_json::to_value(&preset).unwrap());
    assert_eq!(job["text"], text);
    assert_eq!(job["format"], "mp3");
    let key = shared::previews::key(&preset, text, AudioFormat::Mp3);
    assert_eq!(job["key"], key.as_ref());
    assert!(
        !key.as_ref().contains(&app.workspace_id),
        "nothing of the workspace in the key"
    );

    let first = first.await.unwrap();
    assert_eq!(first.status().as_u16(), 200);
    assert_eq!(first.headers()["content-type"], "audio/mpeg");
    assert_eq!(first.headers()["cache-control"], "private, max-age=86400");
    assert_eq!(first.headers()["x-preview-cache"], "miss");
    assert_eq!(first.bytes().await.unwrap().as_ref(), bytes.as_slice());

    // Stored: served at once, the same bytes, and no job published.
    let again = app.get(&path).await;
    assert_eq!(again.status().as_u16(), 200);
    assert_eq!(again.headers()["x-preview-cache"], "hit");
    assert_eq!(again.bytes().await.unwrap().as_ref(), bytes.as_slice());
    assert_eq!(interactive_jobs(&app).await, 0);

    // Another workspace hears the same clip: one preview per voice.
    let (_, other_key) = new_workspace(&app.settings, "other", "scale");
    let other = testkit::stack::get(&app.client, &app.address, &other_key, &path).await;
    assert_eq!(other.headers()["x-preview-cache"], "hit");
    assert_eq!(other.bytes().await.unwrap().as_ref(), bytes.as_slice());

    // Not a generation: nothing charged, nothing listed.
    assert_eq!(generations_count(&app), 0);
    assert_eq!(
        app.get_json("/v1/workspace").await["creditsUsed"],
        usage_before
    );
    assert_eq!(app.get_json("/v1/generations").await["data"], json!([]));
}

#[tokio::test]
async fn a_recipe_and_the_designed_voice_saved_from_it_share_one_preview() {
    let app = spawn_app().await;
    // The blend as typed in a URL: its `+` is the blend's, not a space.
    let first = tokio::spawn({
        let (client, url, key) = (
            app.client.clone(),
            format!(
                "{}/v1/voices/preview?recipe=af_bella(2)+af_sky(1)&format=wav",
                app.address
            ),
            app.api_key.clone(),
        );
        async move { client.get(url).bearer_auth(key).send().await.unwrap() }
    });
    let bytes = clip(11);
    let job = render_next_preview(&app, &bytes).await;
    assert_eq!(job["format"], "wav");
    let packs = &job["voice"]["kokoro"]["packs"];
    assert_eq!(packs[0]["name"], "af_bella");
    assert_eq!(packs[1]["name"], "af_sky");
    let first = first.await.unwrap();
    assert_eq!(first.status().as_u16(), 200);
    assert_eq!(first.headers()["content-type"], "audio/wav");

    let created = app
        .post_json(
            "/v1/voices",
            &json!({"name": "Narrator", "design": {"from": [
                {"voiceId": "af_bella", "weight": 2}, {"voiceId": "af_sky", "weight": 1}]}}),
        )
        .await;
    assert_eq!(created.status().as_u16(), 201);
    let id = created.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let saved = app
        .get(&format!("/v1/voices/{id}/preview?format=wav"))
        .await;
    assert_eq!(saved.status().as_u16(), 200);
    assert_eq!(saved.headers()["x-preview-cache"], "hit");
    assert_eq!(saved.bytes().await.unwrap().as_ref(), bytes.as_slice());
    // Encoded as a client library would (`%2B`), the same preview.
    let encoded = app
        .get("/v1/voices/preview?recipe=af_bella%282%29%2Baf_sky%281%29&format=wav")
        .await;
    assert_eq!(encoded.headers()["x-preview-cache"], "hit");
    assert_eq!(interactive_jobs(&app).await, 0);
}

#[tokio::test]
async fn a_preview_not_rendered_in_time_is_503_preview_pending_and_the_job_stays_queued() {
    let mut settings = settings();
    settings.gateway.preview_wait_ms = 300;
    let app = spawn_app_with(settings).await;
    let response = app.get("/v1/voices/af_heart/preview").await;
    assert_eq!(response.headers()["retry-after"], "5");
    assert_error(response, 503, "preview_pending").await;
    assert_eq!(interactive_jobs(&app).await, 1);
    // Asked again, it publishes again: a lost job costs one more request.
    let response = app.get("/v1/voices/af_heart/preview").await;
    assert_error(response, 503, "preview_pending").await;
    assert_eq!(interactive_jobs(&app).await, 2);
}

#[tokio::test]
async fn a_preview_the_worker_cannot_render_is_502_preview_failed_once() {
    let app = spawn_app().await;
    let path = "/v1/voices/af_nova/preview";
    let first = tokio::spawn({
        let (client, url, key) = (
            app.client.clone(),
            format!("{}{path}", app.address),
            app.api_key.clone(),
        );
        async move { client.get(url).bearer_auth(key).send().await.unwrap() }
    });
    // The worker says why instead of storing a clip.
    let job = app.next_job().await;
    let key = object_store::path::Path::from(job["key"].as_str().unwrap());
    let note = shared::previews::error_key(&key);
    let store = shared::storage::open(&app.settings.storage).unwrap();
    let failure = json!({"code": "voice_unavailable", "message": "no such pack here"});
    store
        .put(&note, serde_json::to_vec(&failure).unwrap().into())
        .await
        .unwrap();
    let body = assert_error(first.await.unwrap(), 502, "preview_failed").await;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no such pack here"),
        "{body}"
    );
    // The note is answered once: the next request tries again.
    assert!(matches!(
        store.head(&note).await,
        Err(object_store::Error::NotFound { .. })
    ));
}

#[tokio::test]
async fn previews_of_voices_that_cannot_be_heard_are_refused() {
    let mut settings = settings();
    settings.gateway.preview_wait_ms = 100;
    let app = spawn_app_with(settings).await;
    for (path, status, code) in [
        ("/v1/voices/voice_000000/preview", 404, "not_found"),
        (
            "/v1/voices/voice_0190f5d2a0b47c1e9a3b5d7f0e2c4a6b/preview",
            404,
            "not_found",
        ),
        (
            "/v1/voices/af_bella/preview?format=ogg",
            400,
            "invalid_format",
        ),
        (
            "/v1/voices/af_bella/preview?speed=2",
            400,
            "invalid_parameter",
        ),
        ("/v1/voices/preview", 400, "invalid_parameter"),
        ("/v1/voices/preview?recipe=", 400, "invalid_parameter"),
        (
            "/v1/voices/preview?recipe=af_bella+ef_dora",
            422,
            "mixed_voice_languages",
        ),
        (
            "/v1/voices/preview?recipe=af_bella+voice_8f2a1c",
            422,
            "voice_not_blendable",
        ),
        (
            "/v1/voices/preview?recipe=af_bella(0)",
            422,
            "invalid_voice_weight",
        ),
        ("/v1/voices/preview?recipe=nobody", 422, "unknown_voice"),
        (
            "/v1/voices/preview?recipe=af_bella&format=flac",
            400,
            "invalid_format",
        ),
    ] {
        let body = assert_error(app.get(path).await, status, code).await;
        assert!(body["error"]["message"].is_string(), "{path}: {body}");
    }
    // Nothing refused published a job.
    assert_eq!(interactive_jobs(&app).await, 0);

    // A key without voices:read.
    let limited = key_with_scopes(&app, &["generations:read"]);
    let refused = testkit::stack::get(
        &app.client,
        &app.address,
        &limited,
        "/v1/voices/af_bella/preview",
    )
    .await;
    assert_error(refused, 403, "insufficient_scope").await;
}

#[tokio::test]
async fn a_workspace_voice_has_a_preview_only_once_ready_and_only_for_its_workspace() {
    let mut settings = settings();
    settings.gateway.preview_wait_ms = 100;
    let app = spawn_app_with(settings).await;
    let created = app
        .post_json(
            "/v1/voices",
            &json!({"name": "Mine", "design": {"from": [{"voiceId": "bf_emma", "weight": 1}, {"voiceId": "bm_george", "weight": 1}]}}),
        )
        .await;
    assert_eq!(created.status().as_u16(), 201);
    let id = created.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/v1/voices/{id}/preview");
    let set_status = |status: &str| {
        diesel::sql_query(format!(
            "UPDATE voices SET status = '{status}' WHERE id = '{id}'"
        ))
        .execute(&mut connect(&app.settings))
        .unwrap();
    };

    set_status("processing");
    assert_error(app.get(&path).await, 422, "voice_not_ready").await;
    set_status("failed");
    assert_error(app.get(&path).await, 422, "voice_failed").await;
    assert_eq!(interactive_jobs(&app).await, 0);

    set_status("ready");
    // Ready: a job is published (no worker here, so it stays pending).
    assert_error(app.get(&path).await, 503, "preview_pending").await;
    assert_eq!(interactive_jobs(&app).await, 1);

    // Another workspace cannot hear it, exactly as if it did not exist.
    let (_, other_key) = new_workspace(&app.settings, "other", "scale");
    let other = testkit::stack::get(&app.client, &app.address, &other_key, &path).await;
    assert_error(other, 404, "not_found").await;
}
