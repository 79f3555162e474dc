CREATE TABLE events AS
SELECT column1 AS user, column2 AS ts, column3 AS value FROM (VALUES
    ('a', TIMESTAMP '2024-01-01 00:00:01', 1.0),
    ('a', TIMESTAMP '2024-01-01 00:00:05', 2.0),
    ('b', TIMESTAMP '2024-01-01 00:00:03', 10.0),
    ('a', TIMESTAMP '2024-01-01 00:00:12', 3.0),
    ('a', TIMESTAMP '2024-01-01 00:00:11', 4.0),
    ('b', TIMESTAMP '2024-01-01 00:00:09', 20.0)
);

SELECT user, count(*) FROM hop('events', 'ts', INTERVAL '10 seconds') GROUP BY user, window_start;
----
error: usage: hop(table, time_column, slide, size [, wait [, offset [, scope]]])
