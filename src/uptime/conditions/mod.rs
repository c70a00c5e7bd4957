//! Conditions in Gatus's form (`[STATUS] == 200`, `[BODY].data[0].id == 1`,
//! `len([BODY].items) > 0`, `[BODY] == pat(*healthy*)`, `[CERTIFICATE_EXPIRATION] > 240h`),
//! parsed once when a monitor is saved and evaluated against every [`CheckResult`].
//!
//! Grammar: `<operand> <op> <operand>` with `op` one of `== != < <= > >=`. An operand is
//! - a placeholder: `[STATUS]`, `[RESPONSE_TIME]` (ms), `[BODY]`, `[CERTIFICATE_EXPIRATION]`
//!   (ms left), `[DNS_RCODE]`, `[CONNECTED]`, `[IP]` (names are case-insensitive); `[BODY]` takes
//!   a JSON path of `.key` and `[index]` steps;
//! - `len(<placeholder>)` (elements of an array, members of an object, characters of anything
//!   else) or `has(<placeholder>)` (`true` when the path exists; for a plain placeholder, when it
//!   is not empty);
//! - `pat(<glob>)`, only with `==` / `!=`: `*` any run of characters, `?` one character,
//!   `[a-z]` / `[!a-z]` a class, `\x` a literal `x`;
//! - `any(a, b, ...)`, only with `==` / `!=`: equal to one of the values;
//! - anything else is a literal: the rest of the condition after the operator, so it may hold
//!   spaces. Numbers compare as numbers, durations (`48h`, `7d`, `500ms`) as milliseconds.
//!
//! Differences from Gatus, all on the strict side so a typo is refused at save time: an
//! unknown placeholder is an error (Gatus compares it as text); an ordering operator needs two
//! numbers (Gatus silently reads text as 0); a value that cannot be resolved (no such JSON path,
//! no certificate) fails the condition whatever the operator (test absence with `has()`);
//! `pat()` matches across `/`. Text comparisons and `pat()` are case-sensitive unless the
//! condition carries the explicit `case_insensitive` flag (keyword monitors set it from a
//! checkbox).

use std::cell::OnceCell;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::check_result::CheckResult;
pub use super::check_result::Outcome;
use glob::Glob;
use parse::Parser;

mod glob;
mod parse;

/// A parsed condition. Serialized as its source text and flag; deserializing parses again, so a
/// stored condition is always valid.
#[derive(Clone, PartialEq)]
pub struct Condition {
    source: String,
    case_insensitive: bool,
    left: Operand,
    op: Op,
    right: Operand,
}

/// The stored form of a condition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConditionSpec {
    pub condition: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub case_insensitive: bool,
}

/// A condition that does not parse: the message says what to write instead, `position` is the
/// byte offset in the source where the problem starts (the form puts the caret there).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (at byte {position})")]
pub struct ConditionError {
    pub position: usize,
    pub message: String,
}

impl ConditionError {
    /// Stable error code for the API.
    pub const CODE: &'static str = "invalid_condition";
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Op {
    fn as_str(self) -> &'static str {
        match self {
            Op::Eq => "==",
            Op::Ne => "!=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
        }
    }

    fn is_equality(self) -> bool {
        matches!(self, Op::Eq | Op::Ne)
    }

    /// Reads an operator at the start of `s`: its length and value.
    fn read(s: &str) -> Option<(usize, Op)> {
        for (text, op) in [
            ("==", Op::Eq),
            ("!=", Op::Ne),
            ("<=", Op::Le),
            (">=", Op::Ge),
            ("<", Op::Lt),
            (">", Op::Gt),
        ] {
            if s.starts_with(text) {
                return Some((text.len(), op));
            }
        }
        None
    }
}

/// The placeholders, with the kind of value each resolves to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placeholder {
    Status,
    ResponseTime,
    Body,
    CertificateExpiration,
    DnsRcode,
    Connected,
    Ip,
}

const PLACEHOLDERS: [(&str, Placeholder); 7] = [
    ("STATUS", Placeholder::Status),
    ("RESPONSE_TIME", Placeholder::ResponseTime),
    ("BODY", Placeholder::Body),
    ("CERTIFICATE_EXPIRATION", Placeholder::CertificateExpiration),
    ("DNS_RCODE", Placeholder::DnsRcode),
    ("CONNECTED", Placeholder::Connected),
    ("IP", Placeholder::Ip),
];

/// The response codes `[DNS_RCODE]` can be compared with.
pub const DNS_RCODES: [&str; 11] = [
    "NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "YXDOMAIN", "YXRRSET",
    "NXRRSET", "NOTAUTH", "NOTZONE",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Number,
    Text,
    Bool,
    Rcode,
    /// `[BODY]` and its paths: decided by the response.
    Dynamic,
}

impl Placeholder {
    fn kind(self) -> Kind {
        match self {
            Placeholder::Status
            | Placeholder::ResponseTime
            | Placeholder::CertificateExpiration => Kind::Number,
            Placeholder::Body => Kind::Dynamic,
            Placeholder::DnsRcode => Kind::Rcode,
            Placeholder::Connected => Kind::Bool,
            Placeholder::Ip => Kind::Text,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Step {
    Key(String),
    Index(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Func {
    None,
    Len,
    Has,
}

#[derive(Debug, Clone, PartialEq)]
struct ValueRef {
    placeholder: Placeholder,
    path: Vec<Step>,
    func: Func,
    /// As written, for the detail text.
    text: String,
}

impl ValueRef {
    fn kind(&self) -> Kind {
        match self.func {
            Func::Len => Kind::Number,
            Func::Has => Kind::Bool,
            Func::None => self.placeholder.kind(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Operand {
    Value(ValueRef),
    Literal { text: String, number: Option<f64> },
    Pattern { glob: Glob, text: String },
    Any { options: Vec<Literal>, text: String },
}

#[derive(Debug, Clone, PartialEq)]
struct Literal {
    text: String,
    number: Option<f64>,
}

impl Literal {
    fn new(text: &str) -> Literal {
        Literal {
            text: text.to_string(),
            number: literal_number(text),
        }
    }
}

/// A literal's numeric value: a plain decimal number, or a duration in milliseconds.
fn literal_number(text: &str) -> Option<f64> {
    plain_number(text).or_else(|| super::parse_duration(text).map(|d| d.as_millis() as f64))
}

/// A decimal number as written in a condition or a response (`200`, `-1.5`); not `inf`, not
/// hexadecimal.
fn plain_number(text: &str) -> Option<f64> {
    let t = text.trim();
    let digits = t.strip_prefix(['-', '+']).unwrap_or(t);
    if digits.is_empty()
        || !digits.chars().all(|c| c.is_ascii_digit() || c == '.')
        || !digits.chars().any(|c| c.is_ascii_digit())
    {
        return None;
    }
    t.parse().ok()
}

impl Operand {
    fn display(&self) -> &str {
        match self {
            Operand::Value(v) => &v.text,
            Operand::Literal { text, .. } => text,
            Operand::Pattern { text, .. } | Operand::Any { text, .. } => text,
        }
    }
}

impl Condition {
    /// Parses a condition, case-sensitive.
    pub fn parse(source: &str) -> Result<Condition, ConditionError> {
        Condition::parse_with(source, false)
    }

    /// Parses a condition; `case_insensitive` makes text equality, `any()` and `pat()` ignore case.
    pub fn parse_with(source: &str, case_insensitive: bool) -> Result<Condition, ConditionError> {
        if source.len() > MAX_CONDITION_LEN {
            return Err(ConditionError {
                position: MAX_CONDITION_LEN,
                message: format!("a condition is at most {MAX_CONDITION_LEN} bytes"),
            });
        }
        Parser {
            src: source,
            pos: 0,
            case_insensitive,
        }
        .condition()
    }

    /// A keyword check: `[BODY] == pat(*word*)` (or `!=` when the word must be absent), with the
    /// word's glob characters escaped so it matches literally.
    pub fn keyword(
        word: &str,
        must_be_present: bool,
        case_insensitive: bool,
    ) -> Result<Condition, ConditionError> {
        let mut escaped = String::with_capacity(word.len());
        for c in word.chars() {
            if matches!(c, '*' | '?' | '[' | ']' | '\\') {
                escaped.push('\\');
            }
            escaped.push(c);
        }
        let op = if must_be_present { "==" } else { "!=" };
        Condition::parse_with(&format!("[BODY] {op} pat(*{escaped}*)"), case_insensitive)
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    pub fn case_insensitive(&self) -> bool {
        self.case_insensitive
    }

    pub fn spec(&self) -> ConditionSpec {
        ConditionSpec {
            condition: self.source.clone(),
            case_insensitive: self.case_insensitive,
        }
    }

    /// Whether evaluating needs the response body (a check may skip reading it otherwise).
    pub fn uses_body(&self) -> bool {
        [&self.left, &self.right]
            .iter()
            .any(|o| matches!(o, Operand::Value(v) if v.placeholder == Placeholder::Body))
    }

    /// Evaluates against one result.
    pub fn evaluate(&self, result: &CheckResult) -> Outcome {
        self.evaluate_in(result, &OnceCell::new())
    }

    fn evaluate_in(
        &self,
        result: &CheckResult,
        json: &OnceCell<Option<serde_json::Value>>,
    ) -> Outcome {
        let ctx = Ctx { result, json };
        let left = self.resolve(&self.left, &ctx);
        let right = self.resolve(&self.right, &ctx);
        let (success, reason) = self.compare(&left, &right);
        let detail = format!(
            "{} {} {}",
            side_detail(&self.left, &left),
            self.op.as_str(),
            side_detail(&self.right, &right)
        );
        Outcome {
            condition: self.source.clone(),
            success,
            detail,
            reason,
        }
    }

    fn resolve(&self, operand: &Operand, ctx: &Ctx<'_>) -> Resolved {
        match operand {
            Operand::Value(v) => ctx.resolve(v),
            Operand::Literal { text, number } => match number {
                Some(n) => Resolved::Number(*n),
                None => Resolved::Text(text.clone()),
            },
            // Patterns and option lists are compared as a whole in `compare`.
            Operand::Pattern { .. } | Operand::Any { .. } => Resolved::Text(String::new()),
        }
    }

    fn compare(&self, left: &Resolved, right: &Resolved) -> (bool, Option<String>) {
        for (operand, value) in [(&self.left, left), (&self.right, right)] {
            if let Resolved::Missing(why) = value {
                return (false, Some(format!("{}: {why}", operand.display())));
            }
        }
        if self.op.is_equality() {
            let equal = match (&self.left, &self.right) {
                (Operand::Pattern { glob, .. }, _) => {
                    glob.matches(&right.text(), self.case_insensitive)
                }
                (_, Operand::Pattern { glob, .. }) => {
                    glob.matches(&left.text(), self.case_insensitive)
                }
                (Operand::Any { options, .. }, _) => {
                    options.iter().any(|o| self.equal(right, &o.resolved()))
                }
                (_, Operand::Any { options, .. }) => {
                    options.iter().any(|o| self.equal(left, &o.resolved()))
                }
                _ => self.equal(left, right),
            };
            return (equal == (self.op == Op::Eq), None);
        }
        let (Some(a), Some(b)) = (left.number(), right.number()) else {
            let not_number = if left.number().is_none() { left } else { right };
            return (
                false,
                Some(format!("{} is not a number", quote(&not_number.text()))),
            );
        };
        let success = match self.op {
            Op::Lt => a < b,
            Op::Le => a <= b,
            Op::Gt => a > b,
            Op::Ge => a >= b,
            Op::Eq | Op::Ne => unreachable!("equality handled above"),
        };
        (success, None)
    }

    fn equal(&self, a: &Resolved, b: &Resolved) -> bool {
        if let (Some(x), Some(y)) = (a.number(), b.number()) {
            return x == y;
        }
        let (x, y) = (a.text(), b.text());
        if self.case_insensitive {
            x.to_lowercase() == y.to_lowercase()
        } else {
            x == y
        }
    }
}

impl Literal {
    fn resolved(&self) -> Resolved {
        match self.number {
            Some(n) => Resolved::Number(n),
            None => Resolved::Text(self.text.clone()),
        }
    }
}

impl fmt::Debug for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Condition")
            .field("source", &self.source)
            .field("case_insensitive", &self.case_insensitive)
            .finish()
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl TryFrom<ConditionSpec> for Condition {
    type Error = ConditionError;

    fn try_from(spec: ConditionSpec) -> Result<Condition, ConditionError> {
        Condition::parse_with(&spec.condition, spec.case_insensitive)
    }
}

impl Serialize for Condition {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.spec().serialize(s)
    }
}

impl<'de> Deserialize<'de> for Condition {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Condition, D::Error> {
        let spec = ConditionSpec::deserialize(d)?;
        Condition::try_from(spec).map_err(serde::de::Error::custom)
    }
}

/// Parses a monitor's conditions, each with its error.
pub fn parse_all(specs: &[ConditionSpec]) -> Result<Vec<Condition>, (usize, ConditionError)> {
    specs
        .iter()
        .enumerate()
        .map(|(i, s)| Condition::try_from(s.clone()).map_err(|e| (i, e)))
        .collect()
}

/// Evaluates every condition against one result (the body is parsed as JSON at most once).
pub fn evaluate_all(conditions: &[Condition], result: &CheckResult) -> Vec<Outcome> {
    let json = OnceCell::new();
    conditions
        .iter()
        .map(|c| c.evaluate_in(result, &json))
        .collect()
}

/// Conditions longer than this are refused (they are typed into a form).
pub const MAX_CONDITION_LEN: usize = 2048;

/// A resolved operand.
#[derive(Debug, Clone, PartialEq)]
enum Resolved {
    Text(String),
    Number(f64),
    Bool(bool),
    /// An array or object from the body.
    Json(serde_json::Value),
    Missing(String),
}

impl Resolved {
    fn text(&self) -> String {
        match self {
            Resolved::Text(s) => s.clone(),
            Resolved::Number(n) => format_number(*n),
            Resolved::Bool(b) => b.to_string(),
            Resolved::Json(v) => v.to_string(),
            Resolved::Missing(_) => String::new(),
        }
    }

    fn number(&self) -> Option<f64> {
        match self {
            Resolved::Number(n) => Some(*n),
            Resolved::Text(s) => plain_number(s),
            _ => None,
        }
    }
}

fn format_number(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        n.to_string()
    }
}

fn quote(s: &str) -> String {
    format!("'{}'", truncate(s, 60))
}

fn truncate(s: &str, max_chars: usize) -> String {
    if s.chars().count() <= max_chars {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max_chars).collect();
        t.push('…');
        t
    }
}

fn side_detail(operand: &Operand, value: &Resolved) -> String {
    match operand {
        Operand::Value(v) => match value {
            Resolved::Missing(_) => format!("{} (missing)", v.text),
            other => format!("{} ({})", v.text, truncate(&other.text(), 60)),
        },
        other => other.display().to_string(),
    }
}

struct Ctx<'a> {
    result: &'a CheckResult,
    json: &'a OnceCell<Option<serde_json::Value>>,
}

impl Ctx<'_> {
    fn resolve(&self, v: &ValueRef) -> Resolved {
        let base = match (v.func, v.placeholder) {
            // len([BODY]) counts the elements of a JSON body, the characters of any other.
            (Func::Len, Placeholder::Body) if v.path.is_empty() => match self.json_path(&[]) {
                json @ Resolved::Json(_) => json,
                _ => self.base(v),
            },
            _ => self.base(v),
        };
        match v.func {
            Func::None => base,
            Func::Len => match base {
                Resolved::Missing(why) => Resolved::Missing(why),
                Resolved::Json(serde_json::Value::Array(a)) => Resolved::Number(a.len() as f64),
                Resolved::Json(serde_json::Value::Object(o)) => Resolved::Number(o.len() as f64),
                other => Resolved::Number(other.text().chars().count() as f64),
            },
            Func::Has => Resolved::Bool(match base {
                Resolved::Missing(_) => false,
                // A JSON path that exists is there, even when its value is "".
                _ if !v.path.is_empty() => true,
                Resolved::Text(s) => !s.is_empty(),
                _ => true,
            }),
        }
    }

    fn base(&self, v: &ValueRef) -> Resolved {
        let r = self.result;
        match v.placeholder {
            Placeholder::Status => match r.status {
                Some(s) => Resolved::Number(f64::from(s)),
                None => Resolved::Missing(match &r.error {
                    Some(e) => format!("no HTTP status ({e})"),
                    None => "no HTTP status".into(),
                }),
            },
            Placeholder::ResponseTime => match r.response_time {
                Some(d) => Resolved::Number(d.as_millis() as f64),
                None => Resolved::Missing("no response".into()),
            },
            Placeholder::CertificateExpiration => match r.cert_expires_in() {
                Some(d) => Resolved::Number(d.as_millis() as f64),
                None => Resolved::Missing("no certificate".into()),
            },
            Placeholder::DnsRcode => match &r.dns_rcode {
                Some(c) => Resolved::Text(c.clone()),
                None => Resolved::Missing("no DNS response".into()),
            },
            Placeholder::Connected => Resolved::Bool(r.connected),
            Placeholder::Ip => match r.ip {
                Some(ip) => Resolved::Text(ip.to_string()),
                None => Resolved::Missing("no address".into()),
            },
            Placeholder::Body if v.path.is_empty() => {
                Resolved::Text(String::from_utf8_lossy(&r.body).trim().to_string())
            }
            Placeholder::Body => self.json_path(&v.path),
        }
    }

    fn json_path(&self, path: &[Step]) -> Resolved {
        let parsed = self
            .json
            .get_or_init(|| serde_json::from_slice(&self.result.body).ok());
        let Some(mut node) = parsed.as_ref() else {
            return Resolved::Missing(if self.result.body_truncated {
                "the body is not JSON (it was cut at the size cap)".into()
            } else {
                "the body is not JSON".into()
            });
        };
        let mut walked = String::from("[BODY]");
        for step in path {
            let next = match step {
                Step::Key(k) => {
                    walked.push('.');
                    walked.push_str(k);
                    node.as_object().and_then(|o| o.get(k))
                }
                Step::Index(i) => {
                    walked.push_str(&format!("[{i}]"));
                    node.as_array().and_then(|a| a.get(*i))
                }
            };
            match next {
                Some(n) => node = n,
                None => return Resolved::Missing(format!("no value at {walked}")),
            }
        }
        match node {
            serde_json::Value::String(s) => Resolved::Text(s.clone()),
            serde_json::Value::Number(n) => match n.as_f64() {
                Some(f) => Resolved::Number(f),
                None => Resolved::Text(n.to_string()),
            },
            serde_json::Value::Bool(b) => Resolved::Bool(*b),
            serde_json::Value::Null => Resolved::Text("null".into()),
            other => Resolved::Json(other.clone()),
        }
    }
}

#[cfg(test)]
mod tests;
