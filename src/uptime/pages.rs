//! Public status pages, one per monitor group, opt-in: a page exists only once an admin
//! publishes it (`PUT /api/status-pages/{group}`). Served from rollups and status changes (no
//! scan of raw results), kept rendered for [`CACHE_FOR`] and sent with `Cache-Control`, so a
//! reverse proxy or CDN in front (a custom domain) can cache it too. Plain HTML and CSS, no
//! script; JSON for other tools and an SVG badge per monitor. Rate-limited per client address
//! (`[uptime] status_page_rate_limit`).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Path, State};
use axum::http::{Extensions, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use jiff::{SignedDuration, Timestamp};
use redb::{ReadTransaction, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::heartbeat::HeartbeatState;
use super::monitor::Status;
use super::rollup::{self, Change};
use super::service::{UptimeError, figures_buckets};
use super::status_page::{self, IncidentView, MaintenanceView, MonitorView, StatusPageView};
use super::store::{CHANGES, Invalid, MONITORS, Monitor, ROLLUPS, STATE, decode_json, valid_slug};
use crate::app::AppState;
use crate::http::auth::{Admin, Viewer};
use crate::http::error::{ApiError, ApiJson};
use crate::http::routes::{Access, Routes};
use crate::store::StoreError;

/// group → json(Page)
pub const PAGES: TableDefinition<&str, &[u8]> = TableDefinition::new("uptime_pages");

/// How long a rendered page is served before it is built again.
pub const CACHE_FOR: Duration = Duration::from_secs(30);
/// Resolved incidents are shown this long.
const RESOLVED_SHOWN: SignedDuration = SignedDuration::from_hours(7 * 24);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Page {
    #[serde(default)]
    pub group: String,
    pub title: String,
    #[serde(default)]
    pub description: Option<String>,
    /// An https (or http) image URL shown above the title.
    #[serde(default)]
    pub logo_url: Option<String>,
}

impl Page {
    fn validate(&self) -> Result<(), Invalid> {
        if !valid_slug(&self.group) {
            return Err(Invalid::field(
                "group",
                "group must be 1 to 64 lowercase letters, digits, '-' or '_'",
            ));
        }
        if self.title.trim().is_empty() || self.title.len() > 200 {
            return Err(Invalid::field("title", "title must be 1 to 200 bytes"));
        }
        if self.description.as_ref().is_some_and(|d| d.len() > 2000) {
            return Err(Invalid::field(
                "description",
                "description is at most 2000 bytes",
            ));
        }
        if let Some(u) = &self.logo_url {
            let ok = url::Url::parse(u)
                .map(|u| matches!(u.scheme(), "https" | "http"))
                .unwrap_or(false);
            if !ok || u.len() > 2000 {
                return Err(Invalid::field(
                    "logo_url",
                    "logo_url must be an http(s) URL",
                ));
            }
        }
        Ok(())
    }
}

#[derive(Default)]
pub struct PageCache {
    pages: Mutex<HashMap<String, (Instant, Arc<Rendered>)>>,
    /// One build at a time: readers arriving while a page is being built wait for it instead
    /// of building it again each (a burst on an expired page is one build, not hundreds).
    building: Arc<tokio::sync::Mutex<()>>,
    windows: Mutex<HashMap<IpAddr, (i64, u32)>>,
}

/// A page as served: the view (for JSON and badges) and its HTML.
pub struct Rendered {
    pub view: StatusPageView,
    pub html: String,
    /// slug → (name, status, 30-day uptime)
    pub badges: HashMap<String, (String, Status, Option<f64>)>,
    pub json: Value,
}

pub fn routes() -> Routes {
    Routes::new()
        .add(
            Method::GET,
            "/api/status-pages",
            Access::Viewer,
            "List published status pages",
            get(list),
        )
        .add(
            Method::PUT,
            "/api/status-pages/{group}",
            Access::Admin,
            "Publish (or change) the public status page of a monitor group: title, description, logo_url",
            axum::routing::put(put_page),
        )
        .add(
            Method::DELETE,
            "/api/status-pages/{group}",
            Access::Admin,
            "Unpublish a status page",
            axum::routing::delete(delete_page),
        )
        .add(
            Method::GET,
            "/status/{group}",
            Access::Public,
            "A published status page (HTML without script)",
            get(page_html),
        )
        .add(
            Method::GET,
            "/status/{group}/json",
            Access::Public,
            "A published status page as JSON",
            get(page_json),
        )
        .add(
            Method::GET,
            "/status/{group}/badge/{slug}",
            Access::Public,
            "An SVG badge with a monitor's status and 30-day uptime",
            get(page_badge),
        )
}

async fn list(_: Viewer, State(s): State<AppState>) -> Result<ApiJson<Value>, UptimeError> {
    let pages =
        s.db.read(|txn| {
            let t = txn.open_table(PAGES)?;
            let mut out: Vec<Page> = Vec::new();
            for e in t.iter()? {
                let (_, v) = e?;
                out.push(decode_json(v.value())?);
            }
            Ok::<_, UptimeError>(out)
        })
        .await?;
    Ok(ApiJson(json!({ "status_pages": pages })))
}

async fn put_page(
    _: Admin,
    State(s): State<AppState>,
    Path(group): Path<String>,
    ApiJson(mut page): ApiJson<Page>,
) -> Result<ApiJson<Page>, UptimeError> {
    page.group = group;
    page.validate()?;
    let p = page.clone();
    s.db.write(move |txn| {
        txn.open_table(PAGES)?
            .insert(p.group.as_str(), super::store::encode_json(&p).as_slice())?;
        Ok::<_, UptimeError>(())
    })
    .await?;
    s.uptime
        .pages()
        .pages
        .lock()
        .expect("pages")
        .remove(&page.group);
    Ok(ApiJson(page))
}

async fn delete_page(
    _: Admin,
    State(s): State<AppState>,
    Path(group): Path<String>,
) -> Result<StatusCode, UptimeError> {
    let g = group.clone();
    let existed =
        s.db.write(move |txn| {
            Ok::<_, UptimeError>(txn.open_table(PAGES)?.remove(g.as_str())?.is_some())
        })
        .await?;
    s.uptime.pages().pages.lock().expect("pages").remove(&group);
    if existed {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(UptimeError::NotFound)
    }
}

impl PageCache {
    /// Drops every rendered page (an incident update should show at once).
    pub fn invalidate(&self) {
        self.pages.lock().expect("pages").clear();
    }
}

fn client_ip(ext: &Extensions) -> Option<IpAddr> {
    ext.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip())
}

fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "no such status page").into_response()
}

/// The rendered page, from the cache or built now; `None` when the group has no page.
async fn rendered(s: &AppState, ext: &Extensions, group: &str) -> Result<Arc<Rendered>, Response> {
    let cache = s.uptime.pages();
    let limit = s.config.uptime.status_page_rate_limit;
    if let Some(ip) = client_ip(ext).filter(|_| limit > 0) {
        let now = crate::store::now_ms();
        let window = now - now.rem_euclid(60_000);
        let mut w = cache.windows.lock().expect("windows");
        if w.len() > 100_000 {
            w.retain(|_, (start, _)| *start == window);
        }
        let e = w.entry(ip).or_insert((window, 0));
        if e.0 != window {
            *e = (window, 0);
        }
        e.1 += 1;
        if e.1 > limit {
            return Err(ApiError::new(
                crate::http::error::Code::RateLimited,
                "too many requests; try again in a minute",
            )
            .with_header("retry-after", "60")
            .into_response());
        }
    }
    if group.len() > 64 {
        return Err(not_found());
    }
    let cached = || cache.pages.lock().expect("pages").get(group).cloned();
    match cached() {
        Some((at, r)) if at.elapsed() < CACHE_FOR => return Ok(r),
        // Stale: served as it is while one rebuild runs in the background, so no reader
        // waits for a build once the page has been built.
        Some((_, r)) => {
            if let Ok(guard) = cache.building.clone().try_lock_owned() {
                let (s, g) = (s.clone(), group.to_string());
                tokio::spawn(async move {
                    let _guard = guard;
                    if let Err(e) = rebuild(&s, &g).await {
                        tracing::warn!(group = %g, "rebuilding a status page: {e}");
                    }
                });
            }
            return Ok(r);
        }
        None => {}
    }
    let _building = cache.building.lock().await;
    if let Some((_, r)) = cached() {
        return Ok(r);
    }
    match rebuild(s, group).await {
        Ok(Some(r)) => Ok(r),
        Ok(None) => Err(not_found()),
        Err(e) => Err(ApiError::internal(e).into_response()),
    }
}

/// Builds a page and puts it in the cache (an unpublished page leaves it).
async fn rebuild(s: &AppState, group: &str) -> Result<Option<Arc<Rendered>>, StoreError> {
    let g = group.to_string();
    let built =
        s.db.read(move |txn| build(txn, &g, Timestamp::now()))
            .await?;
    let mut pages = s.uptime.pages().pages.lock().expect("pages");
    match built {
        Some(r) => {
            let r = Arc::new(r);
            pages.insert(group.to_string(), (Instant::now(), r.clone()));
            Ok(Some(r))
        }
        None => {
            pages.remove(group);
            Ok(None)
        }
    }
}

fn cacheable(mut resp: Response, content_type: &'static str) -> Response {
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=30"),
    );
    resp
}

async fn page_html(
    State(s): State<AppState>,
    ext: Extensions,
    Path(group): Path<String>,
) -> Response {
    match rendered(&s, &ext, &group).await {
        Ok(r) => {
            let mut resp = cacheable(r.html.clone().into_response(), "text/html; charset=utf-8");
            // No script at all; the page's own inline CSS; the logo from wherever it is.
            resp.headers_mut().insert(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(
                    "default-src 'none'; style-src 'unsafe-inline'; img-src https: http: data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
                ),
            );
            resp
        }
        Err(resp) => resp,
    }
}

async fn page_json(
    State(s): State<AppState>,
    ext: Extensions,
    Path(group): Path<String>,
) -> Response {
    match rendered(&s, &ext, &group).await {
        Ok(r) => cacheable(
            axum::Json(r.json.clone()).into_response(),
            "application/json",
        ),
        Err(resp) => resp,
    }
}

async fn page_badge(
    State(s): State<AppState>,
    ext: Extensions,
    Path((group, slug)): Path<(String, String)>,
) -> Response {
    match rendered(&s, &ext, &group).await {
        Ok(r) => match r.badges.get(slug.trim_end_matches(".svg")) {
            Some((name, status, uptime)) => cacheable(
                status_page::badge(name, *status, *uptime).into_response(),
                "image/svg+xml",
            ),
            None => not_found(),
        },
        Err(resp) => resp,
    }
}

/// Builds a group's page from monitors, states, rollups and status changes.
pub fn build(
    txn: &ReadTransaction,
    group: &str,
    now: Timestamp,
) -> Result<Option<Rendered>, StoreError> {
    let page: Page = match txn.open_table(PAGES)?.get(group)? {
        Some(v) => decode_json(v.value())?,
        None => return Ok(None),
    };
    let monitors_t = txn.open_table(MONITORS)?;
    let states = txn.open_table(STATE)?;
    let rollups = txn.open_table(ROLLUPS)?;
    let changes_t = txn.open_table(CHANGES)?;
    let updates_t = txn.open_table(super::store::INCIDENT_UPDATES)?;
    let mut monitors = Vec::new();
    let mut incidents = Vec::new();
    let mut maintenance = Vec::new();
    let mut badges = HashMap::new();
    for e in monitors_t.iter()? {
        let (k, v) = e?;
        let m: Monitor = decode_json(v.value())?;
        if m.group.as_deref() != Some(group) {
            continue;
        }
        let id = k.value();
        let state: HeartbeatState = match states.get(id)? {
            Some(v) => decode_json(v.value())?,
            None => HeartbeatState::default(),
        };
        let (minutes, hours, days) = figures_buckets(&rollups, id, now)?;
        let figures = rollup::figures(&minutes, &hours, &days, now);
        let in_maintenance = super::maintenance::active(&m.maintenance, now);
        badges.insert(
            m.slug.clone(),
            (m.name.clone(), state.monitor.status, figures.d30),
        );
        monitors.push(MonitorView {
            name: m.name.clone(),
            status: state.monitor.status,
            in_maintenance,
            figures,
            bars: rollup::daily_bars(&days, now, 90),
        });
        let mut changes = Vec::new();
        for e in changes_t.range((id, i64::MIN)..=(id, i64::MAX))? {
            let (_, v) = e?;
            let c: Change = decode_json(v.value())?;
            changes.push(c);
        }
        for i in rollup::incidents(&changes, now) {
            if i.end.is_none_or(|end| end >= now - RESOLVED_SHOWN) {
                incidents.push(IncidentView {
                    title: format!("{} is down", m.name),
                    started: i.start,
                    resolved: i.end,
                    monitors: vec![m.name.clone()],
                    updates: super::service::incident_updates(
                        &updates_t,
                        id,
                        i.start.as_millisecond(),
                    )?,
                });
            }
        }
        for o in
            super::maintenance::upcoming(&m.maintenance, now, SignedDuration::from_hours(7 * 24), 5)
        {
            maintenance.push(MaintenanceView {
                title: format!("Maintenance: {}", m.name),
                start: o.start,
                end: o.end,
                monitors: vec![m.name.clone()],
            });
        }
    }
    incidents.sort_by_key(|i| std::cmp::Reverse(i.started));
    maintenance.sort_by_key(|m| m.start);
    let view = StatusPageView {
        title: page.title.clone(),
        description: page.description.clone(),
        logo_url: page.logo_url.clone(),
        generated_at: now,
        monitors,
        incidents,
        maintenance,
    };
    let html = status_page::render(&view);
    let json = json!({
        "title": view.title,
        "description": view.description,
        "overall": view.overall(),
        "generated_at": view.generated_at,
        "monitors": view.monitors,
        "incidents": view.incidents,
        "maintenance": view.maintenance,
    });
    Ok(Some(Rendered {
        view,
        html,
        badges,
        json,
    }))
}
