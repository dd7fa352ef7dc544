-- No query reads ledger entries by account yet (balances are cached on `account`; `weir ledger
-- check` scans the entries), and the index was the dearest part of posting usage: each usage
-- transaction adds an entry to three accounts, so it changed three places in this index, each
-- on its own page (measured on SQLite: a commit window of 10 requests wrote 30 WAL frames with
-- it and 26 without, in 230 us against 150). Add an index back with the query that needs it
-- (a team's statement in the console), for team accounts only if it can be.
DROP INDEX ledger_entry_account;
