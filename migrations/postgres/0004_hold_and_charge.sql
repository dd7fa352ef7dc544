-- Reservations in two tables, and one usage ledger transaction per team per commit window.
-- See migrations/sqlite/0004_hold_and_charge.sql for why.

CREATE TABLE hold (
    request_id          TEXT PRIMARY KEY,
    team_id             BIGINT NOT NULL REFERENCES team(id),
    api_key_id          BIGINT NOT NULL,
    model               TEXT NOT NULL,
    amount              BIGINT NOT NULL CHECK (amount >= 0),
    price_input         BIGINT NOT NULL,
    price_cached_input  BIGINT,
    price_cache_write   BIGINT,
    price_output        BIGINT NOT NULL,
    price_reasoning     BIGINT,
    markup_bps          BIGINT NOT NULL,
    prompt_estimate     BIGINT NOT NULL DEFAULT 0,
    checkpoint_output_tokens BIGINT NOT NULL DEFAULT 0,
    created_at          BIGINT NOT NULL,
    expires_at          BIGINT NOT NULL
);

CREATE TABLE charge (
    request_id          TEXT PRIMARY KEY,
    team_id             BIGINT NOT NULL REFERENCES team(id),
    api_key_id          BIGINT NOT NULL,
    model               TEXT NOT NULL,
    amount              BIGINT NOT NULL CHECK (amount >= 0),
    price_input         BIGINT NOT NULL,
    price_cached_input  BIGINT,
    price_cache_write   BIGINT,
    price_output        BIGINT NOT NULL,
    price_reasoning     BIGINT,
    markup_bps          BIGINT NOT NULL,
    prompt_estimate     BIGINT NOT NULL DEFAULT 0,
    status              TEXT NOT NULL CHECK (status IN ('settled', 'released')),
    input_tokens        BIGINT,
    cached_tokens       BIGINT,
    cache_write_tokens  BIGINT,
    output_tokens       BIGINT,
    reasoning_tokens    BIGINT,
    usage_source        TEXT,
    cost                BIGINT NOT NULL DEFAULT 0 CHECK (cost >= 0),
    ledger_txn_id       BIGINT REFERENCES ledger_txn(id),
    checkpoint_output_tokens BIGINT NOT NULL DEFAULT 0,
    created_at          BIGINT NOT NULL,
    finished_at         BIGINT NOT NULL,
    CHECK ((status = 'settled') = (input_tokens IS NOT NULL)),
    CHECK (cost = 0 OR ledger_txn_id IS NOT NULL)
);

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
