//! The reward and the reward join.

use super::*;
use crate::chat::model::Channel;
use crate::chat::{Chat, ManualClock, NewSite, VisitorHello, Who};

#[test]
fn reward_is_resolution_within_the_window_plus_the_csat_term() {
    let w = 7 * 24 * 3_600_000;
    let mut j = Join::default();
    assert_eq!(j.reward(0, w), (0.0, false));
    j.resolved_ms = Some(1000);
    assert_eq!(j.reward(0, w), (1.0, true));
    // Resolved after the window: no reward.
    assert_eq!(j.reward(1000 - w - 1, w), (0.0, false));
    j.csat = Some(5);
    assert_eq!(j.reward(0, w), (1.25, true));
    j.csat = Some(1);
    assert_eq!(j.reward(0, w), (0.75, true));
    j.spoiled = true;
    assert_eq!(j.reward(0, w), (-0.25, false));
}

/// Uses, resolutions, reopenings and ratings reach the model once, however often the bus
/// delivers them.
#[tokio::test]
async fn the_reward_join_is_idempotent_and_takes_back_a_reopened_resolution() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.storage.data_dir = dir.path().to_path_buf();
    config.chat.suggest_holdout = 0.0;
    let config = Arc::new(config);
    let db = Db::open(&config.db_path(), 1 << 20).unwrap();
    let bus = Bus::new(db.clone(), config.bus.clone());
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
    let (_, v, _) = chat
        .visitor_session(
            VisitorHello {
                site_key: site.site_key.clone(),
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
        site_id: site.id,
        visitor: v,
    };
    let (conv, _) = chat
        .start_conversation(
            &who,
            Channel::Chat,
            Some("I was charged twice on my card".into()),
            None,
        )
        .await
        .unwrap();
    let s = chat.suggest();
    let shown = s.suggest(conv.id, 1).await.unwrap();
    assert_eq!(shown.intent, "billing");
    assert_eq!(shown.suggestions.len(), SHOWN);
    let pick = shown.suggestions[1].canned_id;
    s.used(shown.decision_id, pick, false).await.unwrap();
    // The same call again is accepted and changes nothing; another reply is refused.
    s.used(shown.decision_id, pick, true).await.unwrap();
    let other = shown.suggestions[0].canned_id;
    assert!(s.used(shown.decision_id, other, false).await.is_err());

    let used = json!({"decision_id": shown.decision_id});
    let conv_ev = json!({"conversation_id": conv.id});
    let t = clock.now_ms();
    for _ in 0..2 {
        s.handle("chat.suggestion.used", used.clone(), t)
            .await
            .unwrap();
    }
    let arm = |s: Suggest| async move { s.arm_state(pick).await.unwrap().unwrap() };
    let a = arm(s.clone()).await;
    assert_eq!((a.used, a.resolved, a.arm.updates), (1, 0, 1));
    let x = s
        .inner
        .db
        .read(move |txn| {
            let d: Decision = decode_decision(
                txn.open_table(DECISIONS)?
                    .get(shown.decision_id)?
                    .unwrap()
                    .value(),
            )?;
            Ok::<_, ChatError>(d.x)
        })
        .await
        .unwrap();
    let m0 = a.arm.mean(&x);
    for _ in 0..2 {
        s.handle("chat.conversation.resolved", conv_ev.clone(), t + 1000)
            .await
            .unwrap();
    }
    let a = arm(s.clone()).await;
    assert_eq!((a.used, a.resolved, a.arm.updates), (1, 1, 1));
    let m1 = a.arm.mean(&x);
    assert!(m1 > m0 + 0.5, "{m0} → {m1}");
    for _ in 0..2 {
        s.handle(
            "chat.csat.submitted",
            json!({"conversation_id": conv.id, "rating": 5}),
            t + 2000,
        )
        .await
        .unwrap();
    }
    let m2 = arm(s.clone()).await.arm.mean(&x);
    assert!(m2 > m1, "{m1} → {m2}");
    // Reopened within the window: the resolution part is taken back, the rating stays.
    for _ in 0..2 {
        s.handle("chat.conversation.reopened", conv_ev.clone(), t + 3000)
            .await
            .unwrap();
    }
    let a = arm(s.clone()).await;
    assert_eq!(a.resolved, 0);
    let m3 = a.arm.mean(&x);
    assert!((m3 - (m2 - (m1 - m0))).abs() < 1e-9, "{m0} {m1} {m2} {m3}");
    // The cache and the stored model agree.
    let stored = s
        .inner
        .db
        .read(move |txn| {
            let st: ArmState = codec::decode(txn.open_table(ARMS)?.get(pick)?.unwrap().value())?;
            Ok::<_, ChatError>(st)
        })
        .await
        .unwrap();
    assert_eq!(stored.arm, a.arm);
    let stats = s.stats().await.unwrap();
    assert_eq!(stats["decisions"], 1);
    assert_eq!(stats["accepted"], 1);
}
