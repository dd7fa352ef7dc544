//! The limiter shared through Redis: one `EVALSHA` per admit, background releases and
//! corrections, and the failure mode while Redis cannot be reached.

use std::{
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex, OnceLock, PoisonError,
    },
    time::{Duration, Instant},
};

use redis::{
    aio::{ConnectionManager, ConnectionManagerConfig},
    Client, Script,
};
use tokio::runtime::Handle;
use tokio_util::task::TaskTracker;

use super::{Admission, FailMode, Held, Rates, Refusal, Slots, Subject, Which, Window};

/// Every call to Redis, connecting included.
const TIMEOUT: Duration = Duration::from_millis(250);
/// After a failed call, admits are decided by the failure mode for this long without asking.
const BACKOFF: Duration = Duration::from_secs(1);
const WARN_EVERY: Duration = Duration::from_secs(10);
/// `health()` pings in the background when nothing has asked Redis for this long.
const PROBE_AFTER: Duration = Duration::from_secs(5);

/// Check and take, all or nothing, for every limited subject of one admit.
///
/// KEYS: three per subject i (1-based): 3i-2 the request log (ZSET), 3i-1 the token TAT (µs),
/// 3i the concurrency leases (ZSET, score = expiry).
/// ARGV: 1 the admission id, 2 the token cost, then three per subject: 3i the rpm, 3i+1 the tpm,
/// 3i+2 the concurrency (0 = no limit; a limit of 0 never gets here).
/// Returns `{1, then per subject: req remaining, req reset ms, tok remaining, tok reset ms}`
/// (-1 where there is no such limit), or on a refusal, after undoing what it took,
/// `{0, subject i, which (1 requests, 2 tokens, 3 concurrency), retry ms, the refusing subject's
/// req remaining, req reset ms, tok remaining, tok reset ms}`.
const ADMIT: &str = r"
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
local now_ms = math.floor(now_us / 1000)
local function num(x) return string.format('%.0f', x) end
local id = ARGV[1]
local cost = tonumber(ARGV[2])
local undo = {}
local out = {1}
for i = 1, #KEYS / 3 do
  local rk, tk, ck = KEYS[3*i-2], KEYS[3*i-1], KEYS[3*i]
  local rpm = tonumber(ARGV[3*i])
  local tpm = tonumber(ARGV[3*i+1])
  local conc = tonumber(ARGV[3*i+2])
  local which, retry = 0, 0

  local count, oldest = 0, nil
  if rpm > 0 then
    redis.call('ZREMRANGEBYSCORE', rk, '-inf', num(now_ms - 60000))
    count = redis.call('ZCARD', rk)
    if count > 0 then
      oldest = tonumber(redis.call('ZRANGE', rk, 0, 0, 'WITHSCORES')[2])
    end
    if count >= rpm then
      which, retry = 1, (oldest or now_ms) + 60000 - now_ms
    end
  end

  local old, tat, interval = false, now_us, 0
  if tpm > 0 then
    interval = 60000000 / tpm
    old = redis.call('GET', tk)
    if old then tat = math.max(tonumber(old), now_us) end
    local over = tat + cost * interval - now_us - 60000000
    if over > 0 then
      local r = math.ceil(over / 1000)
      if r > retry then which, retry = 2, r end
    end
  end

  if conc > 0 then
    redis.call('ZREMRANGEBYSCORE', ck, '-inf', num(now_ms))
    if redis.call('ZCARD', ck) >= conc and 1000 > retry then which, retry = 3, 1000 end
  end

  if which ~= 0 then
    for j = #undo, 1, -1 do redis.call(unpack(undo[j])) end
    local rr, rs, tr, ts = -1, -1, -1, -1
    if rpm > 0 then
      rr = math.max(rpm - count, 0)
      rs = 0
      if oldest then rs = oldest + 60000 - now_ms end
    end
    if tpm > 0 then
      tr = math.max(math.floor((60000000 - (tat - now_us)) / interval), 0)
      ts = math.ceil((tat - now_us) / 1000)
    end
    return {0, i, which, retry, rr, rs, tr, ts}
  end

  local member = id .. ':' .. i
  local rr, rs, tr, ts = -1, -1, -1, -1
  if rpm > 0 then
    redis.call('ZADD', rk, num(now_ms), member)
    redis.call('PEXPIRE', rk, 61000)
    undo[#undo + 1] = {'ZREM', rk, member}
    rr = rpm - count - 1
    rs = (oldest or now_ms) + 60000 - now_ms
  end
  if tpm > 0 then
    local new = tat + cost * interval
    redis.call('SET', tk, num(new), 'PX', num(math.ceil((new - now_us) / 1000) + 1000))
    if old and tonumber(old) > now_us then
      undo[#undo + 1] = {'SET', tk, old, 'PX', num(math.ceil((tonumber(old) - now_us) / 1000) + 1000)}
    else
      undo[#undo + 1] = {'DEL', tk}
    end
    tr = math.floor((60000000 - (new - now_us)) / interval)
    ts = math.ceil((new - now_us) / 1000)
  end
  if conc > 0 then
    redis.call('ZADD', ck, num(now_ms + 600000), member)
    redis.call('PEXPIRE', ck, 600000)
    undo[#undo + 1] = {'ZREM', ck, member}
  end
  out[#out + 1] = rr
  out[#out + 1] = rs
  out[#out + 1] = tr
  out[#out + 1] = ts
end
return out
";

/// Moves token TATs by a correction. KEYS: the TAT keys; ARGV: 1 the delta in tokens (negative
/// gives back), then each key's tpm. A TAT never moves before now (the key is deleted instead).
const CORRECT: &str = r"
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
local delta = tonumber(ARGV[1])
for i = 1, #KEYS do
  local interval = 60000000 / tonumber(ARGV[i + 1])
  local v = redis.call('GET', KEYS[i])
  local tat = now_us
  if v then tat = math.max(tonumber(v), now_us) end
  local new = tat + delta * interval
  if new > now_us then
    redis.call('SET', KEYS[i], string.format('%.0f', new), 'PX',
      string.format('%.0f', math.ceil((new - now_us) / 1000) + 1000))
  else
    redis.call('DEL', KEYS[i])
  end
end
return 1
";

pub(super) struct Shared {
    core: Arc<Core>,
}

struct Core {
    client: Client,
    /// Made on first use, inside the runtime (making one spawns a task).
    conn: OnceLock<ConnectionManager>,
    fail: FailMode,
    admit: Script,
    correct: Script,
    tracker: TaskTracker,
    base: Instant,
    down: AtomicBool,
    error: Mutex<String>,
    /// Milliseconds since `base`; 0 is never.
    skip_until: AtomicU64,
    last_warn: AtomicU64,
    last_call: AtomicU64,
    probing: AtomicBool,
}

fn key(kind: &str, subject: &str) -> String {
    format!("weir:rl:{kind}:{subject}")
}

fn ms(v: i64) -> Duration {
    Duration::from_millis(u64::try_from(v).unwrap_or(0))
}

fn count(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

impl Shared {
    pub(super) fn new(url: &str, fail: FailMode) -> Result<Shared, String> {
        let client = Client::open(url).map_err(|e| format!("bad redis URL: {e}"))?;
        Ok(Shared {
            core: Arc::new(Core {
                client,
                conn: OnceLock::new(),
                fail,
                admit: Script::new(ADMIT),
                correct: Script::new(CORRECT),
                tracker: TaskTracker::new(),
                base: Instant::now(),
                down: AtomicBool::new(false),
                error: Mutex::new(String::new()),
                skip_until: AtomicU64::new(0),
                last_warn: AtomicU64::new(0),
                last_call: AtomicU64::new(0),
                probing: AtomicBool::new(false),
            }),
        })
    }

    pub(super) fn fail_mode(&self) -> FailMode {
        self.core.fail
    }

    pub(super) async fn admit(
        &self,
        subjects: &[(Subject, Rates)],
        tokens: u64,
    ) -> Result<Admission, Refusal> {
        let core = &self.core;
        let limited: Vec<&(Subject, Rates)> =
            subjects.iter().filter(|(_, r)| !r.is_unlimited()).collect();
        let Some(&(first, _)) = limited.first() else {
            return Ok(Admission::default());
        };
        if core.skipping() {
            return core.failed(first);
        }
        let id = format!("{:016x}", rand::random::<u64>());
        let mut call = core.admit.prepare_invoke();
        call.arg(&id).arg(tokens);
        for (subject, rates) in &limited {
            call.key(key("req", subject))
                .key(key("tok", subject))
                .key(key("cc", subject))
                .arg(rates.rpm.unwrap_or(0))
                .arg(rates.tpm.unwrap_or(0))
                .arg(rates.concurrency.unwrap_or(0));
        }
        let leases: Vec<(String, String)> = limited
            .iter()
            .enumerate()
            .filter(|(_, (_, r))| r.concurrency.is_some())
            .map(|(i, (s, _))| (key("cc", s), format!("{id}:{}", i + 1)))
            .collect();

        let reply: Result<Vec<i64>, String> = match core.conn() {
            Ok(mut conn) => match tokio::time::timeout(TIMEOUT, call.invoke_async(&mut conn)).await
            {
                Ok(Ok(reply)) => Ok(reply),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err(format!("no answer in {} ms", TIMEOUT.as_millis())),
            },
            Err(e) => Err(e),
        };
        let reply = match reply {
            Ok(r) if r.first() == Some(&1) && r.len() == 1 + 4 * limited.len() => Some(r),
            Ok(r) if r.first() == Some(&0) && r.len() == 8 => {
                core.succeeded();
                return Err(refusal(&limited, &r, tokens));
            }
            Ok(r) => {
                core.failed_call(format!("unexpected reply {r:?}"));
                None
            }
            Err(e) => {
                core.failed_call(e);
                None
            }
        };
        let Some(reply) = reply else {
            // The script may have run with the answer lost: give back the slots it may hold.
            Leases {
                core: core.clone(),
                leases,
            }
            .release();
            return core.failed(first);
        };
        core.succeeded();

        let (mut requests, mut token_window) = (None, None);
        let mut charged = Vec::new();
        for (i, (subject, rates)) in limited.iter().enumerate() {
            let v = &reply[1 + 4 * i..5 + 4 * i];
            if let Some(rpm) = rates.rpm {
                let w = Window {
                    limit: u64::from(rpm),
                    remaining: count(v[0]),
                    reset: ms(v[1]),
                };
                requests = Window::tighter(requests, Some(w));
            }
            if let Some(tpm) = rates.tpm {
                let w = Window {
                    limit: u64::from(tpm),
                    remaining: count(v[2]),
                    reset: ms(v[3]),
                };
                token_window = Window::tighter(token_window, Some(w));
                charged.push((subject.clone(), tpm));
            }
        }
        let held = (!charged.is_empty() || !leases.is_empty()).then(|| {
            Arc::new(Held {
                tokens: charged,
                slots: Slots::Redis(Leases {
                    core: core.clone(),
                    leases,
                }),
            })
        });
        Ok(Admission {
            requests,
            tokens: token_window,
            held,
        })
    }

    pub(super) fn correct_tokens(&self, charged: &[(Subject, u32)], delta: i64) {
        let Ok(handle) = Handle::try_current() else {
            return;
        };
        let core = self.core.clone();
        let charged = charged.to_vec();
        self.core.tracker.spawn_on(
            async move {
                if core.skipping() {
                    return;
                }
                let mut call = core.correct.prepare_invoke();
                call.arg(delta);
                for (subject, tpm) in &charged {
                    call.key(key("tok", subject)).arg(*tpm);
                }
                let result = match core.conn() {
                    Ok(mut conn) => {
                        match tokio::time::timeout(TIMEOUT, call.invoke_async::<i64>(&mut conn))
                            .await
                        {
                            Ok(Ok(_)) => Ok(()),
                            Ok(Err(e)) => Err(e.to_string()),
                            Err(_) => Err(format!("no answer in {} ms", TIMEOUT.as_millis())),
                        }
                    }
                    Err(e) => Err(e),
                };
                match result {
                    Ok(()) => core.succeeded(),
                    Err(e) => core.failed_call(e),
                }
            },
            &handle,
        );
    }

    pub(super) fn health(&self) -> Result<(), String> {
        let core = &self.core;
        let last = core.last_call.load(Ordering::Relaxed);
        let stale = last == 0 || core.now_ms().saturating_sub(last) >= millis(PROBE_AFTER);
        if stale && !core.probing.swap(true, Ordering::AcqRel) {
            match Handle::try_current() {
                Ok(handle) => {
                    let probe = core.clone();
                    core.tracker.spawn_on(
                        async move {
                            probe.ping().await;
                            probe.probing.store(false, Ordering::Release);
                        },
                        &handle,
                    );
                }
                Err(_) => core.probing.store(false, Ordering::Release),
            }
        }
        if core.down.load(Ordering::Acquire) {
            let error = core
                .error
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
            Err(format!(
                "redis unreachable: {error}, failing {}",
                core.mode_word()
            ))
        } else {
            Ok(())
        }
    }

    pub(super) async fn flush(&self) {
        let tracker = &self.core.tracker;
        tracker.close();
        let _ = tokio::time::timeout(Duration::from_secs(1), tracker.wait()).await;
        tracker.reopen();
    }
}

/// A refusal from the script's `{0, i, which, retry, rr, rs, tr, ts}`.
fn refusal(limited: &[&(Subject, Rates)], r: &[i64], tokens: u64) -> Refusal {
    let i = usize::try_from(r[1] - 1)
        .unwrap_or(0)
        .min(limited.len() - 1);
    let (subject, rates) = limited[i];
    let (which, limit, requested) = match r[2] {
        1 => (Which::Requests, rates.rpm, 1),
        2 => (Which::Tokens, rates.tpm, tokens),
        _ => (Which::Concurrency, rates.concurrency, 1),
    };
    Refusal {
        subject: subject.clone(),
        which,
        limit: u64::from(limit.unwrap_or(0)),
        retry_after: ms(r[3]).max(Duration::from_millis(1)),
        requests: rates.rpm.map(|rpm| Window {
            limit: u64::from(rpm),
            remaining: count(r[4]),
            reset: ms(r[5]),
        }),
        tokens: rates.tpm.map(|tpm| Window {
            limit: u64::from(tpm),
            remaining: count(r[6]),
            reset: ms(r[7]),
        }),
        requested,
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Core {
    fn now_ms(&self) -> u64 {
        // +1 so that 0 can stand for "never".
        millis(self.base.elapsed()) + 1
    }

    fn mode_word(&self) -> &'static str {
        match self.fail {
            FailMode::Open => "open",
            FailMode::Closed => "closed",
        }
    }

    fn conn(&self) -> Result<ConnectionManager, String> {
        if let Some(conn) = self.conn.get() {
            return Ok(conn.clone());
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(TIMEOUT))
            .set_response_timeout(Some(TIMEOUT))
            .set_number_of_retries(0);
        let conn = self
            .client
            .get_connection_manager_lazy(config)
            .map_err(|e| e.to_string())?;
        Ok(self.conn.get_or_init(|| conn).clone())
    }

    /// Within the back-off after a failed call.
    fn skipping(&self) -> bool {
        self.now_ms() < self.skip_until.load(Ordering::Acquire)
    }

    fn failed(&self, first: &Subject) -> Result<Admission, Refusal> {
        match self.fail {
            FailMode::Open => Ok(Admission::default()),
            FailMode::Closed => Err(Refusal::unavailable(first.clone())),
        }
    }

    fn succeeded(&self) {
        self.last_call.store(self.now_ms(), Ordering::Relaxed);
        if self.down.swap(false, Ordering::AcqRel) {
            tracing::info!("rate-limit Redis reachable again");
        }
    }

    fn failed_call(&self, error: String) {
        let now = self.now_ms();
        self.last_call.store(now, Ordering::Relaxed);
        self.skip_until
            .store(now + millis(BACKOFF), Ordering::Release);
        let last = self.last_warn.load(Ordering::Relaxed);
        if (last == 0 || now - last >= millis(WARN_EVERY))
            && self
                .last_warn
                .compare_exchange(last, now, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(%error, "rate-limit Redis unreachable; failing {}", self.mode_word());
        }
        *self.error.lock().unwrap_or_else(PoisonError::into_inner) = error;
        self.down.store(true, Ordering::Release);
    }

    async fn ping(&self) {
        let result = match self.conn() {
            Ok(mut conn) => {
                let ping = redis::cmd("PING");
                match tokio::time::timeout(TIMEOUT, ping.query_async::<String>(&mut conn)).await {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(_) => Err(format!("no answer in {} ms", TIMEOUT.as_millis())),
                }
            }
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => self.succeeded(),
            Err(e) => self.failed_call(e),
        }
    }
}

/// The concurrency leases of one admission in Redis: `(key, member)`.
pub(super) struct Leases {
    core: Arc<Core>,
    leases: Vec<(String, String)>,
}

impl Leases {
    pub(super) fn len(&self) -> usize {
        self.leases.len()
    }

    /// Removes the leases from a background task (one pipelined round trip, tried twice). Outside
    /// a runtime, or if both tries fail, they expire on their own after 10 minutes.
    pub(super) fn release(&mut self) {
        if self.leases.is_empty() {
            return;
        }
        let Ok(handle) = Handle::try_current() else {
            return;
        };
        let core = self.core.clone();
        let leases = std::mem::take(&mut self.leases);
        self.core.tracker.spawn_on(
            async move {
                let mut pipe = redis::pipe();
                for (key, member) in &leases {
                    pipe.cmd("ZREM").arg(key).arg(member).ignore();
                }
                for attempt in 0..2 {
                    if attempt > 0 {
                        tokio::time::sleep(BACKOFF).await;
                    }
                    let Ok(mut conn) = core.conn() else { return };
                    match tokio::time::timeout(TIMEOUT, pipe.exec_async(&mut conn)).await {
                        Ok(Ok(())) => return core.succeeded(),
                        Ok(Err(e)) => core.failed_call(e.to_string()),
                        Err(_) => {
                            core.failed_call(format!("no answer in {} ms", TIMEOUT.as_millis()))
                        }
                    }
                }
            },
            &handle,
        );
    }
}
