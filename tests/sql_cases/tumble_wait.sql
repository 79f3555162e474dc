-- As tumble_per_key.sql with wait 5 s: a's watermark is max(ts) - 5 s = 7 s when 11 s arrives,
-- so 11 s is on time and joins 12 s in [10 s, 20 s); nothing closes before end of input.
CREATE TABLE events AS
SELECT column1 AS user, column2 AS ts, column3 AS value FROM (VALUES
    ('a', TIMESTAMP '2024-01-01 00:00:01', 1.0),
    ('a', TIMESTAMP '2024-01-01 00:00:05', 2.0),
    ('b', TIMESTAMP '2024-01-01 00:00:03', 10.0),
    ('a', TIMESTAMP '2024-01-01 00:00:12', 3.0),
    ('a', TIMESTAMP '2024-01-01 00:00:11', 4.0),
    ('b', TIMESTAMP '2024-01-01 00:00:09', 20.0)
);

SELECT user, window_start, count(*) AS n, sum(value) AS total, avg(value) AS mean
FROM tumble('events', 'ts', INTERVAL '10 seconds', INTERVAL '5 seconds')
GROUP BY user, window_start, window_end
ORDER BY user, window_start;
----
+------+----------------------+---+-------+------+
| user | window_start         | n | total | mean |
+------+----------------------+---+-------+------+
| a    | 2024-01-01T00:00:00Z | 2 | 3.0   | 1.5  |
| a    | 2024-01-01T00:00:10Z | 2 | 7.0   | 3.5  |
| b    | 2024-01-01T00:00:00Z | 2 | 30.0  | 15.0 |
+------+----------------------+---+-------+------+
