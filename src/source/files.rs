//! What the file sources share: file formats, resolving a path, directory or glob to files,
//! and reading a set of files one after another as one stream.

use std::fmt;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;

use crate::error::{Result, WindrowError, data_err};

/// A file format windrow reads and writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FileFormat {
    /// Apache Parquet.
    Parquet,
    /// Arrow IPC (the file format when writing; file or stream format when reading).
    Ipc,
    /// Comma-separated values with a header row.
    Csv,
}

impl fmt::Display for FileFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FileFormat {
    /// `parquet`, `ipc` or `csv`.
    pub fn name(self) -> &'static str {
        match self {
            FileFormat::Parquet => "parquet",
            FileFormat::Ipc => "ipc",
            FileFormat::Csv => "csv",
        }
    }

    /// Parses `parquet`, `ipc` (or `arrow`) or `csv`.
    pub fn from_name(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "parquet" => Some(FileFormat::Parquet),
            "ipc" | "arrow" | "feather" => Some(FileFormat::Ipc),
            "csv" => Some(FileFormat::Csv),
            _ => None,
        }
    }

    /// The file extensions of this format (the first is used when writing).
    pub fn extensions(self) -> &'static [&'static str] {
        match self {
            FileFormat::Parquet => &["parquet"],
            FileFormat::Ipc => &["arrow", "ipc", "arrows", "feather"],
            FileFormat::Csv => &["csv"],
        }
    }

    /// The format a file name's extension says (`.parquet`, `.arrow`/`.ipc`/`.arrows`/`.feather`,
    /// `.csv`).
    pub fn from_extension(path: &Path) -> Option<Self> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        [FileFormat::Parquet, FileFormat::Ipc, FileFormat::Csv]
            .into_iter()
            .find(|f| f.extensions().contains(&ext.as_str()))
    }

    /// The format of an existing file: its magic bytes (`PAR1`, `ARROW1`, an IPC stream's
    /// continuation marker), else its extension.
    ///
    /// # Errors
    /// An unreadable file, or one whose format neither its bytes nor its name reveal.
    pub fn detect(path: &Path) -> Result<Self> {
        let mut head = [0u8; 8];
        let mut file =
            File::open(path).map_err(|e| WindrowError::Data(format!("cannot open {}: {e}", path.display())))?;
        let n = read_up_to(&mut file, &mut head)
            .map_err(|e| WindrowError::Data(format!("cannot read {}: {e}", path.display())))?;
        let head = &head[..n];
        if head.starts_with(b"PAR1") {
            return Ok(FileFormat::Parquet);
        }
        if head.starts_with(b"ARROW1") || head.starts_with(&[0xff, 0xff, 0xff, 0xff]) {
            return Ok(FileFormat::Ipc);
        }
        Self::from_extension(path).ok_or_else(|| {
            WindrowError::Data(format!(
                "cannot tell the format of {}: it is not Parquet or Arrow IPC and its name does not end in \
                 .parquet, .arrow, .ipc or .csv; name the format explicitly (parquet, ipc or csv)",
                path.display()
            ))
        })
    }
}

/// Reads until `buf` is full or the file ends; returns the bytes read.
pub(crate) fn read_up_to(file: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// Refuses [`ReadOptions::dictionary`](super::ReadOptions::dictionary) for a format other than
/// Parquet: only Parquet has dictionary pages to keep (an IPC file carries dictionary columns
/// as written).
pub(crate) fn parquet_only_dictionary(options: &super::ReadOptions, format: FileFormat) -> Result<()> {
    match options.dictionary.first() {
        Some(name) => Err(WindrowError::Config(format!(
            "reading column \"{name}\" as a dictionary is a Parquet option; this input is {format}"
        ))),
        None => Ok(()),
    }
}

fn is_glob(text: &str) -> bool {
    text.contains(['*', '?', '['])
}

/// The files `path` stands for: the file itself; a directory's files with one of
/// `format`'s extensions (any known extension when `None`), in name order, hidden files and
/// in-progress (`.inprogress`) files skipped; or a glob's matches in name order.
///
/// # Errors
/// A path that does not exist, a bad glob pattern, or nothing to read.
pub fn resolve_paths(path: &Path, format: Option<FileFormat>) -> Result<Vec<PathBuf>> {
    let what = format.map_or("data".to_string(), |f| f.name().to_string());
    let text = path.to_string_lossy();
    let wanted = |p: &Path| {
        let hidden = p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with('.'));
        let known = match format {
            Some(f) => FileFormat::from_extension(p) == Some(f),
            None => FileFormat::from_extension(p).is_some(),
        };
        !hidden && known && p.is_file()
    };
    let mut files: Vec<PathBuf> = if path.is_file() {
        return Ok(vec![path.to_path_buf()]);
    } else if path.is_dir() {
        let entries = std::fs::read_dir(path)
            .map_err(|e| WindrowError::Data(format!("cannot list directory {}: {e}", path.display())))?;
        let mut files = Vec::new();
        for entry in entries {
            let entry =
                entry.map_err(|e| WindrowError::Data(format!("cannot list directory {}: {e}", path.display())))?;
            if wanted(&entry.path()) {
                files.push(entry.path());
            }
        }
        if files.is_empty() {
            return data_err(format!("directory {} has no {what} files to read", path.display()));
        }
        files
    } else if is_glob(&text) {
        let paths =
            glob::glob(&text).map_err(|e| WindrowError::Config(format!("invalid glob pattern \"{text}\": {e}")))?;
        let mut files = Vec::new();
        for p in paths {
            let p = p.map_err(|e| WindrowError::Data(format!("glob \"{text}\": {e}")))?;
            if p.is_file() {
                files.push(p);
            }
        }
        if files.is_empty() {
            return data_err(format!("no files match the glob \"{text}\""));
        }
        files
    } else {
        return data_err(format!("input {} does not exist (expected a file, a directory or a glob)", path.display()));
    };
    files.sort();
    Ok(files)
}

/// The batches of one open file.
pub(crate) type BatchIter = Box<dyn Iterator<Item = std::result::Result<RecordBatch, arrow::error::ArrowError>> + Send>;

/// Opens one file: its schema (after projection) and its batches.
pub(crate) type Opener = Box<dyn FnMut(&Path) -> Result<(SchemaRef, BatchIter)> + Send>;

/// For formats that can skip rows without decoding them (Parquet): a file's row count, and
/// the file opened at a row offset.
pub(crate) struct Seek {
    pub(crate) rows: RowCounter,
    pub(crate) open_at: OffsetOpener,
}

/// A file's row count (from its metadata).
pub(crate) type RowCounter = Box<dyn FnMut(&Path) -> Result<u64> + Send>;

/// Opens one file at a row offset.
pub(crate) type OffsetOpener = Box<dyn FnMut(&Path, usize) -> Result<(SchemaRef, BatchIter)> + Send>;

/// Several files of one format read one after the other as one stream. Files after the
/// first are opened when reached and must have the first file's columns and types.
pub(crate) struct FileSet {
    format: FileFormat,
    files: Vec<PathBuf>,
    next_file: usize,
    current: Option<(usize, BatchIter)>,
    batch_no: usize,
    schema: SchemaRef,
    open: Opener,
    /// IPC batches are written with any size: slice them to at most this many rows.
    max_rows: Option<usize>,
    pending: Option<RecordBatch>,
    seek: Option<Seek>,
}

impl FileSet {
    pub(crate) fn open(format: FileFormat, path: &Path, mut open: Opener, max_rows: Option<usize>) -> Result<Self> {
        let files = resolve_paths(path, Some(format))?;
        let (schema, iter) = open(&files[0])?;
        Ok(FileSet {
            format,
            files,
            next_file: 1,
            current: Some((0, iter)),
            batch_no: 0,
            schema,
            open,
            max_rows,
            pending: None,
            seek: None,
        })
    }

    /// Lets [`skip_rows`](Self::skip_rows) skip without decoding.
    pub(crate) fn with_seek(mut self, seek: Seek) -> Self {
        self.seek = Some(seek);
        self
    }

    /// Before the first batch is read: skips the first `rows` rows — whole files by their
    /// row counts, then into the next file by offset — and returns how many were skipped
    /// (fewer at end of input). Returns 0 where the format cannot seek or reading began.
    pub(crate) fn skip_rows(&mut self, rows: u64) -> Result<u64> {
        let untouched = self.batch_no == 0 && self.next_file == 1 && self.pending.is_none();
        let Some(seek) = self.seek.as_mut().filter(|_| untouched && rows > 0) else { return Ok(0) };
        let mut left = rows;
        let mut i = 0;
        while i < self.files.len() {
            let n = (seek.rows)(&self.files[i])?;
            if n > left {
                break;
            }
            left -= n;
            i += 1;
        }
        self.current = None;
        self.next_file = i;
        if i == self.files.len() {
            return Ok(rows - left);
        }
        let (schema, iter) = (seek.open_at)(&self.files[i], left as usize)?;
        self.check_same(i, &schema)?;
        self.current = Some((i, iter));
        self.next_file = i + 1;
        Ok(rows)
    }

    /// Refuses file `i` if its columns differ from the stream's.
    fn check_same(&self, i: usize, schema: &SchemaRef) -> Result<()> {
        let same = schema.fields().len() == self.schema.fields().len()
            && schema
                .fields()
                .iter()
                .zip(self.schema.fields())
                .all(|(a, b)| a.name() == b.name() && a.data_type() == b.data_type());
        if !same {
            return data_err(format!(
                "{} has columns [{}] but {} (read before it) has [{}]; every file of one input needs the same columns",
                self.files[i].display(),
                describe(schema),
                self.files[0].display(),
                describe(&self.schema)
            ));
        }
        Ok(())
    }

    pub(crate) fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    pub(crate) fn files(&self) -> &[PathBuf] {
        &self.files
    }

    fn open_next(&mut self) -> Result<bool> {
        if self.next_file >= self.files.len() {
            return Ok(false);
        }
        let i = self.next_file;
        self.next_file += 1;
        let (schema, iter) = (self.open)(&self.files[i])?;
        self.check_same(i, &schema)?;
        self.current = Some((i, iter));
        self.batch_no = 0;
        Ok(true)
    }

    fn next_inner(&mut self) -> Option<Result<RecordBatch>> {
        loop {
            let Some((file, iter)) = self.current.as_mut() else {
                match self.open_next() {
                    Ok(true) => continue,
                    Ok(false) => return None,
                    Err(e) => return Some(Err(e)),
                }
            };
            let file = *file;
            match iter.next() {
                Some(Ok(batch)) => {
                    self.batch_no += 1;
                    // Later files may differ in nullability or metadata: give every batch the
                    // stream's schema (fails clearly on a null in a non-nullable column).
                    let batch = if batch.schema().fields() == self.schema.fields() {
                        batch
                    } else {
                        match RecordBatch::try_new(self.schema.clone(), batch.columns().to_vec()) {
                            Ok(b) => b,
                            Err(e) => {
                                return Some(data_err(format!(
                                    "{}, batch {}: does not fit the input's schema: {e}",
                                    self.files[file].display(),
                                    self.batch_no
                                )));
                            }
                        }
                    };
                    return Some(Ok(batch));
                }
                Some(Err(e)) => {
                    let msg = format!(
                        "reading {} file {}, batch {}: {e}",
                        self.format,
                        self.files[file].display(),
                        self.batch_no + 1
                    );
                    // One error ends the stream: never skip the bad part and go on.
                    self.current = None;
                    self.next_file = self.files.len();
                    return Some(data_err(msg));
                }
                None => self.current = None,
            }
        }
    }

    pub(crate) fn next_batch(&mut self) -> Option<Result<RecordBatch>> {
        let batch = match self.pending.take() {
            Some(b) => b,
            None => match self.next_inner()? {
                Ok(b) => b,
                Err(e) => return Some(Err(e)),
            },
        };
        match self.max_rows {
            Some(max) if batch.num_rows() > max => {
                self.pending = Some(batch.slice(max, batch.num_rows() - max));
                Some(Ok(batch.slice(0, max)))
            }
            _ => Some(Ok(batch)),
        }
    }
}

/// `name: type, …` for messages.
pub(crate) fn describe(schema: &arrow::datatypes::Schema) -> String {
    schema.fields().iter().map(|f| format!("{}: {}", f.name(), f.data_type())).collect::<Vec<_>>().join(", ")
}

/// Column indices of `columns` in `schema`, in the file's order.
///
/// # Errors
/// A column the file does not have (the message lists the file's columns).
pub(crate) fn projection(schema: &arrow::datatypes::Schema, columns: &[String], file: &Path) -> Result<Vec<usize>> {
    let mut idx = Vec::with_capacity(columns.len());
    for c in columns {
        match schema.index_of(c) {
            Ok(i) => idx.push(i),
            Err(_) => {
                return Err(WindrowError::Plan(format!(
                    "column \"{c}\" is not in {}; its columns are: {}",
                    file.display(),
                    describe(schema)
                )));
            }
        }
    }
    idx.sort_unstable();
    idx.dedup();
    Ok(idx)
}
