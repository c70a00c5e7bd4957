//! Sign-in, sessions, setup link, users and tokens, roles, migration of users.

use std::time::Duration;

use hearth::accounts::Role;
use serde_json::{Value, json};

use crate::common::{TestServer, test_config, wait_for};

const PW: &str = "correct horse battery";

async fn login(s: &TestServer, email: &str, password: &str) -> reqwest::Response {
    s.http
        .post(s.url("/api/auth/login"))
        .json(&json!({ "email": email, "password": password }))
        .send()
        .await
        .unwrap()
}

fn set_cookie(resp: &reqwest::Response) -> String {
    resp.headers()
        .get("set-cookie")
        .expect("a Set-Cookie header")
        .to_str()
        .unwrap()
        .to_string()
}

/// `hearth_session=<secret>` from a Set-Cookie header, for a `Cookie:` header.
fn cookie_pair(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap().trim().to_string()
}

async fn me(s: &TestServer, cookie: &str) -> reqwest::Response {
    s.http
        .get(s.url("/api/auth/me"))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap()
}

async fn code(resp: reqwest::Response) -> String {
    let body: Value = resp.json().await.unwrap();
    body["error"]["code"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

async fn user_with_password(s: &TestServer, role: Role) -> String {
    let email = format!("{}-{}@test.invalid", role.as_str(), rand::random::<u32>());
    s.state
        .accounts
        .create_user(&email, "Person", role, Some(PW))
        .await
        .unwrap();
    email
}

#[tokio::test]
async fn setup_link_creates_the_owner_exactly_once() {
    let s = TestServer::start().await;
    let status: Value = s
        .http
        .get(s.url("/api/auth/setup"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["needs_setup"], true);
    let token = s.state.accounts.create_setup_token().await.unwrap();
    let other = s.state.accounts.create_setup_token().await.unwrap();
    let body = |token: &str| json!({ "token": token, "email": "boss@test.invalid", "name": "Boss", "password": PW });

    let r = s
        .http
        .post(s.url("/api/auth/setup"))
        .json(&body("not-the-token"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(code(r).await, "setup_link_invalid");

    let r = s
        .http
        .post(s.url("/api/auth/setup"))
        .json(&body(&token))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let cookie = cookie_pair(&set_cookie(&r));
    let r = me(&s, &cookie).await;
    assert_eq!(r.status(), 200);
    let who: Value = r.json().await.unwrap();
    assert_eq!(who["user"]["email"], "boss@test.invalid");
    assert_eq!(who["user"]["role"], "owner");
    assert_eq!(who["user"]["name"], "Boss");

    for t in [&token, &other] {
        let r = s
            .http
            .post(s.url("/api/auth/setup"))
            .json(&body(t))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 409);
        assert_eq!(code(r).await, "setup_already_done");
    }
    let status: Value = s
        .http
        .get(s.url("/api/auth/setup"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["needs_setup"], false);
    // The owner can sign in with the password chosen on the setup page.
    assert_eq!(login(&s, "boss@test.invalid", PW).await.status(), 200);
    s.stop().await;
}

#[tokio::test]
async fn login_logout_and_cookie_flags() {
    let s = TestServer::start().await;
    let email = user_with_password(&s, Role::Agent).await;

    let r = login(&s, &email, PW).await;
    assert_eq!(r.status(), 200);
    let sc = set_cookie(&r);
    assert!(sc.starts_with("hearth_session="), "{sc}");
    assert!(sc.contains("HttpOnly"), "{sc}");
    assert!(sc.contains("SameSite=Strict"), "{sc}");
    assert!(sc.contains("Path=/"), "{sc}");
    assert!(
        !sc.contains("Secure"),
        "plain http must not set Secure: {sc}"
    );
    let cookie = cookie_pair(&sc);
    let r = me(&s, &cookie).await;
    assert_eq!(r.status(), 200);
    let who: Value = r.json().await.unwrap();
    assert_eq!(who["user"]["email"], email.as_str());
    assert_eq!(who["user"]["role"], "agent");
    // The session works on other admin routes too.
    let r = s
        .http
        .get(s.url("/api/projects"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // Wrong password and unknown email look the same.
    let r = login(&s, &email, "wrong password!").await;
    assert_eq!(r.status(), 401);
    assert_eq!(code(r).await, "invalid_credentials");
    let r = login(&s, "nobody@test.invalid", PW).await;
    assert_eq!(r.status(), 401);
    assert_eq!(code(r).await, "invalid_credentials");

    let r = s
        .http
        .post(s.url("/api/auth/logout"))
        .header("cookie", &cookie)
        .header("sec-fetch-site", "same-origin")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let cleared = set_cookie(&r);
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    assert_eq!(me(&s, &cookie).await.status(), 401);
    s.stop().await;
}

#[tokio::test]
async fn cookie_is_secure_behind_https() {
    let tmp = tempfile::tempdir().unwrap();
    let mut config = test_config(tmp.path());
    config.server.public_url = "https://hearth.example.test".into();
    let s = TestServer::start_with(config).await;
    let email = user_with_password(&s, Role::Viewer).await;
    let r = login(&s, &email, PW).await;
    assert_eq!(r.status(), 200);
    let sc = set_cookie(&r);
    assert!(sc.contains("; Secure"), "{sc}");
    assert!(
        sc.contains("HttpOnly") && sc.contains("SameSite=Strict"),
        "{sc}"
    );
    s.stop().await;
}

#[tokio::test]
async fn expired_session_is_refused_with_its_own_code() {
    let tmp = tempfile::tempdir().unwrap();
    let mut config = test_config(tmp.path());
    config.auth.session_ttl = hearth::config::HumanDuration::millis(300);
    let s = TestServer::start_with(config).await;
    let email = user_with_password(&s, Role::Viewer).await;
    let cookie = cookie_pair(&set_cookie(&login(&s, &email, PW).await));
    let code = wait_for("the session to expire", Duration::from_secs(20), || {
        let s = &s;
        let cookie = cookie.clone();
        async move {
            let r = me(s, &cookie).await;
            (r.status() == 401).then_some(r)
        }
    })
    .await;
    assert_eq!(
        code.json::<Value>().await.unwrap()["error"]["code"],
        "session_expired"
    );
    s.stop().await;
}

#[tokio::test]
async fn login_is_rate_limited_per_account() {
    let tmp = tempfile::tempdir().unwrap();
    let mut config = test_config(tmp.path());
    config.auth.login_attempts_per_account = 3;
    config.auth.login_attempts_per_ip = 1000;
    let s = TestServer::start_with(config).await;
    let email = user_with_password(&s, Role::Viewer).await;
    let other = user_with_password(&s, Role::Viewer).await;
    for _ in 0..3 {
        assert_eq!(login(&s, &email, "wrong password!").await.status(), 401);
    }
    for password in ["wrong password!", PW] {
        let r = login(&s, &email, password).await;
        assert_eq!(
            r.status(),
            429,
            "even the right password waits out the window"
        );
        let retry: u64 = r.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(retry >= 1, "{retry}");
        assert_eq!(code(r).await, "login_rate_limited");
    }
    // Upper case is the same account.
    assert_eq!(login(&s, &email.to_uppercase(), PW).await.status(), 429);
    assert_eq!(login(&s, &other, PW).await.status(), 200);
    s.stop().await;
}

#[tokio::test]
async fn login_is_rate_limited_per_ip() {
    let tmp = tempfile::tempdir().unwrap();
    let mut config = test_config(tmp.path());
    config.auth.login_attempts_per_account = 1000;
    config.auth.login_attempts_per_ip = 3;
    let s = TestServer::start_with(config).await;
    let email = user_with_password(&s, Role::Viewer).await;
    for i in 0..3 {
        let r = login(&s, &format!("guess{i}@test.invalid"), PW).await;
        assert_eq!(r.status(), 401);
    }
    let r = login(&s, &email, PW).await;
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    assert_eq!(code(r).await, "login_rate_limited");
    s.stop().await;
}

#[tokio::test]
async fn api_tokens_create_list_use_and_revoke() {
    let s = TestServer::start().await;
    let viewer = s.client(Role::Viewer).await;
    let r = viewer
        .post("/api/tokens")
        .json(&json!({ "name": "ci" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let created: Value = r.json().await.unwrap();
    let secret = created["secret"].as_str().unwrap().to_string();
    let id = created["token"]["id"].as_u64().unwrap();
    assert!(secret.starts_with("hth_"));

    let r = s
        .http
        .get(s.url("/api/auth/me"))
        .bearer_auth(&secret)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let who: Value = r.json().await.unwrap();
    assert_eq!(who["user"]["id"].as_u64(), Some(viewer.user_id));

    // Listed (without any secret), and its use is recorded.
    let listed = wait_for(
        "last_used_ms to be recorded",
        Duration::from_secs(10),
        || {
            let viewer = &viewer;
            async move {
                let list: Value = viewer
                    .get("/api/tokens")
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                let t = list["tokens"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|t| t["id"].as_u64() == Some(id))
                    .cloned()?;
                (!t["last_used_ms"].is_null()).then_some(list)
            }
        },
    )
    .await;
    assert_eq!(listed["tokens"].as_array().unwrap().len(), 2);
    assert!(!listed.to_string().contains(&secret));

    // Someone else's token is not found for a non-owner; an owner may revoke it.
    let other = s.client(Role::Admin).await;
    let r = other
        .delete(&format!("/api/tokens/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = viewer
        .delete(&format!("/api/tokens/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = s
        .http
        .get(s.url("/api/auth/me"))
        .bearer_auth(&secret)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    let owner = s.client(Role::Owner).await;
    let own_list: Value = other
        .get("/api/tokens")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let other_id = own_list["tokens"][0]["id"].as_u64().unwrap();
    let r = owner
        .delete(&format!("/api/tokens/{other_id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        other.get("/api/auth/me").send().await.unwrap().status(),
        401
    );
    s.stop().await;
}

#[tokio::test]
async fn users_api_roles_invites_and_disabling() {
    let s = TestServer::start().await;
    let owner = s.client(Role::Owner).await;
    let admin = s.client(Role::Admin).await;

    assert_eq!(admin.get("/api/users").send().await.unwrap().status(), 200);
    let r = admin
        .post("/api/users")
        .json(&json!({ "email": "x@test.invalid", "role": "viewer" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    // An invited user sets their password through the one-time link.
    let r = owner
        .post("/api/users")
        .json(&json!({ "email": "new@test.invalid", "name": "New", "role": "agent" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let created: Value = r.json().await.unwrap();
    let new_id = created["user"]["id"].as_u64().unwrap();
    assert_eq!(created["user"]["has_password"], false);
    assert!(created["user"].get("password_hash").is_none());
    let url = created["set_password_url"].as_str().unwrap();
    let token = url.split("token=").nth(1).unwrap().to_string();
    let info: Value = s
        .http
        .get(s.url(&format!("/api/auth/setup?token={token}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["link"]["kind"], "set_password");
    assert_eq!(info["link"]["email"], "new@test.invalid");
    let set = |token: String| {
        s.http
            .post(s.url("/api/auth/password"))
            .json(&json!({ "token": token, "password": PW }))
            .send()
    };
    let r = set(token.clone()).await.unwrap();
    assert_eq!(r.status(), 200);
    let cookie = cookie_pair(&set_cookie(&r));
    assert_eq!(me(&s, &cookie).await.status(), 200);
    let r = set(token).await.unwrap();
    assert_eq!(r.status(), 403, "the link works once");
    assert_eq!(login(&s, "new@test.invalid", PW).await.status(), 200);

    // Duplicate email.
    let r = owner
        .post("/api/users")
        .json(&json!({ "email": "NEW@test.invalid", "role": "agent", "password": PW }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);

    // Disabling stops the session and tokens; enabling brings tokens back (sessions stay ended).
    let (_, secret) = s
        .state
        .accounts
        .create_api_token(new_id, "t")
        .await
        .unwrap();
    let r = owner
        .patch(&format!("/api/users/{new_id}"))
        .json(&json!({ "disabled": true }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(me(&s, &cookie).await.status(), 401);
    let with_token = || {
        s.http
            .get(s.url("/api/auth/me"))
            .bearer_auth(&secret)
            .send()
    };
    assert_eq!(with_token().await.unwrap().status(), 401);
    assert_eq!(login(&s, "new@test.invalid", PW).await.status(), 401);
    let r = owner
        .patch(&format!("/api/users/{new_id}"))
        .json(&json!({ "disabled": false, "role": "admin", "name": "Renamed" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let u: Value = r.json().await.unwrap();
    assert_eq!(u["user"]["role"], "admin");
    assert_eq!(u["user"]["name"], "Renamed");
    let r = with_token().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["user"]["role"], "admin");

    // Deleting removes the user and their tokens.
    let r = owner
        .delete(&format!("/api/users/{new_id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(with_token().await.unwrap().status(), 401);
    assert_eq!(login(&s, "new@test.invalid", PW).await.status(), 401);
    let r = owner
        .delete(&format!("/api/users/{new_id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    s.stop().await;
}

#[tokio::test]
async fn the_last_owner_cannot_be_demoted_disabled_or_deleted() {
    let s = TestServer::start().await;
    let a = s.client(Role::Owner).await;
    let path = format!("/api/users/{}", a.user_id);
    for patch in [json!({ "role": "admin" }), json!({ "disabled": true })] {
        let r = a.patch(&path).json(&patch).send().await.unwrap();
        assert_eq!(r.status(), 409, "{patch}");
        assert_eq!(code(r).await, "conflict");
    }
    assert_eq!(a.delete(&path).send().await.unwrap().status(), 409);

    let b = s.client(Role::Owner).await;
    let r = b
        .patch(&path)
        .json(&json!({ "role": "admin" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // b is now the only owner.
    let r = b
        .delete(&format!("/api/users/{}", b.user_id))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    // A disabled owner does not count as the one that keeps the instance manageable.
    let c = s.client(Role::Owner).await;
    let r = b
        .patch(&format!("/api/users/{}", c.user_id))
        .json(&json!({ "disabled": true }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = b
        .patch(&format!("/api/users/{}", b.user_id))
        .json(&json!({ "role": "viewer" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    s.stop().await;
}

#[tokio::test]
async fn users_written_by_schema_v1_get_the_email_index_and_can_sign_in() {
    use hearth::accounts::{User, hash_password, store};
    use hearth::store::{Db, codec};
    use redb::ReadableTableMetadata;

    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("hearth.redb");
    {
        let db = Db::open_at_version(&path, 1).unwrap();
        assert_eq!(db.schema_version().unwrap(), 1);
        let hash = hash_password(PW).unwrap();
        db.write_blocking(|txn| {
            let mut users = txn.open_table(store::USERS)?;
            let user = User {
                id: 1,
                email: "Old.Timer@Test.invalid".into(),
                name: "Old".into(),
                role: Role::Owner,
                password_hash: Some(hash),
                created_ms: 1,
                disabled: false,
            };
            users.insert(1, codec::encode(&user).as_slice())?;
            txn.open_table(store::COUNTERS)?.insert("user", 1)?;
            hearth::store::StoreResult::Ok(())
        })
        .unwrap();
        let indexed = db
            .read_blocking(|txn| {
                hearth::store::StoreResult::Ok(txn.open_table(store::USERS_BY_EMAIL)?.len()?)
            })
            .unwrap();
        assert_eq!(indexed, 0, "v1 had no email index");
    }
    {
        let db = Db::open(&path, 1 << 20).unwrap();
        assert_eq!(db.schema_version().unwrap(), hearth::store::CURRENT_VERSION);
        let id = db
            .read_blocking(|txn| {
                hearth::store::StoreResult::Ok(
                    txn.open_table(store::USERS_BY_EMAIL)?
                        .get("old.timer@test.invalid")?
                        .map(|v| v.value()),
                )
            })
            .unwrap();
        assert_eq!(id, Some(1));
    }
    let s = TestServer::start_with(test_config(tmp.path())).await;
    let r = login(&s, "old.timer@test.invalid", PW).await;
    assert_eq!(r.status(), 200);
    // A new user does not reuse the migrated id.
    let u = s
        .state
        .accounts
        .create_user("second@test.invalid", "", Role::Viewer, None)
        .await
        .unwrap();
    assert_eq!(u.id, 2);
    s.stop().await;
}

#[tokio::test]
async fn login_and_setup_pages_are_served_without_inline_script() {
    let s = TestServer::start().await;
    for (path, script) in [
        ("/login", "/static/login.js"),
        ("/setup", "/static/setup.js"),
    ] {
        let r = s.http.get(s.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
        let html = r.text().await.unwrap();
        assert!(html.contains(&format!("src=\"{script}\"")), "{path}");
        assert!(
            !html.contains("<script>") && !html.contains("style="),
            "{path}"
        );
        let r = s.http.get(s.url(script)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{script}");
    }
    assert_eq!(
        s.http
            .get(s.url("/static/login.html"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    s.stop().await;
}

async fn fill(c: &fantoccini::Client, css: &str, text: &str) {
    let el = c
        .wait()
        .for_element(fantoccini::Locator::Css(css))
        .await
        .unwrap();
    el.clear().await.unwrap();
    el.send_keys(text).await.unwrap();
}

async fn wait_for_path(c: &fantoccini::Client, path: &str) {
    wait_for(
        &format!("the browser to reach {path}"),
        Duration::from_secs(20),
        || async {
            let url = c.current_url().await.ok()?;
            (url.path() == path).then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn setup_and_login_pages_work_in_a_browser() {
    use fantoccini::Locator;
    let Some(b) = crate::browser::Browser::start().await else {
        return;
    };
    let c = &b.c;
    let s = TestServer::start().await;
    let token = s.state.accounts.create_setup_token().await.unwrap();

    c.goto(&s.url(&format!("/setup?token={token}")))
        .await
        .unwrap();
    // The form is shown by setup.js, so this also proves the script runs under the CSP.
    c.wait()
        .for_element(Locator::Css("#setup-form:not([hidden])"))
        .await
        .unwrap();
    fill(c, "#email", "browser@test.invalid").await;
    fill(c, "#name", "Browser Owner").await;
    fill(c, "#password", PW).await;
    c.find(Locator::Css("#submit"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for_path(c, "/").await;
    let cookie = c.get_named_cookie("hearth_session").await.unwrap();
    assert_eq!(cookie.http_only(), Some(true));
    let secret = format!("hearth_session={}", cookie.value());
    let who: Value = me(&s, &secret).await.json().await.unwrap();
    assert_eq!(who["user"]["email"], "browser@test.invalid");
    assert_eq!(who["user"]["role"], "owner");

    // Sign in again from the login page; a wrong password shows the API's message.
    c.delete_all_cookies().await.unwrap();
    c.goto(&s.url("/login")).await.unwrap();
    fill(c, "#email", "browser@test.invalid").await;
    fill(c, "#password", "not the password").await;
    c.find(Locator::Css("button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let msg = wait_for("an error message", Duration::from_secs(20), || async {
        let t = c
            .find(Locator::Css("#message"))
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        t.contains("wrong email or password").then_some(t)
    })
    .await;
    assert!(!msg.is_empty());
    fill(c, "#password", PW).await;
    c.find(Locator::Css("button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for_path(c, "/").await;
    assert!(c.get_named_cookie("hearth_session").await.is_ok());
    c.clone().close().await.unwrap();
    s.stop().await;
}

#[tokio::test]
async fn a_burst_of_parallel_guesses_gets_no_more_than_the_limit() {
    let tmp = tempfile::tempdir().unwrap();
    let mut config = test_config(tmp.path());
    config.auth.login_attempts_per_account = 3;
    let s = TestServer::start_with(config).await;
    let email = user_with_password(&s, Role::Viewer).await;
    let guesses = (0..12).map(|i| {
        let s = &s;
        let email = &email;
        async move { login(s, email, &format!("guess number {i}")).await.status() }
    });
    let statuses = futures_util::future::join_all(guesses).await;
    let tried = statuses.iter().filter(|st| **st == 401).count();
    let limited = statuses.iter().filter(|st| **st == 429).count();
    assert_eq!((tried, limited), (3, 9), "{statuses:?}");
    s.stop().await;
}

#[tokio::test]
async fn expired_links_are_pruned() {
    let tmp = tempfile::tempdir().unwrap();
    let mut config = test_config(tmp.path());
    config.auth.setup_link_ttl = hearth::config::HumanDuration::millis(1);
    let s = TestServer::start_with(config).await;
    let accounts = &s.state.accounts;
    let stale = accounts.create_setup_token().await.unwrap();
    // Two links expire: ours, and the first-start link the server announces from a task
    // that may run before or after ours. Prune until both are gone.
    let pruned = std::sync::atomic::AtomicU64::new(0);
    wait_for(
        "both links to expire and be pruned",
        Duration::from_secs(10),
        || async {
            let n = accounts.prune_expired().await.unwrap();
            let total = pruned.fetch_add(n, std::sync::atomic::Ordering::Relaxed) + n;
            (total >= 2).then_some(())
        },
    )
    .await;
    assert_eq!(pruned.into_inner(), 2, "exactly the two setup links");
    // A pruned link no longer works.
    let r = s
        .http
        .post(s.url("/api/auth/setup"))
        .json(&json!({ "token": stale, "email": "late@test.invalid", "name": "Late", "password": PW }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(
        accounts.prune_expired().await.unwrap(),
        0,
        "nothing left to prune"
    );
    s.stop().await;
}
