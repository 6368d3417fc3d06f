//! Prometheus metrics: one registry per service instance (so tests running
//! several services in one process see each one's own numbers), the series
//! every service may record, and the `GET /metrics` handler in the text
//! exposition format, served by the service's own actix server.
//!
//! Labels are bounded: HTTP routes are the route *pattern*
//! (`/v1/generations/{id}`), never the raw path; queues are named without
//! the deployment's prefix; outcomes and formats are small fixed sets.
//!
//! `telemetry.metrics_token`, when set, makes `/metrics` require
//! `Authorization: Bearer <token>` (Prometheus `authorization.credentials`).

use std::sync::Arc;
use std::time::Duration;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use prometheus::{
    Encoder, Gauge, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts, Registry,
    TextEncoder,
};
use secrecy::{ExposeSecret, SecretString};

/// Latency buckets of HTTP requests (seconds).
const HTTP_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// Buckets of synthesis and queue lag (seconds): milliseconds to minutes.
const WORK_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];

/// The series of one service instance; cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    token: Option<SecretString>,
    http_duration: HistogramVec,
    consumed: IntCounterVec,
    queue_lag: HistogramVec,
    generations: IntCounterVec,
    synthesis: HistogramVec,
    webhook_attempts: IntCounterVec,
    key_cache: IntCounterVec,
    redriven: IntCounter,
    timed_out: IntCounter,
    oldest_processing: Gauge,
    create_batch: prometheus::Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new(None)
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// A fresh registry; `token` protects `/metrics` when given.
    pub fn new(token: Option<SecretString>) -> Self {
        let registry = Registry::new();
        let inner = Inner {
            http_duration: register(
                &registry,
                HistogramVec::new(
                    HistogramOpts::new(
                        "voiceprod_http_request_duration_seconds",
                        "Time to answer an HTTP request, by method, route pattern and status.",
                    )
                    .buckets(HTTP_BUCKETS.to_vec()),
                    &["method", "route", "status"],
                ),
            ),
            consumed: register(
                &registry,
                IntCounterVec::new(
                    Opts::new(
                        "voiceprod_messages_consumed_total",
                        "Messages handled from a queue, by queue and outcome (ack, retry, reject).",
                    ),
                    &["queue", "outcome"],
                ),
            ),
            queue_lag: register(
                &registry,
                HistogramVec::new(
                    HistogramOpts::new(
                        "voiceprod_queue_lag_seconds",
                        "Time from publish to the start of handling, by queue.",
                    )
                    .buckets(WORK_BUCKETS.to_vec()),
                    &["queue"],
                ),
            ),
            generations: register(
                &registry,
                IntCounterVec::new(
                    Opts::new(
                        "voiceprod_generations_finished_total",
                        "Generations a worker finished, by status (completed, failed).",
                    ),
                    &["status"],
                ),
            ),
            synthesis: register(
                &registry,
                HistogramVec::new(
                    HistogramOpts::new(
                        "voiceprod_synthesis_seconds",
                        "Time to synthesize, encode and store one generation's audio, by format.",
                    )
                    .buckets(WORK_BUCKETS.to_vec()),
                    &["format"],
                ),
            ),
            webhook_attempts: register(
                &registry,
                IntCounterVec::new(
                    Opts::new(
                        "voiceprod_webhook_attempts_total",
                        "Webhook delivery attempts, by outcome (succeeded, retry, exhausted, gone, abandoned).",
                    ),
                    &["outcome"],
                ),
            ),
            key_cache: register(
                &registry,
                IntCounterVec::new(
                    Opts::new(
                        "voiceprod_key_cache_lookups_total",
                        "API key verifications in the gateway, by result (hit, miss).",
                    ),
                    &["result"],
                ),
            ),
            redriven: register(
                &registry,
                IntCounter::new(
                    "voiceprod_generations_redriven_total",
                    "Jobs the sweeper re-published because no queued copy could reach their generation (the broker lost it, or its worker died).",
                ),
            ),
            timed_out: register(
                &registry,
                IntCounter::new(
                    "voiceprod_generations_timed_out_total",
                    "Generations failed with generation_timeout: still processing after gateway.max_processing_age_ms.",
                ),
            ),
            oldest_processing: register(
                &registry,
                Gauge::new(
                    "voiceprod_oldest_processing_generation_seconds",
                    "Age of the oldest generation still processing (0 when none), as the sweeper last saw it.",
                ),
            ),
            create_batch: register(
                &registry,
                prometheus::Histogram::with_opts(
                    HistogramOpts::new(
                        "voiceprod_create_batch_size",
                        "Creates the gateway committed in one transaction (group commit).",
                    )
                    .buckets(vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0]),
                ),
            ),
            registry,
            token,
        };
        Self {
            inner: Arc::new(inner),
        }
    }

    /// One HTTP request answered.
    pub fn observe_http(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        self.inner
            .http_duration
            .with_label_values(&[method, route, status_label(status)])
            .observe(elapsed.as_secs_f64());
    }

    /// One message handled; `outcome` is `ack`, `retry` or `reject`.
    pub fn message_consumed(&self, queue: &str, outcome: &str) {
        self.inner
            .consumed
            .with_label_values(&[queue, outcome])
            .inc();
    }

    /// How long a message waited between its publish and its handling.
    pub fn observe_queue_lag(&self, queue: &str, lag: Duration) {
        self.inner
            .queue_lag
            .with_label_values(&[queue])
            .observe(lag.as_secs_f64());
    }

    /// A worker finished a generation (`completed` or `failed`).
    pub fn generation_finished(&self, status: &str) {
        self.inner.generations.with_label_values(&[status]).inc();
    }

    /// Audio of this format was synthesized, encoded and stored in `elapsed`.
    pub fn observe_synthesis(&self, format: &str, elapsed: Duration) {
        self.inner
            .synthesis
            .with_label_values(&[format])
            .observe(elapsed.as_secs_f64());
    }

    /// One webhook attempt made, by outcome.
    pub fn webhook_attempt(&self, outcome: &str) {
        self.inner
            .webhook_attempts
            .with_label_values(&[outcome])
            .inc();
    }

    /// A key verification answered from the cache (`true`) or not.
    pub fn key_cache(&self, hit: bool) {
        let result = if hit { "hit" } else { "miss" };
        self.inner.key_cache.with_label_values(&[result]).inc();
    }

    /// The sweeper re-published `n` jobs.
    /// One batch of `n` creates committed (or tried).
    pub fn observe_create_batch(&self, n: usize) {
        self.inner.create_batch.observe(n as f64);
    }

    pub fn generations_redriven(&self, n: u64) {
        self.inner.redriven.inc_by(n);
    }

    /// The sweeper failed `n` generations past the maximum age.
    pub fn generations_timed_out(&self, n: u64) {
        self.inner.timed_out.inc_by(n);
    }

    /// The oldest processing generation is `age` old (zero: none).
    pub fn set_oldest_processing(&self, age: Duration) {
        self.inner.oldest_processing.set(age.as_secs_f64());
    }

    /// Every series in the text exposition format.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.inner.registry.gather(), &mut out) {
            tracing::warn!(error = %e, "could not encode metrics");
        }
        String::from_utf8(out).unwrap_or_default()
    }

    fn authorized(&self, req: &HttpRequest) -> bool {
        let Some(token) = &self.inner.token else {
            return true;
        };
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        constant_time_eq(given.as_bytes(), token.expose_secret().as_bytes())
    }
}

/// Makes `metrics` the app's registry (the request middleware of
/// [`crate::http`] records into it) and, when `serve`, adds `GET /metrics`.
pub fn configure(cfg: &mut web::ServiceConfig, metrics: &Metrics, serve: bool) {
    cfg.app_data(web::Data::new(metrics.clone()));
    if serve {
        cfg.route("/metrics", web::get().to(handler));
    }
}

/// `GET /metrics`: needs the service's `web::Data<Metrics>`.
pub async fn handler(req: HttpRequest, metrics: web::Data<Metrics>) -> HttpResponse {
    if !metrics.authorized(&req) {
        return crate::http::ApiError::unauthorized(
            "invalid_metrics_token",
            "send the metrics token as Authorization: Bearer <token>",
        )
        .error_response();
    }
    HttpResponse::Ok()
        .content_type(prometheus::TEXT_FORMAT)
        .body(metrics.render())
}

/// Status codes as labels without allocating.
fn status_label(status: u16) -> &'static str {
    match status {
        200 => "200",
        201 => "201",
        202 => "202",
        204 => "204",
        301 => "301",
        302 => "302",
        304 => "304",
        307 => "307",
        400 => "400",
        401 => "401",
        402 => "402",
        403 => "403",
        404 => "404",
        405 => "405",
        409 => "409",
        410 => "410",
        413 => "413",
        415 => "415",
        422 => "422",
        429 => "429",
        500 => "500",
        502 => "502",
        503 => "503",
        504 => "504",
        s if s < 200 => "1xx",
        s if s < 300 => "2xx",
        s if s < 400 => "3xx",
        s if s < 500 => "4xx",
        _ => "5xx",
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Registers a family built from constant, valid options. The only failures
/// (a bad name, a name registered twice) are programming errors that every
/// test would hit, so they are reported loudly and the series left unexposed.
fn register<M: prometheus::core::Collector + Clone + 'static>(
    registry: &Registry,
    metric: prometheus::Result<M>,
) -> M {
    match metric {
        Ok(m) => {
            if let Err(e) = registry.register(Box::new(m.clone())) {
                tracing::error!(error = %e, "could not register a metric");
            }
            m
        }
        Err(e) => panic!("invalid metric definition: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_recorded_series_in_the_text_format() {
        let m = Metrics::default();
        m.observe_http("POST", "/v1/generations", 202, Duration::from_millis(3));
        m.message_consumed("synth.jobs", "ack");
        m.key_cache(true);
        let text = m.render();
        assert!(text.contains(
            "voiceprod_http_request_duration_seconds_count{method=\"POST\",route=\"/v1/generations\",status=\"202\"} 1"
        ), "{text}");
        assert!(
            text.contains(
                "voiceprod_messages_consumed_total{outcome=\"ack\",queue=\"synth.jobs\"} 1"
            )
        );
        assert!(text.contains("voiceprod_key_cache_lookups_total{result=\"hit\"} 1"));
        assert!(!text.contains("voiceprod_synthesis_seconds_count"));
    }

    #[test]
    fn statuses_are_bounded_labels() {
        assert_eq!(status_label(202), "202");
        assert_eq!(status_label(418), "4xx");
        assert_eq!(status_label(599), "5xx");
    }
}
