//! Limits that hold across replicas: three real `weir serve` processes on one database
//! (PostgreSQL when `TEST_DATABASE_URL` says so, as in CI) and one Redis, and a client spreading
//! requests over them. A 60 RPM key gets at most 60 (+3) requests a minute, a key with a $1
//! daily cap is charged at most $1 (+ the overshoot bound) by 100 concurrent requests, and a
//! revoked key is refused by all three within about a second.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{process::Stdio, time::Duration};

use futures_util::future::join_all;
use serde_json::json;
use weir_core::{
    auth::{self, Env, ParsedKey},
    billing,
    catalog::{self, Tariff},
    limits::{self, Rules, Scope},
    money::{Micros, PerMillion},
    team,
    testing::TestDb,
};
use weir_server::{demo, mock};

const REDIS: &str = "redis://127.0.0.1:6379";

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
        .env("REDIS_URL", REDIS)
        .env("WEIR_DB_MAX_CONNECTIONS", "8")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

async fn wait_ready(port: u16) {
    for _ in 0..400 {
        if let Ok(r) = reqwest::get(format!("http://127.0.0.1:{port}/readyz")).await {
            if r.status() == 200 {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("replica on port {port} did not become ready");
}

async fn key_row(db: &weir_core::Db, full: &str) -> i64 {
    let key_id = ParsedKey::parse(full).unwrap().key_id.to_owned();
    limits::key_row_id(db, &key_id).await.unwrap().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn limits_hold_across_three_replicas_on_one_database_and_redis() {
    let t = TestDb::new().await.unwrap();
    let db = &t.db;
    let data = tempfile::tempdir().unwrap();
    let upstream = mock::spawn("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let d = demo::install(
        db,
        &upstream.base_url(),
        data.path(),
        b"unused-pepper-unused-pepper-unused",
    )
    .await
    .unwrap();
    // A dear price, so that 100 requests cost well over the $1 cap: $2,000 per million tokens.
    let dear = Tariff {
        input: PerMillion(2_000_000_000),
        cached_input: None,
        cache_write: None,
        output: PerMillion(2_000_000_000),
        reasoning: None,
        markup_bps: 0,
    };
    catalog::add_tariff(db, "demo/echo", None, &dear, 0, "test")
        .await
        .unwrap();
    let demo_team = team::get_by_name(db, demo::TEAM).await.unwrap();
    // The RPM key: 60 a minute.
    let rpm_key = d.limited_key.clone();
    let rpm_row = key_row(db, &rpm_key).await;
    limits::set(
        db,
        Scope::Key,
        rpm_row,
        &Rules {
            rpm: Some(60),
            ..Rules::default()
        },
    )
    .await
    .unwrap();
    // The capped key: $1 a day.
    let cap_key = d.key.clone();
    let cap_row = key_row(db, &cap_key).await;
    let cap = Micros(1_000_000);
    limits::set(
        db,
        Scope::Key,
        cap_row,
        &Rules {
            day_cap: Some(cap),
            ..Rules::default()
        },
    )
    .await
    .unwrap();
    let doomed = auth::create_team_key(db, demo_team.id, Env::Dev, "doomed", None, None)
        .await
        .unwrap();

    let ports = [free_port(), free_port(), free_port()];
    let mut replicas: Vec<_> = ports
        .iter()
        .map(|p| start(&t.url, data.path(), *p))
        .collect();
    for p in ports {
        wait_ready(p).await;
    }
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let body = json!({"model": "demo/echo", "max_tokens": 16,
                      "messages": [{"role": "user", "content":
                          "one two three four five six seven eight nine ten eleven twelve \
                           thirteen fourteen fifteen sixteen seventeen eighteen nineteen twenty"}]});
    let ask = |i: usize, key: &str| {
        let req = http
            .post(format!(
                "http://127.0.0.1:{}/v1/chat/completions",
                ports[i % 3]
            ))
            .bearer_auth(key)
            .json(&body);
        async move {
            let r = req.send().await.unwrap();
            let status = r.status().as_u16();
            let retry = r
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().parse::<u64>().unwrap());
            (status, retry)
        }
    };

    // 60 RPM: 150 requests in waves of 15 over the replicas, well inside one minute.
    let started = std::time::Instant::now();
    let mut admitted = 0;
    let mut limited = 0;
    for wave in 0..10 {
        let got = join_all((0..15).map(|j| ask(wave * 15 + j, &rpm_key))).await;
        for (status, retry) in got {
            match status {
                200 => admitted += 1,
                429 => {
                    limited += 1;
                    assert!(
                        retry.is_some_and(|s| s > 0),
                        "429 without a positive Retry-After"
                    );
                }
                s => panic!("unexpected status {s}"),
            }
        }
    }
    assert!(
        started.elapsed() < Duration::from_secs(55),
        "the waves took a minute"
    );
    assert!(
        (60..=63).contains(&admitted),
        "a 60 RPM key got {admitted} requests admitted in its minute over three replicas"
    );
    assert_eq!(admitted + limited, 150);
    eprintln!("60 RPM over 3 replicas: {admitted} admitted, {limited} refused");

    // A $1 daily cap, 100 concurrent requests spread over the replicas.
    let got = join_all((0..100).map(|i| ask(i, &cap_key))).await;
    let ok = got.iter().filter(|(s, _)| *s == 200).count();
    assert!(got.iter().all(|(s, _)| *s == 200 || *s == 429), "{got:?}");
    assert!(ok > 0 && ok < 100, "{ok} of 100 admitted");
    assert!(ok < 30, "the cap admitted {ok} requests of about $0.07");
    // Settlement is written within milliseconds; wait for the holds to drain.
    let mut charged = 0i64;
    for _ in 0..200 {
        let held: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM hold")
            .fetch_one(db.pool())
            .await
            .unwrap();
        charged = sqlx::query_scalar(
            "SELECT CAST(COALESCE(SUM(cost), 0) AS BIGINT) FROM charge WHERE api_key_id = $1",
        )
        .bind(cap_row)
        .fetch_one(db.pool())
        .await
        .unwrap();
        if held == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The documented bound: with max_tokens set and Weir's prompt count at least the
    // upstream's, settled costs never exceed the holds, so the cap is not passed at all.
    assert!(
        charged <= cap.0,
        "charged ${} under a $1 cap",
        Micros(charged)
    );
    eprintln!(
        "$1 daily cap, 100 concurrent: {ok} admitted, ${} charged",
        Micros(charged)
    );
    let (_, spend) = limits::get(db, Scope::Key, cap_row).await.unwrap();
    assert_eq!(spend.day.0, charged, "the cap row counts what was charged");
    assert_eq!(spend.held, Micros(0));
    assert!(billing::check(db).await.unwrap().is_empty());

    // Revocation: every replica knows the key, then refuses it within about a second.
    for i in 0..3 {
        assert_eq!(ask(i, &doomed.full).await.0, 200);
    }
    auth::revoke_key(db, &doomed.key_id).await.unwrap();
    let revoked_at = std::time::Instant::now();
    let mut refused = [None; 3];
    while refused.iter().any(Option::is_none) && revoked_at.elapsed() < Duration::from_secs(5) {
        for (i, slot) in refused.iter_mut().enumerate() {
            if slot.is_none() && ask(i, &doomed.full).await.0 == 401 {
                *slot = Some(revoked_at.elapsed());
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!("revoked key refused after {refused:?}");
    for (i, r) in refused.iter().enumerate() {
        let r = r.unwrap_or_else(|| panic!("replica {i} still accepts a revoked key after 5 s"));
        // The auth epoch is polled every second; allow the poll's own query time.
        assert!(
            r < Duration::from_millis(1_300),
            "replica {i} refused after {r:?}"
        );
    }

    for r in &mut replicas {
        r.start_kill().unwrap();
    }
    for r in &mut replicas {
        let _ = r.wait().await;
    }
    t.cleanup().await;
}
