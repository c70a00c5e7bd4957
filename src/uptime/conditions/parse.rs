//! The condition parser: source text to a checked [`Condition`].

use super::glob::Glob;
use super::*;

pub(super) struct Parser<'a> {
    pub(super) src: &'a str,
    pub(super) pos: usize,
    pub(super) case_insensitive: bool,
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

    pub(super) fn condition(mut self) -> Result<Condition, ConditionError> {
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
