//! Trace context across services: the W3C `traceparent`
//! (<https://www.w3.org/TR/trace-context/#traceparent-header>) that makes one
//! generation one trace, from the `POST /v1/generations` to the webhook.
//!
//! The context of the work being done lives in a task-local, set by the HTTP
//! middleware (from the caller's `traceparent`, or a new trace) and by the
//! consumer loop (from the message's `traceparent` header). Whatever runs in
//! that task picks it up: the publisher puts it on the messages it sends, the
//! gateway stores it on the generation (so the sweeper's re-publish keeps the
//! trace), the dispatcher keeps it with each delivery and sends it on the
//! webhook. Spans carry `trace_id` and `span_id`, so every log line of the
//! work says which trace it belongs to. No exporter: the ids are in the logs.

use std::fmt;

/// The AMQP header and HTTP header name.
pub const TRACEPARENT: &str = "traceparent";

/// One position in a trace: the trace, the current span, sampled or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceContext {
    trace_id: u128,
    span_id: u64,
    flags: u8,
}

tokio::task_local! {
    static CURRENT: TraceContext;
}

impl TraceContext {
    /// A new trace (sampled), with a new root span.
    pub fn new_root() -> Self {
        Self {
            trace_id: nonzero(rand::random()),
            span_id: nonzero(rand::random()),
            flags: 0x01,
        }
    }

    /// A new span in the same trace (the caller's span becomes its parent).
    pub fn child(&self) -> Self {
        Self {
            span_id: nonzero(rand::random()),
            ..*self
        }
    }

    /// Parses a `traceparent` value; `None` if it is not valid version 00
    /// (or a later version, read as 00 as the spec asks).
    pub fn parse(value: &str) -> Option<Self> {
        let value = value.trim();
        let mut parts = value.splitn(5, '-');
        let version = parts.next()?;
        let (trace, span, flags) = (parts.next()?, parts.next()?, parts.next()?);
        let rest = parts.next();
        if version.len() != 2 || !is_lower_hex(version) || version == "ff" {
            return None;
        }
        // Version 00 has exactly four fields; later versions may add more.
        if version == "00" && rest.is_some() {
            return None;
        }
        if trace.len() != 32 || span.len() != 16 || flags.len() != 2 {
            return None;
        }
        if !is_lower_hex(trace) || !is_lower_hex(span) || !is_lower_hex(flags) {
            return None;
        }
        let trace_id = u128::from_str_radix(trace, 16).ok()?;
        let span_id = u64::from_str_radix(span, 16).ok()?;
        let flags = u8::from_str_radix(flags, 16).ok()?;
        // All-zero ids are invalid.
        if trace_id == 0 || span_id == 0 {
            return None;
        }
        Some(Self {
            trace_id,
            span_id,
            flags,
        })
    }

    /// The trace id, 32 lowercase hex digits.
    pub fn trace_id(&self) -> String {
        format!("{:032x}", self.trace_id)
    }

    /// The span id, 16 lowercase hex digits.
    pub fn span_id(&self) -> String {
        format!("{:016x}", self.span_id)
    }

    /// The context of the task running now, if one was set.
    pub fn current() -> Option<Self> {
        CURRENT.try_with(|c| *c).ok()
    }

    /// Runs `future` with `self` as the current context.
    pub async fn scope<F: Future>(self, future: F) -> F::Output {
        CURRENT.scope(self, future).await
    }
}

impl fmt::Display for TraceContext {
    /// The `traceparent` header value.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "00-{:032x}-{:016x}-{:02x}",
            self.trace_id, self.span_id, self.flags
        )
    }
}

/// The trace context to continue from an optional `traceparent`: a child
/// of the caller's span, or a new trace when there is none (or it is invalid).
pub fn continue_from(traceparent: Option<&str>) -> TraceContext {
    traceparent
        .and_then(TraceContext::parse)
        .map(|c| c.child())
        .unwrap_or_else(TraceContext::new_root)
}

/// The current context's `traceparent`, if there is one (what to store with
/// work that continues later, e.g. a generation the sweeper may re-publish).
pub fn current_traceparent() -> Option<String> {
    TraceContext::current().map(|c| c.to_string())
}

fn is_lower_hex(s: &str) -> bool {
    s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn nonzero<T: Default + PartialEq + From<u8>>(n: T) -> T {
    if n == T::default() { T::from(1) } else { n }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn parses_and_prints_the_spec_example() {
        let c = TraceContext::parse(EXAMPLE).unwrap();
        assert_eq!(c.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(c.span_id(), "00f067aa0ba902b7");
        assert_eq!(c.to_string(), EXAMPLE);
    }

    #[test]
    fn refuses_malformed_values() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e47-00f067aa0ba902b7-01",
            "00-+bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert_eq!(TraceContext::parse(bad), None, "{bad}");
        }
        // A later version is read as 00, its extra fields ignored.
        assert!(TraceContext::parse(&format!("01{}-later", &EXAMPLE[2..])).is_some());
    }

    #[test]
    fn a_child_keeps_the_trace_and_gets_a_new_span() {
        let parent = TraceContext::parse(EXAMPLE).unwrap();
        let child = continue_from(Some(EXAMPLE));
        assert_eq!(child.trace_id(), parent.trace_id());
        assert_ne!(child.span_id(), parent.span_id());
        let fresh = continue_from(Some("garbage"));
        assert_ne!(fresh.trace_id(), parent.trace_id());
        assert!(TraceContext::parse(&fresh.to_string()).is_some());
    }

    #[tokio::test]
    async fn the_current_context_is_the_scoped_one() {
        assert_eq!(TraceContext::current(), None);
        let c = TraceContext::new_root();
        let seen = c.scope(async { current_traceparent() }).await;
        assert_eq!(seen, Some(c.to_string()));
    }
}
