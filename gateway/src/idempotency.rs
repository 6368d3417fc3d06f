//! `Idempotency-Key` on `POST /v1/generations`, `/v1/keys` and
//! `/v1/webhooks` (a middleware, so the handlers stay plain).
//!
//! The key is scoped to the workspace and kept 24 h with a hash of the
//! request (method, path, the JSON body in canonical form) and the API key
//! that sent it. The request is authenticated and must hold the route's
//! scope before anything is looked up, so a key that may not make the
//! request never sees a stored answer. The first request claims the key
//! (`shared::models::idempotency`, a primary key decides races) and runs; a
//! 2xx response is stored and returned again, with `Idempotent-Replayed:
//! true`, to every later request of the same API key with the same body — a
//! request racing the first one waits for it. Another body with the same
//! key, or the same key from another API key of the workspace, is 409
//! `idempotency_key_reused`. A non-2xx response releases the claim, so a
//! request refused for want of credits can be retried with its key.
//!
//! Secrets are shown once and never stored: the `secret` of a created API
//! key or webhook endpoint is removed from the answer before it is stored
//! (`Claim::settle`, which every stored answer goes through), so a replay
//! answers the object without its `secret`; rotate it for a new one.
//!
//! A handler whose effect is a database transaction settles the claim inside
//! it (`Claim::settle`, see `POST /v1/generations`), so the charge and the
//! stored response commit together and a generation is charged once even if
//! the gateway dies between the two.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{FromRequest, HttpMessage, HttpRequest, HttpResponse, web};
use diesel::PgConnection;
use futures_util::future::{Ready, ready};
use uuid::Uuid;

use shared::db::DbError;
use shared::http::ApiError;
use shared::models::idempotency::{self, ClaimOutcome};

use crate::auth::Principal;
use crate::state::State;

pub const HEADER: &str = "idempotency-key";
/// Answer header of a stored response returned again.
pub const REPLAYED: &str = "idempotent-replayed";
/// A route that takes the header (all `POST`).
struct Route {
    path: &'static str,
    /// The scope its handler requires, checked before any replay.
    scope: &'static str,
    /// The field of its answer holding a secret, never stored.
    secret: Option<&'static str>,
}

static ROUTES: [Route; 3] = [
    Route {
        path: "/v1/generations",
        scope: "generations:write",
        secret: None,
    },
    Route {
        path: "/v1/keys",
        scope: "keys:manage",
        secret: Some("secret"),
    },
    Route {
        path: "/v1/webhooks",
        scope: "webhooks:manage",
        secret: Some("secret"),
    },
];
/// Response headers stored and replayed with the body.
const KEPT_HEADERS: [&str; 3] = ["content-type", "location", "x-credits-charged"];
/// How long a request waits for a racing first request with its key.
const WAIT_FOR_FIRST: Duration = Duration::from_secs(15);
const POLL: Duration = Duration::from_millis(25);

/// The claim this request holds on its `Idempotency-Key`.
#[derive(Clone)]
pub struct Claim {
    workspace_id: Uuid,
    key: String,
    owner: Uuid,
    /// The answer's field holding a secret, stripped before it is stored.
    secret: Option<&'static str>,
    settled: Arc<AtomicBool>,
}

impl Claim {
    /// Stores the response (without its secret, see the module docs) in
    /// the caller's transaction; `false` if this request no longer holds
    /// the claim (the caller must roll back).
    pub fn settle(
        &self,
        conn: &mut PgConnection,
        status: StatusCode,
        headers: &[(&str, String)],
        body: &[u8],
    ) -> diesel::QueryResult<bool> {
        let headers: serde_json::Map<String, serde_json::Value> = headers
            .iter()
            .map(|(k, v)| ((*k).to_owned(), serde_json::Value::String(v.clone())))
            .collect();
        let body = match self.secret {
            Some(field) => without_secret(body, field),
            None => body.to_vec(),
        };
        idempotency::settle(
            conn,
            self.workspace_id,
            &self.key,
            self.owner,
            status.as_u16() as i16,
            serde_json::Value::Object(headers),
            &body,
        )
    }

    /// Locks the claim in the caller's transaction; `false` if this
    /// request no longer holds it (`idempotency::hold`).
    pub fn hold(&self, conn: &mut PgConnection) -> diesel::QueryResult<bool> {
        idempotency::hold(conn, self.workspace_id, &self.key, self.owner)
    }

    /// The order in which a transaction locks several claims.
    pub fn lock_order(&self) -> (Uuid, &str) {
        (self.workspace_id, &self.key)
    }

    /// The caller's transaction with `settle` committed.
    pub fn mark_settled(&self) {
        self.settled.store(true, Ordering::SeqCst);
    }
}

/// The request's claim, if it sent an `Idempotency-Key`.
pub struct Idempotency(pub Option<Claim>);

impl FromRequest for Idempotency {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(Ok(Idempotency(req.extensions().get::<Claim>().cloned())))
    }
}

fn bad_key() -> ApiError {
    ApiError::bad_request(
        "invalid_idempotency_key",
        "Idempotency-Key must be 1 to 255 visible ASCII characters",
    )
    .with_param("Idempotency-Key")
}

/// The JSON `body` with every member named `field` removed, at any depth.
/// A body that is not JSON is not stored at all (empty): it might be a
/// secret in another shape.
fn without_secret(body: &[u8], field: &str) -> Vec<u8> {
    fn strip(value: &mut serde_json::Value, field: &str) {
        match value {
            serde_json::Value::Object(map) => {
                map.remove(field);
                map.values_mut().for_each(|v| strip(v, field));
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(|v| strip(v, field)),
            _ => {}
        }
    }
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(mut value) => {
            strip(&mut value, field);
            serde_json::to_vec(&value).unwrap_or_default()
        }
        Err(_) => {
            tracing::warn!("an answer carrying a secret is not JSON; storing it empty");
            Vec::new()
        }
    }
}

fn reused(message: &'static str) -> ApiError {
    ApiError::new(StatusCode::CONFLICT, "idempotency_key_reused", message)
        .with_param("Idempotency-Key")
}

/// SHA-256 of method, path and the body (canonical JSON when it is JSON).
fn request_hash(method: &str, path: &str, body: &[u8]) -> [u8; 32] {
    let canonical = match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(v) => v.to_string(),
        Err(_) => String::from_utf8_lossy(body).into_owned(),
    };
    shared::api_key::hash(&format!("{method} {path}\n{canonical}"))
}

fn replay(record: idempotency::IdempotencyRecord) -> HttpResponse {
    let status = u16::try_from(record.response_status.unwrap_or(200))
        .ok()
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::OK);
    let mut response = HttpResponse::build(status);
    if let Some(serde_json::Value::Object(headers)) = record.response_headers {
        for (k, v) in headers {
            if let (Ok(name), Some(Ok(value))) = (
                HeaderName::try_from(k.as_str()),
                v.as_str().map(HeaderValue::from_str),
            ) {
                response.insert_header((name, value));
            }
        }
    }
    response.insert_header((REPLAYED, "true"));
    response.body(record.response_body.unwrap_or_default())
}

fn payload_of(bytes: web::Bytes) -> Payload {
    let stream: std::pin::Pin<
        Box<dyn futures_util::Stream<Item = Result<web::Bytes, actix_web::error::PayloadError>>>,
    > = Box::pin(futures_util::stream::once(async move { Ok(bytes) }));
    Payload::from(stream)
}

/// See the module docs; every other request passes straight through.
pub async fn middleware(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let route = ROUTES.iter().find(|r| {
        r.path == req.path()
            && req.method() == actix_web::http::Method::POST
            && req.headers().contains_key(HEADER)
    });
    let Some(route) = route else {
        return Ok(next.call(req).await?.map_into_boxed_body());
    };
    let key = match req.headers().get(HEADER).and_then(|v| v.to_str().ok()) {
        Some(k) if !k.is_empty() && k.len() <= 255 && k.bytes().all(|b| b.is_ascii_graphic()) => {
            k.to_owned()
        }
        _ => return Ok(req.error_response(bad_key())),
    };
    // Who asks, and whether they may make this request at all, comes
    // before any stored answer is looked at (issue 15).
    let principal = match req.extract::<Principal>().await {
        Ok(p) => p,
        Err(e) => return Ok(req.error_response(e)),
    };
    if let Err(e) = principal.require(route.scope) {
        return Ok(req.error_response(e));
    }
    let body = match req.extract::<web::Bytes>().await {
        Ok(b) => b,
        Err(e) => return Ok(req.error_response(e)),
    };
    let path = route.path;
    let hash = request_hash(req.method().as_str(), path, &body);
    req.set_payload(payload_of(body));
    let Some(state) = req.app_data::<web::Data<State>>().cloned() else {
        return Ok(req.error_response(ApiError::internal(anyhow::anyhow!("state missing"))));
    };
    let workspace = principal.workspace_id.0;
    let api_key = principal.key_id.0;
    let owner = Uuid::now_v7();
    let deadline = tokio::time::Instant::now() + WAIT_FOR_FIRST;
    loop {
        let k = key.clone();
        let outcome = state
            .db
            .run(move |conn| {
                idempotency::claim(conn, workspace, &k, path, &hash, owner, api_key)
                    .map_err(DbError::from)
            })
            .await;
        match outcome {
            Err(e) => return Ok(req.error_response(ApiError::from(e))),
            Ok(ClaimOutcome::Owned) => break,
            Ok(ClaimOutcome::Replay(record)) => {
                let (http, _) = req.into_parts();
                return Ok(ServiceResponse::new(http, replay(*record)));
            }
            Ok(ClaimOutcome::Mismatch) => {
                return Ok(req.error_response(reused(
                    "this Idempotency-Key was used with a different request in the last 24 hours",
                )));
            }
            Ok(ClaimOutcome::OtherKey) => {
                return Ok(req.error_response(reused(
                    "this Idempotency-Key was used by another API key in the last 24 hours; \
                     a stored answer is only returned to the key that made the request",
                )));
            }
            Ok(ClaimOutcome::InProgress) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(POLL).await;
            }
            Ok(ClaimOutcome::InProgress) => {
                return Ok(req.error_response(ApiError::new(
                    StatusCode::CONFLICT,
                    "idempotency_request_in_progress",
                    "a request with this Idempotency-Key is still being processed; retry shortly",
                )));
            }
        }
    }
    let claim = Claim {
        workspace_id: workspace,
        key: key.clone(),
        owner,
        secret: route.secret,
        settled: Arc::new(AtomicBool::new(false)),
    };
    req.extensions_mut().insert(claim.clone());
    let response = next.call(req).await?;
    if claim.settled.load(Ordering::SeqCst) {
        return Ok(response.map_into_boxed_body());
    }
    let status = response.status();
    if !status.is_success() {
        let released = state
            .db
            .run(move |conn| {
                idempotency::release(conn, workspace, &key, owner).map_err(DbError::from)
            })
            .await;
        if let Err(e) = released {
            // The claim is taken over once it is a minute old.
            tracing::warn!(error = %e, "could not release an idempotency claim");
        }
        return Ok(response.map_into_boxed_body());
    }
    let (http, res) = response.into_parts();
    let (head, body) = res.into_parts();
    let bytes = match actix_web::body::to_bytes(body).await {
        Ok(b) => b,
        Err(_) => {
            return Ok(ServiceResponse::new(
                http,
                actix_web::ResponseError::error_response(&ApiError::internal(anyhow::anyhow!(
                    "response body unreadable"
                ))),
            ));
        }
    };
    let headers: Vec<(&str, String)> = KEPT_HEADERS
        .iter()
        .filter_map(|h| {
            head.headers()
                .get(*h)
                .and_then(|v| v.to_str().ok())
                .map(|v| (*h, v.to_owned()))
        })
        .collect();
    let stored = bytes.clone();
    let settled = state
        .db
        .run(move |conn| {
            claim
                .settle(conn, status, &headers, &stored)
                .map_err(DbError::from)
        })
        .await;
    if let Err(e) = settled {
        tracing::warn!(error = %e, "could not store an idempotent response");
    }
    Ok(ServiceResponse::new(
        http,
        head.set_body(bytes).map_into_boxed_body(),
    ))
}
