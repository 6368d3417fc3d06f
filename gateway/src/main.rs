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
    shared::telemetry::cancel_on_signal(app.shutdown_token());
    app.run_until_stopped().await
}
