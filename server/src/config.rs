//! Configuration: built-in defaults, then an optional TOML file, then environment variables.
//! The first run needs none of them: the database is a SQLite file under `./data` and the
//! instance secret is generated there and kept for later runs.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
};

use anyhow::Context;
use serde::Deserialize;

/// Everything the server reads at start-up.
#[derive(Clone, Debug)]
pub struct Config {
    /// Address the HTTP server listens on (`WEIR_LISTEN`).
    pub listen: SocketAddr,
    /// `sqlite://…` or `postgres://…` (`DATABASE_URL`).
    pub database_url: String,
    /// Where generated files live: the default SQLite database and the secret (`WEIR_DATA_DIR`).
    pub data_dir: PathBuf,
    /// Instance secret (32+ bytes): peppers key-cache hashes and signs sessions (`WEIR_SECRET`).
    pub secret: Secret,
    /// Directory holding the built console assets, `pkg/` inside it (`LEPTOS_SITE_ROOT`).
    pub site_root: PathBuf,
    /// Maximum database connections (`WEIR_DB_MAX_CONNECTIONS`).
    pub db_max_connections: u32,
    /// Reservation cap (`WEIR_MAX_RESERVATION`, dollars) and lifetime
    /// (`WEIR_RESERVATION_TTL_SECS`).
    pub billing: crate::gateway::BillingPolicy,
    /// Upstream deadlines (`WEIR_UPSTREAM_FIRST_BYTE_SECS`, `WEIR_UPSTREAM_IDLE_SECS`).
    pub timeouts: crate::upstream::Timeouts,
    /// Breakers and the retry budget (`WEIR_BREAKER_FAILURES`,
    /// `WEIR_BREAKER_FAILURE_RATE_PERCENT`, `WEIR_BREAKER_COOLDOWN_MS`,
    /// `WEIR_RETRY_BUDGET_PERCENT`).
    pub resilience: crate::gateway::health::ResiliencePolicy,
    /// The base URL people reach this server at, without a trailing slash (`WEIR_PUBLIC_URL`;
    /// default `http://<listen address>`). Cookies are `Secure` when it is `https://`, and
    /// the console's CSRF check compares request origins with it.
    pub public_url: String,
    /// The account that becomes the operator when it signs up (`WEIR_ADMIN_EMAIL`); without
    /// it, the first account on a fresh instance.
    pub admin_email: Option<String>,
    /// Stripe Checkout top-ups (`STRIPE_SECRET_KEY`, `STRIPE_WEBHOOK_SECRET`,
    /// `STRIPE_API_BASE`); `None` without a secret key (the top-up button is then disabled).
    pub stripe: Option<StripeConfig>,
    /// The bounds of a top-up (`WEIR_TOPUP_MIN`, `WEIR_TOPUP_MAX`, dollars; $5 and $10,000).
    pub topup_limits: weir_core::topup::Limits,
    /// Where rate limits are counted: `redis://…` to share them between replicas
    /// (`REDIS_URL`); without it, in this process.
    pub redis_url: Option<String>,
    /// What a Redis limiter does while Redis is unreachable (`WEIR_LIMITS_FAIL`: `open`, the
    /// default, admits as if unlimited; `closed` refuses with 503).
    pub limits_fail: crate::limits::FailMode,
}

impl Config {
    /// The rate limiter this configuration asks for.
    pub fn limiter(&self) -> anyhow::Result<crate::limits::Limiter> {
        match &self.redis_url {
            None => Ok(crate::limits::Limiter::in_process()),
            Some(url) => crate::limits::Limiter::redis(url, self.limits_fail)
                .map_err(|e| anyhow::anyhow!("REDIS_URL: {e}")),
        }
    }

    /// The cipher for upstream keys at rest, derived from the instance secret.
    pub fn key_cipher(&self) -> weir_core::catalog::keys::KeyCipher {
        weir_core::catalog::keys::KeyCipher::from_secret(self.secret.expose())
    }
}

/// How Weir talks to Stripe.
#[derive(Clone, Debug)]
pub struct StripeConfig {
    /// `sk_live_…` or `sk_test_…`.
    pub secret_key: Secret,
    /// Webhook endpoint secrets (`whsec_…`); two while one is being rotated.
    pub webhook_secrets: Vec<Secret>,
    /// The API base without a trailing slash (default `https://api.stripe.com`).
    pub api_base: String,
}

impl StripeConfig {
    /// Live keys get live events; test keys test events.
    pub fn livemode(&self) -> bool {
        self.secret_key.expose().starts_with(b"sk_live_")
            || self.secret_key.expose().starts_with(b"rk_live_")
    }
}

pub const DEFAULT_STRIPE_API_BASE: &str = "https://api.stripe.com";

/// A secret that never prints itself.
#[derive(Clone)]
pub struct Secret(Vec<u8>);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into().into_bytes())
    }

    /// The secret as text (secrets are always built from text).
    pub fn expose_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or("")
    }

    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(…)")
    }
}

/// The optional TOML file; every field may be left out.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    database_url: Option<String>,
    data_dir: Option<PathBuf>,
    secret: Option<String>,
    site_root: Option<PathBuf>,
    public_url: Option<String>,
    admin_email: Option<String>,
    db_max_connections: Option<u32>,
    max_reservation: Option<String>,
    reservation_ttl_secs: Option<u64>,
    stripe_secret_key: Option<String>,
    stripe_webhook_secret: Option<String>,
    stripe_api_base: Option<String>,
    topup_min: Option<String>,
    topup_max: Option<String>,
}

pub const DEFAULT_PORT: u16 = 8080;
const SECRET_FILE: &str = "secret";

impl Config {
    /// Loads the configuration from the process environment (and the TOML file it names, or
    /// `./weir.toml` when that exists), creating the data directory and secret on first run.
    pub fn load() -> anyhow::Result<Config> {
        Config::load_from(|name| std::env::var(name).ok())
    }

    /// Like [`Config::load`], reading variables through `env` (for tests).
    pub fn load_from(env: impl Fn(&str) -> Option<String>) -> anyhow::Result<Config> {
        let var = |name: &str| env(name).filter(|v| !v.trim().is_empty());
        let file = match var("WEIR_CONFIG") {
            Some(path) => read_file(Path::new(&path))?,
            None if Path::new("weir.toml").exists() => read_file(Path::new("weir.toml"))?,
            None => FileConfig::default(),
        };

        let listen = var("WEIR_LISTEN")
            .or(file.listen)
            .unwrap_or_else(|| format!("127.0.0.1:{DEFAULT_PORT}"));
        let listen = parse_listen(&listen)?;
        let data_dir = var("WEIR_DATA_DIR")
            .map(PathBuf::from)
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from("data"));
        let database_url = var("DATABASE_URL")
            .or(file.database_url)
            .unwrap_or_else(|| format!("sqlite://{}/weir.db", data_dir.display()));
        let site_root = var("LEPTOS_SITE_ROOT")
            .map(PathBuf::from)
            .or(file.site_root)
            .unwrap_or_else(|| PathBuf::from("target/site"));
        let db_max_connections = match var("WEIR_DB_MAX_CONNECTIONS") {
            Some(v) => v
                .parse()
                .context("WEIR_DB_MAX_CONNECTIONS must be a positive integer")?,
            None => file.db_max_connections.unwrap_or(16),
        };
        let mut billing = crate::gateway::BillingPolicy::default();
        if let Some(v) = var("WEIR_MAX_RESERVATION").or(file.max_reservation) {
            billing.reservation_cap = weir_core::money::Micros::parse_usd(&v)
                .context("WEIR_MAX_RESERVATION must be a dollar amount like 10.00")?;
        }
        if let Some(v) = var("WEIR_RESERVATION_TTL_SECS")
            .map(|v| v.parse::<u64>())
            .transpose()
            .context("WEIR_RESERVATION_TTL_SECS must be a whole number of seconds")?
            .or(file.reservation_ttl_secs)
        {
            billing.reservation_ttl = std::time::Duration::from_secs(v.max(1));
        }
        let mut timeouts = crate::upstream::Timeouts::default();
        let secs = |name: &str| -> anyhow::Result<Option<std::time::Duration>> {
            var(name)
                .map(|v| {
                    v.parse::<u64>()
                        .map(|s| std::time::Duration::from_secs(s.max(1)))
                })
                .transpose()
                .with_context(|| format!("{name} must be a whole number of seconds"))
        };
        if let Some(d) = secs("WEIR_UPSTREAM_FIRST_BYTE_SECS")? {
            timeouts.first_byte = d;
        }
        if let Some(d) = secs("WEIR_UPSTREAM_IDLE_SECS")? {
            timeouts.idle = d;
        }
        let mut resilience = crate::gateway::health::ResiliencePolicy::default();
        let whole = |name: &str| -> anyhow::Result<Option<u64>> {
            var(name)
                .map(|v| v.parse::<u64>())
                .transpose()
                .with_context(|| format!("{name} must be a whole number"))
        };
        if let Some(n) = whole("WEIR_BREAKER_FAILURES")? {
            resilience.failures_to_open = u32::try_from(n.max(1)).unwrap_or(u32::MAX);
        }
        if let Some(p) = whole("WEIR_BREAKER_FAILURE_RATE_PERCENT")? {
            resilience.failure_rate_percent = u32::try_from(p.min(100)).unwrap_or(100);
        }
        if let Some(ms) = whole("WEIR_BREAKER_COOLDOWN_MS")? {
            resilience.cooldown = std::time::Duration::from_millis(ms.max(1));
        }
        if let Some(p) = whole("WEIR_RETRY_BUDGET_PERCENT")? {
            resilience.retry_budget_percent = u32::try_from(p.min(1000)).unwrap_or(1000);
        }
        let secret = match var("WEIR_SECRET").or(file.secret) {
            Some(s) if s.len() >= 32 => Secret(s.into_bytes()),
            Some(_) => anyhow::bail!("WEIR_SECRET must be at least 32 characters"),
            None => load_or_create_secret(&data_dir)?,
        };
        let public_url = var("WEIR_PUBLIC_URL")
            .or(file.public_url)
            .unwrap_or_else(|| format!("http://{listen}"))
            .trim_end_matches('/')
            .to_owned();
        anyhow::ensure!(
            public_url.starts_with("http://") || public_url.starts_with("https://"),
            "WEIR_PUBLIC_URL must start with http:// or https://"
        );
        let admin_email = var("WEIR_ADMIN_EMAIL")
            .or(file.admin_email)
            .map(|e| e.trim().to_owned());
        let webhook_secret = var("STRIPE_WEBHOOK_SECRET").or(file.stripe_webhook_secret);
        let api_base = var("STRIPE_API_BASE").or(file.stripe_api_base);
        let stripe = var("STRIPE_SECRET_KEY")
            .or(file.stripe_secret_key)
            .map(|key| StripeConfig {
                secret_key: Secret::new(key.trim()),
                webhook_secrets: webhook_secret
                    .unwrap_or_default()
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(Secret::new)
                    .collect(),
                api_base: api_base
                    .unwrap_or_else(|| DEFAULT_STRIPE_API_BASE.to_owned())
                    .trim()
                    .trim_end_matches('/')
                    .to_owned(),
            });
        if let Some(s) = &stripe {
            anyhow::ensure!(
                s.api_base.starts_with("http://") || s.api_base.starts_with("https://"),
                "STRIPE_API_BASE must start with http:// or https://"
            );
        }
        let mut topup_limits = weir_core::topup::Limits::default();
        for (name, file_value, slot) in [
            ("WEIR_TOPUP_MIN", file.topup_min, &mut topup_limits.min),
            ("WEIR_TOPUP_MAX", file.topup_max, &mut topup_limits.max),
        ] {
            if let Some(v) = var(name).or(file_value) {
                let m = weir_core::money::Micros::parse_usd(v.trim().trim_start_matches('$'))
                    .with_context(|| format!("{name} must be a dollar amount like 5.00"))?;
                anyhow::ensure!(
                    m.0 > 0 && m.0 % weir_core::topup::MICROS_PER_CENT == 0,
                    "{name} must be a positive amount in whole cents"
                );
                *slot = m;
            }
        }
        anyhow::ensure!(
            topup_limits.min <= topup_limits.max,
            "WEIR_TOPUP_MIN must not exceed WEIR_TOPUP_MAX"
        );
        let redis_url = var("REDIS_URL").filter(|u| !u.trim().is_empty());
        let limits_fail = match var("WEIR_LIMITS_FAIL").as_deref().map(str::trim) {
            None | Some("open") => crate::limits::FailMode::Open,
            Some("closed") => crate::limits::FailMode::Closed,
            Some(other) => anyhow::bail!("WEIR_LIMITS_FAIL must be open or closed, not {other:?}"),
        };
        Ok(Config {
            redis_url,
            limits_fail,
            stripe,
            topup_limits,
            public_url,
            admin_email,
            listen,
            database_url,
            data_dir,
            secret,
            site_root,
            db_max_connections,
            billing,
            timeouts,
            resilience,
        })
    }
}

fn read_file(path: &Path) -> anyhow::Result<FileConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("invalid config file {}", path.display()))
}

/// Accepts `host:port`, `:port` or a bare port.
fn parse_listen(s: &str) -> anyhow::Result<SocketAddr> {
    let s = s.trim();
    let full = if let Ok(port) = s.parse::<u16>() {
        format!("127.0.0.1:{port}")
    } else if let Some(port) = s.strip_prefix(':') {
        format!("0.0.0.0:{port}")
    } else {
        s.to_owned()
    };
    full.parse()
        .with_context(|| format!("WEIR_LISTEN {s:?} is not an address like 127.0.0.1:8080"))
}

/// Reads the instance secret from the data directory, creating it (mode 0600) on first run.
fn load_or_create_secret(data_dir: &Path) -> anyhow::Result<Secret> {
    use base64::Engine;
    use rand::RngCore;

    let path = data_dir.join(SECRET_FILE);
    if let Ok(text) = std::fs::read_to_string(&path) {
        let text = text.trim();
        anyhow::ensure!(
            text.len() >= 32,
            "the secret in {} is too short",
            path.display()
        );
        return Ok(Secret(text.as_bytes().to_vec()));
    }
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create data directory {}", data_dir.display()))?;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let text = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    write_private(&path, &text)
        .with_context(|| format!("cannot write secret file {}", path.display()))?;
    Ok(Secret(text.into_bytes()))
}

#[cfg(unix)]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::{io::Write, os::unix::fs::OpenOptionsExt};
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(text.as_bytes())
}

#[cfg(not(unix))]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    std::fs::write(path, text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn load(vars: &[(&str, &str)]) -> anyhow::Result<Config> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::load_from(|k| map.get(k).cloned())
    }

    #[test]
    fn first_run_needs_nothing_and_keeps_its_secret() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let data_s = data.to_str().unwrap();
        let a = load(&[("WEIR_DATA_DIR", data_s)]).unwrap();
        assert_eq!(a.listen, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(a.database_url, format!("sqlite://{data_s}/weir.db"));
        let b = load(&[("WEIR_DATA_DIR", data_s)]).unwrap();
        assert_eq!(a.secret.expose(), b.secret.expose());
        assert!(a.secret.expose().len() >= 32);
        assert_eq!(format!("{:?}", a.secret), "Secret(…)");
    }

    #[test]
    fn env_overrides_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("weir.toml");
        std::fs::write(
            &file,
            "listen = \"127.0.0.1:9000\"\ndatabase_url = \"sqlite://x.db\"\nsecret = \"0123456789abcdef0123456789abcdef\"\n",
        )
        .unwrap();
        let c = load(&[
            ("WEIR_CONFIG", file.to_str().unwrap()),
            ("WEIR_LISTEN", "127.0.0.1:9100"),
        ])
        .unwrap();
        assert_eq!(c.listen.port(), 9100);
        assert_eq!(c.database_url, "sqlite://x.db");
        assert_eq!(c.secret.expose(), b"0123456789abcdef0123456789abcdef");
    }

    #[test]
    fn stripe_and_topup_settings() {
        let c = load(&[
            ("STRIPE_SECRET_KEY", "sk_test_1"),
            ("STRIPE_WEBHOOK_SECRET", "whsec_a, whsec_b"),
            ("STRIPE_API_BASE", "http://127.0.0.1:12111/"),
            ("WEIR_TOPUP_MIN", "$1"),
            ("WEIR_TOPUP_MAX", "500"),
            ("WEIR_SECRET", "0123456789abcdef0123456789abcdef"),
        ])
        .unwrap();
        let s = c.stripe.unwrap();
        assert_eq!(s.api_base, "http://127.0.0.1:12111");
        assert_eq!(s.webhook_secrets.len(), 2);
        assert_eq!(s.webhook_secrets[1].expose_str(), "whsec_b");
        assert!(!s.livemode());
        assert_eq!(c.topup_limits.min.0, 1_000_000);
        assert_eq!(c.topup_limits.max.0, 500_000_000);
        let none = load(&[("WEIR_SECRET", "0123456789abcdef0123456789abcdef")]).unwrap();
        assert!(none.stripe.is_none());
        assert_eq!(none.topup_limits, weir_core::topup::Limits::default());
        assert!(load(&[
            ("WEIR_TOPUP_MIN", "0.001"),
            ("WEIR_SECRET", "0123456789abcdef0123456789abcdef")
        ])
        .is_err());
        assert!(load(&[
            ("WEIR_TOPUP_MIN", "20"),
            ("WEIR_TOPUP_MAX", "10"),
            ("WEIR_SECRET", "0123456789abcdef0123456789abcdef")
        ])
        .is_err());
    }

    #[test]
    fn listen_forms() {
        assert_eq!(parse_listen("9001").unwrap().port(), 9001);
        assert_eq!(parse_listen(":9002").unwrap().to_string(), "0.0.0.0:9002");
        assert!(parse_listen("nonsense").is_err());
        assert!(load(&[("WEIR_SECRET", "short")]).is_err());
    }
}
