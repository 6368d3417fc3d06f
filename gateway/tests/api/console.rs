//! `/console`: the static web console. It is served without a key, with a
//! strict Content-Security-Policy, the right content types and revalidation
//! by ETag; anything not in the console is a 404 in the error envelope.
//! (The console's behaviour in a browser is tested by `deploy/tests/console`.)

use crate::helpers::*;

async fn get(app: &TestApp, path: &str) -> reqwest::Response {
    // No Authorization header: the page is static.
    app.client
        .get(format!("{}{path}", app.address))
        .send()
        .await
        .unwrap()
}

fn header<'a>(response: &'a reqwest::Response, name: &str) -> &'a str {
    response
        .headers()
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .unwrap()
}

#[tokio::test]
async fn the_console_page_is_served_without_a_key_under_a_strict_csp() {
    let app = spawn_app().await;
    for path in ["/console", "/console/"] {
        let response = get(&app, path).await;
        assert_eq!(response.status().as_u16(), 200, "{path}");
        assert_eq!(
            header(&response, "content-type"),
            "text/html; charset=utf-8"
        );
        assert_eq!(header(&response, "x-content-type-options"), "nosniff");
        assert_eq!(header(&response, "cache-control"), "no-cache");
        let csp = header(&response, "content-security-policy").to_owned();
        let directives: Vec<&str> = csp.split(';').map(str::trim).collect();
        for wanted in [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            "media-src 'self' blob:",
            "connect-src 'self'",
            "object-src 'none'",
            "frame-ancestors 'none'",
        ] {
            assert!(directives.contains(&wanted), "{wanted} missing from {csp}");
        }
        assert!(!csp.contains("unsafe"), "{csp}");
        let html = response.text().await.unwrap();
        assert!(html.contains(r#"<script type="module" src="/console/app.js"></script>"#));
        // No inline script: every <script> loads a file.
        for script in html.split("<script").skip(1) {
            let tag = &script[..script.find('>').unwrap()];
            assert!(tag.contains("src=\"/console/"), "inline script: {tag}");
        }
        assert!(!html.contains(" style="), "inline style attribute");
    }
}

#[tokio::test]
async fn the_console_assets_have_their_content_types_and_revalidate_by_etag() {
    let app = spawn_app().await;
    for (path, content_type, needle) in [
        (
            "/console/app.js",
            "text/javascript; charset=utf-8",
            "import ",
        ),
        (
            "/console/pages/playground.js",
            "text/javascript; charset=utf-8",
            "/generations",
        ),
        (
            "/console/chart.js",
            "text/javascript; charset=utf-8",
            "export function stackedBars",
        ),
        ("/console/style.css", "text/css; charset=utf-8", ":root"),
        ("/console/favicon.svg", "image/svg+xml", "<svg"),
    ] {
        let response = get(&app, path).await;
        assert_eq!(response.status().as_u16(), 200, "{path}");
        assert_eq!(header(&response, "content-type"), content_type, "{path}");
        assert_eq!(header(&response, "x-content-type-options"), "nosniff");
        assert!(header(&response, "content-security-policy").starts_with("default-src 'self'"));
        let etag = header(&response, "etag").to_owned();
        let body = response.text().await.unwrap();
        assert!(body.contains(needle), "{path}");

        let again = app
            .client
            .get(format!("{}{path}", app.address))
            .header("If-None-Match", &etag)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status().as_u16(), 304, "{path}");
        assert_eq!(header(&again, "etag"), etag);
        assert!(again.bytes().await.unwrap().is_empty());
    }
}

#[tokio::test]
async fn anything_else_under_console_is_a_404_in_the_envelope() {
    let app = spawn_app().await;
    for path in ["/console/missing.js", "/console/pages", "/console/app.js/"] {
        assert_error(get(&app, path).await, 404, "not_found").await;
    }
    // Only the embedded files are served: a path that climbs out is a 404
    // (the client may normalise it first, then no route matches at all).
    for path in ["/console/..%2fCargo.toml", "/console/%2e%2e/src/lib.rs"] {
        let response = get(&app, path).await;
        assert_eq!(response.status().as_u16(), 404, "{path}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert!(body["error"]["code"].is_string(), "{path}: {body}");
    }
}
