//! The cookie: a fresh random secret per start, which every request must
//! present, as a bearer token or as the `cookie` query parameter (the
//! browser's page and its event stream cannot set headers).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::routes::{ApiError, ApiState};

/// Random bytes in a cookie: 256 bits, beyond guessing.
const COOKIE_BYTES: usize = 32;

/// A new cookie: [`COOKIE_BYTES`] random bytes as hex.
pub(super) fn new_cookie() -> String {
    let bytes: [u8; COOKIE_BYTES] = rand::random();
    data_encoding::HEXLOWER.encode(&bytes)
}

/// The paths that take the cookie as a query parameter: the page a browser
/// opens from the printed link, and its event stream (`EventSource` cannot
/// set a header). Everywhere else a cookie in a URL would only end up in
/// shell histories and logs.
const QUERY_COOKIE_PATHS: [&str; 2] = ["/", "/api/events"];

/// Lets a request through only with the cookie: as a bearer token, or as
/// the `cookie` query parameter on [`QUERY_COOKIE_PATHS`].
pub(super) async fn auth(State(state): State<Arc<ApiState>>, req: Request, next: Next) -> Response {
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let query_allowed =
        req.method() == axum::http::Method::GET && QUERY_COOKIE_PATHS.contains(&req.uri().path());
    let query = req.uri().query().filter(|_| query_allowed).and_then(|q| {
        q.split('&')
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| *k == "cookie")
            .map(|(_, v)| v)
    });
    let ok = bearer
        .into_iter()
        .chain(query)
        .any(|given| same(given.as_bytes(), state.cookie.as_bytes()));
    if !ok {
        return ApiError(
            StatusCode::UNAUTHORIZED,
            "this API needs the cookie from the node's control.json, as \
             'Authorization: Bearer COOKIE' ('?cookie=COOKIE' only for the page \
             and /api/events)"
                .into(),
        )
        .into_response();
    }
    next.run(req).await
}

/// Compares in time that does not depend on where the inputs differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_compare_whole() {
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abc", b"abd"));
        assert!(!same(b"abc", b"abcd"));
        assert!(!same(b"", b"a"));
    }

    #[test]
    fn cookies_are_fresh_hex() {
        let (a, b) = (new_cookie(), new_cookie());
        assert_eq!(a.len(), 2 * COOKIE_BYTES);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
