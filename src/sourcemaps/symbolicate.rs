//! Mapping an event's JavaScript frames through stored source maps.

use std::sync::atomic::Ordering::Relaxed;

use serde_json::{Map, Value, json};
use sourcemap::{DecodedMap, SourceMap};

use super::SourceMaps;
use super::bundle::FileKind;

/// Lines of source context kept on each side of a mapped line (Sentry's default).
const CONTEXT_LINES: u32 = 5;
/// Longest context line kept, in characters (a minified line can be megabytes).
const MAX_LINE: usize = 300;
/// Frames looked at per event; an event with more keeps the rest as sent.
const MAX_FRAMES: usize = 250;

/// An index entry: which stored file, from which bundle.
#[derive(Debug, Clone)]
pub(super) struct Found {
    pub sha1: String,
    pub kind: FileKind,
    /// The minified file's `Sourcemap` header (release flow).
    pub sourcemap: Option<String>,
}

impl Found {
    /// Parses `"bundle id:sha1:type:Sourcemap header"`.
    pub(super) fn parse(s: &str) -> Option<Found> {
        let mut it = s.splitn(4, ':');
        let _bundle = it.next()?;
        let sha1 = it.next()?.to_string();
        let kind = match it.next()? {
            "minified_source" => FileKind::MinifiedSource,
            "source_map" => FileKind::SourceMap,
            "source" => FileKind::Source,
            "indexed_ram_bundle" => FileKind::IndexedRamBundle,
            _ => FileKind::Other,
        };
        let sourcemap = it.next().filter(|h| !h.is_empty()).map(str::to_string);
        Some(Found {
            sha1,
            kind,
            sourcemap,
        })
    }
}

/// A parsed stored file.
pub enum Loaded {
    Map(Box<SourceMap>, u64),
    Minified(Definitions, u64),
}

/// Where a minified script names its functions (`function t(`, `t=function`, `t:function`),
/// in source order: a frame's enclosing function is the nearest definition of its minified
/// name before it, found by binary search. (Walking the map's tokens backwards over the
/// script, as `SourceView::get_original_function_name` does, slices a megabyte-long line by
/// character per token: seconds per event on a real bundle.)
pub struct Definitions {
    /// (line, column, name) sorted by position; columns in bytes (minified code is ASCII).
    defs: Vec<(u32, u32, Box<str>)>,
}

static DEFINITION: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
    regex::Regex::new(
        r"function\s*\*?\s*([A-Za-z_$][\w$]*)\s*\(|([A-Za-z_$][\w$]*)\s*[=:]\s*(?:async\s*)?function\b",
    )
    .expect("valid regex")
});

impl Definitions {
    fn scan(text: &str) -> Definitions {
        let mut defs = Vec::new();
        for (line_no, line) in text.split('\n').enumerate() {
            for c in DEFINITION.captures_iter(line) {
                if let Some(m) = c.get(1).or_else(|| c.get(2)) {
                    defs.push((line_no as u32, m.start() as u32, m.as_str().into()));
                }
            }
        }
        Definitions { defs }
    }

    /// The position of the nearest definition of `name` at or before (line, col).
    fn find(&self, line: u32, col: u32, name: &str) -> Option<(u32, u32)> {
        let end = self
            .defs
            .partition_point(|(l, c, _)| (*l, *c) <= (line, col));
        self.defs[..end]
            .iter()
            .rev()
            .take(4096)
            .find(|(_, _, n)| &**n == name)
            .map(|(l, c, _)| (*l, *c))
    }
}

impl Loaded {
    pub(super) fn parse(bytes: Vec<u8>, kind: FileKind) -> Result<Loaded, String> {
        let size = bytes.len() as u64;
        match kind {
            FileKind::SourceMap => match sourcemap::decode_slice(&bytes) {
                Ok(DecodedMap::Regular(sm)) => Ok(Loaded::Map(Box::new(sm), size)),
                Ok(DecodedMap::Index(ix)) => ix
                    .flatten()
                    .map(|sm| Loaded::Map(Box::new(sm), size))
                    .map_err(|e| format!("the indexed source map cannot be flattened: {e}")),
                Ok(DecodedMap::Hermes(_)) => {
                    Err("Hermes (React Native) source maps are not supported".into())
                }
                Err(e) => Err(format!("the source map is not valid: {e}")),
            },
            _ => {
                let text = String::from_utf8_lossy(&bytes);
                Ok(Loaded::Minified(Definitions::scan(&text), size))
            }
        }
    }

    pub(super) fn size(&self) -> u64 {
        match self {
            Loaded::Map(_, s) | Loaded::Minified(_, s) => *s,
        }
    }
}

/// The event with its frames mapped, or `None` when nothing in it is JavaScript with a stack.
pub(super) fn run(maps: &SourceMaps, project_id: u64, raw: &[u8]) -> Option<Vec<u8>> {
    // Cheap refusals first: most events are not browser/node JavaScript with frames.
    if !contains(raw, b"\"frames\"") || !(contains(raw, b".js") || contains(raw, b"javascript")) {
        return None;
    }
    if !maps.has_bundles(project_id) {
        return None;
    }
    let mut event: Value = serde_json::from_slice(raw).ok()?;
    let obj = event.as_object_mut()?;
    let platform = obj.get("platform").and_then(Value::as_str).unwrap_or("");
    if !matches!(platform, "javascript" | "node" | "") {
        return None;
    }
    let release = obj
        .get("release")
        .and_then(Value::as_str)
        .map(str::to_string);
    let images: Vec<(String, String)> = obj
        .get("debug_meta")
        .and_then(|d| d.get("images"))
        .and_then(Value::as_array)
        .map(|imgs| {
            imgs.iter()
                .filter(|i| i.get("type").and_then(Value::as_str) == Some("sourcemap"))
                .filter_map(|i| {
                    let file = i.get("code_file")?.as_str()?.to_string();
                    let id = super::bundle::normalize_debug_id(i.get("debug_id")?.as_str()?)?;
                    Some((file, id))
                })
                .collect()
        })
        .unwrap_or_default();
    let ctx = Ctx {
        maps,
        project_id,
        release: release.as_deref(),
        images: &images,
    };
    let mut errors: Vec<Value> = Vec::new();
    let mut changed = false;
    let mut budget = MAX_FRAMES;
    if let Some(values) = obj
        .get_mut("exception")
        .and_then(|e| e.get_mut("values"))
        .and_then(Value::as_array_mut)
    {
        for exc in values.iter_mut() {
            changed |= map_stacktrace(&ctx, exc, &mut errors, &mut budget);
        }
    }
    if let Some(values) = obj
        .get_mut("threads")
        .and_then(|e| e.get_mut("values"))
        .and_then(Value::as_array_mut)
    {
        for t in values.iter_mut() {
            changed |= map_stacktrace(&ctx, t, &mut errors, &mut budget);
        }
    }
    if !changed && errors.is_empty() {
        return None;
    }
    if !errors.is_empty() {
        let list = obj
            .entry("errors")
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Some(list) = list.as_array_mut() {
            list.extend(errors);
        }
    }
    serde_json::to_vec(&event).ok()
}

struct Ctx<'a> {
    maps: &'a SourceMaps,
    project_id: u64,
    release: Option<&'a str>,
    images: &'a [(String, String)],
}

/// Maps the frames of one exception or thread in place; the minified stack trace is kept as
/// `raw_stacktrace`. True when a frame was mapped.
fn map_stacktrace(
    ctx: &Ctx,
    holder: &mut Value,
    errors: &mut Vec<Value>,
    budget: &mut usize,
) -> bool {
    let Some(holder) = holder.as_object_mut() else {
        return false;
    };
    let Some(frames) = holder
        .get("stacktrace")
        .and_then(|s| s.get("frames"))
        .and_then(Value::as_array)
    else {
        return false;
    };
    let mut mapped_frames = Vec::with_capacity(frames.len());
    let mut any = false;
    for frame in frames {
        let out = if *budget > 0 {
            *budget -= 1;
            map_frame(ctx, frame, errors)
        } else {
            None
        };
        any |= out.is_some();
        mapped_frames.push(out.unwrap_or_else(|| frame.clone()));
    }
    if !any {
        return false;
    }
    let raw = holder.get("stacktrace").cloned().unwrap_or(Value::Null);
    if let Some(st) = holder.get_mut("stacktrace").and_then(Value::as_object_mut) {
        st.insert("frames".into(), Value::Array(mapped_frames));
    }
    holder.insert("raw_stacktrace".into(), raw);
    true
}

fn map_frame(ctx: &Ctx, frame: &Value, errors: &mut Vec<Value>) -> Option<Value> {
    let f = frame.as_object()?;
    let abs_path = f
        .get("abs_path")
        .or_else(|| f.get("filename"))
        .and_then(Value::as_str)?;
    let line = f.get("lineno").and_then(Value::as_u64)?;
    let col = f.get("colno").and_then(Value::as_u64).unwrap_or(1);
    if line == 0 || !looks_like_script(abs_path) {
        return None;
    }
    let maps = ctx.maps;
    let debug_id = ctx
        .images
        .iter()
        .find(|(file, _)| file == abs_path)
        .map(|(_, id)| id.as_str());
    let (map_found, minified_found, via) = if let Some(id) = debug_id {
        (
            maps.by_debug_id(ctx.project_id, id, FileKind::SourceMap),
            maps.by_debug_id(ctx.project_id, id, FileKind::MinifiedSource),
            format!("debug id {id}"),
        )
    } else if let Some(release) = ctx.release {
        let url = tilde_url(abs_path);
        let minified = maps.by_url(ctx.project_id, release, &url);
        let map_url = match minified.as_ref().and_then(|m| m.sourcemap.clone()) {
            Some(h) => join_url(&url, &h),
            None => format!("{url}.map"),
        };
        (
            maps.by_url(ctx.project_id, release, &map_url),
            minified,
            format!("release {release}"),
        )
    } else {
        (None, None, String::new())
    };
    let Some(map_found) = map_found else {
        maps.inner.metrics.frames_unmapped.fetch_add(1, Relaxed);
        note(
            errors,
            json!({
                "type": "js_no_source",
                "url": abs_path,
                "debug_id": debug_id,
                "release": ctx.release,
                "hint": if debug_id.is_some() || ctx.release.is_some() {
                    format!("no source map for {} ({via}) in this project; upload with `sentry-cli sourcemaps inject ./dist && sentry-cli sourcemaps upload --url <hearth> --org hearth --project <project> ./dist`", basename(abs_path))
                } else {
                    format!("no source map for {}: the event has no debug id and no release; run `sentry-cli sourcemaps inject ./dist` before deploying, then `sentry-cli sourcemaps upload --url <hearth> --org hearth --project <project> ./dist`", basename(abs_path))
                },
            }),
        );
        return None;
    };
    let map = match maps.load(&map_found.sha1, FileKind::SourceMap) {
        Ok(m) => m,
        Err(e) => {
            note(
                errors,
                json!({"type": "js_invalid_source", "url": abs_path, "hint": e}),
            );
            return None;
        }
    };
    let Loaded::Map(sm, _) = &*map else {
        return None;
    };
    let minified = minified_found.and_then(|m| maps.load(&m.sha1, m.kind).ok());
    let (l0, c0) = ((line - 1) as u32, (col.max(1) - 1) as u32);
    let token = sm.lookup_token(l0, c0)?;
    let source = token.get_source()?;
    let src_line = token.get_src_line();
    if src_line == u32::MAX {
        return None;
    }
    maps.inner.metrics.frames_mapped.fetch_add(1, Relaxed);
    let mut out: Map<String, Value> = f.clone();
    let file = clean_source(source);
    out.insert("abs_path".into(), Value::String(file.clone()));
    out.insert("filename".into(), Value::String(file.clone()));
    out.insert("lineno".into(), json!(src_line as u64 + 1));
    out.insert("colno".into(), json!(token.get_src_col() as u64 + 1));
    let minified_fn = f.get("function").and_then(Value::as_str);
    let original_fn = match (&minified.as_deref(), minified_fn) {
        (Some(Loaded::Minified(defs, _)), Some(name)) => {
            let short = name.rsplit('.').next().unwrap_or(name);
            // The map names the original identifier at the definition's exact position.
            defs.find(l0, c0, short).and_then(|(l, c)| {
                let t = sm.lookup_token(l, c)?;
                (t.get_dst() == (l, c))
                    .then(|| t.get_name().map(str::to_string))
                    .flatten()
            })
        }
        _ => None,
    };
    if let Some(name) = original_fn {
        out.insert("function".into(), Value::String(name));
    }
    if file.contains("node_modules/") {
        out.insert("in_app".into(), Value::Bool(false));
    }
    for k in ["pre_context", "context_line", "post_context"] {
        out.remove(k);
    }
    if let Some(sv) = sm.get_source_view(token.get_src_id()) {
        let line_of = |i: u32| sv.get_line(i).map(|l| Value::String(clip(l)));
        if let Some(l) = line_of(src_line) {
            out.insert("context_line".into(), l);
            let pre: Vec<Value> = (src_line.saturating_sub(CONTEXT_LINES)..src_line)
                .filter_map(line_of)
                .collect();
            let post: Vec<Value> = (src_line + 1..=src_line.saturating_add(CONTEXT_LINES))
                .filter_map(line_of)
                .collect();
            out.insert("pre_context".into(), Value::Array(pre));
            out.insert("post_context".into(), Value::Array(post));
        }
    }
    let data = out
        .entry("data")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Some(d) = data.as_object_mut() {
        d.insert("sourcemap".into(), Value::String(via));
        d.insert("symbolicated".into(), Value::Bool(true));
        d.insert(
            "minified_abs_path".into(),
            Value::String(abs_path.to_string()),
        );
        if let Some(n) = minified_fn {
            d.insert("minified_function".into(), Value::String(n.to_string()));
        }
    }
    Some(Value::Object(out))
}

/// Adds an event error once per (type, url).
fn note(errors: &mut Vec<Value>, e: Value) {
    let same = errors
        .iter()
        .any(|x| x.get("type") == e.get("type") && x.get("url") == e.get("url"));
    if !same && errors.len() < 20 {
        errors.push(e);
    }
}

fn looks_like_script(path: &str) -> bool {
    let p = path.split(['?', '#']).next().unwrap_or(path);
    p.ends_with(".js") || p.ends_with(".mjs") || p.ends_with(".cjs") || p.ends_with(".jsx")
}

fn basename(path: &str) -> &str {
    let p = path.split(['?', '#']).next().unwrap_or(path);
    p.rsplit('/').next().unwrap_or(p)
}

/// `https://host:port/static/app.js?v=1` → `~/static/app.js` (how bundles name URLs).
pub(super) fn tilde_url(abs_path: &str) -> String {
    let p = abs_path.split(['?', '#']).next().unwrap_or(abs_path);
    if p.starts_with("~/") {
        return p.to_string();
    }
    if let Some(rest) = p.split_once("://").map(|(_, r)| r) {
        let path = rest.find('/').map(|i| &rest[i..]).unwrap_or("/");
        return format!("~{path}");
    }
    if let Some(path) = p.strip_prefix('/') {
        return format!("~/{path}");
    }
    format!("~/{p}")
}

/// Resolves a `Sourcemap` header against the minified file's `~/` URL.
fn join_url(base: &str, reference: &str) -> String {
    if reference.contains("://") || reference.starts_with('/') || reference.starts_with("~/") {
        return tilde_url(reference);
    }
    let dir = base.rsplit_once('/').map(|(d, _)| d).unwrap_or("~");
    let mut parts: Vec<&str> = dir.split('/').collect();
    for seg in reference.split('/') {
        match seg {
            "." | "" => {}
            ".." => {
                if parts.len() > 1 {
                    parts.pop();
                }
            }
            s => parts.push(s),
        }
    }
    parts.join("/")
}

/// A source path as shown and grouped: without bundler prefixes or leading `./`, `../`.
fn clean_source(source: &str) -> String {
    let mut s = source;
    for prefix in ["webpack:///", "webpack://", "file://"] {
        if let Some(rest) = s.strip_prefix(prefix) {
            s = rest;
        }
    }
    loop {
        if let Some(rest) = s.strip_prefix("./") {
            s = rest;
        } else if let Some(rest) = s.strip_prefix("../") {
            s = rest;
        } else {
            break;
        }
    }
    s.to_string()
}

fn clip(line: &str) -> String {
    if line.len() <= MAX_LINE {
        return line.to_string();
    }
    let mut end = MAX_LINE;
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &line[..end])
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_become_bundle_urls() {
        assert_eq!(
            tilde_url("http://127.0.0.1:9/static/app.js?x=1"),
            "~/static/app.js"
        );
        assert_eq!(tilde_url("/app.js"), "~/app.js");
        assert_eq!(
            join_url("~/static/app.js", "app.js.map"),
            "~/static/app.js.map"
        );
        assert_eq!(
            join_url("~/static/js/app.js", "../maps/app.js.map"),
            "~/static/maps/app.js.map"
        );
        assert_eq!(clean_source("webpack:///./src/a.js"), "src/a.js");
        assert_eq!(clean_source("../../app/main.js"), "app/main.js");
    }

    #[test]
    fn definitions_find_the_enclosing_function() {
        let d = Definitions::scan(
            "function a(){}var b=function(){};c.d=async function(){}\nfunction a(){x()}",
        );
        assert_eq!(d.find(0, 40, "b"), Some((0, 18)));
        assert_eq!(d.find(1, 12, "a"), Some((1, 9)));
        assert_eq!(d.find(0, 12, "a"), Some((0, 9)));
        assert_eq!(d.find(0, 5, "b"), None);
        assert_eq!(d.find(0, 50, "d"), Some((0, 35)));
    }

    #[test]
    fn pointers_parse() {
        let f = Found::parse("3:abc:minified_source:app.js.map").unwrap();
        assert_eq!(f.sha1, "abc");
        assert_eq!(f.kind, FileKind::MinifiedSource);
        assert_eq!(f.sourcemap.as_deref(), Some("app.js.map"));
        assert!(
            Found::parse("3:abc:source_map:")
                .unwrap()
                .sourcemap
                .is_none()
        );
    }
}
