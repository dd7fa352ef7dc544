//! `weir`: the server binary and the operator's command line.

use std::net::SocketAddr;

use anyhow::Context;
use clap::{Parser, Subcommand};
use weir_core::{
    auth::{self, Env},
    billing, catalog,
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
    /// Upstream channels (endpoints with their keys), as on /admin/channels.
    Channel {
        #[command(subcommand)]
        action: ChannelAction,
    },
    /// Models, as on /admin/models.
    Model {
        #[command(subcommand)]
        action: ModelAction,
    },
    /// Codenames (one name served by several models, in order).
    Codename {
        #[command(subcommand)]
        action: CodenameAction,
    },
    /// Tariffs: upstream cost per line item plus markup, versioned.
    Tariff {
        #[command(subcommand)]
        action: TariffAction,
    },
    /// The catalog as a whole.
    Catalog {
        #[command(subcommand)]
        action: CatalogAction,
    },
    /// Show the catalog audit log, newest first.
    Audit {
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
}

#[derive(Subcommand)]
enum ChannelAction {
    /// Add a channel. The key is sealed at rest; only its last four characters are shown.
    Add {
        #[arg(long)]
        name: String,
        /// The provider it belongs to (created with --kind when new).
        #[arg(long)]
        provider: String,
        #[arg(long, value_parser = ["openai", "anthropic", "gemini", "cohere"])]
        kind: String,
        #[arg(long)]
        base_url: String,
        /// The upstream key (visible in the process list; prefer --key-stdin).
        #[arg(long, conflicts_with = "key_stdin")]
        key: Option<String>,
        /// Read the upstream key from the first line of standard input.
        #[arg(long)]
        key_stdin: bool,
        #[arg(long, default_value_t = 0, allow_hyphen_values = true)]
        priority: i64,
        #[arg(long, default_value_t = 1)]
        weight: i64,
        /// Add it disabled.
        #[arg(long)]
        disabled: bool,
        /// Allow a private or loopback base URL (a model server on your own network).
        #[arg(long)]
        local: bool,
        /// Only these models of the provider (comma-separated ids); default all.
        #[arg(long, value_delimiter = ',')]
        models: Vec<String>,
    },
    /// List channels (keys as their last four characters).
    List,
    /// Disable a channel (by id or name): it is never tried.
    Disable { channel: String },
    /// Enable a channel (by id or name).
    Enable { channel: String },
    /// Set a channel's upstream quota: Weir sends requests elsewhere (or answers 429) before
    /// the provider's own 429. `none` removes one.
    Quota {
        channel: String,
        /// Requests per minute.
        #[arg(long)]
        rpm: Option<String>,
        /// Tokens per minute.
        #[arg(long)]
        tpm: Option<String>,
    },
}

#[derive(Subcommand)]
enum ModelAction {
    /// Add a model of an existing provider.
    Add {
        /// The id clients ask for, e.g. acme/large.
        #[arg(long)]
        id: String,
        #[arg(long)]
        provider: String,
        /// The name the upstream expects.
        #[arg(long)]
        upstream: String,
        #[arg(long, value_parser = ["chat", "embedding"], default_value = "chat")]
        kind: String,
        #[arg(long)]
        context_window: u32,
        #[arg(long)]
        max_output: Option<u32>,
        /// Capabilities, comma-separated: tools, vision, reasoning, json_schema.
        #[arg(long, value_delimiter = ',')]
        capabilities: Vec<String>,
        /// Input modalities, comma-separated (default text).
        #[arg(long, value_delimiter = ',', default_value = "text")]
        input_modalities: Vec<String>,
        #[arg(long, value_delimiter = ',', default_value = "text")]
        output_modalities: Vec<String>,
    },
    /// List every model, active or not.
    List,
    /// Serve a model again.
    Activate { id: String },
    /// Stop serving and listing a model (requests get 404).
    Deactivate { id: String },
}

#[derive(Subcommand)]
enum CodenameAction {
    /// Create a codename or replace its models (in preference order).
    Set {
        name: String,
        #[arg(required = true)]
        models: Vec<String>,
        #[arg(long, default_value = "")]
        description: String,
    },
    List,
}

#[derive(Subcommand)]
enum TariffAction {
    /// Add a tariff version: dollars per million tokens per line item, markup in basis points.
    Set {
        model: String,
        #[arg(long)]
        input: String,
        #[arg(long)]
        output: String,
        #[arg(long)]
        cached_input: Option<String>,
        #[arg(long)]
        cache_write: Option<String>,
        #[arg(long)]
        reasoning: Option<String>,
        #[arg(long, default_value = "0")]
        markup_bps: String,
        /// Only on this channel (id or name).
        #[arg(long)]
        channel: Option<String>,
        /// When it takes effect: a UTC time like 2026-12-24T09:00, RFC 3339, or now.
        #[arg(long, default_value = "now")]
        from: String,
    },
    /// Versions, newest first, with their state.
    History { model: Option<String> },
}

#[derive(Subcommand)]
enum CatalogAction {
    /// Import a price list in the schema of core/catalog/models.json: shows what would change;
    /// writes it with --apply. Operator edits are never overwritten.
    Import {
        file: std::path::PathBuf,
        #[arg(long)]
        apply: bool,
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
    /// Show or change a team's limits (applied to every key of the team, with the key's own).
    Limit {
        name: String,
        #[command(flatten)]
        limits: LimitArgs,
    },
}

/// Limits to change; each option left out stays as it is, `none` removes one.
#[derive(clap::Args)]
struct LimitArgs {
    /// Requests per minute.
    #[arg(long)]
    rpm: Option<String>,
    /// Tokens per minute (prompt estimate + max_tokens at admission, corrected at the end).
    #[arg(long)]
    tpm: Option<String>,
    /// Requests in flight at once.
    #[arg(long)]
    concurrency: Option<String>,
    /// Allowed models: comma-separated ids, codenames or patterns (`openai/*`).
    #[arg(long)]
    models: Option<String>,
    /// Spend cap per UTC day, in dollars.
    #[arg(long)]
    daily: Option<String>,
    /// Spend cap per calendar month (UTC), in dollars.
    #[arg(long)]
    monthly: Option<String>,
    /// Spend cap in total, in dollars.
    #[arg(long)]
    total: Option<String>,
}

impl LimitArgs {
    fn is_empty(&self) -> bool {
        [
            &self.rpm,
            &self.tpm,
            &self.concurrency,
            &self.models,
            &self.daily,
            &self.monthly,
            &self.total,
        ]
        .iter()
        .all(|o| o.is_none())
    }

    /// The current rules with this command's changes.
    fn apply(&self, mut r: weir_core::limits::Rules) -> anyhow::Result<weir_core::limits::Rules> {
        use weir_core::limits::{parse_cap, parse_rate};
        let bad = |what: &str, e: &str| anyhow::anyhow!("--{what}: {e}");
        for (v, slot, what) in [
            (&self.rpm, &mut r.rpm, "rpm"),
            (&self.tpm, &mut r.tpm, "tpm"),
            (&self.concurrency, &mut r.concurrency, "concurrency"),
        ] {
            if let Some(v) = v {
                *slot = parse_rate(v).map_err(|e| bad(what, e))?;
            }
        }
        if let Some(m) = &self.models {
            r.models = weir_core::limits::Rules::parse_models(m).filter(|m| m != &["none"]);
        }
        for (v, slot, what) in [
            (&self.daily, &mut r.day_cap, "daily"),
            (&self.monthly, &mut r.month_cap, "monthly"),
            (&self.total, &mut r.total_cap, "total"),
        ] {
            if let Some(v) = v {
                *slot = parse_cap(v).map_err(|e| bad(what, e))?;
            }
        }
        Ok(r)
    }
}

/// Prints a key's or team's rules and what it has spent against its caps.
fn print_limits(r: &weir_core::limits::Rules, spend: &weir_core::limits::Spend) {
    let n = |v: Option<u32>| v.map_or("none".to_owned(), |v| v.to_string());
    let usd = |v: Option<Micros>, spent: Micros| {
        v.map_or("none".to_owned(), |c| format!("${c} (spent ${spent})"))
    };
    println!("rpm	{}", n(r.rpm));
    println!("tpm	{}", n(r.tpm));
    println!("concurrency	{}", n(r.concurrency));
    println!(
        "models	{}",
        r.models.as_ref().map_or("any".to_owned(), |m| m.join(","))
    );
    println!("daily	{}", usd(r.day_cap, spend.day));
    println!("monthly	{}", usd(r.month_cap, spend.month));
    println!("total	{}", usd(r.total_cap, spend.total));
    if spend.held.0 != 0 {
        println!("held	${}", spend.held);
    }
}

/// `weir key limit` / `weir team limit`: shows, or changes and shows, one subject's limits.
async fn limit_command(
    db: &weir_core::Db,
    scope: weir_core::limits::Scope,
    id: i64,
    args: &LimitArgs,
) -> anyhow::Result<()> {
    let (rules, _) = weir_core::limits::get(db, scope, id).await?;
    if !args.is_empty() {
        let rules = args.apply(rules)?;
        weir_core::limits::set(db, scope, id, &rules).await?;
    }
    let (rules, spend) = weir_core::limits::get(db, scope, id).await?;
    print_limits(&rules, &spend);
    Ok(())
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
    /// Show or change a key's limits: requests, tokens and concurrency per minute, allowed
    /// models, spend caps. Every replica applies a change within a second.
    Limit {
        key_id: String,
        #[command(flatten)]
        limits: LimitArgs,
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
                    "demo key, {} requests/minute (to see a 429): {}",
                    weir_server::demo::LIMITED_RPM,
                    d.limited_key
                );
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
            TeamAction::Limit { name, limits } => {
                let t = team::get_by_name(db, &name).await?;
                limit_command(db, weir_core::limits::Scope::Team, t.id, &limits).await?;
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
        Command::Channel { action } => channel_command(action, config, db).await?,
        Command::Model { action } => model_command(action, db).await?,
        Command::Codename { action } => match action {
            CodenameAction::Set {
                name,
                models,
                description,
            } => {
                catalog::models::set_codename(db, &cli_actor(), &name, &description, &models)
                    .await?;
                println!("codename {name} → {}", models.join(", "));
            }
            CodenameAction::List => {
                for c in catalog::models::list_codenames(db).await? {
                    println!("{}\t{}\t{}", c.name, c.models.join(","), c.description);
                }
            }
        },
        Command::Tariff { action } => tariff_command(action, db).await?,
        Command::Catalog {
            action: CatalogAction::Import { file, apply },
        } => {
            let json = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let plan = if apply {
                catalog::import::apply(db, &cli_actor(), &json).await?
            } else {
                catalog::import::preview(db, &json).await?
            };
            for c in &plan.changes {
                println!("{:<20} {:<40} {}", c.kind.as_str(), c.target, c.detail);
            }
            println!(
                "{} change(s), {} unchanged{}",
                plan.writes(),
                plan.unchanged,
                if apply || plan.writes() == 0 {
                    ""
                } else {
                    "; nothing written (run again with --apply)"
                }
            );
        }
        Command::Audit { limit } => {
            for a in catalog::audit::list(db, limit).await? {
                println!(
                    "{}\t{}\t{}\t{}\t{}",
                    fmt_time(a.created_at),
                    a.actor,
                    a.action,
                    a.target,
                    a.detail
                );
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
            KeyAction::Limit { key_id, limits } => {
                let id = weir_core::limits::key_row_id(db, &key_id)
                    .await?
                    .with_context(|| format!("no API key with id {key_id:?}"))?;
                limit_command(db, weir_core::limits::Scope::Key, id, &limits).await?;
            }
        },
    }
    Ok(())
}

/// Who the audit log names for a change made on the command line.
fn cli_actor() -> String {
    format!(
        "cli:{}",
        std::env::var("USER").unwrap_or_else(|_| "unknown".into())
    )
}

fn fmt_time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|d| d.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_default()
}

async fn channel_command(action: ChannelAction, config: &Config, db: &Db) -> anyhow::Result<()> {
    match action {
        ChannelAction::Add {
            name,
            provider,
            kind,
            base_url,
            key,
            key_stdin,
            priority,
            weight,
            disabled,
            local,
            models,
        } => {
            let key = match (key, key_stdin) {
                (Some(k), _) => k,
                (None, true) => {
                    let mut line = String::new();
                    std::io::stdin()
                        .read_line(&mut line)
                        .context("reading the key from standard input")?;
                    line.trim().to_owned()
                }
                (None, false) => anyhow::bail!("give the upstream key with --key or --key-stdin"),
            };
            let input = catalog::channels::ChannelInput {
                name,
                provider_id: provider,
                kind: catalog::Wire::parse(&kind),
                base_url,
                api_key: Some(key),
                priority,
                weight,
                enabled: !disabled,
                is_local: local,
                models,
            };
            let id = catalog::channels::add(db, &config.key_cipher(), &cli_actor(), &input).await?;
            println!("channel {} added (id {id})", input.name);
        }
        ChannelAction::List => {
            println!("id\tname\tprovider\tkind\tbase_url\tkey\tprio\tweight\tstate\tmodels");
            for c in catalog::channels::list(db).await? {
                let key = if c.key_last4.is_empty() {
                    c.key_source.clone()
                } else {
                    format!("{} …{}", c.key_source, c.key_last4)
                };
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}{}\t{}",
                    c.id,
                    c.name,
                    c.provider_id,
                    c.wire,
                    c.base_url,
                    key,
                    c.priority,
                    c.weight,
                    if c.enabled { "enabled" } else { "disabled" },
                    if c.is_local { ",local" } else { "" },
                    if c.models.is_empty() {
                        "all".to_owned()
                    } else {
                        c.models.join(",")
                    }
                );
            }
        }
        ChannelAction::Disable { channel } => {
            let id = catalog::channels::resolve(db, &channel).await?;
            catalog::channels::set_enabled(db, &cli_actor(), id, false).await?;
            println!("channel {channel} disabled");
        }
        ChannelAction::Enable { channel } => {
            let id = catalog::channels::resolve(db, &channel).await?;
            catalog::channels::set_enabled(db, &cli_actor(), id, true).await?;
            println!("channel {channel} enabled");
        }
        ChannelAction::Quota { channel, rpm, tpm } => {
            use weir_core::limits::parse_rate;
            let id = catalog::channels::resolve(db, &channel).await?;
            let parse = |v: Option<String>, what: &str| {
                parse_rate(v.as_deref().unwrap_or("")).map_err(|e| anyhow::anyhow!("--{what}: {e}"))
            };
            let quota = catalog::Quota {
                rpm: parse(rpm, "rpm")?,
                tpm: parse(tpm, "tpm")?,
            };
            catalog::channels::set_quota(db, &cli_actor(), id, quota).await?;
            let n = |v: Option<u32>| v.map_or("none".to_owned(), |v| v.to_string());
            println!(
                "channel {channel}: {} requests/min, {} tokens/min",
                n(quota.rpm),
                n(quota.tpm)
            );
        }
    }
    Ok(())
}

async fn model_command(action: ModelAction, db: &Db) -> anyhow::Result<()> {
    match action {
        ModelAction::Add {
            id,
            provider,
            upstream,
            kind,
            context_window,
            max_output,
            capabilities,
            input_modalities,
            output_modalities,
        } => {
            let mut caps = catalog::Capabilities::default();
            for c in &capabilities {
                match c.trim() {
                    "tools" => caps.tools = true,
                    "vision" => caps.vision = true,
                    "reasoning" => caps.reasoning = true,
                    "json_schema" => caps.json_schema = true,
                    "" => {}
                    other => anyhow::bail!(
                        "unknown capability {other:?} (tools, vision, reasoning, json_schema)"
                    ),
                }
            }
            let input = catalog::models::ModelInput {
                id,
                provider_id: provider,
                upstream_model: upstream,
                kind: if kind == "embedding" {
                    catalog::ModelKind::Embedding
                } else {
                    catalog::ModelKind::Chat
                },
                context_window,
                max_output_tokens: max_output,
                capabilities: caps,
                modalities: catalog::Modalities {
                    input: input_modalities,
                    output: output_modalities,
                },
            };
            catalog::models::add(db, &cli_actor(), &input).await?;
            println!("model {} added", input.id);
        }
        ModelAction::List => {
            println!("id\tprovider\tupstream\tkind\tcontext\tmax_output\tstate\tsource");
            for m in catalog::models::list(db).await? {
                let i = &m.input;
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
                    i.id,
                    i.provider_id,
                    i.upstream_model,
                    i.kind.as_str(),
                    i.context_window,
                    i.max_output_tokens.map_or("-".into(), |n| n.to_string()),
                    if m.active { "active" } else { "inactive" },
                    m.source
                );
            }
        }
        ModelAction::Activate { id } => {
            catalog::models::set_active(db, &cli_actor(), &id, true).await?;
            println!("model {id} active");
        }
        ModelAction::Deactivate { id } => {
            catalog::models::set_active(db, &cli_actor(), &id, false).await?;
            println!("model {id} inactive");
        }
    }
    Ok(())
}

async fn tariff_command(action: TariffAction, db: &Db) -> anyhow::Result<()> {
    use catalog::tariffs;
    match action {
        TariffAction::Set {
            model,
            input,
            output,
            cached_input,
            cache_write,
            reasoning,
            markup_bps,
            channel,
            from,
        } => {
            let opt = |v: Option<String>| -> anyhow::Result<Option<weir_core::money::PerMillion>> {
                tariffs::parse_optional_price(v.as_deref().unwrap_or(""))
                    .map_err(anyhow::Error::msg)
            };
            let tariff = catalog::Tariff {
                input: tariffs::parse_price(&input).map_err(|e| anyhow::anyhow!("--input: {e}"))?,
                output: tariffs::parse_price(&output)
                    .map_err(|e| anyhow::anyhow!("--output: {e}"))?,
                cached_input: opt(cached_input)?,
                cache_write: opt(cache_write)?,
                reasoning: opt(reasoning)?,
                markup_bps: tariffs::parse_markup_bps(&markup_bps)
                    .map_err(|e| anyhow::anyhow!("--markup-bps: {e}"))?,
            };
            let channel_id = match channel {
                Some(c) => Some(catalog::channels::resolve(db, &c).await?),
                None => None,
            };
            let effective_from =
                tariffs::parse_when(&from).map_err(|e| anyhow::anyhow!("--from: {e}"))?;
            let id = tariffs::set(
                db,
                &cli_actor(),
                &tariffs::TariffInput {
                    model_id: model.clone(),
                    channel_id,
                    tariff,
                    effective_from,
                },
            )
            .await?;
            println!(
                "tariff version {id} for {model}, from {}",
                fmt_time(effective_from.unwrap_or_else(weir_core::db::now_ms))
            );
        }
        TariffAction::History { model } => {
            println!("id\tmodel\tchannel\tinput\tcached\tcache_write\toutput\treasoning\tmarkup_bps\tfrom\tstate\tsource");
            let o = |p: Option<weir_core::money::PerMillion>| {
                p.map_or("-".to_owned(), |p| Micros(p.0).to_string())
            };
            for v in tariffs::history(db, model.as_deref(), 500).await? {
                let t = &v.tariff;
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
                    v.id,
                    v.model_id,
                    v.channel_name.as_deref().unwrap_or("all"),
                    Micros(t.input.0),
                    o(t.cached_input),
                    o(t.cache_write),
                    Micros(t.output.0),
                    o(t.reasoning),
                    t.markup_bps,
                    fmt_time(v.effective_from),
                    v.state.as_str(),
                    v.source
                );
            }
        }
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
