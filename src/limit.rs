//! Small shared limits: address blocks (`[server] trusted_proxies`), concurrent connections per
//! client address, the one keyed windowed rate limiter ([`KeyedWindows`]), and log lines that
//! would otherwise repeat once per request.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An address block, `10.0.0.0/8`, `::1/128`, or a single address (`127.0.0.1`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn contains(&self, ip: IpAddr) -> bool {
        // An IPv4 client reached over an IPv6 socket is `::ffff:a.b.c.d`.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }

    /// Whether any block of `list` contains `ip`.
    pub fn any_contains(list: &[Cidr], ip: IpAddr) -> bool {
        list.iter().any(|c| c.contains(ip))
    }
}

impl FromStr for Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let bad = || format!("{s:?} is not an address or address block like 10.0.0.0/8");
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(bad)?,
            None => max,
        };
        Ok(Cidr { addr, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl fmt::Debug for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Serialize for Cidr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Open connections per client address, with a ceiling.
#[derive(Clone, Default)]
pub struct ConnLimiter {
    open: Arc<Mutex<HashMap<IpAddr, u32>>>,
}

/// One counted connection; dropping it frees the slot.
pub struct ConnSlot {
    open: Arc<Mutex<HashMap<IpAddr, u32>>>,
    ip: IpAddr,
}

impl ConnLimiter {
    /// A slot for one more connection from `ip`, or `None` when it already has `max` open.
    pub fn acquire(&self, ip: IpAddr, max: u32) -> Option<ConnSlot> {
        let mut open = self.open.lock().expect("connection limiter");
        let n = open.entry(ip).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(ConnSlot {
            open: self.open.clone(),
            ip,
        })
    }

    /// Connections open from `ip` now.
    pub fn open(&self, ip: IpAddr) -> u32 {
        let open = self.open.lock().expect("connection limiter");
        open.get(&ip).copied().unwrap_or(0)
    }
}

impl Drop for ConnSlot {
    fn drop(&mut self) {
        let mut open = self.open.lock().expect("connection limiter");
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// Where a key's counting window starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Windows {
    /// At the key's first counted hit (a rolling start per key).
    FromFirstHit,
    /// On the clock: windows are `[k·len, (k+1)·len)` for everyone (per clock minute, say).
    OnTheClock,
}

/// Keys kept at most; past this, windows that have ended are swept, and if that frees nothing
/// the whole map is cleared (a flood of keys resets limits rather than growing memory).
const MAX_WINDOW_KEYS: usize = 100_000;

/// One keyed windowed rate limiter: at most `max` hits per key per window of `window_ms`,
/// bounded in memory. Times are milliseconds from any fixed origin (callers pass `now_ms`).
pub struct KeyedWindows {
    window_ms: i64,
    max: u32,
    windows: Windows,
    map: Mutex<HashMap<String, (i64, u32)>>,
}

impl KeyedWindows {
    pub fn new(window_ms: i64, max: u32, windows: Windows) -> Self {
        KeyedWindows {
            window_ms: window_ms.max(1),
            max,
            windows,
            map: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one hit for `key` at `now_ms`; `Err(retry_after_ms)` (nothing counted) when the
    /// key has used its window up. A limit of 0 means unlimited.
    pub fn hit(&self, key: &str, now_ms: i64) -> Result<(), i64> {
        if self.max == 0 {
            return Ok(());
        }
        let start = match self.windows {
            Windows::FromFirstHit => now_ms,
            Windows::OnTheClock => now_ms.div_euclid(self.window_ms) * self.window_ms,
        };
        let mut map = self.map.lock().expect("rate limiter");
        if map.len() >= MAX_WINDOW_KEYS && !map.contains_key(key) {
            let window = self.window_ms;
            map.retain(|_, (began, _)| now_ms - *began < window);
            if map.len() >= MAX_WINDOW_KEYS {
                map.clear();
            }
        }
        let slot = map.entry(key.to_string()).or_insert((start, 0));
        let ended = match self.windows {
            Windows::FromFirstHit => now_ms - slot.0 >= self.window_ms,
            Windows::OnTheClock => slot.0 != start,
        };
        if ended {
            *slot = (start, 0);
        }
        if slot.1 >= self.max {
            return Err(self.window_ms - (now_ms - slot.0));
        }
        slot.1 += 1;
        Ok(())
    }
}

/// Lets a repeating log line through at most once per `every`, counting what it held back, so
/// a condition hit by every request (a full disk, a connection flood) logs a line every few
/// seconds instead of thousands.
pub struct LogEvery {
    every: Duration,
    start: Instant,
    /// Milliseconds after `start` when a line last went out, plus one (0: never).
    last: AtomicU64,
    held: AtomicU64,
}

impl LogEvery {
    pub fn new(every: Duration) -> Self {
        LogEvery {
            every,
            start: Instant::now(),
            last: AtomicU64::new(0),
            held: AtomicU64::new(0),
        }
    }

    /// `Some(n)` when a line may go out now (`n`: lines held back since the last one).
    pub fn allow(&self) -> Option<u64> {
        let now = self.start.elapsed().as_millis() as u64 + 1;
        let last = self.last.load(Ordering::Relaxed);
        let due = last == 0 || now.saturating_sub(last) >= self.every.as_millis() as u64;
        if due
            && self
                .last
                .compare_exchange(last, now, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            return Some(self.held.swap(0, Ordering::AcqRel));
        }
        self.held.fetch_add(1, Ordering::Relaxed);
        None
    }

    /// Lets the next line through at once (the condition ended; its next start is news).
    pub fn reset(&self) {
        self.last.store(0, Ordering::Relaxed);
        self.held.store(0, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_parses_and_matches() {
        let c: Cidr = "10.1.0.0/16".parse().unwrap();
        assert!(c.contains("10.1.200.3".parse().unwrap()));
        assert!(!c.contains("10.2.0.1".parse().unwrap()));
        assert!(c.contains("::ffff:10.1.0.9".parse().unwrap()));
        let one: Cidr = "127.0.0.1".parse().unwrap();
        assert!(one.contains("127.0.0.1".parse().unwrap()));
        assert!(!one.contains("127.0.0.2".parse().unwrap()));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("8.8.8.8".parse().unwrap()));
        let v6: Cidr = "fd00::/8".parse().unwrap();
        assert!(v6.contains("fd12::1".parse().unwrap()));
        assert!(!v6.contains("::1".parse().unwrap()));
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!("example.com".parse::<Cidr>().is_err());
        assert_eq!(c.to_string(), "10.1.0.0/16");
    }

    #[test]
    fn connection_slots_are_counted_and_freed() {
        let l = ConnLimiter::default();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let a = l.acquire(ip, 2).unwrap();
        let _b = l.acquire(ip, 2).unwrap();
        assert!(l.acquire(ip, 2).is_none());
        assert!(l.acquire("192.0.2.2".parse().unwrap(), 2).is_some());
        drop(a);
        assert_eq!(l.open(ip), 1);
        assert!(l.acquire(ip, 2).is_some());
    }

    #[test]
    fn windows_from_the_first_hit_limit_and_reset() {
        let l = KeyedWindows::new(1000, 2, Windows::FromFirstHit);
        assert!(l.hit("a", 0).is_ok());
        assert!(l.hit("a", 10).is_ok());
        assert_eq!(l.hit("a", 400), Err(600));
        assert!(l.hit("b", 400).is_ok());
        assert!(l.hit("a", 1000).is_ok());
        // b's window began at its own first hit.
        assert!(l.hit("b", 1300).is_ok());
        assert_eq!(l.hit("b", 1350), Err(50));
    }

    #[test]
    fn windows_on_the_clock_reset_at_the_boundary() {
        let l = KeyedWindows::new(60_000, 1, Windows::OnTheClock);
        assert!(l.hit("p", 59_000).is_ok());
        assert_eq!(l.hit("p", 59_500), Err(500));
        assert!(l.hit("p", 60_000).is_ok());
        let unlimited = KeyedWindows::new(60_000, 0, Windows::OnTheClock);
        assert!((0..10).all(|_| unlimited.hit("p", 1).is_ok()));
    }

    #[test]
    fn log_every_holds_back_repeats() {
        let l = LogEvery::new(Duration::from_secs(3600));
        assert_eq!(l.allow(), Some(0));
        assert_eq!(l.allow(), None);
        assert_eq!(l.allow(), None);
        l.reset();
        assert_eq!(l.allow(), Some(0));
    }
}
