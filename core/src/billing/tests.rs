//! Database tests of the billing engine. Each runs on SQLite, and on PostgreSQL when
//! `TEST_DATABASE_URL` is set (`TestDb` gives every test its own schema).

use std::{collections::HashMap, time::Duration};

use proptest::{prelude::*, test_runner::TestRunner};
use sqlx::Row;

use super::{
    reserve::{finish_many_with, reserve_many_with},
    *,
};
use crate::{
    catalog::{self, ModelKind, ModelSpec, ProviderSpec, Tariff, Wire},
    db::{now_ms, Backend, Db},
    metering::{sample_record, UsageSource},
    money::{Micros, PerMillion},
    team,
    testing::TestDb,
    writer::Writer,
};

const HOUR: Duration = Duration::from_secs(3600);

pub(super) fn tariff() -> Tariff {
    Tariff {
        input: PerMillion(3_000_000),
        cached_input: Some(PerMillion(300_000)),
        cache_write: Some(PerMillion(3_750_000)),
        output: PerMillion(15_000_000),
        reasoning: None,
        markup_bps: 1_500,
    }
}

pub(super) fn res(id: &str, team_id: i64, amount: i64) -> NewReservation {
    NewReservation {
        request_id: id.to_owned(),
        team_id,
        api_key_id: 7,
        model: "test/model".to_owned(),
        amount: Micros(amount),
        tariff: tariff(),
        ttl: HOUR,
        prompt_estimate: 100,
        caps: 0,
    }
}

pub(super) fn io(input: u64, output: u64) -> Usage {
    Usage {
        input,
        output,
        ..Usage::default()
    }
}

pub(super) async fn new_team(db: &Db, credit_micros: i64) -> i64 {
    let t = team::create(db, &format!("team-{}", uuid::Uuid::new_v4().simple()))
        .await
        .unwrap();
    if credit_micros != 0 {
        credit(db, t.id, Micros(credit_micros), "test top-up", None)
            .await
            .unwrap();
    }
    t.id
}

/// The invariants, computed here from raw rows independently of [`check`]: every transaction
/// sums to zero, every cached balance equals its entries, every hold equals the open
/// reservations; and `check` agrees there is no drift.
pub(super) async fn assert_books(db: &Db) {
    let entries = sqlx::query("SELECT txn_id, account_id, amount FROM ledger_entry")
        .fetch_all(db.pool())
        .await
        .unwrap();
    let mut per_txn: HashMap<i64, i128> = HashMap::new();
    let mut per_account: HashMap<i64, i128> = HashMap::new();
    for e in &entries {
        let amount = i128::from(e.get::<i64, _>("amount"));
        *per_txn.entry(e.get("txn_id")).or_default() += amount;
        *per_account.entry(e.get("account_id")).or_default() += amount;
    }
    for (txn, sum) in &per_txn {
        assert_eq!(*sum, 0, "txn {txn} does not balance");
    }
    let mut open: HashMap<i64, i128> = HashMap::new();
    for r in sqlx::query("SELECT team_id, amount FROM hold")
        .fetch_all(db.pool())
        .await
        .unwrap()
    {
        *open.entry(r.get("team_id")).or_default() += i128::from(r.get::<i64, _>("amount"));
    }
    for a in sqlx::query("SELECT id, team_id, balance, held FROM account")
        .fetch_all(db.pool())
        .await
        .unwrap()
    {
        let id: i64 = a.get("id");
        let team_id: Option<i64> = a.get("team_id");
        assert_eq!(
            i128::from(a.get::<i64, _>("balance")),
            per_account.get(&id).copied().unwrap_or(0),
            "cached balance of account {id}"
        );
        let want_held = team_id.and_then(|t| open.get(&t).copied()).unwrap_or(0);
        assert_eq!(
            i128::from(a.get::<i64, _>("held")),
            want_held,
            "held of account {id}"
        );
    }
    let drift = check(db).await.unwrap();
    assert!(drift.is_empty(), "drift: {drift:?}");
}

async fn count(db: &Db, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(db.pool()).await.unwrap()
}

#[tokio::test]
async fn teams_get_an_account_and_system_accounts_exist() {
    let t = TestDb::new().await.unwrap();
    let db = &t.db;
    let team_id = new_team(db, 0).await;
    assert_eq!(balance(db, team_id).await.unwrap(), (Micros(0), Micros(0)));
    let n = count(
        db,
        "SELECT COUNT(*) FROM account WHERE kind = 'team_balance'",
    )
    .await;
    assert_eq!(n, 1);
    let kinds: Vec<String> =
        sqlx::query_scalar("SELECT kind FROM account WHERE team_id IS NULL ORDER BY kind")
            .fetch_all(db.pool())
            .await
            .unwrap();
    let mut want: Vec<&str> = SystemAccount::ALL.iter().map(|s| s.as_str()).collect();
    want.sort();
    assert_eq!(kinds, want);
    // A second system account of a kind is refused by the partial unique index.
    assert!(sqlx::query(
        "INSERT INTO account (team_id, kind, balance, held, updated_at) VALUES (NULL, 'upstream_cost', 0, 0, 0)"
    )
    .execute(db.pool())
    .await
    .is_err());
    ensure_team_account(db, team_id).await.unwrap();
    assert!(matches!(
        ensure_team_account(db, 987_654).await,
        Err(BillingError::UnknownTeam(987_654))
    ));
    t.cleanup().await;
}

/// 100 concurrent reservations on a balance that covers exactly 10: exactly 10 admitted, the
/// rest refused with `InsufficientBalance` (and no "database is locked" on SQLite); then the 10
/// settle concurrently and the books balance.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_reservations_admit_exactly_what_fits() {
    let t = TestDb::new().await.unwrap();
    let db = &t.db;
    let amount = 12_345i64;
    let team_id = new_team(db, 10 * amount).await;

    let mut tasks = Vec::new();
    for i in 0..100 {
        let db = db.clone();
        tasks.push(tokio::spawn(async move {
            reserve(&db, &res(&format!("req-{i}"), team_id, amount)).await
        }));
    }
    let (mut ok, mut refused) = (Vec::new(), 0);
    for (i, task) in tasks.into_iter().enumerate() {
        match task.await.unwrap() {
            Ok(()) => ok.push(format!("req-{i}")),
            Err(BillingError::InsufficientBalance) => refused += 1,
            Err(e) => panic!("unexpected error: {e:?}"),
        }
    }
    assert_eq!(ok.len(), 10);
    assert_eq!(refused, 90);
    assert_eq!(
        balance(db, team_id).await.unwrap(),
        (Micros(10 * amount), Micros(10 * amount))
    );
    assert_books(db).await;

    // Each settles at a cost within its reservation.
    let usage = io(1_000, 500); // 3000 + 7500 upstream, +15 % markup = 12075
    let cost = price(&usage, &tariff()).total;
    assert!(cost.0 <= amount);
    let mut tasks = Vec::new();
    for id in ok.clone() {
        let db = db.clone();
        tasks.push(tokio::spawn(async move {
            settle(&db, &id, &usage, UsageSource::Upstream).await
        }));
    }
    for task in tasks {
        let s = task.await.unwrap().unwrap();
        assert_eq!((s.cost, s.already), (cost, false));
    }
    let (bal, held) = balance(db, team_id).await.unwrap();
    assert_eq!(held, Micros(0));
    assert_eq!(bal, Micros(10 * amount - 10 * cost.0));
    assert!(bal.0 >= 0);
    let settled = count(db, "SELECT COUNT(*) FROM charge WHERE status = 'settled'").await;
    assert_eq!(settled, 10);
    assert_eq!(
        count(
            db,
            "SELECT (SELECT COUNT(*) FROM charge) + (SELECT COUNT(*) FROM hold)"
        )
        .await,
        10,
        "refused requests leave no row"
    );
    assert_books(db).await;
    t.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn settle_charges_once_sequentially_and_concurrently() {
    let t = TestDb::new().await.unwrap();
    let db = &t.db;
    let team_id = new_team(db, 1_000_000).await;
    let usage = Usage {
        input: 2_000,
        cached_input: 500,
        cache_write: 100,
        output: 300,
        reasoning: 50,
    };
    let cost = price(&usage, &tariff()).total;

    reserve(db, &res("seq", team_id, 50_000)).await.unwrap();
    let first = settle(db, "seq", &usage, UsageSource::Upstream)
        .await
        .unwrap();
    assert_eq!(
        first,
        Settlement {
            cost,
            already: false,
            status: ReservationStatus::Settled
        }
    );
    // A second call, even with other usage, changes nothing and returns the stored result.
    let second = settle(db, "seq", &io(1, 1), UsageSource::Estimated)
        .await
        .unwrap();
    assert_eq!(
        second,
        Settlement {
            cost,
            already: true,
            status: ReservationStatus::Settled
        }
    );
    assert!(!release(db, "seq").await.unwrap());
    assert_eq!(
        balance(db, team_id).await.unwrap(),
        (Micros(1_000_000 - cost.0), Micros(0))
    );

    reserve(db, &res("conc", team_id, 50_000)).await.unwrap();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let db = db.clone();
        tasks.push(tokio::spawn(async move {
            settle(&db, "conc", &usage, UsageSource::Upstream).await
        }));
    }
    let mut fresh = 0;
    for task in tasks {
        let s = task.await.unwrap().unwrap();
        assert_eq!(s.cost, cost);
        assert_eq!(s.status, ReservationStatus::Settled);
        if !s.already {
            fresh += 1;
        }
    }
    assert_eq!(fresh, 1, "exactly one call settled");
    assert_eq!(
        balance(db, team_id).await.unwrap(),
        (Micros(1_000_000 - 2 * cost.0), Micros(0))
    );
    assert_eq!(
        count(
            db,
            "SELECT COUNT(*) FROM ledger_txn WHERE external_ref = 'usage:conc'"
        )
        .await,
        1
    );
    // The stored usage row is the normalized usage with its source and cost.
    let row = reservation(db, "conc").await.unwrap().unwrap();
    assert_eq!(row.usage, Some(usage.normalized()));
    assert_eq!(row.usage_source, Some(UsageSource::Upstream));
    assert_eq!(row.cost, Some(cost));
    assert!(row.finished_at.is_some());
    assert!(matches!(
        settle(db, "nope", &usage, UsageSource::Upstream).await,
        Err(BillingError::NotFound(_))
    ));
    assert_books(db).await;
    t.cleanup().await;
}

#[tokio::test]
async fn release_is_idempotent_and_settle_after_release_charges_nothing() {
    let t = TestDb::new().await.unwrap();
    let db = &t.db;
    let team_id = new_team(db, 100_000).await;
    reserve(db, &res("r1", team_id, 40_000)).await.unwrap();
    assert_eq!(
        balance(db, team_id).await.unwrap(),
        (Micros(100_000), Micros(40_000))
    );
    assert!(release(db, "r1").await.unwrap());
    assert!(!release(db, "r1").await.unwrap());
    assert_eq!(
        balance(db, team_id).await.unwrap(),
        (Micros(100_000), Micros(0))
    );
    let s = settle(db, "r1", &io(10, 10), UsageSource::Upstream)
        .await
        .unwrap();
    assert_eq!(
        s,
        Settlement {
            cost: Micros(0),
            already: true,
            status: ReservationStatus::Released
        }
    );
    assert_eq!(
        count(db, "SELECT COUNT(*) FROM ledger_txn WHERE kind = 'usage'").await,
        0
    );
    assert!(matches!(
        release(db, "nope").await,
        Err(BillingError::NotFound(_))
    ));
    assert_books(db).await;
    t.cleanup().await;
}

#[tokio::test]
async fn reserve_refusals_change_nothing() {
    let t = TestDb::new().await.unwrap();
    let db = &t.db;
    let team_id = new_team(db, 10_000).await;
    reserve(db, &res("a", team_id, 6_000)).await.unwrap();
    // Exactly the available balance fits; one more micro does not.
    assert!(matches!(
        reserve(db, &res("b", team_id, 4_001)).await,
        Err(BillingError::InsufficientBalance)
    ));
    // A reused request id is refused and its hold rolled back.
    assert!(matches!(
        reserve(db, &res("a", team_id, 1_000)).await,
        Err(BillingError::Duplicate(_))
    ));
    assert!(matches!(
        reserve(db, &res("c", team_id, -1)).await,
        Err(BillingError::InvalidAmount(_))
    ));
    // No account, no credit: refused.
    assert!(matches!(
        reserve(db, &res("d", 424_242, 0)).await,
        Err(BillingError::InsufficientBalance)
    ));
    assert_eq!(
        balance(db, team_id).await.unwrap(),
        (Micros(10_000), Micros(6_000))
    );
    reserve(db, &res("b", team_id, 4_000)).await.unwrap();
    // A free request (amount 0) fits even with nothing available.
    reserve(db, &res("free", team_id, 0)).await.unwrap();
    assert_books(db).await;
    t.cleanup().await;
}

/// The actual cost is charged even above the reservation; the balance goes negative by the
/// overshoot, and no request is admitted until it is topped up.
#[tokio::test]
async fn overshoot_is_charged_and_blocks_further_requests() {
    let t = TestDb::new().await.unwrap();
    let db = &t.db;
    let team_id = new_team(db, 10_000).await;
    reserve(db, &res("big", team_id, 10_000)).await.unwrap();
    let usage = io(0, 1_000); // 15000 + 2250 markup
    let s = settle(db, "big", &usage, UsageSource::Upstream)
        .await
        .unwrap();
    assert_eq!(s.cost, Micros(17_250));
    assert_eq!(
        balance(db, team_id).await.unwrap(),
        (Micros(-7_250), Micros(0))
    );
    assert!(matches!(
        reserve(db, &res("next", team_id, 1)).await,
        Err(BillingError::InsufficientBalance)
    ));
    assert!(matches!(
        reserve(db, &res("free", team_id, 0)).await,
        Err(BillingError::InsufficientBalance)
    ));
    credit(db, team_id, Micros(8_000), "top-up", Some("topup:x"))
        .await
        .unwrap();
    reserve(db, &res("next", team_id, 750)).await.unwrap();
    assert_books(db).await;
    t.cleanup().await;
}

#[tokio::test]
async fn extend_grows_the_hold_within_the_balance() {
    let t = TestDb::new().await.unwrap();
    let db = &t.db;
    let team_id = new_team(db, 10_000).await;
    reserve(db, &res("s", team_id, 2_000)).await.unwrap();
    assert_eq!(extend(db, "s", Micros(3_000)).await.unwrap(), Micros(5_000));
    assert!(matches!(
        extend(db, "s", Micros(5_001)).await,
        Err(BillingError::InsufficientBalance)
    ));
    assert_eq!(
        balance(db, team_id).await.unwrap(),
        (Micros(10_000), Micros(5_000))
    );
    assert_eq!(
        reservation(db, "s").await.unwrap().unwrap().amount,
        Micros(5_000)
    );
    settle(db, "s", &io(100, 100), UsageSource::Upstream)
        .await
        .unwrap();
    assert!(matches!(
        extend(db, "s", Micros(1)).await,
        Err(BillingError::Finished(_))
    ));
    assert!(matches!(
        extend(db, "nope", Micros(1)).await,
        Err(BillingError::NotFound(_))
    ));
    assert_eq!(balance(db, team_id).await.unwrap().1, Micros(0));
    assert_books(db).await;
    t.cleanup().await;
}

/// The tariff changes between reserve and settle: the request is charged at the snapshot.
#[tokio::test]
async fn price_change_in_flight_charges_the_snapshot() {
    let t = TestDb::new().await.unwrap();
    let db = &t.db;
    catalog::ensure_provider(
        db,
        &ProviderSpec {
            id: "acme",
            name: "Acme",
            wire: Wire::OpenAi,
            base_url: "https://api.acme.test/v1",
            key_env: None,
        },
    )
    .await
    .unwrap();
    catalog::ensure_model(
        db,
        &ModelSpec {
            id: "acme/m1",
            provider_id: "acme",
            upstream_model: "m1",
            kind: ModelKind::Chat,
            context_window: 128_000,
            max_output_tokens: Some(4_096),
            capabilities: Default::default(),
        },
        Some(tariff()),
    )
    .await
    .unwrap();
    let old = catalog::load(db, |_| None)
        .await
        .unwrap()
        .model("acme/m1")
        .unwrap()
        .tariff
        .unwrap();
    let team_id = new_team(db, 1_000_000).await;
    let prompt = 2_000;
    let amount = worst_case(prompt, 1_000, &old, Micros(0));
    reserve(
        db,
        &NewReservation {
            tariff: old,
            amount,
            ..res("in-flight", team_id, 0)
        },
    )
    .await
    .unwrap();

    // The operator triples the prices while the request runs.
    sqlx::query(
        "INSERT INTO tariff (model_id, channel_id, input, cached_input, cache_write, output, reasoning, markup_bps, effective_from, source) \
         VALUES ('acme/m1', NULL, 9000000, NULL, NULL, 45000000, NULL, 1500, $1, 'admin')",
    )
    .bind(now_ms() - 1)
    .execute(db.pool())
    .await
    .unwrap();
    let new = catalog::load(db, |_| None)
        .await
        .unwrap()
        .model("acme/m1")
        .unwrap()
        .tariff
        .unwrap();
    assert_eq!(new.input, PerMillion(9_000_000));

    let usage = io(prompt, 800);
    let s = settle(db, "in-flight", &usage, UsageSource::Upstream)
        .await
        .unwrap();
    assert_eq!(s.cost, price(&usage, &old).total);
    assert_ne!(s.cost, price(&usage, &new).total);
    assert!(s.cost <= amount);
    assert_eq!(
        reservation(db, "in-flight").await.unwrap().unwrap().tariff,
        old
    );
    assert_books(db).await;
    t.cleanup().await;
}

#[tokio::test]
async fn reaper_settles_checkpointed_and_releases_the_rest_once() {
    let t = TestDb::new().await.unwrap();
    let db = &t.db;
    let team_id = new_team(db, 1_000_000).await;
    let short = Duration::from_millis(1);
    let mk = |id: &str, ttl| NewReservation {
        ttl,
        prompt_estimate: 1_200,
        ..res(id, team_id, 100_000)
    };
    reserve(db, &mk("streamed", short)).await.unwrap();
    reserve(db, &mk("silent", short)).await.unwrap();
    reserve(db, &mk("running", HOUR)).await.unwrap();
    checkpoint(db, "streamed", 300).await.unwrap();
    checkpoint(db, "streamed", 200).await.unwrap(); // never goes down
    checkpoint(db, "running", 50).await.unwrap();
    assert_eq!(
        reservation(db, "streamed")
            .await
            .unwrap()
            .unwrap()
            .checkpoint_output_tokens,
        300
    );

    let now = now_ms() + 60_000;
    let want = price(&io(1_200, 300), &tariff()).total;
    let report = reap(db, now).await.unwrap();
    assert_eq!(
        report,
        ReapReport {
            settled: 1,
            released: 1,
            charged: want,
            failed: 0
        }
    );
    let streamed = reservation(db, "streamed").await.unwrap().unwrap();
    assert_eq!(streamed.status, ReservationStatus::Settled);
    assert_eq!(streamed.usage_source, Some(UsageSource::Estimated));
    assert_eq!(streamed.usage, Some(io(1_200, 300)));
    assert_eq!(streamed.cost, Some(want));
    assert_eq!(
        reservation(db, "silent").await.unwrap().unwrap().status,
        ReservationStatus::Released
    );
    assert_eq!(
        reservation(db, "running").await.unwrap().unwrap().status,
        ReservationStatus::Reserved
    );
    assert_eq!(
        balance(db, team_id).await.unwrap(),
        (Micros(1_000_000 - want.0), Micros(100_000))
    );

    // Reaping again (or concurrently elsewhere) is a no-op.
    assert_eq!(reap(db, now).await.unwrap(), ReapReport::default());
    // A late settlement from the original process finds it done.
    let late = settle(db, "streamed", &io(1_300, 400), UsageSource::Upstream)
        .await
        .unwrap();
    assert_eq!((late.cost, late.already), (want, true));
    // Checkpoints after the end are ignored.
    checkpoint(db, "streamed", 10_000).await.unwrap();
    assert_eq!(
        reservation(db, "streamed")
            .await
            .unwrap()
            .unwrap()
            .checkpoint_output_tokens,
        300
    );
    assert_books(db).await;
    t.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_reapers_finish_each_reservation_once() {
    let t = TestDb::new().await.unwrap();
    let db = &t.db;
    let team_id = new_team(db, 10_000_000).await;
    for i in 0..40 {
        reserve(
            db,
            &NewReservation {
                ttl: Duration::ZERO,
                ..res(&format!("c{i}"), team_id, 50_000)
            },
        )
        .await
        .unwrap();
        if i % 2 == 0 {
            checkpoint(db, &format!("c{i}"), 10 + i).await.unwrap();
        }
    }
    let now = now_ms() + 1_000;
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let db = db.clone();
        tasks.push(tokio::spawn(async move { reap(&db, now).await }));
    }
    let (mut settled, mut released, mut charged) = (0, 0, 0);
    for task in tasks {
        let r = task.await.unwrap().unwrap();
        assert_eq!(r.failed, 0);
        settled += r.settled;
        released += r.released;
        charged += r.charged.0;
    }
    assert_eq!((settled, released), (20, 20));
    assert_eq!(
        balance(db, team_id).await.unwrap(),
        (Micros(10_000_000 - charged), Micros(0))
    );
    assert_books(db).await;
    t.cleanup().await;
}

#[tokio::test]
async fn credits_and_debits() {
    let t = TestDb::new().await.unwrap();
    let db = &t.db;
    let team_id = new_team(db, 0).await;
    let id = credit(
        db,
        team_id,
        Micros(5_000_000),
        "welcome credit",
        Some("promo:1"),
    )
    .await
    .unwrap();
    assert!(id.0 > 0);
    assert!(matches!(
        credit(db, team_id, Micros(5_000_000), "again", Some("promo:1")).await,
        Err(BillingError::Duplicate(r)) if r == "promo:1"
    ));
    assert!(matches!(
        credit(db, team_id, Micros(1), "x", Some("usage:abc")).await,
        Err(BillingError::InvalidRef(_))
    ));
    assert!(matches!(
        credit(db, team_id, Micros(1), "x", Some("  ")).await,
        Err(BillingError::InvalidRef(_))
    ));
    assert!(matches!(
        credit(db, team_id, Micros(0), "x", None).await,
        Err(BillingError::InvalidAmount(_))
    ));
    assert!(matches!(
        credit(db, team_id, Micros(i64::MIN), "x", None).await,
        Err(BillingError::InvalidAmount(_))
    ));
    assert!(matches!(
        credit(db, 31_337, Micros(1), "x", None).await,
        Err(BillingError::UnknownTeam(31_337))
    ));
    // A debit may take the balance below zero.
    credit(db, team_id, Micros(-6_000_000), "chargeback", None)
        .await
        .unwrap();
    assert_eq!(
        balance(db, team_id).await.unwrap(),
        (Micros(-1_000_000), Micros(0))
    );
    let memo: String = sqlx::query_scalar(
        "SELECT memo FROM ledger_txn WHERE kind = 'adjustment' AND external_ref LIKE 'manual:%'",
    )
    .fetch_one(db.pool())
    .await
    .unwrap();
    assert_eq!(memo, "chargeback");
    let manual: i64 = sqlx::query_scalar(
        "SELECT balance FROM account WHERE kind = 'manual_adjustment' AND team_id IS NULL",
    )
    .fetch_one(db.pool())
    .await
    .unwrap();
    assert_eq!(manual, 1_000_000);
    assert_books(db).await;
    t.cleanup().await;
}

#[tokio::test]
async fn post_refuses_unbalanced_entries() {
    let t = TestDb::new().await.unwrap();
    let db = &t.db;
    let team_id = new_team(db, 0).await;
    let mut tx = db.begin_write().await.unwrap();
    let err = post(
        &mut tx,
        "adjustment",
        "bad:1",
        None,
        &[
            Entry {
                account: AccountRef::Team(team_id),
                amount: Micros(100),
            },
            Entry {
                account: AccountRef::System(SystemAccount::ManualAdjustment),
                amount: Micros(-99),
            },
        ],
    )
    .await;
    assert!(matches!(err, Err(BillingError::Unbalanced(1))));
    // Several entries on one account, and zero entries, are fine.
    post(
        &mut tx,
        "adjustment",
        "ok:1",
        Some("split"),
        &[
            Entry {
                account: AccountRef::Team(team_id),
                amount: Micros(60),
            },
            Entry {
                account: AccountRef::Team(team_id),
                amount: Micros(40),
            },
            Entry {
                account: AccountRef::System(SystemAccount::StripeClearing),
                amount: Micros(0),
            },
            Entry {
                account: AccountRef::System(SystemAccount::StripeClearing),
                amount: Micros(-100),
            },
        ],
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(balance(db, team_id).await.unwrap().0, Micros(100));
    assert_eq!(count(db, "SELECT COUNT(*) FROM ledger_entry").await, 3);
    assert_books(db).await;
    t.cleanup().await;
}

/// Ledger rows cannot be changed or removed, on either backend.
#[tokio::test]
async fn ledger_is_append_only() {
    let t = TestDb::new().await.unwrap();
    let db = &t.db;
    let team_id = new_team(db, 1_000).await;
    for sql in [
        "UPDATE ledger_entry SET amount = amount + 1",
        "UPDATE ledger_entry SET account_id = account_id",
        "DELETE FROM ledger_entry",
        "UPDATE ledger_txn SET memo = 'changed'",
        "DELETE FROM ledger_txn",
    ] {
        let err = sqlx::query(sql).execute(db.pool()).await;
        let msg = format!("{:?}", err.err());
        assert!(msg.contains("append-only"), "{sql}: {msg}");
    }
    if db.backend() == Backend::Postgres {
        assert!(sqlx::query("TRUNCATE ledger_entry")
            .execute(db.pool())
            .await
            .is_err());
    }
    assert_eq!(count(db, "SELECT COUNT(*) FROM ledger_entry").await, 2);
    assert_eq!(balance(db, team_id).await.unwrap().0, Micros(1_000));
    assert_books(db).await;
    t.cleanup().await;
}

/// Tampering outside the posting function is caught: on PostgreSQL an unbalanced
/// transaction cannot even commit (deferred constraint trigger); on SQLite it commits and the
/// check reports it. Cached balances and holds edited by hand show up as drift too.
#[tokio::test]
async fn check_reports_drift() {
    let t = TestDb::new().await.unwrap();
    let db = &t.db;
    let team_id = new_team(db, 1_000).await;
    let account_id: i64 =
        sqlx::query_scalar("SELECT id FROM account WHERE team_id = $1 AND kind = 'team_balance'")
            .bind(team_id)
            .fetch_one(db.pool())
            .await
            .unwrap();

    let mut tx = db.begin_write().await.unwrap();
    let txn_id: i64 = sqlx::query_scalar(
        "INSERT INTO ledger_txn (kind, external_ref, memo, created_at) VALUES ('adjustment', 'forged:1', NULL, 0) RETURNING id",
    )
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    sqlx::query("INSERT INTO ledger_entry (txn_id, account_id, amount) VALUES ($1, $2, 500)")
        .bind(txn_id)
        .bind(account_id)
        .execute(&mut *tx)
        .await
        .unwrap();
    let committed = tx.commit().await;
    match db.backend() {
        Backend::Postgres => {
            let msg = format!("{:?}", committed.err());
            assert!(msg.contains("does not balance"), "{msg}");
            assert!(check(db).await.unwrap().is_empty());
        }
        Backend::Sqlite => {
            committed.unwrap();
            let drift = check(db).await.unwrap();
            assert!(drift.contains(&Drift::Unbalanced {
                txn_id,
                external_ref: "forged:1".into(),
                sum: Micros(500)
            }));
            assert!(drift.contains(&Drift::Balance {
                account_id,
                kind: "team_balance".into(),
                team_id: Some(team_id),
                cached: Micros(1_000),
                computed: Micros(1_500)
            }));
            assert_eq!(drift.len(), 2, "{drift:?}");
        }
    }

    // A hand-edited hold and a settled request whose cost disagrees with its ledger debit.
    let other = new_team(db, 50_000).await;
    sqlx::query("UPDATE account SET held = held + 7 WHERE team_id = $1")
        .bind(other)
        .execute(db.pool())
        .await
        .unwrap();
    reserve(db, &res("tampered", other, 1_000)).await.unwrap();
    let s = settle(db, "tampered", &io(10, 10), UsageSource::Upstream)
        .await
        .unwrap();
    sqlx::query("UPDATE charge SET cost = cost + 1 WHERE request_id = 'tampered'")
        .execute(db.pool())
        .await
        .unwrap();
    // And a released one that names a transaction.
    reserve(db, &res("dropped", other, 1_000)).await.unwrap();
    assert!(release(db, "dropped").await.unwrap());
    let txn_id: i64 =
        sqlx::query_scalar("SELECT ledger_txn_id FROM charge WHERE request_id = 'tampered'")
            .fetch_one(db.pool())
            .await
            .unwrap();
    sqlx::query("UPDATE charge SET ledger_txn_id = $1 WHERE request_id = 'dropped'")
        .bind(txn_id)
        .execute(db.pool())
        .await
        .unwrap();
    let drift = check(db).await.unwrap();
    assert!(drift.iter().any(|d| matches!(d,
        Drift::Held { team_id: Some(t), cached: Micros(7), computed: Micros(0), .. } if *t == other)));
    assert!(drift.contains(&Drift::Usage {
        txn_id,
        external_ref: "usage:tampered".into(),
        charged: Micros(s.cost.0 + 1),
        debited: s.cost,
    }));
    assert!(drift.contains(&Drift::Charge {
        request_id: "dropped".into(),
        status: "released".into(),
        cost: Micros(0),
        txn_id: Some(txn_id),
    }));
    for d in &drift {
        assert!(!d.to_string().is_empty());
    }
    t.cleanup().await;
}

// ------------------------------------------------------------------------------------------
// Property test: random histories keep the books consistent
// ------------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
enum Op {
    Credit(i64),
    Reserve {
        amount: i64,
        prompt: u64,
    },
    Settle {
        pick: usize,
        usage: Usage,
    },
    SettleAgain {
        pick: usize,
    },
    Release {
        pick: usize,
    },
    Checkpoint {
        pick: usize,
        tokens: u64,
    },
    /// The process dies: every in-flight request is abandoned, left to the reaper.
    Crash,
    Reap,
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let usage = (0u64..8_000, 0u64..=100, 0u64..=100, 0u64..2_000, 0u64..=100).prop_map(
        |(input, c, w, output, r)| Usage {
            input,
            cached_input: input * c / 100,
            cache_write: input * w / 200,
            output,
            reasoning: output * r / 100,
        },
    );
    prop_oneof![
        2 => (-20_000i64..200_000).prop_filter("non-zero", |a| *a != 0).prop_map(Op::Credit),
        4 => (0i64..60_000, 0u64..5_000).prop_map(|(amount, prompt)| Op::Reserve { amount, prompt }),
        3 => (any::<usize>(), usage).prop_map(|(pick, usage)| Op::Settle { pick, usage }),
        1 => any::<usize>().prop_map(|pick| Op::SettleAgain { pick }),
        1 => any::<usize>().prop_map(|pick| Op::Release { pick }),
        2 => (any::<usize>(), 0u64..3_000).prop_map(|(pick, tokens)| Op::Checkpoint { pick, tokens }),
        1 => Just(Op::Crash),
        1 => Just(Op::Reap),
    ]
}

fn tariff_strategy() -> impl Strategy<Value = Tariff> {
    (
        0i64..20_000_000,
        proptest::option::of(0i64..20_000_000),
        0i64..80_000_000,
        0i64..5_000,
    )
        .prop_map(|(input, cached, output, markup_bps)| Tariff {
            input: PerMillion(input),
            cached_input: cached.map(PerMillion),
            cache_write: None,
            output: PerMillion(output),
            reasoning: None,
            markup_bps,
        })
}

struct Open {
    id: String,
    amount: i64,
    prompt: u64,
    checkpoint: u64,
}

/// Runs one history against the database and against a model of what the team's balance and
/// hold must be, comparing after every step.
async fn run_history(db: &Db, tariff: Tariff, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let team_id = new_team(db, 0).await;
    let (mut bal, mut held) = (0i128, 0i128);
    let mut open: Vec<Open> = Vec::new();
    let mut crashed: Vec<Open> = Vec::new();
    let mut done: Vec<(String, Micros)> = Vec::new();
    let mut n = 0;
    for op in ops {
        match op {
            Op::Credit(a) => {
                credit(db, team_id, Micros(a), "prop", None)
                    .await
                    .map_err(|e| TestCaseError::fail(format!("credit: {e}")))?;
                bal += i128::from(a);
            }
            Op::Reserve { amount, prompt } => {
                n += 1;
                let id = format!("{team_id}-{n}");
                let r = NewReservation {
                    request_id: id.clone(),
                    team_id,
                    api_key_id: 1,
                    model: "prop/model".into(),
                    amount: Micros(amount),
                    tariff,
                    ttl: HOUR,
                    prompt_estimate: prompt,
                    caps: 0,
                };
                let fits = bal - held >= i128::from(amount);
                match reserve(db, &r).await {
                    Ok(()) => {
                        prop_assert!(fits, "admitted without room");
                        held += i128::from(amount);
                        open.push(Open {
                            id,
                            amount,
                            prompt,
                            checkpoint: 0,
                        });
                    }
                    Err(BillingError::InsufficientBalance) => {
                        prop_assert!(!fits, "refused with room")
                    }
                    Err(e) => return Err(TestCaseError::fail(format!("reserve: {e}"))),
                }
            }
            Op::Settle { pick, usage } if !open.is_empty() => {
                let o = open.swap_remove(pick % open.len());
                let s = settle(db, &o.id, &usage, UsageSource::Upstream)
                    .await
                    .map_err(|e| TestCaseError::fail(format!("settle: {e}")))?;
                let want = price(&usage, &tariff).total;
                prop_assert_eq!(s.cost, want);
                prop_assert!(!s.already);
                bal -= i128::from(want.0);
                held -= i128::from(o.amount);
                done.push((o.id, want));
            }
            Op::SettleAgain { pick } if !done.is_empty() => {
                let (id, cost) = &done[pick % done.len()];
                let s = settle(db, id, &io(5, 5), UsageSource::Upstream)
                    .await
                    .map_err(|e| TestCaseError::fail(format!("settle again: {e}")))?;
                prop_assert!(s.already);
                prop_assert_eq!(s.cost, *cost);
            }
            Op::Release { pick } if !open.is_empty() => {
                let o = open.swap_remove(pick % open.len());
                let released = release(db, &o.id)
                    .await
                    .map_err(|e| TestCaseError::fail(format!("release: {e}")))?;
                prop_assert!(released);
                held -= i128::from(o.amount);
                done.push((o.id, Micros(0)));
            }
            Op::Checkpoint { pick, tokens } if !open.is_empty() => {
                let i = pick % open.len();
                checkpoint(db, &open[i].id, tokens)
                    .await
                    .map_err(|e| TestCaseError::fail(format!("checkpoint: {e}")))?;
                open[i].checkpoint = open[i].checkpoint.max(tokens);
            }
            Op::Crash => crashed.append(&mut open),
            Op::Reap => {
                // Far enough ahead that every open reservation has expired.
                reap(db, now_ms() + 2 * 3_600_000)
                    .await
                    .map_err(|e| TestCaseError::fail(format!("reap: {e}")))?;
                for o in open.drain(..).chain(crashed.drain(..)) {
                    let cost = if o.checkpoint > 0 {
                        price(&io(o.prompt, o.checkpoint), &tariff).total
                    } else {
                        Micros(0)
                    };
                    bal -= i128::from(cost.0);
                    held -= i128::from(o.amount);
                    let row = reservation(db, &o.id).await.ok().flatten();
                    prop_assert_eq!(row.and_then(|r| r.cost).unwrap_or(Micros(0)), cost);
                    done.push((o.id, cost));
                }
            }
            _ => {}
        }
        let (b, h) = balance(db, team_id)
            .await
            .map_err(|e| TestCaseError::fail(format!("balance: {e}")))?;
        prop_assert_eq!((i128::from(b.0), i128::from(h.0)), (bal, held));
    }
    // Leave nothing open for the next case: the reaper finishes it.
    reap(db, now_ms() + 2 * 3_600_000)
        .await
        .map_err(|e| TestCaseError::fail(format!("reap: {e}")))?;
    prop_assert_eq!(
        balance(db, team_id).await.ok().map(|x| x.1),
        Some(Micros(0))
    );
    assert_books(db).await;
    Ok(())
}

#[test]
fn random_histories_keep_the_books_consistent() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let t = rt.block_on(TestDb::new()).unwrap();
    let mut runner = TestRunner::new(ProptestConfig {
        cases: 32,
        ..ProptestConfig::default()
    });
    let strategy = (
        tariff_strategy(),
        proptest::collection::vec(op_strategy(), 1..40),
    );
    let result = runner.run(&strategy, |(tariff, ops)| {
        rt.block_on(run_history(&t.db, tariff, ops))
    });
    rt.block_on(t.cleanup());
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// Group commit: a batch of reservations, settlements and releases gives every request the
/// outcome it gets when the same calls run one by one, on two databases side by side, with
/// several teams, a balance that runs out mid-batch, a negative amount, a request id reused
/// within the batch, an unknown id and a request that was already finished.
#[tokio::test]
async fn batches_match_one_by_one() {
    let (a, b) = (TestDb::new().await.unwrap(), TestDb::new().await.unwrap());
    let mut teams = Vec::new();
    for db in [&a.db, &b.db] {
        // Team 1 covers 5 of the 1,000,000 holds below, team 2 covers all of its own.
        teams.push((
            new_team(db, 5_500_000).await,
            new_team(db, 100_000_000).await,
        ));
    }
    let batch = |t1: i64, t2: i64| -> Vec<NewReservation> {
        let mut v = Vec::new();
        for i in 0..80 {
            let team = if i % 3 == 0 { t2 } else { t1 };
            v.push(res(&format!("r{i}"), team, 1_000_000));
        }
        v.push(res("neg", t1, -1));
        v.push(res("free", t1, 0));
        v
    };
    // The batches run as the committer runs them: on a SQLite file through a connection of
    // their own (rusqlite), on PostgreSQL through the pool.
    let mut own =
        a.db.sqlite_file()
            .map(|f| crate::writer::open_sqlite(f).unwrap());
    let mut w = match own.as_mut() {
        Some(conn) => Writer::Conn(conn),
        None => Writer::Pool(&a.db),
    };
    let in_batch = reserve_many_with(&mut w, &batch(teams[0].0, teams[0].1)).await;
    let mut alone = Vec::new();
    for r in batch(teams[1].0, teams[1].1) {
        alone.push(reserve(&b.db, &r).await);
    }
    let show = |v: &[Result<(), BillingError>]| -> Vec<String> {
        v.iter().map(|r| format!("{r:?}")).collect()
    };
    assert_eq!(show(&in_batch), show(&alone));
    assert_eq!(in_batch.iter().filter(|r| r.is_ok()).count(), 5 + 27 + 1);
    // A reused id in a batch falls back to one by one: the first wins, the second is Duplicate.
    let dup = reserve_many_with(
        &mut w,
        &[
            res("d", teams[0].1, 10),
            res("d", teams[0].1, 10),
            res("e", teams[0].1, 10),
        ],
    )
    .await;
    assert!(dup[0].is_ok() && dup[2].is_ok(), "{dup:?}");
    assert!(matches!(dup[1], Err(BillingError::Duplicate(_))), "{dup:?}");
    for r in [res("d", teams[1].1, 10), res("e", teams[1].1, 10)] {
        reserve(&b.db, &r).await.unwrap();
    }

    // Finish: settle most, release some, settle r1 twice in the batch, an unknown id, and one
    // already released before the batch.
    for db in [&a.db, &b.db] {
        assert!(release(db, "r2").await.unwrap());
    }
    let mut finishes: Vec<(String, Finish)> = Vec::new();
    for i in 0..80 {
        let finish = if i % 5 == 4 {
            Finish::Release
        } else {
            Finish::Settle {
                usage: io(1_000 + i, 10 * i),
                source: UsageSource::Upstream,
            }
        };
        finishes.push((format!("r{i}"), finish));
    }
    finishes.push(("r1".into(), Finish::Release));
    finishes.push(("nope".into(), Finish::Release));
    finishes.push((
        "d".into(),
        Finish::Settle {
            usage: io(1, 1),
            source: UsageSource::Estimated,
        },
    ));
    let items: Vec<(&str, Finish)> = finishes.iter().map(|(id, f)| (id.as_str(), *f)).collect();
    let in_batch = finish_many_with(&mut w, &items).await;
    let mut alone = Vec::new();
    for (id, f) in &items {
        alone.push(match f {
            Finish::Settle { usage, source } => settle(&b.db, id, usage, *source).await,
            Finish::Release => match release(&b.db, id).await {
                // release() says only whether it released; read the stored cost back.
                Ok(released) => {
                    let stored = reservation(&b.db, id).await.unwrap().unwrap();
                    Ok(Settlement {
                        cost: stored.cost.unwrap_or(Micros::ZERO),
                        already: !released,
                        status: stored.status,
                    })
                }
                Err(e) => Err(e),
            },
        });
    }
    let costs = |v: &[Result<Settlement, BillingError>]| -> Vec<String> {
        v.iter()
            .map(|r| match r {
                Ok(s) => format!("{:?}", s.cost),
                Err(e) => format!("{e:?}"),
            })
            .collect()
    };
    assert_eq!(costs(&in_batch), costs(&alone));
    // The second mention of r1 reports the first one's settlement.
    let r1 = in_batch[80].as_ref().unwrap();
    assert!(
        r1.already && r1.status == ReservationStatus::Settled,
        "{r1:?}"
    );
    assert!(matches!(in_batch[81], Err(BillingError::NotFound(_))));
    assert!(in_batch[2].as_ref().unwrap().already);
    for db in [&a.db, &b.db] {
        assert_books(db).await;
    }
    assert_eq!(
        balance(&a.db, teams[0].0).await.unwrap(),
        balance(&b.db, teams[1].0).await.unwrap()
    );
    assert_eq!(
        balance(&a.db, teams[0].1).await.unwrap(),
        balance(&b.db, teams[1].1).await.unwrap()
    );
    // Every settled request has its charge; one by one each costly one has its own usage
    // transaction, in a batch each team has one (check() above matched them to their debits).
    for db in [&a.db, &b.db] {
        assert_eq!(
            count(db, "SELECT COUNT(*) FROM charge WHERE status = 'settled'").await,
            count(
                &b.db,
                "SELECT COUNT(*) FROM charge WHERE status = 'settled'"
            )
            .await
        );
    }
    assert_eq!(
        count(
            &b.db,
            "SELECT COUNT(*) FROM ledger_txn WHERE kind = 'usage'"
        )
        .await,
        count(&b.db, "SELECT COUNT(*) FROM charge WHERE cost > 0").await
    );
    assert_eq!(
        count(
            &a.db,
            "SELECT COUNT(*) FROM ledger_txn WHERE kind = 'usage'"
        )
        .await,
        2
    );
}

/// The committer under concurrency: 100 requests at once on a balance that covers 10 admit
/// exactly 10; settlements waiting in the window never cause a refusal (a refused reservation
/// commits them and tries again); flush commits what waits; the books stay exact.
#[tokio::test]
async fn committer_admits_exactly_what_fits_and_settles_everything() {
    let t = TestDb::new().await.unwrap();
    let db = t.db.clone();
    let team = new_team(&db, 10_000_000).await;
    let (committer, task) = Committer::spawn(db.clone());
    let mut calls = Vec::new();
    for i in 0..100 {
        let c = committer.clone();
        calls.push(tokio::spawn(async move {
            c.reserve(res(&format!("c{i}"), team, 1_000_000)).await
        }));
    }
    let mut admitted = Vec::new();
    for (i, call) in calls.into_iter().enumerate() {
        match call.await.unwrap() {
            Ok(()) => admitted.push(format!("c{i}")),
            Err(BillingError::InsufficientBalance) => {}
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert_eq!(admitted.len(), 10);
    // Settle them all concurrently at a small cost: each one's hold goes back.
    let mut calls = Vec::new();
    for id in &admitted {
        let (c, id) = (committer.clone(), id.clone());
        calls.push(tokio::spawn(async move {
            c.settle(id, io(1_000, 100), UsageSource::Upstream).await
        }));
    }
    for call in calls {
        let s = call.await.unwrap().unwrap();
        assert!(!s.already);
        assert_eq!(s.status, ReservationStatus::Settled);
    }
    // A settlement still in the window holds its reservation; a request that fits only once
    // it is dropped is admitted anyway.
    let (balance_now, held) = balance(&db, team).await.unwrap();
    assert_eq!(held, Micros::ZERO);
    committer
        .reserve(res("big", team, balance_now.0))
        .await
        .unwrap();
    let settle = {
        let c = committer.clone();
        tokio::spawn(async move { c.release("big".into()).await })
    };
    tokio::task::yield_now().await;
    committer
        .reserve(res("big2", team, balance_now.0))
        .await
        .unwrap();
    assert!(settle.await.unwrap().unwrap());
    assert!(committer.release("big2".into()).await.unwrap());
    assert!(!committer.release("big2".into()).await.unwrap());
    committer.flush().await;
    drop(committer);
    task.await.unwrap();
    assert_books(&db).await;
    assert_eq!(count(&db, "SELECT COUNT(*) FROM hold").await, 0);
}

/// Finished requests handed over with `done` (nobody waits) get their settlement or release
/// and their request-log row, also when more than `MAX_BATCH` arrive at once and between
/// reservations; one handed over twice is written once; what is still waiting when the last
/// handle goes is written before the committer ends.
#[tokio::test]
async fn committer_writes_finished_requests_without_waiting() {
    let t = TestDb::new().await.unwrap();
    let db = &t.db;
    let team = new_team(db, 1_000_000_000).await;
    let (c, task) = Committer::spawn(db.clone());
    let n = MAX_BATCH + 40;
    let settle = Finish::Settle {
        usage: io(10, 5),
        source: UsageSource::Upstream,
    };
    for i in 0..n {
        c.reserve(res(&format!("d{i}"), team, 1_000)).await.unwrap();
    }
    for i in 0..n {
        let finish = match i % 3 {
            0 => Some(Finish::Release),
            1 => Some(settle),
            _ => None,
        };
        c.done(sample_record(&format!("d{i}"), team), finish);
        if i % 50 == 0 {
            let id = format!("between{i}");
            c.reserve(res(&id, team, 1_000)).await.unwrap();
            c.done(sample_record(&id, team), Some(Finish::Release));
        }
    }
    c.done(sample_record("d1", team), Some(settle));
    c.flush().await;
    let status = |s: &'static str| {
        let db = db.clone();
        async move {
            let sql = match s {
                "reserved" => String::from("SELECT COUNT(*) FROM hold WHERE request_id LIKE 'd%'"),
                _ => format!(
                    "SELECT COUNT(*) FROM charge WHERE request_id LIKE 'd%' AND status = '{s}'"
                ),
            };
            count(&db, &sql).await
        }
    };
    let n = i64::try_from(n).unwrap();
    assert_eq!(status("released").await, (n + 2) / 3);
    assert_eq!(status("settled").await, (n + 1) / 3);
    assert_eq!(status("reserved").await, n / 3);
    assert_eq!(
        count(
            db,
            "SELECT COUNT(*) FROM request_log WHERE request_id LIKE 'd%'"
        )
        .await,
        n
    );
    assert_eq!(
        count(
            db,
            "SELECT COUNT(*) FROM charge WHERE request_id LIKE 'between%' AND status = 'released'"
        )
        .await,
        count(
            db,
            "SELECT COUNT(*) FROM request_log WHERE request_id LIKE 'between%'"
        )
        .await,
    );
    // Handed over, then the last handle goes: written before the task ends.
    for i in (2..n).step_by(3) {
        assert!(c.release(format!("d{i}")).await.unwrap());
    }
    for i in 0..n / 3 {
        c.done(sample_record(&format!("late{i}"), team), None);
    }
    drop(c);
    task.await.unwrap();
    assert_eq!(status("reserved").await, 0);
    assert_eq!(
        count(
            db,
            "SELECT COUNT(*) FROM request_log WHERE request_id LIKE 'late%'"
        )
        .await,
        n / 3
    );
    assert_books(db).await;
}

/// Migration 0004 moves open reservations into `hold` and finished ones into `charge` (linked to
/// their `usage:<request_id>` transactions), keeps the request log, and the books stay exact;
/// a moved hold then settles through the new code.
#[tokio::test]
async fn migration_0004_keeps_every_reservation_and_the_books() {
    let t = TestDb::unmigrated().await.unwrap();
    let db = &t.db;
    let folder = match db.backend() {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../migrations")
        .join(folder);
    let before = tempfile::tempdir().unwrap();
    for f in std::fs::read_dir(&src).unwrap() {
        let f = f.unwrap();
        let name = f.file_name().into_string().unwrap();
        if name.as_str() < "0004" {
            std::fs::copy(f.path(), before.path().join(&name)).unwrap();
        }
    }
    sqlx::migrate::Migrator::new(before.path())
        .await
        .unwrap()
        .run(db.pool())
        .await
        .unwrap();

    // The old schema's rows, as the old code wrote them.
    let team_id: i64 = sqlx::query_scalar(
        "INSERT INTO team (name, active, created_at) VALUES ('old', 1, 0) RETURNING id",
    )
    .fetch_one(db.pool())
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO account (team_id, kind, balance, held, updated_at) VALUES ($1, 'team_balance', 0, 0, 0)",
    )
    .bind(team_id)
    .execute(db.pool())
    .await
    .unwrap();
    post_the_old_way(
        db,
        "adjustment",
        "manual:old",
        &[
            (Some(team_id), "team_balance", 1_000_000),
            (None, "manual_adjustment", -1_000_000),
        ],
    )
    .await;
    let exec = |sql: &'static str| {
        let db = db.clone();
        async move {
            sqlx::query(sql)
                .bind(team_id)
                .execute(db.pool())
                .await
                .unwrap();
        }
    };
    let cols = "request_id, team_id, api_key_id, model, amount, price_input, price_cached_input, \
        price_cache_write, price_output, price_reasoning, markup_bps, prompt_estimate, status, \
        input_tokens, cached_tokens, cache_write_tokens, output_tokens, reasoning_tokens, \
        usage_source, cost, checkpoint_output_tokens, created_at, expires_at, finished_at";
    for (id, status, rest) in [
        (
            "open",
            "reserved",
            "NULL, NULL, NULL, NULL, NULL, NULL, NULL, 40, 10, 9000000000000, NULL",
        ),
        (
            "paid",
            "settled",
            "100, 0, 0, 20, 0, 'upstream', 300, 0, 11, 99, 12",
        ),
        (
            "dropped",
            "released",
            "NULL, NULL, NULL, NULL, NULL, NULL, NULL, 0, 12, 99, 13",
        ),
    ] {
        sqlx::query(&format!(
            "INSERT INTO reservation ({cols}) VALUES ('{id}', $1, 7, 'test/model', 1000, \
             1000000, NULL, NULL, 2000000, NULL, 2000, 100, '{status}', {rest})"
        ))
        .bind(team_id)
        .execute(db.pool())
        .await
        .unwrap();
    }
    exec("UPDATE account SET held = 1000 WHERE team_id = $1").await;
    post_usage_the_old_way(db, team_id).await;
    exec(
        "INSERT INTO request_log (request_id, team_id, api_key_id, endpoint, model, channel_id, \
         status, error_kind, stream, usage_source, attempts, latency_ms, ttfb_ms, created_at) \
         VALUES ('paid', $1, 7, 'chat', 'test/model', 1, 200, NULL, 0, 'upstream', 1, 3, NULL, 11)",
    )
    .await;

    db.migrate().await.unwrap();
    let open = reservation(db, "open").await.unwrap().unwrap();
    assert_eq!(open.status, ReservationStatus::Reserved);
    assert_eq!(
        (open.amount, open.checkpoint_output_tokens),
        (Micros(1000), 40)
    );
    assert_eq!(open.expires_at, Some(9_000_000_000_000));
    assert_eq!(open.tariff.output, PerMillion(2_000_000));
    let paid = reservation(db, "paid").await.unwrap().unwrap();
    assert_eq!(
        (paid.status, paid.cost, paid.usage),
        (
            ReservationStatus::Settled,
            Some(Micros(300)),
            Some(io(100, 20))
        )
    );
    let dropped = reservation(db, "dropped").await.unwrap().unwrap();
    assert_eq!(
        (dropped.status, dropped.cost),
        (ReservationStatus::Released, Some(Micros(0)))
    );
    let linked: Option<i64> = sqlx::query_scalar(
        "SELECT c.ledger_txn_id FROM charge c JOIN ledger_txn t ON t.id = c.ledger_txn_id \
         WHERE c.request_id = 'paid' AND t.external_ref = 'usage:paid'",
    )
    .fetch_optional(db.pool())
    .await
    .unwrap()
    .flatten();
    assert!(linked.is_some(), "the charge names its usage transaction");
    assert_eq!(
        count(
            db,
            "SELECT COUNT(*) FROM request_log WHERE request_id = 'paid'"
        )
        .await,
        1
    );
    assert_books(db).await;
    // The moved hold settles, and a reused id is refused.
    let s = settle(db, "open", &io(10, 10), UsageSource::Upstream)
        .await
        .unwrap();
    assert!(!s.already && s.cost.0 > 0);
    assert!(matches!(
        reserve(db, &res("paid", team_id, 10)).await,
        Err(BillingError::Duplicate(_))
    ));
    assert_books(db).await;
    t.cleanup().await;
}

/// The `usage:paid` transaction the pre-0004 code posted for the `paid` reservation above.
async fn post_usage_the_old_way(db: &Db, team_id: i64) {
    post_the_old_way(
        db,
        "usage",
        "usage:paid",
        &[
            (Some(team_id), "team_balance", -300),
            (None, "upstream_cost", 250),
            (None, "revenue_markup", 50),
        ],
    )
    .await;
}

/// A ledger transaction in the columns the pre-0006 schema had: `(team, account kind, amount)`
/// entries, with the cached balances updated.
async fn post_the_old_way(
    db: &Db,
    kind: &str,
    external_ref: &str,
    entries: &[(Option<i64>, &str, i64)],
) {
    let mut tx = db.begin_write().await.unwrap();
    let txn: i64 = sqlx::query_scalar(
        "INSERT INTO ledger_txn (kind, external_ref, memo, created_at) VALUES ($1, $2, NULL, 0) RETURNING id",
    )
    .bind(kind)
    .bind(external_ref)
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    for (team, account_kind, amount) in entries {
        let account: i64 = match team {
            Some(t) => sqlx::query_scalar("SELECT id FROM account WHERE team_id = $1")
                .bind(*t)
                .fetch_one(&mut *tx)
                .await
                .unwrap(),
            None => {
                sqlx::query_scalar("SELECT id FROM account WHERE kind = $1 AND team_id IS NULL")
                    .bind(*account_kind)
                    .fetch_one(&mut *tx)
                    .await
                    .unwrap()
            }
        };
        sqlx::query("INSERT INTO ledger_entry (txn_id, account_id, amount) VALUES ($1, $2, $3)")
            .bind(txn)
            .bind(account)
            .bind(*amount)
            .execute(&mut *tx)
            .await
            .unwrap();
        sqlx::query("UPDATE account SET balance = balance + $1 WHERE id = $2")
            .bind(*amount)
            .bind(account)
            .execute(&mut *tx)
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
}

/// Under steady writes through the committer the WAL starts over again and again, so its file
/// stays near the restart threshold instead of growing with the traffic (without restarts,
/// these requests alone write several times the bound below).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wal_file_stays_bounded_under_steady_writes() {
    let t = TestDb::new().await.unwrap();
    let db = &t.db;
    let Some(file) = db.sqlite_file().map(std::path::Path::to_path_buf) else {
        t.cleanup().await;
        return; // PostgreSQL: no WAL file of ours.
    };
    let wal = std::path::PathBuf::from(format!("{}-wal", file.display()));
    let team = new_team(db, 1_000_000_000_000).await;
    let (c, task) = Committer::spawn(db.clone());
    let settle = Finish::Settle {
        usage: io(10, 5),
        source: UsageSource::Upstream,
    };
    let bound = 3 * crate::db::WAL_RESTART_FRAMES as u64 * 1_100;
    let mut largest = 0;
    let mut n = 0;
    while n < 40_000 {
        let id = format!("w{n}");
        c.reserve(res(&id, team, 1_000)).await.unwrap();
        c.done(sample_record(&id, team), Some(settle));
        n += 1;
        if n % 500 == 0 {
            largest = largest.max(std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0));
        }
    }
    c.flush().await;
    drop(c);
    task.await.unwrap();
    assert!(
        largest <= bound,
        "the WAL grew to {largest} bytes over {n} requests (bound {bound})"
    );
    // The books checked at this size too (a quadratic query in `check` once took 40 s here).
    assert_books(db).await;
    t.cleanup().await;
}
