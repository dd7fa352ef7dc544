//! `weir`: the server binary and the operator's command line.

use std::net::SocketAddr;

use anyhow::Context;
use clap::{Parser, Subcommand};
use weir_core::{
    auth::{self, Env},
    billing,
    money::Micros,
    team, Db, PoolSettings,
};
use weir_server::{startup, Config};

/// mimalloc instead of glibc's malloc: the request path allocates small short-lived buffers
/// on one thread and frees them on another (worker and committer), where glibc's arenas spent
/// ~13% of Weir's CPU at 50 connections (`bench/run`, README: Performance).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    Serve {
        /// Also run the mock upstream as a demo provider and print a funded demo key, so the
        /// API answers with no upstream keys.
        #[arg(long)]
        demo: bool,
        /// With --demo: use this already running mock upstream (e.g. `weir mock-upstream`)
        /// instead of starting one in-process. The benchmark runs them on separate cores.
        #[arg(long, requires = "demo")]
        demo_upstream: Option<String>,
    },
    /// Apply database migrations and exit.
    Migrate,
    /// Run the mock upstream (OpenAI, Anthropic and Gemini wire formats) for tests and
    /// benchmarks; needs no configuration or database.
    MockUpstream {
        #[arg(long, default_value = "127.0.0.1:9100")]
        listen: SocketAddr,
    },
    /// Run the fake Stripe (Checkout Sessions, a hosted checkout page, signed webhook events,
    /// test knobs) for tests and demos; point Weir's STRIPE_API_BASE at it.
    MockStripe {
        #[arg(long, default_value = "127.0.0.1:12111")]
        listen: SocketAddr,
        /// Where to deliver events, e.g. http://127.0.0.1:8080/webhooks/stripe.
        #[arg(long, env = "WEIR_MOCK_STRIPE_WEBHOOK_URL")]
        webhook_url: Option<String>,
        /// The secret events are signed with (Weir's STRIPE_WEBHOOK_SECRET, first value).
        #[arg(long, env = "STRIPE_WEBHOOK_SECRET", hide_env_values = true)]
        webhook_secret: String,
        /// Accept only this secret key (default: any sk_test_…).
        #[arg(long)]
        api_key: Option<String>,
    },
    /// Credit (or, with a negative amount, debit) a team's balance through the ledger.
    Credit {
        team: String,
        /// Dollars as a decimal string, e.g. 10.50 or -2.
        #[arg(allow_hyphen_values = true)]
        amount: String,
        #[arg(long)]
        reason: String,
        /// An idempotency reference: crediting twice with it changes nothing.
        #[arg(long)]
        reference: Option<String>,
    },
    /// Ledger maintenance.
    Ledger {
        #[command(subcommand)]
        action: LedgerAction,
    },
    /// Manage teams.
    Team {
        #[command(subcommand)]
        action: TeamAction,
    },
    /// Manage API keys.
    Key {
        #[command(subcommand)]
        action: KeyAction,
    },
}

#[derive(Subcommand)]
enum LedgerAction {
    /// Recompute every balance and hold from the ledger and report drift (exit 1 if any).
    Check,
}

#[derive(Subcommand)]
enum TeamAction {
    /// Create a team.
    Create { name: String },
    /// Deactivate a team: its keys are refused with 403.
    Deactivate { name: String },
    /// Reactivate a team.
    Activate { name: String },
    /// Show a team's balance and held amount.
    Balance { name: String },
}

#[derive(Subcommand)]
enum KeyAction {
    /// Create an API key; prints the key alone on stdout (it is shown only once).
    Create {
        #[arg(long)]
        team: String,
        #[arg(long, value_parser = ["dev", "staging", "prod"], default_value = "dev")]
        env: String,
        #[arg(long, default_value = "")]
        name: String,
    },
    /// Revoke a key by its key id (the part after the environment).
    Revoke { key_id: String },
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
    let cmd = cli.command.unwrap_or(Command::Serve {
        demo: false,
        demo_upstream: None,
    });
    if let Command::MockUpstream { listen } = cmd {
        return weir_server::mock::run(listen)
            .await
            .with_context(|| format!("mock upstream on {listen}"));
    }
    if let Command::MockStripe {
        listen,
        webhook_url,
        webhook_secret,
        api_key,
    } = cmd
    {
        let secret = webhook_secret
            .split(',')
            .next()
            .unwrap_or("")
            .trim()
            .to_owned();
        return weir_server::stripe::fake::run(
            listen,
            weir_server::stripe::fake::FakeConfig {
                webhook_url,
                webhook_secret: secret,
                api_key,
            },
        )
        .await
        .with_context(|| format!("fake Stripe on {listen}"));
    }
    let config = Config::load()?;
    let db = connect(&config).await?;
    let res = command(cmd, &config, &db).await;
    db.close().await;
    res
}

async fn command(cmd: Command, config: &Config, db: &Db) -> anyhow::Result<()> {
    match cmd {
        Command::Migrate => {
            println!("migrations applied to {}", redact_url(&config.database_url));
        }
        // Served before any configuration is read.
        Command::MockUpstream { .. } | Command::MockStripe { .. } => {}
        Command::Serve {
            demo,
            demo_upstream,
        } => {
            // The mock lives as long as the server does.
            let mut _mock = None;
            if demo {
                let base = match demo_upstream {
                    Some(url) => url.trim_end_matches('/').to_owned(),
                    None => {
                        let mock = weir_server::mock::spawn("127.0.0.1:0".parse()?)
                            .await
                            .context("starting the demo mock upstream")?;
                        let base = mock.base_url();
                        _mock = Some(mock);
                        base
                    }
                };
                let d =
                    weir_server::demo::install(db, &base, &config.data_dir, config.secret.expose())
                        .await?;
                println!("demo provider: mock upstream at {base}");
                println!("demo key: {}", d.key);
                println!(
                    "try: curl http://{}/v1/chat/completions -H \"Authorization: Bearer $WEIR_KEY\" \\\n       -H 'content-type: application/json' -d '{{\"model\":\"demo/echo\",\"messages\":[{{\"role\":\"user\",\"content\":\"hello\"}}]}}'",
                    config.listen
                );
            }
            // Without a Stripe key, the demo tops up through the fake Stripe, in-process.
            let mut config = config.clone();
            let mut _fake_stripe = None;
            if demo && config.stripe.is_none() {
                let (fake, stripe) = weir_server::demo::fake_stripe(&config.public_url)
                    .await
                    .context("starting the demo fake Stripe")?;
                println!("demo payments: fake Stripe at {}", fake.base_url());
                config.stripe = Some(stripe);
                _fake_stripe = Some(fake);
            }
            let prepared = startup::prepare(db.clone(), &config).await?;
            let res = weir_server::serve(prepared.state.clone(), config.listen).await;
            prepared.shutdown().await;
            res?;
        }
        Command::Team { action } => match action {
            TeamAction::Create { name } => {
                let t = team::create(db, &name).await?;
                println!("created team {:?} (id {})", t.name, t.id);
            }
            TeamAction::Deactivate { name } => {
                team::set_active(db, &name, false).await?;
                println!("team {name:?} deactivated");
            }
            TeamAction::Activate { name } => {
                team::set_active(db, &name, true).await?;
                println!("team {name:?} activated");
            }
            TeamAction::Balance { name } => {
                let t = team::get_by_name(db, &name).await?;
                let (balance, held) = billing::balance(db, t.id).await?;
                println!(
                    "balance {balance} USD, held {held} USD, available {} USD",
                    Micros(balance.0 - held.0)
                );
            }
        },
        Command::Credit {
            team: name,
            amount,
            reason,
            reference,
        } => {
            let amount = Micros::parse_usd(&amount)?;
            let t = team::get_by_name(db, &name).await?;
            match billing::credit(db, t.id, amount, &reason, reference.as_deref()).await {
                Ok(_) => {}
                Err(billing::BillingError::Duplicate(r)) => {
                    println!("already credited with reference {r:?}; nothing changed");
                }
                Err(e) => return Err(e.into()),
            }
            let (balance, held) = billing::balance(db, t.id).await?;
            println!("team {name:?}: balance {balance} USD (held {held})");
        }
        Command::Ledger {
            action: LedgerAction::Check,
        } => {
            let drift = billing::check(db).await?;
            if drift.is_empty() {
                println!("ledger consistent: every balance and hold matches its entries");
            } else {
                for d in &drift {
                    println!("drift: {d}");
                }
                anyhow::bail!("{} drift(s) found", drift.len());
            }
        }
        Command::Key { action } => match action {
            KeyAction::Create { team, env, name } => {
                let env: Env = env.parse()?;
                let key = auth::create_key(db, &team, env, &name).await?;
                println!("{}", key.full);
            }
            KeyAction::Revoke { key_id } => {
                auth::revoke_key(db, &key_id).await?;
                println!("key {key_id} revoked");
            }
        },
    }
    Ok(())
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
