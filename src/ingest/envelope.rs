//! A tolerant Sentry envelope parser.
//!
//! `Envelope = Headers { "\n" Item } [ "\n" ]; Item = Headers "\n" Payload`. Item payloads run
//! for `length` bytes when the header has one, else to the next newline (or the end). Unknown
//! item types are kept (the caller skips them); only a structurally broken envelope is an error.

//! Headers are small JSON objects: a header line longer than [`MAX_HEADER_LINE`] is refused
//! before it is parsed, and only the fields Hearth reads are kept (the rest is skipped without
//! allocating), so no header, however shaped, costs more memory than its own bytes.

use std::fmt;
use std::io::Read;

use serde::Deserialize;
use serde::de::{Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// Longest envelope or item header line accepted (SDKs send a few hundred bytes).
pub const MAX_HEADER_LINE: usize = 16 * 1024;

/// A field that is kept when its JSON value has the expected type and ignored (not an error)
/// otherwise, as a tolerant reader of SDK payloads must.
#[derive(Debug, Clone, PartialEq)]
pub struct Lenient<T>(pub Option<T>);

impl<T> Default for Lenient<T> {
    fn default() -> Self {
        Lenient(None)
    }
}

struct LenientVisitor<T>(std::marker::PhantomData<T>);

/// What a lenient field accepts; every other JSON value leaves it empty.
pub trait LenientKind: Sized {
    fn from_str(_: &str) -> Option<Self> {
        None
    }
    fn from_u64(_: u64) -> Option<Self> {
        None
    }
    fn from_i64(_: i64) -> Option<Self> {
        None
    }
    fn from_f64(_: f64) -> Option<Self> {
        None
    }
    fn from_bool(_: bool) -> Option<Self> {
        None
    }
}

impl LenientKind for String {
    fn from_str(s: &str) -> Option<Self> {
        Some(s.to_string())
    }
}

impl LenientKind for u64 {
    fn from_u64(v: u64) -> Option<Self> {
        Some(v)
    }
}

impl<'de, T: LenientKind> Visitor<'de> for LenientVisitor<T> {
    type Value = Lenient<T>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Lenient(T::from_str(v)))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Lenient(T::from_u64(v)))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Lenient(T::from_i64(v)))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Lenient(T::from_f64(v)))
    }
    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Lenient(T::from_bool(v)))
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Lenient(None))
    }
    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(Lenient(None))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Lenient(None))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Lenient(None))
    }
}

impl<'de, T: LenientKind> Deserialize<'de> for Lenient<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(LenientVisitor(std::marker::PhantomData))
    }
}

impl<T> Lenient<T> {
    pub fn get(&self) -> Option<&T> {
        self.0.as_ref()
    }
}

/// The envelope header fields Hearth reads.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct EnvelopeHeader {
    #[serde(default)]
    pub event_id: Lenient<String>,
    #[serde(default)]
    pub dsn: Lenient<String>,
}

/// The item header fields Hearth reads.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ItemHeader {
    #[serde(default, rename = "type")]
    pub ty: Lenient<String>,
    #[serde(default)]
    pub length: Lenient<u64>,
    #[serde(default)]
    pub filename: Lenient<String>,
    #[serde(default)]
    pub content_type: Lenient<String>,
    #[serde(default)]
    pub attachment_type: Lenient<String>,
    #[serde(default)]
    pub item_count: Lenient<u64>,
}

#[derive(Debug, Clone)]
pub struct Item<'a> {
    pub header: ItemHeader,
    pub payload: &'a [u8],
}

impl Item<'_> {
    pub fn ty(&self) -> &str {
        self.header.ty.get().map_or("", String::as_str)
    }
}

#[derive(Debug, Clone)]
pub struct Envelope<'a> {
    pub header: EnvelopeHeader,
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

/// Parses a header line (capped at [`MAX_HEADER_LINE`]) into the fields of `T`.
pub fn parse_header<'de, T: Deserialize<'de>>(line: &'de [u8]) -> Result<T, String> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.len() > MAX_HEADER_LINE {
        return Err(format!(
            "the header line is {} bytes; headers are at most {MAX_HEADER_LINE} bytes",
            line.len()
        ));
    }
    let text = std::str::from_utf8(line).map_err(|_| "not UTF-8".to_string())?;
    let text = text.trim();
    if !text.starts_with('{') {
        return Err("not an object".into());
    }
    serde_json::from_str::<T>(text).map_err(|e| e.to_string())
}

pub fn parse(body: &[u8]) -> Result<Envelope<'_>, EnvelopeError> {
    if body.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(EnvelopeError::Empty);
    }
    let (head, mut rest) = match body.iter().position(|&b| b == b'\n') {
        Some(i) => (&body[..i], &body[i + 1..]),
        None => (body, &body[body.len()..]),
    };
    let header: EnvelopeHeader = parse_header(head).map_err(EnvelopeError::Header)?;
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
        let header: ItemHeader = header;
        let length = header.length.get().copied();
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

/// An item read from a stream: its header and the part of its payload that was kept.
#[derive(Debug)]
pub struct OwnedItem {
    pub header: ItemHeader,
    /// The first [`Keep::bytes`] bytes of the payload.
    pub payload: Vec<u8>,
    /// The payload's full size.
    pub size: u64,
}

impl OwnedItem {
    pub fn ty(&self) -> &str {
        self.header.ty.get().map_or("", String::as_str)
    }
}

/// How much of an item's payload to keep, decided from its header before it is read.
#[derive(Debug, Clone, Copy)]
pub struct Keep {
    pub bytes: usize,
    /// A payload larger than `bytes` is an error (else the rest is read and dropped).
    pub error_over: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
    #[error("{0}")]
    TooLarge(String),
    #[error("the {ty} item is larger than {limit} bytes")]
    ItemTooLarge { ty: String, limit: usize },
    #[error("cannot read the body: {0}")]
    Io(String),
}

fn io_error(e: std::io::Error) -> StreamError {
    match e
        .get_ref()
        .and_then(|i| i.downcast_ref::<super::decode::CapExceeded>())
    {
        Some(cap) => StreamError::TooLarge(cap.to_string()),
        None => StreamError::Io(e.to_string()),
    }
}

/// Reads an envelope item by item from a (decompressing) reader, holding one item at a time:
/// the same grammar as [`parse`], for bodies that are never held whole.
pub struct Stream<R> {
    r: R,
    items: usize,
}

/// A line read: its kept bytes and full length, or `Err(())` when it ran past the limit.
type Line = Result<(Vec<u8>, u64), ()>;

/// Reads up to and without the next newline; at most `keep` bytes are kept, and past `fail`
/// bytes it stops with `Err(())`. `None` at the end of input.
fn read_line<R: std::io::BufRead>(
    r: &mut R,
    keep: usize,
    fail: Option<usize>,
) -> Result<Option<Line>, StreamError> {
    let mut out = Vec::new();
    let mut total = 0u64;
    let mut any = false;
    loop {
        let buf = r.fill_buf().map_err(io_error)?;
        if buf.is_empty() {
            return Ok(any.then_some(Ok((out, total))));
        }
        any = true;
        let (chunk, done) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (&buf[..i], true),
            None => (buf, false),
        };
        let n = chunk.len();
        if fail.is_some_and(|f| total as usize + n > f) {
            return Ok(Some(Err(())));
        }
        let room = keep.saturating_sub(out.len());
        out.extend_from_slice(&chunk[..n.min(room)]);
        total += n as u64;
        r.consume(n + usize::from(done));
        if done {
            return Ok(Some(Ok((out, total))));
        }
    }
}

impl<R: std::io::BufRead> Stream<R> {
    pub fn new(r: R) -> Self {
        Stream { r, items: 0 }
    }

    /// The envelope header (the first line, at most [`MAX_HEADER_LINE`] bytes). A longer line
    /// is an error at once, or, with `drain_long` (an authenticated request), once the rest of
    /// the line was read past, so a body over the decompressed cap is told apart (too large).
    pub fn header(&mut self, drain_long: bool) -> Result<EnvelopeHeader, StreamError> {
        let line = match read_line(&mut self.r, MAX_HEADER_LINE + 2, Some(MAX_HEADER_LINE + 1))? {
            None => return Err(EnvelopeError::Empty.into()),
            Some(Err(())) => {
                if drain_long {
                    read_line(&mut self.r, 0, None)?;
                }
                return Err(EnvelopeError::Header(format!(
                    "the header line is longer than {MAX_HEADER_LINE} bytes"
                ))
                .into());
            }
            Some(Ok((line, _))) => line,
        };
        if line.iter().all(u8::is_ascii_whitespace) && self.at_end()? {
            return Err(EnvelopeError::Empty.into());
        }
        Ok(parse_header(&line).map_err(EnvelopeError::Header)?)
    }

    fn at_end(&mut self) -> Result<bool, StreamError> {
        Ok(self.r.fill_buf().map_err(io_error)?.is_empty())
    }

    /// The next item, keeping of its payload what `keep` decides from its header.
    pub fn next_item(
        &mut self,
        keep: impl FnOnce(&ItemHeader) -> Keep,
    ) -> Result<Option<OwnedItem>, StreamError> {
        // Blank lines between items are tolerated.
        loop {
            let buf = self.r.fill_buf().map_err(io_error)?;
            match buf {
                [] => return Ok(None),
                [b'\n', ..] => self.r.consume(1),
                [b'\r', b'\n', ..] => self.r.consume(2),
                _ => break,
            }
        }
        let index = self.items;
        if index >= MAX_ITEMS {
            return Err(EnvelopeError::TooManyItems(MAX_ITEMS).into());
        }
        self.items += 1;
        let line = match read_line(&mut self.r, MAX_HEADER_LINE + 2, Some(MAX_HEADER_LINE + 1))? {
            Some(Ok((line, _))) => line,
            Some(Err(())) => {
                return Err(EnvelopeError::ItemHeader {
                    index,
                    reason: format!("the header line is longer than {MAX_HEADER_LINE} bytes"),
                }
                .into());
            }
            None => return Ok(None),
        };
        let header: ItemHeader =
            parse_header(&line).map_err(|reason| EnvelopeError::ItemHeader { index, reason })?;
        let keep = keep(&header);
        let ty = header.ty.get().cloned().unwrap_or_default();
        let too_large = || StreamError::ItemTooLarge {
            ty: ty.clone(),
            limit: keep.bytes,
        };
        let (payload, size) = match header.length.get().copied() {
            Some(len) => {
                if keep.error_over && len > keep.bytes as u64 {
                    return Err(too_large());
                }
                let kept = (len as usize).min(keep.bytes);
                let mut payload = Vec::with_capacity(kept);
                let got = (&mut self.r)
                    .take(kept as u64)
                    .read_to_end(&mut payload)
                    .map_err(io_error)? as u64;
                let skipped = if got == kept as u64 {
                    std::io::copy(&mut (&mut self.r).take(len - got), &mut std::io::sink())
                        .map_err(io_error)?
                } else {
                    0
                };
                if got + skipped < len {
                    return Err(EnvelopeError::Truncated {
                        index,
                        length: len as usize,
                        available: (got + skipped) as usize,
                    }
                    .into());
                }
                match self.r.fill_buf().map_err(io_error)? {
                    [] => {}
                    [b'\n', ..] => self.r.consume(1),
                    [b'\r', b'\n', ..] => self.r.consume(2),
                    _ => {
                        return Err(EnvelopeError::MissingNewline {
                            index,
                            length: len as usize,
                        }
                        .into());
                    }
                }
                (payload, len)
            }
            None => {
                let fail = keep.error_over.then_some(keep.bytes);
                match read_line(&mut self.r, keep.bytes, fail)? {
                    None => (Vec::new(), 0),
                    Some(Err(())) => return Err(too_large()),
                    Some(Ok((payload, size))) => (payload, size),
                }
            }
        };
        Ok(Some(OwnedItem {
            header,
            payload,
            size,
        }))
    }
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

    fn stream_all(body: &[u8]) -> Result<Vec<OwnedItem>, StreamError> {
        let mut s = Stream::new(std::io::BufReader::with_capacity(7, body));
        s.header(false)?;
        let mut out = Vec::new();
        while let Some(item) = s.next_item(|_| Keep {
            bytes: 1 << 20,
            error_over: true,
        })? {
            out.push(item);
        }
        Ok(out)
    }

    #[test]
    fn the_stream_reads_what_parse_reads() {
        let bodies: [&[u8]; 8] = [
            b"{\"event_id\":\"9ec79c33ec9942ab8353589fcb2e04dc\"}\n{\"type\":\"attachment\",\"length\":10}\n\xef\xbb\xbfHello\r\n\n{\"type\":\"event\"}\n{\"message\":\"hi\"}\n{\"type\":\"session\"}\n{}",
            b"{}",
            b"{}\n",
            b"{}\n{\"type\":\"attachment\",\"length\":0}\n\n{\"type\":\"attachment\",\"length\":0}\n",
            b"",
            b"junk\n",
            b"{}\n{\"type\":\"event\",\"length\":50}\n{}",
            b"{}\n{\"type\":\"event\",\"length\":2}\n{}xx\n",
        ];
        for body in bodies {
            match (parse(body), stream_all(body)) {
                (Ok(env), Ok(items)) => {
                    assert_eq!(env.items.len(), items.len());
                    for (a, b) in env.items.iter().zip(&items) {
                        assert_eq!(a.payload, &b.payload[..]);
                        assert_eq!(a.ty(), b.ty());
                        assert_eq!(a.payload.len() as u64, b.size);
                    }
                }
                (Err(a), Err(StreamError::Envelope(b))) => {
                    assert_eq!(std::mem::discriminant(&a), std::mem::discriminant(&b))
                }
                (a, b) => panic!(
                    "{:?}: parse {:?}, stream {:?}",
                    body,
                    a.is_ok(),
                    b.map(|i| i.len())
                ),
            }
        }
        // Kept in part: the rest is read past; over the limit where that is an error.
        let body = b"{}\n{\"type\":\"attachment\",\"length\":10}\n0123456789\n{\"type\":\"event\"}\n{\"message\":\"hello\"}\n";
        let mut s = Stream::new(&body[..]);
        s.header(false).unwrap();
        let a = s
            .next_item(|_| Keep {
                bytes: 4,
                error_over: false,
            })
            .unwrap()
            .unwrap();
        assert_eq!((&a.payload[..], a.size), (&b"0123"[..], 10));
        assert!(matches!(
            s.next_item(|_| Keep {
                bytes: 4,
                error_over: true
            }),
            Err(StreamError::ItemTooLarge { .. })
        ));
        let long = [
            b"{\"x\":\"".as_slice(),
            &vec![b'a'; MAX_HEADER_LINE],
            b"\"}\n",
        ]
        .concat();
        assert!(matches!(
            Stream::new(&long[..]).header(false),
            Err(StreamError::Envelope(EnvelopeError::Header(_)))
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
