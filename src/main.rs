//! The command line: `serve` (the default), `demo`, `migrate`, `admin …`, `deliver`.

use std::io::Read;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use imap_server::config::{self, Config, LogFormat};
use imap_server::server::Server;
use imap_server::store::Database;

#[derive(Debug, Parser)]
#[command(
    name = "imap-server",
    version,
    about = "IMAP server for disposable-email services"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs the IMAP server (the default).
    Serve,
    /// Creates a demo account with an address and a few messages (once),
    /// prints a token and the mail-client settings, then serves. IMAP_BIND
    /// defaults to 127.0.0.1:1143 here.
    Demo,
    /// Creates or upgrades the database schema, then exits.
    Migrate,
    /// Manages users, tokens, domains, addresses and bans.
    #[command(subcommand)]
    Admin(imap_server::admin::Command),
    /// Stores one RFC 5322 message read from standard input.
    Deliver {
        /// The disposable address it is for.
        #[arg(long)]
        to: String,
        /// The mailbox column (the deployment's receiver uses INBOX).
        #[arg(long, default_value = "INBOX")]
        mailbox: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("imap-server: configuration error: {error}");
            return ExitCode::from(2);
        }
    };
    init_logging(&cli, config.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("imap-server: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(run(cli.command.unwrap_or(Command::Serve), config));
    // Sessions still busy past SHUTDOWN_TIMEOUT must not hold the exit.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("imap-server: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Logs go to stderr; the admin commands keep stdout for their answers.
/// Colours only on a terminal: escape sequences in a file or journal are
/// noise at best.
fn init_logging(cli: &Cli, format: LogFormat) {
    use std::io::IsTerminal;
    let default = match cli.command {
        None | Some(Command::Serve) | Some(Command::Demo) => "info",
        _ => "warn",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => builder.json().with_ansi(false).init(),
    }
}

async fn open_database(config: &Config) -> anyhow::Result<Database> {
    Database::open(&config.database_url, config.database_max_connections)
        .await
        .with_context(|| {
            format!(
                "cannot open the database {}",
                config::redact_url(&config.database_url)
            )
        })
}

async fn run(command: Command, config: Config) -> anyhow::Result<()> {
    match command {
        Command::Serve => serve(config).await,
        Command::Demo => demo(config).await,
        Command::Migrate => {
            open_database(&config).await?;
            println!(
                "schema of {} is up to date",
                config::redact_url(&config.database_url)
            );
            Ok(())
        }
        Command::Admin(imap_server::admin::Command::Tls(command)) => {
            println!("{}", imap_server::admin::tls(command)?);
            Ok(())
        }
        Command::Admin(command) => {
            let database = open_database(&config).await?;
            let text = imap_server::admin::run(&database, command).await?;
            println!("{text}");
            Ok(())
        }
        Command::Deliver { to, mailbox } => {
            let mut raw = Vec::new();
            std::io::stdin()
                .read_to_end(&mut raw)
                .context("cannot read the message from standard input")?;
            let limit = config.limits.max_message_size as usize;
            anyhow::ensure!(
                raw.len() <= limit,
                "message of {} bytes is over the limit of {limit}",
                raw.len()
            );
            let database = open_database(&config).await?;
            let text = imap_server::admin::deliver(&database, &to, &mailbox, raw).await?;
            println!("{text}");
            Ok(())
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let services = imap_server::services::open(&config).await?;
    if let Some(address) = config.metrics_bind {
        let listener = imap_server::ops::http::bind(address).await?;
        tracing::info!(%address, "metrics and health probes listening");
        tokio::spawn(imap_server::ops::http::serve(listener, services.clone()));
    }
    let server = Server::start(&config, services).await?;
    tracing::info!(
        address = %server.local_addr()?,
        imaps = ?server.tls_addr(),
        database = %config::redact_url(&config.database_url),
        "imap-server listening"
    );
    server.run(shutdown_signal()).await;
    Ok(())
}

/// Where `demo` listens unless IMAP_BIND says otherwise: a port anyone may
/// bind, reachable from this machine only.
const DEMO_BIND: &str = "127.0.0.1:1143";

async fn demo(mut config: Config) -> anyhow::Result<()> {
    use imap_server::admin::demo::{Listening, demo};
    use imap_server::config::Source;
    anyhow::ensure!(
        config.supabase.is_none(),
        "demo creates its account in DATABASE_URL, which Supabase mode does not log in with: unset SUPABASE_URL to try it"
    );
    if config::Environment.get("IMAP_BIND").is_none() {
        config.imap_bind = DEMO_BIND.parse().context("the demo address")?;
    }
    let database = open_database(&config).await?;
    let listening = Listening {
        imap: config.imap_bind,
        starttls: config.tls.is_some(),
        imaps: config.imaps_bind,
    };
    println!("{}", demo(&database, &listening).await?);
    serve(config).await
}

/// Ctrl-C or SIGTERM (systemd's stop).
async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate => {}
    }
}
