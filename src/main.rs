//! The `hearth` command line. It only parses arguments and calls the library.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use hearth::config::{CliOverrides, Config};

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "hearth", version = hearth::VERSION, about = "Self-hosted error tracking, chat, mail, uptime and alerting in one binary")]
struct Cli {
    /// Config file (default: /etc/hearth/config.toml, then ./config.toml, else built-in defaults).
    #[arg(long, short, global = true, env = "HEARTH_CONFIG")]
    config: Option<PathBuf>,
    #[command(flatten)]
    overrides: Overrides,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args)]
struct Overrides {
    /// Data directory (overrides [storage] data_dir).
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    /// Listen address (overrides [server] listen).
    #[arg(long, global = true)]
    listen: Option<std::net::SocketAddr>,
    /// Public URL (overrides [server] public_url).
    #[arg(long, global = true)]
    public_url: Option<String>,
    /// Log filter (overrides [log] level).
    #[arg(long, global = true)]
    log_level: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve,
    /// Inspect the configuration.
    #[command(subcommand)]
    Config(ConfigCmd),
    /// Exit 0 if the server answers /health/ready, 1 otherwise (for container health checks).
    Healthcheck,
    #[command(flatten)]
    Admin(hearth::cli::AdminCommand),
    /// Send a test email straight through the [smtp] relay and explain any failure.
    SendTestEmail {
        /// Recipient address.
        to: String,
    },
    /// Rebuild the search index from the database (stop the server first).
    Reindex,
}

#[derive(Subcommand)]
enum ConfigCmd {
    /// Load and validate the configuration; exit non-zero with the problem if it is invalid.
    Check,
    /// Print the effective configuration with secrets redacted.
    Show,
}

fn main() -> std::process::ExitCode {
    // One TLS crypto provider for the whole process, before anything can make a TLS client:
    // reqwest (Slack, webhooks), lettre (SMTP) and every subcommand share it.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    if matches!(cli.command, Command::Serve) {
        allocator_defaults();
    }
    let overrides = CliOverrides {
        listen: cli.overrides.listen,
        data_dir: cli.overrides.data_dir.clone(),
        public_url: cli.overrides.public_url.clone(),
        log_level: cli.overrides.log_level.clone(),
    };
    let loaded = match Config::load(cli.config.as_deref(), std::env::vars(), &overrides) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("hearth: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let address_flags = cli.overrides.listen.is_some() || cli.overrides.public_url.is_some();
    match run(cli.command, loaded, address_flags) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("hearth: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// mimalloc reads its options from the environment when it starts, before `main`. Its defaults
/// keep memory a thread freed until that same thread allocates again, so a burst on a thread
/// that then idles (a password hash, a big request) stayed resident: 50 MB idle instead of 20.
/// `serve` therefore re-executes itself once with purge-at-once defaults, unless the operator
/// set `MIMALLOC_PURGE_DELAY` themselves. If the re-exec fails, the server runs as it is.
fn allocator_defaults() {
    use std::os::unix::process::CommandExt;
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let mut args = std::env::args_os();
    let mut cmd = std::process::Command::new(exe);
    if let Some(arg0) = args.next() {
        cmd.arg0(arg0);
    }
    cmd.args(args).env("MIMALLOC_PURGE_DELAY", "0");
    if std::env::var_os("MIMALLOC_ARENA_EAGER_COMMIT").is_none() {
        cmd.env("MIMALLOC_ARENA_EAGER_COMMIT", "0");
    }
    // `exec` only returns on failure.
    let _ = cmd.exec();
}

/// `address_flags`: `--listen` or `--public-url` was given on this command line.
fn run(
    command: Command,
    loaded: hearth::config::Loaded,
    address_flags: bool,
) -> anyhow::Result<std::process::ExitCode> {
    let config = loaded.config;
    match command {
        Command::Serve => {
            hearth::init_logging(&config.log);
            hearth::container::check_data_dir(&config.storage.data_dir, |k| std::env::var(k).ok())?;
            let rt = tokio::runtime::Runtime::new()?;
            rt.block_on(async move {
                let listen = config.server.listen;
                let app = hearth::build(config).context("starting hearth")?;
                let listener = tokio::net::TcpListener::bind(listen)
                    .await
                    .with_context(|| {
                        format!("cannot listen on {listen}; is another server using the port?")
                    })?;
                app.serve(listener, hearth::shutdown_signal()).await?;
                Ok(std::process::ExitCode::SUCCESS)
            })
        }
        Command::Config(ConfigCmd::Check) => {
            match &loaded.file {
                Some(f) => println!("config OK ({})", f.display()),
                None => println!("config OK (built-in defaults and environment)"),
            }
            Ok(std::process::ExitCode::SUCCESS)
        }
        Command::Config(ConfigCmd::Show) => {
            print!("{}", config.to_redacted_toml());
            Ok(std::process::ExitCode::SUCCESS)
        }
        Command::Reindex => {
            let n = hearth::search::reindex(&config).map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("reindexed {n} events");
            Ok(std::process::ExitCode::SUCCESS)
        }
        Command::Healthcheck => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let ok = rt.block_on(hearth::healthcheck(&config));
            Ok(if ok {
                std::process::ExitCode::SUCCESS
            } else {
                std::process::ExitCode::FAILURE
            })
        }
        Command::Admin(hearth::cli::AdminCommand::Db(hearth::cli::DbCmd::Compact)) => {
            hearth::cli::init_logging();
            let path = config.db_path();
            let (before, after) = hearth::store::stats::compact_offline(&path).map_err(|e| {
                anyhow::anyhow!(
                    "compacting {}: {e} (stop `hearth serve` first)",
                    path.display()
                )
            })?;
            println!(
                "compacted {}: {before} -> {after} bytes ({} MB freed)",
                path.display(),
                before.saturating_sub(after) >> 20
            );
            Ok(std::process::ExitCode::SUCCESS)
        }
        Command::Admin(cmd) => {
            hearth::cli::init_logging();
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(hearth::cli::run(config, cmd, address_flags))?;
            Ok(std::process::ExitCode::SUCCESS)
        }
        Command::SendTestEmail { to } => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            match rt.block_on(hearth::mail::smtp::send_test_email(&config.smtp, &to)) {
                Ok(reply) => {
                    println!(
                        "sent a test email to {to} via {}:{} (relay answered: {reply})",
                        config.smtp.host, config.smtp.port
                    );
                    Ok(std::process::ExitCode::SUCCESS)
                }
                Err(e) => {
                    eprintln!("hearth: {e}");
                    Ok(std::process::ExitCode::FAILURE)
                }
            }
        }
    }
}
