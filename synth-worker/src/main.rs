//! `synth-worker` runs the worker; `synth-worker engine` (hidden) is one
//! engine process, started by the worker itself, speaking the framed
//! protocol of `engine::protocol` on stdin/stdout.

use anyhow::Context;
use clap::{Parser, Subcommand};
use shared::settings::Settings;
use synth_worker::Application;

#[derive(Parser)]
#[command(name = "synth-worker", about = "voiceprod synthesis worker")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve synthesis requests on stdin/stdout (started by the worker).
    #[command(hide = true)]
    Engine(synth_worker::engine::server::EngineArgs),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        // No runtime, no settings: a small, single-threaded process, which
        // is what libespeak-ng's global state requires.
        Some(Command::Engine(args)) => synth_worker::engine::server::serve_stdio(args),
        None => run_worker(),
    }
}

#[tokio::main]
async fn run_worker() -> anyhow::Result<()> {
    let settings = Settings::load().context("Failed to load configuration")?;
    shared::telemetry::init(&settings.telemetry);
    let app = Application::build(settings).await?;
    tracing::info!(port = app.port(), "synth-worker listening");
    shared::telemetry::cancel_on_signal(app.shutdown_token());
    app.run_until_stopped().await
}
