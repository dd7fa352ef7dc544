-- Billing: accounts with a cached balance and hold, an append-only double-entry ledger, and
-- reservations (the hold taken before a request runs; once settled, the request's usage row).
-- Money is integer micro-USD; timestamps are Unix milliseconds.

-- One `team_balance` account per team, plus one row per system account kind.
CREATE TABLE account (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    team_id     INTEGER UNIQUE REFERENCES team(id),
    kind        TEXT NOT NULL CHECK (kind IN ('team_balance', 'stripe_clearing', 'revenue_markup', 'upstream_cost', 'manual_adjustment')),
    -- Cached SUM(ledger_entry.amount) of this account, updated in the posting transaction.
    balance     INTEGER NOT NULL DEFAULT 0,
    -- Sum of the amounts of this team's open ('reserved') reservations.
    held        INTEGER NOT NULL DEFAULT 0 CHECK (held >= 0),
    updated_at  INTEGER NOT NULL,
    CHECK ((kind = 'team_balance' AND team_id IS NOT NULL) OR (kind <> 'team_balance' AND team_id IS NULL))
);
CREATE UNIQUE INDEX account_system_kind ON account(kind) WHERE team_id IS NULL;

INSERT INTO account (team_id, kind, balance, held, updated_at) VALUES
    (NULL, 'stripe_clearing', 0, 0, 0),
    (NULL, 'revenue_markup', 0, 0, 0),
    (NULL, 'upstream_cost', 0, 0, 0),
    (NULL, 'manual_adjustment', 0, 0, 0);

-- Teams created before this migration get their account now; later ones at creation.
INSERT INTO account (team_id, kind, balance, held, updated_at)
    SELECT id, 'team_balance', 0, 0, created_at FROM team;

CREATE TABLE ledger_txn (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    kind          TEXT NOT NULL,
    -- Idempotency key: `usage:<request_id>`, `manual:<uuid>`, `topup:<checkout session id>`...
    external_ref  TEXT NOT NULL UNIQUE,
    memo          TEXT,
    created_at    INTEGER NOT NULL
);

-- The entries of one transaction sum to zero (enforced by the one posting function; on SQLite
-- there is no deferred constraint, so `weir ledger check` and the tests verify it).
CREATE TABLE ledger_entry (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    txn_id      INTEGER NOT NULL REFERENCES ledger_txn(id),
    account_id  INTEGER NOT NULL REFERENCES account(id),
    amount      INTEGER NOT NULL CHECK (amount <> 0)
);
CREATE INDEX ledger_entry_txn ON ledger_entry(txn_id);
CREATE INDEX ledger_entry_account ON ledger_entry(account_id);

-- The ledger is append-only: corrections are reversing transactions.
CREATE TRIGGER ledger_entry_no_update BEFORE UPDATE ON ledger_entry
BEGIN
    SELECT RAISE(ABORT, 'ledger_entry is append-only');
END;
CREATE TRIGGER ledger_entry_no_delete BEFORE DELETE ON ledger_entry
BEGIN
    SELECT RAISE(ABORT, 'ledger_entry is append-only');
END;
CREATE TRIGGER ledger_txn_no_update BEFORE UPDATE ON ledger_txn
BEGIN
    SELECT RAISE(ABORT, 'ledger_txn is append-only');
END;
CREATE TRIGGER ledger_txn_no_delete BEFORE DELETE ON ledger_txn
BEGIN
    SELECT RAISE(ABORT, 'ledger_txn is append-only');
END;

-- A request's hold and, once settled, its usage row (one per request_id).
CREATE TABLE reservation (
    request_id          TEXT PRIMARY KEY,
    team_id             INTEGER NOT NULL REFERENCES team(id),
    api_key_id          INTEGER NOT NULL,
    model               TEXT NOT NULL,
    -- The amount held on the team account while status = 'reserved'.
    amount              INTEGER NOT NULL CHECK (amount >= 0),
    -- The price snapshot taken at reservation; settlement never reads the current tariff.
    price_input         INTEGER NOT NULL,
    price_cached_input  INTEGER,
    price_cache_write   INTEGER,
    price_output        INTEGER NOT NULL,
    price_reasoning     INTEGER,
    markup_bps          INTEGER NOT NULL,
    -- Weir's own prompt token count, billed by the reaper when the request never settled.
    prompt_estimate     INTEGER NOT NULL DEFAULT 0,
    status              TEXT NOT NULL CHECK (status IN ('reserved', 'settled', 'released')),
    input_tokens        INTEGER,
    cached_tokens       INTEGER,
    cache_write_tokens  INTEGER,
    output_tokens       INTEGER,
    reasoning_tokens    INTEGER,
    usage_source        TEXT,
    cost                INTEGER,
    checkpoint_output_tokens INTEGER NOT NULL DEFAULT 0,
    created_at          INTEGER NOT NULL,
    expires_at          INTEGER NOT NULL,
    finished_at         INTEGER
);
CREATE INDEX reservation_open ON reservation(expires_at) WHERE status = 'reserved';
CREATE INDEX reservation_team_time ON reservation(team_id, created_at);
