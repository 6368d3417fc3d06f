//! The OpenAPI 3.1 document of the gateway, generated from the handlers'
//! `#[utoipa::path]` attributes and the `ToSchema` of the types they take
//! and answer, served at `GET /openapi.json` with Swagger UI at `/docs`
//! (assets built into the binary: no network needed).
//!
//! What every route shares is added here once (`CommonResponses`): the 500
//! of an unexpected fault; for routes that take a key the 401, 403, 429 and
//! 503 of authentication; for JSON bodies the 400, 413 and 415 of the
//! extractor; for query strings the 400; for path ids the 404.
//!
//! To add a route: annotate its handler with `#[utoipa::path(...)]`, list
//! the handler in `paths(...)` below, and register it through
//! `crate::routes::Routes`. A route that is deliberately not part of the
//! API (operations endpoints, pages) goes in [`UNDOCUMENTED`]. The test
//! `gateway/tests/api/openapi.rs` fails when the route table and the
//! document disagree.

use actix_web::HttpResponse;
use actix_web::http::Method;
use utoipa::openapi::path::{Operation, ParameterIn, PathItem};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{ContentBuilder, HeaderBuilder, Ref, RefOr, Response, ResponseBuilder, Type};
use utoipa::{Modify, OpenApi, PartialSchema, ToSchema};

use shared::http::ErrorEnvelope;

use crate::routes::Routes;

/// Routes the gateway serves (or will, once merged) that are not part of
/// the API document, as (method, path).
pub const UNDOCUMENTED: &[(&str, &str)] = &[
    ("GET", "/openapi.json"),
    ("GET", "/docs"),
    ("GET", "/docs/{_:.*}"),
    ("GET", "/metrics"),
    ("GET", "/console"),
    ("GET", "/console/"),
    ("GET", "/console/{_:.*}"),
    ("HEAD", "/console"),
    ("HEAD", "/console/"),
    ("HEAD", "/console/{_:.*}"),
];

/// Bytes of a binary body (audio, WAV samples).
pub struct Binary;

impl PartialSchema for Binary {
    fn schema() -> RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                utoipa::openapi::KnownFormat::Binary,
            )))
            .into()
    }
}

impl ToSchema for Binary {}

/// The optional `Idempotency-Key` header of the creating `POST`s.
#[derive(utoipa::IntoParams)]
#[into_params(names("Idempotency-Key"), parameter_in = Header)]
#[allow(dead_code)]
pub struct IdempotencyKey(
    /// 1 to 255 visible ASCII characters, kept 24 h per workspace and bound
    /// to the API key that first sent it. A retry by that key with the same
    /// body gets the first answer again (`Idempotent-Replayed: true`), but
    /// never a secret: a created key or webhook endpoint comes back without
    /// its `secret`. Another body, or another API key, gets 409
    /// `idempotency_key_reused`. The key must hold the operation's scope
    /// before anything stored is looked at.
    Option<String>,
);

#[derive(OpenApi)]
#[openapi(
    info(
        title = "voiceprod",
        description = "Text to speech: generations, voices, webhooks, keys and usage. \
            Authenticate with `Authorization: Bearer <key>`; every error is \
            `{\"error\": {\"type\", \"code\", \"message\", \"param\"?, \"requestId\"?}}`. \
            The required scope of each operation is named in its security requirement.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    paths(
        shared::http::healthz,
        crate::startup::readyz,
        crate::routes::generations::create,
        crate::routes::generations::list,
        crate::routes::generations::get,
        crate::routes::generations::delete,
        crate::routes::generations::audio,
        crate::routes::openai::speech,
        crate::routes::alignment::get,
        crate::routes::audio::signed,
        crate::routes::webhooks::endpoints::create,
        crate::routes::webhooks::endpoints::list,
        crate::routes::webhooks::endpoints::get,
        crate::routes::webhooks::endpoints::update,
        crate::routes::webhooks::endpoints::delete,
        crate::routes::webhooks::endpoints::rotate_secret,
        crate::routes::webhooks::endpoints::test,
        crate::routes::webhooks::deliveries::list,
        crate::routes::webhooks::deliveries::retry,
        crate::routes::keys::create,
        crate::routes::keys::list,
        crate::routes::keys::rotate,
        crate::routes::keys::revoke,
        crate::routes::voices::list,
        crate::routes::voices::create,
        crate::routes::voices::get,
        crate::routes::voices::delete,
        crate::routes::previews::voice,
        crate::routes::previews::recipe,
        crate::routes::usage::workspace,
        crate::routes::usage::usage,
    ),
    components(schemas(
        ErrorEnvelope,
        shared::messages::GenerationCompletedData,
        shared::messages::GenerationFailedData,
        shared::messages::VoiceReadyData,
        shared::messages::VoiceFailedData,
        shared::messages::WebhookTestData,
    )),
    modifiers(&SecurityAddon, &CommonResponses),
    tags(
        (name = "generations", description = "Text to audio"),
        (name = "voices", description = "Preset and cloned voices"),
        (name = "webhooks", description = "Endpoints that receive events"),
        (name = "keys", description = "API keys"),
        (name = "usage", description = "Plan, allowance and usage"),
        (name = "operations", description = "Liveness and readiness"),
    )
)]
pub struct ApiDoc;

struct SecurityAddon;

impl Modify for SecurityAddon {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let mut bearer = Http::new(HttpAuthScheme::Bearer);
        bearer.bearer_format = Some("vp_ + 40 base62 characters".to_owned());
        bearer.description =
            Some("An API key of the workspace: `Authorization: Bearer vp_…`".to_owned());
        components.add_security_scheme("apiKey", SecurityScheme::Http(bearer));
    }
}

fn error_response(description: &str, retry_after: bool) -> RefOr<Response> {
    let mut response = ResponseBuilder::new().description(description).content(
        "application/json",
        ContentBuilder::new()
            .schema(Some(Ref::from_schema_name("ErrorEnvelope")))
            .build(),
    );
    if retry_after {
        response = response.header(
            "Retry-After",
            HeaderBuilder::new()
                .schema(u64::schema())
                .description(Some("Seconds to wait before trying again"))
                .build(),
        );
    }
    response.build().into()
}

/// The answers every route of a kind can give, added where not documented
/// more precisely by the handler.
struct CommonResponses;

impl CommonResponses {
    fn add(op: &mut Operation, status: &str, description: &str, retry_after: bool) {
        op.responses
            .responses
            .entry(status.to_owned())
            .or_insert_with(|| error_response(description, retry_after));
    }

    fn operation(op: &mut Operation) {
        let authenticated = op
            .security
            .as_ref()
            .is_some_and(|s| !s.is_empty() && s.iter().any(|r| r != &Default::default()));
        let params = op.parameters.as_deref().unwrap_or_default();
        let has_query = params
            .iter()
            .any(|p| matches!(p.parameter_in, ParameterIn::Query));
        let has_path = params
            .iter()
            .any(|p| matches!(p.parameter_in, ParameterIn::Path));
        let json_body = op
            .request_body
            .as_ref()
            .is_some_and(|b| b.content.contains_key("application/json"));
        if json_body {
            Self::add(
                op,
                "400",
                "Malformed JSON, or a body that does not fit the schema",
                false,
            );
            Self::add(op, "413", "The body is over the size limit", false);
            Self::add(op, "415", "The body is not application/json", false);
        }
        if has_query {
            Self::add(
                op,
                "400",
                "A query parameter that is malformed or unknown",
                false,
            );
        }
        if has_path {
            Self::add(op, "404", "No such object in this workspace", false);
        }
        if authenticated {
            Self::add(
                op,
                "401",
                "Missing, malformed, unknown, expired or revoked key",
                false,
            );
            Self::add(
                op,
                "403",
                "The key lacks the scope (`insufficient_scope`), or the plan lacks API access (`plan_required`)",
                false,
            );
            Self::add(op, "429", "Rate limited (`rate_limited`)", true);
            Self::add(
                op,
                "503",
                "Keys cannot be verified right now (`key_service_unavailable`)",
                true,
            );
        }
        Self::add(
            op,
            "500",
            "An unexpected fault; the body says nothing internal but carries the request id",
            false,
        );
    }
}

impl Modify for CommonResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            for op in [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.options,
                &mut item.head,
                &mut item.patch,
                &mut item.trace,
            ]
            .into_iter()
            .flatten()
            {
                Self::operation(op);
            }
        }
    }
}

/// The requests voiceprod sends to webhook endpoints (OpenAPI 3.1
/// `webhooks`): the body of `webhook-dispatcher`'s payload, `data` being
/// the event's type in `shared::messages`, signed per Standard Webhooks.
fn webhooks() -> serde_json::Value {
    let header = |name: &str, description: &str| {
        serde_json::json!({
            "name": name, "in": "header", "required": true,
            "description": description, "schema": {"type": "string"},
        })
    };
    let parameters = serde_json::json!([
        header(
            "webhook-id",
            "`msg_…`: the event's id, the same on every retry; deduplicate on it"
        ),
        header(
            "webhook-timestamp",
            "Unix seconds of this attempt; reject it more than 5 minutes away"
        ),
        header(
            "webhook-signature",
            "`v1,<base64 HMAC-SHA256>` of `{webhook-id}.{webhook-timestamp}.{body}` with the endpoint's secret; space-separated when two secrets are live after a rotation"
        ),
    ]);
    let events = [
        (
            "generation.completed",
            "GenerationCompletedData",
            "A generation completed; its audio is at `data.audioUrl`",
        ),
        (
            "generation.failed",
            "GenerationFailedData",
            "A generation failed; its credits were refunded",
        ),
        (
            "voice.ready",
            "VoiceReadyData",
            "A cloned or designed voice is ready (a clone onto Kokoro with its `similarity`)",
        ),
        (
            "voice.failed",
            "VoiceFailedData",
            "A voice cloned onto Kokoro could not be made (`error`)",
        ),
        (
            "webhook.test",
            "WebhookTestData",
            "Sent to one endpoint by `POST /v1/webhooks/{id}/test`",
        ),
    ];
    let mut out = serde_json::Map::new();
    for (event, data, summary) in events {
        out.insert(
            event.to_owned(),
            serde_json::json!({"post": {
                "summary": summary,
                "operationId": format!("webhook.{event}"),
                "tags": ["webhooks"],
                "parameters": parameters,
                "requestBody": {"required": true, "content": {"application/json": {"schema": {
                    "type": "object",
                    "required": ["event", "data"],
                    "properties": {
                        "event": {"const": event},
                        "data": {"$ref": format!("#/components/schemas/{data}")},
                    },
                }}}},
                "responses": {
                    "2XX": {"description": "Received. Anything else (or no answer within 15 s) is retried after 5 s, 5 min, 30 min, 2 h, 5 h, 10 h and 10 h; `Retry-After` on 429 or 503 is honoured"},
                    "410": {"description": "Gone: the endpoint is disabled at once"},
                },
            }}),
        );
    }
    serde_json::Value::Object(out)
}

/// The document, as served at `/openapi.json`.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    // utoipa has no `webhooks` field; top-level members are flattened
    // from `extensions`, so it goes there.
    doc.extensions
        .get_or_insert_with(Default::default)
        .insert("webhooks".to_owned(), webhooks());
    doc
}

/// Method and path of every operation of the document.
pub fn operations(doc: &utoipa::openapi::OpenApi) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (path, item) in &doc.paths.paths {
        let PathItem {
            get,
            put,
            post,
            delete,
            options,
            head,
            patch,
            trace,
            ..
        } = item;
        for (method, op) in [
            ("GET", get),
            ("PUT", put),
            ("POST", post),
            ("DELETE", delete),
            ("OPTIONS", options),
            ("HEAD", head),
            ("PATCH", patch),
            ("TRACE", trace),
        ] {
            if op.is_some() {
                out.push((method.to_owned(), path.clone()));
            }
        }
    }
    out
}

async fn docs_redirect() -> HttpResponse {
    HttpResponse::PermanentRedirect()
        .insert_header((actix_web::http::header::LOCATION, "/docs/"))
        .finish()
}

/// `/openapi.json`, and Swagger UI at `/docs`.
pub fn routes(r: &mut Routes) {
    r.get("/docs", docs_redirect).service(
        || utoipa_swagger_ui::SwaggerUi::new("/docs/{_:.*}").url("/openapi.json", document()),
        &[
            (Method::GET, "/openapi.json"),
            (Method::GET, "/docs/{_:.*}"),
        ],
    );
}
