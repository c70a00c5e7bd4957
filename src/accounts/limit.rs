//! Login rate limiting: failed attempts per client IP and per account in a sliding window.
//!
//! In memory on purpose: a restart forgets the counts, which costs an attacker a restart per
//! window and keeps logins free of database writes.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Keeps at most this many keys; beyond it, keys with no failure in the window are dropped
/// first, so a flood of distinct emails cannot grow memory without bound.
const MAX_KEYS: usize = 50_000;

pub struct LoginLimiter {
    window: Duration,
    per_ip: u32,
    per_account: u32,
    failures: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl LoginLimiter {
    pub fn new(window: Duration, per_ip: u32, per_account: u32) -> Self {
        LoginLimiter {
            window,
            per_ip,
            per_account,
            failures: Mutex::new(HashMap::new()),
        }
    }

    fn keys(ip: Option<&str>, account: &str) -> [(Option<String>, u32); 2] {
        [
            (ip.map(|ip| format!("ip:{ip}")), 0),
            (
                Some(format!("acct:{}", account.trim().to_ascii_lowercase())),
                1,
            ),
        ]
    }

    /// Counts an attempt as failed up front, atomically with the check, so a burst of
    /// parallel guesses cannot all slip through before the first failure is recorded.
    /// `Err(retry_after)` (nothing counted) when the IP or the account has used up its
    /// failures in the window. Call [`LoginLimiter::succeeded`] if the password was right.
    pub fn try_attempt(&self, ip: Option<&str>, account: &str) -> Result<(), Duration> {
        let now = Instant::now();
        let mut map = self.failures.lock().expect("login limiter");
        let mut wait = None::<Duration>;
        let keys = Self::keys(ip, account);
        for (key, kind) in &keys {
            let Some(key) = key else { continue };
            let limit = if *kind == 0 {
                self.per_ip
            } else {
                self.per_account
            } as usize;
            let Some(q) = map.get_mut(key) else { continue };
            while q
                .front()
                .is_some_and(|t| now.duration_since(*t) >= self.window)
            {
                q.pop_front();
            }
            if q.len() >= limit.max(1) {
                // Free again when the oldest failure that still counts leaves the window.
                let until = q[q.len() - limit.max(1)] + self.window;
                let w = until
                    .saturating_duration_since(now)
                    .max(Duration::from_secs(1));
                wait = Some(wait.map_or(w, |x| x.max(w)));
            }
        }
        if let Some(w) = wait {
            return Err(w);
        }
        if map.len() >= MAX_KEYS {
            let window = self.window;
            map.retain(|_, q| q.back().is_some_and(|t| now.duration_since(*t) < window));
        }
        for (key, _) in keys {
            if let Some(key) = key {
                map.entry(key).or_default().push_back(now);
            }
        }
        Ok(())
    }

    /// The attempt was a success: it no longer counts against the IP, and the account's
    /// failures are forgotten (the IP's are not: one good password must not buy an IP fresh
    /// guesses at other accounts).
    pub fn succeeded(&self, ip: Option<&str>, account: &str) {
        let mut map = self.failures.lock().expect("login limiter");
        let [(ip_key, _), (acct_key, _)] = Self::keys(ip, account);
        if let Some(k) = ip_key
            && let Some(q) = map.get_mut(&k)
        {
            q.pop_back();
        }
        if let Some(k) = acct_key {
            map.remove(&k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_per_account_and_per_ip() {
        let l = LoginLimiter::new(Duration::from_secs(60), 3, 2);
        assert!(l.try_attempt(Some("1.1.1.1"), "a@x").is_ok());
        assert!(l.try_attempt(Some("1.1.1.1"), "A@x").is_ok());
        let wait = l.try_attempt(Some("2.2.2.2"), "a@x").unwrap_err();
        assert!(wait <= Duration::from_secs(60) && wait >= Duration::from_secs(1));
        assert!(l.try_attempt(Some("1.1.1.1"), "b@x").is_ok());
        assert!(l.try_attempt(Some("1.1.1.1"), "c@x").is_err(), "ip limit");
        // A success gives its slot back to the IP and clears the account.
        l.succeeded(Some("1.1.1.1"), "b@x");
        assert!(l.try_attempt(Some("1.1.1.1"), "c@x").is_ok());
        assert!(l.try_attempt(None, "d@x").is_ok());
        l.succeeded(None, "a@x");
        assert!(l.try_attempt(Some("3.3.3.3"), "a@x").is_ok());
    }
}
