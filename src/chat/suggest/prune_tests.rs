//! Pruning with a hand-set clock: no sleeps.

use std::sync::Arc;

use serde_json::json;

use super::super::{ARMS, DECISIONS, Decision, JOINS, META, PENDING, Suggest, decode_decision};
use super::*;
use crate::chat::model::{Channel, Site};
use crate::chat::{Chat, Clock, ManualClock, NewSite, VisitorHello, Who};
use crate::config::Config;
use crate::store::Db;
use redb::ReadableTableMetadata;

const DAY: i64 = 24 * 3_600_000;
const WEEK: i64 = 7 * DAY;

struct Kit {
    chat: Chat,
    clock: Arc<ManualClock>,
    site: Site,
    _dir: tempfile::TempDir,
}

async fn kit() -> Kit {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.storage.data_dir = dir.path().to_path_buf();
    config.chat.suggest_holdout = 0.0;
    let config = Arc::new(config);
    let db = Db::open(&config.db_path(), 1 << 20).unwrap();
    let bus = crate::bus::Bus::new(db.clone(), config.bus.clone());
    let accounts = crate::accounts::Accounts::new(db.clone(), config.clone());
    let mail = crate::mail::Mail::new(db.clone(), bus.clone(), config.clone());
    let clock = ManualClock::new(1_000_000);
    let chat = Chat::with_clock(db, bus, config, accounts, mail, clock.clone());
    let site = chat
        .create_site(NewSite {
            name: "s".into(),
            require_identity: false,
            hours: Vec::new(),
            time_zone: "UTC".into(),
        })
        .await
        .unwrap();
    Kit {
        chat,
        clock,
        site,
        _dir: dir,
    }
}

impl Kit {
    fn s(&self) -> &Suggest {
        self.chat.suggest()
    }

    /// A conversation whose agent was shown suggestions and used the top one (the use has
    /// reached the model): (conversation, decision, the canned reply used).
    async fn used_conversation(&self, text: &str) -> (u64, u64, u64) {
        let (_, v, _) = self
            .chat
            .visitor_session(
                VisitorHello {
                    site_key: self.site.site_key.clone(),
                    visitor_token: None,
                    user_id: None,
                    user_hash: None,
                    name: None,
                    email: None,
                    page_url: None,
                    user_agent: None,
                },
                None,
            )
            .await
            .unwrap();
        let who = Who::Visitor {
            site_id: self.site.id,
            visitor: v,
        };
        let (conv, _) = self
            .chat
            .start_conversation(&who, Channel::Chat, Some(text.into()), None)
            .await
            .unwrap();
        let shown = self.s().suggest(conv.id, 1).await.unwrap();
        let pick = shown.suggestions[0].canned_id;
        self.s().used(shown.decision_id, pick, false).await.unwrap();
        self.event(
            "chat.suggestion.used",
            json!({"decision_id": shown.decision_id}),
        )
        .await;
        (conv.id, shown.decision_id, pick)
    }

    async fn event(&self, subject: &str, payload: serde_json::Value) {
        self.s()
            .handle(subject, payload, self.clock.now_ms())
            .await
            .unwrap();
    }

    async fn decision(&self, id: u64) -> Decision {
        self.chat
            .inner
            .db
            .read(move |txn| {
                let d = decode_decision(txn.open_table(DECISIONS)?.get(id)?.unwrap().value())?;
                Ok::<_, ChatError>(d)
            })
            .await
            .unwrap()
    }

    /// (joins, reminders, stored arms) rows.
    async fn rows(&self) -> (u64, u64, u64) {
        self.chat
            .inner
            .db
            .read(|txn| {
                Ok::<_, ChatError>((
                    txn.open_table(JOINS)?.len()?,
                    txn.open_table(PENDING)?.len()?,
                    txn.open_table(ARMS)?.len()?,
                ))
            })
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn after_the_window_decisions_get_their_final_reward_and_the_joins_go() {
    let k = kit().await;
    let (resolved, d_resolved, arm) = k.used_conversation("I was charged twice on my card").await;
    k.clock.advance(1000);
    k.event(
        "chat.conversation.resolved",
        json!({"conversation_id": resolved}),
    )
    .await;
    let (_, d_open, _) = k.used_conversation("Where is my parcel?").await;
    let model = k.s().arm_state(arm).await.unwrap().unwrap();
    let stats_before = k.s().stats().await.unwrap();

    // Inside the window nothing is final.
    k.clock.advance(WEEK - 2000);
    assert_eq!(k.s().prune(BATCH).await.unwrap(), Pruned::default());
    assert_eq!(k.rows().await.0, 2);

    k.clock.advance(DAY);
    let p = k.s().prune(BATCH).await.unwrap();
    assert_eq!((p.joins, p.decisions, p.postponed), (2, 2, 0), "{p:?}");
    assert_eq!(k.decision(d_resolved).await.outcome, Some(1.0));
    assert_eq!(
        k.decision(d_open).await.outcome,
        Some(0.0),
        "no resolution: 0"
    );
    let (joins, reminders, _) = k.rows().await;
    assert_eq!((joins, reminders), (0, 0));
    // The model is what it was; a late event changes nothing.
    k.event(
        "chat.csat.submitted",
        json!({"conversation_id": resolved, "rating": 1}),
    )
    .await;
    assert_eq!(k.s().arm_state(arm).await.unwrap().unwrap().arm, model.arm);
    // The admin figures read the final rewards instead of the joins.
    let stats = k.s().stats().await.unwrap();
    for key in [
        "decisions",
        "resolution_rate_with_suggestion",
        "policy_mean",
        "conversations_with_used_suggestion",
    ] {
        assert_eq!(stats[key], stats_before[key], "{key}: {stats}");
    }
    // Nothing left to do.
    assert_eq!(k.s().prune(BATCH).await.unwrap(), Pruned::default());
}

#[tokio::test]
async fn a_pass_is_bounded_and_a_late_resolution_keeps_its_join_open() {
    let k = kit().await;
    let mut convs = Vec::new();
    for text in ["my invoice is wrong", "I can't log in", "refund please"] {
        convs.push(k.used_conversation(text).await);
    }
    // Resolved on day 6: a reopening until day 13 would still take it back.
    k.clock.advance(6 * DAY);
    k.event(
        "chat.conversation.resolved",
        json!({"conversation_id": convs[0].0}),
    )
    .await;
    k.clock.advance(DAY + 1);
    let first = k.s().prune(2).await.unwrap();
    let second = k.s().prune(2).await.unwrap();
    assert_eq!(
        (
            first.joins + first.postponed,
            second.joins + second.postponed
        ),
        (2, 1),
        "at most 2 per pass: {first:?} {second:?}"
    );
    assert_eq!(first.joins + second.joins, 2);
    assert_eq!(
        k.rows().await.0,
        1,
        "the resolved conversation's join waits"
    );
    assert_eq!(k.decision(convs[0].1).await.outcome, None);
    // A reopening on day 12 is still heard: the resolution earns nothing.
    k.clock.advance(5 * DAY);
    k.event(
        "chat.conversation.reopened",
        json!({"conversation_id": convs[0].0}),
    )
    .await;
    k.clock.advance(2 * DAY);
    let last = k.s().prune(2).await.unwrap();
    assert_eq!(last.joins, 1, "{last:?}");
    assert_eq!(k.decision(convs[0].1).await.outcome, Some(0.0));
    assert_eq!(k.rows().await.0, 0);
}

#[tokio::test]
async fn joins_from_before_the_reminders_are_backfilled_and_pruned() {
    let k = kit().await;
    let (_, d, _) = k.used_conversation("my invoice is wrong").await;
    // As stored by a version without reminders: a join, no reminder, no backfill cursor.
    k.chat
        .inner
        .db
        .write(|txn| {
            txn.delete_table(PENDING)?;
            txn.open_table(PENDING)?;
            txn.open_table(META)?.remove(BACKFILL)?;
            Ok::<_, ChatError>(())
        })
        .await
        .unwrap();
    k.clock.advance(WEEK + 1);
    let p = k.s().prune(BATCH).await.unwrap();
    assert_eq!((p.backfilled, p.joins), (1, 1), "{p:?}");
    assert_eq!(k.decision(d).await.outcome, Some(0.0));
    assert_eq!(k.s().prune(BATCH).await.unwrap(), Pruned::default());
}

#[test]
fn a_decision_stored_before_outcomes_still_reads() {
    let old = super::super::stored::DecisionV1 {
        id: 4,
        conversation_id: 9,
        agent: 1,
        time_ms: 5,
        x: vec![1.0, 0.5],
        intent: 2,
        shown: vec![3, 1, 2],
        eligible: 6,
        holdout: true,
        pscore: 0.1,
        used: None,
        applied: false,
    };
    let d = decode_decision(&codec::encode(&old)).unwrap();
    assert_eq!((d.id, d.conversation_id, d.outcome), (4, 9, None));
    assert_eq!(d.shown, vec![3, 1, 2]);
    let mut new = d.clone();
    new.outcome = Some(1.25);
    let again = decode_decision(&codec::encode(&new)).unwrap();
    assert_eq!(again.outcome, Some(1.25));
}
