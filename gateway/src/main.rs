//! `gateway`: serves the public API until SIGTERM.

use anyhow::Context;

use gateway::Application;
use shared::settings::Settings;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::load().context("Failed to load configuration")?;
    shared::telemetry::init(&settings.telemetry);
    let app = Application::build(settings).await?;
    tracing::info!(port = app.port(), "gateway listening");
    let signal = shared::telemetry::shutdown_token();
    let token = app.shutdown_token();
    tokio::spawn(async move {
        signal.cancelled().await;
        token.cancel();
    });
    app.run_until_stopped().await
}
