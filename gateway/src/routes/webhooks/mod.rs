//! `/v1/webhooks` (docs/api.md "Webhooks"), scope `webhooks:manage`: endpoints
//! (create with the `whsec_` secret shown once, list, get, patch, delete),
//! secret rotation with a 24 h overlap, the `webhook.test` event, and the
//! delivery log with manual retry.
//!
//! Invariants: every query is scoped by the caller's workspace, so another
//! workspace's endpoint or delivery is a 404 exactly like a missing one;
//! every input is validated (and the target checked against the SSRF policy
//! of `webhooks.allowed_target_cidrs`) before anything is written.

pub(crate) mod deliveries;
pub(crate) mod endpoints;
pub(crate) mod views;

use std::time::Duration;

use shared::http::ApiError;
use shared::ids::WebhookId;
use shared::targets::TargetPolicy;

use crate::state::State;

/// How long the registration check waits for DNS before letting the
/// delivery-time check decide.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(2);

pub fn routes(r: &mut crate::routes::Routes) {
    r.post("/v1/webhooks", endpoints::create)
        .get("/v1/webhooks", endpoints::list)
        .get("/v1/webhooks/{id}", endpoints::get)
        .patch("/v1/webhooks/{id}", endpoints::update)
        .delete("/v1/webhooks/{id}", endpoints::delete)
        .post("/v1/webhooks/{id}/rotate-secret", endpoints::rotate_secret)
        .post("/v1/webhooks/{id}/test", endpoints::test)
        .get("/v1/webhooks/{id}/deliveries", deliveries::list)
        .post(
            "/v1/webhooks/{id}/deliveries/{deliveryId}/retry",
            deliveries::retry,
        );
}

/// The endpoint id of a path; anything else is "not found".
fn endpoint_id(raw: &str) -> Result<WebhookId, ApiError> {
    WebhookId::parse(raw).ok_or_else(not_found)
}

fn not_found() -> ApiError {
    ApiError::not_found("webhook endpoint")
}

/// 400 `url_not_allowed` when the URL is, or resolves to, an address the
/// operator does not allow (the dispatcher checks again at every delivery).
async fn check_target(state: &State, url: &url::Url) -> Result<(), ApiError> {
    let policy = TargetPolicy::from_settings(&state.settings.webhooks)
        .map_err(|e| ApiError::internal(anyhow::Error::new(e)))?;
    policy
        .check_url(url, RESOLVE_TIMEOUT)
        .await
        .map_err(|refused| {
            tracing::info!(host = %refused.host, ip = %refused.ip, kind = refused.kind, "webhook URL refused by policy");
            ApiError::bad_request("url_not_allowed", refused.to_string()).with_param("url")
        })
}
