//! `lastUsedAt` without a database write per request: each use is recorded
//! in memory (latest time per key) and sent to the key service in one batch
//! every `gateway.last_used_flush_ms`, and once more at shutdown.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use shared::ids::KeyId;
use shared::keys_api::{TOUCH_PATH, Touch, TouchRequest};

use crate::key_service::KeyServiceClient;

pub struct LastUsed {
    pending: Mutex<HashMap<KeyId, DateTime<Utc>>>,
    client: Arc<KeyServiceClient>,
}

impl LastUsed {
    pub fn new(client: Arc<KeyServiceClient>) -> Self {
        Self {
            pending: Mutex::new(HashMap::new()),
            client,
        }
    }

    /// Notes that `key` was used now.
    pub fn record(&self, key: KeyId) {
        if let Ok(mut pending) = self.pending.lock() {
            pending.insert(key, Utc::now());
        }
    }

    /// Sends what is pending; on failure keeps it for the next flush.
    pub async fn flush(&self) {
        let batch: HashMap<KeyId, DateTime<Utc>> = match self.pending.lock() {
            Ok(mut pending) => std::mem::take(&mut *pending),
            Err(_) => return,
        };
        if batch.is_empty() {
            return;
        }
        let entries: Vec<Touch> = batch
            .iter()
            .map(|(k, t)| Touch {
                key_id: *k,
                last_used_at: *t,
            })
            .collect();
        let sent = self
            .client
            .request(reqwest::Method::POST, TOUCH_PATH)
            .json(&TouchRequest { entries })
            .send()
            .await
            .and_then(reqwest::Response::error_for_status);
        if let Err(e) = sent {
            tracing::warn!(error = %e, keys = batch.len(), "could not send lastUsedAt updates; keeping them");
            if let Ok(mut pending) = self.pending.lock() {
                for (k, t) in batch {
                    let slot = pending.entry(k).or_insert(t);
                    *slot = (*slot).max(t);
                }
            }
        }
    }

    /// Flushes every `interval` until cancelled, then once more.
    pub async fn run(&self, interval: Duration, cancel: CancellationToken) {
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tokio::time::sleep(interval) => self.flush().await,
            }
        }
        self.flush().await;
    }
}
