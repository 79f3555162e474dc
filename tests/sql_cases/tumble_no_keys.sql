-- No key columns: one window sequence, one watermark for the whole table. After a@1 s and
-- a@5 s the watermark is 5 s, so b@3 s is late; a@12 s moves it to 12 s, so a@11 s and b@9 s
-- are late too. [0 s, 10 s) holds 1 s and 5 s; [10 s, 20 s) holds 12 s.
CREATE TABLE events AS
SELECT column1 AS user, column2 AS ts, column3 AS value FROM (VALUES
    ('a', TIMESTAMP '2024-01-01 00:00:01', 1.0),
    ('a', TIMESTAMP '2024-01-01 00:00:05', 2.0),
    ('b', TIMESTAMP '2024-01-01 00:00:03', 10.0),
    ('a', TIMESTAMP '2024-01-01 00:00:12', 3.0),
    ('a', TIMESTAMP '2024-01-01 00:00:11', 4.0),
    ('b', TIMESTAMP '2024-01-01 00:00:09', 20.0)
);

SELECT window_start, count(*) AS n, sum(value) AS total
FROM tumble('events', 'ts', INTERVAL '10 seconds')
GROUP BY window_start, window_end
ORDER BY window_start;
----
+----------------------+---+-------+
| window_start         | n | total |
+----------------------+---+-------+
| 2024-01-01T00:00:00Z | 2 | 3.0   |
| 2024-01-01T00:00:10Z | 1 | 3.0   |
+----------------------+---+-------+
