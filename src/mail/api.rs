//! Mail routes (JSON). Writes need Admin, reads Viewer.
//!
//! | route | what |
//! |---|---|
//! | `POST /api/mail/send` | queue one message |
//! | `POST /api/mail/send-template` | queue one message rendered from a template |
//! | `POST /api/mail/bulk` | one request, many tracked messages (template or inline) |
//! | `POST /api/mail/test` | send a test message straight through the relay |
//! | `GET/POST /api/mail/templates`, `GET/PUT /api/mail/templates/{name}` | templates |
//! | `GET /api/mail/messages` | list/search (`status`, `to`, `subject`, `q`, `category`, `before`, `limit`) |
//! | `GET /api/mail/messages/{id}` | one message with its delivery log |
//! | `POST /api/mail/messages/{id}/cancel`, `.../retry` | cancel a queued one; retry now |
//! | `GET /api/mail/stats?days=7` | per day and category; queue state |

use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post, put};
use serde::Deserialize;
use serde_json::{Value, json};

use super::model::{
    Category, MessageRecord, NewAttachment, NewMessage, Priority, Template, TemplateSend,
};
use super::{MessageQuery, templates};
use crate::app::AppState;
use crate::http::auth::{Admin, Viewer};
use crate::http::error::{ApiError, ApiJson, ApiResult};
use crate::http::routes::{Access, Routes};

pub fn routes() -> Routes {
    Routes::new()
        .add(
            Method::POST,
            "/api/mail/send",
            Access::Admin,
            "Queue an email (to, cc, bcc, subject, text, html, attachments, priority, category)",
            post(send),
        )
        .add(
            Method::POST,
            "/api/mail/send-template",
            Access::Admin,
            "Queue an email rendered from a template",
            post(send_template),
        )
        .add(
            Method::POST,
            "/api/mail/bulk",
            Access::Admin,
            "Queue one tracked email per recipient (template or inline subject/text/html)",
            post(bulk),
        )
        .add(
            Method::POST,
            "/api/mail/test",
            Access::Admin,
            "Send a test email straight through the SMTP relay",
            post(send_test),
        )
        .add(
            Method::GET,
            "/api/mail/templates",
            Access::Viewer,
            "List mail templates (built-in and added)",
            get(list_templates),
        )
        .add(
            Method::POST,
            "/api/mail/templates",
            Access::Admin,
            "Add a mail template",
            post(create_template),
        )
        .add(
            Method::GET,
            "/api/mail/templates/{name}",
            Access::Viewer,
            "Get a mail template",
            get(get_template),
        )
        .add(
            Method::PUT,
            "/api/mail/templates/{name}",
            Access::Admin,
            "Update a mail template (or override a built-in)",
            put(update_template),
        )
        .add(
            Method::GET,
            "/api/mail/messages",
            Access::Viewer,
            "List and search messages (status, to, subject, q, category, before, limit)",
            get(list_messages),
        )
        .add(
            Method::GET,
            "/api/mail/messages/{id}",
            Access::Viewer,
            "A message with its delivery log",
            get(get_message),
        )
        .add(
            Method::POST,
            "/api/mail/messages/{id}/cancel",
            Access::Admin,
            "Cancel a queued message",
            post(cancel),
        )
        .add(
            Method::POST,
            "/api/mail/messages/{id}/retry",
            Access::Admin,
            "Retry a deferred or failed message now",
            post(retry),
        )
        .add(
            Method::GET,
            "/api/mail/stats",
            Access::Viewer,
            "Sent/failed/queued per day and category; queue state",
            get(stats),
        )
}

async fn send(
    _: Admin,
    State(s): State<AppState>,
    ApiJson(msg): ApiJson<NewMessage>,
) -> ApiResult<impl IntoResponse> {
    let id = s.mail.enqueue(msg).await?;
    Ok((
        StatusCode::ACCEPTED,
        ApiJson(json!({ "id": id, "status": "queued" })),
    ))
}

async fn send_template(
    _: Admin,
    State(s): State<AppState>,
    ApiJson(req): ApiJson<TemplateSend>,
) -> ApiResult<impl IntoResponse> {
    let id = s.mail.enqueue_template(req).await?;
    Ok((
        StatusCode::ACCEPTED,
        ApiJson(json!({ "id": id, "status": "queued" })),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BulkRecipient {
    to: String,
    #[serde(default)]
    vars: serde_json::Map<String, Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BulkReq {
    /// A stored template; or give `subject`/`text`/`html`, which are rendered as templates too.
    template: Option<String>,
    subject: Option<String>,
    text: Option<String>,
    html: Option<String>,
    /// Variables shared by every recipient (a recipient's own `vars` win).
    #[serde(default)]
    vars: serde_json::Map<String, Value>,
    recipients: Vec<BulkRecipient>,
    #[serde(default)]
    attachments: Vec<NewAttachment>,
    priority: Option<Priority>,
    category: Option<Category>,
}

async fn bulk(
    _: Admin,
    State(s): State<AppState>,
    ApiJson(req): ApiJson<BulkReq>,
) -> ApiResult<impl IntoResponse> {
    let template = match &req.template {
        Some(name) => s.mail.template(name).await?,
        None => {
            let t = Template {
                name: "inline".into(),
                description: String::new(),
                subject: req.subject.clone().unwrap_or_default(),
                text: req.text.clone().unwrap_or_default(),
                html: req.html.clone(),
                builtin: false,
                updated_ms: 0,
            };
            templates::validate(&t)
                .map_err(|e| ApiError::bad_request(format!("template does not compile: {e}")))?;
            t
        }
    };
    if req.recipients.len() > crate::mail::MAX_BULK {
        return Err(ApiError::bad_request(format!(
            "a bulk send takes at most {} messages; split the request",
            crate::mail::MAX_BULK
        )));
    }
    let vars: Vec<_> = req
        .recipients
        .iter()
        .map(|r| {
            let mut vars = req.vars.clone();
            vars.extend(r.vars.clone());
            vars.entry("to")
                .or_insert_with(|| Value::String(r.to.clone()));
            vars
        })
        .collect();
    let rendered_all = s.mail.render_all(template, vars).await?;
    let mut msgs = Vec::with_capacity(req.recipients.len());
    for (r, rendered) in req.recipients.into_iter().zip(rendered_all) {
        msgs.push((
            NewMessage {
                to: vec![r.to],
                subject: rendered.subject,
                text: rendered.text,
                html: rendered.html,
                attachments: req.attachments.clone(),
                priority: req.priority,
                category: req.category,
                ..Default::default()
            },
            req.template.clone(),
        ));
    }
    let ids = s.mail.enqueue_bulk(msgs).await?;
    Ok((
        StatusCode::ACCEPTED,
        ApiJson(json!({ "ids": ids, "count": ids.len() })),
    ))
}

#[derive(Deserialize)]
struct TestReq {
    to: String,
}

async fn send_test(
    _: Admin,
    State(s): State<AppState>,
    ApiJson(req): ApiJson<TestReq>,
) -> ApiResult<ApiJson<Value>> {
    let reply = s.mail.send_test(&req.to).await?;
    Ok(ApiJson(json!({ "ok": true, "reply": reply })))
}

async fn list_templates(_: Viewer, State(s): State<AppState>) -> ApiResult<ApiJson<Value>> {
    Ok(ApiJson(json!({ "templates": s.mail.templates().await? })))
}

async fn get_template(
    _: Viewer,
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<ApiJson<Template>> {
    Ok(ApiJson(s.mail.template(&name).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TemplateReq {
    name: Option<String>,
    #[serde(default)]
    description: String,
    subject: String,
    #[serde(default)]
    text: String,
    html: Option<String>,
}

impl TemplateReq {
    fn into_template(self, name: String) -> Template {
        Template {
            name,
            description: self.description,
            subject: self.subject,
            text: self.text,
            html: self.html,
            builtin: false,
            updated_ms: 0,
        }
    }
}

async fn create_template(
    _: Admin,
    State(s): State<AppState>,
    ApiJson(req): ApiJson<TemplateReq>,
) -> ApiResult<impl IntoResponse> {
    let name = req.name.clone().unwrap_or_default();
    let t = s.mail.save_template(req.into_template(name), true).await?;
    Ok((StatusCode::CREATED, ApiJson(t)))
}

async fn update_template(
    _: Admin,
    State(s): State<AppState>,
    Path(name): Path<String>,
    ApiJson(req): ApiJson<TemplateReq>,
) -> ApiResult<ApiJson<Template>> {
    if req.name.as_ref().is_some_and(|n| *n != name) {
        return Err(ApiError::bad_request(
            "a template cannot be renamed; create a new one",
        ));
    }
    Ok(ApiJson(
        s.mail.save_template(req.into_template(name), false).await?,
    ))
}

async fn list_messages(
    _: Viewer,
    State(s): State<AppState>,
    Query(q): Query<MessageQuery>,
) -> ApiResult<ApiJson<Value>> {
    let messages = s.mail.list(q).await?;
    let next_before = messages.last().map(|m| m.id);
    let list: Vec<Value> = messages.iter().map(summary).collect();
    Ok(ApiJson(
        json!({ "messages": list, "next_before": next_before }),
    ))
}

fn summary(m: &MessageRecord) -> Value {
    json!({
        "id": m.id,
        "status": m.status,
        "priority": m.priority,
        "category": m.category,
        "to": m.to,
        "cc": m.cc,
        "subject": m.subject,
        "template": m.template,
        "attempts": m.attempts,
        "created_ms": m.created_ms,
        "updated_ms": m.updated_ms,
        "sent_ms": m.sent_ms,
        "next_attempt_ms": m.next_attempt_ms,
        "last_error": m.last_error,
        "last_code": m.last_code,
    })
}

async fn get_message(
    _: Viewer,
    State(s): State<AppState>,
    Path(id): Path<u64>,
) -> ApiResult<ApiJson<MessageRecord>> {
    Ok(ApiJson(s.mail.get(id).await?))
}

async fn cancel(
    _: Admin,
    State(s): State<AppState>,
    Path(id): Path<u64>,
) -> ApiResult<ApiJson<MessageRecord>> {
    Ok(ApiJson(s.mail.cancel(id).await?))
}

async fn retry(
    _: Admin,
    State(s): State<AppState>,
    Path(id): Path<u64>,
) -> ApiResult<ApiJson<MessageRecord>> {
    Ok(ApiJson(s.mail.retry(id).await?))
}

#[derive(Deserialize)]
struct StatsQuery {
    days: Option<u32>,
}

async fn stats(
    _: Viewer,
    State(s): State<AppState>,
    Query(q): Query<StatsQuery>,
) -> ApiResult<ApiJson<super::Stats>> {
    Ok(ApiJson(s.mail.stats(q.days.unwrap_or(7)).await?))
}
