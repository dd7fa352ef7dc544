//! Spend caps on the money path, on SQLite and (with `TEST_DATABASE_URL`) PostgreSQL: a cap is
//! never passed by concurrent holds, settlement moves holds to spent, refusals and releases
//! leave nothing counted, and windows start again.

use super::{
    tests::{assert_books, io, new_team, res, tariff},
    *,
};
use crate::{
    auth::{self, Env},
    db::Db,
    limits::{self, Rules, Scope, Spend},
    metering::UsageSource,
    money::Micros,
    testing::TestDb,
};

/// A key of `team_id` with `rules`; its row id.
async fn capped_key(db: &Db, team_id: i64, rules: &Rules) -> i64 {
    let k = auth::create_team_key(db, team_id, Env::Dev, "capped", None, None)
        .await
        .unwrap();
    let id = limits::key_row_id(db, &k.key_id).await.unwrap().unwrap();
    limits::set(db, Scope::Key, id, rules).await.unwrap();
    id
}

fn capped(id: &str, team_id: i64, key_id: i64, amount: i64, caps: i64) -> NewReservation {
    NewReservation {
        api_key_id: key_id,
        caps,
        ..res(id, team_id, amount)
    }
}

async fn spend(db: &Db, scope: Scope, id: i64) -> Spend {
    limits::get(db, scope, id).await.unwrap().1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_holds_never_pass_a_daily_cap() {
    let t = TestDb::new().await.unwrap();
    let db = &t.db;
    let amount = 12_345i64;
    let team_id = new_team(db, 1_000 * amount).await;
    let key = capped_key(
        db,
        team_id,
        &Rules {
            day_cap: Some(Micros(10 * amount)),
            ..Rules::default()
        },
    )
    .await;
    let mut tasks = Vec::new();
    for i in 0..100 {
        let db = db.clone();
        tasks.push(tokio::spawn(async move {
            reserve(&db, &capped(&format!("c-{i}"), team_id, key, amount, 1)).await
        }));
    }
    let mut ok = Vec::new();
    for (i, task) in tasks.into_iter().enumerate() {
        match task.await.unwrap() {
            Ok(()) => ok.push(format!("c-{i}")),
            Err(BillingError::SpendCap { scope, window }) => {
                assert_eq!((scope, window), (Scope::Key, CapWindow::Day));
            }
            Err(e) => panic!("unexpected error: {e:?}"),
        }
    }
    assert_eq!(ok.len(), 10, "exactly what fits under the cap");
    assert_eq!(spend(db, Scope::Key, key).await.held, Micros(10 * amount));
    let usage = io(1_000, 500);
    let cost = price(&usage, &tariff()).total;
    for id in &ok {
        settle(db, id, &usage, UsageSource::Upstream).await.unwrap();
    }
    let s = spend(db, Scope::Key, key).await;
    assert_eq!(
        (s.held, s.day, s.month, s.total),
        (
            Micros(0),
            Micros(10 * cost.0),
            Micros(10 * cost.0),
            Micros(10 * cost.0)
        )
    );
    // What is left under the cap is less than one more hold of `amount`, but a smaller fits.
    let left = 10 * amount - 10 * cost.0;
    assert!(matches!(
        reserve(db, &capped("c-more", team_id, key, amount, 1)).await,
        Err(BillingError::SpendCap { .. })
    ));
    reserve(db, &capped("c-small", team_id, key, left, 1))
        .await
        .unwrap();
    assert_eq!(
        limits::get(db, Scope::Key, key)
            .await
            .unwrap()
            .1
            .remaining(&Rules {
                day_cap: Some(Micros(10 * amount)),
                ..Rules::default()
            }),
        Some(Micros(0))
    );
    release(db, "c-small").await.unwrap();
    assert_eq!(spend(db, Scope::Key, key).await.held, Micros(0));
    assert_books(db).await;
    t.cleanup().await;
}

#[tokio::test]
async fn refusals_give_back_what_they_counted() {
    let t = TestDb::new().await.unwrap();
    let db = &t.db;
    // The team's balance covers one hold of 100; its cap allows 150; the key's 1,000.
    let team_id = new_team(db, 100).await;
    limits::set(
        db,
        Scope::Team,
        team_id,
        &Rules {
            total_cap: Some(Micros(150)),
            ..Rules::default()
        },
    )
    .await
    .unwrap();
    let key = capped_key(
        db,
        team_id,
        &Rules {
            month_cap: Some(Micros(1_000)),
            ..Rules::default()
        },
    )
    .await;
    reserve(db, &capped("a", team_id, key, 100, 3))
        .await
        .unwrap();
    // The team's cap refuses after the key's took: the key's is given back.
    match reserve(db, &capped("b", team_id, key, 60, 3)).await {
        Err(BillingError::SpendCap { scope, window }) => {
            assert_eq!((scope, window), (Scope::Team, CapWindow::Total));
        }
        other => panic!("expected the team's cap, got {other:?}"),
    }
    assert_eq!(spend(db, Scope::Key, key).await.held, Micros(100));
    // Both caps have room but the balance does not: both are given back.
    assert!(matches!(
        reserve(db, &capped("c", team_id, key, 40, 3)).await,
        Err(BillingError::InsufficientBalance)
    ));
    assert_eq!(spend(db, Scope::Key, key).await.held, Micros(100));
    assert_eq!(spend(db, Scope::Team, team_id).await.held, Micros(100));
    // A batch mixing capped and uncapped requests of two teams.
    let other = new_team(db, 1_000).await;
    let got = reserve_many(
        db,
        &[
            capped("d", other, 1, 10, 0),
            capped("e", team_id, key, 10, 3),
            capped("f", other, 1, 10, 0),
        ],
    )
    .await;
    assert!(got[0].is_ok() && got[2].is_ok());
    assert!(matches!(got[1], Err(BillingError::InsufficientBalance)));
    assert_eq!(spend(db, Scope::Team, team_id).await.held, Micros(100));
    release(db, "a").await.unwrap();
    let (k, tm) = (
        spend(db, Scope::Key, key).await,
        spend(db, Scope::Team, team_id).await,
    );
    assert_eq!(
        (k.held, k.total, tm.held, tm.total),
        (Micros(0), Micros(0), Micros(0), Micros(0))
    );
    assert_books(db).await;
    t.cleanup().await;
}

#[tokio::test]
async fn a_new_day_starts_the_daily_cap_again_but_not_the_total() {
    let t = TestDb::new().await.unwrap();
    let db = &t.db;
    let team_id = new_team(db, 1_000_000).await;
    let key = capped_key(
        db,
        team_id,
        &Rules {
            day_cap: Some(Micros(500)),
            total_cap: Some(Micros(800)),
            ..Rules::default()
        },
    )
    .await;
    reserve(db, &capped("x", team_id, key, 500, 1))
        .await
        .unwrap();
    let usage = io(100, 0); // 300 upstream, +15 % = 345
    let cost = settle(db, "x", &usage, UsageSource::Upstream)
        .await
        .unwrap()
        .cost;
    assert!(matches!(
        reserve(db, &capped("y", team_id, key, 500, 1)).await,
        Err(BillingError::SpendCap {
            window: CapWindow::Day,
            ..
        })
    ));
    // Yesterday's spending does not count today.
    sqlx::query("UPDATE usage_limit SET day = day - 1")
        .execute(db.pool())
        .await
        .unwrap();
    assert_eq!(spend(db, Scope::Key, key).await.day, Micros(0));
    // The total cap still counts it: 345 spent + 500 > 800.
    assert!(matches!(
        reserve(db, &capped("y", team_id, key, 500, 1)).await,
        Err(BillingError::SpendCap {
            window: CapWindow::Total,
            ..
        })
    ));
    reserve(db, &capped("z", team_id, key, 800 - cost.0, 1))
        .await
        .unwrap();
    let s = spend(db, Scope::Key, key).await;
    assert_eq!(
        (s.day, s.total, s.held),
        (Micros(0), cost, Micros(800 - cost.0))
    );
    // An extension is counted against the caps too.
    assert!(matches!(
        extend(db, "z", Micros(1)).await,
        Err(BillingError::SpendCap { .. })
    ));
    assert_books(db).await;
    t.cleanup().await;
}
