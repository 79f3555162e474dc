//! Checkpoints and recovery (spec §9): exactly-once window output after a crash.
//!
//! A checkpoint is a directory `ckpt-NNNNNNNN/` in the state directory holding every step's
//! state as Arrow IPC files and a `manifest.json` that names them with their CRC-32, the input
//! positions (rows read per input) and, per file output, how many part files the checkpoint
//! covers. It is written as `.ckpt-NNNNNNNN.tmp/`, every file fsynced, then renamed into place
//! (the rename is the commit). Output part files written since the previous checkpoint are
//! staged (hidden names) until the commit, and published (renamed) after it; a resume
//! finishes an interrupted publish and removes parts no committed checkpoint covers (see
//! [`crate::sink::PartSink`]). So every output row is published exactly once, whatever the
//! moment of a crash.
//!
//! A checkpoint that fails its checksums or cannot be read is skipped with a warning and the
//! previous one is used (the last two are kept). A checkpoint written by a different pipeline
//! definition is refused, naming the step and both definitions.

mod session;
mod store;

pub use session::CheckpointStats;
pub(crate) use session::Checkpointer;
pub use store::{CheckpointStore, InputPosition, Loaded, Manifest, OutputCommit, StepEntry};

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use arrow::record_batch::RecordBatch;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::engine::{OperatorScalars, OperatorSnapshot, ShardState};
use crate::error::{Result, WindrowError};

/// How often a checkpointed run commits.
#[derive(Clone, Debug)]
pub struct CheckpointConfig {
    /// The state directory (created if missing).
    pub dir: std::path::PathBuf,
    /// Commit after this much wall-clock time since the last commit.
    pub interval: std::time::Duration,
    /// Also commit after this many input batches (deterministic; tests use it).
    pub every_batches: Option<u64>,
}

impl CheckpointConfig {
    /// Checkpoints in `dir` every 10 seconds.
    pub fn new(dir: impl Into<std::path::PathBuf>) -> Self {
        CheckpointConfig { dir: dir.into(), interval: std::time::Duration::from_secs(10), every_batches: None }
    }
}

/// One step's state: a few scalars and named Arrow tables.
#[derive(Clone, Debug, Default)]
pub struct StepState {
    /// Small values (counters, clocks), stored in the manifest.
    pub scalars: Map<String, Value>,
    /// Tables, each stored as one Arrow IPC file.
    pub tables: Vec<(String, RecordBatch)>,
}

impl StepState {
    /// Scalar `name`.
    ///
    /// # Errors
    /// Missing or of another type (a checkpoint of another version or step).
    pub fn scalar<T: DeserializeOwned>(&self, name: &str) -> Result<T> {
        let v = self
            .scalars
            .get(name)
            .ok_or_else(|| WindrowError::Data(format!("checkpoint step state lacks \"{name}\"")))?;
        serde_json::from_value(v.clone())
            .map_err(|e| WindrowError::Data(format!("checkpoint step state \"{name}\" is unreadable: {e}")))
    }

    /// Removes and returns table `name`.
    pub fn take_table(&mut self, name: &str) -> Option<RecordBatch> {
        let i = self.tables.iter().position(|(n, _)| n == name)?;
        Some(self.tables.remove(i).1)
    }

    pub(crate) fn from_operator(snap: OperatorSnapshot) -> Result<Self> {
        let mut scalars = Map::new();
        let value = serde_json::to_value(&snap.scalars)
            .map_err(|e| WindrowError::Internal(format!("cannot encode operator state: {e}")))?;
        scalars.insert("operator".into(), value);
        scalars.insert("shards".into(), Value::from(snap.shards.len()));
        let mut tables = Vec::new();
        for (i, s) in snap.shards.into_iter().enumerate() {
            tables.push((format!("shard-{i}.keys"), s.keys));
            tables.push((format!("shard-{i}.windows"), s.windows));
            tables.push((format!("shard-{i}.queue"), s.queue));
            if let Some(rows) = s.rows {
                tables.push((format!("shard-{i}.rows"), rows));
            }
        }
        Ok(StepState { scalars, tables })
    }

    pub(crate) fn into_operator(mut self) -> Result<OperatorSnapshot> {
        let scalars: OperatorScalars = self.scalar("operator")?;
        let n: usize = self.scalar("shards")?;
        let mut shards = Vec::with_capacity(n);
        for i in 0..n {
            let mut table = |what: &str| {
                self.take_table(&format!("shard-{i}.{what}"))
                    .ok_or_else(|| WindrowError::Data(format!("checkpoint lacks table shard-{i}.{what}")))
            };
            let (keys, windows, queue) = (table("keys")?, table("windows")?, table("queue")?);
            let rows = self.take_table(&format!("shard-{i}.rows"));
            shards.push(ShardState { keys, windows, queue, rows });
        }
        Ok(OperatorSnapshot { scalars, shards })
    }
}

/// Test hook for fault injection: with `WINDROW_FAULT=<point>:<n>` in the environment the
/// process aborts (no unwinding, no flushing: like `kill -9`) the `n`-th time it reaches
/// `point`. Points: `batch` (after a batch's outputs went to the sinks), `checkpoint-write`
/// (a checkpoint's files are half written), `checkpoint-commit` (committed, nothing
/// published), `publish` (after the first output part is published).
pub fn fault_point(point: &str) {
    static FAULT: OnceLock<Option<(String, u64)>> = OnceLock::new();
    static HITS: AtomicU64 = AtomicU64::new(0);
    let fault = FAULT.get_or_init(|| {
        let v = std::env::var("WINDROW_FAULT").ok()?;
        let (p, n) = v.rsplit_once(':')?;
        Some((p.to_string(), n.parse().ok()?))
    });
    if let Some((p, n)) = fault
        && p == point
        && HITS.fetch_add(1, Ordering::SeqCst) + 1 == *n
    {
        eprintln!("windrow: WINDROW_FAULT={point}:{n} reached, aborting");
        std::process::abort();
    }
}
