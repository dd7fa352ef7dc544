//! Test harness: a real Weir server on 127.0.0.1:0 over a fresh database (SQLite, or
//! PostgreSQL when TEST_DATABASE_URL says so), with the demo provider pointing at a real mock
//! upstream, and a funded demo key. Requests go over real HTTP with reqwest.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod console;
pub mod surface;

use std::{net::SocketAddr, time::Duration};

use serde_json::Value;
use weir_core::{testing::TestDb, Db};
use weir_server::{config::Config, demo, mock, startup};

/// No test request waits longer: a server that stops answering fails the test with the
/// request's URL instead of hanging the suite.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

pub struct TestApp {
    pub base: String,
    pub key: String,
    /// The demo team's second key, limited to `demo::LIMITED_RPM` requests per minute.
    pub limited_key: String,
    pub db: Db,
    pub mock: mock::MockServer,
    pub http: reqwest::Client,
    test_db: Option<TestDb>,
    prepared: Option<startup::Prepared>,
    server: tokio::task::JoinHandle<()>,
    _data: tempfile::TempDir,
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        TestApp::spawn_with(&[]).await
    }

    /// Like `spawn`, with extra configuration variables (e.g. short timeouts).
    pub async fn spawn_with(vars: &[(&str, &str)]) -> TestApp {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let test_db = TestDb::new().await.expect("test database");
        let db = test_db.db.clone();
        let data = tempfile::tempdir().unwrap();
        let mock = mock::spawn("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let data_dir = data.path().to_str().unwrap().to_owned();
        let config = Config::load_from(|k| match k {
            "WEIR_DATA_DIR" => Some(data_dir.clone()),
            "WEIR_LISTEN" => Some("127.0.0.1:0".into()),
            // Tests that ask the mock for a run of faults are not about breakers (those are
            // tests/resilience.rs): out of their way unless a test sets them.
            _ => vars
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.clone())
                .or_else(|| match k {
                    "WEIR_BREAKER_FAILURES" => Some("1000000".into()),
                    "WEIR_BREAKER_FAILURE_RATE_PERCENT" => Some("0".into()),
                    _ => None,
                }),
        })
        .unwrap();
        let demo = demo::install(&db, &mock.base_url(), data.path(), config.secret.expose())
            .await
            .unwrap();
        let prepared = startup::prepare(db.clone(), &config).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let router = weir_server::http::router(prepared.state.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        TestApp {
            base: format!("http://{addr}"),
            key: demo.key,
            limited_key: demo.limited_key,
            db,
            mock,
            http: reqwest::Client::builder()
                .timeout(REQUEST_TIMEOUT)
                .build()
                .unwrap(),
            test_db: Some(test_db),
            prepared: Some(prepared),
            server,
            _data: data,
        }
    }

    pub fn gateway(&self) -> &std::sync::Arc<weir_server::gateway::Gateway> {
        &self.prepared.as_ref().unwrap().gateway
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// POSTs JSON with the demo key.
    pub async fn post(&self, path: &str, body: &Value) -> reqwest::Response {
        self.http
            .post(self.url(path))
            .bearer_auth(&self.key)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> (u16, Value) {
        let r = self.post(path, body).await;
        let status = r.status().as_u16();
        let v = r.json::<Value>().await.unwrap_or(Value::Null);
        (status, v)
    }

    /// How many requests reached the mock upstream so far (`GET /_mock/stats`).
    pub async fn upstream_requests(&self) -> u64 {
        let v: Value = self
            .http
            .get(format!("{}/_mock/stats", self.mock.base_url()))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["requests"].as_u64().unwrap()
    }

    /// Waits until the request log holds `n` rows (it is written off the hot path).
    pub async fn wait_for_log_rows(&self, n: i64) -> Vec<LogRow> {
        for _ in 0..100 {
            let rows = self.log_rows().await;
            if rows.len() as i64 >= n {
                return rows;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "request log did not reach {n} rows: {:?}",
            self.log_rows().await
        );
    }

    pub async fn log_rows(&self) -> Vec<LogRow> {
        use sqlx::Row;
        sqlx::query(
            "SELECT request_id, model, upstream_model, status, error_kind, stream, input_tokens, cached_tokens, cache_write_tokens, \
             output_tokens, usage_source, attempts, channel_id \
             FROM request_log ORDER BY created_at, request_id",
        )
        .fetch_all(self.db.pool())
        .await
        .unwrap()
        .into_iter()
        .map(|r| LogRow {
            request_id: r.get("request_id"),
            model: r.get("model"),
            upstream_model: r.get("upstream_model"),
            status: r.get("status"),
            error_kind: r.get("error_kind"),
            stream: r.get::<i64, _>("stream") != 0,
            input_tokens: r.get("input_tokens"),
            cached_tokens: r.get("cached_tokens"),
            cache_write_tokens: r.get("cache_write_tokens"),
            output_tokens: r.get("output_tokens"),
            usage_source: r.get("usage_source"),
            attempts: r.get("attempts"),
            channel_id: r.get("channel_id"),
        })
        .collect()
    }

    pub async fn stop(mut self) {
        self.server.abort();
        let _ = (&mut self.server).await;
        if let Some(p) = self.prepared.take() {
            p.shutdown().await;
        }
        if let Some(t) = self.test_db.take() {
            t.cleanup().await;
        }
    }
}

#[derive(Debug, Clone)]
pub struct LogRow {
    pub request_id: String,
    pub model: String,
    pub upstream_model: Option<String>,
    pub status: i64,
    pub error_kind: Option<String>,
    pub stream: bool,
    pub input_tokens: i64,
    pub cached_tokens: i64,
    pub cache_write_tokens: i64,
    pub output_tokens: i64,
    pub usage_source: String,
    pub attempts: i64,
    pub channel_id: Option<i64>,
}

/// Reads an SSE body into its `data:` payloads (and `event:` names, when present).
pub async fn sse(resp: reqwest::Response) -> Vec<(String, String)> {
    let text = resp.text().await.unwrap_or_default();
    parse_sse(&text)
}

pub fn parse_sse(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for block in text.split("\n\n") {
        let mut event = String::new();
        let mut data = String::new();
        for line in block.lines() {
            if let Some(e) = line.strip_prefix("event: ") {
                event = e.to_owned();
            } else if let Some(d) = line.strip_prefix("data: ") {
                data.push_str(d);
            }
        }
        if !data.is_empty() {
            out.push((event, data));
        }
    }
    out
}
