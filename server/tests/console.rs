//! The console's security and money checks, over real HTTP against the real router and
//! database (SQLite, or PostgreSQL with TEST_DATABASE_URL): CSRF and Origin on every mutation,
//! session ids cycled, teams unable to reach each other's ids, members' limits, the operator's
//! area, and usage totals equal to the ledger's.
//!
//! On a multi-threaded runtime, as the server runs: on a current-thread one, about one page
//! render in a few thousand never finished its body (Leptos SSR; upstream reports of the
//! same on one-worker runtimes: leptos-rs/leptos#4647).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{
    console::{Browser, PASSWORD},
    TestApp,
};
use serde_json::{json, Value};
use sqlx::Row;
use weir_core::{billing, money::Micros};

/// The operator of every test server here (so the first sign-up is an ordinary owner).
const OPERATOR: &str = "operator@example.com";

async fn spawn() -> TestApp {
    TestApp::spawn_with(&[("WEIR_ADMIN_EMAIL", OPERATOR)]).await
}

async fn key_count(app: &TestApp, team_id: i64) -> i64 {
    sqlx::query("SELECT COUNT(*) AS n FROM api_key WHERE team_id = $1")
        .bind(team_id)
        .fetch_one(app.db.pool())
        .await
        .unwrap()
        .get("n")
}

async fn revoked(app: &TestApp, key_id: i64) -> bool {
    sqlx::query("SELECT revoked_at FROM api_key WHERE id = $1")
        .bind(key_id)
        .fetch_one(app.db.pool())
        .await
        .unwrap()
        .get::<Option<i64>, _>("revoked_at")
        .is_some()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutations_without_the_token_or_from_another_origin_are_403_and_change_nothing() {
    let app = spawn().await;
    let mut owner = Browser::sign_up(&app, "csrf@example.com").await;
    let team = owner.team_id().await;
    let form = [("name", "k"), ("environment", "dev")];

    // No token, a wrong token, an empty token.
    for csrf in [None, Some("wrong"), Some("")] {
        let mut f = form.to_vec();
        if let Some(t) = csrf {
            f.push(("csrf", t));
        }
        let a = owner.post("keys/create_key", &f).await;
        assert_eq!(a.status, 403, "token {csrf:?} must be refused: {a:?}");
    }
    // The right token, from another site, or with no Origin and no Referer at all.
    for origin in [Some("https://evil.example"), None] {
        owner.origin = origin.map(str::to_owned);
        let a = owner.call("keys/create_key", &form).await;
        assert_eq!(a.status, 403, "origin {origin:?}: {a:?}");
    }
    assert_eq!(key_count(&app, team).await, 0);

    owner.origin = Some(app.base.clone());
    assert_eq!(owner.call("keys/create_key", &form).await.status, 200);
    assert_eq!(key_count(&app, team).await, 1);

    // Sign-up and log-in are mutations too.
    let mut visitor = Browser::new(&app);
    visitor.origin = Some("https://evil.example".into());
    let a = visitor
        .call(
            "auth/sign_up",
            &[("email", "evil@example.com"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(a.status, 403);
    let users: i64 =
        sqlx::query("SELECT COUNT(*) AS n FROM app_user WHERE email = 'evil@example.com'")
            .fetch_one(app.db.pool())
            .await
            .unwrap()
            .get("n");
    assert_eq!(users, 0);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_id_changes_at_log_in_and_log_out() {
    let app = spawn().await;
    Browser::sign_up(&app, "cycle@example.com").await;

    let mut b = Browser::new(&app);
    b.csrf().await;
    let before = b.session_id().expect("a visitor on /login gets a session");
    let a = b
        .call(
            "auth/log_in",
            &[("email", "CYCLE@example.com"), ("password", PASSWORD)],
        )
        .await;
    assert!(a.status < 400, "{a:?}");
    let during = b.session_id().unwrap();
    assert_ne!(before, during, "log-in must issue a new session id");
    assert_eq!(b.get("/keys").await.0, 200);

    // The id from before log-in is worth nothing (session fixation).
    let mut fixed = Browser::new(&app);
    fixed.set_session_id(Some(before));
    assert_eq!(fixed.get("/keys").await.0, 303);

    b.call("auth/log_out", &[]).await;
    assert_ne!(b.session_id(), Some(during.clone()));
    let mut stale = Browser::new(&app);
    stale.set_session_id(Some(during));
    assert_eq!(
        stale.get("/keys").await.0,
        303,
        "a logged-out session is gone"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_and_unknown_email_get_the_same_answer() {
    let app = spawn().await;
    Browser::sign_up(&app, "same@example.com").await;
    let mut answers = Vec::new();
    for email in ["same@example.com", "nobody@example.com"] {
        let mut b = Browser::new(&app);
        let a = b
            .call(
                "auth/log_in",
                &[("email", email), ("password", "not the password")],
            )
            .await;
        answers.push((a.status, a.body));
    }
    assert_eq!(answers[0], answers[1]);
    assert_eq!(answers[0].0, 400);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_team_cannot_read_or_change_another_teams_things_by_id() {
    let app = spawn().await;
    let mut a = Browser::sign_up(&app, "alice@example.com").await;
    let mut b = Browser::sign_up(&app, "bob@example.com").await;
    let team_a = a.team_id().await;
    let team_b = b.team_id().await;
    assert_ne!(team_a, team_b);
    let alice_id = a.viewer().await["id"].as_i64().unwrap();

    // Alice's team has a key, usage and a ledger.
    let (key_a, secret_a) = a.create_key("alice's key").await;
    billing::credit(&app.db, team_a, Micros(5_000_000), "test money", None)
        .await
        .unwrap();
    let r = app
        .http
        .post(app.url("/v1/chat/completions"))
        .bearer_auth(&secret_a)
        .json(&json!({"model": "demo/echo", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    app.wait_for_log_rows(1).await;

    // Bob sees none of it.
    let keys = b.post("keys/list_keys", &[]).await.body;
    assert_eq!(keys["keys"], json!([]));
    let k = key_a.to_string();
    let usage = b.post("usage/list_usage", &[("query[key]", &k)]).await.body;
    assert_eq!(usage["rows"], json!([]), "{usage}");
    assert_eq!(usage["totals"]["requests"], 0);
    let usage = b.post("usage/list_usage", &[]).await.body;
    assert_eq!(usage["rows"], json!([]));
    let (status, csv) = b.get(&format!("/api/usage/export.csv?key={key_a}")).await;
    assert_eq!(status, 200);
    assert_eq!(csv.lines().count(), 1, "only the header: {csv}");
    let dash = b.post("dashboard/load_dashboard", &[]).await.body;
    assert_eq!(dash["latest"], json!([]), "{dash}");
    assert_eq!(dash["balance"], 0);
    let dash_a = a.post("dashboard/load_dashboard", &[]).await.body;
    assert_eq!(dash_a["latest"].as_array().unwrap().len(), 1, "{dash_a}");
    let ledger = b.post("billing/list_ledger", &[]).await.body;
    assert_eq!(ledger["rows"], json!([]));
    assert_eq!(ledger["balance"], 0);
    let members = b.post("members/list_members", &[]).await.body;
    assert_eq!(members["members"].as_array().unwrap().len(), 1);
    assert!(!members.to_string().contains("alice"));

    // Nor can he change it by guessing ids.
    let a_revoke = b.call("keys/revoke_key", &[("key_id", &k)]).await;
    assert_eq!(a_revoke.status, 404, "{a_revoke:?}");
    assert!(!revoked(&app, key_a).await);
    let uid = alice_id.to_string();
    let removed = b.call("members/remove_member", &[("user_id", &uid)]).await;
    assert_eq!(removed.status, 404, "{removed:?}");
    let switched = b
        .call("teams/switch_team", &[("team_id", &team_a.to_string())])
        .await;
    assert_eq!(switched.status, 404);
    assert_eq!(b.team_id().await, team_b);
    for (f, form) in [
        ("admin/list_teams", vec![]),
        (
            "admin/adjust_balance",
            vec![
                ("team_id", team_b.to_string()),
                ("amount", "100".into()),
                ("reason", "mine".into()),
            ],
        ),
        (
            "admin/set_team_active",
            vec![("team_id", team_a.to_string()), ("active", "false".into())],
        ),
    ] {
        let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let r = b.call(f, &form).await;
        assert_eq!(r.status, 404, "{f} is the operator's: {r:?}");
    }
    assert_eq!(b.get("/admin/teams").await.0, 404);
    let (bal_b, _) = billing::balance(&app.db, team_b).await.unwrap();
    assert_eq!(bal_b.0, 0);
    let (bal_a, _) = billing::balance(&app.db, team_a).await.unwrap();
    assert!(bal_a.0 > 0 && bal_a.0 < Micros(5_000_000).0);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_manages_only_their_own_keys_and_never_the_admin_area() {
    let app = spawn().await;
    let mut owner = Browser::sign_up(&app, "owner@example.com").await;
    let team = owner.team_id().await;
    let (owner_key, _) = owner.create_key("owner key").await;
    let invite = owner
        .call("members/create_invite", &[("role", "member")])
        .await;
    assert_eq!(invite.status, 200, "{invite:?}");
    let link = invite.body.as_str().unwrap().to_owned();
    let token = link.rsplit('/').next().unwrap().to_owned();

    let mut member = Browser::sign_up(&app, "member@example.com").await;
    let joined = member
        .call("members/accept_invite", &[("token", &token)])
        .await;
    assert!(joined.status < 400, "{joined:?}");
    assert_eq!(member.team_id().await, team);
    assert_eq!(member.viewer().await["team"]["role"], "member");
    // Single use.
    let mut third = Browser::sign_up(&app, "third@example.com").await;
    let again = third
        .call("members/accept_invite", &[("token", &token)])
        .await;
    assert!(again.status >= 400, "{again:?}");

    // The member sees the owner's key but may not revoke it.
    let keys = member.post("keys/list_keys", &[]).await.body;
    let listed = keys["keys"].as_array().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["can_revoke"], false);
    let r = member
        .call("keys/revoke_key", &[("key_id", &owner_key.to_string())])
        .await;
    assert_eq!(r.status, 404, "{r:?}");
    assert!(!revoked(&app, owner_key).await);

    // Their own key they create and revoke.
    let (own, _) = member.create_key("member key").await;
    let r = member
        .call("keys/revoke_key", &[("key_id", &own.to_string())])
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert!(revoked(&app, own).await);

    // Managing members is not theirs; nor the admin area.
    let owner_id = owner.viewer().await["id"].as_i64().unwrap().to_string();
    let r = member
        .call("members/remove_member", &[("user_id", &owner_id)])
        .await;
    assert_eq!(r.status, 403, "{r:?}");
    let r = member
        .call("members/create_invite", &[("role", "admin")])
        .await;
    assert_eq!(r.status, 403, "{r:?}");
    for path in ["/admin", "/admin/teams"] {
        let (status, body) = member.get(path).await;
        assert_eq!(status, 404, "{path}");
        assert!(body.contains("Page not found"), "{path}: {body}");
        assert!(!body.contains("Credit or debit"), "{path}");
    }

    // The last owner cannot leave; the member can.
    let r = owner.call("members/leave_team", &[]).await;
    assert!(r.status >= 400, "{r:?}");
    let r = member.call("members/leave_team", &[]).await;
    assert_eq!(r.status, 200, "{r:?}");
    let members = owner.post("members/list_members", &[]).await.body;
    assert!(!members.to_string().contains("member@example.com"));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_credits_a_team_through_the_ledger() {
    let app = spawn().await;
    let mut owner = Browser::sign_up(&app, "shop@example.com").await;
    let team = owner.team_id().await;
    let mut op = Browser::sign_up(&app, OPERATOR).await;
    assert_eq!(op.viewer().await["is_operator"], true);
    assert_eq!(op.get("/admin/teams").await.0, 200);
    let teams = op.post("admin/list_teams", &[]).await.body;
    assert!(teams.to_string().contains("shop@example.com"), "{teams}");

    let t = team.to_string();
    let no_reason = op
        .call(
            "admin/adjust_balance",
            &[("team_id", &t), ("amount", "12.50"), ("reason", " ")],
        )
        .await;
    assert_eq!(no_reason.status, 400);
    let ok = op
        .call(
            "admin/adjust_balance",
            &[
                ("team_id", &t),
                ("amount", "12.50"),
                ("reason", "welcome credit"),
            ],
        )
        .await;
    assert_eq!(ok.status, 200, "{ok:?}");
    let ledger = owner.post("billing/list_ledger", &[]).await.body;
    assert_eq!(ledger["balance"], 12_500_000);
    assert_eq!(ledger["rows"][0]["memo"], "welcome credit");
    let actor: Option<String> =
        sqlx::query("SELECT actor FROM ledger_txn WHERE team_id = $1 AND kind = 'adjustment'")
            .bind(team)
            .fetch_one(app.db.pool())
            .await
            .unwrap()
            .get("actor");
    let op_id = op.viewer().await["id"].as_i64().unwrap();
    assert_eq!(actor, Some(format!("user:{op_id}")));
    app.stop().await;
}

/// The usage the console shows for a range is what the ledger charged in it, and the CSV holds
/// exactly the filtered rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_totals_equal_the_ledger_and_the_csv_has_the_filtered_rows() {
    let app = spawn().await;
    let mut owner = Browser::sign_up(&app, "meter@example.com").await;
    let team = owner.team_id().await;
    billing::credit(&app.db, team, Micros(20_000_000), "test money", None)
        .await
        .unwrap();
    let (key_1, s1) = owner.create_key("one").await;
    let (_, s2) = owner.create_key("two").await;
    let send = |secret: String, body: Value| {
        let http = app.http.clone();
        let url = app.url("/v1/chat/completions");
        async move {
            let r = http
                .post(url)
                .bearer_auth(secret)
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let _ = r.bytes().await;
            status
        }
    };
    let mut sent = 0;
    for i in 0..6 {
        let secret = if i % 2 == 0 { s1.clone() } else { s2.clone() };
        let stream = i % 3 == 0;
        let words = format!("[[mock words={}]] count these words", 5 + i * 7);
        let status = send(
            secret,
            json!({"model": if i == 4 { "demo/claude-echo" } else { "demo/echo" }, "stream": stream,
                   "messages": [{"role": "user", "content": words}]}),
        )
        .await;
        assert_eq!(status, 200);
        sent += 1;
    }
    // A failure: logged, not charged.
    let status = send(
        s1.clone(),
        json!({"model": "demo/echo", "messages": [{"role": "user", "content": "[[mock status=500]] x"}]}),
    )
    .await;
    assert!(status >= 500);
    sent += 1;
    app.wait_for_log_rows(sent).await;

    let ledger_usage = || async {
        let charged: i64 = sqlx::query(
            "SELECT CAST(COALESCE(SUM(e.amount), 0) AS BIGINT) AS s FROM ledger_entry e \
             JOIN account a ON a.id = e.account_id JOIN ledger_txn t ON t.id = e.txn_id \
             WHERE a.team_id = $1 AND a.kind = 'team_balance' AND t.kind = 'usage'",
        )
        .bind(team)
        .fetch_one(app.db.pool())
        .await
        .unwrap()
        .get("s");
        -charged
    };
    let mut charged = ledger_usage().await;
    for _ in 0..100 {
        if charged > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        charged = ledger_usage().await;
    }

    let usage = owner.post("usage/list_usage", &[]).await.body;
    assert_eq!(usage["totals"]["requests"], sent, "{usage}");
    assert_eq!(usage["totals"]["cost"], charged, "{usage}");
    assert!(charged > 0);
    let by_key: i64 = usage["by_key"]
        .as_array()
        .unwrap()
        .iter()
        .map(|kt| kt[1]["cost"].as_i64().unwrap())
        .sum();
    assert_eq!(by_key, charged);
    let by_model: i64 = usage["by_model"]
        .as_array()
        .unwrap()
        .iter()
        .map(|mt| mt[1]["cost"].as_i64().unwrap())
        .sum();
    assert_eq!(by_model, charged);
    let row_cost: i64 = usage["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["cost"].as_i64().unwrap())
        .sum();
    assert_eq!(row_cost, charged);

    // Today's UTC day as the range: the same totals.
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let ranged = owner
        .post(
            "usage/list_usage",
            &[("query[from]", &today), ("query[to]", &today)],
        )
        .await
        .body;
    assert_eq!(ranged["totals"], usage["totals"]);

    // Filtered by key and status: the CSV holds exactly the table's rows.
    let k1 = key_1.to_string();
    for (filter, qs) in [
        (vec![], String::new()),
        (vec![("query[key]", k1.as_str())], format!("key={k1}")),
        (vec![("query[status]", "error")], "status=error".to_owned()),
        (
            vec![("query[key]", k1.as_str()), ("query[status]", "ok")],
            format!("key={k1}&status=ok"),
        ),
        (
            vec![("query[model]", "demo/claude-echo")],
            "model=demo%2Fclaude-echo".to_owned(),
        ),
    ] {
        let page = owner.post("usage/list_usage", &filter).await.body;
        let rows = page["rows"].as_array().unwrap().len() as u64;
        assert_eq!(page["totals"]["requests"].as_u64().unwrap(), rows, "{qs}");
        let (status, csv) = owner.get(&format!("/api/usage/export.csv?{qs}")).await;
        assert_eq!(status, 200);
        let mut reader = csv::Reader::from_reader(csv.as_bytes());
        let records: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
        assert_eq!(records.len() as u64, rows, "{qs}: {csv}");
        let cost_col = reader
            .headers()
            .unwrap()
            .iter()
            .position(|h| h == "cost_usd")
            .expect("a cost_usd column");
        let csv_cost: i64 = records
            .iter()
            .map(|r| Micros::parse_usd(&r[cost_col]).unwrap().0)
            .sum();
        assert_eq!(csv_cost, page["totals"]["cost"].as_i64().unwrap(), "{qs}");
    }
    app.stop().await;
}
