-- Teams, API keys, the model catalog and the request log: what the gateway spine needs.

CREATE TABLE team (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    active      BIGINT NOT NULL DEFAULT 1,
    created_at  BIGINT NOT NULL
);

-- Keys are `weir_<env>_<key_id>_<secret+checksum>`; only an Argon2 hash of the secret is kept.
CREATE TABLE api_key (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    key_id       TEXT NOT NULL UNIQUE,
    team_id      BIGINT NOT NULL REFERENCES team(id),
    env          TEXT NOT NULL CHECK (env IN ('dev', 'staging', 'prod')),
    name         TEXT NOT NULL DEFAULT '',
    secret_hash  TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    revoked_at   BIGINT
);
CREATE INDEX api_key_team ON api_key(team_id);

-- A provider is a vendor API with one wire format; channels are its endpoints with credentials.
CREATE TABLE provider (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    wire        TEXT NOT NULL CHECK (wire IN ('openai', 'anthropic', 'gemini', 'cohere')),
    base_url    TEXT NOT NULL,
    key_env     TEXT,
    created_at  BIGINT NOT NULL
);

CREATE TABLE channel (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    provider_id TEXT NOT NULL REFERENCES provider(id),
    name        TEXT NOT NULL UNIQUE,
    base_url    TEXT NOT NULL,
    -- Where the upstream key comes from until encrypted keys arrive with the admin console.
    key_env     TEXT,
    api_key     TEXT,
    priority    BIGINT NOT NULL DEFAULT 0,
    weight      BIGINT NOT NULL DEFAULT 1,
    enabled     BIGINT NOT NULL DEFAULT 1,
    is_local    BIGINT NOT NULL DEFAULT 0,
    created_at  BIGINT NOT NULL
);

CREATE TABLE model (
    id                 TEXT PRIMARY KEY,
    provider_id        TEXT NOT NULL REFERENCES provider(id),
    upstream_model     TEXT NOT NULL,
    kind               TEXT NOT NULL CHECK (kind IN ('chat', 'embedding')),
    context_window     BIGINT NOT NULL,
    max_output_tokens  BIGINT,
    capabilities       TEXT NOT NULL DEFAULT '{}',
    enabled            BIGINT NOT NULL DEFAULT 1,
    created_at         BIGINT NOT NULL
);

CREATE TABLE codename (
    name         TEXT PRIMARY KEY,
    description  TEXT NOT NULL DEFAULT ''
);

CREATE TABLE codename_model (
    codename  TEXT NOT NULL REFERENCES codename(name),
    model_id  TEXT NOT NULL REFERENCES model(id),
    position  BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (codename, model_id)
);

-- Prices in micro-USD per million tokens; versioned by effective time, never updated in place.
CREATE TABLE tariff (
    id                  BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    model_id            TEXT NOT NULL REFERENCES model(id),
    channel_id          BIGINT REFERENCES channel(id),
    input               BIGINT NOT NULL,
    cached_input        BIGINT,
    cache_write         BIGINT,
    output              BIGINT NOT NULL,
    reasoning           BIGINT,
    markup_bps          BIGINT NOT NULL DEFAULT 0,
    effective_from      BIGINT NOT NULL,
    source              TEXT NOT NULL DEFAULT 'seed'
);
CREATE INDEX tariff_model ON tariff(model_id, effective_from);

CREATE TABLE request_log (
    request_id        TEXT PRIMARY KEY,
    team_id           BIGINT NOT NULL,
    api_key_id        BIGINT NOT NULL,
    endpoint          TEXT NOT NULL,
    model             TEXT NOT NULL,
    channel_id        BIGINT,
    status            BIGINT NOT NULL,
    error_kind        TEXT,
    stream            BIGINT NOT NULL,
    input_tokens      BIGINT NOT NULL DEFAULT 0,
    cached_tokens     BIGINT NOT NULL DEFAULT 0,
    cache_write_tokens BIGINT NOT NULL DEFAULT 0,
    output_tokens     BIGINT NOT NULL DEFAULT 0,
    reasoning_tokens  BIGINT NOT NULL DEFAULT 0,
    usage_source      TEXT NOT NULL,
    attempts          BIGINT NOT NULL,
    latency_ms        BIGINT NOT NULL,
    ttfb_ms           BIGINT,
    created_at        BIGINT NOT NULL
);
CREATE INDEX request_log_team_time ON request_log(team_id, created_at);
