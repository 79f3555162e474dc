-- The late row of session.sql, with session windows' late id -1.
CREATE TABLE events AS
SELECT column1 AS user, column2 AS ts, column3 AS value FROM (VALUES
    ('a', TIMESTAMP '2024-01-01 00:00:01', 1.0),
    ('a', TIMESTAMP '2024-01-01 00:00:03', 2.0),
    ('a', TIMESTAMP '2024-01-01 00:00:10', 3.0),
    ('a', TIMESTAMP '2024-01-01 00:00:02', 100.0),
    ('a', TIMESTAMP '2024-01-01 00:00:20', 5.0),
    ('b', TIMESTAMP '2024-01-01 00:00:04', 7.0)
);

SELECT user, window_id, ts, value FROM session_late('events', 'ts', INTERVAL '5 seconds', 'user');
----
+------+-----------+---------------------+-------+
| user | window_id | ts                  | value |
+------+-----------+---------------------+-------+
| a    | -1        | 2024-01-01T00:00:02 | 100.0 |
+------+-----------+---------------------+-------+
