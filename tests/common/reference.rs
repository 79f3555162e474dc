//! A deliberately naive, row-at-a-time reference implementation of windrow's windowing
//! semantics, written only from the contract in `shared/spec/windowing-semantics.md`.
//!
//! It exists to be compared against the real (vectorised) engine over random streams, so it
//! favours being an obviously literal transcription of the spec over speed:
//!
//! * **Replay mode only** (§11.1): system time is frozen, so the watermark of a scope is the
//!   running maximum of `ts − wait` over the scope's rows in arrival order (§4.1 rule 4), `−∞`
//!   before the first row and `+∞` at end of input. There are no timers.
//! * **One row per micro-batch**: every row is processed and then its scope is settled
//!   (§3.2). By the replay invariant (§11.2) this gives the same rows as any batching, and the
//!   same per-key order wherever §11.2 promises one.
//! * Timestamps, durations and `align_to` are plain `i64` in one unit.
//! * Window arithmetic is done in `i128` and checked: a row whose window bounds do not fit in
//!   `i64` would go to windrow's `errors` output (§4.3), which this reference does not model;
//!   it panics instead, so generators must keep timestamps away from the extremes of `i64`.
//!
//! The section numbers in comments refer to the spec.
#![allow(dead_code)]

use std::collections::BTreeMap;

// ---------------------------------------------------------------------------------------------
// Public API
// ---------------------------------------------------------------------------------------------

/// One input row: key, event time, and a single `f64` value column.
#[derive(Clone, Debug, PartialEq)]
pub struct RefRow {
    /// The key.
    pub key: String,
    /// The event time (plain `i64` in the run's unit).
    pub ts: i64,
    /// The value (the row's only non-key, non-time column).
    pub value: f64,
}

impl RefRow {
    /// Convenience constructor.
    pub fn new(key: &str, ts: i64, value: f64) -> Self {
        RefRow { key: key.to_string(), ts, value }
    }
}

/// The windower (§5). `Tumbling { length, align }` is `Sliding { length, offset: length, align }`.
#[derive(Clone, Copy, Debug)]
pub enum RefWindower {
    /// `TumblingWindower(length, align_to)`.
    Tumbling {
        /// Window length (> 0).
        length: i64,
        /// `align_to`.
        align: i64,
    },
    /// `SlidingWindower(length, offset, align_to)`.
    Sliding {
        /// Window length (> 0).
        length: i64,
        /// Offset between window starts (0 < offset <= length).
        offset: i64,
        /// `align_to`.
        align: i64,
    },
    /// `SessionWindower(gap)`.
    Session {
        /// The (inclusive) gap (>= 0).
        gap: i64,
    },
}

/// `join_window` insert mode (§8.6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InsertMode {
    /// Store a value only if the side is empty.
    First,
    /// Replace the side with the value.
    Last,
    /// Append the value to the side.
    Product,
}

/// `join_window` emit mode (§8.6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EmitMode {
    /// Emit a round when every side is non-empty, then clear all sides.
    Complete,
    /// Emit only at close.
    Final,
    /// Emit after every applied value and after every merge.
    Running,
}

/// The aggregation.
#[derive(Clone, Copy, Debug)]
pub enum RefOp {
    /// `count_window` (always unordered).
    Count,
    /// `collect_window` into a list of the value column.
    Collect,
    /// `collect_window` into a set of the value column (§8.2): each distinct value once, at its
    /// first insertion; a merge is the union, the target's values first. Values are equal iff
    /// their bits are (Arrow's total order: `-0.0 != 0.0`).
    CollectSet,
    /// `collect_window` into a dict (§8.2) from the value column (the dict key) to the event
    /// time (the dict value): `d[value] = ts` per applied row, so the last write wins; keys in
    /// first-insertion order; a merge writes the original's entries over the target's.
    CollectDict,
    /// `fold_window` with builder `0.0`, folder `acc + value`, merger `target + original`.
    FoldSum,
    /// `reduce_window` with reducer `acc + value` (always unordered).
    ReduceSum,
    /// `max_window` by value (always unordered).
    Max,
    /// `min_window` by value (always unordered).
    Min,
    /// `join_window`.
    Join {
        /// Insert mode.
        insert: InsertMode,
        /// Emit mode.
        emit: EmitMode,
    },
}

/// The operator configuration.
#[derive(Clone, Copy, Debug)]
pub struct RefConfig {
    /// The windower.
    pub windower: RefWindower,
    /// The aggregation.
    pub op: RefOp,
    /// `wait_for_system_duration`; `None` = infinite wait.
    pub wait: Option<i64>,
    /// Ordered mode; ignored (treated as `false`) for Count, ReduceSum, Max and Min.
    pub ordered: bool,
    /// Watermark scope: `false` = per key (default), `true` = per stream (§12).
    pub per_stream: bool,
}

/// One result on `down`.
#[derive(Clone, Debug, PartialEq)]
pub enum RefResult {
    /// `count_window`.
    Count(i64),
    /// `collect_window`: the values of the collected rows, in list order (§8.2).
    Collect(Vec<f64>),
    /// `collect_window` into a set: the distinct values, in first-insertion order.
    Set(Vec<f64>),
    /// `collect_window` into a dict: `(value, ts)` entries, keys in first-insertion order.
    Dict(Vec<(f64, i64)>),
    /// `fold_window` (sum fold) and `reduce_window` (sum reducer).
    Sum(f64),
    /// `max_window` / `min_window`: the chosen whole row.
    Row {
        /// The chosen row's event time.
        ts: i64,
        /// The chosen row's value.
        value: f64,
    },
    /// `join_window`: one slot per side, `(ts, value)` of that side's row or `None`.
    Join(Vec<Option<(i64, f64)>>),
}

/// A row on `down`.
#[derive(Clone, Debug, PartialEq)]
pub struct RefDown {
    /// The key.
    pub key: String,
    /// The window id.
    pub window_id: i64,
    /// The result.
    pub result: RefResult,
}

/// A row on `late` (one per window id the row would have joined).
#[derive(Clone, Debug, PartialEq)]
pub struct RefLate {
    /// The key.
    pub key: String,
    /// The window id (−1 for sessions).
    pub window_id: i64,
    /// The row's side (joins only; `None` otherwise).
    pub side: Option<usize>,
    /// The row's event time.
    pub ts: i64,
    /// The row's value.
    pub value: f64,
}

/// A row on `meta` (one per closed window).
#[derive(Clone, Debug, PartialEq)]
pub struct RefMeta {
    /// The key.
    pub key: String,
    /// The window id.
    pub window_id: i64,
    /// Tumbling/sliding: start (inclusive). Session: first row timestamp.
    pub open_time: i64,
    /// Tumbling/sliding: end (exclusive). Session: last row timestamp (inclusive).
    pub close_time: i64,
    /// Sessions merged directly into this one, ascending; empty for tumbling/sliding.
    pub merged_ids: Vec<i64>,
}

/// The three outputs, each in emission order (per key, the order of §7.2).
#[derive(Clone, Debug, Default)]
pub struct RefOutput {
    /// `down`.
    pub down: Vec<RefDown>,
    /// `late`.
    pub late: Vec<RefLate>,
    /// `meta`.
    pub meta: Vec<RefMeta>,
}

impl RefOutput {
    /// Splits the output by key, keeping each key's order within each stream.
    pub fn by_key(&self) -> BTreeMap<String, RefOutput> {
        let mut m: BTreeMap<String, RefOutput> = BTreeMap::new();
        for d in &self.down {
            m.entry(d.key.clone()).or_default().down.push(d.clone());
        }
        for l in &self.late {
            m.entry(l.key.clone()).or_default().late.push(l.clone());
        }
        for x in &self.meta {
            m.entry(x.key.clone()).or_default().meta.push(x.clone());
        }
        m
    }
}

/// `LATE_SESSION_ID` (§2.4).
pub const LATE_SESSION_ID: i64 = -1;

/// Runs the reference. `sides[s]` is side `s`'s rows in arrival order; non-join ops get
/// exactly one side. The sides of a join are interleaved by the replay rule of §11.4
/// ([`interleave_sides`]); every row is then its own micro-batch.
pub fn run_reference(cfg: &RefConfig, sides: &[Vec<RefRow>]) -> RefOutput {
    let arrivals = interleave_sides(sides);
    run_reference_arrivals(cfg, sides.len(), &arrivals)
}

/// Like [`run_reference`], but with the arrival order given explicitly as `(side, row)`
/// pairs instead of derived by §11.4 (for example the live-mode arrival orders that some spec
/// examples use, with system time still frozen). `n_sides` is the number of sides (1 for
/// non-join ops).
pub fn run_reference_arrivals(cfg: &RefConfig, n_sides: usize, arrivals: &[(usize, RefRow)]) -> RefOutput {
    validate(cfg, n_sides);
    for (side, _) in arrivals {
        assert!(*side < n_sides, "reference: side index {side} out of range");
    }
    let mut engine = Engine::new(cfg, n_sides);
    for (side, row) in arrivals {
        engine.process_row(*side, row);
    }
    engine.end_of_input();
    engine.out
}

/// §11.4: repeatedly take, among the next unread row of each side, the one with the smallest
/// event time; ties go to the lower side index. Each side's own order is preserved.
pub fn interleave_sides(sides: &[Vec<RefRow>]) -> Vec<(usize, RefRow)> {
    let total: usize = sides.iter().map(Vec::len).sum();
    let mut next = vec![0usize; sides.len()];
    let mut out = Vec::with_capacity(total);
    while out.len() < total {
        let mut best: Option<usize> = None;
        for (s, rows) in sides.iter().enumerate() {
            if let Some(r) = rows.get(next[s]) {
                // Strictly smaller only: ties keep the lower side index.
                if best.is_none_or(|b| r.ts < sides[b][next[b]].ts) {
                    best = Some(s);
                }
            }
        }
        let s = best.expect("reference: rows remain, so some side has a next row");
        out.push((s, sides[s][next[s]].clone()));
        next[s] += 1;
    }
    out
}

/// §5.1: the `(window_id, start, end)` of every window `[start, end)` containing `ts`,
/// ascending by id, for `SlidingWindower(length, offset, align)` (tumbling: `offset = length`).
/// Panics if a bound does not fit in `i64` (windrow: `errors`, "window bounds out of range").
pub fn fixed_windows_for_time(length: i64, offset: i64, align: i64, ts: i64) -> Vec<(i64, i64, i64)> {
    assert!(length > 0 && offset > 0 && offset <= length, "reference: invalid length/offset");
    let (length, offset, align) = (length as i128, offset as i128, align as i128);
    let d = ts as i128 - align;
    // Floor division (div_euclid with a positive divisor).
    let first = (d - length).div_euclid(offset) + 1;
    let last = d.div_euclid(offset);
    (first..=last)
        .map(|k| {
            let start = align + k * offset;
            let end = start + length;
            (to_i64(k), to_i64(start), to_i64(end))
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Internals
// ---------------------------------------------------------------------------------------------

fn to_i64(x: i128) -> i64 {
    i64::try_from(x)
        .unwrap_or_else(|_| panic!("reference: window bounds out of range (windrow would route the row to errors)"))
}

fn validate(cfg: &RefConfig, n_sides: usize) {
    match cfg.windower {
        RefWindower::Tumbling { length, .. } => {
            assert!(length > 0, "reference: length must be > 0")
        }
        RefWindower::Sliding { length, offset, .. } => {
            assert!(length > 0, "reference: length must be > 0");
            assert!(offset > 0 && offset <= length, "reference: need 0 < offset <= length");
        }
        RefWindower::Session { gap } => assert!(gap >= 0, "reference: gap must be >= 0"),
    }
    if let Some(w) = cfg.wait {
        assert!(w >= 0, "reference: wait must be >= 0");
    }
    match cfg.op {
        RefOp::Join { .. } => assert!(n_sides >= 1, "reference: a join needs at least one side"),
        _ => assert_eq!(n_sides, 1, "reference: non-join ops take exactly one side"),
    }
}

/// A watermark: `−∞`, an instant, or `+∞` (end of input). The derived order is the natural one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Wm {
    NegInf,
    At(i64),
    PosInf,
}

impl Wm {
    /// §6: a row is late iff `ts < W`.
    fn is_late(self, ts: i64) -> bool {
        match self {
            Wm::NegInf => false,
            Wm::At(w) => ts < w,
            Wm::PosInf => true,
        }
    }

    /// `x <= W`: a queued row with `ts = x` is due; a fixed window with `end = x` closes.
    fn reaches(self, x: i64) -> bool {
        match self {
            Wm::NegInf => false,
            Wm::At(w) => x <= w,
            Wm::PosInf => true,
        }
    }

    /// §5.2.4: a session closes iff `last_ts < W − gap` (checked: nothing closes while
    /// `W − gap` is below the representable range); every session closes at `+∞`.
    fn closes_session(self, last_ts: i64, gap: i64) -> bool {
        match self {
            Wm::NegInf => false,
            Wm::At(w) => w.checked_sub(gap).is_some_and(|t| last_ts < t),
            Wm::PosInf => true,
        }
    }
}

/// The operator-level constants the per-key functions need.
#[derive(Clone, Copy, Debug)]
struct Ctx {
    windower: RefWindower,
    op: RefOp,
    wait: Option<i64>,
    /// `ordered`, after forcing `false` for the always-unordered ops.
    ordered: bool,
    per_stream: bool,
    n_sides: usize,
}

impl Ctx {
    fn is_join(&self) -> bool {
        matches!(self.op, RefOp::Join { .. })
    }
}

/// An open tumbling/sliding window.
#[derive(Clone, Debug)]
struct FixedWin {
    id: i64,
    start: i64,
    end: i64,
}

/// A live session (§5.2).
#[derive(Clone, Debug)]
struct Session {
    id: i64,
    first_ts: i64,
    last_ts: i64,
    merged_ids: Vec<i64>,
}

/// A queued row (ordered mode); the queue is kept in arrival order.
#[derive(Clone, Debug)]
struct Queued {
    side: usize,
    ts: i64,
    value: f64,
}

/// The state of one key (§3.1). Keys are never forgotten (§14.1, §14.2): in replay mode the
/// clock state and `next_id` always survive, and an empty window list is the same as freed.
#[derive(Debug)]
struct KeyState {
    /// Per-key clock state (unused in per-stream scope): the running max of `ts − wait`.
    wm: Wm,
    /// Tumbling/sliding: open windows in creation order.
    fixed: Vec<FixedWin>,
    /// Sessions: live sessions in creation order (= ascending id).
    sessions: Vec<Session>,
    /// Sessions: the next id (never reset).
    next_session_id: i64,
    /// One aggregation state per open window that has received a row.
    states: BTreeMap<i64, Agg>,
    /// Ordered mode: accepted rows not yet applied, in arrival order.
    queue: Vec<Queued>,
    /// The smallest `ts` in `queue` (a cache, only to make "is anything due?" O(1)).
    queue_min: Option<i64>,
}

impl Default for KeyState {
    fn default() -> Self {
        KeyState {
            wm: Wm::NegInf,
            fixed: Vec::new(),
            sessions: Vec::new(),
            next_session_id: 0,
            states: BTreeMap::new(),
            queue: Vec::new(),
            queue_min: None,
        }
    }
}

impl KeyState {
    fn has_work(&self) -> bool {
        !self.fixed.is_empty() || !self.sessions.is_empty() || !self.queue.is_empty()
    }
}

/// A value stored on one side of a join window, with its insertion sequence number
/// (application order), needed by the `first`/`last` merge rules (§8.6, deviation 7).
#[derive(Clone, Copy, Debug)]
struct JoinVal {
    seq: u64,
    ts: i64,
    value: f64,
}

/// The aggregation state of one window (§8).
#[derive(Clone, Debug)]
enum Agg {
    Count(i64),
    Collect(Vec<f64>),
    /// Set: distinct values in first-insertion order.
    Set(Vec<f64>),
    /// Dict: `(key, value)` entries in first-insertion order of the key.
    Dict(Vec<(f64, i64)>),
    Fold(f64),
    Reduce(Option<f64>),
    /// Max/min: the chosen row `(ts, value)`.
    Best(Option<(i64, f64)>),
    /// Join: one list of values per side.
    Join(Vec<Vec<JoinVal>>),
}

impl Agg {
    fn empty(ctx: &Ctx) -> Agg {
        match ctx.op {
            RefOp::Count => Agg::Count(0),
            RefOp::Collect => Agg::Collect(Vec::new()),
            RefOp::CollectSet => Agg::Set(Vec::new()),
            RefOp::CollectDict => Agg::Dict(Vec::new()),
            RefOp::FoldSum => Agg::Fold(0.0), // builder()
            RefOp::ReduceSum => Agg::Reduce(None),
            RefOp::Max | RefOp::Min => Agg::Best(None),
            RefOp::Join { .. } => Agg::Join(vec![Vec::new(); ctx.n_sides]),
        }
    }

    /// "Keep the accumulator unless the candidate is strictly better" (§8.4). Floating-point
    /// values are compared with the total order (§16 item 21: Arrow's total order).
    fn better(op: RefOp, candidate: f64, current: f64) -> bool {
        match op {
            RefOp::Max => candidate.total_cmp(&current).is_gt(),
            RefOp::Min => candidate.total_cmp(&current).is_lt(),
            _ => unreachable!("better() is only for max/min"),
        }
    }

    /// Applies one row; returns what the state emits on this value (joins only).
    fn insert(&mut self, ctx: &Ctx, side: usize, ts: i64, value: f64, seq: u64) -> Vec<RefResult> {
        match self {
            Agg::Count(n) => *n += 1,
            Agg::Collect(list) => list.push(value),
            Agg::Set(set) => set_add(set, value),
            Agg::Dict(dict) => dict_write(dict, value, ts),
            Agg::Fold(acc) => *acc += value,
            Agg::Reduce(acc) => {
                *acc = Some(match *acc {
                    None => value,
                    Some(a) => a + value,
                })
            }
            Agg::Best(best) => match *best {
                None => *best = Some((ts, value)),
                Some((_, cur)) => {
                    if Agg::better(ctx.op, value, cur) {
                        *best = Some((ts, value));
                    }
                }
            },
            Agg::Join(sides) => {
                let RefOp::Join { insert, emit } = ctx.op else { unreachable!() };
                let v = JoinVal { seq, ts, value };
                match insert {
                    InsertMode::First => {
                        if sides[side].is_empty() {
                            sides[side].push(v);
                        }
                    }
                    InsertMode::Last => sides[side] = vec![v],
                    InsertMode::Product => sides[side].push(v),
                }
                return join_emit_after_change(sides, emit);
            }
        }
        Vec::new()
    }

    /// Folds `original` into `self` (the target) on a session merge; returns what the target
    /// emits on merge (joins only).
    fn merge(&mut self, ctx: &Ctx, original: Agg) -> Vec<RefResult> {
        match (self, original) {
            (Agg::Count(t), Agg::Count(o)) => *t += o,
            (Agg::Collect(t), Agg::Collect(o)) => t.extend(o), // target's, then the original's
            // Union: the target's values, then the original's that are new.
            (Agg::Set(t), Agg::Set(o)) => {
                for v in o {
                    set_add(t, v);
                }
            }
            // The original's entries override the target's.
            (Agg::Dict(t), Agg::Dict(o)) => {
                for (k, v) in o {
                    dict_write(t, k, v);
                }
            }
            (Agg::Fold(t), Agg::Fold(o)) => *t += o, // merger(target, original)
            (Agg::Reduce(t), Agg::Reduce(o)) => {
                let (a, b) = (t.expect("non-empty target"), o.expect("non-empty original"));
                *t = Some(a + b); // reducer(target, original)
            }
            (Agg::Best(t), Agg::Best(o)) => {
                let (_, tv) = t.expect("non-empty target");
                let (ots, ov) = o.expect("non-empty original");
                // reducer(target, original): a tie keeps the target's row.
                if Agg::better(ctx.op, ov, tv) {
                    *t = Some((ots, ov));
                }
            }
            (Agg::Join(t), Agg::Join(o)) => {
                let RefOp::Join { insert, emit } = ctx.op else { unreachable!() };
                for (ts_side, os_side) in t.iter_mut().zip(o) {
                    match insert {
                        // Per side, keep the value inserted earliest / latest of the two
                        // (windrow deviation 7). Each side holds at most one value here.
                        InsertMode::First | InsertMode::Last => {
                            let mut all: Vec<JoinVal> = ts_side.drain(..).chain(os_side).collect();
                            all.sort_by_key(|v| v.seq);
                            let keep = if insert == InsertMode::First { all.first() } else { all.last() };
                            *ts_side = keep.copied().into_iter().collect();
                        }
                        // The target's values, then the original's.
                        InsertMode::Product => ts_side.extend(os_side),
                    }
                }
                return join_emit_after_change(t, emit);
            }
            _ => unreachable!("merging states of different kinds"),
        }
        Vec::new()
    }

    /// What the window emits on close.
    fn close(self, ctx: &Ctx) -> Vec<RefResult> {
        match self {
            Agg::Count(n) => vec![RefResult::Count(n)],
            Agg::Collect(list) => vec![RefResult::Collect(list)],
            Agg::Set(set) => vec![RefResult::Set(set)],
            Agg::Dict(dict) => vec![RefResult::Dict(dict)],
            Agg::Fold(acc) => vec![RefResult::Sum(acc)],
            Agg::Reduce(acc) => vec![RefResult::Sum(acc.expect("a window has at least one row"))],
            Agg::Best(best) => {
                let (ts, value) = best.expect("a window has at least one row");
                vec![RefResult::Row { ts, value }]
            }
            Agg::Join(sides) => {
                let RefOp::Join { emit, .. } = ctx.op else { unreachable!() };
                match emit {
                    EmitMode::Final => join_rows(&sides),
                    // complete: a partial round is dropped; running: emitted already.
                    EmitMode::Complete | EmitMode::Running => Vec::new(),
                }
            }
        }
    }
}

/// A set's "add if not present" (§8.2), equality by bits.
fn set_add(set: &mut Vec<f64>, value: f64) {
    if !set.iter().any(|x| x.to_bits() == value.to_bits()) {
        set.push(value);
    }
}

/// A dict's `d[k] = v` (§8.2): an existing key keeps its place and takes the new value, a new
/// key goes last. Keys are equal by bits.
fn dict_write(dict: &mut Vec<(f64, i64)>, k: f64, v: i64) {
    match dict.iter_mut().find(|(x, _)| x.to_bits() == k.to_bits()) {
        Some(entry) => entry.1 = v,
        None => dict.push((k, v)),
    }
}

/// §8.6 "after each applied value" / "after a session merge" (the two columns are the same).
fn join_emit_after_change(sides: &mut [Vec<JoinVal>], emit: EmitMode) -> Vec<RefResult> {
    match emit {
        EmitMode::Complete => {
            if sides.iter().all(|s| !s.is_empty()) {
                let rows = join_rows(sides);
                for s in sides.iter_mut() {
                    s.clear();
                }
                rows
            } else {
                Vec::new()
            }
        }
        EmitMode::Running => join_rows(sides),
        EmitMode::Final => Vec::new(),
    }
}

/// The cartesian product over the sides, in side order (side 0 varies slowest); within a
/// side the stored order; an empty side contributes a single `None`.
fn join_rows(sides: &[Vec<JoinVal>]) -> Vec<RefResult> {
    let mut rows: Vec<Vec<Option<(i64, f64)>>> = vec![Vec::new()];
    for side in sides {
        let choices: Vec<Option<(i64, f64)>> =
            if side.is_empty() { vec![None] } else { side.iter().map(|v| Some((v.ts, v.value))).collect() };
        let mut next = Vec::with_capacity(rows.len() * choices.len());
        for prefix in &rows {
            for c in &choices {
                let mut r = prefix.clone();
                r.push(*c);
                next.push(r);
            }
        }
        rows = next;
    }
    rows.into_iter().map(RefResult::Join).collect()
}

/// §5.2.1: assigns `ts` to a session (first match in creation order, inclusive gap), running
/// merge detection after cases (b) and (c). Returns the assigned id and the merges
/// `(original, target)` in the order recorded.
fn session_open(ks: &mut KeyState, gap: i64, ts: i64) -> (i64, Vec<(i64, i64)>) {
    let gap128 = gap as i128;
    for i in 0..ks.sessions.len() {
        let s = &mut ks.sessions[i];
        let id = s.id;
        // (a) inside: nothing changes, no merge check.
        if s.first_ts <= ts && ts <= s.last_ts {
            return (id, Vec::new());
        }
        // (b) just before.
        let before = s.first_ts as i128 - ts as i128;
        if before > 0 && before <= gap128 {
            s.first_ts = ts;
            let merges = detect_merges(&mut ks.sessions, gap);
            return (id, merges);
        }
        // (c) just after.
        let after = ts as i128 - s.last_ts as i128;
        if after > 0 && after <= gap128 {
            s.last_ts = ts;
            let merges = detect_merges(&mut ks.sessions, gap);
            return (id, merges);
        }
    }
    let id = ks.next_session_id;
    ks.next_session_id += 1;
    ks.sessions.push(Session { id, first_ts: ts, last_ts: ts, merged_ids: Vec::new() });
    (id, Vec::new())
}

/// §5.2.2: stable sort by `first_ts`, sweep with a "current" session, merge `N` into current
/// when `N.first_ts − current.last_ts <= gap`. Merged sessions are deleted; the targets keep
/// their place in creation order. Returns the merges `(original, target)`.
fn detect_merges(sessions: &mut Vec<Session>, gap: i64) -> Vec<(i64, i64)> {
    let mut merges = Vec::new();
    if sessions.len() < 2 {
        return merges;
    }
    let mut order: Vec<usize> = (0..sessions.len()).collect();
    order.sort_by_key(|&i| sessions[i].first_ts); // stable: ties keep creation order
    let mut deleted = vec![false; sessions.len()];
    let mut cur = order[0];
    for &n in &order[1..] {
        if sessions[n].first_ts as i128 - sessions[cur].last_ts as i128 <= gap as i128 {
            let (n_id, n_last) = (sessions[n].id, sessions[n].last_ts);
            let c = &mut sessions[cur];
            c.last_ts = c.last_ts.max(n_last);
            c.merged_ids.push(n_id);
            merges.push((n_id, c.id));
            deleted[n] = true;
        } else {
            cur = n;
        }
    }
    let mut i = 0;
    sessions.retain(|_| {
        let keep = !deleted[i];
        i += 1;
        keep
    });
    merges
}

/// The late ids of a timestamp (§5.1, §5.2.4): the ids containing it, ascending (including
/// never-opened ones); sessions: only −1.
fn late_ids(ctx: &Ctx, ts: i64) -> Vec<i64> {
    match ctx.windower {
        RefWindower::Session { .. } => vec![LATE_SESSION_ID],
        RefWindower::Tumbling { length, align } => {
            fixed_windows_for_time(length, length, align, ts).into_iter().map(|w| w.0).collect()
        }
        RefWindower::Sliding { length, offset, align } => {
            fixed_windows_for_time(length, offset, align, ts).into_iter().map(|w| w.0).collect()
        }
    }
}

/// `apply(row, ts)` of §3.2.
#[allow(clippy::too_many_arguments)]
fn apply(
    ctx: &Ctx,
    ks: &mut KeyState,
    key: &str,
    side: usize,
    ts: i64,
    value: f64,
    seq: &mut u64,
    out: &mut RefOutput,
) {
    *seq += 1;
    let this_seq = *seq;
    // windower.open(ts): the ids (recorded as open) and, for sessions, the merges it caused.
    let (ids, merges): (Vec<i64>, Vec<(i64, i64)>) = match ctx.windower {
        RefWindower::Session { gap } => {
            let (id, merges) = session_open(ks, gap, ts);
            (vec![id], merges)
        }
        RefWindower::Tumbling { length, align } => (fixed_open(ks, length, length, align, ts), Vec::new()),
        RefWindower::Sliding { length, offset, align } => (fixed_open(ks, length, offset, align, ts), Vec::new()),
    };
    for id in ids {
        let state = ks.states.entry(id).or_insert_with(|| Agg::empty(ctx));
        for result in state.insert(ctx, side, ts, value, this_seq) {
            out.down.push(RefDown { key: key.to_string(), window_id: id, result });
        }
    }
    for (original, target) in merges {
        let o = ks.states.remove(&original).expect("a live session has a state");
        let t = ks.states.get_mut(&target).expect("a live session has a state");
        for result in t.merge(ctx, o) {
            out.down.push(RefDown { key: key.to_string(), window_id: target, result });
        }
    }
}

/// Records every window containing `ts` that is not yet open (ascending id = creation order)
/// and returns all the ids containing `ts`, ascending.
fn fixed_open(ks: &mut KeyState, length: i64, offset: i64, align: i64, ts: i64) -> Vec<i64> {
    let mut ids = Vec::new();
    for (id, start, end) in fixed_windows_for_time(length, offset, align, ts) {
        if !ks.fixed.iter().any(|w| w.id == id) {
            ks.fixed.push(FixedWin { id, start, end });
        }
        ids.push(id);
    }
    ids
}

/// `settle(W)` of §3.2.
fn settle(ctx: &Ctx, ks: &mut KeyState, key: &str, w: Wm, seq: &mut u64, out: &mut RefOutput) {
    if w == Wm::NegInf {
        return; // nothing can be due and nothing can close
    }
    if ctx.ordered && ks.queue_min.is_some_and(|m| w.reaches(m)) {
        let queue = std::mem::take(&mut ks.queue);
        let (mut due, rest): (Vec<Queued>, Vec<Queued>) = queue.into_iter().partition(|q| w.reaches(q.ts));
        due.sort_by_key(|q| q.ts); // stable: ties keep arrival order
        ks.queue = rest;
        ks.queue_min = ks.queue.iter().map(|q| q.ts).min();
        for q in due {
            apply(ctx, ks, key, q.side, q.ts, q.value, seq, out);
        }
    }
    // windower.close(W), in creation order; down, then meta, for each window.
    let mut closed: Vec<(i64, i64, i64, Vec<i64>)> = Vec::new();
    match ctx.windower {
        RefWindower::Session { gap } => {
            let sessions = std::mem::take(&mut ks.sessions);
            for s in sessions {
                if w.closes_session(s.last_ts, gap) {
                    let mut merged = s.merged_ids;
                    merged.sort_unstable(); // §10.4: ascending
                    closed.push((s.id, s.first_ts, s.last_ts, merged));
                } else {
                    ks.sessions.push(s);
                }
            }
        }
        RefWindower::Tumbling { .. } | RefWindower::Sliding { .. } => {
            let wins = std::mem::take(&mut ks.fixed);
            for win in wins {
                if w.reaches(win.end) {
                    closed.push((win.id, win.start, win.end, Vec::new()));
                } else {
                    ks.fixed.push(win);
                }
            }
        }
    }
    for (id, open_time, close_time, merged_ids) in closed {
        let state = ks.states.remove(&id).expect("an open window has a state");
        for result in state.close(ctx) {
            out.down.push(RefDown { key: key.to_string(), window_id: id, result });
        }
        out.meta.push(RefMeta { key: key.to_string(), window_id: id, open_time, close_time, merged_ids });
    }
}

struct Engine {
    ctx: Ctx,
    keys: BTreeMap<String, KeyState>,
    /// Per-stream scope: the one clock state.
    stream_wm: Wm,
    /// Application counter (insertion sequence numbers for joins).
    seq: u64,
    out: RefOutput,
}

impl Engine {
    fn new(cfg: &RefConfig, n_sides: usize) -> Engine {
        let always_unordered = matches!(cfg.op, RefOp::Count | RefOp::ReduceSum | RefOp::Max | RefOp::Min);
        Engine {
            ctx: Ctx {
                windower: cfg.windower,
                op: cfg.op,
                wait: cfg.wait,
                ordered: cfg.ordered && !always_unordered,
                per_stream: cfg.per_stream,
                n_sides,
            },
            keys: BTreeMap::new(),
            stream_wm: Wm::NegInf,
            seq: 0,
            out: RefOutput::default(),
        }
    }

    /// One row = one micro-batch: `process` of §3.2 followed by settling its scope.
    fn process_row(&mut self, side: usize, row: &RefRow) {
        let Engine { ctx, keys, stream_wm, seq, out } = self;
        let ctx = &*ctx;
        let key = row.key.as_str();
        let ks = keys.entry(row.key.clone()).or_default();
        let scope_wm: &mut Wm = if ctx.per_stream { stream_wm } else { &mut ks.wm };
        let before = *scope_wm;
        // W := max(W, ts − wait); the candidate is ignored if it overflows or wait = ∞.
        if let Some(cand) = ctx.wait.and_then(|w| row.ts.checked_sub(w)) {
            *scope_wm = (*scope_wm).max(Wm::At(cand));
        }
        let w = *scope_wm;
        if w.is_late(row.ts) {
            for id in late_ids(ctx, row.ts) {
                out.late.push(RefLate {
                    key: key.to_string(),
                    window_id: id,
                    side: ctx.is_join().then_some(side),
                    ts: row.ts,
                    value: row.value,
                });
            }
        } else if ctx.ordered {
            ks.queue.push(Queued { side, ts: row.ts, value: row.value });
            ks.queue_min = Some(ks.queue_min.map_or(row.ts, |m| m.min(row.ts)));
        } else {
            apply(ctx, ks, key, side, row.ts, row.value, seq, out);
        }
        settle(ctx, ks, key, w, seq, out);
        if ctx.per_stream && w > before {
            // §12: every key with open windows or queued rows is settled against the stream
            // watermark. (If the watermark did not move, settling an untouched key is a no-op.)
            for (k, other) in keys.iter_mut() {
                if k != key && other.has_work() {
                    settle(ctx, other, k, w, seq, out);
                }
            }
        }
    }

    /// `end_of_input` of §3.2: settle every key at `+∞`.
    fn end_of_input(&mut self) {
        let Engine { ctx, keys, seq, out, .. } = self;
        for (k, ks) in keys.iter_mut() {
            settle(ctx, ks, k, Wm::PosInf, seq, out);
        }
    }
}
