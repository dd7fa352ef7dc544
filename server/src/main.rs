//! `weir`: the server binary and the operator's command line.

use std::net::SocketAddr;

use anyhow::Context;
use clap::{Parser, Subcommand};
use weir_core::{Db, PoolSettings};
use weir_server::{AppState, Config};

#[derive(Parser)]
#[command(
    name = "weir",
    version,
    about = "Weir: a self-hostable LLM API gateway with billing"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (the default).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Run the mock upstream (OpenAI, Anthropic and Gemini wire formats) for tests and
    /// benchmarks; needs no configuration or database.
    MockUpstream {
        #[arg(long, default_value = "127.0.0.1:9100")]
        listen: SocketAddr,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,sqlx=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let command = cli.command.unwrap_or(Command::Serve);
    if let Command::MockUpstream { listen } = command {
        return weir_server::mock::run(listen)
            .await
            .with_context(|| format!("mock upstream on {listen}"));
    }
    let config = Config::load()?;
    let db = connect(&config).await?;
    match command {
        // Served above, before any configuration is needed.
        Command::MockUpstream { .. } => Ok(()),
        Command::Migrate => {
            println!("migrations applied to {}", redact_url(&config.database_url));
            Ok(())
        }
        Command::Serve => {
            let state = AppState::new(db.clone(), &config);
            let res = weir_server::serve(state, config.listen).await;
            db.close().await;
            res
        }
    }
}

async fn connect(config: &Config) -> anyhow::Result<Db> {
    let settings = PoolSettings {
        max_connections: config.db_max_connections,
        ..PoolSettings::default()
    };
    let db = Db::connect(&config.database_url, &settings).await?;
    db.migrate().await?;
    Ok(db)
}

/// The URL without its password, for messages.
fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://…{}", &url[..s], &url[at..]),
        _ => url.to_owned(),
    }
}
