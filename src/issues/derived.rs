//! Tags Sentry derives where the SDK does not send them (issue 16): `browser`, `os`,
//! `runtime`, `device` (from contexts, or the request's User-Agent), `handled` and
//! `mechanism` (from the exceptions), `url`, `transaction`, `logger` and `user`.
//!
//! They only add tags: an SDK's own tag of the same name wins, and none of them feeds the
//! grouping hash.

use serde_json::Value;

fn s(v: &Value) -> Option<&str> {
    v.as_str().filter(|s| !s.is_empty())
}

/// `http://host:port/static/app.js?x` → `/static/app.js?x`; anything else is returned as is.
pub fn strip_origin(url: &str) -> &str {
    for scheme in ["http://", "https://", "webpack://", "app://", "file://"] {
        if let Some(rest) = url.strip_prefix(scheme) {
            return match rest.find('/') {
                Some(i) => &rest[i..],
                None => "/",
            };
        }
    }
    url
}

/// "Chrome 156.0.0", from a context's `name` and `version`.
fn name_version(c: &Value) -> Option<String> {
    let name = c.get("name").and_then(s)?;
    Some(match c.get("version").and_then(s) {
        Some(v) => format!("{name} {v}"),
        None => name.to_string(),
    })
}

fn header<'a>(event: &'a Value, name: &str) -> Option<&'a str> {
    match event.get("request")?.get("headers")? {
        Value::Object(o) => o
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| s(v)),
        Value::Array(a) => a.iter().find_map(|p| {
            let p = p.as_array()?;
            (p.first()?.as_str()?.eq_ignore_ascii_case(name))
                .then(|| p.get(1).and_then(s))
                .flatten()
        }),
        _ => None,
    }
}

/// The version right after `token` in a User-Agent (`Chrome/156.0.0.0` → `156`).
fn ua_version(ua: &str, token: &str) -> Option<String> {
    let at = ua.find(token)? + token.len();
    let v: String = ua[at..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    (!v.is_empty()).then_some(v)
}

/// Browser name and major version from a User-Agent, the common browsers only.
pub fn ua_browser(ua: &str) -> Option<(String, String)> {
    let pick = |name: &str, token: &str| ua_version(ua, token).map(|v| (name.to_string(), v));
    if ua.contains("Edg/") {
        return pick("Edge", "Edg/");
    }
    if ua.contains("Firefox/") {
        return pick("Firefox", "Firefox/");
    }
    if ua.contains("HeadlessChrome/") {
        return pick("Chrome Headless", "HeadlessChrome/");
    }
    if ua.contains("Chrome/") {
        return pick("Chrome", "Chrome/");
    }
    if ua.contains("Safari/") && ua.contains("Version/") {
        return pick("Safari", "Version/");
    }
    None
}

/// Operating system from a User-Agent.
pub fn ua_os(ua: &str) -> Option<&'static str> {
    Some(if ua.contains("Android") {
        "Android"
    } else if ua.contains("iPhone") || ua.contains("iPad") {
        "iOS"
    } else if ua.contains("Windows") {
        "Windows"
    } else if ua.contains("Mac OS X") {
        "Mac OS X"
    } else if ua.contains("CrOS") {
        "Chrome OS"
    } else if ua.contains("Linux") {
        "Linux"
    } else {
        return None;
    })
}

/// Adds the derived tags to `tags` with `push` (which keeps the first value of a key).
pub fn add(
    event: &Value,
    excs: &[&Value],
    user_key: Option<&str>,
    mut push: impl FnMut(&str, String),
) {
    let ctx = |name: &str| event.get("contexts").and_then(|c| c.get(name));
    let ua = header(event, "user-agent");
    if let Some(b) = ctx("browser").and_then(name_version) {
        push("browser", b);
    } else if let Some((name, v)) = ua.and_then(ua_browser) {
        push("browser", format!("{name} {v}"));
        push("browser.name", name);
    }
    if let Some(n) = ctx("browser").and_then(|c| c.get("name")).and_then(s) {
        push("browser.name", n.to_string());
    }
    if let Some(o) = ctx("os").and_then(name_version) {
        push("os", o);
    } else if let Some(o) = ua.and_then(ua_os) {
        push("os", o.to_string());
    }
    if let Some(n) = ctx("os").and_then(|c| c.get("name")).and_then(s) {
        push("os.name", n.to_string());
    }
    if let Some(r) = ctx("runtime").and_then(name_version) {
        push("runtime", r);
    }
    if let Some(n) = ctx("runtime").and_then(|c| c.get("name")).and_then(s) {
        push("runtime.name", n.to_string());
    }
    if let Some(d) = ctx("device").and_then(|c| {
        c.get("model")
            .and_then(s)
            .or(c.get("family").and_then(s))
            .or(c.get("name").and_then(s))
    }) {
        push("device", d.to_string());
    }
    // handled: "no" when any exception says handled:false, "yes" when one says true.
    let mechs: Vec<&Value> = excs.iter().filter_map(|e| e.get("mechanism")).collect();
    let handled: Vec<bool> = mechs
        .iter()
        .filter_map(|m| m.get("handled").and_then(Value::as_bool))
        .collect();
    if handled.contains(&false) {
        push("handled", "no".into());
    } else if !handled.is_empty() {
        push("handled", "yes".into());
    }
    if let Some(t) = mechs.last().and_then(|m| m.get("type")).and_then(s) {
        push("mechanism", t.to_string());
    }
    if let Some(u) = event.get("request").and_then(|r| r.get("url")).and_then(s) {
        // Without the query string: it often carries tokens, and makes every URL distinct.
        let u = u.split(['?', '#']).next().unwrap_or(u);
        push("url", u.to_string());
    }
    for key in ["transaction", "logger"] {
        if let Some(v) = event.get(key).and_then(s) {
            push(key, v.to_string());
        }
    }
    if let Some(u) = user_key {
        push("user", u.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn collect(event: &Value) -> Vec<(String, String)> {
        let excs: Vec<&Value> = event
            .pointer("/exception/values")
            .and_then(Value::as_array)
            .map(|a| a.iter().collect())
            .unwrap_or_default();
        let mut out: Vec<(String, String)> = Vec::new();
        add(event, &excs, Some("ip:10.0.0.1"), |k, v| {
            if out.iter().all(|(ek, _)| ek != k) {
                out.push((k.to_string(), v));
            }
        });
        out
    }

    fn get<'a>(tags: &'a [(String, String)], k: &str) -> Option<&'a str> {
        tags.iter().find(|(ek, _)| ek == k).map(|(_, v)| v.as_str())
    }

    #[test]
    fn browser_event_gets_browser_os_url_handled() {
        let e = json!({
            "request": {"url": "http://127.0.0.1:9899/page.html?dsn=secret",
              "headers": {"User-Agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/156.0.0.0 Safari/537.36"}},
            "exception": {"values": [{"type": "Error", "mechanism": {"type": "generic", "handled": true}}]},
        });
        let t = collect(&e);
        assert_eq!(get(&t, "browser"), Some("Chrome Headless 156"));
        assert_eq!(get(&t, "os"), Some("Linux"));
        assert_eq!(get(&t, "url"), Some("http://127.0.0.1:9899/page.html"));
        assert_eq!(get(&t, "handled"), Some("yes"));
        assert_eq!(get(&t, "mechanism"), Some("generic"));
        assert_eq!(get(&t, "user"), Some("ip:10.0.0.1"));
    }

    #[test]
    fn contexts_and_unhandled() {
        let e = json!({
            "contexts": {"runtime": {"name": "CPython", "version": "3.11.7"},
                         "os": {"name": "Linux", "version": "6.1"},
                         "device": {"model": "Pixel 8"}},
            "logger": "shop",
            "transaction": "/checkout",
            "exception": {"values": [{"type": "E", "mechanism": {"type": "excepthook", "handled": false}}]},
        });
        let t = collect(&e);
        assert_eq!(get(&t, "runtime"), Some("CPython 3.11.7"));
        assert_eq!(get(&t, "os"), Some("Linux 6.1"));
        assert_eq!(get(&t, "device"), Some("Pixel 8"));
        assert_eq!(get(&t, "handled"), Some("no"));
        assert_eq!(get(&t, "mechanism"), Some("excepthook"));
        assert_eq!(get(&t, "logger"), Some("shop"));
        assert_eq!(get(&t, "transaction"), Some("/checkout"));
    }

    #[test]
    fn origin_is_stripped() {
        assert_eq!(
            strip_origin("http://127.0.0.1:9899/static/app.js"),
            "/static/app.js"
        );
        assert_eq!(strip_origin("https://x.example"), "/");
        assert_eq!(strip_origin("/srv/app/index.js"), "/srv/app/index.js");
    }
}
