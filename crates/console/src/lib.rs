//! Warren's web console: plain HTML, CSS and JavaScript modules (no build step), embedded in
//! the binary and served at `/` on the HTTP listener. The pages use only the management API
//! and the async HTTP API, logged in through `/api/session`; every page goes out with a strict
//! Content-Security-Policy (nothing but this origin's own scripts, styles and API).

use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

#[derive(rust_embed::RustEmbed)]
#[folder = "assets/"]
struct Assets;

/// The policy every console response carries: this origin's scripts, styles, images and API
/// only; no inline script or style, no framing, no plugins, forms post only here.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; font-src 'self'; connect-src 'self'; form-action 'self'; \
     frame-ancestors 'none'; base-uri 'none'";

/// The console's routes (merged into the HTTP listener's router).
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new().route("/", get(|headers: HeaderMap| async move { asset("index.html", &headers) })).route(
        "/console/{*path}",
        get(|Path(path): Path<String>, headers: HeaderMap| async move { asset(&path, &headers) }),
    )
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("json") => "application/json",
        _ => "application/octet-stream",
    }
}

fn asset(path: &str, request: &HeaderMap) -> Response {
    let Some(file) = Assets::get(path) else {
        return (StatusCode::NOT_FOUND, [(header::CONTENT_TYPE, "text/plain")], "no such page").into_response();
    };
    let etag: String = file.metadata.sha256_hash().iter().take(16).map(|b| format!("{b:02x}")).collect();
    let etag = format!("\"{etag}\"");
    let unchanged = request.get(header::IF_NONE_MATCH).is_some_and(|v| v.as_bytes() == etag.as_bytes());
    let mut response =
        if unchanged { StatusCode::NOT_MODIFIED.into_response() } else { file.data.into_owned().into_response() };
    let headers = response.headers_mut();
    let fixed = [
        (header::CONTENT_TYPE, content_type(path)),
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        // Asked again every time, answered 304 while unchanged: a new broker's console is
        // never mixed with an old one's cached files.
        (header::CACHE_CONTROL, "no-cache"),
    ];
    for (name, value) in fixed {
        headers.insert(name, HeaderValue::from_static(value));
    }
    headers.insert(header::ETAG, HeaderValue::from_str(&etag).expect("hex in quotes"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    async fn get(path: &str, if_none_match: Option<&str>) -> Response {
        let mut request = Request::get(path);
        if let Some(tag) = if_none_match {
            request = request.header(header::IF_NONE_MATCH, tag);
        }
        router::<()>().oneshot(request.body(Body::empty()).unwrap()).await.unwrap()
    }

    #[tokio::test]
    async fn the_console_is_served_with_its_policy_and_revalidated_by_etag() {
        let page = get("/", None).await;
        assert_eq!(page.status(), StatusCode::OK);
        assert_eq!(page.headers()[header::CONTENT_TYPE], "text/html; charset=utf-8");
        assert_eq!(page.headers()[header::CONTENT_SECURITY_POLICY], CONTENT_SECURITY_POLICY);
        let etag = page.headers()[header::ETAG].to_str().unwrap().to_owned();
        assert_eq!(get("/", Some(&etag)).await.status(), StatusCode::NOT_MODIFIED);
        let script = get("/console/app.js", None).await;
        assert_eq!(script.headers()[header::CONTENT_TYPE], "text/javascript; charset=utf-8");
        assert_eq!(get("/console/nothing.js", None).await.status(), StatusCode::NOT_FOUND);
        assert_eq!(get("/console/../Cargo.toml", None).await.status(), StatusCode::NOT_FOUND);
    }

    #[test]
    fn no_page_has_inline_script_or_style_or_an_external_address() {
        for path in Assets::iter() {
            let file = Assets::get(&path).unwrap();
            let Ok(text) = std::str::from_utf8(&file.data) else { continue };
            if path.ends_with(".html") {
                assert!(!text.contains("<script>") && !text.contains("style="), "{path} has inline code");
                assert!(!text.contains("<style"), "{path} has an inline style sheet");
            }
            for scheme in ["http://", "https://", "//cdn", "fonts.googleapis"] {
                let outside = text.match_indices(scheme).any(|(i, _)| !text[i..].starts_with("http://www.w3.org"));
                assert!(!outside, "{path} names an address outside the broker ({scheme})");
            }
        }
    }
}
