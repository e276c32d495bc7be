//! `/metrics`: the node's counters and gauges in the Prometheus text
//! exposition format (version 0.0.4), read from its status at each scrape.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};

use super::routes::{unavailable, ApiError, ApiState};
use crate::PerClass;

/// Prometheus text exposition of the node's counters and gauges.
pub(super) async fn metrics(State(state): State<Arc<ApiState>>) -> Result<Response, ApiError> {
    let s = state.node.status().await.map_err(unavailable)?;
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, value: f64| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        let _ = writeln!(out, "{name} {value}");
    };
    metric("gossipnet_up", "gauge", "1 while the node runs.", 1.0);
    metric(
        "gossipnet_uptime_seconds",
        "gauge",
        "Seconds since the node started.",
        s.identity.uptime_s as f64,
    );
    metric(
        "gossipnet_links",
        "gauge",
        "Open links to other nodes.",
        s.views.links as f64,
    );
    metric(
        "gossipnet_active_view_size",
        "gauge",
        "Neighbours in the active view (HyParView).",
        s.views.active.len() as f64,
    );
    metric(
        "gossipnet_passive_view_size",
        "gauge",
        "Peers in the passive view (HyParView).",
        s.views.passive.len() as f64,
    );
    metric(
        "gossipnet_seeds_reachable",
        "gauge",
        "Configured seeds with an open link.",
        s.views.seeds_reachable as f64,
    );
    metric(
        "gossipnet_messages_broadcast_total",
        "counter",
        "Messages this node broadcast.",
        s.counters.broadcast as f64,
    );
    metric(
        "gossipnet_messages_delivered_total",
        "counter",
        "Broadcast messages delivered here, each once.",
        s.counters.delivered as f64,
    );
    metric(
        "gossipnet_messages_forwarded_total",
        "counter",
        "Full copies of broadcast messages sent to neighbours.",
        s.counters.forwarded as f64,
    );
    metric(
        "gossipnet_messages_duplicate_total",
        "counter",
        "Duplicate copies of broadcast messages received.",
        s.counters.duplicates as f64,
    );
    metric(
        "gossipnet_link_messages_sent_total",
        "counter",
        "Protocol messages queued to links.",
        s.counters.messages_sent as f64,
    );
    metric(
        "gossipnet_link_messages_received_total",
        "counter",
        "Protocol messages read from links.",
        s.counters.messages_received as f64,
    );
    metric(
        "gossipnet_bytes_sent_total",
        "counter",
        "Bytes of protocol messages queued to links.",
        s.counters.bytes_sent as f64,
    );
    metric(
        "gossipnet_bytes_received_total",
        "counter",
        "Bytes of protocol messages read from links.",
        s.counters.bytes_received as f64,
    );
    metric(
        "gossipnet_handshake_failures_total",
        "counter",
        "Links that failed their handshake, either way.",
        s.counters.handshake_failures as f64,
    );
    if let Some(e) = s.size_estimate {
        metric(
            "gossipnet_network_size_estimate",
            "gauge",
            "Gossip estimate of the number of nodes in the network.",
            e,
        );
    }
    if let Some(r) = s.views.registry_size {
        metric(
            "gossipnet_registry_size",
            "gauge",
            "Live nodes in this seed's registry.",
            r as f64,
        );
    }
    by_kind(
        &mut out,
        "gossipnet_bytes_sent_by_kind_total",
        "Bytes of protocol messages queued to links, by kind of message.",
        &s.counters.bytes_sent_by_kind,
    );
    by_kind(
        &mut out,
        "gossipnet_link_messages_sent_by_kind_total",
        "Protocol messages queued to links, by kind of message.",
        &s.counters.messages_sent_by_kind,
    );
    let _ = writeln!(out, "# HELP gossipnet_node_info The node's identity.");
    let _ = writeln!(out, "# TYPE gossipnet_node_info gauge");
    let _ = writeln!(
        out,
        "gossipnet_node_info{{id=\"{}\",name=\"{}\",role=\"{}\"}} 1",
        s.identity.id,
        label(s.identity.name.as_deref().unwrap_or("")),
        s.identity.role
    );
    let mut response = out.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    Ok(response)
}

/// A counter with one sample per class of message, labelled `kind`. The
/// class names are plain lowercase words, so they need no escaping.
fn by_kind(out: &mut String, name: &str, help: &str, counts: &PerClass) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} counter");
    for (class, n) in counts.iter() {
        let _ = writeln!(out, "{name}{{kind=\"{}\"}} {n}", class.name());
    }
}

/// Escapes a Prometheus label value.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use gossipnet_proto::wire::Class;

    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn counts_by_kind_are_one_counter_with_a_sample_per_kind() {
        let mut counts = PerClass::default();
        counts.add(Class::IHave, 42);
        let mut out = String::new();
        by_kind(&mut out, "x_total", "Help.", &counts);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines[..2],
            ["# HELP x_total Help.", "# TYPE x_total counter"]
        );
        assert_eq!(lines.len(), 2 + Class::COUNT);
        assert!(lines.contains(&"x_total{kind=\"ihave\"} 42"), "{out}");
        assert!(lines.contains(&"x_total{kind=\"gossip\"} 0"), "{out}");
    }
}
