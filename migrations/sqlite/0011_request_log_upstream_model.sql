-- The model name the channel was sent (the catalog's upstream name), beside the client's own.
ALTER TABLE request_log ADD COLUMN upstream_model TEXT;
