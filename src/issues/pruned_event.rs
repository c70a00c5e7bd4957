//! Parsing only what grouping reads. A Python SDK event is mostly frame locals, source context
//! and breadcrumbs; building a `serde_json::Value` of all of it was the largest cost of ingest.
//! [`parse_for_grouping`] validates the whole document but builds values only for the keys
//! grouping and ingest look at, skipping the rest without allocating.

use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// Top-level keys kept: everything [`super::grouping::group`] and ingest read.
const TOP_LEVEL: &[&str] = &[
    "event_id",
    "timestamp",
    "exception",
    "logentry",
    "message",
    "transaction",
    "culprit",
    "platform",
    "request",
    "level",
    "release",
    "environment",
    "server_name",
    "tags",
    "user",
    "fingerprint",
    // Grouping version 2: stack traces outside exceptions, and what rules and fingerprint
    // variables match on.
    "threads",
    "stacktrace",
    "logger",
    "sdk",
    // dash (issue 16): derived tags (browser, os, runtime, device).
    "contexts",
];

/// Keys skipped at any depth below the top: bulky, and never read by grouping.
const BULKY: &[&str] = &[
    "vars",
    "pre_context",
    "post_context",
    "data",
    "headers",
    "cookies",
    "env",
    "registers",
    "query_string",
];

/// Parses a JSON event keeping only the parts grouping reads. Invalid JSON is an error exactly
/// as with a full parse.
pub fn parse_for_grouping(raw: &[u8]) -> serde_json::Result<Value> {
    let mut de = serde_json::Deserializer::from_slice(raw);
    let v = Pruned {
        top: true,
        request: false,
    }
    .deserialize(&mut de)?;
    de.end()?;
    Ok(v)
}

#[derive(Clone, Copy)]
struct Pruned {
    top: bool,
    /// dash (issue 16): inside the top-level `request`, whose `headers` (User-Agent) give
    /// the derived `browser` and `os` tags.
    request: bool,
}

impl<'de> DeserializeSeed<'de> for Pruned {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Pruned {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(Pruned {
            top: false,
            request: false,
        })? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let keep = if self.top {
                TOP_LEVEL.contains(&key.as_str())
            } else {
                !BULKY.contains(&key.as_str()) || (self.request && key == "headers")
            };
            if keep {
                let v = map.next_value_seed(Pruned {
                    top: false,
                    request: self.top && key == "request",
                })?;
                out.insert(key, v);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::issues::grouping::group;

    #[test]
    fn groups_exactly_like_a_full_parse_on_every_fixture() {
        let shared = std::env::var_os("HEARTH_SHARED_DIR")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared"));
        let dir = shared.join("fixtures/sentry");
        let Ok(entries) = std::fs::read_dir(&dir) else {
            assert!(
                std::env::var_os("HEARTH_REQUIRE_ALL_TESTS").is_none(),
                "{} is missing",
                dir.display()
            );
            eprintln!("SKIPPED: {} is missing", dir.display());
            return;
        };
        let mut files: Vec<_> = entries.flatten().map(|e| e.path()).collect();
        files.push(shared.join("peers/bugsink/envelope.bin"));
        let mut compared = 0;
        for path in files {
            let Ok(body) = std::fs::read(&path) else {
                continue;
            };
            // Every line that parses as a JSON object: envelope items and store bodies alike
            // (compressed fixtures simply have none).
            for line in body.split(|c| *c == b'\n') {
                let Ok(full @ Value::Object(_)) = serde_json::from_slice::<Value>(line) else {
                    continue;
                };
                let pruned = parse_for_grouping(line).expect("pruned parse of valid JSON");
                for version in crate::issues::grouping::GROUPING_VERSIONS {
                    assert_eq!(
                        group(&pruned, *version),
                        group(&full, *version),
                        "{} on version {version}",
                        path.display()
                    );
                }
                compared += 1;
            }
        }
        assert!(
            compared > 10,
            "only {compared} JSON objects in the fixtures"
        );
    }

    #[test]
    fn skips_bulky_parts_and_rejects_what_a_full_parse_rejects() {
        let v = parse_for_grouping(
            br#"{"event_id":"a","breadcrumbs":{"values":[{"m":1}]},"exception":{"values":[{"type":"E","stacktrace":{"frames":[{"function":"f","vars":{"x":"\u00e9"},"pre_context":["a"],"context_line":"x()"}]}}]}}"#,
        )
        .unwrap();
        assert_eq!(
            v,
            serde_json::json!({"event_id":"a","exception":{"values":[{"type":"E","stacktrace":{"frames":[{"function":"f","context_line":"x()"}]}}]}})
        );
        for bad in [
            &b"{"[..],
            b"{\"a\":}",
            b"{\"a\":1} x",
            b"",
            b"{\"vars\":[1,}",
        ] {
            assert!(
                parse_for_grouping(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(
            parse_for_grouping(b"[1,\"x\"]").unwrap(),
            serde_json::json!([1, "x"])
        );
    }
}
