//! The synthesis worker: consumes `synth.jobs`, renders each generation with
//! espeak-ng in a pool of engine processes, encodes it, stores it, completes
//! or fails the generation, and announces it on `voiceprod.events`.
//! See README.md for the design.

pub mod alignment;
pub mod cloning;
pub mod consumer;
pub mod encode;
pub mod engine;
pub mod events;
pub mod lease;
pub mod parts;
pub mod preview;
pub mod relay;
pub mod render;
pub mod speaker;
pub mod startup;
pub mod state;
pub mod stream;
pub mod text;

pub use consumer::handle;
pub use startup::Application;
pub use state::State;
