-- The input of scope_stream.sql with per-key watermarks: a's watermark is 1 s when a@5 s
-- arrives, so it is on time and a's [0 s, 10 s) holds 1 s and 5 s.
CREATE TABLE events AS
SELECT column1 AS user, column2 AS ts, column3 AS value FROM (VALUES
    ('a', TIMESTAMP '2024-01-01 00:00:01', 1.0),
    ('b', TIMESTAMP '2024-01-01 00:00:12', 2.0),
    ('a', TIMESTAMP '2024-01-01 00:00:05', 3.0)
);

SELECT user, window_start, count(*) AS n, sum(value) AS total
FROM tumble('events', 'ts', INTERVAL '10 seconds', INTERVAL '0 seconds', NULL, 'key')
GROUP BY user, window_start, window_end
ORDER BY user;
----
+------+----------------------+---+-------+
| user | window_start         | n | total |
+------+----------------------+---+-------+
| a    | 2024-01-01T00:00:00Z | 2 | 4.0   |
| b    | 2024-01-01T00:00:10Z | 1 | 2.0   |
+------+----------------------+---+-------+
