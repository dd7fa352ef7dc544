-- wrk script: POST the request in BENCH_BODY (a chat completion unless BENCH_PATH says otherwise) with the key in BENCH_KEY, and print
-- machine-readable figures at the end (latencies in microseconds) for bench/run.
-- BENCH_PATH picks another endpoint (/v1/messages gets the anthropic-version header too).
wrk.method = "POST"
wrk.path = os.getenv("BENCH_PATH") or "/v1/chat/completions"
wrk.body = os.getenv("BENCH_BODY")
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_KEY")
if wrk.path == "/v1/messages" then
  wrk.headers["anthropic-version"] = "2023-06-01"
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("requests=%d\n", summary.requests))
  io.write(string.format("duration_us=%d\n", summary.duration))
  io.write(string.format("rps=%.1f\n", summary.requests / (summary.duration / 1e6)))
  io.write(string.format("errors=%d\n", e.connect + e.read + e.write + e.status + e.timeout))
  io.write(string.format("status_errors=%d\n", e.status))
  for _, p in ipairs({50, 90, 99, 99.9}) do
    io.write(string.format("p%s_us=%d\n", (tostring(p):gsub("%.", "_")), latency:percentile(p)))
  end
  io.write(string.format("max_us=%d\n", latency.max))
  -- Share of requests at 35 ms or more: Nagle plus a delayed ACK makes ~40 ms requests.
  local lo, hi = 0.0, 100.0
  if latency.max < 35000 then lo = 100.0 end
  for _ = 1, 40 do
    if hi - lo < 1e-4 then break end
    local mid = (lo + hi) / 2
    if latency:percentile(mid) >= 35000 then hi = mid else lo = mid end
  end
  io.write(string.format("slow35_pct=%.3f\n", 100.0 - lo))
  io.write(string.format("mean_us=%.1f\n", latency.mean))
end
