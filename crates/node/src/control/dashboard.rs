//! The dashboard: one HTML page (`dashboard/index.html`) with its style and
//! script inlined when served, so the page needs no build step and makes no
//! outside requests. It reads the API with the cookie from its own URL.

use axum::response::Html;

/// The page, with a marker for the style and one for the script.
const PAGE: &str = include_str!("dashboard/index.html");
/// The page's style, put in place of `/*GOSSIPNET_STYLE*/`.
const STYLE: &str = include_str!("dashboard/style.css");
/// The page's script, put in place of `/*GOSSIPNET_SCRIPT*/`.
const SCRIPT: &str = include_str!("dashboard/app.js");

/// The dashboard: one page with its style and script inline.
pub(super) async fn dashboard() -> Html<String> {
    Html(
        PAGE.replace("/*GOSSIPNET_STYLE*/", STYLE)
            .replace("/*GOSSIPNET_SCRIPT*/", SCRIPT),
    )
}
