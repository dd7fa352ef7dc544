-- Measured speed per (channel, model), shared by replicas (#16 routing hints): moving
-- averages of the time to first token (microseconds) and of tokens per second (× 1000; 0 is
-- not measured), blended in by each replica every few seconds. Rows not updated for an hour
-- are ignored. No foreign keys: a row of a deleted channel is only never read again.
CREATE TABLE route_speed (
    channel_id  INTEGER NOT NULL,
    model_id    TEXT NOT NULL,
    ttft_us     INTEGER NOT NULL,
    tps_milli   INTEGER NOT NULL,
    samples     INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (channel_id, model_id)
);
