//! Subjects and NATS-style patterns.
//!
//! A subject is dot-separated tokens (`issue.created`, `monitor.api-health.down`). In a pattern
//! `*` matches exactly one token and `>` (last token only) matches one or more tokens.

/// Whether `subject` is a valid subject: non-empty tokens, no wildcards, no spaces.
pub fn valid_subject(subject: &str) -> bool {
    !subject.is_empty()
        && subject
            .split('.')
            .all(|t| !t.is_empty() && t != "*" && t != ">" && !t.contains(char::is_whitespace))
}

/// Whether `pattern` is a valid pattern: like a subject, but `*` may stand for any token and
/// `>` for the last one.
pub fn valid_pattern(pattern: &str) -> bool {
    if pattern.is_empty() {
        return false;
    }
    let tokens: Vec<&str> = pattern.split('.').collect();
    tokens.iter().enumerate().all(|(i, t)| {
        !t.is_empty()
            && !t.contains(char::is_whitespace)
            && (*t != ">" || i == tokens.len() - 1)
            && (!t.contains('*') || *t == "*")
            && (!t.contains('>') || *t == ">")
    })
}

/// Whether `subject` matches `pattern`.
pub fn matches(pattern: &str, subject: &str) -> bool {
    let mut p = pattern.split('.');
    let mut s = subject.split('.');
    loop {
        match (p.next(), s.next()) {
            (Some(">"), Some(_)) => return true,
            (Some("*"), Some(_)) => {}
            (Some(pt), Some(st)) if pt == st => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// Whether `subject` matches any of `patterns`.
pub fn matches_any<S: AsRef<str>>(patterns: &[S], subject: &str) -> bool {
    patterns.iter().any(|p| matches(p.as_ref(), subject))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_table() {
        let table: &[(&str, &str, bool)] = &[
            ("issue.created", "issue.created", true),
            ("issue.created", "issue.regressed", false),
            ("issue.*", "issue.created", true),
            ("issue.*", "issue", false),
            ("issue.*", "issue.created.extra", false),
            ("issue.>", "issue.created", true),
            ("issue.>", "issue.created.extra", true),
            ("issue.>", "issue", false),
            (">", "anything.at.all", true),
            (">", "one", true),
            ("*", "one", true),
            ("*", "one.two", false),
            ("*.created", "issue.created", true),
            ("*.created", "chat.message.created", false),
            ("chat.*.created", "chat.message.created", true),
            ("monitor.*.down", "monitor.api-health.down", true),
            ("monitor.*.down", "monitor.api-health.up", false),
            ("$sys.dlq.*", "$sys.dlq.alerts", true),
            ("$sys.>", "$sys.dlq.alerts", true),
            ("a.b.c", "a.b", false),
            ("a.b", "a.b.c", false),
            ("a.*.c", "a.b.c", true),
            ("a.*.>", "a.b.c.d", true),
            ("a.*.>", "a.b", false),
        ];
        for (pattern, subject, want) in table {
            assert_eq!(matches(pattern, subject), *want, "{pattern} vs {subject}");
        }
    }

    #[test]
    fn validity() {
        assert!(valid_subject("issue.created"));
        assert!(!valid_subject("issue..created"));
        assert!(!valid_subject("issue.*"));
        assert!(!valid_subject(""));
        assert!(!valid_subject("a b"));
        assert!(valid_pattern("issue.>"));
        assert!(valid_pattern("*.created"));
        assert!(!valid_pattern("issue.>.x"));
        assert!(!valid_pattern("iss*e"));
        assert!(!valid_pattern(""));
    }
}
