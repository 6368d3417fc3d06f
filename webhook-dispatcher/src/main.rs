//! `webhook-dispatcher`: loads the settings, starts the dispatcher and runs
//! it until SIGTERM or Ctrl-C.

use shared::settings::Settings;
use webhook_dispatcher::Application;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::load()?;
    shared::telemetry::init(&settings.telemetry);
    let app = Application::build(settings).await?;
    tracing::info!(port = app.port(), "webhook-dispatcher started");
    let stop = app.stop_token();
    let signal = shared::telemetry::shutdown_token();
    tokio::spawn(async move {
        signal.cancelled().await;
        stop.cancel();
    });
    app.run_until_stopped().await
}
