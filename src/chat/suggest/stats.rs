//! The admin page's figures (issue 19): acceptance, resolution with and without a used
//! suggestion, and the off-policy estimate of the learned policy on the holdout.

use std::collections::HashMap;

use redb::ReadableTable;
use serde_json::{Value, json};

use super::{
    Arm, DECISIONS, Decision, JOINS, Join, STATS_WINDOW, Suggest, decode_decision, features, ope,
};
use crate::chat::{ChatError, ChatResult};
use crate::store::codec;

impl Suggest {
    /// The admin page's figures.
    pub async fn stats(&self) -> ChatResult<Value> {
        let window = self.window_ms();
        let (decisions, joins, canned) = self.recent().await?;
        let n = decisions.len();
        let accepted = decisions
            .iter()
            .filter(|d| d.used.as_ref().is_some_and(|u| u.rank.is_some()))
            .count();
        // A decision's reward: final once pruned, else from its conversation's join.
        let reward = |d: &Decision| {
            d.outcome.unwrap_or_else(|| {
                joins
                    .get(&d.conversation_id)
                    .map(|j| j.reward(d.time_ms, window).0)
                    .unwrap_or(0.0)
            })
        };
        // Per conversation: (a suggestion was used, it resolved).
        let mut convs: HashMap<u64, (bool, bool)> = HashMap::new();
        for d in &decisions {
            let resolved = match joins.get(&d.conversation_id) {
                Some(j) => j.resolved_ms.is_some() && !j.spoiled,
                // Pruned: resolution is worth 1, the CSAT term at most ±0.25.
                None => d.outcome.is_some_and(|r| r >= 0.5),
            };
            let c = convs.entry(d.conversation_id).or_default();
            c.0 |= d.used.is_some();
            c.1 |= resolved;
        }
        let (mut with, mut with_res, mut without, mut without_res) = (0u64, 0u64, 0u64, 0u64);
        for (used, ok) in convs.values() {
            if *used {
                with += 1;
                with_res += *ok as u64;
            } else {
                without += 1;
                without_res += *ok as u64;
            }
        }
        // The learned policy: the greedy arm (highest θ·x) among today's canned responses.
        let (greedy, n_arms, uses, resolved_uses) = self.learned(&decisions, &canned).await?;
        let mut rounds = Vec::new();
        let mut holdout_rewards = Vec::new();
        let mut policy_rewards = Vec::new();
        for d in &decisions {
            let r = reward(d);
            if d.holdout {
                holdout_rewards.push(r);
                let target = match (greedy.get(&d.id), d.shown.first()) {
                    (Some(g), Some(top)) if g == top => 1.0,
                    _ => 0.0,
                };
                rounds.push(ope::Round {
                    target,
                    pscore: 1.0 / d.eligible.max(1) as f64,
                    reward: r,
                });
            } else {
                policy_rewards.push(r);
            }
        }
        let rate = |a: u64, b: u64| (b > 0).then(|| a as f64 / b as f64);
        Ok(json!({
            "decisions": n,
            "accepted": accepted,
            "acceptance_rate": rate(accepted as u64, n as u64),
            "conversations_with_used_suggestion": with,
            "resolution_rate_with_suggestion": rate(with_res, with),
            "conversations_without_used_suggestion": without,
            "resolution_rate_without_suggestion": rate(without_res, without),
            "holdout_decisions": holdout_rewards.len(),
            "holdout_share": self.inner.config.chat.suggest_holdout,
            "ips": ope::ips(&rounds),
            "snips": ope::snips(&rounds),
            "holdout_mean": ope::mean(&holdout_rewards),
            "policy_mean": ope::mean(&policy_rewards),
            "arms": n_arms,
            "uses": uses,
            "resolved_uses": resolved_uses,
        }))
    }

    /// The newest decisions (at most [`STATS_WINDOW`]), their conversations' joins (those not
    /// pruned yet) and today's canned response ids.
    async fn recent(&self) -> ChatResult<(Vec<Decision>, HashMap<u64, Join>, Vec<u64>)> {
        self.inner
            .db
            .read(|txn| {
                let t = txn.open_table(DECISIONS)?;
                let mut ds = Vec::new();
                for row in t.iter()?.rev() {
                    ds.push(decode_decision(row?.1.value())?);
                    if ds.len() as u64 >= STATS_WINDOW {
                        break;
                    }
                }
                let jt = txn.open_table(JOINS)?;
                let mut js = HashMap::new();
                for d in &ds {
                    if !js.contains_key(&d.conversation_id)
                        && let Some(v) = jt.get(d.conversation_id)?
                    {
                        js.insert(d.conversation_id, codec::decode::<Join>(v.value())?);
                    }
                }
                let mut canned = Vec::new();
                for row in txn.open_table(crate::chat::store::CANNED)?.iter()? {
                    canned.push(row?.0.value());
                }
                Ok::<_, ChatError>((ds, js, canned))
            })
            .await
    }

    /// The learned (greedy) policy's reply for each holdout decision, and the model's size,
    /// uses and resolved uses.
    async fn learned(
        &self,
        decisions: &[Decision],
        canned: &[u64],
    ) -> ChatResult<(HashMap<u64, u64>, usize, u64, u64)> {
        let lambda = self.params().lambda;
        self.with_arms(|arms| {
            let fresh = Arm::new(features::D, lambda);
            let greedy: HashMap<u64, u64> = decisions
                .iter()
                .filter(|d| d.holdout)
                .filter_map(|d| {
                    let mut best: Option<(f64, u64)> = None;
                    for id in canned {
                        let m = arms.get(id).map(|a| &a.arm).unwrap_or(&fresh).mean(&d.x);
                        if best.is_none_or(|(b, _)| m > b) {
                            best = Some((m, *id));
                        }
                    }
                    best.map(|b| (d.id, b.1))
                })
                .collect();
            (
                greedy,
                arms.len(),
                arms.values().map(|a| a.used).sum::<u64>(),
                arms.values().map(|a| a.resolved).sum::<u64>(),
            )
        })
        .await
    }
}
