//! The public status page (plain HTML and CSS, no JavaScript) and the SVG uptime badge.
//!
//! Both render from a view the caller fills from rollups ([`super::rollup::figures`],
//! [`super::rollup::daily_bars`]), incidents and maintenance windows, so serving a page never
//! scans check history. The page is rendered by minijinja with HTML auto-escaping on every
//! value: monitor names, titles, incident texts and the logo URL arrive as text, never as
//! markup. The logo is shown only for an `http(s)` URL. The view is `Serialize`, so the same
//! struct is the page's JSON form.

use std::fmt::Write as _;
use std::sync::OnceLock;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use minijinja::{AutoEscape, Environment};
use serde::{Deserialize, Serialize};

use super::monitor::Status;
use super::rollup::{BarLevel, DayBar, UptimeFigures};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusPageView {
    pub title: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub logo_url: Option<String>,
    pub generated_at: Timestamp,
    pub monitors: Vec<MonitorView>,
    /// Open incidents (and recently resolved ones, if the caller includes them), newest first.
    #[serde(default)]
    pub incidents: Vec<IncidentView>,
    /// Maintenance running now or planned, earliest first.
    #[serde(default)]
    pub maintenance: Vec<MaintenanceView>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MonitorView {
    pub name: String,
    pub status: Status,
    #[serde(default)]
    pub in_maintenance: bool,
    pub figures: UptimeFigures,
    /// Oldest first (90 of them on the page).
    pub bars: Vec<DayBar>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpdateState {
    Investigating,
    Identified,
    Monitoring,
    Resolved,
}

impl UpdateState {
    fn label(self) -> &'static str {
        match self {
            UpdateState::Investigating => "Investigating",
            UpdateState::Identified => "Identified",
            UpdateState::Monitoring => "Monitoring",
            UpdateState::Resolved => "Resolved",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentUpdate {
    pub at: Timestamp,
    pub state: UpdateState,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentView {
    pub title: String,
    pub started: Timestamp,
    #[serde(default)]
    pub resolved: Option<Timestamp>,
    #[serde(default)]
    pub monitors: Vec<String>,
    /// Newest first.
    #[serde(default)]
    pub updates: Vec<IncidentUpdate>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MaintenanceView {
    pub title: String,
    pub start: Timestamp,
    pub end: Timestamp,
    #[serde(default)]
    pub monitors: Vec<String>,
}

/// The banner over the page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Overall {
    Operational,
    Maintenance,
    PartialOutage,
    MajorOutage,
}

impl StatusPageView {
    pub fn overall(&self) -> Overall {
        let down = self
            .monitors
            .iter()
            .filter(|m| m.status == Status::Down && !m.in_maintenance)
            .count();
        if down > 0 && down == self.monitors.len() {
            Overall::MajorOutage
        } else if down > 0 {
            Overall::PartialOutage
        } else if self.monitors.iter().any(|m| m.in_maintenance) {
            Overall::Maintenance
        } else {
            Overall::Operational
        }
    }
}

const PAGE: &str = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }}</title>
<style>
:root{color-scheme:light dark;--ok:#2da44e;--warn:#d4a72c;--bad:#cf222e;--maint:#0969da;--none:#d0d7de;--fg:#1f2328;--muted:#656d76;--bg:#fff;--card:#f6f8fa}
@media (prefers-color-scheme:dark){:root{--fg:#e6edf3;--muted:#8d96a0;--bg:#0d1117;--card:#161b22;--none:#30363d}}
body{margin:0;font:15px/1.5 -apple-system,"Segoe UI",Helvetica,Arial,sans-serif;color:var(--fg);background:var(--bg)}
main{max-width:880px;margin:0 auto;padding:24px 16px}
header{display:flex;align-items:center;gap:12px;margin-bottom:16px}
header img{max-height:40px;max-width:160px}
h1{font-size:24px;margin:0}
h2{font-size:18px;margin:28px 0 8px}
.muted{color:var(--muted)}
.banner{padding:14px 16px;border-radius:6px;color:#fff;font-weight:600;margin:16px 0}
.banner.operational{background:var(--ok)}.banner.partial_outage{background:var(--warn)}.banner.major_outage{background:var(--bad)}.banner.maintenance{background:var(--maint)}
.monitor{background:var(--card);border-radius:6px;padding:12px 16px;margin:10px 0}
.row{display:flex;justify-content:space-between;align-items:baseline;gap:8px;flex-wrap:wrap}
.name{font-weight:600}
.state.up{color:var(--ok)}.state.down{color:var(--bad)}.state.pending{color:var(--muted)}.state.maintenance{color:var(--maint)}
.bars{display:flex;gap:2px;margin:8px 0 4px;height:28px}
.bar{flex:1;border-radius:2px;background:var(--none)}
.bar.operational{background:var(--ok)}.bar.degraded{background:var(--warn)}.bar.outage{background:var(--bad)}.bar.maintenance{background:var(--maint)}
.figures{display:flex;gap:16px;font-size:13px;color:var(--muted);flex-wrap:wrap}
.figures b{color:var(--fg)}
.incident,.maint{border-left:4px solid var(--bad);background:var(--card);padding:10px 14px;margin:10px 0;border-radius:0 6px 6px 0}
.maint{border-left-color:var(--maint)}
.update{margin:6px 0}
footer{margin-top:32px;font-size:12px;color:var(--muted)}
</style>
</head>
<body>
<main>
<header>
{%- if logo_url %}<img src="{{ logo_url }}" alt="">{% endif %}
<h1>{{ title }}</h1>
</header>
{%- if description %}<p class="muted">{{ description }}</p>{% endif %}
<div class="banner {{ overall }}">{{ overall_text }}</div>
{%- if incidents %}
<h2>Incidents</h2>
{%- for i in incidents %}
<section class="incident">
<div class="row"><span class="name">{{ i.title }}</span><span class="muted">{{ i.when }}</span></div>
{%- if i.monitors %}<div class="muted">Affects: {{ i.monitors }}</div>{% endif %}
{%- for u in i.updates %}
<div class="update"><b>{{ u.state }}</b> <span class="muted">{{ u.at }}</span> {{ u.message }}</div>
{%- endfor %}
</section>
{%- endfor %}
{%- endif %}
{%- if maintenance %}
<h2>Maintenance</h2>
{%- for m in maintenance %}
<section class="maint">
<div class="row"><span class="name">{{ m.title }}</span><span class="muted">{{ m.when }}</span></div>
{%- if m.monitors %}<div class="muted">Affects: {{ m.monitors }}</div>{% endif %}
</section>
{%- endfor %}
{%- endif %}
<h2>Monitors</h2>
{%- for m in monitors %}
<section class="monitor">
<div class="row"><span class="name">{{ m.name }}</span><span class="state {{ m.state_class }}">{{ m.state_text }}</span></div>
<div class="bars">
{%- for b in m.bars %}<span class="bar {{ b.class }}" title="{{ b.title }}"></span>{% endfor -%}
</div>
<div class="figures"><span>24 h <b>{{ m.h24 }}</b></span><span>7 d <b>{{ m.d7 }}</b></span><span>30 d <b>{{ m.d30 }}</b></span><span>90 d <b>{{ m.d90 }}</b></span></div>
</section>
{%- endfor %}
<footer>Updated {{ generated_at }} · times in UTC</footer>
</main>
</body>
</html>
"#;

fn env() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        env.set_auto_escape_callback(|_| AutoEscape::Html);
        env.add_template("status.html", PAGE)
            .expect("the status page template compiles");
        env
    })
}

fn utc(t: Timestamp) -> String {
    t.to_zoned(TimeZone::UTC)
        .strftime("%Y-%m-%d %H:%M")
        .to_string()
}

/// An uptime ratio as a percentage with two decimals, never rounded up to 100.00 %.
pub fn percent(ratio: Option<f64>) -> String {
    match ratio {
        None => "–".into(),
        Some(r) => {
            let hundredths = (r * 10_000.0).floor() / 100.0;
            format!("{hundredths:.2}%")
        }
    }
}

fn bar_class(level: BarLevel) -> &'static str {
    match level {
        BarLevel::NoData => "nodata",
        BarLevel::Operational => "operational",
        BarLevel::Degraded => "degraded",
        BarLevel::Outage => "outage",
        BarLevel::Maintenance => "maintenance",
    }
}

/// Renders the page.
pub fn render(view: &StatusPageView) -> String {
    let overall = view.overall();
    let overall_text = match overall {
        Overall::Operational => "All systems operational",
        Overall::Maintenance => "Maintenance in progress",
        Overall::PartialOutage => "Partial outage",
        Overall::MajorOutage => "Major outage",
    };
    let monitors: Vec<_> = view
        .monitors
        .iter()
        .map(|m| {
            let (state_class, state_text) = match (m.in_maintenance, m.status) {
                (true, _) => ("maintenance", "Maintenance"),
                (false, Status::Up) => ("up", "Operational"),
                (false, Status::Down) => ("down", "Down"),
                (false, Status::Pending) => ("pending", "Pending"),
            };
            let bars: Vec<_> = m
                .bars
                .iter()
                .map(|b| {
                    let title = match (b.uptime, b.level) {
                        (Some(u), _) if b.down > 0 => {
                            format!(
                                "{}: {} up, {} failed checks",
                                b.date,
                                percent(Some(u)),
                                b.down
                            )
                        }
                        (Some(u), _) => format!("{}: {} up", b.date, percent(Some(u))),
                        (None, BarLevel::Maintenance) => format!("{}: maintenance", b.date),
                        (None, _) => format!("{}: no data", b.date),
                    };
                    minijinja::context! { class => bar_class(b.level), title => title }
                })
                .collect();
            minijinja::context! {
                name => m.name,
                state_class => state_class,
                state_text => state_text,
                bars => bars,
                h24 => percent(m.figures.h24),
                d7 => percent(m.figures.d7),
                d30 => percent(m.figures.d30),
                d90 => percent(m.figures.d90),
            }
        })
        .collect();
    let incidents: Vec<_> = view
        .incidents
        .iter()
        .map(|i| {
            let when = match i.resolved {
                Some(r) => format!("{} – {} UTC, resolved", utc(i.started), utc(r)),
                None => format!("since {} UTC", utc(i.started)),
            };
            let updates: Vec<_> = i
                .updates
                .iter()
                .map(|u| minijinja::context! { state => u.state.label(), at => utc(u.at), message => u.message })
                .collect();
            minijinja::context! { title => i.title, when => when, monitors => i.monitors.join(", "), updates => updates }
        })
        .collect();
    let maintenance: Vec<_> = view
        .maintenance
        .iter()
        .map(|m| {
            let running = m.start <= view.generated_at && view.generated_at < m.end;
            let when = format!(
                "{}{} – {} UTC",
                if running { "now, " } else { "" },
                utc(m.start),
                utc(m.end)
            );
            minijinja::context! { title => m.title, when => when, monitors => m.monitors.join(", ") }
        })
        .collect();
    // Only http(s), and in its parsed, percent-encoded form.
    let logo_url = view
        .logo_url
        .as_deref()
        .and_then(|u| url::Url::parse(u).ok())
        .filter(|u| matches!(u.scheme(), "http" | "https"))
        .map(String::from);
    let ctx = minijinja::context! {
        title => view.title,
        description => view.description,
        logo_url => logo_url,
        overall => overall,
        overall_text => overall_text,
        monitors => monitors,
        incidents => incidents,
        maintenance => maintenance,
        generated_at => format!("{} UTC", utc(view.generated_at)),
    };
    env()
        .get_template("status.html")
        .and_then(|t| t.render(ctx))
        .expect("the status page renders from its own view")
}

/// Escapes text for XML/SVG content and attributes.
fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// A flat SVG badge, `label | value`, coloured by the status (and the uptime, when given: the
/// value is then the percentage).
pub fn badge(label: &str, status: Status, uptime: Option<f64>) -> String {
    let label: String = label.chars().take(40).collect();
    let (value, color) = match (uptime, status) {
        (Some(u), _) => (
            percent(Some(u)),
            if u >= 0.999 {
                "#2da44e"
            } else if u >= 0.99 {
                "#d4a72c"
            } else {
                "#cf222e"
            },
        ),
        (None, Status::Up) => ("up".to_string(), "#2da44e"),
        (None, Status::Down) => ("down".to_string(), "#cf222e"),
        (None, Status::Pending) => ("pending".to_string(), "#8c959f"),
    };
    // Widths from a per-character estimate of 11px Verdana; exact metrics are not needed.
    let width = |s: &str| 10 + s.chars().count() as u32 * 7;
    let (lw, vw) = (width(&label), width(&value));
    let total = lw + vw;
    let (label, value) = (xml_escape(&label), xml_escape(&value));
    let mut svg = String::new();
    let _ = write!(
        svg,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{total}" height="20" role="img" aria-label="{label}: {value}"><title>{label}: {value}</title><rect width="{lw}" height="20" fill="#555"/><rect x="{lw}" width="{vw}" height="20" fill="{color}"/><g fill="#fff" font-family="Verdana,DejaVu Sans,sans-serif" font-size="11" text-anchor="middle"><text x="{lx}" y="14">{label}</text><text x="{vx}" y="14">{value}</text></g></svg>"##,
        lx = lw / 2,
        vx = lw + vw / 2,
    );
    svg
}

#[cfg(test)]
mod tests {
    use jiff::{SignedDuration, Zoned};

    use super::*;
    use crate::uptime::rollup::{Bucket, Resolution, SampleState, daily_bars};

    fn at(s: &str) -> Timestamp {
        s.parse::<Zoned>().unwrap().timestamp()
    }

    fn bars(now: Timestamp) -> Vec<DayBar> {
        let mut yesterday =
            Bucket::empty(Resolution::Day.bucket_start(now - SignedDuration::from_hours(24)));
        for _ in 0..99 {
            yesterday.add(SampleState::Up, None);
        }
        yesterday.add(SampleState::Down, None);
        let mut today = Bucket::empty(Resolution::Day.bucket_start(now));
        today.add(SampleState::Up, None);
        daily_bars(&[yesterday, today], now, 90)
    }

    fn view(name: &str) -> StatusPageView {
        let now = at("2025-06-30T12:00:00Z[UTC]");
        StatusPageView {
            title: "Acme status".into(),
            description: Some("Our services".into()),
            logo_url: Some("https://acme.example/logo.png".into()),
            generated_at: now,
            monitors: vec![
                MonitorView {
                    name: name.into(),
                    status: Status::Up,
                    in_maintenance: false,
                    figures: UptimeFigures {
                        h24: Some(1.0),
                        d7: Some(0.99987),
                        d30: Some(0.995),
                        d90: None,
                    },
                    bars: bars(now),
                },
                MonitorView {
                    name: "Database".into(),
                    status: Status::Down,
                    in_maintenance: false,
                    figures: UptimeFigures {
                        h24: Some(0.5),
                        d7: Some(0.9),
                        d30: Some(0.97),
                        d90: Some(0.99),
                    },
                    bars: bars(now),
                },
            ],
            incidents: vec![IncidentView {
                title: "Database unreachable".into(),
                started: at("2025-06-30T11:00:00Z[UTC]"),
                resolved: None,
                monitors: vec!["Database".into()],
                updates: vec![IncidentUpdate {
                    at: at("2025-06-30T11:20:00Z[UTC]"),
                    state: UpdateState::Identified,
                    message: "A full disk on the primary.".into(),
                }],
            }],
            maintenance: vec![MaintenanceView {
                title: "Kernel upgrade".into(),
                start: at("2025-07-01T02:00:00Z[UTC]"),
                end: at("2025-07-01T03:00:00Z[UTC]"),
                monitors: vec!["API".into()],
            }],
        }
    }

    #[test]
    fn the_page_shows_state_bars_figures_incidents_and_maintenance_without_scripts() {
        let html = render(&view("API"));
        assert!(html.starts_with("<!doctype html>"));
        assert!(html.contains("<title>Acme status</title>"));
        // minijinja escapes `/` too; the browser reads the entity back.
        assert!(
            html.contains(r#"<img src="https:&#x2f;&#x2f;acme.example&#x2f;logo.png" alt="">"#),
            "{html}"
        );
        assert!(html.contains(r#"<div class="banner partial_outage">Partial outage</div>"#));
        assert_eq!(
            html.matches(r#"<span class="bar "#).count(),
            180,
            "90 bars per monitor"
        );
        assert!(html.contains(r#"title="2025-06-29: 99.00% up, 1 failed checks""#));
        assert!(html.contains(r#"title="2025-06-30: 100.00% up""#));
        assert!(html.contains(r#"title="2025-04-02: no data""#));
        // Two decimals, never rounded up to a perfect score.
        assert!(html.contains("7 d <b>99.98%</b>"), "{html}");
        assert!(html.contains("90 d <b>–</b>"));
        assert!(html.contains(r#"<span class="state down">Down</span>"#));
        assert!(html.contains("Database unreachable"));
        assert!(html.contains("<b>Identified</b> <span class=\"muted\">2025-06-30 11:20</span> A full disk on the primary."));
        assert!(html.contains("Kernel upgrade"));
        assert!(html.contains("2025-07-01 02:00 – 2025-07-01 03:00 UTC"));
        assert!(!html.to_lowercase().contains("<script"), "no JavaScript");
    }

    #[test]
    fn hostile_strings_are_text_never_markup() {
        let evil = r#"<script>alert(1)</script>"><img src=x onerror=alert(2)>"#;
        let mut v = view(evil);
        v.title = format!("</title>{evil}");
        v.description = Some(evil.into());
        v.incidents[0].title = evil.into();
        v.incidents[0].monitors = vec![evil.into()];
        v.incidents[0].updates[0].message = evil.into();
        v.maintenance[0].title = evil.into();
        v.logo_url = Some(r#"https://acme.example/x.png" onerror="alert(3)"#.into());
        let html = render(&v);
        let lower = html.to_lowercase();
        assert!(!lower.contains("<script"), "{html}");
        assert!(!lower.contains("<img src=x"));
        assert!(!lower.contains("</title><"));
        assert!(!html.contains(r#"" onerror="alert(3)"#));
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;"),
            "{html}"
        );
        // Only the template's own tags: one <img> (the logo), one <title>.
        assert_eq!(lower.matches("<img").count(), 1);
        assert_eq!(lower.matches("<title>").count(), 1);

        // A logo that is not http(s) is dropped.
        v.logo_url = Some("javascript:alert(4)".into());
        let html = render(&v);
        assert!(!html.contains("javascript:"));
        assert_eq!(html.to_lowercase().matches("<img").count(), 0);
    }

    #[test]
    fn overall_banner() {
        let mut v = view("API");
        v.monitors[1].status = Status::Up;
        assert_eq!(v.overall(), Overall::Operational);
        v.monitors[1].in_maintenance = true;
        assert_eq!(v.overall(), Overall::Maintenance);
        v.monitors[0].status = Status::Down;
        v.monitors[1].in_maintenance = false;
        v.monitors[1].status = Status::Down;
        assert_eq!(v.overall(), Overall::MajorOutage);
        assert!(render(&v).contains("Major outage"));
        // Down but in maintenance is not an outage.
        v.monitors[0].in_maintenance = true;
        assert_eq!(v.overall(), Overall::PartialOutage);
    }

    #[test]
    fn badges_show_status_or_uptime_and_escape_the_label() {
        let svg = badge("api", Status::Up, None);
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(svg.contains(">up</text>") && svg.contains("#2da44e"));
        let svg = badge("api", Status::Down, Some(0.98765));
        assert!(svg.contains(">98.76%</text>") && svg.contains("#cf222e"));
        let svg = badge(r#"<a href="x">&'"#, Status::Up, Some(1.0));
        assert!(svg.contains("&lt;a href=&quot;x&quot;&gt;&amp;&#39;"));
        assert!(!svg.contains("<a "));
        assert_eq!(percent(Some(0.99999)), "99.99%");
        assert_eq!(percent(Some(1.0)), "100.00%");
    }

    #[test]
    fn the_view_is_its_json_form() {
        let v = view("API");
        let json = serde_json::to_value(&v).unwrap();
        assert_eq!(json["monitors"][0]["figures"]["d7"], 0.99987);
        assert_eq!(json["monitors"][0]["bars"].as_array().unwrap().len(), 90);
        let back: StatusPageView = serde_json::from_value(json).unwrap();
        assert_eq!(back, v);
    }
}
