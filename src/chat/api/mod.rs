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
use crate::http::public::{SITE_KEY_HEADER, VISITOR_TOKEN_HEADER, Widget, header_str};
use crate::http::routes::{Access, Routes};

use admin::*;
use agents::*;
use tickets::*;
use visitor::*;
use widget::*;

mod admin;
mod agents;
mod tickets;
mod visitor;
mod widget;

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
        .add(Method::POST, "/api/chat/widget/session", Access::Widget, "Start or resume a widget visitor session (site key; user_id + user_hash for verified users)", widget(post(widget_session)))
        .add(Method::GET, "/api/chat/widget/config", Access::Widget, "The widget's state for a site key: online, away or closed, and when the team is back", widget(get(widget_config)))
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

/// A widget visitor ([`Widget`] access: site key + visitor token, checked here) or a
/// signed-in agent. The routes that take it are listed as `Access::Agent`: without a widget
/// credential they are an agent's.
pub struct Caller(pub Who);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, s: &AppState) -> Result<Self, ApiError> {
        let has_user = parts.headers.contains_key(header::AUTHORIZATION)
            || crate::accounts::session_cookie(&parts.headers).is_some();
        if let (
            Some(Widget {
                site_key,
                visitor_token: Some(token),
            }),
            false,
        ) = (Widget::read(parts), has_user)
        {
            let (site, visitor) = s.chat.authenticate_visitor(&site_key, &token).await?;
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
