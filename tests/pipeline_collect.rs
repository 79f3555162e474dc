//! TOML pipelines with `operator = "collect"` into a set or a dict (spec §8.2): the
//! hand-worked session-merge example of `tests/semantics.rs` through a pipeline file, and the
//! configuration errors, which must name what is missing.

#![allow(clippy::unwrap_used, reason = "a test should fail loudly on an unexpected error")]

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::compute::concat_batches;
use arrow::datatypes::Int64Type;
use windrow::pipeline::{Pipeline, RunMode};

/// Session gap 10 s, wait forever; arrivals `home@10, blog@30, cart@31, cart@12, home@20,
/// faq@25` (`ms` = the row's second). See `collect_set_and_dict_session_merge_example`.
const CSV: &str = "user,ts,page,ms
u,2024-03-12T00:00:10Z,home,10
u,2024-03-12T00:00:30Z,blog,30
u,2024-03-12T00:00:31Z,cart,31
u,2024-03-12T00:00:12Z,cart,12
u,2024-03-12T00:00:20Z,home,20
u,2024-03-12T00:00:25Z,faq,25
";

fn pipeline(collect: &str) -> String {
    format!(
        r#"
[[input]]
name = "views"
path = "views.csv"
schema = [{{ name = "user", type = "utf8" }}, {{ name = "ts", type = "timestamp_s", tz = "UTC" }},
          {{ name = "page", type = "utf8" }}, {{ name = "ms", type = "int64" }}]

[[step]]
id = "pages"
input = "views"
key = ["user"]
time = "ts"
wait = "forever"
window = {{ kind = "session", gap = "10s" }}
ordered = false
{collect}

[[output]]
from = "pages.down"
kind = "memory"
"#
    )
}

fn run(collect: &str) -> Result<RecordBatch, String> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("views.csv"), CSV).unwrap();
    let p = Pipeline::from_toml_str(&pipeline(collect), dir.path()).map_err(|e| e.to_string())?;
    let summary = p.build(RunMode::Replay).map_err(|e| e.to_string())?.run(|_| {}).map_err(|e| e.to_string())?;
    let (_, batches) = summary.memory.into_iter().next().expect("one memory output");
    let schema = batches.first().expect("a down batch").schema();
    Ok(concat_batches(&schema, &batches).unwrap())
}

fn strings(a: &ArrayRef) -> Vec<String> {
    a.as_string::<i32>().iter().map(|v| v.unwrap().to_string()).collect()
}

#[test]
fn collect_into_set_and_dict_from_toml() {
    let down = run("operator = \"collect\"\ninto = \"set\"\ncolumn = \"page\"").unwrap();
    assert_eq!(down.num_rows(), 1);
    let set = down.column_by_name("page").unwrap().as_list::<i32>().value(0);
    assert_eq!(strings(&set), ["home", "cart", "blog", "faq"]);

    let down = run("operator = \"collect\"\ninto = \"dict\"\ndict_key = \"page\"\ndict_value = \"ms\"").unwrap();
    let map = down.column_by_name("ms").unwrap().as_map();
    assert_eq!(map.len(), 1);
    assert_eq!(strings(map.keys()), ["home", "cart", "blog", "faq"]);
    assert_eq!(map.values().as_primitive::<Int64Type>().values().to_vec(), [20, 31, 30, 25]);

    // `into = "list"`: the target's rows, then the original's, then faq (whose set and dict
    // above are this list without repeats / written into a map).
    let down = run("operator = \"collect\"\ninto = \"list\"\ncolumn = \"page\"").unwrap();
    let list = down.column_by_name("page").unwrap().as_list::<i32>().value(0);
    assert_eq!(strings(&list), ["home", "cart", "home", "blog", "cart", "faq"]);
}

#[test]
fn collect_into_errors_say_what_is_missing() {
    let err = |collect: &str| run(collect).err().unwrap_or_else(|| panic!("expected an error for {collect:?}"));

    let e = err("operator = \"collect\"\ninto = \"set\"");
    assert!(e.contains("into = \"set\" needs `column`"), "{e}");
    let e = err("operator = \"collect\"\ninto = \"dict\"\ndict_key = \"page\"");
    assert!(e.contains("missing: dict_value") && !e.contains("missing: dict_key"), "{e}");
    let e = err("operator = \"collect\"\ninto = \"dict\"");
    assert!(e.contains("missing: dict_key, dict_value"), "{e}");
    let e = err("operator = \"collect\"\ninto = \"dict\"\ndict_key = \"page\"\ndict_value = \"ms\"\ncolumn = \"page\"");
    assert!(e.contains("`column` does not apply to into = \"dict\""), "{e}");
    let e = err("operator = \"collect\"\ninto = \"set\"\ncolumn = \"page\"\ndict_key = \"page\"");
    assert!(e.contains("`dict_key` applies to into = \"dict\""), "{e}");
    let e = err("operator = \"count\"\ninto = \"set\"");
    assert!(e.contains("`into` applies to operator = \"collect\""), "{e}");
    let e = err("operator = \"collect\"\ninto = \"bag\"");
    assert!(e.contains("unknown variant `bag`") && e.contains("dict"), "{e}");
    let e = err("operator = \"collect\"\ninto = \"dict\"\ndict_key = \"pg\"\ndict_value = \"ms\"");
    assert!(e.contains("key column \"pg\" not found"), "{e}");
}
