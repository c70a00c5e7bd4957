//! Server-side grouping rules in Sentry's syntax: fingerprint rules
//! (`error.type:ChunkLoadError -> chunkloaderror`) and stack-trace rules
//! (`stack.module:vendor/** -app`), plus the built-in ones every project on grouping version 2
//! gets. Parsing checks everything up front, so a saved rule set always applies; matching
//! allocates nothing per frame.

use serde_json::Value;

/// Longest rule text accepted per kind (bytes) and most rules per kind.
pub const MAX_RULES_TEXT: usize = 32 * 1024;
pub const MAX_RULES: usize = 200;

/// Fingerprint rules every project on grouping version 2 has after its own.
pub const BUILTIN_FINGERPRINT_RULES: &str = "\
# Every JavaScript ChunkLoadError is one issue, whatever chunk failed to load.
family:javascript error.type:ChunkLoadError -> chunkloaderror
family:javascript error.value:\"ChunkLoadError*\" -> chunkloaderror
";

/// Stack-trace rules every project on grouping version 2 has before its own (so its own
/// rules can undo them).
pub const BUILTIN_STACKTRACE_RULES: &str = "\
# Dependencies are not the application.
path:**/node_modules/** -app
path:**/site-packages/** -app
path:**/dist-packages/** -app
path:**/vendor/** -app
path:**/go/pkg/mod/** -app
# Transpilers and polyfills are noise: never part of grouping.
module:@babel/** -app -group
module:core-js/** -app -group
module:regenerator-runtime/** -app -group
module:tslib/** -app -group
path:**/node_modules/@babel/** -app -group
path:**/node_modules/core-js/** -app -group
path:**/node_modules/regenerator-runtime/** -app -group
path:**/node_modules/tslib/** -app -group
path:**/tslib.es6.js -app -group
path:**/regenerator-runtime/runtime.js -app -group
# The Sentry SDKs' own frames.
module:@sentry/** -app -group
path:**/node_modules/@sentry/** -app -group
path:**/browser.sentry-cdn.com/** -app -group
path:**/sentry-browser*.js -app -group
module:io.sentry.* -app -group
module:sentry_sdk.* -app -group
# Node's task machinery.
function:processTicksAndRejections -app -group
function:runMicrotasks -app -group
function:runNextTicks -app -group
";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    Type,
    Value,
    Message,
    Logger,
    Level,
    Function,
    Module,
    Path,
    Package,
    Family,
    App,
    Sdk,
    Release,
    Tag,
}

impl Key {
    fn parse(s: &str) -> Option<(Key, Option<String>)> {
        if let Some(tag) = s.strip_prefix("tags.") {
            return (!tag.is_empty()).then(|| (Key::Tag, Some(tag.to_string())));
        }
        Some((
            match s {
                "error.type" | "type" => Key::Type,
                "error.value" | "value" => Key::Value,
                "message" => Key::Message,
                "logger" => Key::Logger,
                "level" => Key::Level,
                "stack.function" | "function" => Key::Function,
                "stack.module" | "module" => Key::Module,
                "stack.abs_path" | "path" | "stack.filename" => Key::Path,
                "stack.package" | "package" => Key::Package,
                "family" => Key::Family,
                "app" => Key::App,
                "sdk" => Key::Sdk,
                "release" => Key::Release,
                _ => return None,
            },
            None,
        ))
    }

    fn is_frame(self) -> bool {
        matches!(
            self,
            Key::Function | Key::Module | Key::Path | Key::Package | Key::App | Key::Family
        )
    }
}

#[derive(Debug, Clone)]
pub struct Matcher {
    pub key: Key,
    pub tag: Option<String>,
    pub pattern: String,
    pub negated: bool,
    /// The pattern's longest literal run (lowercase for paths): a value without it cannot
    /// match, which rules most frames out before the glob runs.
    needle: String,
}

/// One fingerprint rule: matchers → fingerprint (with variables) and an optional title.
#[derive(Debug, Clone)]
pub struct FingerprintRule {
    pub text: String,
    pub matchers: Vec<Matcher>,
    pub fingerprint: Vec<String>,
    pub title: Option<String>,
    pub builtin: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Range {
    /// This frame.
    Here,
    /// `^`: the frames it calls (towards the crash).
    Up,
    /// `v`: the frames that call it (towards the entry point).
    Down,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Action {
    pub range: Range,
    /// `app` or `group`.
    pub app: bool,
    pub flag: bool,
}

/// One stack-trace rule: frame matchers → `+app`/`-app`/`+group`/`-group` (with `^`/`v`).
#[derive(Debug, Clone)]
pub struct StackRule {
    pub text: String,
    pub matchers: Vec<Matcher>,
    pub actions: Vec<Action>,
    pub builtin: bool,
}

/// A rule text that does not parse: which line and why.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleError {
    pub line: usize,
    pub message: String,
}

impl std::fmt::Display for RuleError {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// Splits a rule line into tokens; `"quoted values"` keep their spaces, `\"` escapes a quote.
fn tokens(line: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_quotes = false;
    let mut any = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            // `{{ name }}` (a fingerprint variable) is one token, spaces and all.
            '{' if !in_quotes && chars.peek() == Some(&'{') => {
                cur.push_str("{{");
                chars.next();
                let mut closed = false;
                while let Some(n) = chars.next() {
                    if n == '}' && chars.peek() == Some(&'}') {
                        chars.next();
                        closed = true;
                        break;
                    }
                    if !n.is_whitespace() {
                        cur.push(n);
                    }
                }
                if !closed {
                    return Err("a {{ variable }} is not closed".into());
                }
                cur.push_str("}}");
            }
            '"' => {
                in_quotes = !in_quotes;
                any = true;
            }
            '\\' if in_quotes => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            c if c.is_whitespace() && !in_quotes => {
                if any || !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            c => cur.push(c),
        }
    }
    if in_quotes {
        return Err("a quoted value is not closed".into());
    }
    if any || !cur.is_empty() {
        out.push(cur);
    }
    Ok(out)
}

/// Drops a `#` comment that is not inside quotes.
fn strip_comment(line: &str) -> &str {
    let mut in_quotes = false;
    for (i, c) in line.char_indices() {
        match c {
            '"' => in_quotes = !in_quotes,
            '#' if !in_quotes => return &line[..i],
            _ => {}
        }
    }
    line
}

fn parse_matcher(tok: &str) -> Result<Matcher, String> {
    let (negated, rest) = match tok.strip_prefix('!') {
        Some(r) => (true, r),
        None => (false, tok),
    };
    let Some((key, pattern)) = rest.split_once(':') else {
        return Err(format!(
            "{tok:?} is not a matcher; write key:pattern, e.g. error.type:ValueError"
        ));
    };
    let (key, tag) = Key::parse(key).ok_or_else(|| {
        format!(
            "unknown matcher {key:?}; use error.type, error.value, message, logger, level, \
             stack.function, stack.module, stack.abs_path, stack.package, family, app, sdk, \
             release or tags.NAME"
        )
    })?;
    if pattern.is_empty() {
        return Err(format!("matcher {key:?} has an empty pattern"));
    }
    let mut needle = pattern
        .split(['*', '?'])
        .max_by_key(|p| p.len())
        .unwrap_or_default()
        .to_string();
    if matches!(key, Key::Path | Key::Package | Key::Release) {
        // `**/x/**` also matches a relative `x/...`: the slashes are not required.
        needle = needle.trim_matches('/').to_ascii_lowercase();
    }
    Ok(Matcher {
        key,
        tag,
        pattern: pattern.to_string(),
        negated,
        needle,
    })
}

fn lines(text: &str) -> Result<impl Iterator<Item = (usize, &str)>, RuleError> {
    if text.len() > MAX_RULES_TEXT {
        return Err(RuleError {
            line: 0,
            message: format!(
                "the rules are {} bytes; at most {MAX_RULES_TEXT} are accepted",
                text.len()
            ),
        });
    }
    Ok(text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, strip_comment(l).trim()))
        .filter(|(_, l)| !l.is_empty()))
}

fn too_many(n: usize, line: usize) -> Result<(), RuleError> {
    if n >= MAX_RULES {
        return Err(RuleError {
            line,
            message: format!("at most {MAX_RULES} rules are accepted"),
        });
    }
    Ok(())
}

/// Parses fingerprint rules: `matcher... -> value... [title="..."]`, one per line.
pub fn parse_fingerprint_rules(text: &str) -> Result<Vec<FingerprintRule>, RuleError> {
    parse_fingerprint_rules_as(text, false)
}

fn parse_fingerprint_rules_as(
    text: &str,
    builtin: bool,
) -> Result<Vec<FingerprintRule>, RuleError> {
    let mut out = Vec::new();
    for (line, l) in lines(text)? {
        too_many(out.len(), line)?;
        let err = |message: String| RuleError { line, message };
        let Some((lhs, rhs)) = l.split_once("->") else {
            return Err(err(
                "a fingerprint rule needs \"->\": matchers -> fingerprint, e.g. \
                 error.type:ChunkLoadError -> chunkloaderror"
                    .into(),
            ));
        };
        let matchers = tokens(lhs)
            .map_err(err)?
            .iter()
            .map(|t| parse_matcher(t))
            .collect::<Result<Vec<_>, _>>()
            .map_err(err)?;
        if matchers.is_empty() {
            return Err(err("a fingerprint rule needs at least one matcher".into()));
        }
        let mut fingerprint = Vec::new();
        let mut title = None;
        for t in tokens(rhs).map_err(err)? {
            if let Some(v) = t.strip_prefix("title=") {
                title = Some(v.to_string());
            } else if let Some((k, _)) = t.split_once('=').filter(|(k, _)| {
                !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            }) {
                return Err(err(format!(
                    "unknown attribute {k:?}; only title=\"...\" is supported"
                )));
            } else {
                fingerprint.push(t);
            }
        }
        if fingerprint.is_empty() {
            return Err(err(
                "a fingerprint rule needs at least one fingerprint value after \"->\"".into(),
            ));
        }
        out.push(FingerprintRule {
            text: l.to_string(),
            matchers,
            fingerprint,
            title,
            builtin,
        });
    }
    Ok(out)
}

/// Parses stack-trace rules: `matcher... action...`, one per line; actions are `+app`, `-app`,
/// `+group`, `-group`, optionally prefixed by `^` (frames it calls) or `v` (its callers).
pub fn parse_stacktrace_rules(text: &str) -> Result<Vec<StackRule>, RuleError> {
    parse_stacktrace_rules_as(text, false)
}

fn parse_action(tok: &str) -> Option<Action> {
    let (range, rest) = if let Some(r) = tok.strip_prefix('^') {
        (Range::Up, r)
    } else if let Some(r) = tok.strip_prefix('v') {
        (Range::Down, r)
    } else {
        (Range::Here, tok)
    };
    let (flag, what) = match rest.split_at_checked(1)? {
        ("+", w) => (true, w),
        ("-", w) => (false, w),
        _ => return None,
    };
    let app = match what {
        "app" => true,
        "group" => false,
        _ => return None,
    };
    Some(Action { range, app, flag })
}

fn parse_stacktrace_rules_as(text: &str, builtin: bool) -> Result<Vec<StackRule>, RuleError> {
    let mut out = Vec::new();
    for (line, l) in lines(text)? {
        too_many(out.len(), line)?;
        let err = |message: String| RuleError { line, message };
        let mut matchers = Vec::new();
        let mut actions = Vec::new();
        for t in tokens(l).map_err(err)? {
            if let Some(a) = parse_action(&t) {
                actions.push(a);
            } else if !actions.is_empty() {
                return Err(err(format!(
                    "{t:?} is not an action; actions come last and are +app, -app, +group, \
                     -group (optionally ^ or v before them)"
                )));
            } else if t.starts_with('[') || t == "|" {
                return Err(err(
                    "caller/callee matchers ([ ... ] |) are not supported; match the frame itself"
                        .into(),
                ));
            } else if t.contains('=') && !t.contains(':') {
                return Err(err(format!(
                    "{t:?}: only +app, -app, +group and -group actions are supported"
                )));
            } else {
                let m = parse_matcher(&t).map_err(err)?;
                if !m.key.is_frame() {
                    return Err(err(format!(
                        "{t:?}: stack-trace rules match frames; use stack.function, \
                         stack.module, stack.abs_path, stack.package, family or app"
                    )));
                }
                matchers.push(m);
            }
        }
        if matchers.is_empty() {
            return Err(err("a stack-trace rule needs at least one matcher".into()));
        }
        if actions.is_empty() {
            return Err(err(
                "a stack-trace rule needs an action: +app, -app, +group or -group".into(),
            ));
        }
        out.push(StackRule {
            text: l.to_string(),
            matchers,
            actions,
            builtin,
        });
    }
    Ok(out)
}

pub fn builtin_fingerprint_rules() -> &'static [FingerprintRule] {
    static RULES: std::sync::LazyLock<Vec<FingerprintRule>> = std::sync::LazyLock::new(|| {
        parse_fingerprint_rules_as(BUILTIN_FINGERPRINT_RULES, true).expect("built-in rules")
    });
    &RULES
}

pub fn builtin_stacktrace_rules() -> &'static [StackRule] {
    static RULES: std::sync::LazyLock<Vec<StackRule>> = std::sync::LazyLock::new(|| {
        parse_stacktrace_rules_as(BUILTIN_STACKTRACE_RULES, true).expect("built-in rules")
    });
    &RULES
}

// ---- matching -------------------------------------------------------------------------------

/// Glob match without allocating: `*` matches any run (not `/` when `path`), `**` any run
/// including `/`, `?` one character. `path` also ignores case and treats `\` as `/`.
pub fn glob(pattern: &str, value: &str, path: bool) -> bool {
    glob_bytes(pattern.as_bytes(), value.as_bytes(), path, false)
}

fn glob_ci(pattern: &str, value: &str) -> bool {
    glob_bytes(pattern.as_bytes(), value.as_bytes(), false, true)
}

fn glob_bytes(p: &[u8], v: &[u8], path: bool, ci: bool) -> bool {
    let eq = |a: u8, b: u8| {
        let (a, b) = if path {
            (
                if a == b'\\' { b'/' } else { a },
                if b == b'\\' { b'/' } else { b },
            )
        } else {
            (a, b)
        };
        if path || ci {
            a.eq_ignore_ascii_case(&b)
        } else {
            a == b
        }
    };
    // Iterative matcher with backtracking to the last star.
    let (mut pi, mut vi) = (0usize, 0usize);
    let mut star: Option<(usize, usize, bool)> = None;
    while vi < v.len() {
        if pi < p.len() && p[pi] == b'*' {
            let double = pi + 1 < p.len() && p[pi + 1] == b'*';
            pi += if double { 2 } else { 1 };
            star = Some((pi, vi, double || !path));
            continue;
        }
        if pi < p.len() && (p[pi] == b'?' || eq(p[pi], v[vi])) {
            pi += 1;
            vi += 1;
            continue;
        }
        match star {
            Some((sp, sv, crosses)) if crosses || (v[sv] != b'/' && v[sv] != b'\\') => {
                pi = sp;
                vi = sv + 1;
                star = Some((sp, sv + 1, crosses));
            }
            _ => return false,
        }
    }
    while pi < p.len() && p[pi] == b'*' {
        pi += 1;
    }
    pi == p.len()
}

/// The behaviour family of a platform, as Sentry's `family:` matcher sees it.
pub fn family(platform: &str) -> &'static str {
    match platform {
        "javascript" | "node" => "javascript",
        "native" | "c" | "cocoa" | "objc" | "swift" | "rust" => "native",
        _ => "other",
    }
}

/// A frame as rules see it.
pub struct FrameFacts<'a> {
    pub function: Option<&'a str>,
    pub module: Option<&'a str>,
    pub abs_path: Option<&'a str>,
    pub filename: Option<&'a str>,
    pub package: Option<&'a str>,
    pub in_app: Option<bool>,
    pub family: &'static str,
}

fn family_matches(pattern: &str, family: &str) -> bool {
    pattern.split(',').any(|p| p == "all" || p == family)
}

fn bool_pattern(p: &str) -> Option<bool> {
    match p.to_ascii_lowercase().as_str() {
        "1" | "yes" | "true" => Some(true),
        "0" | "no" | "false" => Some(false),
        _ => None,
    }
}

fn path_matches(pattern: &str, value: &str) -> bool {
    glob(pattern, value, true)
        || (!value.starts_with('/') && {
            // `**/x` also matches a relative `x/...`: compare against "/" + value.
            pattern.starts_with("**/") && glob(&pattern[3..], value, true)
        })
}

/// Whether `hay` contains `needle`, ignoring ASCII case when `ci` (`needle` is lowercase then).
fn contains(hay: &str, needle: &str, ci: bool) -> bool {
    if !ci {
        return hay.contains(needle);
    }
    let (h, n) = (hay.as_bytes(), needle.as_bytes());
    n.is_empty()
        || h.windows(n.len())
            .any(|w| w.iter().zip(n).all(|(a, b)| a.to_ascii_lowercase() == *b))
}

impl Matcher {
    /// The literal prefilter: `false` when `v` cannot match the pattern.
    fn may_match(&self, v: &str, path: bool) -> bool {
        // Paths with backslashes match `/` in patterns: leave those to the glob.
        (path && v.contains('\\')) || contains(v, &self.needle, path)
    }

    /// Whether this frame matcher matches `f` (negation applied).
    pub fn matches_frame(&self, f: &FrameFacts) -> bool {
        let plain = |v: &str| self.may_match(v, false) && glob(&self.pattern, v, false);
        let path = |v: &str| self.may_match(v, true) && path_matches(&self.pattern, v);
        let hit = match self.key {
            Key::Function => f.function.is_some_and(plain),
            Key::Module => f.module.is_some_and(plain),
            Key::Path => f.abs_path.is_some_and(path) || f.filename.is_some_and(path),
            Key::Package => f.package.is_some_and(path),
            Key::App => f.in_app.unwrap_or(false) == bool_pattern(&self.pattern).unwrap_or(true),
            Key::Family => family_matches(&self.pattern, f.family),
            _ => false,
        };
        hit != self.negated
    }
}

/// What fingerprint rules look at in an event.
pub struct EventFacts<'a> {
    pub family: &'static str,
    pub messages: Vec<&'a str>,
    /// (type, value) per exception.
    pub exceptions: Vec<(Option<&'a str>, Option<&'a str>)>,
    pub frames: Vec<FrameFacts<'a>>,
    pub logger: Option<&'a str>,
    pub level: Option<&'a str>,
    pub sdk: Option<&'a str>,
    pub release: Option<&'a str>,
    pub tags: &'a Value,
}

fn tag_value(tags: &Value, name: &str) -> Option<String> {
    let scalar = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    };
    match tags {
        Value::Object(o) => o.get(name).and_then(scalar),
        Value::Array(a) => a.iter().find_map(|pair| match pair.as_array()?.as_slice() {
            [k, v] if k.as_str() == Some(name) => scalar(v),
            _ => None,
        }),
        _ => None,
    }
}

pub fn tag_of(tags: &Value, name: &str) -> Option<String> {
    tag_value(tags, name)
}

impl FingerprintRule {
    /// Whether every matcher matches `e`: exception matchers on one exception, frame
    /// matchers on one frame.
    pub fn matches(&self, e: &EventFacts) -> bool {
        let (frame_m, other): (Vec<&Matcher>, Vec<&Matcher>) = self
            .matchers
            .iter()
            .partition(|m| m.key.is_frame() && m.key != Key::Family);
        let exc_m: Vec<&Matcher> = other
            .iter()
            .copied()
            .filter(|m| matches!(m.key, Key::Type | Key::Value))
            .collect();
        for m in &other {
            let hit = match m.key {
                Key::Type | Key::Value => continue,
                Key::Message => {
                    e.messages.iter().any(|v| glob_ci(&m.pattern, v))
                        || e.exceptions
                            .iter()
                            .any(|(_, v)| v.is_some_and(|v| glob_ci(&m.pattern, v.trim())))
                }
                Key::Logger => e.logger.is_some_and(|v| glob(&m.pattern, v, false)),
                Key::Level => e.level.is_some_and(|v| glob_ci(&m.pattern, v)),
                Key::Family => family_matches(&m.pattern, e.family),
                Key::Sdk => e.sdk.is_some_and(|v| family_matches(&m.pattern, v)),
                Key::Release => e.release.is_some_and(|v| path_matches(&m.pattern, v)),
                Key::Tag => m
                    .tag
                    .as_deref()
                    .and_then(|t| tag_value(e.tags, t))
                    .is_some_and(|v| glob(&m.pattern, v.trim(), false)),
                _ => false,
            };
            if hit == m.negated {
                return false;
            }
        }
        if !exc_m.is_empty() {
            let any = e.exceptions.iter().any(|(ty, val)| {
                exc_m.iter().all(|m| {
                    let hit = match m.key {
                        Key::Type => ty.is_some_and(|t| glob(&m.pattern, t, false)),
                        _ => val.is_some_and(|v| glob_ci(&m.pattern, v.trim())),
                    };
                    hit != m.negated
                })
            });
            if !any {
                return false;
            }
        }
        if !frame_m.is_empty()
            && !e
                .frames
                .iter()
                .any(|f| frame_m.iter().all(|m| m.matches_frame(f)))
        {
            return false;
        }
        true
    }
}

#[cfg(test)]
mod tests;
