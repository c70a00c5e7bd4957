//! Hearth's JSON capture API for apps without a Sentry SDK: the body is turned into a Sentry
//! event and goes through the same path as envelopes.
//!
//! ```json
//! {"type": "TypeError", "message": "x is undefined", "stacktrace": "at f (app.js:1:2)\n..." | [{"filename", "function", "lineno", "module", "in_app"}],
//!  "level": "error", "user": {"id", "email"} | "bob@example.com", "url": "https://..",
//!  "environment": "production", "release": "web@1.2", "tags": {"k": "v"}, "fingerprint": ["..."]}
//! ```

use serde_json::{Map, Value, json};

const MAX_FRAMES: usize = 200;

fn copy_common(input: &mut Value, out: &mut Map<String, Value>) {
    for key in [
        "environment",
        "release",
        "server_name",
        "transaction",
        "fingerprint",
        "extra",
        "contexts",
    ] {
        // Moved, not cloned: the body's tree is never held twice.
        if let Some(v) = input
            .as_object_mut()
            .and_then(|o| o.remove(key))
            .filter(|v| !v.is_null())
        {
            out.insert(key.into(), v);
        }
    }
    let level = input
        .get("level")
        .or_else(|| input.get("severity"))
        .and_then(Value::as_str)
        .unwrap_or(if out.contains_key("exception") {
            "error"
        } else {
            "info"
        });
    out.insert("level".into(), json!(level));
    let mut take = |key: &str| input.as_object_mut().and_then(|o| o.remove(key));
    match take("user") {
        Some(Value::String(s)) if s.contains('@') => {
            out.insert("user".into(), json!({"email": s}));
        }
        Some(Value::String(s)) => {
            out.insert("user".into(), json!({"id": s}));
        }
        Some(u @ Value::Object(_)) => {
            out.insert("user".into(), u);
        }
        _ => {}
    }
    if let Some(tags) = take("tags").filter(|t| t.is_object()) {
        out.insert("tags".into(), tags);
    }
    if let Some(url) = input.get("url").and_then(Value::as_str) {
        out.insert("request".into(), json!({"url": url}));
    }
    out.insert(
        "platform".into(),
        json!(
            input
                .get("platform")
                .and_then(Value::as_str)
                .unwrap_or("other")
        ),
    );
    out.insert(
        "sdk".into(),
        json!({"name": "hearth.capture", "version": "1"}),
    );
}

/// Parses a textual stack trace (JS `at f (file:line:col)`, Python `File "x", line n, in f`,
/// or `f@file:line:col`) into Sentry frames, oldest first.
pub fn parse_stack_text(text: &str) -> Vec<Value> {
    let mut frames = Vec::new();
    for line in text.lines().take(MAX_FRAMES) {
        let l = line.trim();
        if let Some(rest) = l.strip_prefix("at ") {
            // "at fn (file:line:col)" or "at file:line:col"
            let (func, loc) = match rest.rfind(" (") {
                Some(i) => (Some(&rest[..i]), rest[i + 2..].trim_end_matches(')')),
                None => (None, rest),
            };
            frames.push(frame_from_loc(func, loc));
        } else if let Some(rest) = l.strip_prefix("File \"") {
            // Python: File "path", line 12, in func
            let mut parts = rest.splitn(2, '"');
            let file = parts.next().unwrap_or("");
            let tail = parts.next().unwrap_or("");
            let lineno = tail
                .split("line ")
                .nth(1)
                .and_then(|s| s.split(',').next())
                .and_then(|s| s.trim().parse::<u64>().ok());
            let func = tail.split(", in ").nth(1).map(str::trim);
            frames.push(
                json!({"filename": file, "function": func, "lineno": lineno, "in_app": true}),
            );
        } else if let Some((func, loc)) = l.split_once('@') {
            frames.push(frame_from_loc(Some(func), loc));
        }
    }
    // Text traces list the newest frame first (JS) — Sentry wants oldest first. Python's
    // "Traceback (most recent call last)" is already oldest first.
    if !text.contains("most recent call last") {
        frames.reverse();
    }
    frames
}

fn frame_from_loc(func: Option<&str>, loc: &str) -> Value {
    // file may contain ':' (URLs), so take line/col from the end.
    let mut parts: Vec<&str> = loc.rsplitn(3, ':').collect();
    parts.reverse();
    let (file, lineno, colno) = match parts.as_slice() {
        [f, l, c] if l.parse::<u64>().is_ok() => (*f, l.parse::<u64>().ok(), c.parse::<u64>().ok()),
        _ => (loc, None, None),
    };
    let in_app =
        !(file.contains("node_modules") || file.starts_with("node:") || file.contains("/vendor/"));
    json!({"filename": file, "function": func, "lineno": lineno, "colno": colno, "in_app": in_app})
}

pub fn exception_event(mut input: Value) -> Result<Value, String> {
    if !input.is_object() {
        return Err("send a JSON object like {\"type\": \"Error\", \"message\": \"...\"}".into());
    }
    let ty = input
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("Error")
        .to_string();
    let value = input
        .get("message")
        .or_else(|| input.get("value"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if ty.is_empty() && value.is_empty() {
        return Err("an exception needs a type or a message".into());
    }
    let stack = input.as_object_mut().and_then(|o| {
        o.remove("stacktrace")
            .filter(|v| !v.is_null())
            .or_else(|| o.remove("stack"))
    });
    let frames = match stack {
        Some(Value::String(text)) => parse_stack_text(&text),
        Some(Value::Array(a)) => a.into_iter().take(MAX_FRAMES).collect(),
        _ => Vec::new(),
    };
    let mut exc = json!({"type": ty, "value": value, "mechanism": {"type": "hearth.capture", "handled": input.get("handled").and_then(Value::as_bool).unwrap_or(true)}});
    if !frames.is_empty() {
        exc["stacktrace"] = json!({ "frames": frames });
    }
    let mut out = Map::new();
    out.insert("exception".into(), json!({ "values": [exc] }));
    copy_common(&mut input, &mut out);
    Ok(Value::Object(out))
}

pub fn message_event(mut input: Value) -> Result<Value, String> {
    let msg = input
        .get("message")
        .and_then(Value::as_str)
        .filter(|m| !m.trim().is_empty())
        .ok_or("send {\"message\": \"...\"}")?
        .to_string();
    let mut out = Map::new();
    out.insert("message".into(), json!({ "formatted": msg }));
    copy_common(&mut input, &mut out);
    Ok(Value::Object(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn js_stack_text_becomes_frames_oldest_first() {
        let st = "TypeError: x\n    at inner (http://h/app.js:10:5)\n    at outer (http://h/app.js:20:7)\n    at http://h/node_modules/lib.js:1:1";
        let f = parse_stack_text(st);
        assert_eq!(f.len(), 3);
        assert_eq!(f[0]["in_app"], false);
        assert_eq!(f[2]["function"], "inner");
        assert_eq!(f[2]["filename"], "http://h/app.js");
        assert_eq!(f[2]["lineno"], 10);
    }

    #[test]
    fn python_stack_text() {
        let st = "Traceback (most recent call last):\n  File \"/app/a.py\", line 3, in main\n    x()\n  File \"/app/b.py\", line 9, in x\n";
        let f = parse_stack_text(st);
        assert_eq!(f.len(), 2);
        assert_eq!(f[1]["function"], "x");
        assert_eq!(f[1]["lineno"], 9);
    }

    #[test]
    fn events_from_capture_bodies() {
        let e = exception_event(
            json!({"type": "E", "message": "m", "user": "a@b.c", "tags": {"k": "v"}}),
        )
        .unwrap();
        assert_eq!(e["exception"]["values"][0]["type"], "E");
        assert_eq!(e["user"]["email"], "a@b.c");
        assert_eq!(e["level"], "error");
        assert!(message_event(json!({"nope": 1})).is_err());
        assert_eq!(
            message_event(json!({"message": "hi"})).unwrap()["level"],
            "info"
        );
    }
}
