//! The event text both grouping versions read and normalise: the message and its template,
//! parameterised messages and normalised function names. Version 1 ([`super::grouping`]) and
//! version 2 ([`super::grouping_v2`]) import it; neither imports the other for it.

use std::sync::LazyLock;

use regex::Regex;
use serde_json::Value;

fn s(v: &Value) -> Option<&str> {
    v.as_str().filter(|s| !s.is_empty())
}

/// The event's message: `logentry.formatted|message`, or `message` as a string or object.
pub fn message_of(event: &Value) -> Option<String> {
    for key in ["logentry", "message"] {
        match event.get(key) {
            Some(Value::String(m)) if !m.is_empty() => return Some(m.clone()),
            Some(Value::Object(o)) => {
                if let Some(m) = o
                    .get("formatted")
                    .and_then(s)
                    .or_else(|| o.get("message").and_then(s))
                {
                    return Some(m.to_string());
                }
            }
            _ => {}
        }
    }
    None
}

/// The message template for grouping: `logentry.message` (params not yet substituted) wins.
pub(crate) fn message_template(event: &Value) -> Option<String> {
    for key in ["logentry", "message"] {
        if let Some(Value::Object(o)) = event.get(key)
            && let Some(m) = o.get("message").and_then(s)
        {
            return Some(m.to_string());
        }
    }
    message_of(event)
}

static PARAMS: LazyLock<Vec<(Regex, &'static str)>> = LazyLock::new(|| {
    let r = |p: &str| Regex::new(p).expect("grouping regex");
    vec![
        (
            r(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}"),
            "<email>",
        ),
        (r(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\x22<>]+"), "<url>"),
        (
            r(
                r"\b[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}\b",
            ),
            "<uuid>",
        ),
        (r(r"\b(?:[0-9]{1,3}\.){3}[0-9]{1,3}\b"), "<ip>"),
        (r(r"\b(?:[0-9a-fA-F]{1,4}:){2,7}[0-9a-fA-F]{1,4}\b"), "<ip>"),
        (
            r(
                r"\b[0-9]{4}-[0-9]{2}-[0-9]{2}(?:[T ][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]+)?)?(?:Z|[+-][0-9]{2}:?[0-9]{2})?)?\b",
            ),
            "<date>",
        ),
        (r(r"\b0[xX][0-9a-fA-F]+\b"), "<hex>"),
        // Hex runs with at least one digit and one letter (hashes, ids) but not plain words.
        (
            r(
                r"\b(?:[0-9a-fA-F]*[0-9][0-9a-fA-F]*[a-fA-F][0-9a-fA-F]*|[0-9a-fA-F]*[a-fA-F][0-9a-fA-F]*[0-9][0-9a-fA-F]*)\b",
            ),
            "<hex>",
        ),
        (r(r"-?\b[0-9]+\.[0-9]+\b"), "<float>"),
        (r(r"-?\b[0-9]+\b"), "<int>"),
    ]
});

/// Replaces the variable parts of a message (emails, urls, uuids, ips, dates, hex, numbers)
/// with placeholders, keeping only the first two non-empty lines, so "order 17 failed" and
/// "order 18 failed" group together.
pub fn parameterize(text: &str) -> String {
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .take(2)
        .collect();
    let mut out = lines.join("\n");
    for (re, repl) in PARAMS.iter() {
        if re.is_match(&out) {
            out = re.replace_all(&out, *repl).into_owned();
        }
    }
    out
}

static RUST_HASH: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"::h[0-9a-f]{16}$").expect("regex"));
static JAVA_LAMBDA: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\$\$Lambda\$[0-9]+/(?:0x)?[0-9a-fA-F]+").expect("regex"));
static ANON_NUM: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\$[0-9]+").expect("regex"));

/// Normalises a function name so builds and runtimes don't split groups.
pub fn normalize_function(f: &str) -> String {
    let mut f = f.trim().to_string();
    // Most names have neither a hash suffix nor a `$`: skip the regexes for them.
    if f.contains("::h") {
        f = RUST_HASH.replace(&f, "").into_owned();
    }
    if f.contains('$') {
        f = JAVA_LAMBDA.replace_all(&f, "$$$$Lambda$$").into_owned();
        f = ANON_NUM.replace_all(&f, "$$").into_owned();
    }
    for prefix in ["Object.", "Module.", "async "] {
        if let Some(rest) = f.strip_prefix(prefix) {
            f = rest.to_string();
        }
    }
    f
}
