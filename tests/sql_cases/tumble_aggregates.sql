-- min, max, median (a DataFusion aggregate run through its Accumulator) and an expression
-- argument over the windows of tumble_per_key.sql: a [0 s, 10 s) has 1.0 and 2.0,
-- a [10 s, 20 s) has 3.0, b [0 s, 10 s) has 10.0 and 20.0.
CREATE TABLE events AS
SELECT column1 AS user, column2 AS ts, column3 AS value FROM (VALUES
    ('a', TIMESTAMP '2024-01-01 00:00:01', 1.0),
    ('a', TIMESTAMP '2024-01-01 00:00:05', 2.0),
    ('b', TIMESTAMP '2024-01-01 00:00:03', 10.0),
    ('a', TIMESTAMP '2024-01-01 00:00:12', 3.0),
    ('a', TIMESTAMP '2024-01-01 00:00:11', 4.0),
    ('b', TIMESTAMP '2024-01-01 00:00:09', 20.0)
);

SELECT user, window_start, min(value) AS lo, max(value) AS hi, median(value) AS med, sum(value * 10) AS tens
FROM tumble('events', 'ts', INTERVAL '10 seconds')
GROUP BY user, window_start, window_end
ORDER BY user, window_start;
----
+------+----------------------+------+------+------+-------+
| user | window_start         | lo   | hi   | med  | tens  |
+------+----------------------+------+------+------+-------+
| a    | 2024-01-01T00:00:00Z | 1.0  | 2.0  | 1.5  | 30.0  |
| a    | 2024-01-01T00:00:10Z | 3.0  | 3.0  | 3.0  | 30.0  |
| b    | 2024-01-01T00:00:00Z | 10.0 | 20.0 | 15.0 | 300.0 |
+------+----------------------+------+------+------+-------+
