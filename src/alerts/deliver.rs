//! Delivering alerts: Slack incoming webhooks, Standard Webhooks-signed HTTP, and email
//! through the outbox. Run by the `alerts-delivery` bus consumer.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{KeyInit, Mac};
use serde_json::{Value, json};

use super::DeliverJob;
use super::model::{Alert, Channel, ChannelKind, DeliveryStatus};
use crate::app::AppState;
use crate::bus::{Delivery, Outcome};
use crate::mail::model::{Category, Priority, TemplateSend};
use crate::store::now_ms;

/// Why a delivery did not go through.
#[derive(Debug)]
pub struct DeliverError {
    /// What went wrong, with the target URL reduced to scheme and host (this text reaches the
    /// bus dead-letter queue, `$sys.dlq` alerts and viewers).
    pub error: String,
    /// The start of the receiver's answer, for admins only.
    pub reply: Option<String>,
    /// Worth retrying (5xx, 429, network); otherwise it goes straight to the DLQ.
    pub retry: bool,
    pub retry_after: Option<Duration>,
}

impl DeliverError {
    fn transient(error: String) -> Self {
        DeliverError {
            error,
            reply: None,
            retry: true,
            retry_after: None,
        }
    }

    fn permanent(error: String) -> Self {
        DeliverError {
            error,
            reply: None,
            retry: false,
            retry_after: None,
        }
    }
}

/// Characters of a receiver's reply kept for the history.
const REPLY_CHARS: usize = 300;

/// A fresh webhook secret: `whsec_` + base64 of 32 random bytes (Standard Webhooks).
pub fn new_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    format!("whsec_{}", B64.encode(bytes))
}

/// The HMAC key a `whsec_` secret stands for: the base64-decoded part after the prefix.
pub fn secret_key(secret: &str) -> Option<Vec<u8>> {
    let b64 = secret.strip_prefix("whsec_").unwrap_or(secret);
    B64.decode(b64).ok().filter(|k| !k.is_empty())
}

/// `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`.
pub fn sign(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> Option<String> {
    let key = secret_key(secret)?;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).ok()?;
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Some(format!("v1,{}", B64.encode(mac.finalize().into_bytes())))
}

/// The consumer's handler for one `alert.deliver` event.
pub(super) async fn handle(state: &AppState, d: Delivery) -> Outcome {
    let job: DeliverJob = match serde_json::from_str(&d.event.payload) {
        Ok(j) => j,
        Err(e) => return Outcome::Term(format!("alert.deliver payload is not a job: {e}")),
    };
    let alerts = &state.alerts;
    let channel = match alerts.get_channel(job.channel_id).await {
        Ok(c) => c,
        Err(super::AlertsError::NotFound(_)) => {
            let msg = format!("channel {} was deleted", job.channel_id);
            let _ = alerts
                .record_delivery(
                    job.fired_id,
                    job.channel_id,
                    DeliveryStatus::Failed,
                    d.attempt,
                    Some(msg.clone()),
                    None,
                )
                .await;
            return Outcome::Term(msg);
        }
        Err(e) => return Outcome::retry(e),
    };
    // The bus event id is the idempotency key: the same on every retry of this delivery.
    match deliver_to(state, &channel, &job.alert, &d.event.id).await {
        Ok(_) => {
            let _ = alerts
                .record_delivery(
                    job.fired_id,
                    job.channel_id,
                    DeliveryStatus::Delivered,
                    d.attempt,
                    None,
                    None,
                )
                .await;
            Outcome::Ack
        }
        Err(e) => {
            let max = state.config.bus.max_deliver;
            let last = !e.retry || d.attempt >= max;
            let status = if last {
                DeliveryStatus::Failed
            } else {
                DeliveryStatus::Retrying
            };
            tracing::warn!(
                channel = channel.id,
                attempt = d.attempt,
                reply = e.reply.as_deref().unwrap_or(""),
                "alert delivery failed: {}",
                e.error
            );
            let _ = alerts
                .record_delivery(
                    job.fired_id,
                    job.channel_id,
                    status,
                    d.attempt,
                    Some(e.error.clone()),
                    e.reply.clone(),
                )
                .await;
            if e.retry {
                Outcome::Retry {
                    error: e.error,
                    delay: e.retry_after,
                }
            } else {
                Outcome::Term(e.error)
            }
        }
    }
}

/// Delivers `alert` to `channel`; `id` becomes the webhook-id / mail dedup key.
pub async fn deliver_to(
    state: &AppState,
    channel: &Channel,
    alert: &Alert,
    id: &str,
) -> Result<String, DeliverError> {
    match &channel.kind {
        ChannelKind::Email { to } => {
            let template = if alert.issue_id.is_some() {
                "error_alert"
            } else {
                "system_alert"
            };
            let mut vars = email_vars(alert);
            // dash (issue 16): the project by its name, not "project 1".
            if let Some(pid) = alert.project_id
                && let Ok(Some(p)) = state.accounts.project(pid).await
            {
                vars.insert("project".into(), p.name.into());
            }
            let req = TemplateSend {
                template: template.into(),
                vars,
                to: to.clone(),
                priority: Some(Priority::High),
                category: Some(Category::Monitoring),
                dedup_key: Some(format!("alert:{id}:{}", channel.id)),
                ..Default::default()
            };
            match state.mail.enqueue_template(req).await {
                Ok(mid) => Ok(format!("queued as mail message {mid}")),
                Err(
                    crate::mail::MailError::Invalid(e) | crate::mail::MailError::TemplateLimit(e),
                ) => Err(DeliverError::permanent(e)),
                Err(e) => Err(DeliverError::transient(e.to_string())),
            }
        }
        ChannelKind::Slack { url } => {
            let mut named = alert.clone();
            // dash (issue 16): Slack names the project too.
            if let Some(pid) = alert.project_id
                && let Ok(Some(p)) = state.accounts.project(pid).await
                && named.payload.is_object()
            {
                named.payload["project_name"] = Value::String(p.name);
            }
            let body = serde_json::to_vec(&slack_payload(&named)).expect("JSON");
            post(state, url, body, Vec::new()).await
        }
        ChannelKind::Webhook { url, secret } => {
            let body = serde_json::to_vec(&json!({
                "type": "alert.fired",
                "timestamp": jiff::Timestamp::from_millisecond(now_ms()).map(|t| t.to_string()).unwrap_or_default(),
                "data": alert,
            }))
            .expect("JSON");
            let ts = now_ms() / 1000;
            let sig = sign(secret, id, ts, &body).ok_or_else(|| {
                DeliverError::permanent(
                    "the channel's secret is not a valid whsec_ secret; rotate it".into(),
                )
            })?;
            let headers = vec![
                ("webhook-id", id.to_string()),
                ("webhook-timestamp", ts.to_string()),
                ("webhook-signature", sig),
            ];
            post(state, url, body, headers).await
        }
    }
}

async fn post(
    state: &AppState,
    url: &str,
    body: Vec<u8>,
    headers: Vec<(&'static str, String)>,
) -> Result<String, DeliverError> {
    let http = state.alerts.http();
    let mut req = http
        .post(url)
        .header("content-type", "application/json")
        .body(body);
    for (k, v) in headers {
        req = req.header(k, v);
    }
    // The URL is the credential (Slack) or may hold one: errors name only scheme and host.
    let shown = crate::net::redact_url(url);
    let reply = match http.send(req).await {
        Ok(r) => r,
        Err(crate::net::NetError::Transport(e)) => {
            return Err(DeliverError::transient(format!("POST {shown}: {e}")));
        }
        // Refused by the SSRF guard, or not a usable URL: retrying changes nothing.
        Err(e) => return Err(DeliverError::permanent(format!("POST {shown}: {e}"))),
    };
    let status = reply.status;
    if status.is_success() {
        return Ok(format!("{status}"));
    }
    let retry_after = reply
        .headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|s| Duration::from_secs(s.min(3600)));
    let retry = status.is_server_error() || status.as_u16() == 429 || status.as_u16() == 408;
    Err(DeliverError {
        error: format!("POST {shown} answered {status}"),
        reply: Some(reply.text_prefix(REPLY_CHARS)),
        retry,
        retry_after: if retry { retry_after } else { None },
    })
}

fn email_vars(a: &Alert) -> serde_json::Map<String, Value> {
    let mut v = serde_json::Map::new();
    v.insert("title".into(), a.title.clone().into());
    v.insert("reason".into(), a.reason.clone().into());
    v.insert(
        "message".into(),
        format!("{}: {}", a.reason, a.title).into(),
    );
    v.insert(
        "project".into(),
        a.project_id
            .map(|p| format!("project {p}"))
            .unwrap_or_else(|| "Hearth".into())
            .into(),
    );
    v.insert(
        "level".into(),
        a.level.clone().unwrap_or_else(|| "error".into()).into(),
    );
    if let Some(e) = &a.environment {
        v.insert("environment".into(), e.clone().into());
    }
    if let Some(r) = &a.release {
        v.insert("release".into(), r.clone().into());
    }
    if let Some(c) = a.count {
        v.insert("count".into(), c.into());
    }
    if let Some(c) = a.payload["culprit"].as_str() {
        v.insert("culprit".into(), c.into());
    }
    v.insert("url".into(), a.url.clone().into());
    v
}

/// Slack's mrkdwn needs `&`, `<` and `>` escaped in text that is not a link.
fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn color(a: &Alert) -> &'static str {
    match (a.kind.as_str(), a.level.as_deref()) {
        ("monitor_up", _) => "#2EB67D",
        (_, Some("warning")) => "#ECB22E",
        (_, Some("info" | "debug")) => "#36C5F0",
        _ => "#E01E5A",
    }
}

/// A Slack incoming-webhook body: fallback text plus a coloured attachment with Block Kit.
pub fn slack_payload(a: &Alert) -> Value {
    let title = slack_escape(&a.title);
    let mut facts = Vec::new();
    if let Some(name) = a.payload["project_name"].as_str() {
        facts.push(format!("*Project:* {}", slack_escape(name)));
    } else if let Some(p) = a.project_id {
        facts.push(format!("*Project:* {p}"));
    }
    if let Some(l) = &a.level {
        facts.push(format!("*Level:* {}", slack_escape(l)));
    }
    if let Some(e) = &a.environment {
        facts.push(format!("*Environment:* {}", slack_escape(e)));
    }
    if let Some(r) = &a.release {
        facts.push(format!("*Release:* {}", slack_escape(r)));
    }
    if let Some(c) = a.count {
        facts.push(format!("*Events:* {c}"));
    }
    if let Some(t) = a.ticket_id {
        facts.push(format!("*Ticket:* #{t}"));
    }
    if let Some(p) = &a.priority {
        facts.push(format!("*Priority:* {}", slack_escape(p)));
    }
    json!({
        "text": format!("{}: {}", slack_escape(&a.reason), title),
        "attachments": [{
            "color": color(a),
            "fallback": format!("{}: {} {}", a.reason, a.title, a.url),
            "blocks": [
                {
                    "type": "section",
                    "text": {
                        "type": "mrkdwn",
                        "text": format!("*{}*\n<{}|{}>", slack_escape(&a.reason), a.url, title),
                    }
                },
                {
                    "type": "context",
                    "elements": [{
                        "type": "mrkdwn",
                        "text": if facts.is_empty() { format!("Rule: {}", slack_escape(&a.rule_name)) } else { facts.join("  ·  ") },
                    }]
                },
                {
                    "type": "actions",
                    "elements": [{
                        "type": "button",
                        "text": { "type": "plain_text", "text": "Open in Hearth" },
                        "url": a.url,
                    }]
                }
            ]
        }]
    })
}

/// Sends a sample alert to a channel now ("send test"). Returns what the receiver answered.
pub async fn test_channel(state: &AppState, channel: &Channel) -> Result<String, DeliverError> {
    let base = state.config.server.base_url();
    let alert = Alert {
        fired_id: 0,
        rule_id: 0,
        rule_name: "Test".into(),
        kind: "test".into(),
        reason: "Test alert".into(),
        title: format!("Test alert from Hearth to channel {:?}", channel.name),
        level: Some("info".into()),
        project_id: None,
        environment: None,
        release: None,
        issue_id: None,
        monitor: None,
        count: None,
        ticket_id: None,
        priority: None,
        url: format!("{base}/#/alerts"),
        at_ms: now_ms(),
        subject: "alert.test".into(),
        payload: Value::Null,
    };
    let id = format!("msg_test_{}", uuid::Uuid::now_v7().simple());
    deliver_to(state, channel, &alert, &id).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_the_standard_webhooks_example() {
        // From the Standard Webhooks spec's reference test vector.
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let body = br#"{"test": 2432232314}"#;
        let sig = sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body).unwrap();
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn new_secrets_decode() {
        let s = new_secret();
        assert!(s.starts_with("whsec_"));
        assert_eq!(secret_key(&s).unwrap().len(), 32);
    }
}
