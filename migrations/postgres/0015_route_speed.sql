-- Measured speed per (channel, model), shared by replicas (#16 routing hints): moving
-- averages of the time to first token (microseconds) and of tokens per second (× 1000; 0 is
-- not measured), blended in by each replica every few seconds. Rows not updated for an hour
-- are ignored. No foreign keys: a row of a deleted channel is only never read again.
CREATE TABLE route_speed (
    channel_id  BIGINT NOT NULL,
    model_id    TEXT NOT NULL,
    ttft_us     BIGINT NOT NULL,
    tps_milli   BIGINT NOT NULL,
    samples     BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (channel_id, model_id)
);
