//! `/v1/webhooks` bodies and queries, validated once: an http(s) URL without
//! credentials, a non-empty set of subscribable events, a description of at
//! most 500 characters; `PATCH` takes any of these and `enabled`, where a
//! `null` description clears it. Whether the URL's target is allowed (SSRF)
//! needs DNS and is checked by the handler, after this.

use serde::{Deserialize, Deserializer};

use shared::http::ApiError;
use shared::ids::{DeliveryId, WebhookId};
use shared::messages::EventType;
use shared::models::webhook_delivery::DELIVERY_STATUSES;

use crate::pagination::Page;

pub const MAX_URL_LENGTH: usize = 2048;
pub const MAX_DESCRIPTION_CHARS: usize = 500;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = json!({"url": "https://example.com/webhooks/voiceprod", "events": ["generation.completed"]}))]
pub struct CreateWebhook {
    /// An http(s) URL without credentials, at most 2048 characters.
    pub url: String,
    /// `generation.completed`, `generation.failed`, `voice.ready`; at least one.
    #[schema(value_type = Vec<EventType>)]
    pub events: Vec<String>,
    /// At most 500 characters.
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Debug)]
pub struct ValidWebhook {
    pub url: url::Url,
    pub events: Vec<String>,
    pub description: Option<String>,
}

impl CreateWebhook {
    pub fn validate(self) -> Result<ValidWebhook, ApiError> {
        Ok(ValidWebhook {
            url: valid_url(&self.url)?,
            events: valid_events(self.events)?,
            description: valid_description(self.description)?,
        })
    }
}

/// `PATCH /v1/webhooks/{id}`: absent fields are left alone.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateWebhook {
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<Vec<EventType>>)]
    pub events: Option<Vec<String>>,
    /// `Some(None)`: `"description": null`, which clears it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
    #[serde(default)]
    pub enabled: Option<bool>,
}

#[derive(Debug, Default)]
pub struct ValidUpdate {
    pub url: Option<url::Url>,
    pub events: Option<Vec<String>>,
    pub description: Option<Option<String>>,
    pub enabled: Option<bool>,
}

impl UpdateWebhook {
    pub fn validate(self) -> Result<ValidUpdate, ApiError> {
        Ok(ValidUpdate {
            url: self.url.as_deref().map(valid_url).transpose()?,
            events: self.events.map(valid_events).transpose()?,
            description: self.description.map(valid_description).transpose()?,
            enabled: self.enabled,
        })
    }
}

/// A field that is present, even as `null`, is `Some`.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

fn valid_url(raw: &str) -> Result<url::Url, ApiError> {
    let bad_url = |m: String| ApiError::bad_request("invalid_url", m).with_param("url");
    if raw.len() > MAX_URL_LENGTH {
        return Err(bad_url(format!(
            "url is longer than {MAX_URL_LENGTH} characters"
        )));
    }
    let url = url::Url::parse(raw).map_err(|e| bad_url(format!("url is not a valid URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(bad_url(
            "url must be an http or https URL with a host".to_owned(),
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad_url("url must not carry credentials".to_owned()));
    }
    Ok(url)
}

fn valid_events(raw: Vec<String>) -> Result<Vec<String>, ApiError> {
    let bad = |m: String| ApiError::bad_request("invalid_events", m).with_param("events");
    if raw.is_empty() {
        return Err(bad("events must name at least one event".to_owned()));
    }
    let mut events: Vec<String> = Vec::new();
    for e in raw {
        match EventType::parse(&e) {
            // webhook.test goes to one endpoint on request, never by subscription.
            Some(EventType::WebhookTest) | None => {
                return Err(bad(format!(
                    "unknown event {e:?}; use generation.completed, generation.failed or voice.ready"
                )));
            }
            Some(t) if !events.iter().any(|known| known == t.as_str()) => {
                events.push(t.as_str().to_owned())
            }
            Some(_) => {}
        }
    }
    Ok(events)
}

fn valid_description(raw: Option<String>) -> Result<Option<String>, ApiError> {
    let description = raw.map(|d| d.trim().to_owned()).filter(|d| !d.is_empty());
    if description
        .as_ref()
        .is_some_and(|d| d.chars().count() > MAX_DESCRIPTION_CHARS)
    {
        return Err(ApiError::bad_request(
            "invalid_description",
            format!("description is longer than {MAX_DESCRIPTION_CHARS} characters"),
        )
        .with_param("description"));
    }
    if description
        .as_ref()
        .is_some_and(|d| d.chars().any(|c| c.is_control() && c != '\n' && c != '\t'))
    {
        return Err(ApiError::bad_request(
            "invalid_description",
            "description holds a control character (NUL, escape, …)",
        )
        .with_param("description"));
    }
    Ok(description)
}

/// `?limit=&cursor=` of `GET /v1/webhooks`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EndpointPageQuery {
    /// Items per page, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    /// The `nextCursor` of the previous page.
    pub cursor: Option<String>,
}

/// `?status=&limit=&cursor=` of `GET /v1/webhooks/{id}/deliveries`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeliveryPageQuery {
    /// Only deliveries with this status: `pending`, `succeeded`, `failed`.
    pub status: Option<String>,
    /// Items per page, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    /// The `nextCursor` of the previous page.
    pub cursor: Option<String>,
}

impl EndpointPageQuery {
    pub fn validate(self) -> Result<Page<WebhookId>, ApiError> {
        Page::parse(self.limit, self.cursor, WebhookId::parse)
    }
}

impl DeliveryPageQuery {
    /// The page, and the status to filter on.
    pub fn validate(self) -> Result<(Page<DeliveryId>, Option<&'static str>), ApiError> {
        let status = match self.status {
            None => None,
            Some(s) => Some(
                DELIVERY_STATUSES
                    .into_iter()
                    .find(|known| *known == s)
                    .ok_or_else(|| {
                        ApiError::bad_request(
                            "invalid_parameter",
                            format!("status must be pending, succeeded or failed, not {s:?}"),
                        )
                        .with_param("status")
                    })?,
            ),
        };
        let page = Page::parse(self.limit, self.cursor, DeliveryId::parse)?;
        Ok((page, status))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patch_tells_null_from_absent() {
        let absent: UpdateWebhook = serde_json::from_str("{}").unwrap();
        assert_eq!(absent.description, None);
        let null: UpdateWebhook = serde_json::from_str(r#"{"description": null}"#).unwrap();
        assert_eq!(null.description, Some(None));
        let set: UpdateWebhook = serde_json::from_str(r#"{"description": "x"}"#).unwrap();
        assert_eq!(set.description, Some(Some("x".to_owned())));
    }

    #[test]
    fn pages_are_bounded() {
        let q = |limit| EndpointPageQuery {
            limit,
            cursor: None,
        };
        assert_eq!(q(None).validate().unwrap().limit, 20);
        assert_eq!(q(Some(100)).validate().unwrap().limit, 100);
        assert!(q(Some(0)).validate().is_err());
        assert!(q(Some(101)).validate().is_err());
    }
}
