//! A directory of part files published at checkpoint commits (two-phase, like Flink's
//! FileSink), so that the output after a crash and restart holds exactly the rows of the
//! checkpoints that committed.
//!
//! A part's life, for part `n` of format extension `ext`:
//!
//! | name | state |
//! |---|---|
//! | `.part-NNNNN.ext.inprogress` | being written |
//! | `.part-NNNNN.ext.staged` | complete and fsynced, waiting for its checkpoint to commit |
//! | `part-NNNNN.ext` | published |
//!
//! Readers skip hidden files, so a directory reader only ever sees published parts. A part
//! becomes staged when the interval before a checkpoint ends ([`PartSink::prepare_commit`]) or
//! when it reaches the [`RollPolicy`]'s size; it is published ([`PartSink::publish`]) once the
//! checkpoint that counts it is durable. After a crash, [`PartSink::open`] with the committed
//! part count of the last good checkpoint finishes or undoes whatever was under way.

use std::collections::BTreeSet;
use std::fs::File;
use std::path::{Path, PathBuf};

use arrow::compute::BatchCoalescer;
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;

use super::{CsvSink, IpcSink, ParquetSink, RollPolicy, Sink, SinkSummary, write_err};
use crate::error::{Result, WindrowError};
use crate::source::FileFormat;

/// The extension of `format`'s part files: `parquet`, `arrow` or `csv`.
pub fn part_ext(format: FileFormat) -> &'static str {
    match format {
        FileFormat::Parquet => "parquet",
        FileFormat::Ipc => "arrow",
        FileFormat::Csv => "csv",
    }
}

/// What a windrow part file name says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum PartState {
    Published,
    Staged,
    InProgress,
}

fn published_name(n: usize, ext: &str) -> String {
    format!("part-{n:05}.{ext}")
}

fn staged_name(n: usize, ext: &str) -> String {
    format!(".part-{n:05}.{ext}.staged")
}

fn inprogress_name(n: usize, ext: &str) -> String {
    format!(".part-{n:05}.{ext}.inprogress")
}

/// The part number and state of a name this sink writes with extension `ext`; `None` for any
/// other name (those files are left alone).
fn parse_part(name: &str, ext: &str) -> Option<(usize, PartState)> {
    let (rest, state) = if let Some(r) = name.strip_prefix(".part-") {
        if let Some(r) = r.strip_suffix(".staged") {
            (r, PartState::Staged)
        } else {
            (r.strip_suffix(".inprogress")?, PartState::InProgress)
        }
    } else {
        (name.strip_prefix("part-")?, PartState::Published)
    };
    let digits = rest.strip_suffix(ext)?.strip_suffix('.')?;
    if digits.len() < 5 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: usize = digits.parse().ok()?;
    // Only the spelling this sink writes (`part-000001.csv` is somebody else's file).
    (format!("{n:05}") == digits).then_some((n, state))
}

/// The file writer of the part being written.
enum PartWriter {
    Parquet(ParquetSink),
    Ipc(IpcSink),
    Csv(CsvSink),
}

impl PartWriter {
    fn sink(&mut self) -> &mut dyn Sink {
        match self {
            PartWriter::Parquet(s) => s,
            PartWriter::Ipc(s) => s,
            PartWriter::Csv(s) => s,
        }
    }

    fn bytes(&self) -> u64 {
        match self {
            PartWriter::Parquet(s) => s.bytes(),
            PartWriter::Ipc(s) => s.bytes(),
            PartWriter::Csv(s) => s.bytes(),
        }
    }
}

struct OpenPart {
    writer: PartWriter,
    rows: u64,
}

/// A directory of part files published at checkpoint commits.
///
/// Parts `0..published` are published, `published..next` staged, and part `next` is being
/// written when one is open. Batches are coalesced (like [`super::Coalesce`]) before they reach
/// a part; [`prepare_commit`](Self::prepare_commit) flushes the coalescer, so a checkpoint
/// covers every row written before it.
pub struct PartSink {
    dir: PathBuf,
    format: FileFormat,
    ext: &'static str,
    schema: SchemaRef,
    roll: RollPolicy,
    coalescer: BatchCoalescer,
    current: Option<OpenPart>,
    /// The number of the next part to complete (parts before it are staged or published).
    next: usize,
    /// Parts before this one are published.
    published: usize,
    removed: Vec<PathBuf>,
    /// Rows of the committed parts of earlier runs ([`with_prior_rows`](Self::with_prior_rows)).
    prior_rows: u64,
    rows: u64,
    batches: u64,
}

impl PartSink {
    /// Opens `dir` for parts in `format`, resuming after `committed` committed parts (0 for a
    /// fresh start), with batches coalesced into about `coalesce_rows` rows and parts rolled by
    /// `roll`.
    ///
    /// Recovery, idempotent: every part below `committed` that is still staged is published;
    /// every part at or above `committed` (published or staged) and every in-progress part is
    /// removed, and listed by [`removed`](Self::removed) so the caller can warn. Files not named
    /// like this sink's parts are left alone.
    ///
    /// # Errors
    /// A part below `committed` that is neither published nor staged (the output was changed
    /// by hand; the message names it), a CSV schema with nested columns, or a directory that
    /// cannot be created, listed, or cleaned up.
    pub fn open(
        dir: &Path,
        format: FileFormat,
        schema: SchemaRef,
        committed: usize,
        roll: RollPolicy,
        coalesce_rows: usize,
    ) -> Result<Self> {
        let ext = part_ext(format);
        if format == FileFormat::Csv {
            super::csv::check_schema(dir, &schema)?;
        }
        std::fs::create_dir_all(dir)
            .map_err(|e| WindrowError::Data(format!("cannot create output directory {}: {e}", dir.display())))?;
        let mut found = BTreeSet::new();
        let entries = std::fs::read_dir(dir)
            .map_err(|e| WindrowError::Data(format!("cannot list output directory {}: {e}", dir.display())))?;
        for entry in entries {
            let entry = entry
                .map_err(|e| WindrowError::Data(format!("cannot list output directory {}: {e}", dir.display())))?;
            let Some((n, state)) = entry.file_name().to_str().and_then(|name| parse_part(name, ext)) else {
                continue;
            };
            if entry.file_type().is_ok_and(|t| t.is_file()) {
                found.insert((n, state));
            }
        }

        // Check before changing anything: a refused directory is left as it was.
        if let Some(n) = (0..committed)
            .find(|&n| !found.contains(&(n, PartState::Published)) && !found.contains(&(n, PartState::Staged)))
        {
            return Err(WindrowError::Data(format!(
                "output {} is missing {} (part {n}, the checkpoint says {committed} parts were committed): it is \
                 neither published nor staged, so the output was changed outside windrow; restore the file, or \
                 start over without the checkpoint",
                dir.display(),
                dir.join(published_name(n, ext)).display(),
            )));
        }

        let mut changed = false;
        let mut removed = Vec::new();
        for &(n, state) in &found {
            match state {
                PartState::Staged if n < committed => {
                    // The checkpoint counting it committed, but the crash came before publishing.
                    rename(&dir.join(staged_name(n, ext)), &dir.join(published_name(n, ext)))?;
                    changed = true;
                }
                PartState::Published | PartState::Staged if n < committed => {}
                _ => {
                    let name = match state {
                        PartState::Published => published_name(n, ext),
                        PartState::Staged => staged_name(n, ext),
                        PartState::InProgress => inprogress_name(n, ext),
                    };
                    let path = dir.join(name);
                    std::fs::remove_file(&path).map_err(|e| {
                        WindrowError::Data(format!("cannot remove uncommitted output {}: {e}", path.display()))
                    })?;
                    removed.push(path);
                    changed = true;
                }
            }
        }
        if changed {
            sync_dir(dir)?;
        }
        removed.sort();

        Ok(PartSink {
            dir: dir.to_path_buf(),
            format,
            ext,
            coalescer: BatchCoalescer::new(schema.clone(), coalesce_rows.max(1)),
            schema,
            roll,
            current: None,
            next: committed,
            published: committed,
            removed,
            prior_rows: 0,
            rows: 0,
            batches: 0,
        })
    }

    /// Counts `rows` rows in the committed parts of earlier runs (as recorded by the
    /// checkpoint), so that [`summary`](Self::summary) reports the directory's rows.
    pub fn with_prior_rows(mut self, rows: u64) -> Self {
        self.prior_rows = rows;
        self
    }

    /// The uncommitted files [`open`](Self::open) removed (parts of a checkpoint that never
    /// completed, and files in progress at a crash), in name order.
    pub fn removed(&self) -> &[PathBuf] {
        &self.removed
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Phase 1 of a commit: flushes the coalescer and completes the current part as a staged
    /// file (written, fsynced, hidden from readers), and returns the number of parts the commit
    /// covers (the committed count to record in the checkpoint). An interval without rows
    /// creates no part, except that with `last` (end of the run) a directory that would have no
    /// part at all gets one empty part with the schema, so readers find the columns.
    ///
    /// # Errors
    /// A failed write, sync or rename (the message names the file).
    pub fn prepare_commit(&mut self, last: bool) -> Result<usize> {
        self.coalescer.finish_buffered_batch().map_err(|e| write_err(&self.dir, e))?;
        self.drain()?;
        if last && self.current.is_none() && self.next == 0 {
            self.open_part()?;
        }
        self.stage_current()?;
        Ok(self.next)
    }

    /// Phase 2, once the checkpoint that records `upto` is durable: publishes the staged parts
    /// below `upto` (renames them into place, then fsyncs the directory). Parts already
    /// published are skipped, so calling it again is harmless.
    ///
    /// # Errors
    /// `upto` beyond the parts staged so far, a staged file that has gone, or a failed rename
    /// or sync.
    pub fn publish(&mut self, upto: usize) -> Result<()> {
        if upto > self.next {
            return Err(WindrowError::Internal(format!(
                "cannot publish {upto} parts of {}: only {} are complete",
                self.dir.display(),
                self.next
            )));
        }
        if upto <= self.published {
            return Ok(());
        }
        for n in self.published..upto {
            rename(&self.dir.join(staged_name(n, self.ext)), &self.dir.join(published_name(n, self.ext)))?;
            // Counted as soon as it is in place: a failure later still leaves this one published.
            self.published = n + 1;
        }
        sync_dir(&self.dir)
    }

    /// What was written so far: every published part of the directory (those of earlier runs
    /// up to the committed count included) in `files`; the rows of earlier runs'
    /// committed parts ([`with_prior_rows`](Self::with_prior_rows)) plus the rows written by
    /// this sink; the batches (after coalescing) written by this sink.
    pub fn summary(&self) -> SinkSummary {
        SinkSummary {
            target: self.dir.display().to_string(),
            rows: self.prior_rows + self.rows,
            batches: self.batches,
            files: (0..self.published).map(|n| self.dir.join(published_name(n, self.ext))).collect(),
        }
    }

    fn drain(&mut self) -> Result<()> {
        while let Some(b) = self.coalescer.next_completed_batch() {
            self.write_parts(&b)?;
        }
        Ok(())
    }

    /// Writes one coalesced batch, split across parts where the row limit falls inside it.
    fn write_parts(&mut self, batch: &RecordBatch) -> Result<()> {
        self.batches += 1;
        let mut rest = batch.clone();
        while rest.num_rows() > 0 {
            if self.current.is_none() {
                self.open_part()?;
            }
            let Some(part) = self.current.as_mut() else {
                return Err(WindrowError::Internal(format!("no open part in {}", self.dir.display())));
            };
            let room = self.roll.max_rows.map_or(u64::MAX, |m| m.saturating_sub(part.rows).max(1));
            let n = (rest.num_rows() as u64).min(room) as usize;
            part.writer.sink().write(&rest.slice(0, n))?;
            part.rows += n as u64;
            let full = self.roll.max_rows.is_some_and(|m| part.rows >= m)
                || self.roll.max_bytes.is_some_and(|m| part.writer.bytes() >= m);
            self.rows += n as u64;
            rest = rest.slice(n, rest.num_rows() - n);
            if full {
                // Rolled parts wait for the next commit like any other.
                self.stage_current()?;
            }
        }
        Ok(())
    }

    fn open_part(&mut self) -> Result<()> {
        let staged = self.dir.join(staged_name(self.next, self.ext));
        let tmp = self.dir.join(inprogress_name(self.next, self.ext));
        let schema = self.schema.clone();
        let writer = match self.format {
            FileFormat::Parquet => PartWriter::Parquet(ParquetSink::create_as(&staged, &tmp, schema)),
            FileFormat::Ipc => PartWriter::Ipc(IpcSink::create_as(&staged, &tmp, schema)?),
            FileFormat::Csv => PartWriter::Csv(CsvSink::create_as(&staged, &tmp, schema)?),
        };
        self.current = Some(OpenPart { writer, rows: 0 });
        Ok(())
    }

    /// Completes the open part (if any) as a staged file; the writers sync it before renaming.
    fn stage_current(&mut self) -> Result<()> {
        if let Some(mut part) = self.current.take() {
            part.writer.sink().finish()?;
            self.next += 1;
        }
        Ok(())
    }
}

impl Sink for PartSink {
    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        self.coalescer.push_batch(batch.clone()).map_err(|e| write_err(&self.dir, e))?;
        self.drain()
    }

    /// Commits and publishes everything at once, for runs without checkpoints.
    fn finish(&mut self) -> Result<SinkSummary> {
        let upto = self.prepare_commit(true)?;
        self.publish(upto)?;
        Ok(self.summary())
    }
}

fn rename(from: &Path, to: &Path) -> Result<()> {
    std::fs::rename(from, to)
        .map_err(|e| WindrowError::Data(format!("cannot rename {} to {}: {e}", from.display(), to.display())))
}

/// Makes renames and removals in `dir` durable.
fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| WindrowError::Data(format!("cannot sync directory {}: {e}", dir.display())))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{AsArray, Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Int64Type, Schema};

    use super::*;
    use crate::source::{ReadOptions, open_files};

    const FORMATS: [FileFormat; 3] = [FileFormat::Parquet, FileFormat::Ipc, FileFormat::Csv];
    const NO_ROLL: RollPolicy = RollPolicy { max_rows: None, max_bytes: None };

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false), Field::new("name", DataType::Utf8, true)]))
    }

    /// Rows `start..start + n`: id `i`, name `r{i}`.
    fn batch(start: i64, n: i64) -> RecordBatch {
        let ids: Vec<i64> = (start..start + n).collect();
        let names: Vec<String> = ids.iter().map(|i| format!("r{i}")).collect();
        RecordBatch::try_new(
            schema(),
            vec![Arc::new(Int64Array::from(ids)), Arc::new(StringArray::from_iter_values(names))],
        )
        .unwrap()
    }

    /// The ids read from `path` (a part file or the directory) with the crate's readers,
    /// checking each row's name.
    fn read_ids(path: &Path, format: FileFormat) -> Vec<i64> {
        let mut opts = ReadOptions::default();
        opts.csv.schema = Some(schema());
        let mut src = open_files(path, Some(format), &opts).unwrap();
        let mut ids = Vec::new();
        while let Some(b) = src.next_batch() {
            let b = b.unwrap();
            let id = b.column(0).as_primitive::<Int64Type>();
            let name = b.column(1).as_string::<i32>();
            for r in 0..b.num_rows() {
                assert_eq!(name.value(r), format!("r{}", id.value(r)), "{format}");
                ids.push(id.value(r));
            }
        }
        ids
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> =
            std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        v.sort();
        v
    }

    /// Both phases of a checkpoint commit; the committed count.
    fn commit(sink: &mut PartSink) -> usize {
        let n = sink.prepare_commit(false).unwrap();
        sink.publish(n).unwrap();
        n
    }

    fn part(dir: &Path, n: usize, format: FileFormat) -> PathBuf {
        dir.join(published_name(n, part_ext(format)))
    }

    #[test]
    fn part_names_parse_back_and_others_do_not() {
        assert_eq!(parse_part("part-00003.parquet", "parquet"), Some((3, PartState::Published)));
        assert_eq!(parse_part(".part-00003.arrow.staged", "arrow"), Some((3, PartState::Staged)));
        assert_eq!(parse_part(".part-00003.csv.inprogress", "csv"), Some((3, PartState::InProgress)));
        assert_eq!(parse_part("part-123456.csv", "csv"), Some((123_456, PartState::Published)));
        for other in ["part-3.csv", "part-000003.csv", "part-00003.parquet", "part-00003.csv.bak", "xpart-00003.csv"] {
            assert_eq!(parse_part(other, "csv"), None, "{other}");
        }
        for n in [0, 7, 99_999, 100_000] {
            for name in [published_name(n, "csv"), staged_name(n, "csv"), inprogress_name(n, "csv")] {
                assert_eq!(parse_part(&name, "csv").map(|p| p.0), Some(n), "{name}");
            }
        }
    }

    #[test]
    fn commit_then_publish_gives_readable_parts_in_order() {
        for format in FORMATS {
            let tmp = tempfile::tempdir().unwrap();
            let dir = tmp.path().join("out");
            let ext = part_ext(format);
            let mut sink = PartSink::open(&dir, format, schema(), 0, NO_ROLL, 4).unwrap();
            sink.write(&batch(0, 3)).unwrap();
            sink.write(&batch(3, 5)).unwrap();
            assert_eq!(sink.prepare_commit(false).unwrap(), 1);
            // Staged: complete but hidden from readers.
            assert_eq!(names(&dir), [staged_name(0, ext)], "{format}");
            assert!(open_files(&dir, Some(format), &ReadOptions::default()).is_err(), "{format}");
            assert!(sink.summary().files.is_empty());

            sink.publish(1).unwrap();
            assert_eq!(names(&dir), [published_name(0, ext)], "{format}");
            sink.write(&batch(8, 2)).unwrap();
            assert_eq!(sink.prepare_commit(false).unwrap(), 2);
            sink.publish(2).unwrap();
            sink.publish(2).unwrap(); // again: nothing to do

            assert_eq!(names(&dir), [published_name(0, ext), published_name(1, ext)], "{format}");
            assert_eq!(read_ids(&part(&dir, 0, format), format), (0..8).collect::<Vec<_>>(), "{format}");
            assert_eq!(read_ids(&part(&dir, 1, format), format), [8, 9], "{format}");
            assert_eq!(read_ids(&dir, format), (0..10).collect::<Vec<_>>(), "{format}");
            let summary = sink.summary();
            assert_eq!(summary.files, [part(&dir, 0, format), part(&dir, 1, format)], "{format}");
            assert_eq!(summary.rows, 10);
            assert_eq!(summary.target, dir.display().to_string());
        }
    }

    #[test]
    fn reopen_at_the_committed_count_publishes_staged_parts_and_drops_in_progress() {
        for format in FORMATS {
            let tmp = tempfile::tempdir().unwrap();
            let dir = tmp.path().join("out");
            let ext = part_ext(format);
            let mut sink = PartSink::open(&dir, format, schema(), 0, NO_ROLL, 2).unwrap();
            sink.write(&batch(0, 4)).unwrap();
            assert_eq!(sink.prepare_commit(false).unwrap(), 1);
            sink.write(&batch(4, 2)).unwrap();
            assert_eq!(sink.prepare_commit(false).unwrap(), 2);
            // The next interval is under way at the crash; the checkpoint of 2 parts is durable
            // but nothing was published.
            sink.write(&batch(6, 2)).unwrap();
            drop(sink);
            assert_eq!(names(&dir), [staged_name(0, ext), staged_name(1, ext), inprogress_name(2, ext)], "{format}");

            let sink = PartSink::open(&dir, format, schema(), 2, NO_ROLL, 2).unwrap();
            assert_eq!(sink.removed(), [dir.join(inprogress_name(2, ext))], "{format}");
            assert_eq!(names(&dir), [published_name(0, ext), published_name(1, ext)], "{format}");
            assert_eq!(read_ids(&dir, format), (0..6).collect::<Vec<_>>(), "{format}");
            assert_eq!(sink.summary().files.len(), 2);
            drop(sink);

            // Idempotent: opening again changes nothing.
            let sink = PartSink::open(&dir, format, schema(), 2, NO_ROLL, 2).unwrap();
            assert!(sink.removed().is_empty());
            assert_eq!(names(&dir), [published_name(0, ext), published_name(1, ext)], "{format}");
        }
    }

    #[test]
    fn crash_in_the_middle_of_publishing_is_finished_by_open() {
        for format in FORMATS {
            let tmp = tempfile::tempdir().unwrap();
            let dir = tmp.path().join("out");
            let ext = part_ext(format);
            let mut sink =
                PartSink::open(&dir, format, schema(), 0, RollPolicy { max_rows: Some(2), max_bytes: None }, 2)
                    .unwrap();
            sink.write(&batch(0, 6)).unwrap();
            assert_eq!(sink.prepare_commit(false).unwrap(), 3);
            drop(sink);
            // Publishing got as far as part 0.
            std::fs::rename(dir.join(staged_name(0, ext)), part(&dir, 0, format)).unwrap();

            let sink = PartSink::open(&dir, format, schema(), 3, NO_ROLL, 2).unwrap();
            assert!(sink.removed().is_empty());
            assert_eq!(names(&dir), (0..3).map(|n| published_name(n, ext)).collect::<Vec<_>>(), "{format}");
            assert_eq!(read_ids(&dir, format), (0..6).collect::<Vec<_>>(), "{format}");
        }
    }

    #[test]
    fn reopen_at_a_smaller_count_removes_later_parts_and_numbering_continues() {
        for format in FORMATS {
            let tmp = tempfile::tempdir().unwrap();
            let dir = tmp.path().join("out");
            let ext = part_ext(format);
            let mut sink = PartSink::open(&dir, format, schema(), 0, NO_ROLL, 2).unwrap();
            sink.write(&batch(0, 2)).unwrap();
            commit(&mut sink);
            sink.write(&batch(2, 2)).unwrap();
            commit(&mut sink);
            sink.write(&batch(4, 2)).unwrap();
            assert_eq!(sink.prepare_commit(false).unwrap(), 3);
            sink.write(&batch(6, 2)).unwrap();
            drop(sink);
            // Files that are not this sink's parts stay.
            let foreign = ["notes.txt", "part-1.csv", "part-00001.json", ".part-00009.feather.staged"];
            for f in foreign {
                std::fs::write(dir.join(f), "x").unwrap();
            }

            // Only the first checkpoint (1 part) is good.
            let mut sink = PartSink::open(&dir, format, schema(), 1, NO_ROLL, 2).unwrap();
            let mut gone = vec![
                dir.join(inprogress_name(3, ext)),
                dir.join(staged_name(2, ext)),
                dir.join(published_name(1, ext)),
            ];
            gone.sort();
            assert_eq!(sink.removed(), gone, "{format}");
            let mut expected: Vec<String> = foreign.iter().map(|s| s.to_string()).collect();
            expected.push(published_name(0, ext));
            expected.sort();
            assert_eq!(names(&dir), expected, "{format}");

            sink.write(&batch(100, 3)).unwrap();
            assert_eq!(sink.prepare_commit(false).unwrap(), 2);
            assert!(dir.join(staged_name(1, ext)).exists());
            sink.publish(2).unwrap();
            assert_eq!(read_ids(&part(&dir, 0, format), format), [0, 1], "{format}");
            assert_eq!(read_ids(&part(&dir, 1, format), format), [100, 101, 102], "{format}");
            assert_eq!(sink.summary().files, [part(&dir, 0, format), part(&dir, 1, format)]);
            assert_eq!(sink.summary().rows, 3);
        }
    }

    #[test]
    fn a_missing_committed_part_is_an_error_naming_it() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("out");
        let mut sink = PartSink::open(&dir, FileFormat::Parquet, schema(), 0, NO_ROLL, 2).unwrap();
        for i in 0..3 {
            sink.write(&batch(i * 2, 2)).unwrap();
            commit(&mut sink);
        }
        sink.write(&batch(6, 2)).unwrap();
        assert_eq!(sink.prepare_commit(false).unwrap(), 4);
        drop(sink);
        std::fs::remove_file(dir.join("part-00001.parquet")).unwrap();
        let before = names(&dir);

        let Err(e) = PartSink::open(&dir, FileFormat::Parquet, schema(), 3, NO_ROLL, 2) else {
            panic!("opened with a committed part missing");
        };
        let msg = e.to_string();
        assert!(msg.contains(&dir.join("part-00001.parquet").display().to_string()), "{msg}");
        assert!(msg.contains("changed outside windrow"), "{msg}");
        // Refused before touching anything: the uncommitted staged part is still there.
        assert_eq!(names(&dir), before);

        // A checkpoint counting more parts than ever existed.
        let Err(e) = PartSink::open(&tmp.path().join("fresh"), FileFormat::Csv, schema(), 1, NO_ROLL, 2) else {
            panic!("opened an empty directory with a committed part");
        };
        assert!(e.to_string().contains("part-00000.csv"), "{e}");
    }

    #[test]
    fn an_empty_run_leaves_one_empty_part_with_the_schema() {
        for format in FORMATS {
            let tmp = tempfile::tempdir().unwrap();
            let dir = tmp.path().join("out");
            let ext = part_ext(format);
            let mut sink = PartSink::open(&dir, format, schema(), 0, NO_ROLL, 2).unwrap();
            // Intervals without rows make no part.
            assert_eq!(sink.prepare_commit(false).unwrap(), 0);
            sink.write(&batch(0, 0)).unwrap();
            assert_eq!(sink.prepare_commit(false).unwrap(), 0);
            sink.publish(0).unwrap();
            assert!(names(&dir).is_empty(), "{format}");

            let summary = sink.finish().unwrap();
            assert_eq!(summary.files, [part(&dir, 0, format)], "{format}");
            assert_eq!(summary.rows, 0);
            assert_eq!(names(&dir), [published_name(0, ext)], "{format}");
            if format == FileFormat::Csv {
                assert_eq!(std::fs::read_to_string(part(&dir, 0, format)).unwrap(), "id,name\n");
            } else {
                let src = open_files(&dir, Some(format), &ReadOptions::default()).unwrap();
                let fields: Vec<_> =
                    src.schema().fields().iter().map(|f| (f.name().clone(), f.data_type().clone())).collect();
                assert_eq!(fields, [("id".into(), DataType::Int64), ("name".into(), DataType::Utf8)], "{format}");
            }
            assert!(read_ids(&dir, format).is_empty());
        }
    }

    #[test]
    fn the_last_commit_adds_no_empty_part_where_there_are_parts() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("out");
        let mut sink = PartSink::open(&dir, FileFormat::Ipc, schema(), 0, NO_ROLL, 2).unwrap();
        sink.write(&batch(0, 2)).unwrap();
        commit(&mut sink);
        assert_eq!(sink.prepare_commit(true).unwrap(), 1);
        drop(sink);
        // Resumed after the last part, an empty end adds nothing either.
        let mut sink = PartSink::open(&dir, FileFormat::Ipc, schema(), 1, NO_ROLL, 2).unwrap();
        let summary = sink.finish().unwrap();
        assert_eq!(summary.files, [dir.join("part-00000.arrow")]);
        assert_eq!(names(&dir), ["part-00000.arrow"]);
    }

    #[test]
    fn rolling_by_rows_stages_several_parts_that_one_publish_publishes() {
        for format in FORMATS {
            let tmp = tempfile::tempdir().unwrap();
            let dir = tmp.path().join("out");
            let ext = part_ext(format);
            let roll = RollPolicy { max_rows: Some(4), max_bytes: None };
            let mut sink = PartSink::open(&dir, format, schema(), 0, roll, 3).unwrap();
            sink.write(&batch(0, 3)).unwrap();
            sink.write(&batch(3, 3)).unwrap();
            sink.write(&batch(6, 4)).unwrap();
            // Rolled parts are staged, not published; the third is still being written.
            assert_eq!(names(&dir), [staged_name(0, ext), staged_name(1, ext), inprogress_name(2, ext)], "{format}");
            assert_eq!(sink.prepare_commit(false).unwrap(), 3);
            assert!(open_files(&dir, Some(format), &ReadOptions::default()).is_err(), "{format}");
            sink.publish(3).unwrap();
            assert_eq!(names(&dir), (0..3).map(|n| published_name(n, ext)).collect::<Vec<_>>(), "{format}");
            assert_eq!(read_ids(&part(&dir, 0, format), format), [0, 1, 2, 3], "{format}");
            assert_eq!(read_ids(&part(&dir, 1, format), format), [4, 5, 6, 7], "{format}");
            assert_eq!(read_ids(&part(&dir, 2, format), format), [8, 9], "{format}");
        }
    }

    #[test]
    fn rolling_by_bytes_starts_a_part_per_batch_past_the_limit() {
        for format in FORMATS {
            let tmp = tempfile::tempdir().unwrap();
            let dir = tmp.path().join("out");
            let roll = RollPolicy { max_rows: None, max_bytes: Some(1) };
            let mut sink = PartSink::open(&dir, format, schema(), 0, roll, 2).unwrap();
            sink.write(&batch(0, 6)).unwrap();
            assert_eq!(sink.prepare_commit(false).unwrap(), 3, "{format}");
            sink.publish(3).unwrap();
            for n in 0..3 {
                let first = 2 * n as i64;
                assert_eq!(read_ids(&part(&dir, n, format), format), [first, first + 1], "{format}");
            }
        }
    }

    #[test]
    fn publishing_parts_not_staged_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let mut sink = PartSink::open(tmp.path(), FileFormat::Parquet, schema(), 0, NO_ROLL, 2).unwrap();
        sink.write(&batch(0, 2)).unwrap();
        let e = sink.publish(1).unwrap_err();
        assert!(e.to_string().contains("only 0 are complete"), "{e}");
    }

    #[test]
    fn csv_parts_refuse_nested_columns_when_opened() {
        let tmp = tempfile::tempdir().unwrap();
        let item = Arc::new(Field::new("item", DataType::Int64, true));
        let schema = Arc::new(Schema::new(vec![Field::new("ids", DataType::List(item), true)]));
        let Err(e) = PartSink::open(tmp.path(), FileFormat::Csv, schema, 0, NO_ROLL, 2) else {
            panic!("CSV parts opened with a list column");
        };
        assert!(e.to_string().contains("which CSV cannot hold"), "{e}");
    }
}
