//! `[chat]` settings.

use serde::{Deserialize, Serialize};

use crate::config::{ByteSize, HumanDuration};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChatConfig {
    /// How often the server pings each chat socket; a client that misses two reconnects.
    pub ping_interval: HumanDuration,
    /// An agent whose dashboard sent no heartbeat for this long counts as offline.
    pub presence_timeout: HumanDuration,
    /// Largest chat message, in bytes of UTF-8.
    pub max_message_size: ByteSize,
    /// Messages one visitor may send per minute.
    pub visitor_messages_per_minute: u32,
    /// Visitor sessions and conversations one IP address may start per hour.
    pub starts_per_ip_per_hour: u32,
    /// Widget (anonymous) sockets open at once from one IP address.
    pub sockets_per_ip: u32,
    /// Frames queued for one socket before it is dropped as too slow (it then resumes).
    pub socket_queue: usize,
    /// Conversations an agent holds at once before auto-assignment passes them over.
    pub agent_cap: u32,
}

impl Default for ChatConfig {
    fn default() -> Self {
        Self {
            ping_interval: HumanDuration::secs(5),
            presence_timeout: HumanDuration::secs(60),
            max_message_size: ByteSize(8 * 1024),
            visitor_messages_per_minute: 30,
            starts_per_ip_per_hour: 60,
            sockets_per_ip: 20,
            socket_queue: 256,
            agent_cap: 5,
        }
    }
}
