//! `gossipnet history`: the stored broadcasts of a node, through its
//! control API while it runs, read straight from its data dir when it
//! does not.

use super::*;

/// `gossipnet history`.
#[derive(Debug, Args)]
pub struct HistoryArgs {
    #[command(flatten)]
    target: Target,
    /// Only messages sent since TIME: a Unix time in milliseconds, an
    /// RFC 3339 time (2026-12-01T18:00:00Z), or a span ago (90s, 10m, 2h,
    /// 1d).
    #[arg(long, value_name = "TIME")]
    since: Option<String>,
    /// Only messages from the node whose id starts with ID (its short form
    /// will do).
    #[arg(long, value_name = "ID")]
    from: Option<String>,
    /// At most N messages, the newest.
    #[arg(long, value_name = "N", default_value_t = 50)]
    limit: usize,
}

/// `gossipnet history`: through the control API when the node runs,
/// straight from its data dir when it does not.
pub fn history(args: HistoryArgs) -> Result<()> {
    let since_ms = args
        .since
        .as_deref()
        .map(|s| parse_since(s, gossipnet_node::time::unix_ms()))
        .transpose()?;
    let limit = args.limit.min(gossipnet_node::MAX_HISTORY_QUERY);
    let dir = args
        .target
        .data_dir
        .clone()
        .or_else(|| args.target.name.as_deref().map(default_data_dir));
    let running = dir.as_deref().is_none_or(|d| {
        ControlFile::read(d).is_ok_and(|c| Path::new(&format!("/proc/{}", c.pid)).exists())
    });
    let messages: Vec<Value> = match (&dir, running) {
        (Some(dir), false) => {
            let query = gossipnet_node::HistoryQuery {
                since_ms,
                from: args.from.clone(),
                limit,
            };
            gossipnet_node::read_history(dir, &query)
                .with_context(|| format!("cannot read the history in {}", dir.display()))?
                .iter()
                .map(gossipnet_node::control::message_json)
                .collect()
        }
        _ => {
            let client = Client::connect(&args.target)?;
            let mut path = format!("/api/history?limit={limit}");
            if let Some(since) = since_ms {
                path.push_str(&format!("&since={since}"));
            }
            if let Some(from) = &args.from {
                path.push_str(&format!("&from={from}"));
            }
            client
                .get(&path)?
                .as_array()
                .cloned()
                .context("the node's history answer is not a list")?
        }
    };
    if args.target.json {
        return print_json(&messages);
    }
    if messages.is_empty() {
        outln!("no messages");
    }
    for m in &messages {
        outln!("{}", history_line(m));
    }
    Ok(())
}

/// `2026-12-01 18:00:00 name (shortid): text`, and a mark for our own
/// lines; other kinds show as `(kind)`.
fn history_line(m: &Value) -> String {
    let time = m["time"]
        .as_i64()
        .and_then(chrono::DateTime::from_timestamp_millis)
        .map(|t| {
            t.with_timezone(&chrono::Local)
                .format("%Y-%m-%d %H:%M:%S")
                .to_string()
        })
        .unwrap_or_else(|| "-".into());
    let origin = m["origin"].as_str().unwrap_or("");
    let short = origin.get(..8).unwrap_or(origin);
    let name = gossipnet_node::chat::sanitize(m["name"].as_str().unwrap_or("anonymous"));
    let text = match m["text"].as_str() {
        Some(t) => gossipnet_node::chat::sanitize(t),
        None => format!("({})", m["kind"].as_str().unwrap_or("message")),
    };
    let own = if m["own"].as_bool() == Some(true) {
        " (you)"
    } else {
        ""
    };
    format!("{time} {name} ({short}){own}: {text}")
}

/// `--since`: Unix ms, RFC 3339, or a span before `now_ms`.
fn parse_since(text: &str, now_ms: u64) -> Result<u64> {
    if let Ok(ms) = text.parse::<u64>() {
        return Ok(ms);
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return u64::try_from(t.timestamp_millis())
            .map_err(|_| anyhow!("--since {text} is before 1970"));
    }
    let (number, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit()).unwrap_or(0));
    let n: u64 = number.parse().map_err(|_| {
        anyhow!("--since {text}: give Unix ms, an RFC 3339 time, or a span like 10m")
    })?;
    let unit_ms = match unit {
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => bail!("--since {text}: the span's unit is s, m, h or d"),
    };
    Ok(now_ms.saturating_sub(n.saturating_mul(unit_ms)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_ms_rfc3339_and_spans() {
        let now = 10 * 86_400_000;
        assert_eq!(parse_since("1234", now).unwrap(), 1234);
        assert_eq!(parse_since("1970-01-01T00:00:01Z", now).unwrap(), 1000);
        assert_eq!(parse_since("90s", now).unwrap(), now - 90_000);
        assert_eq!(parse_since("2h", now).unwrap(), now - 7_200_000);
        assert_eq!(parse_since("1d", now).unwrap(), now - 86_400_000);
        assert!(parse_since("1w", now).is_err());
        assert!(parse_since("soon", now).is_err());
    }

    #[test]
    fn a_history_line_marks_our_own() {
        let m = json!({
            "time": 0, "origin": "abcdefghijklmnop", "name": "ann",
            "text": "hi\u{1b}[2J", "own": true, "kind": "chat",
        });
        let line = history_line(&m);
        assert!(
            line.ends_with("ann (abcdefgh) (you): hi\u{fffd}[2J"),
            "{line}"
        );
    }
}
