//! The OpenAPI document (`GET /openapi.json`) against the gateway itself:
//! every route it serves is documented and every documented route is
//! served; the document is well-formed OpenAPI 3.1; real answers fit the
//! schemas the document gives for them.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use gateway::openapi::UNDOCUMENTED;

use crate::helpers::*;

/// `/v1/webhooks/{id}/deliveries/{deliveryId}/retry` → `…/{}/deliveries/{}/retry`.
fn shape(path: &str) -> String {
    let mut out = String::new();
    let mut in_param = false;
    for c in path.chars() {
        match c {
            '{' => {
                in_param = true;
                out.push_str("{}");
            }
            '}' => in_param = false,
            c if !in_param => out.push(c),
            _ => {}
        }
    }
    out
}

fn served() -> BTreeSet<(String, String)> {
    gateway::routes::table()
        .into_iter()
        .map(|(m, p)| (m.to_string(), shape(p)))
        .collect()
}

fn undocumented() -> BTreeSet<(String, String)> {
    UNDOCUMENTED
        .iter()
        .map(|(m, p)| ((*m).to_owned(), shape(p)))
        .collect()
}

fn documented() -> BTreeSet<(String, String)> {
    gateway::openapi::operations(&gateway::openapi::document())
        .into_iter()
        .map(|(m, p)| (m, shape(&p)))
        .collect()
}

#[test]
fn every_served_route_is_documented_and_every_documented_route_is_served() {
    let served = served();
    let documented = documented();
    let undocumented = undocumented();
    let missing: Vec<_> = served
        .iter()
        .filter(|r| !documented.contains(*r) && !undocumented.contains(*r))
        .collect();
    assert!(
        missing.is_empty(),
        "served but not in the OpenAPI document (add #[utoipa::path] and list it in \
         gateway::openapi::ApiDoc, or list it in gateway::openapi::UNDOCUMENTED): {missing:?}"
    );
    let phantom: Vec<_> = documented.difference(&served).collect();
    assert!(
        phantom.is_empty(),
        "documented but not served (register it through gateway::routes::Routes): {phantom:?}"
    );
    let both: Vec<_> = documented.intersection(&undocumented).collect();
    assert!(
        both.is_empty(),
        "documented and listed as undocumented: {both:?}"
    );
    // The table is not empty by accident.
    assert!(served.contains(&("POST".to_owned(), "/v1/generations".to_owned())));
}

/// The path of a route with every parameter filled in.
fn concrete(path: &str) -> String {
    shape(path).replace("{}", "x")
}

#[tokio::test]
async fn every_route_in_the_table_is_really_served() {
    let app = spawn_app().await;
    for (method, path) in gateway::routes::table() {
        let url = format!("{}{}", app.address, concrete(path));
        let response = app
            .client
            .request(
                reqwest::Method::from_bytes(method.as_str().as_bytes()).unwrap(),
                &url,
            )
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let body = response.text().await.unwrap_or_default();
        assert!(
            !body.contains("route_not_found"),
            "{method} {path} is in the table but the server has no such route: {status} {body}"
        );
    }
    // The check can fail: an unknown route is answered as one.
    let unknown = app
        .client
        .get(format!("{}/v1/nothing-here", app.address))
        .send()
        .await
        .unwrap();
    assert_error(unknown, 404, "route_not_found").await;
}

async fn served_document(app: &TestApp) -> Value {
    let response = app
        .client
        .get(format!("{}/openapi.json", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    response.json().await.unwrap()
}

/// Every `$ref` in `v`, as found.
fn refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("$ref", Value::String(r)) => out.push(r),
                    _ => refs(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

#[tokio::test]
async fn the_document_is_well_formed_openapi_3_1() {
    let app = spawn_app().await;
    let doc = served_document(&app).await;

    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());
    // Every reference resolves inside the document.
    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(!all.is_empty());
    for r in all {
        let pointer = r
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("external $ref {r}"));
        assert!(doc.pointer(pointer).is_some(), "unresolved $ref {r}");
    }
    let schemes = doc["components"]["securitySchemes"].as_object().unwrap();
    assert_eq!(
        schemes["apiKey"],
        json!({"type": "http", "scheme": "bearer",
        "bearerFormat": "vp_ + 40 base62 characters",
        "description": "An API key of the workspace: `Authorization: Bearer vp_…`"})
    );
    let mut operation_ids = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        assert!(path.starts_with('/'), "{path}");
        let templated: BTreeSet<String> = path
            .split('{')
            .skip(1)
            .filter_map(|s| s.split('}').next())
            .map(str::to_owned)
            .collect();
        for method in METHODS {
            let Some(op) = item.get(method) else { continue };
            let name = format!("{method} {path}");
            let id = op["operationId"]
                .as_str()
                .unwrap_or_else(|| panic!("{name}: no operationId"));
            assert!(
                operation_ids.insert(id.to_owned()),
                "{name}: operationId {id} twice"
            );
            // Path parameters: exactly the template's, each required.
            let declared: BTreeSet<String> = op["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| p["in"] == "path")
                .map(|p| {
                    assert_eq!(p["required"], true, "{name}: {p}");
                    p["name"].as_str().unwrap().to_owned()
                })
                .collect();
            assert_eq!(declared, templated, "{name}: path parameters");
            // Security requirements name declared schemes only.
            for requirement in op["security"].as_array().into_iter().flatten() {
                for scheme in requirement.as_object().unwrap().keys() {
                    assert!(schemes.contains_key(scheme), "{name}: scheme {scheme}");
                }
            }
            let responses = op["responses"].as_object().unwrap();
            assert!(
                responses.keys().any(|s| s.starts_with('2')),
                "{name}: no 2xx"
            );
            assert!(responses.contains_key("500"), "{name}: no 500");
            for (status, response) in responses {
                assert!(response["description"].is_string(), "{name} {status}");
                // Every error is the envelope.
                if status.starts_with('4') || status.starts_with('5') {
                    let is_health = path == "/readyz";
                    if !is_health {
                        assert_eq!(
                            response["content"]["application/json"]["schema"]["$ref"],
                            "#/components/schemas/ErrorEnvelope",
                            "{name} {status}"
                        );
                    }
                }
            }
            let authenticated = op["security"].as_array().is_some_and(|s| {
                s.iter()
                    .any(|r| r.as_object().is_some_and(|o| !o.is_empty()))
            });
            if authenticated {
                for status in ["401", "403", "429"] {
                    assert!(responses.contains_key(status), "{name}: no {status}");
                }
            }
        }
    }
    // The webhooks the API sends are described too.
    for event in [
        "generation.completed",
        "generation.failed",
        "voice.ready",
        "webhook.test",
    ] {
        assert!(
            doc["webhooks"][event]["post"]["requestBody"].is_object(),
            "webhook {event}"
        );
    }
}

/// The schema the document gives for `method path` answering `status`
/// (JSON), with the document's components so that `$ref`s resolve.
fn response_schema(doc: &Value, method: &str, path: &str, status: u16) -> Value {
    let schema =
        doc["paths"][path][method]["responses"][status.to_string()]["content"]["application/json"]
            ["schema"]
            .clone();
    assert!(
        !schema.is_null(),
        "{method} {path} documents no JSON answer for {status}"
    );
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "allOf": [schema],
        "components": doc["components"],
    })
}

/// Sends the request and checks the answer's status and body against the
/// document; returns the body.
async fn conforms(
    app: &TestApp,
    doc: &Value,
    request: reqwest::RequestBuilder,
    (method, path): (&str, &str),
    status: u16,
) -> Value {
    let response = request.send().await.unwrap();
    assert_eq!(response.status().as_u16(), status, "{method} {path}");
    let body: Value = response.json().await.unwrap();
    let schema = response_schema(doc, method, path, status);
    let validator = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&body)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{method} {path} {status} does not fit its documented schema: {errors:?}\n{body}"
    );
    let _ = app;
    body
}

#[tokio::test]
async fn real_answers_fit_their_documented_schemas() {
    let app = spawn_app().await;
    let doc = served_document(&app).await;
    let c = &app.client;
    let a = &app.address;
    let key = &app.api_key;

    let created = conforms(
        &app,
        &doc,
        c.post(format!("{a}/v1/generations")).bearer_auth(key).json(
            &json!({"text": SEED_TEXT, "voiceId": SEED_VOICE, "format": "wav",
                "metadata": {"order": 7}}),
        ),
        ("post", "/v1/generations"),
        202,
    )
    .await;
    let id = created["id"].as_str().unwrap();
    conforms(
        &app,
        &doc,
        c.get(format!("{a}/v1/generations/{id}")).bearer_auth(key),
        ("get", "/v1/generations/{id}"),
        200,
    )
    .await;
    conforms(
        &app,
        &doc,
        c.get(format!("{a}/v1/generations?limit=1"))
            .bearer_auth(key),
        ("get", "/v1/generations"),
        200,
    )
    .await;
    conforms(
        &app,
        &doc,
        c.get(format!("{a}/v1/voices?language=en&limit=3"))
            .bearer_auth(key),
        ("get", "/v1/voices"),
        200,
    )
    .await;
    conforms(
        &app,
        &doc,
        c.get(format!("{a}/v1/voices/{SEED_VOICE}"))
            .bearer_auth(key),
        ("get", "/v1/voices/{id}"),
        200,
    )
    .await;
    conforms(
        &app,
        &doc,
        c.get(format!("{a}/v1/workspace")).bearer_auth(key),
        ("get", "/v1/workspace"),
        200,
    )
    .await;
    conforms(
        &app,
        &doc,
        c.get(format!("{a}/v1/usage")).bearer_auth(key),
        ("get", "/v1/usage"),
        200,
    )
    .await;
    conforms(
        &app,
        &doc,
        c.get(format!("{a}/v1/usage?groupBy=key")).bearer_auth(key),
        ("get", "/v1/usage"),
        200,
    )
    .await;
    let hook = conforms(
        &app,
        &doc,
        c.post(format!("{a}/v1/webhooks"))
            .bearer_auth(key)
            .json(&json!({"url": "http://127.0.0.1:9/hook", "events": ["generation.completed"]})),
        ("post", "/v1/webhooks"),
        201,
    )
    .await;
    let hook_id = hook["id"].as_str().unwrap();
    conforms(
        &app,
        &doc,
        c.get(format!("{a}/v1/webhooks")).bearer_auth(key),
        ("get", "/v1/webhooks"),
        200,
    )
    .await;
    conforms(
        &app,
        &doc,
        c.post(format!("{a}/v1/webhooks/{hook_id}/test"))
            .bearer_auth(key),
        ("post", "/v1/webhooks/{id}/test"),
        202,
    )
    .await;
    conforms(
        &app,
        &doc,
        c.get(format!("{a}/v1/webhooks/{hook_id}/deliveries"))
            .bearer_auth(key),
        ("get", "/v1/webhooks/{id}/deliveries"),
        200,
    )
    .await;
    let new_key = conforms(
        &app,
        &doc,
        c.post(format!("{a}/v1/keys"))
            .bearer_auth(key)
            .json(&json!({"name": "ci", "scopes": ["voices:read"]})),
        ("post", "/v1/keys"),
        201,
    )
    .await;
    conforms(
        &app,
        &doc,
        c.get(format!("{a}/v1/keys")).bearer_auth(key),
        ("get", "/v1/keys"),
        200,
    )
    .await;
    conforms(
        &app,
        &doc,
        c.delete(format!("{a}/v1/keys/{}", new_key["id"].as_str().unwrap()))
            .bearer_auth(key),
        ("delete", "/v1/keys/{id}"),
        200,
    )
    .await;
    conforms(
        &app,
        &doc,
        c.get(format!("{a}/healthz")),
        ("get", "/healthz"),
        200,
    )
    .await;
    conforms(
        &app,
        &doc,
        c.get(format!("{a}/readyz")),
        ("get", "/readyz"),
        200,
    )
    .await;

    // Errors: the envelope, as documented.
    conforms(
        &app,
        &doc,
        c.get(format!("{a}/v1/generations")),
        ("get", "/v1/generations"),
        401,
    )
    .await;
    conforms(
        &app,
        &doc,
        c.get(format!("{a}/v1/generations/gen_x")).bearer_auth(key),
        ("get", "/v1/generations/{id}"),
        404,
    )
    .await;
    conforms(
        &app,
        &doc,
        c.post(format!("{a}/v1/generations"))
            .bearer_auth(key)
            .json(&json!({"text": "", "voiceId": SEED_VOICE})),
        ("post", "/v1/generations"),
        422,
    )
    .await;
    conforms(
        &app,
        &doc,
        c.post(format!("{a}/v1/generations"))
            .bearer_auth(key)
            .header("content-type", "application/json")
            .body("{"),
        ("post", "/v1/generations"),
        400,
    )
    .await;
    conforms(
        &app,
        &doc,
        c.get(format!("{a}/v1/voices?limit=0")).bearer_auth(key),
        ("get", "/v1/voices"),
        400,
    )
    .await;
}

#[tokio::test]
async fn the_docs_page_is_served_without_the_network() {
    let app = spawn_app().await;
    let page = app
        .client
        .get(format!("{}/docs/", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status().as_u16(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("swagger-ui"), "{html}");
    // Its assets come from the gateway itself, not from a CDN.
    assert!(
        !html.contains("://"),
        "the page loads something from elsewhere: {html}"
    );
    let script = app
        .client
        .get(format!("{}/docs/swagger-ui-bundle.js", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(script.status().as_u16(), 200);
    assert!(script.bytes().await.unwrap().len() > 100_000);
    let config = app
        .client
        .get(format!("{}/docs/swagger-initializer.js", app.address))
        .send()
        .await
        .unwrap();
    assert!(config.text().await.unwrap().contains("/openapi.json"));
    let bare = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!("{}/docs", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(bare.status().as_u16(), 308);
    assert_eq!(bare.headers()["location"], "/docs/");
}
