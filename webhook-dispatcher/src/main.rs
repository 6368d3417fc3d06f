//! `webhook-dispatcher`: loads the settings, starts the dispatcher and runs
//! it until SIGTERM or Ctrl-C.

use anyhow::Context;

use shared::settings::Settings;
use webhook_dispatcher::Application;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::load().context("Failed to load configuration")?;
    shared::telemetry::init(&settings.telemetry);
    let app = Application::build(settings).await?;
    tracing::info!(port = app.port(), "webhook-dispatcher listening");
    shared::telemetry::cancel_on_signal(app.shutdown_token());
    app.run_until_stopped().await
}
