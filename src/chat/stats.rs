//! Chat and ticket analytics, computed from conversations and CSAT rows.
//!
//! Definitions (wall-clock time, milliseconds; the README repeats them):
//! - the set: conversations *created* in `[from, to)`;
//! - **first response time**: first non-private agent message − creation, over those answered;
//! - **resolution time**: last resolution − creation, over those resolved at least once;
//! - **resolution rate**: resolved or closed now ÷ all in the set;
//! - **reopen rate**: reopened at least once ÷ resolved at least once;
//! - **CSAT**: mean rating and number of ratings given to conversations in the set.
//! - **business-hours time** (`first_response_business_ms`, `resolution_business_ms`): the
//!   same spans counting only the time inside the site's business hours, in its time zone
//!   ([`super::hours::business_ms`]); a site without hours is always open, so there it equals
//!   the wall-clock time.
//!
//! Each figure is given overall and per day (UTC day of creation), per agent (assignee now),
//! per priority and per status.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::model::{Conversation, Csat, Site, Status};

#[derive(Default)]
struct Acc {
    count: u64,
    first_response: Vec<i64>,
    resolution: Vec<i64>,
    first_response_business: Vec<i64>,
    resolution_business: Vec<i64>,
    resolved_now: u64,
    resolved_once: u64,
    reopened: u64,
    ratings: Vec<u8>,
}

impl Acc {
    fn add(&mut self, c: &Conversation, ratings: &[u8], site: Option<&Site>) {
        let business = |until: i64| match site {
            Some(s) => super::hours::business_ms(s, c.created_ms, until),
            None => until - c.created_ms,
        };
        self.count += 1;
        if let Some(f) = c.first_reply_ms {
            self.first_response.push(f - c.created_ms);
            self.first_response_business.push(business(f));
        }
        if let Some(r) = c.resolved_ms {
            self.resolution.push(r - c.created_ms);
            self.resolution_business.push(business(r));
            self.resolved_once += 1;
            if c.reopened > 0 {
                self.reopened += 1;
            }
        }
        if matches!(c.status, Status::Resolved | Status::Closed) {
            self.resolved_now += 1;
        }
        self.ratings.extend_from_slice(ratings);
    }

    fn view(&self) -> Value {
        json!({
            "conversations": self.count,
            "first_response_ms": summary(&self.first_response),
            "resolution_ms": summary(&self.resolution),
            "first_response_business_ms": summary(&self.first_response_business),
            "resolution_business_ms": summary(&self.resolution_business),
            "resolution_rate": ratio(self.resolved_now, self.count),
            "reopen_rate": ratio(self.reopened, self.resolved_once),
            "csat": {
                "average": if self.ratings.is_empty() { Value::Null } else {
                    json!(self.ratings.iter().map(|r| *r as f64).sum::<f64>() / self.ratings.len() as f64)
                },
                "responses": self.ratings.len(),
            },
        })
    }
}

fn ratio(a: u64, b: u64) -> Value {
    if b == 0 {
        Value::Null
    } else {
        json!(a as f64 / b as f64)
    }
}

/// Count, mean and median (the lower middle for an even count), in ms.
fn summary(v: &[i64]) -> Value {
    if v.is_empty() {
        return json!({"count": 0, "average": null, "median": null});
    }
    let mut s = v.to_vec();
    s.sort_unstable();
    let mean = s.iter().sum::<i64>() as f64 / s.len() as f64;
    json!({"count": s.len(), "average": mean, "median": s[(s.len() - 1) / 2]})
}

/// The report over `convs` (already filtered to the period and kind) and every CSAT row;
/// `sites` give the business hours (a conversation whose site is missing counts wall-clock).
pub fn report(
    convs: &[Conversation],
    csats: &[Csat],
    sites: &BTreeMap<u64, Site>,
    from_ms: i64,
    to_ms: i64,
) -> Value {
    let mut ratings: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
    for c in csats {
        ratings.entry(c.conversation_id).or_default().push(c.rating);
    }
    let mut total = Acc::default();
    let mut by_day: BTreeMap<i64, Acc> = BTreeMap::new();
    let mut by_agent: BTreeMap<String, Acc> = BTreeMap::new();
    let mut by_priority: BTreeMap<&'static str, Acc> = BTreeMap::new();
    let mut by_status: BTreeMap<&'static str, Acc> = BTreeMap::new();
    for c in convs
        .iter()
        .filter(|c| c.created_ms >= from_ms && c.created_ms < to_ms)
    {
        let r = ratings.get(&c.id).map(Vec::as_slice).unwrap_or(&[]);
        let site = sites.get(&c.site_id);
        total.add(c, r, site);
        by_day
            .entry(c.created_ms.div_euclid(86_400_000))
            .or_default()
            .add(c, r, site);
        by_agent
            .entry(
                c.assignee
                    .map_or_else(|| "unassigned".into(), |a| a.to_string()),
            )
            .or_default()
            .add(c, r, site);
        by_priority
            .entry(c.priority.as_str())
            .or_default()
            .add(c, r, site);
        by_status
            .entry(c.status.as_str())
            .or_default()
            .add(c, r, site);
    }
    let day = |d: i64| {
        jiff::Timestamp::from_millisecond(d * 86_400_000)
            .map(|t| t.strftime("%Y-%m-%d").to_string())
            .unwrap_or_default()
    };
    json!({
        "from_ms": from_ms,
        "to_ms": to_ms,
        "total": total.view(),
        "per_day": by_day.iter().map(|(d, a)| (day(*d), a.view())).collect::<serde_json::Map<_, _>>(),
        "per_agent": by_agent.iter().map(|(k, a)| (k.clone(), a.view())).collect::<serde_json::Map<_, _>>(),
        "per_priority": by_priority.iter().map(|(k, a)| (k.to_string(), a.view())).collect::<serde_json::Map<_, _>>(),
        "per_status": by_status.iter().map(|(k, a)| (k.to_string(), a.view())).collect::<serde_json::Map<_, _>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::model::{Channel, Priority};

    const DAY: i64 = 86_400_000;
    const T0: i64 = 20_000 * DAY; // 2024-10-04T00:00:00Z

    #[allow(clippy::too_many_arguments)]
    fn conv(
        id: u64,
        created: i64,
        first: Option<i64>,
        resolved: Option<i64>,
        status: Status,
        reopened: u32,
        assignee: Option<u64>,
        priority: Priority,
    ) -> Conversation {
        Conversation {
            id,
            site_id: 1,
            visitor_id: id,
            channel: Channel::Chat,
            status,
            priority,
            assignee,
            subject: String::new(),
            created_ms: created,
            updated_ms: created,
            last_seq: 1,
            first_reply_ms: first,
            resolved_ms: resolved,
            reopened,
            preview: String::new(),
            ticket: false,
            sla_breached: 0,
        }
    }

    #[test]
    fn exact_figures_on_a_fixed_clock() {
        let convs = vec![
            // Day 1: answered after 60 s, resolved after 10 min, rated 5.
            conv(
                1,
                T0 + 1000,
                Some(T0 + 61_000),
                Some(T0 + 601_000),
                Status::Resolved,
                0,
                Some(7),
                Priority::High,
            ),
            // Day 1: answered after 120 s, resolved after 20 min, reopened and open again.
            conv(
                2,
                T0 + 2000,
                Some(T0 + 122_000),
                Some(T0 + 1_202_000),
                Status::Open,
                1,
                Some(7),
                Priority::Normal,
            ),
            // Day 2: unanswered, unassigned.
            conv(
                3,
                T0 + DAY,
                None,
                None,
                Status::Open,
                0,
                None,
                Priority::Normal,
            ),
            // Outside the period.
            conv(
                4,
                T0 + 5 * DAY,
                Some(T0 + 5 * DAY + 1),
                None,
                Status::Open,
                0,
                None,
                Priority::Low,
            ),
        ];
        let csats = vec![
            Csat {
                conversation_id: 1,
                rating: 5,
                comment: String::new(),
                agent: Some(7),
                time_ms: 0,
            },
            Csat {
                conversation_id: 2,
                rating: 2,
                comment: String::new(),
                agent: Some(7),
                time_ms: 0,
            },
            Csat {
                conversation_id: 4,
                rating: 1,
                comment: String::new(),
                agent: None,
                time_ms: 0,
            },
        ];
        let r = report(&convs, &csats, &BTreeMap::new(), T0, T0 + 2 * DAY);
        let t = &r["total"];
        assert_eq!(t["conversations"], 3);
        assert_eq!(
            t["first_response_ms"],
            json!({"count": 2, "average": 90_000.0, "median": 60_000})
        );
        assert_eq!(
            t["resolution_ms"],
            json!({"count": 2, "average": 900_000.0, "median": 600_000})
        );
        assert_eq!(t["resolution_rate"], json!(1.0 / 3.0));
        assert_eq!(t["reopen_rate"], json!(0.5));
        assert_eq!(t["csat"], json!({"average": 3.5, "responses": 2}));
        assert_eq!(r["per_day"]["2024-10-04"]["conversations"], 2);
        assert_eq!(r["per_day"]["2024-10-05"]["conversations"], 1);
        assert_eq!(r["per_agent"]["7"]["conversations"], 2);
        assert_eq!(
            r["per_agent"]["unassigned"]["first_response_ms"]["count"],
            0
        );
        assert_eq!(r["per_priority"]["high"]["resolution_rate"], json!(1.0));
        assert_eq!(r["per_status"]["open"]["conversations"], 2);
        // Without a site's hours, business time is the wall-clock time.
        assert_eq!(t["first_response_business_ms"], t["first_response_ms"]);
        assert_eq!(t["resolution_business_ms"], t["resolution_ms"]);
    }

    #[test]
    fn business_hours_figures_on_a_fixed_clock() {
        // Site 1 is open Monday to Friday 09:00-17:00 UTC. T0 is a Friday.
        let hours = ["mon", "tue", "wed", "thu", "fri"]
            .iter()
            .map(|d| (d.to_string(), json!("09:00-17:00")))
            .collect::<serde_json::Map<_, _>>();
        let site = Site {
            id: 1,
            name: "s".into(),
            site_key: "k".into(),
            identity_secret: "x".into(),
            require_identity: false,
            hours: super::super::hours::parse_hours(&Value::Object(hours)).unwrap(),
            time_zone: "UTC".into(),
            created_ms: 0,
        };
        let sites = BTreeMap::from([(1, site)]);
        const H: i64 = 3_600_000;
        let convs = vec![
            // Friday 16:00 → answered Monday 10:00 (1 h + 1 h), resolved Monday 12:00 (1 h + 3 h).
            conv(
                1,
                T0 + 16 * H,
                Some(T0 + 3 * DAY + 10 * H),
                Some(T0 + 3 * DAY + 12 * H),
                Status::Resolved,
                0,
                Some(7),
                Priority::Normal,
            ),
            // Friday 07:00 (before opening) → answered 09:30 (30 min), resolved Saturday (8 h).
            conv(
                2,
                T0 + 7 * H,
                Some(T0 + 9 * H + 1_800_000),
                Some(T0 + DAY + 10 * H),
                Status::Closed,
                0,
                Some(7),
                Priority::Normal,
            ),
        ];
        let r = report(&convs, &[], &sites, T0, T0 + DAY);
        let t = &r["total"];
        assert_eq!(
            t["first_response_business_ms"],
            json!({"count": 2, "average": 4_500_000.0, "median": 1_800_000})
        );
        assert_eq!(
            t["resolution_business_ms"],
            json!({"count": 2, "average": 6.0 * H as f64, "median": 4 * H})
        );
        // Wall-clock for comparison: 66 h and 2.5 h; 68 h and 27 h.
        assert_eq!(
            t["first_response_ms"],
            json!({"count": 2, "average": (66 * H + 9_000_000) as f64 / 2.0, "median": 9_000_000})
        );
        assert_eq!(t["resolution_ms"]["median"], 27 * H);
    }
}
