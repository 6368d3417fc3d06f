//! [`State`]: what the consumer, the delivery loop and readiness share: the
//! pool, the broker, the HTTP client, the wake-up signal and the delivery
//! settings. Built once per `Application` from explicit `Settings`, so
//! tests can run several.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use secrecy::SecretString;
use shared::amqp::Broker;
use shared::db::Db;
use shared::metrics::Metrics;
use shared::settings::Settings;
use tokio::sync::Notify;

use crate::target::{PolicyResolver, TargetPolicy};

/// Sent on every delivery so receivers can tell our traffic apart.
pub const USER_AGENT: &str = concat!("voiceprod-webhooks/", env!("CARGO_PKG_VERSION"));

/// The `dispatcher.*`, `audio_urls.*` and `gateway.public_base_url` settings
/// the delivery loop needs, in the units it uses.
#[derive(Debug, Clone)]
pub struct DeliveryConfig {
    /// How long a claimed delivery stays invisible to other dispatchers.
    pub lease: Duration,
    /// Deliveries claimed per round at most.
    pub batch_size: i64,
    /// Attempts in flight at once.
    pub concurrency: usize,
    /// How often due deliveries are looked for when nothing wakes the loop.
    pub poll_interval: Duration,
    /// Seconds before each retry; its length is the number of retries.
    pub retry_schedule_secs: Vec<u64>,
    /// Which targets are refused (`webhooks.allowed_target_cidrs`).
    pub targets: Arc<TargetPolicy>,
    /// An endpoint failing this many days without a success is disabled.
    pub disable_after_failing_days: u32,
    /// Base of the `audioUrl`s minted at send time.
    pub public_base_url: String,
    /// HMAC key of audio URLs.
    pub audio_url_key: SecretString,
    /// Lifetime of a minted audio URL.
    pub audio_url_ttl_secs: u64,
}

impl DeliveryConfig {
    pub fn from_settings(settings: &Settings) -> anyhow::Result<Self> {
        let d = &settings.dispatcher;
        // A lease shorter than a request could expire while we still wait for
        // the receiver, and another dispatcher would send the same attempt.
        anyhow::ensure!(
            d.lease_ms > d.request_timeout_ms,
            "dispatcher.lease_ms ({}) must exceed dispatcher.request_timeout_ms ({})",
            d.lease_ms,
            d.request_timeout_ms
        );
        Ok(Self {
            lease: Duration::from_millis(d.lease_ms),
            batch_size: d.batch_size,
            concurrency: d.concurrency,
            poll_interval: Duration::from_millis(d.poll_interval_ms),
            retry_schedule_secs: d.retry_schedule_secs.clone(),
            targets: Arc::new(
                TargetPolicy::from_settings(&settings.webhooks)
                    .context("Invalid webhooks.allowed_target_cidrs")?,
            ),
            disable_after_failing_days: d.disable_after_failing_days,
            public_base_url: settings.gateway.public_base_url.clone(),
            audio_url_key: settings.audio_urls.signing_key.clone(),
            audio_url_ttl_secs: settings.audio_urls.ttl_secs,
        })
    }
}

/// Cheap to clone: every field is a handle.
#[derive(Clone)]
pub struct State {
    pub db: Db,
    /// Connected on first use (the consumer), so building connects nothing.
    pub broker: Arc<Broker>,
    pub client: reqwest::Client,
    /// Notified when new deliveries are committed, so they go out at once
    /// instead of at the next poll.
    pub wake: Arc<Notify>,
    pub config: Arc<DeliveryConfig>,
    /// This dispatcher's series (webhook attempts; the consumer's through the broker).
    pub metrics: Metrics,
}

impl State {
    pub fn new(settings: &Settings) -> anyhow::Result<Self> {
        let config = DeliveryConfig::from_settings(settings)?;
        let client = http_client(&config, settings.dispatcher.request_timeout_ms)?;
        let metrics = Metrics::new(settings.telemetry.metrics_token.clone());
        Ok(Self {
            db: Db::new(&settings.database),
            broker: Broker::with_metrics(&settings.amqp, "webhook-dispatcher", metrics.clone()),
            client,
            wake: Arc::new(Notify::new()),
            config: Arc::new(config),
            metrics,
        })
    }
}

fn http_client(config: &DeliveryConfig, timeout_ms: u64) -> anyhow::Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder()
        .user_agent(USER_AGENT)
        // docs/webhooks.md: a 2xx within the timeout is success.
        .timeout(Duration::from_millis(timeout_ms))
        // docs/webhooks.md: redirects are not followed; a 3xx is a failed attempt.
        // Following them would also let a public URL bounce us to a private one.
        .redirect(reqwest::redirect::Policy::none())
        // Connect directly: through a proxy the target check below would
        // only ever see the proxy's address.
        .no_proxy();
    if !config.targets.allows_everything() {
        builder = builder.dns_resolver(Arc::new(PolicyResolver {
            policy: config.targets.clone(),
        }));
    }
    builder
        .build()
        .context("Failed to build the webhook HTTP client")
}
