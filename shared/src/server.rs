//! The HTTP server of every service's `Application`, run beside its loops:
//! [`spawn`] serves until the shutdown token fires and cancels that token
//! when the server stops by itself (a service whose probes are gone takes
//! itself down rather than run unwatched); [`Running::stop`] stops it
//! gracefully (requests in flight finish) and says how it ended.

use actix_web::dev::{Server, ServerHandle};
use anyhow::Context;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A server spawned by [`spawn`].
pub struct Running {
    handle: ServerHandle,
    task: JoinHandle<std::io::Result<()>>,
}

/// Runs `server` on its own task; if it stops by itself, `shutdown` is
/// cancelled, taking the rest of the service down with it.
pub fn spawn(server: Server, shutdown: CancellationToken) -> Running {
    let handle = server.handle();
    let task = tokio::spawn(async move {
        let result = server.await;
        shutdown.cancel();
        result
    });
    Running { handle, task }
}

impl Running {
    /// Stops accepting connections, lets the requests in flight finish, and
    /// returns how the server ended.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.handle.stop(true).await;
        self.task
            .await
            .context("The HTTP server task failed")?
            .context("The HTTP server failed")
    }
}
