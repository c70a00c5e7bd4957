//! Login rate limiting with growing delays instead of a lock.
//!
//! Failures are counted per (account, client) pair and per client. Each key has some free
//! failures; after them every further failure makes that key wait before its next try, twice as
//! long each time (1 s, 2 s, 4 s, ... up to `[auth] login_max_delay`). Nothing is ever locked
//! for everyone: guesses at an account from one client do not slow the account's owner on
//! another, and one client's failures do not slow other clients (behind a reverse proxy the
//! client is told apart by `X-Forwarded-For` when `[server] trusted_proxies` names the proxy).
//! Failures are forgotten `[auth] login_window` after the last one.
//!
//! In memory on purpose: a restart forgets the counts, which costs an attacker a restart per
//! window and keeps logins free of database writes.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Keeps at most this many keys; beyond it, keys with no failure in the window are dropped
/// first, so a flood of distinct emails cannot grow memory without bound.
const MAX_KEYS: usize = 50_000;

/// The first wait after the free failures; each later one doubles it.
const FIRST_DELAY: Duration = Duration::from_secs(1);

pub struct LoginLimiter {
    window: Duration,
    per_ip: u32,
    per_account: u32,
    max_delay: Duration,
    keys: Mutex<HashMap<String, Entry>>,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    last_failure: Instant,
    blocked_until: Option<Instant>,
}

impl LoginLimiter {
    pub fn new(window: Duration, per_ip: u32, per_account: u32, max_delay: Duration) -> Self {
        LoginLimiter {
            window,
            per_ip: per_ip.max(1),
            per_account: per_account.max(1),
            max_delay: max_delay.max(FIRST_DELAY),
            keys: Mutex::new(HashMap::new()),
        }
    }

    fn keys(&self, ip: Option<&str>, account: &str) -> [(String, u32); 2] {
        let ip = ip.unwrap_or("-");
        let account = account.trim().to_ascii_lowercase();
        [
            (format!("ip:{ip}"), self.per_ip),
            (format!("pair:{ip}:{account}"), self.per_account),
        ]
    }

    /// The wait after the `excess`-th failure beyond the free ones (0-based).
    fn delay(&self, excess: u32) -> Duration {
        FIRST_DELAY
            .checked_mul(1u32.checked_shl(excess).unwrap_or(u32::MAX))
            .unwrap_or(self.max_delay)
            .min(self.max_delay)
    }

    /// Counts an attempt as failed up front, atomically with the check, so a burst of
    /// parallel guesses cannot all slip through before the first failure is recorded.
    /// `Err(retry_after)` (nothing counted) while the client, or this client for this account,
    /// has to wait. Call [`LoginLimiter::succeeded`] if the password was right.
    pub fn try_attempt(&self, ip: Option<&str>, account: &str) -> Result<(), Duration> {
        self.try_attempt_at(Instant::now(), ip, account)
    }

    /// [`LoginLimiter::try_attempt`] at time `now` (tests drive the clock).
    pub fn try_attempt_at(
        &self,
        now: Instant,
        ip: Option<&str>,
        account: &str,
    ) -> Result<(), Duration> {
        let keys = self.keys(ip, account);
        let mut map = self.keys.lock().expect("login limiter");
        let mut wait = None::<Duration>;
        for (key, _) in &keys {
            let Some(e) = map.get_mut(key) else { continue };
            if now.saturating_duration_since(e.last_failure) >= self.window {
                map.remove(key);
                continue;
            }
            if let Some(until) = e.blocked_until.filter(|u| *u > now) {
                let w = until - now;
                wait = Some(wait.map_or(w, |x| x.max(w)));
            }
        }
        if let Some(w) = wait {
            // Whole seconds for Retry-After, never 0.
            let secs = w.as_secs() + u64::from(w.subsec_nanos() > 0);
            return Err(Duration::from_secs(secs.max(1)));
        }
        if map.len() >= MAX_KEYS {
            let window = self.window;
            map.retain(|_, e| now.saturating_duration_since(e.last_failure) < window);
        }
        for (key, free) in keys {
            let e = map.entry(key).or_insert(Entry {
                failures: 0,
                last_failure: now,
                blocked_until: None,
            });
            e.failures = e.failures.saturating_add(1);
            e.last_failure = now;
            if e.failures >= free {
                e.blocked_until = Some(now + self.delay(e.failures - free));
            }
        }
        Ok(())
    }

    /// The attempt was a success: the pair's failures are forgotten, and the attempt no longer
    /// counts against the client (whose other failures stay: one good password must not buy
    /// a client fresh guesses at other accounts).
    pub fn succeeded(&self, ip: Option<&str>, account: &str) {
        let [(ip_key, free), (pair_key, _)] = self.keys(ip, account);
        let mut map = self.keys.lock().expect("login limiter");
        map.remove(&pair_key);
        if let Some(e) = map.get_mut(&ip_key) {
            e.failures = e.failures.saturating_sub(1);
            if e.failures < free {
                e.blocked_until = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn delays_grow_per_account_and_client_and_spare_other_clients() {
        let l = LoginLimiter::new(HOUR, 100, 3, Duration::from_secs(60));
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        for _ in 0..3 {
            assert!(l.try_attempt_at(at(0), Some("1.1.1.1"), "a@x").is_ok());
        }
        // The third failure used the free ones up: 1 s wait, then 2, 4, 8 ... capped at 60.
        assert_eq!(
            l.try_attempt_at(at(0), Some("1.1.1.1"), "A@x"),
            Err(Duration::from_secs(1))
        );
        // The owner of the account, on another client, is not slowed at all.
        assert!(l.try_attempt_at(at(0), Some("2.2.2.2"), "a@x").is_ok());
        l.succeeded(Some("2.2.2.2"), "a@x");
        let mut t = 1;
        for expected in [2, 4, 8, 16, 32, 60, 60] {
            assert!(l.try_attempt_at(at(t), Some("1.1.1.1"), "a@x").is_ok());
            assert_eq!(
                l.try_attempt_at(at(t), Some("1.1.1.1"), "a@x"),
                Err(Duration::from_secs(expected)),
                "after {t}s"
            );
            t += expected;
        }
        // Forgotten a window after the last failure.
        assert!(
            l.try_attempt_at(at(t + 3600), Some("1.1.1.1"), "a@x")
                .is_ok()
        );
        assert!(
            l.try_attempt_at(at(t + 3600), Some("1.1.1.1"), "a@x")
                .is_ok()
        );
    }

    #[test]
    fn a_client_spraying_many_accounts_waits_too() {
        let l = LoginLimiter::new(HOUR, 3, 100, HOUR);
        let t0 = Instant::now();
        for i in 0..3 {
            assert!(
                l.try_attempt_at(t0, Some("9.9.9.9"), &format!("u{i}@x"))
                    .is_ok()
            );
        }
        assert!(l.try_attempt_at(t0, Some("9.9.9.9"), "u9@x").is_err());
        assert!(l.try_attempt_at(t0, Some("8.8.8.8"), "u9@x").is_ok());
        // A success gives its own slot back, not the earlier failures.
        l.succeeded(Some("8.8.8.8"), "u9@x");
        assert!(
            l.try_attempt_at(t0 + Duration::from_secs(2), Some("9.9.9.9"), "u1@x")
                .is_ok()
        );
    }

    #[test]
    fn a_success_clears_the_pair() {
        let l = LoginLimiter::new(HOUR, 100, 2, HOUR);
        let t0 = Instant::now();
        assert!(l.try_attempt_at(t0, None, "a@x").is_ok());
        assert!(l.try_attempt_at(t0, None, "a@x").is_ok());
        assert!(l.try_attempt_at(t0, None, "a@x").is_err());
        let later = t0 + Duration::from_secs(1);
        assert!(l.try_attempt_at(later, None, "a@x").is_ok());
        l.succeeded(None, "a@x");
        assert!(l.try_attempt_at(later, None, "a@x").is_ok());
        assert!(l.try_attempt_at(later, None, "a@x").is_ok());
    }
}
