#!/usr/bin/env python3
"""Console pages on a team with many request rows: server-side time per page.

    bench/console.py                      # SQLite, 100k rows, the debug build
    WEIR_BIN=target/release/weir bench/console.py
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/test bench/console.py   # PostgreSQL
    BENCH_ROWS=1000000 bench/console.py

Starts `weir serve --demo` on a free port with a fresh data directory (and, for PostgreSQL, a
fresh schema), signs up a user, creates a key, writes BENCH_ROWS request rows spread over the
last 40 days straight into the database (request_log + charge, as the gateway would), then
asks for each console page and server function BENCH_REPEAT times over one keep-alive
connection and prints p50 / p90 / max of the time to the last byte. Results go to
bench/README.md by hand, with the date and the machine.
"""

import http.client
import json
import os
import random
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("WEIR_BIN", os.path.join(ROOT, "target/debug/weir"))
ROWS = int(os.environ.get("BENCH_ROWS", "100000"))
REPEAT = int(os.environ.get("BENCH_REPEAT", "20"))
PG = os.environ.get("DATABASE_URL", "")
DAY_MS = 86_400_000


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Browser:
    """One keep-alive connection with a session cookie, like a browser tab."""

    def __init__(self, port):
        self.port = port
        self.origin = f"http://127.0.0.1:{port}"
        self.conn = http.client.HTTPConnection("127.0.0.1", port)
        self.cookie = None

    def request(self, method, path, body=None):
        headers = {"Origin": self.origin}
        if body is not None:
            body = urllib.parse.urlencode(body)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        if self.cookie:
            headers["Cookie"] = self.cookie
        self.conn.request(method, path, body=body, headers=headers)
        r = self.conn.getresponse()
        data = r.read()
        for k, v in r.getheaders():
            if k.lower() == "set-cookie" and v.startswith("weir_session="):
                self.cookie = v.split(";")[0]
        return r.status, data

    def call(self, endpoint, form=None):
        _, body = self.request("POST", "/api/session/viewer", {"path": "/login"})
        csrf = json.loads(body)["csrf"]
        form = dict(form or {}, csrf=csrf)
        return self.request("POST", f"/api/{endpoint}", form)


def seed_sqlite(db_path, team, key, rows):
    """Rows as the gateway writes them: a request_log row, a charge, and for each charged
    request a usage transaction (team balance -cost, upstream cost +cost)."""
    import sqlite3

    db = sqlite3.connect(db_path, timeout=30)
    (team_acct,) = db.execute(
        "SELECT id FROM account WHERE team_id = ? AND kind = 'team_balance'", (team,)).fetchone()
    (cost_acct,) = db.execute("SELECT id FROM account WHERE kind = 'upstream_cost'").fetchone()
    (next_txn,) = db.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM ledger_txn").fetchone()
    now = int(time.time() * 1000)
    models = ["demo/echo", "demo/claude-echo", "openai/gpt-5-mini", "anthropic/claude-sonnet-4-5"]
    rng = random.Random(7)
    logs, charges, txns, entries = [], [], [], []
    for i in range(rows):
        rid = f"bench-{i:08d}"
        at = now - rng.randrange(40 * DAY_MS)
        model = models[i % len(models)]
        inp, out = rng.randrange(10, 4000), rng.randrange(1, 800)
        ok = i % 50 != 0
        logs.append((rid, team, key, "chat", model, 200 if ok else 502, None if ok else "upstream",
                     int(i % 3 == 0), inp if ok else 0, out if ok else 0, "upstream" if ok else "none",
                     1, rng.randrange(50, 3000), at))
        cost = (inp * 150 + out * 600) // 1000 + 1 if ok else 0
        txn = None
        if cost:
            txn = next_txn
            next_txn += 1
            txns.append((txn, "usage", f"usage:{rid}", at, team))
            entries.append((txn, team_acct, -cost))
            entries.append((txn, cost_acct, cost))
        charges.append((rid, team, key, model, cost, 150, 600, 0, "settled" if ok else "released",
                        inp if ok else None, out if ok else None, cost, txn, at, at))
    db.executemany("INSERT INTO ledger_txn (id, kind, external_ref, created_at, team_id) VALUES (?,?,?,?,?)", txns)
    db.executemany("INSERT INTO ledger_entry (txn_id, account_id, amount) VALUES (?,?,?)", entries)
    db.executemany(
        "INSERT INTO request_log (request_id, team_id, api_key_id, endpoint, model, status, error_kind, "
        "stream, input_tokens, output_tokens, usage_source, attempts, latency_ms, created_at) "
        "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        logs,
    )
    db.executemany(
        "INSERT INTO charge (request_id, team_id, api_key_id, model, amount, price_input, price_output, "
        "markup_bps, status, input_tokens, output_tokens, cost, ledger_txn_id, created_at, finished_at) "
        "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        charges,
    )
    db.commit()
    db.execute("ANALYZE")
    db.close()


def seed_postgres(url, schema, team, key, rows):
    """The same rows, generated inside PostgreSQL (generate_series), in the server's schema."""
    now = int(time.time() * 1000)
    sql = f"""
SET search_path TO "{schema}";
CREATE TEMP TABLE bench AS
SELECT i, 'bench-' || i AS rid,
  (ARRAY['demo/echo','demo/claude-echo','openai/gpt-5-mini','anthropic/claude-sonnet-4-5'])[1 + i % 4] AS model,
  i % 50 <> 0 AS ok, 10 + (i::bigint * 7919) % 4000 AS inp, 1 + (i::bigint * 104729) % 800 AS out,
  {now} - ((i::bigint * 2654435761) % {40 * DAY_MS}) AS at
FROM generate_series(1, {rows}) AS i;
INSERT INTO request_log (request_id, team_id, api_key_id, endpoint, model, status, error_kind, stream,
  input_tokens, output_tokens, usage_source, attempts, latency_ms, created_at)
SELECT rid, {team}, {key}, 'chat', model, CASE WHEN ok THEN 200 ELSE 502 END,
  CASE WHEN ok THEN NULL ELSE 'upstream' END, (i % 3 = 0)::int, CASE WHEN ok THEN inp ELSE 0 END,
  CASE WHEN ok THEN out ELSE 0 END, CASE WHEN ok THEN 'upstream' ELSE 'none' END, 1, 50 + i % 3000, at
FROM bench;
WITH t AS (
  INSERT INTO ledger_txn (kind, external_ref, created_at, team_id)
  SELECT 'usage', 'usage:' || rid, at, {team} FROM bench WHERE ok RETURNING id, external_ref
)
SELECT * INTO TEMP bench_txn FROM t;
INSERT INTO ledger_entry (txn_id, account_id, amount)
SELECT t.id, a.id, CASE WHEN a.kind = 'team_balance' THEN -c.cost ELSE c.cost END
FROM bench_txn t JOIN (SELECT 'usage:' || rid AS ref, (inp * 150 + out * 600) / 1000 + 1 AS cost FROM bench) c
  ON c.ref = t.external_ref
CROSS JOIN account a WHERE (a.kind = 'team_balance' AND a.team_id = {team}) OR a.kind = 'upstream_cost';
INSERT INTO charge (request_id, team_id, api_key_id, model, amount, price_input, price_output, markup_bps,
  status, input_tokens, output_tokens, cost, ledger_txn_id, created_at, finished_at)
SELECT b.rid, {team}, {key}, b.model, 0, 150, 600, 0, CASE WHEN b.ok THEN 'settled' ELSE 'released' END,
  CASE WHEN b.ok THEN b.inp END, CASE WHEN b.ok THEN b.out END,
  CASE WHEN b.ok THEN (b.inp * 150 + b.out * 600) / 1000 + 1 ELSE 0 END, t.id, b.at, b.at
FROM bench b LEFT JOIN bench_txn t ON t.external_ref = 'usage:' || b.rid;
ANALYZE;
"""
    subprocess.run(["psql", "-qX", "-v", "ON_ERROR_STOP=1", url], input=sql, text=True, check=True)


def main():
    data = tempfile.mkdtemp(prefix="weir-console-bench-")
    port = free_port()
    env = dict(os.environ, WEIR_LISTEN=f"127.0.0.1:{port}", WEIR_DATA_DIR=data, RUST_LOG="warn")
    schema = None
    if PG:
        schema = f"bench_{os.getpid()}"
        subprocess.run(["psql", "-qX", PG, "-c", f'CREATE SCHEMA "{schema}"'], check=True)
        sep = "&" if "?" in PG else "?"
        env["DATABASE_URL"] = f"{PG}{sep}options=-c%20search_path%3D{schema}"
    log = open(os.path.join(data, "server.log"), "w")
    server = subprocess.Popen([BIN, "serve", "--demo"], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        for _ in range(200):
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
                c.request("GET", "/readyz")
                if c.getresponse().status == 200:
                    break
            except OSError:
                pass
            time.sleep(0.1)
        else:
            sys.exit("the server did not start: " + open(os.path.join(data, "server.log")).read())

        b = Browser(port)
        status, body = b.call("auth/sign_up", {"email": "bench@example.com",
                                                "password": "correct horse battery"})
        assert status < 400, body
        _, body = b.request("POST", "/api/session/viewer", {"path": "/dashboard"})
        team = json.loads(body)["user"]["team"]["id"]
        status, body = b.call("keys/create_key", {"name": "bench", "environment": "prod"})
        assert status == 200, body
        _, body = b.request("POST", "/api/keys/list_keys", {})
        key = json.loads(body)["keys"][0]["id"]

        t0 = time.time()
        if PG:
            seed_postgres(PG, schema, team, key, ROWS)
        else:
            seed_sqlite(os.path.join(data, "weir.db"), team, key, ROWS)
        print(f"seeded {ROWS} request rows in {time.time() - t0:.1f} s "
              f"({'PostgreSQL' if PG else 'SQLite'}, {os.path.basename(BIN)} {BIN})")

        day = time.strftime("%Y-%m-%d", time.gmtime(time.time() - 10 * 86400))
        cases = [
            ("GET /dashboard (page)", "GET", "/dashboard", None),
            ("GET /usage (page)", "GET", "/usage", None),
            ("GET /billing (page)", "GET", "/billing", None),
            ("load_dashboard", "POST", "/api/dashboard/load_dashboard", {}),
            ("list_usage, no filter", "POST", "/api/usage/list_usage", {}),
            ("list_usage, 10 days, model", "POST", "/api/usage/list_usage",
             {"query[from]": day, "query[model]": "demo/echo"}),
            ("list_usage, errors only", "POST", "/api/usage/list_usage", {"query[status]": "error"}),
            ("list_ledger", "POST", "/api/billing/list_ledger", {}),
            ("list_keys", "POST", "/api/keys/list_keys", {}),
        ]
        # Page 100 of the usage table: keyset pagination costs the same as page 1.
        cursor = ""
        for _ in range(100):
            _, body = b.request("POST", "/api/usage/list_usage", {"query[after]": cursor} if cursor else {})
            cursor = json.loads(body)["next"]
        cases.append(("list_usage, page 101", "POST", "/api/usage/list_usage", {"query[after]": cursor}))

        print(f"\n| {ROWS:,} rows, {REPEAT} requests each | p50 ms | p90 ms | max ms |")
        print("|---|---:|---:|---:|")
        for name, method, path, form in cases:
            times = []
            for _ in range(REPEAT):
                t = time.perf_counter()
                status, body = b.request(method, path, form)
                times.append((time.perf_counter() - t) * 1000)
                assert status == 200, (name, status, body[:300])
            times.sort()
            p90 = times[min(len(times) - 1, int(len(times) * 0.9))]
            print(f"| {name} | {statistics.median(times):.1f} | {p90:.1f} | {times[-1]:.1f} |")
        t = time.perf_counter()
        status, body = b.request("GET", "/api/usage/export.csv")
        assert status == 200
        lines = body.count(b"\n")
        print(f"| export.csv, all {lines - 1:,} rows ({len(body) / 1e6:.1f} MB), once | "
              f"{(time.perf_counter() - t) * 1000:.0f} | | |")
        assert lines - 1 == ROWS, lines
    finally:
        server.terminate()
        server.wait()
        if schema:
            subprocess.run(["psql", "-qX", PG, "-c", f'DROP SCHEMA "{schema}" CASCADE'], check=False)


if __name__ == "__main__":
    main()
