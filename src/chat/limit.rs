//! Fixed-window counters per key (visitor, IP), bounded in memory.

use std::collections::HashMap;
use std::sync::Mutex;

/// Keys kept at most; past this, windows that have ended are swept, and if that frees
/// nothing the whole map is cleared (a flood of keys resets limits rather than growing memory).
const MAX_KEYS: usize = 100_000;

pub struct Limiter {
    window_ms: i64,
    max: u32,
    map: Mutex<HashMap<String, (i64, u32)>>,
}

impl Limiter {
    pub fn new(window_ms: i64, max: u32) -> Self {
        Limiter {
            window_ms,
            max,
            map: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one attempt for `key` at `now_ms`; `Err(retry_after_ms)` when over the limit.
    /// A limit of 0 means unlimited.
    pub fn hit(&self, key: &str, now_ms: i64) -> Result<(), i64> {
        if self.max == 0 {
            return Ok(());
        }
        let mut map = self.map.lock().expect("limiter");
        if map.len() >= MAX_KEYS && !map.contains_key(key) {
            let window = self.window_ms;
            map.retain(|_, (start, _)| now_ms - *start < window);
            if map.len() >= MAX_KEYS {
                map.clear();
            }
        }
        let slot = map.entry(key.to_string()).or_insert((now_ms, 0));
        if now_ms - slot.0 >= self.window_ms {
            *slot = (now_ms, 0);
        }
        if slot.1 >= self.max {
            return Err(self.window_ms - (now_ms - slot.0));
        }
        slot.1 += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_limits_and_resets() {
        let l = Limiter::new(1000, 2);
        assert!(l.hit("a", 0).is_ok());
        assert!(l.hit("a", 10).is_ok());
        assert_eq!(l.hit("a", 400), Err(600));
        assert!(l.hit("b", 400).is_ok());
        assert!(l.hit("a", 1000).is_ok());
    }
}
