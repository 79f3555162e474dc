-- hop(slide 5 s, size 10 s) aligned to 2024-01-01: window k is [5k s, 5k s + 10 s).
-- 1 s is in windows -1 and 0; 6 s in 0 and 1; 12 s in 1 and 2. 4 s arrives after 12 s pushed
-- the watermark to 12 s: late (hop_late.sql), in no window.
CREATE TABLE events AS
SELECT column1 AS user, column2 AS ts, column3 AS value FROM (VALUES
    ('a', TIMESTAMP '2024-01-01 00:00:01', 1.0),
    ('a', TIMESTAMP '2024-01-01 00:00:06', 2.0),
    ('a', TIMESTAMP '2024-01-01 00:00:12', 4.0),
    ('a', TIMESTAMP '2024-01-01 00:00:04', 8.0)
);

SELECT user, window_id, window_start, window_end, count(*) AS n, sum(value) AS total
FROM hop('events', 'ts', INTERVAL '5 seconds', INTERVAL '10 seconds', INTERVAL '0 seconds', TIMESTAMP '2024-01-01 00:00:00')
GROUP BY user, window_id, window_start, window_end
ORDER BY window_id;
----
+------+-----------+----------------------+----------------------+---+-------+
| user | window_id | window_start         | window_end           | n | total |
+------+-----------+----------------------+----------------------+---+-------+
| a    | -1        | 2023-12-31T23:59:55Z | 2024-01-01T00:00:05Z | 1 | 1.0   |
| a    | 0         | 2024-01-01T00:00:00Z | 2024-01-01T00:00:10Z | 2 | 3.0   |
| a    | 1         | 2024-01-01T00:00:05Z | 2024-01-01T00:00:15Z | 2 | 6.0   |
| a    | 2         | 2024-01-01T00:00:10Z | 2024-01-01T00:00:20Z | 1 | 4.0   |
+------+-----------+----------------------+----------------------+---+-------+
