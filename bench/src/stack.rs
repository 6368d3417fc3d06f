//! The services a benchmark measures, started in this process on a fresh
//! database and AMQP prefix (as the e2e test starts them), and a
//! bootstrapped workspace with one API key.

use anyhow::Context as _;
use secrecy::ExposeSecret;
use shared::settings::Settings;
use uuid::Uuid;

/// What was started; the services run until the process exits.
pub struct Stack {
    pub settings: Settings,
    /// `http://127.0.0.1:<port>` of the gateway.
    pub gateway: String,
    pub api_key: String,
    pub workspace_id: Uuid,
    pub key_id: Uuid,
}

/// Which services besides key-service and the gateway.
#[derive(Debug, Clone, Copy)]
pub struct With {
    pub worker: bool,
    pub dispatcher: bool,
}

/// A fresh database and AMQP prefix (see `shared::testing::test_settings`).
pub async fn settings() -> anyhow::Result<Settings> {
    tokio::task::spawn_blocking(shared::testing::test_settings)
        .await
        .context("Failed to create a database")?
}

/// Back to the production defaults where the test settings differ for
/// speed of tests (pool size, worker engines, dispatcher poll, sweeper,
/// quorum queues); the database, prefix, ports and storage stay the test's.
pub fn production_defaults(settings: &mut Settings) -> anyhow::Result<()> {
    let d = Settings::defaults()?;
    settings.database.pool_max_size = d.database.pool_max_size;
    settings.worker.engines = d.worker.engines;
    settings.dispatcher.poll_interval_ms = d.dispatcher.poll_interval_ms;
    settings.gateway.sweeper_interval_ms = d.gateway.sweeper_interval_ms;
    settings.gateway.sweeper_grace_ms = d.gateway.sweeper_grace_ms;
    settings.amqp.quorum_queues = d.amqp.quorum_queues;
    Ok(())
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Starts key-service and the gateway (and what `with` asks for) and
/// bootstraps a workspace on `plan`.
pub async fn start(mut settings: Settings, with: With, plan: &str) -> anyhow::Result<Stack> {
    let keys = key_service::Application::build(settings.clone()).await?;
    settings.gateway.key_service_url = format!("http://127.0.0.1:{}", keys.port());
    tokio::spawn(keys.run_until_stopped());
    // The dispatcher signs the gateway's public URL into `audioUrl`.
    settings.gateway.port = free_port()?;
    settings.gateway.public_base_url = format!("http://127.0.0.1:{}", settings.gateway.port);
    let gateway = gateway::Application::build(settings.clone()).await?;
    tokio::spawn(gateway.run_until_stopped());
    if with.worker {
        let worker = synth_worker::Application::build(settings.clone()).await?;
        tokio::spawn(worker.run_until_stopped());
    }
    if with.dispatcher {
        let dispatcher = webhook_dispatcher::Application::build(settings.clone()).await?;
        tokio::spawn(dispatcher.run_until_stopped());
    }
    let s = settings.clone();
    let plan = plan.to_owned();
    let boot = tokio::task::spawn_blocking(move || {
        let mut conn = <diesel::PgConnection as diesel::Connection>::establish(
            s.database.url.expose_secret(),
        )?;
        Ok::<_, anyhow::Error>(key_service::bootstrap::bootstrap(
            &mut conn, &s, "bench", &plan,
        )?)
    })
    .await??;
    let stack = Stack {
        gateway: settings.gateway.public_base_url.clone(),
        settings,
        api_key: boot.api_key,
        workspace_id: boot.workspace_id.0,
        key_id: boot.key_id.0,
    };
    stack.wait_ready().await?;
    Ok(stack)
}

impl Stack {
    /// Until the gateway answers `/readyz` with 200 (database and broker up).
    async fn wait_ready(&self) -> anyhow::Result<()> {
        let client = reqwest::Client::new();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let ready = client
                .get(format!("{}/readyz", self.gateway))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ready {
                return Ok(());
            }
            anyhow::ensure!(
                std::time::Instant::now() < deadline,
                "the gateway was not ready within 30 s"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
}
