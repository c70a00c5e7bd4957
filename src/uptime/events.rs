//! The bus subjects `uptime` publishes, and their payloads. Fields stand in alphabetical
//! order, the order the `json!` object this replaces was written in, so the bytes on the wire
//! are unchanged.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// `monitor.<slug>.down` (also the reminders while it stays down) and `monitor.<slug>.up`:
/// [`MonitorChanged`].
pub const MONITOR_PREFIX: &str = "monitor.";

/// `monitor.<slug>.down` / `.up`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MonitorChanged {
    pub at: Timestamp,
    /// The check's error, for a down notice.
    pub error: Option<String>,
    pub monitor_id: u64,
    pub monitor_name: String,
    /// The monitor's slug, as in the subject.
    pub name: String,
    /// A reminder that it is still down.
    pub reminder: bool,
    pub title: String,
}
