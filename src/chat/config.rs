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
    /// Largest file a visitor or agent may upload into a conversation.
    pub upload_max_size: ByteSize,
    /// Conversations an agent holds at once before auto-assignment passes them over.
    pub agent_cap: u32,
    /// First-response targets for urgent, high, normal and low priority ("0s": none).
    pub sla_first_response: Vec<HumanDuration>,
    /// Resolution targets for urgent, high, normal and low priority.
    pub sla_resolution: Vec<HumanDuration>,
    // ---- issue 19 (bandit): reply suggestions ----
    /// Share of suggestion decisions shown in a uniformly random order (the holdout that makes
    /// the off-policy estimate unbiased), 0 to 1.
    pub suggest_holdout: f64,
    /// LinUCB exploration width.
    pub suggest_alpha: f64,
    /// Discount of old evidence per update of a reply (1: none).
    pub suggest_discount: f64,
    /// A resolution counts for a used suggestion within this long, and only if the
    /// conversation is not reopened within this long after it.
    pub suggest_reward_window: HumanDuration,
    /// Seed of the suggestions' randomness (the holdout draw and its order); 0: random.
    pub suggest_seed: u64,
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
            upload_max_size: ByteSize::mb(20),
            agent_cap: 5,
            sla_first_response: vec![
                HumanDuration::secs(15 * 60),
                HumanDuration::secs(3600),
                HumanDuration::secs(4 * 3600),
                HumanDuration::secs(24 * 3600),
            ],
            sla_resolution: vec![
                HumanDuration::secs(4 * 3600),
                HumanDuration::secs(24 * 3600),
                HumanDuration::secs(3 * 24 * 3600),
                HumanDuration::secs(7 * 24 * 3600),
            ],
            // issue 19 (bandit)
            suggest_holdout: 0.1,
            suggest_alpha: 0.5,
            suggest_discount: 0.999,
            suggest_reward_window: HumanDuration::secs(7 * 24 * 3600),
            suggest_seed: 0,
        }
    }
}
