//! `windrow sql` end to end on the bundled `data/clicks.parquet`. Expected counts come from
//! `data/README.md` (the demo settings: per-user tumbling 1-minute windows, event clock on
//! `ts`, wait 30 s, per-key watermark → 62,488 windows and 1,357 late rows of 200,000).

#![allow(clippy::unwrap_used, reason = "a test should fail loudly on an unexpected error")]

use assert_cmd::Command;

fn windrow_sql(args: &[&str]) -> assert_cmd::assert::Assert {
    let mut cmd = Command::cargo_bin("windrow").unwrap();
    cmd.current_dir(env!("CARGO_MANIFEST_DIR")).arg("sql").args(args).assert()
}

fn stdout(a: &assert_cmd::assert::Assert) -> String {
    String::from_utf8(a.get_output().stdout.clone()).unwrap()
}

const CLICKS: &str = "clicks=data/clicks.parquet";

#[test]
fn plain_sql_over_a_file() {
    let a = windrow_sql(&[
        "--table",
        CLICKS,
        "--format",
        "csv",
        "SELECT count(*) AS n, count(DISTINCT user) AS users FROM clicks",
    ])
    .success();
    assert_eq!(stdout(&a), "n,users\n200000,3373\n");
}

#[test]
fn window_function_matches_the_demo_counts() {
    let a = windrow_sql(&[
        "--table",
        CLICKS,
        "SELECT count(*) AS windows, sum(n) AS rows FROM (
             SELECT user, window_start, window_end, count(*) AS n
             FROM tumble('clicks', 'ts', INTERVAL '1 minute', INTERVAL '30 seconds')
             GROUP BY user, window_start, window_end)",
    ])
    .success();
    let out = stdout(&a);
    // 200,000 rows = 198,643 in windows + 1,357 late.
    assert!(out.contains("| 62488   | 198643 |"), "{out}");

    let a = windrow_sql(&[
        "--table",
        CLICKS,
        "--format",
        "csv",
        "SELECT count(*) AS late FROM tumble_late('clicks', 'ts', INTERVAL '1 minute', 'user', INTERVAL '30 seconds')",
    ])
    .success();
    assert_eq!(stdout(&a), "late\n1357\n");
}

#[test]
fn json_output_is_an_array_of_objects() {
    let a = windrow_sql(&[
        "--table",
        CLICKS,
        "--format",
        "json",
        "SELECT user, window_start, count(*) AS clicks
         FROM tumble('clicks', 'ts', INTERVAL '1 minute', INTERVAL '30 seconds')
         GROUP BY user, window_start, window_end ORDER BY clicks DESC, user LIMIT 2",
    ])
    .success();
    let rows: serde_json::Value = serde_json::from_str(&stdout(&a)).unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 2);
    for r in rows {
        assert!(r["user"].as_str().unwrap().starts_with('u'), "{r}");
        assert!(r["window_start"].as_str().unwrap().starts_with("2024-03-12T"), "{r}");
        assert!(r["clicks"].as_i64().unwrap() > 1, "{r}");
    }
}

#[test]
fn errors_name_the_problem() {
    let a = windrow_sql(&["--table", "clicks=data/missing.parquet", "SELECT 1"]).failure();
    let err = String::from_utf8(a.get_output().stderr.clone()).unwrap();
    assert!(err.contains("no such file or directory data/missing.parquet"), "{err}");

    let a = windrow_sql(&["--table", CLICKS, "SELECT * FROM tumble('clicks', 'ts', INTERVAL '1 minute')"]).failure();
    let err = String::from_utf8(a.get_output().stderr.clone()).unwrap();
    assert!(err.contains("Supported: SELECT <key columns>, window_start, window_end"), "{err}");

    let a = windrow_sql(&["--table", "clicks", "SELECT 1"]).failure();
    let err = String::from_utf8(a.get_output().stderr.clone()).unwrap();
    assert!(err.contains("expected NAME=PATH"), "{err}");
}
