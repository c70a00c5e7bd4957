//! Value encodings. Every stored struct goes through [`encode`]/[`decode`]: a version byte, then
//! postcard. The byte lets a later release change a layout and still read old rows.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::StoreError;

const V1: u8 = 1;

pub fn encode<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    let mut out = vec![V1];
    // postcard only fails on writer errors, and a Vec never fails.
    postcard::to_io(value, &mut out).expect("postcard into Vec");
    out
}

pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, StoreError> {
    match bytes.split_first() {
        Some((&V1, rest)) => {
            postcard::from_bytes(rest).map_err(|e| StoreError::Codec(e.to_string()))
        }
        Some((v, _)) => Err(StoreError::Codec(format!("unknown value version {v}"))),
        None => Err(StoreError::Codec("empty value".into())),
    }
}

/// Decodes only the leading fields of a value [`encode`] wrote: `T` declares the stored struct's
/// first fields, in order, and postcard stops reading after them. Borrowed `&str` fields cost no
/// copy, so a reader can test a field without decoding (and allocating) the rest.
pub fn decode_prefix<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, StoreError> {
    match bytes.split_first() {
        Some((&V1, rest)) => postcard::take_from_bytes(rest)
            .map(|(v, _)| v)
            .map_err(|e| StoreError::Codec(e.to_string())),
        Some((v, _)) => Err(StoreError::Codec(format!("unknown value version {v}"))),
        None => Err(StoreError::Codec("empty value".into())),
    }
}

thread_local! {
    // One zstd context per thread: creating one per call showed up in ingest profiles.
    static COMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Compressor<'static>>> =
        const { std::cell::RefCell::new(None) };
    static DECOMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { std::cell::RefCell::new(None) };
    // Contexts for documents against a reference (see `compress_json_against`).
    static REF_COMPRESSOR: std::cell::RefCell<Option<zstd::zstd_safe::CCtx<'static>>> =
        const { std::cell::RefCell::new(None) };
    static REF_DECOMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { std::cell::RefCell::new(None) };
}

/// First byte of a document compressed against a reference document (a zstd frame starts with
/// 0x28, so the two kinds never mix up).
const AGAINST_REFERENCE: u8 = 0xD1;

/// 64 MB is far beyond any stored event (ingest caps events at a few MB).
const DECOMPRESSED_LIMIT: usize = 64 << 20;

/// Whether `bytes` were written by [`compress_json_against`] and need their reference to read.
pub fn needs_reference(bytes: &[u8]) -> bool {
    bytes.first() == Some(&AGAINST_REFERENCE)
}

/// A reference document to compress many documents against. Only the document is held (no
/// prepared tables: those took ~64 KB per 7.5 KB event, so a cache bounded at 8 MB held ~115
/// issues' references and most events of a 1,000-issue project were stored alone, 10x larger).
/// Loading the document into the compressor per call costs a few microseconds.
pub struct Reference {
    doc: Vec<u8>,
}

impl std::fmt::Debug for Reference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Reference({} bytes)", self.doc.len())
    }
}

impl Reference {
    pub fn new(doc: Vec<u8>) -> Reference {
        Reference { doc }
    }

    pub fn doc(&self) -> &[u8] {
        &self.doc
    }

    /// Bytes held.
    pub fn size(&self) -> usize {
        self.doc.len()
    }
}

/// Compresses `json` with `reference` (another document, usually an earlier event of the same
/// issue) as a zstd raw-content dictionary: what the two share costs a few bytes. A 7.5 KB Python
/// event that takes 2.2 KB alone takes ~0.2 KB against an earlier event of its issue.
pub fn compress_json_against(json: &[u8], reference: &Reference) -> Vec<u8> {
    let packed = REF_COMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        let cctx = slot.get_or_insert_with(zstd::zstd_safe::CCtx::create);
        let mut packed = Vec::with_capacity(zstd::zstd_safe::compress_bound(json.len()));
        cctx.compress_using_dict(&mut packed, json, &reference.doc, 1)
            .map(|_| packed)
    });
    let packed = packed.unwrap_or_else(|_| {
        zstd::bulk::Compressor::with_dictionary(1, &reference.doc)
            .and_then(|mut z| z.compress(json))
            .expect("zstd compress into memory")
    });
    let mut out = Vec::with_capacity(packed.len() + 1);
    out.push(AGAINST_REFERENCE);
    out.extend_from_slice(&packed);
    out
}

/// Reads a document [`compress_json_against`] wrote, given the same reference.
pub fn decompress_json_against(bytes: &[u8], reference: &[u8]) -> Result<Vec<u8>, StoreError> {
    let Some(frame) = bytes.strip_prefix(&[AGAINST_REFERENCE]) else {
        return Err(StoreError::Codec(
            "not a document compressed against a reference".into(),
        ));
    };
    REF_DECOMPRESSOR
        .with(|cell| {
            let mut slot = cell.borrow_mut();
            if slot.is_none() {
                *slot = Some(zstd::bulk::Decompressor::new()?);
            }
            let z = slot.as_mut().expect("just set");
            z.set_dictionary(reference)?;
            z.decompress(frame, DECOMPRESSED_LIMIT)
        })
        .map_err(|e| StoreError::Codec(e.to_string()))
}

/// JSON documents (raw event payloads) are stored zstd-compressed; they compress 3-8x. Level 1:
/// on a 7 KB Python event it is 1.6x faster than level 3 for a 1% larger result.
pub fn compress_json(json: &[u8]) -> Vec<u8> {
    COMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = zstd::bulk::Compressor::new(1).ok();
        }
        slot.as_mut()
            .and_then(|z| z.compress(json).ok())
            .unwrap_or_else(|| zstd::bulk::compress(json, 1).expect("zstd compress into memory"))
    })
}

pub fn decompress_json(bytes: &[u8]) -> Result<Vec<u8>, StoreError> {
    if needs_reference(bytes) {
        return Err(StoreError::Codec(
            "the document was compressed against a reference; read it with its reference".into(),
        ));
    }
    const LIMIT: usize = DECOMPRESSED_LIMIT;
    DECOMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = zstd::bulk::Decompressor::new().ok();
        }
        match slot.as_mut() {
            Some(z) => z.decompress(bytes, LIMIT),
            None => zstd::bulk::decompress(bytes, LIMIT),
        }
        .map_err(|e| StoreError::Codec(e.to_string()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize, serde::Deserialize, PartialEq, Debug)]
    struct Row {
        a: u64,
        b: String,
    }

    #[test]
    fn round_trip_and_version_check() {
        let row = Row {
            a: 7,
            b: "x".into(),
        };
        let bytes = encode(&row);
        assert_eq!(bytes[0], V1);
        assert_eq!(decode::<Row>(&bytes).unwrap(), row);
        let mut bad = bytes.clone();
        bad[0] = 99;
        assert!(decode::<Row>(&bad).is_err());
        assert!(decode::<Row>(&[]).is_err());
        #[derive(serde::Deserialize)]
        struct Head {
            a: u64,
        }
        assert_eq!(decode_prefix::<Head>(&bytes).unwrap().a, 7);
        assert!(decode_prefix::<Head>(&bad).is_err());
    }

    #[test]
    fn json_compression_round_trips_and_reuses_contexts() {
        for doc in [
            &b"{}"[..],
            br#"{"message":"disk usage above 90%","n":[1,2,3]}"#,
        ] {
            let packed = compress_json(doc);
            assert_eq!(decompress_json(&packed).unwrap(), doc);
        }
        assert!(decompress_json(b"not zstd").is_err());
    }

    #[test]
    fn compression_against_a_reference_is_small_and_needs_the_reference() {
        let reference = serde_json::to_vec(&serde_json::json!({
            "event_id": "a".repeat(32),
            "exception": {"values": [{"type": "ValueError", "value": "bad input 17",
                "stacktrace": {"frames": (0..20).map(|i| serde_json::json!({
                    "filename": format!("app/module_{i}.py"), "function": format!("handler_{i}"),
                    "lineno": i * 10, "context_line": format!("    result = compute_{i}(x)")
                })).collect::<Vec<_>>()}}]},
        }))
        .unwrap();
        let mut doc = reference.clone();
        doc[14] = b'b';
        let plain = compress_json(&doc);
        let against = compress_json_against(&doc, &Reference::new(reference.clone()));
        assert!(needs_reference(&against) && !needs_reference(&plain));
        assert!(
            against.len() * 4 < plain.len(),
            "{} vs {}",
            against.len(),
            plain.len()
        );
        assert_eq!(decompress_json_against(&against, &reference).unwrap(), doc);
        assert!(
            decompress_json(&against).is_err(),
            "plain reading is refused"
        );
        assert!(decompress_json_against(&plain, &reference).is_err());
        // The per-thread contexts carry no dictionary over into plain compression.
        assert_eq!(decompress_json(&compress_json(&doc)).unwrap(), doc);
    }
}
