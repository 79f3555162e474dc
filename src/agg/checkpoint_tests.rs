//! Checkpoint round trips for every aggregation: the state of some windows is snapshotted,
//! the rows it refers to are saved and compacted per batch as the shard does, and a fresh
//! aggregator restored from that must go on exactly as the original (and as a twin that was
//! never snapshotted) through further rows and session merges.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, DictionaryArray, Float64Array, Int32Array, Int64Array, StringArray, StructArray, UInt32Array,
};
use arrow::compute::take;
use arrow::datatypes::{DataType, Field, Int32Type, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use datafusion::common::ScalarValue;
use datafusion::functions_aggregate::median::median_udaf;
use datafusion::functions_aggregate::stddev::stddev_udaf;

use super::rows::FirstLastFactory;
use super::*;

/// One aggregator and its store, driven as a shard drives them. Tests name windows; `slots`
/// maps them to this aggregator's slots (restored windows get other slots than they had).
struct Run {
    agg: Box<dyn SlotAgg>,
    store: BatchStore,
    slots: HashMap<u32, u32>,
    next_slot: u32,
    emitted: Vec<(Vec<EmitTag>, Vec<ArrayRef>)>,
}

impl Run {
    fn new(f: &dyn AggFactory) -> Self {
        Run { agg: f.create(), store: BatchStore::default(), slots: HashMap::new(), next_slot: 0, emitted: Vec::new() }
    }

    fn slot(&mut self, window: u32) -> u32 {
        if let Some(&s) = self.slots.get(&window) {
            return s;
        }
        let s = self.next_slot;
        self.next_slot += 1;
        self.agg.ensure_slots(self.next_slot as usize);
        self.slots.insert(window, s);
        s
    }

    fn drain(&mut self) {
        if let Some(e) = self.agg.drain_emitted(&mut self.store).unwrap() {
            self.emitted.push((e.tags, e.columns));
        }
    }

    /// Applies `rows` of batch `seq` to `windows`, pinning the batch meanwhile.
    fn push(&mut self, seq: u64, batch: &RecordBatch, rows: &[u32], windows: &[u32]) {
        let slots: Vec<u32> = windows.iter().map(|&w| self.slot(w)).collect();
        self.store.pin(seq, batch);
        self.agg.update(&BatchView { seq, batch }, rows, &slots, &mut self.store).unwrap();
        self.drain();
        self.store.unpin(seq);
    }

    fn merge(&mut self, target: u32, original: u32) {
        let (t, o) = (self.slot(target), self.slot(original));
        self.agg.merge(t, o, &mut self.store).unwrap();
        self.drain();
    }

    fn close(&mut self, windows: &[u32]) -> Vec<ArrayRef> {
        let slots: Vec<u32> = windows.iter().map(|&w| self.slot(w)).collect();
        let out = self.agg.evaluate(&slots, &mut self.store).unwrap();
        self.drain();
        out
    }

    /// Snapshots `windows` and restores them into a fresh aggregator of `f`, whose store holds
    /// only the saved rows: per batch, the referenced rows in order, under the same number.
    fn checkpoint(&mut self, f: &dyn AggFactory, windows: &[u32]) -> Run {
        let slots: Vec<u32> = windows.iter().map(|&w| self.slot(w)).collect();
        let mut refs = Vec::new();
        let columns = self.agg.snapshot(&slots, &mut refs).unwrap();
        for (i, (name, col)) in columns.iter().enumerate() {
            assert_eq!(col.len(), slots.len(), "column {name} has one row per slot");
            assert!(columns[..i].iter().all(|(n, _)| n != name), "column {name} is written once");
        }

        let mut saved: Vec<(u64, u32)> = refs.iter().map(|r| (r.batch, r.row)).collect();
        saved.sort_unstable();
        saved.dedup();
        let mut map = RowMap::default();
        let mut store = BatchStore::default();
        let mut pinned = Vec::new();
        for group in saved.chunk_by(|a, b| a.0 == b.0) {
            let seq = group[0].0;
            let src = self.store.get(seq).expect("the state retains the batches of its rows");
            let idx = UInt32Array::from(group.iter().map(|&(_, r)| r).collect::<Vec<_>>());
            let cols = src.columns().iter().map(|c| take(c, &idx, None).unwrap()).collect();
            let compact = RecordBatch::try_new(src.schema(), cols).unwrap();
            for (new_row, &(_, row)) in group.iter().enumerate() {
                map.insert(seq, row, new_row as u32);
            }
            store.pin(seq, &compact);
            pinned.push(seq);
        }

        let mut agg = f.create();
        let n = slots.len() as u32;
        let new_slots: Vec<u32> = (0..n).map(|i| n - i).collect(); // reversed, slot 0 unused
        agg.ensure_slots(n as usize + 1);
        agg.restore(&new_slots, &StateColumns::new(&columns), &map, &mut store).unwrap();
        for seq in pinned {
            store.unpin(seq);
        }

        // No slots: nothing to write, and restoring nothing works.
        let none = self.agg.snapshot(&[], &mut Vec::new()).unwrap();
        assert!(none.iter().all(|(_, c)| c.is_empty()));
        f.create().restore(&[], &StateColumns::new(&none), &RowMap::default(), &mut BatchStore::default()).unwrap();

        Run {
            agg,
            store,
            slots: windows.iter().copied().zip(new_slots).collect(),
            next_slot: n + 1,
            emitted: Vec::new(),
        }
    }
}

/// Runs `before` on two aggregators of `f`, checkpoints `windows` of one of them (twice in a
/// row: restoring compacted rows and snapshotting them again), then runs `after` on all of
/// them: the twin, the snapshotted one and both restored ones must give the same results and
/// emitted rows, and the restored ones must release every row they retained.
fn round_trip(
    f: &dyn AggFactory,
    before: impl Fn(&mut Run),
    windows: &[u32],
    after: impl Fn(&mut Run) -> Vec<Vec<ArrayRef>>,
) {
    let (mut twin, mut live) = (Run::new(f), Run::new(f));
    before(&mut twin);
    before(&mut live);
    assert_eq!(twin.emitted, live.emitted);
    let mut restored = live.checkpoint(f, windows);
    let mut again = restored.checkpoint(f, windows);
    let mut results = Vec::new();
    for run in [&mut twin, &mut live, &mut restored, &mut again] {
        run.emitted.clear();
        let out = after(run);
        results.push((out, std::mem::take(&mut run.emitted)));
    }
    assert!(!results[0].0.iter().flatten().all(|c| c.is_empty()) || !results[0].1.is_empty(), "something to compare");
    assert_eq!(results[1], results[0], "the snapshot changed the state");
    assert_eq!(results[2], results[0], "the restored state differs");
    assert_eq!(results[3], results[0], "the state restored twice differs");
    assert_eq!(restored.store.len(), 0, "the restored state retained rows it did not release");
    assert_eq!(again.store.len(), 0, "the state restored twice retained rows it did not release");
}

/// Input rows with nulls, repeats, NaN and ±0 that depend on the batch number.
fn data(seq: u64) -> RecordBatch {
    let rows = 0..6u64;
    let i: Int64Array =
        rows.clone().map(|r| (!(seq * 7 + r * 3).is_multiple_of(6)).then(|| ((seq + r) % 5) as i64 - 2)).collect();
    let f: Float64Array = rows
        .clone()
        .map(|r| match (seq * 5 + r) % 7 {
            0 => None,
            1 => Some(f64::NAN),
            2 => Some(-0.0),
            3 => Some(0.0),
            x => Some(x as f64 * 1.5),
        })
        .collect();
    let s: StringArray = rows.clone().map(|r| ["a", "b", "c"].get(((seq + r) % 4) as usize).copied()).collect();
    let k: StringArray = rows.clone().map(|r| Some(["x", "y", "z"][((seq * 2 + r) % 3) as usize])).collect();
    let d: DictionaryArray<Int32Type> = rows.map(|r| ["p", "q"].get(((seq + 2 * r) % 3) as usize).copied()).collect();
    let schema = Schema::new(vec![
        Field::new("i", DataType::Int64, true),
        Field::new("f", DataType::Float64, true),
        Field::new("s", DataType::Utf8, true),
        Field::new("k", DataType::Utf8, false),
        Field::new("d", d.data_type().clone(), true),
    ]);
    RecordBatch::try_new(Arc::new(schema), vec![Arc::new(i), Arc::new(f), Arc::new(s), Arc::new(k), Arc::new(d)])
        .unwrap()
}

fn schema() -> SchemaRef {
    data(0).schema()
}

const ALL_ROWS: [u32; 6] = [0, 1, 2, 3, 4, 5];

/// Windows 0..3 get rows, window 1 is merged into 3 and window 2 closed (so both are empty
/// when snapshotted).
fn before(run: &mut Run) {
    run.push(1, &data(1), &ALL_ROWS, &[0, 1, 2, 3, 0, 1]);
    run.push(2, &data(2), &[5, 0, 3, 1, 2], &[3, 3, 0, 1, 2]);
    run.merge(3, 1);
    run.push(3, &data(3), &[2, 4, 0], &[0, 3, 2]);
    run.close(&[2]);
}

/// The windows checkpointed: two with rows, two empty.
const WINDOWS: [u32; 4] = [3, 0, 2, 1];

/// More rows for restored and new windows, merges between restored windows and with new ones
/// in both directions, then every window with rows is closed.
fn after(run: &mut Run) -> Vec<Vec<ArrayRef>> {
    run.push(10, &data(10), &ALL_ROWS, &[0, 1, 2, 3, 2, 0]);
    run.merge(0, 3);
    run.push(11, &data(11), &[1, 2, 3, 4], &[5, 1, 5, 2]);
    run.merge(1, 5);
    run.push(12, &data(12), &[0, 5], &[6, 6]);
    run.merge(6, 0);
    vec![run.close(&[6, 2, 1])]
}

fn check(f: &dyn AggFactory) {
    assert_eq!(f.checkpoint_support(), Ok(()));
    round_trip(f, before, &WINDOWS, after);
}

#[test]
fn count_window_survives_a_checkpoint() {
    check(&CountFactory);
}

#[test]
fn agg_window_numeric_aggregates_survive_a_checkpoint() {
    let mut aggs = vec![Agg::count()];
    for col in ["i", "f"] {
        aggs.extend([Agg::count_of(col), Agg::sum(col), Agg::min(col), Agg::max(col), Agg::mean(col)]);
    }
    let f = BuiltinFactory::bind(&aggs, &schema()).unwrap();
    check(&f);

    // Part `i`'s columns are prefixed `{i}.`: a row count, then per numeric part `n` and the
    // running value, integer (`i`) or float (`f`; int means are floats).
    let mut run = Run::new(&f);
    before(&mut run);
    let names: Vec<String> = run.agg.snapshot(&[0], &mut Vec::new()).unwrap().into_iter().map(|(n, _)| n).collect();
    let expected = [
        "0.count", "1.n", "2.n", "2.i", "3.n", "3.i", "4.n", "4.i", "5.n", "5.f", "6.n", "7.n", "7.f", "8.n", "8.f",
        "9.n", "9.f", "10.n", "10.f",
    ];
    assert_eq!(names, expected);
}

#[test]
fn datafusion_aggregates_survive_a_checkpoint_even_when_state_hands_over_the_values() {
    // median's `Accumulator::state` moves its values out; stddev's copies three numbers.
    let aggs = [Agg::udaf(median_udaf(), "f"), Agg::udaf(median_udaf(), "i"), Agg::udaf(stddev_udaf(), "f")];
    check(&BuiltinFactory::bind(&aggs, &schema()).unwrap());
}

#[test]
fn collected_values_first_and_last_survive_a_checkpoint() {
    let aggs = [Agg::collect("s"), Agg::collect("f"), Agg::first("i"), Agg::last("s"), Agg::first("d")];
    check(&BuiltinFactory::bind(&aggs, &schema()).unwrap());
}

#[test]
fn first_and_last_merges_compare_arrival_across_the_restore() {
    // Alone (not in a composite), so that the picked rows are all there is to compare.
    for last in [false, true] {
        check(&FirstLastFactory { index: 2, last, name: "v".into(), schema: schema() });
    }
}

#[test]
fn collected_whole_rows_survive_a_checkpoint() {
    check(&CollectFactory::whole_rows(&schema()));
}

#[test]
fn max_and_min_by_a_column_survive_a_checkpoint() {
    for by in [0, 1, 2] {
        for max in [true, false] {
            check(&ArgBestFactory::bind(ByInput::Column(by), max, vec![0, 1, 2, 4], &schema()).unwrap());
        }
    }
}

/// A fold whose result depends on the order of rows and merges.
fn trail() -> FoldFns<String> {
    FoldFns::new(
        String::new,
        |acc: String, row| format!("{acc}{}{:?};", row.str("s").unwrap_or("-"), row.i64("i")),
        Field::new("trail", DataType::Utf8, true),
    )
    .with_merger(|a, b| format!("{a}|{b}"))
}

#[test]
fn fold_with_a_state_codec_survives_a_checkpoint() {
    let fns = trail().with_state(
        |acc: &String| ScalarValue::Utf8(Some(acc.clone())),
        |v| match v {
            ScalarValue::Utf8(Some(s)) => Ok(s.clone()),
            other => Err(format!("expected a string, got {other:?}")),
        },
    );
    check(&FoldFactory { fns });
}

#[test]
fn fold_without_a_state_codec_cannot_be_checkpointed() {
    let f = FoldFactory { fns: trail() };
    let why = f.checkpoint_support().unwrap_err();
    assert_eq!(why, "fold_window has no state codec: add FoldFns::with_state(save, load) to checkpoint it");
    let mut run = Run::new(&f);
    before(&mut run);
    let err = run.agg.snapshot(&[0], &mut Vec::new()).unwrap_err().to_string();
    assert!(err.contains(&why), "{err}");
}

#[test]
fn fold_state_codec_errors_name_the_codec() {
    let fns = trail().with_state(|acc: &String| ScalarValue::Utf8(Some(acc.clone())), |_| Err("no luck".into()));
    let f = FoldFactory { fns };
    let mut run = Run::new(&f);
    before(&mut run);
    let columns = run.agg.snapshot(&[0], &mut Vec::new()).unwrap();
    let mut fresh = f.create();
    fresh.ensure_slots(1);
    let err = fresh
        .restore(&[0], &StateColumns::new(&columns), &RowMap::default(), &mut BatchStore::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("fold_window state codec") && err.contains("no luck"), "{err}");
}

#[test]
fn reduce_survives_a_checkpoint() {
    let reducer: ReduceFn = Arc::new(|acc: Row, row: &Row| {
        let int = |r: &Row| match r.get("i") {
            Some(ScalarValue::Int64(v)) => *v,
            _ => None,
        };
        let text = |r: &Row| match r.get("s") {
            Some(ScalarValue::Utf8(v)) => v.clone(),
            _ => None,
        };
        let sum = match (int(&acc), int(row)) {
            (Some(a), Some(b)) => Some(a + b),
            (a, b) => a.or(b),
        };
        let trail = format!("{}{}", text(&acc).unwrap_or_default(), text(row).unwrap_or_else(|| "_".into()));
        acc.with("i", ScalarValue::Int64(sum)).with("s", ScalarValue::Utf8(Some(trail)))
    });
    let schema = schema();
    let value_columns = vec![0, 1, 2, 4];
    let fields = value_columns.iter().map(|&i| Arc::new(schema.field(i).clone())).collect();
    check(&ReduceFactory { reducer, value_columns, fields });
}

#[test]
fn collect_set_survives_a_checkpoint_in_first_insertion_order() {
    // Strings with nulls, floats with NaN and ±0, and a dictionary column.
    for col in [2, 1, 4, 0] {
        check(&CollectSetFactory::bind(col, &schema()).unwrap());
    }
}

#[test]
fn collect_dict_survives_a_checkpoint() {
    for (key, value) in [(3, 0), (3, 2), (4, 1)] {
        let f = CollectDictFactory::bind(key, value, &schema()).unwrap();
        if key == 4 {
            // The dictionary key column has nulls; those rows go to `errors` before a window.
            let run_rows = |run: &mut Run, seq: u64, windows: &[u32; 6]| {
                let b = data(seq);
                let valid: Vec<(u32, u32)> = ALL_ROWS
                    .iter()
                    .zip(windows)
                    .filter(|(r, _)| b.column(4).is_valid(**r as usize))
                    .map(|(&r, &w)| (r, w))
                    .collect();
                let (rows, ws): (Vec<u32>, Vec<u32>) = valid.into_iter().unzip();
                run.push(seq, &b, &rows, &ws);
            };
            round_trip(
                &f,
                |run| {
                    run_rows(run, 1, &[0, 1, 0, 1, 0, 1]);
                    run.merge(0, 1);
                    run_rows(run, 2, &[1, 0, 1, 0, 1, 0]);
                },
                &[0, 1],
                |run| {
                    run_rows(run, 10, &[0, 1, 2, 0, 1, 2]);
                    run.merge(2, 0);
                    vec![run.close(&[1, 2])]
                },
            );
        } else {
            check(&f);
        }
    }
}

/// A join input: the side of each row and one struct column per side.
fn join_data(seq: u64) -> RecordBatch {
    let rows = 0..6u64;
    let side: Int32Array = rows.clone().map(|r| Some(((seq + r * r) % 3 % 2) as i32)).collect();
    let a: Int64Array = rows.clone().map(|r| Some((seq * 10 + r) as i64)).collect();
    let b: StringArray = rows.map(|r| (!(seq + r).is_multiple_of(4)).then(|| format!("{seq}.{r}"))).collect();
    let left = StructArray::from(vec![(Arc::new(Field::new("a", DataType::Int64, true)), Arc::new(a) as ArrayRef)]);
    let right = StructArray::from(vec![(Arc::new(Field::new("b", DataType::Utf8, true)), Arc::new(b) as ArrayRef)]);
    let schema = Schema::new(vec![
        Field::new("side", DataType::Int32, false),
        Field::new("left", left.data_type().clone(), true),
        Field::new("right", right.data_type().clone(), true),
    ]);
    RecordBatch::try_new(Arc::new(schema), vec![Arc::new(side), Arc::new(left), Arc::new(right)]).unwrap()
}

#[test]
fn join_state_survives_a_checkpoint_in_every_insert_and_emit_mode() {
    let schema = join_data(0).schema();
    for insert in [InsertMode::First, InsertMode::Last, InsertMode::Product] {
        for emit in [EmitMode::Complete, EmitMode::Final, EmitMode::Running] {
            let f = JoinFactory {
                side_column: 0,
                struct_columns: vec![1, 2],
                fields: vec![Arc::new(schema.field(1).clone()), Arc::new(schema.field(2).clone())],
                insert,
                emit,
            };
            assert_eq!(f.checkpoint_support(), Ok(()));
            round_trip(
                &f,
                |run| {
                    run.push(1, &join_data(1), &ALL_ROWS, &[0, 1, 2, 3, 0, 1]);
                    run.push(2, &join_data(2), &[5, 0, 3, 1, 2], &[3, 3, 0, 1, 2]);
                    run.merge(3, 1);
                    run.push(3, &join_data(3), &[2, 4], &[0, 3]);
                    run.close(&[2]);
                },
                &WINDOWS,
                |run| {
                    run.push(10, &join_data(10), &ALL_ROWS, &[0, 1, 2, 3, 2, 0]);
                    run.merge(0, 3);
                    run.push(11, &join_data(11), &[1, 2, 3, 4], &[5, 1, 5, 2]);
                    run.merge(1, 5);
                    run.push(12, &join_data(12), &[0, 5], &[6, 6]);
                    run.merge(6, 0);
                    vec![run.close(&[6, 2, 1])]
                },
            );
        }
    }
}

#[test]
fn restore_from_state_without_a_column_names_it() {
    let f = BuiltinFactory::bind(&[Agg::count(), Agg::sum("i")], &schema()).unwrap();
    let mut run = Run::new(&f);
    before(&mut run);
    let mut columns = run.agg.snapshot(&[0, 3], &mut Vec::new()).unwrap();
    columns.retain(|(name, _)| name != "1.i");
    let mut fresh = f.create();
    fresh.ensure_slots(2);
    let err = fresh
        .restore(&[0, 1], &StateColumns::new(&columns), &RowMap::default(), &mut BatchStore::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("checkpoint state has no column \"1.i\""), "{err}");
}

#[test]
fn restore_of_a_row_the_checkpoint_did_not_save_fails() {
    let f = CollectFactory::whole_rows(&schema());
    let mut run = Run::new(&f);
    before(&mut run);
    let columns = run.agg.snapshot(&[0], &mut Vec::new()).unwrap();
    let mut fresh = f.create();
    fresh.ensure_slots(1);
    let err = fresh
        .restore(&[0], &StateColumns::new(&columns), &RowMap::default(), &mut BatchStore::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("which it did not save"), "{err}");
}
