-- Tumbling 10 s windows, wait 0, one watermark per user (bytewax's default).
-- a: 1 s and 5 s fill [0 s, 10 s); 12 s pushes a's watermark to 12 s, closing it; 11 s then
-- arrives below the watermark: it is late (see tumble_late.sql), so [10 s, 20 s) holds only
-- 12 s. b's watermark never passes 10 s; its window closes at end of input with 3 s and 9 s.
CREATE TABLE events AS
SELECT column1 AS user, column2 AS ts, column3 AS value FROM (VALUES
    ('a', TIMESTAMP '2024-01-01 00:00:01', 1.0),
    ('a', TIMESTAMP '2024-01-01 00:00:05', 2.0),
    ('b', TIMESTAMP '2024-01-01 00:00:03', 10.0),
    ('a', TIMESTAMP '2024-01-01 00:00:12', 3.0),
    ('a', TIMESTAMP '2024-01-01 00:00:11', 4.0),
    ('b', TIMESTAMP '2024-01-01 00:00:09', 20.0)
);

SELECT user, window_start, window_end, count(*) AS n, sum(value) AS total, avg(value) AS mean
FROM tumble('events', 'ts', INTERVAL '10 seconds')
GROUP BY user, window_start, window_end
ORDER BY user, window_start;
----
+------+----------------------+----------------------+---+-------+------+
| user | window_start         | window_end           | n | total | mean |
+------+----------------------+----------------------+---+-------+------+
| a    | 2024-01-01T00:00:00Z | 2024-01-01T00:00:10Z | 2 | 3.0   | 1.5  |
| a    | 2024-01-01T00:00:10Z | 2024-01-01T00:00:20Z | 1 | 3.0   | 3.0  |
| b    | 2024-01-01T00:00:00Z | 2024-01-01T00:00:10Z | 2 | 30.0  | 15.0 |
+------+----------------------+----------------------+---+-------+------+
