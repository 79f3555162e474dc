-- The late row of hop.sql (4 s) appears once per window it would have joined: -1 and 0.
CREATE TABLE events AS
SELECT column1 AS user, column2 AS ts, column3 AS value FROM (VALUES
    ('a', TIMESTAMP '2024-01-01 00:00:01', 1.0),
    ('a', TIMESTAMP '2024-01-01 00:00:06', 2.0),
    ('a', TIMESTAMP '2024-01-01 00:00:12', 4.0),
    ('a', TIMESTAMP '2024-01-01 00:00:04', 8.0)
);

SELECT user, window_id, value
FROM hop_late('events', 'ts', INTERVAL '5 seconds', INTERVAL '10 seconds', 'user', NULL, TIMESTAMP '2024-01-01 00:00:00')
ORDER BY window_id;
----
+------+-----------+-------+
| user | window_id | value |
+------+-----------+-------+
| a    | -1        | 8.0   |
| a    | 0         | 8.0   |
+------+-----------+-------+
