-- An alignment offset of two billion days lies past the representable instants: an error
-- naming the argument, not a crash.
CREATE TABLE events AS
SELECT column1 AS user, column2 AS ts FROM (VALUES ('a', TIMESTAMP '2024-01-01 00:00:01'));

SELECT user, count(*) FROM tumble('events', 'ts', INTERVAL '1 minute', NULL, INTERVAL '2000000000 days') GROUP BY user, window_start, window_end;
----
error: `offset`
