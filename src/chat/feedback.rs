//! Sentry user feedback becomes a support ticket linked to its error issue.
//!
//! Ingest publishes `feedback.received` in the transaction that stores a `feedback` or
//! `user_report` item; the durable consumer `chat.feedback` opens one ticket per feedback
//! (idempotent by project and feedback id, so a redelivery opens no second one) and records
//! the link to the event and its issue, which the ticket's detail shows. The support inbox and
//! the error tracker see each other.

use redb::ReadableTable;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::model::{Channel, Conversation, Priority, Visitor};
use super::store::{FEEDBACK_VISITORS, ISSUE_LINKS, VISITORS, next_id};
use super::{Chat, ChatError, ChatResult, Who, clip};
use crate::bus::{ConsumerSpec, Delivery, Outcome, StartAt};
use crate::store::codec;

/// The subject ingest publishes for every stored feedback.
pub const SUBJECT: &str = "feedback.received";

/// `feedback.received`'s payload.
#[derive(Debug, Clone, Deserialize)]
pub struct FeedbackEvent {
    pub project_id: u64,
    pub feedback_id: u64,
    #[serde(default)]
    pub kind: String,
    pub event_id: Option<String>,
    pub issue_id: Option<u64>,
    pub name: Option<String>,
    pub email: Option<String>,
    #[serde(default)]
    pub message: String,
    pub url: Option<String>,
}

/// A ticket's link to the Sentry event (and issue) it came from.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct IssueLink {
    pub project_id: u64,
    pub issue_id: Option<u64>,
    pub event_id: Option<String>,
    pub feedback_id: u64,
}

impl Chat {
    /// Registers the `chat.feedback` consumer.
    pub(super) fn register_feedback(&self, state: &crate::app::AppState) {
        let chat = self.clone();
        state.bus.register(
            ConsumerSpec::new("chat.feedback", &[SUBJECT]).start_at(StartAt::Beginning),
            move |d: Delivery| {
                let chat = chat.clone();
                async move {
                    let f: FeedbackEvent = match serde_json::from_str(&d.event.payload) {
                        Ok(f) => f,
                        Err(e) => return Outcome::Term(format!("unreadable feedback event: {e}")),
                    };
                    match chat.ticket_from_feedback(f).await {
                        Ok(_) => Outcome::Ack,
                        Err(e) => Outcome::retry(e),
                    }
                }
            },
        );
    }

    /// Opens (or, for a feedback seen before, returns) the ticket of one user feedback.
    pub async fn ticket_from_feedback(&self, f: FeedbackEvent) -> ChatResult<Conversation> {
        // The first site, if any: the ticket shows in the same inbox as the site's chats.
        let site_id = self.sites().await?.first().map_or(0, |s| s.id);
        let now = self.now_ms();
        let key = (f.project_id, f.feedback_id);
        let (name, email) = (
            clip(f.name.as_deref().unwrap_or(""), 200),
            clip(f.email.as_deref().unwrap_or(""), 320),
        );
        let page = clip(f.url.as_deref().unwrap_or(""), super::MAX_FIELD);
        let visitor = self
            .inner
            .db
            .write(move |txn| {
                let mut map = txn.open_table(FEEDBACK_VISITORS)?;
                let mut visitors = txn.open_table(VISITORS)?;
                if let Some(id) = map.get(key)?.map(|v| v.value())
                    && let Some(v) = visitors.get(id)?
                {
                    return Ok(codec::decode::<Visitor>(v.value())?);
                }
                let id = next_id(txn, "visitor")?;
                let v = Visitor {
                    id,
                    site_id,
                    name,
                    email,
                    user_id: None,
                    created_ms: now,
                    last_seen_ms: now,
                    page_url: page,
                    user_agent: String::new(),
                };
                visitors.insert(id, codec::encode(&v).as_slice())?;
                map.insert(key, id)?;
                Ok::<_, ChatError>(v)
            })
            .await?;
        let message = if f.message.trim().is_empty() {
            "(no comment)".to_string()
        } else {
            clip(&f.message, self.config().max_message_size.as_usize())
        };
        let first_line = message.lines().next().unwrap_or_default();
        let subject = format!("Feedback: {}", clip(first_line, 100));
        let who = Who::Visitor {
            site_id: visitor.site_id,
            visitor,
        };
        let (conv, _) = self
            .start_conversation_as(
                &who,
                Channel::Api,
                Some(message),
                Some(format!("feedback-{}-{}", f.project_id, f.feedback_id)),
                Some((Priority::Normal, subject)),
            )
            .await?;
        let link = IssueLink {
            project_id: f.project_id,
            issue_id: f.issue_id,
            event_id: f.event_id,
            feedback_id: f.feedback_id,
        };
        let conv_id = conv.id;
        self.inner
            .db
            .write(move |txn| {
                txn.open_table(ISSUE_LINKS)?
                    .insert(conv_id, codec::encode(&link).as_slice())?;
                Ok::<_, ChatError>(())
            })
            .await?;
        Ok(conv)
    }

    /// The Sentry issue a ticket is linked to (from user feedback), as the API shows it: the
    /// issue is looked up by event id when the feedback came before its event.
    pub async fn issue_link(&self, conv_id: u64) -> ChatResult<Option<Value>> {
        let base = self.inner.config.server.base_url();
        self.inner
            .db
            .read(move |txn| {
                let Some(v) = txn.open_table(ISSUE_LINKS)?.get(conv_id)? else {
                    return Ok(None);
                };
                let mut link: IssueLink = codec::decode(v.value())?;
                if link.issue_id.is_none()
                    && let Some(eid) = &link.event_id
                {
                    link.issue_id = txn
                        .open_table(crate::issues::store::EVENT_IDS)?
                        .get(eid.as_str())?
                        .map(|v| v.value().0);
                }
                Ok::<_, ChatError>(Some(json!({
                    "project_id": link.project_id,
                    "issue_id": link.issue_id,
                    "event_id": link.event_id,
                    "feedback_id": link.feedback_id,
                    "issue_url": link.issue_id.map(|i| format!("{base}/#/issues/{i}")),
                    "api_url": link.issue_id.map(|i| format!("/api/issues/{i}")),
                })))
            })
            .await
    }
}
