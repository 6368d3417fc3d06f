//! `spawn_app()`: key-service and gateway in-process on port 0
//! (`testkit::stack::Stack`), a fresh database, a unique AMQP prefix, and a
//! `scale` workspace with a key.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use diesel::{Connection, PgConnection};
use futures_util::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions};
use lapin::types::FieldTable;
use secrecy::ExposeSecret;
use serde_json::Value;

use key_service::bootstrap::bootstrap;
use key_service::keys::{ApiKey, NewApiKey};
use shared::amqp::Broker;
use shared::settings::{Plan, Settings};
pub use testkit::eventually;
use testkit::stack::{self, Stack};

pub use testkit::SEED_TEXT;
pub const SEED_VOICE: &str = "voice_8f2a1c";

pub struct TestApp {
    pub address: String,
    /// Cancel to stop the key service (as if it went down).
    pub key_service_stop: tokio_util::sync::CancellationToken,
    pub api_key: String,
    pub workspace_id: String,
    pub settings: Settings,
    pub client: reqwest::Client,
}

/// Settings for a test: fresh database, unique prefix, a `tiny` plan with
/// 2 credits for running out. `scale` keeps its allowance but gets generous
/// rate and concurrency limits, so tests that are not about limits never
/// meet them; the limit tests use plans of their own (`plan`).
pub fn settings() -> Settings {
    let mut s = testkit::test_settings().unwrap();
    s.kokoro.dir = kokoro_packs().to_owned();
    s.plans.insert("tiny".into(), plan(Some(2), None, None));
    if let Some(scale) = s.plans.get_mut("scale") {
        scale.requests_per_second = Some(10_000);
        scale.max_in_flight = Some(10_000);
    }
    s
}

/// A Kokoro directory whose `voices/` holds a file of a pack's size for
/// every `kokoro-js` pack name (sparse: no disk used). The gateway lists a
/// Kokoro voice when its pack is there and never reads the pack, so its
/// tests see the 41 Kokoro presets without `deploy/fetch-models`; the
/// Japanese and Mandarin packs are there too, as in the real directory.
pub fn kokoro_packs() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        use shared::voices::kokoro::{LEFT_OUT, PACK_BYTES, PACKS};
        let dir = std::env::temp_dir().join(format!(
            "voiceprod-kokoro-packs-{}",
            uuid::Uuid::new_v4().simple()
        ));
        let voices = dir.join("voices");
        std::fs::create_dir_all(&voices).unwrap();
        for name in PACKS.iter().map(|(n, _, _)| *n).chain(LEFT_OUT) {
            std::fs::File::create(voices.join(format!("{name}.bin")))
                .unwrap()
                .set_len(PACK_BYTES)
                .unwrap();
        }
        dir
    })
}

/// An API plan with this allowance and limits (`None`: unlimited).
pub fn plan(credits: Option<i64>, per_second: Option<i64>, in_flight: Option<i64>) -> Plan {
    Plan {
        api_access: true,
        credits_per_period: credits,
        formats: vec!["wav".into(), "mp3".into(), "pcm".into()],
        requests_per_second: per_second,
        max_in_flight: in_flight,
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(settings()).await
}

pub async fn spawn_app_with(settings: Settings) -> TestApp {
    let stack = Stack::builder(settings).start().await.unwrap();
    TestApp {
        address: stack.gateway.clone(),
        key_service_stop: stack.key_service_shutdown.clone(),
        api_key: stack.api_key.clone(),
        workspace_id: stack.workspace_id.to_string(),
        settings: stack.settings.clone(),
        client: stack.client.clone(),
    }
}

/// One more gateway on the same database, broker topology and key service;
/// returns its address once it is ready (listening for key invalidations).
pub async fn spawn_gateway(settings: &Settings) -> String {
    let gateway = gateway::Application::build(settings.clone()).await.unwrap();
    let address = format!("http://127.0.0.1:{}", gateway.port());
    tokio::spawn(gateway.run_until_stopped());
    let client = reqwest::Client::new();
    eventually("the gateway to be ready", || async {
        let ready = client.get(format!("{address}/readyz")).send().await.ok()?;
        ready.status().is_success().then_some(())
    })
    .await;
    address
}

pub fn connect(settings: &Settings) -> PgConnection {
    PgConnection::establish(settings.database.url.expose_secret()).unwrap()
}

/// A workspace on `plan` and a key with every scope: (ws id, secret).
pub fn new_workspace(settings: &Settings, name: &str, plan: &str) -> (String, String) {
    let out = bootstrap(&mut connect(settings), settings, name, plan).unwrap();
    (out.workspace_id.to_string(), out.api_key)
}

/// A second key of the app's workspace holding only `scopes`.
pub fn key_with_scopes(app: &TestApp, scopes: &[&str]) -> String {
    let secret = shared::api_key::generate();
    let ws = shared::ids::WorkspaceId::parse(&app.workspace_id).unwrap();
    ApiKey::insert(
        &mut connect(&app.settings),
        &NewApiKey {
            id: uuid::Uuid::now_v7(),
            workspace_id: ws.0,
            name: "limited",
            secret_sha256: &secret.sha256,
            prefix: &secret.display_prefix,
            scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
            expires_at: None,
            credit_limit: None,
            rotated_from: None,
        },
    )
    .unwrap();
    secret.secret
}

impl TestApp {
    pub async fn post_generation(&self, body: &Value) -> reqwest::Response {
        self.post_generation_with_key(body, &self.api_key).await
    }

    pub async fn post_generation_with_key(&self, body: &Value, key: &str) -> reqwest::Response {
        stack::post(&self.client, &self.address, key, "/v1/generations", body).await
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        stack::get(&self.client, &self.address, &self.api_key, path).await
    }

    /// `GET` with the app's key, the body as JSON.
    pub async fn get_json(&self, path: &str) -> Value {
        self.get(path).await.json().await.unwrap()
    }

    /// `GET` with another key, the body as JSON.
    pub async fn get_json_with_key(&self, path: &str, key: &str) -> Value {
        let response = stack::get(&self.client, &self.address, key, path).await;
        response.json().await.unwrap()
    }

    /// `POST` `body` as JSON with the app's key.
    pub async fn post_json(&self, path: &str, body: &Value) -> reqwest::Response {
        stack::post(&self.client, &self.address, &self.api_key, path, body).await
    }

    /// Posts the seed request and returns the 202 body.
    pub async fn create_seed_generation(&self) -> Value {
        let response = self.post_generation(&self.seed_body()).await;
        assert_eq!(response.status().as_u16(), 202);
        response.json().await.unwrap()
    }

    pub fn seed_body(&self) -> Value {
        serde_json::json!({ "text": SEED_TEXT, "voiceId": SEED_VOICE, "format": "wav" })
    }

    /// The next job on this app's `synth.jobs`, within a deadline.
    pub async fn next_job(&self) -> Value {
        serde_json::from_slice(&self.next_job_delivery().await.data).unwrap()
    }

    /// The next delivery of this app's `synth.jobs` (acked), within a
    /// deadline: the job with its AMQP properties.
    pub async fn next_job_delivery(&self) -> lapin::message::Delivery {
        let broker = Broker::new(&self.settings.amqp, "test-observer");
        let ch = broker.channel().await.unwrap();
        // Either lane's queue (`shared::amqp::Lane`): the first job of both.
        let mut consumers = Vec::new();
        for lane in shared::amqp::Lane::ALL {
            let consumer = ch
                .basic_consume(
                    broker.topology().lane_queue(lane).into(),
                    format!("test-observer-{}", lane.as_str()).into(),
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                )
                .await
                .unwrap();
            consumers.push(consumer);
        }
        let next = futures_util::stream::select_all(consumers);
        let mut next = std::pin::pin!(next);
        let delivery = tokio::time::timeout(Duration::from_secs(10), next.next())
            .await
            .expect("no job within 10 s")
            .unwrap()
            .unwrap();
        delivery.ack(BasicAckOptions::default()).await.unwrap();
        delivery
    }
}

/// Asserts the docs/api.md error envelope with this status and code.
pub async fn assert_error(response: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(
        response.status().as_u16(),
        status,
        "wrong status for {code}"
    );
    assert!(response.headers().contains_key("x-request-id"));
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], code, "body: {body}");
    assert!(body["error"]["type"].is_string(), "body: {body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "body: {body}"
    );
    body
}

/// Waits until every generation is marked published; their marks.
pub async fn published_at_of_all(app: &TestApp) -> Vec<chrono::DateTime<chrono::Utc>> {
    use diesel::{QueryDsl, RunQueryDsl};
    eventually("every job to be marked published", || async {
        let marks: Vec<Option<chrono::DateTime<chrono::Utc>>> = shared::schema::generations::table
            .select(shared::schema::generations::published_at)
            .load(&mut connect(&app.settings))
            .unwrap();
        marks.into_iter().collect::<Option<Vec<_>>>()
    })
    .await
}

/// Every voice `GET /v1/voices` lists with `query` (`&engine=kokoro`), page by page.
pub async fn all_voices(app: &TestApp, query: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut path = format!("/v1/voices?limit=100{query}");
    loop {
        let response = app.get(&path).await;
        assert_eq!(response.status().as_u16(), 200, "{path}");
        let page: Value = response.json().await.unwrap();
        out.extend(page["data"].as_array().unwrap().iter().cloned());
        let Some(cursor) = page["nextCursor"].as_str() else {
            return out;
        };
        path = format!("/v1/voices?limit=100{query}&cursor={cursor}");
    }
}
