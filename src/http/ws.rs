//! A WebSocket hub: live connections in rooms, each with a bounded outbound queue.
//!
//! The shared hub (issue 13, item 4): generic over the room key and the message type, so any
//! part with live sockets (chat today) keeps its own rooms and frames on top. A
//! connection is registered with a [`Registration`] whose drop unregisters it, so a socket
//! task that ends for any reason (close, error, panic) leaves nothing behind. Fan-out never
//! waits: a connection whose queue is full is dropped from the hub (its receiver then ends,
//! and the socket task closes the socket); the client reconnects and resumes by sequence
//! number, so a slow reader costs itself a reconnect and nobody else any latency.

use std::collections::{HashMap, HashSet};
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

pub type ConnId = u64;

struct Inner<R, M> {
    conns: HashMap<ConnId, Conn<R, M>>,
    rooms: HashMap<R, HashSet<ConnId>>,
}

struct Conn<R, M> {
    tx: mpsc::Sender<M>,
    rooms: Vec<R>,
}

pub struct Hub<R, M> {
    inner: Mutex<Inner<R, M>>,
    next: AtomicU64,
    queue: usize,
    dropped_slow: AtomicU64,
}

/// Unregisters its connection when dropped.
pub struct Registration<R: Eq + Hash + Clone, M> {
    hub: Arc<Hub<R, M>>,
    pub id: ConnId,
}

impl<R: Eq + Hash + Clone, M> Drop for Registration<R, M> {
    fn drop(&mut self) {
        self.hub.remove(self.id);
    }
}

impl<R: Eq + Hash + Clone, M> Hub<R, M> {
    fn remove(&self, id: ConnId) {
        let mut g = self.inner.lock().expect("hub");
        if let Some(c) = g.conns.remove(&id) {
            for r in c.rooms {
                if let Some(set) = g.rooms.get_mut(&r) {
                    set.remove(&id);
                    if set.is_empty() {
                        g.rooms.remove(&r);
                    }
                }
            }
        }
    }
}

impl<R: Eq + Hash + Clone, M: Clone> Hub<R, M> {
    /// A hub whose connections queue at most `queue` messages each.
    pub fn new(queue: usize) -> Arc<Self> {
        Arc::new(Hub {
            inner: Mutex::new(Inner {
                conns: HashMap::new(),
                rooms: HashMap::new(),
            }),
            next: AtomicU64::new(1),
            queue: queue.max(1),
            dropped_slow: AtomicU64::new(0),
        })
    }

    /// Registers a connection in `rooms`; returns its guard and its receiver.
    pub fn register(self: &Arc<Self>, rooms: &[R]) -> (Registration<R, M>, mpsc::Receiver<M>) {
        let (tx, rx) = mpsc::channel(self.queue);
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let mut g = self.inner.lock().expect("hub");
        for r in rooms {
            g.rooms.entry(r.clone()).or_default().insert(id);
        }
        g.conns.insert(
            id,
            Conn {
                tx,
                rooms: rooms.to_vec(),
            },
        );
        drop(g);
        (
            Registration {
                hub: self.clone(),
                id,
            },
            rx,
        )
    }

    /// Sends `msg` to every connection in any of `rooms` (once each), except `skip`.
    /// Returns how many queues took it.
    pub fn send(&self, rooms: &[R], msg: &M, skip: Option<ConnId>) -> usize {
        let mut g = self.inner.lock().expect("hub");
        let mut targets: Vec<ConnId> = Vec::new();
        for r in rooms {
            if let Some(set) = g.rooms.get(r) {
                targets.extend(set.iter().copied().filter(|id| Some(*id) != skip));
            }
        }
        if rooms.len() > 1 {
            targets.sort_unstable();
            targets.dedup();
        }
        let mut sent = 0;
        let mut slow = Vec::new();
        for id in targets {
            if let Some(c) = g.conns.get(&id) {
                match c.tx.try_send(msg.clone()) {
                    Ok(()) => sent += 1,
                    Err(mpsc::error::TrySendError::Full(_)) => slow.push(id),
                    Err(mpsc::error::TrySendError::Closed(_)) => {}
                }
            }
        }
        for id in slow {
            // Dropping the sender ends the connection's receiver: its task closes the socket.
            if let Some(c) = g.conns.remove(&id) {
                self.dropped_slow.fetch_add(1, Ordering::Relaxed);
                for r in c.rooms {
                    if let Some(set) = g.rooms.get_mut(&r) {
                        set.remove(&id);
                    }
                }
            }
        }
        sent
    }

    /// Sends `msg` to every connection (rare broadcasts such as team availability). A full
    /// queue skips the message rather than dropping the connection: it is advisory.
    pub fn send_all(&self, msg: &M) -> usize {
        let g = self.inner.lock().expect("hub");
        g.conns
            .values()
            .filter(|c| c.tx.try_send(msg.clone()).is_ok())
            .count()
    }

    pub fn connections(&self) -> usize {
        self.inner.lock().expect("hub").conns.len()
    }

    pub fn in_room(&self, room: &R) -> usize {
        self.inner
            .lock()
            .expect("hub")
            .rooms
            .get(room)
            .map_or(0, |s| s.len())
    }

    pub fn dropped_slow(&self) -> u64 {
        self.dropped_slow.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn rooms_fan_out_once_and_drop_unregisters() {
        let hub: Arc<Hub<u8, u32>> = Hub::new(4);
        let (a, mut ra) = hub.register(&[1, 2]);
        let (_b, mut rb) = hub.register(&[2]);
        assert_eq!(hub.send(&[1, 2], &7, None), 2);
        assert_eq!(ra.recv().await, Some(7));
        assert_eq!(rb.recv().await, Some(7));
        assert_eq!(hub.send(&[2], &8, Some(a.id)), 1);
        drop(a);
        assert_eq!(hub.connections(), 1);
        assert_eq!(hub.in_room(&1), 0);
        assert_eq!(hub.send(&[1], &9, None), 0);
    }

    #[tokio::test]
    async fn a_full_queue_drops_the_connection() {
        let hub: Arc<Hub<u8, u32>> = Hub::new(2);
        let (_a, mut ra) = hub.register(&[1]);
        for i in 0..3 {
            hub.send(&[1], &i, None);
        }
        assert_eq!(hub.dropped_slow(), 1);
        assert_eq!(ra.recv().await, Some(0));
        assert_eq!(ra.recv().await, Some(1));
        assert_eq!(ra.recv().await, None, "the receiver ends once dropped");
    }
}
