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

use super::keys::{BatchKeys, BoundKeys, KeyTable};
use crate::agg::{BatchStore, BatchView, EmitTag, RowRef, SlotAgg};
use crate::error::{Result, WindrowError};
use crate::time::{NEG_INF, POS_INF};
use crate::window::session::{Merge, Session, Sessions};
use crate::window::{BoundWindower, FixedWindows, LATE_SESSION_ID};

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

pub(crate) struct Shard {
    keys: KeyTable,
    clocks: Vec<ClockState>,
    fixed: Vec<Vec<OpenWindow>>,
    /// Tumbling windows: each key's most recently used open window, so that the common case
    /// (the row falls into the window the key's previous row used) needs no division and no
    /// search. Reset whenever one of the key's windows closes (its slot may be reused).
    recent: Vec<OpenWindow>,
    sessions: Vec<Sessions>,
    queues: Vec<Vec<Queued>>,
    /// Keys with open windows or queued rows, for stream-scope settling and end of input.
    active: Vec<u32>,
    is_active: Vec<bool>,
    touched: Vec<u32>,
    touched_at: Vec<u64>,
    free_slots: Vec<u32>,
    next_slot: u32,
    open_windows: usize,
    agg: Box<dyn SlotAgg>,
    store: BatchStore,
    // Scratch, reused across batches.
    op_refs: Vec<RowRef>,
    op_slots: Vec<u32>,
    op_merges: Vec<(usize, Merge)>,
    /// With `track_ctx`: one entry per applied row and per merge, in application order.
    op_ctx: Vec<OpCtx>,
    merges: Vec<Merge>,
    freed: Vec<u32>,
    queue_releases: Vec<u64>,
    closed: Vec<Closed>,
    closed_sessions: Vec<Session>,
}

impl Shard {
    pub fn new(agg: Box<dyn SlotAgg>) -> Self {
        Shard {
            keys: KeyTable::default(),
            clocks: Vec::new(),
            fixed: Vec::new(),
            recent: Vec::new(),
            sessions: Vec::new(),
            queues: Vec::new(),
            active: Vec::new(),
            is_active: Vec::new(),
            touched: Vec::new(),
            touched_at: Vec::new(),
            free_slots: Vec::new(),
            next_slot: 0,
            open_windows: 0,
            agg,
            store: BatchStore::default(),
            op_refs: Vec::new(),
            op_slots: Vec::new(),
            op_merges: Vec::new(),
            op_ctx: Vec::new(),
            merges: Vec::new(),
            freed: Vec::new(),
            queue_releases: Vec::new(),
            closed: Vec::new(),
            closed_sessions: Vec::new(),
        }
    }

    /// Open windows (for progress reports).
    pub fn open_windows(&self) -> usize {
        self.open_windows
    }

    /// Number of keys seen.
    pub fn key_count(&self) -> usize {
        self.keys.len()
    }

    fn alloc_slot(&mut self) -> u32 {
        self.open_windows += 1;
        if let Some(s) = self.free_slots.pop() {
            return s;
        }
        let s = self.next_slot;
        self.next_slot += 1;
        self.agg.ensure_slots(self.next_slot as usize);
        s
    }

    fn mark_active(&mut self, k: u32) {
        if !self.is_active[k as usize] {
            self.is_active[k as usize] = true;
            self.active.push(k);
        }
    }

    /// Processes this shard's rows of one batch (`rows` in arrival order).
    #[allow(clippy::too_many_arguments)]
    pub fn process(
        &mut self,
        cfg: &ShardConfig,
        seq: u64,
        batch: &RecordBatch,
        keys: &BatchKeys,
        times: &[i64],
        rows: &[u32],
        lateness: &Lateness<'_>,
        sys_now: i64,
    ) -> Result<Vec<(u32, i64)>> {
        self.store.pin(seq, batch);
        let mut late = Vec::new();
        for &r in rows {
            let (k, new) = self.keys.intern(keys, r as usize)?;
            if new {
                self.clocks.push(ClockState::new(sys_now));
                match cfg.windower {
                    BoundWindower::Fixed(_) => {
                        self.fixed.push(Vec::new());
                        self.recent.push(NO_WINDOW);
                    }
                    BoundWindower::Session { .. } => self.sessions.push(Sessions::default()),
                }
                if cfg.ordered {
                    self.queues.push(Vec::new());
                }
                self.is_active.push(false);
                self.touched_at.push(u64::MAX);
            }
            let ts = times[r as usize];
            let is_late = match lateness {
                Lateness::PerKey => {
                    let cand = cfg.wait.and_then(|w| ts.checked_sub(w));
                    let w = self.clocks[k as usize].offer(cand, sys_now);
                    if self.touched_at[k as usize] != seq {
                        self.touched_at[k as usize] = seq;
                        self.touched.push(k);
                    }
                    ts < w
                }
                Lateness::Stream { late, .. } => late[r as usize],
            };
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
            self.mark_active(k);
            let row = RowRef { batch: seq, row: r };
            if cfg.ordered {
                self.queues[k as usize].push(Queued { ts, row });
                self.store.retain(seq, 1);
            } else {
                self.apply(cfg, k, ts, row);
            }
        }
        // Settle after the rows: per key for keys that had rows; per stream for every key
        // with state (closing happens once per micro-batch, with the final watermark).
        match lateness {
            Lateness::PerKey => {
                let touched = std::mem::take(&mut self.touched);
                for &k in &touched {
                    let w = self.clocks[k as usize].current(sys_now);
                    self.settle(cfg, k, w, false);
                }
                self.touched = touched;
                self.touched.clear();
            }
            Lateness::Stream { watermark, .. } => self.settle_all(cfg, *watermark, false),
        }
        self.flush_ops()?;
        self.store.unpin(seq);
        Ok(late)
    }

    /// Settles every key with state at watermark `w` (stream scope, end of input).
    pub fn settle_all(&mut self, cfg: &ShardConfig, w: i64, eof: bool) {
        self.settle_active(cfg, |_| w, eof);
    }

    /// Settles every key with state at its own current watermark (live-mode timers).
    pub fn settle_all_per_key(&mut self, cfg: &ShardConfig, sys_now: i64) {
        let watermarks: Vec<i64> = self.clocks.iter().map(|c| c.current(sys_now)).collect();
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
        let is_active = &mut self.is_active;
        let (fixed, sessions, queues) = (&self.fixed, &self.sessions, &self.queues);
        self.active.retain(|&k| {
            let ku = k as usize;
            let has_windows =
                fixed.get(ku).is_some_and(|v| !v.is_empty()) || sessions.get(ku).is_some_and(|s| !s.live.is_empty());
            let keep = has_windows || queues.get(ku).is_some_and(|q| !q.is_empty());
            is_active[ku] = keep;
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
                let closed = &mut self.closed;
                open.retain(|win| {
                    if win.end <= w {
                        max_end = max_end.max(win.end);
                        closed.push(Closed {
                            key: k,
                            id: win.id,
                            start: win.start,
                            end: win.end,
                            slot: win.slot,
                            merged: Vec::new(),
                        });
                        false
                    } else {
                        true
                    }
                });
                if max_end != NEG_INF {
                    self.recent[ku] = NO_WINDOW;
                }
                if eof && max_end != NEG_INF {
                    // Spec §9.3: a continuation after end of input can never reopen a window.
                    let c = &mut self.clocks[ku];
                    c.base = c.base.max(max_end);
                }
                if open.is_empty() {
                    open.shrink_to(4);
                }
            }
            BoundWindower::Session { gap } => {
                let mut out = std::mem::take(&mut self.closed_sessions);
                self.sessions[ku].close(w, gap, &mut out);
                for s in out.drain(..) {
                    let Session { id, first, last, mut merged, slot } = s;
                    merged.sort_unstable();
                    self.closed.push(Closed { key: k, id, start: first, end: last, slot, merged });
                }
                self.closed_sessions = out;
                if self.sessions[ku].live.is_empty() {
                    self.sessions[ku].live.shrink_to(2);
                }
            }
        }
    }

    /// Spec §3.2 `apply`: open the row's windows and queue the aggregation update.
    fn apply(&mut self, cfg: &ShardConfig, k: u32, ts: i64, row: RowRef) {
        match cfg.windower {
            BoundWindower::Fixed(f) => self.apply_fixed(&f, k, ts, row, cfg.track_ctx),
            BoundWindower::Session { gap } => {
                let mut merges = std::mem::take(&mut self.merges);
                let mut sessions = std::mem::take(&mut self.sessions[k as usize]);
                let (id, slot, first, last) = sessions.assign(ts, gap, || self.alloc_slot(), &mut merges);
                self.op_refs.push(row);
                self.op_slots.push(slot);
                if cfg.track_ctx {
                    self.op_ctx.push((k, id, first, last));
                }
                for m in merges.drain(..) {
                    self.op_merges.push((self.op_refs.len(), m));
                    self.freed.push(m.original_slot);
                    self.open_windows -= 1;
                    if cfg.track_ctx {
                        let (first, last) = sessions.bounds(m.target_id).unwrap_or((ts, ts));
                        self.op_ctx.push((k, m.target_id, first, last));
                    }
                }
                self.sessions[k as usize] = sessions;
                self.merges = merges;
            }
        }
    }

    #[inline]
    fn apply_fixed(&mut self, f: &FixedWindows, k: u32, ts: i64, row: RowRef, track_ctx: bool) {
        let tumbling = f.offset == f.length;
        if tumbling {
            let w = self.recent[k as usize];
            // The window [start, end) holding ts is the only tumbling window containing it.
            if w.start <= ts && ts < w.end {
                self.op_refs.push(row);
                self.op_slots.push(w.slot);
                if track_ctx {
                    self.op_ctx.push((k, w.id, w.start, w.end));
                }
                return;
            }
        }
        let Some((first, last)) = f.ids(ts) else {
            return;
        };
        for id in first..=last {
            let existing = self.fixed[k as usize].iter().find(|w| w.id == id).map(|w| (w.slot, w.start, w.end));
            let (slot, start, end) = match existing {
                Some(found) => found,
                None => {
                    let (start, end) = f.bounds(id).unwrap_or((ts, ts));
                    let slot = self.alloc_slot();
                    self.fixed[k as usize].push(OpenWindow { id, start, end, slot });
                    (slot, start, end)
                }
            };
            self.op_refs.push(row);
            self.op_slots.push(slot);
            if track_ctx {
                self.op_ctx.push((k, id, start, end));
            }
            if tumbling {
                self.recent[k as usize] = OpenWindow { id, start, end, slot };
            }
        }
    }

    /// Runs the queued aggregation updates: runs of one batch between merges.
    fn flush_ops(&mut self) -> Result<()> {
        let refs = std::mem::take(&mut self.op_refs);
        let slots = std::mem::take(&mut self.op_slots);
        let merges = std::mem::take(&mut self.op_merges);
        let mut rows_scratch: Vec<u32> = Vec::new();
        let mut start = 0;
        let mut merge_iter = merges.iter().peekable();
        while start < refs.len() || merge_iter.peek().is_some() {
            // Merges that come before position `start`.
            while let Some((pos, m)) = merge_iter.peek() {
                if *pos <= start {
                    self.agg.merge(m.target_slot, m.original_slot, &mut self.store)?;
                    merge_iter.next();
                } else {
                    break;
                }
            }
            if start >= refs.len() {
                continue;
            }
            let limit = merge_iter.peek().map_or(refs.len(), |(p, _)| *p);
            let seq = refs[start].batch;
            let mut end = start;
            while end < limit && refs[end].batch == seq {
                end += 1;
            }
            rows_scratch.clear();
            rows_scratch.extend(refs[start..end].iter().map(|r| r.row));
            let batch = self
                .store
                .get(seq)
                .cloned()
                .ok_or_else(|| WindrowError::Internal(format!("batch {seq} not retained")))?;
            self.agg.update(&BatchView { seq, batch: &batch }, &rows_scratch, &slots[start..end], &mut self.store)?;
            start = end;
        }
        for seq in self.queue_releases.drain(..) {
            self.store.release(seq, 1);
        }
        let (mut refs, mut slots) = (refs, slots);
        refs.clear();
        slots.clear();
        self.op_refs = refs;
        self.op_slots = slots;
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
        let closed = std::mem::take(&mut self.closed);
        let slots: Vec<u32> = closed.iter().map(|c| c.slot).collect();
        let results = if closed.is_empty() { Vec::new() } else { self.agg.evaluate(&slots, &mut self.store)? };
        self.open_windows -= closed.len();
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
        } else if closed.is_empty() {
            None
        } else {
            let windows: Vec<OpCtx> = closed.iter().map(|c| (c.key, c.id, c.start, c.end)).collect();
            Some(window_rows(key_arrays.clone(), down_schema, ts_type, &windows, results)?)
        };
        self.release_freed();
        if closed.is_empty() {
            return Ok(ShardOutput { down, meta: None });
        }

        let ids: ArrayRef = Arc::new(closed.iter().map(|c| c.id).collect::<Int64Array>());
        let merged_values: Int64Array = closed.iter().flat_map(|c| c.merged.iter().copied()).collect();
        let offsets = OffsetBuffer::from_lengths(closed.iter().map(|c| c.merged.len()));
        let DataType::List(item) = meta_schema.field(meta_schema.fields().len() - 1).data_type() else {
            return Err(WindrowError::Internal("merged_ids is not a list".into()));
        };
        let merged = ListArray::try_new(item.clone(), offsets, Arc::new(merged_values), None)?;
        let mut meta_cols = key_arrays;
        meta_cols.extend([
            ids,
            ts_array(closed.iter().map(|c| c.start), ts_type)?,
            ts_array(closed.iter().map(|c| c.end), ts_type)?,
            Arc::new(merged) as ArrayRef,
        ]);
        let meta = RecordBatch::try_new(meta_schema.clone(), meta_cols)?;
        Ok(ShardOutput { down, meta: Some(meta) })
    }

    fn release_freed(&mut self) {
        self.free_slots.append(&mut self.freed);
    }

    /// Retained input batches (memory diagnostics).
    pub fn retained_batches(&self) -> usize {
        self.store.len()
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
    cols.push(Arc::new(windows.iter().map(|w| w.1).collect::<Int64Array>()));
    cols.push(ts_array(windows.iter().map(|w| w.2), ts_type)?);
    cols.push(ts_array(windows.iter().map(|w| w.3), ts_type)?);
    cols.extend(results);
    Ok(RecordBatch::try_new(schema.clone(), cols)?)
}

fn ts_array(values: impl Iterator<Item = i64>, ts_type: &arrow::datatypes::DataType) -> Result<ArrayRef> {
    let a: Int64Array = values.collect();
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
            ("base".into(), Arc::new(self.clocks.iter().map(|c| c.base).collect::<Int64Array>())),
            ("sys_of_max".into(), Arc::new(self.clocks.iter().map(|c| c.sys_of_max).collect::<Int64Array>())),
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
        self.clocks.push(clock);
        match cfg.windower {
            BoundWindower::Fixed(_) => {
                self.fixed.push(Vec::new());
                self.recent.push(NO_WINDOW);
            }
            BoundWindower::Session { .. } => {
                self.sessions.push(Sessions { live: Vec::new(), next_id: next_id.unwrap_or(0) })
            }
        }
        if cfg.ordered {
            self.queues.push(Vec::new());
        }
        self.is_active.push(false);
        self.touched_at.push(u64::MAX);
        Ok(k)
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
                BoundWindower::Fixed(_) => self.fixed[k as usize].push(OpenWindow { id, start, end, slot }),
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
