-- Gap 5 s, wait 20 s (nothing is late). 1 s opens session 0, 10 s session 1; 6 s is within
-- 5 s of both, so it extends session 0 and bridges session 1 into it (spec 5.2): one session
-- 0 from 1 s to 10 s with all three values (sum 15, median 4).
CREATE TABLE events AS
SELECT column1 AS user, column2 AS ts, column3 AS value FROM (VALUES
    ('a', TIMESTAMP '2024-01-01 00:00:01', 1.0),
    ('a', TIMESTAMP '2024-01-01 00:00:10', 10.0),
    ('a', TIMESTAMP '2024-01-01 00:00:06', 4.0)
);

SELECT user, window_id, window_start, window_end, count(*) AS n, sum(value) AS total, median(value) AS med
FROM session('events', 'ts', INTERVAL '5 seconds', INTERVAL '20 seconds')
GROUP BY user, window_id, window_start, window_end;
----
+------+-----------+----------------------+----------------------+---+-------+-----+
| user | window_id | window_start         | window_end           | n | total | med |
+------+-----------+----------------------+----------------------+---+-------+-----+
| a    | 0         | 2024-01-01T00:00:01Z | 2024-01-01T00:00:10Z | 3 | 15.0  | 4.0 |
+------+-----------+----------------------+----------------------+---+-------+-----+
