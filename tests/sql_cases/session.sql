-- Sessions with gap 5 s, wait 0. a: 1 s and 3 s form session 0; 10 s is 7 s after 3 s: session
-- 1; 2 s arrives when a's watermark is 10 s: late (session_late.sql); 20 s starts session 2.
-- Bounds are the first and last row times, inclusive. b: one session of one row.
CREATE TABLE events AS
SELECT column1 AS user, column2 AS ts, column3 AS value FROM (VALUES
    ('a', TIMESTAMP '2024-01-01 00:00:01', 1.0),
    ('a', TIMESTAMP '2024-01-01 00:00:03', 2.0),
    ('a', TIMESTAMP '2024-01-01 00:00:10', 3.0),
    ('a', TIMESTAMP '2024-01-01 00:00:02', 100.0),
    ('a', TIMESTAMP '2024-01-01 00:00:20', 5.0),
    ('b', TIMESTAMP '2024-01-01 00:00:04', 7.0)
);

SELECT user, window_id, window_start, window_end, count(*) AS n, sum(value) AS total
FROM session('events', 'ts', INTERVAL '5 seconds')
GROUP BY user, window_id, window_start, window_end
ORDER BY user, window_id;
----
+------+-----------+----------------------+----------------------+---+-------+
| user | window_id | window_start         | window_end           | n | total |
+------+-----------+----------------------+----------------------+---+-------+
| a    | 0         | 2024-01-01T00:00:01Z | 2024-01-01T00:00:03Z | 2 | 3.0   |
| a    | 1         | 2024-01-01T00:00:10Z | 2024-01-01T00:00:10Z | 1 | 3.0   |
| a    | 2         | 2024-01-01T00:00:20Z | 2024-01-01T00:00:20Z | 1 | 5.0   |
| b    | 0         | 2024-01-01T00:00:04Z | 2024-01-01T00:00:04Z | 1 | 7.0   |
+------+-----------+----------------------+----------------------+---+-------+
