//! The operator's catalog edits against a real database (SQLite, or PostgreSQL with
//! `TEST_DATABASE_URL`): sealed keys, the SSRF guard on save, audit rows and epoch bumps,
//! models, codenames, tariff versions and imports that keep operator edits.

use super::{
    channels::{self, ChannelInput},
    import::{self, ChangeKind},
    keys::KeyCipher,
    models::{self, ModelInput},
    tariffs::{self, TariffInput, VersionState},
    *,
};
use crate::{db::now_ms, testing::TestDb};

const KEY: &str = "sk-upstream-Zq8xW3vB7nT5kP1m-9f3k";

fn cipher() -> KeyCipher {
    KeyCipher::from_secret(b"test instance secret, 32 bytes long")
}

fn channel(name: &str, base: &str, local: bool) -> ChannelInput {
    ChannelInput {
        name: name.into(),
        provider_id: "acme".into(),
        kind: Some(Wire::OpenAi),
        base_url: base.into(),
        api_key: Some(KEY.into()),
        priority: 5,
        weight: 1,
        enabled: true,
        is_local: local,
        models: vec![],
    }
}

fn model(id: &str) -> ModelInput {
    ModelInput {
        id: id.into(),
        provider_id: "acme".into(),
        upstream_model: "echo".into(),
        kind: ModelKind::Chat,
        context_window: 32_000,
        max_output_tokens: Some(1024),
        capabilities: Capabilities::default(),
        modalities: Modalities::default(),
    }
}

/// Adds `id` with a price in force: a model is sold (resolved) only at a price.
async fn add_priced(db: &crate::db::Db, id: &str) {
    models::add(db, "cli", &model(id)).await.unwrap();
    tariffs::set(
        db,
        "cli",
        &TariffInput {
            model_id: id.into(),
            channel_id: None,
            tariff: price(1_000_000, 2_000_000, 0),
            effective_from: None,
        },
    )
    .await
    .unwrap();
}

fn price(input: i64, output: i64, markup_bps: i64) -> Tariff {
    Tariff {
        input: PerMillion(input),
        output: PerMillion(output),
        markup_bps,
        ..Tariff::default()
    }
}

#[tokio::test]
async fn channel_keys_are_sealed_at_rest_and_opened_by_the_loader() {
    let t = TestDb::new().await.unwrap();
    let db = &t.db;
    let keys = cipher();
    let epoch0 = read_epoch(db).await.unwrap();
    let id = channels::add(
        db,
        &keys,
        "user:1",
        &channel("acme-1", "http://127.0.0.1:9/v1", true),
    )
    .await
    .unwrap();
    assert!(
        read_epoch(db).await.unwrap() > epoch0,
        "the change bumps the epoch"
    );
    add_priced(db, "acme/echo").await;

    let listed = channels::list(db).await.unwrap();
    let c = listed.iter().find(|c| c.id == id).unwrap();
    assert_eq!(
        (c.key_source.as_str(), c.key_last4.as_str()),
        ("encrypted", "9f3k")
    );
    assert!(c.is_local && c.enabled);

    // The stored row holds no plaintext; the loader opens it with the cipher only.
    let r = sqlx::query("SELECT api_key, api_key_enc FROM channel WHERE id = $1")
        .bind(id)
        .fetch_one(db.pool())
        .await
        .unwrap();
    assert_eq!(r.try_get::<Option<String>, _>("api_key").unwrap(), None);
    let enc: String = r.try_get("api_key_enc").unwrap();
    assert!(!enc.contains(KEY) && enc.starts_with("v1:"));
    let snap = load_with(db, Some(&keys), |_| None).await.unwrap();
    let got = snap.resolve("acme/echo", ModelKind::Chat).unwrap();
    assert_eq!(got[0].channel.api_key.as_deref(), Some(KEY));
    assert!(
        !format!("{:?}", got[0]).contains(KEY),
        "Debug never shows the key"
    );
    assert!(!format!("{:?}", channel("x", "y", true)).contains(KEY));
    assert!(load(db, |_| None)
        .await
        .unwrap()
        .resolve("acme/echo", ModelKind::Chat)
        .is_none());
    let other = KeyCipher::from_secret(b"another secret, also 32 bytes long!");
    assert!(
        load_with(db, Some(&other), |_| None)
            .await
            .unwrap()
            .resolve("acme/echo", ModelKind::Chat)
            .is_none(),
        "a wrong instance secret leaves the channel out"
    );

    // Audit rows say who and what, never the key.
    let audit = audit::list(db, 10).await.unwrap();
    let actions: Vec<_> = audit.iter().map(|a| a.action.as_str()).collect();
    assert_eq!(actions[1..3], ["model.add", "channel.add"], "{actions:?}");
    assert_eq!(audit[2].actor, "user:1");
    assert!(audit[2].detail.contains("…9f3k"));
    assert!(audit.iter().all(|a| !a.detail.contains(KEY)));

    // Updating without a key keeps it; a new key replaces it.
    let mut edit = channel("acme-1", "http://127.0.0.1:9/v1", true);
    edit.api_key = None;
    edit.priority = 9;
    channels::update(db, &keys, "cli", id, &edit).await.unwrap();
    let snap = load_with(db, Some(&keys), |_| None).await.unwrap();
    let got = snap.resolve("acme/echo", ModelKind::Chat).unwrap();
    assert_eq!(
        (got[0].channel.api_key.as_deref(), got[0].channel.priority),
        (Some(KEY), 9)
    );
    edit.api_key = Some("sk-rotated-0000".into());
    channels::update(db, &keys, "cli", id, &edit).await.unwrap();
    assert_eq!(channels::list(db).await.unwrap()[0].key_last4, "0000");

    // Nothing of the key in the SQLite file (and its WAL).
    if let Some(path) = db.sqlite_file() {
        let mut bytes = std::fs::read(path).unwrap();
        bytes.extend(std::fs::read(path.with_extension("db-wal")).unwrap_or_default());
        let needle = "Zq8xW3vB7nT5kP1m".as_bytes();
        assert!(
            !bytes.windows(needle.len()).any(|w| w == needle),
            "plaintext key in the file"
        );
        let rotated = "sk-rotated-0000".as_bytes();
        assert!(!bytes.windows(rotated.len()).any(|w| w == rotated));
    }
    t.cleanup().await;
}

#[tokio::test]
async fn the_ssrf_guard_refuses_private_base_urls_unless_local() {
    let t = TestDb::new().await.unwrap();
    let db = &t.db;
    let keys = cipher();
    for url in [
        "http://127.0.0.1",
        "http://169.254.169.254",
        "http://[::1]",
        "http://localhost:8080",
    ] {
        let err = channels::add(db, &keys, "cli", &channel("c", url, false))
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                CatalogError::Invalid {
                    field: "base_url",
                    ..
                }
            ),
            "{url}: {err:?}"
        );
    }
    assert!(
        channels::list(db).await.unwrap().is_empty(),
        "nothing saved"
    );
    let id = channels::add(db, &keys, "cli", &channel("c", "http://[::1]:9", true))
        .await
        .unwrap();
    // Editing a local channel into a non-local one re-checks the URL.
    let err = channels::update(db, &keys, "cli", id, &channel("c", "http://[::1]:9", false))
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        CatalogError::Invalid {
            field: "base_url",
            ..
        }
    ));
    t.cleanup().await;
}

#[tokio::test]
async fn channel_edits_are_validated_and_disabling_takes_the_channel_out() {
    let t = TestDb::new().await.unwrap();
    let db = &t.db;
    let keys = cipher();
    let id = channels::add(
        db,
        &keys,
        "cli",
        &channel("a", "http://127.0.0.1:9/v1", true),
    )
    .await
    .unwrap();
    add_priced(db, "acme/m1").await;
    add_priced(db, "acme/m2").await;
    let dup = channels::add(
        db,
        &keys,
        "cli",
        &channel("a", "http://127.0.0.1:9/v1", true),
    )
    .await;
    assert!(matches!(
        dup,
        Err(CatalogError::Invalid { field: "name", .. })
    ));
    let mut wrong = channel("b", "http://127.0.0.1:9", true);
    wrong.kind = Some(Wire::Anthropic);
    let err = channels::add(db, &keys, "cli", &wrong).await.unwrap_err();
    assert!(
        matches!(err, CatalogError::Invalid { field: "kind", .. }),
        "{err:?}"
    );
    let mut nokey = channel("b", "http://127.0.0.1:9", true);
    nokey.api_key = None;
    assert!(matches!(
        channels::add(db, &keys, "cli", &nokey).await,
        Err(CatalogError::Invalid {
            field: "api_key",
            ..
        })
    ));
    let mut bad = channel("b", "http://127.0.0.1:9", true);
    bad.weight = 0;
    assert!(matches!(
        channels::add(db, &keys, "cli", &bad).await,
        Err(CatalogError::Invalid {
            field: "weight",
            ..
        })
    ));
    // A second channel serving only m2.
    let mut only = channel("only-m2", "http://127.0.0.1:9/v1", true);
    only.models = vec!["acme/m2".into()];
    let id2 = channels::add(db, &keys, "cli", &only).await.unwrap();
    let snap = load_with(db, Some(&keys), |_| None).await.unwrap();
    assert_eq!(snap.resolve("acme/m1", ModelKind::Chat).unwrap().len(), 1);
    assert_eq!(snap.resolve("acme/m2", ModelKind::Chat).unwrap().len(), 2);
    let mut other = channel("c", "http://127.0.0.1:9/v1", true);
    other.models = vec!["nope/x".into()];
    assert!(matches!(
        channels::add(db, &keys, "cli", &other).await,
        Err(CatalogError::Invalid {
            field: "models",
            ..
        })
    ));

    channels::set_enabled(db, "cli", id, false).await.unwrap();
    let snap = load_with(db, Some(&keys), |_| None).await.unwrap();
    assert!(
        snap.resolve("acme/m1", ModelKind::Chat).is_none(),
        "a disabled channel is never tried"
    );
    assert_eq!(
        snap.resolve("acme/m2", ModelKind::Chat).unwrap()[0]
            .channel
            .id,
        id2
    );
    assert!(matches!(
        channels::set_enabled(db, "cli", 999, true).await,
        Err(CatalogError::NotFound(_))
    ));
    assert_eq!(channels::resolve(db, "a").await.unwrap(), id);
    let probe = channels::probe_target(db, &keys, id2).await.unwrap();
    assert_eq!(probe.model.id, "acme/m2");
    let actions: Vec<String> = audit::list(db, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.action)
        .collect();
    assert_eq!(actions[0], "channel.disable");
    t.cleanup().await;
}

#[tokio::test]
async fn models_codenames_and_tariff_versions() {
    let t = TestDb::new().await.unwrap();
    let db = &t.db;
    let keys = cipher();
    let ch = channels::add(
        db,
        &keys,
        "cli",
        &channel("a", "http://127.0.0.1:9/v1", true),
    )
    .await
    .unwrap();
    assert!(matches!(
        models::add(
            db,
            "cli",
            &ModelInput {
                provider_id: "nope".into(),
                ..model("x/y")
            }
        )
        .await,
        Err(CatalogError::Invalid {
            field: "provider_id",
            ..
        })
    ));
    assert!(matches!(
        models::add(
            db,
            "cli",
            &ModelInput {
                context_window: 0,
                ..model("acme/m")
            }
        )
        .await,
        Err(CatalogError::Invalid {
            field: "context_window",
            ..
        })
    ));
    models::add(db, "cli", &model("acme/m")).await.unwrap();
    assert!(matches!(
        models::add(db, "cli", &model("acme/m")).await,
        Err(CatalogError::Invalid { field: "id", .. })
    ));

    // A price now, a channel price, and a later one scheduled.
    let now_t = price(1_000_000, 2_000_000, 1_000);
    tariffs::set(
        db,
        "cli",
        &TariffInput {
            model_id: "acme/m".into(),
            channel_id: None,
            tariff: now_t,
            effective_from: None,
        },
    )
    .await
    .unwrap();
    let later = price(5_000_000, 6_000_000, 1_000);
    tariffs::set(
        db,
        "cli",
        &TariffInput {
            model_id: "acme/m".into(),
            channel_id: None,
            tariff: later,
            effective_from: Some(now_ms() + 3_600_000),
        },
    )
    .await
    .unwrap();
    let past = tariffs::set(
        db,
        "cli",
        &TariffInput {
            model_id: "acme/m".into(),
            channel_id: None,
            tariff: later,
            effective_from: Some(now_ms() - 3_600_000),
        },
    )
    .await;
    assert!(matches!(
        past,
        Err(CatalogError::Invalid {
            field: "effective_from",
            ..
        })
    ));
    assert!(matches!(
        tariffs::set(
            db,
            "cli",
            &TariffInput {
                model_id: "acme/m".into(),
                channel_id: Some(ch + 100),
                tariff: now_t,
                effective_from: None
            }
        )
        .await,
        Err(CatalogError::Invalid {
            field: "channel_id",
            ..
        })
    ));
    let snap = load_with(db, Some(&keys), |_| None).await.unwrap();
    let got = snap.resolve("acme/m", ModelKind::Chat).unwrap();
    assert_eq!(
        got[0].tariff, now_t,
        "the scheduled version is not in force yet"
    );
    assert!(snap.next_tariff_change.is_some());
    let h = tariffs::history(db, Some("acme/m"), 10).await.unwrap();
    let states: Vec<_> = h.iter().map(|v| v.state).collect();
    assert_eq!(states, [VersionState::Scheduled, VersionState::InForce]);
    assert!(h.iter().all(|v| v.source == "operator"));

    models::set_active(db, "cli", "acme/m", false)
        .await
        .unwrap();
    assert!(load_with(db, Some(&keys), |_| None)
        .await
        .unwrap()
        .resolve("acme/m", ModelKind::Chat)
        .is_none());
    models::set_active(db, "cli", "acme/m", true).await.unwrap();
    assert!(matches!(
        models::set_active(db, "cli", "no/such", true).await,
        Err(CatalogError::NotFound(_))
    ));

    add_priced(db, "acme/m2").await;
    models::set_codename(
        db,
        "cli",
        "fast",
        "quick ones",
        &["acme/m2".into(), "acme/m".into()],
    )
    .await
    .unwrap();
    assert!(matches!(
        models::set_codename(db, "cli", "bad", "", &["no/such".into()]).await,
        Err(CatalogError::Invalid {
            field: "models",
            ..
        })
    ));
    let snap = load_with(db, Some(&keys), |_| None).await.unwrap();
    let via = snap.resolve("fast", ModelKind::Chat).unwrap();
    assert_eq!(via[0].model.id, "acme/m2");
    let cn = models::list_codenames(db).await.unwrap();
    assert_eq!(cn[0].models, ["acme/m2", "acme/m"]);
    let listed = models::list(db).await.unwrap();
    assert_eq!(listed.len(), 2);
    assert!(listed.iter().all(|m| m.source == "operator" && m.active));
    t.cleanup().await;
}

#[tokio::test]
async fn imports_preview_then_apply_and_never_overwrite_operator_edits() {
    let t = TestDb::new().await.unwrap();
    let db = &t.db;
    seed(db, SEED_JSON, 0).await.unwrap();
    // The operator prices one model and edits another.
    let op = price(111, 222, 500);
    tariffs::set(
        db,
        "user:1",
        &TariffInput {
            model_id: "openai/gpt-4o-mini".into(),
            channel_id: None,
            tariff: op,
            effective_from: None,
        },
    )
    .await
    .unwrap();
    let mut m = models::list(db)
        .await
        .unwrap()
        .into_iter()
        .find(|m| m.input.id == "openai/gpt-4o")
        .unwrap()
        .input;
    m.context_window = 64_000;
    models::update(db, "user:1", &m).await.unwrap();

    // The same file again changes nothing.
    let same = import::preview(db, SEED_JSON).await.unwrap();
    assert_eq!(same.writes(), 0, "{:?}", same.changes);
    assert!(same
        .changes
        .iter()
        .any(|c| c.kind == ChangeKind::KeptOperatorEdit && c.target == "openai/gpt-4o"));

    // A file with new prices, a new model and a new codename.
    let mut file: serde_json::Value = serde_json::from_str(SEED_JSON).unwrap();
    let models_arr = file["models"].as_array_mut().unwrap();
    for m in models_arr.iter_mut() {
        if m["id"] == "openai/gpt-4o-mini"
            || m["id"] == "openai/gpt-4o"
            || m["id"] == "openai/gpt-4.1"
        {
            m["price_per_mtok_usd"]["input"] = "9.99".into();
            m["context_window"] = 1_000_000.into();
        }
    }
    let mut extra = models_arr[0].clone();
    extra["id"] = "openai/brand-new".into();
    extra["upstream_model"] = "brand-new".into();
    models_arr.push(extra);
    file["codenames"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"codename": "newbie", "models": ["openai/brand-new"]}));
    let json = file.to_string();

    let before = read_epoch(db).await.unwrap();
    let plan = import::preview(db, &json).await.unwrap();
    assert_eq!(
        read_epoch(db).await.unwrap(),
        before,
        "a preview writes nothing"
    );
    let has = |k: ChangeKind, target: &str| {
        plan.changes
            .iter()
            .any(|c| c.kind == k && c.target == target)
    };
    assert!(has(ChangeKind::NewModel, "openai/brand-new"));
    assert!(has(ChangeKind::NewCodename, "newbie"));
    assert!(has(ChangeKind::NewPrice, "openai/gpt-4.1"));
    assert!(has(ChangeKind::UpdateModel, "openai/gpt-4.1"));
    assert!(
        has(ChangeKind::KeptOperatorEdit, "openai/gpt-4o-mini"),
        "{:?}",
        plan.changes
    );
    assert!(has(ChangeKind::KeptOperatorEdit, "openai/gpt-4o"));

    let applied = import::apply(db, "cli", &json).await.unwrap();
    assert_eq!(applied, plan);
    assert!(read_epoch(db).await.unwrap() > before);
    assert_eq!(
        import::preview(db, &json).await.unwrap().writes(),
        0,
        "applied once"
    );

    let snap = load(db, |_| None).await.unwrap();
    assert_eq!(
        snap.model("openai/gpt-4o-mini").unwrap().tariff,
        Some(op),
        "operator price kept"
    );
    assert_eq!(
        snap.model("openai/gpt-4o").unwrap().context_window,
        64_000,
        "operator edit kept"
    );
    assert_eq!(
        snap.model("openai/gpt-4.1").unwrap().context_window,
        1_000_000
    );
    assert_eq!(
        snap.model("openai/gpt-4.1").unwrap().tariff.unwrap().input,
        PerMillion(9_990_000)
    );
    assert!(snap.model("openai/brand-new").is_some());
    // Re-seeding leaves all of it alone.
    seed(db, SEED_JSON, 0).await.unwrap();
    let snap = load(db, |_| None).await.unwrap();
    assert_eq!(snap.model("openai/gpt-4o-mini").unwrap().tariff, Some(op));
    assert_eq!(snap.model("openai/gpt-4o").unwrap().context_window, 64_000);
    assert_eq!(
        audit::list(db, 1).await.unwrap()[0].action,
        "catalog.import"
    );

    assert!(matches!(
        import::preview(db, "{}").await,
        Err(CatalogError::Invalid { field: "file", .. })
    ));
    t.cleanup().await;
}
