//! Grouping: which issue an event belongs to, and the facts about it the issue list shows.
//!
//! Precedence follows Sentry's (`research/sentry-protocol.md` §3.1): an SDK `fingerprint`
//! (`{{ default }}` expands to the default components) → in-app stack frames (module or file
//! basename + normalised function, never line numbers) → exception type + parameterised value →
//! parameterised message. The algorithm is versioned ([`GROUPING_VERSION`]) and the version is
//! part of the hash, so changing it later creates a new version instead of silently splitting
//! issues of projects still on the old one.

use serde_json::Value;

use super::grouping_text::message_template;
pub use super::grouping_text::{message_of, normalize_function, parameterize};
pub use super::grouping_v2::{Analysis, ProjectRules};
use sha2::Digest;

/// The grouping algorithm new projects use ([`super::grouping_v2`]). Version 1 stays as it
/// was, for projects created before version 2 that have not been upgraded.
pub const GROUPING_VERSION: u32 = 2;

/// Every grouping version this build knows, oldest first.
pub const GROUPING_VERSIONS: &[u32] = &[1, 2];

/// What ingest learns about an event before it is stored.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Grouped {
    /// 32 hex characters identifying the issue within a project.
    pub hash: String,
    /// The components the hash was built from (shown as the fingerprint).
    pub components: Vec<String>,
    pub title: String,
    pub culprit: String,
    pub level: String,
    pub message: String,
    pub release: Option<String>,
    pub environment: Option<String>,
    /// Distinct-user key (`id:..`, `email:..`, `ip:..`, `username:..`), if the event names a user.
    pub user_key: Option<String>,
    /// Every user identifier the event carries, for `user:` search.
    pub user_terms: Vec<String>,
    /// Tag pairs (release, environment, level, server_name and the event's own tags), capped.
    pub tags: Vec<(String, String)>,
    /// Free text for search: title, message, exception types/values, culprit, frame functions
    /// and files.
    pub search_text: String,
}

const MAX_TAGS: usize = 50;
const MAX_TAG_LEN: usize = 200;
const MAX_TITLE: usize = 200;
const MAX_SEARCH_TEXT: usize = 4096;

fn s(v: &Value) -> Option<&str> {
    v.as_str().filter(|s| !s.is_empty())
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

fn first_line(s: &str) -> &str {
    s.lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
}

/// `exception` as `{values:[..]}` or a bare list (the Go SDK).
pub fn exceptions(event: &Value) -> Vec<&Value> {
    match event.get("exception") {
        Some(Value::Array(a)) => a.iter().collect(),
        Some(Value::Object(o)) => match o.get("values") {
            Some(Value::Array(a)) => a.iter().collect(),
            _ => Vec::new(),
        },
        _ => Vec::new(),
    }
    .into_iter()
    .filter(|e| e.is_object())
    .collect()
}

fn frames(exc: &Value) -> Vec<&Value> {
    exc.get("stacktrace")
        .and_then(|st| st.get("frames"))
        .and_then(Value::as_array)
        .map(|f| f.iter().filter(|f| f.is_object()).collect())
        .unwrap_or_default()
}

/// A file's basename without query or fragment, lowercased.
fn basename(path: &str) -> String {
    let path = path.split(['?', '#']).next().unwrap_or(path);
    path.rsplit(['/', '\\'])
        .next()
        .unwrap_or(path)
        .to_ascii_lowercase()
}

fn frame_component(frame: &Value) -> Option<String> {
    let module = frame.get("module").and_then(s);
    let file = frame
        .get("filename")
        .and_then(s)
        .or(frame.get("abs_path").and_then(s));
    let func = frame
        .get("function")
        .and_then(s)
        .filter(|f| *f != "?" && *f != "<anonymous>")
        .map(normalize_function);
    let place = match (module, file) {
        (Some(m), _) => m.to_string(),
        (None, Some(f)) => basename(f),
        (None, None) => String::new(),
    };
    if place.is_empty() && func.is_none() {
        return None;
    }
    Some(format!("{place}:{}", func.unwrap_or_default()))
}

fn is_in_app(frame: &Value) -> bool {
    frame.get("in_app").and_then(Value::as_bool) == Some(true)
}

/// The frames that group an exception: in-app ones when any is marked, else all of them.
/// Consecutive duplicates (recursion) count once.
fn stack_components(exc: &Value) -> Vec<String> {
    let all = frames(exc);
    let any_app = all.iter().any(|f| is_in_app(f));
    let mut out: Vec<String> = Vec::new();
    for f in all.iter().filter(|f| !any_app || is_in_app(f)) {
        if let Some(c) = frame_component(f)
            && out.last() != Some(&c)
        {
            out.push(c);
        }
    }
    out
}

fn exc_type(exc: &Value) -> Option<&str> {
    let synthetic = exc
        .get("mechanism")
        .and_then(|m| m.get("synthetic"))
        .and_then(Value::as_bool)
        == Some(true);
    if synthetic {
        None
    } else {
        exc.get("type").and_then(s)
    }
}

/// Sentry's default grouping components for an event (no fingerprint).
pub fn default_components(event: &Value) -> Vec<String> {
    let excs = exceptions(event);
    if !excs.is_empty() {
        let mut parts = Vec::new();
        let stacks: Vec<Vec<String>> = excs.iter().map(|e| stack_components(e)).collect();
        let any_stack = stacks.iter().any(|s| !s.is_empty());
        for (exc, stack) in excs.iter().zip(stacks) {
            if let Some(t) = exc_type(exc) {
                parts.push(format!("type:{t}"));
            }
            if any_stack {
                parts.extend(stack.into_iter().map(|c| format!("frame:{c}")));
            } else if let Some(v) = exc.get("value").and_then(s) {
                parts.push(format!("value:{}", parameterize(v)));
            }
        }
        if !parts.is_empty() {
            return parts;
        }
    }
    if let Some(m) = message_template(event) {
        return vec![format!("message:{}", parameterize(&m))];
    }
    vec!["empty".to_string()]
}

/// The SDK-sent fingerprint, if any: a non-empty array of strings.
fn fingerprint(event: &Value) -> Option<Vec<String>> {
    let arr = event.get("fingerprint")?.as_array()?;
    let parts: Vec<String> = arr
        .iter()
        .filter_map(|v| match v {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        })
        .collect();
    (!parts.is_empty()).then_some(parts)
}

/// The components the issue hash is built from.
pub fn components(event: &Value) -> Vec<String> {
    match fingerprint(event) {
        Some(fp) => {
            let mut out = Vec::new();
            for part in fp {
                let compact: String = part.chars().filter(|c| !c.is_whitespace()).collect();
                if compact == "{{default}}" {
                    out.extend(default_components(event));
                } else {
                    out.push(format!("fp:{part}"));
                }
            }
            out
        }
        None => default_components(event),
    }
}

pub fn hash_components(version: u32, parts: &[String]) -> String {
    let mut h = sha2::Sha256::new();
    h.update(format!("v{version}").as_bytes());
    for p in parts {
        h.update([0x1f]);
        h.update(p.as_bytes());
    }
    hex::encode(&h.finalize()[..16])
}

fn title_of(event: &Value, excs: &[&Value]) -> String {
    if let Some(exc) = excs.last() {
        let ty = exc.get("type").and_then(s);
        let val = exc.get("value").and_then(s).map(first_line);
        let t = match (ty, val) {
            (Some(t), Some(v)) if !v.is_empty() => format!("{t}: {v}"),
            (Some(t), _) => t.to_string(),
            (None, Some(v)) if !v.is_empty() => v.to_string(),
            _ => "<unknown error>".to_string(),
        };
        return truncate(&t, MAX_TITLE);
    }
    if let Some(m) = message_of(event) {
        let l = first_line(&m);
        if !l.is_empty() {
            return truncate(l, MAX_TITLE);
        }
    }
    if let Some(t) = event.get("transaction").and_then(s) {
        return truncate(t, MAX_TITLE);
    }
    "<unlabeled event>".to_string()
}

fn culprit_of(event: &Value, excs: &[&Value], stack: &[Value]) -> String {
    if let Some(c) = event.get("culprit").and_then(s) {
        return truncate(c, MAX_TITLE);
    }
    if let Some(t) = event.get("transaction").and_then(s) {
        return truncate(t, MAX_TITLE);
    }
    let js = matches!(
        event.get("platform").and_then(s),
        Some("javascript" | "node")
    );
    let last: Option<Vec<&Value>> = match excs.last() {
        Some(exc) => Some(frames(exc)),
        None if !stack.is_empty() => Some(stack.iter().filter(|f| f.is_object()).collect()),
        None => None,
    };
    if let Some(fs) = last {
        let any_app = fs.iter().any(|f| is_in_app(f));
        // Frames are oldest first: the crashing frame is the last one.
        if let Some(f) = fs.iter().rev().find(|f| !any_app || is_in_app(f)) {
            let func = f.get("function").and_then(s).unwrap_or("?");
            let file = f
                .get("filename")
                .and_then(s)
                .or(f.get("abs_path").and_then(s));
            let c = match (f.get("module").and_then(s), file) {
                // dash (issue 16): the page's scheme and host say nothing; the path does.
                (_, Some(file)) if js => {
                    format!("{} in {func}", super::derived::strip_origin(file))
                }
                _ if js => func.to_string(),
                (Some(m), _) => format!("{m} in {func}"),
                (None, Some(file)) => format!("{file} in {func}"),
                (None, None) => func.to_string(),
            };
            return truncate(&c, MAX_TITLE);
        }
    }
    if let Some(u) = event.get("request").and_then(|r| r.get("url")).and_then(s) {
        return truncate(u, MAX_TITLE);
    }
    String::new()
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn tags_of(event: &Value) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut push = |k: &str, v: String| {
        if out.len() < MAX_TAGS && !k.is_empty() && out.iter().all(|(ek, _)| ek != k) {
            out.push((truncate(k, MAX_TAG_LEN), truncate(&v, MAX_TAG_LEN)));
        }
    };
    for key in ["level", "release", "environment", "server_name"] {
        if let Some(v) = event.get(key).and_then(scalar) {
            push(key, v);
        }
    }
    match event.get("tags") {
        Some(Value::Object(o)) => {
            for (k, v) in o {
                if let Some(v) = scalar(v) {
                    push(k, v);
                }
            }
        }
        Some(Value::Array(a)) => {
            for pair in a {
                if let Some([k, v]) = pair.as_array().map(Vec::as_slice)
                    && let (Some(k), Some(v)) = (k.as_str(), scalar(v))
                {
                    push(k, v);
                }
            }
        }
        _ => {}
    }
    out
}

fn user_of(event: &Value) -> (Option<String>, Vec<String>) {
    let Some(u) = event.get("user").filter(|u| u.is_object()) else {
        return (None, Vec::new());
    };
    let mut key = None;
    let mut terms = Vec::new();
    for (field, prefix) in [
        ("id", "id"),
        ("email", "email"),
        ("username", "username"),
        ("ip_address", "ip"),
    ] {
        if let Some(v) = u.get(field).and_then(scalar)
            && v != "{{auto}}"
        {
            let v = truncate(&v, MAX_TAG_LEN);
            if key.is_none() {
                key = Some(format!("{prefix}:{v}"));
            }
            terms.push(v);
        }
    }
    (key, terms)
}

fn search_text(excs: &[&Value], title: &str, culprit: &str, message: &str) -> String {
    let mut t = String::with_capacity(512);
    t.push_str(title);
    t.push('\n');
    t.push_str(culprit);
    t.push('\n');
    t.push_str(message);
    for exc in excs {
        for key in ["type", "value", "module"] {
            if let Some(v) = exc.get(key).and_then(s) {
                t.push('\n');
                t.push_str(v);
            }
        }
        for f in frames(exc) {
            for key in ["function", "filename", "module"] {
                if let Some(v) = f.get(key).and_then(s) {
                    t.push(' ');
                    t.push_str(v);
                }
            }
            if t.len() > MAX_SEARCH_TEXT {
                break;
            }
        }
    }
    truncate(&t, MAX_SEARCH_TEXT)
}

/// Groups and summarises one event for a project on grouping `version`, without project rules.
pub fn group(event: &Value, version: u32) -> Grouped {
    group_with(event, version, &ProjectRules::default()).0
}

/// Groups and summarises one event on grouping `version` with a project's rules (version 2
/// and later); also returns version 2's analysis, which the explanation shows.
pub fn group_with(
    event: &Value,
    version: u32,
    rules: &ProjectRules,
) -> (Grouped, Option<Analysis>) {
    if version < 2 {
        let components = components(event);
        let hash = hash_components(version, &components);
        let excs = exceptions(event);
        let title = title_of(event, &excs);
        let culprit = culprit_of(event, &excs, &[]);
        return (
            summarise(event, hash, components, title, culprit, &excs),
            None,
        );
    }
    let analysis = super::grouping_v2::analyse(event, rules);
    let hash = hash_components(version, &analysis.components);
    let excs = super::grouping_v2::exceptions(event);
    let title = match &analysis.title {
        Some(t) => truncate(t, MAX_TITLE),
        None => title_of(event, &excs),
    };
    let stack = super::grouping_v2::stack_frames(event);
    let culprit = culprit_of(event, &excs, stack);
    let g = summarise(
        event,
        hash,
        analysis.components.clone(),
        title,
        culprit,
        &excs,
    );
    (g, Some(analysis))
}

/// The hash of `event` on an earlier grouping `version` (for matching during a transition).
pub fn hash_on(event: &Value, version: u32, rules: &ProjectRules) -> String {
    if version < 2 {
        hash_components(version, &components(event))
    } else {
        hash_components(
            version,
            &super::grouping_v2::analyse(event, rules).components,
        )
    }
}

fn summarise(
    event: &Value,
    hash: String,
    components: Vec<String>,
    title: String,
    culprit: String,
    excs: &[&Value],
) -> Grouped {
    let message = message_of(event)
        .map(|m| truncate(&m, 8192))
        .unwrap_or_default();
    let level = event
        .get("level")
        .and_then(s)
        .map(|l| l.to_ascii_lowercase())
        .filter(|l| matches!(l.as_str(), "fatal" | "error" | "warning" | "info" | "debug"))
        .unwrap_or_else(|| {
            if event.get("level").and_then(s) == Some("warn") {
                "warning".into()
            } else {
                "error".into()
            }
        });
    let (user_key, user_terms) = user_of(event);
    let search_text = search_text(excs, &title, &culprit, &message);
    // dash (issue 16): the tags Sentry derives (browser, os, handled, url, user, …).
    let mut tags = tags_of(event);
    super::derived::add(event, excs, user_key.as_deref(), |k, v| {
        if tags.len() < MAX_TAGS && tags.iter().all(|(ek, _)| ek != k) {
            tags.push((k.to_string(), truncate(&v, MAX_TAG_LEN)));
        }
    });
    Grouped {
        hash,
        components,
        title,
        culprit,
        level,
        message,
        release: event
            .get("release")
            .and_then(s)
            .map(|r| truncate(r, MAX_TAG_LEN)),
        environment: event
            .get("environment")
            .and_then(s)
            .map(|r| truncate(r, MAX_TAG_LEN)),
        user_key,
        user_terms,
        tags,
        search_text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn exc_event(ty: &str, value: &str, frames: Value) -> Value {
        json!({"exception": {"values": [{"type": ty, "value": value, "stacktrace": {"frames": frames}}]}})
    }

    #[test]
    fn parameterization_replaces_variable_parts() {
        assert_eq!(parameterize("order 17 failed"), "order <int> failed");
        assert_eq!(
            parameterize("user bob@example.com at 10.0.0.1 got 3.5"),
            "user <email> at <ip> got <float>"
        );
        assert_eq!(
            parameterize("GET https://x.io/a?b=1 -> 550e8400-e29b-41d4-a716-446655440000"),
            "GET <url> -> <uuid>"
        );
        assert_eq!(parameterize("ptr 0xdeadBEEF"), "ptr <hex>");
        assert_eq!(parameterize("commit 3f2a9c1d7e"), "commit <hex>");
        assert_eq!(parameterize("at 2026-11-22T02:28:53Z"), "at <date>");
        assert_eq!(parameterize("line1\n\nline2\nline3"), "line1\nline2");
        // Plain words made of hex letters stay.
        assert_eq!(parameterize("bad face"), "bad face");
    }

    #[test]
    fn fingerprint_overrides_and_default_expands() {
        let a = json!({"message": "x", "fingerprint": ["custom-group"]});
        let b = json!({"message": "totally different", "fingerprint": ["custom-group"]});
        assert_eq!(group(&a, 1).hash, group(&b, 1).hash);
        let c = json!({"message": "x", "fingerprint": ["{{ default }}", "tenant-a"]});
        let d = json!({"message": "x", "fingerprint": ["{{default}}", "tenant-b"]});
        assert_ne!(group(&c, 1).hash, group(&d, 1).hash);
        assert_eq!(
            components(&c),
            vec!["message:x".to_string(), "fp:tenant-a".to_string()]
        );
        // An empty fingerprint falls back to default grouping.
        let e = json!({"message": "x", "fingerprint": []});
        assert_eq!(components(&e), vec!["message:x".to_string()]);
    }

    #[test]
    fn in_app_frames_group_and_line_numbers_do_not_matter() {
        let f1 = json!([
            {"module": "lib", "function": "helper", "lineno": 5, "in_app": false},
            {"module": "app.views", "function": "index", "lineno": 10, "in_app": true},
        ]);
        let f2 = json!([
            {"module": "otherlib", "function": "x", "lineno": 99, "in_app": false},
            {"module": "app.views", "function": "index", "lineno": 42, "in_app": true},
        ]);
        let a = exc_event("KeyError", "'a'", f1);
        let b = exc_event("KeyError", "'b'", f2);
        // Same type and in-app frames: one group even though values and library frames differ.
        assert_eq!(group(&a, 1).hash, group(&b, 1).hash);
        let f3 = json!([{"module": "app.views", "function": "detail", "in_app": true}]);
        assert_ne!(
            group(&a, 1).hash,
            group(&exc_event("KeyError", "'a'", f3), 1).hash
        );
    }

    #[test]
    fn filename_basename_when_no_module_and_function_normalised() {
        let a = exc_event(
            "Error",
            "x",
            json!([{"filename": "/srv/a/src/Main.rs", "function": "app::run::h0123456789abcdef", "in_app": true}]),
        );
        let b = exc_event(
            "Error",
            "y",
            json!([{"filename": "/other/path/main.rs", "function": "app::run::hfedcba9876543210", "in_app": true}]),
        );
        assert_eq!(group(&a, 1).hash, group(&b, 1).hash);
        assert_eq!(normalize_function("Object.foo"), "foo");
        assert_eq!(
            normalize_function("Foo$$Lambda$12/0x0000000800c0b840.apply"),
            normalize_function("Foo$$Lambda$99/0x0000000800aaaaaa.apply")
        );
    }

    #[test]
    fn no_stack_uses_type_and_parameterised_value() {
        let a = json!({"exception": [{"type": "Timeout", "value": "after 30 s on 10.0.0.7"}]});
        let b = json!({"exception": [{"type": "Timeout", "value": "after 45 s on 10.0.0.9"}]});
        let c = json!({"exception": [{"type": "Timeout", "value": "connection refused"}]});
        assert_eq!(group(&a, 1).hash, group(&b, 1).hash);
        assert_ne!(group(&a, 1).hash, group(&c, 1).hash);
        assert_eq!(group(&a, 1).title, "Timeout: after 30 s on 10.0.0.7");
    }

    #[test]
    fn message_grouping_uses_template_then_parameterised_text() {
        let a = json!({"logentry": {"message": "user %s logged in", "formatted": "user bob logged in"}});
        let b = json!({"logentry": {"message": "user %s logged in", "formatted": "user amy logged in"}});
        assert_eq!(group(&a, 1).hash, group(&b, 1).hash);
        assert_eq!(group(&a, 1).title, "user bob logged in");
        let c = json!({"message": "Disk usage above 91% on host-7"});
        let d = json!({"message": "Disk usage above 95% on host-7"});
        assert_eq!(group(&c, 1).hash, group(&d, 1).hash);
        let e = json!({"message": {"formatted": "something else"}});
        assert_ne!(group(&c, 1).hash, group(&e, 1).hash);
    }

    #[test]
    fn version_is_part_of_the_hash() {
        let a = json!({"message": "x"});
        assert_ne!(group(&a, 1).hash, group(&a, 2).hash);
    }

    #[test]
    fn culprit_title_level_user_tags() {
        let e = json!({
            "level": "warning",
            "platform": "python",
            "exception": {"values": [{"type": "ZeroDivisionError", "value": "division by zero",
              "stacktrace": {"frames": [
                {"module": "shop", "function": "outer", "in_app": true},
                {"module": "shop_billing", "function": "divide", "in_app": true}]}}]},
            "user": {"id": 7, "email": "a@b.c"},
            "tags": {"region": "eu"},
            "release": "r1",
        });
        let g = group(&e, 1);
        assert_eq!(g.title, "ZeroDivisionError: division by zero");
        assert_eq!(g.culprit, "shop_billing in divide");
        assert_eq!(g.level, "warning");
        assert_eq!(g.user_key.as_deref(), Some("id:7"));
        assert!(g.tags.contains(&("region".into(), "eu".into())));
        assert!(g.tags.contains(&("release".into(), "r1".into())));
        assert!(g.search_text.contains("divide"));
    }

    #[test]
    fn recursion_counts_once_and_synthetic_type_ignored() {
        let frame = json!({"module": "m", "function": "f", "in_app": true});
        let a = exc_event("E", "x", json!([frame.clone()]));
        let b = exc_event("E", "x", json!([frame.clone(), frame.clone(), frame]));
        assert_eq!(group(&a, 1).hash, group(&b, 1).hash);
        let s1 = json!({"exception": {"values": [{"type": "SIGSEGV", "mechanism": {"synthetic": true},
            "stacktrace": {"frames": [{"function": "crash", "in_app": true}]}}]}});
        let s2 = json!({"exception": {"values": [{"type": "SIGBUS", "mechanism": {"synthetic": true},
            "stacktrace": {"frames": [{"function": "crash", "in_app": true}]}}]}});
        assert_eq!(group(&s1, 1).hash, group(&s2, 1).hash);
    }
}
