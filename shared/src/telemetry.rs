//! Logging set-up: human-readable or JSON lines, filtered by
//! `telemetry.filter` unless `RUST_LOG` is set. Secrets never reach a log
//! line: settings wrap them, and requests log only method, path and status.

use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

use crate::settings::{LogFormat, TelemetrySettings};

/// Installs the global subscriber (once; later calls are no-ops, for tests).
pub fn init(settings: &TelemetrySettings) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&settings.filter));
    // Colours only for a person at a terminal, never in files or CI logs.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none();
    init_with(filter, settings.format, std::io::stderr, ansi);
}

/// `init` with an explicit filter and writer (tests capture lines with it).
/// In JSON, each line has the event's fields at the top level, the
/// innermost span as `span` and every enclosing span in `spans`: a
/// request's `request_id`, `trace_id` and `span_id` are on every line
/// logged while serving it, a message's `trace_id` on every line of its
/// handling.
pub fn init_with<W>(filter: EnvFilter, format: LogFormat, writer: W, ansi: bool)
where
    W: for<'a> tracing_subscriber::fmt::MakeWriter<'a> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(ansi);
    let _ = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(true)
            .try_init(),
        LogFormat::Human => builder.try_init(),
    };
}

/// A token cancelled on SIGTERM or Ctrl-C: the start of a graceful shutdown.
pub fn shutdown_token() -> CancellationToken {
    let token = CancellationToken::new();
    let child = token.clone();
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term =
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::error!(error = %e, "cannot listen for SIGTERM");
                        let _ = ctrl_c.await;
                        child.cancel();
                        return;
                    }
                };
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        tracing::info!("shutdown requested");
        child.cancel();
    });
    token
}

/// Cancels `token` (an `Application`'s shutdown token) on SIGTERM or
/// Ctrl-C: how every service's `main` starts its graceful shutdown.
pub fn cancel_on_signal(token: CancellationToken) {
    let signal = shutdown_token();
    tokio::spawn(async move {
        signal.cancelled().await;
        token.cancel();
    });
}
