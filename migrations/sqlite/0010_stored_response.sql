-- Responses kept for `previous_response_id` and `GET /v1/responses/{id}` (OpenAI's
-- `store`, default true): one row per stored response, scoped to the team whose key made
-- it, kept until `expires_at` (30 days), then removed by the reaper.
CREATE TABLE stored_response (
    id          TEXT PRIMARY KEY,
    team_id     INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    -- JSON array: every input item of the conversation up to this response (the previous
    -- response's input and output items, then this request's input).
    input_items TEXT NOT NULL,
    -- JSON object: the response as the client received it (its output items inside).
    response    TEXT NOT NULL
);
CREATE INDEX stored_response_expiry ON stored_response (expires_at);
