//! The public routes, one module per resource.

pub mod alignment;
pub mod audio;
pub mod console;
pub mod generations;
pub mod keys;
pub mod openai;
pub mod usage;
pub mod voices;
pub mod webhooks;

use actix_web::web;

pub fn configure(cfg: &mut web::ServiceConfig) {
    generations::configure(cfg);
    audio::configure(cfg);
    webhooks::configure(cfg);
    keys::configure(cfg);
    voices::configure(cfg);
    alignment::configure(cfg);
    usage::configure(cfg);
    console::configure(cfg);
    openai::configure(cfg);
}
