//! One HTTP attempt: POST the signed request, read at most
//! [`MAX_LOGGED_BODY`] of the answer, time it. Never fails: whatever happens
//! (timeout, refused target, connection error) becomes an [`Attempt`] the
//! caller turns into a verdict.

use std::time::{Duration, Instant};

use reqwest::header::{CONTENT_TYPE, RETRY_AFTER};

use super::payload::SignedRequest;
use crate::target::TargetPolicy;

/// How much of a receiver's answer the delivery log keeps.
pub const MAX_LOGGED_BODY: usize = 1024;

/// What one attempt saw.
#[derive(Debug, Clone, Default)]
pub struct Attempt {
    pub status: Option<u16>,
    pub retry_after: Option<String>,
    pub error: Option<String>,
    pub body: Option<String>,
    pub duration: Duration,
}

impl Attempt {
    pub fn is_success(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }
}

/// Sends `request` to `url`.
pub async fn send(
    client: &reqwest::Client,
    url: &str,
    request: &SignedRequest,
    targets: &TargetPolicy,
) -> Attempt {
    let started = Instant::now();
    let failed = |error: String| Attempt {
        error: Some(error),
        duration: started.elapsed(),
        ..Attempt::default()
    };
    let url = match reqwest::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => u,
        Ok(u) => return failed(format!("unsupported URL scheme {:?}", u.scheme())),
        Err(e) => return failed(format!("invalid endpoint URL: {e}")),
    };
    if let Err(refused) = targets.check_literal(&url) {
        return failed(refused.to_string());
    }
    let mut builder = client
        .post(url)
        .header(CONTENT_TYPE, "application/json")
        .header("webhook-id", &request.id)
        .header("webhook-timestamp", request.timestamp.to_string())
        .header("webhook-signature", &request.signature);
    // The generation's trace, continued (W3C Trace Context).
    if let Some(trace) = shared::trace::TraceContext::current() {
        builder = builder.header(shared::trace::TRACEPARENT, trace.to_string());
    }
    let response = builder.body(request.body.clone()).send().await;
    let mut response = match response {
        Ok(r) => r,
        Err(e) => return failed(describe(&e)),
    };
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    // Read only what the log keeps: a receiver may answer with anything.
    let mut body = Vec::new();
    let mut error = None;
    while body.len() < MAX_LOGGED_BODY {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            Ok(None) => break,
            Err(e) => {
                error = Some(describe(&e));
                break;
            }
        }
    }
    Attempt {
        status: Some(status),
        retry_after,
        error,
        body: Some(truncate(&body, MAX_LOGGED_BODY)),
        duration: started.elapsed(),
    }
}

/// The error with its causes, so "error sending request" says why
/// (timeout, connection refused, a refused target from the resolver).
fn describe(error: &reqwest::Error) -> String {
    let mut message = if error.is_timeout() {
        format!("timed out: {error}")
    } else {
        error.to_string()
    };
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

/// At most `max` bytes as text, cut on a character boundary.
fn truncate(bytes: &[u8], max: usize) -> String {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(max)]);
    let mut text = text.into_owned();
    // A cut through a multi-byte character shows as U+FFFD; drop it.
    if bytes.len() > max && text.ends_with('\u{FFFD}') {
        text.pop();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncates_on_character_boundaries() {
        assert_eq!(truncate(b"hello", 10), "hello");
        assert_eq!(truncate(b"hello", 3), "hel");
        assert_eq!(truncate("héllo".as_bytes(), 2), "h");
        assert!(truncate(&[b'a'; 5000], MAX_LOGGED_BODY).len() == MAX_LOGGED_BODY);
    }
}
