//! A tolerant Sentry envelope parser.
//!
//! `Envelope = Headers { "\n" Item } [ "\n" ]; Item = Headers "\n" Payload`. Item payloads run
//! for `length` bytes when the header has one, else to the next newline (or the end). Unknown
//! item types are kept (the caller skips them); only a structurally broken envelope is an error.

use serde_json::Value;

#[derive(Debug, Clone)]
pub struct Item<'a> {
    pub header: serde_json::Map<String, Value>,
    pub payload: &'a [u8],
}

impl Item<'_> {
    pub fn ty(&self) -> &str {
        self.header
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("")
    }
}

#[derive(Debug, Clone)]
pub struct Envelope<'a> {
    pub header: serde_json::Map<String, Value>,
    pub items: Vec<Item<'a>>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EnvelopeError {
    #[error("the envelope is empty; send a JSON header line and items")]
    Empty,
    #[error("the envelope header is not a JSON object: {0}")]
    Header(String),
    #[error("item {index} header is not a JSON object: {reason}")]
    ItemHeader { index: usize, reason: String },
    #[error("item {index} declares length {length} but only {available} bytes follow")]
    Truncated {
        index: usize,
        length: usize,
        available: usize,
    },
    #[error("item {index} payload of length {length} is not followed by a newline")]
    MissingNewline { index: usize, length: usize },
    #[error("more than {0} items in one envelope")]
    TooManyItems(usize),
}

const MAX_ITEMS: usize = 1000;

fn parse_header(line: &[u8]) -> Result<serde_json::Map<String, Value>, String> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let text = std::str::from_utf8(line).map_err(|_| "not UTF-8".to_string())?;
    match serde_json::from_str::<Value>(text.trim()) {
        Ok(Value::Object(o)) => Ok(o),
        Ok(_) => Err("not an object".into()),
        Err(e) => Err(e.to_string()),
    }
}

pub fn parse(body: &[u8]) -> Result<Envelope<'_>, EnvelopeError> {
    if body.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(EnvelopeError::Empty);
    }
    let (head, mut rest) = match body.iter().position(|&b| b == b'\n') {
        Some(i) => (&body[..i], &body[i + 1..]),
        None => (body, &body[body.len()..]),
    };
    let header = parse_header(head).map_err(EnvelopeError::Header)?;
    let mut items = Vec::new();
    loop {
        // Blank lines between items are tolerated.
        while let Some(r) = rest
            .strip_prefix(b"\n")
            .or_else(|| rest.strip_prefix(b"\r\n"))
        {
            rest = r;
        }
        if rest.is_empty() {
            break;
        }
        let index = items.len();
        if index >= MAX_ITEMS {
            return Err(EnvelopeError::TooManyItems(MAX_ITEMS));
        }
        let (line, after) = match rest.iter().position(|&b| b == b'\n') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, &rest[rest.len()..]),
        };
        let header =
            parse_header(line).map_err(|reason| EnvelopeError::ItemHeader { index, reason })?;
        let length = header.get("length").and_then(Value::as_u64);
        let (payload, next) = match length {
            Some(len) => {
                let len = len as usize;
                if len > after.len() {
                    return Err(EnvelopeError::Truncated {
                        index,
                        length: len,
                        available: after.len(),
                    });
                }
                let (p, tail) = after.split_at(len);
                let tail = if tail.is_empty() {
                    tail
                } else if let Some(t) = tail.strip_prefix(b"\n") {
                    t
                } else if let Some(t) = tail.strip_prefix(b"\r\n") {
                    t
                } else {
                    return Err(EnvelopeError::MissingNewline { index, length: len });
                };
                (p, tail)
            }
            None => match after.iter().position(|&b| b == b'\n') {
                Some(i) => (&after[..i], &after[i + 1..]),
                None => (after, &after[after.len()..]),
            },
        };
        items.push(Item { header, payload });
        rest = next;
    }
    Ok(Envelope { header, items })
}

/// Normalises an event id (32 hex, or a dashed UUID) to 32 lowercase hex.
pub fn normalize_event_id(id: &str) -> Option<String> {
    let hex: String = id.chars().filter(|c| *c != '-').collect();
    (hex.len() == 32 && hex.chars().all(|c| c.is_ascii_hexdigit()))
        .then(|| hex.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_with_and_without_length() {
        let body = b"{\"event_id\":\"9ec79c33ec9942ab8353589fcb2e04dc\"}\n{\"type\":\"attachment\",\"length\":10}\n\xef\xbb\xbfHello\r\n\n{\"type\":\"event\"}\n{\"message\":\"hi\"}\n{\"type\":\"session\"}\n{}";
        let e = parse(body).unwrap();
        assert_eq!(e.items.len(), 3);
        assert_eq!(e.items[0].payload, b"\xef\xbb\xbfHello\r\n");
        assert_eq!(e.items[1].ty(), "event");
        assert_eq!(e.items[1].payload, b"{\"message\":\"hi\"}");
        assert_eq!(e.items[2].payload, b"{}");
    }

    #[test]
    fn header_only_and_empty_payloads() {
        assert_eq!(parse(b"{}").unwrap().items.len(), 0);
        assert_eq!(parse(b"{}\n").unwrap().items.len(), 0);
        let e = parse(b"{}\n{\"type\":\"attachment\",\"length\":0}\n\n{\"type\":\"attachment\",\"length\":0}\n").unwrap();
        assert_eq!(e.items.len(), 2);
        assert!(e.items.iter().all(|i| i.payload.is_empty()));
    }

    #[test]
    fn broken_envelopes() {
        assert_eq!(parse(b"").unwrap_err(), EnvelopeError::Empty);
        assert!(matches!(parse(b"junk\n"), Err(EnvelopeError::Header(_))));
        assert!(matches!(
            parse(b"{}\n{\"type\":\"event\",\"length\":50}\n{}"),
            Err(EnvelopeError::Truncated { .. })
        ));
        assert!(matches!(
            parse(b"{}\n{\"type\":\"event\",\"length\":2}\n{}xx\n"),
            Err(EnvelopeError::MissingNewline { .. })
        ));
        assert!(matches!(
            parse(b"{}\n\xff\xfe\n{}"),
            Err(EnvelopeError::ItemHeader { .. })
        ));
    }

    #[test]
    fn event_ids() {
        assert_eq!(
            normalize_event_id("9EC79C33-EC99-42AB-8353-589FCB2E04DC").as_deref(),
            Some("9ec79c33ec9942ab8353589fcb2e04dc")
        );
        assert_eq!(normalize_event_id("nope"), None);
    }
}
