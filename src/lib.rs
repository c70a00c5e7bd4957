//! Hearth: Sentry-compatible error tracking, live chat, internal mail, uptime monitoring and
//! alerting in one binary.
//!
//! `main.rs` only parses the command line; everything runs through [`build`] and [`App::serve`],
//! which the integration tests call too.

pub mod accounts;
pub mod alerts;
pub mod app;
pub mod bus;
pub mod chat;
pub mod cli;
pub mod config;
pub mod container;
pub mod http;
pub mod ingest;
pub mod issues;
pub mod limit;
pub mod mail;
pub mod metrics;
pub mod net;
#[cfg(test)]
mod ownership;
pub mod search;
pub mod sourcemaps;
pub mod store;
pub mod uptime;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use app::AppState;
pub use config::Config;

/// Version and the git commit it was built from.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("HEARTH_GIT_COMMIT"),
    ")"
);

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error("{part}: {message}")]
    Part { part: &'static str, message: String },
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// A built application: state and router, not yet serving.
pub struct App {
    state: AppState,
    router: Router,
}

/// Opens the database, builds every part and registers their bus consumers.
pub fn build(config: Config) -> Result<App, BuildError> {
    let config = Arc::new(config);
    std::fs::create_dir_all(&config.storage.data_dir)?;
    // Private before anything is written into it (see store::make_private). Best effort: a
    // directory owned by someone else (a mounted volume) is used as it is, with a warning.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Err(e) = std::fs::set_permissions(
            &config.storage.data_dir,
            std::fs::Permissions::from_mode(0o700),
        ) {
            tracing::warn!(
                "cannot make {} private (mode 0700): {e}",
                config.storage.data_dir.display()
            );
        }
    }
    let db = store::Db::open(&config.db_path(), config.storage.cache_size.as_usize())?;
    db.space()
        .set_min_free(config.storage.min_free_space.bytes());
    let bus = bus::Bus::new(db.clone(), config.bus.clone());
    let accounts = accounts::Accounts::new(db.clone(), config.clone());
    let search = search::Search::open(&config).map_err(|e| BuildError::Part {
        part: "search",
        message: e.to_string(),
    })?;
    let issues = issues::Issues::new(db.clone(), bus.clone(), config.clone(), search.clone());
    let ingest = ingest::Ingest::new(config.clone(), db.clone(), accounts.clone(), issues.clone());
    // Source maps (issue 20): ingest maps JavaScript frames before grouping.
    let sourcemaps = sourcemaps::SourceMaps::new(db.clone(), config.clone());
    ingest.use_sourcemaps(sourcemaps.clone());
    let mail = mail::Mail::new(db.clone(), bus.clone(), config.clone());
    let alerts = alerts::Alerts::new(db.clone(), config.clone()).map_err(|e| BuildError::Part {
        part: "alerts",
        message: e.to_string(),
    })?;
    let chat = chat::Chat::new(
        db.clone(),
        bus.clone(),
        config.clone(),
        accounts.clone(),
        mail.clone(),
    );
    let uptime =
        uptime::Uptime::new(db.clone(), config.clone()).map_err(|message| BuildError::Part {
            part: "uptime",
            message,
        })?;
    let (_, table) = http::all_routes().into_parts();
    let state = AppState::new(app::AppInner {
        config,
        db,
        bus,
        accounts,
        search,
        issues,
        ingest,
        mail,
        alerts,
        chat,
        uptime,
        sourcemaps,
        http_metrics: Default::default(),
        routes: Arc::new(table),
        shutdown: CancellationToken::new(),
    });
    state.accounts.register(&state);
    state.search.register(&state);
    state.issues.register(&state);
    state.ingest.register(&state);
    state.mail.register(&state);
    state.alerts.register(&state);
    state.chat.register(&state);
    state.uptime.register(&state);
    // Batches acknowledged through the ingest log but lost from the database in a crash are
    // committed again before anything reads or serves.
    state.ingest.recover().map_err(|e| BuildError::Part {
        part: "ingest",
        message: e.to_string(),
    })?;
    if let Err(e) = store::make_private(&state.config.storage.data_dir) {
        tracing::warn!(
            "cannot make every file in {} private (0600/0700): {e}",
            state.config.storage.data_dir.display()
        );
    }
    let (router, _) = http::build_router(state.clone());
    Ok(App { state, router })
}

/// Bus handlers hold the app state, which holds the bus: dropping an app (served or not)
/// clears the handlers so that cycle breaks and the database file is released.
impl Drop for App {
    fn drop(&mut self) {
        self.state.bus.clear();
    }
}

impl App {
    pub fn state(&self) -> &AppState {
        &self.state
    }

    pub fn router(&self) -> Router {
        self.router.clone()
    }

    /// Serves HTTP on `listener` (and the admin socket in the data directory) until `shutdown`
    /// resolves, then drains requests and workers within `[server] shutdown_grace`.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), BuildError> {
        let state = self.state.clone();
        let token = state.shutdown.clone();
        let mut tasks = state.bus.start(token.clone());
        tasks.extend(state.accounts.start(&state, token.clone()));
        tasks.extend(state.search.start(&state, token.clone()));
        tasks.extend(state.issues.start(&state, token.clone()));
        tasks.extend(state.ingest.start(&state, token.clone()));
        tasks.extend(state.mail.start(&state, token.clone()));
        tasks.extend(state.alerts.start(&state, token.clone()));
        tasks.push(tokio::spawn(state.db.clone().watch_space(token.clone())));
        tasks.extend(state.chat.start(&state, token.clone()));
        tasks.extend(state.uptime.start(&state, token.clone()));
        tasks.extend(state.sourcemaps.start(token.clone()));
        let socket = http::socket::bind(&state.config.socket_path()).await?;
        tasks.push(tokio::spawn(http::socket::serve(
            socket,
            self.router.clone(),
            token.clone(),
        )));
        {
            let token = token.clone();
            tokio::spawn(async move {
                shutdown.await;
                token.cancel();
            });
        }
        // dash (issue 16): an offline `hearth project add` names the address served on here.
        let served = match state.config.server.public_url.is_empty() {
            true => format!("http://{}", listener.local_addr()?),
            false => state.config.server.base_url(),
        };
        let before = cli::recorded_served_url(&state.config.storage.data_dir);
        cli::record_served_url(&state.config.storage.data_dir, &served);
        if before.as_deref() != Some(served.as_str()) {
            cli::announce_dsns(&state, before.as_deref()).await;
        }
        tracing::info!(
            addr = %listener.local_addr()?,
            version = VERSION,
            "hearth listening on {}",
            state.config.server.base_url()
        );
        http::serve_tcp(
            listener,
            self.router.clone(),
            state.config.clone(),
            token.clone(),
        )
        .await;
        let grace = state.config.server.shutdown_grace.get();
        let drain = async {
            for t in tasks {
                let _ = t.await;
            }
        };
        if tokio::time::timeout(grace, drain).await.is_err() {
            tracing::warn!("workers did not stop within {grace:?}; exiting anyway");
        }
        let _ = std::fs::remove_file(state.config.socket_path());
        state.bus.clear();
        // Give blocking tasks a moment to release their database handles.
        tokio::time::sleep(Duration::from_millis(10)).await;
        tracing::info!("hearth stopped");
        Ok(())
    }
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
    tracing::info!("shutdown requested");
}

/// Sets up the tracing subscriber from `[log]`.
pub fn init_logging(log: &config::LogConfig) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_new(&log.level).unwrap_or_else(|_| EnvFilter::new("info"));
    // Colour codes only on a terminal: journald and `docker logs` get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi);
    let _ = match log.format {
        config::LogFormat::Json => builder.json().try_init(),
        config::LogFormat::Text => builder.try_init(),
    };
}

/// Asks the server configured in `config` whether it is ready: `GET /health/ready` on its listen
/// address (a wildcard address is reached through loopback).
pub async fn healthcheck(config: &Config) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut addr = config.server.listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(if addr.is_ipv4() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        });
    }
    let attempt = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
        let req =
            format!("GET /health/ready HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream.write_all(req.as_bytes()).await.ok()?;
        let mut buf = Vec::new();
        stream.read_to_end(&mut buf).await.ok()?;
        let head = String::from_utf8_lossy(&buf[..buf.len().min(64)]).to_string();
        Some(head.starts_with("HTTP/1.1 200"))
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(5), attempt).await,
        Ok(Some(true))
    )
}
