//! [`Stack`]: the services started in this process on one test's settings
//! (a fresh database and AMQP prefix from [`crate::test_settings`]), each
//! on its own port and talking over real HTTP and AMQP, and a bootstrapped
//! workspace with an API key holding every scope. The gateway's tests start
//! the key service and the gateway; the end-to-end tests and the
//! benchmarks add the worker and the dispatcher:
//!
//! ```ignore
//! let stack = Stack::builder(settings).worker().dispatcher().start().await?;
//! let accepted = stack.post("/v1/generations", json!({...})).await;
//! ```
//!
//! The services run until [`Stack::shutdown`] or the end of the process.
//! (The fault suite runs the built binaries as processes instead, to kill
//! them: `faults::Stack`.)

use anyhow::Context as _;
use secrecy::ExposeSecret;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use shared::ids::{KeyId, WorkspaceId};
use shared::settings::Settings;

/// What to start; [`StackBuilder::start`] starts it.
pub struct StackBuilder {
    settings: Settings,
    worker: bool,
    dispatcher: bool,
    workspace: String,
    plan: String,
    wait_ready: bool,
}

pub struct Stack {
    /// The settings the services run with (`gateway.key_service_url` and,
    /// with a worker or dispatcher, `gateway.port` and
    /// `gateway.public_base_url` filled in).
    pub settings: Settings,
    /// `http://127.0.0.1:<port>` of the gateway.
    pub gateway: String,
    /// Base URLs of the other services' own HTTP servers (health, metrics).
    pub key_service: String,
    pub worker: Option<String>,
    pub dispatcher: Option<String>,
    /// The bootstrapped key's secret (every scope).
    pub api_key: String,
    pub workspace_id: WorkspaceId,
    pub key_id: KeyId,
    /// Cancel to stop the key service alone (as if it went down).
    pub key_service_shutdown: CancellationToken,
    pub client: reqwest::Client,
    shutdowns: Vec<CancellationToken>,
}

impl Stack {
    /// The key service and the gateway on `settings`, and a workspace
    /// `acme` on the `scale` plan; the builder adds the rest.
    pub fn builder(settings: Settings) -> StackBuilder {
        StackBuilder {
            settings,
            worker: false,
            dispatcher: false,
            workspace: "acme".to_owned(),
            plan: "scale".to_owned(),
            wait_ready: false,
        }
    }

    /// `POST` `body` as JSON with the stack's key.
    pub async fn post(&self, path: &str, body: Value) -> reqwest::Response {
        post(&self.client, &self.gateway, &self.api_key, path, &body).await
    }

    /// `GET` with the stack's key.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        get(&self.client, &self.gateway, &self.api_key, path).await
    }

    /// `GET` with the stack's key, the body as JSON.
    pub async fn get_json(&self, path: &str) -> Value {
        self.get(path).await.json().await.unwrap()
    }

    /// Stops every service of the stack (gracefully, in the background).
    pub fn shutdown(&self) {
        for token in &self.shutdowns {
            token.cancel();
        }
    }
}

impl StackBuilder {
    /// Also a synth-worker (its engine processes are
    /// `settings.worker.engine_program`).
    pub fn worker(mut self) -> Self {
        self.worker = true;
        self
    }

    /// Also a webhook-dispatcher.
    pub fn dispatcher(mut self) -> Self {
        self.dispatcher = true;
        self
    }

    /// The bootstrapped workspace's name and plan (default `acme`, `scale`).
    pub fn workspace(mut self, name: &str, plan: &str) -> Self {
        name.clone_into(&mut self.workspace);
        plan.clone_into(&mut self.plan);
        self
    }

    /// Returns only once the gateway answers `GET /readyz` with 200
    /// (database and broker up, key invalidations heard), within 30 s.
    pub fn wait_ready(mut self) -> Self {
        self.wait_ready = true;
        self
    }

    pub async fn start(self) -> anyhow::Result<Stack> {
        let mut settings = self.settings;
        let mut shutdowns = Vec::new();
        let keys = key_service::Application::build(settings.clone()).await?;
        let key_service = format!("http://127.0.0.1:{}", keys.port());
        settings.gateway.key_service_url = key_service.clone();
        let key_service_shutdown = keys.shutdown_token();
        shutdowns.push(key_service_shutdown.clone());
        tokio::spawn(keys.run_until_stopped());
        if self.worker || self.dispatcher {
            // The dispatcher signs the gateway's public URL into `audioUrl`
            // (and the gateway its own), so the gateway gets a port chosen
            // up front.
            settings.gateway.port = free_port()?;
            settings.gateway.public_base_url =
                format!("http://127.0.0.1:{}", settings.gateway.port);
        }
        let gateway = gateway::Application::build(settings.clone()).await?;
        let gateway_url = format!("http://127.0.0.1:{}", gateway.port());
        shutdowns.push(gateway.shutdown_token());
        tokio::spawn(gateway.run_until_stopped());
        let mut worker_url = None;
        if self.worker {
            let worker = synth_worker::Application::build(settings.clone()).await?;
            worker_url = Some(format!("http://127.0.0.1:{}", worker.port()));
            shutdowns.push(worker.shutdown_token());
            tokio::spawn(worker.run_until_stopped());
        }
        let mut dispatcher_url = None;
        if self.dispatcher {
            let dispatcher = webhook_dispatcher::Application::build(settings.clone()).await?;
            dispatcher_url = Some(format!("http://127.0.0.1:{}", dispatcher.port()));
            shutdowns.push(dispatcher.shutdown_token());
            tokio::spawn(dispatcher.run_until_stopped());
        }
        let boot = bootstrap(&settings, &self.workspace, &self.plan).await?;
        let stack = Stack {
            settings,
            gateway: gateway_url,
            key_service,
            worker: worker_url,
            dispatcher: dispatcher_url,
            api_key: boot.api_key,
            workspace_id: boot.workspace_id,
            key_id: boot.key_id,
            key_service_shutdown,
            client: reqwest::Client::new(),
            shutdowns,
        };
        if self.wait_ready {
            let client = stack.client.clone();
            let ready = format!("{}/readyz", stack.gateway);
            crate::eventually("the gateway to be ready", || async {
                let r = client.get(&ready).send().await.ok()?;
                r.status().is_success().then_some(())
            })
            .await;
        }
        Ok(stack)
    }
}

/// Bootstraps a workspace `name` on `plan` in the database of `settings`,
/// with an API key of its own (a stack's, or one more beside it).
pub async fn bootstrap(
    settings: &Settings,
    name: &str,
    plan: &str,
) -> anyhow::Result<key_service::bootstrap::Bootstrapped> {
    let what = format!("Failed to bootstrap workspace {name:?}");
    let (s, name, plan) = (settings.clone(), name.to_owned(), plan.to_owned());
    tokio::task::spawn_blocking(move || {
        let mut conn = <diesel::PgConnection as diesel::Connection>::establish(
            s.database.url.expose_secret(),
        )?;
        Ok::<_, anyhow::Error>(key_service::bootstrap::bootstrap(
            &mut conn, &s, &name, &plan,
        )?)
    })
    .await?
    .context(what)
}

/// `GET` `base` + `path` with `key`.
pub async fn get(client: &reqwest::Client, base: &str, key: &str, path: &str) -> reqwest::Response {
    client
        .get(format!("{base}{path}"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
}

/// `POST` `body` as JSON to `base` + `path` with `key`.
pub async fn post(
    client: &reqwest::Client,
    base: &str,
    key: &str,
    path: &str,
    body: &Value,
) -> reqwest::Response {
    client
        .post(format!("{base}{path}"))
        .bearer_auth(key)
        .json(body)
        .send()
        .await
        .unwrap()
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}
