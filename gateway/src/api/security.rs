//! Browser-facing protection: which origins may call us, and the security headers on every
//! response.

use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method};
use axum::response::Response;
use tower_http::cors::{AllowOrigin, CorsLayer};

/// May a page from `origin` open a signaling socket? Non-browser clients send no Origin.
/// Without an allow list, only pages served by this host (same origin) may.
pub fn origin_allowed(origin: Option<&str>, host: Option<&str>, allowed: &[String]) -> bool {
    let Some(origin) = origin else { return true };
    if allowed.iter().any(|a| a.trim_end_matches('/').eq_ignore_ascii_case(origin)) {
        return true;
    }
    let origin_host = origin.split_once("://").map(|(_, rest)| rest).unwrap_or(origin);
    allowed.is_empty() && host.is_some_and(|h| h.eq_ignore_ascii_case(origin_host))
}

/// CORS for the JSON API: only the configured origins (none: same-origin only).
pub fn cors(allowed: &[String]) -> Option<CorsLayer> {
    let origins: Vec<HeaderValue> = allowed.iter().filter_map(|o| HeaderValue::from_str(o.trim_end_matches('/')).ok()).collect();
    if origins.is_empty() {
        return None;
    }
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods([Method::GET, Method::POST, Method::DELETE])
            .allow_headers([header::CONTENT_TYPE, header::AUTHORIZATION]),
    )
}

/// Headers every response carries (pages, API, HLS), unless the response set its own.
const SECURITY_HEADERS: [(HeaderName, &str); 5] = [
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (header::REFERRER_POLICY, "no-referrer"),
    (header::X_FRAME_OPTIONS, "SAMEORIGIN"),
    (HeaderName::from_static("permissions-policy"), "camera=(self), microphone=(self), display-capture=(self)"),
    (
        header::CONTENT_SECURITY_POLICY,
        "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; connect-src 'self' ws: wss:; worker-src 'self' blob:; style-src 'self' 'unsafe-inline'; frame-ancestors 'self'",
    ),
];

/// Adds the security headers a response does not have (one middleware for all of them: each
/// layer of a router is cloned for every request).
pub async fn security_headers(mut response: Response) -> Response {
    add_security_headers(response.headers_mut());
    response
}

/// What `security_headers` does, for responses made outside the router (`hls_fast_path`).
pub fn add_security_headers(headers: &mut HeaderMap) {
    for (name, value) in SECURITY_HEADERS {
        if !headers.contains_key(&name) {
            headers.insert(name, HeaderValue::from_static(value));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins() {
        let none: Vec<String> = vec![];
        assert!(origin_allowed(None, Some("a.test:8080"), &none), "non-browser clients");
        assert!(origin_allowed(Some("http://a.test:8080"), Some("a.test:8080"), &none), "same origin");
        assert!(!origin_allowed(Some("http://evil.test"), Some("a.test:8080"), &none));
        let list = vec!["https://app.example.com".to_owned()];
        assert!(origin_allowed(Some("https://app.example.com"), Some("media.example.com"), &list));
        assert!(!origin_allowed(Some("https://evil.example.com"), Some("media.example.com"), &list));
        assert!(!origin_allowed(Some("http://media.example.com"), Some("media.example.com"), &list), "with a list, only the list");
    }
}
