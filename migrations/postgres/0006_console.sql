-- The console: users, team membership with roles, invitation links, browser sessions, and
-- what the key list and the team statement need (key creator, last four characters, expiry,
-- last use; the team and actor of a ledger transaction).

-- `email` as typed; `email_key` (trimmed, lower-cased) is what makes an email unique.
CREATE TABLE app_user (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email          TEXT NOT NULL,
    email_key      TEXT NOT NULL UNIQUE,
    password_hash  TEXT NOT NULL,
    is_operator    BIGINT NOT NULL DEFAULT 0,
    created_at     BIGINT NOT NULL
);

CREATE TABLE team_member (
    team_id    BIGINT NOT NULL REFERENCES team(id),
    user_id    BIGINT NOT NULL REFERENCES app_user(id),
    role       TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'member')),
    joined_at  BIGINT NOT NULL,
    PRIMARY KEY (team_id, user_id)
);
CREATE INDEX team_member_user ON team_member(user_id);

-- Single-use invitation links; only a SHA-256 of the token is kept.
CREATE TABLE team_invite (
    token_hash  TEXT PRIMARY KEY,
    team_id     BIGINT NOT NULL REFERENCES team(id),
    role        TEXT NOT NULL CHECK (role IN ('admin', 'member')),
    created_by  BIGINT NOT NULL REFERENCES app_user(id),
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    used_by     BIGINT REFERENCES app_user(id),
    used_at     BIGINT
);
CREATE INDEX team_invite_team ON team_invite(team_id);

-- tower-sessions records (JSON), expiring.
CREATE TABLE web_session (
    id          TEXT PRIMARY KEY,
    data        TEXT NOT NULL,
    expires_at  BIGINT NOT NULL
);
CREATE INDEX web_session_expiry ON web_session(expires_at);

ALTER TABLE api_key ADD COLUMN created_by BIGINT REFERENCES app_user(id);
ALTER TABLE api_key ADD COLUMN last4 TEXT NOT NULL DEFAULT '';
ALTER TABLE api_key ADD COLUMN expires_at BIGINT;
-- Written by the metering batch, at most once a minute per key.
ALTER TABLE api_key ADD COLUMN last_used_at BIGINT;

-- The team whose balance a transaction moves (usage, credits, top-ups), for the team's
-- statement, and who did it (`user:<id>`, `cli`) for operator adjustments.
ALTER TABLE ledger_txn ADD COLUMN team_id BIGINT;
ALTER TABLE ledger_txn ADD COLUMN actor TEXT;
CREATE INDEX ledger_txn_team ON ledger_txn(team_id, id) WHERE team_id IS NOT NULL;

-- Transactions posted before this migration: the team of their team_balance entry. The
-- append-only trigger forbids UPDATE, so it is disabled for this one statement.
ALTER TABLE ledger_txn DISABLE TRIGGER ledger_txn_no_change;
UPDATE ledger_txn SET team_id = (
    SELECT a.team_id FROM ledger_entry e JOIN account a ON a.id = e.account_id
    WHERE e.txn_id = ledger_txn.id AND a.kind = 'team_balance' LIMIT 1);
ALTER TABLE ledger_txn ENABLE TRIGGER ledger_txn_no_change;
