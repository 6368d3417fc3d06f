//! The request a delivery sends: the body of docs/api.md "Webhooks"
//! (`{"event": "<type>", "data": {...}}`) and the Standard Webhooks headers
//! (<https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md>).
//!
//! Rendered at send time from the stored event, so every attempt carries a
//! fresh timestamp (receivers reject ones older than 5 minutes) and a fresh
//! `audioUrl`, while `webhook-id` stays the event's id on every retry so
//! receivers can deduplicate.

use chrono::{DateTime, Utc};
use secrecy::ExposeSecret;
use serde::Serialize;
use shared::messages::Event;
use shared::signing::{SigningError, audio_url, webhook_signature_header};

use crate::state::DeliveryConfig;

/// The body, field order as docs/api.md shows it.
#[derive(Serialize)]
struct Body<'a> {
    event: &'a str,
    data: &'a serde_json::Value,
}

/// One signed request, ready to send.
#[derive(Debug, Clone)]
pub struct SignedRequest {
    pub body: Vec<u8>,
    /// `webhook-id`: `msg_…`, the event's id.
    pub id: String,
    /// `webhook-timestamp`: unix seconds of this attempt.
    pub timestamp: i64,
    /// `webhook-signature`: `v1,<base64>` per live secret, space-separated.
    pub signature: String,
}

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("could not encode the webhook body")]
    Encode(#[from] serde_json::Error),
    #[error("could not sign the webhook")]
    Sign(#[from] SigningError),
}

/// The payload's `data`, with `audioUrl` minted now when the event has audio.
pub fn render_data(
    event: &Event,
    config: &DeliveryConfig,
    now: DateTime<Utc>,
) -> serde_json::Value {
    let mut data = event.data.clone();
    if let (Some(generation), Some(fields)) = (event.audio_of, data.as_object_mut()) {
        let expires =
            now.timestamp() + i64::try_from(config.audio_url_ttl_secs).unwrap_or(i64::MAX / 2);
        let url = audio_url(
            &config.public_base_url,
            config.audio_url_key.expose_secret().as_bytes(),
            &generation.to_string(),
            expires,
        );
        fields.insert("audioUrl".to_owned(), serde_json::Value::String(url));
    }
    data
}

/// Renders and signs `event` with every secret in `secrets`.
pub fn sign<'a>(
    event: &Event,
    secrets: impl IntoIterator<Item = &'a str>,
    config: &DeliveryConfig,
    now: DateTime<Utc>,
) -> Result<SignedRequest, RenderError> {
    let data = render_data(event, config, now);
    let body = serde_json::to_vec(&Body {
        event: event.event.as_str(),
        data: &data,
    })?;
    let id = event.id.to_string();
    let timestamp = now.timestamp();
    // The signature covers these exact bytes; they are sent unchanged.
    let signature = webhook_signature_header(secrets, &id, timestamp, &body)?;
    Ok(SignedRequest {
        body,
        id,
        timestamp,
        signature,
    })
}
