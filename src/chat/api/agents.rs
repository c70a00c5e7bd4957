//! Agents' routes: the inbox, a conversation, status, assignment, priority, canned responses,
//! presence and search.

use super::*;

#[derive(Deserialize)]
pub(super) struct InboxParams {
    pub(super) view: Option<String>,
    status: Option<String>,
    priority: Option<String>,
    pub(super) assignee: Option<u64>,
    pub(super) limit: Option<usize>,
}

impl InboxParams {
    /// The `status` and `priority` filters (empty means any).
    pub(super) fn filters(&self) -> ApiResult<(Option<Status>, Option<Priority>)> {
        let status = match self.status.as_deref() {
            None | Some("") => None,
            Some(x) => Some(Status::parse(x).ok_or_else(|| {
                ApiError::bad_request("status must be open, in_progress, resolved or closed")
            })?),
        };
        let priority = match self.priority.as_deref() {
            None | Some("") => None,
            Some(x) => Some(Priority::parse(x).ok_or_else(|| {
                ApiError::bad_request("priority must be urgent, high, normal or low")
            })?),
        };
        Ok((status, priority))
    }
}

pub(super) async fn inbox(
    State(s): State<AppState>,
    Agent(a): Agent,
    Query(q): Query<InboxParams>,
) -> ApiResult<ApiJson<Value>> {
    let (status, priority) = q.filters()?;
    let view = q.view.unwrap_or_else(|| "all".into());
    if !["mine", "unassigned", "all"].contains(&view.as_str()) {
        return Err(ApiError::bad_request(
            "view must be mine, unassigned or all",
        ));
    }
    let convs = s
        .chat
        .inbox(
            a.user_id,
            InboxQuery {
                view,
                status,
                priority,
                assignee: q.assignee,
                tickets_only: false,
                limit: q.limit.unwrap_or(100),
            },
        )
        .await?;
    let who = Who::Agent {
        user_id: a.user_id,
        name: String::new(),
    };
    let unread = s
        .chat
        .unread(&who, convs.iter().map(|c| c.id).collect())
        .await?;
    let mut visitors = std::collections::HashMap::new();
    for c in &convs {
        if let std::collections::hash_map::Entry::Vacant(e) = visitors.entry(c.visitor_id)
            && let Some(v) = s.chat.visitor(c.visitor_id).await?
        {
            e.insert(v);
        }
    }
    let list: Vec<Value> = convs
        .iter()
        .map(|c| {
            let mut v = conversation_view(c);
            v["unread"] = json!(unread.get(&c.id).copied().unwrap_or(0));
            v["visitor"] = visitors
                .get(&c.visitor_id)
                .map(visitor_view)
                .unwrap_or(Value::Null);
            v
        })
        .collect();
    Ok(ApiJson(json!({ "conversations": list })))
}

pub(super) async fn conversation(
    State(s): State<AppState>,
    Agent(a): Agent,
    Path(id): Path<u64>,
) -> ApiResult<ApiJson<Value>> {
    let who = Who::Agent {
        user_id: a.user_id,
        name: String::new(),
    };
    let (conv, entries) = s.chat.history(&who, id, None, None).await?;
    let visitor = s.chat.visitor(conv.visitor_id).await?;
    let previous: Vec<Value> = s
        .chat
        .visitor_conversations(conv.visitor_id)
        .await?
        .iter()
        .filter(|c| c.id != id)
        .map(conversation_view)
        .collect();
    let linked_issue = s.chat.issue_link(id).await?;
    let user_issues = match &visitor {
        Some(v) => issues_of_user(&s, v).await,
        None => Vec::new(),
    };
    Ok(ApiJson(json!({
        "conversation": conversation_view(&conv),
        "messages": entries_view(&entries),
        "visitor": visitor.as_ref().map(visitor_view),
        "previous_conversations": previous,
        "linked_issue": linked_issue,
        "user_issues": user_issues,
    })))
}

/// Most Sentry issues listed for one visitor.
pub(super) const MAX_USER_ISSUES: usize = 20;

/// Sentry issues whose events name the visitor's verified user id or email (`user:` in the
/// issue search), in every project, most recently seen first. Best effort: with search off
/// (or failing) the list is empty rather than the conversation failing.
pub(super) async fn issues_of_user(s: &AppState, v: &Visitor) -> Vec<Value> {
    let mut users: Vec<String> = v.user_id.iter().cloned().collect();
    if !v.email.is_empty() {
        users.push(v.email.clone());
    }
    if users.is_empty() {
        return Vec::new();
    }
    let Ok(projects) = s.accounts.list_projects().await else {
        return Vec::new();
    };
    let q = crate::search::SearchQuery {
        user: users,
        ..Default::default()
    };
    let mut found = Vec::new();
    for p in projects {
        if let Ok(ids) = s.search.matching_issues(p.id, &q).await {
            for id in ids {
                if let Ok(i) = s.issues.issue(id).await {
                    found.push(i);
                }
            }
        }
    }
    found.sort_by_key(|i| std::cmp::Reverse(i.last_seen_ms));
    found
        .iter()
        .take(MAX_USER_ISSUES)
        .map(|i| {
            json!({"id": i.id, "project_id": i.project_id, "title": i.title, "level": i.level,
                   "status": i.status, "count": i.count, "last_seen_ms": i.last_seen_ms})
        })
        .collect()
}

#[derive(Deserialize)]
pub(super) struct StatusBody {
    status: String,
}

pub(super) async fn set_status(
    State(s): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<u64>,
    ApiJson(b): ApiJson<StatusBody>,
) -> ApiResult<ApiJson<Value>> {
    let status = Status::parse(&b.status).ok_or_else(|| {
        ApiError::bad_request("status must be open, in_progress, resolved or closed")
    })?;
    if !who.is_agent() {
        return Err(ApiError::forbidden("agent"));
    }
    let conv = s.chat.set_status(&who, id, status).await?;
    Ok(ApiJson(json!({ "conversation": conversation_view(&conv) })))
}

#[derive(Deserialize)]
pub(super) struct AssignBody {
    user_id: Option<u64>,
}

pub(super) async fn assign(
    State(s): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<u64>,
    ApiJson(b): ApiJson<AssignBody>,
) -> ApiResult<ApiJson<Value>> {
    if !who.is_agent() {
        return Err(ApiError::forbidden("agent"));
    }
    let conv = s.chat.assign(&who, id, b.user_id).await?;
    Ok(ApiJson(json!({ "conversation": conversation_view(&conv) })))
}

#[derive(Deserialize)]
pub(super) struct PriorityBody {
    priority: String,
}

pub(super) async fn set_priority(
    State(s): State<AppState>,
    _: Agent,
    Path(id): Path<u64>,
    ApiJson(b): ApiJson<PriorityBody>,
) -> ApiResult<ApiJson<Value>> {
    let p = Priority::parse(&b.priority)
        .ok_or_else(|| ApiError::bad_request("priority must be urgent, high, normal or low"))?;
    let conv = s.chat.set_priority(id, p).await?;
    Ok(ApiJson(json!({ "conversation": conversation_view(&conv) })))
}

pub(super) async fn list_canned(State(s): State<AppState>, _: Agent) -> ApiResult<ApiJson<Value>> {
    let list = s.chat.canned().await?;
    Ok(ApiJson(json!({ "canned_responses": list })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CannedBody {
    shortcut: String,
    #[serde(default)]
    title: String,
    body: String,
}

pub(super) async fn save_canned(
    State(s): State<AppState>,
    _: Agent,
    ApiJson(b): ApiJson<CannedBody>,
) -> ApiResult<ApiJson<Value>> {
    let c = s.chat.save_canned(b.shortcut, b.title, b.body).await?;
    Ok(ApiJson(json!({ "canned_response": c })))
}

#[derive(Deserialize, Default)]
pub(super) struct OnlineBody {
    #[serde(default)]
    status: Option<String>,
}

pub(super) async fn agent_online(
    State(s): State<AppState>,
    Agent(a): Agent,
    body: axum::body::Bytes,
) -> ApiResult<ApiJson<Value>> {
    let parsed: OnlineBody = if body.iter().all(u8::is_ascii_whitespace) {
        OnlineBody::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::new(Code::InvalidJson, format!("invalid JSON body: {e}")))?
    };
    let status = parsed.status.unwrap_or_else(|| "online".into());
    if status != "online" && status != "away" {
        return Err(ApiError::bad_request("status must be online or away"));
    }
    let p = s.chat.heartbeat(a.user_id, &status).await?;
    Ok(ApiJson(json!({
        "presence": p,
        "timeout_ms": s.chat.config().presence_timeout.get().as_millis() as u64,
    })))
}

pub(super) async fn agent_offline(State(s): State<AppState>, Agent(a): Agent) -> ApiJson<Value> {
    s.chat.go_offline(a.user_id);
    ApiJson(json!({ "status": "offline" }))
}

pub(super) async fn agents_online(State(s): State<AppState>, _: Agent) -> ApiJson<Value> {
    ApiJson(json!({ "agents": s.chat.online_agents() }))
}

#[derive(Deserialize)]
pub(super) struct SearchParamsQ {
    q: Option<String>,
    status: Option<String>,
    priority: Option<String>,
    assignee: Option<u64>,
    tickets: Option<bool>,
    limit: Option<usize>,
}

pub(super) async fn search(
    State(s): State<AppState>,
    _: Agent,
    Query(q): Query<SearchParamsQ>,
) -> ApiResult<ApiJson<Value>> {
    let (status, priority) = InboxParams {
        view: None,
        status: q.status,
        priority: q.priority,
        assignee: None,
        limit: None,
    }
    .filters()?;
    let results = s
        .chat
        .search(crate::chat::search::SearchParams {
            text: q.q.unwrap_or_default(),
            status,
            priority,
            assignee: q.assignee,
            tickets: q.tickets,
            limit: q.limit.unwrap_or(50),
        })
        .await?;
    Ok(ApiJson(json!({ "results": results })))
}
