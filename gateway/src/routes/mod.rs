//! The public routes, one module per resource.
//!
//! Every route is registered through [`Routes`], which also records its
//! method and path: [`table`] is exactly what the server serves, and the
//! OpenAPI test compares it with the document (`crate::openapi`) both ways.
//! A route added with `cfg.route(...)` directly would escape that check, so
//! add routes here, through `Routes`.

pub mod alignment;
pub mod audio;
pub mod console;
pub mod generations;
pub mod keys;
pub mod openai;
pub mod previews;
pub mod usage;
pub mod voices;
pub mod webhooks;

use actix_web::dev::HttpServiceFactory;
use actix_web::http::Method;
use actix_web::{FromRequest, Handler, Responder, web};

/// Registers routes with actix (when given a config) and records them.
pub struct Routes<'a> {
    cfg: Option<&'a mut web::ServiceConfig>,
    table: Vec<(Method, &'static str)>,
}

impl<'a> Routes<'a> {
    fn new(cfg: Option<&'a mut web::ServiceConfig>) -> Self {
        Self {
            cfg,
            table: Vec::new(),
        }
    }

    /// `method path` served by `handler`.
    pub fn route<F, Args>(&mut self, method: Method, path: &'static str, handler: F) -> &mut Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        if let Some(cfg) = self.cfg.as_deref_mut() {
            cfg.route(path, web::method(method.clone()).to(handler));
        }
        self.table.push((method, path));
        self
    }

    pub fn get<F, Args>(&mut self, path: &'static str, handler: F) -> &mut Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.route(Method::GET, path, handler)
    }

    pub fn post<F, Args>(&mut self, path: &'static str, handler: F) -> &mut Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.route(Method::POST, path, handler)
    }

    pub fn patch<F, Args>(&mut self, path: &'static str, handler: F) -> &mut Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.route(Method::PATCH, path, handler)
    }

    pub fn delete<F, Args>(&mut self, path: &'static str, handler: F) -> &mut Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.route(Method::DELETE, path, handler)
    }

    /// A service that is not a plain handler (Swagger UI), with the
    /// routes it serves, so they are in the table too.
    pub fn service<S: HttpServiceFactory + 'static>(
        &mut self,
        make: impl FnOnce() -> S,
        serves: &[(Method, &'static str)],
    ) -> &mut Self {
        if let Some(cfg) = self.cfg.as_deref_mut() {
            cfg.service(make());
        }
        self.table.extend(serves.iter().cloned());
        self
    }
}

fn register(r: &mut Routes) {
    r.get("/healthz", shared::http::healthz)
        .get("/readyz", crate::startup::readyz);
    generations::routes(r);
    audio::routes(r);
    webhooks::routes(r);
    keys::routes(r);
    // Before voices: `/v1/voices/preview` is not a voice id.
    previews::routes(r);
    voices::routes(r);
    alignment::routes(r);
    usage::routes(r);
    openai::routes(r);
    console::routes(r);
    crate::openapi::routes(r);
}

/// Registers every route of the gateway.
pub fn configure(cfg: &mut web::ServiceConfig) {
    register(&mut Routes::new(Some(cfg)));
}

/// Method and path of every route the gateway serves.
pub fn table() -> Vec<(Method, &'static str)> {
    let mut r = Routes::new(None);
    register(&mut r);
    r.table
}
