-- Teams, API keys, the model catalog and the request log: what the gateway spine needs.

CREATE TABLE team (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT NOT NULL UNIQUE,
    active      INTEGER NOT NULL DEFAULT 1,
    created_at  INTEGER NOT NULL
);

-- Keys are `weir_<env>_<key_id>_<secret+checksum>`; only an Argon2 hash of the secret is kept.
CREATE TABLE api_key (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    key_id       TEXT NOT NULL UNIQUE,
    team_id      INTEGER NOT NULL REFERENCES team(id),
    env          TEXT NOT NULL CHECK (env IN ('dev', 'staging', 'prod')),
    name         TEXT NOT NULL DEFAULT '',
    secret_hash  TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    revoked_at   INTEGER
);
CREATE INDEX api_key_team ON api_key(team_id);

-- A provider is a vendor API with one wire format; channels are its endpoints with credentials.
CREATE TABLE provider (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    wire        TEXT NOT NULL CHECK (wire IN ('openai', 'anthropic', 'gemini', 'cohere')),
    base_url    TEXT NOT NULL,
    key_env     TEXT,
    created_at  INTEGER NOT NULL
);

CREATE TABLE channel (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    provider_id TEXT NOT NULL REFERENCES provider(id),
    name        TEXT NOT NULL UNIQUE,
    base_url    TEXT NOT NULL,
    -- Where the upstream key comes from until encrypted keys arrive with the admin console.
    key_env     TEXT,
    api_key     TEXT,
    priority    INTEGER NOT NULL DEFAULT 0,
    weight      INTEGER NOT NULL DEFAULT 1,
    enabled     INTEGER NOT NULL DEFAULT 1,
    is_local    INTEGER NOT NULL DEFAULT 0,
    created_at  INTEGER NOT NULL
);

CREATE TABLE model (
    id                 TEXT PRIMARY KEY,
    provider_id        TEXT NOT NULL REFERENCES provider(id),
    upstream_model     TEXT NOT NULL,
    kind               TEXT NOT NULL CHECK (kind IN ('chat', 'embedding')),
    context_window     INTEGER NOT NULL,
    max_output_tokens  INTEGER,
    capabilities       TEXT NOT NULL DEFAULT '{}',
    enabled            INTEGER NOT NULL DEFAULT 1,
    created_at         INTEGER NOT NULL
);

CREATE TABLE codename (
    name         TEXT PRIMARY KEY,
    description  TEXT NOT NULL DEFAULT ''
);

CREATE TABLE codename_model (
    codename  TEXT NOT NULL REFERENCES codename(name),
    model_id  TEXT NOT NULL REFERENCES model(id),
    position  INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (codename, model_id)
);

-- Prices in micro-USD per million tokens; versioned by effective time, never updated in place.
CREATE TABLE tariff (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    model_id            TEXT NOT NULL REFERENCES model(id),
    channel_id          INTEGER REFERENCES channel(id),
    input               INTEGER NOT NULL,
    cached_input        INTEGER,
    cache_write         INTEGER,
    output              INTEGER NOT NULL,
    reasoning           INTEGER,
    markup_bps          INTEGER NOT NULL DEFAULT 0,
    effective_from      INTEGER NOT NULL,
    source              TEXT NOT NULL DEFAULT 'seed'
);
CREATE INDEX tariff_model ON tariff(model_id, effective_from);

CREATE TABLE request_log (
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
);
CREATE INDEX request_log_team_time ON request_log(team_id, created_at);
