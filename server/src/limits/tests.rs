//! The limiter's semantics, in-process and against the real Redis at 127.0.0.1:6379.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use super::*;

const REDIS: &str = "redis://127.0.0.1:6379";
/// A closed port: connecting is refused at once.
const DOWN: &str = "redis://127.0.0.1:1";

fn subject(name: &str) -> Subject {
    format!("test:{name}:{:016x}", rand::random::<u64>()).into()
}

fn redis() -> Limiter {
    Limiter::redis(REDIS, FailMode::Closed).unwrap()
}

/// Both kinds, named for the failure messages.
fn both() -> [(&'static str, Limiter); 2] {
    [("in-process", Limiter::in_process()), ("redis", redis())]
}

fn rpm(n: u32) -> Rates {
    Rates {
        rpm: Some(n),
        ..Rates::default()
    }
}

fn tpm(n: u32) -> Rates {
    Rates {
        tpm: Some(n),
        ..Rates::default()
    }
}

fn concurrency(n: u32) -> Rates {
    Rates {
        concurrency: Some(n),
        ..Rates::default()
    }
}

/// Removes a test's keys (they would expire anyway).
async fn cleanup(subjects: &[&Subject]) {
    let client = redis::Client::open(REDIS).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let mut del = redis::cmd("DEL");
    for s in subjects {
        for kind in ["req", "tok", "cc"] {
            del.arg(format!("weir:rl:{kind}:{s}"));
        }
    }
    let _: i64 = del.query_async(&mut conn).await.unwrap();
}

/// Bounds a call that must not hang (a hang guard, not a timing assertion).
async fn bounded<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(5), f)
        .await
        .expect("the limiter hung")
}

#[tokio::test]
async fn rpm_is_a_sliding_window_log() {
    for (kind, limiter) in both() {
        let s = subject("rpm");
        let subjects = [(s.clone(), rpm(60))];
        let mut remaining = Vec::new();
        let mut refused = 0;
        for _ in 0..100 {
            match bounded(limiter.admit(&subjects, 0)).await {
                Ok(a) => {
                    let w = a.requests.expect("a requests window");
                    assert_eq!(w.limit, 60, "{kind}");
                    assert!(
                        w.reset > Duration::ZERO && w.reset <= MINUTE,
                        "{kind}: {w:?}"
                    );
                    assert!(a.tokens.is_none(), "{kind}");
                    remaining.push(w.remaining);
                }
                Err(r) => {
                    refused += 1;
                    assert_eq!(r.which, Which::Requests, "{kind}");
                    assert_eq!(r.limit, 60, "{kind}");
                    assert_eq!(&*r.subject, &*s, "{kind}");
                    assert!(
                        r.retry_after > Duration::ZERO && r.retry_after <= MINUTE,
                        "{kind}: {:?}",
                        r.retry_after
                    );
                    assert!((1..=60).contains(&r.retry_after_secs()), "{kind}");
                    assert_eq!(r.requests.map(|w| w.remaining), Some(0), "{kind}");
                }
            }
        }
        assert_eq!(remaining, (0..60).rev().collect::<Vec<u64>>(), "{kind}");
        assert_eq!(refused, 40, "{kind}");
        if kind == "redis" {
            cleanup(&[&s]).await;
        }
    }
}

#[tokio::test]
async fn all_or_nothing_across_subjects() {
    for (kind, limiter) in both() {
        let (a, b) = (subject("first"), subject("second"));
        let a_rates = Rates {
            rpm: Some(5),
            tpm: Some(1000),
            concurrency: Some(1),
        };
        // Fill the second subject's only request.
        let _b = limiter.admit(&[(b.clone(), rpm(1))], 0).await.unwrap();

        let refusal = bounded(limiter.admit(&[(a.clone(), a_rates), (b.clone(), rpm(1))], 700))
            .await
            .expect_err("the second subject refuses");
        assert_eq!(&*refusal.subject, &*b, "{kind}");
        assert_eq!(refusal.which, Which::Requests, "{kind}");

        // Nothing was taken from the first: all its requests, tokens and its slot are there.
        let admitted = limiter.admit(&[(a.clone(), a_rates)], 1000).await;
        let admitted = admitted.unwrap_or_else(|r| panic!("{kind}: {r:?}"));
        assert_eq!(admitted.requests.map(|w| w.remaining), Some(4), "{kind}");
        assert_eq!(admitted.tokens.map(|w| w.remaining), Some(0), "{kind}");
        if kind == "redis" {
            cleanup(&[&a, &b]).await;
        }
    }
}

#[tokio::test]
async fn tokens_are_a_gcra_bucket_with_corrections() {
    for (kind, limiter) in both() {
        let s = subject("tpm");
        let subjects = [(s.clone(), tpm(1000))];
        let first = limiter.admit(&subjects, 600).await.unwrap();
        let w = first.tokens.expect("a tokens window");
        assert_eq!((w.limit, w.remaining), (1000, 400), "{kind}");
        assert!(w.reset > Duration::ZERO && w.reset <= MINUTE, "{kind}");
        assert!(first.requests.is_none(), "{kind}");

        let refusal = limiter
            .admit(&subjects, 600)
            .await
            .expect_err("over the bucket");
        assert_eq!(refusal.which, Which::Tokens, "{kind}");
        assert_eq!(refusal.limit, 1000, "{kind}");
        assert!(!refusal.exceeds_capacity(), "{kind}");
        // 200 tokens short at 1000 a minute: about 12 s.
        assert!(
            refusal.retry_after > Duration::from_secs(11)
                && refusal.retry_after <= Duration::from_secs(12),
            "{kind}: {:?}",
            refusal.retry_after
        );

        // The first used 500 fewer than estimated.
        limiter.correct_tokens(&first, -500);
        limiter.flush().await;
        let again = limiter.admit(&subjects, 600).await;
        let again = again.unwrap_or_else(|r| panic!("{kind}: {r:?}"));
        assert!(again.tokens.is_some_and(|w| w.remaining < 400), "{kind}");

        // And a correction upwards takes more.
        limiter.correct_tokens(&again, 400);
        limiter.flush().await;
        let refusal = limiter.admit(&subjects, 100).await.expect_err("overspent");
        assert_eq!(refusal.which, Which::Tokens, "{kind}");
        if kind == "redis" {
            cleanup(&[&s]).await;
        }
    }
}

#[tokio::test]
async fn a_cost_above_the_capacity_never_fits() {
    for (kind, limiter) in both() {
        let s = subject("huge");
        let refusal = limiter
            .admit(&[(s.clone(), tpm(1000))], 1001)
            .await
            .expect_err("more than a minute's tokens");
        assert_eq!(refusal.which, Which::Tokens, "{kind}");
        assert!(refusal.exceeds_capacity(), "{kind}");
        assert_eq!(refusal.requested, 1001, "{kind}");
        assert!(refusal.to_string().contains("1001"), "{kind}: {refusal}");
        // Exactly the capacity fits.
        limiter
            .admit(&[(s.clone(), tpm(1000))], 1000)
            .await
            .unwrap();
        if kind == "redis" {
            cleanup(&[&s]).await;
        }
    }
}

#[tokio::test]
async fn concurrency_slots_come_back_when_the_admission_drops() {
    for (kind, limiter) in both() {
        let s = subject("cc");
        let subjects = [(s.clone(), concurrency(2))];
        let one = limiter.admit(&subjects, 0).await.unwrap();
        let two = limiter.admit(&subjects, 0).await.unwrap();
        let refusal = limiter
            .admit(&subjects, 0)
            .await
            .expect_err("both slots held");
        assert_eq!(refusal.which, Which::Concurrency, "{kind}");
        assert_eq!(refusal.limit, 2, "{kind}");
        assert!(refusal.retry_after > Duration::ZERO, "{kind}");

        drop(one);
        // In Redis the lease goes from a background task: poll for it.
        let mut third = None;
        for _ in 0..200 {
            if let Ok(a) = limiter.admit(&subjects, 0).await {
                third = Some(a);
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let third = third.unwrap_or_else(|| panic!("{kind}: the slot never came back"));
        assert!(
            limiter.admit(&subjects, 0).await.is_err(),
            "{kind}: two held again"
        );
        two.finish();
        drop(third);
        limiter.flush().await;
        if kind == "redis" {
            cleanup(&[&s]).await;
        }
    }
}

#[tokio::test]
async fn tightest_windows_among_subjects() {
    for (kind, limiter) in both() {
        let (key, team) = (subject("key"), subject("team"));
        let a = limiter
            .admit(
                &[
                    (key.clone(), rpm(10)),
                    (team.clone(), Rates::default()),
                    (
                        team.clone(),
                        Rates {
                            rpm: Some(3),
                            tpm: Some(500),
                            concurrency: None,
                        },
                    ),
                ],
                100,
            )
            .await
            .unwrap();
        assert_eq!(
            a.requests.map(|w| (w.limit, w.remaining)),
            Some((3, 2)),
            "{kind}"
        );
        assert_eq!(
            a.tokens.map(|w| (w.limit, w.remaining)),
            Some((500, 400)),
            "{kind}"
        );
        if kind == "redis" {
            cleanup(&[&key, &team]).await;
        }
    }
}

#[tokio::test]
async fn replicas_share_one_limit() {
    let (one, two) = (redis(), redis());
    let s = subject("replicas");
    let subjects = [(s.clone(), rpm(10))];
    let mut admitted = 0;
    for i in 0..30 {
        let replica = if i % 2 == 0 { &one } else { &two };
        if replica.admit(&subjects, 0).await.is_ok() {
            admitted += 1;
        }
    }
    assert_eq!(admitted, 10);
    assert!(one.health().is_ok() && two.health().is_ok());
    cleanup(&[&s]).await;
}

#[tokio::test]
async fn redis_down_fails_open_or_closed() {
    let s = subject("down");
    let subjects = [(s.clone(), rpm(1))];

    let open = Limiter::redis(DOWN, FailMode::Open).unwrap();
    for _ in 0..3 {
        let a = bounded(open.admit(&subjects, 0)).await.expect("fails open");
        assert!(a.requests.is_none() && a.tokens.is_none());
    }
    let health = open.health().expect_err("down");
    assert!(
        health.starts_with("redis unreachable") && health.ends_with("failing open"),
        "{health}"
    );
    // Corrections and releases on a limiter that is down neither panic nor block.
    open.correct_tokens(&Admission::default(), 10);

    let closed = Limiter::redis(DOWN, FailMode::Closed).unwrap();
    for _ in 0..3 {
        let r = bounded(closed.admit(&subjects, 0))
            .await
            .expect_err("fails closed");
        assert_eq!(r.which, Which::Unavailable);
        assert_eq!(r.retry_after, Duration::from_secs(1));
        assert_eq!(&*r.subject, &*s);
    }
    assert!(closed
        .health()
        .expect_err("down")
        .ends_with("failing closed"));

    // Concurrency with Redis down: nothing is held, nothing panics on drop.
    let a = bounded(open.admit(&[(s.clone(), concurrency(1))], 0))
        .await
        .unwrap();
    drop(a);
    bounded(open.flush()).await;
}

#[tokio::test]
async fn unlimited_subjects_cost_nothing() {
    let subjects = [
        (subject("free"), Rates::default()),
        (subject("free-too"), Rates::default()),
    ];
    let local = Limiter::in_process()
        .admit(&subjects, 10_000)
        .await
        .unwrap();
    assert!(local.requests.is_none() && local.tokens.is_none() && local.held.is_none());

    // Redis is down and the limiter fails closed: an Ok proves no round trip was tried.
    let closed = Limiter::redis(DOWN, FailMode::Closed).unwrap();
    for _ in 0..100 {
        let a = closed.admit(&subjects, 10_000).await.unwrap();
        assert!(a.requests.is_none() && a.tokens.is_none() && a.held.is_none());
    }
    let none: [(Subject, Rates); 0] = [];
    closed.admit(&none, 0).await.unwrap();
}

#[tokio::test]
async fn zero_limits_refuse_everything() {
    for (kind, limiter) in both() {
        for (rates, which) in [
            (rpm(0), Which::Requests),
            (tpm(0), Which::Tokens),
            (concurrency(0), Which::Concurrency),
        ] {
            let r = limiter
                .admit(&[(subject("zero"), rates)], 0)
                .await
                .expect_err("a limit of 0");
            assert_eq!(r.which, which, "{kind}");
            assert!(r.retry_after > Duration::ZERO, "{kind}");
        }
    }
}

#[test]
fn a_bad_url_is_an_error() {
    assert!(Limiter::redis("not a url", FailMode::Open).is_err());
    assert!(Limiter::redis("ftp://127.0.0.1", FailMode::Open).is_err());
    // Constructing needs neither a runtime nor a reachable server.
    assert!(Limiter::redis(DOWN, FailMode::Open).is_ok());
}

#[test]
fn admissions_can_live_in_spawned_tasks() {
    fn send_static<T: Send + Sync + 'static>() {}
    send_static::<Admission>();
    send_static::<Limiter>();
    send_static::<Refusal>();
}

#[test]
fn retry_after_rounds_up_to_whole_seconds() {
    let mut r = Refusal::unavailable(subject("x"));
    for (d, secs) in [(1, 1), (999, 1), (1000, 1), (1001, 2), (59_500, 60)] {
        r.retry_after = Duration::from_millis(d);
        assert_eq!(r.retry_after_secs(), secs, "{d} ms");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_admits_never_overshoot() {
    for (kind, limiter) in both() {
        let (a, b) = (subject("race-a"), subject("race-b"));
        let subjects: Arc<[(Subject, Rates)]> =
            Arc::from(vec![(a.clone(), rpm(50)), (b.clone(), concurrency(1000))]);
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let (limiter, subjects) = (limiter.clone(), subjects.clone());
                tokio::spawn(async move {
                    let mut held = Vec::new();
                    for _ in 0..25 {
                        if let Ok(a) = limiter.admit(&subjects, 0).await {
                            held.push(a);
                        }
                    }
                    held
                })
            })
            .collect();
        let mut held = Vec::new();
        for t in tasks {
            held.extend(t.await.unwrap());
        }
        assert_eq!(held.len(), 50, "{kind}");
        drop(held);
        limiter.flush().await;
        if kind == "redis" {
            cleanup(&[&a, &b]).await;
        }
    }
}

/// A TCP proxy to the real Redis that can be cut (refusing new connections and closing the
/// open ones) and restored.
struct Proxy {
    port: u16,
    down: Arc<std::sync::atomic::AtomicBool>,
    open: Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Proxy {
    async fn start() -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let down = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let open = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (d, o) = (down.clone(), open.clone());
        let accept = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if d.load(std::sync::atomic::Ordering::SeqCst) {
                    continue; // dropped: the client sees the connection closed
                }
                let task = tokio::spawn(async move {
                    if let Ok(mut server) = tokio::net::TcpStream::connect("127.0.0.1:6379").await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                o.lock().unwrap().push(task.abort_handle());
            }
        });
        Proxy {
            port,
            down,
            open,
            accept,
        }
    }

    fn cut(&self) {
        self.down.store(true, std::sync::atomic::Ordering::SeqCst);
        for task in self.open.lock().unwrap().drain(..) {
            task.abort();
        }
    }

    fn restore(&self) {
        self.down.store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}

#[tokio::test]
async fn recovers_when_redis_comes_back() {
    let proxy = Proxy::start().await;
    let limiter = Limiter::redis(
        &format!("redis://127.0.0.1:{}", proxy.port),
        FailMode::Closed,
    )
    .unwrap();
    let s = subject("recover");
    let subjects = [(s.clone(), rpm(100))];
    let first = bounded(limiter.admit(&subjects, 0)).await.unwrap();
    assert_eq!(first.requests.map(|w| w.remaining), Some(99));
    assert!(limiter.health().is_ok());

    proxy.cut();
    let mut refused = None;
    for _ in 0..100 {
        match bounded(limiter.admit(&subjects, 0)).await {
            Err(r) => {
                refused = Some(r);
                break;
            }
            // A command may still have been in flight on the old connection.
            Ok(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
    assert_eq!(refused.map(|r| r.which), Some(Which::Unavailable));
    assert!(limiter.health().is_err());

    proxy.restore();
    let mut back = None;
    for _ in 0..300 {
        if let Ok(a) = bounded(limiter.admit(&subjects, 0)).await {
            back = Some(a);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let back = back.expect("admits again once Redis is back");
    assert!(back.requests.is_some_and(|w| w.remaining < 99));
    assert!(limiter.health().is_ok());
    cleanup(&[&s]).await;
}
