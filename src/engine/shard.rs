//! One shard of a window operator: the keys whose hash maps to it, with all their state.
//! A shard owns its state outright; the operator runs shards in parallel on one rayon pool.
//!
//! Per micro-batch a shard (1) walks its rows in arrival order: interns the key, updates the
//! key's watermark, routes the row to `late`, the ordered queue, or applies it (window
//! assignment → `(row, slot)` pairs); (2) settles every key that may have something due:
//! applies due queued rows, closes windows; (3) runs the aggregation updates as runs over
//! slots; (4) evaluates the closed slots in one call.

use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray, Int64Array, ListArray, RecordBatch};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{DataType, SchemaRef};
use smallvec::SmallVec;

use super::keys::{BatchKeys, BoundKeys, DictInterning, KeyTable};
use crate::agg::{BatchStore, BatchView, EmitTag, RowRef, SlotAgg};
use crate::error::{Result, WindrowError};
use crate::time::{NEG_INF, POS_INF};
use crate::window::session::{Merge, Session, Sessions};
use crate::window::{BoundWindower, FixedWindows, LATE_SESSION_ID};

/// Rows per block of the per-row loop (see [`Shard::process`]).
const ROW_BLOCK: usize = 64;

/// Watermark state of one key (or of the stream): spec §4.1.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ClockState {
    pub base: i64,
    pub sys_of_max: i64,
}

impl ClockState {
    pub fn new(sys_now: i64) -> Self {
        ClockState { base: NEG_INF, sys_of_max: sys_now }
    }

    /// `W = base + (sys_now − sys_of_max)`; `−∞` stays `−∞`.
    #[inline]
    pub fn current(&self, sys_now: i64) -> i64 {
        if self.base == NEG_INF {
            return NEG_INF;
        }
        if sys_now == self.sys_of_max {
            // No system time passed since the maximum (always so in replay mode).
            return self.base.min(POS_INF - 1);
        }
        self.base.saturating_add(sys_now.saturating_sub(self.sys_of_max)).min(POS_INF - 1)
    }

    /// Offers a row's candidate `ts − wait`; returns the row's watermark.
    #[inline]
    pub fn offer(&mut self, cand: Option<i64>, sys_now: i64) -> i64 {
        let w = self.current(sys_now);
        match cand {
            Some(c) if c > w => {
                self.base = c;
                self.sys_of_max = sys_now;
                c
            }
            _ => w,
        }
    }
}

/// Configuration shared by all shards (read-only while processing).
pub(crate) struct ShardConfig {
    pub windower: BoundWindower,
    /// `None`: wait forever.
    pub wait: Option<i64>,
    pub ordered: bool,
    /// Record each applied row's window (joins emit rows while applying).
    pub track_ctx: bool,
    /// From how many keys a shard closes due windows block by block instead of once after
    /// the rows (see `Shard::process`).
    pub close_inline_from_keys: usize,
}

/// From how many keys a shard prefetches each row's table bucket and key state a few rows
/// ahead ([`PREFETCH_AHEAD`]), and preloads the key state of the keys it settles after the rows
/// ([`Shard::load_keys_state`]).
/// Below, the state (a few hundred bytes a key) stays in the core's L2 cache and the preload
/// only costs: measured on the 2-vCPU machine (1 thread, 10 M events, 3.3 per key and
/// minute), skipping it made the tumbling count 3–4% faster at 100 to 2000 keys (the sliding
/// sum +5% at 2000, level within noise at 1000), and both 5–7% slower at 5000.
const PREFETCH_FROM_KEYS: usize = 4096;

/// How many rows ahead interning and the row loop ask for a row's table bucket and key state
/// (see [`PREFETCH_FROM_KEYS`]). Measured on the 2-vCPU machine (1 thread, 100,000 keys,
/// tumbling count): 4 rows ahead 9.1–9.7 M/s, 8 10.5, 16 10.9, 32 10.3–10.9, 64 10.6 (before
/// `back_inline`). Asking for the next block's keys all at once, before the block, was far
/// slower (9.1 M/s against 13.9 with `back_inline`; probably a burst of about 200 prefetches
/// waiting on the processor's few slots for outstanding misses).
const PREFETCH_AHEAD: usize = 16;

/// Default of [`ShardConfig::close_inline_from_keys`]: about where a shard's per-key state
/// (key slot, open-window list, hash entry: a few hundred bytes a key) outgrows a core's L2
/// cache. Measured on the 2-vCPU machine (1 thread, 10 M events, 3.3 per key and minute):
/// closing block by block is 1.45× faster at 100,000 keys, level at 10,000, and about 10%
/// slower on the sliding sum at 1000 keys.
pub(crate) const CLOSE_INLINE_FROM_KEYS: usize = 8192;

/// Aggregation state slots: handed out to windows as they open, taken back when they close.
#[derive(Default)]
struct SlotPool {
    /// Slots given back, reused first (most recently freed first: likely still in cache).
    free: Vec<u32>,
    /// The next never-used slot.
    next: u32,
    /// Slots held by open windows.
    open: usize,
}

impl SlotPool {
    fn alloc(&mut self, agg: &mut dyn SlotAgg) -> u32 {
        self.open += 1;
        if let Some(s) = self.free.pop() {
            return s;
        }
        let s = self.next;
        self.next += 1;
        agg.ensure_slots(self.next as usize);
        s
    }
}

/// The window an applied row or merge went to: `(key, id, start, end)` at that moment.
type OpCtx = (u32, i64, i64, i64);

#[derive(Clone, Copy, Debug)]
struct OpenWindow {
    id: i64,
    start: i64,
    end: i64,
    slot: u32,
}

/// A key's open fixed windows in creation order. The first two live in the list itself, in
/// `Shard::fixed`'s array: with many keys, a list on the heap cost a dependent cache miss
/// per row (the list, then its windows), and tumbling keys rarely have more than two open.
type OpenList = SmallVec<[OpenWindow; 2]>;

/// Moves a key's open list back inline once it fits there again (when closing due windows
/// block by block, with many keys). A list left on the heap after a burst of open windows
/// costs a dependent cache miss on every later row of the key (the list, then its windows),
/// and with many keys most tumbling keys have such a burst sooner or later: a gap of 50 s
/// between two of a key's rows opens a third window before the first one closes. Measured on
/// the 2-vCPU machine (1 thread, 100,000 keys, 3.3 events per key and minute): the tumbling
/// count went from 10.9 to 14.9 M/s.
#[inline]
fn back_inline(open: &mut OpenList) {
    if open.spilled() && open.len() <= open.inline_size() {
        open.shrink_to_fit();
    }
}

/// A run of queued updates (see `Shard::op_rows`).
#[derive(Clone, Copy, Debug)]
struct OpRun {
    first_op: usize,
    batch: u64,
    spans: bool,
}

/// The span made for a key's pane (see `Shard::span_memo`).
#[derive(Clone, Copy, Debug, Default)]
struct SpanMemo {
    /// `Shard::flush_epoch` when made (0: never).
    epoch: u64,
    /// The pane: its first window id and its number of windows.
    first: i64,
    count: u32,
    /// Where the span starts in `Shard::span_slots`.
    at: u32,
}

/// No window: an empty interval, so no timestamp falls into it.
const NO_WINDOW: OpenWindow = OpenWindow { id: 0, start: i64::MAX, end: i64::MIN, slot: 0 };

#[derive(Clone, Copy, Debug)]
struct Queued {
    ts: i64,
    row: RowRef,
}

/// A window that closed this step.
pub(crate) struct Closed {
    key: u32,
    id: i64,
    start: i64,
    end: i64,
    slot: u32,
    merged: Vec<i64>,
}

/// How the rows of this batch decide lateness.
pub(crate) enum Lateness<'a> {
    /// Per-key clocks, updated row by row in the shard.
    PerKey,
    /// Per-stream scope (or SystemClock): lateness decided before sharding; every key with
    /// state is settled against `watermark`.
    Stream { late: &'a [bool], watermark: i64 },
}

/// What one shard emitted for one step.
pub(crate) struct ShardOutput {
    pub down: Option<RecordBatch>,
    pub meta: Option<RecordBatch>,
}

/// What the per-row loop reads and writes for a key, together in one cache line (with many
/// keys, separate vectors cost a cache miss each per row).
#[derive(Clone, Copy, Debug)]
#[repr(align(64))]
struct KeySlot {
    clock: ClockState,
    /// Tumbling windows: the key's most recently used open window, so that the common case
    /// (the row falls into the window the key's previous row used) needs no division and no
    /// search. Reset whenever one of the key's windows closes (its slot may be reused).
    ///
    /// Sliding windows: the key's most recent *pane*, the span of times that fall into
    /// exactly the same windows: `start..end` is the pane, `id` the first of its windows and
    /// `slot` that window's position in the key's open list, where the pane's
    /// `recent_count` windows follow one another. Reset the same way (closing moves
    /// positions); opening windows only appends, so positions stay valid until then.
    recent: OpenWindow,
    /// Sliding windows: how many windows the pane in `recent` has.
    recent_count: u32,
    /// The largest id among the key's open fixed windows (`i64::MIN`: none): a larger id is
    /// certainly not open, so opening it needs no search of the key's list.
    max_open_id: i64,
    /// In `touched` (rows of this step touched the key; it is settled once at the end).
    touched: bool,
    /// In `active`.
    active: bool,
    /// Fixed windows: the key's open list is not in id order (a row opened a window below
    /// an open one), so its due windows need not be a prefix of the list (see
    /// [`Shard::close_due_prefix`]). Cleared when a settle leaves the list in id order.
    unsorted: bool,
}

impl KeySlot {
    fn new(clock: ClockState) -> Self {
        KeySlot {
            clock,
            recent: NO_WINDOW,
            recent_count: 0,
            max_open_id: i64::MIN,
            touched: false,
            active: false,
            unsorted: false,
        }
    }
}

// One cache line per key (see above).
const _: () = assert!(std::mem::size_of::<KeySlot>() == 64);

pub(crate) struct Shard {
    keys: KeyTable,
    per_key: Vec<KeySlot>,
    fixed: Vec<OpenList>,
    sessions: Vec<Sessions>,
    queues: Vec<Vec<Queued>>,
    /// Keys with open windows or queued rows, for stream-scope settling and end of input.
    active: Vec<u32>,
    touched: Vec<u32>,
    slots: SlotPool,
    agg: Box<dyn SlotAgg>,
    store: BatchStore,
    // Scratch, reused across batches.
    /// Queued aggregation updates: row `op_rows[i]` goes to slot `op_slots[i]` or, in a run
    /// of span updates, to every slot of the span at position `op_slots[i]` of `span_slots`;
    /// the rows come from the batch of the run holding `i`.
    op_rows: Vec<u32>,
    op_slots: Vec<u32>,
    /// The runs of ops: each from one batch, all slot updates or all span updates.
    op_runs: Vec<OpRun>,
    /// Sliding windows: the spans of the queued span updates, one after another, each its
    /// length and then its slots: the windows of a pane, so that a row queues one update for
    /// its pane instead of one per window. Cleared with the ops.
    span_slots: Vec<u32>,
    /// Sliding windows, per key: the span made for the key's pane in this flush epoch, so that
    /// the pane's next rows reuse it.
    span_memo: Vec<SpanMemo>,
    /// Counts flushes; a span of an earlier epoch is gone.
    flush_epoch: u64,
    op_merges: Vec<(usize, Merge)>,
    /// With `track_ctx`: one entry per applied row and per merge, in application order.
    op_ctx: Vec<OpCtx>,
    merges: Vec<Merge>,
    freed: Vec<u32>,
    queue_releases: Vec<u64>,
    closed: Vec<Closed>,
    closed_sessions: Vec<Session>,
    /// Fixed windows: keys whose first open window a row of the current block made due
    /// (`close_inline`).
    due_keys: Vec<u32>,
    dict_interning: DictInterning,
    /// This batch's key ids, row by row.
    row_keys: Vec<u32>,
}

impl Shard {
    pub fn new(agg: Box<dyn SlotAgg>) -> Self {
        Shard {
            keys: KeyTable::default(),
            per_key: Vec::new(),
            fixed: Vec::new(),
            sessions: Vec::new(),
            queues: Vec::new(),
            active: Vec::new(),
            touched: Vec::new(),
            slots: SlotPool::default(),
            agg,
            store: BatchStore::default(),
            op_rows: Vec::new(),
            op_slots: Vec::new(),
            op_runs: Vec::new(),
            span_slots: Vec::new(),
            span_memo: Vec::new(),
            flush_epoch: 1,
            op_merges: Vec::new(),
            op_ctx: Vec::new(),
            merges: Vec::new(),
            freed: Vec::new(),
            queue_releases: Vec::new(),
            closed: Vec::new(),
            closed_sessions: Vec::new(),
            due_keys: Vec::new(),
            dict_interning: DictInterning::default(),
            row_keys: Vec::new(),
        }
    }

    /// Open windows (for progress reports).
    pub fn open_windows(&self) -> usize {
        self.slots.open
    }

    /// Number of keys seen.
    pub fn key_count(&self) -> usize {
        self.keys.len()
    }

    fn alloc_slot(&mut self) -> u32 {
        self.slots.alloc(self.agg.as_mut())
    }

    /// Puts key `k` on the active list; called wherever a key gets state (a window or a
    /// queued row), so that rows into windows already open skip it.
    fn mark_active(&mut self, k: u32) {
        if !self.per_key[k as usize].active {
            self.per_key[k as usize].active = true;
            self.active.push(k);
        }
    }

    /// Processes this shard's rows of one batch: `rows` holds its parts of the batch's row
    /// chunks, in arrival order.
    #[allow(clippy::too_many_arguments)]
    pub fn process(
        &mut self,
        cfg: &ShardConfig,
        seq: u64,
        batch: &RecordBatch,
        keys: &BatchKeys,
        times: &[i64],
        rows: &[&[u32]],
        lateness: &Lateness<'_>,
        sys_now: i64,
    ) -> Result<Vec<(u32, i64)>> {
        self.store.pin(seq, batch);
        let mut late = Vec::new();
        let tumbling = matches!(cfg.windower, BoundWindower::Fixed(f) if f.offset == f.length);
        // Sliding windows whose rows only queue updates (no window context to record): a row in
        // its key's previous pane is handled in the loop, like the tumbling case.
        let sliding_panes = !cfg.track_ctx && matches!(cfg.windower, BoundWindower::Fixed(f) if f.offset != f.length);
        let wait = cfg.wait;
        // Per-key clocks, unordered, fixed windows, no emissions while applying, and many
        // keys: a key whose first window a row's watermark made due is closed after the row's
        // block, while the key is still in cache, instead of in a settle pass over every
        // touched key after the rows, which with many keys misses the cache on each key
        // again. (With few keys that pass is cheaper: it closes many windows per key at once.)
        // See `close_due_prefix`.
        let close_inline = self.keys.len() >= cfg.close_inline_from_keys
            && matches!(lateness, Lateness::PerKey)
            && !cfg.ordered
            && !cfg.track_ctx
            && matches!(cfg.windower, BoundWindower::Fixed(_));
        // Sessions (per-key clocks, unordered, no emissions while applying), whatever the key
        // count: a key's oldest sessions that are due close after the block too, so that a key
        // with many rows per batch keeps a short live list (assigning a row scans it). Only a
        // key left with a due session behind a live one settles after the rows (see
        // `close_due_sessions`): with many keys that pass missed the cache on every key again.
        let close_sessions = match cfg.windower {
            BoundWindower::Session { gap }
                if matches!(lateness, Lateness::PerKey) && !cfg.ordered && !cfg.track_ctx =>
            {
                Some(gap)
            }
            _ => None,
        };
        // This batch's rows go into the aggregation as one run (queued rows released while
        // settling start runs of their own batches; sliding rows start span runs).
        self.start_run(seq, false);
        // With many keys, a key's table bucket and its state are a cache miss each per row.
        // Then every row's key is interned first, and both passes ask for what a row needs
        // `PREFETCH_AHEAD` rows before they need it, so that the misses of many rows overlap
        // (see `PREFETCH_FROM_KEYS`). With few keys all of it is in cache, and each block's
        // keys are interned just before its rows run (a pass of its own over every row cost
        // about 6 instructions a row at 1000 keys, callgrind). Dictionary keys are interned up front,
        // once per value (see `DictInterning`).
        let prefetch = self.keys.len() >= PREFETCH_FROM_KEYS;
        let mut row_keys = std::mem::take(&mut self.row_keys);
        let up_front = if self.intern_dictionary_keys(cfg, keys, rows, sys_now, &mut row_keys)? {
            true
        } else if prefetch {
            self.intern_rows(cfg, keys, rows, sys_now, &mut row_keys)?;
            true
        } else {
            false
        };
        let mut block_keys = [0u32; ROW_BLOCK];
        let mut block_at = 0;
        for block in rows.iter().flat_map(|part| part.chunks(ROW_BLOCK)) {
            let block_keys = if up_front {
                &row_keys[block_at..block_at + block.len()]
            } else {
                for (k, &r) in block_keys.iter_mut().zip(block) {
                    let (id, new) = self.keys.intern(keys, r as usize)?;
                    if new {
                        self.add_key(cfg, ClockState::new(sys_now), 0);
                    }
                    *k = id;
                }
                &block_keys[..block.len()]
            };
            for (i, (&r, &k)) in block.iter().zip(block_keys).enumerate() {
                if prefetch {
                    if let Some(&ahead) = row_keys.get(block_at + i + PREFETCH_AHEAD) {
                        self.prefetch_key_state(ahead);
                    }
                    // Sliding keys' open lists are on the heap (more than two windows): their
                    // windows are asked for once the list itself has arrived, half way.
                    if !tumbling && let Some(&near) = row_keys.get(block_at + i + PREFETCH_AHEAD / 2) {
                        self.prefetch_open_windows(near);
                    }
                }
                let ts = times[r as usize];
                let is_late = match lateness {
                    Lateness::PerKey => {
                        let key = &mut self.per_key[k as usize];
                        let cand = wait.and_then(|w| ts.checked_sub(w));
                        let w = key.clock.offer(cand, sys_now);
                        if close_inline && !key.unsorted {
                            if self.fixed[k as usize].first().is_some_and(|win| win.end <= w) {
                                self.due_keys.push(k); // (a key may be listed twice)
                            }
                        } else if !key.touched && close_sessions.is_none() {
                            key.touched = true;
                            self.touched.push(k);
                        }
                        ts < w
                    }
                    Lateness::Stream { late, .. } => late[r as usize],
                };
                let recent = self.per_key[k as usize].recent;
                if is_late {
                    match cfg.windower {
                        BoundWindower::Fixed(f) => {
                            // Representability was checked when the batch was normalised.
                            let (first, last) = f.ids(ts).unwrap_or((0, -1));
                            late.extend((first..=last).map(|id| (r, id)));
                        }
                        BoundWindower::Session { .. } => late.push((r, LATE_SESSION_ID)),
                    }
                    continue;
                }
                let row = RowRef { batch: seq, row: r };
                if cfg.ordered {
                    self.mark_active(k);
                    self.queues[k as usize].push(Queued { ts, row });
                    self.store.retain(seq, 1);
                    continue;
                }
                // Tumbling, and the row falls into the window the key's previous row used: the
                // common case, handled here without a division or a search. (The key is active:
                // it has that window open. The run of this batch's ops was started above.)
                if tumbling && recent.start <= ts && ts < recent.end {
                    self.op_rows.push(r);
                    self.op_slots.push(recent.slot);
                    if cfg.track_ctx {
                        self.op_ctx.push((k, recent.id, recent.start, recent.end));
                    }
                } else if let (true, BoundWindower::Fixed(f)) = (tumbling, &cfg.windower) {
                    self.apply_tumbling(f, k, ts, row, cfg.track_ctx); // inlined here, not via `apply`
                } else if sliding_panes && recent.start <= ts && ts < recent.end {
                    // See `apply_sliding`: the pane's windows lie one after another from `slot`.
                    self.push_recent_pane(row, k as usize);
                } else {
                    self.apply(cfg, k, ts, row);
                }
            }
            if !self.due_keys.is_empty() {
                self.close_due_keys(sys_now, tumbling);
            }
            if let Some(gap) = close_sessions {
                self.close_due_sessions(block_keys, sys_now, gap);
            }
            block_at += block.len();
        }
        // Settle after the rows: per key for keys that had rows; per stream for every key
        // with state (closing happens once per micro-batch, with the final watermark).
        match lateness {
            Lateness::PerKey => {
                let touched = std::mem::take(&mut self.touched);
                for block in touched.chunks(ROW_BLOCK) {
                    self.load_keys_state(block);
                    for &k in block {
                        let slot = &mut self.per_key[k as usize];
                        slot.touched = false;
                        let w = slot.clock.current(sys_now);
                        self.settle(cfg, k, w, false);
                    }
                }
                self.touched = touched;
                self.touched.clear();
            }
            Lateness::Stream { watermark, .. } => self.settle_all(cfg, *watermark, false),
        }
        self.flush_ops()?;
        self.store.unpin(seq);
        row_keys.clear();
        self.row_keys = row_keys;
        Ok(late)
    }

    /// For a dictionary key column: the key ids of `rows` (in order) into `ids`, each value
    /// looked up in the key table once ([`DictInterning::intern`]); `false` for other
    /// keys. A pass of its own, out of line, so that the `Utf8` path in `process` stays as the
    /// compiler inlined it (interning both ways in one loop cost that path 10% more
    /// instructions).
    #[inline(never)]
    fn intern_dictionary_keys(
        &mut self,
        cfg: &ShardConfig,
        keys: &BatchKeys,
        rows: &[&[u32]],
        sys_now: i64,
        ids: &mut Vec<u32>,
    ) -> Result<bool> {
        let Some(dict) = keys.dictionary() else {
            return Ok(false);
        };
        self.dict_interning.begin_batch(dict);
        for &r in rows.iter().copied().flatten() {
            let (id, new) = self.dict_interning.intern(&mut self.keys, keys, dict, r as usize)?;
            if new {
                self.add_key(cfg, ClockState::new(sys_now), 0);
            }
            ids.push(id);
        }
        Ok(true)
    }

    /// The key ids of `rows` (in order) into `ids`, for keys other than dictionaries, each
    /// row's table bucket asked for `PREFETCH_AHEAD` rows early. Out of line, like
    /// [`Self::intern_dictionary_keys`].
    #[inline(never)]
    fn intern_rows(
        &mut self,
        cfg: &ShardConfig,
        keys: &BatchKeys,
        rows: &[&[u32]],
        sys_now: i64,
        ids: &mut Vec<u32>,
    ) -> Result<()> {
        for part in rows {
            for (i, &r) in part.iter().enumerate() {
                if let Some(&ahead) = part.get(i + PREFETCH_AHEAD) {
                    self.keys.prefetch(keys, ahead as usize);
                }
                let (id, new) = self.keys.intern(keys, r as usize)?;
                if new {
                    self.add_key(cfg, ClockState::new(sys_now), 0);
                }
                ids.push(id);
            }
        }
        Ok(())
    }

    /// Asks for key `k`'s slot and open-window list or live sessions (see
    /// `PREFETCH_FROM_KEYS`).
    #[inline]
    fn prefetch_key_state(&self, k: u32) {
        let ku = k as usize;
        crate::cpu::prefetch(&self.per_key[ku]);
        if let Some(open) = self.fixed.get(ku) {
            crate::cpu::prefetch(open);
            if let Some(memo) = self.span_memo.get(ku) {
                crate::cpu::prefetch(memo);
            }
        } else if let Some(sessions) = self.sessions.get(ku) {
            crate::cpu::prefetch(sessions);
        }
    }

    /// Asks for key `k`'s open windows where they are on the heap (the list itself should be
    /// in cache by now: [`Self::prefetch_key_state`]).
    #[inline]
    fn prefetch_open_windows(&self, k: u32) {
        if let Some(open) = self.fixed.get(k as usize).filter(|open| open.spilled()) {
            crate::cpu::prefetch_slice(open.as_slice());
        }
    }

    /// Reads the slot and first open window of each of `keys`, so that the work on them that
    /// follows finds them in cache: a short loop of independent loads lets the processor
    /// overlap the cache misses that many keys cause. Only from [`PREFETCH_FROM_KEYS`] keys.
    #[inline]
    fn load_keys_state(&self, keys: &[u32]) {
        if self.keys.len() < PREFETCH_FROM_KEYS {
            return; // the keys' state fits in cache: the preload would only cost
        }
        let loaded = keys.iter().fold(0i64, |acc, &k| {
            let ku = k as usize;
            let first_open = self.fixed.get(ku).and_then(|open| open.first()).map_or(0, |w| w.id);
            acc ^ self.per_key[ku].clock.base ^ first_open
        });
        std::hint::black_box(loaded);
    }

    /// Settles every key with state at watermark `w` (stream scope, end of input).
    pub fn settle_all(&mut self, cfg: &ShardConfig, w: i64, eof: bool) {
        self.settle_active(cfg, |_| w, eof);
    }

    /// Settles every key with state at its own current watermark (live-mode timers).
    pub fn settle_all_per_key(&mut self, cfg: &ShardConfig, sys_now: i64) {
        let watermarks: Vec<i64> = self.per_key.iter().map(|s| s.clock.current(sys_now)).collect();
        self.settle_active(cfg, |k| watermarks[k as usize], false);
    }

    /// Settles each key with open windows or queued rows at `watermark(key)`, then drops the
    /// keys left without state from the active list.
    fn settle_active(&mut self, cfg: &ShardConfig, watermark: impl Fn(u32) -> i64, eof: bool) {
        let active = std::mem::take(&mut self.active);
        for &k in &active {
            self.settle(cfg, k, watermark(k), eof);
        }
        self.active = active;
        let per_key = &mut self.per_key;
        let (fixed, sessions, queues) = (&self.fixed, &self.sessions, &self.queues);
        self.active.retain(|&k| {
            let ku = k as usize;
            let has_windows =
                fixed.get(ku).is_some_and(|v| !v.is_empty()) || sessions.get(ku).is_some_and(|s| !s.live.is_empty());
            let keep = has_windows || queues.get(ku).is_some_and(|q| !q.is_empty());
            per_key[ku].active = keep;
            keep
        });
    }

    /// Spec §3.2 `settle`: apply due queued rows (sorted by time, ties in arrival order), then
    /// close due windows in creation order.
    fn settle(&mut self, cfg: &ShardConfig, k: u32, w: i64, eof: bool) {
        let ku = k as usize;
        if cfg.ordered && !self.queues[ku].is_empty() {
            let queue = std::mem::take(&mut self.queues[ku]);
            let (mut due, rest): (Vec<Queued>, Vec<Queued>) = queue.into_iter().partition(|q| q.ts <= w);
            self.queues[ku] = rest;
            due.sort_by_key(|q| q.ts); // stable: ties keep arrival order
            for q in due {
                self.apply(cfg, k, q.ts, q.row);
                self.queue_releases.push(q.row.batch);
            }
        }
        match cfg.windower {
            BoundWindower::Fixed(_) => {
                let open = &mut self.fixed[ku];
                let mut max_end = NEG_INF;
                // Close due windows in creation order and compact the rest in place (a plain
                // loop: `Vec::retain` cost about 95 instructions per call with 1–2 windows).
                let (mut kept, mut max_open_id, mut unsorted) = (0, i64::MIN, false);
                let list = open.as_mut_slice(); // (one inline-or-heap check, not one per window)
                for i in 0..list.len() {
                    let win = list[i];
                    if win.end <= w {
                        max_end = max_end.max(win.end);
                        self.closed.push(Closed {
                            key: k,
                            id: win.id,
                            start: win.start,
                            end: win.end,
                            slot: win.slot,
                            merged: Vec::new(),
                        });
                    } else {
                        list[kept] = win;
                        kept += 1;
                        unsorted |= win.id < max_open_id;
                        max_open_id = max_open_id.max(win.id);
                    }
                }
                open.truncate(kept);
                self.per_key[ku].max_open_id = max_open_id;
                self.per_key[ku].unsorted = unsorted;
                if max_end != NEG_INF {
                    self.per_key[ku].recent = NO_WINDOW;
                }
                if eof && max_end != NEG_INF {
                    // Spec §9.3: a continuation after end of input can never reopen a window.
                    let c = &mut self.per_key[ku].clock;
                    c.base = c.base.max(max_end);
                }
                // Only once empty here: with few keys, a key's list grows by many windows per
                // batch and is settled once after the rows, so moving it inline each time would
                // reallocate it on every batch (see `back_inline`).
                if open.is_empty() {
                    open.shrink_to_fit();
                }
            }
            BoundWindower::Session { gap } => {
                let mut out = std::mem::take(&mut self.closed_sessions);
                self.sessions[ku].close(w, gap, &mut out);
                self.push_closed_sessions(k, out);
            }
        }
    }

    /// Records the sessions in `out` (closed, in creation order) as key `k`'s closed windows;
    /// `out` goes back as the scratch list, empty.
    fn push_closed_sessions(&mut self, k: u32, mut out: Vec<Session>) {
        for s in out.drain(..) {
            let Session { id, first, last, mut merged, slot } = s;
            merged.sort_unstable();
            self.closed.push(Closed { key: k, id, start: first, end: last, slot, merged });
        }
        self.closed_sessions = out;
        // Back inline once it fits (see `LiveSessions`): due sessions close block by block
        // (`close_due_sessions`), so a key's list stays short and rarely goes back and forth.
        let live = &mut self.sessions[k as usize].live;
        if live.spilled() && live.len() <= live.inline_size() {
            live.shrink_to_fit();
        }
    }

    /// Spec §3.2 `apply`: open the row's windows and queue the aggregation update.
    fn apply(&mut self, cfg: &ShardConfig, k: u32, ts: i64, row: RowRef) {
        match cfg.windower {
            BoundWindower::Fixed(f) if f.offset == f.length => self.apply_tumbling(&f, k, ts, row, cfg.track_ctx),
            BoundWindower::Fixed(f) => self.apply_sliding(&f, k, ts, row, cfg.track_ctx),
            BoundWindower::Session { gap } => {
                self.mark_active(k);
                let mut merges = std::mem::take(&mut self.merges);
                // Borrowed in place, not taken out and put back: a key's sessions are 128 bytes.
                let (slots, agg) = (&mut self.slots, self.agg.as_mut());
                let (id, slot, first, last) =
                    self.sessions[k as usize].assign(ts, gap, || slots.alloc(agg), &mut merges);
                self.push_op(row, slot);
                if cfg.track_ctx {
                    self.op_ctx.push((k, id, first, last));
                }
                for m in merges.drain(..) {
                    self.op_merges.push((self.op_rows.len(), m));
                    self.freed.push(m.original_slot);
                    self.slots.open -= 1;
                    if cfg.track_ctx {
                        let (first, last) = self.sessions[k as usize].bounds(m.target_id).unwrap_or((ts, ts));
                        self.op_ctx.push((k, m.target_id, first, last));
                    }
                }
                self.merges = merges;
            }
        }
    }

    /// [`apply`](Self::apply) for tumbling windows. The row's window is usually the next or
    /// the previous one of the key's most recent window, and its id follows from that one's
    /// without a division. (The row loop handles rows that fall into the recent window itself.)
    #[inline(always)] // two callers; the row loop's copy is the hot one
    fn apply_tumbling(&mut self, f: &FixedWindows, k: u32, ts: i64, row: RowRef, track_ctx: bool) {
        let ku = k as usize;
        let recent = self.per_key[ku].recent;
        // Differences as u64: with `ts` on that side, the exact difference fits whatever the
        // values. `NO_WINDOW` (start > end) matches neither side.
        let length = f.length as u64;
        let neighbour = if recent.start > recent.end {
            None
        } else if recent.end <= ts && (ts.wrapping_sub(recent.end) as u64) < length {
            Some(recent.id + 1)
        } else if ts < recent.start && (recent.start.wrapping_sub(ts) as u64) <= length {
            Some(recent.id - 1)
        } else {
            None
        };
        // Not representable: refused when the batch was normalised.
        let Some(id) = neighbour.or_else(|| f.ids(ts).map(|(id, _)| id)) else {
            return;
        };
        let found = if id > self.per_key[ku].max_open_id { None } else { find_open(&self.fixed[ku], id) };
        let win = match found {
            Some(i) => self.fixed[ku][i],
            None => self.open_fixed(f, k, id, ts),
        };
        self.push_op(row, win.slot);
        if track_ctx {
            self.op_ctx.push((k, id, win.start, win.end));
        }
        self.per_key[ku].recent = win;
    }

    /// Opens fixed window `id` for key `k` (which has no such open window).
    #[inline]
    fn open_fixed(&mut self, f: &FixedWindows, k: u32, id: i64, ts: i64) -> OpenWindow {
        let (start, end) = f.bounds(id).unwrap_or((ts, ts));
        let win = OpenWindow { id, start, end, slot: self.alloc_slot() };
        self.push_open(k, win);
        self.mark_active(k);
        win
    }

    /// [`close_due_prefix`](Self::close_due_prefix) for each key in `due_keys`, at its current
    /// watermark, emptying the list. One call per block of rows: out of the row loop, whose
    /// inlining it would upset, and cheaper than one call per key.
    #[inline(never)]
    fn close_due_keys(&mut self, sys_now: i64, tumbling: bool) {
        let mut due_keys = std::mem::take(&mut self.due_keys);
        for &k in &due_keys {
            let w = self.per_key[k as usize].clock.current(sys_now);
            self.close_due_prefix(k, w, tumbling);
        }
        due_keys.clear();
        self.due_keys = due_keys; // keeps its capacity
    }

    /// Sessions: closes the oldest due sessions of each key of a block of rows (`keys`, in
    /// cache), at the key's current watermark. A key listed twice finds nothing due the
    /// second time. Done here, not in the row loop, so that fixed windows pay nothing for it.
    ///
    /// A key left with a due session behind a live one is marked touched, to be settled after
    /// the rows: closing that session now would emit it before the older live one, which may
    /// still come due in this batch (spec §7.2: creation order). The last block with rows of a
    /// key sees the key's final watermark of the batch, so a key not marked by then has
    /// nothing a settle after the rows would close.
    #[inline(never)]
    fn close_due_sessions(&mut self, keys: &[u32], sys_now: i64, gap: i64) {
        for &k in keys {
            let ku = k as usize;
            let w = self.per_key[ku].clock.current(sys_now);
            let (prefix, behind) = self.sessions[ku].due_prefix(w, gap);
            if prefix > 0 {
                let mut out = std::mem::take(&mut self.closed_sessions);
                self.sessions[ku].close_prefix(prefix, &mut out);
                self.push_closed_sessions(k, out);
            }
            if behind && !self.per_key[ku].touched {
                self.per_key[ku].touched = true;
                self.touched.push(k);
            }
        }
    }

    /// Appends `win` to key `k`'s open windows (creation order), keeping `max_open_id` and
    /// `unsorted`.
    #[inline]
    fn push_open(&mut self, k: u32, win: OpenWindow) {
        self.fixed[k as usize].push(win);
        let key = &mut self.per_key[k as usize];
        key.unsorted |= win.id < key.max_open_id;
        key.max_open_id = key.max_open_id.max(win.id);
    }

    /// Closes key `k`'s open windows from the first while they are due at watermark `w`
    /// (`end <= w`).
    ///
    /// Only for a key whose open list is in id order (`!unsorted`). Then the due windows are
    /// a prefix of the list, since ends grow with ids, and closing each prefix as soon as the
    /// watermark passes it emits them in creation order, as one settle after the rows would
    /// (spec §7.2): a window closed here was opened before every window still open. The rows
    /// of the batch cannot reach a closed window: an on-time row has `ts >= w >= end`. A key
    /// whose list leaves id order is settled after the rows instead.
    #[inline(always)] // one caller, in a loop
    fn close_due_prefix(&mut self, k: u32, w: i64, tumbling: bool) {
        let ku = k as usize;
        let open = &mut self.fixed[ku];
        let list = open.as_mut_slice(); // (one inline-or-heap check, not one per window)
        let mut due = 0;
        while let Some(win) = list.get(due).filter(|win| win.end <= w) {
            let (id, start, end, slot) = (win.id, win.start, win.end, win.slot);
            self.closed.push(Closed { key: k, id, start, end, slot, merged: Vec::new() });
            due += 1;
        }
        if due == 0 {
            return; // listed twice in the block
        }
        // The rest moves to the front (a short list: a plain loop, not a `memmove` call).
        for i in due..list.len() {
            list[i - due] = list[i];
        }
        let left = list.len() - due;
        open.truncate(left);
        let key = &mut self.per_key[ku];
        // Tumbling: `recent` keeps working (a row in a closed window is late, so it never
        // uses the closed window's slot; its id still finds the neighbours). Sliding: the
        // pane's position moved with the list, and a pane that lost a window is over.
        if !tumbling {
            match u32::try_from(due).ok().and_then(|d| key.recent.slot.checked_sub(d)) {
                Some(at) if key.recent.start <= key.recent.end => key.recent.slot = at,
                _ => key.recent = NO_WINDOW,
            }
        }
        if open.is_empty() {
            key.max_open_id = i64::MIN;
        }
        back_inline(open);
    }

    /// [`apply`](Self::apply) for sliding windows (hopping: offset < length).
    #[inline]
    fn apply_sliding(&mut self, f: &FixedWindows, k: u32, ts: i64, row: RowRef, track_ctx: bool) {
        let ku = k as usize;
        // The row falls into the pane of the key's previous row (the common case): its
        // windows are known and stored one after another, so no division and no search.
        let (pane, pane_count) = (self.per_key[ku].recent, self.per_key[ku].recent_count as usize);
        if !track_ctx && pane.start <= ts && ts < pane.end {
            self.push_pane(row, ku, pane.id, pane.slot as usize, pane_count);
            return;
        }
        // The row moved on to the key's next pane, the previous one's windows shifted by one
        // (the next common case): its windows but the new last are the previous pane's from
        // the second on, and the new last is opened right after them when the previous pane
        // ends the key's list. Checked against the next pane's bounds (multiplications), with
        // no division and no search; the same windows, order and updates as below.
        if !track_ctx && pane.start <= pane.end && pane.end <= ts && pane_count > 0 {
            let (first, at) = (pane.id, pane.slot as usize);
            let next = first.checked_add(1).zip(first.checked_add(pane_count as i64));
            if let Some((next_first, next_last)) = next
                && let Some((start, end)) = f.pane(next_first, next_last)
                && start <= ts
                && ts < end
                && next_last > self.per_key[ku].max_open_id
                && at + pane_count == self.fixed[ku].len()
                && let Ok(slot) = u32::try_from(at + 1)
            {
                self.open_fixed(f, k, next_last, ts);
                self.push_pane(row, ku, next_first, at + 1, pane_count);
                self.per_key[ku].recent = OpenWindow { id: next_first, start, end, slot };
                return;
            }
        }
        let Some((first, last)) = f.ids(ts) else {
            return;
        };
        // The row's windows that are open lie one after another, and the others come after
        // all open ones (the row moved on to the key's next pane: one new window). Those are
        // opened in id order, which appends them right after, so the row's windows again lie
        // one after another: queue the updates in one go. Same windows, creation order, slots
        // and updates as the general loop below, without its per-window search.
        if !track_ctx {
            let open = &self.fixed[ku];
            let count = usize::try_from(last - first + 1).unwrap_or(0);
            let max_open_id = self.per_key[ku].max_open_id;
            // Ids above `max_open_id` are certainly not open; `first..=present_last` may be.
            let present_last = last.min(max_open_id);
            let present =
                present_last.checked_sub(first).and_then(|d| usize::try_from(d).ok()).map_or(0, |d| (d + 1).min(count));
            let at = if present == 0 { Some(open.len()) } else { find_open(open, first) };
            let in_place = at.is_some_and(|p| {
                // Ids `first + i` fit (they are window ids up to `last`); the wrapping
                // difference avoids computing one past `last`, which may not.
                let ids_follow =
                    |run: &[OpenWindow]| run.iter().enumerate().all(|(i, w)| w.id.wrapping_sub(first) == i as i64);
                open.get(p..p + present).is_some_and(ids_follow) && (present == count || p + present == open.len())
            });
            if let (true, Some(p)) = (in_place, at) {
                for id in (first..=last).skip(present) {
                    self.open_fixed(f, k, id, ts);
                }
                self.push_pane(row, ku, first, p, count);
                self.remember_pane(f, ku, first, last, p);
                return;
            }
        }
        // Each next id is usually right after the previous one: try there first. Note where
        // the windows sit: if one after another, the next row of the pane can use them.
        // Without window context to record, the row's windows go into a span of their own
        // and the row queues one update.
        let span = if track_ctx {
            None
        } else {
            let at = u32::try_from(self.span_slots.len()).ok();
            at.zip(u32::try_from(last - first + 1).ok()).filter(|&(_, len)| len > 0)
        };
        if let Some((_, len)) = span {
            self.span_slots.push(len);
        }
        let mut hint = usize::MAX;
        let (mut run_start, mut consecutive) = (0, true);
        for id in first..=last {
            let open = &self.fixed[ku];
            let at = match open.get(hint) {
                Some(w) if w.id == id => Some(hint),
                _ if id > self.per_key[ku].max_open_id => None,
                _ => find_open(open, id),
            };
            let (win, pos) = match at {
                Some(i) => (open[i], i),
                None => {
                    let win = self.open_fixed(f, k, id, ts);
                    (win, self.fixed[ku].len() - 1)
                }
            };
            if id == first {
                run_start = pos;
            } else {
                consecutive &= pos == hint;
            }
            hint = pos + 1;
            match span {
                Some(_) => self.span_slots.push(win.slot),
                None => self.push_op(row, win.slot),
            }
            if track_ctx {
                self.op_ctx.push((k, id, win.start, win.end));
            }
        }
        if let Some((at, _)) = span {
            self.start_run(row.batch, true);
            self.op_rows.push(row.row);
            self.op_slots.push(at);
        }
        if consecutive && first <= last {
            self.remember_pane(f, ku, first, last, run_start);
        }
    }

    /// Notes for key `ku` that the pane of windows `first..=last` starts at position `at` of
    /// its open list (see [`KeySlot::recent`]).
    #[inline]
    fn remember_pane(&mut self, f: &FixedWindows, ku: usize, first: i64, last: i64, at: usize) {
        let (Some((start, end)), Ok(slot), Ok(count)) =
            (f.pane(first, last), u32::try_from(at), u32::try_from(last - first + 1))
        else {
            return;
        };
        let key = &mut self.per_key[ku];
        key.recent = OpenWindow { id: first, start, end, slot };
        key.recent_count = count;
    }

    /// Queues the update of open windows `at..at + count` of key `ku` with `row`.
    #[inline(always)] // two callers, both per row
    fn push_ops(&mut self, row: RowRef, ku: usize, at: usize, count: usize) {
        if count == 0 {
            return;
        }
        self.start_run(row.batch, false);
        let windows = &self.fixed[ku][at..at + count];
        // Exact-size iterators: one reservation each, then plain writes (`resize` was a call
        // of its own, about 55 instructions per row).
        self.op_rows.extend(std::iter::repeat_n(row.row, count));
        self.op_slots.extend(windows.iter().map(|w| w.slot));
    }

    /// Queues one update of the `count` open windows `at..` of key `ku` (a pane whose first
    /// window is `first`) with `row`: a span update, the span made once per pane and flush.
    #[inline(always)] // two callers, both per row
    fn push_pane(&mut self, row: RowRef, ku: usize, first: i64, at: usize, count: usize) {
        if count == 0 {
            return;
        }
        let memo = self.span_memo[ku];
        let span = if memo.epoch == self.flush_epoch && memo.first == first && memo.count as usize == count {
            memo.at
        } else {
            match self.make_span(ku, first, at, count) {
                Some(span) => span,
                None => return self.push_ops(row, ku, at, count),
            }
        };
        self.start_run(row.batch, true);
        self.op_rows.push(row.row);
        self.op_slots.push(span);
    }

    /// [`push_pane`](Self::push_pane) for the pane in key `ku`'s slot. Out of line: inlined,
    /// it cost the tumbling path in the row loop about 1% more instructions.
    #[inline(never)]
    fn push_recent_pane(&mut self, row: RowRef, ku: usize) {
        let key = &self.per_key[ku];
        let (first, at, count) = (key.recent.id, key.recent.slot as usize, key.recent_count as usize);
        self.push_pane(row, ku, first, at, count);
    }

    /// A span of the slots of key `ku`'s open windows `at..at + count`, remembered as its pane
    /// `first`'s; `None` past what `u32` positions address.
    fn make_span(&mut self, ku: usize, first: i64, at: usize, count: usize) -> Option<u32> {
        let (Ok(span), Ok(len)) = (u32::try_from(self.span_slots.len()), u32::try_from(count)) else {
            return None;
        };
        self.span_slots.push(len);
        self.span_slots.extend(self.fixed[ku][at..at + count].iter().map(|w| w.slot));
        self.span_memo[ku] = SpanMemo { epoch: self.flush_epoch, first, count: len, at: span };
        Some(span)
    }

    /// Queues the update of `slot` with `row`.
    #[inline]
    fn push_op(&mut self, row: RowRef, slot: u32) {
        self.start_run(row.batch, false);
        self.op_rows.push(row.row);
        self.op_slots.push(slot);
    }

    /// Starts a new run of ops if the next op's row is from another batch than the last op's,
    /// or is a span update where the last was not (or the other way round). An empty last run
    /// is taken over.
    #[inline]
    fn start_run(&mut self, batch: u64, spans: bool) {
        if self.op_runs.last().is_none_or(|last| last.batch != batch || last.spans != spans) {
            self.new_run(batch, spans);
        }
    }

    #[cold]
    #[inline(never)]
    fn new_run(&mut self, batch: u64, spans: bool) {
        let first_op = self.op_rows.len();
        match self.op_runs.last_mut() {
            Some(last) if last.first_op == first_op => *last = OpRun { first_op, batch, spans },
            _ => self.op_runs.push(OpRun { first_op, batch, spans }),
        }
    }

    /// Runs the queued aggregation updates: runs of one batch between merges.
    fn flush_ops(&mut self) -> Result<()> {
        let rows = std::mem::take(&mut self.op_rows);
        let slots = std::mem::take(&mut self.op_slots);
        let runs = std::mem::take(&mut self.op_runs);
        let span_slots = std::mem::take(&mut self.span_slots);
        // These spans go now, even if an update below fails: no memo may point into them.
        self.flush_epoch += 1;
        let merges = std::mem::take(&mut self.op_merges);
        let mut start = 0;
        let mut run = 0; // index into `runs` of the run holding op `start`
        let mut merge_iter = merges.iter().peekable();
        while start < rows.len() || merge_iter.peek().is_some() {
            // Merges that come before position `start`.
            while let Some((pos, m)) = merge_iter.peek() {
                if *pos <= start {
                    self.agg.merge(m.target_slot, m.original_slot, &mut self.store)?;
                    merge_iter.next();
                } else {
                    break;
                }
            }
            if start >= rows.len() {
                continue;
            }
            while runs.get(run + 1).is_some_and(|r| r.first_op <= start) {
                run += 1;
            }
            let OpRun { batch: seq, spans, .. } = runs[run];
            let run_end = runs.get(run + 1).map_or(rows.len(), |r| r.first_op);
            let end = merge_iter.peek().map_or(rows.len(), |(p, _)| *p).min(run_end);
            let batch = self
                .store
                .get(seq)
                .cloned()
                .ok_or_else(|| WindrowError::Internal(format!("batch {seq} not retained")))?;
            let view = BatchView { seq, batch: &batch };
            let (run_rows, targets) = (&rows[start..end], &slots[start..end]);
            if spans {
                self.agg.update_spans(&view, run_rows, targets, &span_slots, &mut self.store)?;
            } else {
                self.agg.update(&view, run_rows, targets, &mut self.store)?;
            }
            start = end;
        }
        for seq in self.queue_releases.drain(..) {
            self.store.release(seq, 1);
        }
        let (mut rows, mut slots, mut runs, mut span_slots) = (rows, slots, runs, span_slots);
        rows.clear();
        slots.clear();
        runs.clear();
        span_slots.clear();
        self.op_rows = rows;
        self.op_slots = slots;
        self.op_runs = runs;
        self.span_slots = span_slots;
        let mut merges = merges;
        merges.clear();
        self.op_merges = merges;
        Ok(())
    }

    /// Settles for a timer or end of input and flushes.
    pub fn settle_and_flush(&mut self, cfg: &ShardConfig, w: Option<i64>, sys_now: i64) -> Result<()> {
        match w {
            Some(w) => self.settle_all(cfg, w, w == POS_INF),
            None => self.settle_all_per_key(cfg, sys_now),
        }
        self.flush_ops()
    }

    /// Evaluates the windows closed in this step and builds `down` and `meta` batches.
    pub fn emit_closed(
        &mut self,
        keys: &BoundKeys,
        down_schema: &SchemaRef,
        meta_schema: &SchemaRef,
        ts_type: &DataType,
    ) -> Result<ShardOutput> {
        let mut closed = std::mem::take(&mut self.closed);
        let out = self.emit(&closed, keys, down_schema, meta_schema, ts_type);
        closed.clear();
        self.closed = closed; // keeps its capacity for the next step
        out
    }

    fn emit(
        &mut self,
        closed: &[Closed],
        keys: &BoundKeys,
        down_schema: &SchemaRef,
        meta_schema: &SchemaRef,
        ts_type: &DataType,
    ) -> Result<ShardOutput> {
        let slots: Vec<u32> = closed.iter().map(|c| c.slot).collect();
        let results = if closed.is_empty() { Vec::new() } else { self.agg.evaluate(&slots, &mut self.store)? };
        self.slots.open -= closed.len();
        self.freed.extend_from_slice(&slots);

        // Key columns of the closed windows, decoded once for `meta` and (usually) `down`.
        let key_arrays = if closed.is_empty() {
            Vec::new()
        } else {
            keys.decode_interned(&self.keys, closed.iter().map(|c| c.key))?
        };

        // Down rows: one per closed window, or (joins) whatever was emitted while applying
        // and closing, each tagged with its window at that moment.
        let down = if self.agg.emits_rows() {
            let emitted = self.agg.drain_emitted(&mut self.store)?;
            let ctx = std::mem::take(&mut self.op_ctx);
            match emitted {
                Some(e) if !e.tags.is_empty() => {
                    let windows: Vec<OpCtx> = e
                        .tags
                        .iter()
                        .map(|t| match *t {
                            EmitTag::Op(i) => ctx.get(i).copied(),
                            EmitTag::Close(i) => closed.get(i).map(|c| (c.key, c.id, c.start, c.end)),
                        })
                        .collect::<Option<_>>()
                        .ok_or_else(|| WindrowError::Internal("emitted row without a window".into()))?;
                    let key_cols = keys.decode_interned(&self.keys, windows.iter().map(|w| w.0))?;
                    Some(window_rows(key_cols, down_schema, ts_type, &windows, e.columns)?)
                }
                _ => None,
            }
        } else {
            None
        };
        self.release_freed();
        if closed.is_empty() {
            return Ok(ShardOutput { down, meta: None });
        }

        // `down` (one row per window) and `meta` share the key, id and bound columns.
        let ids: ArrayRef = Arc::new(Int64Array::from_iter_values(closed.iter().map(|c| c.id)));
        let starts = ts_array(closed.iter().map(|c| c.start), ts_type)?;
        let ends = ts_array(closed.iter().map(|c| c.end), ts_type)?;
        let down = if self.agg.emits_rows() {
            down
        } else {
            let mut cols = key_arrays.clone();
            cols.extend([ids.clone(), starts.clone(), ends.clone()]);
            cols.extend(results);
            Some(RecordBatch::try_new(down_schema.clone(), cols)?)
        };
        // Only sessions merge; fixed windows skip the per-window lengths.
        let (merged_values, offsets) = if closed.iter().all(|c| c.merged.is_empty()) {
            (Int64Array::from(Vec::<i64>::new()), OffsetBuffer::new_zeroed(closed.len()))
        } else {
            (
                Int64Array::from_iter_values(closed.iter().flat_map(|c| c.merged.iter().copied())),
                OffsetBuffer::from_lengths(closed.iter().map(|c| c.merged.len())),
            )
        };
        let DataType::List(item) = meta_schema.field(meta_schema.fields().len() - 1).data_type() else {
            return Err(WindrowError::Internal("merged_ids is not a list".into()));
        };
        let merged = ListArray::try_new(item.clone(), offsets, Arc::new(merged_values), None)?;
        let mut meta_cols = key_arrays;
        meta_cols.extend([ids, starts, ends, Arc::new(merged) as ArrayRef]);
        let meta = RecordBatch::try_new(meta_schema.clone(), meta_cols)?;
        Ok(ShardOutput { down, meta: Some(meta) })
    }

    fn release_freed(&mut self) {
        self.slots.free.append(&mut self.freed);
    }

    /// Retained input batches (memory diagnostics).
    pub fn retained_batches(&self) -> usize {
        self.store.len()
    }
}

/// The position of window `id` among a key's open windows. They are created mostly in id
/// order and close from the front, so they are usually consecutive ids: `id − first id` is
/// tried before a scan. (Between two settles a key can collect many open windows: a batch
/// spans minutes of event time per key.)
#[inline]
fn find_open(open: &[OpenWindow], id: i64) -> Option<usize> {
    let base = open.first()?.id;
    let guess = id.checked_sub(base).and_then(|d| usize::try_from(d).ok());
    match guess {
        Some(g) if open.get(g).is_some_and(|w| w.id == id) => Some(g),
        _ => open.iter().position(|w| w.id == id),
    }
}

/// Key, window id and bounds for each row, followed by the result columns.
fn window_rows(
    mut cols: Vec<ArrayRef>,
    schema: &SchemaRef,
    ts_type: &DataType,
    windows: &[OpCtx],
    results: Vec<ArrayRef>,
) -> Result<RecordBatch> {
    cols.push(Arc::new(Int64Array::from_iter_values(windows.iter().map(|w| w.1))));
    cols.push(ts_array(windows.iter().map(|w| w.2), ts_type)?);
    cols.push(ts_array(windows.iter().map(|w| w.3), ts_type)?);
    cols.extend(results);
    Ok(RecordBatch::try_new(schema.clone(), cols)?)
}

fn ts_array(values: impl Iterator<Item = i64>, ts_type: &arrow::datatypes::DataType) -> Result<ArrayRef> {
    let a = Int64Array::from_iter_values(values);
    Ok(arrow::compute::cast(&a, ts_type)?)
}

// ---------------------------------------------------------------------------------------------
// Checkpoints (spec §9.1)
// ---------------------------------------------------------------------------------------------

/// A shard's state for a checkpoint, as Arrow batches. Keys are saved as their interned bytes
/// and hash, so that a restore can re-shard them for another thread count without evaluating
/// key expressions again.
pub(crate) struct ShardState {
    /// Per key: `key` (interned bytes), `hash`, the clock's `base` and `sys_of_max`, the
    /// session `next_id` (null for fixed windows), `active` (position in the active list).
    pub keys: RecordBatch,
    /// Per open window, in each key's creation order: `key` (row of `keys`), `id`, `start`,
    /// `end`, `merged`, then the aggregation state as `agg.<name>` columns.
    pub windows: RecordBatch,
    /// Ordered-mode queues: `key`, `ts`, and the row's original `batch` and `row`.
    pub queue: RecordBatch,
    /// Input rows the state refers to: `__batch`, `__row`, then the input's columns.
    pub rows: Option<RecordBatch>,
}

fn state_batch(columns: Vec<(String, ArrayRef)>) -> Result<RecordBatch> {
    let fields: Vec<arrow::datatypes::Field> =
        columns.iter().map(|(n, a)| arrow::datatypes::Field::new(n, a.data_type().clone(), true)).collect();
    let schema = Arc::new(arrow::datatypes::Schema::new(fields));
    let rows = columns.first().map_or(0, |(_, a)| a.len());
    let arrays = columns.into_iter().map(|(_, a)| a).collect();
    let options = arrow::array::RecordBatchOptions::new().with_row_count(Some(rows));
    Ok(RecordBatch::try_new_with_options(schema, arrays, &options)?)
}

/// A column of a state batch, downcast.
pub(crate) fn state_col<'a, T: arrow::array::ArrowPrimitiveType>(
    batch: &'a RecordBatch,
    name: &str,
) -> Result<&'a arrow::array::PrimitiveArray<T>> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_primitive_opt::<T>())
        .ok_or_else(|| WindrowError::Data(format!("checkpoint table lacks column \"{name}\" of the expected type")))
}

impl Shard {
    /// The shard's state (not changed). Only between micro-batches.
    pub fn snapshot(&mut self, cfg: &ShardConfig) -> Result<ShardState> {
        use arrow::array::{BinaryBuilder, ListBuilder, UInt32Array, UInt64Array};
        let n = self.keys.len();
        let mut active_pos: Vec<Option<i64>> = vec![None; n];
        for (i, &k) in self.active.iter().enumerate() {
            active_pos[k as usize] = Some(i as i64);
        }
        let mut key_bytes = BinaryBuilder::new();
        for k in 0..n as u32 {
            key_bytes.append_value(self.keys.key(k));
        }
        let sessions = matches!(cfg.windower, BoundWindower::Session { .. });
        let keys = state_batch(vec![
            ("key".into(), Arc::new(key_bytes.finish()) as ArrayRef),
            ("hash".into(), Arc::new((0..n as u32).map(|k| self.keys.hash(k)).collect::<UInt64Array>())),
            ("base".into(), Arc::new(self.per_key.iter().map(|s| s.clock.base).collect::<Int64Array>())),
            ("sys_of_max".into(), Arc::new(self.per_key.iter().map(|s| s.clock.sys_of_max).collect::<Int64Array>())),
            (
                "next_id".into(),
                Arc::new((0..n).map(|k| sessions.then(|| self.sessions[k].next_id)).collect::<Int64Array>()),
            ),
            ("active".into(), Arc::new(active_pos.into_iter().collect::<Int64Array>())),
        ])?;

        // Open windows, per key in creation order.
        let (mut wkey, mut wid, mut wstart, mut wend, mut slots) = (vec![], vec![], vec![], vec![], vec![]);
        let mut merged = ListBuilder::new(arrow::array::Int64Builder::new());
        for k in 0..n {
            if sessions {
                for s in &self.sessions[k].live {
                    wkey.push(k as u32);
                    wid.push(s.id);
                    wstart.push(s.first);
                    wend.push(s.last);
                    slots.push(s.slot);
                    merged.append_value(s.merged.iter().map(|&m| Some(m)));
                }
            } else {
                for w in &self.fixed[k] {
                    wkey.push(k as u32);
                    wid.push(w.id);
                    wstart.push(w.start);
                    wend.push(w.end);
                    slots.push(w.slot);
                    merged.append_value(std::iter::empty::<Option<i64>>());
                }
            }
        }
        let mut refs: Vec<RowRef> = Vec::new();
        let agg_cols = self.agg.snapshot(&slots, &mut refs)?;
        let mut window_cols: Vec<(String, ArrayRef)> = vec![
            ("key".into(), Arc::new(UInt32Array::from(wkey))),
            ("id".into(), Arc::new(Int64Array::from(wid))),
            ("start".into(), Arc::new(Int64Array::from(wstart))),
            ("end".into(), Arc::new(Int64Array::from(wend))),
            ("merged".into(), Arc::new(merged.finish())),
        ];
        window_cols.extend(agg_cols.into_iter().map(|(name, a)| (format!("agg.{name}"), a)));
        let windows = state_batch(window_cols)?;

        let (mut qkey, mut qts, mut qbatch, mut qrow) = (vec![], vec![], vec![], vec![]);
        for (k, q) in self.queues.iter().enumerate() {
            for item in q {
                qkey.push(k as u32);
                qts.push(item.ts);
                qbatch.push(item.row.batch);
                qrow.push(item.row.row);
                refs.push(item.row);
            }
        }
        let queue = state_batch(vec![
            ("key".into(), Arc::new(UInt32Array::from(qkey))),
            ("ts".into(), Arc::new(Int64Array::from(qts))),
            ("batch".into(), Arc::new(UInt64Array::from(qbatch))),
            ("row".into(), Arc::new(UInt32Array::from(qrow))),
        ])?;
        Ok(ShardState { keys, windows, queue, rows: self.saved_rows(refs)? })
    }

    /// The input rows `refs` names, gathered from the retained batches with their original
    /// positions, in arrival order.
    fn saved_rows(&self, mut refs: Vec<RowRef>) -> Result<Option<RecordBatch>> {
        use arrow::array::{UInt32Array, UInt64Array};
        if refs.is_empty() {
            return Ok(None);
        }
        refs.sort_unstable_by_key(|r| (r.batch, r.row));
        refs.dedup();
        let mut batches: Vec<&RecordBatch> = Vec::new();
        let mut indices: Vec<(usize, usize)> = Vec::with_capacity(refs.len());
        let mut last: Option<u64> = None;
        for r in &refs {
            if last != Some(r.batch) {
                let b = self
                    .store
                    .get(r.batch)
                    .ok_or_else(|| WindrowError::Internal(format!("retained batch {} missing", r.batch)))?;
                batches.push(b);
                last = Some(r.batch);
            }
            indices.push((batches.len() - 1, r.row as usize));
        }
        // The input fields keep their nullability: restored rows are interleaved with new
        // ones later, and arrow refuses to mix struct types that differ in it.
        let schema = batches[0].schema();
        let mut fields: Vec<arrow::datatypes::FieldRef> = vec![
            Arc::new(arrow::datatypes::Field::new("__batch", arrow::datatypes::DataType::UInt64, false)),
            Arc::new(arrow::datatypes::Field::new("__row", arrow::datatypes::DataType::UInt32, false)),
        ];
        fields.extend(schema.fields().iter().cloned());
        let mut cols: Vec<ArrayRef> = vec![
            Arc::new(refs.iter().map(|r| r.batch).collect::<UInt64Array>()),
            Arc::new(refs.iter().map(|r| r.row).collect::<UInt32Array>()),
        ];
        for c in 0..schema.fields().len() {
            let arrays: Vec<&dyn arrow::array::Array> = batches.iter().map(|b| b.column(c).as_ref()).collect();
            cols.push(arrow::compute::interleave(&arrays, &indices)?);
        }
        Ok(Some(RecordBatch::try_new(Arc::new(arrow::datatypes::Schema::new(fields)), cols)?))
    }

    /// Adds one saved key (restore), with its clock, session counter and activity; returns
    /// its id here.
    pub fn restore_key(
        &mut self,
        cfg: &ShardConfig,
        bytes: &[u8],
        hash: u64,
        clock: ClockState,
        next_id: Option<i64>,
    ) -> Result<u32> {
        let (k, new) = self.keys.intern_saved(bytes, hash)?;
        if !new {
            return Err(WindrowError::Data("checkpoint holds the same key twice".into()));
        }
        self.add_key(cfg, clock, next_id.unwrap_or(0));
        Ok(k)
    }

    /// Per-key state for a newly interned key. Rare (once per key) and kept out of the
    /// per-row loop.
    #[cold]
    #[inline(never)]
    fn add_key(&mut self, cfg: &ShardConfig, clock: ClockState, next_session_id: i64) {
        self.per_key.push(KeySlot::new(clock));
        match cfg.windower {
            BoundWindower::Fixed(f) => {
                self.fixed.push(OpenList::new());
                if f.offset != f.length {
                    self.span_memo.push(SpanMemo::default());
                }
            }
            BoundWindower::Session { .. } => {
                self.sessions.push(Sessions { live: SmallVec::new(), next_id: next_session_id })
            }
        }
        if cfg.ordered {
            self.queues.push(Vec::new());
        }
    }

    /// Makes restored rows available (pinned until [`end_restore`](Self::end_restore)).
    pub fn begin_restore(&mut self, batches: &[(u64, RecordBatch)]) {
        for (seq, b) in batches {
            self.store.pin(*seq, b);
        }
    }

    /// Drops the restore pins: batches no restored state refers to are freed.
    pub fn end_restore(&mut self, batches: &[(u64, RecordBatch)]) {
        for (seq, _) in batches {
            self.store.unpin(*seq);
        }
    }

    /// Restores open windows `rows` of a saved `windows` table into the keys `key_ids` (the
    /// table's `key` column indexes it), with their aggregation state.
    pub fn restore_windows(
        &mut self,
        cfg: &ShardConfig,
        windows: &RecordBatch,
        key_ids: &[u32],
        row_map: &crate::agg::RowMap,
    ) -> Result<()> {
        use arrow::datatypes::{Int64Type, UInt32Type};
        let key = state_col::<UInt32Type>(windows, "key")?;
        let id = state_col::<Int64Type>(windows, "id")?;
        let start = state_col::<Int64Type>(windows, "start")?;
        let end = state_col::<Int64Type>(windows, "end")?;
        let merged = windows
            .column_by_name("merged")
            .and_then(|c| c.as_list_opt::<i32>())
            .ok_or_else(|| WindrowError::Data("checkpoint windows table lacks \"merged\"".into()))?;
        let mut slots = Vec::with_capacity(windows.num_rows());
        for r in 0..windows.num_rows() {
            let k = *key_ids
                .get(key.value(r) as usize)
                .ok_or_else(|| WindrowError::Data("checkpoint window refers to a key it does not hold".into()))?;
            let slot = self.alloc_slot();
            slots.push(slot);
            let (id, start, end) = (id.value(r), start.value(r), end.value(r));
            match cfg.windower {
                BoundWindower::Fixed(_) => self.push_open(k, OpenWindow { id, start, end, slot }),
                BoundWindower::Session { .. } => {
                    let m = merged.value(r);
                    let merged_ids = m.as_primitive::<Int64Type>().values().to_vec();
                    self.sessions[k as usize].live.push(Session {
                        id,
                        first: start,
                        last: end,
                        merged: merged_ids,
                        slot,
                    });
                }
            }
        }
        let agg_cols: Vec<(String, ArrayRef)> = windows
            .schema()
            .fields()
            .iter()
            .zip(windows.columns())
            .filter_map(|(f, c)| f.name().strip_prefix("agg.").map(|n| (n.to_string(), Arc::clone(c))))
            .collect();
        self.agg.restore(&slots, &crate::agg::StateColumns::new(&agg_cols), row_map, &mut self.store)
    }

    /// Restores ordered-mode queue rows `queue` into the keys `key_ids`.
    pub fn restore_queue(&mut self, queue: &RecordBatch, key_ids: &[u32], row_map: &crate::agg::RowMap) -> Result<()> {
        use arrow::datatypes::{Int64Type, UInt32Type, UInt64Type};
        let key = state_col::<UInt32Type>(queue, "key")?;
        let ts = state_col::<Int64Type>(queue, "ts")?;
        let batch = state_col::<UInt64Type>(queue, "batch")?;
        let row = state_col::<UInt32Type>(queue, "row")?;
        for r in 0..queue.num_rows() {
            let k = *key_ids
                .get(key.value(r) as usize)
                .ok_or_else(|| WindrowError::Data("checkpoint queue refers to a key it does not hold".into()))?;
            let queue = self
                .queues
                .get_mut(k as usize)
                .ok_or_else(|| WindrowError::Data("checkpoint has ordered-mode rows for an unordered step".into()))?;
            let row = row_map.take(batch.value(r), row.value(r), &mut self.store)?;
            queue.push(Queued { ts: ts.value(r), row });
        }
        Ok(())
    }

    /// Marks restored keys active in the saved order (closing order depends on it).
    pub fn restore_active(&mut self, keys_in_order: impl IntoIterator<Item = u32>) {
        for k in keys_in_order {
            self.mark_active(k);
        }
    }
}
