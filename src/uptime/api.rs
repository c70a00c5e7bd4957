//! Uptime routes (JSON). Monitors are readable by viewers; creating, changing and testing them
//! needs Admin, because a monitor makes the server connect wherever it says, private addresses
//! included.
//!
//! | route | what |
//! |---|---|
//! | `GET/POST /api/monitors`, `GET/PUT/DELETE /api/monitors/{id}` | monitors |
//! | `POST /api/monitors/test` | run a check once, without saving, and show the verdict |
//! | `GET /api/monitors/{id}/results?limit=&before=` | raw results, newest first |
//! | `GET /api/monitors/{id}/summary` | uptime figures, daily bars, hourly response times, incidents |
//! | `POST /api/monitors/{id}/pause`, `/resume`, `/snooze` (`{"minutes": N}`) | pause and snooze |

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use jiff::{SignedDuration, Timestamp};
use serde::Deserialize;
use serde_json::{Value, json};

use super::checks::CheckSpec;
use super::conditions::{Condition, ConditionSpec};
use super::heartbeat::{CheckInStatus, HeartbeatPolicy, Input, PING_BODY_LIMIT, PingKind};
use super::maintenance::Window;
use super::service::{PauseAction, SignalError, UptimeError, test_now};
use super::store::{Invalid, Monitor, slugify};
use crate::app::AppState;
use crate::http::auth::{Admin, Viewer};
use crate::http::error::{ApiError, ApiJson, Code};
use crate::http::public::Token;
use crate::http::routes::{Access, Routes};

pub fn routes() -> Routes {
    super::pages::routes().merge(monitor_routes())
}

fn monitor_routes() -> Routes {
    Routes::new()
        .add(
            Method::GET,
            "/api/monitors",
            Access::Viewer,
            "List uptime monitors with their state",
            get(list),
        )
        .add(
            Method::POST,
            "/api/monitors",
            Access::Admin,
            "Create an uptime monitor (name, check {kind: http|tcp|tls|dns, ...}, interval, conditions)",
            post(create),
        )
        .add(
            Method::POST,
            "/api/monitors/test",
            Access::Admin,
            "Run a monitor's check once without saving it; answers the verdict per condition",
            post(test),
        )
        .add(
            Method::GET,
            "/api/monitors/{id}",
            Access::Viewer,
            "Get a monitor and its state",
            get(get_one),
        )
        .add(
            Method::PUT,
            "/api/monitors/{id}",
            Access::Admin,
            "Replace a monitor (its state and history are kept)",
            axum::routing::put(update),
        )
        .add(
            Method::DELETE,
            "/api/monitors/{id}",
            Access::Admin,
            "Delete a monitor with its history",
            axum::routing::delete(delete),
        )
        .add(
            Method::GET,
            "/api/monitors/{id}/results",
            Access::Viewer,
            "A monitor's raw check results, newest first (limit, before = ms)",
            get(results),
        )
        .add(
            Method::GET,
            "/api/monitors/{id}/summary",
            Access::Viewer,
            "Uptime for 24 h / 7 d / 30 d / 90 d, 90 daily bars, hourly response times, incidents",
            get(summary),
        )
        .add(
            Method::POST,
            "/api/monitors/{id}/pause",
            Access::Admin,
            "Pause a monitor: no checks, no notifications",
            post(pause),
        )
        .add(
            Method::POST,
            "/api/monitors/{id}/resume",
            Access::Admin,
            "Resume a paused monitor",
            post(resume),
        )
        .add(
            Method::GET,
            "/ping/{ping_id}",
            Access::Token,
            "Healthchecks-compatible ping: success (HEAD, GET or POST; ?rid= pairs a start with its finish)",
            get(ping).post(ping).layer(axum::extract::DefaultBodyLimit::max(PING_REQUEST_LIMIT)),
        )
        .add(
            Method::GET,
            "/ping/{ping_id}/{signal}",
            Access::Token,
            "Healthchecks-compatible ping: /start, /fail, /log or /<exit status 0-255>",
            get(ping_signal)
                .post(ping_signal)
                .layer(axum::extract::DefaultBodyLimit::max(PING_REQUEST_LIMIT)),
        )
        .add(
            Method::GET,
            "/api/push/{ping_id}",
            Access::Token,
            "Uptime Kuma-compatible push: ?status=up|down&msg=&ping=",
            get(push),
        )
        .add(
            Method::GET,
            "/api/{project_id}/cron/{monitor_slug}/{sentry_key}/",
            Access::DsnKey,
            "Sentry cron check-in over HTTP: ?status=in_progress|ok|error&check_in_id=&duration=",
            get(sentry_cron).post(sentry_cron),
        )
        .add(
            Method::POST,
            "/api/monitors/{id}/incidents/{start_ms}/updates",
            Access::Admin,
            "Add a human update to an incident: {\"state\": investigating|identified|monitoring|resolved, \"message\"}",
            post(incident_update),
        )
        .add(
            Method::POST,
            "/api/monitors/{id}/snooze",
            Access::Admin,
            "Hold a monitor's notifications for {\"minutes\": N} (0 ends a snooze)",
            post(snooze),
        )
}

impl IntoResponse for UptimeError {
    fn into_response(self) -> Response {
        match self {
            UptimeError::Invalid(i) => (
                StatusCode::BAD_REQUEST,
                Json(json!({"error": {
                    "code": i.code,
                    "message": i.message,
                    "field": i.field,
                    "position": i.position,
                }})),
            )
                .into_response(),
            UptimeError::NotFound => ApiError::not_found("monitor").into_response(),
            UptimeError::Conflict(m) | UptimeError::Limit(m) => {
                ApiError::new(Code::Conflict, m).into_response()
            }
            UptimeError::Store(e) => ApiError::internal(e).into_response(),
        }
    }
}

type UResult<T> = Result<T, UptimeError>;

/// A keyword check, turned into the condition `[BODY] == pat(*text*)` (or `!=`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeywordReq {
    text: String,
    #[serde(default = "yes")]
    present: bool,
    #[serde(default)]
    case_insensitive: bool,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MonitorReq {
    name: String,
    #[serde(default)]
    slug: Option<String>,
    #[serde(default)]
    check: Option<CheckSpec>,
    /// A heartbeat monitor: `{"schedule": {"kind": "interval", "value": "5m"}, "grace":
    /// "1m", "max_runtime": "1m"}` (or a `cron` / `oncalendar` schedule with `tz`).
    #[serde(default)]
    heartbeat: Option<HeartbeatPolicy>,
    /// `30s`, `5m`; 60 s when left out.
    #[serde(default)]
    interval: Option<String>,
    #[serde(default)]
    conditions: Vec<ConditionSpec>,
    #[serde(default)]
    keyword: Option<KeywordReq>,
    #[serde(default)]
    failure_threshold: Option<u32>,
    #[serde(default)]
    success_threshold: Option<u32>,
    #[serde(default)]
    reminder_every: Option<u32>,
    #[serde(default)]
    parent: Option<String>,
    #[serde(default)]
    maintenance: Vec<Window>,
    #[serde(default)]
    group: Option<String>,
}

impl MonitorReq {
    fn into_monitor(self, id: u64) -> Result<Monitor, Invalid> {
        let interval = match &self.interval {
            None => SignedDuration::from_secs(60),
            Some(text) => super::parse_duration(text).ok_or_else(|| {
                Invalid::field(
                    "interval",
                    format!("interval '{text}' is not a duration; write e.g. 30s, 5m or 1h"),
                )
            })?,
        };
        let mut conditions = self.conditions;
        if let Some(k) = self.keyword {
            if k.text.is_empty() {
                return Err(Invalid::field("keyword", "keyword.text must not be empty"));
            }
            let c = Condition::keyword(&k.text, k.present, k.case_insensitive)
                .map_err(|e| Invalid::field("keyword", format!("keyword.text: {}", e.message)))?;
            conditions.push(c.spec());
        }
        let defaults = match &self.heartbeat {
            Some(hb) => hb.thresholds,
            None => super::monitor::Policy::default(),
        };
        let mut heartbeat = self.heartbeat;
        if let Some(hb) = &mut heartbeat {
            hb.thresholds.failure_threshold =
                self.failure_threshold.unwrap_or(defaults.failure_threshold);
            hb.thresholds.success_threshold =
                self.success_threshold.unwrap_or(defaults.success_threshold);
            hb.thresholds.reminder_every = self.reminder_every;
        }
        Ok(Monitor {
            id,
            slug: self.slug.unwrap_or_else(|| slugify(&self.name)),
            name: self.name.trim().to_string(),
            check: self.check,
            heartbeat,
            ping_id: None,
            sentry: None,
            interval,
            conditions,
            failure_threshold: self.failure_threshold.unwrap_or(defaults.failure_threshold),
            success_threshold: self.success_threshold.unwrap_or(defaults.success_threshold),
            reminder_every: self.reminder_every,
            parent: self.parent,
            maintenance: self.maintenance,
            group: self.group,
            created_ms: 0,
            updated_ms: 0,
        })
    }
}

async fn list(_: Viewer, State(s): State<AppState>) -> UResult<ApiJson<Value>> {
    Ok(ApiJson(json!({ "monitors": s.uptime.list().await? })))
}

async fn create(
    _: Admin,
    State(s): State<AppState>,
    ApiJson(req): ApiJson<MonitorReq>,
) -> UResult<impl IntoResponse> {
    let m = req.into_monitor(0)?;
    let v = s.uptime.save(m).await?;
    Ok((StatusCode::CREATED, ApiJson(v)))
}

async fn get_one(
    _: Viewer,
    State(s): State<AppState>,
    Path(id): Path<u64>,
) -> UResult<impl IntoResponse> {
    Ok(ApiJson(s.uptime.get(id).await?))
}

async fn update(
    _: Admin,
    State(s): State<AppState>,
    Path(id): Path<u64>,
    ApiJson(req): ApiJson<MonitorReq>,
) -> UResult<impl IntoResponse> {
    if id == 0 {
        return Err(UptimeError::NotFound);
    }
    let m = req.into_monitor(id)?;
    Ok(ApiJson(s.uptime.save(m).await?))
}

async fn delete(_: Admin, State(s): State<AppState>, Path(id): Path<u64>) -> UResult<StatusCode> {
    s.uptime.delete(id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn test(
    _: Admin,
    State(s): State<AppState>,
    ApiJson(req): ApiJson<MonitorReq>,
) -> UResult<ApiJson<Value>> {
    let m = req.into_monitor(0)?;
    let c = m.compile()?;
    Ok(ApiJson(test_now(s.uptime.client(), &c).await))
}

#[derive(Deserialize)]
struct ResultsQuery {
    limit: Option<usize>,
    before: Option<i64>,
}

async fn results(
    _: Viewer,
    State(s): State<AppState>,
    Path(id): Path<u64>,
    Query(q): Query<ResultsQuery>,
) -> UResult<ApiJson<Value>> {
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let rows = s.uptime.results(id, q.before, limit).await?;
    let results: Vec<Value> = rows
        .into_iter()
        .map(|(at, r)| {
            json!({"at_ms": at, "beat": r.beat, "record": r.record, "response_ms": r.response_ms,
                   "status": r.status, "error": r.error})
        })
        .collect();
    Ok(ApiJson(json!({ "results": results })))
}

async fn summary(
    _: Viewer,
    State(s): State<AppState>,
    Path(id): Path<u64>,
) -> UResult<ApiJson<Value>> {
    Ok(ApiJson(s.uptime.summary(id).await?))
}

async fn pause(
    _: Admin,
    State(s): State<AppState>,
    Path(id): Path<u64>,
) -> UResult<impl IntoResponse> {
    Ok(ApiJson(s.uptime.set_paused(id, PauseAction::Pause).await?))
}

async fn resume(
    _: Admin,
    State(s): State<AppState>,
    Path(id): Path<u64>,
) -> UResult<impl IntoResponse> {
    Ok(ApiJson(s.uptime.set_paused(id, PauseAction::Resume).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SnoozeReq {
    minutes: u32,
}

/// Longest snooze: 30 days.
const MAX_SNOOZE_MINUTES: u32 = 30 * 24 * 60;

async fn snooze(
    _: Admin,
    State(s): State<AppState>,
    Path(id): Path<u64>,
    ApiJson(req): ApiJson<SnoozeReq>,
) -> UResult<impl IntoResponse> {
    if req.minutes > MAX_SNOOZE_MINUTES {
        return Err(Invalid::field(
            "minutes",
            format!("snooze for at most {MAX_SNOOZE_MINUTES} minutes (30 days)"),
        )
        .into());
    }
    let until = (req.minutes > 0)
        .then(|| Timestamp::now() + SignedDuration::from_mins(i64::from(req.minutes)));
    Ok(ApiJson(
        s.uptime.set_paused(id, PauseAction::Snooze(until)).await?,
    ))
}

/// A ping's request body is kept up to [`PING_BODY_LIMIT`]; larger requests are refused.
const PING_REQUEST_LIMIT: usize = 100 * 1024;

#[derive(Deserialize, Default)]
struct PingQuery {
    rid: Option<String>,
}

fn ping_response(r: Result<bool, SignalError>) -> Response {
    match r {
        Ok(true) => (StatusCode::OK, "OK").into_response(),
        // The same answer for every unknown id: nothing tells which ids exist.
        Ok(false) => (StatusCode::NOT_FOUND, "not found").into_response(),
        Err(SignalError::RateLimited) => (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", "60")],
            "rate limited",
        )
            .into_response(),
        Err(SignalError::Failed(e)) => e.into_response(),
    }
}

fn ping_body(body: &[u8]) -> Option<String> {
    if body.is_empty() {
        return None;
    }
    let mut end = body.len().min(PING_BODY_LIMIT);
    while end > 0 && end < body.len() && (body[end] & 0b1100_0000) == 0b1000_0000 {
        end -= 1;
    }
    Some(String::from_utf8_lossy(&body[..end]).into_owned())
}

async fn ping(
    State(s): State<AppState>,
    Token(ping_id): Token,
    Query(q): Query<PingQuery>,
    body: axum::body::Bytes,
) -> Response {
    ping_with(s, ping_id, PingKind::Success, q, body).await
}

async fn ping_signal(
    State(s): State<AppState>,
    Token(ping_id): Token,
    Path((_, signal)): Path<(String, String)>,
    Query(q): Query<PingQuery>,
    body: axum::body::Bytes,
) -> Response {
    match PingKind::from_suffix(&signal) {
        Some(kind) => ping_with(s, ping_id, kind, q, body).await,
        None => (StatusCode::NOT_FOUND, "not found").into_response(),
    }
}

async fn ping_with(
    s: AppState,
    ping_id: String,
    kind: PingKind,
    q: PingQuery,
    body: axum::body::Bytes,
) -> Response {
    if ping_id.len() > 64 {
        return (StatusCode::NOT_FOUND, "not found").into_response();
    }
    let input = Input::Ping {
        at: Timestamp::now(),
        kind,
        rid: q.rid.map(|r| r.chars().take(128).collect()),
        body: ping_body(&body),
    };
    ping_response(s.uptime.signal(&ping_id, input).await)
}

#[derive(Deserialize, Default)]
struct PushQuery {
    status: Option<String>,
    msg: Option<String>,
    ping: Option<String>,
}

async fn push(
    State(s): State<AppState>,
    Token(ping_id): Token,
    Query(q): Query<PushQuery>,
) -> Response {
    let not_found = || {
        (
            StatusCode::NOT_FOUND,
            Json(json!({"ok": false, "msg": "Monitor not found or not active."})),
        )
            .into_response()
    };
    if ping_id.len() > 64 {
        return not_found();
    }
    let input = Input::Push {
        at: Timestamp::now(),
        up: q.status.as_deref() != Some("down"),
        msg: q.msg.map(|m| m.chars().take(1000).collect()),
        ping_ms: q
            .ping
            .and_then(|p| p.parse::<f64>().ok())
            .filter(|p| p.is_finite() && *p >= 0.0),
    };
    match s.uptime.signal(&ping_id, input).await {
        Ok(true) => Json(json!({"ok": true})).into_response(),
        Ok(false) => not_found(),
        other => ping_response(other),
    }
}

#[derive(Deserialize, Default)]
struct CronQuery {
    status: Option<String>,
    check_in_id: Option<String>,
    duration: Option<f64>,
}

/// Sentry's HTTP check-in: `GET /api/<project>/cron/<monitor_slug>/<key>/?status=...`, the
/// same evaluation as an SDK's `check_in` envelope item (the monitor must exist: created from
/// an SDK check-in with `monitor_config`).
async fn sentry_cron(
    State(s): State<AppState>,
    Path((project_id, monitor_slug, key)): Path<(u64, String, String)>,
    Query(q): Query<CronQuery>,
) -> Response {
    if let Err(e) = s.ingest.authorize(&key, project_id).await {
        return ApiError::from(e).into_response();
    }
    let status = q.status.unwrap_or_else(|| "ok".into());
    let status = match status.as_str() {
        "in_progress" => CheckInStatus::InProgress,
        "ok" => CheckInStatus::Ok,
        "error" => CheckInStatus::Error,
        _ => {
            return ApiError::bad_request("status must be in_progress, ok or error")
                .into_response();
        }
    };
    let check_in_id = q
        .check_in_id
        .map(|c| c.chars().take(128).collect())
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    match s
        .uptime
        .sentry_http_check_in(project_id, monitor_slug, check_in_id.clone(), status, q.duration)
        .await
    {
        Ok(true) => (StatusCode::ACCEPTED, Json(json!({"id": check_in_id}))).into_response(),
        Ok(false) => ApiError::new(
            Code::NotFound,
            "no cron monitor with this slug in this project; send a check-in with monitor_config from the SDK first",
        )
        .into_response(),
        Err(e) => e.into_response(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateReq {
    state: super::status_page::UpdateState,
    message: String,
}

/// Longest incident update.
const MAX_UPDATE_MESSAGE: usize = 5000;

async fn incident_update(
    _: Admin,
    State(s): State<AppState>,
    Path((id, start_ms)): Path<(u64, i64)>,
    ApiJson(req): ApiJson<UpdateReq>,
) -> UResult<StatusCode> {
    let message = req.message.trim().to_string();
    if message.is_empty() || message.len() > MAX_UPDATE_MESSAGE {
        return Err(Invalid::field(
            "message",
            format!("message must be 1 to {MAX_UPDATE_MESSAGE} bytes"),
        )
        .into());
    }
    let update = super::status_page::IncidentUpdate {
        at: Timestamp::now(),
        state: req.state,
        message,
    };
    s.uptime.add_incident_update(id, start_ms, update).await?;
    Ok(StatusCode::CREATED)
}
