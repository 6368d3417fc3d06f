//! One connection per process, re-established on demand after a failure
//! (declaring the topology on every connect), and what readiness asks of
//! it.

use std::sync::Arc;
use std::time::Duration;

use lapin::{Channel, Connection, ConnectionProperties};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Mutex;

use super::{BrokerError, Topology};
use crate::metrics::Metrics;
use crate::settings::AmqpSettings;

// A broker that is down refuses at once; this bounds a broker that is up
// but slow to accept (busy creating or deleting many queues).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// One connection per process, re-established on demand after a failure.
pub struct Broker {
    url: SecretString,
    name: String,
    topology: Topology,
    /// The current connection. Held only to read or swap it, never across
    /// an await, so readiness and the fast path never wait on a connect.
    conn: std::sync::Mutex<Option<Arc<Connection>>>,
    /// Serialises connection attempts.
    connecting: Mutex<()>,
    metrics: Metrics,
}

impl Broker {
    pub fn new(settings: &AmqpSettings, connection_name: &str) -> Arc<Self> {
        Self::with_metrics(settings, connection_name, Metrics::default())
    }

    /// A broker whose consumers record into the service's `metrics`.
    pub fn with_metrics(
        settings: &AmqpSettings,
        connection_name: &str,
        metrics: Metrics,
    ) -> Arc<Self> {
        Arc::new(Self {
            url: settings.url.clone(),
            name: connection_name.to_owned(),
            topology: Topology::new(settings),
            conn: std::sync::Mutex::new(None),
            connecting: Mutex::new(()),
            metrics,
        })
    }

    /// Where consumers record messages handled and queue lag.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// The connection, if it is up.
    fn current(&self) -> Option<Arc<Connection>> {
        self.conn
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .filter(|c| c.status().connected())
            .cloned()
    }

    /// Whether the connection is up right now (readiness). Never waits for
    /// a connection attempt in progress.
    pub fn is_connected(&self) -> bool {
        self.current().is_some()
    }

    /// `Ok` when connected, or once connected within `wait`: for callers
    /// that answer someone (a request, a readiness probe) and must not
    /// wait for a whole connection attempt to a broker that is booting or
    /// hung. Whoever keeps trying in the background still connects.
    pub async fn connected_within(&self, wait: Duration) -> Result<(), BrokerError> {
        if self.is_connected() {
            return Ok(());
        }
        match tokio::time::timeout(wait, self.channel()).await {
            Ok(result) => result.map(drop),
            Err(_) => Err(BrokerError::Timeout),
        }
    }

    /// A new channel on the current connection, connecting (and declaring
    /// the topology) first when there is none.
    pub async fn channel(&self) -> Result<Channel, BrokerError> {
        if let Some(conn) = self.current() {
            return Ok(conn.create_channel().await?);
        }
        let _connecting = self.connecting.lock().await;
        // Another caller may have connected while this one waited.
        if let Some(conn) = self.current() {
            return Ok(conn.create_channel().await?);
        }
        let props = ConnectionProperties::default().with_connection_name(self.name.clone().into());
        let conn = tokio::time::timeout(
            CONNECT_TIMEOUT,
            Connection::connect(self.url.expose_secret(), props),
        )
        .await
        .map_err(|_| BrokerError::Timeout)?
        .map_err(BrokerError::Unreachable)?;
        let ch = conn.create_channel().await?;
        self.topology.declare(&ch).await?;
        tracing::info!(connection = %self.name, "connected to the broker");
        *self.conn.lock().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(conn));
        Ok(ch)
    }

    /// Closes the connection (graceful shutdown).
    pub async fn close(&self) {
        let conn = self.conn.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(conn) = conn {
            let _ = conn.close(200, "shutdown".into()).await;
        }
    }
}
