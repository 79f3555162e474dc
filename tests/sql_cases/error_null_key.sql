-- A NULL user cannot be windowed (spec: null keys go to `errors`). A SQL result has no place
-- for such rows, so the query fails naming them instead of dropping the row silently.
CREATE TABLE events AS
SELECT column1 AS user, column2 AS ts FROM (VALUES
    ('a', TIMESTAMP '2024-01-01 00:00:01'),
    (NULL, TIMESTAMP '2024-01-01 00:00:02')
);

SELECT user, count(*) FROM tumble('events', 'ts', INTERVAL '10 seconds') GROUP BY user, window_start, window_end;
----
error: 1 input row(s) cannot be windowed (first: null key column "user")
