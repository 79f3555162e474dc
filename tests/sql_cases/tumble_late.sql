-- The late rows of tumble_per_key.sql: a's 11 s row arrived after 12 s pushed a's watermark to
-- 12 s. Window ids count from the offset (2024-01-01 00:00:00), so [10 s, 20 s) is window 1.
CREATE TABLE events AS
SELECT column1 AS user, column2 AS ts, column3 AS value FROM (VALUES
    ('a', TIMESTAMP '2024-01-01 00:00:01', 1.0),
    ('a', TIMESTAMP '2024-01-01 00:00:05', 2.0),
    ('b', TIMESTAMP '2024-01-01 00:00:03', 10.0),
    ('a', TIMESTAMP '2024-01-01 00:00:12', 3.0),
    ('a', TIMESTAMP '2024-01-01 00:00:11', 4.0),
    ('b', TIMESTAMP '2024-01-01 00:00:09', 20.0)
);

SELECT user, window_id, ts, value
FROM tumble_late('events', 'ts', INTERVAL '10 seconds', 'user', NULL, TIMESTAMP '2024-01-01 00:00:00');
----
+------+-----------+---------------------+-------+
| user | window_id | ts                  | value |
+------+-----------+---------------------+-------+
| a    | 1         | 2024-01-01T00:00:11 | 4.0   |
+------+-----------+---------------------+-------+
