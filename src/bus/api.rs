//! Admin routes for the bus: stats, dead-letter queue, replay.

use axum::extract::{Path, Query, State};
use axum::http::Method;
use axum::routing::{delete, get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use super::BusError;
use crate::accounts::model::Role;
use crate::app::AppState;
use crate::http::auth::{Admin, Viewer};
use crate::http::error::{ApiError, ApiJson, ApiResult, Code};
use crate::http::routes::{Access, Routes};

pub fn routes() -> Routes {
    Routes::new()
        .add(
            Method::GET,
            "/api/bus",
            Access::Viewer,
            "Bus consumers with lag, pending and dead letters",
            get(stats),
        )
        .add(
            Method::GET,
            "/api/bus/dlq",
            Access::Viewer,
            "List dead letters (?consumer=&limit=)",
            get(dlq_list),
        )
        .add(
            Method::DELETE,
            "/api/bus/dlq",
            Access::Admin,
            "Purge dead letters (?consumer=&seq=)",
            delete(dlq_purge),
        )
        .add(
            Method::GET,
            "/api/bus/dlq/{consumer}/{seq}",
            Access::Viewer,
            "One dead letter with its attempts",
            get(dlq_get),
        )
        .add(
            Method::POST,
            "/api/bus/dlq/{consumer}/{seq}/replay",
            Access::Admin,
            "Send one dead letter back to its consumer",
            post(dlq_replay_one),
        )
        .add(
            Method::POST,
            "/api/bus/dlq/{consumer}/replay",
            Access::Admin,
            "Send all of a consumer's dead letters back",
            post(dlq_replay_all),
        )
        .add(
            Method::POST,
            "/api/bus/consumers/{consumer}/replay",
            Access::Admin,
            "Re-deliver from a sequence number or a time",
            post(replay),
        )
}

impl From<BusError> for ApiError {
    fn from(e: BusError) -> Self {
        match e {
            BusError::UnknownConsumer(c) => ApiError::new(
                Code::NotFound,
                format!("no bus consumer named {c:?}; GET /api/bus lists them"),
            ),
            BusError::UnknownDeadLetter(c, s) => ApiError::new(
                Code::NotFound,
                format!("no dead letter {s} for consumer {c:?}"),
            ),
            BusError::BadSubject(s) => ApiError::bad_request(format!("invalid subject {s:?}")),
            other => ApiError::internal(other),
        }
    }
}

async fn stats(_: Viewer, State(s): State<AppState>) -> ApiResult<ApiJson<Value>> {
    Ok(ApiJson(
        serde_json::to_value(s.bus.stats().await?).map_err(ApiError::internal)?,
    ))
}

#[derive(Deserialize)]
struct DlqQuery {
    consumer: Option<String>,
    seq: Option<u64>,
    limit: Option<usize>,
}

/// A dead letter as JSON. Below admin, any URL in its errors is reduced to scheme and host: a
/// delivery error names its target, and a Slack or webhook URL is a credential.
fn letter_view(d: super::DeadLetter, role: Role) -> Value {
    let shown = |e: String| {
        if role >= Role::Admin {
            e
        } else {
            crate::net::redact_urls_in(&e)
        }
    };
    let attempts: Vec<super::Attempt> = d
        .attempts
        .into_iter()
        .map(|a| super::Attempt {
            at_ms: a.at_ms,
            error: shown(a.error),
        })
        .collect();
    json!({
        "consumer": d.consumer,
        "seq": d.event.seq,
        "event": d.event.to_view(),
        "error": shown(d.error),
        "attempts": attempts,
        "dead_ms": d.dead_ms,
    })
}

async fn dlq_list(
    Viewer(who): Viewer,
    State(s): State<AppState>,
    Query(q): Query<DlqQuery>,
) -> ApiResult<ApiJson<Value>> {
    let letters = s
        .bus
        .dlq_list(q.consumer, q.limit.unwrap_or(100).min(1000))
        .await?;
    let items: Vec<Value> = letters
        .into_iter()
        .map(|d| letter_view(d, who.role))
        .collect();
    Ok(ApiJson(json!({ "dead_letters": items })))
}

async fn dlq_get(
    Viewer(who): Viewer,
    State(s): State<AppState>,
    Path((consumer, seq)): Path<(String, u64)>,
) -> ApiResult<ApiJson<Value>> {
    let d = s.bus.dlq_get(&consumer, seq).await?;
    Ok(ApiJson(letter_view(d, who.role)))
}

async fn dlq_replay_one(
    _: Admin,
    State(s): State<AppState>,
    Path((consumer, seq)): Path<(String, u64)>,
) -> ApiResult<ApiJson<Value>> {
    let n = s.bus.dlq_replay(&consumer, Some(seq)).await?;
    Ok(ApiJson(json!({ "replayed": n })))
}

async fn dlq_replay_all(
    _: Admin,
    State(s): State<AppState>,
    Path(consumer): Path<String>,
) -> ApiResult<ApiJson<Value>> {
    let n = s.bus.dlq_replay(&consumer, None).await?;
    Ok(ApiJson(json!({ "replayed": n })))
}

async fn dlq_purge(
    _: Admin,
    State(s): State<AppState>,
    Query(q): Query<DlqQuery>,
) -> ApiResult<ApiJson<Value>> {
    if q.seq.is_some() && q.consumer.is_none() {
        return Err(ApiError::bad_request(
            "purging one dead letter needs ?consumer= as well as ?seq=",
        ));
    }
    let n = s.bus.dlq_purge(q.consumer, q.seq).await?;
    Ok(ApiJson(json!({ "purged": n })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplayBody {
    from_seq: Option<u64>,
    /// Milliseconds since the epoch.
    from_time_ms: Option<i64>,
}

async fn replay(
    _: Admin,
    State(s): State<AppState>,
    Path(consumer): Path<String>,
    ApiJson(body): ApiJson<ReplayBody>,
) -> ApiResult<ApiJson<Value>> {
    if !s.bus.consumer_names().contains(&consumer) {
        return Err(BusError::UnknownConsumer(consumer).into());
    }
    let from = match (body.from_seq, body.from_time_ms) {
        (Some(seq), None) => {
            s.bus.replay_from_seq(&consumer, seq).await?;
            seq
        }
        (None, Some(t)) => s.bus.replay_from_time(&consumer, t).await?,
        _ => {
            return Err(ApiError::bad_request(
                "give exactly one of from_seq or from_time_ms",
            ));
        }
    };
    Ok(ApiJson(json!({ "consumer": consumer, "from_seq": from })))
}
