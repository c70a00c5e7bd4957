//! Chat logic on a controllable clock: presence, auto-assignment, SLA.

use super::*;

struct Fixture {
    chat: Chat,
    clock: Arc<ManualClock>,
    site: Site,
    agents: Vec<u64>,
    _dir: tempfile::TempDir,
}

async fn fixture(cap: u32) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.storage.data_dir = dir.path().to_path_buf();
    config.chat.agent_cap = cap;
    config.chat.presence_timeout = crate::config::HumanDuration::secs(60);
    let config = Arc::new(config);
    let db = Db::open(&config.db_path(), 1 << 20).unwrap();
    let bus = Bus::new(db.clone(), config.bus.clone());
    let accounts = Accounts::new(db.clone(), config.clone());
    let mail = Mail::new(db.clone(), bus.clone(), config.clone());
    let clock = ManualClock::new(1_000_000);
    let chat = Chat::with_clock(db, bus, config, accounts.clone(), mail, clock.clone());
    let mut agents = Vec::new();
    for name in ["ann", "bob"] {
        let u = accounts
            .create_user(
                &format!("{name}@example.com"),
                name,
                crate::accounts::Role::Agent,
                None,
            )
            .await
            .unwrap();
        agents.push(u.id);
    }
    let site = chat
        .create_site(NewSite {
            name: "s".into(),
            require_identity: false,
            hours: Vec::new(),
            time_zone: "UTC".into(),
        })
        .await
        .unwrap();
    Fixture {
        chat,
        clock,
        site,
        agents,
        _dir: dir,
    }
}

async fn new_conversation(f: &Fixture) -> Conversation {
    let (_, v, _) = f
        .chat
        .visitor_session(
            VisitorHello {
                site_key: f.site.site_key.clone(),
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
        site_id: f.site.id,
        visitor: v,
    };
    let (c, _) = f
        .chat
        .start_conversation(&who, Channel::Chat, Some("help".into()), None)
        .await
        .unwrap();
    f.chat.conversation_for(&who, c.id).await.unwrap()
}

#[tokio::test]
async fn presence_times_out_by_the_clock() {
    let f = fixture(5).await;
    f.chat.heartbeat(f.agents[0], "online").await.unwrap();
    assert_eq!(f.chat.online_agents().len(), 1);
    f.clock.advance(60_000);
    assert_eq!(
        f.chat.online_agents().len(),
        1,
        "at the timeout still online"
    );
    f.clock.advance(1);
    assert!(
        f.chat.online_agents().is_empty(),
        "a silent agent goes offline"
    );
    f.chat.heartbeat(f.agents[0], "away").await.unwrap();
    assert!(f.chat.online_agents().is_empty(), "away is not online");
}

#[tokio::test]
async fn auto_assignment_balances_respects_caps_and_queues() {
    let f = fixture(2).await;
    let (ann, bob) = (f.agents[0], f.agents[1]);
    // Nobody online: the conversation waits.
    let c1 = new_conversation(&f).await;
    assert_eq!(c1.assignee, None);
    // Ann comes online and takes the waiting one.
    f.chat.heartbeat(ann, "online").await.unwrap();
    let c1 = f.chat.conversation_for(&agent(ann), c1.id).await.unwrap();
    assert_eq!(c1.assignee, Some(ann));
    // Bob online: he has fewer open, so he gets the next.
    f.chat.heartbeat(bob, "online").await.unwrap();
    f.clock.advance(1000);
    assert_eq!(new_conversation(&f).await.assignee, Some(bob));
    // One each: the tie goes to the one assigned least recently (Ann).
    f.clock.advance(1000);
    assert_eq!(new_conversation(&f).await.assignee, Some(ann));
    f.clock.advance(1000);
    assert_eq!(new_conversation(&f).await.assignee, Some(bob));
    // Both at their cap of 2: the next waits in the queue.
    f.clock.advance(1000);
    let queued = new_conversation(&f).await;
    assert_eq!(queued.assignee, None);
    // Ann resolves one: the queued conversation is hers.
    f.chat
        .set_status(&agent(ann), c1.id, Status::Resolved)
        .await
        .unwrap();
    let q = f
        .chat
        .conversation_for(&agent(ann), queued.id)
        .await
        .unwrap();
    assert_eq!(q.assignee, Some(ann));
    // Bob's heartbeat stops: offline agents are never assigned, even with free slots.
    f.chat.heartbeat(ann, "online").await.unwrap();
    f.clock.advance(61_000);
    f.chat.heartbeat(ann, "online").await.unwrap();
    f.chat
        .set_status(&agent(ann), q.id, Status::Resolved)
        .await
        .unwrap();
    let bobs: Vec<u64> = f
        .chat
        .inbox(
            bob,
            InboxQuery {
                view: "mine".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .iter()
        .filter(|c| c.status.is_active())
        .map(|c| c.id)
        .collect();
    assert_eq!(bobs.len(), 2);
    f.chat
        .set_status(&agent(bob), bobs[0], Status::Resolved)
        .await
        .unwrap();
    f.clock.advance(1000);
    assert_eq!(new_conversation(&f).await.assignee, Some(ann));
}

#[tokio::test]
async fn sla_breaches_are_published_once_by_the_clock() {
    let f = fixture(5).await;
    let c = new_conversation(&f).await; // normal: first response 4 h, resolution 3 d
    assert_eq!(f.chat.check_sla().await.unwrap(), 0);
    f.clock.advance(4 * 3600 * 1000);
    assert_eq!(
        f.chat.check_sla().await.unwrap(),
        0,
        "at the target, not past it"
    );
    f.clock.advance(1);
    assert_eq!(f.chat.check_sla().await.unwrap(), 1);
    assert_eq!(f.chat.check_sla().await.unwrap(), 0, "published once");
    let c = f
        .chat
        .conversation_for(&agent(f.agents[0]), c.id)
        .await
        .unwrap();
    assert_eq!(c.sla_breached, 1);
    let subjects: Vec<String> = f
        .chat
        .inner
        .db
        .read(|txn| {
            let t = txn.open_table(crate::bus::store::LOG)?;
            let mut v = Vec::new();
            for row in t.iter()? {
                let e: crate::bus::Event = codec::decode(row?.1.value())?;
                v.push(e.subject);
            }
            Ok::<_, ChatError>(v)
        })
        .await
        .unwrap();
    assert_eq!(
        subjects
            .iter()
            .filter(|s| *s == "chat.ticket.sla_breached")
            .count(),
        1
    );
    // Past the resolution target: that breach, once.
    f.clock.advance(3 * 24 * 3600 * 1000);
    assert_eq!(f.chat.check_sla().await.unwrap(), 1);
    let c = f
        .chat
        .conversation_for(&agent(f.agents[0]), c.id)
        .await
        .unwrap();
    assert_eq!(c.sla_breached, 3);
}

fn agent(id: u64) -> Who {
    Who::Agent {
        user_id: id,
        name: format!("agent {id}"),
    }
}
