-- Billing: accounts with a cached balance and hold, an append-only double-entry ledger, and
-- reservations (the hold taken before a request runs; once settled, the request's usage row).
-- Money is integer micro-USD; timestamps are Unix milliseconds.

-- One `team_balance` account per team, plus one row per system account kind.
CREATE TABLE account (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    team_id     BIGINT UNIQUE REFERENCES team(id),
    kind        TEXT NOT NULL CHECK (kind IN ('team_balance', 'stripe_clearing', 'revenue_markup', 'upstream_cost', 'manual_adjustment')),
    -- Cached SUM(ledger_entry.amount) of this account, updated in the posting transaction.
    balance     BIGINT NOT NULL DEFAULT 0,
    -- Sum of the amounts of this team's open ('reserved') reservations.
    held        BIGINT NOT NULL DEFAULT 0 CHECK (held >= 0),
    updated_at  BIGINT NOT NULL,
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
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind          TEXT NOT NULL,
    -- Idempotency key: `usage:<request_id>`, `manual:<uuid>`, `topup:<checkout session id>`...
    external_ref  TEXT NOT NULL UNIQUE,
    memo          TEXT,
    created_at    BIGINT NOT NULL
);

-- The entries of one transaction sum to zero: enforced by the one posting function, and here
-- also by a deferred constraint trigger checked at commit.
CREATE TABLE ledger_entry (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    txn_id      BIGINT NOT NULL REFERENCES ledger_txn(id),
    account_id  BIGINT NOT NULL REFERENCES account(id),
    amount      BIGINT NOT NULL CHECK (amount <> 0)
);
CREATE INDEX ledger_entry_txn ON ledger_entry(txn_id);
CREATE INDEX ledger_entry_account ON ledger_entry(account_id);

-- The ledger is append-only: corrections are reversing transactions.
CREATE FUNCTION ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only (% refused)', TG_TABLE_NAME, TG_OP;
END
$$;
CREATE TRIGGER ledger_entry_no_change BEFORE UPDATE OR DELETE ON ledger_entry
    FOR EACH ROW EXECUTE FUNCTION ledger_append_only();
CREATE TRIGGER ledger_entry_no_truncate BEFORE TRUNCATE ON ledger_entry
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_append_only();
CREATE TRIGGER ledger_txn_no_change BEFORE UPDATE OR DELETE ON ledger_txn
    FOR EACH ROW EXECUTE FUNCTION ledger_append_only();
CREATE TRIGGER ledger_txn_no_truncate BEFORE TRUNCATE ON ledger_txn
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_append_only();

CREATE FUNCTION ledger_txn_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    total NUMERIC;
BEGIN
    SELECT COALESCE(SUM(amount), 0) INTO total FROM ledger_entry WHERE txn_id = NEW.txn_id;
    IF total <> 0 THEN
        RAISE EXCEPTION 'ledger_txn % does not balance (sum %)', NEW.txn_id, total;
    END IF;
    RETURN NULL;
END
$$;
CREATE CONSTRAINT TRIGGER ledger_entry_balanced AFTER INSERT ON ledger_entry
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION ledger_txn_balanced();

-- A request's hold and, once settled, its usage row (one per request_id).
CREATE TABLE reservation (
    request_id          TEXT PRIMARY KEY,
    team_id             BIGINT NOT NULL REFERENCES team(id),
    api_key_id          BIGINT NOT NULL,
    model               TEXT NOT NULL,
    -- The amount held on the team account while status = 'reserved'.
    amount              BIGINT NOT NULL CHECK (amount >= 0),
    -- The price snapshot taken at reservation; settlement never reads the current tariff.
    price_input         BIGINT NOT NULL,
    price_cached_input  BIGINT,
    price_cache_write   BIGINT,
    price_output        BIGINT NOT NULL,
    price_reasoning     BIGINT,
    markup_bps          BIGINT NOT NULL,
    -- Weir's own prompt token count, billed by the reaper when the request never settled.
    prompt_estimate     BIGINT NOT NULL DEFAULT 0,
    status              TEXT NOT NULL CHECK (status IN ('reserved', 'settled', 'released')),
    input_tokens        BIGINT,
    cached_tokens       BIGINT,
    cache_write_tokens  BIGINT,
    output_tokens       BIGINT,
    reasoning_tokens    BIGINT,
    usage_source        TEXT,
    cost                BIGINT,
    checkpoint_output_tokens BIGINT NOT NULL DEFAULT 0,
    created_at          BIGINT NOT NULL,
    expires_at          BIGINT NOT NULL,
    finished_at         BIGINT
);
CREATE INDEX reservation_open ON reservation(expires_at) WHERE status = 'reserved';
CREATE INDEX reservation_team_time ON reservation(team_id, created_at);
