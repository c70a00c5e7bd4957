//! Upgrades never lose data.
//!
//! `every_released_database_upgrades_without_losing_anything` starts the current `hearth`
//! binary on a copy of every database a release wrote (`tests/fixtures/upgrade/<release>/`,
//! made by that release's own binary with `make-fixture.sh`) and checks, through the API and
//! real clients, everything its manifest recorded. The other tests cover what happens around
//! a migration: the copy kept before it, a migration that fails, a database from a newer
//! release.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hearth::store::{CURRENT_VERSION, Db, META, SCHEMA_VERSION_KEY, codec};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::binary::Hearth;
use crate::common::wait_for;
use crate::mail_support::{SmtpServer, free_port, header};

const PW: &str = "a long enough password";

fn sha256_file(path: &Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(path).unwrap()))
}

/// A database at schema version 1 (as the first development builds wrote it) holding one
/// user whose stored record is `user_bytes`.
fn database_at_v1(data: &Path, user_bytes: Vec<u8>) -> PathBuf {
    use hearth::accounts::store;
    std::fs::create_dir_all(data).unwrap();
    let path = data.join("hearth.redb");
    let db = Db::open_at_version(&path, 1).unwrap();
    assert_eq!(db.schema_version().unwrap(), 1);
    db.write_blocking(|txn| {
        txn.open_table(store::USERS)?
            .insert(1, user_bytes.as_slice())?;
        txn.open_table(store::COUNTERS)?.insert("user", 1)?;
        hearth::store::StoreResult::Ok(())
    })
    .unwrap();
    path
}

fn owner_record() -> Vec<u8> {
    codec::encode(&hearth::accounts::User {
        id: 1,
        email: "Early.Adopter@Example.com".into(),
        name: "Early".into(),
        role: hearth::accounts::Role::Owner,
        password_hash: Some(hearth::accounts::hash_password(PW).unwrap()),
        created_ms: 1,
        disabled: false,
    })
}

/// Schema version stored in the database file at `path` (read without migrating it).
fn stored_version(path: &Path) -> u64 {
    use redb::ReadableDatabase;
    let db = redb::Database::open(path).unwrap();
    let txn = db.begin_read().unwrap();
    let meta = txn.open_table(META).unwrap();
    meta.get(SCHEMA_VERSION_KEY).unwrap().unwrap().value()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_database_is_copied_aside_before_it_is_migrated() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let db = database_at_v1(&data, owner_record());
    let before = sha256_file(&db);
    // A copy left by an earlier upgrade: only the newest one is kept.
    std::fs::write(data.join("hearth.redb.v0.bak"), b"an older copy").unwrap();

    let h = Hearth::start_in(tmp.path(), "", &[]).await;
    let backup = data.join("hearth.redb.v1.bak");
    let line = h.wait_log("a copy of it as it was is at").await;
    assert!(
        line.contains(&backup.display().to_string())
            && line.contains(&format!("from schema version 1 to {CURRENT_VERSION}")),
        "the log names the versions and the copy: {line}"
    );
    assert_eq!(
        sha256_file(&backup),
        before,
        "the copy is the database exactly as it was before the migration"
    );
    assert!(
        !data.join("hearth.redb.v0.bak").exists(),
        "the older copy is removed once the new one is written"
    );
    // The migrated database works: the user signs in by email (schema v2's index).
    h.sign_in("early.adopter@example.com", PW)
        .await
        .expect("sign-in after the migration");
    assert!(h.stop().await, "graceful stop");
    assert_eq!(stored_version(&db), CURRENT_VERSION);
    assert_eq!(stored_version(&backup), 1, "the copy is still at version 1");

    // A start without a migration writes no copy.
    let h = Hearth::start_in(tmp.path(), "", &[]).await;
    assert!(h.stop().await);
    let copies: Vec<_> = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".bak"))
        .collect();
    assert_eq!(copies, vec!["hearth.redb.v1.bak".to_string()]);
}

/// Regression: the runner committed new tables, then each step on its own, so a step that
/// failed left a half-migrated database and a bare "stored value is corrupt".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_migration_leaves_the_database_as_it_was_and_says_what_to_do() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    // Migration 2 indexes users by email; a user record it cannot decode makes it fail.
    let db = database_at_v1(&data, b"\x01not a user record".to_vec());
    let before = sha256_file(&db);

    let out = Hearth::start_expecting_exit(tmp.path(), "").await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "hearth started anyway:\n{stderr}");
    let backup = data.join("hearth.redb.v1.bak");
    for needle in [
        "migrating the database from schema version 1 failed at step 2 (accounts: index users by email)",
        "The database was left as it was (schema version 1)",
        &format!("a copy of it is at {}", backup.display()),
        "Run the release you upgraded from again",
    ] {
        assert!(
            stderr.contains(needle),
            "the error should say {needle:?}; it said:\n{stderr}"
        );
    }
    assert_eq!(
        sha256_file(&db),
        before,
        "the database file is byte for byte what it was"
    );
    assert_eq!(sha256_file(&backup), before);
    assert_eq!(stored_version(&db), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_from_a_newer_release_is_refused_and_left_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let path = data.join("hearth.redb");
    let newer = CURRENT_VERSION + 1;
    {
        let db = Db::open(&path, 1 << 20).unwrap();
        db.write_blocking(|txn| {
            txn.open_table(META)?.insert(SCHEMA_VERSION_KEY, newer)?;
            hearth::store::StoreResult::Ok(())
        })
        .unwrap();
    }
    let before = sha256_file(&path);

    let out = Hearth::start_expecting_exit(tmp.path(), "").await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "hearth started anyway:\n{stderr}");
    for needle in [
        format!("its schema version is {newer}"),
        format!(
            "this hearth {} reads schema versions up to {CURRENT_VERSION}",
            env!("CARGO_PKG_VERSION")
        ),
        "Nothing was changed".to_string(),
        "Run the newer release again".to_string(),
    ] {
        assert!(
            stderr.contains(&needle),
            "the refusal should say {needle:?}; it said:\n{stderr}"
        );
    }
    assert_eq!(sha256_file(&path), before, "the database file is untouched");
    let names: Vec<_> = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        vec!["hearth.redb".to_string()],
        "nothing else written"
    );
}

// ---- databases written by released versions -------------------------------------------------

const T: Duration = Duration::from_secs(30);

/// Every `tests/fixtures/upgrade/<release>/` with a manifest, oldest release first.
fn fixture_dirs() -> Vec<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/upgrade");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("manifest.json").is_file())
        .collect();
    dirs.sort();
    dirs
}

/// The first difference between what a manifest recorded and what the server answers now:
/// every key `want` has must be in `got` with an equal value (objects are compared on the
/// manifest's keys, so a field added later does not matter; arrays element by element;
/// numbers by value).
fn difference(path: &str, want: &Value, got: &Value) -> Option<String> {
    match (want, got) {
        (Value::Object(w), Value::Object(g)) => w.iter().find_map(|(k, wv)| match g.get(k) {
            Some(gv) => difference(&format!("{path}.{k}"), wv, gv),
            None => Some(format!("{path}.{k} is missing (expected {wv})")),
        }),
        (Value::Array(w), Value::Array(g)) if w.len() != g.len() => Some(format!(
            "{path} has {} entries, expected {}",
            g.len(),
            w.len()
        )),
        (Value::Array(w), Value::Array(g)) => w
            .iter()
            .zip(g)
            .enumerate()
            .find_map(|(i, (wv, gv))| difference(&format!("{path}[{i}]"), wv, gv)),
        (Value::Number(w), Value::Number(g)) if w.as_f64() == g.as_f64() => None,
        (w, g) if w == g => None,
        (w, g) => Some(format!("{path} is {g}, expected {w}")),
    }
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 1500 {
        format!("{}…", s.chars().take(1500).collect::<String>())
    } else {
        s
    }
}

/// An HTTP receiver standing in for Slack and a webhook endpoint, at the fixed address the
/// fixture's channels point to.
struct Receiver {
    hits: Arc<Mutex<Vec<Hit>>>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// One request the receiver got: path, headers, body.
type Hit = (String, axum::http::HeaderMap, Vec<u8>);

impl Receiver {
    /// Listens on `addr`. The address is this test's alone, so if it is taken another run of
    /// this test holds it: wait for that run to finish.
    async fn start(addr: &str) -> Receiver {
        let listener = wait_for(
            &format!("{addr} to be free (another run of the upgrade test holds it?)"),
            Duration::from_secs(300),
            || async { tokio::net::TcpListener::bind(addr).await.ok() },
        )
        .await;
        let hits: Arc<Mutex<Vec<Hit>>> = Arc::default();
        let seen = hits.clone();
        let app = axum::Router::new().fallback(
            move |uri: axum::http::Uri, headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let hits = hits.clone();
                async move {
                    hits.lock()
                        .unwrap()
                        .push((uri.path().to_string(), headers, body.to_vec()));
                    "ok"
                }
            },
        );
        let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Receiver { hits: seen, server }
    }

    fn hits(&self) -> Vec<Hit> {
        self.hits.lock().unwrap().clone()
    }
}

/// One fixture, extracted and served by the current binary.
struct Upgraded {
    release: String,
    /// The fixture's directory (its envelopes are read from there).
    fixture: PathBuf,
    m: Value,
    events: Value,
    h: Hearth,
    owner: String,
}

impl Upgraded {
    fn check(&self, what: &str, want: &Value, got: &Value) {
        if let Some(d) = difference("", want, got) {
            panic!(
                "after upgrading the {} database, {what} changed: {d}\n  recorded: {}\n  now:      {}",
                self.release,
                short(want),
                short(got)
            );
        }
    }

    fn fail(&self, msg: String) -> ! {
        panic!("after upgrading the {} database: {msg}", self.release)
    }

    async fn get(&self, token: &str, path: &str) -> Value {
        let r = self.h.get(token, path).send().await.unwrap();
        let status = r.status();
        let body = r.text().await.unwrap();
        if status != 200 {
            self.fail(format!("GET {path} answered {status}: {body}"));
        }
        serde_json::from_str(&body).unwrap()
    }

    async fn owner_get(&self, path: &str) -> Value {
        self.get(&self.owner, path).await
    }

    fn issues(&self) -> impl Iterator<Item = &Value> {
        self.m["issues"].as_array().unwrap().iter()
    }

    fn issue(&self, key: &str) -> &Value {
        self.issues()
            .find(|i| i["key"] == key)
            .unwrap_or_else(|| panic!("no issue {key} in the manifest"))
    }

    /// A project's DSN key that is not revoked.
    fn active_key(&self, project_id: &Value) -> String {
        let p = self.m["projects"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["project"]["id"] == *project_id)
            .unwrap();
        p["keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["revoked_ms"].is_null())
            .unwrap()["public_key"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// POSTs an envelope as sentry-python does (gzip, X-Sentry-Auth); (status, body).
    async fn send_envelope(&self, project_id: &Value, key: &str, envelope: &[u8]) -> (u16, Value) {
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(9));
        gz.write_all(envelope).unwrap();
        let r = self
            .h
            .http
            .post(self.h.url(&format!("/api/{project_id}/envelope/")))
            .header("content-type", "application/x-sentry-envelope")
            .header("content-encoding", "gzip")
            .header("user-agent", "sentry.python/2.75.0")
            .header(
                "x-sentry-auth",
                format!(
                    "Sentry sentry_key={key}, sentry_version=7, sentry_client=sentry.python/2.75.0"
                ),
            )
            .body(gz.finish().unwrap())
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn detail(&self, id: &Value) -> Value {
        self.owner_get(&format!("/api/issues/{id}")).await["issue"].clone()
    }

    async fn search(&self, project_id: &Value, query: &str) -> Vec<u64> {
        let q: String = url::form_urlencoded::byte_serialize(query.as_bytes()).collect();
        let r = self
            .h
            .get(
                &self.owner,
                &format!("/api/projects/{project_id}/issues?limit=100&query={q}"),
            )
            .send()
            .await
            .unwrap();
        let v: Value = r.json().await.unwrap();
        v["issues"]
            .as_array()
            .map(|a| a.iter().filter_map(|i| i["id"].as_u64()).collect())
            .unwrap_or_default()
    }

    /// Every issue's recorded search finds it (the indexer may still be catching up).
    async fn search_finds_every_issue(&self, when: &str) {
        for i in self.issues() {
            let q = i["search"].as_str().unwrap();
            let id = i["id"].as_u64().unwrap();
            wait_for(
                &format!(
                    "{}: search {q:?} {when} to find issue {} ({id})",
                    self.release, i["key"]
                ),
                T,
                || async {
                    self.search(&i["project_id"], q)
                        .await
                        .contains(&id)
                        .then_some(())
                },
            )
            .await;
        }
    }
}

fn sorted_ids(v: &Value) -> Vec<u64> {
    let mut ids: Vec<u64> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().or_else(|| x["id"].as_u64()).unwrap())
        .collect();
    ids.sort();
    ids
}

/// Unpacks `data.tar.zst` (tar, zstd-compressed) into `into`.
fn extract(archive: &Path, into: &Path) {
    use std::io::Write;
    std::fs::create_dir_all(into).unwrap();
    let tar = zstd::decode_all(std::fs::File::open(archive).unwrap()).unwrap();
    let mut child = std::process::Command::new("tar")
        .args(["-x", "-f", "-", "-C"])
        .arg(into)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("run tar");
    child.stdin.take().unwrap().write_all(&tar).unwrap();
    assert!(
        child.wait().unwrap().success(),
        "tar -x {}",
        archive.display()
    );
}

/// The schema version of a database file that may need recovery (a copy is opened).
fn stored_version_of_copy(path: &Path) -> u64 {
    use redb::ReadableDatabase;
    let tmp = tempfile::tempdir().unwrap();
    let copy = tmp.path().join("copy.redb");
    std::fs::copy(path, &copy).unwrap();
    let db = redb::Database::open(&copy).unwrap();
    let txn = db.begin_read().unwrap();
    txn.open_table(META)
        .unwrap()
        .get(SCHEMA_VERSION_KEY)
        .unwrap()
        .unwrap()
        .value()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_released_database_upgrades_without_losing_anything() {
    let dirs = fixture_dirs();
    assert!(!dirs.is_empty(), "no fixtures in tests/fixtures/upgrade/");
    for dir in dirs {
        upgrade_one(&dir).await;
    }
}

async fn upgrade_one(fixture: &Path) {
    let m: Value =
        serde_json::from_slice(&std::fs::read(fixture.join("manifest.json")).unwrap()).unwrap();
    let release = m["release"].as_str().unwrap().to_string();
    let archive = fixture.join(m["archive"]["file"].as_str().unwrap());
    assert_eq!(
        sha256_file(&archive),
        m["archive"]["sha256"].as_str().unwrap(),
        "{} does not match its manifest",
        archive.display()
    );
    let events: Value = serde_json::from_slice(
        &zstd::decode_all(std::fs::File::open(fixture.join("events.json.zst")).unwrap()).unwrap(),
    )
    .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    extract(&archive, &data);
    let stored = stored_version_of_copy(&data.join("hearth.redb"));
    assert!(
        stored <= CURRENT_VERSION,
        "the {release} fixture is at schema version {stored}, newer than this build ({CURRENT_VERSION})"
    );

    let refused: Vec<&str> = m["mail"]["relay_refuses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let Some(smtp) = SmtpServer::start(free_port(), &refused).await else {
        return;
    };
    let receiver = Receiver::start(m["alerts"]["receiver"].as_str().unwrap()).await;
    // The fixture's events and bus log are as old as the fixture: retention by age is not what
    // this test is about, so it is pushed out of the way. The fixture's receiver listens on
    // loopback, which the outbound guard refuses unless told otherwise (as a 0.1.0 user whose
    // webhook points inside their own network must tell it after upgrading).
    let config = format!(
        "[smtp]\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\nfrom = \"Hearth <hearth@upgrade.test>\"\n\n\
         [issues]\nmax_event_age = \"36500d\"\n\n[bus]\nretention_max_age = \"36500d\"\n\n\
         [alerts]\nallow_private_targets = true\n",
        smtp.port
    );
    let h = Hearth::start_in(tmp.path(), &config, &[]).await;

    // The copy kept before migrating: there when the schema changed, absent otherwise.
    let backup = data.join(format!("hearth.redb.v{stored}.bak"));
    if stored < CURRENT_VERSION {
        let line = h.wait_log("a copy of it as it was is at").await;
        assert!(line.contains(&backup.display().to_string()), "{line}");
        assert_eq!(stored_version_of_copy(&backup), stored);
    } else {
        assert!(
            !backup.exists(),
            "a backup was written though the schema did not change"
        );
    }

    let owner = &m["users"][0];
    assert_eq!(owner["user"]["role"], "owner");
    let u = Upgraded {
        release: release.clone(),
        fixture: fixture.to_path_buf(),
        events,
        owner: owner["tokens"][0]["secret"].as_str().unwrap().to_string(),
        m,
        h,
    };
    accounts(&u).await;
    issues_and_events(&u).await;
    ingest_records(&u).await;
    u.search_finds_every_issue("after the upgrade").await;
    let replayed_mail = alerts_and_bus(&u, &receiver, &smtp).await;
    mail(&u, &smtp, &replayed_mail).await;
    new_events(&u, &receiver).await;

    // The rebuild: `hearth reindex` on the stopped server, then search again.
    let Upgraded { h, .. } = u;
    assert!(h.stop().await, "graceful stop after the upgrade");
    let dir = tmp.path().to_path_buf();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hearth"))
        .arg("--config")
        .arg(dir.join("config.toml"))
        .arg("reindex")
        .current_dir(&dir)
        .env_remove("HEARTH_CONFIG")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "hearth reindex on the upgraded {release} database: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let h = Hearth::start_in(&dir, &config, &[]).await;
    let u = Upgraded {
        release,
        fixture: u.fixture,
        events: Value::Null,
        owner: u.owner,
        m: u.m,
        h,
    };
    u.search_finds_every_issue("after `hearth reindex`").await;
    assert!(u.h.stop().await);
    smtp.stop().await;
}

/// Everyone signs in with their password, every token still works, revoked ones do not;
/// users, tokens, projects and DSN keys are as they were.
async fn accounts(u: &Upgraded) {
    let users = u.owner_get("/api/users").await;
    for user in u.m["users"].as_array().unwrap() {
        let email = user["user"]["email"].as_str().unwrap();
        let got = users["users"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["id"] == user["user"]["id"])
            .unwrap_or_else(|| u.fail(format!("user {email} is gone")));
        u.check(&format!("user {email}"), &user["user"], got);
        let cookie =
            u.h.sign_in(email, user["password"].as_str().unwrap())
                .await
                .unwrap_or_else(|e| {
                    u.fail(format!("{email} cannot sign in with their password: {e:?}"))
                });
        let me: Value =
            u.h.http
                .get(u.h.url("/api/auth/me"))
                .header("cookie", cookie)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
        assert_eq!(me["user"]["id"], user["user"]["id"], "{email}'s session");
        assert_eq!(me["user"]["role"], user["user"]["role"], "{email}'s role");
        let mut listed = None;
        for t in user["tokens"].as_array().unwrap() {
            let secret = t["secret"].as_str().unwrap();
            let me = u.get(secret, "/api/auth/me").await;
            assert_eq!(
                me["user"]["id"], user["user"]["id"],
                "{email}'s API token {:?}",
                t["name"]
            );
            listed = Some(u.get(secret, "/api/tokens").await);
        }
        let mut want: Vec<Value> = user["tokens"].as_array().unwrap().clone();
        for t in &mut want {
            t.as_object_mut().unwrap().remove("secret");
        }
        u.check(
            &format!("{email}'s API tokens"),
            &Value::Array(want),
            &listed.unwrap()["tokens"],
        );
        for t in user["revoked_tokens"].as_array().unwrap() {
            let r =
                u.h.get(t["secret"].as_str().unwrap(), "/api/auth/me")
                    .send()
                    .await
                    .unwrap();
            assert_eq!(
                r.status(),
                401,
                "{email}'s revoked token {:?} works again after the upgrade",
                t["name"]
            );
        }
    }
    let projects = u.owner_get("/api/projects").await;
    for p in u.m["projects"].as_array().unwrap() {
        let id = &p["project"]["id"];
        let got = projects["projects"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["id"] == *id)
            .unwrap_or_else(|| u.fail(format!("project {id} is gone")));
        u.check(&format!("project {id}"), &p["project"], got);
        let keys: Vec<Value> = u.owner_get(&format!("/api/projects/{id}/keys")).await["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["key"].clone())
            .collect();
        u.check(
            &format!("project {id}'s DSN keys"),
            &p["keys"],
            &Value::Array(keys),
        );
    }
}

/// Every issue keeps its state, counters, history and comments, and every event (those that
/// were only in the ingest log too) reads back exactly as the release stored it.
async fn issues_and_events(u: &Upgraded) {
    for p in u.m["projects"].as_array().unwrap() {
        let id = &p["project"]["id"];
        let all = u
            .owner_get(&format!(
                "/api/projects/{id}/issues?limit=100&sort=first_seen"
            ))
            .await;
        assert_eq!(
            sorted_ids(&all["issues"]),
            sorted_ids(&p["issues"]),
            "{}: project {id}'s issues (left: now, right: recorded)",
            u.release
        );
        for (query, want) in p["filters"].as_object().unwrap() {
            let got = u.search(id, query).await;
            let mut got = got.clone();
            got.sort();
            assert_eq!(
                got,
                sorted_ids(want),
                "{}: project {id}'s issues matching {query:?} (left: now, right: recorded)",
                u.release
            );
        }
    }
    for i in u.issues() {
        let (key, id) = (i["key"].as_str().unwrap(), &i["id"]);
        let got = u.detail(id).await;
        u.check(&format!("issue {key} ({id})"), &i["detail"], &got);
        let events = u
            .owner_get(&format!("/api/issues/{id}/events?limit=500"))
            .await;
        u.check(
            &format!("issue {key}'s event list"),
            &i["events"],
            &events["events"],
        );
        for e in i["events"].as_array().unwrap() {
            let eid = e["event_id"].as_str().unwrap();
            let got = u.owner_get(&format!("/api/issues/{id}/events/{eid}")).await;
            u.check(&format!("event {eid} of issue {key}"), &u.events[eid], &got);
        }
        u.check(
            &format!("issue {key}'s feedback"),
            &i["feedback"],
            &u.owner_get(&format!("/api/issues/{id}/feedback")).await["feedback"],
        );
    }
    for e in u.m["wal_only_events"].as_array().unwrap() {
        let i = u.issue(e["issue"].as_str().unwrap());
        let r =
            u.h.get(
                &u.owner,
                &format!(
                    "/api/issues/{}/events/{}",
                    i["id"],
                    e["event_id"].as_str().unwrap()
                ),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            200,
            "{}: event {} was acknowledged and only in the ingest log; it is lost",
            u.release,
            e["event_id"]
        );
    }
    for d in u.m["deleted_issues"].as_array().unwrap() {
        let r =
            u.h.get(&u.owner, &format!("/api/issues/{}", d["id"]))
                .send()
                .await
                .unwrap();
        assert_eq!(
            r.status(),
            404,
            "{}: deleted issue {} is back",
            u.release,
            d["id"]
        );
    }
}

/// Release health, check-ins, transactions, client reports, feedback and attachments.
async fn ingest_records(u: &Upgraded) {
    for p in u.m["projects"].as_array().unwrap() {
        let id = &p["project"]["id"];
        for (what, path, field) in [
            ("feedback", "feedback", "feedback"),
            ("release health", "release-health", "releases"),
            ("cron monitors", "monitors", "monitors"),
            ("client reports", "client-reports", "discarded"),
        ] {
            let got = u.owner_get(&format!("/api/projects/{id}/{path}")).await;
            let key = match what {
                "release health" => "release_health",
                "cron monitors" => "monitors",
                "client reports" => "client_reports",
                _ => "feedback",
            };
            u.check(&format!("project {id}'s {what}"), &p[key], &got[field]);
        }
        let got = u
            .owner_get(&format!("/api/projects/{id}/transactions"))
            .await;
        u.check(
            &format!("project {id}'s transactions"),
            &p["transactions"],
            &got,
        );
    }
    for a in u.m["attachments"].as_array().unwrap() {
        let eid = a["event_id"].as_str().unwrap();
        let list = u.owner_get(&format!("/api/events/{eid}/attachments")).await;
        let got = list["attachments"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["n"] == a["n"])
            .unwrap_or_else(|| u.fail(format!("attachment {} of event {eid} is gone", a["n"])));
        u.check(
            &format!("attachment {}", a["filename"]),
            &json!({
                "filename": a["filename"], "size": a["size"], "content_type": a["content_type"],
                "attachment_type": a["attachment_type"], "truncated": a["truncated"],
            }),
            got,
        );
        let bytes =
            u.h.get(
                &u.owner,
                &format!("/api/events/{eid}/attachments/{}", a["n"]),
            )
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert_eq!(
            hex::encode(Sha256::digest(&bytes)),
            a["sha256"].as_str().unwrap(),
            "{}: attachment {} does not download byte for byte",
            u.release,
            a["filename"]
        );
    }
}

/// Rules, channels and history as they were; deliveries that were pending go out (Slack and a
/// signed webhook, to the receiver); bus consumers resume where they were; the dead letters
/// are there and replay. Returns the subjects of alert mail the replay queued.
async fn alerts_and_bus(u: &Upgraded, receiver: &Receiver, smtp: &SmtpServer) -> Vec<String> {
    let a = &u.m["alerts"];
    u.check(
        "alert rules",
        &a["rules"],
        &u.owner_get("/api/alerts/rules").await["rules"],
    );
    u.check(
        "alert channels",
        &a["channels"],
        &u.owner_get("/api/alerts/channels").await["channels"],
    );

    // Consumers: none starts over or behind where the release left it.
    let bus = u.owner_get("/api/bus").await;
    for c in u.m["bus"]["at_last_stop"].as_array().unwrap() {
        let name = c["name"].as_str().unwrap();
        let now = bus["consumers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["name"] == name)
            .unwrap_or_else(|| u.fail(format!("bus consumer {name} is gone")));
        for lane in 0..4 {
            assert!(
                now["cursors"][lane].as_u64() >= c["cursors"][lane].as_u64(),
                "{}: bus consumer {name} went back in lane {lane}: {} < {}",
                u.release,
                now["cursors"][lane],
                c["cursors"][lane]
            );
        }
    }
    u.check(
        "the dead-letter queue",
        &u.m["bus"]["dead_letters"],
        &u.owner_get("/api/bus/dlq").await["dead_letters"],
    );

    // Pending deliveries go out, each once, to the channels as configured.
    let history = a["history"].as_array().unwrap();
    let pending: Vec<(&Value, &Value)> = history
        .iter()
        .flat_map(|f| {
            f["deliveries"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|d| d["status"] == "pending")
                .map(move |d| (f, d))
        })
        .collect();
    let channel = |id: &Value| {
        a["channels"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == *id)
            .unwrap()
            .clone()
    };
    let hits = wait_for(
        &format!(
            "{}: the {} pending alert deliveries",
            u.release,
            pending.len()
        ),
        T,
        || async {
            let hits = receiver.hits();
            (hits.len() >= pending.len()).then_some(hits)
        },
    )
    .await;
    assert_eq!(
        hits.len(),
        pending.len(),
        "each pending delivery goes out once"
    );
    for (fired, d) in &pending {
        let ch = channel(&d["channel_id"]);
        let url = ch["url"].as_str().unwrap();
        let path = url::Url::parse(url).unwrap().path().to_string();
        let (_, headers, body) = hits.iter().find(|(p, _, _)| *p == path).unwrap_or_else(|| {
            u.fail(format!(
                "nothing arrived at {url} for alert {}",
                fired["id"]
            ))
        });
        let body_v: Value = serde_json::from_slice(body).unwrap();
        let title = fired["alert"]["title"].as_str().unwrap();
        assert!(
            body_v.to_string().contains(title),
            "the delivery to {url} is about {title:?}: {body_v}"
        );
        if ch["type"] == "webhook" {
            // Standard Webhooks: v1,base64(HMAC-SHA256(key, "id.timestamp.body")), keyed with
            // the base64 after `whsec_` in the channel's secret, as stored.
            use base64::Engine;
            use hmac::{KeyInit, Mac};
            let b64 = base64::engine::general_purpose::STANDARD;
            let secret = ch["secret"].as_str().unwrap();
            let key = b64.decode(secret.strip_prefix("whsec_").unwrap()).unwrap();
            let (id, ts) = (
                headers["webhook-id"].to_str().unwrap(),
                headers["webhook-timestamp"].to_str().unwrap(),
            );
            let mut mac = hmac::Hmac::<Sha256>::new_from_slice(&key).unwrap();
            mac.update(format!("{id}.{ts}.").as_bytes());
            mac.update(body);
            let sig = format!("v1,{}", b64.encode(mac.finalize().into_bytes()));
            assert_eq!(
                headers["webhook-signature"].to_str().unwrap(),
                sig,
                "the webhook is signed with the channel's stored secret"
            );
        }
    }
    let after = wait_for(
        &format!(
            "{}: the pending deliveries recorded as delivered",
            u.release
        ),
        T,
        || async {
            let h = u.owner_get("/api/alerts/history?limit=100").await;
            let fired = h["alerts"].as_array().unwrap().clone();
            pending
                .iter()
                .all(|(f, d)| {
                    fired.iter().any(|x| {
                        x["id"] == f["id"]
                            && x["deliveries"].as_array().unwrap().iter().any(|y| {
                                y["channel_id"] == d["channel_id"] && y["status"] == "delivered"
                            })
                    })
                })
                .then_some(fired)
        },
    )
    .await;
    // Everything else in the history is as it was: nothing delivered before went out again.
    assert_eq!(
        after.len(),
        history.len(),
        "{}: alerts fired again",
        u.release
    );
    for f in history {
        if f["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["status"] == "pending")
        {
            continue;
        }
        let got = after.iter().find(|x| x["id"] == f["id"]).unwrap();
        u.check(&format!("fired alert {}", f["id"]), f, got);
    }

    // Dead letters replay: the alert mail that could not render is queued and sent now.
    let mut subjects = Vec::new();
    for d in u.m["bus"]["dead_letters"].as_array().unwrap() {
        let (consumer, seq) = (d["consumer"].as_str().unwrap(), &d["seq"]);
        let r =
            u.h.post(&u.owner, &format!("/api/bus/dlq/{consumer}/{seq}/replay"))
                .send()
                .await
                .unwrap();
        assert_eq!(r.status(), 200, "replaying dead letter {consumer}/{seq}");
        let fired_id = &d["event"]["payload"]["fired_id"];
        wait_for(
            &format!(
                "{}: replayed delivery of alert {fired_id} recorded",
                u.release
            ),
            T,
            || async {
                let h = u.owner_get("/api/alerts/history?limit=100").await;
                h["alerts"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|x| x["id"] == *fired_id && x["deliveries"][0]["status"] == "delivered")
                    .then_some(())
            },
        )
        .await;
        let title = d["event"]["payload"]["alert"]["title"].as_str().unwrap();
        subjects.push(
            wait_for(&format!("alert mail about {title:?}"), T, || async {
                smtp.messages().iter().find_map(|m| {
                    let s = header(m, "subject")?;
                    s.contains(title).then_some(s)
                })
            })
            .await,
        );
    }
    let dlq = u.owner_get("/api/bus/dlq").await;
    assert_eq!(
        dlq["dead_letters"],
        json!([]),
        "replayed dead letters leave the queue"
    );
    subjects
}

/// Templates and every message as they were; queued mail is delivered to the relay, once.
async fn mail(u: &Upgraded, smtp: &SmtpServer, replayed_subjects: &[String]) {
    // Templates the team wrote or edited are kept as they were (untouched built-ins may change
    // with a release).
    let templates = u.owner_get("/api/mail/templates").await;
    for want in u.m["mail"]["templates"].as_array().unwrap() {
        if want["updated_ms"] == 0 {
            continue;
        }
        let got = templates["templates"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == want["name"])
            .unwrap_or_else(|| u.fail(format!("mail template {} is gone", want["name"])));
        u.check(&format!("mail template {}", want["name"]), want, got);
    }
    let mut queued = Vec::new();
    for want in u.m["mail"]["messages"].as_array().unwrap() {
        let id = &want["id"];
        if want["status"] == "queued" {
            queued.push(want);
            continue;
        }
        let got = u.owner_get(&format!("/api/mail/messages/{id}")).await;
        u.check(&format!("mail message {id}"), want, &got);
    }
    for want in &queued {
        let id = &want["id"];
        let got = wait_for(
            &format!("{}: queued mail message {id} sent", u.release),
            T,
            || async {
                let m = u.owner_get(&format!("/api/mail/messages/{id}")).await;
                (m["status"] == "sent").then_some(m)
            },
        )
        .await;
        let mut fixed = want.as_object().unwrap().clone();
        for changes in [
            "status",
            "attempts",
            "updated_ms",
            "sent_ms",
            "next_attempt_ms",
            "last_error",
            "last_code",
            "log",
        ] {
            fixed.remove(changes);
        }
        u.check(
            &format!("queued mail message {id}"),
            &Value::Object(fixed),
            &got,
        );
        let log = want["log"].as_array().unwrap();
        u.check(
            &format!("mail message {id}'s delivery log so far"),
            &Value::Array(log.clone()),
            &Value::Array(got["log"].as_array().unwrap()[..log.len()].to_vec()),
        );
    }
    // The relay got exactly the queued messages and the replayed alert mail.
    let mut want: Vec<String> = queued
        .iter()
        .map(|m| m["subject"].as_str().unwrap().to_string())
        .chain(replayed_subjects.iter().cloned())
        .collect();
    want.sort();
    let mut got: Vec<String> = smtp
        .messages()
        .iter()
        .map(|m| header(m, "subject").unwrap())
        .collect();
    got.sort();
    assert_eq!(got, want, "{}: what the relay received", u.release);
    for m in &queued {
        let to = m["to"][0].as_str().unwrap();
        assert!(
            smtp.messages().iter().any(|s| s["rcpt_tos"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r == to)),
            "{}: nothing was delivered to {to}",
            u.release
        );
    }
}

/// New events of old issues land in them and move them the way their state says; an SDK
/// retry of a stored event is recognised; a discarded fingerprint stays discarded; the
/// revoked DSN key is refused.
async fn new_events(u: &Upgraded, receiver: &Receiver) {
    let backend = &u.m["projects"][0];
    let revoked = backend["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| !k["revoked_ms"].is_null())
        .unwrap()["public_key"]
        .as_str()
        .unwrap();
    let envelope = std::fs::read(fixture_file(u, "envelopes/zero_division.envelope")).unwrap();
    let (status, body) = u
        .send_envelope(&backend["project"]["id"], revoked, &envelope)
        .await;
    let want = &u.m["revoked_key_refusal"];
    assert_eq!(
        status,
        want["status"].as_u64().unwrap() as u16,
        "revoked DSN key: {body}"
    );
    assert_eq!(
        body["error"]["code"], want["body"]["error"]["code"],
        "revoked DSN key"
    );

    // The SDK retries the first request it ever sent: acknowledged, not stored twice.
    let dup = &u.m["duplicate_request"];
    let zd = u.issue(dup["issue"].as_str().unwrap());
    let mut req =
        u.h.http
            .post(u.h.url(&format!("/api/{}/envelope/", zd["project_id"])));
    for hv in dup["headers"].as_array().unwrap() {
        req = req.header(hv[0].as_str().unwrap(), hv[1].as_str().unwrap());
    }
    let r = req
        .body(std::fs::read(fixture_file(u, dup["file"].as_str().unwrap())).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["id"], dup["event_id"]);
    assert_eq!(
        u.detail(&zd["id"]).await["count"],
        zd["detail"]["count"],
        "{}: an SDK retry of a stored event was counted again",
        u.release
    );

    let mut regressed_titles = Vec::new();
    for i in u.issues() {
        let Some(next) = i.get("next_event") else {
            continue;
        };
        let (key, id) = (i["key"].as_str().unwrap(), &i["id"]);
        let eid = if let Some(message) = next.get("rust_sdk_message") {
            send_with_sentry_sdk(u, &i["project_id"], message.as_str().unwrap()).await
        } else {
            let envelope = std::fs::read(fixture_file(u, next["file"].as_str().unwrap())).unwrap();
            let key = u.active_key(&i["project_id"]);
            let (status, body) = u.send_envelope(&i["project_id"], &key, &envelope).await;
            assert_eq!(status, 200, "next event of {key}: {body}");
            assert_eq!(body["id"], next["event_id"]);
            next["event_id"].as_str().unwrap().to_string()
        };
        let r =
            u.h.get(&u.owner, &format!("/api/issues/{id}/events/{eid}"))
                .send()
                .await
                .unwrap();
        assert_eq!(
            r.status(),
            200,
            "{}: a new event of issue {key} did not land in it (grouping changed?)",
            u.release
        );
        let got = u.detail(id).await;
        let before = &i["detail"];
        let mut want = next["expect"].clone();
        want["count"] = json!(before["count"].as_u64().unwrap() + 1);
        want["stored_events"] = json!(before["stored_events"].as_u64().unwrap() + 1);
        u.check(&format!("issue {key} after a new event"), &want, &got);
        if want["status"] == "regressed" && before["status"] != "regressed" {
            regressed_titles.push(before["title"].as_str().unwrap().to_string());
        }
    }
    for d in u.m["deleted_issues"].as_array().unwrap() {
        let next = &d["next_event"];
        let envelope = std::fs::read(fixture_file(u, next["file"].as_str().unwrap())).unwrap();
        let (status, body) = u
            .send_envelope(&d["project_id"], &u.active_key(&d["project_id"]), &envelope)
            .await;
        assert_eq!(status, 200, "{body}");
        let p = u.m["projects"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["project"]["id"] == d["project_id"])
            .unwrap();
        let all = u
            .owner_get(&format!(
                "/api/projects/{}/issues?limit=100",
                d["project_id"]
            ))
            .await;
        assert_eq!(
            sorted_ids(&all["issues"]),
            sorted_ids(&p["issues"]),
            "{}: an event of the deleted and discarded issue {} made an issue again",
            u.release,
            d["key"]
        );
    }
    // A regression alerts the chat channels, as it did before the upgrade.
    for title in regressed_titles {
        wait_for(&format!("regression alerts about {title:?}"), T, || async {
            let n = receiver
                .hits()
                .iter()
                .filter(|(_, _, b)| String::from_utf8_lossy(b).contains(&title))
                .count();
            (n == 2).then_some(())
        })
        .await;
    }
}

fn fixture_file(u: &Upgraded, name: &str) -> PathBuf {
    u.fixture.join(name)
}

/// Sends a message with the official Rust SDK; returns its event id.
async fn send_with_sentry_sdk(u: &Upgraded, project_id: &Value, message: &str) -> String {
    let key = u.active_key(project_id);
    let dsn = format!("http://{key}@127.0.0.1:{}/{project_id}", u.h.port);
    let mut opts = sentry::ClientOptions::default();
    opts.dsn = Some(dsn.parse().unwrap());
    opts.release = Some("fixture-shop@1.4.2".into());
    let client = Arc::new(sentry::Client::from(sentry::apply_defaults(opts)));
    let hub = sentry::Hub::new(Some(client.clone()), Arc::new(sentry::Scope::default()));
    let id = hub.capture_message(message, sentry::Level::Warning);
    let flushed = tokio::task::spawn_blocking(move || client.flush(Some(Duration::from_secs(10))))
        .await
        .unwrap();
    assert!(flushed, "the Rust SDK could not deliver its event");
    id.simple().to_string()
}
