//! `/console`: the web console, a static page embedded in the binary (the
//! files of `gateway/console/`) that talks only to the public `/v1` API
//! with a key the user pastes in. The page itself needs no key.
//!
//! Every answer carries a strict Content-Security-Policy (scripts, styles
//! and connections only from this origin, no inline script; audio from
//! `blob:` URLs made from what `fetch` read with the key), and an `ETag`
//! with `Cache-Control: no-cache`, so browsers revalidate cheaply and never
//! run a stale script after an upgrade.

use actix_web::http::Method;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};

use shared::http::ApiError;

/// The policy of every console answer (the page, its scripts, its styles).
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; media-src 'self' blob:; connect-src 'self'; \
     font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; \
     frame-ancestors 'none'";

struct Asset {
    /// The path under `/console/`.
    path: &'static str,
    content_type: &'static str,
    body: &'static [u8],
    etag: &'static str,
}

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const SVG: &str = "image/svg+xml";

/// FNV-1a 64 of `bytes`, at compile time: the assets' ETags.
const fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        i += 1;
    }
    hash
}

/// `"` + 16 hex digits of the hash + `"`, at compile time.
const fn etag_of(bytes: &[u8]) -> [u8; 18] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let hash = fnv1a(bytes);
    let mut out = [b'"'; 18];
    let mut i = 0;
    while i < 16 {
        out[1 + i] = HEX[((hash >> (60 - 4 * i)) & 0xf) as usize];
        i += 1;
    }
    out
}

macro_rules! asset {
    ($path:literal, $content_type:expr) => {{
        const BODY: &[u8] = include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/console/", $path));
        const ETAG: [u8; 18] = etag_of(BODY);
        Asset {
            path: $path,
            content_type: $content_type,
            body: BODY,
            etag: match std::str::from_utf8(&ETAG) {
                Ok(s) => s,
                Err(_) => panic!("an ETag is ASCII"),
            },
        }
    }};
}

static ASSETS: &[Asset] = &[
    asset!("index.html", HTML),
    asset!("style.css", CSS),
    asset!("favicon.svg", SVG),
    asset!("app.js", JS),
    asset!("api.js", JS),
    asset!("ui.js", JS),
    asset!("chart.js", JS),
    asset!("voices.js", JS),
    asset!("pages/playground.js", JS),
    asset!("pages/voices.js", JS),
    asset!("pages/usage.js", JS),
    asset!("pages/keys.js", JS),
    asset!("pages/generations.js", JS),
    asset!("pages/webhooks.js", JS),
];

pub fn routes(r: &mut crate::routes::Routes) {
    for method in [Method::GET, Method::HEAD] {
        r.route(method.clone(), "/console", index)
            .route(method.clone(), "/console/", index)
            .route(method, "/console/{path:.*}", asset);
    }
}

async fn index(req: HttpRequest) -> HttpResponse {
    serve(&req, &ASSETS[0])
}

async fn asset(req: HttpRequest, path: web::Path<String>) -> Result<HttpResponse, ApiError> {
    ASSETS
        .iter()
        .find(|a| a.path == path.as_str())
        .map(|a| serve(&req, a))
        .ok_or_else(|| ApiError::not_found("console file"))
}

fn serve(req: &HttpRequest, asset: &Asset) -> HttpResponse {
    let fresh = req
        .headers()
        .get_all(header::IF_NONE_MATCH)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|tag| {
            let tag = tag.trim();
            tag == "*" || tag.trim_start_matches("W/") == asset.etag
        });
    let mut response = if fresh {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    response
        .insert_header((header::ETAG, asset.etag))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .insert_header(("cross-origin-opener-policy", "same-origin"))
        .insert_header(("cross-origin-resource-policy", "same-origin"));
    if fresh {
        return response.finish();
    }
    response
        .insert_header((header::CONTENT_TYPE, asset.content_type))
        .body(asset.body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_has_a_distinct_path_and_a_quoted_etag() {
        for (i, a) in ASSETS.iter().enumerate() {
            assert!(
                ASSETS[i + 1..].iter().all(|b| b.path != a.path),
                "{}",
                a.path
            );
            assert_eq!(a.etag.len(), 18);
            assert!(a.etag.starts_with('"') && a.etag.ends_with('"'));
            assert!(!a.body.is_empty(), "{}", a.path);
        }
        assert_ne!(ASSETS[0].etag, ASSETS[1].etag);
    }

    #[test]
    fn every_module_the_page_imports_is_served() {
        // A module that the JavaScript imports but the table forgets would
        // break the page in the browser only: check the imports here.
        for a in ASSETS.iter().filter(|a| a.path.ends_with(".js")) {
            let text = std::str::from_utf8(a.body).unwrap();
            let dir = a.path.rsplit_once('/').map_or("", |(d, _)| d);
            for line in text.lines().filter(|l| l.starts_with("import ")) {
                let spec = line.split('"').nth(1).unwrap();
                let mut parts: Vec<&str> = if dir.is_empty() {
                    vec![]
                } else {
                    dir.split('/').collect()
                };
                for segment in spec.split('/') {
                    match segment {
                        "." => {}
                        ".." => {
                            parts.pop();
                        }
                        s => parts.push(s),
                    }
                }
                let target = parts.join("/");
                assert!(
                    ASSETS.iter().any(|b| b.path == target),
                    "{} imports {spec}, which is not served",
                    a.path
                );
            }
        }
    }
}
