//! Typed readers for the JSON envelope items that are not events. Each reads only the fields
//! Hearth keeps and skips the rest without allocating (no `serde_json::Value` of the item is
//! built), lists are read up to a cap, and fields of the wrong type are ignored as a tolerant
//! reader must. Items are also capped in size (`[ingest] max_event_size`) before they are read,
//! so an item costs at most a small multiple of its own bytes.

use std::fmt;
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, SeqAccess, Visitor};
use serde_json::value::RawValue;

pub use super::envelope::{Lenient, LenientKind};

impl LenientKind for bool {
    fn from_bool(v: bool) -> Option<Self> {
        Some(v)
    }
}

impl LenientKind for f64 {
    fn from_u64(v: u64) -> Option<Self> {
        Some(v as f64)
    }
    fn from_i64(v: i64) -> Option<Self> {
        Some(v as f64)
    }
    fn from_f64(v: f64) -> Option<Self> {
        Some(v)
    }
}

/// A timestamp as SDKs send them: RFC 3339 text or Unix seconds; kept in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Millis(pub i64);

impl LenientKind for Millis {
    fn from_str(s: &str) -> Option<Self> {
        s.parse::<jiff::Timestamp>()
            .ok()
            .map(|t| t.as_millisecond())
            .or_else(|| s.parse::<f64>().ok().map(|f| (f * 1000.0) as i64))
            .map(Millis)
    }
    fn from_u64(v: u64) -> Option<Self> {
        Some(Millis((v as f64 * 1000.0) as i64))
    }
    fn from_i64(v: i64) -> Option<Self> {
        Some(Millis((v as f64 * 1000.0) as i64))
    }
    fn from_f64(v: f64) -> Option<Self> {
        Some(Millis((v * 1000.0) as i64))
    }
}

/// The number of elements of a JSON array (0 for anything else), counted without keeping them.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Count(pub u64);

impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Count;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an array")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Count, A::Error> {
                let mut n = 0;
                while seq.next_element::<IgnoredAny>()?.is_some() {
                    n += 1;
                }
                Ok(Count(n))
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Count, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Count(0))
            }
            fn visit_str<E>(self, _: &str) -> Result<Count, E> {
                Ok(Count(0))
            }
            fn visit_u64<E>(self, _: u64) -> Result<Count, E> {
                Ok(Count(0))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Count, E> {
                Ok(Count(0))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Count, E> {
                Ok(Count(0))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Count, E> {
                Ok(Count(0))
            }
            fn visit_unit<E>(self) -> Result<Count, E> {
                Ok(Count(0))
            }
        }
        d.deserialize_any(V)
    }
}

/// The first `N` elements of a JSON array; the rest are skipped unread.
#[derive(Debug, Clone, PartialEq)]
pub struct Capped<T, const N: usize>(pub Vec<T>);

impl<T, const N: usize> Default for Capped<T, N> {
    fn default() -> Self {
        Capped(Vec::new())
    }
}

impl<'de, T: Deserialize<'de>, const N: usize> Deserialize<'de> for Capped<T, N> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T, const N: usize>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>, const N: usize> Visitor<'de> for V<T, N> {
            type Value = Capped<T, N>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an array")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while out.len() < N {
                    match seq.next_element::<T>()? {
                        Some(v) => out.push(v),
                        None => return Ok(Capped(out)),
                    }
                }
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Capped(out))
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(Capped(Vec::new()))
            }
        }
        d.deserialize_any(V::<T, N>(PhantomData))
    }
}

/// Parses an item payload into `T`.
pub fn parse<'a, T: Deserialize<'a>>(payload: &'a [u8]) -> serde_json::Result<T> {
    serde_json::from_slice(payload)
}

#[derive(Debug, Default, Deserialize)]
pub struct Attrs {
    #[serde(default)]
    pub release: Lenient<String>,
    #[serde(default)]
    pub environment: Lenient<String>,
    /// `{{auto}}`: the client's address is the session's user (dash, issue 16).
    #[serde(default)]
    pub ip_address: Lenient<String>,
}

/// A `session` item (one session's update).
#[derive(Debug, Default, Deserialize)]
pub struct Session {
    #[serde(default)]
    pub sid: Lenient<String>,
    #[serde(default)]
    pub init: Lenient<bool>,
    #[serde(default)]
    pub status: Lenient<String>,
    #[serde(default)]
    pub errors: Lenient<u64>,
    #[serde(default)]
    pub attrs: Option<Attrs>,
    /// The distinct id: the session's user.
    #[serde(default)]
    pub did: Lenient<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Aggregate {
    /// The distinct id the bucket's sessions share, if any: their user.
    #[serde(default)]
    pub did: Lenient<String>,
    #[serde(default)]
    pub exited: Lenient<u64>,
    #[serde(default)]
    pub errored: Lenient<u64>,
    #[serde(default)]
    pub abnormal: Lenient<u64>,
    #[serde(default)]
    pub crashed: Lenient<u64>,
}

/// A `sessions` item (pre-aggregated session counts).
#[derive(Debug, Default, Deserialize)]
pub struct Sessions {
    #[serde(default)]
    pub attrs: Option<Attrs>,
    #[serde(default)]
    pub aggregates: Capped<Aggregate, 100>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Trace {
    #[serde(default)]
    pub op: Lenient<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct TransactionContexts {
    #[serde(default)]
    pub trace: Option<Trace>,
}

/// A `transaction` item: the summary fields (the payload itself is stored compressed as sent).
#[derive(Debug, Default, Deserialize)]
pub struct Transaction {
    #[serde(default)]
    pub event_id: Lenient<String>,
    #[serde(default)]
    pub transaction: Lenient<String>,
    #[serde(default)]
    pub start_timestamp: Lenient<Millis>,
    #[serde(default)]
    pub timestamp: Lenient<Millis>,
    #[serde(default)]
    pub contexts: Option<TransactionContexts>,
    #[serde(default)]
    pub spans: Count,
}

#[derive(Debug, Default, Deserialize)]
pub struct Outcome {
    #[serde(default)]
    pub reason: Lenient<String>,
    #[serde(default)]
    pub category: Lenient<String>,
    #[serde(default)]
    pub quantity: Lenient<u64>,
}

/// A `client_report` item; at most 100 outcomes of each kind are read.
#[derive(Debug, Default, Deserialize)]
pub struct ClientReport {
    #[serde(default)]
    pub discarded_events: Capped<Outcome, 100>,
    #[serde(default)]
    pub rate_limited_events: Capped<Outcome, 100>,
    #[serde(default)]
    pub filtered_events: Capped<Outcome, 100>,
}

/// A `check_in` item.
#[derive(Debug, Default, Deserialize)]
pub struct CheckIn<'a> {
    #[serde(default)]
    pub monitor_slug: Lenient<String>,
    #[serde(default)]
    pub check_in_id: Lenient<String>,
    #[serde(default)]
    pub status: Lenient<String>,
    #[serde(default)]
    pub duration: Lenient<f64>,
    #[serde(default)]
    pub environment: Lenient<String>,
    #[serde(default)]
    pub release: Lenient<String>,
    #[serde(default, borrow)]
    pub monitor_config: Option<&'a RawValue>,
}

/// A legacy `user_report` item.
#[derive(Debug, Default, Deserialize)]
pub struct UserReport {
    #[serde(default)]
    pub event_id: Lenient<String>,
    #[serde(default)]
    pub name: Lenient<String>,
    #[serde(default)]
    pub email: Lenient<String>,
    #[serde(default)]
    pub comments: Lenient<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct FeedbackContext {
    #[serde(default)]
    pub associated_event_id: Lenient<String>,
    #[serde(default)]
    pub name: Lenient<String>,
    #[serde(default)]
    pub contact_email: Lenient<String>,
    #[serde(default)]
    pub message: Lenient<String>,
    #[serde(default)]
    pub url: Lenient<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct FeedbackContexts {
    #[serde(default)]
    pub feedback: Option<FeedbackContext>,
}

/// A `feedback` item (User Feedback API).
#[derive(Debug, Default, Deserialize)]
pub struct Feedback {
    #[serde(default)]
    pub contexts: Option<FeedbackContexts>,
}

/// A non-empty string field.
pub fn text(v: &Lenient<String>) -> Option<String> {
    v.get().filter(|s| !s.is_empty()).cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrong_types_are_ignored_and_lists_are_capped() {
        let s: Session = parse(br#"{"sid":5,"init":"yes","status":"ok","errors":2,"attrs":{"release":"r","environment":[1,2]},"extra":[[[]]]}"#).unwrap();
        assert_eq!(s.sid.get(), None);
        assert_eq!(s.init.get(), None);
        assert_eq!(s.errors.get(), Some(&2));
        let attrs = s.attrs.unwrap();
        assert_eq!(attrs.release.get().map(String::as_str), Some("r"));
        assert_eq!(attrs.environment.get(), None);
        let many = format!(
            "{{\"discarded_events\":[{}]}}",
            vec![r#"{"reason":"x","category":"error","quantity":1}"#; 500].join(",")
        );
        let r: ClientReport = parse(many.as_bytes()).unwrap();
        assert_eq!(r.discarded_events.0.len(), 100);
        let t: Transaction =
            parse(br#"{"spans":[{},{},{}],"timestamp":"2024-01-01T00:00:01Z","start_timestamp":1704067200}"#)
                .unwrap();
        assert_eq!(t.spans, Count(3));
        assert_eq!(
            t.timestamp.get().unwrap().0 - t.start_timestamp.get().unwrap().0,
            1000
        );
        let c: CheckIn =
            parse(br#"{"monitor_slug":"m","monitor_config":{"schedule":{"type":"crontab"}}}"#)
                .unwrap();
        assert_eq!(
            c.monitor_config.unwrap().get(),
            r#"{"schedule":{"type":"crontab"}}"#
        );
        assert!(parse::<Session>(b"5").is_err());
    }
}
