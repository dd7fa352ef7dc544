-- Stripe Checkout top-ups: one row per top-up a team started, and every verified Stripe
-- event Weir has processed (its id is the deduplication key). Money is integer micro-USD.

CREATE TABLE topup (
    -- `tu_<uuid>`; also in the Checkout Session's metadata and the idempotency key.
    id              TEXT PRIMARY KEY,
    team_id         INTEGER NOT NULL REFERENCES team(id),
    created_by      INTEGER REFERENCES app_user(id),
    -- What the team pays and is credited (a whole number of cents, as micro-USD).
    amount          INTEGER NOT NULL CHECK (amount > 0),
    currency        TEXT NOT NULL,
    -- pending -> processing -> credited -> partially_refunded | refunded;
    -- pending | processing -> failed | expired; mismatch when Stripe's amount differs.
    status          TEXT NOT NULL CHECK (status IN ('pending', 'processing', 'credited', 'partially_refunded', 'refunded', 'failed', 'expired', 'mismatch')),
    session_id      TEXT UNIQUE,
    checkout_url    TEXT,
    payment_intent  TEXT UNIQUE,
    receipt_url     TEXT,
    -- Stripe's cumulative `amount_refunded` as last seen (micro-USD), and how much of the
    -- credit has been reversed for refunds so far; a refund seen before the credit is
    -- reversed right after it.
    refunded        INTEGER NOT NULL DEFAULT 0 CHECK (refunded >= 0),
    refund_reversed INTEGER NOT NULL DEFAULT 0 CHECK (refund_reversed >= 0),
    -- An open or lost dispute's amount, reversed while it is open (given back if won).
    dispute_id      TEXT,
    dispute_status  TEXT CHECK (dispute_status IN ('open', 'won', 'lost')),
    disputed        INTEGER NOT NULL DEFAULT 0 CHECK (disputed >= 0),
    -- Why the top-up is not credited (an amount or currency mismatch), for the operator.
    note            TEXT,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    credited_at     INTEGER
);
CREATE INDEX topup_team_time ON topup(team_id, created_at);

CREATE TABLE stripe_event (
    event_id     TEXT PRIMARY KEY,
    type         TEXT NOT NULL,
    topup_id     TEXT,
    -- What Weir did with it: credited, refunded, ignored, mismatch...
    outcome      TEXT NOT NULL,
    received_at  INTEGER NOT NULL
);
