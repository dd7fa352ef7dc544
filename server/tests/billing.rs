//! Money through the gateway: reservation before the upstream call, 402 when it does not fit,
//! settlement at the measured usage, release when nothing billable happened, and the cost
//! reported to the caller. Runs on SQLite and PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{sse, TestApp};
use serde_json::{json, Value};
use sqlx::Row;
use weir_core::{billing, money::Micros, team};

async fn reservations(app: &TestApp) -> Vec<(String, String, i64)> {
    sqlx::query(
        "SELECT request_id, status, cost, created_at FROM charge \
         UNION ALL SELECT request_id, 'reserved', 0, created_at FROM hold \
         ORDER BY created_at, request_id",
    )
    .fetch_all(app.db.pool())
    .await
    .unwrap()
    .into_iter()
    .map(|r| {
        (
            r.get("request_id"),
            r.get("status"),
            r.get::<Option<i64>, _>("cost").unwrap_or(0),
        )
    })
    .collect()
}

async fn wait_settled(app: &TestApp, n: usize) -> Vec<(String, String, i64)> {
    for _ in 0..100 {
        let rows = reservations(app).await;
        if rows.iter().filter(|r| r.1 != "reserved").count() >= n {
            return rows;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("reservations not finished: {:?}", reservations(app).await);
}

#[tokio::test]
async fn cost_is_reported_and_charged_once() {
    let app = TestApp::spawn().await;
    let demo = team::get_by_name(&app.db, "demo").await.unwrap();
    let (before, _) = billing::balance(&app.db, demo.id).await.unwrap();

    let r = app.post("/v1/chat/completions", &json!({"model": "demo/echo", "messages": [{"role": "user", "content": "one two three"}]})).await;
    assert_eq!(r.status(), 200);
    let cost = r.headers()["x-weir-cost"].to_str().unwrap().to_owned();
    let v: Value = r.json().await.unwrap();
    // The mock counts words: 3 prompt tokens, 4 output ("echo: one two three") at $1 / $2 per 1M.
    assert_eq!(
        (
            v["usage"]["prompt_tokens"].as_u64(),
            v["usage"]["completion_tokens"].as_u64()
        ),
        (Some(3), Some(4))
    );
    assert_eq!(cost, "0.000011");

    // Streamed with usage: the final usage object carries the cost.
    let r = app.post("/v1/chat/completions", &json!({"model": "demo/claude-echo", "stream": true,
        "stream_options": {"include_usage": true}, "messages": [{"role": "user", "content": "one two three"}]})).await;
    let events = sse(r).await;
    let usage_chunk: Value = serde_json::from_str(&events[events.len() - 2].1).unwrap();
    assert_eq!(
        usage_chunk["usage"]["cost_usd"], "0.000011",
        "{usage_chunk}"
    );
    let r = app.post("/v1/chat/completions", &json!({"model": "demo/echo", "stream": true,
        "stream_options": {"include_usage": true}, "messages": [{"role": "user", "content": "one two three"}]})).await;
    let events = sse(r).await;
    let usage_chunk: Value = serde_json::from_str(&events[events.len() - 2].1).unwrap();
    assert_eq!(
        usage_chunk["usage"]["cost_usd"], "0.000011",
        "relayed usage gets the cost too"
    );

    let rows = wait_settled(&app, 3).await;
    assert_eq!(rows.len(), 3);
    assert!(
        rows.iter().all(|r| r.1 == "settled" && r.2 == 11),
        "{rows:?}"
    );
    let (after, held) = billing::balance(&app.db, demo.id).await.unwrap();
    assert_eq!(held, Micros(0));
    assert_eq!(before.0 - after.0, 33);
    assert!(billing::check(&app.db).await.unwrap().is_empty());
    app.stop().await;
}

#[tokio::test]
async fn failures_before_output_are_not_charged() {
    let app = TestApp::spawn().await;
    let demo = team::get_by_name(&app.db, "demo").await.unwrap();
    let (before, _) = billing::balance(&app.db, demo.id).await.unwrap();
    let (s, _) = app
        .post_json(
            "/v1/chat/completions",
            &json!({"model": "demo/fail-503", "messages": [{"role": "user", "content": "x"}]}),
        )
        .await;
    assert_eq!(s, 503);
    let r = app.post("/v1/chat/completions", &json!({"model": "demo/echo", "stream": true, "messages": [{"role": "user", "content": "[[mock status=500]] x"}]})).await;
    assert_eq!(r.status(), 502);
    let rows = wait_settled(&app, 2).await;
    assert!(rows.iter().all(|r| r.1 == "released"), "{rows:?}");
    assert_eq!(
        billing::balance(&app.db, demo.id).await.unwrap(),
        (before, Micros(0))
    );
    app.stop().await;
}

#[tokio::test]
async fn insufficient_balance_is_402_and_never_overdrawn() {
    let app = TestApp::spawn().await;
    team::create(&app.db, "small").await.unwrap();
    let key = weir_core::auth::create_key(&app.db, "small", weir_core::auth::Env::Dev, "")
        .await
        .unwrap()
        .full;
    let small = team::get_by_name(&app.db, "small").await.unwrap();
    // max_tokens 1000 at $2/1M output reserves a little over $0.002; fund ten of them.
    let body = json!({"model": "demo/echo", "max_tokens": 1000, "messages": [{"role": "user", "content": "hi"}]});
    let one = billing::worst_case(
        weir_server::tokens::estimate_prompt(
            &weir_server::wire::openai_chat::decode_request(&serde_json::to_vec(&body).unwrap())
                .unwrap(),
        ),
        1000,
        &app.gateway()
            .catalog
            .current()
            .model("demo/echo")
            .unwrap()
            .tariff
            .unwrap(),
        Micros(0),
    );
    billing::credit(&app.db, small.id, Micros(one.0 * 10), "test", None)
        .await
        .unwrap();

    let r = app.http.post(app.url("/v1/chat/completions")).bearer_auth(&key).json(&json!({"model": "demo/echo", "max_tokens": 100000000, "messages": [{"role": "user", "content": "hi"}]})).send().await.unwrap();
    assert_eq!(
        r.status(),
        402,
        "a huge max_tokens is capped, but still above this balance"
    );
    assert_eq!(r.headers()["x-should-retry"], "false");
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "insufficient_balance"
    );

    // 100 concurrent requests, each held upstream for 3 s so that all are in flight together
    // (a finished request frees its hold, which would let later ones in).
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let (http, url, key) = (
            app.http.clone(),
            app.url("/v1/chat/completions"),
            key.clone(),
        );
        let body = json!({"model": "demo/echo", "max_tokens": 1000, "messages": [{"role": "user", "content": "[[mock delay_ms=3000]] hi"}]});
        tasks.push(tokio::spawn(async move {
            http.post(url)
                .bearer_auth(key)
                .json(&body)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
    }
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            200 => ok += 1,
            402 => {}
            other => panic!("unexpected status {other}"),
        }
    }
    assert!((1..=10).contains(&ok), "admitted {ok}");
    let rows = wait_settled(&app, ok).await;
    let settled = rows.iter().filter(|r| r.1 == "settled").count();
    assert_eq!(settled, ok, "exactly one usage row per admitted request");
    let (balance, held) = billing::balance(&app.db, small.id).await.unwrap();
    assert!(balance.0 >= 0 && held == Micros(0), "{balance:?} {held:?}");
    assert!(billing::check(&app.db).await.unwrap().is_empty());
    app.stop().await;
}

/// Each way a stream can end, and what is billed (README "Billing policy").
#[tokio::test]
async fn every_stream_ending_is_billed_by_the_policy() {
    let app = TestApp::spawn_with(&[("WEIR_UPSTREAM_IDLE_SECS", "1")]).await;
    let cases = [
        // (directive, expect settled?, expected usage source)
        ("", "settled", "upstream"),
        ("[[mock no_usage]]", "settled", "estimated"),
        ("[[mock words=20 reset_after=5]]", "settled", "estimated"),
        ("[[mock words=20 error_after=5]]", "settled", "estimated"),
        ("[[mock words=20 stall_after=5]]", "settled", "estimated"),
    ];
    for model in ["demo/echo", "demo/claude-echo"] {
        for (directive, status, source) in cases {
            let before = reservations(&app).await.len();
            let body = json!({"model": model, "stream": true, "stream_options": {"include_usage": true},
                "messages": [{"role": "user", "content": format!("{directive} one two three")}]});
            let r = app.post("/v1/chat/completions", &body).await;
            assert_eq!(r.status(), 200, "{model} {directive}");
            let events = sse(r).await;
            if !directive.is_empty() && directive != "[[mock no_usage]]" {
                let last: Value =
                    serde_json::from_str(&events.last().unwrap().1).unwrap_or(Value::Null);
                assert!(
                    last.get("error").is_some(),
                    "{model} {directive}: a terminal error event, got {events:?}"
                );
            }
            let rows = wait_settled(&app, before + 1).await;
            let id = &rows[before].0;
            let row = sqlx::query("SELECT status, usage_source, output_tokens, cost FROM charge WHERE request_id = $1")
                .bind(id).fetch_one(app.db.pool()).await.unwrap();
            let (st, src): (String, Option<String>) = (row.get("status"), row.get("usage_source"));
            assert_eq!(
                (st.as_str(), src.as_deref()),
                (status, Some(source)),
                "{model} {directive}"
            );
            assert!(
                row.get::<Option<i64>, _>("output_tokens").unwrap_or(0) > 0,
                "{model} {directive}: never zero once output was delivered"
            );
            assert!(row.get::<Option<i64>, _>("cost").unwrap_or(0) > 0);
        }
    }
    // A client that leaves mid-stream: the partial output is billed, estimated.
    let before = reservations(&app).await.len();
    let body = json!({"model": "demo/echo", "stream": true, "messages": [{"role": "user", "content": "[[mock words=500 chunk_delay_ms=10]] go"}]});
    let mut r = app.post("/v1/chat/completions", &body).await;
    let _ = r.chunk().await.unwrap();
    let _ = r.chunk().await.unwrap();
    drop(r);
    let rows = wait_settled(&app, before + 1).await;
    let row =
        sqlx::query("SELECT status, usage_source, output_tokens FROM charge WHERE request_id = $1")
            .bind(&rows[before].0)
            .fetch_one(app.db.pool())
            .await
            .unwrap();
    assert_eq!(row.get::<String, _>("status"), "settled");
    assert_eq!(
        row.get::<Option<String>, _>("usage_source").as_deref(),
        Some("estimated")
    );
    let out: i64 = row.get::<Option<i64>, _>("output_tokens").unwrap_or(0);
    assert!(
        out > 0 && out < 500,
        "only what was streamed before the client left: {out}"
    );
    assert!(billing::check(&app.db).await.unwrap().is_empty());
    app.stop().await;
}
