//! Alerts routes (JSON). Rules and history are readable by viewers; channels hold secrets
//! (webhook signing secrets, Slack URLs), so reading them needs Admin like every write. The
//! history a viewer reads has no receiver replies and no URL beyond scheme and host.
//!
//! | route | what |
//! |---|---|
//! | `GET/POST /api/alerts/rules`, `GET/PUT/DELETE /api/alerts/rules/{id}` | rules |
//! | `GET/POST /api/alerts/channels`, `GET/PUT/DELETE /api/alerts/channels/{id}` | channels |
//! | `POST /api/alerts/channels/{id}/test` | deliver a sample alert now |
//! | `GET /api/alerts/history?rule_id=&limit=` | fired alerts and their deliveries |
//! | `POST /api/alerts/daily-report` | queue the daily report now (`to`, `date`) |

use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use super::model::{Channel, ChannelKind, Filters, Rule, Trigger};
use crate::accounts::model::Role;
use crate::app::AppState;
use crate::http::auth::{Admin, Viewer};
use crate::http::error::{ApiError, ApiJson, ApiResult, Code};
use crate::http::routes::{Access, Routes};

pub fn routes() -> Routes {
    Routes::new()
        .add(
            Method::GET,
            "/api/alerts/rules",
            Access::Viewer,
            "List alert rules",
            get(list_rules),
        )
        .add(
            Method::POST,
            "/api/alerts/rules",
            Access::Admin,
            "Create an alert rule (when, filters, channels, throttle_minutes)",
            post(create_rule),
        )
        .add(
            Method::GET,
            "/api/alerts/rules/{id}",
            Access::Viewer,
            "Get an alert rule",
            get(get_rule),
        )
        .add(
            Method::PUT,
            "/api/alerts/rules/{id}",
            Access::Admin,
            "Replace an alert rule",
            axum::routing::put(update_rule),
        )
        .add(
            Method::DELETE,
            "/api/alerts/rules/{id}",
            Access::Admin,
            "Delete an alert rule",
            axum::routing::delete(delete_rule),
        )
        .add(
            Method::GET,
            "/api/alerts/channels",
            Access::Admin,
            "List alert channels (with webhook secrets)",
            get(list_channels),
        )
        .add(
            Method::POST,
            "/api/alerts/channels",
            Access::Admin,
            "Create an alert channel (email, slack, webhook)",
            post(create_channel),
        )
        .add(
            Method::GET,
            "/api/alerts/channels/{id}",
            Access::Admin,
            "Get an alert channel (with its webhook secret)",
            get(get_channel),
        )
        .add(
            Method::PUT,
            "/api/alerts/channels/{id}",
            Access::Admin,
            "Replace an alert channel (rotate_secret: true for a new webhook secret)",
            axum::routing::put(update_channel),
        )
        .add(
            Method::DELETE,
            "/api/alerts/channels/{id}",
            Access::Admin,
            "Delete an alert channel no rule uses",
            axum::routing::delete(delete_channel),
        )
        .add(
            Method::POST,
            "/api/alerts/channels/{id}/test",
            Access::Admin,
            "Send a test alert to a channel now",
            post(test_channel),
        )
        .add(
            Method::GET,
            "/api/alerts/history",
            Access::Viewer,
            "Fired alerts, newest first (rule_id, limit)",
            get(history),
        )
        .add(
            Method::POST,
            "/api/alerts/daily-report",
            Access::Admin,
            "Queue the daily report now (to, date YYYY-MM-DD)",
            post(daily_report),
        )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleReq {
    name: String,
    #[serde(default = "yes")]
    enabled: bool,
    when: Trigger,
    #[serde(default)]
    filters: Filters,
    channels: Vec<u64>,
    throttle_minutes: Option<u64>,
}

fn yes() -> bool {
    true
}

impl RuleReq {
    fn into_rule(self, id: u64) -> Rule {
        Rule {
            id,
            name: self.name,
            enabled: self.enabled,
            when: self.when,
            filters: self.filters,
            channels: self.channels,
            throttle_minutes: self.throttle_minutes,
            created_ms: 0,
            updated_ms: 0,
        }
    }
}

async fn list_rules(_: Viewer, State(s): State<AppState>) -> ApiResult<ApiJson<Value>> {
    Ok(ApiJson(json!({ "rules": s.alerts.list_rules().await? })))
}

async fn create_rule(
    _: Admin,
    State(s): State<AppState>,
    ApiJson(req): ApiJson<RuleReq>,
) -> ApiResult<impl IntoResponse> {
    let r = s.alerts.save_rule(req.into_rule(0)).await?;
    Ok((StatusCode::CREATED, ApiJson(r)))
}

async fn get_rule(
    _: Viewer,
    State(s): State<AppState>,
    Path(id): Path<u64>,
) -> ApiResult<ApiJson<Rule>> {
    Ok(ApiJson(s.alerts.get_rule(id).await?))
}

async fn update_rule(
    _: Admin,
    State(s): State<AppState>,
    Path(id): Path<u64>,
    ApiJson(req): ApiJson<RuleReq>,
) -> ApiResult<ApiJson<Rule>> {
    if id == 0 {
        return Err(ApiError::not_found("rule"));
    }
    Ok(ApiJson(s.alerts.save_rule(req.into_rule(id)).await?))
}

async fn delete_rule(
    _: Admin,
    State(s): State<AppState>,
    Path(id): Path<u64>,
) -> ApiResult<StatusCode> {
    s.alerts.delete_rule(id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
struct ChannelReq {
    name: String,
    #[serde(flatten)]
    kind: ChannelKind,
    #[serde(default)]
    rotate_secret: bool,
}

async fn list_channels(_: Admin, State(s): State<AppState>) -> ApiResult<ApiJson<Value>> {
    Ok(ApiJson(
        json!({ "channels": s.alerts.list_channels().await? }),
    ))
}

async fn create_channel(
    _: Admin,
    State(s): State<AppState>,
    ApiJson(req): ApiJson<ChannelReq>,
) -> ApiResult<impl IntoResponse> {
    let c = Channel {
        id: 0,
        name: req.name,
        kind: req.kind,
        created_ms: 0,
        updated_ms: 0,
    };
    let c = s.alerts.save_channel(c, false).await?;
    Ok((StatusCode::CREATED, ApiJson(c)))
}

async fn get_channel(
    _: Admin,
    State(s): State<AppState>,
    Path(id): Path<u64>,
) -> ApiResult<ApiJson<Channel>> {
    Ok(ApiJson(s.alerts.get_channel(id).await?))
}

async fn update_channel(
    _: Admin,
    State(s): State<AppState>,
    Path(id): Path<u64>,
    ApiJson(req): ApiJson<ChannelReq>,
) -> ApiResult<ApiJson<Channel>> {
    if id == 0 {
        return Err(ApiError::not_found("channel"));
    }
    let c = Channel {
        id,
        name: req.name,
        kind: req.kind,
        created_ms: 0,
        updated_ms: 0,
    };
    Ok(ApiJson(s.alerts.save_channel(c, req.rotate_secret).await?))
}

async fn delete_channel(
    _: Admin,
    State(s): State<AppState>,
    Path(id): Path<u64>,
) -> ApiResult<StatusCode> {
    s.alerts.delete_channel(id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn test_channel(
    _: Admin,
    State(s): State<AppState>,
    Path(id): Path<u64>,
) -> ApiResult<ApiJson<Value>> {
    let c = s.alerts.get_channel(id).await?;
    match super::deliver::test_channel(&s, &c).await {
        Ok(answer) => Ok(ApiJson(json!({ "ok": true, "answer": answer }))),
        Err(e) => {
            let reply = e
                .reply
                .map(|r| format!("; the receiver said: {r}"))
                .unwrap_or_default();
            Err(ApiError::new(
                Code::Unavailable,
                format!("the test alert was not delivered: {}{reply}", e.error),
            ))
        }
    }
}

#[derive(Deserialize)]
struct HistoryQuery {
    rule_id: Option<u64>,
    limit: Option<usize>,
}

async fn history(
    Viewer(who): Viewer,
    State(s): State<AppState>,
    Query(q): Query<HistoryQuery>,
) -> ApiResult<ApiJson<Value>> {
    let mut fired = s.alerts.history(q.rule_id, q.limit.unwrap_or(50)).await?;
    if who.role < Role::Admin {
        fired = fired.into_iter().map(|f| f.redacted()).collect();
    }
    Ok(ApiJson(json!({ "alerts": fired })))
}

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct ReportReq {
    /// Recipients; default `[alerts] daily_report_to`.
    to: Vec<String>,
    /// UTC day, YYYY-MM-DD; default today.
    date: Option<String>,
}

async fn daily_report(
    _: Admin,
    State(s): State<AppState>,
    ApiJson(req): ApiJson<ReportReq>,
) -> ApiResult<impl IntoResponse> {
    let to = if req.to.is_empty() {
        s.config.alerts.daily_report_to.clone()
    } else {
        req.to
    };
    if to.is_empty() {
        return Err(ApiError::bad_request(
            "give \"to\" addresses or set [alerts] daily_report_to",
        ));
    }
    let day = match req.date {
        Some(d) => {
            let date: jiff::civil::Date = d
                .parse()
                .map_err(|_| ApiError::bad_request("date must be YYYY-MM-DD"))?;
            let ts = date
                .to_zoned(jiff::tz::TimeZone::UTC)
                .map_err(|_| ApiError::bad_request("date out of range"))?
                .timestamp();
            ts.as_millisecond().div_euclid(86_400_000)
        }
        None => crate::store::now_ms().div_euclid(86_400_000),
    };
    let id = super::report::send_daily_report(&s, day, &to).await?;
    Ok((StatusCode::ACCEPTED, ApiJson(json!({ "id": id }))))
}
