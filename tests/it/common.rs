//! Shared helpers: start a real Hearth server on port 0 with its own data directory.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hearth::{AppState, Config};
use tokio::task::JoinHandle;

pub struct TestServer {
    pub addr: SocketAddr,
    pub base: String,
    pub state: AppState,
    pub data_dir: PathBuf,
    /// Kept so the directory lives as long as the server (None when the caller owns it).
    _tmp: Option<tempfile::TempDir>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
    pub http: reqwest::Client,
}

/// A config for tests: temp data dir, loopback port 0, quiet.
pub fn test_config(data_dir: &Path) -> Config {
    let mut config = Config::default();
    config.storage.data_dir = data_dir.to_path_buf();
    config.server.listen = "127.0.0.1:0".parse().unwrap();
    config.log.level = "warn".into();
    config
}

pub fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

impl TestServer {
    pub async fn start() -> TestServer {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let mut s = Self::start_with(test_config(&dir)).await;
        s._tmp = Some(tmp);
        s
    }

    /// Starts a server on `config` (its data dir is the caller's).
    pub async fn start_with(config: Config) -> TestServer {
        Self::start_with_hook(config, |_| {}).await
    }

    /// Like [`TestServer::start_with`], running `hook` on the built app before it serves (to
    /// register extra bus consumers, for instance).
    pub async fn start_with_hook(mut config: Config, hook: impl FnOnce(&AppState)) -> TestServer {
        install_crypto();
        let listener = tokio::net::TcpListener::bind(config.server.listen)
            .await
            .unwrap();
        let addr = listener.local_addr().unwrap();
        config.server.listen = addr;
        if config.server.public_url.is_empty() {
            config.server.public_url = format!("http://{addr}");
        }
        let data_dir = config.storage.data_dir.clone();
        let app = hearth::build(config).expect("build app");
        let state = app.state().clone();
        hook(&state);
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            app.serve(listener, async move {
                let _ = rx.await;
            })
            .await
            .expect("serve");
        });
        // Idle connections dropped before the server's idle_timeout close (see binary.rs).
        let http = reqwest::Client::builder()
            .cookie_store(false)
            .timeout(Duration::from_secs(30))
            .pool_idle_timeout(Duration::from_secs(5))
            .build()
            .unwrap();
        TestServer {
            addr,
            base: format!("http://{addr}"),
            state,
            data_dir,
            _tmp: None,
            stop: Some(tx),
            task: Some(task),
            http,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Stops the server and waits until it has released the database.
    pub async fn stop(mut self) -> Option<tempfile::TempDir> {
        self.shutdown().await;
        self._tmp.take()
    }

    async fn shutdown(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            t.await.expect("server task");
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

/// A client acting as a fresh user of `role`, authenticated with an API token.
pub struct AuthedClient {
    pub http: reqwest::Client,
    pub token: String,
    pub user_id: u64,
    pub base: String,
}

impl AuthedClient {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }
    pub fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.get(self.url(path)).bearer_auth(&self.token)
    }
    pub fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.post(self.url(path)).bearer_auth(&self.token)
    }
    pub fn patch(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.patch(self.url(path)).bearer_auth(&self.token)
    }
    pub fn delete(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.delete(self.url(path)).bearer_auth(&self.token)
    }
}

impl TestServer {
    /// Creates a user with `role` and an API token for it.
    pub async fn client(&self, role: hearth::accounts::Role) -> AuthedClient {
        let n = rand::random::<u64>();
        let user = self
            .state
            .accounts
            .create_user(
                &format!("{}-{n}@test.invalid", role.as_str()),
                "Test User",
                role,
                None,
            )
            .await
            .unwrap();
        let (_, token) = self
            .state
            .accounts
            .create_api_token(user.id, "test")
            .await
            .unwrap();
        AuthedClient {
            http: self.http.clone(),
            token,
            user_id: user.id,
            base: self.base.clone(),
        }
    }

    /// Creates a project; returns (project id, DSN public key, DSN).
    pub async fn project(&self, name: &str) -> (u64, String, String) {
        let (p, k) = self.state.accounts.create_project(name).await.unwrap();
        let dsn = k.dsn(&self.base);
        (p.id, k.public_key, dsn)
    }
}

/// A loopback port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `check` until it returns `Some`, failing after `timeout`. Tests wait on conditions,
/// never on fixed sleeps.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Skips a test whose prerequisite is missing: prints a line CI greps for, and fails outright
/// when HEARTH_REQUIRE_ALL_TESTS is set (CI sets it).
pub fn skip(reason: &str) {
    if std::env::var_os("HEARTH_REQUIRE_ALL_TESTS").is_some() {
        panic!("SKIPPED: {reason} (HEARTH_REQUIRE_ALL_TESTS is set, so this is a failure)");
    }
    println!("SKIPPED: {reason}");
}
