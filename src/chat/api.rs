//! Chat routes.
//!
//! | route | who |
//! |---|---|
//! | `POST /api/chat/widget/session`, `GET /api/chat/widget/config`, `/widget.js`, `/widget/{file}` | the widget (site key) |
//! | `POST /api/chat/start`, `/api/chat/session/{id}[/messages|/message|/close|/seen]`, `GET /api/chat/my-chats`, `WS /api/chat/ws[/{id}]` | a widget visitor (site key + visitor token, their own conversations only) or an agent |
//! | `/api/chat/conversations…`, `/api/chat/canned-responses`, `/api/chat/agent/*`, `/api/chat/agents/online` | agent or higher |
//! | `/api/chat/sites…` | admin or higher |
//!
//! Widget calls send `X-Hearth-Site-Key` and `X-Hearth-Visitor-Token` (a WebSocket, which
//! cannot set headers in a browser, passes `site_key` and `visitor_token` in the query).
//! Routes the widget calls answer CORS requests from any origin, without credentials.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts, Path, Query, State, WebSocketUpgrade};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use serde::Deserialize;
use serde_json::{Value, json};
use tower_http::cors::{Any, CorsLayer};

use super::model::{Conversation, Entry, Priority, Site, Status, Visitor};
use super::{Chat, ChatError, InboxQuery, NewSite, VisitorHello, Who, hours};
use crate::app::AppState;
use crate::http::auth::{Admin, Agent};
use crate::http::error::{ApiError, ApiJson, ApiResult, Code};
use crate::http::routes::{Access, Routes};

const SITE_KEY_HEADER: &str = "x-hearth-site-key";
const VISITOR_TOKEN_HEADER: &str = "x-hearth-visitor-token";

fn cors() -> CorsLayer {
    CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([
            header::CONTENT_TYPE,
            HeaderName::from_static(SITE_KEY_HEADER),
            HeaderName::from_static(VISITOR_TOKEN_HEADER),
        ])
        .max_age(std::time::Duration::from_secs(3600))
}

/// A route the widget calls from other origins.
fn widget(m: MethodRouter<AppState>) -> MethodRouter<AppState> {
    m.layer(cors())
}

/// A widget script: cross-origin and compressed.
fn widget_script(m: MethodRouter<AppState>) -> MethodRouter<AppState> {
    m.layer::<_, std::convert::Infallible>(tower_http::compression::CompressionLayer::new())
        .layer(cors())
}

pub fn routes() -> Routes {
    Routes::new()
        // ---- the widget ----
        .add(Method::GET, "/widget.js", Access::Public, "The chat widget loader (embed with the site's snippet)", widget_script(get(widget_js)))
        .add(Method::GET, "/widget/{file}", Access::Public, "Chat widget modules, loaded by /widget.js", widget_script(get(widget_file)))
        .add(Method::POST, "/api/chat/widget/session", Access::Public, "Start or resume a widget visitor session (site key; user_id + user_hash for verified users)", widget(post(widget_session)))
        .add(Method::GET, "/api/chat/widget/config", Access::Public, "The widget's state for a site key: online, away or closed, and when the team is back", widget(get(widget_config)))
        // ---- visitor (own conversations) or agent ----
        .add(Method::POST, "/api/chat/start", Access::Agent, "Start a conversation (widget visitor): {customer_name, customer_email, initial_message} → {chat_id, websocket_url}", widget(post(start)))
        .add(Method::GET, "/api/chat/my-chats", Access::Agent, "A visitor's conversations, or an agent's assigned ones", widget(get(my_chats)))
        .add(Method::GET, "/api/chat/session/{id}", Access::Agent, "A conversation with its latest 20 entries and the unread count", widget(get(session)))
        .add(Method::GET, "/api/chat/session/{id}/messages", Access::Agent, "History: ?before=SEQ → 20 older; ?after=SEQ → up to 100 newer", widget(get(messages)))
        .add(Method::POST, "/api/chat/session/{id}/message", Access::Agent, "Send a message {client_msg_id, body[, private]}; idempotent by client_msg_id", widget(post(send_message)))
        .add(Method::POST, "/api/chat/session/{id}/close", Access::Agent, "Resolve a conversation", widget(post(close)))
        .add(Method::POST, "/api/chat/session/{id}/seen", Access::Agent, "Mark a conversation seen up to {seq}", widget(post(seen)))
        .add(Method::POST, "/api/chat/session/{id}/upload", Access::Agent, "Upload a file into a conversation (raw body, ?name=FILE; [chat] upload_max_size)", widget(post(super::upload::upload).layer(axum::extract::DefaultBodyLimit::disable())))
        .add(Method::GET, "/api/chat/session/{id}/files/{file}", Access::Agent, "Download a conversation's file (as an attachment, nosniff)", widget(get(super::upload::download)))
        .add(Method::POST, "/api/chat/session/{id}/csat", Access::Agent, "The visitor rates a resolved conversation {rating: 1-5, comment}", widget(post(csat)))
        .add(Method::POST, "/api/chat/widget/offline", Access::Agent, "The widget's offline form (visitor): {name, email, message} → a conversation answered by email", widget(post(offline)))
        .add(Method::GET, "/api/chat/ws", Access::Agent, "The chat WebSocket (visitor: site_key + visitor_token in the query; agent: session or token)", get(ws_any))
        .add(Method::GET, "/api/chat/ws/{chat_id}", Access::Agent, "The chat WebSocket, resuming one conversation (?after_seq=N)", get(ws_conv))
        // ---- agents ----
        .add(Method::GET, "/api/chat/conversations", Access::Agent, "The inbox: ?view=mine|unassigned|all&status=&priority=&assignee=", get(inbox))
        .add(Method::GET, "/api/chat/conversations/{id}", Access::Agent, "A conversation with the visitor's details and previous conversations", get(conversation))
        .add(Method::POST, "/api/chat/conversations/{id}/status", Access::Agent, "Set the status {status: open|in_progress|resolved|closed}", post(set_status))
        .add(Method::POST, "/api/chat/conversations/{id}/assign", Access::Agent, "Assign {user_id} (null unassigns)", post(assign))
        .add(Method::POST, "/api/chat/conversations/{id}/priority", Access::Agent, "Set the priority {priority: urgent|high|normal|low}", post(set_priority))
        .add(Method::GET, "/api/chat/canned-responses", Access::Agent, "Canned responses (/shortcut, body with {{variables | \"fallbacks\"}})", get(list_canned))
        .add(Method::POST, "/api/chat/canned-responses", Access::Agent, "Create or replace a canned response {shortcut, title, body}", post(save_canned))
        .add(Method::POST, "/api/chat/agent/online", Access::Agent, "Heartbeat: the calling agent is online (or {status: away}) for [chat] presence_timeout", post(agent_online))
        .add(Method::POST, "/api/chat/agent/offline", Access::Agent, "The calling agent goes offline", post(agent_offline))
        .add(Method::GET, "/api/chat/agents/online", Access::Agent, "Agents online now", get(agents_online))
        .add(Method::GET, "/api/chat/tickets", Access::Agent, "Tickets: ?status=&priority=&assignee=", get(list_tickets))
        .add(Method::POST, "/api/chat/tickets", Access::Agent, "Open a ticket {subject, customer_email, customer_name, message, priority, site_id}, or make a chat one {conversation_id, priority}", post(create_ticket))
        .add(Method::GET, "/api/chat/tickets/{id}", Access::Agent, "A ticket with its timeline and the customer's details", get(conversation))
        .add(Method::POST, "/api/chat/tickets/{id}/assign", Access::Agent, "Assign a ticket {user_id} (null unassigns)", post(assign))
        .add(Method::POST, "/api/chat/tickets/{id}/resolve", Access::Agent, "Resolve a ticket", post(resolve_ticket))
        .add(Method::GET, "/api/chat/search", Access::Agent, "Search conversations, messages and tickets: ?q=TEXT&status=&priority=&assignee=&tickets=true|false&limit=", get(search))
        .add(Method::GET, "/api/chat/stats/chats", Access::Agent, "Chat analytics ?from=MS&to=MS (definitions in the README)", get(stats_chats))
        .add(Method::GET, "/api/chat/stats/tickets", Access::Agent, "Ticket analytics ?from=MS&to=MS (definitions in the README)", get(stats_tickets))
        // ---- admin ----
        .add(Method::GET, "/api/chat/sites", Access::Admin, "Chat sites with their keys, identity secrets and snippets", get(list_sites))
        .add(Method::POST, "/api/chat/sites", Access::Admin, "Create a chat site {name, require_identity, hours, time_zone}", post(create_site))
        .add(Method::POST, "/api/chat/sites/{id}", Access::Admin, "Update a site {name, require_identity, hours, time_zone}", post(update_site))
        .add(Method::POST, "/api/chat/sites/{id}/rotate-secret", Access::Admin, "Replace a site's identity secret", post(rotate_secret))
}

// ---- the caller --------------------------------------------------------------------------

/// A widget visitor (site key + visitor token) or a signed-in agent.
pub struct Caller(pub Who);

fn query_param(parts: &Parts, name: &str) -> Option<String> {
    url::form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

fn header_str(h: &HeaderMap, name: &str) -> Option<String> {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, s: &AppState) -> Result<Self, ApiError> {
        let key =
            header_str(&parts.headers, SITE_KEY_HEADER).or_else(|| query_param(parts, "site_key"));
        let token = header_str(&parts.headers, VISITOR_TOKEN_HEADER)
            .or_else(|| query_param(parts, "visitor_token"));
        let has_user = parts.headers.contains_key(header::AUTHORIZATION)
            || crate::accounts::session_cookie(&parts.headers).is_some();
        if let (Some(key), Some(token), false) = (&key, &token, has_user) {
            let (site, visitor) = s.chat.authenticate_visitor(key, token).await?;
            return Ok(Caller(Who::Visitor {
                site_id: site.id,
                visitor,
            }));
        }
        if !has_user {
            return Err(ApiError::new(
                Code::MissingAuth,
                "a widget sends X-Hearth-Site-Key and X-Hearth-Visitor-Token (from POST /api/chat/widget/session); an agent signs in or sends `Authorization: Bearer <api token>`",
            ));
        }
        let Agent(a) = Agent::from_request_parts(parts, s).await?;
        let name = match s.accounts.user(a.user_id).await {
            Ok(Some(u)) => super::display_name(&u.name, &u.email),
            _ => super::display_name("", &a.email),
        };
        Ok(Caller(Who::Agent {
            user_id: a.user_id,
            name,
        }))
    }
}

// ---- views -------------------------------------------------------------------------------

pub fn conversation_view(c: &Conversation) -> Value {
    json!({
        "id": c.id,
        "site_id": c.site_id,
        "visitor_id": c.visitor_id,
        "channel": c.channel,
        "status": c.status,
        "priority": c.priority,
        "assignee": c.assignee,
        "subject": c.subject,
        "preview": c.preview,
        "created_ms": c.created_ms,
        "updated_ms": c.updated_ms,
        "last_seq": c.last_seq,
        "first_reply_ms": c.first_reply_ms,
        "resolved_ms": c.resolved_ms,
        "reopened": c.reopened,
        "ticket": c.ticket,
    })
}

fn visitor_view(v: &Visitor) -> Value {
    json!({
        "id": v.id,
        "name": v.name,
        "email": v.email,
        "user_id": v.user_id,
        "verified": v.user_id.is_some(),
        "page_url": v.page_url,
        "user_agent": v.user_agent,
        "created_ms": v.created_ms,
        "last_seen_ms": v.last_seen_ms,
    })
}

fn entries_view(entries: &[Entry]) -> Vec<Value> {
    entries.iter().map(Entry::view).collect()
}

fn site_view(s: &Site, base: &str) -> Value {
    const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
    let mut hours = serde_json::Map::new();
    for span in &s.hours {
        let day = DAYS[span.day as usize % 7];
        let text = format!(
            "{:02}:{:02}-{:02}:{:02}",
            span.open_min / 60,
            span.open_min % 60,
            span.close_min / 60,
            span.close_min % 60
        );
        let e = hours
            .entry(day)
            .or_insert_with(|| Value::String(String::new()));
        let joined = match e.as_str() {
            Some("") | None => text,
            Some(prev) => format!("{prev},{text}"),
        };
        *e = Value::String(joined);
    }
    json!({
        "id": s.id,
        "name": s.name,
        "site_key": s.site_key,
        "identity_secret": s.identity_secret,
        "require_identity": s.require_identity,
        "hours": hours,
        "time_zone": s.time_zone,
        "created_ms": s.created_ms,
        "snippet": snippet(base, &s.site_key),
    })
}

/// What a site owner pastes: one external script tag (no inline code, so it runs under
/// the host page's CSP once Hearth's origin is allowed).
pub fn snippet(base: &str, site_key: &str) -> String {
    format!("<script async src=\"{base}/widget.js\" data-hearth-site=\"{site_key}\"></script>")
}

fn ws_base(base: &str) -> String {
    if let Some(rest) = base.strip_prefix("https://") {
        format!("wss://{rest}")
    } else if let Some(rest) = base.strip_prefix("http://") {
        format!("ws://{rest}")
    } else {
        base.to_string()
    }
}

// ---- widget ------------------------------------------------------------------------------

async fn widget_js(headers: HeaderMap) -> Response {
    widget_asset("widget.js", &headers)
}

async fn widget_file(Path(file): Path<String>, headers: HeaderMap) -> Response {
    if file == "widget.js" || file.contains('/') || file.contains("..") {
        return ApiError::not_found("widget file").into_response();
    }
    widget_asset(&file, &headers)
}

fn widget_asset(file: &str, headers: &HeaderMap) -> Response {
    let mut resp = crate::http::assets::serve(&format!("widget/{file}"), headers);
    // Loaded as a cross-origin script (and module) by other sites' pages.
    resp.headers_mut().insert(
        HeaderName::from_static("cross-origin-resource-policy"),
        HeaderValue::from_static("cross-origin"),
    );
    resp
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SessionBody {
    site_key: String,
    #[serde(default)]
    visitor_token: Option<String>,
    #[serde(default)]
    user_id: Option<String>,
    #[serde(default)]
    user_hash: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    page_url: Option<String>,
}

async fn widget_session(
    State(s): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    ApiJson(b): ApiJson<SessionBody>,
) -> ApiResult<ApiJson<Value>> {
    let hello = VisitorHello {
        site_key: b.site_key,
        visitor_token: b.visitor_token,
        user_id: b.user_id,
        user_hash: b.user_hash,
        name: b.name,
        email: b.email,
        page_url: b.page_url,
        user_agent: header_str(&headers, "user-agent"),
    };
    let (site, visitor, token) = s.chat.visitor_session(hello, Some(addr.ip())).await?;
    let (state, next_open) = s.chat.widget_state(&site);
    let agents: Vec<Value> = s
        .chat
        .online_agents()
        .iter()
        .map(|a| json!({"id": a.user_id, "name": a.name}))
        .collect();
    Ok(ApiJson(json!({
        "visitor_token": token,
        "visitor": visitor_view(&visitor),
        "site": {"name": site.name, "time_zone": site.time_zone},
        "state": state,
        "next_open_ms": next_open,
        "agents": agents,
        "websocket_url": format!("{}/api/chat/ws", ws_base(&s.config.server.base_url())),
        "ping_ms": s.chat.config().ping_interval.get().as_millis() as u64,
    })))
}

#[derive(Deserialize)]
struct ConfigQuery {
    site_key: String,
}

async fn widget_config(
    State(s): State<AppState>,
    Query(q): Query<ConfigQuery>,
) -> ApiResult<ApiJson<Value>> {
    let site = s
        .chat
        .site_by_key(&q.site_key)
        .await?
        .ok_or_else(|| ApiError::from(ChatError::Auth(super::unknown_site_key())))?;
    let (state, next_open) = s.chat.widget_state(&site);
    Ok(ApiJson(json!({
        "site": {"name": site.name, "time_zone": site.time_zone},
        "state": state,
        "next_open_ms": next_open,
        "require_identity": site.require_identity,
    })))
}

// ---- visitor or agent --------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StartBody {
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

async fn start(
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
            super::model::Channel::Chat,
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

async fn update_visitor_contact(
    chat: &Chat,
    visitor_id: u64,
    name: Option<String>,
    email: Option<String>,
) -> ApiResult<()> {
    chat.update_visitor(visitor_id, name, email).await?;
    Ok(())
}

async fn my_chats(State(s): State<AppState>, Caller(who): Caller) -> ApiResult<ApiJson<Value>> {
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

async fn session(
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
struct PageQuery {
    before: Option<u64>,
    after: Option<u64>,
}

async fn messages(
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
struct MessageBody {
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

async fn send_message(
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

async fn close(
    State(s): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<u64>,
) -> ApiResult<ApiJson<Value>> {
    let conv = s.chat.set_status(&who, id, Status::Resolved).await?;
    Ok(ApiJson(json!({ "conversation": conversation_view(&conv) })))
}

#[derive(Deserialize)]
struct SeenBody {
    seq: u64,
}

async fn seen(
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
struct CsatBody {
    rating: u8,
    #[serde(default)]
    comment: String,
}

async fn csat(
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
struct OfflineBody {
    #[serde(default)]
    name: String,
    email: String,
    message: String,
}

async fn offline(
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
        .start_conversation(&who, super::model::Channel::Email, Some(b.message), None)
        .await?;
    Ok(ApiJson(json!({ "conversation": conversation_view(&conv) })))
}

#[derive(Deserialize)]
struct WsQuery {
    after_seq: Option<u64>,
}

async fn ws_any(
    State(s): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    Caller(who): Caller,
    ws: WebSocketUpgrade,
) -> Response {
    upgrade(s, addr, who, None, ws)
}

async fn ws_conv(
    State(s): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    Caller(who): Caller,
    Path(id): Path<u64>,
    Query(q): Query<WsQuery>,
    ws: WebSocketUpgrade,
) -> Response {
    upgrade(s, addr, who, Some((id, q.after_seq.unwrap_or(0))), ws)
}

fn upgrade(
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
        Some(super::ws::IpSlot {
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
        .max_message_size(super::ws::MAX_CLIENT_FRAME)
        .max_frame_size(super::ws::MAX_CLIENT_FRAME)
        .on_upgrade(move |socket| super::ws::run(chat, socket, who, resume, slot, shutdown))
}

// ---- agents ------------------------------------------------------------------------------

#[derive(Deserialize)]
struct InboxParams {
    view: Option<String>,
    status: Option<String>,
    priority: Option<String>,
    assignee: Option<u64>,
    limit: Option<usize>,
}

impl InboxParams {
    /// The `status` and `priority` filters (empty means any).
    fn filters(&self) -> ApiResult<(Option<Status>, Option<Priority>)> {
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

async fn inbox(
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

async fn conversation(
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
const MAX_USER_ISSUES: usize = 20;

/// Sentry issues whose events name the visitor's verified user id or email (`user:` in the
/// issue search), in every project, most recently seen first. Best effort: with search off
/// (or failing) the list is empty rather than the conversation failing.
async fn issues_of_user(s: &AppState, v: &Visitor) -> Vec<Value> {
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
struct StatusBody {
    status: String,
}

async fn set_status(
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
struct AssignBody {
    user_id: Option<u64>,
}

async fn assign(
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
struct PriorityBody {
    priority: String,
}

async fn set_priority(
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

async fn list_canned(State(s): State<AppState>, _: Agent) -> ApiResult<ApiJson<Value>> {
    let list = s.chat.canned().await?;
    Ok(ApiJson(json!({ "canned_responses": list })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CannedBody {
    shortcut: String,
    #[serde(default)]
    title: String,
    body: String,
}

async fn save_canned(
    State(s): State<AppState>,
    _: Agent,
    ApiJson(b): ApiJson<CannedBody>,
) -> ApiResult<ApiJson<Value>> {
    let c = s.chat.save_canned(b.shortcut, b.title, b.body).await?;
    Ok(ApiJson(json!({ "canned_response": c })))
}

#[derive(Deserialize, Default)]
struct OnlineBody {
    #[serde(default)]
    status: Option<String>,
}

async fn agent_online(
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

async fn agent_offline(State(s): State<AppState>, Agent(a): Agent) -> ApiJson<Value> {
    s.chat.go_offline(a.user_id);
    ApiJson(json!({ "status": "offline" }))
}

async fn agents_online(State(s): State<AppState>, _: Agent) -> ApiJson<Value> {
    ApiJson(json!({ "agents": s.chat.online_agents() }))
}

#[derive(Deserialize)]
struct SearchParamsQ {
    q: Option<String>,
    status: Option<String>,
    priority: Option<String>,
    assignee: Option<u64>,
    tickets: Option<bool>,
    limit: Option<usize>,
}

async fn search(
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
        .search(super::search::SearchParams {
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

// ---- tickets and stats -------------------------------------------------------------------

async fn list_tickets(
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
struct TicketBody {
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

async fn create_ticket(
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

async fn resolve_ticket(
    State(s): State<AppState>,
    Agent(a): Agent,
    Path(id): Path<u64>,
) -> ApiResult<ApiJson<Value>> {
    let name = match s.accounts.user(a.user_id).await {
        Ok(Some(u)) => super::display_name(&u.name, &u.email),
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
struct StatsQuery {
    from: Option<i64>,
    to: Option<i64>,
}

async fn stats_for(s: &AppState, tickets: bool, q: StatsQuery) -> ApiResult<ApiJson<Value>> {
    let to = q.to.unwrap_or_else(|| s.chat.now_ms() + 1);
    let from = q.from.unwrap_or(to - 30 * 86_400_000);
    if from >= to {
        return Err(ApiError::bad_request(
            "from must be before to (milliseconds since the epoch)",
        ));
    }
    Ok(ApiJson(s.chat.stats(tickets, from, to).await?))
}

async fn stats_chats(
    State(s): State<AppState>,
    _: Agent,
    Query(q): Query<StatsQuery>,
) -> ApiResult<ApiJson<Value>> {
    stats_for(&s, false, q).await
}

async fn stats_tickets(
    State(s): State<AppState>,
    _: Agent,
    Query(q): Query<StatsQuery>,
) -> ApiResult<ApiJson<Value>> {
    stats_for(&s, true, q).await
}

// ---- admin -------------------------------------------------------------------------------

async fn list_sites(State(s): State<AppState>, _: Admin) -> ApiResult<ApiJson<Value>> {
    let base = s.config.server.base_url();
    let list: Vec<Value> = s
        .chat
        .sites()
        .await?
        .iter()
        .map(|x| site_view(x, &base))
        .collect();
    Ok(ApiJson(json!({ "sites": list })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SiteBody {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    require_identity: Option<bool>,
    #[serde(default)]
    hours: Option<Value>,
    #[serde(default)]
    time_zone: Option<String>,
}

async fn create_site(
    State(s): State<AppState>,
    _: Admin,
    ApiJson(b): ApiJson<SiteBody>,
) -> ApiResult<ApiJson<Value>> {
    let hours = match &b.hours {
        Some(h) => hours::parse_hours(h).map_err(ApiError::bad_request)?,
        None => Vec::new(),
    };
    let site = s
        .chat
        .create_site(NewSite {
            name: b.name.unwrap_or_default(),
            require_identity: b.require_identity.unwrap_or(false),
            hours,
            time_zone: b.time_zone.unwrap_or_else(|| "UTC".into()),
        })
        .await?;
    Ok(ApiJson(
        json!({ "site": site_view(&site, &s.config.server.base_url()) }),
    ))
}

async fn update_site(
    State(s): State<AppState>,
    _: Admin,
    Path(id): Path<u64>,
    ApiJson(b): ApiJson<SiteBody>,
) -> ApiResult<ApiJson<Value>> {
    let hours = match &b.hours {
        Some(h) => Some(hours::parse_hours(h).map_err(ApiError::bad_request)?),
        None => None,
    };
    if let Some(tz) = &b.time_zone
        && hours::time_zone(tz).is_none()
    {
        return Err(ApiError::bad_request(format!(
            "unknown time zone {tz:?}; use an IANA name like Europe/Berlin"
        )));
    }
    let site = s
        .chat
        .update_site(id, move |site| {
            if let Some(n) = b.name.filter(|n| !n.trim().is_empty()) {
                site.name = n;
            }
            if let Some(r) = b.require_identity {
                site.require_identity = r;
            }
            if let Some(h) = hours {
                site.hours = h;
            }
            if let Some(tz) = b.time_zone {
                site.time_zone = tz;
            }
            Ok(())
        })
        .await?;
    Ok(ApiJson(
        json!({ "site": site_view(&site, &s.config.server.base_url()) }),
    ))
}

async fn rotate_secret(
    State(s): State<AppState>,
    _: Admin,
    Path(id): Path<u64>,
) -> ApiResult<ApiJson<Value>> {
    let site = s
        .chat
        .update_site(id, |site| {
            site.identity_secret = crate::accounts::random_hex(32);
            Ok(())
        })
        .await?;
    Ok(ApiJson(
        json!({ "site": site_view(&site, &s.config.server.base_url()) }),
    ))
}
