//! Tickets and the chat and ticket analytics.

use super::*;

pub(super) async fn list_tickets(
    State(s): State<AppState>,
    Agent(a): Agent,
    Query(q): Query<InboxParams>,
) -> ApiResult<ApiJson<Value>> {
    let (status, priority) = q.filters()?;
    let list = s
        .chat
        .inbox(
            a.user_id,
            InboxQuery {
                view: q.view.unwrap_or_else(|| "all".into()),
                status,
                priority,
                assignee: q.assignee,
                tickets_only: true,
                limit: q.limit.unwrap_or(100),
            },
        )
        .await?;
    Ok(ApiJson(
        json!({ "tickets": list.iter().map(conversation_view).collect::<Vec<_>>() }),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TicketBody {
    #[serde(default)]
    conversation_id: Option<u64>,
    #[serde(default)]
    site_id: Option<u64>,
    #[serde(default)]
    subject: String,
    #[serde(default)]
    customer_email: String,
    #[serde(default)]
    customer_name: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    priority: Option<String>,
}

pub(super) async fn create_ticket(
    State(s): State<AppState>,
    _: Agent,
    ApiJson(b): ApiJson<TicketBody>,
) -> ApiResult<ApiJson<Value>> {
    let priority = match b.priority.as_deref() {
        None | Some("") => None,
        Some(x) => Some(Priority::parse(x).ok_or_else(|| {
            ApiError::bad_request("priority must be urgent, high, normal or low")
        })?),
    };
    let conv = match b.conversation_id {
        Some(id) => s.chat.make_ticket(id, priority).await?,
        None => {
            let email = b.customer_email.trim().to_string();
            if !email.contains('@') || email.len() > 320 {
                return Err(ApiError::bad_request(
                    "give customer_email (replies go there), or conversation_id to make a chat a ticket",
                ));
            }
            s.chat
                .create_ticket(
                    b.site_id,
                    b.customer_name,
                    email,
                    b.subject,
                    b.message,
                    priority.unwrap_or(Priority::Normal),
                )
                .await?
        }
    };
    Ok(ApiJson(json!({ "ticket": conversation_view(&conv) })))
}

pub(super) async fn resolve_ticket(
    State(s): State<AppState>,
    Agent(a): Agent,
    Path(id): Path<u64>,
) -> ApiResult<ApiJson<Value>> {
    let name = match s.accounts.user(a.user_id).await {
        Ok(Some(u)) => crate::chat::display_name(&u.name, &u.email),
        _ => a.email.clone(),
    };
    let who = Who::Agent {
        user_id: a.user_id,
        name,
    };
    let conv = s.chat.set_status(&who, id, Status::Resolved).await?;
    Ok(ApiJson(json!({ "ticket": conversation_view(&conv) })))
}

#[derive(Deserialize)]
pub(super) struct StatsQuery {
    from: Option<i64>,
    to: Option<i64>,
}

pub(super) async fn stats_for(
    s: &AppState,
    tickets: bool,
    q: StatsQuery,
) -> ApiResult<ApiJson<Value>> {
    let to = q.to.unwrap_or_else(|| s.chat.now_ms() + 1);
    let from = q.from.unwrap_or(to - 30 * 86_400_000);
    if from >= to {
        return Err(ApiError::bad_request(
            "from must be before to (milliseconds since the epoch)",
        ));
    }
    Ok(ApiJson(s.chat.stats(tickets, from, to).await?))
}

pub(super) async fn stats_chats(
    State(s): State<AppState>,
    _: Agent,
    Query(q): Query<StatsQuery>,
) -> ApiResult<ApiJson<Value>> {
    stats_for(&s, false, q).await
}

pub(super) async fn stats_tickets(
    State(s): State<AppState>,
    _: Agent,
    Query(q): Query<StatsQuery>,
) -> ApiResult<ApiJson<Value>> {
    stats_for(&s, true, q).await
}
