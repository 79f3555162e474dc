//! Self-tests of the naive reference (`tests/common/reference.rs`) against every worked
//! example of `shared/spec/windowing-semantics.md` that fits its model (replay mode, one value
//! column). Letters in the spec's examples are mapped to numbers: `a = 1, b = 2, …`; join rows
//! `L1`, `R3`, … use their digit as the value. Times are in seconds with `align_to = A = 0`
//! unless a test says otherwise.

mod common;

use common::reference::*;

// ---------------------------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------------------------

/// The value of a letter: `a = 1`, `b = 2`, …
fn l(c: char) -> f64 {
    (c as u8 - b'a' + 1) as f64
}

/// Rows of key `key` from `(letter, ts)` pairs, in arrival order.
fn letters(key: &str, items: &[(char, i64)]) -> Vec<RefRow> {
    items.iter().map(|&(c, ts)| RefRow::new(key, ts, l(c))).collect()
}

/// Rows of key `key` from `(value, ts)` pairs.
fn vals(key: &str, items: &[(f64, i64)]) -> Vec<RefRow> {
    items.iter().map(|&(v, ts)| RefRow::new(key, ts, v)).collect()
}

fn cfg(windower: RefWindower, op: RefOp, wait: Option<i64>, ordered: bool) -> RefConfig {
    RefConfig { windower, op, wait, ordered, per_stream: false }
}

fn tumbling(length: i64) -> RefWindower {
    RefWindower::Tumbling { length, align: 0 }
}

fn sliding(length: i64, offset: i64) -> RefWindower {
    RefWindower::Sliding { length, offset, align: 0 }
}

fn session(gap: i64) -> RefWindower {
    RefWindower::Session { gap }
}

fn join(insert: InsertMode, emit: EmitMode) -> RefOp {
    RefOp::Join { insert, emit }
}

fn coll(s: &str) -> RefResult {
    RefResult::Collect(s.chars().map(l).collect())
}

fn down(key: &str, id: i64, result: RefResult) -> RefDown {
    RefDown { key: key.to_string(), window_id: id, result }
}

fn meta(key: &str, id: i64, open: i64, close: i64, merged: &[i64]) -> RefMeta {
    RefMeta { key: key.to_string(), window_id: id, open_time: open, close_time: close, merged_ids: merged.to_vec() }
}

fn late(key: &str, id: i64, ts: i64, value: f64) -> RefLate {
    RefLate { key: key.to_string(), window_id: id, side: None, ts, value }
}

fn late_side(key: &str, id: i64, side: usize, ts: i64, value: f64) -> RefLate {
    RefLate { key: key.to_string(), window_id: id, side: Some(side), ts, value }
}

/// A join slot `(ts, value)`.
fn s(ts: i64, value: f64) -> Option<(i64, f64)> {
    Some((ts, value))
}

fn jrow(slots: &[Option<(i64, f64)>]) -> RefResult {
    RefResult::Join(slots.to_vec())
}

fn ids_of(out: &[RefDown]) -> Vec<i64> {
    out.iter().map(|d| d.window_id).collect()
}

fn run1(c: &RefConfig, rows: Vec<RefRow>) -> RefOutput {
    run_reference(c, &[rows])
}

// ---------------------------------------------------------------------------------------------
// §3.3: merges are applied right after the row that caused them
// ---------------------------------------------------------------------------------------------

#[test]
fn s3_3_merge_applied_after_causing_row_pqab() {
    let rows = letters("k", &[('p', 10), ('q', 30), ('a', 20), ('b', 25)]);
    let out = run1(&cfg(session(10), RefOp::Collect, None, false), rows.clone());
    assert_eq!(out.down, vec![down("k", 0, coll("paqb"))]);
    assert_eq!(out.meta, vec![meta("k", 0, 10, 30, &[1])]);
    assert!(out.late.is_empty());

    // Ordered mode (not in the spec's example; follows from §5.2.5): sorted, no merge.
    let out = run1(&cfg(session(10), RefOp::Collect, None, true), rows);
    assert_eq!(out.down, vec![down("k", 0, coll("pabq"))]);
    assert_eq!(out.meta, vec![meta("k", 0, 10, 30, &[])]);
}

// ---------------------------------------------------------------------------------------------
// §5.1 / §15: sliding and tumbling ids
// ---------------------------------------------------------------------------------------------

#[test]
fn s15_sliding_windower_ids_all_26_cases() {
    // Milliseconds, align_to = 09:00:00 = 0.
    let cases: &[(i64, i64, i64, &[i64])] = &[
        // L 10 s / O 5 s
        (10_000, 5_000, 13_000, &[1, 2]),
        (10_000, 5_000, -3_000, &[-2, -1]),
        (10_000, 5_000, 3_000, &[-1, 0]),
        (10_000, 5_000, 7_000, &[0, 1]),
        (10_000, 5_000, 15_000, &[2, 3]),
        (10_000, 5_000, -5_000, &[-2, -1]),
        (10_000, 5_000, 0, &[-1, 0]),
        (10_000, 5_000, 10_000, &[1, 2]),
        // L 10 s / O 3 s
        (10_000, 3_000, 11_000, &[1, 2, 3]),
        (10_000, 3_000, 11_500, &[1, 2, 3]),
        (10_000, 3_000, -1_000, &[-3, -2, -1]),
        (10_000, 3_000, -1_500, &[-3, -2, -1]),
        (10_000, 3_000, 5_000, &[-1, 0, 1]),
        // L 10 s / O 7 s
        (10_000, 7_000, 14_000, &[1, 2]),
        (10_000, 7_000, -7_000, &[-2, -1]),
        (10_000, 7_000, 0, &[-1, 0]),
        (10_000, 7_000, 17_000, &[2]),
        (10_000, 7_000, -4_000, &[-1]),
        (10_000, 7_000, 10_000, &[1]),
        // L 10 s / O 10 s
        (10_000, 10_000, 15_000, &[1]),
        (10_000, 10_000, -5_000, &[-1]),
        (10_000, 10_000, 5_000, &[0]),
        (10_000, 10_000, 20_000, &[2]),
        (10_000, 10_000, -10_000, &[-1]),
        (10_000, 10_000, 0, &[0]),
        (10_000, 10_000, 10_000, &[1]),
    ];
    assert_eq!(cases.len(), 26);
    for &(length, offset, ts, want) in cases {
        let got: Vec<i64> = fixed_windows_for_time(length, offset, 0, ts).into_iter().map(|w| w.0).collect();
        assert_eq!(got, want, "length {length} offset {offset} ts {ts}");
    }
    // §5.1 worked derivation: 10 s / 3 s at 09:00:05 → windows [−3,7), [0,10), [3,13).
    assert_eq!(fixed_windows_for_time(10, 3, 0, 5), vec![(-1, -3, 7), (0, 0, 10), (1, 3, 13)]);
    // A non-zero align_to shifts everything.
    assert_eq!(fixed_windows_for_time(10, 10, 1000, 995), vec![(-1, 990, 1000)]);
}

// ---------------------------------------------------------------------------------------------
// §5.2: sessions
// ---------------------------------------------------------------------------------------------

#[test]
fn s5_2_3_merge_target_is_earliest_opening_xyz() {
    let rows = letters("k", &[('x', 100), ('y', 85), ('z', 92)]);
    let out = run1(&cfg(session(10), RefOp::Collect, None, false), rows);
    assert_eq!(out.down, vec![down("k", 1, coll("yxz"))]);
    assert_eq!(out.meta, vec![meta("k", 1, 85, 100, &[0])]);
}

#[test]
fn s5_2_3_merged_ids_not_transitive_chain() {
    let rows = letters("k", &[('a', 0), ('b', 30), ('c', 50), ('x', 40), ('y', 20), ('z', 10)]);
    let out = run1(&cfg(session(10), RefOp::Collect, None, false), rows);
    assert_eq!(out.down, vec![down("k", 0, coll("azbxcy"))]);
    assert_eq!(out.meta, vec![meta("k", 0, 0, 50, &[1])]);
}

#[test]
fn s5_2_5_unordered_abcd() {
    let rows = letters("k", &[('a', 0), ('b', 30), ('c', 15), ('d', 22)]);
    let out = run1(&cfg(session(10), RefOp::Collect, None, false), rows);
    assert_eq!(out.down, vec![down("k", 0, coll("a")), down("k", 2, coll("cbd"))]);
    assert_eq!(out.meta, vec![meta("k", 0, 0, 0, &[]), meta("k", 2, 15, 30, &[1])]);
}

#[test]
fn s5_2_5_ordered_never_merges_xyz() {
    let rows = letters("k", &[('x', 100), ('y', 85), ('z', 92)]);
    let out = run1(&cfg(session(10), RefOp::Collect, None, true), rows);
    assert_eq!(out.down, vec![down("k", 0, coll("yzx"))]);
    assert_eq!(out.meta, vec![meta("k", 0, 85, 100, &[])]);
}

#[test]
fn s15_session_windower_cases_through_the_operator() {
    let c = cfg(session(10), RefOp::Collect, None, false);
    let metas = |ts: &[i64]| run1(&c, vals("k", &ts.iter().map(|&t| (t as f64, t)).collect::<Vec<_>>())).meta;
    // initial_session
    assert_eq!(metas(&[0]), vec![meta("k", 0, 0, 0, &[])]);
    // extend_forward_within_gap / exact_gap
    assert_eq!(metas(&[0, 5]), vec![meta("k", 0, 0, 5, &[])]);
    assert_eq!(metas(&[0, 10]), vec![meta("k", 0, 0, 10, &[])]);
    // extend_backward_within_gap / exact_gap
    assert_eq!(metas(&[0, -5]), vec![meta("k", 0, -5, 0, &[])]);
    assert_eq!(metas(&[0, -10]), vec![meta("k", 0, -10, 0, &[])]);
    // one unit beyond the gap: a new session
    assert_eq!(metas(&[0, 11]), vec![meta("k", 0, 0, 0, &[]), meta("k", 1, 11, 11, &[])]);
    // extend_merge: 00 (id 0), 20 (id 1), then 10 → assigned to 0, merges 1 → 0
    let out = run1(&c, vals("k", &[(0.0, 0), (20.0, 20), (10.0, 10)]));
    assert_eq!(out.meta, vec![meta("k", 0, 0, 20, &[1])]);
    assert_eq!(out.down, vec![down("k", 0, RefResult::Collect(vec![0.0, 10.0, 20.0]))]);
    // within_existing
    let out = run1(&c, vals("k", &[(0.0, 0), (10.0, 10), (5.0, 5)]));
    assert_eq!(out.meta, vec![meta("k", 0, 0, 10, &[])]);
    assert_eq!(out.down, vec![down("k", 0, RefResult::Collect(vec![0.0, 10.0, 5.0]))]);
    // late: the late id of a session row is −1 (wait 0)
    let out = run1(&cfg(session(10), RefOp::Collect, Some(0), false), vals("k", &[(1.0, 100), (2.0, 0)]));
    assert_eq!(out.late, vec![late("k", LATE_SESSION_ID, 0, 2.0)]);
    // gap = 0: only identical timestamps share a session
    let out = run1(&cfg(session(0), RefOp::Count, None, false), vals("k", &[(1.0, 0), (2.0, 0), (3.0, 1)]));
    assert_eq!(out.down, vec![down("k", 0, RefResult::Count(2)), down("k", 1, RefResult::Count(1))]);
    assert_eq!(out.meta, vec![meta("k", 0, 0, 0, &[]), meta("k", 1, 1, 1, &[])]);
}

#[test]
fn s5_2_4_session_close_boundary() {
    // gap 5, wait 0: b@5 arrives with W = 5 = last_ts + gap: on time, extends session 0.
    // c@10: W = 10, 5 < 10 − 5 is false → still open; d@11: 5 < 6 → closes.
    let c = cfg(session(5), RefOp::Collect, Some(0), false);
    let out = run1(&c, letters("k", &[('a', 0), ('b', 5), ('c', 11)]));
    assert_eq!(out.down, vec![down("k", 0, coll("ab")), down("k", 1, coll("c"))]);
    assert_eq!(out.meta, vec![meta("k", 0, 0, 5, &[]), meta("k", 1, 11, 11, &[])]);
    let out = run1(&c, letters("k", &[('a', 0), ('b', 5), ('c', 10)]));
    assert_eq!(out.down, vec![down("k", 0, coll("abc"))]);
}

// ---------------------------------------------------------------------------------------------
// §4 / §6: lateness
// ---------------------------------------------------------------------------------------------

#[test]
fn s6_late_while_window_open_d11_and_s7_5_full_stream() {
    let rows = letters("k", &[('a', 1), ('b', 5), ('c', 12), ('d', 11), ('e', 25)]);
    for ordered in [true, false] {
        let out = run1(&cfg(tumbling(10), RefOp::Collect, Some(0), ordered), rows.clone());
        assert_eq!(out.down, vec![down("k", 0, coll("ab")), down("k", 1, coll("c")), down("k", 2, coll("e"))]);
        assert_eq!(out.late, vec![late("k", 1, 11, l('d'))]);
        assert_eq!(out.meta, vec![meta("k", 0, 0, 10, &[]), meta("k", 1, 10, 20, &[]), meta("k", 2, 20, 30, &[])]);
    }
}

#[test]
fn s6_sliding_late_for_every_id_including_never_opened_gh() {
    let rows = letters("k", &[('g', 16), ('h', 1)]);
    let out = run1(&cfg(sliding(10, 5), RefOp::Collect, Some(0), true), rows);
    assert_eq!(out.late, vec![late("k", -1, 1, l('h')), late("k", 0, 1, l('h'))]);
    assert_eq!(out.down, vec![down("k", 2, coll("g")), down("k", 3, coll("g"))]);
    assert_eq!(out.meta, vec![meta("k", 2, 10, 20, &[]), meta("k", 3, 15, 25, &[])]);
}

#[test]
fn s6_join_row_made_late_by_other_side() {
    // The spec's arrival order: L1@15 (side 0), then R1@2 (side 1).
    let c = cfg(tumbling(10), join(InsertMode::Last, EmitMode::Final), Some(0), true);
    let out = run_reference_arrivals(&c, 2, &[(0, RefRow::new("k", 15, 1.0)), (1, RefRow::new("k", 2, 1.0))]);
    assert_eq!(out.late, vec![late_side("k", 0, 1, 2, 1.0)]);
    assert_eq!(out.down, vec![down("k", 1, jrow(&[s(15, 1.0), None]))]);
    assert_eq!(out.meta, vec![meta("k", 1, 10, 20, &[])]);

    // In replay mode (§11.4) the same two sides interleave as R1, L1: nothing is late.
    let sides = vec![vec![RefRow::new("k", 15, 1.0)], vec![RefRow::new("k", 2, 1.0)]];
    let out = run_reference(&c, &sides);
    assert!(out.late.is_empty());
    assert_eq!(out.down, vec![down("k", 0, jrow(&[None, s(2, 1.0)])), down("k", 1, jrow(&[s(15, 1.0), None]))]);

    // A replay input where it does happen: side 1 = [R0@19, R1@2] → L1, R0, R1.
    let sides = vec![vec![RefRow::new("k", 15, 1.0)], vec![RefRow::new("k", 19, 0.0), RefRow::new("k", 2, 1.0)]];
    let out = run_reference(&c, &sides);
    assert_eq!(out.late, vec![late_side("k", 0, 1, 2, 1.0)]);
    assert_eq!(out.down, vec![down("k", 1, jrow(&[s(15, 1.0), s(19, 0.0)]))]);
}

#[test]
fn s6_ts_equal_to_watermark_is_on_time() {
    // wait 0: b@5 with W = 5 is on time; c@4 is late.
    let out = run1(&cfg(tumbling(10), RefOp::Collect, Some(0), true), letters("k", &[('a', 5), ('b', 5), ('c', 4)]));
    assert_eq!(out.down, vec![down("k", 0, coll("ab"))]);
    assert_eq!(out.late, vec![late("k", 0, 4, l('c'))]);
    // wait 3: a@10 → W = 7; b@7 on time; c@6 late. (Both windows close at EOF, in creation
    // order: 1, then 0.)
    let out = run1(&cfg(tumbling(10), RefOp::Count, Some(3), false), letters("k", &[('a', 10), ('b', 7), ('c', 6)]));
    assert_eq!(out.down, vec![down("k", 1, RefResult::Count(1)), down("k", 0, RefResult::Count(1))]);
    assert_eq!(out.late, vec![late("k", 0, 6, l('c'))]);
}

#[test]
fn s4_1_overflowing_candidate_is_ignored() {
    // ts − wait below i64::MIN: the candidate is ignored, the watermark stays −∞.
    let t0 = i64::MIN + 5;
    let out = run1(&cfg(session(10), RefOp::Count, Some(100), false), vals("k", &[(1.0, t0), (2.0, t0 - 4)]));
    assert!(out.late.is_empty());
    assert_eq!(out.down, vec![down("k", 0, RefResult::Count(2))]);
    assert_eq!(out.meta, vec![meta("k", 0, t0 - 4, t0, &[])]);
}

#[test]
fn s4_1_3_infinite_wait_nothing_late_nothing_closes_before_eof() {
    // wait = ∞, ordered: everything is applied sorted at EOF; ids in ascending order.
    let rows = letters("k", &[('c', 25), ('a', 1), ('b', 12), ('d', 2)]);
    let out = run1(&cfg(tumbling(10), RefOp::Collect, None, true), rows.clone());
    assert!(out.late.is_empty());
    assert_eq!(out.down, vec![down("k", 0, coll("ad")), down("k", 1, coll("b")), down("k", 2, coll("c"))]);
    // Unordered: creation order 2, 0, 1; arrival order inside windows.
    let out = run1(&cfg(tumbling(10), RefOp::Collect, None, false), rows);
    assert_eq!(out.down, vec![down("k", 2, coll("c")), down("k", 0, coll("ad")), down("k", 1, coll("b"))]);
}

// ---------------------------------------------------------------------------------------------
// §7: closing and emission order
// ---------------------------------------------------------------------------------------------

#[test]
fn s7_2_close_order_is_creation_order_pqr() {
    let rows = letters("k", &[('p', 18), ('q', 5), ('r', 40)]);
    let out = run1(&cfg(tumbling(10), RefOp::Collect, Some(20), false), rows.clone());
    assert_eq!(out.down, vec![down("k", 1, coll("p")), down("k", 0, coll("q")), down("k", 4, coll("r"))]);
    assert_eq!(out.meta, vec![meta("k", 1, 10, 20, &[]), meta("k", 0, 0, 10, &[]), meta("k", 4, 40, 50, &[])]);

    let out = run1(&cfg(tumbling(10), RefOp::Collect, Some(20), true), rows.clone());
    assert_eq!(out.down, vec![down("k", 0, coll("q")), down("k", 1, coll("p")), down("k", 4, coll("r"))]);
    assert_eq!(ids_of(&out.down), out.meta.iter().map(|m| m.window_id).collect::<Vec<_>>());

    // Count is always unordered: `ordered = true` is ignored.
    let out = run1(&cfg(tumbling(10), RefOp::Count, Some(20), true), rows);
    assert_eq!(ids_of(&out.down), vec![1, 0, 4]);
}

#[test]
fn s7_2_one_row_per_batch_pqrs() {
    let rows = letters("k", &[('p', 18), ('q', 5), ('r', 32), ('s', 45)]);
    let out = run1(&cfg(tumbling(10), RefOp::Collect, Some(20), false), rows);
    assert_eq!(ids_of(&out.down), vec![0, 1, 3, 4]);
    assert_eq!(out.meta.iter().map(|m| m.window_id).collect::<Vec<_>>(), vec![0, 1, 3, 4]);
}

#[test]
fn s7_5_per_key_watermarks() {
    let rows = vec![
        RefRow::new("x", 1, 1.0),
        RefRow::new("y", 30, 30.0),
        RefRow::new("x", 2, 2.0),
        RefRow::new("y", 3, 3.0),
        RefRow::new("x", 15, 15.0),
    ];
    let out = run1(&cfg(tumbling(10), RefOp::Collect, Some(0), true), rows);
    let by = out.by_key();
    assert_eq!(
        by["x"].down,
        vec![down("x", 0, RefResult::Collect(vec![1.0, 2.0])), down("x", 1, RefResult::Collect(vec![15.0]))]
    );
    assert_eq!(by["y"].down, vec![down("y", 3, RefResult::Collect(vec![30.0]))]);
    assert_eq!(out.late, vec![late("y", 0, 3, 3.0)]);
    // x's window 0 closes when x@15 arrives, i.e. before anything emitted at EOF.
    assert_eq!(out.down[0], down("x", 0, RefResult::Collect(vec![1.0, 2.0])));
    assert_eq!(out.meta.len(), 3);
}

#[test]
fn s7_5_across_keys_and_s15_count_window() {
    let rows = vec![
        RefRow::new("a", 0, 0.0),
        RefRow::new("a", 4, 0.0),
        RefRow::new("b", 8, 0.0),
        RefRow::new("a", 12, 0.0),
        RefRow::new("a", 13, 0.0),
    ];
    let out = run1(&cfg(tumbling(10), RefOp::Count, Some(0), false), rows);
    assert_eq!(
        out.down,
        vec![down("a", 0, RefResult::Count(2)), down("a", 1, RefResult::Count(2)), down("b", 0, RefResult::Count(1))]
    );
    assert!(out.late.is_empty());
}

#[test]
fn s7_5_join_per_key_documentation_example() {
    // Tumbling 1 h aligned to 2023-01-01T00:00Z (epoch seconds), wait 0, last/final.
    let align = 1_672_531_200;
    let day = align + 347 * 86_400; // 2023-12-14T00:00Z
    let w = RefWindower::Tumbling { length: 3600, align };
    let (bee, hive, bee_mail, hive_mail, queen_mail) = (1.0, 2.0, 3.0, 4.0, 5.0);
    let names = vec![RefRow::new("123", day, bee), RefRow::new("456", day, hive)];
    let emails = vec![RefRow::new("123", day + 900, bee_mail), RefRow::new("456", day + 4500, hive_mail)];
    let out = run_reference(&cfg(w, join(InsertMode::Last, EmitMode::Final), Some(0), true), &[names.clone(), emails]);
    assert_eq!(
        out.down,
        vec![
            // key 456's window 8328 as soon as its 01:15 email arrives …
            down("456", 8328, jrow(&[s(day, hive), None])),
            // … the rest at EOF
            down("123", 8328, jrow(&[s(day, bee), s(day + 900, bee_mail)])),
            down("456", 8329, jrow(&[None, s(day + 4500, hive_mail)])),
        ]
    );
    assert!(out.late.is_empty());
    assert_eq!(out.meta.len(), 3);

    // With a second email for 123, "queen@" at 00:30.
    let emails = vec![
        RefRow::new("123", day + 900, bee_mail),
        RefRow::new("123", day + 1800, queen_mail),
        RefRow::new("456", day + 4500, hive_mail),
    ];
    let out = run_reference(
        &cfg(w, join(InsertMode::Last, EmitMode::Final), Some(0), true),
        &[names.clone(), emails.clone()],
    );
    assert_eq!(out.by_key()["123"].down, vec![down("123", 8328, jrow(&[s(day, bee), s(day + 1800, queen_mail)]))]);
    let out = run_reference(&cfg(w, join(InsertMode::Product, EmitMode::Final), Some(0), true), &[names, emails]);
    assert_eq!(
        out.by_key()["123"].down,
        vec![
            down("123", 8328, jrow(&[s(day, bee), s(day + 900, bee_mail)])),
            down("123", 8328, jrow(&[s(day, bee), s(day + 1800, queen_mail)])),
        ]
    );
}

#[test]
fn s7_5_session_meta() {
    let rows = letters("k", &[('a', 1), ('b', 5), ('c', 11), ('d', 16), ('e', 22)]);
    let out = run1(&cfg(session(5), RefOp::Collect, Some(0), true), rows);
    assert_eq!(out.down, vec![down("k", 0, coll("ab")), down("k", 1, coll("cd")), down("k", 2, coll("e"))]);
    assert_eq!(out.meta, vec![meta("k", 0, 1, 5, &[]), meta("k", 1, 11, 16, &[]), meta("k", 2, 22, 22, &[])]);
    assert!(out.late.is_empty());
}

#[test]
fn s7_5_ordered_buffering_replay_variant() {
    // The §7.5 buffering example without its timer (replay mode has none), one row per batch:
    // a@8 → W 3; b@2 late; c@6 queued; d@16 → W 11: c, a applied, window 0 closes; e@13 is on
    // time in replay (W 11), queued; f@15 queued; EOF: e, f, d applied sorted.
    let rows = letters("k", &[('a', 8), ('b', 2), ('c', 6), ('d', 16), ('e', 13), ('f', 15)]);
    let out = run1(&cfg(tumbling(10), RefOp::Collect, Some(5), true), rows.clone());
    assert_eq!(out.late, vec![late("k", 0, 2, l('b'))]);
    assert_eq!(out.down, vec![down("k", 0, coll("ca")), down("k", 1, coll("efd"))]);
    // Unordered: arrival order.
    let out = run1(&cfg(tumbling(10), RefOp::Collect, Some(5), false), rows);
    assert_eq!(out.late, vec![late("k", 0, 2, l('b'))]);
    assert_eq!(out.down, vec![down("k", 0, coll("ac")), down("k", 1, coll("def"))]);
}

// ---------------------------------------------------------------------------------------------
// §8: aggregations
// ---------------------------------------------------------------------------------------------

#[test]
fn s8_2_s15_collect_window() {
    let rows = vals("k", &[(1.0, 0), (3.0, 8), (2.0, 4), (5.0, 13), (4.0, 12)]);
    let out = run1(&cfg(tumbling(10), RefOp::Collect, None, true), rows.clone());
    assert_eq!(
        out.down,
        vec![down("k", 0, RefResult::Collect(vec![1.0, 2.0, 3.0])), down("k", 1, RefResult::Collect(vec![4.0, 5.0]))]
    );
    let out = run1(&cfg(tumbling(10), RefOp::Collect, None, false), rows);
    assert_eq!(
        out.down,
        vec![down("k", 0, RefResult::Collect(vec![1.0, 3.0, 2.0])), down("k", 1, RefResult::Collect(vec![5.0, 4.0]))]
    );
}

#[test]
fn s8_1_s15_fold_tumbling() {
    // Counting events by type = count keyed by type: login (0,1); post (0,2), (1,1).
    let rows = vec![
        RefRow::new("login", 0, 0.0),
        RefRow::new("post", 4, 0.0),
        RefRow::new("post", 8, 0.0),
        RefRow::new("post", 16, 0.0),
    ];
    let out = run1(&cfg(tumbling(10), RefOp::Count, Some(0), false), rows);
    let by = out.by_key();
    assert_eq!(by["login"].down, vec![down("login", 0, RefResult::Count(1))]);
    assert_eq!(by["post"].down, vec![down("post", 0, RefResult::Count(2)), down("post", 1, RefResult::Count(1))]);
    // The same stream on one key with a sum fold (values 1, 2, 4, 8).
    let rows = vals("k", &[(1.0, 0), (2.0, 4), (4.0, 8), (8.0, 16)]);
    let out = run1(&cfg(tumbling(10), RefOp::FoldSum, Some(0), true), rows);
    assert_eq!(out.down, vec![down("k", 0, RefResult::Sum(7.0)), down("k", 1, RefResult::Sum(8.0))]);
}

#[test]
fn s15_fold_session() {
    let rows = letters("k", &[('a', 1), ('b', 5), ('c', 11), ('d', 12), ('e', 13), ('f', 14), ('g', 20), ('h', 1)]);
    let out = run1(&cfg(session(5), RefOp::Collect, Some(0), true), rows.clone());
    assert_eq!(out.down, vec![down("k", 0, coll("ab")), down("k", 1, coll("cdef")), down("k", 2, coll("g"))]);
    assert_eq!(out.late, vec![late("k", -1, 1, l('h'))]);
    assert_eq!(out.meta, vec![meta("k", 0, 1, 5, &[]), meta("k", 1, 11, 14, &[]), meta("k", 2, 20, 20, &[])]);
    let out = run1(&cfg(session(5), RefOp::FoldSum, Some(0), true), rows);
    assert_eq!(
        out.down,
        vec![down("k", 0, RefResult::Sum(3.0)), down("k", 1, RefResult::Sum(18.0)), down("k", 2, RefResult::Sum(7.0))]
    );
}

#[test]
fn s15_fold_sliding() {
    let rows = letters("k", &[('a', 1), ('b', 4), ('c', 8), ('d', 12), ('e', 13), ('f', 14), ('g', 16), ('h', 1)]);
    let out = run1(&cfg(sliding(10, 5), RefOp::Collect, Some(0), true), rows.clone());
    assert_eq!(
        out.down,
        vec![
            down("k", -1, coll("ab")),
            down("k", 0, coll("abc")),
            down("k", 1, coll("cdef")),
            down("k", 2, coll("defg")),
            down("k", 3, coll("g")),
        ]
    );
    assert_eq!(out.late, vec![late("k", -1, 1, l('h')), late("k", 0, 1, l('h'))]);
    assert_eq!(
        out.meta.iter().map(|m| (m.window_id, m.open_time, m.close_time)).collect::<Vec<_>>(),
        vec![(-1, -5, 5), (0, 0, 10), (1, 5, 15), (2, 10, 20), (3, 15, 25)]
    );
    let out = run1(&cfg(sliding(10, 5), RefOp::FoldSum, Some(0), true), rows);
    let sums: Vec<RefResult> = out.down.into_iter().map(|d| d.result).collect();
    assert_eq!(
        sums,
        vec![RefResult::Sum(3.0), RefResult::Sum(6.0), RefResult::Sum(18.0), RefResult::Sum(22.0), RefResult::Sum(7.0)]
    );
}

#[test]
fn s8_4_s15_max_and_min_window() {
    let rows = vals("k", &[(1.0, 0), (9.0, 4), (3.0, 8), (10.0, 12), (4.0, 13)]);
    let out = run1(&cfg(tumbling(10), RefOp::Max, Some(0), false), rows.clone());
    assert_eq!(
        out.down,
        vec![down("k", 0, RefResult::Row { ts: 4, value: 9.0 }), down("k", 1, RefResult::Row { ts: 12, value: 10.0 })]
    );
    let out = run1(&cfg(tumbling(10), RefOp::Min, Some(0), false), rows);
    assert_eq!(
        out.down,
        vec![down("k", 0, RefResult::Row { ts: 0, value: 1.0 }), down("k", 1, RefResult::Row { ts: 13, value: 4.0 })]
    );
}

#[test]
fn s8_4_ties_keep_accumulator_and_merge_target() {
    // Ties keep the earliest arrival.
    let out = run1(&cfg(tumbling(10), RefOp::Max, None, false), vals("k", &[(5.0, 3), (5.0, 1), (2.0, 2)]));
    assert_eq!(out.down, vec![down("k", 0, RefResult::Row { ts: 3, value: 5.0 })]);
    // On a merge a tie keeps the target's row: x@100 (5) → session 0, y@85 (5) → session 1,
    // z@92 (1) joins 0 and merges 0 into 1 (the earliest-opening): y's row wins, though x
    // arrived first.
    let rows = vals("k", &[(5.0, 100), (5.0, 85), (1.0, 92)]);
    let out = run1(&cfg(session(10), RefOp::Max, None, false), rows.clone());
    assert_eq!(out.down, vec![down("k", 1, RefResult::Row { ts: 85, value: 5.0 })]);
    assert_eq!(out.meta, vec![meta("k", 1, 85, 100, &[0])]);
    let out = run1(&cfg(session(10), RefOp::Min, None, false), rows);
    assert_eq!(out.down, vec![down("k", 1, RefResult::Row { ts: 92, value: 1.0 })]);
}

#[test]
fn s8_3_s15_reduce_window() {
    let rows = vals("a", &[(1.0, 0), (1.0, 4), (1.0, 8), (1.0, 12), (1.0, 13)]);
    let out = run1(&cfg(tumbling(10), RefOp::ReduceSum, Some(0), true), rows);
    assert_eq!(out.down, vec![down("a", 0, RefResult::Sum(3.0)), down("a", 1, RefResult::Sum(2.0))]);
}

#[test]
fn s8_5_count_merges_add() {
    let rows = letters("k", &[('p', 10), ('q', 30), ('a', 20), ('b', 25)]);
    let out = run1(&cfg(session(10), RefOp::Count, None, false), rows);
    assert_eq!(out.down, vec![down("k", 0, RefResult::Count(4))]);
    assert_eq!(out.meta, vec![meta("k", 0, 10, 30, &[1])]);
}

// ---------------------------------------------------------------------------------------------
// §8.6 / §15: join_window
// ---------------------------------------------------------------------------------------------

fn lr(ts: i64, v: f64) -> RefRow {
    RefRow::new("k", ts, v)
}

fn join_cfg(insert: InsertMode, emit: EmitMode) -> RefConfig {
    cfg(session(10), join(insert, emit), None, true)
}

#[test]
fn s8_6_s15_join_table_examples() {
    use EmitMode::*;
    use InsertMode::*;
    // first_complete: L1@0; R3@2, R2@1 (applied L1, R2, R3)
    let out = run_reference(&join_cfg(First, Complete), &[vec![lr(0, 1.0)], vec![lr(2, 3.0), lr(1, 2.0)]]);
    assert_eq!(out.down, vec![down("k", 0, jrow(&[s(0, 1.0), s(1, 2.0)]))]);
    assert_eq!(out.meta, vec![meta("k", 0, 0, 2, &[])]); // meta despite the partial round
    // last_complete: L1@0; R2@1
    let out = run_reference(&join_cfg(Last, Complete), &[vec![lr(0, 1.0)], vec![lr(1, 2.0)]]);
    assert_eq!(out.down, vec![down("k", 0, jrow(&[s(0, 1.0), s(1, 2.0)]))]);
    // last_final / default (bytewax) / running / default (windrow): L1@0; R2@1, R3@2
    let sides = [vec![lr(0, 1.0)], vec![lr(1, 2.0), lr(2, 3.0)]];
    let out = run_reference(&join_cfg(Last, Final), &sides);
    assert_eq!(out.down, vec![down("k", 0, jrow(&[s(0, 1.0), s(2, 3.0)]))]);
    let out = run_reference(&join_cfg(Last, Running), &sides);
    assert_eq!(
        out.down,
        vec![
            down("k", 0, jrow(&[s(0, 1.0), None])),
            down("k", 0, jrow(&[s(0, 1.0), s(1, 2.0)])),
            down("k", 0, jrow(&[s(0, 1.0), s(2, 3.0)])),
        ]
    );
    let out = run_reference(&join_cfg(Last, Complete), &sides); // windrow's defaults
    assert_eq!(out.down, vec![down("k", 0, jrow(&[s(0, 1.0), s(1, 2.0)]))]);
    assert_eq!(out.meta, vec![meta("k", 0, 0, 2, &[])]);
    // product_final: L1@0, L2@1; R3@1, R4@2
    let out = run_reference(&join_cfg(Product, Final), &[vec![lr(0, 1.0), lr(1, 2.0)], vec![lr(1, 3.0), lr(2, 4.0)]]);
    assert_eq!(
        out.down,
        vec![
            down("k", 0, jrow(&[s(0, 1.0), s(1, 3.0)])),
            down("k", 0, jrow(&[s(0, 1.0), s(2, 4.0)])),
            down("k", 0, jrow(&[s(1, 2.0), s(1, 3.0)])),
            down("k", 0, jrow(&[s(1, 2.0), s(2, 4.0)])),
        ]
    );
}

#[test]
fn s8_6_join_several_complete_rounds_in_one_window() {
    use EmitMode::*;
    use InsertMode::*;
    // Tumbling 100, wait ∞, ordered: L1@0, R2@1, L3@2, R4@3 → rounds (1,2) and (3,4).
    let c = cfg(tumbling(100), join(Last, Complete), None, true);
    let out = run_reference(&c, &[vec![lr(0, 1.0), lr(2, 3.0)], vec![lr(1, 2.0), lr(3, 4.0)]]);
    assert_eq!(
        out.down,
        vec![down("k", 0, jrow(&[s(0, 1.0), s(1, 2.0)])), down("k", 0, jrow(&[s(2, 3.0), s(3, 4.0)]))]
    );
    assert_eq!(out.meta, vec![meta("k", 0, 0, 100, &[])]);
}

/// The merge table of §8.6 (windrow column): unordered, gap 10, wait ∞, arrivals
/// `L1@0` (side 0), `L2@20` (side 0), `R@10` (side 1), given as an explicit arrival order.
#[test]
fn s8_6_join_merge_table_all_nine_modes() {
    use EmitMode::*;
    use InsertMode::*;
    let (l1, l2, r) = (s(0, 1.0), s(20, 2.0), s(10, 3.0));
    let arrivals = [(0, lr(0, 1.0)), (0, lr(20, 2.0)), (1, lr(10, 3.0))];
    let cases: Vec<(InsertMode, EmitMode, Vec<RefDown>)> = vec![
        (First, Final, vec![down("k", 0, jrow(&[l1, r]))]),
        (Last, Final, vec![down("k", 0, jrow(&[l2, r]))]),
        (Product, Final, vec![down("k", 0, jrow(&[l1, r])), down("k", 0, jrow(&[l2, r]))]),
        (First, Complete, vec![down("k", 0, jrow(&[l1, r]))]),
        (Last, Complete, vec![down("k", 0, jrow(&[l1, r]))]),
        (Product, Complete, vec![down("k", 0, jrow(&[l1, r]))]),
        (
            First,
            Running,
            vec![
                down("k", 0, jrow(&[l1, None])),
                down("k", 1, jrow(&[l2, None])),
                down("k", 0, jrow(&[l1, r])),
                down("k", 0, jrow(&[l1, r])),
            ],
        ),
        (
            Last,
            Running,
            vec![
                down("k", 0, jrow(&[l1, None])),
                down("k", 1, jrow(&[l2, None])),
                down("k", 0, jrow(&[l1, r])),
                down("k", 0, jrow(&[l2, r])),
            ],
        ),
        (
            Product,
            Running,
            vec![
                down("k", 0, jrow(&[l1, None])),
                down("k", 1, jrow(&[l2, None])),
                down("k", 0, jrow(&[l1, r])),
                down("k", 0, jrow(&[l1, r])),
                down("k", 0, jrow(&[l2, r])),
            ],
        ),
    ];
    for (insert, emit, want) in cases {
        let c = cfg(session(10), join(insert, emit), None, false);
        let out = run_reference_arrivals(&c, 2, &arrivals);
        assert_eq!(out.down, want, "{insert:?}/{emit:?}");
        assert_eq!(out.meta, vec![meta("k", 0, 0, 20, &[1])], "{insert:?}/{emit:?}");
        assert!(out.late.is_empty());
    }

    // The same two sides under the replay interleaving of §11.4 arrive as L1, R, L2: no merge.
    let c = cfg(session(10), join(Last, Running), None, false);
    let out = run_reference(&c, &[vec![lr(0, 1.0), lr(20, 2.0)], vec![lr(10, 3.0)]]);
    assert_eq!(
        out.down,
        vec![down("k", 0, jrow(&[l1, None])), down("k", 0, jrow(&[l1, r])), down("k", 0, jrow(&[l2, r]))]
    );
    assert_eq!(out.meta, vec![meta("k", 0, 0, 20, &[])]);
}

/// A join session merge that happens under the replay interleaving (not a spec example; the
/// expectations follow §5.2, §8.6 and deviation 7). Side 0 = [L1@0, L2@20], side 1 =
/// [R0@30, R@10] → arrivals L1, L2, R0, R: R extends session 0 and bridges session 1 into it.
/// Side 1 shows deviation 7 from the other direction: the target's R is inserted after the
/// original's R0.
#[test]
fn s8_6_join_merge_under_replay_interleaving() {
    use EmitMode::*;
    use InsertMode::*;
    let sides = [vec![lr(0, 1.0), lr(20, 2.0)], vec![lr(30, 4.0), lr(10, 3.0)]];
    let (l1, l2, r0, r) = (s(0, 1.0), s(20, 2.0), s(30, 4.0), s(10, 3.0));
    let run = |insert, emit| run_reference(&cfg(session(10), join(insert, emit), None, false), &sides);
    let out = run(Last, Running);
    assert_eq!(
        out.down,
        vec![
            down("k", 0, jrow(&[l1, None])),
            down("k", 1, jrow(&[l2, None])),
            down("k", 1, jrow(&[l2, r0])),
            down("k", 0, jrow(&[l1, r])),
            down("k", 0, jrow(&[l2, r])),
        ]
    );
    assert_eq!(out.meta, vec![meta("k", 0, 0, 30, &[1])]);
    let out = run(First, Running);
    assert_eq!(out.down.last(), Some(&down("k", 0, jrow(&[l1, r0]))));
    let out = run(First, Final);
    assert_eq!(out.down, vec![down("k", 0, jrow(&[l1, r0]))]);
    let out = run(Last, Final);
    assert_eq!(out.down, vec![down("k", 0, jrow(&[l2, r]))]);
    let out = run(Product, Final);
    assert_eq!(
        out.down,
        vec![
            down("k", 0, jrow(&[l1, r])),
            down("k", 0, jrow(&[l1, r0])),
            down("k", 0, jrow(&[l2, r])),
            down("k", 0, jrow(&[l2, r0])),
        ]
    );
    let out = run(Product, Complete);
    assert_eq!(out.down, vec![down("k", 1, jrow(&[l2, r0])), down("k", 0, jrow(&[l1, r]))]);
    assert_eq!(out.meta, vec![meta("k", 0, 0, 30, &[1])]);
}

#[test]
fn s11_4_interleaving_and_single_side_join() {
    // Heads a@5, c@5, d@3 → d; then a@5 vs c@5 → a (tie: lower side); then b@1 → b; then c.
    let sides = vec![vec![lr(5, 1.0), lr(1, 2.0)], vec![lr(5, 3.0)], vec![lr(3, 4.0)]];
    let order: Vec<(usize, f64)> = interleave_sides(&sides).into_iter().map(|(s, r)| (s, r.value)).collect();
    assert_eq!(order, vec![(2, 4.0), (0, 1.0), (0, 2.0), (1, 3.0)]);

    // One side: rows are 1-tuples.
    let c = cfg(session(10), join(InsertMode::Product, EmitMode::Final), None, true);
    let out = run_reference(&c, &[vec![lr(1, 2.0), lr(0, 1.0)]]);
    assert_eq!(out.down, vec![down("k", 0, jrow(&[s(0, 1.0)])), down("k", 0, jrow(&[s(1, 2.0)]))]);
}

// ---------------------------------------------------------------------------------------------
// §12: per-stream watermark
// ---------------------------------------------------------------------------------------------

#[test]
fn s12_per_stream_watermark() {
    let rows = vec![
        RefRow::new("x", 1, 1.0),
        RefRow::new("y", 30, 30.0),
        RefRow::new("x", 2, 2.0),
        RefRow::new("y", 3, 3.0),
        RefRow::new("x", 15, 15.0),
    ];
    let mut c = cfg(tumbling(10), RefOp::Collect, Some(0), true);
    c.per_stream = true;
    let out = run1(&c, rows);
    assert_eq!(
        out.down,
        vec![down("x", 0, RefResult::Collect(vec![1.0])), down("y", 3, RefResult::Collect(vec![30.0]))]
    );
    assert_eq!(out.late, vec![late("x", 0, 2, 2.0), late("y", 0, 3, 3.0), late("x", 1, 15, 15.0)]);
    assert_eq!(out.meta, vec![meta("x", 0, 0, 10, &[]), meta("y", 3, 30, 40, &[])]);

    // A key's first row can be late per stream.
    let out = run1(&c, vec![RefRow::new("x", 100, 1.0), RefRow::new("y", 5, 2.0)]);
    assert_eq!(out.late, vec![late("y", 0, 5, 2.0)]);
    assert_eq!(out.down, vec![down("x", 10, RefResult::Collect(vec![1.0]))]);
}

#[test]
fn s12_per_stream_closes_idle_key_sessions() {
    // Key x's session closes when key y's rows push the stream watermark past 5 + 5.
    let rows = vec![RefRow::new("x", 0, 1.0), RefRow::new("x", 5, 2.0), RefRow::new("y", 11, 3.0)];
    let mut c = cfg(session(5), RefOp::Count, Some(0), false);
    c.per_stream = true;
    let out = run1(&c, rows);
    assert_eq!(out.down, vec![down("x", 0, RefResult::Count(2)), down("y", 0, RefResult::Count(1))]);
    assert_eq!(out.meta, vec![meta("x", 0, 0, 5, &[]), meta("y", 0, 11, 11, &[])]);

    // y@0, then x@20: per stream, y's session closes when x@20 arrives (20 > 0 + 5), so it
    // comes out before x's EOF emission; per key both close at EOF (in key order, x first).
    let rows = vec![RefRow::new("y", 0, 1.0), RefRow::new("x", 20, 2.0)];
    let out = run1(&c, rows.clone());
    assert_eq!(out.down, vec![down("y", 0, RefResult::Count(1)), down("x", 0, RefResult::Count(1))]);
    c.per_stream = false;
    let out = run1(&c, rows);
    assert_eq!(out.down, vec![down("x", 0, RefResult::Count(1)), down("y", 0, RefResult::Count(1))]);
}

// ---------------------------------------------------------------------------------------------
// §4.2 / §15: session_with_system_clock (replay: every row at the frozen instant)
// ---------------------------------------------------------------------------------------------

#[test]
fn s15_session_with_system_clock_in_replay() {
    let frozen = 1_000_000;
    let rows: Vec<RefRow> = (0..10).map(|i| RefRow::new("k", frozen, i as f64)).collect();
    let out = run1(&cfg(session(10), RefOp::Collect, Some(0), true), rows);
    assert_eq!(out.down, vec![down("k", 0, RefResult::Collect((0..10).map(|i| i as f64).collect()))]);
    assert_eq!(out.meta, vec![meta("k", 0, frozen, frozen, &[])]);
}

// ---------------------------------------------------------------------------------------------
// Speed: ~5 000 rows must take well under a second in a debug build.
// ---------------------------------------------------------------------------------------------

#[test]
fn speed_5000_rows() {
    // A deterministic pseudo-random stream: 20 keys, jittered timestamps, some late rows.
    let mut state: u64 = 0x1234_5678_9abc_def0;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let rows: Vec<RefRow> = (0..5000)
        .map(|i| {
            let k = format!("k{}", next() % 20);
            let ts = i as i64 * 10 + (next() % 200) as i64 - 100;
            RefRow::new(&k, ts, (next() % 1000) as f64)
        })
        .collect();
    let start = std::time::Instant::now();
    for windower in [tumbling(100), sliding(100, 30), session(15)] {
        for (wait, per_stream) in [(Some(0), false), (Some(50), true), (None, false)] {
            for op in [RefOp::Collect, RefOp::Max, join(InsertMode::Product, EmitMode::Running)] {
                let c = RefConfig { windower, op, wait, ordered: true, per_stream };
                let out = if matches!(op, RefOp::Join { .. }) {
                    let (a, b): (Vec<RefRow>, Vec<RefRow>) = rows.iter().cloned().partition(|r| r.value < 500.0);
                    run_reference(&c, &[a, b])
                } else {
                    run1(&c, rows.clone())
                };
                assert!(!out.meta.is_empty());
            }
        }
    }
    let per_run = start.elapsed() / 27;
    assert!(per_run.as_millis() < 500, "reference too slow: {per_run:?} per 5 000-row run");
}

// ---------------------------------------------------------------------------------------------
// §8.2: collect into set and dict (hand-worked; the same example as tests/semantics.rs)
// ---------------------------------------------------------------------------------------------

/// Session gap 10, wait ∞. Arrivals `1@10, 4@30, 2@31, 2@12, 1@20, 3@25`: session 0 =
/// `{1@10, 2@12}`, session 1 = `{4@30, 2@31}`; `1@20` extends session 0 to `[10,20]`, which
/// bridges session 1 into it (target 0, original 1); `3@25` lands in session 0.
/// Unordered: set `[1,2] ∪ [4,2]` then 3 → `[1,2,4,3]`; dict `{1:20, 2:12}` overridden by
/// `{4:30, 2:31}` → `{1:20, 2:31, 4:30}`, then `3:25`. Ordered: one session applied in
/// `(ts, arrival)` order `1@10, 2@12, 1@20, 3@25, 4@30, 2@31` → set `[1,2,3,4]`, dict
/// `{1:20, 2:31, 3:25, 4:30}`, no merge.
#[test]
fn s8_2_set_and_dict_with_a_session_merge() {
    let rows = vals("k", &[(1.0, 10), (4.0, 30), (2.0, 31), (2.0, 12), (1.0, 20), (3.0, 25)]);
    let out = run1(&cfg(session(10), RefOp::CollectSet, None, false), rows.clone());
    assert_eq!(out.down, vec![down("k", 0, RefResult::Set(vec![1.0, 2.0, 4.0, 3.0]))]);
    assert_eq!(out.meta, vec![meta("k", 0, 10, 31, &[1])]);
    let out = run1(&cfg(session(10), RefOp::CollectDict, None, false), rows.clone());
    assert_eq!(out.down, vec![down("k", 0, RefResult::Dict(vec![(1.0, 20), (2.0, 31), (4.0, 30), (3.0, 25)]))]);

    let out = run1(&cfg(session(10), RefOp::CollectSet, None, true), rows.clone());
    assert_eq!(out.down, vec![down("k", 0, RefResult::Set(vec![1.0, 2.0, 3.0, 4.0]))]);
    assert_eq!(out.meta, vec![meta("k", 0, 10, 31, &[])]);
    let out = run1(&cfg(session(10), RefOp::CollectDict, None, true), rows);
    assert_eq!(out.down, vec![down("k", 0, RefResult::Dict(vec![(1.0, 20), (2.0, 31), (3.0, 25), (4.0, 30)]))]);
}
