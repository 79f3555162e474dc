-- With wait 5 s (tumble_wait.sql) no row is late.
CREATE TABLE events AS
SELECT column1 AS user, column2 AS ts, column3 AS value FROM (VALUES
    ('a', TIMESTAMP '2024-01-01 00:00:01', 1.0),
    ('a', TIMESTAMP '2024-01-01 00:00:05', 2.0),
    ('b', TIMESTAMP '2024-01-01 00:00:03', 10.0),
    ('a', TIMESTAMP '2024-01-01 00:00:12', 3.0),
    ('a', TIMESTAMP '2024-01-01 00:00:11', 4.0),
    ('b', TIMESTAMP '2024-01-01 00:00:09', 20.0)
);

SELECT count(*) AS late_rows
FROM tumble_late('events', 'ts', INTERVAL '10 seconds', 'user', INTERVAL '5 seconds');
----
+-----------+
| late_rows |
+-----------+
| 0         |
+-----------+
