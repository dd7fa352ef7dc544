-- The operator's catalog console: upstream keys encrypted at rest (XChaCha20-Poly1305 under a
-- key derived from the instance secret; only the last four characters kept in clear), which
-- models a channel serves, who last edited a model (so a re-seed or an import leaves an
-- operator's edit alone), and the audit log of every catalog change.

-- `v1:` + base64(nonce || ciphertext); NULL for channels whose key is in `api_key` (seed,
-- demo) or named by `key_env`.
ALTER TABLE channel ADD COLUMN api_key_enc TEXT;
ALTER TABLE channel ADD COLUMN api_key_last4 TEXT NOT NULL DEFAULT '';
ALTER TABLE channel ADD COLUMN updated_at INTEGER;

-- `seed` (written by the seed file), `import` (a price-list import), `operator` (an edit in
-- the console or the CLI). Seeding and importing never touch an `operator` row.
ALTER TABLE model ADD COLUMN source TEXT NOT NULL DEFAULT 'seed';

-- A channel with rows here serves only these models; one without serves every model of its
-- provider.
CREATE TABLE channel_model (
    channel_id  INTEGER NOT NULL REFERENCES channel(id),
    model_id    TEXT NOT NULL REFERENCES model(id),
    PRIMARY KEY (channel_id, model_id)
);

CREATE TABLE catalog_audit (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    -- `user:<id>` from the console, `cli` from the command line.
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    target      TEXT NOT NULL,
    -- What changed, in words; never an upstream key.
    detail      TEXT NOT NULL DEFAULT '',
    created_at  INTEGER NOT NULL
);
CREATE INDEX catalog_audit_time ON catalog_audit(created_at);
