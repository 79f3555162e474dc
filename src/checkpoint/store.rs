//! The state directory: writing checkpoints atomically, finding the newest good one.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use arrow::ipc::reader::FileReader;
use arrow::ipc::writer::FileWriter;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{StepState, fault_point};
use crate::error::{Result, WindrowError};

/// Version of the checkpoint layout; a different one is refused.
const FORMAT: u32 = 1;
const MANIFEST: &str = "manifest.json";
const HEADER: &str = "windrow-checkpoint crc32=";
/// Checkpoints kept: the newest and the one before, the fallback if the newest is damaged.
const KEEP: usize = 2;

/// How far an input was read when a checkpoint was taken.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct InputPosition {
    /// The input step.
    pub name: String,
    /// Rows read (and applied) so far; a resume skips them.
    pub rows: u64,
    /// Batches read so far.
    pub batches: u64,
    /// Whether the input had ended.
    pub ended: bool,
}

/// What a checkpoint commits of one file output.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct OutputCommit {
    /// `<step>.<port>`.
    pub name: String,
    /// The output directory.
    pub path: String,
    /// Part files `0..parts` are covered by this checkpoint.
    pub parts: usize,
    /// Rows in those parts.
    pub rows: u64,
}

/// A step's entry in the manifest: its definition, scalars and table files.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StepEntry {
    /// The step id.
    pub id: String,
    /// What shapes its state; must match on restore.
    pub definition: String,
    /// Small state values.
    pub scalars: Map<String, Value>,
    /// `(table name, file name, size, CRC-32)`.
    pub tables: Vec<(String, String, u64, u32)>,
}

/// A checkpoint's manifest.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Manifest {
    /// Layout version.
    pub format: u32,
    /// The windrow version that wrote it.
    pub windrow: String,
    /// The flow's name.
    pub flow: String,
    /// Checkpoint number (increasing).
    pub number: u64,
    /// Whether the run had reached end of input (its outputs are complete).
    pub finished: bool,
    /// Input positions, in input order.
    pub inputs: Vec<InputPosition>,
    /// File outputs, in output order.
    pub outputs: Vec<OutputCommit>,
    /// Steps, in step order (tables filled in when written).
    pub steps: Vec<StepEntry>,
    /// Rows each step emitted on `[down, late, meta, errors]` so far (run summaries).
    #[serde(default)]
    pub step_rows: Vec<(String, [u64; 4])>,
}

/// A checkpoint read back: its manifest and every step's state.
pub struct Loaded {
    /// The manifest.
    pub manifest: Manifest,
    /// Per step, in manifest order.
    pub steps: Vec<(String, StepState)>,
    /// Where it was read from.
    pub path: PathBuf,
}

/// A state directory.
pub struct CheckpointStore {
    dir: PathBuf,
}

fn io_err(what: &str, path: &Path, e: impl std::fmt::Display) -> WindrowError {
    WindrowError::Data(format!("{what} {}: {e}", path.display()))
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| io_err("cannot sync directory", dir, e))
}

fn ckpt_name(n: u64) -> String {
    format!("ckpt-{n:08}")
}

impl CheckpointStore {
    /// Opens (creating) the state directory and removes half-written checkpoints.
    ///
    /// # Errors
    /// A directory that cannot be created or listed.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        fs::create_dir_all(&dir).map_err(|e| io_err("cannot create state directory", &dir, e))?;
        let store = CheckpointStore { dir };
        for (name, path) in store.entries()? {
            if name.starts_with(".ckpt-") && name.ends_with(".tmp") {
                fs::remove_dir_all(&path).map_err(|e| io_err("cannot remove half-written checkpoint", &path, e))?;
            }
        }
        Ok(store)
    }

    /// The state directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn entries(&self) -> Result<Vec<(String, PathBuf)>> {
        let rd = fs::read_dir(&self.dir).map_err(|e| io_err("cannot list state directory", &self.dir, e))?;
        Ok(rd.flatten().filter_map(|e| Some((e.file_name().to_str()?.to_string(), e.path()))).collect())
    }

    /// Committed checkpoints' numbers, newest first.
    fn committed(&self) -> Result<Vec<u64>> {
        let mut ns: Vec<u64> = self
            .entries()?
            .into_iter()
            .filter_map(|(name, _)| name.strip_prefix("ckpt-").and_then(|n| n.parse().ok()))
            .collect();
        ns.sort_unstable_by(|a, b| b.cmp(a));
        Ok(ns)
    }

    /// The newest checkpoint that reads back whole, or `None` for a fresh start. Damaged
    /// ones are reported through `warn` and set aside as `damaged-ckpt-N` (kept for a look,
    /// out of the way of the checkpoint that will be written under their number).
    ///
    /// # Errors
    /// A state directory that cannot be listed, or a damaged checkpoint that cannot be moved.
    pub fn latest(&self, mut warn: impl FnMut(String)) -> Result<Option<Loaded>> {
        let found = self.committed()?;
        for n in &found {
            let path = self.dir.join(ckpt_name(*n));
            match read_checkpoint(&path) {
                Ok(loaded) => return Ok(Some(loaded)),
                Err(e) => {
                    let aside = self.dir.join(format!("damaged-{}", ckpt_name(*n)));
                    if aside.exists() {
                        fs::remove_dir_all(&aside).map_err(|e| io_err("cannot remove", &aside, e))?;
                    }
                    fs::rename(&path, &aside).map_err(|e| io_err("cannot set aside damaged checkpoint", &path, e))?;
                    warn(format!(
                        "checkpoint {} is damaged ({e}); skipped, and moved to {}",
                        path.display(),
                        aside.display()
                    ));
                }
            }
        }
        if !found.is_empty() {
            warn("no readable checkpoint: starting from the beginning of the input".into());
        }
        Ok(None)
    }

    /// Writes checkpoint `manifest.number` with `steps` (in manifest step order) and commits
    /// it; then removes all but the newest two.
    ///
    /// # Errors
    /// A failed write, sync or rename (the checkpoint is then not committed).
    /// Returns where it is and the bytes of state written.
    pub fn commit(&self, mut manifest: Manifest, steps: &[StepState]) -> Result<(PathBuf, u64)> {
        manifest.format = FORMAT;
        manifest.windrow = env!("CARGO_PKG_VERSION").to_string();
        let name = ckpt_name(manifest.number);
        let mut total = 0u64;
        let tmp = self.dir.join(format!(".{name}.tmp"));
        if tmp.exists() {
            fs::remove_dir_all(&tmp).map_err(|e| io_err("cannot remove", &tmp, e))?;
        }
        fs::create_dir(&tmp).map_err(|e| io_err("cannot create", &tmp, e))?;
        for (i, (entry, state)) in manifest.steps.iter_mut().zip(steps).enumerate() {
            entry.scalars = state.scalars.clone();
            entry.tables.clear();
            for (t, (table, batch)) in state.tables.iter().enumerate() {
                let file = format!("step-{i}.{t}.arrow");
                let bytes = ipc_bytes(batch)?;
                let path = tmp.join(&file);
                write_synced(&path, &bytes)?;
                total += bytes.len() as u64;
                entry.tables.push((table.clone(), file, bytes.len() as u64, crc32fast::hash(&bytes)));
                fault_point("checkpoint-write");
            }
        }
        let body = serde_json::to_string_pretty(&manifest)
            .map_err(|e| WindrowError::Internal(format!("cannot encode manifest: {e}")))?;
        let text = format!("{HEADER}{:08x}\n{body}\n", crc32fast::hash(body.as_bytes()));
        write_synced(&tmp.join(MANIFEST), text.as_bytes())?;
        sync_dir(&tmp)?;
        let dest = self.dir.join(&name);
        fs::rename(&tmp, &dest).map_err(|e| io_err("cannot commit checkpoint", &dest, e))?;
        sync_dir(&self.dir)?;
        for old in self.committed()?.into_iter().skip(KEEP) {
            let path = self.dir.join(ckpt_name(old));
            fs::remove_dir_all(&path).map_err(|e| io_err("cannot remove old checkpoint", &path, e))?;
        }
        Ok((dest, total))
    }
}

fn ipc_bytes(batch: &arrow::record_batch::RecordBatch) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    let mut w = FileWriter::try_new(&mut buf, &batch.schema())?;
    w.write(batch)?;
    w.finish()?;
    drop(w);
    Ok(buf)
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = File::create(path).map_err(|e| io_err("cannot create", path, e))?;
    f.write_all(bytes).and_then(|_| f.sync_all()).map_err(|e| io_err("cannot write", path, e))
}

/// Reads and verifies one checkpoint directory.
fn read_checkpoint(dir: &Path) -> Result<Loaded> {
    let mpath = dir.join(MANIFEST);
    let mut text = String::new();
    File::open(&mpath).and_then(|mut f| f.read_to_string(&mut text)).map_err(|e| io_err("cannot read", &mpath, e))?;
    let (head, body) = text.split_once('\n').ok_or_else(|| io_err("truncated", &mpath, "no header line"))?;
    let want = head
        .strip_prefix(HEADER)
        .and_then(|h| u32::from_str_radix(h, 16).ok())
        .ok_or_else(|| io_err("bad header in", &mpath, head))?;
    let body = body.trim_end_matches('\n');
    if crc32fast::hash(body.as_bytes()) != want {
        return Err(io_err("checksum mismatch in", &mpath, "the manifest was changed or damaged"));
    }
    let manifest: Manifest = serde_json::from_str(body).map_err(|e| io_err("unreadable", &mpath, e))?;
    if manifest.format != FORMAT {
        return Err(io_err("unsupported layout version in", &mpath, manifest.format));
    }
    let mut steps = Vec::with_capacity(manifest.steps.len());
    for entry in &manifest.steps {
        let mut state = StepState { scalars: entry.scalars.clone(), tables: Vec::new() };
        for (table, file, size, crc) in &entry.tables {
            let path = dir.join(file);
            let bytes = fs::read(&path).map_err(|e| io_err("cannot read", &path, e))?;
            if bytes.len() as u64 != *size || crc32fast::hash(&bytes) != *crc {
                return Err(io_err("checksum mismatch in", &path, "the file was changed or damaged"));
            }
            let mut reader =
                FileReader::try_new(std::io::Cursor::new(bytes), None).map_err(|e| io_err("unreadable", &path, e))?;
            let batch = match reader.next() {
                Some(b) => b.map_err(|e| io_err("unreadable", &path, e))?,
                None => return Err(io_err("empty table file", &path, "no batch")),
            };
            state.tables.push((table.clone(), batch));
        }
        steps.push((entry.id.clone(), state));
    }
    Ok(Loaded { manifest, steps, path: dir.to_path_buf() })
}
