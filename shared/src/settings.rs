//! Typed configuration for every service, loaded one way: the built-in
//! defaults of `defaults.toml`, then the optional file named by
//! `VOICEPROD_CONFIG`, then environment variables `VOICEPROD__SECTION__KEY`.
//! Settings are validated right after loading and passed explicitly, so a
//! test can build its own per instance.

use std::collections::BTreeMap;
use std::path::PathBuf;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

const DEFAULTS: &str = include_str!("defaults.toml");

/// The file name of the ONNX Runtime library `deploy/fetch-models` installs
/// (in `onnxruntime/` of the models directory; the default of
/// `piper.onnxruntime` ends with it).
pub const ONNXRUNTIME_LIB: &str = "libonnxruntime.so.1.32.0";

/// Everything a voiceprod service can be configured with.
#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    /// Local development: the built-in, docker-compose and example secrets
    /// are accepted. Off, a service refuses to start with any of them
    /// ([`KNOWN_SECRETS`]), naming the setting.
    #[serde(default)]
    pub dev_mode: bool,
    /// PostgreSQL connection and pool.
    pub database: DatabaseSettings,
    /// RabbitMQ connection and topology naming.
    pub amqp: AmqpSettings,
    /// Log format and filter.
    pub telemetry: TelemetrySettings,
    /// The public REST API.
    pub gateway: GatewaySettings,
    /// The internal key service.
    pub key_service: KeyServiceSettings,
    /// The synthesis worker.
    pub worker: WorkerSettings,
    /// Neural (Piper) voices: where their files and ONNX Runtime are.
    pub piper: PiperSettings,
    /// Kokoro natural voices: where the model, vocab and voice packs are.
    pub kokoro: KokoroSettings,
    /// Cloning onto Kokoro, in the workers.
    pub cloning: CloningSettings,
    /// The webhook dispatcher.
    pub dispatcher: DispatcherSettings,
    /// Webhook policy the gateway (registration) and the dispatcher (delivery) share.
    pub webhooks: WebhookSettings,
    /// Where rendered audio is stored.
    pub storage: StorageSettings,
    /// Signed, expiring audio URLs (gateway serves them, dispatcher mints them).
    pub audio_urls: AudioUrlSettings,
    /// Plans by name: what each allows.
    pub plans: BTreeMap<String, Plan>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct DatabaseSettings {
    /// `postgres://` URL of the one database.
    pub url: SecretString,
    /// Upper bound of pooled connections per process.
    pub pool_max_size: u32,
    /// How long a request waits for a pooled connection before a 503.
    pub pool_timeout_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct AmqpSettings {
    /// `amqp://` URL of the broker, or the URLs of a cluster's nodes
    /// separated by commas: a service connects to the first that answers
    /// (starting at a random one) and, when its connection is lost, to the
    /// next.
    pub url: SecretString,
    /// Prepended to every exchange and queue name (tests use a unique one).
    pub prefix: String,
    /// Redeliveries of one job before the quorum queue dead-letters it.
    pub delivery_limit: u32,
    /// Durable queues are quorum queues (replicated, with a delivery limit).
    /// Tests turn it off: creating and expiring hundreds of Raft groups a
    /// minute stalls a single-node broker; one test checks the quorum topology.
    pub quorum_queues: bool,
    /// Delete queues unused for this long (`x-expires`); tests only.
    #[serde(default)]
    pub queue_expires_ms: Option<u64>,
    /// Texts of at most this many characters go to the interactive lane
    /// (`synth.jobs.interactive`), which workers serve first
    /// (`crate::amqp::Lane`); 0 sends everything to `synth.jobs`.
    pub interactive_max_chars: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct TelemetrySettings {
    /// `human` or `json`.
    pub format: LogFormat,
    /// A `tracing_subscriber::EnvFilter` directive; `RUST_LOG` wins when set.
    pub filter: String,
    /// When set, `GET /metrics` of every service needs
    /// `Authorization: Bearer <token>`; unset, it is open (internal ports).
    #[serde(default)]
    pub metrics_token: Option<SecretString>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
pub struct GatewaySettings {
    /// Interface to listen on.
    pub host: String,
    /// Port to listen on; 0 picks a free one.
    pub port: u16,
    /// How clients reach this gateway; the base of every `audioUrl`.
    pub public_base_url: String,
    /// Base URL of the key service.
    pub key_service_url: String,
    /// Largest request body accepted (413 above it).
    pub max_body_bytes: usize,
    /// How often the sweeper looks for accepted but unpublished generations.
    pub sweeper_interval_ms: u64,
    /// How old an unpublished generation must be before the sweeper takes it.
    pub sweeper_grace_ms: u64,
    /// How long ago a processing generation's job must have been published
    /// (and no worker hold its lease) before the sweeper re-drives it,
    /// once no queued copy can still reach it (`shared::models::lease`).
    pub redrive_grace_ms: u64,
    /// Re-drives per sweeper pass at most (a bounded rate, whatever was lost).
    pub redrive_batch: i64,
    /// A generation still processing this long after it was accepted fails
    /// with `generation_timeout` and is refunded: every customer hears back.
    pub max_processing_age_ms: u64,
    /// How long a verified key is trusted without asking the key service.
    pub key_cache_ttl_ms: u64,
    /// While the key service is unreachable, keys verified this recently
    /// keep working; unknown keys get 503.
    pub key_stale_window_ms: u64,
    /// How often batched `lastUsedAt` updates are sent to the key service.
    pub last_used_flush_ms: u64,
    /// Gateway replicas behind the load balancer: each enforces
    /// `1 / replicas` of a plan's `requests_per_second` on its own.
    pub replicas: u32,
    /// Above this many generations processing in the whole system, new ones
    /// are refused with 503 `system_busy`; 0 turns the guard off.
    pub max_processing_generations: i64,
    /// Creates committed in one transaction at most (group commit,
    /// `gateway::creates`): whatever is waiting when a committer is free.
    pub create_batch_max: usize,
    /// Transactions of creates in flight at once (each holds one pooled
    /// connection while it commits).
    pub create_committers: usize,
    /// Whether this public server answers `GET /metrics` (off by default:
    /// turn it on with `telemetry.metrics_token`, or behind a proxy that
    /// does not route `/metrics` from the internet).
    #[serde(default)]
    pub metrics_enabled: bool,
    /// How long `POST /v1/audio/speech` waits for its generation before
    /// answering 504 with the generation's id (it goes on and can be fetched).
    pub speech_timeout_ms: u64,
    /// How long a voice preview request waits for a worker to render the
    /// preview before answering 503 `preview_pending` with `Retry-After`
    /// (the render goes on and the next request finds it).
    pub preview_wait_ms: u64,
    /// `POST /v1/voices` uploads read at once by this gateway; one more is
    /// refused with 503 `uploads_busy` and `Retry-After`.
    pub max_concurrent_uploads: usize,
    /// Where uploads are spooled while they are analysed (unlinked as soon
    /// as they are created, so always removed); the system's temp dir if unset.
    #[serde(default)]
    pub upload_dir: Option<PathBuf>,
    /// An upload's body must have arrived within this many seconds (408).
    pub upload_timeout_secs: u64,
    /// Verified keys cached at most; past it the cache starts over.
    pub key_cache_capacity: usize,
    /// How long a hash the key service does not know is answered 401
    /// without asking again (a cache of its own, separate from known keys).
    pub key_negative_cache_ttl_ms: u64,
    /// Unknown hashes remembered at most.
    pub key_negative_cache_capacity: usize,
    /// Failed authentications allowed per client address in a burst; past
    /// it the address gets 429 `too_many_auth_failures` until tokens refill.
    pub auth_failures_per_address: u32,
    /// The seconds over which an address's failure allowance refills in full.
    pub auth_failure_window_secs: u64,
    /// Proxies (IP addresses or CIDRs) whose `X-Forwarded-For` names the
    /// client; from any other peer the header is ignored.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct KeyServiceSettings {
    /// Interface to listen on (internal network only).
    pub host: String,
    /// Port to listen on; 0 picks a free one.
    pub port: u16,
    /// Bearer token the gateway presents on internal calls.
    pub internal_token: SecretString,
}

#[derive(Debug, Clone, Deserialize)]
pub struct WorkerSettings {
    /// Interface of the health and metrics listener.
    pub host: String,
    /// Port of the health and metrics listener; 0 picks a free one.
    pub port: u16,
    /// Engine processes to run; 0 means one per core.
    pub engines: usize,
    /// More espeak-ng and Piper engine processes (each pool its own) that
    /// only interactive work renders on (`crate::amqp::Lane`), so a short
    /// request finds one free however busy bulk work keeps the others.
    pub interactive_engines: usize,
    /// Unacknowledged jobs per engine process (bounded prefetch).
    pub prefetch_per_engine: u16,
    /// The executable that serves `engine` (defaults to this binary).
    #[serde(default)]
    pub engine_program: Option<PathBuf>,
    /// How often the event relay looks for finished generations whose event
    /// was not published (the broker refused it or did not confirm it).
    pub event_relay_interval_ms: u64,
    /// How long ago such a generation must have finished before the relay
    /// publishes its event (the worker that finished it tries first).
    pub event_relay_grace_ms: u64,
    /// How long a worker's claim on a generation holds without renewal; it
    /// renews it every third of that while it renders
    /// (`shared::models::lease`).
    pub lease_ms: u64,
    /// On SIGTERM, how long the jobs in flight may still run before they go
    /// back to the queue (below Kubernetes' 30 s termination grace).
    pub drain_ms: u64,
    /// A plain text of at least this many characters is rendered in parts
    /// that several workers render at once (`crate::models::part`); 0
    /// never splits.
    pub split_min_chars: u64,
    /// Characters per part, about (parts are whole chunks of the text).
    pub part_chars: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PiperSettings {
    /// Directory of Piper voices: each `NAME.onnx` + `NAME.onnx.json` is a
    /// preset (gateway and worker both read it; `deploy/fetch-models` fills it).
    pub voices_dir: PathBuf,
    /// ONNX Runtime's shared library ([`ONNXRUNTIME_LIB`]).
    pub onnxruntime: PathBuf,
    /// Neural engine processes; each loads a model once, on its first job.
    pub engines: usize,
    /// ONNX Runtime intra-op threads per neural engine process; 0 means the
    /// cores divided among the neural engine processes.
    pub threads: usize,
}

#[derive(Debug, Clone, Deserialize)]
pub struct KokoroSettings {
    /// Directory of the Kokoro files `deploy/fetch-models` installs: the
    /// model (`kokoro-v1.0.int8.onnx`), `vocab.json` and `voices/NAME.bin`
    /// (gateway and worker both read it). ONNX Runtime is `piper.onnxruntime`.
    pub dir: PathBuf,
    /// Kokoro engine processes; each loads the model once, on its first job.
    pub engines: usize,
    /// More Kokoro processes that only interactive work renders on (as
    /// `worker.interactive_engines`; each holds the model, ~1 GiB at peak).
    pub interactive_engines: usize,
    /// ONNX Runtime intra-op threads per Kokoro engine process; 0 means the
    /// cores divided among the Kokoro engine processes.
    pub threads: usize,
}

#[derive(Debug, Clone, Deserialize)]
pub struct CloningSettings {
    /// The speaker encoder `deploy/fetch-models` installs
    /// (`embedder.int8.onnx`); ONNX Runtime is `piper.onnxruntime`.
    pub encoder: PathBuf,
    /// Renders a clone's search may spend (the search stops paying after
    /// about 10: BENCHMARKS.md, "clone").
    pub max_renders: usize,
    /// Seconds a clone's search may take (the search; the packs' own
    /// renders, once per worker, and the final check come on top).
    pub max_seconds: u64,
    /// How long a worker's claim on a clone holds without renewal (it is
    /// renewed every third of that while the search runs); a clone whose
    /// worker died is taken over after it.
    pub lease_ms: u64,
    /// How often each worker looks for clones no job reached and for
    /// finished clones whose event is unpublished.
    pub scan_interval_ms: u64,
    /// How old a clone must be before the scan takes it (its job should
    /// have reached a worker by then).
    pub scan_grace_ms: u64,
    /// Claims a clone gets; past them it fails (`clone_failed`).
    pub max_attempts: i32,
}

#[derive(Debug, Clone, Deserialize)]
pub struct DispatcherSettings {
    /// Interface of the health and metrics listener.
    pub host: String,
    /// Port of the health and metrics listener; 0 picks a free one.
    pub port: u16,
    /// How often due deliveries are looked for when nothing wakes the loop.
    pub poll_interval_ms: u64,
    /// A delivery attempt fails when the receiver takes longer than this.
    pub request_timeout_ms: u64,
    /// How long a claimed delivery stays invisible to other dispatchers.
    pub lease_ms: u64,
    /// Deliveries claimed per round.
    pub batch_size: i64,
    /// Attempts in flight at once per dispatcher.
    pub concurrency: usize,
    /// Seconds to wait after each failed attempt; its length is the number of retries.
    pub retry_schedule_secs: Vec<u64>,
    /// An endpoint failing this many days without a success is disabled.
    pub disable_after_failing_days: u32,
}

#[derive(Debug, Clone, Deserialize)]
pub struct WebhookSettings {
    /// CIDRs webhook targets may resolve to although they are not public
    /// (loopback, private, …); empty in production, loopback in local development.
    pub allowed_target_cidrs: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct StorageSettings {
    /// `local` (a directory, `root`) or `s3` (an S3-compatible store, `s3`).
    pub backend: StorageBackend,
    /// Directory of the local object store (backend `local`).
    pub root: PathBuf,
    /// The bucket and how to reach it (backend `s3`).
    pub s3: S3Settings,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum StorageBackend {
    Local,
    S3,
}

#[derive(Debug, Clone, Deserialize)]
pub struct S3Settings {
    /// Bucket name (must exist).
    pub bucket: String,
    /// Region the requests are signed for (`us-east-1` suits most
    /// self-hosted servers).
    pub region: String,
    /// Endpoint of a self-hosted server (`http://127.0.0.1:9000`); empty
    /// for AWS, whose endpoint follows from the region.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Access key id; when absent, `AWS_ACCESS_KEY_ID` and the other
    /// standard AWS sources (web identity, ECS, instance metadata) apply.
    #[serde(default)]
    pub access_key_id: Option<SecretString>,
    /// Secret access key; when absent, `AWS_SECRET_ACCESS_KEY` and the rest.
    #[serde(default)]
    pub secret_access_key: Option<SecretString>,
    /// Path-style URLs (`endpoint/bucket/key`), which self-hosted servers
    /// need; `false` uses virtual-hosted URLs (`bucket.endpoint/key`).
    pub path_style: bool,
    /// Allow a plain-HTTP endpoint (a server on the same host or network).
    pub allow_http: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct AudioUrlSettings {
    /// HMAC key of audio URL signatures.
    pub signing_key: SecretString,
    /// Lifetime of a signed audio URL.
    pub ttl_secs: u64,
}

/// What a plan allows. Allowances and limits are a number or the string
/// `"unlimited"` (`None` here); limits left out are unlimited too.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Plan {
    /// Whether keys of this plan may use the API at all.
    pub api_access: bool,
    /// Credits included per monthly period; `None`: unlimited.
    #[serde(deserialize_with = "unlimited_or")]
    pub credits_per_period: Option<i64>,
    /// Output formats allowed.
    pub formats: Vec<String>,
    /// Requests per second per API key (all replicas together); `None`: no limit.
    #[serde(default, deserialize_with = "unlimited_or")]
    pub requests_per_second: Option<i64>,
    /// Generations processing at once per workspace; `None`: no limit.
    #[serde(default, deserialize_with = "unlimited_or")]
    pub max_in_flight: Option<i64>,
}

impl Plan {
    /// The credits a workspace on this plan gets per period, as stored in
    /// `workspaces.credits_included` (unlimited is `i64::MAX`).
    pub fn credits_included(&self) -> i64 {
        self.credits_per_period.unwrap_or(UNLIMITED_CREDITS)
    }
}

/// `workspaces.credits_included` of an unlimited plan: the reservation's
/// conditional UPDATE and the CHECK constraint stay as they are, and the API
/// shows `creditsIncluded: null`.
pub const UNLIMITED_CREDITS: i64 = i64::MAX;

/// A number (or a string of digits, as environment variables give them), or
/// `"unlimited"` for `None`.
fn unlimited_or<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Number(i64),
        Text(String),
    }
    match Raw::deserialize(d)? {
        Raw::Number(n) => Ok(Some(n)),
        Raw::Text(t) if t.eq_ignore_ascii_case("unlimited") => Ok(None),
        Raw::Text(t) => t.trim().parse().map(Some).map_err(|_| {
            serde::de::Error::custom(format!("expected a number or \"unlimited\", got {t:?}"))
        }),
    }
}

/// Secrets published with voiceprod (`defaults.toml`, `docker-compose.yml`,
/// `deploy/k8s/secret.example.yaml`): anyone can sign audio URLs or call
/// the key service with them, so outside `dev_mode` none is accepted.
pub const KNOWN_SECRETS: [&str; 5] = [
    "dev-audio-url-key-change-me",
    "dev-internal-token-change-me",
    "dev-only-audio-url-signing-key",
    "dev-only-internal-token",
    "CHANGE-ME-at-least-16-characters",
];

/// The password of the example connection URLs (`secret.example.yaml`).
const EXAMPLE_PASSWORD: &str = "CHANGE-ME";

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("failed to load configuration")]
    Load(#[from] config::ConfigError),
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl Settings {
    /// Defaults, then `VOICEPROD_CONFIG`'s file, then `VOICEPROD__*` variables.
    pub fn load() -> Result<Self, SettingsError> {
        let mut builder = config::Config::builder()
            .add_source(config::File::from_str(DEFAULTS, config::FileFormat::Toml));
        if let Ok(path) = std::env::var("VOICEPROD_CONFIG") {
            builder = builder.add_source(config::File::with_name(&path));
        }
        let settings: Settings = builder
            .add_source(
                config::Environment::with_prefix("VOICEPROD")
                    .prefix_separator("__")
                    .separator("__")
                    .list_separator(",")
                    .with_list_parse_key("dispatcher.retry_schedule_secs")
                    .with_list_parse_key("webhooks.allowed_target_cidrs")
                    .with_list_parse_key("gateway.trusted_proxies")
                    .try_parsing(true),
            )
            .build()?
            .try_deserialize()?;
        settings.validate()?;
        settings.refuse_known_secrets()?;
        Ok(settings)
    }

    /// Outside `dev_mode`, an error naming the first setting that holds a
    /// published secret ([`KNOWN_SECRETS`], or the example URLs' password).
    /// [`Settings::load`] checks it, so every service refuses to start.
    pub fn refuse_known_secrets(&self) -> Result<(), SettingsError> {
        if self.dev_mode {
            return Ok(());
        }
        let published = |value: &str| {
            KNOWN_SECRETS
                .iter()
                .any(|known| value.trim().eq_ignore_ascii_case(known))
        };
        let example_password = |value: &str| {
            url::Url::parse(value)
                .ok()
                .and_then(|u| {
                    u.password()
                        .map(|p| p.eq_ignore_ascii_case(EXAMPLE_PASSWORD))
                })
                .unwrap_or(false)
        };
        let mut checks: Vec<(&str, bool)> = vec![
            (
                "audio_urls.signing_key (VOICEPROD__AUDIO_URLS__SIGNING_KEY)",
                published(self.audio_urls.signing_key.expose_secret()),
            ),
            (
                "key_service.internal_token (VOICEPROD__KEY_SERVICE__INTERNAL_TOKEN)",
                published(self.key_service.internal_token.expose_secret()),
            ),
            (
                "database.url (VOICEPROD__DATABASE__URL)",
                example_password(self.database.url.expose_secret()),
            ),
            (
                "amqp.url (VOICEPROD__AMQP__URL)",
                example_password(self.amqp.url.expose_secret()),
            ),
        ];
        if let Some(token) = &self.telemetry.metrics_token {
            checks.push((
                "telemetry.metrics_token (VOICEPROD__TELEMETRY__METRICS_TOKEN)",
                published(token.expose_secret()),
            ));
        }
        match checks.into_iter().find(|(_, bad)| *bad) {
            Some((name, _)) => Err(SettingsError::Invalid(format!(
                "{name} holds a secret published with voiceprod (a built-in, docker-compose or example value): \
                 set it to a random secret (e.g. `openssl rand -hex 32`), or set VOICEPROD__DEV_MODE=true \
                 for local development only"
            ))),
            None => Ok(()),
        }
    }

    /// The built-in defaults alone (tests start from these; they are not
    /// checked for published secrets, see [`Settings::refuse_known_secrets`]).
    pub fn defaults() -> Result<Self, SettingsError> {
        let settings: Settings = config::Config::builder()
            .add_source(config::File::from_str(DEFAULTS, config::FileFormat::Toml))
            .build()?
            .try_deserialize()?;
        settings.validate()?;
        Ok(settings)
    }

    /// Checks what types alone cannot.
    pub fn validate(&self) -> Result<(), SettingsError> {
        let invalid = |m: &str| Err(SettingsError::Invalid(m.to_owned()));
        if self.database.pool_max_size == 0 {
            return invalid("database.pool_max_size must be at least 1");
        }
        if self.audio_urls.signing_key.expose_secret().len() < 16 {
            return invalid("audio_urls.signing_key must have at least 16 characters");
        }
        if self.key_service.internal_token.expose_secret().len() < 16 {
            return invalid("key_service.internal_token must have at least 16 characters");
        }
        if url::Url::parse(&self.gateway.public_base_url).is_err() {
            return invalid("gateway.public_base_url must be an absolute URL");
        }
        if self.piper.engines == 0 {
            return invalid("piper.engines must be at least 1");
        }
        if self.kokoro.engines == 0 {
            return invalid("kokoro.engines must be at least 1");
        }
        if self.cloning.max_renders == 0 || self.cloning.max_attempts < 1 {
            return invalid("cloning.max_renders and cloning.max_attempts must be at least 1");
        }
        if self.cloning.lease_ms < 3000 {
            return invalid("cloning.lease_ms must be at least 3000");
        }
        if self.dispatcher.concurrency == 0 || self.dispatcher.batch_size <= 0 {
            return invalid("dispatcher.concurrency and dispatcher.batch_size must be positive");
        }
        if let Err(e) = crate::targets::TargetPolicy::from_settings(&self.webhooks) {
            return invalid(&format!("webhooks.allowed_target_cidrs: {e}"));
        }
        if self.gateway.replicas == 0 || self.gateway.max_processing_generations < 0 {
            return invalid(
                "gateway.replicas must be at least 1, gateway.max_processing_generations not negative",
            );
        }
        let g = &self.gateway;
        if g.max_concurrent_uploads == 0
            || g.upload_timeout_secs == 0
            || g.auth_failures_per_address == 0
            || g.auth_failure_window_secs == 0
        {
            return invalid(
                "gateway.max_concurrent_uploads, upload_timeout_secs, auth_failures_per_address and auth_failure_window_secs must be at least 1",
            );
        }
        if let Some(bad) = g
            .trusted_proxies
            .iter()
            .find(|p| p.parse::<crate::targets::Cidr>().is_err())
        {
            return invalid(&format!(
                "gateway.trusted_proxies: {bad:?} is not an IP address or CIDR"
            ));
        }
        if self.worker.prefetch_per_engine == 0 {
            return invalid("worker.prefetch_per_engine must be at least 1");
        }
        if self.worker.event_relay_interval_ms == 0 {
            return invalid("worker.event_relay_interval_ms must be at least 1");
        }
        if self.worker.split_min_chars > 0 && self.worker.part_chars == 0 {
            return invalid(
                "worker.part_chars must be at least 1 when worker.split_min_chars is set",
            );
        }
        if self.worker.lease_ms < 300 {
            return invalid("worker.lease_ms must be at least 300");
        }
        if !(1..=1000).contains(&self.gateway.create_batch_max)
            || self.gateway.create_committers == 0
            || self.gateway.create_committers > self.database.pool_max_size as usize
        {
            return invalid(
                "gateway.create_batch_max must be 1 to 1000, gateway.create_committers 1 to database.pool_max_size",
            );
        }
        if self.gateway.redrive_batch < 1 || self.gateway.max_processing_age_ms == 0 {
            return invalid(
                "gateway.redrive_batch and gateway.max_processing_age_ms must be at least 1",
            );
        }
        if self.storage.backend == StorageBackend::S3 && self.storage.s3.bucket.trim().is_empty() {
            return invalid("storage.s3.bucket must be set when storage.backend is s3");
        }
        if self.gateway.speech_timeout_ms == 0 {
            return invalid("gateway.speech_timeout_ms must be at least 1");
        }
        if self.gateway.preview_wait_ms == 0 {
            return invalid("gateway.preview_wait_ms must be at least 1");
        }
        for (name, plan) in &self.plans {
            if plan.credits_per_period.is_some_and(|c| c < 0) {
                return invalid(&format!(
                    "plans.{name}.credits_per_period must not be negative"
                ));
            }
            if plan.requests_per_second.is_some_and(|r| r < 1)
                || plan.max_in_flight.is_some_and(|r| r < 1)
            {
                return invalid(&format!(
                    "plans.{name}.requests_per_second and max_in_flight must be at least 1"
                ));
            }
            if let Some(f) = plan
                .formats
                .iter()
                .find(|f| crate::formats::AudioFormat::parse(f).is_none())
            {
                return invalid(&format!("plans.{name}.formats: unknown format {f}"));
            }
        }
        Ok(())
    }

    /// The plan of that name, if configured.
    pub fn plan(&self, name: &str) -> Option<&Plan> {
        self.plans.get(name)
    }

    /// Intra-op threads of each neural engine process: the configured
    /// number, or the cores shared among `piper.engines` processes.
    pub fn piper_threads(&self) -> usize {
        threads_per_engine(self.piper.threads, self.piper.engines)
    }

    /// Intra-op threads of each Kokoro engine process: the configured
    /// number, or the cores shared among `kokoro.engines` processes.
    pub fn kokoro_threads(&self) -> usize {
        threads_per_engine(self.kokoro.threads, self.kokoro.engines)
    }

    /// Engine processes to run: the configured number, or one per core.
    pub fn engine_count(&self) -> usize {
        match self.worker.engines {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
    }
}

/// ONNX Runtime threads per engine process: `configured`, or (0) the cores
/// shared among `engines` processes, at least 1.
fn threads_per_engine(configured: usize, engines: usize) -> usize {
    match configured {
        0 => {
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            (cores / engines.max(1)).max(1)
        }
        n => n,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_load_and_validate() {
        let s = Settings::defaults().unwrap();
        assert!(s.piper.onnxruntime.ends_with(ONNXRUNTIME_LIB));
        assert_eq!(s.gateway.port, 8080);
        assert_eq!(s.dispatcher.retry_schedule_secs.len(), 7);
        assert!(s.plan("scale").unwrap().api_access);
        assert!(!s.plan("free").unwrap().api_access);
        assert_eq!(s.plan("scale").unwrap().credits_per_period, Some(1000));
        assert_eq!(s.plan("enterprise").unwrap().credits_per_period, None);
        assert_eq!(
            s.plan("enterprise").unwrap().credits_included(),
            UNLIMITED_CREDITS
        );
    }

    #[test]
    fn allowances_are_numbers_or_unlimited() {
        let toml = r#"
            api_access = true
            credits_per_period = "2500"
            formats = ["wav"]
            requests_per_second = "unlimited"
            max_in_flight = 3
        "#;
        let plan: Plan = config::Config::builder()
            .add_source(config::File::from_str(toml, config::FileFormat::Toml))
            .build()
            .unwrap()
            .try_deserialize()
            .unwrap();
        assert_eq!(plan.credits_per_period, Some(2500));
        assert_eq!(plan.requests_per_second, None);
        assert_eq!(plan.max_in_flight, Some(3));
        let bad = r#"
            api_access = true
            credits_per_period = "lots"
            formats = ["wav"]
        "#;
        let parsed: Result<Plan, _> = config::Config::builder()
            .add_source(config::File::from_str(bad, config::FileFormat::Toml))
            .build()
            .unwrap()
            .try_deserialize();
        assert!(parsed.is_err());
    }

    #[test]
    fn published_secrets_are_refused_outside_dev_mode() {
        let refused = |s: &Settings| match s.refuse_known_secrets() {
            Err(SettingsError::Invalid(m)) => m,
            other => panic!("expected a refusal, got {other:?}"),
        };
        let mut s = Settings::defaults().unwrap();
        assert!(!s.dev_mode);
        assert!(refused(&s).starts_with("audio_urls.signing_key"));
        s.audio_urls.signing_key = SecretString::from("5f0c2b8e9d7a41c3b6e2f9a8d1c4b7e0");
        assert!(refused(&s).starts_with("key_service.internal_token"));
        s.key_service.internal_token = SecretString::from(" dev-only-internal-token ");
        assert!(
            refused(&s).starts_with("key_service.internal_token"),
            "compose's default"
        );
        s.key_service.internal_token = SecretString::from("a1b2c3d4e5f60718293a4b5c6d7e8f90");
        assert!(s.refuse_known_secrets().is_ok());
        s.database.url =
            SecretString::from("postgres://voiceprod:CHANGE-ME@postgres:5432/voiceprod");
        assert!(
            refused(&s).starts_with("database.url"),
            "the k8s example's password"
        );
        s.database.url = SecretString::from("postgres://voiceprod:s3cr3t@postgres:5432/voiceprod");
        s.telemetry.metrics_token = Some(SecretString::from("CHANGE-ME-at-least-16-characters"));
        let message = refused(&s);
        assert!(message.starts_with("telemetry.metrics_token"), "{message}");
        assert!(
            !message.contains("CHANGE-ME-at"),
            "the message never repeats the value"
        );
        s.telemetry.metrics_token = None;
        assert!(s.refuse_known_secrets().is_ok());

        let mut dev = Settings::defaults().unwrap();
        dev.dev_mode = true;
        assert!(dev.refuse_known_secrets().is_ok());
    }

    #[test]
    fn secrets_do_not_print() {
        let s = Settings::defaults().unwrap();
        let printed = format!("{s:?}");
        assert!(!printed.contains("dev-audio-url-key"));
        assert!(!printed.contains("dev-internal-token"));
    }
}
