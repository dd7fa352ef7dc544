//! The demo provider behind `weir serve --demo`: the in-repo mock upstream wired into the
//! catalog as one provider per upstream format it speaks (OpenAI, Anthropic, Cohere, Gemini) with a few priced
//! models, and a demo team whose key is printed so that a new user can call the API at once
//! with no upstream keys. Integration tests install the same setup.

use std::path::Path;

use anyhow::Context;
use weir_core::{
    auth::{self, Env, KeyVerifier},
    billing,
    catalog::{self, Capabilities, ChannelSpec, ModelKind, ModelSpec, ProviderSpec, Tariff, Wire},
    money::{Micros, PerMillion},
    team, Db,
};

pub const TEAM: &str = "demo";
/// Credit granted to the demo team once: $100.
pub const DEMO_CREDIT: Micros = Micros(100_000_000);

/// What `install` set up.
pub struct Demo {
    /// The demo team's API key (full text).
    pub key: String,
    /// A second key of the team, limited to [`LIMITED_RPM`] requests per minute.
    pub limited_key: String,
}

struct DemoModel {
    id: &'static str,
    provider: &'static str,
    upstream: &'static str,
    kind: ModelKind,
}

const MODELS: &[DemoModel] = &[
    DemoModel {
        id: "demo/echo",
        provider: "demo",
        upstream: "echo",
        kind: ModelKind::Chat,
    },
    DemoModel {
        id: "demo/embed",
        provider: "demo",
        upstream: "embed",
        kind: ModelKind::Embedding,
    },
    DemoModel {
        id: "demo/cohere-embed",
        provider: "demo-cohere",
        upstream: "embed-echo",
        kind: ModelKind::Embedding,
    },
    DemoModel {
        id: "demo/gemini-embed",
        provider: "demo-gemini",
        upstream: "gemini-embed-echo",
        kind: ModelKind::Embedding,
    },
    DemoModel {
        id: "demo/fail-503",
        provider: "demo",
        upstream: "fail-503",
        kind: ModelKind::Chat,
    },
    DemoModel {
        id: "demo/fail-429",
        provider: "demo",
        upstream: "fail-429",
        kind: ModelKind::Chat,
    },
    DemoModel {
        id: "demo/fail-500",
        provider: "demo",
        upstream: "fail-500",
        kind: ModelKind::Chat,
    },
    DemoModel {
        id: "demo/claude-echo",
        provider: "demo-anthropic",
        upstream: "claude-echo",
        kind: ModelKind::Chat,
    },
    DemoModel {
        id: "demo/cohere-echo",
        provider: "demo-cohere",
        upstream: "command-echo",
        kind: ModelKind::Chat,
    },
    DemoModel {
        id: "demo/gemini-echo",
        provider: "demo-gemini",
        upstream: "gemini-echo",
        kind: ModelKind::Chat,
    },
];

/// A codename served by both demo providers, to show routing across formats.
pub const CODENAME: &str = "demo-echo";

fn tariff(kind: ModelKind) -> Tariff {
    match kind {
        // $1 per million input tokens, $2 per million output tokens.
        ModelKind::Chat => Tariff {
            input: PerMillion(1_000_000),
            cached_input: Some(PerMillion(100_000)),
            cache_write: None,
            output: PerMillion(2_000_000),
            reasoning: None,
            markup_bps: 0,
        },
        // $0.10 per million tokens.
        ModelKind::Embedding => Tariff {
            input: PerMillion(100_000),
            output: PerMillion(0),
            ..Tariff::default()
        },
    }
}

/// Wires the mock upstream at `mock_base` (e.g. `http://127.0.0.1:9100`) into the catalog.
pub async fn install_catalog(db: &Db, mock_base: &str) -> anyhow::Result<()> {
    let openai_base = format!("{mock_base}/v1");
    let gemini_base = format!("{mock_base}/v1beta");
    for (id, name, wire, base) in [
        (
            "demo",
            "Demo (mock, OpenAI format)",
            Wire::OpenAi,
            openai_base.as_str(),
        ),
        (
            "demo-anthropic",
            "Demo (mock, Anthropic format)",
            Wire::Anthropic,
            mock_base,
        ),
        (
            "demo-cohere",
            "Demo (mock, Cohere format)",
            Wire::Cohere,
            mock_base,
        ),
        (
            "demo-gemini",
            "Demo (mock, Gemini format)",
            Wire::Gemini,
            gemini_base.as_str(),
        ),
    ] {
        catalog::ensure_provider(
            db,
            &ProviderSpec {
                id,
                name,
                wire,
                base_url: base,
                key_env: None,
            },
        )
        .await?;
        catalog::upsert_channel(
            db,
            &ChannelSpec {
                provider_id: id,
                name: id,
                base_url: base,
                key_env: None,
                api_key: Some("weir-demo"),
                priority: 0,
                is_local: true,
            },
        )
        .await?;
    }
    for m in MODELS {
        catalog::ensure_model(
            db,
            &ModelSpec {
                id: m.id,
                provider_id: m.provider,
                upstream_model: m.upstream,
                kind: m.kind,
                context_window: 128_000,
                max_output_tokens: (m.kind == ModelKind::Chat).then_some(4096),
                capabilities: Capabilities {
                    tools: m.kind == ModelKind::Chat,
                    ..Capabilities::default()
                },
            },
            Some(tariff(m.kind)),
        )
        .await?;
        if m.kind == ModelKind::Embedding {
            let modalities = catalog::Modalities {
                input: vec!["text".into()],
                output: vec!["embedding".into()],
            };
            catalog::seed_modalities(db, m.id, &modalities).await?;
        }
    }
    catalog::ensure_codename(
        db,
        CODENAME,
        "The echo model, served in OpenAI and Anthropic formats",
        &["demo/echo", "demo/claude-echo"],
    )
    .await?;
    Ok(())
}

/// Makes sure the demo team exists and has a working key: the one kept in
/// `data_dir/demo-key` when it still verifies, else a new one (written there).
pub async fn ensure_key(db: &Db, data_dir: &Path, pepper: &[u8]) -> anyhow::Result<String> {
    ensure_named_key(db, data_dir, pepper, "demo-key", "demo").await
}

/// Requests per minute of the demo's rate-limited key.
pub const LIMITED_RPM: u32 = 5;

/// The demo's second key, limited to [`LIMITED_RPM`] requests per minute, so that a new user
/// can see a 429 and its headers.
pub async fn ensure_limited_key(db: &Db, data_dir: &Path, pepper: &[u8]) -> anyhow::Result<String> {
    let name = format!("demo, {LIMITED_RPM} requests/minute");
    let key = ensure_named_key(db, data_dir, pepper, "demo-key-limited", &name).await?;
    let parsed = auth::ParsedKey::parse(&key).map_err(|e| anyhow::anyhow!("{e}"))?;
    let id = weir_core::limits::key_row_id(db, parsed.key_id)
        .await?
        .context("the limited demo key has no row")?;
    let (rules, _) = weir_core::limits::get(db, weir_core::limits::Scope::Key, id).await?;
    if rules.rpm != Some(LIMITED_RPM) {
        let rules = weir_core::limits::Rules {
            rpm: Some(LIMITED_RPM),
            ..rules
        };
        weir_core::limits::set(db, weir_core::limits::Scope::Key, id, &rules).await?;
    }
    Ok(key)
}

async fn ensure_named_key(
    db: &Db,
    data_dir: &Path,
    pepper: &[u8],
    file: &str,
    name: &str,
) -> anyhow::Result<String> {
    let team = match team::find_by_name(db, TEAM).await? {
        Some(t) => t,
        None => team::create(db, TEAM).await?,
    };
    // A one-time grant of demo credit; the reference makes it idempotent across restarts.
    match billing::credit(db, team.id, DEMO_CREDIT, "demo credit", Some("demo:grant")).await {
        Ok(_) | Err(billing::BillingError::Duplicate(_)) => {}
        Err(e) => return Err(e.into()),
    }
    let path = data_dir.join(file);
    if let Ok(text) = std::fs::read_to_string(&path) {
        let key = text.trim().to_owned();
        if KeyVerifier::new(db.clone(), pepper)
            .verify(&key)
            .await
            .is_ok()
        {
            return Ok(key);
        }
    }
    let key = auth::create_key(db, TEAM, Env::Dev, name).await?;
    std::fs::create_dir_all(data_dir).context("creating the data directory")?;
    std::fs::write(&path, &key.full).with_context(|| format!("writing {}", path.display()))?;
    Ok(key.full)
}

/// The fake Stripe for the demo on its own loopback port, delivering events to this server's
/// webhook at `public_url`, and the Stripe configuration that points Weir at it. The webhook
/// secret is fresh for each run.
pub async fn fake_stripe(
    public_url: &str,
) -> anyhow::Result<(crate::stripe::fake::FakeStripe, crate::config::StripeConfig)> {
    use rand::RngCore;
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let secret: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let secret = format!("whsec_demo_{secret}");
    let api_key = "sk_test_weir_demo".to_owned();
    let fake = crate::stripe::fake::spawn(
        "127.0.0.1:0".parse()?,
        crate::stripe::fake::FakeConfig {
            webhook_url: Some(format!(
                "{}/webhooks/stripe",
                public_url.trim_end_matches('/')
            )),
            webhook_secret: secret.clone(),
            api_key: Some(api_key.clone()),
        },
    )
    .await
    .context("binding the fake Stripe")?;
    let config = crate::config::StripeConfig {
        secret_key: crate::config::Secret::new(api_key),
        webhook_secrets: vec![crate::config::Secret::new(secret)],
        api_base: fake.base_url(),
    };
    Ok((fake, config))
}

/// Installs the whole demo: catalog entries for the mock at `mock_base` and the demo key.
pub async fn install(
    db: &Db,
    mock_base: &str,
    data_dir: &Path,
    pepper: &[u8],
) -> anyhow::Result<Demo> {
    install_catalog(db, mock_base).await?;
    let key = ensure_key(db, data_dir, pepper).await?;
    let limited_key = ensure_limited_key(db, data_dir, pepper).await?;
    Ok(Demo { key, limited_key })
}
