//! Mail templates (minijinja): built-ins plus templates admins add over the API.
//!
//! Subject and text render with no escaping; the HTML part renders with HTML auto-escaping, so
//! a variable holding `<script>` arrives as text, never as markup.

use minijinja::{AutoEscape, Environment, UndefinedBehavior};

use super::model::Template;

pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: Option<String>,
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

pub fn render(
    t: &Template,
    vars: &serde_json::Map<String, serde_json::Value>,
) -> Result<Rendered, String> {
    let env = env();
    let ctx = minijinja::Value::from_serialize(vars);
    let one = |name: &str, src: &str| {
        env.render_named_str(name, src, &ctx)
            .map_err(|e| format!("template {:?}, {name}: {e}", t.name))
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
        let r = render(&t, &vars).unwrap();
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
        assert_eq!(render(&t, &vars).unwrap().subject, "a  Bcc: evil@x");
    }
}
