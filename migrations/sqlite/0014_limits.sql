-- Limits on keys and teams (#16): requests, tokens and concurrent requests per minute (counted
-- by the limiter, in process or in Redis), the models a key may use, and spend caps per UTC
-- day, per calendar month and in total (counted here, in the same transaction as the hold).
CREATE TABLE usage_limit (
    scope           TEXT NOT NULL CHECK (scope IN ('key', 'team')),
    -- `api_key.id` or `team.id`.
    owner_id        INTEGER NOT NULL,
    rpm             INTEGER CHECK (rpm >= 0),
    tpm             INTEGER CHECK (tpm >= 0),
    max_concurrent  INTEGER CHECK (max_concurrent >= 0),
    -- Comma-separated model patterns (`*` matches any run of characters); NULL is any model.
    allowed_models  TEXT,
    -- Spend caps in micro-USD; NULL is no cap.
    day_cap         INTEGER CHECK (day_cap >= 0),
    month_cap       INTEGER CHECK (month_cap >= 0),
    total_cap       INTEGER CHECK (total_cap >= 0),
    -- Spent in the window named beside it (UTC days since the epoch; months since 1970-01),
    -- settled charges only; open holds of capped requests are in `held`.
    day             INTEGER NOT NULL DEFAULT 0,
    day_spent       INTEGER NOT NULL DEFAULT 0,
    month           INTEGER NOT NULL DEFAULT 0,
    month_spent     INTEGER NOT NULL DEFAULT 0,
    total_spent     INTEGER NOT NULL DEFAULT 0,
    held            INTEGER NOT NULL DEFAULT 0,
    updated_at      INTEGER NOT NULL,
    PRIMARY KEY (scope, owner_id)
);

-- Which spend caps a hold counts against: bit 1 its key's, bit 2 its team's. 0 (the common
-- case) costs settlement nothing.
ALTER TABLE hold ADD COLUMN caps INTEGER NOT NULL DEFAULT 0;

-- An operator's upstream quota per channel (requests and tokens per minute): Weir sends a
-- request elsewhere, or answers 429, before the provider's own 429.
ALTER TABLE channel ADD COLUMN rpm_quota INTEGER CHECK (rpm_quota >= 0);
ALTER TABLE channel ADD COLUMN tpm_quota INTEGER CHECK (tpm_quota >= 0);
