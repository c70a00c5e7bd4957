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

use super::checks::CheckResult;

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

/// The result of evaluating one condition (or one built-in criterion) against a check result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    /// The condition as written (or the built-in criterion's name).
    pub condition: String,
    pub success: bool,
    /// The condition with resolved values, Gatus style: `[STATUS] (503) == 200`.
    pub detail: String,
    /// Why it could not be evaluated normally: a missing JSON path, a value that is not a
    /// number, no certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Outcome {
    pub(crate) fn builtin(name: &str, success: bool, detail: String) -> Outcome {
        Outcome {
            condition: name.to_string(),
            success,
            detail,
            reason: None,
        }
    }
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

struct Parser<'a> {
    src: &'a str,
    pos: usize,
    case_insensitive: bool,
}

impl<'a> Parser<'a> {
    fn err<T>(&self, position: usize, message: impl Into<String>) -> Result<T, ConditionError> {
        Err(ConditionError {
            position,
            message: message.into(),
        })
    }

    fn rest(&self) -> &'a str {
        &self.src[self.pos..]
    }

    fn skip_ws(&mut self) {
        let rest = self.rest();
        self.pos += rest.len() - rest.trim_start().len();
    }

    fn starts_with_fn(&self, name: &str) -> bool {
        let rest = self.rest();
        rest.len() >= name.len()
            && rest.is_char_boundary(name.len())
            && rest[..name.len()].eq_ignore_ascii_case(name)
    }

    fn condition(mut self) -> Result<Condition, ConditionError> {
        self.skip_ws();
        if self.rest().trim().is_empty() {
            return self.err(self.pos, "empty condition; write one like [STATUS] == 200");
        }
        let left_at = self.pos;
        let left = self.left_operand()?;
        self.skip_ws();
        let op_at = self.pos;
        let Some((len, op)) = Op::read(self.rest()) else {
            return self.err(
                op_at,
                format!(
                    "expected an operator (==, !=, <, <=, >, >=) after {}",
                    left.display()
                ),
            );
        };
        self.pos += len;
        if self.rest().starts_with(['=', '<', '>', '!']) {
            return self.err(op_at, "unknown operator; use ==, !=, <, <=, > or >=");
        }
        self.skip_ws();
        let right_at = self.pos;
        let right = self.right_operand(op)?;
        let condition = Condition {
            source: self.src.trim().to_string(),
            case_insensitive: self.case_insensitive,
            left,
            op,
            right,
        };
        validate(&condition, left_at, right_at)?;
        Ok(condition)
    }

    fn left_operand(&mut self) -> Result<Operand, ConditionError> {
        if self.starts_with_fn("len(")
            || self.starts_with_fn("has(")
            || self.rest().starts_with('[')
        {
            return Ok(Operand::Value(self.value_ref()?));
        }
        let start = self.pos;
        if self.starts_with_fn("pat(") || self.starts_with_fn("any(") {
            // The function ends at the first `)` that an operator follows.
            let rest = self.rest();
            let close = rest
                .char_indices()
                .find(|&(i, c)| c == ')' && Op::read(rest[i + 1..].trim_start()).is_some());
            let Some((close, _)) = close else {
                return self.err(
                    start,
                    format!("{}() is not closed before the operator", &rest[..3]),
                );
            };
            self.pos += close + 1;
            return self.function(&rest[..close + 1], start);
        }
        // A literal runs to the first operator with whitespace before it.
        let rest = self.rest();
        let end = rest
            .char_indices()
            .find(|&(i, c)| c.is_whitespace() && Op::read(rest[i..].trim_start()).is_some())
            .map(|(i, _)| i);
        let Some(end) = end else {
            return self.err(
                start,
                "expected <value> <operator> <value>, e.g. [STATUS] == 200",
            );
        };
        self.pos += end;
        Ok(Operand::Literal {
            text: rest[..end].to_string(),
            number: literal_number(&rest[..end]),
        })
    }

    fn right_operand(&mut self, op: Op) -> Result<Operand, ConditionError> {
        let start = self.pos;
        let text = self.rest().trim_end();
        if text.is_empty() {
            return self.err(start, format!("expected a value after {}", op.as_str()));
        }
        if self.starts_with_fn("len(") || self.starts_with_fn("has(") || text.starts_with('[') {
            let v = self.value_ref()?;
            self.skip_ws();
            if !self.rest().is_empty() {
                return self.err(self.pos, format!("unexpected text after {}", v.text));
            }
            return Ok(Operand::Value(v));
        }
        if self.starts_with_fn("pat(") || self.starts_with_fn("any(") {
            if !text.ends_with(')') {
                return self.err(
                    start + text.len(),
                    format!("{}() is not closed; end it with )", &text[..3]),
                );
            }
            self.pos = self.src.len();
            return self.function(text, start);
        }
        self.pos = self.src.len();
        Ok(Operand::Literal {
            text: text.to_string(),
            number: literal_number(text),
        })
    }

    /// `pat(...)` or `any(...)`, given its whole text.
    fn function(&self, text: &str, at: usize) -> Result<Operand, ConditionError> {
        let inner = &text[4..text.len() - 1];
        if text[..3].eq_ignore_ascii_case("pat") {
            let glob = Glob::parse(inner, self.case_insensitive).map_err(|(offset, message)| {
                ConditionError {
                    position: at + 4 + offset,
                    message,
                }
            })?;
            Ok(Operand::Pattern {
                glob,
                text: text.to_string(),
            })
        } else {
            let options: Vec<Literal> = inner.split(',').map(|o| Literal::new(o.trim())).collect();
            if options.iter().any(|o| o.text.is_empty()) {
                return self.err(
                    at + 4,
                    "any() needs values separated by commas, e.g. any(200, 204)",
                );
            }
            Ok(Operand::Any {
                options,
                text: text.to_string(),
            })
        }
    }

    /// `[NAME]` with an optional path, or `len(...)` / `has(...)` around one.
    fn value_ref(&mut self) -> Result<ValueRef, ConditionError> {
        let start = self.pos;
        let func = if self.starts_with_fn("len(") {
            Func::Len
        } else if self.starts_with_fn("has(") {
            Func::Has
        } else {
            Func::None
        };
        if func != Func::None {
            self.pos += 4;
            self.skip_ws();
            if !self.rest().starts_with('[') {
                return self.err(
                    self.pos,
                    "expected a placeholder such as [BODY].items inside the parentheses",
                );
            }
        }
        let name_at = self.pos;
        let Some(close) = self.rest().find(']') else {
            return self.err(
                name_at,
                "[ is not closed; write a placeholder like [STATUS]",
            );
        };
        let name = &self.rest()[1..close];
        let Some(placeholder) = PLACEHOLDERS
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, p)| *p)
        else {
            let known: Vec<String> = PLACEHOLDERS.iter().map(|(n, _)| format!("[{n}]")).collect();
            return self.err(
                name_at,
                format!(
                    "unknown placeholder [{name}]; use one of {}",
                    known.join(", ")
                ),
            );
        };
        self.pos += close + 1;
        let mut path = Vec::new();
        loop {
            let rest = self.rest();
            if let Some(after_dot) = rest.strip_prefix('.') {
                let key_len = after_dot
                    .find(|c: char| c == '.' || c == '[' || c == ')' || c.is_whitespace())
                    .unwrap_or(after_dot.len());
                if key_len == 0 {
                    return self.err(self.pos, "empty key after '.'; write [BODY].key");
                }
                path.push(Step::Key(after_dot[..key_len].to_string()));
                self.pos += 1 + key_len;
            } else if rest.starts_with('[') {
                let Some(close) = rest.find(']') else {
                    return self.err(self.pos, "[ is not closed; write an index like [0]");
                };
                let index = &rest[1..close];
                if index == "*" {
                    return self.err(
                        self.pos,
                        "[*] is not supported; use an index like [0] or len()",
                    );
                }
                let Ok(i) = index.parse::<usize>() else {
                    return self.err(
                        self.pos + 1,
                        format!("array index must be a number, not '{index}'"),
                    );
                };
                path.push(Step::Index(i));
                self.pos += close + 1;
            } else {
                break;
            }
        }
        if !path.is_empty() && placeholder != Placeholder::Body {
            return self.err(name_at, "only [BODY] takes a JSON path");
        }
        if func != Func::None {
            let before_ws = self.pos;
            self.skip_ws();
            if !self.rest().starts_with(')') {
                return self.err(before_ws, "expected ) to close the function");
            }
            self.pos += 1;
        }
        Ok(ValueRef {
            placeholder,
            path,
            func,
            text: self.src[start..self.pos].to_string(),
        })
    }
}

/// Checks that the two sides can be compared with the operator; errors point at the operand.
fn validate(c: &Condition, left_at: usize, right_at: usize) -> Result<(), ConditionError> {
    let err = |position, message: String| Err(ConditionError { position, message });
    let is_fn = |o: &Operand| matches!(o, Operand::Pattern { .. } | Operand::Any { .. });
    if is_fn(&c.left) && is_fn(&c.right) {
        return err(
            right_at,
            "pat() and any() cannot be compared with each other".into(),
        );
    }
    if !c.op.is_equality() {
        for (o, at) in [(&c.left, left_at), (&c.right, right_at)] {
            match o {
                Operand::Pattern { .. } | Operand::Any { .. } => {
                    return err(
                        at,
                        format!("{}() works only with == and !=", &o.display()[..3]),
                    );
                }
                Operand::Literal { text, number: None } => {
                    return err(
                        at,
                        format!(
                            "'{text}' is not a number or a duration such as 48h; {} compares numbers",
                            c.op.as_str()
                        ),
                    );
                }
                Operand::Value(v) if !matches!(v.kind(), Kind::Number | Kind::Dynamic) => {
                    return err(
                        at,
                        format!(
                            "{} is not a number; {} compares numbers",
                            v.text,
                            c.op.as_str()
                        ),
                    );
                }
                _ => {}
            }
        }
        return Ok(());
    }
    // Equality: a literal must be something the placeholder on the other side can equal.
    for (value, other, at) in [(&c.left, &c.right, right_at), (&c.right, &c.left, left_at)] {
        let Operand::Value(v) = value else { continue };
        let literals: Vec<&str> = match other {
            Operand::Literal { text, .. } => vec![text],
            Operand::Any { options, .. } => options.iter().map(|o| o.text.as_str()).collect(),
            _ => continue,
        };
        for text in literals {
            let ok = match v.kind() {
                Kind::Number => literal_number(text).is_some(),
                Kind::Bool => text == "true" || text == "false",
                Kind::Rcode => DNS_RCODES.iter().any(|r| r.eq_ignore_ascii_case(text)),
                Kind::Text | Kind::Dynamic => true,
            };
            if !ok {
                let expected = match v.kind() {
                    Kind::Number => "a number (or a duration such as 48h)".to_string(),
                    Kind::Bool => "true or false".to_string(),
                    _ => format!("one of {}", DNS_RCODES.join(", ")),
                };
                return err(
                    at,
                    format!("{} is compared with '{text}'; expected {expected}", v.text),
                );
            }
        }
    }
    Ok(())
}

/// A glob: `*`, `?`, `[...]` classes (`!` or `^` negates, `a-z` ranges) and `\` escapes.
#[derive(Debug, Clone, PartialEq)]
struct Glob {
    tokens: Vec<Token>,
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Char(char),
    AnyChar,
    Star,
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

impl Glob {
    /// Parses a pattern; with `fold`, letters are lowercased (the text is lowercased to match).
    fn parse(pattern: &str, fold: bool) -> Result<Glob, (usize, String)> {
        let lower = |c: char| {
            if fold {
                c.to_lowercase().next().unwrap_or(c)
            } else {
                c
            }
        };
        let mut tokens = Vec::new();
        let mut chars = pattern.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            match c {
                '*' => {
                    if tokens.last() != Some(&Token::Star) {
                        tokens.push(Token::Star);
                    }
                }
                '?' => tokens.push(Token::AnyChar),
                '\\' => match chars.next() {
                    Some((_, e)) => tokens.push(Token::Char(lower(e))),
                    None => return Err((i, "a pattern cannot end with \\".into())),
                },
                '[' => {
                    let negated = matches!(chars.peek(), Some((_, '!' | '^')));
                    if negated {
                        chars.next();
                    }
                    let mut ranges = Vec::new();
                    let mut closed = false;
                    while let Some((_, c)) = chars.next() {
                        if c == ']' && !ranges.is_empty() {
                            closed = true;
                            break;
                        }
                        let start = if c == '\\' {
                            match chars.next() {
                                Some((_, e)) => e,
                                None => break,
                            }
                        } else {
                            c
                        };
                        let mut end = start;
                        if matches!(chars.peek(), Some((_, '-'))) {
                            let mut look = chars.clone();
                            look.next();
                            if let Some((_, e)) = look.next().filter(|&(_, e)| e != ']') {
                                chars = look;
                                end = e;
                            }
                        }
                        if end < start {
                            return Err((i, format!("range {start}-{end} is backwards")));
                        }
                        ranges.push((lower(start), lower(end)));
                    }
                    if !closed {
                        return Err((i, "[ is not closed in the pattern".into()));
                    }
                    tokens.push(Token::Class { negated, ranges });
                }
                c => tokens.push(Token::Char(lower(c))),
            }
        }
        Ok(Glob { tokens })
    }

    fn matches(&self, text: &str, fold: bool) -> bool {
        if self.tokens == [Token::Star] {
            return true;
        }
        let owned;
        let text = if fold {
            owned = text.to_lowercase();
            owned.as_str()
        } else {
            text
        };
        let chars: Vec<char> = text.chars().collect();
        // Iterative matching with one backtrack point (the last star): O(text × pattern).
        let (mut t, mut p) = (0usize, 0usize);
        let mut star: Option<(usize, usize)> = None;
        while t < chars.len() {
            match self.tokens.get(p) {
                Some(Token::Star) => {
                    star = Some((p, t));
                    p += 1;
                }
                Some(tok) if tok.matches_char(chars[t]) => {
                    t += 1;
                    p += 1;
                }
                _ => match star {
                    Some((sp, st)) => {
                        p = sp + 1;
                        t = st + 1;
                        star = Some((sp, st + 1));
                    }
                    None => return false,
                },
            }
        }
        self.tokens[p..].iter().all(|t| *t == Token::Star)
    }
}

impl Token {
    fn matches_char(&self, c: char) -> bool {
        match self {
            Token::Char(x) => *x == c,
            Token::AnyChar => true,
            Token::Star => false,
            Token::Class { negated, ranges } => {
                ranges.iter().any(|&(a, b)| a <= c && c <= b) != *negated
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use jiff::{SignedDuration, Timestamp};

    use super::*;

    fn http(status: u16, body: &str) -> CheckResult {
        let mut r = CheckResult::new(Timestamp::UNIX_EPOCH);
        r.connected = true;
        r.status = Some(status);
        r.body = body.as_bytes().to_vec();
        r.response_time = Some(Duration::from_millis(120));
        r.ip = Some("127.0.0.1".parse().unwrap());
        r
    }

    fn holds(cond: &str, r: &CheckResult) -> bool {
        Condition::parse(cond)
            .unwrap_or_else(|e| panic!("{cond}: {e}"))
            .evaluate(r)
            .success
    }

    #[test]
    fn gatus_readme_examples_pass_and_fail_as_documented() {
        let ok = http(
            200,
            r#"{"user":{"name":"john"},"data":[{"id":1}],"age":1,"id":1,"name":"john.doe","users":[]}"#,
        );
        for c in [
            "[STATUS] == 200",
            "[STATUS] < 300",
            "[STATUS] <= 299",
            "[STATUS] == any(200, 429)",
            "[CONNECTED] == true",
            "[RESPONSE_TIME] < 500",
            "[IP] == 127.0.0.1",
            "[BODY].user.name == john",
            "[BODY].data[0].id == 1",
            "[BODY].age == [BODY].id",
            "len([BODY].data) < 5",
            "len([BODY].name) == 8",
            "has([BODY].errors) == false",
            "has([BODY].users) == true",
            "[BODY].name == pat(john*)",
            "[BODY].id == any(1, 2)",
            "[status] == 200",
        ] {
            assert!(holds(c, &ok), "{c} should hold");
        }
        let bad = http(404, r#"{"name":"bob","errors":[]}"#);
        for c in [
            "[STATUS] == 200",
            "[STATUS] < 300",
            "len([BODY].name) == 8",
            "has([BODY].errors) == false",
            "[BODY].name == pat(john*)",
            "[STATUS] == any(200, 429)",
        ] {
            assert!(!holds(c, &bad), "{c} should fail");
        }
        assert!(holds("[STATUS] > 400", &bad));
        assert!(holds("[BODY] == 1", &http(200, " 1\n")));
    }

    #[test]
    fn certificate_expiration_compares_with_durations() {
        let mut r = http(200, "");
        r.checked_at = Timestamp::UNIX_EPOCH;
        r.cert_expires_at = Some(Timestamp::UNIX_EPOCH + SignedDuration::from_hours(24 * 5));
        assert!(holds("[CERTIFICATE_EXPIRATION] > 48h", &r));
        assert!(holds("[CERTIFICATE_EXPIRATION] < 7d", &r));
        assert!(!holds("[CERTIFICATE_EXPIRATION] > 240h", &r));
        let out = Condition::parse("[CERTIFICATE_EXPIRATION] > 240h")
            .unwrap()
            .evaluate(&r);
        assert_eq!(out.detail, "[CERTIFICATE_EXPIRATION] (432000000) > 240h");
        r.cert_expires_at = None;
        let out = Condition::parse("[CERTIFICATE_EXPIRATION] > 48h")
            .unwrap()
            .evaluate(&r);
        assert!(!out.success);
        assert_eq!(
            out.reason.as_deref(),
            Some("[CERTIFICATE_EXPIRATION]: no certificate")
        );
    }

    #[test]
    fn dns_rcode_compares_by_name() {
        let mut r = CheckResult::new(Timestamp::UNIX_EPOCH);
        r.dns_rcode = Some("NXDOMAIN".into());
        assert!(holds("[DNS_RCODE] == NXDOMAIN", &r));
        assert!(!holds("[DNS_RCODE] == NOERROR", &r));
        assert!(holds("[DNS_RCODE] != NOERROR", &r));
    }

    #[test]
    fn keyword_checks_are_case_sensitive_unless_flagged() {
        let r = http(200, "<html>Status: HEALTHY</html>");
        let sensitive = Condition::keyword("healthy", true, false).unwrap();
        assert_eq!(sensitive.source(), "[BODY] == pat(*healthy*)");
        assert!(!sensitive.evaluate(&r).success);
        let insensitive = Condition::keyword("healthy", true, true).unwrap();
        assert!(insensitive.evaluate(&r).success);
        // The word is matched literally, glob characters and all.
        let star = Condition::keyword("a*b", true, false).unwrap();
        assert!(star.evaluate(&http(200, "xa*bx")).success);
        assert!(!star.evaluate(&http(200, "xaZZbx")).success);
        // Absence.
        let absent = Condition::keyword("error", false, false).unwrap();
        assert!(absent.evaluate(&r).success);
        assert!(!absent.evaluate(&http(200, "an error occurred")).success);
        // Text equality follows the flag too.
        let eq = Condition::parse_with("[BODY].status == ok", true).unwrap();
        assert!(eq.evaluate(&http(200, r#"{"status":"OK"}"#)).success);
        assert!(!holds(
            "[BODY].status == ok",
            &http(200, r#"{"status":"OK"}"#)
        ));
    }

    #[test]
    fn patterns_support_classes_escapes_and_slashes() {
        let r = |body: &str| http(200, body);
        assert!(holds("[BODY] == pat(v[0-9].*)", &r("v2.1")));
        assert!(!holds("[BODY] == pat(v[!0-9]*)", &r("v2.1")));
        assert!(holds("[BODY] == pat(a?c)", &r("abc")));
        assert!(!holds("[BODY] == pat(a?c)", &r("abbc")));
        assert!(holds("[BODY] == pat(*/health*)", &r("GET /healthz ok")));
        assert!(holds("[BODY] == pat(\\*)", &r("*")));
        assert!(!holds("[BODY] == pat(\\*)", &r("x")));
        assert!(holds("[BODY] == pat(*)", &r("")));
        // Backtracking over several stars.
        assert!(holds("[BODY] == pat(*a*b*c*)", &r("xxaxxbxxcxx")));
        assert!(!holds("[BODY] == pat(*a*b*c*)", &r("xxaxxcxxbxx")));
        // A pattern on the left works the same.
        assert!(holds("pat(2*) == [STATUS]", &r("")));
    }

    #[test]
    fn a_missing_value_fails_with_the_reason() {
        let r = http(200, r#"{"data":{"status":"ok"}}"#);
        let out = Condition::parse("[BODY].data.state == ok")
            .unwrap()
            .evaluate(&r);
        assert!(!out.success);
        assert_eq!(
            out.reason.as_deref(),
            Some("[BODY].data.state: no value at [BODY].data.state")
        );
        // Even with != (a missing value is not "different").
        assert!(!holds("[BODY].data.state != ok", &r));
        let out = Condition::parse("[BODY].data == x")
            .unwrap()
            .evaluate(&http(200, "not json"));
        assert_eq!(
            out.reason.as_deref(),
            Some("[BODY].data: the body is not JSON")
        );
        // Ordering against text that is not a number.
        let out = Condition::parse("[BODY].data.status > 3")
            .unwrap()
            .evaluate(&r);
        assert!(!out.success);
        assert_eq!(out.reason.as_deref(), Some("'ok' is not a number"));
        // A failed request has no status.
        let failed = CheckResult::failed(Timestamp::UNIX_EPOCH, "connection refused");
        let out = Condition::parse("[STATUS] == 200")
            .unwrap()
            .evaluate(&failed);
        assert_eq!(
            out.reason.as_deref(),
            Some("[STATUS]: no HTTP status (connection refused)")
        );
    }

    #[test]
    fn detail_shows_resolved_values() {
        let out = Condition::parse("[STATUS] == 200")
            .unwrap()
            .evaluate(&http(503, ""));
        assert_eq!(out.detail, "[STATUS] (503) == 200");
        let out = Condition::parse("len([BODY].items) > 0")
            .unwrap()
            .evaluate(&http(200, r#"{"items":[]}"#));
        assert!(!out.success);
        assert_eq!(out.detail, "len([BODY].items) (0) > 0");
    }

    #[test]
    fn len_and_has_on_json_and_text() {
        let r = http(
            200,
            r#"{"items":[1,2,3],"obj":{"a":1,"b":2},"s":"","n":12345}"#,
        );
        assert!(holds("len([BODY].items) == 3", &r));
        assert!(holds("len([BODY].obj) == 2", &r));
        assert!(holds("len([BODY].n) == 5", &r));
        assert!(holds("has([BODY].s) == true", &r));
        assert!(holds("has([BODY].nope) == false", &r));
        assert!(holds("has([BODY]) == true", &r));
        assert!(holds("has([BODY]) == false", &http(200, "  ")));
        assert!(holds("len([BODY]) == 5", &http(200, "héllo")));
        assert!(holds("len([BODY]) == 2", &http(200, "[1, 2]")));
        assert!(holds("[BODY].items[2] == 3", &r));
        assert!(!holds("[BODY].items[3] == 3", &r));
        assert!(holds("[BODY].obj == {\"a\":1,\"b\":2}", &r));
    }

    #[test]
    fn numbers_compare_numerically() {
        let r = http(200, r#"{"price":24.99,"count":"007"}"#);
        assert!(holds("[BODY].price == 24.99", &r));
        assert!(holds("[BODY].price > 24", &r));
        assert!(holds("[BODY].count == 7", &r));
        assert!(holds("[BODY] != hello", &r));
        assert!(holds("[BODY].price == [BODY].price", &r));
        assert!(holds("[RESPONSE_TIME] < 1s", &r));
    }

    #[test]
    fn literals_may_contain_spaces() {
        assert!(holds(
            "[BODY].name == John Doe",
            &http(200, r#"{"name":"John Doe"}"#)
        ));
    }

    #[test]
    fn errors_point_at_the_problem() {
        let cases: &[(&str, usize, &str)] = &[
            ("[STATSU] == 200", 0, "unknown placeholder [STATSU]"),
            ("[STATUS] = 200", 9, "expected an operator"),
            ("[STATUS] == ", 12, "expected a value after =="),
            ("[STATUS] < abc", 11, "'abc' is not a number"),
            ("[STATUS] == abc", 12, "expected a number"),
            ("[CONNECTED] == yes", 15, "expected true or false"),
            ("[DNS_RCODE] == NOERR", 15, "expected one of NOERROR"),
            ("[STATUS] > pat(2*)", 11, "pat() works only with == and !="),
            ("[BODY] == pat(*x", 16, "pat() is not closed"),
            ("[BODY].a[x] == 1", 9, "array index must be a number"),
            ("[BODY].a[*].b == 1", 8, "[*] is not supported"),
            ("[BODY]. == 1", 6, "empty key"),
            ("[STATUS].x == 1", 0, "only [BODY] takes a JSON path"),
            ("len([BODY].a == 1", 12, "expected ) to close"),
            ("len(abc) == 1", 4, "expected a placeholder"),
            ("", 0, "empty condition"),
            ("hello", 0, "expected <value> <operator> <value>"),
            ("[STATUS] == 200 x", 12, "expected a number"),
            ("[STATUS] == [BODY] x", 19, "unexpected text after [BODY]"),
            ("[BODY] == pat([ab)", 14, "[ is not closed"),
            ("[BODY] == pat([z-a])", 14, "range z-a is backwards"),
            ("[STATUS] === 200", 9, "unknown operator"),
            ("has([BODY].a) > 1", 0, "is not a number"),
            ("[BODY] == any(1, )", 14, "any() needs values"),
            ("pat(a) == any(b)", 10, "cannot be compared"),
        ];
        for (src, position, message) in cases {
            let e = Condition::parse(src).expect_err(src);
            assert!(e.message.contains(message), "{src}: {e}");
            assert_eq!(e.position, *position, "{src}: {e}");
        }
        let long = format!("[BODY] == {}", "x".repeat(MAX_CONDITION_LEN));
        assert!(Condition::parse(&long).is_err());
    }

    #[test]
    fn serde_round_trip_reparses_and_refuses_bad_text() {
        let c = Condition::parse_with("[BODY] == pat(*ok*)", true).unwrap();
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(
            json,
            r#"{"condition":"[BODY] == pat(*ok*)","case_insensitive":true}"#
        );
        let back: Condition = serde_json::from_str(&json).unwrap();
        assert_eq!(back, c);
        let bad = serde_json::from_str::<Condition>(r#"{"condition":"[NOPE] == 1"}"#);
        assert!(bad.unwrap_err().to_string().contains("unknown placeholder"));
        let specs = vec![
            ConditionSpec {
                condition: "[STATUS] == 200".into(),
                case_insensitive: false,
            },
            ConditionSpec {
                condition: "[STATUS] <".into(),
                case_insensitive: false,
            },
        ];
        assert_eq!(parse_all(&specs).unwrap_err().0, 1);
    }

    #[test]
    fn evaluate_all_parses_json_once_and_reports_each() {
        let r = http(200, r#"{"a":1,"b":2}"#);
        let conds: Vec<Condition> = ["[BODY].a == 1", "[BODY].b == 3", "[STATUS] == 200"]
            .iter()
            .map(|c| Condition::parse(c).unwrap())
            .collect();
        let outs = evaluate_all(&conds, &r);
        assert_eq!(
            outs.iter().map(|o| o.success).collect::<Vec<_>>(),
            [true, false, true]
        );
        assert!(conds[0].uses_body() && !conds[2].uses_body());
    }

    #[test]
    fn a_truncated_body_says_so() {
        let mut r = http(200, r#"{"a": [1, 2"#);
        r.body_truncated = true;
        let out = Condition::parse("[BODY].a == 1").unwrap().evaluate(&r);
        assert!(out.reason.unwrap().contains("cut at the size cap"));
    }
}
