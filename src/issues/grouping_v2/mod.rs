//! Grouping version 2: Sentry's grouping behaviour, with an explanation of every decision.
//!
//! What differs from version 1 (kept as it was, so projects on it keep their hashes):
//! - stack traces are read from `exception` (also a single exception object), from `threads`
//!   (the crashed, current or only thread) and from a top-level `stacktrace`; a stack trace
//!   with contributing frames takes precedence over the message;
//! - frames contribute their normalised context line where the platform has trustworthy
//!   source (Python, JavaScript/Node, PHP, Ruby);
//! - JavaScript function names are trimmed to their last segment, and `<anonymous>`,
//!   `[native code]`, `eval` frames and URL file names are left out, so browsers' stack formats
//!   group alike;
//! - JVM generated names (reflection accessors, CGLIB, Javassist, Hibernate/ByteBuddy proxies,
//!   lambdas, Clojure `fn__N`) are normalised;
//! - stack-trace rules (built-in and per project) set in-app and leave frames out of grouping;
//!   fingerprint rules (per project, then built-in) and SDK fingerprints with variables;
//! - whether only in-app frames count is decided once per event, not per exception.

use std::sync::LazyLock;

use regex::Regex;
use serde::Serialize;
use serde_json::Value;

use super::grouping_text::{message_template, normalize_function, parameterize};
use super::rules::{
    self, EventFacts, FingerprintRule, FrameFacts, Range, StackRule, builtin_fingerprint_rules,
    builtin_stacktrace_rules,
};
pub use frames::normalize_java_module;
use frames::{Stack, exc_type_contributes, facts, ruled, stack_parts};

mod frames;

/// A project's own rules, parsed.
#[derive(Debug, Clone, Default)]
pub struct ProjectRules {
    pub fingerprint: Vec<FingerprintRule>,
    pub stacktrace: Vec<StackRule>,
}

/// One piece of the grouping decision, as the explanation shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Part {
    /// `type`, `value`, `frame`, `message`, `fingerprint`, `stacktrace`, `threads`.
    pub kind: &'static str,
    pub label: String,
    pub contributes: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

/// Which fingerprint replaced or refined the default grouping.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FingerprintInfo {
    /// `sdk`, `rule` or `built-in rule`.
    pub source: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// The fingerprint with its variables resolved.
    pub values: Vec<String>,
}

/// The outcome of grouping one event on version 2.
#[derive(Debug, Clone)]
pub struct Analysis {
    /// Hash input: the contributing components.
    pub components: Vec<String>,
    /// A fingerprint rule's `title=`, expanded.
    pub title: Option<String>,
    /// A one-line summary: "in-app frames of the stack trace", "fingerprint", ...
    pub grouped_by: String,
    pub fingerprint: Option<FingerprintInfo>,
    pub parts: Vec<Part>,
}

fn s(v: &Value) -> Option<&str> {
    v.as_str().filter(|s| !s.is_empty())
}

/// `exception` as `{values: [..]}`, a bare list, or one exception object.
pub fn exceptions(event: &Value) -> Vec<&Value> {
    let all: Vec<&Value> = match event.get("exception") {
        Some(Value::Array(a)) => a.iter().collect(),
        Some(o @ Value::Object(m)) => match m.get("values") {
            Some(Value::Array(a)) => a.iter().collect(),
            Some(_) => Vec::new(),
            None if m.contains_key("type")
                || m.contains_key("value")
                || m.contains_key("stacktrace") =>
            {
                vec![o]
            }
            None => Vec::new(),
        },
        _ => Vec::new(),
    };
    all.into_iter().filter(|e| e.is_object()).collect()
}

fn frames_of(holder: &Value) -> &[Value] {
    holder
        .get("stacktrace")
        .and_then(|st| st.get("frames"))
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// The frames of the stack trace an event without exception is grouped by: its thread's or
/// its own.
pub fn stack_frames(event: &Value) -> &[Value] {
    match thread_of(event) {
        Ok(Some(t)) => frames_of(t),
        _ => frames_of(event),
    }
}

/// The thread whose stack trace groups the event, or why none does.
fn thread_of(event: &Value) -> Result<Option<&Value>, String> {
    let list: &[Value] = match event.get("threads") {
        Some(Value::Object(o)) => o
            .get("values")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or(&[]),
        Some(Value::Array(a)) => a,
        _ => &[],
    };
    let with_stack: Vec<&Value> = list.iter().filter(|t| !frames_of(t).is_empty()).collect();
    if with_stack.is_empty() {
        return Ok(None);
    }
    let flagged = |key: &str| -> Vec<&Value> {
        with_stack
            .iter()
            .copied()
            .filter(|t| t.get(key).and_then(Value::as_bool) == Some(true))
            .collect()
    };
    for key in ["crashed", "current"] {
        if let [one] = flagged(key).as_slice() {
            return Ok(Some(one));
        }
    }
    match with_stack.as_slice() {
        [one] => Ok(Some(one)),
        many => Err(format!(
            "ignored because it contains {} threads and none is marked crashed or current",
            many.len()
        )),
    }
}

/// The default grouping (no fingerprint): components and the explanation's parts.
fn default_grouping(
    event: &Value,
    excs: &[&Value],
    rules: &ProjectRules,
) -> (Vec<String>, Vec<Part>, String) {
    let platform = event.get("platform").and_then(s).unwrap_or("other");
    let message = message_template(event);
    if !excs.is_empty() {
        return exception_grouping(excs, platform, rules, message);
    }
    stack_or_message_grouping(event, platform, rules, message)
}

/// Grouping by the exceptions: type and in-app (else all) frames, else type and value.
fn exception_grouping(
    excs: &[&Value],
    platform: &str,
    rules: &ProjectRules,
    message: Option<String>,
) -> (Vec<String>, Vec<Part>, String) {
    let mut parts = Vec::new();
    let mut comps = Vec::new();
    let stacks: Vec<Stack> = excs
        .iter()
        .map(|e| ruled(frames_of(e), platform, rules))
        .collect();
    let app_only = stacks
        .iter()
        .any(|st| st.frames.iter().any(|f| f.facts.in_app == Some(true)));
    let mut any_frames = false;
    for (exc, stack) in excs.iter().zip(&stacks) {
        if let Some(t) = exc.get("type").and_then(s) {
            let contributes = exc_type_contributes(exc);
            if contributes {
                comps.push(format!("type:{t}"));
            }
            parts.push(Part {
                kind: "type",
                label: t.to_string(),
                contributes,
                hint: (!contributes).then(|| "ignored because the exception is synthetic".into()),
            });
        }
        let (keys, fparts) = stack_parts(stack, app_only);
        let has_frames = !keys.is_empty();
        any_frames |= has_frames;
        comps.extend(keys);
        parts.extend(fparts);
        if let Some(v) = exc.get("value").and_then(s) {
            // Parameterising costs a few regexes: only when the value counts.
            let (label, hint) = if has_frames {
                (
                    v.to_string(),
                    Some("ignored because the stack trace takes precedence".into()),
                )
            } else {
                let p = parameterize(v);
                comps.push(format!("value:{p}"));
                (p, None)
            };
            parts.push(Part {
                kind: "value",
                label,
                contributes: !has_frames,
                hint,
            });
        }
    }
    if let Some(m) = message {
        parts.push(Part {
            kind: "message",
            label: m,
            contributes: false,
            hint: Some("ignored because the exception takes precedence".into()),
        });
    }
    let how = if any_frames {
        if app_only {
            "exception: type and in-app frames"
        } else {
            "exception: type and all frames (no frame is in-app)"
        }
    } else {
        "exception: type and value (no usable stack trace)"
    };
    if comps.is_empty() {
        comps.push("empty".into());
    }
    (comps, parts, how.into())
}

/// No exception: a thread's or the event's own stack trace, else the message.
fn stack_or_message_grouping(
    event: &Value,
    platform: &str,
    rules: &ProjectRules,
    message: Option<String>,
) -> (Vec<String>, Vec<Part>, String) {
    let mut parts = Vec::new();
    let mut comps = Vec::new();
    let mut holder: Option<(&Value, &'static str)> = None;
    match thread_of(event) {
        Ok(Some(t)) => holder = Some((t, "threads")),
        Ok(None) => {}
        Err(why) => parts.push(Part {
            kind: "threads",
            label: "threads".into(),
            contributes: false,
            hint: Some(why),
        }),
    }
    if holder.is_none() && !frames_of(event).is_empty() {
        holder = Some((event, "stacktrace"));
    }
    let mut how = String::new();
    if let Some((h, kind)) = holder {
        let stack = ruled(frames_of(h), platform, rules);
        let app_only = stack.frames.iter().any(|f| f.facts.in_app == Some(true));
        let (keys, fparts) = stack_parts(&stack, app_only);
        parts.push(Part {
            kind,
            label: if kind == "threads" {
                "stack trace of the thread".into()
            } else {
                "stack trace".into()
            },
            contributes: !keys.is_empty(),
            hint: keys
                .is_empty()
                .then(|| "no frame contributes; the message is used".into()),
        });
        parts.extend(fparts);
        if !keys.is_empty() {
            comps.extend(keys);
            how = if app_only {
                format!(
                    "{}: in-app frames",
                    if kind == "threads" {
                        "thread stack trace"
                    } else {
                        "stack trace"
                    }
                )
            } else {
                format!(
                    "{}: all frames (no frame is in-app)",
                    if kind == "threads" {
                        "thread stack trace"
                    } else {
                        "stack trace"
                    }
                )
            };
        }
    }
    if let Some(m) = message {
        let contributes = comps.is_empty();
        // Parameterising costs a few regexes: only when the message counts.
        let label = if contributes {
            let p = parameterize(&m);
            comps.push(format!("message:{p}"));
            how = "message (variable parts replaced)".into();
            p
        } else {
            m
        };
        parts.push(Part {
            kind: "message",
            label,
            contributes,
            hint: (!contributes).then(|| "ignored because the stack trace takes precedence".into()),
        });
    }
    if comps.is_empty() {
        comps.push("empty".into());
        how = "nothing: the event has no exception, stack trace or message".into();
    }
    (comps, parts, how)
}

/// The frame a fingerprint variable such as `{{ function }}` names: the crashing frame (the
/// last in-app one of the last exception or stack trace, else its last frame).
fn crash_frame<'a>(event: &'a Value, excs: &[&'a Value]) -> Option<&'a Value> {
    let frames: &[Value] = match excs.last() {
        Some(e) => frames_of(e),
        None => match thread_of(event) {
            Ok(Some(t)) => frames_of(t),
            _ => frames_of(event),
        },
    };
    frames
        .iter()
        .rev()
        .find(|f| f.get("in_app").and_then(Value::as_bool) == Some(true))
        .or(frames.last())
}

/// Resolves one fingerprint variable name (`message`, `error.type`, `tags.x`, ...).
fn variable(name: &str, event: &Value, excs: &[&Value]) -> String {
    let last = excs.last();
    let frame = || crash_frame(event, excs);
    let fget = |k: &str| {
        frame()
            .and_then(|f| f.get(k))
            .and_then(s)
            .map(str::to_string)
    };
    let or = |v: Option<String>, d: &str| v.unwrap_or_else(|| d.to_string());
    match name {
        "transaction" => or(
            event.get("transaction").and_then(s).map(Into::into),
            "<no-transaction>",
        ),
        "message" | "raw_message" => or(
            super::grouping_text::message_of(event).map(|m| parameterize(&m)),
            "<no-message>",
        ),
        "type" | "error.type" => or(
            last.and_then(|e| e.get("type")).and_then(s).map(Into::into),
            "<no-type>",
        ),
        "value" | "raw_value" | "error.value" | "error.raw_value" => or(
            last.and_then(|e| e.get("value"))
                .and_then(s)
                .map(Into::into),
            "<no-value>",
        ),
        "function" | "stack.function" => or(fget("function"), "<no-function>"),
        "path" | "stack.abs_path" => or(fget("abs_path").or(fget("filename")), "<no-abs-path>"),
        "stack.filename" => or(fget("filename").or(fget("abs_path")), "<no-filename>"),
        "module" | "stack.module" => or(fget("module"), "<no-module>"),
        "package" | "stack.package" => or(
            fget("package").map(|p| p.rsplit(['/', '\\']).next().unwrap_or(&p).to_string()),
            "<no-package>",
        ),
        "level" => or(event.get("level").and_then(s).map(Into::into), "<no-level>"),
        "logger" => or(
            event.get("logger").and_then(s).map(Into::into),
            "<no-logger>",
        ),
        "release" => or(
            event.get("release").and_then(s).map(Into::into),
            "<no-release>",
        ),
        "environment" => or(
            event.get("environment").and_then(s).map(Into::into),
            "<no-environment>",
        ),
        n if n.starts_with("tags.") => {
            rules::tag_of(event.get("tags").unwrap_or(&Value::Null), &n[5..])
                .unwrap_or_else(|| format!("<no-value-for-tag-{}>", &n[5..]))
        }
        other => format!("<unrecognized-variable-{other}>"),
    }
}

/// `{{ name }}` → `Some("name")`.
fn variable_name(entry: &str) -> Option<&str> {
    let inner = entry.trim().strip_prefix("{{")?.strip_suffix("}}")?.trim();
    (!inner.is_empty() && !inner.contains(char::is_whitespace)).then_some(inner)
}

static TITLE_VAR: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\{\{\s*(\S+?)\s*\}\}").expect("regex"));

fn event_facts<'a>(event: &'a Value, excs: &[&'a Value], platform: &'a str) -> EventFacts<'a> {
    let mut frames = Vec::new();
    let mut push = |fs: &'a [Value]| {
        for f in fs.iter().filter(|f| f.is_object()) {
            let p = f.get("platform").and_then(s).unwrap_or(platform);
            frames.push(facts(f, p));
        }
    };
    for e in excs {
        push(frames_of(e));
    }
    if let Ok(Some(t)) = thread_of(event) {
        push(frames_of(t));
    }
    push(frames_of(event));
    let mut messages = Vec::new();
    for key in ["logentry", "message"] {
        match event.get(key) {
            Some(Value::String(m)) if !m.is_empty() => messages.push(m.as_str()),
            Some(Value::Object(o)) => {
                for k in ["formatted", "message"] {
                    if let Some(m) = o.get(k).and_then(s) {
                        messages.push(m);
                    }
                }
            }
            _ => {}
        }
    }
    EventFacts {
        family: rules::family(platform),
        messages,
        exceptions: excs
            .iter()
            .map(|e| (e.get("type").and_then(s), e.get("value").and_then(s)))
            .collect(),
        frames,
        logger: event.get("logger").and_then(s),
        level: event.get("level").and_then(s),
        sdk: event.get("sdk").and_then(|v| v.get("name")).and_then(s),
        release: event.get("release").and_then(s),
        tags: event.get("tags").unwrap_or(&Value::Null),
    }
}

fn sdk_fingerprint(event: &Value) -> Option<Vec<String>> {
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

/// Groups `event` on version 2 with `rules` (the project's own; built-ins always apply).
pub fn analyse(event: &Value, rules: &ProjectRules) -> Analysis {
    let excs = exceptions(event);
    let platform = event.get("platform").and_then(s).unwrap_or("other");
    let (default_comps, mut parts, how) = default_grouping(event, &excs, rules);
    // Which fingerprint applies: a project rule, then the SDK's, then a built-in rule.
    let sdk = sdk_fingerprint(event)
        .filter(|fp| !(fp.len() == 1 && variable_name(&fp[0]) == Some("default")));
    let mut chosen: Option<(&'static str, Option<&FingerprintRule>, Vec<String>)> = None;
    // Built-in fingerprint rules are all for JavaScript: other events skip collecting facts.
    let needs_facts =
        !rules.fingerprint.is_empty() || (sdk.is_none() && rules::family(platform) == "javascript");
    if needs_facts {
        let ef = event_facts(event, &excs, platform);
        if let Some(r) = rules.fingerprint.iter().find(|r| r.matches(&ef)) {
            chosen = Some(("rule", Some(r), r.fingerprint.clone()));
        } else if let Some(fp) = sdk.clone() {
            chosen = Some(("sdk", None, fp));
        } else if let Some(r) = builtin_fingerprint_rules().iter().find(|r| r.matches(&ef)) {
            chosen = Some(("built-in rule", Some(r), r.fingerprint.clone()));
        }
    } else if let Some(fp) = sdk {
        chosen = Some(("sdk", None, fp));
    }
    let Some((source, rule, fp)) = chosen else {
        return Analysis {
            components: default_comps,
            title: None,
            grouped_by: how,
            fingerprint: None,
            parts,
        };
    };
    let mut components = Vec::new();
    let mut values = Vec::new();
    let mut has_default = false;
    for entry in &fp {
        match variable_name(entry) {
            Some("default") => {
                has_default = true;
                components.extend(default_comps.iter().cloned());
                values.push("{{ default }}".to_string());
            }
            Some(name) => {
                let v = variable(name, event, &excs);
                components.push(format!("fp:{v}"));
                values.push(v);
            }
            None => {
                components.push(format!("fp:{entry}"));
                values.push(entry.clone());
            }
        }
    }
    if !has_default {
        for p in &mut parts {
            if p.contributes {
                p.contributes = false;
                p.hint =
                    Some("ignored because the fingerprint overrides the default grouping".into());
            }
        }
    }
    let title = rule.and_then(|r| r.title.as_ref()).map(|t| {
        TITLE_VAR
            .replace_all(t, |c: &regex::Captures| variable(&c[1], event, &excs))
            .into_owned()
    });
    let label = match (source, rule) {
        ("sdk", _) => "fingerprint sent by the SDK".to_string(),
        (_, Some(r)) if r.builtin => format!("built-in fingerprint rule `{}`", r.text),
        (_, Some(r)) => format!("fingerprint rule `{}`", r.text),
        _ => "fingerprint".into(),
    };
    parts.insert(
        0,
        Part {
            kind: "fingerprint",
            label: values.join(", "),
            contributes: true,
            hint: Some(label.clone()),
        },
    );
    Analysis {
        components,
        title,
        grouped_by: if has_default {
            format!("{label}, refining the default: {how}")
        } else {
            label
        },
        fingerprint: Some(FingerprintInfo {
            source,
            rule: rule.map(|r| r.text.clone()),
            values,
        }),
        parts,
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod real_sdk_tests;
