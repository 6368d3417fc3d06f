//! Validated request types: parsed once, then trusted.

pub mod generation_request;
pub mod voice_design;
pub mod webhook_request;
