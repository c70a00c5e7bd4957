//! Issues routes: list/search, detail, events, workflow (status, comments, assignment,
//! delete), project stats.

use axum::extract::{Path, Query, State};
use axum::http::Method;
use axum::routing::{delete, get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ListFilter, Sort, Status, StatusChange};
use crate::app::AppState;
use crate::http::auth::{Admin, Agent, Viewer};
use crate::http::error::{ApiError, ApiJson};
use crate::http::routes::{Access, Routes};
use crate::search::SearchQuery;

pub fn routes() -> Routes {
    Routes::new()
        .add(
            Method::GET,
            "/api/projects/{pid}/issues",
            Access::Viewer,
            "List and search a project's issues: ?query= (free text, is:, level:, release:, environment:, user:, assigned:, tag:value) &sort=last_seen|first_seen|events|users &limit= &cursor=",
            get(list),
        )
        .add(
            Method::GET,
            "/api/projects/{pid}/stats",
            Access::Viewer,
            "Project stats: events per hour (7 days) and per day (30 days), top issues by events and by users, totals",
            get(stats),
        )
        .add(
            Method::POST,
            "/api/issues/bulk",
            Access::Agent,
            "Change the status of several issues: {ids, status, mute_until_ms?, mute_for_events?}",
            post(bulk),
        )
        .add(
            Method::GET,
            "/api/issues/{id}",
            Access::Viewer,
            "Issue detail: counters, fingerprint, releases, environments, tag values, history, comments",
            get(detail),
        )
        .add(
            Method::DELETE,
            "/api/issues/{id}",
            Access::Admin,
            "Delete an issue and its events; ?discard=true also drops its future events",
            delete(remove),
        )
        .add(
            Method::GET,
            "/api/issues/{id}/events",
            Access::Viewer,
            "An issue's events, newest first: ?limit= &cursor=",
            get(events),
        )
        .add(
            Method::GET,
            "/api/issues/{id}/events/latest",
            Access::Viewer,
            "The issue's latest event with its full Sentry payload and neighbour ids",
            get(latest_event),
        )
        .add(
            Method::GET,
            "/api/issues/{id}/events/{event_id}",
            Access::Viewer,
            "One event with its full Sentry payload and the previous/next event ids",
            get(one_event),
        )
        .add(
            Method::POST,
            "/api/issues/{id}/status",
            Access::Agent,
            "Set status: {status: unresolved|resolved|resolved_next_release|muted, mute_until_ms?, mute_for_events?}",
            post(set_status),
        )
        .add(
            Method::POST,
            "/api/issues/{id}/comments",
            Access::Agent,
            "Comment on an issue: {text}",
            post(comment),
        )
        .add(
            Method::POST,
            "/api/issues/{id}/assign",
            Access::Agent,
            "Assign an issue: {user_id} or {user_id: null} to unassign",
            post(assign),
        )
        .add(
            Method::GET,
            "/api/projects/{pid}/grouping",
            Access::Viewer,
            "The project's grouping: version (and whether an upgrade is available), transition after an upgrade, its fingerprint and stack-trace rules and the built-in ones",
            get(super::grouping_settings::get_settings),
        )
        .add(
            Method::PUT,
            "/api/projects/{pid}/grouping",
            Access::Admin,
            "Save the project's rules (Sentry's syntax): {fingerprint_rules?, stacktrace_rules?}; a rule that does not parse is refused with its line",
            axum::routing::put(super::grouping_settings::put_settings),
        )
        .add(
            Method::POST,
            "/api/projects/{pid}/grouping/upgrade",
            Access::Admin,
            "Move the project to the latest grouping version; for 30 days events also match their issues by the previous version's hash",
            post(super::grouping_settings::upgrade),
        )
        .add(
            Method::GET,
            "/api/issues/{id}/feedback",
            Access::Viewer,
            "User feedback attached to this issue's events",
            get(issue_feedback),
        )
}

#[derive(Deserialize)]
struct ListQuery {
    #[serde(default)]
    query: String,
    #[serde(default)]
    sort: String,
    limit: Option<usize>,
    cursor: Option<String>,
}

async fn list(
    Viewer(user): Viewer,
    State(s): State<AppState>,
    Path(pid): Path<u64>,
    Query(q): Query<ListQuery>,
) -> Result<ApiJson<Value>, ApiError> {
    let sort = Sort::parse(&q.sort).ok_or_else(|| {
        ApiError::bad_request("sort must be last_seen, first_seen, events or users")
    })?;
    let limit = q.limit.unwrap_or(25).clamp(1, 100);
    let cursor = match q.cursor.as_deref() {
        None | Some("") => 0,
        Some(c) => c.parse().map_err(|_| {
            ApiError::bad_request("cursor must be a next_cursor from a previous page")
        })?,
    };
    let parsed = SearchQuery::parse(&q.query);
    let mut filter = ListFilter::default();
    for v in &parsed.is {
        let st: &[Status] = match v.as_str() {
            "unresolved" => &[Status::Unresolved, Status::Regressed],
            "resolved" => &[Status::Resolved, Status::ResolvedNextRelease],
            "muted" | "ignored" | "archived" => &[Status::Muted],
            "regressed" => &[Status::Regressed],
            other => {
                return Err(ApiError::bad_request(format!(
                    "is:{other} is not a status; use is:unresolved, is:resolved, is:muted or is:regressed"
                )));
            }
        };
        filter.statuses.extend_from_slice(st);
    }
    if let Some(a) = &parsed.assigned {
        filter.assigned = Some(match a.as_str() {
            "me" => Some(user.user_id),
            "none" | "nobody" => None,
            other => Some(
                other
                    .parse()
                    .map_err(|_| ApiError::bad_request("assigned: takes me, none or a user id"))?,
            ),
        });
    }
    if parsed.needs_index() {
        filter.ids = Some(s.search.matching_issues(pid, &parsed).await?);
    }
    let (issues, next) = s.issues.list(pid, filter, sort, limit, cursor).await?;
    // dash (issue 16): the assignee's name, for the list's avatar.
    let mut issues = serde_json::to_value(&issues).unwrap_or_default();
    if let Some(rows) = issues.as_array_mut()
        && rows.iter().any(|i| !i["assignee_id"].is_null())
    {
        let users = s.accounts.list_users().await?;
        for row in rows {
            let Some(id) = row["assignee_id"].as_u64() else {
                continue;
            };
            if let Some(u) = users.iter().find(|u| u.id == id) {
                row["assignee"] = json!({ "id": u.id, "name": u.name });
            }
        }
    }
    Ok(ApiJson(json!({ "issues": issues, "next_cursor": next })))
}

async fn stats(
    _: Viewer,
    State(s): State<AppState>,
    Path(pid): Path<u64>,
) -> Result<ApiJson<Value>, ApiError> {
    Ok(ApiJson(s.issues.stats(pid).await?))
}

async fn detail(
    _: Viewer,
    State(s): State<AppState>,
    Path(id): Path<u64>,
) -> Result<ApiJson<Value>, ApiError> {
    detail_with_names(&s, id).await
}

/// An issue's detail with `user_names`: the names of the people in its history, comments and
/// assignee, so the page says "assigned to Ana" to viewers too (names only, never emails).
async fn detail_with_names(s: &AppState, id: u64) -> Result<ApiJson<Value>, ApiError> {
    let mut issue = s.issues.detail(id).await?;
    let mut ids: Vec<u64> = vec![];
    ids.extend(issue["assignee_id"].as_u64());
    for h in issue["history"].as_array().into_iter().flatten() {
        ids.extend(h["user_id"].as_u64());
        if h["action"] == "assign" {
            for k in ["from", "to"] {
                ids.extend(h[k].as_str().and_then(|v| v.parse::<u64>().ok()));
            }
        }
    }
    for c in issue["comments"].as_array().into_iter().flatten() {
        ids.extend(c["user_id"].as_u64());
    }
    let users = s.accounts.list_users().await?;
    let names: serde_json::Map<String, Value> = users
        .iter()
        .filter(|u| ids.contains(&u.id))
        .map(|u| (u.id.to_string(), json!(u.name)))
        .collect();
    issue["user_names"] = Value::Object(names);
    Ok(ApiJson(json!({ "issue": issue })))
}

#[derive(Deserialize)]
struct Page {
    limit: Option<usize>,
    cursor: Option<String>,
}

async fn events(
    _: Viewer,
    State(s): State<AppState>,
    Path(id): Path<u64>,
    Query(p): Query<Page>,
) -> Result<ApiJson<Value>, ApiError> {
    let cursor = match p.cursor.as_deref() {
        None | Some("") => None,
        Some(c) => Some(c.parse().map_err(|_| {
            ApiError::bad_request("cursor must be a next_cursor from a previous page")
        })?),
    };
    let (events, next) = s
        .issues
        .events(id, cursor, p.limit.unwrap_or(50).clamp(1, 500))
        .await?;
    Ok(ApiJson(json!({ "events": events, "next_cursor": next })))
}

async fn latest_event(
    _: Viewer,
    State(s): State<AppState>,
    Path(id): Path<u64>,
) -> Result<ApiJson<Value>, ApiError> {
    with_grouping(&s, id, s.issues.event(id, None).await?).await
}

async fn one_event(
    _: Viewer,
    State(s): State<AppState>,
    Path((id, event_id)): Path<(u64, String)>,
) -> Result<ApiJson<Value>, ApiError> {
    with_grouping(&s, id, s.issues.event(id, Some(event_id)).await?).await
}

/// Adds the grouping explanation (`grouping`) to an event response.
async fn with_grouping(s: &AppState, id: u64, mut v: Value) -> Result<ApiJson<Value>, ApiError> {
    let issue = s.issues.issue(id).await?;
    let version = s
        .accounts
        .project(issue.project_id)
        .await
        .map_err(ApiError::internal)?
        .map(|p| p.grouping_version)
        .unwrap_or(issue.grouping_version);
    let explanation = s
        .issues
        .explain(issue.project_id, version, v["event"].clone(), issue.id)
        .await;
    v["grouping"] = explanation;
    Ok(ApiJson(v))
}

async fn set_status(
    Agent(user): Agent,
    State(s): State<AppState>,
    Path(id): Path<u64>,
    ApiJson(change): ApiJson<StatusChange>,
) -> Result<ApiJson<Value>, ApiError> {
    s.issues.set_status(vec![id], user.user_id, change).await?;
    detail_with_names(&s, id).await
}

#[derive(Deserialize)]
struct Bulk {
    ids: Vec<u64>,
    #[serde(flatten)]
    change: StatusChange,
}

async fn bulk(
    Agent(user): Agent,
    State(s): State<AppState>,
    ApiJson(b): ApiJson<Bulk>,
) -> Result<ApiJson<Value>, ApiError> {
    if b.ids.is_empty() || b.ids.len() > 1000 {
        return Err(ApiError::bad_request("ids needs 1 to 1000 issue ids"));
    }
    let changed = s.issues.set_status(b.ids, user.user_id, b.change).await?;
    Ok(ApiJson(json!({
        "updated": changed.iter().map(|i| i.id).collect::<Vec<_>>(),
    })))
}

#[derive(Deserialize)]
struct NewComment {
    text: String,
}

async fn comment(
    Agent(user): Agent,
    State(s): State<AppState>,
    Path(id): Path<u64>,
    ApiJson(c): ApiJson<NewComment>,
) -> Result<ApiJson<Value>, ApiError> {
    let c = s.issues.comment(id, user.user_id, c.text).await?;
    Ok(ApiJson(json!({ "comment": c })))
}

#[derive(Deserialize)]
struct AssignBody {
    user_id: Option<u64>,
}

async fn assign(
    Agent(user): Agent,
    State(s): State<AppState>,
    Path(id): Path<u64>,
    ApiJson(a): ApiJson<AssignBody>,
) -> Result<ApiJson<Value>, ApiError> {
    s.issues.assign(id, user.user_id, a.user_id).await?;
    detail_with_names(&s, id).await
}

#[derive(Deserialize)]
struct DeleteQuery {
    #[serde(default)]
    discard: bool,
}

async fn remove(
    Admin(user): Admin,
    State(s): State<AppState>,
    Path(id): Path<u64>,
    Query(q): Query<DeleteQuery>,
) -> Result<ApiJson<Value>, ApiError> {
    let removed = s.issues.delete(id, user.user_id, q.discard).await?;
    Ok(ApiJson(
        json!({ "deleted": id, "events_removed": removed, "discard": q.discard }),
    ))
}

async fn issue_feedback(
    _: Viewer,
    State(s): State<AppState>,
    Path(id): Path<u64>,
) -> Result<ApiJson<Value>, ApiError> {
    let issue = s.issues.issue(id).await?;
    let rows =
        s.db.read(move |txn| {
            let t = txn.open_table(crate::ingest::store::FEEDBACK)?;
            let mut out = Vec::new();
            let pid = issue.project_id;
            for row in t.range((pid, 0)..=(pid, u64::MAX))? {
                let (_, v) = row?;
                let f: crate::ingest::store::Feedback = crate::store::codec::decode(v.value())?;
                if f.issue_id == Some(id) {
                    out.push(f);
                }
            }
            Ok::<_, super::IssuesError>(out)
        })
        .await?;
    Ok(ApiJson(json!({ "feedback": rows })))
}
