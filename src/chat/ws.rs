//! The chat WebSocket: one socket per client, JSON text frames.
//!
//! Server → client:
//! - `{"t":"hello","role":"visitor"|"agent","ping_ms":5000,"agents_online":true}` first;
//! - `{"t":"ev","conv":1,"seq":7,"type":"message.created","data":{...}}` for durable entries,
//!   per conversation in seq order, each exactly once per socket;
//! - `{"t":"ack","client_msg_id":"…","conv":1,"seq":7,"duplicate":false}` after a send is
//!   committed (and published on the bus in the same transaction);
//! - `{"t":"resumed","conv":1,"last_seq":9}` after a resume;
//! - `{"t":"typing","conv":1,"on":true,"from":{...}}`, `{"t":"presence","agents_online":b}`:
//!   ephemeral, no seq;
//! - `{"t":"ping","time_ms":…}` every `[chat] ping_interval`; `{"t":"error","code","message"}`.
//!
//! Client → server: `{"t":"resume","conv":1,"after_seq":6}`,
//! `{"t":"send","conv":1,"client_msg_id":"uuid","body":"…","private":false}`,
//! `{"t":"typing","conv":1,"on":true}`, `{"t":"seen","conv":1,"seq":7}`, `{"t":"pong"}`.
//!
//! Exactly once, in order: the socket registers in the hub *before* it reads what it missed,
//! and remembers per conversation the highest seq it sent. A live entry at or below that mark
//! is skipped; one that leaves a gap (fan-outs of two commits can race) first fills the gap
//! from the database, where every lower seq is already committed.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::model::{Entry, Status};
use super::{Chat, Out, Room, Who};

/// Largest frame a client may send (files go over HTTP).
pub const MAX_CLIENT_FRAME: usize = 64 * 1024;
/// Entries per database read while resuming.
const RESUME_BATCH: usize = 500;

#[derive(Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
enum ClientFrame {
    Resume {
        conv: u64,
        #[serde(default)]
        after_seq: u64,
    },
    Send {
        conv: u64,
        client_msg_id: String,
        body: String,
        #[serde(default)]
        private: bool,
    },
    Typing {
        conv: u64,
        #[serde(default)]
        on: bool,
    },
    Seen {
        conv: u64,
        seq: u64,
    },
    Ping,
    Pong,
}

/// Frees an anonymous socket's per-IP slot when the socket ends.
pub struct IpSlot {
    pub chat: Chat,
    pub ip: IpAddr,
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        self.chat.socket_closed(self.ip);
    }
}

/// What this socket has sent of each conversation: seqs `lo..=hi`.
#[derive(Clone, Copy)]
struct Sent {
    lo: u64,
    hi: u64,
}

struct Conn {
    chat: Chat,
    who: Who,
    socket: WebSocket,
    sent: HashMap<u64, Sent>,
    id: crate::http::ws::ConnId,
}

type Closed = ();

impl Conn {
    async fn text(&mut self, v: &Value) -> Result<(), Closed> {
        self.socket
            .send(Message::Text(Utf8Bytes::from(v.to_string())))
            .await
            .map_err(|_| ())
    }

    fn agent(&self) -> bool {
        self.who.is_agent()
    }

    async fn send_entry(&mut self, conv: u64, e: &Entry) -> Result<(), Closed> {
        self.text(&e.frame(conv)).await?;
        self.mark_sent(conv, e.seq);
        Ok(())
    }

    fn mark_sent(&mut self, conv: u64, seq: u64) {
        let s = self.sent.entry(conv).or_insert(Sent { lo: seq, hi: 0 });
        s.hi = s.hi.max(seq);
        s.lo = s.lo.min(seq);
    }

    /// A live entry from the hub, with its frame rendered once by the hub for every socket.
    async fn live(&mut self, conv: u64, e: Arc<Entry>, frame: Arc<str>) -> Result<(), Closed> {
        if e.private && !self.agent() {
            return Ok(());
        }
        if let Some(s) = self.sent.get(&conv).copied() {
            if e.seq <= s.hi {
                return Ok(());
            }
            if e.seq > s.hi + 1 {
                let gap = (e.seq - s.hi - 1) as usize;
                let missed = self
                    .chat
                    .entries_after(conv, s.hi, gap, self.agent())
                    .await
                    .unwrap_or_default();
                for m in missed.iter().filter(|m| m.seq < e.seq) {
                    self.send_entry(conv, m).await?;
                }
            }
        }
        self.socket
            .send(Message::Text(Utf8Bytes::from(&*frame)))
            .await
            .map_err(|_| ())?;
        self.mark_sent(conv, e.seq);
        Ok(())
    }

    /// Sends what the client lacks of `conv` after `after`: below what this socket already sent
    /// and above it.
    async fn resume(&mut self, conv: u64, after: u64) -> Result<(), Closed> {
        if let Err(e) = self.chat.conversation_for(&self.who, conv).await {
            return self.text(&e.frame(None)).await;
        }
        let agent = self.agent();
        let mut from = after;
        let upto = self.sent.get(&conv).map(|s| s.lo);
        loop {
            let batch = match self
                .chat
                .entries_after(conv, from, RESUME_BATCH, agent)
                .await
            {
                Ok(b) => b,
                Err(e) => return self.text(&e.frame(None)).await,
            };
            let n = batch.len();
            for e in batch {
                from = e.seq;
                let already = self
                    .sent
                    .get(&conv)
                    .is_some_and(|s| e.seq >= s.lo && e.seq <= s.hi);
                if !already {
                    self.send_entry(conv, &e).await?;
                }
            }
            if n < RESUME_BATCH {
                break;
            }
        }
        if let Some(lo) = upto {
            let s = self.sent.entry(conv).or_insert(Sent { lo, hi: from });
            s.lo = s.lo.min(after + 1);
        } else {
            // Nothing was sent, but the client has everything up to `from`.
            self.sent.insert(
                conv,
                Sent {
                    lo: after + 1,
                    hi: from,
                },
            );
        }
        let last = self.sent.get(&conv).map_or(from, |s| s.hi);
        self.text(&json!({"t": "resumed", "conv": conv, "last_seq": last}))
            .await
    }

    async fn client_frame(&mut self, text: &str) -> Result<(), Closed> {
        let frame: ClientFrame = match serde_json::from_str(text) {
            Ok(f) => f,
            Err(e) => {
                return self
                    .text(&json!({"t": "error", "code": "invalid_json", "message": format!("unreadable frame: {e}; see the chat protocol in the README")}))
                    .await;
            }
        };
        match frame {
            ClientFrame::Resume { conv, after_seq } => self.resume(conv, after_seq).await,
            ClientFrame::Send {
                conv,
                client_msg_id,
                body,
                private,
            } => {
                let cid = client_msg_id.clone();
                match self.chat.post(&self.who, conv, client_msg_id, body, private).await {
                    Ok((_, e, created)) => {
                        self.text(&json!({"t": "ack", "client_msg_id": cid, "conv": conv, "seq": e.seq, "duplicate": !created}))
                            .await
                    }
                    Err(e) => self.text(&e.frame(Some(&cid))).await,
                }
            }
            ClientFrame::Typing { conv, on } => {
                match self.chat.conversation_for(&self.who, conv).await {
                    Ok(c) if c.status != Status::Closed => {
                        let a = self.who.author();
                        let frame = json!({"t": "typing", "conv": conv, "on": on, "from": {"kind": a.kind, "id": a.id, "name": a.name}});
                        self.chat.ephemeral(c.visitor_id, frame, Some(self.id));
                        Ok(())
                    }
                    Ok(_) => Ok(()),
                    Err(e) => self.text(&e.frame(None)).await,
                }
            }
            ClientFrame::Seen { conv, seq } => {
                match self.chat.mark_seen(&self.who, conv, seq).await {
                    Ok(_) => Ok(()),
                    Err(e) => self.text(&e.frame(None)).await,
                }
            }
            ClientFrame::Ping => self.text(&json!({"t": "pong"})).await,
            ClientFrame::Pong => Ok(()),
        }
    }
}

/// Runs one chat socket until the client leaves, the hub drops it as too slow, or the server
/// shuts down. `resume` is the conversation (and last seq) named in the URL, if any.
pub async fn run(
    chat: Chat,
    socket: WebSocket,
    who: Who,
    resume: Option<(u64, u64)>,
    _slot: Option<IpSlot>,
    shutdown: CancellationToken,
) {
    let room = match &who {
        Who::Visitor { visitor, .. } => Room::Visitor(visitor.id),
        Who::Agent { .. } => Room::Agents,
    };
    // Registered before anything is read, so nothing committed from here on is missed.
    let (reg, mut rx) = chat.hub().register(&[room]);
    let ping_every = chat
        .config()
        .ping_interval
        .get()
        .max(Duration::from_millis(100));
    let mut conn = Conn {
        id: reg.id,
        chat: chat.clone(),
        who,
        socket,
        sent: HashMap::new(),
    };
    let hello = match &conn.who {
        Who::Visitor { visitor, .. } => {
            json!({"t": "hello", "role": "visitor", "visitor_id": visitor.id, "ping_ms": ping_every.as_millis() as u64, "agents_online": chat.any_agent_online()})
        }
        Who::Agent { user_id, .. } => {
            json!({"t": "hello", "role": "agent", "user_id": user_id, "ping_ms": ping_every.as_millis() as u64, "agents_online": chat.any_agent_online()})
        }
    };
    if conn.text(&hello).await.is_err() {
        return;
    }
    if let Some((conv, after)) = resume
        && Box::pin(conn.resume(conv, after)).await.is_err()
    {
        return;
    }
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + ping_every, ping_every);
    loop {
        let step: Result<(), Closed> = tokio::select! {
            _ = shutdown.cancelled() => {
                // 1012: service restart; the client reconnects and resumes.
                let _ = conn.socket.send(Message::Close(Some(CloseFrame { code: 1012, reason: Utf8Bytes::from_static("server restarting") }))).await;
                break;
            }
            out = rx.recv() => match out {
                // Boxed: the gap fill reads the database, and an idle socket's task should not
                // carry that future's state inline (memory per idle socket).
                Some(Out::Entry { conv, entry, frame }) => Box::pin(conn.live(conv, entry, frame)).await,
                Some(Out::Frame(text)) => conn.socket.send(Message::Text(Utf8Bytes::from(&*text))).await.map_err(|_| ()),
                None => {
                    // Dropped by the hub as too slow: close; the client resumes by seq.
                    let _ = conn.socket.send(Message::Close(Some(CloseFrame { code: 1013, reason: Utf8Bytes::from_static("too slow; reconnect and resume") }))).await;
                    break;
                }
            },
            msg = conn.socket.recv() => match msg {
                Some(Ok(Message::Text(t))) => Box::pin(conn.client_frame(t.as_str())).await,
                Some(Ok(Message::Binary(_))) => conn.text(&json!({"t": "error", "code": "bad_request", "message": "send JSON text frames"})).await,
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => Ok(()),
            },
            _ = ping.tick() => conn.text(&json!({"t": "ping", "time_ms": chat.now_ms()})).await,
        };
        if step.is_err() {
            break;
        }
    }
    drop(reg);
}
