-- Instance-wide settings (key/value), e.g. the catalog version that replicas poll.
CREATE TABLE instance_setting (
    name        TEXT PRIMARY KEY,
    value       TEXT NOT NULL,
    updated_at  INTEGER NOT NULL
);
