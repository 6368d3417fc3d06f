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
    /// The cluster's nodes, tried in turn (`amqp.url`, comma-separated).
    urls: Vec<SecretString>,
    /// The node to try first at the next connect: the last one that
    /// worked, or the one after the last that failed.
    next_url: std::sync::atomic::AtomicUsize,
    name: String,
    topology: Topology,
    /// The current connection. Held only to read or swap it, never across
    /// an await, so readiness and the fast path never wait on a connect.
    conn: std::sync::Mutex<Option<Arc<Connection>>>,
    /// Serialises connection attempts.
    connecting: Mutex<()>,
    metrics: Metrics,
}

/// The nodes of `amqp.url`: one URL, or several separated by commas (the
/// nodes of one cluster).
fn node_urls(url: &SecretString) -> Vec<SecretString> {
    url.expose_secret()
        .split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(|u| SecretString::from(u.to_owned()))
        .collect()
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
        let urls = node_urls(&settings.url);
        // Clients of one cluster start at different nodes, spreading
        // connections; any node serves any queue.
        let first = usize::from(uuid::Uuid::new_v4().as_bytes()[0]) % urls.len().max(1);
        Arc::new(Self {
            urls,
            next_url: std::sync::atomic::AtomicUsize::new(first),
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
        let conn = self.connect_any().await?;
        let ch = conn.create_channel().await?;
        self.topology.declare(&ch).await?;
        tracing::info!(connection = %self.name, "connected to the broker");
        *self.conn.lock().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(conn));
        Ok(ch)
    }

    /// Connects to the first node that answers, starting at `next_url`.
    async fn connect_any(&self) -> Result<Connection, BrokerError> {
        use std::sync::atomic::Ordering;
        let n = self.urls.len().max(1);
        let start = self.next_url.load(Ordering::Relaxed);
        let mut last = BrokerError::Timeout;
        for i in 0..n {
            let index = (start + i) % n;
            let Some(url) = self.urls.get(index) else {
                break;
            };
            let props =
                ConnectionProperties::default().with_connection_name(self.name.clone().into());
            let attempt = tokio::time::timeout(
                CONNECT_TIMEOUT,
                Connection::connect(url.expose_secret(), props),
            )
            .await
            .map_err(|_| BrokerError::Timeout)
            .and_then(|r| r.map_err(BrokerError::Unreachable));
            match attempt {
                Ok(conn) => {
                    self.next_url.store(index, Ordering::Relaxed);
                    if n > 1 {
                        tracing::info!(connection = %self.name, node = index + 1, "connected to broker node");
                    }
                    return Ok(conn);
                }
                Err(e) => {
                    if n > 1 {
                        tracing::warn!(connection = %self.name, node = index + 1, error = %e, "broker node unreachable; trying the next");
                    }
                    self.next_url.store((index + 1) % n, Ordering::Relaxed);
                    last = e;
                }
            }
        }
        Err(last)
    }

    /// How many messages are ready in `queue` (a passive declare, on a
    /// channel of its own). Bounded as a whole: opening the channel is an
    /// RPC too, and one begun on a connection that is dying may never be
    /// answered; the channel is closed in the background.
    pub async fn ready_messages(&self, queue: &str) -> Result<u32, BrokerError> {
        let (ch, count) = tokio::time::timeout(CONNECT_TIMEOUT, async {
            let ch = self.channel().await?;
            let options = lapin::options::QueueDeclareOptions {
                passive: true,
                ..Default::default()
            };
            let declared = ch
                .queue_declare(queue.into(), options, lapin::types::FieldTable::default())
                .await?;
            Ok::<_, BrokerError>((ch, declared.message_count()))
        })
        .await
        .map_err(|_| BrokerError::Timeout)??;
        tokio::spawn(async move {
            let _ = tokio::time::timeout(CONNECT_TIMEOUT, ch.close(200, "done".into())).await;
        });
        Ok(count)
    }

    /// Closes the connection (graceful shutdown).
    pub async fn close(&self) {
        let conn = self.conn.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(conn) = conn {
            let _ = conn.close(200, "shutdown".into()).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amqp_url_holds_one_node_or_a_clusters_nodes_separated_by_commas() {
        let one = node_urls(&SecretString::from("amqp://a:5672/%2f"));
        assert_eq!(one.len(), 1);
        let three = node_urls(&SecretString::from(
            "amqp://u:p@a:5672/%2f, amqp://u:p@b:5672/%2f,,amqp://u:p@c:5672/%2f ",
        ));
        let urls: Vec<&str> = three.iter().map(|u| u.expose_secret()).collect();
        assert_eq!(
            urls,
            [
                "amqp://u:p@a:5672/%2f",
                "amqp://u:p@b:5672/%2f",
                "amqp://u:p@c:5672/%2f"
            ]
        );
    }
}
