//! Arrow IPC input, file format (`ARROW1` magic, random access footer) or stream format
//! (a sequence of messages), detected from the first bytes of each file.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use arrow::datatypes::SchemaRef;
use arrow::ipc::reader::{FileReader, StreamReader};
use arrow::record_batch::RecordBatch;

use super::files::{BatchIter, FileSet, projection, read_up_to};
use super::{FileFormat, ReadOptions, Source};
use crate::error::{Result, WindrowError};

/// Which of the two Arrow IPC formats a file is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IpcFormat {
    /// The file format: `ARROW1` magic, batches, a footer (`.arrow`, `.feather` v2).
    File,
    /// The stream format: a schema message then batch messages (`.arrows`).
    Stream,
}

impl IpcFormat {
    /// Reads the first bytes of `path`: `ARROW1` is the file format, anything else is
    /// taken as the stream format (whose reader then says what is wrong, if anything).
    ///
    /// # Errors
    /// An unreadable file.
    pub fn detect(path: &Path) -> Result<Self> {
        let mut f = File::open(path)
            .map_err(|e| WindrowError::Data(format!("cannot open Arrow IPC file {}: {e}", path.display())))?;
        let mut head = [0u8; 6];
        let n = read_up_to(&mut f, &mut head)
            .map_err(|e| WindrowError::Data(format!("cannot read {}: {e}", path.display())))?;
        Ok(if &head[..n] == b"ARROW1" { IpcFormat::File } else { IpcFormat::Stream })
    }
}

/// Arrow IPC files (file or stream format), batches as stored, sliced to at most the batch
/// size.
pub struct IpcSource {
    files: FileSet,
}

impl IpcSource {
    /// Opens `path` (a file, a directory of `.arrow`/`.ipc`/`.arrows` files or a glob).
    ///
    /// # Errors
    /// A missing file, one that is not Arrow IPC, or a column that is not in it.
    pub fn open_with(path: impl AsRef<Path>, options: &ReadOptions) -> Result<Self> {
        super::files::parquet_only_dictionary(options, FileFormat::Ipc)?;
        let columns = options.columns.clone();
        let opener = move |file: &Path| -> Result<(SchemaRef, BatchIter)> {
            let format = IpcFormat::detect(file)?;
            let f = File::open(file)
                .map_err(|e| WindrowError::Data(format!("cannot open Arrow IPC file {}: {e}", file.display())))?;
            let bad = |e: arrow::error::ArrowError| {
                let what = match format {
                    IpcFormat::File => "an Arrow IPC file (file format)",
                    IpcFormat::Stream => {
                        "an Arrow IPC stream (it does not start with the file format's ARROW1 magic either)"
                    }
                };
                WindrowError::Data(format!("{} is not a readable {what}: {e}", file.display()))
            };
            match format {
                IpcFormat::File => {
                    let reader = FileReader::try_new_buffered(f, None).map_err(bad)?;
                    let (schema, proj) = project(reader.schema(), &columns, file)?;
                    let reader = match proj {
                        Some(p) => FileReader::try_new_buffered(
                            File::open(file)
                                .map_err(|e| WindrowError::Data(format!("cannot open {}: {e}", file.display())))?,
                            Some(p),
                        )
                        .map_err(bad)?,
                        None => reader,
                    };
                    Ok((schema, Box::new(reader) as BatchIter))
                }
                IpcFormat::Stream => {
                    let reader = StreamReader::try_new(BufReader::new(f) as BufReader<File>, None).map_err(bad)?;
                    let (schema, proj) = project(reader.schema(), &columns, file)?;
                    let reader = match proj {
                        Some(p) => StreamReader::try_new(
                            BufReader::new(
                                File::open(file)
                                    .map_err(|e| WindrowError::Data(format!("cannot open {}: {e}", file.display())))?,
                            ),
                            Some(p),
                        )
                        .map_err(bad)?,
                        None => reader,
                    };
                    Ok((schema, Box::new(reader) as BatchIter))
                }
            }
        };
        let files = FileSet::open(FileFormat::Ipc, path.as_ref(), Box::new(opener), Some(options.batch_size.max(1)))?;
        Ok(IpcSource { files })
    }

    /// The files read, in order.
    pub fn files(&self) -> &[PathBuf] {
        self.files.files()
    }
}

/// The schema after projecting to `columns`, and the projection to ask the reader for.
fn project(schema: SchemaRef, columns: &Option<Vec<String>>, file: &Path) -> Result<(SchemaRef, Option<Vec<usize>>)> {
    match columns {
        None => Ok((schema, None)),
        Some(cols) => {
            let idx = projection(&schema, cols, file)?;
            Ok((std::sync::Arc::new(schema.project(&idx)?), Some(idx)))
        }
    }
}

impl Source for IpcSource {
    fn schema(&self) -> SchemaRef {
        self.files.schema()
    }
    fn next_batch(&mut self) -> Option<Result<RecordBatch>> {
        self.files.next_batch()
    }
}
