-- A GROUP BY without aggregates (here SELECT DISTINCT) lists the windows that closed with
-- rows: the windows of tumble_per_key.sql.
CREATE TABLE events AS
SELECT column1 AS user, column2 AS ts, column3 AS value FROM (VALUES
    ('a', TIMESTAMP '2024-01-01 00:00:01', 1.0),
    ('a', TIMESTAMP '2024-01-01 00:00:05', 2.0),
    ('b', TIMESTAMP '2024-01-01 00:00:03', 10.0),
    ('a', TIMESTAMP '2024-01-01 00:00:12', 3.0),
    ('a', TIMESTAMP '2024-01-01 00:00:11', 4.0),
    ('b', TIMESTAMP '2024-01-01 00:00:09', 20.0)
);

SELECT DISTINCT user, window_start FROM tumble('events', 'ts', INTERVAL '10 seconds') ORDER BY user, window_start;
----
+------+----------------------+
| user | window_start         |
+------+----------------------+
| a    | 2024-01-01T00:00:00Z |
| a    | 2024-01-01T00:00:10Z |
| b    | 2024-01-01T00:00:00Z |
+------+----------------------+
