//! Frames: JVM and platform name normalisation, stack-trace rules, and what each frame
//! contributes to the grouping.

use super::*;

const CONTEXT_LINE_PLATFORMS: &[&str] = &["python", "javascript", "node", "php", "ruby"];

static JAVA_REFLECT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"((?:sun|jdk\.internal)\.reflect\.Generated(?:Serialization)?(?:Method|Constructor)Accessor)[0-9]+")
        .expect("regex")
});
static JAVA_CGLIB: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(\$\$[A-Za-z_]*?CGLIB\$\$)[a-fA-F0-9]+(?:_[0-9]+)?").expect("regex")
});
static JAVASSIST: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(\$\$_javassist)(?:_seam)?(?:_[0-9]+)?").expect("regex"));
static JAVA_PROXY: LazyLock<Regex> = LazyLock::new(|| {
    // Hibernate (ByteBuddy) proxies, ByteBuddy and Mockito generated classes.
    Regex::new(r"(\$(?:HibernateProxy|ByteBuddy|MockitoMock|auxiliary)\$)[A-Za-z0-9]+")
        .expect("regex")
});
static JAVA_LAMBDA_MODULE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\$\$Lambda(?:\$[0-9]+)?(?:/(?:0x)?[0-9a-fA-F]+)?").expect("regex")
});
static JDK_PROXY: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(\$Proxy)[0-9]+").expect("regex"));
static CLOJURE_FN: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(\$fn__)[0-9]+").expect("regex"));
static RUBY_ERB: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"__[0-9]{4,}_[0-9]{4,}$").expect("regex"));

/// Normalises a JVM class name (a frame's module); says so when it changed.
pub fn normalize_java_module(module: &str) -> (String, Option<&'static str>) {
    if !module.contains('$') && !module.contains("Accessor") {
        return (module.to_string(), None);
    }
    let mut m = module.to_string();
    for (re, rep) in [
        (&*JAVA_REFLECT, "${1}<auto>"),
        (&*JAVA_CGLIB, "${1}<auto>"),
        (&*JAVASSIST, "${1}<auto>"),
        (&*JAVA_PROXY, "${1}<auto>"),
        (&*JAVA_LAMBDA_MODULE, "$$$$Lambda$$<auto>"),
        (&*JDK_PROXY, "${1}<auto>"),
        (&*CLOJURE_FN, "${1}<auto>"),
    ] {
        if re.is_match(&m) {
            m = re.replace_all(&m, rep).into_owned();
        }
    }
    let hint = (m != module).then_some("removed codegen marker");
    (m, hint)
}

fn has_url_origin(path: Option<&str>) -> bool {
    path.is_some_and(|p| {
        let p = p.trim_start();
        [
            "http://",
            "https://",
            "file://",
            "webpack://",
            "app://",
            "blob:",
        ]
        .iter()
        .any(|pre| p.len() >= pre.len() && p[..pre.len()].eq_ignore_ascii_case(pre))
    })
}

fn basename(path: &str) -> String {
    let path = path.split(['?', '#']).next().unwrap_or(path);
    path.rsplit(['/', '\\'])
        .next()
        .unwrap_or(path)
        .to_ascii_lowercase()
}

/// A frame after stack-trace rules: its facts, in-app flag and grouping flag.
pub(super) struct RuledFrame<'a> {
    raw: &'a Value,
    platform: &'a str,
    pub(super) facts: FrameFacts<'a>,
    /// `Some(false)` when a rule left it out of grouping.
    group: bool,
    group_rule: Option<&'a str>,
    app_rule: Option<&'a str>,
}

pub(super) fn facts<'a>(f: &'a Value, platform: &'a str) -> FrameFacts<'a> {
    FrameFacts {
        function: f
            .get("function")
            .and_then(s)
            .or_else(|| f.get("raw_function").and_then(s)),
        module: f.get("module").and_then(s),
        abs_path: f.get("abs_path").and_then(s),
        filename: f.get("filename").and_then(s),
        package: f.get("package").and_then(s),
        in_app: f.get("in_app").and_then(Value::as_bool),
        family: rules::family(platform),
    }
}

fn apply_stack_rules<'a>(frames: &mut [RuledFrame<'a>], rules: &'a [StackRule]) {
    for rule in rules {
        for i in 0..frames.len() {
            if !rule
                .matchers
                .iter()
                .all(|m| m.matches_frame(&frames[i].facts))
            {
                continue;
            }
            for a in &rule.actions {
                let range = match a.range {
                    Range::Here => i..i + 1,
                    // Frames are oldest first: the frames this one calls come after it.
                    Range::Up => i + 1..frames.len(),
                    Range::Down => 0..i,
                };
                for f in &mut frames[range] {
                    if a.app {
                        // A built-in rule does not overrule what the SDK said.
                        if rule.builtin && f.facts.in_app.is_some() {
                            continue;
                        }
                        f.facts.in_app = Some(a.flag);
                        f.app_rule = Some(&rule.text);
                    } else {
                        f.group = a.flag;
                        f.group_rule = Some(&rule.text);
                    }
                }
            }
        }
    }
}

struct FrameOut {
    key: String,
    part: Part,
}

fn same_frame(a: &Value, b: &Value) -> bool {
    [
        "abs_path", "package", "module", "filename", "function", "lineno", "colno",
    ]
    .iter()
    .all(|k| a.get(k) == b.get(k))
}

/// One frame's grouping component and its explanation.
fn frame_component(f: &RuledFrame, prev: Option<&Value>, app_only: bool) -> FrameOut {
    let family = f.facts.family;
    let js = family == "javascript";
    let mut notes: Vec<&str> = Vec::new();
    let abs_path = f.facts.abs_path;
    let module = frame_module(f, js, abs_path, &mut notes);
    let filename = frame_filename(f, module.is_none(), abs_path, &mut notes);
    let raw_func = f.facts.function;
    let function = frame_function(f, js, &mut notes);
    let context = frame_context(f, js, function.is_none(), abs_path, &mut notes);
    let label = {
        let mut l = Vec::new();
        if let Some(m) = &module {
            l.push(m.clone());
        } else if let Some(b) = &filename {
            l.push(b.clone());
        } else if let Some(p) = abs_path.or(f.facts.filename) {
            l.push(p.to_string());
        }
        l.push(
            function
                .clone()
                .or(raw_func.map(str::to_string))
                .unwrap_or_else(|| "?".into()),
        );
        if let Some(c) = &context {
            l.push(format!("`{c}`"));
        }
        l.join(" · ")
    };
    let place = module.clone().or(filename.clone()).unwrap_or_default();
    let mut key = format!("frame:{place}:{}", function.as_deref().unwrap_or_default());
    if let Some(c) = &context {
        key.push(':');
        key.push_str(c);
    }
    let empty = place.is_empty() && function.is_none() && context.is_none();
    let reason = skip_reason(f, prev, app_only, empty);
    let mut hint_parts: Vec<String> = reason.iter().cloned().collect();
    if f.group && f.app_rule.is_some() && reason.is_none() {
        hint_parts.push(format!("in-app by rule `{}`", f.app_rule.unwrap_or("")));
    }
    hint_parts.extend(notes.iter().map(|n| n.to_string()));
    FrameOut {
        key,
        part: Part {
            kind: "frame",
            label,
            contributes: reason.is_none(),
            hint: (!hint_parts.is_empty()).then(|| hint_parts.join("; ")),
        },
    }
}

/// Module, with JVM generated names normalised.
fn frame_module(
    f: &RuledFrame,
    js: bool,
    abs_path: Option<&str>,
    notes: &mut Vec<&'static str>,
) -> Option<String> {
    let mut module = f.facts.module.map(str::to_string);
    if let Some(m) = &module {
        if js && m.contains('/') && abs_path.is_some_and(|p| p.ends_with(m.as_str())) {
            notes.push("module ignored: it is the file path");
            module = None;
        } else if f.platform == "java" || m.contains("$$") || m.contains("Accessor") {
            let (n, hint) = normalize_java_module(m);
            if let Some(h) = hint {
                notes.push(h);
            }
            module = Some(n);
        }
    }
    module
}

/// File name: basename, unless a module is there or it is not a real file.
fn frame_filename(
    f: &RuledFrame,
    no_module: bool,
    abs_path: Option<&str>,
    notes: &mut Vec<&'static str>,
) -> Option<String> {
    let mut filename = None;
    if no_module && let Some(fname) = f.facts.filename.or(abs_path) {
        let b = basename(fname);
        if has_url_origin(abs_path) || has_url_origin(Some(fname)) {
            notes.push("file name ignored: the frame points to a URL");
        } else if b == "<anonymous>" || b == "[native code]" || b == "native code" {
            notes.push("file name ignored: not a real file");
        } else {
            let (b, hint) = if f.platform == "java" && b.contains("$$_javassist") {
                let n = JAVASSIST.replace_all(&b, "${1}<auto>").into_owned();
                (n, Some("removed javassist marker"))
            } else {
                (b, None)
            };
            if let Some(h) = hint {
                notes.push(h);
            }
            filename = Some(b);
        }
    }
    filename
}

/// Function, normalised per platform.
fn frame_function(f: &RuledFrame, js: bool, notes: &mut Vec<&'static str>) -> Option<String> {
    let mut function = f.facts.function.map(normalize_function);
    if let Some(func) = function.clone() {
        if js {
            let trimmed = func
                .trim_start_matches("async ")
                .trim_start_matches("new ")
                .rsplit('.')
                .next()
                .unwrap_or(&func)
                .to_string();
            if trimmed != func {
                notes.push("trimmed JavaScript function");
            }
            if trimmed.is_empty()
                || matches!(
                    trimmed.as_str(),
                    "?" | "<anonymous function>"
                        | "<anonymous>"
                        | "Anonymous function"
                        | "(anonymous)"
                )
                || trimmed.ends_with("/<")
            {
                notes.push("function ignored: anonymous");
                function = None;
            } else {
                function = Some(trimmed);
            }
        } else if f.platform == "java" && func.starts_with("lambda$") {
            notes.push("function ignored: lambda");
            function = None;
        } else if f.platform == "ruby" {
            if func.starts_with("block ") {
                function = Some("block".into());
                notes.push("ruby block");
            } else if RUBY_ERB.is_match(&func) {
                function = Some(RUBY_ERB.replace(&func, "").into_owned());
                notes.push("removed generated erb template suffix");
            }
        } else if f.platform == "php"
            && (func.starts_with("[Anonymous") || func.starts_with("class@anonymous"))
        {
            notes.push("function ignored: anonymous");
            function = None;
        } else if matches!(func.as_str(), "<redacted>" | "<unknown>" | "?") {
            notes.push("function ignored: unknown");
            function = None;
        }
    }
    function
}

/// Context line, where the platform's source is trustworthy.
fn frame_context(
    f: &RuledFrame,
    js: bool,
    no_function: bool,
    abs_path: Option<&str>,
    notes: &mut Vec<&'static str>,
) -> Option<String> {
    let mut context = None;
    if CONTEXT_LINE_PLATFORMS.contains(&f.platform)
        && let Some(line) = f.raw.get("context_line").and_then(s)
    {
        let norm = line.split_whitespace().collect::<Vec<_>>().join(" ");
        if norm.is_empty() {
        } else if line.chars().count() > 120 {
            notes.push("context line ignored: longer than 120 characters");
        } else if js && no_function && has_url_origin(abs_path) {
            notes.push("context line ignored: from a URL and no function");
        } else {
            context = Some(norm);
        }
    }
    context
}

/// Why a frame does not contribute, first reason wins.
fn skip_reason(
    f: &RuledFrame,
    prev: Option<&Value>,
    app_only: bool,
    empty: bool,
) -> Option<String> {
    let js = f.facts.family == "javascript";
    let raw_func = f.facts.function;
    let abs_path = f.facts.abs_path;
    let js_low_quality = js
        && (raw_func.map(|f| f.rsplit('.').next().unwrap_or(f)) == Some("eval")
            || abs_path.is_some_and(|p| {
                matches!(
                    p,
                    "[native code]" | "native code" | "eval code" | "<anonymous>"
                )
            }));
    if !f.group {
        Some(format!(
            "left out by stack-trace rule `{}`",
            f.group_rule.unwrap_or("")
        ))
    } else if app_only && f.facts.in_app != Some(true) {
        Some(match f.app_rule {
            Some(r) => format!("not in-app (rule `{r}`)"),
            None => "not in-app".into(),
        })
    } else if js_low_quality {
        Some("low-quality JavaScript frame (native code, eval or anonymous)".into())
    } else if prev.is_some_and(|p| same_frame(p, f.raw)) {
        Some("repeats the frame before it (recursion)".into())
    } else if empty {
        Some("nothing to group by".into())
    } else {
        None
    }
}

pub(super) fn exc_type_contributes(exc: &Value) -> bool {
    exc.get("mechanism")
        .and_then(|m| m.get("synthetic"))
        .and_then(Value::as_bool)
        != Some(true)
}

/// One stack trace's frames, with the event's platform as the default.
pub(super) struct Stack<'a> {
    pub(super) frames: Vec<RuledFrame<'a>>,
}

pub(super) fn ruled<'a>(
    frames: &'a [Value],
    platform: &'a str,
    rules: &'a ProjectRules,
) -> Stack<'a> {
    let mut out: Vec<RuledFrame> = frames
        .iter()
        .filter(|f| f.is_object())
        .map(|f| {
            let p = f.get("platform").and_then(s).unwrap_or(platform);
            RuledFrame {
                raw: f,
                platform: p,
                facts: facts(f, p),
                group: true,
                group_rule: None,
                app_rule: None,
            }
        })
        .collect();
    apply_stack_rules(&mut out, builtin_stacktrace_rules());
    apply_stack_rules(&mut out, &rules.stacktrace);
    Stack { frames: out }
}

/// The frames' components and parts; a single JavaScript frame without a function that only
/// points to a URL is too weak to group by.
pub(super) fn stack_parts(stack: &Stack, app_only: bool) -> (Vec<String>, Vec<Part>) {
    let mut keys = Vec::new();
    let mut parts = Vec::new();
    let mut prev: Option<&Value> = None;
    for f in &stack.frames {
        let out = frame_component(f, prev, app_only);
        prev = Some(f.raw);
        if out.part.contributes {
            keys.push(out.key);
        }
        parts.push(out.part);
    }
    if let ([f], [p]) = (stack.frames.as_slice(), parts.as_mut_slice())
        && p.contributes
        && f.facts.family == "javascript"
        && f.facts.function.is_none()
        && has_url_origin(f.facts.abs_path)
    {
        p.contributes = false;
        p.hint = Some("a single JavaScript frame with only a URL is too weak to group by".into());
        keys.clear();
    }
    // Frames are shown (and kept) oldest first.
    (keys, parts)
}
