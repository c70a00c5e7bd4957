//! Request body decoding with caps enforced while decompressing, so a decompression bomb stops
//! at the cap instead of filling memory.

use std::io::Read;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DecodeError {
    #[error("the body is larger than {0} bytes after decompression")]
    TooLarge(usize),
    #[error("unsupported Content-Encoding {0:?}; use gzip, deflate, br, zstd or identity")]
    Unsupported(String),
    #[error("the body is not valid {0}: {1}")]
    Corrupt(&'static str, String),
}

/// Reads at most `cap` bytes from `r`; more is [`DecodeError::TooLarge`].
fn read_capped(r: impl Read, cap: usize, what: &'static str) -> Result<Vec<u8>, DecodeError> {
    // Reserved up front: only the pages written become resident, and the buffer never doubles
    // (a doubling copies the old half while both are resident: 1.5x the body at its peak).
    let mut out = Vec::with_capacity(cap.saturating_add(1).min(isize::MAX as usize / 2));
    let mut limited = r.take(cap as u64 + 1);
    limited
        .read_to_end(&mut out)
        .map_err(|e| DecodeError::Corrupt(what, e.to_string()))?;
    if out.len() > cap {
        return Err(DecodeError::TooLarge(cap));
    }
    out.shrink_to_fit();
    Ok(out)
}

/// The error a [`reader`] returns once it has produced more than its cap.
#[derive(Debug)]
pub struct CapExceeded(pub usize);

impl std::fmt::Display for CapExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the body is larger than {} bytes after decompression",
            self.0
        )
    }
}

impl std::error::Error for CapExceeded {}

/// Counts what passes and fails with [`CapExceeded`] past `cap`.
struct Capped<R> {
    inner: R,
    cap: usize,
    read: usize,
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n;
        if self.read > self.cap {
            return Err(std::io::Error::other(CapExceeded(self.cap)));
        }
        Ok(n)
    }
}

/// A streaming reader of the decoded body: decompressed as it is read, never more than `cap`
/// bytes in all (then a [`CapExceeded`] error). Nothing is held but the raw body and the
/// decoders' windows, so what a request costs is what its reader keeps.
pub fn reader(
    body: Vec<u8>,
    content_encoding: &str,
    cap: usize,
) -> Result<Box<dyn std::io::BufRead + Send>, DecodeError> {
    let mut r: Box<dyn Read + Send> = Box::new(std::io::Cursor::new(body));
    for enc in encodings(content_encoding).iter().rev() {
        r = match enc.as_str() {
            "identity" => r,
            "gzip" | "x-gzip" => Box::new(flate2::read::MultiGzDecoder::new(r)),
            "deflate" => {
                // Zlib-wrapped (RFC 9110) or raw: told apart by the first two bytes.
                let mut head = std::io::BufReader::new(r);
                let first = std::io::BufRead::fill_buf(&mut head)
                    .map_err(|e| DecodeError::Corrupt("deflate", e.to_string()))?;
                let zlib = first.len() >= 2
                    && first[0] & 0x0f == 8
                    && (u16::from(first[0]) << 8 | u16::from(first[1])) % 31 == 0;
                if zlib {
                    Box::new(flate2::read::ZlibDecoder::new(head))
                } else {
                    Box::new(flate2::read::DeflateDecoder::new(head))
                }
            }
            "br" => Box::new(brotli::Decompressor::new(r, 4096)),
            "zstd" => Box::new(
                zstd::stream::read::Decoder::new(r)
                    .map_err(|e| DecodeError::Corrupt("zstd", e.to_string()))?,
            ),
            other => return Err(DecodeError::Unsupported(other.to_string())),
        };
    }
    Ok(Box::new(std::io::BufReader::with_capacity(
        64 * 1024,
        Capped {
            inner: r,
            cap,
            read: 0,
        },
    )))
}

fn encodings(content_encoding: &str) -> Vec<String> {
    content_encoding
        .split(',')
        .map(|e| e.trim().to_ascii_lowercase())
        .filter(|e| !e.is_empty())
        .collect()
}

fn decode_one(body: Vec<u8>, encoding: &str, cap: usize) -> Result<Vec<u8>, DecodeError> {
    match encoding {
        "" | "identity" => {
            if body.len() > cap {
                return Err(DecodeError::TooLarge(cap));
            }
            Ok(body)
        }
        "gzip" | "x-gzip" => read_capped(flate2::read::MultiGzDecoder::new(&body[..]), cap, "gzip"),
        "deflate" => {
            // RFC 9110 deflate is zlib-wrapped; some clients send raw deflate. Try zlib first.
            let zlib_header = body.len() >= 2
                && body[0] & 0x0f == 8
                && (u16::from(body[0]) << 8 | u16::from(body[1])) % 31 == 0;
            if zlib_header {
                read_capped(flate2::read::ZlibDecoder::new(&body[..]), cap, "deflate")
            } else {
                read_capped(flate2::read::DeflateDecoder::new(&body[..]), cap, "deflate")
            }
        }
        "br" => read_capped(brotli::Decompressor::new(&body[..], 4096), cap, "brotli"),
        "zstd" => {
            let d = zstd::stream::read::Decoder::new(&body[..])
                .map_err(|e| DecodeError::Corrupt("zstd", e.to_string()))?;
            read_capped(d, cap, "zstd")
        }
        other => Err(DecodeError::Unsupported(other.to_string())),
    }
}

/// Undoes `Content-Encoding` (possibly a comma-separated list, applied in order, so undone in
/// reverse), never producing more than `cap` bytes.
pub fn decode(body: Vec<u8>, content_encoding: &str, cap: usize) -> Result<Vec<u8>, DecodeError> {
    let encodings = encodings(content_encoding);
    let mut body = body;
    if encodings.is_empty() {
        return decode_one(body, "", cap);
    }
    for enc in encodings.iter().rev() {
        body = decode_one(body, enc, cap)?;
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn every_encoding_round_trips() {
        let data = b"hello envelope ".repeat(100);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&data).unwrap();
        assert_eq!(decode(gz.finish().unwrap(), "gzip", 1 << 20).unwrap(), data);
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(&data).unwrap();
        assert_eq!(
            decode(z.finish().unwrap(), "deflate", 1 << 20).unwrap(),
            data
        );
        let mut raw =
            flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        raw.write_all(&data).unwrap();
        assert_eq!(
            decode(raw.finish().unwrap(), "deflate", 1 << 20).unwrap(),
            data
        );
        let mut br = Vec::new();
        {
            let mut w = brotli::CompressorWriter::new(&mut br, 4096, 4, 22);
            w.write_all(&data).unwrap();
        }
        assert_eq!(decode(br, "br", 1 << 20).unwrap(), data);
        let zs = zstd::bulk::compress(&data, 3).unwrap();
        assert_eq!(decode(zs, "zstd", 1 << 20).unwrap(), data);
        assert_eq!(decode(data.clone(), "", 1 << 20).unwrap(), data);
        assert!(matches!(
            decode(data, "lz4", 1 << 20),
            Err(DecodeError::Unsupported(_))
        ));
    }

    #[test]
    fn bomb_stops_at_the_cap() {
        let zeros = vec![0u8; 50 << 20];
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&zeros).unwrap();
        let bomb = gz.finish().unwrap();
        assert!(bomb.len() < 200_000);
        assert_eq!(
            decode(bomb, "gzip", 1 << 20),
            Err(DecodeError::TooLarge(1 << 20))
        );
    }
}
