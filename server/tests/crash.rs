//! Crash recovery: `kill -9` of a real `weir` process in the middle of a stream, then a
//! restart. The reaper must settle the orphaned reservation from the stream's checkpoint;
//! no usage row is lost or duplicated, and the ledger stays consistent.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{process::Stdio, time::Duration};

use serde_json::json;
use sqlx::Row;
use weir_core::{billing, testing::TestDb};
use weir_server::{demo, mock};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start(db_url: &str, data: &std::path::Path, port: u16) -> tokio::process::Child {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_weir"))
        .arg("serve")
        .env("DATABASE_URL", db_url)
        .env("WEIR_DATA_DIR", data)
        .env("WEIR_LISTEN", format!("127.0.0.1:{port}"))
        .env("WEIR_RESERVATION_TTL_SECS", "2")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

async fn wait_ready(port: u16) {
    for _ in 0..200 {
        if let Ok(r) = reqwest::get(format!("http://127.0.0.1:{port}/readyz")).await {
            if r.status() == 200 {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("server did not become ready");
}

#[tokio::test]
async fn kill_9_mid_stream_then_restart_settles_from_the_checkpoint() {
    let t = TestDb::new().await.unwrap();
    let data = tempfile::tempdir().unwrap();
    let upstream = mock::spawn("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let d = demo::install(
        &t.db,
        &upstream.base_url(),
        data.path(),
        b"unused-pepper-unused-pepper-unused",
    )
    .await
    .unwrap();

    let port = free_port();
    let mut server = start(&t.url, data.path(), port);
    wait_ready(port).await;

    // A long stream (about 20 s); read it for 6 s, past the first 5 s checkpoint.
    let body = json!({"model": "demo/echo", "stream": true,
        "messages": [{"role": "user", "content": "[[mock words=4000 chunk_delay_ms=5]] go"}]});
    let mut resp = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/v1/chat/completions"))
        .bearer_auth(&d.key)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let until = tokio::time::Instant::now() + Duration::from_secs(6);
    while tokio::time::Instant::now() < until {
        if resp.chunk().await.unwrap().is_none() {
            break;
        }
    }
    server.start_kill().unwrap(); // SIGKILL
    server.wait().await.unwrap();
    drop(resp);

    let row = sqlx::query("SELECT request_id, checkpoint_output_tokens FROM hold")
        .fetch_one(t.db.pool())
        .await
        .unwrap();
    let request_id: String = row.get("request_id");
    let charges: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM charge")
        .fetch_one(t.db.pool())
        .await
        .unwrap();
    assert_eq!(charges, 0, "nothing settled before the crash");
    let checkpoint: i64 = row.get("checkpoint_output_tokens");
    assert!(checkpoint > 0, "the stream checkpointed its output");

    // Restart after the reservation's time-to-live: the reaper runs at start-up.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let mut server = start(&t.url, data.path(), port);
    wait_ready(port).await;
    let mut settled = None;
    for _ in 0..100 {
        let r = sqlx::query(
            "SELECT status, usage_source, output_tokens, cost FROM charge WHERE request_id = $1",
        )
        .bind(&request_id)
        .fetch_optional(t.db.pool())
        .await
        .unwrap();
        if let Some(r) = r {
            settled = Some(r);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r = settled.expect("the reaper finished the reservation");
    assert_eq!(r.get::<String, _>("status"), "settled");
    assert_eq!(
        r.get::<Option<String>, _>("usage_source").as_deref(),
        Some("estimated")
    );
    assert_eq!(r.get::<Option<i64>, _>("output_tokens"), Some(checkpoint));
    assert!(r.get::<Option<i64>, _>("cost").unwrap_or(0) > 0);
    let n: i64 =
        sqlx::query_scalar("SELECT (SELECT COUNT(*) FROM charge) + (SELECT COUNT(*) FROM hold)")
            .fetch_one(t.db.pool())
            .await
            .unwrap();
    assert_eq!(n, 1, "no usage row duplicated");
    let usage_txns: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM ledger_txn WHERE kind = 'usage'")
            .fetch_one(t.db.pool())
            .await
            .unwrap();
    assert_eq!(usage_txns, 1, "charged once");
    assert!(billing::check(&t.db).await.unwrap().is_empty());
    server.start_kill().unwrap();
    let _ = server.wait().await;
    t.cleanup().await;
}
