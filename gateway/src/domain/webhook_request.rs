//! `POST /v1/webhooks` bodies: an http(s) URL and a non-empty set of known
//! events.

use serde::Deserialize;

use shared::http::ApiError;
use shared::messages::EventType;

pub const MAX_URL_LENGTH: usize = 2048;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateWebhook {
    pub url: String,
    pub events: Vec<String>,
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
        let bad_url = |m: String| ApiError::bad_request("invalid_url", m).with_param("url");
        if self.url.len() > MAX_URL_LENGTH {
            return Err(bad_url(format!(
                "url is longer than {MAX_URL_LENGTH} characters"
            )));
        }
        let url = url::Url::parse(&self.url)
            .map_err(|e| bad_url(format!("url is not a valid URL: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            return Err(bad_url(
                "url must be an http or https URL with a host".to_owned(),
            ));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(bad_url("url must not carry credentials".to_owned()));
        }
        if self.events.is_empty() {
            return Err(ApiError::bad_request(
                "invalid_events",
                "events must name at least one event",
            )
            .with_param("events"));
        }
        let mut events = Vec::new();
        for e in self.events {
            match EventType::parse(&e) {
                Some(EventType::WebhookTest) | None => {
                    return Err(ApiError::bad_request(
                        "invalid_events",
                        format!("unknown event {e:?}; use generation.completed, generation.failed or voice.ready"),
                    )
                    .with_param("events"));
                }
                Some(t) if !events.contains(&t.as_str().to_owned()) => {
                    events.push(t.as_str().to_owned())
                }
                Some(_) => {}
            }
        }
        let description = self
            .description
            .map(|d| d.trim().to_owned())
            .filter(|d| !d.is_empty());
        if description
            .as_ref()
            .is_some_and(|d| d.chars().count() > 500)
        {
            return Err(ApiError::bad_request(
                "invalid_description",
                "description is longer than 500 characters",
            )
            .with_param("description"));
        }
        Ok(ValidWebhook {
            url,
            events,
            description,
        })
    }
}
