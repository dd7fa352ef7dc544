-- Reservations in two tables, and one usage ledger transaction per team per commit window.
--
-- Before: one `reservation` row per request, inserted at admission (five b-trees: the table, its
-- primary key, the open-reservation and team-time indexes, plus the account) and updated at
-- settlement, and one `usage:<request_id>` ledger transaction with three entries per request.
-- That was about twenty b-tree writes and 12 KB of WAL per request (README, "Performance").
--
-- After:
-- - `hold`: a request's open reservation, from admission until it is settled or released, then
--   deleted. Only requests in flight are in it, so it stays a few pages that are always in
--   cache; admission writes it and the team's account row, nothing else. The reaper scans it.
-- - `charge`: the finished reservation, written at settlement: the request's usage row (price
--   snapshot, usage, cost), exactly one per admitted request (`released` ones cost nothing).
-- - Usage is posted to the ledger once per team per commit window: `usage:<uuid>`, team
--   -sum(cost), upstream_cost +sum(upstream), revenue_markup +sum(markup). Each settled charge
--   with a cost names its transaction (`ledger_txn_id`); `weir ledger check` verifies that every
--   usage transaction debits its team exactly the sum of its charges.
-- Exactly-once settlement no longer rests on the ledger reference: a settlement deletes the
-- hold (`DELETE ... RETURNING`) in the transaction that writes the charge and the ledger, so a
-- second or concurrent one finds nothing to finish.

CREATE TABLE hold (
    request_id          TEXT PRIMARY KEY,
    team_id             INTEGER NOT NULL REFERENCES team(id),
    api_key_id          INTEGER NOT NULL,
    model               TEXT NOT NULL,
    -- The amount held on the team account.
    amount              INTEGER NOT NULL CHECK (amount >= 0),
    -- The price snapshot taken at admission; settlement never reads the current tariff.
    price_input         INTEGER NOT NULL,
    price_cached_input  INTEGER,
    price_cache_write   INTEGER,
    price_output        INTEGER NOT NULL,
    price_reasoning     INTEGER,
    markup_bps          INTEGER NOT NULL,
    -- Weir's own prompt token count, billed by the reaper when the request never settled.
    prompt_estimate     INTEGER NOT NULL DEFAULT 0,
    -- Output tokens streamed so far (written every few seconds by long streams).
    checkpoint_output_tokens INTEGER NOT NULL DEFAULT 0,
    created_at          INTEGER NOT NULL,
    expires_at          INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE charge (
    request_id          TEXT PRIMARY KEY,
    team_id             INTEGER NOT NULL REFERENCES team(id),
    api_key_id          INTEGER NOT NULL,
    model               TEXT NOT NULL,
    -- What was held while the request ran.
    amount              INTEGER NOT NULL CHECK (amount >= 0),
    price_input         INTEGER NOT NULL,
    price_cached_input  INTEGER,
    price_cache_write   INTEGER,
    price_output        INTEGER NOT NULL,
    price_reasoning     INTEGER,
    markup_bps          INTEGER NOT NULL,
    prompt_estimate     INTEGER NOT NULL DEFAULT 0,
    status              TEXT NOT NULL CHECK (status IN ('settled', 'released')),
    -- The usage charged (NULL when released).
    input_tokens        INTEGER,
    cached_tokens       INTEGER,
    cache_write_tokens  INTEGER,
    output_tokens       INTEGER,
    reasoning_tokens    INTEGER,
    usage_source        TEXT,
    cost                INTEGER NOT NULL DEFAULT 0 CHECK (cost >= 0),
    -- The usage ledger transaction that debited this cost (NULL when nothing was charged).
    ledger_txn_id       INTEGER REFERENCES ledger_txn(id),
    -- Output checkpointed before the request finished (what the reaper billed, if it did).
    checkpoint_output_tokens INTEGER NOT NULL DEFAULT 0,
    created_at          INTEGER NOT NULL,
    finished_at         INTEGER NOT NULL,
    CHECK ((status = 'settled') = (input_tokens IS NOT NULL)),
    CHECK (cost = 0 OR ledger_txn_id IS NOT NULL)
) WITHOUT ROWID;

INSERT INTO hold (request_id, team_id, api_key_id, model, amount, price_input, price_cached_input,
        price_cache_write, price_output, price_reasoning, markup_bps, prompt_estimate,
        checkpoint_output_tokens, created_at, expires_at)
    SELECT request_id, team_id, api_key_id, model, amount, price_input, price_cached_input,
        price_cache_write, price_output, price_reasoning, markup_bps, prompt_estimate,
        checkpoint_output_tokens, created_at, expires_at
    FROM reservation WHERE status = 'reserved';

INSERT INTO charge (request_id, team_id, api_key_id, model, amount, price_input, price_cached_input,
        price_cache_write, price_output, price_reasoning, markup_bps, prompt_estimate, status,
        input_tokens, cached_tokens, cache_write_tokens, output_tokens, reasoning_tokens,
        usage_source, cost, ledger_txn_id, checkpoint_output_tokens, created_at, finished_at)
    SELECT r.request_id, r.team_id, r.api_key_id, r.model, r.amount, r.price_input,
        r.price_cached_input, r.price_cache_write, r.price_output, r.price_reasoning, r.markup_bps,
        r.prompt_estimate, r.status,
        CASE WHEN r.status = 'settled' THEN COALESCE(r.input_tokens, 0) END,
        r.cached_tokens, r.cache_write_tokens, r.output_tokens, r.reasoning_tokens,
        r.usage_source, COALESCE(r.cost, 0),
        (SELECT t.id FROM ledger_txn t WHERE t.external_ref = 'usage:' || r.request_id),
        r.checkpoint_output_tokens, r.created_at, COALESCE(r.finished_at, r.created_at)
    FROM reservation r WHERE r.status <> 'reserved';

DROP TABLE reservation;

-- The request log keyed by its request id alone (one b-tree fewer per row).
CREATE TABLE request_log_new (
    request_id        TEXT PRIMARY KEY,
    team_id           INTEGER NOT NULL,
    api_key_id        INTEGER NOT NULL,
    endpoint          TEXT NOT NULL,
    model             TEXT NOT NULL,
    channel_id        INTEGER,
    status            INTEGER NOT NULL,
    error_kind        TEXT,
    stream            INTEGER NOT NULL,
    input_tokens      INTEGER NOT NULL DEFAULT 0,
    cached_tokens     INTEGER NOT NULL DEFAULT 0,
    cache_write_tokens INTEGER NOT NULL DEFAULT 0,
    output_tokens     INTEGER NOT NULL DEFAULT 0,
    reasoning_tokens  INTEGER NOT NULL DEFAULT 0,
    usage_source      TEXT NOT NULL,
    attempts          INTEGER NOT NULL,
    latency_ms        INTEGER NOT NULL,
    ttfb_ms           INTEGER,
    created_at        INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO request_log_new SELECT request_id, team_id, api_key_id, endpoint, model, channel_id,
    status, error_kind, stream, input_tokens, cached_tokens, cache_write_tokens, output_tokens,
    reasoning_tokens, usage_source, attempts, latency_ms, ttfb_ms, created_at FROM request_log;
DROP TABLE request_log;
ALTER TABLE request_log_new RENAME TO request_log;
CREATE INDEX request_log_team_time ON request_log(team_id, created_at);
