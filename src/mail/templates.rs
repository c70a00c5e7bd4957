//! Mail templates (minijinja): built-ins plus templates admins add over the API.
//!
//! Subject and text render with no escaping; the HTML part renders with HTML auto-escaping, so
//! a variable holding `<script>` arrives as text, never as markup.
//!
//! A render is bounded: each part may run `fuel` template instructions (minijinja's fuel counts
//! every instruction, so a loop without end stops), and the whole message may grow to
//! `max_output` bytes, counted as it is written (a loop that prints a little many times stops
//! at the limit instead of building the whole text first). Renders are CPU work: callers run
//! them off the async workers ([`super::Mail::render_all`]).

use std::io;

use minijinja::{AutoEscape, Environment, ErrorKind, UndefinedBehavior};

use super::model::Template;

pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: Option<String>,
}

/// What one render may use.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Template instructions per part (subject, text, HTML).
    pub fuel: u64,
    /// Bytes of the subject, text and HTML together.
    pub max_output: usize,
}

impl Limits {
    pub fn from_config(c: &crate::config::MailConfig) -> Self {
        Limits {
            fuel: c.template_fuel.max(1),
            max_output: c.template_max_output.as_usize(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// The template or its variables do not render (syntax, a failing filter, ...).
    #[error("{0}")]
    Invalid(String),
    /// The render ran out of fuel or output room.
    #[error("{0}")]
    Limit(String),
}

impl RenderError {
    /// The same error with `what: ` before its message.
    pub fn prefixed(self, what: &str) -> Self {
        match self {
            RenderError::Invalid(m) => RenderError::Invalid(format!("{what}: {m}")),
            RenderError::Limit(m) => RenderError::Limit(format!("{what}: {m}")),
        }
    }
}

fn env() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_auto_escape_callback(|name| {
        if name.ends_with(".html") {
            AutoEscape::Html
        } else {
            AutoEscape::None
        }
    });
    // A missing variable renders empty (templates are shared by senders with different data),
    // but attribute access on it does not error either.
    env.set_undefined_behavior(UndefinedBehavior::Chainable);
    env
}

/// Checks that every part of `t` compiles.
pub fn validate(t: &Template) -> Result<(), String> {
    let env = env();
    let check = |name: &str, src: &str| {
        env.template_from_named_str(name, src)
            .map(|_| ())
            .map_err(|e| format!("{name}: {e}"))
    };
    check("subject.txt", &t.subject)?;
    check("body.txt", &t.text)?;
    if let Some(h) = &t.html {
        check("body.html", h)?;
    }
    Ok(())
}

/// Output that refuses to grow past the bytes left in the message's budget.
struct Capped<'a> {
    out: Vec<u8>,
    left: &'a mut usize,
    over: bool,
}

impl io::Write for Capped<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.len() > *self.left {
            self.over = true;
            return Err(io::Error::other("output limit reached"));
        }
        *self.left -= buf.len();
        self.out.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Renders the three parts of `t` within `limits`. Blocking CPU work: call it off the async
/// workers.
pub fn render(
    t: &Template,
    vars: &serde_json::Map<String, serde_json::Value>,
    limits: &Limits,
) -> Result<Rendered, RenderError> {
    let mut env = env();
    env.set_fuel(Some(limits.fuel));
    let ctx = minijinja::Value::from_serialize(vars);
    let mut left = limits.max_output;
    let mut one = |name: &str, src: &str| -> Result<String, RenderError> {
        let invalid = |e: minijinja::Error| {
            RenderError::Invalid(format!("template {:?}, {name}: {e}", t.name))
        };
        let tmpl = env.template_from_named_str(name, src).map_err(invalid)?;
        let mut w = Capped {
            out: Vec::new(),
            left: &mut left,
            over: false,
        };
        match tmpl.render_captured_to(&ctx, &mut w) {
            Ok(_) => Ok(String::from_utf8_lossy(&w.out).into_owned()),
            Err(_) if w.over => Err(RenderError::Limit(format!(
                "template {:?} renders a message larger than {} ([mail] template_max_output); \
                 check it for a loop or repetition that prints too much",
                t.name,
                crate::config::ByteSize(limits.max_output as u64)
            ))),
            Err(e) if e.kind() == ErrorKind::OutOfFuel => Err(RenderError::Limit(format!(
                "template {:?}, {name}: rendering ran more than {} instructions \
                 ([mail] template_fuel); check it for a loop over too many items",
                t.name, limits.fuel
            ))),
            Err(e) => Err(invalid(e)),
        }
    };
    let subject = one("subject.txt", &t.subject)?;
    // Header injection: a subject is one line.
    let subject = subject.replace(['\r', '\n'], " ").trim().to_string();
    Ok(Rendered {
        subject,
        text: one("body.txt", &t.text)?,
        html: t.html.as_deref().map(|h| one("body.html", h)).transpose()?,
    })
}

const STYLE: &str = "font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;color:#1f2328;";

/// The built-in templates, by name.
pub fn builtins() -> Vec<Template> {
    vec![
        Template {
            name: "error_alert".into(),
            description: "An alert about an error issue (new, regressed, frequent)".into(),
            subject: "[{{ project }}] {{ reason | default('Alert') }}: {{ title }}".into(),
            text: "{{ reason | default('Alert') }} in {{ project }}\n\n\
                   {{ title }}\n\
                   {% if culprit %}{{ culprit }}\n{% endif %}\n\
                   Level: {{ level }}\n\
                   Environment: {{ environment | default('-') }}\n\
                   Release: {{ release | default('-') }}\n\
                   {% if count %}Events: {{ count }}\n{% endif %}\
                   \nOpen the issue: {{ url }}\n"
                .into(),
            html: Some(format!(
                "<div style=\"{STYLE}\">\
                 <p style=\"color:#cf222e;font-weight:600\">{{{{ reason | default('Alert') }}}} in {{{{ project }}}}</p>\
                 <h2 style=\"margin:0 0 8px\">{{{{ title }}}}</h2>\
                 {{% if culprit %}}<p><code>{{{{ culprit }}}}</code></p>{{% endif %}}\
                 <table cellpadding=\"4\">\
                 <tr><td>Level</td><td>{{{{ level }}}}</td></tr>\
                 <tr><td>Environment</td><td>{{{{ environment | default('-') }}}}</td></tr>\
                 <tr><td>Release</td><td>{{{{ release | default('-') }}}}</td></tr>\
                 {{% if count %}}<tr><td>Events</td><td>{{{{ count }}}}</td></tr>{{% endif %}}\
                 </table>\
                 <p><a href=\"{{{{ url }}}}\">Open the issue in Hearth</a></p></div>"
            )),
            builtin: true,
            updated_ms: 0,
        },
        Template {
            name: "system_alert".into(),
            description: "An operational alert (monitor down/up, dead letters, test messages)"
                .into(),
            subject: "[Hearth] {{ title }}".into(),
            text: "{{ title }}\n\n{{ message }}\n{% if url %}\n{{ url }}\n{% endif %}".into(),
            html: Some(format!(
                "<div style=\"{STYLE}\"><h2 style=\"margin:0 0 8px\">{{{{ title }}}}</h2>\
                 <p style=\"white-space:pre-wrap\">{{{{ message }}}}</p>\
                 {{% if url %}}<p><a href=\"{{{{ url }}}}\">{{{{ url }}}}</a></p>{{% endif %}}</div>"
            )),
            builtin: true,
            updated_ms: 0,
        },
        Template {
            name: "daily_report".into(),
            description: "The daily summary of issues, events and mail".into(),
            subject: "[Hearth] Daily report for {{ date }}".into(),
            text: "Hearth daily report for {{ date }}\n\n\
                   Issues created: {{ issues_created }}\n\
                   Issues resolved: {{ issues_resolved }}\n\
                   Issues regressed: {{ issues_regressed }}\n\
                   Events: {{ events }}\n\
                   Mail sent: {{ mail_sent }}, failed: {{ mail_failed }}\n\n\
                   Top issues:\n\
                   {% for i in top_issues %}  {{ i.count }}x  {{ i.title }}  {{ i.url }}\n\
                   {% else %}  none\n{% endfor %}"
                .into(),
            html: Some(format!(
                "<div style=\"{STYLE}\"><h2>Daily report for {{{{ date }}}}</h2>\
                 <table cellpadding=\"4\">\
                 <tr><td>Issues created</td><td>{{{{ issues_created }}}}</td></tr>\
                 <tr><td>Issues resolved</td><td>{{{{ issues_resolved }}}}</td></tr>\
                 <tr><td>Issues regressed</td><td>{{{{ issues_regressed }}}}</td></tr>\
                 <tr><td>Events</td><td>{{{{ events }}}}</td></tr>\
                 <tr><td>Mail sent / failed</td><td>{{{{ mail_sent }}}} / {{{{ mail_failed }}}}</td></tr>\
                 </table><h3>Top issues</h3><ol>\
                 {{% for i in top_issues %}}<li><a href=\"{{{{ i.url }}}}\">{{{{ i.title }}}}</a> ({{{{ i.count }}}})</li>\
                 {{% else %}}<li>none</li>{{% endfor %}}</ol></div>"
            )),
            builtin: true,
            updated_ms: 0,
        },
    ]
}

pub fn builtin(name: &str) -> Option<Template> {
    builtins().into_iter().find(|t| t.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        fuel: 1_000_000,
        max_output: 1_000_000,
    };

    fn inline(subject: &str, text: &str) -> Template {
        Template {
            name: "t".into(),
            description: String::new(),
            subject: subject.into(),
            text: text.into(),
            html: None,
            builtin: false,
            updated_ms: 0,
        }
    }

    fn limit_error(t: &Template) -> String {
        match render(t, &serde_json::Map::new(), &LIMITS) {
            Err(RenderError::Limit(m)) => m,
            Err(RenderError::Invalid(m)) => panic!("refused, but not for a limit: {m}"),
            Ok(r) => panic!("rendered {} bytes", r.text.len()),
        }
    }

    #[test]
    fn amplification_and_endless_loops_are_stopped() {
        // Under 150 bytes of template that would print 100 MB, streamed or in one value.
        let t = inline(
            "x",
            "{% for i in range(100000) %}{{ 'xxxxxxxxxx' * 100 }}{% endfor %}",
        );
        assert!(limit_error(&t).contains("template_max_output"));
        let t = inline("x", "{{ 'x' * 100000000 }}");
        assert!(limit_error(&t).contains("template_max_output"));
        // A loop that prints nothing, 10 billion times.
        let t = inline(
            "x",
            "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
        );
        assert!(limit_error(&t).contains("template_fuel"));
        // The budget is for the whole message: parts each under it, together over it.
        let small = Limits {
            fuel: 1_000_000,
            max_output: 1000,
        };
        let t = inline("{{ 'a' * 600 }}", "{{ 'b' * 600 }}");
        assert!(matches!(
            render(&t, &serde_json::Map::new(), &small),
            Err(RenderError::Limit(_))
        ));
        assert!(
            render(
                &inline("{{ 'a' * 400 }}", "{{ 'b' * 500 }}"),
                &serde_json::Map::new(),
                &small
            )
            .is_ok()
        );
    }

    #[test]
    fn builtins_compile_and_escape_html_only() {
        for t in builtins() {
            validate(&t).unwrap();
        }
        let t = builtin("error_alert").unwrap();
        let mut vars = serde_json::Map::new();
        vars.insert("title".into(), "<script>x</script> & co".into());
        vars.insert("project".into(), "web".into());
        vars.insert("url".into(), "http://h/#/issues/1".into());
        let r = render(&t, &vars, &LIMITS).unwrap();
        assert!(r.subject.contains("<script>x</script> & co"));
        assert!(r.text.contains("<script>x</script> & co"));
        let html = r.html.unwrap();
        assert!(
            html.contains("&lt;script&gt;x&lt;&#x2f;script&gt; &amp; co"),
            "{html}"
        );
        assert!(!html.contains("<script>"));
    }

    #[test]
    fn subject_is_one_line() {
        let t = Template {
            name: "x".into(),
            description: String::new(),
            subject: "{{ s }}".into(),
            text: String::new(),
            html: None,
            builtin: false,
            updated_ms: 0,
        };
        let mut vars = serde_json::Map::new();
        vars.insert("s".into(), "a\r\nBcc: evil@x".into());
        assert_eq!(
            render(&t, &vars, &LIMITS).unwrap().subject,
            "a  Bcc: evil@x"
        );
    }
}
