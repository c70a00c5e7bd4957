//! The context of a suggestion: a fixed 64-wide vector.
//!
//! | index | feature |
//! |---|---|
//! | 0 | bias (1) |
//! | 1–12 | intent one-hot, from keywords of the visitor's messages ([`INTENTS`]; 12 = other) |
//! | 13–15 | channel: chat, email (offline form), API ticket |
//! | 16 | inside the site's business hours |
//! | 17–21 | language guess: en, de, fr, es, other |
//! | 22 | first visitor message of the conversation |
//! | 23 | the conversation was reopened before |
//! | 24–31 | unused (0) |
//! | 32–63 | hashed bag of words of the visitor's last message (32 buckets, L2-normalised) |

use super::super::model::Channel;

pub const D: usize = 64;
const INTENT0: usize = 1;
const CHANNEL0: usize = 13;
const HOURS: usize = 16;
const LANG0: usize = 17;
const FIRST: usize = 22;
const REOPENED: usize = 23;
const BOW0: usize = 32;
const BOW: usize = 32;

/// Intent names and their keywords (lower case, matched as word prefixes).
pub const INTENTS: [(&str, &[&str]); 12] = [
    (
        "billing",
        &[
            "bill", "invoice", "payment", "pay", "charge", "card", "rechnung", "factur", "pago",
        ],
    ),
    (
        "refund",
        &[
            "refund",
            "cancel",
            "money back",
            "return",
            "erstatt",
            "rembours",
            "reembols",
        ],
    ),
    (
        "account",
        &[
            "login", "log in", "password", "account", "sign in", "signin", "locked", "2fa",
            "konto", "compte", "cuenta",
        ],
    ),
    (
        "shipping",
        &[
            "ship",
            "deliver",
            "tracking",
            "parcel",
            "package",
            "order",
            "liefer",
            "versand",
            "livraison",
            "envío",
            "envio",
        ],
    ),
    (
        "hours",
        &[
            "hours",
            "open",
            "closed",
            "when are you",
            "öffnungszeit",
            "horaire",
            "horario",
        ],
    ),
    (
        "bug",
        &[
            "bug",
            "error",
            "crash",
            "broken",
            "doesn't work",
            "does not work",
            "not working",
            "fails",
            "fehler",
            "erreur",
        ],
    ),
    (
        "pricing",
        &[
            "price", "pricing", "cost", "plan", "discount", "quote", "preis", "prix", "precio",
        ],
    ),
    (
        "setup",
        &[
            "install",
            "setup",
            "set up",
            "configure",
            "integration",
            "api",
            "docs",
            "how do i",
            "how to",
        ],
    ),
    (
        "feature",
        &[
            "feature",
            "request",
            "would be nice",
            "suggest",
            "roadmap",
            "wish",
        ],
    ),
    (
        "greeting",
        &[
            "hi",
            "hello",
            "hey",
            "good morning",
            "hallo",
            "bonjour",
            "hola",
        ],
    ),
    (
        "thanks",
        &[
            "thank", "thanks", "great", "solved", "danke", "merci", "gracias",
        ],
    ),
    ("other", &[]),
];

/// What the context is built from.
pub struct Inputs<'a> {
    /// The visitor's messages, oldest first (at most the last few).
    pub visitor_messages: &'a [String],
    pub channel: Channel,
    pub business_hours: bool,
    pub reopened: bool,
}

/// The context vector and the detected intent's index into [`INTENTS`].
pub fn context(inp: &Inputs) -> (Vec<f64>, usize) {
    let mut x = vec![0.0; D];
    x[0] = 1.0;
    let all = inp.visitor_messages.join(" \n ").to_lowercase();
    let last = inp
        .visitor_messages
        .last()
        .map(|s| s.to_lowercase())
        .unwrap_or_default();
    let intent = intent_of(&last)
        .or_else(|| intent_of(&all))
        .unwrap_or(INTENTS.len() - 1);
    x[INTENT0 + intent] = 1.0;
    x[CHANNEL0
        + match inp.channel {
            Channel::Chat => 0,
            Channel::Email => 1,
            Channel::Api => 2,
        }] = 1.0;
    if inp.business_hours {
        x[HOURS] = 1.0;
    }
    x[LANG0 + language(&all)] = 1.0;
    if inp.visitor_messages.len() <= 1 {
        x[FIRST] = 1.0;
    }
    if inp.reopened {
        x[REOPENED] = 1.0;
    }
    let mut bow = [0.0f64; BOW];
    for w in words(&last) {
        bow[(fnv1a(w.as_bytes()) % BOW as u64) as usize] += 1.0;
    }
    let norm = bow.iter().map(|v| v * v).sum::<f64>().sqrt();
    if norm > 0.0 {
        for (i, v) in bow.iter().enumerate() {
            x[BOW0 + i] = v / norm;
        }
    }
    (x, intent)
}

fn words(s: &str) -> impl Iterator<Item = &str> {
    s.split(|c: char| !c.is_alphanumeric() && c != '\'')
        .filter(|w| !w.is_empty())
        .take(200)
}

/// The intent whose keywords hit most often (first listed wins ties); `None` without a hit.
pub fn intent_of(text: &str) -> Option<usize> {
    let ws: Vec<&str> = words(text).collect();
    let mut best: Option<(usize, usize)> = None;
    for (i, (_, kws)) in INTENTS.iter().enumerate() {
        let mut hits = 0;
        for kw in kws.iter() {
            if kw.contains(' ') || kw.contains('\'') {
                if text.contains(kw) {
                    hits += 2;
                }
            } else if kw.len() <= 3 {
                hits += ws.iter().filter(|w| *w == kw).count();
            } else {
                hits += ws.iter().filter(|w| w.starts_with(kw)).count();
            }
        }
        if hits > 0 && best.is_none_or(|(_, h)| hits > h) {
            best = Some((i, hits));
        }
    }
    best.map(|(i, _)| i)
}

/// 0 en, 1 de, 2 fr, 3 es, 4 other, by counting common short words.
fn language(text: &str) -> usize {
    const STOP: [&[&str]; 4] = [
        &[
            "the", "and", "is", "i", "my", "you", "to", "it", "not", "can",
        ],
        &[
            "der", "die", "das", "und", "ist", "ich", "nicht", "mein", "ein", "sie",
        ],
        &[
            "le", "la", "les", "et", "est", "je", "pas", "mon", "vous", "une",
        ],
        &[
            "el", "los", "las", "y", "es", "yo", "no", "mi", "usted", "una",
        ],
    ];
    let mut counts = [0usize; 4];
    for w in words(text) {
        for (i, list) in STOP.iter().enumerate() {
            if list.contains(&w) {
                counts[i] += 1;
            }
        }
    }
    let (i, n) = counts
        .iter()
        .enumerate()
        .max_by_key(|(i, n)| (**n, std::cmp::Reverse(*i)))
        .map(|(i, n)| (i, *n))
        .unwrap_or((4, 0));
    if n == 0 { 4 } else { i }
}

fn fnv1a(b: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for x in b {
        h ^= *x as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(msgs: &[&str]) -> (Vec<f64>, usize) {
        let m: Vec<String> = msgs.iter().map(|s| s.to_string()).collect();
        context(&Inputs {
            visitor_messages: &m,
            channel: Channel::Chat,
            business_hours: true,
            reopened: false,
        })
    }

    #[test]
    fn intents_come_from_keywords_and_the_vector_is_fixed_size() {
        let (x, i) = ctx(&["I was charged twice on my card, where is the invoice?"]);
        assert_eq!(INTENTS[i].0, "billing");
        assert_eq!(x.len(), D);
        assert_eq!(x[0], 1.0);
        assert_eq!(x[INTENT0 + i], 1.0);
        assert_eq!(x[LANG0], 1.0);
        assert_eq!(
            INTENTS[ctx(&["I can't log in, password reset fails"]).1].0,
            "account"
        );
        assert_eq!(INTENTS[ctx(&["asdf qwer"]).1].0, "other");
        let bow: f64 = x[BOW0..].iter().map(|v| v * v).sum();
        assert!((bow - 1.0).abs() < 1e-12);
    }
}
