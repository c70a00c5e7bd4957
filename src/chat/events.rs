//! The bus subjects about tickets that `chat` publishes, and their payloads. Fields stand in
//! alphabetical order, the order the `json!` objects these replace were written in, so the
//! bytes on the wire are unchanged.

use serde::{Deserialize, Serialize};

use super::model::{Channel, Priority};

/// A ticket was opened (a conversation on a ticket channel): [`TicketCreated`].
pub const TICKET_CREATED: &str = "chat.ticket.created";
/// A ticket passed an SLA target: [`TicketSlaBreached`].
pub const TICKET_SLA_BREACHED: &str = "chat.ticket.sla_breached";

/// `chat.ticket.created`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TicketCreated {
    pub channel: Channel,
    pub conversation_id: u64,
    pub priority: Priority,
    pub subject: String,
}

/// `chat.ticket.sla_breached`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TicketSlaBreached {
    pub assignee: Option<u64>,
    pub conversation_id: u64,
    pub overdue_ms: i64,
    pub priority: Priority,
    pub subject: String,
    /// The target passed: `first_response` or `resolution`.
    pub target: String,
    pub target_ms: i64,
    pub ticket: bool,
}
