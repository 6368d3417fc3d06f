//! `key-service` (serve), `key-service migrate`, `key-service bootstrap`.

use anyhow::Context;
use clap::{Parser, Subcommand};
use diesel::{Connection, PgConnection};
use secrecy::ExposeSecret;

use key_service::Application;
use key_service::bootstrap::bootstrap;
use shared::settings::Settings;

#[derive(Parser)]
#[command(name = "key-service", about = "voiceprod workspaces and API keys")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Apply pending database migrations.
    Migrate,
    /// Create a workspace and its first key (all scopes); prints JSON.
    Bootstrap {
        #[arg(long)]
        workspace: String,
        #[arg(long, default_value = "scale")]
        plan: String,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let settings = Settings::load().context("Failed to load configuration")?;
    shared::telemetry::init(&settings.telemetry);
    match cli.command {
        None => {
            let app = Application::build(settings).await?;
            tracing::info!(port = app.port(), "key-service listening");
            shared::telemetry::cancel_on_signal(app.shutdown_token());
            app.run_until_stopped().await
        }
        Some(Command::Migrate) => {
            let mut conn = PgConnection::establish(settings.database.url.expose_secret())
                .context("Failed to connect to the database")?;
            let applied = shared::db::run_migrations(&mut conn)?;
            tracing::info!(applied, "migrations applied");
            Ok(())
        }
        Some(Command::Bootstrap { workspace, plan }) => {
            let mut conn = PgConnection::establish(settings.database.url.expose_secret())
                .context("Failed to connect to the database")?;
            let out = bootstrap(&mut conn, &settings, &workspace, &plan)?;
            println!("{}", serde_json::to_string(&out)?);
            Ok(())
        }
    }
}
