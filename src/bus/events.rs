//! The bus's own subjects and their payloads. Fields stand in alphabetical order, the order
//! the `json!` object this replaces was written in, so the bytes on the wire are unchanged.

use serde::{Deserialize, Serialize};

/// The prefix of `$sys.dlq.<consumer>`: an event moved to a consumer's dead-letter queue.
pub const DLQ_PREFIX: &str = "$sys.dlq.";

/// `$sys.dlq.<consumer>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLettered {
    pub attempts: usize,
    pub consumer: String,
    /// The last attempt's error.
    pub error: String,
    pub event_id: String,
    /// The dead event's bus sequence number.
    pub seq: u64,
    pub subject: String,
}
