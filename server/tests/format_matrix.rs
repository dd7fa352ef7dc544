//! Every client format × every upstream kind, streamed and not, through the demo models (one
//! per upstream kind the mock speaks). For every cell: the same text, the same tool call and
//! tool-result round trip, the same finish reason in the client's own words, the same usage as
//! the client sees it and as the request log meters it, and the same cost settled once on the
//! ledger.
//!
//! The tool step's token counts are compared per upstream kind, not across them: Cohere says
//! its tool plan as text before the call, which the others do not, so its conversation has a
//! few more tokens.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{
    surface::{Answer, Surface, SURFACES},
    TestApp,
};
use serde_json::json;

/// One demo model behind each upstream kind.
const UPSTREAMS: [(&str, &str); 4] = [
    ("openai", "demo/echo"),
    ("anthropic", "demo/claude-echo"),
    ("cohere", "demo/cohere-echo"),
    ("gemini", "demo/gemini-echo"),
];

const QUESTION: &str = "What is the weather in Paris?";

/// What one cell's step was charged, read back from the charge row and its ledger transaction.
#[derive(Debug, PartialEq)]
struct Charged {
    input: i64,
    output: i64,
    cost: i64,
}

/// One step of one cell: which cell, which step, and what the client saw.
struct Step {
    cell: String,
    upstream: &'static str,
    step: &'static str,
    answer: Answer,
}

#[tokio::test]
async fn every_client_format_on_every_upstream_kind_says_and_bills_the_same() {
    let app = TestApp::spawn().await;
    let mut steps: Vec<Step> = Vec::new();
    for (upstream, model) in UPSTREAMS {
        for surface in SURFACES {
            for stream in [false, true] {
                let cell = format!("{surface:?} → {upstream} (stream={stream})");
                let (normal, tool) = surface.finishes();

                let text = surface
                    .ask(
                        &app,
                        &surface.body(model, "hello there world", stream, json!({})),
                    )
                    .await;
                assert_eq!(text.text, "echo: hello there world", "{cell}");
                assert_eq!(text.finish, normal, "{cell}");
                assert!(text.calls.is_empty(), "{cell}: {text:?}");

                let call = surface
                    .ask(
                        &app,
                        &surface.body(model, QUESTION, stream, surface.forced_tool()),
                    )
                    .await;
                assert_eq!(call.finish, tool, "{cell}: {call:?}");
                assert_eq!(call.calls.len(), 1, "{cell}: {call:?}");
                assert_eq!(call.calls[0].name, "get_weather", "{cell}");
                assert_eq!(call.calls[0].args, json!({"city": "test"}), "{cell}");
                assert!(!call.calls[0].id.is_empty(), "{cell}");

                let result = surface
                    .ask(
                        &app,
                        &surface.with_result(model, QUESTION, &call, "18C", stream),
                    )
                    .await;
                assert_eq!(result.text, "tool result: 18C", "{cell}: {result:?}");
                assert_eq!(result.finish, normal, "{cell}");

                for (step, answer) in [("text", text), ("call", call), ("result", result)] {
                    steps.push(Step {
                        cell: cell.clone(),
                        upstream,
                        step,
                        answer,
                    });
                }
            }
        }
    }

    // Usage as the clients saw it: the text step is the same everywhere; the tool steps are
    // the same on every surface of one upstream.
    let first = |upstream: Option<&str>, step: &str| {
        steps
            .iter()
            .find(|s| s.step == step && upstream.is_none_or(|u| s.upstream == u))
            .unwrap()
    };
    for s in &steps {
        let baseline = match s.step {
            "text" => first(None, "text"),
            step => first(Some(s.upstream), step),
        };
        assert!(s.answer.usage.is_some(), "{} {}: no usage", s.cell, s.step);
        assert_eq!(
            s.answer.usage, baseline.answer.usage,
            "{} {}: usage differs from {} {}",
            s.cell, s.step, baseline.cell, baseline.step
        );
    }

    // Metered and billed: every request logged with the upstream's own usage, settled once,
    // with the cost the log's tokens price to, debited by one ledger transaction.
    let rows = app.wait_for_log_rows(steps.len() as i64).await;
    assert_eq!(rows.len(), steps.len());
    let mut charged = Vec::new();
    for s in &steps {
        let row = rows
            .iter()
            .find(|r| r.request_id == s.answer.request_id)
            .unwrap_or_else(|| panic!("{} {}: no log row", s.cell, s.step));
        assert_eq!(row.status, 200, "{} {}: {row:?}", s.cell, s.step);
        assert_eq!(
            row.usage_source, "upstream",
            "{} {}: {row:?}",
            s.cell, s.step
        );
        let c = settled(&app, &s.answer.request_id).await;
        assert_eq!(
            (c.input, c.output),
            (row.input_tokens, row.output_tokens),
            "{} {}: charged what was logged",
            s.cell,
            s.step
        );
        let (seen_in, seen_out) = s.answer.usage.unwrap();
        assert_eq!(
            (c.input as u64, c.output as u64),
            (seen_in, seen_out),
            "{} {}: charged what the client was told",
            s.cell,
            s.step
        );
        // The demo tariff: $1 per million input tokens, $2 per million output tokens.
        assert_eq!(c.cost, c.input + 2 * c.output, "{} {}", s.cell, s.step);
        charged.push(c);
    }
    ledger_matches_the_charges(&app, charged.iter().map(|c| c.cost).sum()).await;
    for (s, c) in steps.iter().zip(&charged) {
        let baseline = match s.step {
            "text" => first(None, "text"),
            step => first(Some(s.upstream), step),
        };
        let at = steps
            .iter()
            .position(|t| std::ptr::eq(t, baseline))
            .unwrap();
        assert_eq!(
            c, &charged[at],
            "{} {}: billed unlike {}",
            s.cell, s.step, baseline.cell
        );
    }
    app.stop().await;
}

/// The settled charge of `request_id`, waiting for the settlement (it runs off the answer's
/// path, in batches).
async fn settled(app: &TestApp, request_id: &str) -> Charged {
    use sqlx::Row;
    for _ in 0..100 {
        let row = sqlx::query(
            "SELECT status, input_tokens, output_tokens, cost, ledger_txn_id \
             FROM charge WHERE request_id = $1",
        )
        .bind(request_id)
        .fetch_optional(app.db.pool())
        .await
        .unwrap();
        if let Some(row) = row {
            assert_eq!(row.get::<String, _>("status"), "settled", "{request_id}");
            let cost: i64 = row.get("cost");
            assert!(cost > 0, "{request_id}: nothing charged");
            assert!(
                row.get::<Option<i64>, _>("ledger_txn_id").is_some(),
                "{request_id}: no ledger transaction"
            );
            return Charged {
                input: row.get("input_tokens"),
                output: row.get("output_tokens"),
                cost,
            };
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{request_id}: never settled");
}

/// Every usage transaction moved exactly the costs of the charges it settled (a batch settles
/// several), its entries sum to zero, and the demo team paid the sum of all the costs.
async fn ledger_matches_the_charges(app: &TestApp, total: i64) {
    use sqlx::Row;
    let txns = sqlx::query(
        "SELECT c.ledger_txn_id AS txn, CAST(SUM(c.cost) AS BIGINT) AS cost, \
         (SELECT CAST(SUM(e.amount) AS BIGINT) FROM ledger_entry e \
          WHERE e.txn_id = c.ledger_txn_id AND e.amount > 0) AS credited, \
         (SELECT CAST(SUM(e.amount) AS BIGINT) FROM ledger_entry e \
          WHERE e.txn_id = c.ledger_txn_id) AS net \
         FROM charge c GROUP BY c.ledger_txn_id",
    )
    .fetch_all(app.db.pool())
    .await
    .unwrap();
    assert!(!txns.is_empty());
    for t in &txns {
        let txn: i64 = t.get("txn");
        assert_eq!(
            t.get::<Option<i64>, _>("credited"),
            Some(t.get::<i64, _>("cost")),
            "transaction {txn} moved the costs it settled"
        );
        assert_eq!(t.get::<Option<i64>, _>("net"), Some(0), "transaction {txn}");
    }
    let team = weir_core::team::find_by_name(&app.db, weir_server::demo::TEAM)
        .await
        .unwrap()
        .unwrap();
    let (balance, held) = weir_core::billing::balance(&app.db, team.id).await.unwrap();
    assert_eq!(held.0, 0, "nothing is still held");
    assert_eq!(balance.0, weir_server::demo::DEMO_CREDIT.0 - total);
}

/// A tool name Anthropic and Gemini refuse (`files.read`) reaches them as a portable stand-in
/// and comes back to the client as its own name, in the call and in the tool-result round trip,
/// from OpenAI chat and Responses clients, streamed and not (the mock refuses such names as
/// Anthropic and Gemini do; `/v1/messages` refuses them itself, as Anthropic does).
#[tokio::test]
async fn tool_names_an_upstream_refuses_are_mapped_there_and_back() {
    let app = TestApp::spawn().await;
    let schema = json!({"type": "object", "properties": {"path": {"type": "string"}},
        "required": ["path"]});
    for (upstream, model) in UPSTREAMS {
        for surface in [Surface::Chat, Surface::Responses] {
            let (tools, choice) = match surface {
                Surface::Chat => (
                    json!([{"type": "function", "function": {"name": "files.read",
                        "parameters": schema}}]),
                    json!("required"),
                ),
                Surface::Messages => (
                    json!([{"name": "files.read", "input_schema": schema}]),
                    json!({"type": "any"}),
                ),
                Surface::Responses => (
                    json!([{"type": "function", "name": "files.read", "parameters": schema}]),
                    json!("required"),
                ),
            };
            for stream in [false, true] {
                let cell = format!("{surface:?} → {upstream} (stream={stream})");
                let extra = json!({"tools": tools, "tool_choice": choice});
                let call = surface
                    .ask(&app, &surface.body(model, "Read it", stream, extra))
                    .await;
                assert_eq!(call.calls.len(), 1, "{cell}: {call:?}");
                assert_eq!(call.calls[0].name, "files.read", "{cell}");
                assert_eq!(call.calls[0].args, json!({"path": "test"}), "{cell}");
                let mut body = surface.with_result(model, "Read it", &call, "hello", stream);
                body["tools"] = tools.clone();
                let result = surface.ask(&app, &body).await;
                assert_eq!(result.text, "tool result: hello", "{cell}: {result:?}");
            }
        }
    }
    app.stop().await;
}
