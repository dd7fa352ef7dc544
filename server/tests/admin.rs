//! The operator's catalog console over real HTTP: a channel added through the admin server
//! functions with its upstream key (sealed: not in the SQLite file, not in any log line), the
//! SSRF guard, a model and a tariff that a key's request is then charged at (plus markup), a
//! price scheduled for later that leaves earlier requests alone, the "Test" button, health,
//! imports and the audit log; and non-operators get 404 on all of it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::{
    io::Write,
    sync::{Arc, Mutex, OnceLock},
};

use common::{console::Browser, TestApp};
use serde_json::json;
use sqlx::Row;
use weir_core::{
    billing::{self, Usage},
    catalog::Tariff,
    money::PerMillion,
};

const OPERATOR: &str = "operator@example.com";
const UPSTREAM_KEY: &str = "sk-ops-R7dQ2mXv9LpT4wZk-k3y9";

/// Every log line of this test binary, at debug level.
fn logs() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let writer = Capture(buf.clone());
        let _ = tracing_subscriber::fmt()
            .with_env_filter("debug")
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .try_init();
        buf
    })
}

#[derive(Clone)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

async fn spawn() -> TestApp {
    logs();
    TestApp::spawn_with(&[("WEIR_ADMIN_EMAIL", OPERATOR)]).await
}

async fn charges(app: &TestApp, model: &str) -> Vec<(i64, i64, i64, i64, i64)> {
    for _ in 0..100 {
        let rows = sqlx::query(
            "SELECT price_input, price_output, markup_bps, cost, input_tokens, output_tokens FROM charge \
             WHERE model = $1 AND status = 'settled' ORDER BY created_at",
        )
        .bind(model)
        .fetch_all(app.db.pool())
        .await
        .unwrap();
        let open: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM hold")
            .fetch_one(app.db.pool())
            .await
            .unwrap();
        if !rows.is_empty() && open == 0 {
            return rows
                .into_iter()
                .map(|r| {
                    let tariff = Tariff {
                        input: PerMillion(r.get("price_input")),
                        output: PerMillion(r.get("price_output")),
                        markup_bps: r.get("markup_bps"),
                        ..Tariff::default()
                    };
                    let usage = Usage {
                        input: r.get::<Option<i64>, _>("input_tokens").unwrap() as u64,
                        output: r.get::<Option<i64>, _>("output_tokens").unwrap() as u64,
                        ..Usage::default()
                    };
                    let cost: i64 = r.get("cost");
                    assert_eq!(cost, billing::price(&usage, &tariff).total.0);
                    (
                        tariff.input.0,
                        tariff.output.0,
                        tariff.markup_bps,
                        cost,
                        usage.input as i64,
                    )
                })
                .collect();
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("no settled charge for {model}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_adds_a_channel_model_and_tariff_and_requests_are_charged_at_it() {
    let app = spawn().await;
    let mut op = Browser::sign_up(&app, OPERATOR).await;
    let mock_v1 = format!("{}/v1", app.mock.base_url());

    // The SSRF guard: loopback, metadata and IPv6 loopback refused unless local.
    for url in [
        mock_v1.as_str(),
        "http://169.254.169.254/v1",
        "http://[::1]:9/v1",
    ] {
        let a = op
            .call(
                "admin/add_channel",
                &[
                    ("name", "ops-mock"),
                    ("provider_id", "ops"),
                    ("kind", "openai"),
                    ("base_url", url),
                    ("api_key", UPSTREAM_KEY),
                ],
            )
            .await;
        assert_eq!(a.status, 400, "{url}: {a:?}");
        assert_eq!(a.body["Field"]["field"], "base_url", "{a:?}");
    }
    let a = op
        .call(
            "admin/add_channel",
            &[
                ("name", "ops-mock"),
                ("provider_id", "ops"),
                ("kind", "openai"),
                ("base_url", &mock_v1),
                ("api_key", UPSTREAM_KEY),
                ("priority", "3"),
                ("local", "on"),
            ],
        )
        .await;
    assert_eq!(a.status, 200, "{a:?}");
    let channel_id = a.body.as_i64().unwrap();

    let a = op
        .call(
            "admin/add_model",
            &[
                ("id", "ops/echo"),
                ("provider_id", "ops"),
                ("upstream_model", "echo"),
                ("kind", "chat"),
                ("context_window", "32000"),
                ("max_output_tokens", "1000"),
                ("capabilities", "tools"),
            ],
        )
        .await;
    assert_eq!(a.status, 200, "{a:?}");
    let bad = op
        .call(
            "admin/set_tariff",
            &[
                ("model_id", "ops/echo"),
                ("input", "1.2.5"),
                ("output", "2"),
            ],
        )
        .await;
    assert_eq!(bad.body["Field"]["field"], "input", "{bad:?}");
    let a = op
        .call(
            "admin/set_tariff",
            &[
                ("model_id", "ops/echo"),
                ("input", "1.25"),
                ("output", "2.50"),
                ("markup_bps", "2000"),
            ],
        )
        .await;
    assert_eq!(a.status, 200, "{a:?}");
    app.gateway().catalog.refresh(false).await.unwrap();

    // The key list shows the last four characters only.
    let listed = op.post("admin/list_channels", &[]).await;
    let text = listed.body.to_string();
    assert!(text.contains("\"key_last4\":\"k3y9\""), "{text}");
    assert!(!text.contains(UPSTREAM_KEY));

    let (s, body) = app
        .post_json(
            "/v1/chat/completions",
            &json!({"model": "ops/echo", "max_tokens": 50, "messages": [{"role": "user", "content": "one two three four"}]}),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    let first = charges(&app, "ops/echo").await;
    assert_eq!(first.len(), 1);
    assert_eq!(
        (first[0].0, first[0].1, first[0].2),
        (1_250_000, 2_500_000, 2000)
    );
    assert!(first[0].3 > 0);

    // A price scheduled for later: requests before it keep the price in force.
    let later = chrono::Utc::now() + chrono::Duration::hours(2);
    let a = op
        .call(
            "admin/set_tariff",
            &[
                ("model_id", "ops/echo"),
                ("input", "100"),
                ("output", "100"),
                ("markup_bps", "0"),
                (
                    "effective_from",
                    &later.format("%Y-%m-%dT%H:%M").to_string(),
                ),
            ],
        )
        .await;
    assert_eq!(a.status, 200, "{a:?}");
    app.gateway().catalog.refresh(false).await.unwrap();
    let (s, _) = app
        .post_json(
            "/v1/chat/completions",
            &json!({"model": "ops/echo", "max_tokens": 50, "messages": [{"role": "user", "content": "one two three four"}]}),
        )
        .await;
    assert_eq!(s, 200);
    let both = charges(&app, "ops/echo").await;
    assert_eq!(both.len(), 2);
    assert_eq!(
        both[1].0, 1_250_000,
        "the scheduled price is not in force yet"
    );
    let history = op
        .post("admin/list_tariffs", &[("model", "ops/echo")])
        .await
        .body;
    assert_eq!(history[0]["state"], "scheduled");
    assert_eq!(history[1]["state"], "in force");

    // Test button, health, audit.
    let probe = op
        .call(
            "admin/test_channel",
            &[("channel_id", &channel_id.to_string())],
        )
        .await;
    assert_eq!(probe.status, 200, "{probe:?}");
    assert_eq!(probe.body["ok"], true, "{probe:?}");
    // Request-log rows are written in batches, off the request path.
    let mut ours = serde_json::Value::Null;
    for _ in 0..100 {
        let chans = op.post("admin/list_channels", &[]).await.body;
        ours = chans
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == channel_id)
            .unwrap()
            .clone();
        if ours["requests_1h"] == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(ours["requests_1h"], 2, "{ours}");
    assert_eq!(ours["breaker"], "closed");
    let audit = op.post("admin/list_audit", &[]).await.body;
    let actions: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        ["tariff.schedule", "tariff.set", "model.add", "channel.add"]
    );
    assert_eq!(audit[0]["actor"], OPERATOR);

    // Disabling the channel takes the model out of service.
    let a = op
        .call(
            "admin/set_channel_enabled",
            &[
                ("channel_id", &channel_id.to_string()),
                ("enabled", "false"),
            ],
        )
        .await;
    assert_eq!(a.status, 200);
    app.gateway().catalog.refresh(false).await.unwrap();
    let (s, _) = app
        .post_json(
            "/v1/chat/completions",
            &json!({"model": "ops/echo", "messages": [{"role": "user", "content": "x"}]}),
        )
        .await;
    assert_eq!(s, 404);

    // The key is in neither the database file nor any log line.
    let needle = "R7dQ2mXv9LpT4wZk";
    if let Some(path) = app.db.sqlite_file() {
        let mut bytes = std::fs::read(path).unwrap();
        bytes.extend(std::fs::read(path.with_extension("db-wal")).unwrap_or_default());
        assert!(
            !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
            "the upstream key is readable in {}",
            path.display()
        );
    }
    app.stop().await;
    let logs = String::from_utf8_lossy(&logs().lock().unwrap()).into_owned();
    assert!(
        logs.contains("DEBUG"),
        "logs were captured: {}",
        &logs[..logs.len().min(2000)]
    );
    assert!(!logs.contains(needle), "the upstream key is in the logs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_catalog_pages_and_functions_are_the_operators_only() {
    let app = spawn().await;
    let mut owner = Browser::sign_up(&app, "owner@example.com").await;
    for page in [
        "/admin/channels",
        "/admin/models",
        "/admin/tariffs",
        "/admin/import",
        "/admin/audit",
    ] {
        assert_eq!(owner.get(page).await.0, 404, "{page}");
    }
    for (f, form) in [
        ("admin/list_channels", vec![]),
        ("admin/list_models", vec![]),
        ("admin/list_tariffs", vec![("model", "")]),
        ("admin/list_audit", vec![]),
        (
            "admin/add_channel",
            vec![
                ("name", "x"),
                ("provider_id", "x"),
                ("kind", "openai"),
                ("base_url", "https://api.example.com"),
                ("api_key", "k"),
            ],
        ),
        ("admin/test_channel", vec![("channel_id", "1")]),
        ("admin/import_catalog", vec![("file", "{}")]),
    ] {
        let a = owner.call(f, &form).await;
        assert_eq!(a.status, 404, "{f}: {a:?}");
    }
    let mut op = Browser::sign_up(&app, OPERATOR).await;
    for page in [
        "/admin/channels",
        "/admin/models",
        "/admin/tariffs",
        "/admin/import",
        "/admin/audit",
    ] {
        assert_eq!(op.get(page).await.0, 200, "{page}");
    }
    // Preview, then apply, an import of the shipped list plus one new model.
    let mut file: serde_json::Value = serde_json::from_str(weir_core::catalog::SEED_JSON).unwrap();
    let mut extra = file["models"][0].clone();
    extra["id"] = "openai/imported-one".into();
    file["models"].as_array_mut().unwrap().push(extra);
    let text = file.to_string();
    let p = op.call("admin/import_catalog", &[("file", &text)]).await;
    assert_eq!(p.status, 200, "{p:?}");
    assert_eq!(p.body["applied"], false);
    assert_eq!(p.body["writes"], 1, "{p:?}");
    assert_eq!(p.body["changes"][0]["target"], "openai/imported-one");
    let a = op
        .call(
            "admin/import_catalog",
            &[("file", &text), ("apply", "true")],
        )
        .await;
    assert_eq!(a.body["applied"], true, "{a:?}");
    let p = op.call("admin/import_catalog", &[("file", &text)]).await;
    assert_eq!(p.body["writes"], 0, "{p:?}");
    let bad = op
        .call("admin/import_catalog", &[("file", "not json")])
        .await;
    assert_eq!(bad.status, 400);
    let models = op.post("admin/list_models", &[]).await.body;
    assert!(models["models"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["id"] == "openai/imported-one" && m["source"] == "import"));
    app.stop().await;
}
