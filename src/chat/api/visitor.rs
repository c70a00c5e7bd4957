//! Routes a widget visitor (their own conversations only) or an agent calls: start, history,
//! messages, close, seen, rating, the offline form and the WebSocket.

use super::*;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct StartBody {
    #[serde(default)]
    customer_name: Option<String>,
    #[serde(default)]
    customer_email: Option<String>,
    #[serde(default)]
    initial_message: Option<String>,
    /// Makes a retried start return the first conversation.
    #[serde(default)]
    client_id: Option<String>,
}

pub(super) async fn start(
    State(s): State<AppState>,
    Caller(mut who): Caller,
    ApiJson(b): ApiJson<StartBody>,
) -> ApiResult<ApiJson<Value>> {
    let Who::Visitor { site_id, visitor } = &who else {
        return Err(ApiError::bad_request(
            "a conversation is started by a widget visitor (X-Hearth-Site-Key and X-Hearth-Visitor-Token); agents reply to existing ones",
        ));
    };
    if b.customer_name.is_some() || b.customer_email.is_some() {
        update_visitor_contact(&s.chat, visitor.id, b.customer_name, b.customer_email).await?;
        if let Some(v) = s.chat.visitor(visitor.id).await? {
            who = Who::Visitor {
                site_id: *site_id,
                visitor: v,
            };
        }
    }
    let (conv, entry) = s
        .chat
        .start_conversation(
            &who,
            crate::chat::model::Channel::Chat,
            b.initial_message.filter(|m| !m.trim().is_empty()),
            b.client_id,
        )
        .await?;
    Ok(ApiJson(json!({
        "chat_id": conv.id,
        "websocket_url": format!("{}/api/chat/ws/{}", ws_base(&s.config.server.base_url()), conv.id),
        "conversation": conversation_view(&conv),
        "message": entry.as_ref().map(Entry::view),
    })))
}

pub(super) async fn update_visitor_contact(
    chat: &Chat,
    visitor_id: u64,
    name: Option<String>,
    email: Option<String>,
) -> ApiResult<()> {
    chat.update_visitor(visitor_id, name, email).await?;
    Ok(())
}

pub(super) async fn my_chats(
    State(s): State<AppState>,
    Caller(who): Caller,
) -> ApiResult<ApiJson<Value>> {
    let convs = match &who {
        Who::Visitor { visitor, .. } => s.chat.visitor_conversations(visitor.id).await?,
        Who::Agent { user_id, .. } => {
            s.chat
                .inbox(
                    *user_id,
                    InboxQuery {
                        view: "mine".into(),
                        ..Default::default()
                    },
                )
                .await?
        }
    };
    let unread = s
        .chat
        .unread(&who, convs.iter().map(|c| c.id).collect())
        .await?;
    let list: Vec<Value> = convs
        .iter()
        .map(|c| {
            let mut v = conversation_view(c);
            v["unread"] = json!(unread.get(&c.id).copied().unwrap_or(0));
            v
        })
        .collect();
    Ok(ApiJson(json!({ "conversations": list })))
}

pub(super) async fn session(
    State(s): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<u64>,
) -> ApiResult<ApiJson<Value>> {
    let (conv, entries) = s.chat.history(&who, id, None, None).await?;
    let unread = s.chat.unread(&who, vec![id]).await?;
    Ok(ApiJson(json!({
        "conversation": conversation_view(&conv),
        "messages": entries_view(&entries),
        "unread": unread.get(&id).copied().unwrap_or(0),
    })))
}

#[derive(Deserialize)]
pub(super) struct PageQuery {
    before: Option<u64>,
    after: Option<u64>,
}

pub(super) async fn messages(
    State(s): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<u64>,
    Query(q): Query<PageQuery>,
) -> ApiResult<ApiJson<Value>> {
    if q.before.is_some() && q.after.is_some() {
        return Err(ApiError::bad_request("give before or after, not both"));
    }
    let (conv, entries) = s.chat.history(&who, id, q.before, q.after).await?;
    Ok(ApiJson(json!({
        "conversation_id": id,
        "last_seq": conv.last_seq,
        "messages": entries_view(&entries),
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct MessageBody {
    #[serde(default)]
    client_msg_id: Option<String>,
    #[serde(default)]
    body: Option<String>,
    /// The original API's name for `body`.
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    private: bool,
}

pub(super) async fn send_message(
    State(s): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<u64>,
    ApiJson(b): ApiJson<MessageBody>,
) -> ApiResult<ApiJson<Value>> {
    let body = b.body.or(b.message).unwrap_or_default();
    let cid = b
        .client_msg_id
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    let (conv, e, created) = s.chat.post(&who, id, cid, body, b.private).await?;
    Ok(ApiJson(json!({
        "conversation_id": conv.id,
        "seq": e.seq,
        "duplicate": !created,
        "message": e.view(),
    })))
}

pub(super) async fn close(
    State(s): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<u64>,
) -> ApiResult<ApiJson<Value>> {
    let conv = s.chat.set_status(&who, id, Status::Resolved).await?;
    Ok(ApiJson(json!({ "conversation": conversation_view(&conv) })))
}

#[derive(Deserialize)]
pub(super) struct SeenBody {
    seq: u64,
}

pub(super) async fn seen(
    State(s): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<u64>,
    ApiJson(b): ApiJson<SeenBody>,
) -> ApiResult<ApiJson<Value>> {
    let seq = s.chat.mark_seen(&who, id, b.seq).await?;
    Ok(ApiJson(json!({ "conversation_id": id, "seen_seq": seq })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CsatBody {
    rating: u8,
    #[serde(default)]
    comment: String,
}

pub(super) async fn csat(
    State(s): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<u64>,
    ApiJson(b): ApiJson<CsatBody>,
) -> ApiResult<ApiJson<Value>> {
    let c = s.chat.submit_csat(&who, id, b.rating, b.comment).await?;
    Ok(ApiJson(json!({ "csat": c })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct OfflineBody {
    #[serde(default)]
    name: String,
    email: String,
    message: String,
}

pub(super) async fn offline(
    State(s): State<AppState>,
    Caller(who): Caller,
    ApiJson(b): ApiJson<OfflineBody>,
) -> ApiResult<ApiJson<Value>> {
    let Who::Visitor { site_id, visitor } = &who else {
        return Err(ApiError::bad_request(
            "the offline form is sent by a widget visitor",
        ));
    };
    let email = b.email.trim();
    if email.len() > 320 || !email.contains('@') || email.contains(char::is_whitespace) {
        return Err(ApiError::bad_request(
            "give an email address we can reply to",
        ));
    }
    let v = s
        .chat
        .update_visitor(visitor.id, Some(b.name), Some(email.to_string()))
        .await?;
    let who = Who::Visitor {
        site_id: *site_id,
        visitor: v,
    };
    let (conv, _) = s
        .chat
        .start_conversation(
            &who,
            crate::chat::model::Channel::Email,
            Some(b.message),
            None,
        )
        .await?;
    Ok(ApiJson(json!({ "conversation": conversation_view(&conv) })))
}

#[derive(Deserialize)]
pub(super) struct WsQuery {
    after_seq: Option<u64>,
}

pub(super) async fn ws_any(
    State(s): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    Caller(who): Caller,
    ws: WebSocketUpgrade,
) -> Response {
    upgrade(s, addr, who, None, ws)
}

pub(super) async fn ws_conv(
    State(s): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    Caller(who): Caller,
    Path(id): Path<u64>,
    Query(q): Query<WsQuery>,
    ws: WebSocketUpgrade,
) -> Response {
    upgrade(s, addr, who, Some((id, q.after_seq.unwrap_or(0))), ws)
}

pub(super) fn upgrade(
    s: AppState,
    addr: SocketAddr,
    who: Who,
    resume: Option<(u64, u64)>,
    ws: WebSocketUpgrade,
) -> Response {
    let slot = if who.is_agent() {
        None
    } else {
        if !s.chat.socket_opened(addr.ip()) {
            return ApiError::new(
                Code::RateLimited,
                "too many chat sockets from this address; close some tabs and try again",
            )
            .with_header("retry-after", "10")
            .into_response();
        }
        Some(crate::chat::ws::IpSlot {
            chat: s.chat.clone(),
            ip: addr.ip(),
        })
    };
    let chat = s.chat.clone();
    let shutdown = s.shutdown.clone();
    // Small buffers: tungstenite's defaults (128 KiB each) would cost gigabytes at 10,000
    // idle widget sockets.
    ws.read_buffer_size(1024)
        .write_buffer_size(0)
        .max_write_buffer_size(256 * 1024)
        .max_message_size(crate::chat::ws::MAX_CLIENT_FRAME)
        .max_frame_size(crate::chat::ws::MAX_CLIENT_FRAME)
        .on_upgrade(move |socket| crate::chat::ws::run(chat, socket, who, resume, slot, shutdown))
}
