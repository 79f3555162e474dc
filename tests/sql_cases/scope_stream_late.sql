-- The late row of scope_stream.sql: a@5 s, for a's window [0 s, 10 s) (id 0 from the offset).
CREATE TABLE events AS
SELECT column1 AS user, column2 AS ts, column3 AS value FROM (VALUES
    ('a', TIMESTAMP '2024-01-01 00:00:01', 1.0),
    ('b', TIMESTAMP '2024-01-01 00:00:12', 2.0),
    ('a', TIMESTAMP '2024-01-01 00:00:05', 3.0)
);

SELECT user, window_id, value
FROM tumble_late('events', 'ts', INTERVAL '10 seconds', 'user', NULL, TIMESTAMP '2024-01-01 00:00:00', 'stream');
----
+------+-----------+-------+
| user | window_id | value |
+------+-----------+-------+
| a    | 0         | 3.0   |
+------+-----------+-------+
