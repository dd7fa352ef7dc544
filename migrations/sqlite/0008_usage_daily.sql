-- Usage per team, UTC day, key, model and outcome: what the console's totals, per-model and
-- per-key breakdowns and the dashboard read, so that they cost the same for a team with a
-- hundred requests as for one with millions. Written in the transaction that inserts the
-- request-log rows (each row counted once: only rows actually inserted are added), with the
-- cost of each request's charge, which is settled before or with its log row.
CREATE TABLE usage_daily (
    team_id            INTEGER NOT NULL,
    day                INTEGER NOT NULL,
    api_key_id         INTEGER NOT NULL,
    model              TEXT NOT NULL,
    -- 1 for a status below 400, else 0.
    ok                 INTEGER NOT NULL,
    requests           INTEGER NOT NULL,
    input_tokens       INTEGER NOT NULL,
    cached_tokens      INTEGER NOT NULL,
    cache_write_tokens INTEGER NOT NULL,
    output_tokens      INTEGER NOT NULL,
    reasoning_tokens   INTEGER NOT NULL,
    cost               INTEGER NOT NULL,
    PRIMARY KEY (team_id, day, api_key_id, model, ok)
) WITHOUT ROWID;

INSERT INTO usage_daily (team_id, day, api_key_id, model, ok, requests, input_tokens,
        cached_tokens, cache_write_tokens, output_tokens, reasoning_tokens, cost)
    SELECT r.team_id, r.created_at / 86400000, r.api_key_id, r.model,
        CASE WHEN r.status < 400 THEN 1 ELSE 0 END, COUNT(*), SUM(r.input_tokens),
        SUM(r.cached_tokens), SUM(r.cache_write_tokens), SUM(r.output_tokens),
        SUM(r.reasoning_tokens), SUM(COALESCE(c.cost, 0))
    FROM request_log r LEFT JOIN charge c ON c.request_id = r.request_id
    GROUP BY r.team_id, r.created_at / 86400000, r.api_key_id, r.model,
        CASE WHEN r.status < 400 THEN 1 ELSE 0 END;
