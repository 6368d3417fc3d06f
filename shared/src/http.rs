//! The error envelope of docs/api.md and the HTTP plumbing every service shares:
//! request ids, access logs, and extractor errors turned into the envelope.
//!
//! A 500 says nothing internal: its body carries the request id, and the
//! full cause chain is logged once, here, at the edge.

use std::borrow::Cow;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{HttpRequest, HttpResponse, ResponseError, error, web};
use serde::{Deserialize, Serialize};
use tracing::Instrument;

use crate::metrics::Metrics;

pub const REQUEST_ID_HEADER: &str = "x-request-id";

tokio::task_local! {
    static REQUEST_ID: String;
}

/// The request id of the request being served, if any.
pub fn current_request_id() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

/// The body of every error answer: `{"error": {...}}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct ErrorEnvelope {
    pub error: ErrorBody,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErrorBody {
    /// The class of error, from the status: `invalid_request`,
    /// `authentication_error`, `insufficient_credits`, `permission_error`,
    /// `rate_limit_error`, `service_unavailable`, `api_error`.
    #[serde(rename = "type")]
    #[schema(example = "invalid_request")]
    pub kind: String,
    /// Stable, snake_case: what a program matches on.
    #[schema(example = "text_too_long")]
    pub code: String,
    /// For people; may change.
    #[schema(example = "text has 120001 characters; the limit is 100000")]
    pub message: String,
    /// The request field or parameter at fault, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "text")]
    pub param: Option<String>,
    /// The `X-Request-Id` of the request; quote it when reporting a fault.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// An error answer: status, stable snake_case code, a message for people.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: Cow<'static, str>,
    pub message: String,
    pub param: Option<String>,
    pub retry_after_secs: Option<u64>,
    /// The cause of a 500 or 503, logged, never shown.
    pub source: Option<anyhow::Error>,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

impl ApiError {
    pub fn new(
        status: StatusCode,
        code: impl Into<Cow<'static, str>>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            status,
            code: code.into(),
            message: message.into(),
            param: None,
            retry_after_secs: None,
            source: None,
        }
    }

    pub fn with_param(mut self, param: impl Into<String>) -> Self {
        self.param = Some(param.into());
        self
    }

    pub fn bad_request(code: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn unprocessable(code: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }

    pub fn unauthorized(code: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, code, message)
    }

    pub fn forbidden(code: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, code, message)
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no such {what}"),
        )
    }

    /// A dependency is down: 503 with `Retry-After`; the cause is logged.
    pub fn unavailable(
        code: impl Into<Cow<'static, str>>,
        message: impl Into<String>,
        cause: impl Into<anyhow::Error>,
    ) -> Self {
        let mut e = Self::new(StatusCode::SERVICE_UNAVAILABLE, code, message);
        e.retry_after_secs = Some(1);
        e.source = Some(cause.into());
        e
    }

    /// An unexpected fault: 500 whose body says nothing internal.
    pub fn internal(cause: impl Into<anyhow::Error>) -> Self {
        let mut e = Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "an unexpected error occurred; quote the request id when you report it",
        );
        e.source = Some(cause.into());
        e
    }

    /// The `type` of the envelope, from the status.
    fn kind(&self) -> &'static str {
        match self.status.as_u16() {
            400 | 404 | 405 | 409 | 413 | 415 | 422 => "invalid_request",
            401 => "authentication_error",
            402 => "insufficient_credits",
            403 => "permission_error",
            429 => "rate_limit_error",
            503 => "service_unavailable",
            _ => "api_error",
        }
    }

    pub fn envelope(&self) -> ErrorEnvelope {
        ErrorEnvelope {
            error: ErrorBody {
                kind: self.kind().to_owned(),
                code: self.code.to_string(),
                message: self.message.clone(),
                param: self.param.clone(),
                request_id: current_request_id(),
            },
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        if let Some(cause) = &self.source
            && self.status.is_server_error()
        {
            if self.status == StatusCode::SERVICE_UNAVAILABLE {
                // A dependency is down: expected, answered, retried by the
                // client; one line with the causes, no backtrace (an outage
                // answers hundreds of these a second).
                tracing::warn!(error.cause_chain = %format!("{cause:#}"), status = self.status.as_u16(), code = %self.code, "request refused: dependency unavailable");
            } else {
                tracing::error!(error.cause_chain = ?cause, status = self.status.as_u16(), code = %self.code, "request failed");
            }
        }
        let mut response = HttpResponse::build(self.status);
        if let Some(secs) = self.retry_after_secs {
            response.insert_header((header::RETRY_AFTER, secs.to_string()));
        }
        response.json(self.envelope())
    }
}

/// Gives every request an id (the caller's `X-Request-Id` when it is sane),
/// echoes it on the response, continues the caller's W3C `traceparent` (or
/// starts a trace), logs one line per request in a span carrying
/// `request_id`, `trace_id` and `span_id`, and, when the app has a
/// `web::Data<Metrics>`, records the latency by route pattern and status.
pub async fn request_id_middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let request_id = req
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 128
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .map(str::to_owned)
        .unwrap_or_else(|| format!("req_{}", uuid::Uuid::now_v7().simple()));
    let trace = crate::trace::continue_from(
        req.headers()
            .get(crate::trace::TRACEPARENT)
            .and_then(|v| v.to_str().ok()),
    );
    let metrics = req.app_data::<web::Data<Metrics>>().cloned();
    // The pattern (`/v1/generations/{id}`), never the raw path: bounded labels.
    let route = req
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = req.method().clone();
    let span = tracing::info_span!("http", request_id = %request_id, trace_id = %trace.trace_id(), span_id = %trace.span_id(), method = %method, path = %req.path());
    let started = std::time::Instant::now();
    let result = trace
        .scope(REQUEST_ID.scope(request_id.clone(), next.call(req)))
        .instrument(span.clone())
        .await;
    let mut response = result?;
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response
            .headers_mut()
            .insert(HeaderName::from_static(REQUEST_ID_HEADER), value);
    }
    let status = response.status().as_u16();
    let elapsed = started.elapsed();
    if let Some(metrics) = metrics {
        metrics.observe_http(method.as_str(), &route, status, elapsed);
    }
    span.in_scope(|| tracing::info!(status, elapsed_ms = elapsed.as_millis() as u64, "served"));
    Ok(response)
}

/// JSON bodies: size limit and extractor errors in the envelope
/// (400 malformed or wrong types, 413 too large, 415 not JSON).
pub fn json_config(limit: usize) -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(limit)
        .error_handler(|err, _req| {
            let api = match &err {
                error::JsonPayloadError::OverflowKnownLength { length, limit } => ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "body_too_large",
                    format!("the body has {length} bytes; the limit is {limit}"),
                ),
                error::JsonPayloadError::Overflow { limit } => ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "body_too_large",
                    format!("the body is over the limit of {limit} bytes"),
                ),
                error::JsonPayloadError::ContentType => ApiError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported_content_type",
                    "send the body as application/json",
                ),
                error::JsonPayloadError::Deserialize(e) if e.is_data() => ApiError::bad_request(
                    "invalid_parameter",
                    format!("the body does not fit the schema: {e}"),
                ),
                error::JsonPayloadError::Deserialize(e) => ApiError::bad_request(
                    "malformed_json",
                    format!("the body is not valid JSON: {e}"),
                ),
                other => ApiError::bad_request(
                    "malformed_body",
                    format!("the body could not be read: {other}"),
                ),
            };
            api.into()
        })
}

/// Query strings: wrong parameters are a 400 in the envelope.
pub fn query_config() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(|err, _req| {
        ApiError::bad_request(
            "invalid_parameter",
            format!("the query string is invalid: {err}"),
        )
        .into()
    })
}

/// Path segments that do not parse: 404, as for a missing object.
pub fn path_config() -> web::PathConfig {
    web::PathConfig::default().error_handler(|_err, _req| ApiError::not_found("resource").into())
}

/// Unknown routes: 404 (or 405 for a known path with another method) in the envelope.
pub async fn default_service(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::new(
        StatusCode::NOT_FOUND,
        "route_not_found",
        format!("no route {} {}", req.method(), req.path()),
    ))
}

/// The body of `GET /healthz` and `GET /readyz`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct Health {
    /// `ok` (alive), `ready`, or `unavailable` with what is `failing`.
    #[schema(example = "ready")]
    pub status: String,
    /// The dependencies that do not answer (only when unavailable).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failing: Vec<String>,
}

impl Health {
    fn new(status: &str, failing: &[&str]) -> Self {
        Self {
            status: status.to_owned(),
            failing: failing.iter().map(|f| (*f).to_owned()).collect(),
        }
    }
}

/// The `GET /healthz` answer: the process is alive.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    responses((status = 200, description = "The process is alive", body = Health))
)]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(Health::new("ok", &[]))
}

/// Registers `GET /healthz` ([`healthz`]) and `GET /readyz` (`readyz`, the
/// service's own check, which answers with [`readiness_with`]). The gateway
/// registers the same two through its route table (`gateway::routes`).
pub fn probes<F, Args>(cfg: &mut web::ServiceConfig, readyz: F)
where
    F: actix_web::Handler<Args>,
    Args: actix_web::FromRequest + 'static,
    F::Output: actix_web::Responder + 'static,
{
    cfg.route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz));
}

/// The `GET /readyz` answer of every service: 200 when every dependency
/// given answers and `failing` (the service's own parts already known to be
/// down) is empty, else 503 with `Retry-After` naming what fails.
pub async fn readiness_with(
    db: Option<&crate::db::Db>,
    broker: Option<&crate::amqp::Broker>,
    mut failing: Vec<&'static str>,
) -> HttpResponse {
    if let Some(db) = db
        && let Err(e) = db.ping().await
    {
        tracing::warn!(error = %e, "readiness: database unreachable");
        failing.push("database");
    }
    if let Some(broker) = broker
        && broker
            .connected_within(std::time::Duration::from_secs(1))
            .await
            .is_err()
    {
        failing.push("broker");
    }
    if failing.is_empty() {
        HttpResponse::Ok().json(Health::new("ready", &[]))
    } else {
        HttpResponse::ServiceUnavailable()
            .insert_header((header::RETRY_AFTER, "1"))
            .json(Health::new("unavailable", &failing))
    }
}
