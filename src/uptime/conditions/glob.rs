//! The glob of `pat(...)`.

/// A glob: `*`, `?`, `[...]` classes (`!` or `^` negates, `a-z` ranges) and `\` escapes.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Glob {
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
    pub(super) fn parse(pattern: &str, fold: bool) -> Result<Glob, (usize, String)> {
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

    pub(super) fn matches(&self, text: &str, fold: bool) -> bool {
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
