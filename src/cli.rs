//! Operator commands: `hearth user add`, `project add`, `backup`, `dlq …`.
//!
//! Every command is one admin-API request, so there is one code path with two transports:
//! when a server is running, the request goes over its admin socket (`<data_dir>/hearth.sock`,
//! where file permissions are the credential); when none is, the database is opened here and
//! the same router answers the request in-process, with no background workers started.

use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow, bail};
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};

use crate::config::Config;
use crate::http::auth::LocalSocket;

#[derive(Debug, Clone, clap::Subcommand)]
pub enum AdminCommand {
    /// Manage users.
    #[command(subcommand)]
    User(UserCmd),
    /// Manage projects.
    #[command(subcommand)]
    Project(ProjectCmd),
    /// Write a consistent copy of the database to FILE (also while the server runs).
    Backup {
        /// The backup file to create; it must not exist yet.
        file: PathBuf,
    },
    /// Inspect and act on the bus dead-letter queue.
    #[command(subcommand)]
    Dlq(DlqCmd),
    /// Inspect and compact the database.
    #[command(subcommand)]
    Db(DbCmd),
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum DbCmd {
    /// Per-table stored, allocated and fragmented bytes, free space, events per project.
    Stats,
    /// Move the database's pages to the front and shrink the file (stop the server first).
    Compact,
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum UserCmd {
    /// Add a user; prints a one-time link to set the password unless --password-file is given.
    Add {
        #[arg(long)]
        email: String,
        /// owner, admin, agent or viewer.
        #[arg(long)]
        role: String,
        #[arg(long)]
        name: Option<String>,
        /// Read the password from this file (first line).
        #[arg(long)]
        password_file: Option<PathBuf>,
    },
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum ProjectCmd {
    /// Create a project; prints its DSN.
    Add { name: String },
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum DlqCmd {
    /// List dead letters.
    List {
        #[arg(long)]
        consumer: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Show one dead letter with its attempts.
    Show { consumer: String, seq: u64 },
    /// Send dead letters back to their consumer: one (SEQ) or all of them (--all).
    Replay {
        consumer: String,
        seq: Option<u64>,
        #[arg(long, conflicts_with = "seq")]
        all: bool,
    },
    /// Delete dead letters: one (--consumer and --seq), a consumer's (--consumer), or all (--all).
    Purge {
        #[arg(long)]
        consumer: Option<String>,
        #[arg(long, requires = "consumer")]
        seq: Option<u64>,
        #[arg(long, conflicts_with_all = ["consumer", "seq"])]
        all: bool,
    },
}

/// One admin-API request.
#[derive(Debug, Clone)]
pub struct ApiRequest {
    pub method: Method,
    /// Path and query, e.g. `/api/bus/dlq?consumer=x`.
    pub path: String,
    pub body: Option<Value>,
}

/// `/a/b` with each of `segments` appended percent-encoded, plus `query` pairs.
fn api_path(base: &str, segments: &[&str], query: &[(&str, String)]) -> String {
    let mut url = url::Url::parse("http://hearth.invalid").expect("static url");
    url.set_path(base);
    if !segments.is_empty()
        && let Ok(mut p) = url.path_segments_mut()
    {
        p.extend(segments);
    }
    if !query.is_empty() {
        let mut q = url.query_pairs_mut();
        for (k, v) in query {
            q.append_pair(k, v);
        }
    }
    url[url::Position::BeforePath..].to_string()
}

fn read_password_file(path: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the password file {}", path.display()))?;
    let pw = text.lines().next().unwrap_or_default().to_string();
    if pw.is_empty() {
        bail!("the password file {} is empty", path.display());
    }
    Ok(pw)
}

impl AdminCommand {
    /// The admin-API request this command stands for.
    pub fn request(&self) -> anyhow::Result<ApiRequest> {
        let req = |method, path: String, body| ApiRequest { method, path, body };
        Ok(match self {
            AdminCommand::User(UserCmd::Add {
                email,
                role,
                name,
                password_file,
            }) => {
                let role: crate::accounts::Role = role.parse().map_err(|e: String| anyhow!(e))?;
                let mut body = json!({ "email": email, "role": role });
                if let Some(n) = name {
                    body["name"] = json!(n);
                }
                if let Some(f) = password_file {
                    body["password"] = json!(read_password_file(f)?);
                }
                req(Method::POST, "/api/users".into(), Some(body))
            }
            AdminCommand::Project(ProjectCmd::Add { name }) => req(
                Method::POST,
                "/api/projects".into(),
                Some(json!({ "name": name })),
            ),
            AdminCommand::Backup { file } => {
                // The server resolves paths from its own working directory; send ours.
                let file = std::path::absolute(file)
                    .with_context(|| format!("cannot resolve {}", file.display()))?;
                req(
                    Method::POST,
                    "/api/admin/backup".into(),
                    Some(json!({ "path": file })),
                )
            }
            AdminCommand::Db(DbCmd::Stats) => req(Method::GET, "/api/admin/db/stats".into(), None),
            AdminCommand::Db(DbCmd::Compact) => {
                bail!("`hearth db compact` runs offline, not through the admin API")
            }
            AdminCommand::Dlq(DlqCmd::List { consumer, limit }) => {
                let mut q = vec![("limit", limit.to_string())];
                if let Some(c) = consumer {
                    q.push(("consumer", c.clone()));
                }
                req(Method::GET, api_path("/api/bus/dlq", &[], &q), None)
            }
            AdminCommand::Dlq(DlqCmd::Show { consumer, seq }) => req(
                Method::GET,
                api_path("/api/bus/dlq", &[consumer, &seq.to_string()], &[]),
                None,
            ),
            AdminCommand::Dlq(DlqCmd::Replay { consumer, seq, all }) => match (seq, all) {
                (Some(seq), false) => req(
                    Method::POST,
                    api_path("/api/bus/dlq", &[consumer, &seq.to_string(), "replay"], &[]),
                    None,
                ),
                (None, true) => req(
                    Method::POST,
                    api_path("/api/bus/dlq", &[consumer, "replay"], &[]),
                    None,
                ),
                _ => bail!("give the dead letter's SEQ, or --all for all of {consumer:?}"),
            },
            AdminCommand::Dlq(DlqCmd::Purge { consumer, seq, all }) => {
                let mut q = Vec::new();
                match (consumer, all) {
                    (Some(c), false) => q.push(("consumer", c.clone())),
                    (None, true) => {}
                    _ => bail!(
                        "say what to purge: --consumer C [--seq S], or --all for every dead letter"
                    ),
                }
                if let Some(s) = seq {
                    q.push(("seq", s.to_string()));
                }
                req(Method::DELETE, api_path("/api/bus/dlq", &[], &q), None)
            }
        })
    }
}

/// The file in the data directory where `serve` records the address it serves on.
const SERVED_URL_FILE: &str = "served-url";

/// Records the base URL a server serves on (`http://LISTEN`, or `[server] public_url`), for an
/// offline `project add` later. Best effort: a read-only data directory only loses the hint.
pub fn record_served_url(data_dir: &Path, url: &str) {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = data_dir.join(format!("{SERVED_URL_FILE}.tmp"));
    // Private like every file in the data directory.
    let done = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| f.write_all(format!("{url}\n").as_bytes()))
        .and_then(|()| std::fs::rename(&tmp, data_dir.join(SERVED_URL_FILE)));
    if let Err(e) = done {
        tracing::warn!(
            "cannot record the served address in {}: {e}",
            data_dir.display()
        );
    }
}

/// The base URL the last `serve` on `data_dir` recorded, if any.
pub fn recorded_served_url(data_dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(data_dir.join(SERVED_URL_FILE)).ok()?;
    let url = text.trim();
    (url.starts_with("http://") || url.starts_with("https://")).then(|| url.to_string())
}

/// At a server's first start on a data directory, or when it serves on another address than
/// last time, logs each project's DSN as the server names it: a DSN printed by an offline
/// `project add` before may name another address (dash, issue 16).
pub async fn announce_dsns(state: &crate::app::AppState, before: Option<&str>) {
    let Ok(projects) = state.accounts.list_projects().await else {
        return;
    };
    if projects.is_empty() {
        return;
    }
    let base = state.config.server.base_url();
    match before {
        None => {
            tracing::info!("first start on this data directory; the projects' DSNs name {base}")
        }
        Some(old) => {
            tracing::info!("the address changed from {old}; the projects' DSNs now name {base}")
        }
    }
    for p in projects.iter().take(50) {
        let Ok(keys) = state.accounts.list_keys(p.id).await else {
            continue;
        };
        for k in keys.iter().filter(|k| k.revoked_ms.is_none()).take(3) {
            tracing::info!("project {:?} (id {}): DSN {}", p.name, p.id, k.dsn(&base));
        }
    }
}

/// Where an offline `project add` takes the DSN's address from (dash, issue 16): the
/// `--listen`/`--public-url` of this command line, else the address the last `serve` on this
/// data directory recorded, else the configuration (`[server] public_url`, else `listen`).
/// Returns the note to print about it.
fn offline_dsn_address(config: &mut Config, address_flags: bool) -> Option<String> {
    if address_flags {
        return None;
    }
    if let Some(url) = recorded_served_url(&config.storage.data_dir) {
        let configured = config.server.base_url();
        config.server.public_url = url.clone();
        return (configured != url).then(|| {
            format!(
                "note: the server is not running; this DSN names {url}, where it last served \
                 (its configuration here says {configured}; pass --public-url to name another)."
            )
        });
    }
    if !config.server.public_url.is_empty() {
        return None;
    }
    Some(format!(
        "note: no server has run on this data directory yet, so this DSN names {} from \
         [server] listen. If `hearth serve` will listen elsewhere (--listen, \
         HEARTH_SERVER__LISTEN) or sits behind a proxy, set [server] public_url, or pass the \
         same --listen/--public-url here; the project page in the dashboard always shows the \
         DSN the server uses.",
        config.server.base_url()
    ))
}

/// Runs `cmd` against the server of `config` (socket) or its stopped data directory
/// (in-process) and prints the JSON answer. Errors carry the API's message.
/// `address_flags`: `--listen` or `--public-url` was given on this command line.
pub async fn run(mut config: Config, cmd: AdminCommand, address_flags: bool) -> anyhow::Result<()> {
    let req = cmd.request()?;
    // dash (issue 16): without a running server the DSN is built here; name the address the
    // server will really use as well as can be known.
    let offline_dsn = matches!(cmd, AdminCommand::Project(ProjectCmd::Add { .. }))
        && tokio::net::UnixStream::connect(config.socket_path())
            .await
            .is_err();
    let note = if offline_dsn {
        offline_dsn_address(&mut config, address_flags)
    } else {
        None
    };
    let (status, body) = send(config, req).await?;
    if !status.is_success() {
        let code = body["error"]["code"].as_str().unwrap_or("error");
        let message = body["error"]["message"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| body.to_string());
        bail!("{message} ({code}, HTTP {})", status.as_u16());
    }
    println!("{}", serde_json::to_string_pretty(&body)?);
    if let Some(note) = note {
        eprintln!("{note}");
    }
    Ok(())
}

/// Sends one request over the admin socket if a server answers on it, else in-process.
pub async fn send(config: Config, req: ApiRequest) -> anyhow::Result<(StatusCode, Value)> {
    let socket = config.socket_path();
    match tokio::net::UnixStream::connect(&socket).await {
        Ok(stream) => via_socket(stream, req)
            .await
            .with_context(|| format!("talking to the server over {}", socket.display())),
        Err(_) => in_process(config, req).await,
    }
}

fn http_request(req: ApiRequest) -> anyhow::Result<Request<Body>> {
    let body = match &req.body {
        Some(v) => Body::from(serde_json::to_vec(v)?),
        None => Body::empty(),
    };
    let mut b = Request::builder()
        .method(req.method)
        .uri(req.path)
        .header(header::HOST, "localhost");
    if req.body.is_some() {
        b = b.header(header::CONTENT_TYPE, "application/json");
    }
    Ok(b.body(body)?)
}

async fn read_answer(
    resp: axum::http::Response<impl axum::body::HttpBody<Error = impl std::fmt::Display>>,
) -> anyhow::Result<(StatusCode, Value)> {
    let status = resp.status();
    let bytes = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| anyhow!("reading the answer: {e}"))?
        .to_bytes();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
    };
    Ok((status, body))
}

async fn via_socket(
    stream: tokio::net::UnixStream,
    req: ApiRequest,
) -> anyhow::Result<(StatusCode, Value)> {
    let io = hyper_util::rt::TokioIo::new(stream);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await?;
    let conn = tokio::spawn(conn);
    let resp = sender.send_request(http_request(req)?).await?;
    let out = read_answer(resp).await;
    drop(sender);
    let _ = conn.await;
    out
}

async fn in_process(config: Config, req: ApiRequest) -> anyhow::Result<(StatusCode, Value)> {
    use tower::ServiceExt;
    let data_dir = config.storage.data_dir.clone();
    let socket = config.socket_path();
    if !config.db_path().exists() {
        eprintln!(
            "hearth: no database in {} yet; creating one (is --data-dir right?)",
            data_dir.display()
        );
    }
    let app = match crate::build(config) {
        Ok(app) => app,
        Err(crate::BuildError::Store(crate::store::StoreError::Locked)) => {
            // A server holds the database but has not opened its socket yet (it is starting):
            // give it a moment rather than fail.
            let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(15);
            while tokio::time::Instant::now() < deadline {
                if let Ok(stream) = tokio::net::UnixStream::connect(&socket).await {
                    return via_socket(stream, req).await.with_context(|| {
                        format!("talking to the server over {}", socket.display())
                    });
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            bail!(
                "the database in {} is open in another process, but nothing answers on its \
                 admin socket {}; is that server stuck? stop it and retry",
                data_dir.display(),
                socket.display()
            );
        }
        Err(other) => bail!("opening {}: {other}", data_dir.display()),
    };
    let mut request = http_request(req)?;
    request.extensions_mut().insert(LocalSocket);
    let resp = app
        .router()
        .oneshot(request)
        .await
        .map_err(|e| anyhow!("{e}"))?;
    read_answer(resp).await
}

/// Logging for operator commands: warnings and errors to stderr, so stdout stays JSON.
pub fn init_logging() {
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(tracing_subscriber::EnvFilter::new("warn"))
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_encoded() {
        assert_eq!(
            api_path("/api/bus/dlq", &["a b/c", "7", "replay"], &[]),
            "/api/bus/dlq/a%20b%2Fc/7/replay"
        );
        assert_eq!(
            api_path("/api/bus/dlq", &[], &[("consumer", "x&y".into())]),
            "/api/bus/dlq?consumer=x%26y"
        );
    }
}
