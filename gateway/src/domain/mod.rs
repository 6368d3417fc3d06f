//! Validated request types: parsed once, then trusted.

pub mod generation_request;
pub mod webhook_request;
