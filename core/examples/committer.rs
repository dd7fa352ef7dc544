//! What the billing committer costs per request, without HTTP: one request at a time
//! reserves through the committer, does `--work-us` of CPU (the request path's own work,
//! default 150 µs, about what Weir's HTTP path costs at one connection), and hands its
//! settlement and request-log row over; the committer writes them as it does in the server.
//! Prints the wall time per request, the reservation latency and the CPU the committer and
//! checkpointer threads used per request. SQLite file under `--dir` (default a new temporary
//! directory; put it on the disk you care about). Pin it to one core to see the contention:
//!
//! ```sh
//! cargo build --release -p weir-core --example committer
//! taskset -c 0 target/release/examples/committer --requests 20000 --work-us 150
//! ```
use std::{
    error::Error,
    time::{Duration, Instant},
};

use weir_core::{
    billing::{self, Committer, Finish, NewReservation, Usage},
    catalog::Tariff,
    db::{Db, PoolSettings},
    metering::{RequestRecord, UsageSource},
    money::{Micros, PerMillion},
};

fn arg(name: &str) -> Option<String> {
    let mut args = std::env::args();
    while let Some(a) = args.next() {
        if a == name {
            return args.next();
        }
    }
    None
}

/// CPU time (user + system) of this process's threads named `name`, in clock ticks.
fn thread_ticks(name: &str) -> Result<u64, Box<dyn Error>> {
    let mut ticks = 0;
    for entry in std::fs::read_dir("/proc/self/task")? {
        let path = entry?.path();
        if std::fs::read_to_string(path.join("comm"))?.trim() != name {
            continue;
        }
        let stat = std::fs::read_to_string(path.join("stat"))?;
        let fields: Vec<&str> = stat
            .rsplit(')')
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .collect();
        for i in [11, 12] {
            ticks += fields.get(i).ok_or("short stat line")?.parse::<u64>()?;
        }
    }
    Ok(ticks)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn Error>> {
    let n: usize = arg("--requests").map_or(Ok(20_000), |s| s.parse())?;
    let work = Duration::from_micros(arg("--work-us").map_or(Ok(150), |s| s.parse())?);
    let tmp = tempfile::tempdir()?;
    let dir = arg("--dir").map_or_else(|| tmp.path().to_path_buf(), Into::into);
    let db = Db::connect(
        &format!("sqlite://{}/committer.db", dir.display()),
        &PoolSettings::default(),
    )
    .await?;
    db.migrate().await?;
    let team = weir_core::team::create(&db, &format!("bench-{}", std::process::id())).await?;
    billing::credit(&db, team.id, Micros(i64::MAX / 4), "benchmark", None).await?;
    let tariff = Tariff {
        input: PerMillion(150_000),
        cached_input: None,
        cache_write: None,
        output: PerMillion(600_000),
        reasoning: None,
        markup_bps: 1_000,
    };
    let (committer, task) = Committer::spawn(db.clone());
    let tick_us = 1e6 / 100.0; // USER_HZ
    let (c0, k0) = (
        thread_ticks("weir-committer")?,
        thread_ticks("weir-checkpoint")?,
    );
    let mut reserve_us = Vec::with_capacity(n);
    let started = Instant::now();
    for i in 0..n {
        let request_id = format!("bench_{}_{i:012}", std::process::id());
        let t = Instant::now();
        committer
            .reserve(NewReservation {
                request_id: request_id.clone(),
                team_id: team.id,
                api_key_id: 1,
                model: "demo/echo".into(),
                amount: Micros(5_000),
                tariff,
                ttl: Duration::from_secs(2400),
                prompt_estimate: 9,
                caps: 0,
            })
            .await?;
        reserve_us.push(t.elapsed().as_micros());
        let spin = Instant::now();
        while spin.elapsed() < work {
            std::hint::spin_loop();
        }
        tokio::task::yield_now().await;
        let record = RequestRecord {
            request_id,
            team_id: team.id,
            api_key_id: 1,
            endpoint: "chat",
            model: "demo/echo".into(),
            upstream_model: Some("echo".into()),
            channel_id: Some(1),
            status: 200,
            error_kind: None,
            stream: false,
            input_tokens: 9,
            cached_tokens: 0,
            cache_write_tokens: 0,
            output_tokens: 3,
            reasoning_tokens: 0,
            usage_source: UsageSource::Upstream,
            attempts: 1,
            latency_ms: 0,
            ttfb_ms: None,
            created_at: weir_core::db::now_ms(),
        };
        let usage = Usage {
            input: 9,
            output: 3,
            ..Usage::default()
        };
        committer.done(
            record,
            Some(Finish::Settle {
                usage,
                source: UsageSource::Upstream,
            }),
        );
    }
    let wall = started.elapsed();
    committer.flush().await;
    let (c1, k1) = (
        thread_ticks("weir-committer")?,
        thread_ticks("weir-checkpoint")?,
    );
    drop(committer);
    task.await?;
    reserve_us.sort_unstable();
    let pct = |p: usize| reserve_us.get(n * p / 1000).copied().unwrap_or(0);
    println!(
        "{n} requests: {:.1} us wall each; reservation p50 {} us, p90 {} us, p99 {} us, \
         p99.9 {} us; CPU per request: committer {:.1} us, checkpointer {:.1} us",
        wall.as_secs_f64() * 1e6 / n as f64,
        pct(500),
        pct(900),
        pct(990),
        pct(999),
        (c1 - c0) as f64 * tick_us / n as f64,
        (k1 - k0) as f64 * tick_us / n as f64,
    );
    Ok(())
}
