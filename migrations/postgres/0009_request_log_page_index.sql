-- The usage table pages by (created_at, request_id) descending. PostgreSQL's B-tree entries end
-- with the row's physical address, not the request id, so with the old index every matching
-- row of the date range was sorted before the page's LIMIT. With the id in the index the page
-- is read in order and stops after one page. (SQLite's request_log is keyed by request_id, so
-- its index entries already end with it.)
CREATE INDEX request_log_team_page ON request_log(team_id, created_at, request_id);
DROP INDEX request_log_team_time;
