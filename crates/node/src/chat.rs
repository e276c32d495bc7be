//! The body of a chat message: the text, and the name its author goes by.
//!
//! The name travels in the signed body so a receiver can print it without
//! knowing the author's record; it is a label only (the id is the identity).
//!
//! [`Node::broadcast_text`](crate::Node::broadcast_text) sends one; a
//! subscriber reads one back with [`ChatBody::decode`] from the body of a
//! [`Received`](crate::Received) of kind `Chat`.

use serde::{Deserialize, Serialize};

/// Longest chat text in bytes: a long paragraph; anything larger is a file,
/// not a chat line.
pub const MAX_TEXT_BYTES: usize = 16 * 1024;

/// Longest name in bytes (as in a node record).
pub const MAX_NAME_BYTES: usize = gossipnet_proto::record::MAX_NAME_LEN;

/// A chat line: what travels, signed, in the body of a `Chat` message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatBody {
    /// The author's name, if it has one.
    pub name: Option<String>,
    /// What the author wrote, at most [`MAX_TEXT_BYTES`]; control
    /// characters are replaced on decode.
    pub text: String,
}

impl ChatBody {
    /// The bytes of the body, for [`Node::broadcast`](crate::Node::broadcast)
    /// with `Kind::Chat`.
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_allocvec(self).unwrap_or_default()
    }

    /// Decodes a body, refusing oversized fields. Control characters in the
    /// text and name are replaced, so a message cannot rewrite a terminal.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let body: ChatBody = postcard::from_bytes(bytes).ok()?;
        if body.text.len() > MAX_TEXT_BYTES
            || body.name.as_ref().is_some_and(|n| n.len() > MAX_NAME_BYTES)
        {
            return None;
        }
        Some(Self {
            name: body.name.map(|n| sanitize(&n)),
            text: sanitize(&body.text),
        })
    }
}

/// Replaces control characters (escape sequences, carriage returns) with
/// U+FFFD, keeping tabs.
pub fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_control() && c != '\t' {
                '\u{fffd}'
            } else {
                c
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_strips_control_characters() {
        let body = ChatBody {
            name: Some("ann".into()),
            text: "hi\u{1b}[2J there".into(),
        };
        let back = ChatBody::decode(&body.encode()).unwrap();
        assert_eq!(back.name.as_deref(), Some("ann"));
        assert_eq!(back.text, "hi\u{fffd}[2J there");
    }

    #[test]
    fn oversized_text_is_refused() {
        let body = ChatBody {
            name: None,
            text: "x".repeat(MAX_TEXT_BYTES + 1),
        };
        assert!(ChatBody::decode(&body.encode()).is_none());
        assert!(ChatBody::decode(b"\xff\xff\xff").is_none());
    }
}
