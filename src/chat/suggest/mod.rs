//! Reply suggestions that learn from outcomes (issue 19): a contextual bandit over canned
//! responses, rewarded by resolution and CSAT.
//!
//! - **Decision** ([`Suggest::suggest`]): when an agent opens the reply box, the context of the
//!   conversation ([`features`]) is scored against every canned response by disjoint LinUCB
//!   ([`linucb`]); the top 3 are shown with a "why". A holdout slice (`[chat] suggest_holdout`,
//!   default 10%) shows a uniformly random order instead. Every decision is logged with its
//!   context, what was shown and the propensity of the top item, and `chat.suggestion.shown`
//!   is published in the same transaction.
//! - **Use** ([`Suggest::used`]): the agent sent a suggested (or any canned) reply, edited or
//!   not → `chat.suggestion.used`. Never sent automatically.
//! - **Reward join**: the durable bus consumer `chat.suggest` reads `chat.suggestion.used`,
//!   `chat.conversation.resolved`, `chat.conversation.reopened` and `chat.csat.submitted`.
//!   A use is a pull of the arm (`A += x xᵀ`, reward 0); the reward
//!   `resolved without reopen within [chat] suggest_reward_window (7 days) + 0.25·(csat − 3)/2`
//!   is credited to `b` when the outcome arrives, and taken back on a reopen within the window.
//!   No resolution within the window = reward 0. Each handler computes the target reward from
//!   the stored state and applies only the difference to what was credited, in the same
//!   transaction as the model row, so a replayed or redelivered event changes nothing.
//! - **Evaluation** ([`Suggest::stats`]): acceptance, resolution with/without a used
//!   suggestion, and IPS/SNIPS ([`ope`]) of the learned (greedy) policy on the holdout
//!   decisions, against the holdout's own mean, with 95% intervals.

pub mod api;
pub mod features;
pub mod linucb;
pub mod ope;
pub mod prune;
mod stats;
mod stored;

pub use stored::decode_decision;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use redb::{ReadableTable, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::model::{Canned, Conversation, Entry, Site};
use super::{ChatError, ChatResult, Clock};
use crate::bus::{Bus, ConsumerSpec, Delivery, Outcome, Priority as BusPriority, StartAt};
use crate::config::Config;
use crate::store::{Db, StoreResult, codec};
use linucb::{Arm, Params};

/// canned response id → ArmState
pub const ARMS: TableDefinition<u64, &[u8]> = TableDefinition::new("chat_suggest_arms");
/// decision id → Decision
pub const DECISIONS: TableDefinition<u64, &[u8]> = TableDefinition::new("chat_suggest_decisions");
/// conversation id → Join
pub const JOINS: TableDefinition<u64, &[u8]> = TableDefinition::new("chat_suggest_joins");
/// counter name → last value
pub const META: TableDefinition<&str, u64> = TableDefinition::new("chat_suggest_meta");
/// (time a conversation's join may be final, conversation id) → () — what [`prune`] visits.
/// New table (created on start, like the others here): no migration needed.
pub const PENDING: TableDefinition<(i64, u64), ()> = TableDefinition::new("chat_suggest_pending");

pub fn ensure_tables(txn: &WriteTransaction) -> StoreResult<()> {
    txn.open_table(ARMS)?;
    txn.open_table(DECISIONS)?;
    txn.open_table(JOINS)?;
    txn.open_table(META)?;
    txn.open_table(PENDING)?;
    prune::no_backfill_if_empty(txn)?;
    Ok(())
}

/// Per canned reply: (UCB score, expected reward), and (uses, resolved).
type Scored = (Vec<(f64, f64)>, Vec<(u64, u64)>);

/// Suggestions shown per decision.
pub const SHOWN: usize = 3;
/// Decisions (and uses) remembered per conversation.
const PER_CONV: usize = 64;
/// Decisions read for the admin page (newest first).
const STATS_WINDOW: u64 = 20_000;
/// The consumer's name.
pub const CONSUMER: &str = "chat.suggest";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ArmState {
    pub arm: Arm,
    /// Uses of this reply (pulls).
    pub used: u64,
    /// Uses whose conversation resolved without reopening within the window.
    pub resolved: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UsedRec {
    pub canned_id: u64,
    pub edited: bool,
    /// Position in the shown list (0 = top), `None` for a canned reply that was not shown.
    pub rank: Option<u8>,
    pub time_ms: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Decision {
    pub id: u64,
    pub conversation_id: u64,
    pub agent: u64,
    pub time_ms: i64,
    pub x: Vec<f64>,
    pub intent: u8,
    /// Shown canned ids, best first.
    pub shown: Vec<u64>,
    /// Canned responses that were eligible.
    pub eligible: u32,
    pub holdout: bool,
    /// Probability that the logging policy put `shown[0]` on top.
    pub pscore: f64,
    pub used: Option<UsedRec>,
    /// The use has reached the model (set by the consumer).
    pub applied: bool,
    /// The final reward, once the reward window has passed and the conversation's join is
    /// pruned ([`prune`]); until then it is computed from the join.
    pub outcome: Option<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Use {
    pub decision: u64,
    pub canned_id: u64,
    /// The arm's update count right after this pull (for the discount of a late reward).
    pub at: u64,
    pub time_ms: i64,
    /// Reward credited so far.
    pub credited: f64,
    /// Whether the resolution part (1) is in `credited`.
    pub resolved: bool,
}

/// Everything known about one conversation's suggestions and outcome.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Join {
    pub decisions: Vec<u64>,
    pub uses: Vec<Use>,
    pub resolved_ms: Option<i64>,
    /// Reopened within the window after a resolution: the resolution earns nothing.
    pub spoiled: bool,
    pub csat: Option<u8>,
}

impl Join {
    fn resolved_within(&self, since_ms: i64, window_ms: i64) -> bool {
        !self.spoiled
            && self
                .resolved_ms
                .is_some_and(|t| t >= since_ms && t - since_ms <= window_ms)
    }

    /// The reward of an action taken at `since_ms`: resolution part + CSAT part.
    pub fn reward(&self, since_ms: i64, window_ms: i64) -> (f64, bool) {
        let resolved = self.resolved_within(since_ms, window_ms);
        let csat = self
            .csat
            .map(|c| 0.25 * (c as f64 - 3.0) / 2.0)
            .unwrap_or(0.0);
        (if resolved { 1.0 } else { 0.0 } + csat, resolved)
    }
}

/// One suggestion as the reply box shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Suggestion {
    pub canned_id: u64,
    pub shortcut: String,
    pub title: String,
    pub body: String,
    pub score: f64,
    pub why: Why,
}

#[derive(Debug, Clone, Serialize)]
pub struct Why {
    pub intent: String,
    /// Uses of this reply so far.
    pub n: u64,
    pub resolved: u64,
    /// resolved / n, when n > 0.
    pub resolution_rate: Option<f64>,
    /// The model's expected reward in this context.
    pub expected: f64,
    pub text: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Shown {
    pub decision_id: u64,
    pub holdout: bool,
    pub intent: String,
    pub suggestions: Vec<Suggestion>,
}

#[derive(Clone)]
pub struct Suggest {
    inner: Arc<Inner>,
}

struct Inner {
    db: Db,
    bus: Bus,
    config: Arc<Config>,
    clock: Arc<dyn Clock>,
    /// The model, loaded from redb on first use and kept current by the consumer.
    arms: Mutex<Option<HashMap<u64, ArmState>>>,
}

impl Suggest {
    pub fn new(db: Db, bus: Bus, config: Arc<Config>, clock: Arc<dyn Clock>) -> Suggest {
        Suggest {
            inner: Arc::new(Inner {
                db,
                bus,
                config,
                clock,
                arms: Mutex::new(None),
            }),
        }
    }

    pub fn params(&self) -> Params {
        let c = &self.inner.config.chat;
        Params {
            alpha: c.suggest_alpha,
            gamma: c.suggest_discount,
            ..Params::default()
        }
    }

    /// The randomness of the decision at `round`: from `[chat] suggest_seed` and the round
    /// when a seed is set (the same decisions replay the same way, across restarts too), else
    /// from the operating system.
    fn rng(&self, round: u64) -> StdRng {
        match self.inner.config.chat.suggest_seed {
            0 => StdRng::from_rng(&mut rand::rng()),
            seed => StdRng::seed_from_u64(seed ^ round.wrapping_mul(0x9E37_79B9_7F4A_7C15)),
        }
    }

    fn window_ms(&self) -> i64 {
        self.inner
            .config
            .chat
            .suggest_reward_window
            .get()
            .as_millis() as i64
    }

    /// Registers the reward-join consumer.
    pub fn register(&self, state: &crate::app::AppState) {
        let me = self.clone();
        state.bus.register(
            ConsumerSpec::new(
                CONSUMER,
                &[
                    "chat.suggestion.used",
                    "chat.conversation.resolved",
                    "chat.conversation.reopened",
                    "chat.csat.submitted",
                ],
            )
            .start_at(StartAt::Now),
            move |d: Delivery| {
                let me = me.clone();
                async move {
                    match me
                        .handle(&d.event.subject, d.event.json(), d.event.time_ms)
                        .await
                    {
                        Ok(()) => Outcome::Ack,
                        Err(e) => Outcome::retry(e),
                    }
                }
            },
        );
    }

    /// Runs `f` on the model (loaded from redb on first use), under its lock: the model is
    /// read in place, never copied.
    async fn with_arms<R>(&self, f: impl FnOnce(&HashMap<u64, ArmState>) -> R) -> ChatResult<R> {
        let loaded = self.inner.arms.lock().expect("arms").is_some();
        if !loaded {
            let m = self
                .inner
                .db
                .read(|txn| {
                    let t = txn.open_table(ARMS)?;
                    let mut m = HashMap::new();
                    for row in t.iter()? {
                        let (k, v) = row?;
                        m.insert(k.value(), codec::decode::<ArmState>(v.value())?);
                    }
                    Ok::<_, ChatError>(m)
                })
                .await?;
            let mut g = self.inner.arms.lock().expect("arms");
            if g.is_none() {
                *g = Some(m);
            }
        }
        let g = self.inner.arms.lock().expect("arms");
        Ok(f(g.as_ref().expect("loaded")))
    }

    /// One arm's state (a copy), if it was ever used.
    pub async fn arm_state(&self, canned_id: u64) -> ChatResult<Option<ArmState>> {
        self.with_arms(|m| m.get(&canned_id).cloned()).await
    }

    fn cache_put(&self, updated: Vec<(u64, ArmState)>) {
        let mut g = self.inner.arms.lock().expect("arms");
        if let Some(m) = g.as_mut() {
            for (k, v) in updated {
                m.insert(k, v);
            }
        }
    }

    /// The top suggestions for conversation `conv_id`, logged as one decision.
    pub async fn suggest(&self, conv_id: u64, agent: u64) -> ChatResult<Shown> {
        let now = self.inner.clock.now_ms();
        let (conv, site, messages, canned, round) = self
            .inner
            .db
            .read(move |txn| {
                let conv: Conversation = txn
                    .open_table(super::store::CONVERSATIONS)?
                    .get(conv_id)?
                    .map(|v| codec::decode(v.value()))
                    .transpose()?
                    .ok_or(ChatError::NotFound("conversation"))?;
                let site: Option<Site> = txn
                    .open_table(super::store::SITES)?
                    .get(conv.site_id)?
                    .map(|v| codec::decode(v.value()))
                    .transpose()?;
                // The visitor's last few messages, newest last.
                let entries = txn.open_table(super::store::ENTRIES)?;
                let mut msgs = Vec::new();
                for row in entries.range((conv_id, 0)..=(conv_id, u64::MAX))?.rev() {
                    let e: Entry = codec::decode(row?.1.value())?;
                    if e.is_message() && !e.private && e.author.kind == "visitor" {
                        msgs.push(e.body);
                        if msgs.len() == 5 {
                            break;
                        }
                    }
                }
                msgs.reverse();
                let mut canned = Vec::new();
                for row in txn.open_table(super::store::CANNED)?.iter()? {
                    canned.push(codec::decode::<Canned>(row?.1.value())?);
                }
                // Rounds are decisions: an arm's idle time is counted in them.
                let round = txn
                    .open_table(META)?
                    .get("decision")?
                    .map(|v| v.value())
                    .unwrap_or(0)
                    + 1;
                Ok::<_, ChatError>((conv, site, msgs, canned, round))
            })
            .await?;
        if canned.is_empty() {
            return Err(ChatError::Invalid(
                "there are no canned responses to suggest; add some under Chat → Canned responses"
                    .into(),
            ));
        }
        let (x, intent) = features::context(&features::Inputs {
            visitor_messages: &messages,
            channel: conv.channel,
            business_hours: site
                .as_ref()
                .map(|s| super::hours::is_open(s, now))
                .unwrap_or(false),
            reopened: conv.reopened > 0,
        });
        let p = self.params();
        let ctx = linucb::Ctx::new(&x);
        let ids: Vec<u64> = canned.iter().map(|c| c.id).collect();
        // Per canned reply: (UCB score, expected reward), (uses, resolved).
        let (scored, counts): Scored = self
            .with_arms(|arms| {
                let fresh = Arm::new(features::D, p.lambda);
                ids.iter()
                    .map(|id| {
                        let st = arms.get(id);
                        let arm = st.map(|a| &a.arm).unwrap_or(&fresh);
                        let (s, m, _) = arm.score_at(&ctx, round, &p);
                        ((s, m), st.map(|s| (s.used, s.resolved)).unwrap_or((0, 0)))
                    })
                    .unzip()
            })
            .await?;
        let k = canned.len();
        let holdout_share = self.inner.config.chat.suggest_holdout.clamp(0.0, 1.0);
        let mut rng = self.rng(round);
        let holdout = holdout_share > 0.0 && rng.random::<f64>() < holdout_share;
        let order: Vec<usize> = if holdout {
            let mut v: Vec<usize> = (0..k).collect();
            v.shuffle(&mut rng);
            v
        } else {
            let s: Vec<f64> = scored.iter().map(|s| s.0).collect();
            linucb::top_k(&s, k)
        };
        // The logging policy: with probability h a uniform order, else the (deterministic)
        // LinUCB order, so the top item's propensity is h/K (+ 1 − h if LinUCB puts it there).
        let ucb_top = {
            let s: Vec<f64> = scored.iter().map(|s| s.0).collect();
            linucb::top_k(&s, 1)[0]
        };
        let pscore = holdout_share / k as f64
            + if order[0] == ucb_top {
                1.0 - holdout_share
            } else {
                0.0
            };
        let shown: Vec<usize> = order.into_iter().take(SHOWN).collect();
        let shown_ids: Vec<u64> = shown.iter().map(|i| canned[*i].id).collect();
        let intent_name = features::INTENTS[intent].0.to_string();
        let bus = self.inner.bus.clone();
        let window = self.window_ms();
        let decision = Decision {
            id: 0,
            conversation_id: conv_id,
            agent,
            time_ms: now,
            x: x.clone(),
            intent: intent as u8,
            shown: shown_ids.clone(),
            eligible: k as u32,
            holdout,
            pscore,
            used: None,
            applied: false,
            outcome: None,
        };
        let decision_id = self
            .inner
            .db
            .write(move |txn| {
                let mut d = decision;
                d.id = next(txn, "decision")?;
                txn.open_table(DECISIONS)?
                    .insert(d.id, codec::encode(&d).as_slice())?;
                let mut joins = txn.open_table(JOINS)?;
                let mut j: Join = joins
                    .get(conv_id)?
                    .map(|v| codec::decode(v.value()))
                    .transpose()?
                    .unwrap_or_default();
                j.decisions.push(d.id);
                if j.decisions.len() > PER_CONV {
                    j.decisions.remove(0);
                }
                joins.insert(conv_id, codec::encode(&j).as_slice())?;
                prune::remind(txn, conv_id, now + window)?;
                bus.publish_durable(
                    txn,
                    "chat.suggestion.shown",
                    BusPriority::Normal,
                    &json!({"decision_id": d.id, "conversation_id": conv_id, "agent": agent,
                            "shown": d.shown, "holdout": d.holdout, "pscore": d.pscore,
                            "intent": intent_name_of(intent)}),
                )?;
                Ok::<_, ChatError>(d.id)
            })
            .await?;
        let suggestions = shown
            .iter()
            .map(|&i| {
                let c = &canned[i];
                let (n, resolved) = counts[i];
                let rate = (n > 0).then(|| resolved as f64 / n as f64);
                let expected = scored[i].1;
                let text = match rate {
                    Some(r) => format!(
                        "{intent_name}: resolved {:.0}% of {n} uses (expected {:.2})",
                        r * 100.0,
                        expected
                    ),
                    None => format!("{intent_name}: not used yet, worth a try"),
                };
                Suggestion {
                    canned_id: c.id,
                    shortcut: c.shortcut.clone(),
                    title: c.title.clone(),
                    body: c.body.clone(),
                    score: scored[i].0,
                    why: Why {
                        intent: intent_name.clone(),
                        n,
                        resolved,
                        resolution_rate: rate,
                        expected,
                        text,
                    },
                }
            })
            .collect();
        Ok(Shown {
            decision_id,
            holdout,
            intent: intent_name.clone(),
            suggestions,
        })
    }

    /// The agent sent canned response `canned_id` (edited or not) after decision `decision_id`.
    /// Recorded once: repeating the same call changes nothing; another reply for the same
    /// decision is refused.
    pub async fn used(
        &self,
        decision_id: u64,
        canned_id: u64,
        edited: bool,
    ) -> ChatResult<Decision> {
        let now = self.inner.clock.now_ms();
        let bus = self.inner.bus.clone();
        self.inner
            .db
            .write(move |txn| {
                let mut t = txn.open_table(DECISIONS)?;
                let mut d: Decision = t
                    .get(decision_id)?
                    .map(|v| decode_decision(v.value()))
                    .transpose()?
                    .ok_or(ChatError::NotFound("suggestion decision"))?;
                if let Some(u) = &d.used {
                    if u.canned_id == canned_id {
                        return Ok(d);
                    }
                    return Err(ChatError::Invalid(format!(
                        "decision {decision_id} already recorded canned response {} as used; ask for new suggestions before the next reply",
                        u.canned_id
                    )));
                }
                if txn
                    .open_table(super::store::CANNED)?
                    .get(canned_id)?
                    .is_none()
                {
                    return Err(ChatError::NotFound("canned response"));
                }
                let rank = d
                    .shown
                    .iter()
                    .position(|c| *c == canned_id)
                    .map(|p| p as u8);
                d.used = Some(UsedRec {
                    canned_id,
                    edited,
                    rank,
                    time_ms: now,
                });
                t.insert(decision_id, codec::encode(&d).as_slice())?;
                bus.publish_durable(
                    txn,
                    "chat.suggestion.used",
                    BusPriority::Normal,
                    &json!({"decision_id": decision_id, "conversation_id": d.conversation_id,
                            "canned_id": canned_id, "edited": edited, "rank": rank}),
                )?;
                Ok(d)
            })
            .await
    }

    /// One bus event of the reward join. Idempotent (see the module docs).
    pub async fn handle(&self, subject: &str, payload: Value, time_ms: i64) -> ChatResult<()> {
        let p = self.params();
        let window = self.window_ms();
        let subject = subject.to_string();
        let updated = self
            .inner
            .db
            .write(move |txn| {
                let u = |k: &str| payload.get(k).and_then(Value::as_u64);
                let mut decisions = txn.open_table(DECISIONS)?;
                let mut joins = txn.open_table(JOINS)?;
                let mut arms = txn.open_table(ARMS)?;
                let conv_id = match subject.as_str() {
                    "chat.suggestion.used" => {
                        let Some(id) = u("decision_id") else {
                            return Ok(Vec::new());
                        };
                        match decisions.get(id)?.map(|v| decode_decision(v.value())) {
                            Some(d) => d?.conversation_id,
                            None => return Ok(Vec::new()),
                        }
                    }
                    _ => match u("conversation_id") {
                        Some(c) => c,
                        None => return Ok(Vec::new()),
                    },
                };
                let Some(mut j) = joins
                    .get(conv_id)?
                    .map(|v| codec::decode::<Join>(v.value()))
                    .transpose()?
                else {
                    // No suggestion was ever shown in this conversation.
                    return Ok(Vec::new());
                };
                let mut touched: HashMap<u64, ArmState> = HashMap::new();
                let load = |id: u64,
                            arms: &redb::Table<u64, &[u8]>,
                            touched: &mut HashMap<u64, ArmState>|
                 -> ChatResult<()> {
                    if let std::collections::hash_map::Entry::Vacant(e) = touched.entry(id) {
                        e.insert(match arms.get(id)? {
                            Some(v) => codec::decode(v.value())?,
                            None => ArmState {
                                arm: Arm::new(features::D, p.lambda),
                                used: 0,
                                resolved: 0,
                            },
                        });
                    }
                    Ok(())
                };
                match subject.as_str() {
                    "chat.suggestion.used" => {
                        let id = u("decision_id").unwrap_or(0);
                        let mut d: Decision = decode_decision(
                            decisions
                                .get(id)?
                                .ok_or(ChatError::NotFound("decision"))?
                                .value(),
                        )?;
                        if d.applied {
                            return Ok(Vec::new());
                        }
                        let Some(used) = d.used.clone() else {
                            return Ok(Vec::new());
                        };
                        load(used.canned_id, &arms, &mut touched)?;
                        let st = touched.get_mut(&used.canned_id).expect("loaded");
                        let at = st.arm.pull(&d.x, &p);
                        st.arm.touch(d.id);
                        st.used += 1;
                        j.uses.push(Use {
                            decision: id,
                            canned_id: used.canned_id,
                            at,
                            time_ms: used.time_ms,
                            credited: 0.0,
                            resolved: false,
                        });
                        if j.uses.len() > PER_CONV {
                            j.uses.remove(0);
                        }
                        d.applied = true;
                        decisions.insert(id, codec::encode(&d).as_slice())?;
                    }
                    "chat.conversation.resolved" => {
                        j.resolved_ms = Some(time_ms);
                    }
                    "chat.conversation.reopened" => {
                        if let Some(t) = j.resolved_ms
                            && time_ms - t <= window
                        {
                            j.spoiled = true;
                        }
                    }
                    "chat.csat.submitted" => {
                        if let Some(r) = u("rating").filter(|r| (1..=5).contains(r)) {
                            j.csat = Some(r as u8);
                        }
                    }
                    _ => {}
                }
                // Bring every use's credit to its target.
                let mut credits = Vec::new();
                for (i, us) in j.uses.iter().enumerate() {
                    let (target, resolved) = j.reward(us.time_ms, window);
                    if target != us.credited || resolved != us.resolved {
                        credits.push((i, target, resolved));
                    }
                }
                for (i, target, resolved) in credits {
                    let (arm_id, decision, at, credited, was) = {
                        let us = &j.uses[i];
                        (us.canned_id, us.decision, us.at, us.credited, us.resolved)
                    };
                    let x = match decisions.get(decision)? {
                        Some(v) => decode_decision(v.value())?.x,
                        None => continue,
                    };
                    load(arm_id, &arms, &mut touched)?;
                    let st = touched.get_mut(&arm_id).expect("loaded");
                    st.arm.credit(&x, target - credited, at, &p);
                    if resolved && !was {
                        st.resolved += 1;
                    } else if !resolved && was {
                        st.resolved = st.resolved.saturating_sub(1);
                    }
                    j.uses[i].credited = target;
                    j.uses[i].resolved = resolved;
                }
                for (id, st) in &touched {
                    arms.insert(*id, codec::encode(st).as_slice())?;
                }
                joins.insert(conv_id, codec::encode(&j).as_slice())?;
                prune::remind(txn, conv_id, time_ms + window)?;
                Ok::<_, ChatError>(touched.into_iter().collect::<Vec<_>>())
            })
            .await?;
        self.cache_put(updated);
        Ok(())
    }

    /// Per-arm figures for the admin page.
    pub async fn model(&self) -> ChatResult<Vec<Value>> {
        let mut v: Vec<Value> = self
            .with_arms(|arms| {
                arms.iter()
                    .map(|(id, s)| {
                        json!({"canned_id": id, "used": s.used, "resolved": s.resolved,
                               "updates": s.arm.updates})
                    })
                    .collect()
            })
            .await?;
        v.sort_by_key(|x| x["canned_id"].as_u64());
        Ok(v)
    }
}

fn intent_name_of(i: usize) -> &'static str {
    features::INTENTS[i.min(features::INTENTS.len() - 1)].0
}

fn next(txn: &WriteTransaction, name: &str) -> ChatResult<u64> {
    let mut t = txn.open_table(META)?;
    let n = t.get(name)?.map(|v| v.value()).unwrap_or(0) + 1;
    t.insert(name, n)?;
    Ok(n)
}

#[cfg(test)]
#[path = "mod_tests.rs"]
mod tests;
