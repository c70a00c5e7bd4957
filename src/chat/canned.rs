//! Canned responses: `/shortcut` expansion and `{{variable | "fallback"}}` substitution.
//!
//! Expansion is plain text in, plain text out: values are never interpreted as markup or as
//! further templates (a visitor named `{{agent.name}}` stays exactly that).

use std::collections::HashMap;

/// The six responses every new database starts with: (shortcut, title, body).
pub const DEFAULTS: [(&str, &str, &str); 6] = [
    (
        "greeting",
        "Greeting",
        "Hi {{visitor.name | \"there\"}}, thanks for reaching out! I'm {{agent.name | \"on the team\"}} and I'll help you with this.",
    ),
    (
        "hours",
        "Opening hours",
        "We're here {{site.hours | \"during business hours\"}}. Outside those hours leave us a message and we'll answer by email.",
    ),
    (
        "payment",
        "Payment question",
        "I can help with billing. Could you tell me the email address on the account and the date of the payment, {{visitor.name | \"please\"}}?",
    ),
    (
        "account",
        "Account access",
        "To look into your account I need the email address you signed up with. Please don't send passwords here.",
    ),
    (
        "closing",
        "Anything else?",
        "Is there anything else I can help you with today, {{visitor.name | \"\"}}?",
    ),
    (
        "resolved",
        "Resolved",
        "Glad we could sort this out! I'm marking this conversation as resolved; just write here again if anything comes up.",
    ),
];

/// Longest expanded text (a canned body cannot grow past a message).
pub const MAX_EXPANDED: usize = 16 * 1024;

/// Replaces every `{{name}}` or `{{name | "fallback"}}` in `body` with `vars[name]`, or with
/// the fallback when the variable is missing or empty (an unknown variable without a fallback
/// becomes empty). Text that does not parse as a variable is left as it is.
pub fn render(body: &str, vars: &HashMap<&str, String>) -> String {
    let mut out = String::with_capacity(body.len());
    let mut rest = body;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            out.push_str(&rest[start..]);
            return out;
        };
        let inner = &after[..end];
        match parse_var(inner) {
            Some((name, fallback)) => {
                let value = vars.get(name).map(|v| v.trim()).filter(|v| !v.is_empty());
                out.push_str(value.unwrap_or(fallback));
            }
            None => out.push_str(&rest[start..start + 2 + end + 2]),
        }
        rest = &after[end + 2..];
        if out.len() > MAX_EXPANDED {
            break;
        }
    }
    out.push_str(rest);
    out.truncate(floor_char_boundary(&out, MAX_EXPANDED));
    out
}

fn floor_char_boundary(s: &str, max: usize) -> usize {
    if s.len() <= max {
        return s.len();
    }
    let mut i = max;
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// `visitor.name` or `visitor.name | "there"` → (name, fallback).
fn parse_var(inner: &str) -> Option<(&str, &str)> {
    let (name, fallback) = match inner.split_once('|') {
        Some((n, f)) => {
            let f = f.trim();
            let f = f
                .strip_prefix('"')
                .and_then(|f| f.strip_suffix('"'))
                .or_else(|| f.strip_prefix('\'').and_then(|f| f.strip_suffix('\'')))?;
            (n.trim(), f)
        }
        None => (inner.trim(), ""),
    };
    let valid = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_');
    valid.then_some((name, fallback))
}

/// Expands every `/shortcut` word in `text` that names a canned response (several per message
/// are allowed), then renders variables in the inserted bodies only.
pub fn expand_shortcuts(
    text: &str,
    canned: &HashMap<String, String>,
    vars: &HashMap<&str, String>,
) -> String {
    let mut out = String::with_capacity(text.len());
    for (i, word) in text.split(' ').enumerate() {
        if i > 0 {
            out.push(' ');
        }
        match word.strip_prefix('/').and_then(|s| canned.get(s)) {
            Some(body) => out.push_str(&render(body, vars)),
            None => out.push_str(word),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&'static str, &str)]) -> HashMap<&'static str, String> {
        pairs.iter().map(|(k, v)| (*k, v.to_string())).collect()
    }

    #[test]
    fn variables_take_values_or_fallbacks() {
        let v = vars(&[("visitor.name", "Ada"), ("agent.name", "  ")]);
        assert_eq!(
            render(
                r#"Hi {{visitor.name | "there"}}, I'm {{ agent.name | 'the team' }}."#,
                &v
            ),
            "Hi Ada, I'm the team."
        );
        assert_eq!(render("{{missing}}!", &v), "!");
        assert_eq!(render("{{not a var}} {{x", &v), "{{not a var}} {{x");
    }

    #[test]
    fn values_are_not_templates_themselves() {
        let v = vars(&[("visitor.name", "{{agent.name}}"), ("agent.name", "Bo")]);
        assert_eq!(render("{{visitor.name}}", &v), "{{agent.name}}");
    }

    #[test]
    fn several_shortcuts_expand_in_one_message() {
        let canned: HashMap<String, String> = [
            (
                "greeting".to_string(),
                "Hi {{visitor.name | \"there\"}}!".to_string(),
            ),
            ("closing".to_string(), "Bye.".to_string()),
        ]
        .into();
        let v = vars(&[]);
        assert_eq!(
            expand_shortcuts("/greeting see /docs /closing", &canned, &v),
            "Hi there! see /docs Bye."
        );
    }

    #[test]
    fn six_defaults_with_unique_shortcuts() {
        let names: std::collections::HashSet<_> = DEFAULTS.iter().map(|d| d.0).collect();
        assert_eq!(names.len(), 6);
        for n in [
            "greeting", "hours", "payment", "account", "closing", "resolved",
        ] {
            assert!(names.contains(n), "{n}");
        }
    }
}
