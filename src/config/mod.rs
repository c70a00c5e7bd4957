//! One configuration tree for the whole appliance.
//!
//! Precedence: built-in defaults < `config.toml` < `HEARTH_SECTION__KEY` environment variables <
//! command-line flags. Any key may instead be given as `KEY_FILE` (in the file or the
//! environment) naming a file whose contents become the value, which is how secrets are passed
//! from systemd credentials or container secrets.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use values::{ByteSize, HumanDuration, Secret};

mod values;

/// Where `hearth` looks for a config file when `--config` is not given, in order.
pub const DEFAULT_CONFIG_PATHS: &[&str] = &["/etc/hearth/config.toml", "./config.toml"];

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub storage: StorageConfig,
    pub auth: AuthConfig,
    pub bus: BusConfig,
    pub ingest: IngestConfig,
    pub issues: IssuesConfig,
    pub search: SearchConfig,
    pub smtp: SmtpConfig,
    pub mail: MailConfig,
    pub alerts: AlertsConfig,
    pub chat: crate::chat::ChatConfig,
    pub uptime: crate::uptime::UptimeConfig,
    pub sourcemaps: crate::sourcemaps::SourceMapsConfig,
    pub log: LogConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address the HTTP server listens on.
    pub listen: SocketAddr,
    /// The URL users reach Hearth at; used in links (setup, alerts) and to decide whether
    /// cookies are `Secure`. Empty means `http://<listen>`.
    pub public_url: String,
    /// Longest time one request may take before it is answered 503.
    pub request_timeout: HumanDuration,
    /// How long shutdown waits for in-flight requests and workers.
    pub shutdown_grace: HumanDuration,
    /// Largest JSON body accepted by the admin API.
    pub max_json_body: ByteSize,
    // --- harden-server (issue 12): connection limits and the client address ---
    /// Reverse proxies (addresses or blocks like "10.0.0.0/8") whose `X-Forwarded-For` names
    /// the client. From any other peer the header is ignored. Their connections are not
    /// counted against `max_connections_per_ip`.
    pub trusted_proxies: Vec<crate::limit::Cidr>,
    /// A request's headers (and, on a kept-alive connection, the next request) must arrive
    /// within this; a slower connection is closed.
    pub header_read_timeout: HumanDuration,
    /// A connection that sends and receives nothing for this long is closed.
    pub idle_timeout: HumanDuration,
    /// Connections one client address may hold open at once; more are closed at once.
    pub max_connections_per_ip: u32,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            public_url: String::new(),
            request_timeout: HumanDuration::secs(30),
            shutdown_grace: HumanDuration::secs(10),
            max_json_body: ByteSize::mb(1),
            trusted_proxies: Vec::new(),
            header_read_timeout: HumanDuration::secs(10),
            idle_timeout: HumanDuration::secs(60),
            max_connections_per_ip: 128,
        }
    }
}

impl ServerConfig {
    /// The public base URL without a trailing slash.
    pub fn base_url(&self) -> String {
        if self.public_url.is_empty() {
            format!("http://{}", self.listen)
        } else {
            self.public_url.trim_end_matches('/').to_string()
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// Directory holding `hearth.redb`, the search index and the admin socket.
    pub data_dir: PathBuf,
    /// redb page cache size.
    pub cache_size: ByteSize,
    /// Below this much free space in the data directory's file system, writes are refused
    /// (ingest answers 503 with Retry-After, health says degraded) until space is freed.
    pub min_free_space: ByteSize,
    /// Disk budget for the database and the search index (0: none). At 80% a warning
    /// (`storage.disk_budget`, for alert rules); from 90% the oldest events are removed.
    pub max_disk_bytes: ByteSize,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./hearth-data"),
            cache_size: ByteSize::mb(16),
            min_free_space: ByteSize::mb(64),
            max_disk_bytes: ByteSize(0),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// How long a dashboard login lasts.
    pub session_ttl: HumanDuration,
    /// How long the first-start setup link stays valid.
    pub setup_link_ttl: HumanDuration,
    /// Failed logins one client address may make, over all accounts, before each further
    /// failure makes it wait (password spraying).
    pub login_attempts_per_ip: u32,
    /// Failed logins for one account from one client before each further failure makes that
    /// client wait. Other clients of the account are not slowed.
    pub login_attempts_per_account: u32,
    /// How long failures are remembered.
    pub login_window: HumanDuration,
    /// Beyond the free failures above, each further one doubles the wait before the next try
    /// (1 s, 2 s, 4 s, ...) up to this.
    pub login_max_delay: HumanDuration,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            session_ttl: HumanDuration::secs(14 * 24 * 3600),
            setup_link_ttl: HumanDuration::secs(24 * 3600),
            login_attempts_per_ip: 20,
            login_attempts_per_account: 5,
            login_window: HumanDuration::secs(15 * 60),
            login_max_delay: HumanDuration::secs(15 * 60),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BusConfig {
    /// Durable events older than this are pruned once every consumer has acked them.
    pub retention_max_age: HumanDuration,
    /// At most this many durable events are kept (acked ones are pruned first).
    pub retention_max_events: u64,
    /// `event.stored` (one per stored event) is pruned as soon as every consumer has passed
    /// it, except the newest this many log entries (kept for replays).
    pub retention_keep_recent: u64,
    /// Default number of delivery attempts before an event goes to the dead-letter queue.
    pub max_deliver: u32,
    /// Default waits between attempts; the last one repeats.
    pub backoff: Vec<HumanDuration>,
    /// Capacity of the in-memory broadcast for ephemeral subjects.
    pub ephemeral_capacity: usize,
}

impl Default for BusConfig {
    fn default() -> Self {
        Self {
            retention_max_age: HumanDuration::secs(7 * 24 * 3600),
            retention_max_events: 1_000_000,
            retention_keep_recent: 10_000,
            max_deliver: 8,
            backoff: vec![
                HumanDuration::secs(1),
                HumanDuration::secs(5),
                HumanDuration::secs(30),
                HumanDuration::secs(120),
                HumanDuration::secs(600),
            ],
            ephemeral_capacity: 4096,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IngestConfig {
    /// Largest request body accepted before decompression (Sentry relay: 20 MB).
    pub max_compressed_size: ByteSize,
    /// Largest body after decompression (Sentry relay: 100 MB). Envelopes are decompressed
    /// as they are read, one item at a time, so this bounds work, not memory.
    pub max_decompressed_size: ByteSize,
    /// Largest single event item (Sentry relay: 1 MB).
    pub max_event_size: ByteSize,
    /// Largest single attachment stored (larger ones are stored truncated).
    pub max_attachment_size: ByteSize,
    /// Most attachments stored per event; more get the attachment rate-limit reply.
    pub max_attachments_per_event: u32,
    /// Most attachment bytes (as sent) stored per event.
    pub max_attachment_bytes_per_event: ByteSize,
    /// Most attachment bytes (as sent) stored per project per UTC day; 0 disables the cap.
    pub max_attachment_bytes_per_project_per_day: ByteSize,
    /// Events per minute accepted per DSN key; 0 disables the limit.
    pub rate_limit_per_minute: u32,
    /// Events waiting for the writer before ingest answers 429.
    pub queue_capacity: usize,
    /// Most events committed in one write transaction.
    pub max_batch: usize,
    /// Longest time between synced database commits. Between them, acknowledged batches are
    /// durable in the ingest log (`ingest.wal`) and replayed from it after a crash. 0 syncs
    /// every batch's commit and appends nothing to the log.
    pub checkpoint_interval: HumanDuration,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            max_compressed_size: ByteSize::mb(20),
            max_decompressed_size: ByteSize::mb(100),
            max_event_size: ByteSize::mb(1),
            max_attachment_size: ByteSize::mb(10),
            max_attachments_per_event: 20,
            max_attachment_bytes_per_event: ByteSize::mb(20),
            max_attachment_bytes_per_project_per_day: ByteSize::mb(200),
            rate_limit_per_minute: 0,
            queue_capacity: 4096,
            max_batch: 256,
            checkpoint_interval: HumanDuration::secs(1),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IssuesConfig {
    /// Events kept per issue; older ones are pruned, counters stay.
    pub max_events_per_issue: u64,
    /// Events older than this are pruned.
    pub max_event_age: HumanDuration,
    /// How often retention runs.
    pub prune_interval: HumanDuration,
}

impl Default for IssuesConfig {
    fn default() -> Self {
        Self {
            max_events_per_issue: 1000,
            max_event_age: HumanDuration::secs(90 * 24 * 3600),
            prune_interval: HumanDuration::secs(3600),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SearchConfig {
    /// Memory the index writer may use.
    pub writer_memory: ByteSize,
    /// Longest time between a new event and it being searchable.
    pub commit_interval: HumanDuration,
}

impl Default for SearchConfig {
    fn default() -> Self {
        Self {
            writer_memory: ByteSize::mb(15),
            commit_interval: HumanDuration::millis(500),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS (usually port 587).
    #[default]
    Starttls,
    /// TLS from the first byte (usually port 465).
    Implicit,
    /// No TLS (a relay on localhost, port 25).
    None,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SmtpConfig {
    /// Relay host name; empty disables sending (mail stays queued).
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    pub username: String,
    pub password: Secret,
    /// The From address of every message.
    pub from: String,
    pub timeout: HumanDuration,
    /// Connections kept open to the relay.
    pub pool_size: u32,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        Self {
            host: String::new(),
            port: 587,
            tls: SmtpTls::Starttls,
            username: String::new(),
            password: Secret::default(),
            from: "Hearth <hearth@localhost>".into(),
            timeout: HumanDuration::secs(30),
            pool_size: 4,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MailConfig {
    /// Messages per hour sent through the relay; 0 is unlimited. Over it, mail waits.
    pub rate_limit_per_hour: u32,
    /// How long transient failures are retried before a message is failed.
    pub retry_for: HumanDuration,
    /// First retry wait; doubles per attempt.
    pub retry_base: HumanDuration,
    /// Messages sent concurrently.
    pub concurrency: usize,
    /// Template instructions one render may run (a loop that runs longer is stopped).
    pub template_fuel: u64,
    /// Largest rendered message (subject, text and HTML together).
    pub template_max_output: ByteSize,
}

impl Default for MailConfig {
    fn default() -> Self {
        Self {
            rate_limit_per_hour: 0,
            retry_for: HumanDuration::secs(72 * 3600),
            retry_base: HumanDuration::secs(30),
            concurrency: 8,
            template_fuel: 1_000_000,
            template_max_output: ByteSize::mb(1),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertsConfig {
    /// Recipients of the daily report; empty disables it.
    pub daily_report_to: Vec<String>,
    /// UTC time of day the daily report is sent, "HH:MM".
    pub daily_report_at: String,
    /// Default per-rule, per-issue throttle.
    pub default_throttle: HumanDuration,
    /// Let Slack and webhook channels reach loopback, private, link-local and other non-public
    /// addresses (an intranet receiver). Off: such targets are refused, also when a name
    /// resolves to one at delivery time.
    pub allow_private_targets: bool,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        Self {
            daily_report_to: Vec::new(),
            daily_report_at: "08:00".into(),
            default_throttle: HumanDuration::secs(30 * 60),
            allow_private_targets: false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// tracing filter, e.g. "info" or "hearth=debug,tower_http=info".
    pub level: String,
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".into(),
            format: LogFormat::Text,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Loading

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("environment variable {var}: {message}")]
    Env { var: String, message: String },
    #[error("{key}_file: cannot read {path}: {source}")]
    SecretFile {
        key: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// Overrides given on the command line; they win over everything else.
#[derive(Debug, Clone, Default)]
pub struct CliOverrides {
    pub listen: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
    pub public_url: Option<String>,
    pub log_level: Option<String>,
}

/// Where the configuration came from, for `config check`.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    pub file: Option<PathBuf>,
}

impl Config {
    /// Loads defaults, then the file (explicit path, or the first of [`DEFAULT_CONFIG_PATHS`] that
    /// exists), then `HEARTH_*` from `env`, then `cli`.
    pub fn load(
        explicit: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
        cli: &CliOverrides,
    ) -> Result<Loaded, ConfigError> {
        let file = match explicit {
            Some(p) => Some(p.to_path_buf()),
            None => DEFAULT_CONFIG_PATHS
                .iter()
                .map(PathBuf::from)
                .find(|p| p.is_file()),
        };
        let mut tree = match &file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.clone(),
                    source,
                })?;
                text.parse::<toml::Table>()
                    .map_err(|e| ConfigError::Parse {
                        path: path.clone(),
                        message: e.to_string(),
                    })?
            }
            None => toml::Table::new(),
        };
        apply_env(&mut tree, env)?;
        resolve_secret_files(&mut tree, "")?;
        let origin = file
            .clone()
            .unwrap_or_else(|| PathBuf::from("<defaults and environment>"));
        let mut config: Config =
            toml::Value::Table(tree)
                .try_into()
                .map_err(|e: toml::de::Error| ConfigError::Parse {
                    path: origin,
                    message: e.to_string(),
                })?;
        if let Some(l) = cli.listen {
            config.server.listen = l;
        }
        if let Some(d) = &cli.data_dir {
            config.storage.data_dir = d.clone();
        }
        if let Some(u) = &cli.public_url {
            config.server.public_url = u.clone();
        }
        if let Some(l) = &cli.log_level {
            config.log.level = l.clone();
        }
        config.validate()?;
        Ok(Loaded { config, file })
    }

    /// Parses a config from TOML text alone (no environment), as the tests and `config check` do.
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        let mut tree = text
            .parse::<toml::Table>()
            .map_err(|e| ConfigError::Parse {
                path: PathBuf::from("<text>"),
                message: e.to_string(),
            })?;
        resolve_secret_files(&mut tree, "")?;
        let config: Config =
            toml::Value::Table(tree)
                .try_into()
                .map_err(|e: toml::de::Error| ConfigError::Parse {
                    path: PathBuf::from("<text>"),
                    message: e.to_string(),
                })?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let pu = &self.server.public_url;
        if !(pu.is_empty() || pu.starts_with("http://") || pu.starts_with("https://")) {
            return Err(ConfigError::Invalid(format!(
                "server.public_url must start with http:// or https:// (got {pu:?})"
            )));
        }
        if self.bus.backoff.is_empty() {
            return Err(ConfigError::Invalid(
                "bus.backoff needs at least one duration, e.g. [\"1s\", \"30s\"]".into(),
            ));
        }
        if self.server.header_read_timeout.get().is_zero()
            || self.server.idle_timeout.get().is_zero()
        {
            return Err(ConfigError::Invalid(
                "server.header_read_timeout and server.idle_timeout must be longer than 0".into(),
            ));
        }
        if self.server.max_connections_per_ip == 0 {
            return Err(ConfigError::Invalid(
                "server.max_connections_per_ip must be at least 1".into(),
            ));
        }
        if self.bus.max_deliver == 0 {
            return Err(ConfigError::Invalid(
                "bus.max_deliver must be at least 1".into(),
            ));
        }
        if !self.alerts.daily_report_at.is_empty()
            && parse_hhmm(&self.alerts.daily_report_at).is_none()
        {
            return Err(ConfigError::Invalid(format!(
                "alerts.daily_report_at must be HH:MM in UTC (got {:?})",
                self.alerts.daily_report_at
            )));
        }
        Ok(())
    }

    /// The config as TOML with every secret replaced by `"<redacted>"`.
    pub fn to_redacted_toml(&self) -> String {
        // Secret's Serialize already redacts; see [`Secret`].
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot render: {e}"))
    }

    pub fn db_path(&self) -> PathBuf {
        self.storage.data_dir.join("hearth.redb")
    }

    pub fn socket_path(&self) -> PathBuf {
        self.storage.data_dir.join("hearth.sock")
    }

    pub fn search_dir(&self) -> PathBuf {
        self.storage.data_dir.join("search")
    }

    /// Whether cookies must carry `Secure`.
    pub fn https(&self) -> bool {
        self.server.public_url.starts_with("https://")
    }
}

/// Parses "HH:MM" into minutes after midnight.
pub fn parse_hhmm(s: &str) -> Option<u32> {
    let (h, m) = s.split_once(':')?;
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60).then_some(h * 60 + m)
}

/// Applies `HEARTH_SECTION__KEY=value` variables. Values are read as TOML when they parse as a
/// TOML value (numbers, booleans, arrays), else as plain strings.
fn apply_env(
    tree: &mut toml::Table,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<(), ConfigError> {
    for (var, value) in env {
        let Some(rest) = var.strip_prefix("HEARTH_") else {
            continue;
        };
        let path: Vec<String> = rest.split("__").map(|s| s.to_ascii_lowercase()).collect();
        if path.len() < 2 || path.iter().any(|p| p.is_empty()) {
            // HEARTH_CONFIG and friends are for the CLI, not the tree.
            continue;
        }
        let parsed = format!("v = {value}")
            .parse::<toml::Table>()
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or(toml::Value::String(value.clone()));
        let mut table = &mut *tree;
        for section in &path[..path.len() - 1] {
            let entry = table
                .entry(section.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            table = entry.as_table_mut().ok_or_else(|| ConfigError::Env {
                var: var.clone(),
                message: format!("{section} is not a section"),
            })?;
        }
        table.insert(path[path.len() - 1].clone(), parsed);
    }
    Ok(())
}

/// Replaces every `name_file = "/path"` with `name = "<contents of /path>"`.
fn resolve_secret_files(table: &mut toml::Table, prefix: &str) -> Result<(), ConfigError> {
    let keys: Vec<String> = table.keys().cloned().collect();
    for key in keys {
        if let Some(toml::Value::Table(inner)) = table.get_mut(&key) {
            resolve_secret_files(inner, &format!("{prefix}{key}."))?;
            continue;
        }
        let Some(name) = key.strip_suffix("_file") else {
            continue;
        };
        let Some(toml::Value::String(path)) = table.remove(&key) else {
            continue;
        };
        let contents =
            std::fs::read_to_string(&path).map_err(|source| ConfigError::SecretFile {
                key: format!("{prefix}{name}"),
                path: PathBuf::from(&path),
                source,
            })?;
        let value = contents.trim_end_matches(['\r', '\n']).to_string();
        table.insert(name.to_string(), toml::Value::String(value));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
