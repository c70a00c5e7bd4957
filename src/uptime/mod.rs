//! Uptime monitoring (issue 15): the pure core, before it has tables, routes or workers.
//!
//! Everything here is a plain function or a small async executor, tested on its own; nothing
//! reads the clock (callers pass `now`), opens the database or spawns a task. The integration
//! after the shared-pieces refactor (issue 13: `Part`, `worker.rs`, `store/queue.rs`, `net.rs`)
//! wires it like this:
//!
//! - **Saving a monitor** parses its conditions ([`conditions::Condition::parse`], the error
//!   carries the byte position for the form), its schedule ([`schedule::ScheduleSpec::compile`])
//!   and its maintenance windows ([`maintenance::Window`]); stored monitors keep the source text
//!   and are parsed again when loaded (parsing cannot fail for text that was accepted).
//! - **Active checks** (http, keyword, json, tcp, tls, dns): a scheduler on `worker.rs` pops due
//!   monitors from the durable queue (`store/queue.rs`, key = next due time from
//!   [`schedule::Schedule::next_after`]) and runs [`checks::run`] with the one client from
//!   `net.rs`. The [`checks::CheckResult`] is judged by [`checks::judge`] (built-in criteria plus
//!   the monitor's conditions; the same call answers the form's "test now" button with the
//!   failing condition and why). The verdict goes into [`monitor::observe`].
//! - **Pushed signals** (Healthchecks pings, Uptime Kuma pushes, Sentry check-ins from ingest's
//!   `Work::CheckIn`) go into [`heartbeat::apply`] with the ping's own timestamp; a due-time
//!   entry in the same queue at [`heartbeat::HeartbeatState::next_wakeup`] feeds
//!   [`heartbeat::Input::Tick`]. At start-up the part feeds [`heartbeat::Input::Outage`] with the
//!   last instant the process is known to have been alive and the start time, so expected times
//!   that fell while Hearth itself was down come out as `unknown`, not `missed`.
//! - **State changes**: both evaluators return the new state plus [`monitor::Event`]s. The part
//!   writes the new state, the raw result, the [`rollup`] buckets and, for
//!   `Event::Notify`, a `monitor.<slug>.down` / `monitor.<slug>.up` bus message through
//!   `bus::Publisher::new(&txn)` **in the same write transaction**, so an alert is published if
//!   and only if the state change is committed. The state survives a restart; a recovery that
//!   happened meanwhile still publishes its UP, because notification compares the state with
//!   the last state that was notified ([`monitor::Alerting`]).
//! - **Reading**: incidents come from [`rollup::incidents`] over the stored state changes;
//!   uptime figures and the 90 daily bars from [`rollup`] buckets; the public page and the
//!   badge from [`status_page::render`] and [`status_page::badge`] over a view built from
//!   rollups (no scan of raw results per request).

pub mod api;
pub mod check_result;
pub mod checks;
pub mod conditions;
pub mod events;
pub mod heartbeat;
pub mod maintenance;
pub mod monitor;
pub mod pages;
pub mod queue;
pub mod rollup;
pub mod schedule;
pub mod service;
pub mod signals;
pub mod status_page;
pub mod store;

pub use service::{Uptime, UptimeConfig};

use jiff::SignedDuration;

/// Parses a duration such as `240h`, `7d`, `1h30m`, `1.5h`, `500ms` or `90s` (units `ms`, `s`,
/// `m`, `h`, `d` = 24 h, `w` = 7 d; at least one `<number><unit>` pair; no sign).
pub fn parse_duration(text: &str) -> Option<SignedDuration> {
    let s = text.trim();
    if s.is_empty() {
        return None;
    }
    let mut total_ms = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return None;
        }
        let number: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(rest.len());
        let unit_ms = match &rest[..unit_len] {
            "ms" => 1.0,
            "s" => 1_000.0,
            "m" => 60_000.0,
            "h" => 3_600_000.0,
            "d" => 86_400_000.0,
            "w" => 604_800_000.0,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total_ms += number * unit_ms;
    }
    // Ten thousand years is more than any monitor needs and keeps the i64 conversion exact.
    if !total_ms.is_finite() || total_ms > 3.2e14 {
        return None;
    }
    Some(SignedDuration::from_millis(total_ms.round() as i64))
}

/// Formats a duration the way [`parse_duration`] reads it, largest units first (`10d 4h`).
pub fn format_duration(d: SignedDuration) -> String {
    let negative = d.is_negative();
    let mut secs = d.as_secs().unsigned_abs();
    if secs == 0 {
        return if d.subsec_millis() == 0 {
            "0s".into()
        } else {
            format!("{}ms", d.as_millis())
        };
    }
    let mut parts = Vec::new();
    for (unit, size) in [("d", 86_400u64), ("h", 3_600), ("m", 60), ("s", 1)] {
        if secs >= size {
            parts.push(format!("{}{unit}", secs / size));
            secs %= size;
        }
        if parts.len() == 2 {
            break;
        }
    }
    let text = parts.join(" ");
    if negative { format!("-{text}") } else { text }
}

/// Serde for durations as text (`"5m"`, `"30s"`), read with [`parse_duration`].
pub mod duration_text {
    use jiff::SignedDuration;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &SignedDuration, s: S) -> Result<S::Ok, S::Error> {
        if d.subsec_millis() == 0 {
            s.collect_str(&format_args!("{}s", d.as_secs()))
        } else {
            s.collect_str(&format_args!("{}ms", d.as_millis()))
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SignedDuration, D::Error> {
        let text = String::deserialize(d)?;
        super::parse_duration(&text).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "'{text}' is not a duration; write e.g. 30s, 5m, 2h or 7d"
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_in_gatus_and_day_units() {
        assert_eq!(
            parse_duration("240h"),
            Some(SignedDuration::from_hours(240))
        );
        assert_eq!(parse_duration("7d"), Some(SignedDuration::from_hours(168)));
        assert_eq!(parse_duration("1h30m"), Some(SignedDuration::from_mins(90)));
        assert_eq!(parse_duration("1.5h"), Some(SignedDuration::from_mins(90)));
        assert_eq!(
            parse_duration("500ms"),
            Some(SignedDuration::from_millis(500))
        );
        assert_eq!(parse_duration("2w"), Some(SignedDuration::from_hours(336)));
        for bad in ["", "h", "10", "10x", "-1h", "1h 30m", "1e9999h", "..5h"] {
            assert_eq!(parse_duration(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn durations_format_with_two_largest_units() {
        assert_eq!(format_duration(SignedDuration::from_hours(244)), "10d 4h");
        assert_eq!(format_duration(SignedDuration::from_secs(59)), "59s");
        assert_eq!(format_duration(SignedDuration::from_millis(20)), "20ms");
        assert_eq!(format_duration(SignedDuration::from_secs(-3600)), "-1h");
    }
}
