//! Round trips through every file source and sink, and clear errors for malformed and
//! truncated files.

#![allow(clippy::unwrap_used, reason = "a test should fail loudly on an unexpected error")]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray, TimestampMillisecondArray};
use arrow::compute::concat_batches;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use windrow::sink::{Coalesce, CsvSink, IpcSink, MemorySink, ParquetSink, RollPolicy, Sink, TableSink};
use windrow::source::{CsvOptions, CsvSource, FileFormat, IpcSource, ParquetSource, ReadOptions, Source, open_files};

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("user", DataType::Utf8, false),
        Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())), false),
        Field::new("n", DataType::Int64, true),
        Field::new("x", DataType::Float64, true),
    ]))
}

/// `rows` rows: users u0..u6, ts = 1000·i ms after 2024-03-12, n = i (null every 5th),
/// x = i / 4 (null every 7th).
fn rows(start: usize, rows: usize) -> RecordBatch {
    let t0 = 1_710_201_600_000i64;
    let idx = start..start + rows;
    let cols: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(idx.clone().map(|i| format!("u{}", i % 7)))),
        Arc::new(
            TimestampMillisecondArray::from_iter_values(idx.clone().map(|i| t0 + 1000 * i as i64)).with_timezone("UTC"),
        ),
        Arc::new(Int64Array::from_iter(idx.clone().map(|i| (i % 5 != 0).then_some(i as i64)))),
        Arc::new(Float64Array::from_iter(idx.map(|i| (i % 7 != 0).then_some(i as f64 / 4.0)))),
    ];
    RecordBatch::try_new(schema(), cols).unwrap()
}

fn chunks(total: usize, size: usize) -> Vec<RecordBatch> {
    (0..total).step_by(size).map(|s| rows(s, size.min(total - s))).collect()
}

fn read_all(mut src: impl Source) -> windrow::Result<(SchemaRef, Vec<RecordBatch>)> {
    let mut out = Vec::new();
    while let Some(b) = src.next_batch() {
        out.push(b?);
    }
    Ok((src.schema(), out))
}

fn one(schema: &SchemaRef, batches: &[RecordBatch]) -> RecordBatch {
    concat_batches(schema, batches).unwrap()
}

fn write_with(mut sink: impl Sink, batches: &[RecordBatch]) -> windrow::sink::SinkSummary {
    for b in batches {
        sink.write(b).unwrap();
    }
    sink.finish().unwrap()
}

fn no_temp_files(dir: &Path) {
    for e in std::fs::read_dir(dir).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().to_string();
        assert!(!name.ends_with(".inprogress"), "left a temporary file {name}");
    }
}

fn err_text<T>(r: windrow::Result<T>) -> String {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    }
}

/// The first error a source gives, at open or while reading.
fn read_error(open: windrow::Result<impl Source>) -> String {
    match open {
        Err(e) => e.to_string(),
        Ok(src) => err_text(read_all(src)),
    }
}

#[test]
fn parquet_file_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.parquet");
    let input = chunks(5000, 700);
    let summary = write_with(ParquetSink::create(&path, schema(), RollPolicy::default()).unwrap(), &input);
    assert_eq!((summary.rows, summary.files.clone()), (5000, vec![path.clone()]));
    no_temp_files(dir.path());

    let (s, got) = read_all(ParquetSource::open(&path, 1024).unwrap()).unwrap();
    assert_eq!(s, schema());
    assert!(got.iter().all(|b| b.num_rows() <= 1024));
    assert_eq!(one(&s, &got), one(&schema(), &input));
}

#[test]
fn rolling_parquet_files_union_to_the_input_and_read_back_as_directory_and_glob() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("windows");
    let input = chunks(3500, 37);
    let roll = RollPolicy { max_rows: Some(1000), max_bytes: None };
    // Small batches coalesced to 300 rows, then rolled every 1000 rows.
    let sink = Coalesce::new(ParquetSink::create(&out, schema(), roll).unwrap(), schema(), 300);
    let summary = write_with(sink, &input);
    let names: Vec<String> = summary.files.iter().map(|f| f.file_name().unwrap().to_string_lossy().into()).collect();
    assert_eq!(names, ["part-00000.parquet", "part-00001.parquet", "part-00002.parquet", "part-00003.parquet"]);
    no_temp_files(&out);
    let sizes: Vec<usize> = summary
        .files
        .iter()
        .map(|f| read_all(ParquetSource::open(f, 10_000).unwrap()).unwrap().1.iter().map(RecordBatch::num_rows).sum())
        .collect();
    assert_eq!(sizes, [1000, 1000, 1000, 500]);

    let (s, got) = read_all(ParquetSource::open(&out, 4096).unwrap()).unwrap();
    assert_eq!(one(&s, &got), one(&schema(), &input));

    let pattern = format!("{}/part-0000[12].parquet", out.display());
    let (s, got) = read_all(ParquetSource::open(&pattern, 4096).unwrap()).unwrap();
    assert_eq!(one(&s, &got), rows(1000, 2000));

    // A second run into the same directory replaces the old part files.
    let summary = write_with(ParquetSink::create(&out, schema(), RollPolicy::default()).unwrap(), &[rows(0, 10)]);
    assert_eq!(summary.files.len(), 1);
    let (_, got) = read_all(ParquetSource::open(&out, 4096).unwrap()).unwrap();
    assert_eq!(got.iter().map(RecordBatch::num_rows).sum::<usize>(), 10);
}

#[test]
fn rolling_by_bytes_bounds_the_files() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("bytes");
    let input = chunks(20_000, 500);
    let roll = RollPolicy { max_rows: None, max_bytes: Some(40_000) };
    let summary = write_with(ParquetSink::create(&out, schema(), roll).unwrap(), &input);
    assert!(summary.files.len() > 2, "{:?}", summary.files);
    for f in &summary.files {
        // The limit is checked after each 500-row batch, so a file exceeds it by at most
        // about one batch's encoded size.
        let size = std::fs::metadata(f).unwrap().len();
        assert!(size < 60_000, "{} is {size} bytes", f.display());
    }
    let (s, got) = read_all(ParquetSource::open(&out, 4096).unwrap()).unwrap();
    assert_eq!(one(&s, &got), one(&schema(), &input));
}

#[test]
fn parquet_projection_reads_only_the_named_columns() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.parquet");
    write_with(ParquetSink::create(&path, schema(), RollPolicy::default()).unwrap(), &[rows(0, 100)]);
    let opts = ReadOptions { columns: Some(vec!["x".into(), "user".into()]), ..ReadOptions::default() };
    let (s, got) = read_all(ParquetSource::open_with(&path, &opts).unwrap()).unwrap();
    let names: Vec<&str> = s.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(names, ["user", "x"]); // the file's order
    let want = rows(0, 100).project(&[0, 3]).unwrap();
    assert_eq!(one(&s, &got), want);

    let opts = ReadOptions { columns: Some(vec!["nope".into()]), ..ReadOptions::default() };
    let msg = err_text(ParquetSource::open_with(&path, &opts));
    assert!(msg.contains("\"nope\"") && msg.contains("p.parquet") && msg.contains("user: Utf8"), "{msg}");
}

#[test]
fn ipc_file_and_stream_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let input = chunks(3000, 1000);
    let file = dir.path().join("events.arrow");
    write_with(IpcSink::create(&file, schema()).unwrap(), &input);
    no_temp_files(dir.path());
    assert_eq!(FileFormat::detect(&file).unwrap(), FileFormat::Ipc);
    assert_eq!(windrow::source::IpcFormat::detect(&file).unwrap(), windrow::source::IpcFormat::File);

    let stream = dir.path().join("events.arrows");
    {
        let mut w =
            arrow::ipc::writer::StreamWriter::try_new(std::fs::File::create(&stream).unwrap(), &schema()).unwrap();
        for b in &input {
            w.write(b).unwrap();
        }
        w.finish().unwrap();
    }
    assert_eq!(windrow::source::IpcFormat::detect(&stream).unwrap(), windrow::source::IpcFormat::Stream);

    for path in [&file, &stream] {
        let opts = ReadOptions { batch_size: 400, ..ReadOptions::default() };
        let (s, got) = read_all(IpcSource::open_with(path, &opts).unwrap()).unwrap();
        assert!(got.iter().all(|b| b.num_rows() <= 400), "{path:?}");
        assert_eq!(one(&s, &got), one(&schema(), &input), "{path:?}");
        // Detected without being told the format.
        let (s, got) = read_all(open_files(path, None, &ReadOptions::default()).unwrap()).unwrap();
        assert_eq!(one(&s, &got), one(&schema(), &input), "{path:?}");
        // Projection.
        let opts = ReadOptions { columns: Some(vec!["ts".into()]), ..ReadOptions::default() };
        let (s, got) = read_all(IpcSource::open_with(path, &opts).unwrap()).unwrap();
        assert_eq!(one(&s, &got), one(&schema(), &input).project(&[1]).unwrap());
    }
}

#[test]
fn csv_round_trip_with_given_and_inferred_schema() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.csv");
    let input = chunks(2500, 999);
    write_with(CsvSink::create(&path, schema()).unwrap(), &input);
    no_temp_files(dir.path());
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.starts_with("user,ts,n,x\nu0,2024-03-12T00:00:00Z,,\nu1,2024-03-12T00:00:01Z,1,0.25\n"),
        "{text:.120}"
    );

    let given = ReadOptions {
        batch_size: 1000,
        csv: CsvOptions { schema: Some(schema()), ..CsvOptions::default() },
        ..ReadOptions::default()
    };
    let (s, got) = read_all(CsvSource::open_with(&path, &given).unwrap()).unwrap();
    assert_eq!(one(&s, &got), one(&schema(), &input));

    // Inferred: text, a timestamp without zone, integers and floats; the same values.
    let (s, got) = read_all(CsvSource::open_with(&path, &ReadOptions::default()).unwrap()).unwrap();
    let types: Vec<DataType> = s.fields().iter().map(|f| f.data_type().clone()).collect();
    assert_eq!(types[0], DataType::Utf8);
    assert!(matches!(types[1], DataType::Timestamp(TimeUnit::Second, None)), "{types:?}");
    assert_eq!(types[2..], [DataType::Int64, DataType::Float64]);
    let got = one(&s, &got);
    let ts =
        arrow::compute::cast(got.column(1), &DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))).unwrap();
    let want = one(&schema(), &input);
    assert_eq!(&ts, want.column(1));
    assert_eq!(got.column(0), want.column(0));
    assert_eq!(got.column(2), want.column(2));
    assert_eq!(got.column(3), want.column(3));
}

#[test]
fn csv_refuses_nested_columns_and_writes_a_header_when_empty() {
    let dir = tempfile::tempdir().unwrap();
    let nested = Arc::new(Schema::new(vec![Field::new_list("ids", Field::new("item", DataType::Int64, false), false)]));
    let msg = err_text(CsvSink::create(&dir.path().join("m.csv"), nested));
    assert!(msg.contains("\"ids\"") && msg.contains("Parquet"), "{msg}");

    let path = dir.path().join("empty.csv");
    let s = write_with(CsvSink::create(&path, schema()).unwrap(), &[]);
    assert_eq!(s.rows, 0);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "user,ts,n,x\n");
}

#[test]
fn coalescing_gathers_small_batches() {
    let (sink, handle) = MemorySink::new();
    let mut sink = Coalesce::new(sink, schema(), 1000);
    let input = chunks(4321, 37);
    for b in &input {
        sink.write(b).unwrap();
    }
    let summary = sink.finish().unwrap();
    let got = handle.batches();
    let sizes: Vec<usize> = got.iter().map(RecordBatch::num_rows).collect();
    assert_eq!(sizes, [1000, 1000, 1000, 1000, 321]);
    assert_eq!(summary.rows, 4321);
    assert_eq!(one(&schema(), &got), one(&schema(), &input));
}

#[test]
fn table_sink_shows_the_first_rows_and_counts_the_rest() {
    #[derive(Clone, Default)]
    struct Buf(Arc<std::sync::Mutex<Vec<u8>>>);
    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buf = Buf::default();
    let mut sink = TableSink::to_writer("w.down", 3, Box::new(buf.clone()));
    sink.write(&rows(0, 2)).unwrap();
    sink.write(&rows(2, 8)).unwrap();
    assert_eq!(sink.finish().unwrap().rows, 10);
    let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    assert!(text.starts_with("w.down: first 3 of 10 rows (7 more not shown)\n+"), "{text}");
    let shown = text.lines().filter(|l| l.starts_with("| u") && !l.starts_with("| user")).count();
    assert_eq!(shown, 3, "{text}");
}

fn written(dir: &Path, name: &str, format: FileFormat) -> PathBuf {
    let path = dir.join(name);
    let input = chunks(3000, 1000);
    match format {
        FileFormat::Parquet => write_with(ParquetSink::create(&path, schema(), RollPolicy::default()).unwrap(), &input),
        FileFormat::Ipc => write_with(IpcSink::create(&path, schema()).unwrap(), &input),
        FileFormat::Csv => write_with(CsvSink::create(&path, schema()).unwrap(), &input),
    };
    path
}

fn truncate(path: &Path, keep: usize) {
    let bytes = std::fs::read(path).unwrap();
    std::fs::write(path, &bytes[..keep.min(bytes.len())]).unwrap();
}

#[test]
fn truncated_and_malformed_parquet_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = written(dir.path(), "cut.parquet", FileFormat::Parquet);
    let len = std::fs::metadata(&path).unwrap().len() as usize;
    truncate(&path, len / 2);
    let msg = read_error(ParquetSource::open(&path, 1000));
    assert!(msg.contains("cut.parquet") && msg.contains("not a readable Parquet file"), "{msg}");

    let junk = dir.path().join("junk.parquet");
    std::fs::write(&junk, b"user,ts\nu1,2024-01-01\n").unwrap();
    let msg = read_error(ParquetSource::open(&junk, 1000));
    assert!(msg.contains("junk.parquet") && msg.contains("not a readable Parquet file"), "{msg}");

    let msg = read_error(ParquetSource::open(dir.path().join("missing.parquet"), 1000));
    assert!(msg.contains("missing.parquet") && msg.contains("does not exist"), "{msg}");

    let empty = dir.path().join("empty_dir");
    std::fs::create_dir(&empty).unwrap();
    let msg = read_error(ParquetSource::open(&empty, 1000));
    assert!(msg.contains("empty_dir") && msg.contains("no parquet files"), "{msg}");
}

#[test]
fn truncated_arrow_ipc_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = written(dir.path(), "cut.arrow", FileFormat::Ipc);
    let len = std::fs::metadata(&file).unwrap().len() as usize;
    truncate(&file, len - 40);
    let msg = read_error(IpcSource::open_with(&file, &ReadOptions::default()));
    assert!(msg.contains("cut.arrow") && msg.contains("Arrow IPC"), "{msg}");

    // A stream cut in the middle of its second batch: an error, not two thirds of the rows.
    let stream = dir.path().join("cut.arrows");
    let mut bytes = Vec::new();
    {
        let mut w = arrow::ipc::writer::StreamWriter::try_new(&mut bytes, &schema()).unwrap();
        for b in chunks(3000, 1000) {
            w.write(&b).unwrap();
        }
        w.finish().unwrap();
    }
    std::fs::write(&stream, &bytes[..bytes.len() / 2]).unwrap();
    let msg = read_error(IpcSource::open_with(&stream, &ReadOptions::default()));
    assert!(msg.contains("cut.arrows") && msg.contains("batch"), "{msg}");

    let junk = dir.path().join("junk.arrow");
    std::fs::write(&junk, b"this is not arrow at all").unwrap();
    let msg = read_error(IpcSource::open_with(&junk, &ReadOptions::default()));
    assert!(msg.contains("junk.arrow") && msg.contains("not a readable"), "{msg}");
}

#[test]
fn malformed_and_truncated_csv_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let given =
        ReadOptions { csv: CsvOptions { schema: Some(schema()), ..CsvOptions::default() }, ..ReadOptions::default() };

    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, "user,ts,n,x\nu1,2024-03-12T00:00:00Z,1,0.5\nu2,2024-03-12T00:00:01Z,two,0.5\n").unwrap();
    let msg = read_error(CsvSource::open_with(&bad, &given));
    assert!(msg.contains("bad.csv") && msg.contains("two") && msg.contains("line"), "{msg}");

    let bad_ts = dir.path().join("bad_ts.csv");
    std::fs::write(&bad_ts, "user,ts,n,x\nu1,yesterday,1,0.5\n").unwrap();
    let msg = read_error(CsvSource::open_with(&bad_ts, &given));
    assert!(msg.contains("bad_ts.csv") && msg.contains("yesterday"), "{msg}");

    // Cut in the middle of a row: fewer fields than the header.
    let cut = written(dir.path(), "cut.csv", FileFormat::Csv);
    let text = std::fs::read_to_string(&cut).unwrap();
    let keep = text.rfind("Z,").unwrap();
    truncate(&cut, keep + 1);
    let msg = read_error(CsvSource::open_with(&cut, &given));
    assert!(msg.contains("cut.csv") && msg.contains("fields"), "{msg}");
    let msg = read_error(CsvSource::open_with(&cut, &ReadOptions::default()));
    assert!(msg.contains("cut.csv"), "{msg}");

    let empty = dir.path().join("empty.csv");
    std::fs::write(&empty, "").unwrap();
    let msg = read_error(CsvSource::open_with(&empty, &ReadOptions::default()));
    assert!(msg.contains("empty.csv"), "{msg}");
}

#[test]
fn files_of_one_input_must_share_their_columns() {
    let dir = tempfile::tempdir().unwrap();
    write_with(
        ParquetSink::create(&dir.path().join("a.parquet"), schema(), RollPolicy::default()).unwrap(),
        &[rows(0, 5)],
    );
    let other = Arc::new(Schema::new(vec![Field::new("user", DataType::Utf8, false)]));
    let b = RecordBatch::try_new(other.clone(), vec![Arc::new(StringArray::from(vec!["z"]))]).unwrap();
    write_with(ParquetSink::create(&dir.path().join("b.parquet"), other, RollPolicy::default()).unwrap(), &[b]);
    let msg = read_error(ParquetSource::open(dir.path(), 100));
    assert!(msg.contains("b.parquet") && msg.contains("a.parquet") && msg.contains("same columns"), "{msg}");
}

/// What a resumed run does first: skip the rows its checkpoint covers. Whole files go by
/// their row counts, then row groups and pages by offset; what is read afterwards is exactly
/// the rest, with a projection too. Once reading began, nothing is skipped.
#[test]
fn parquet_skip_rows_skips_files_and_row_groups_and_reads_exactly_the_rest() {
    use parquet::arrow::ArrowWriter;
    use parquet::file::properties::WriterProperties;
    let dir = tempfile::tempdir().unwrap();
    let mut start = 0;
    for (i, n) in [1000, 700, 1300].into_iter().enumerate() {
        let file = std::fs::File::create(dir.path().join(format!("part-{i}.parquet"))).unwrap();
        let props = WriterProperties::builder().set_max_row_group_row_count(Some(128)).build();
        let mut w = ArrowWriter::try_new(file, schema(), Some(props)).unwrap();
        w.write(&rows(start, n)).unwrap();
        w.close().unwrap();
        start += n;
    }
    let all = rows(0, 3000).project(&[1, 2]).unwrap();
    let options = ReadOptions { batch_size: 100, columns: Some(vec!["n".into(), "ts".into()]), ..Default::default() };
    for skip in [0u64, 1, 127, 128, 999, 1000, 1001, 1700, 2500, 2999, 3000, 3500] {
        let mut src = ParquetSource::open_with(dir.path(), &options).unwrap();
        assert_eq!(src.skip_rows(skip).unwrap(), skip.min(3000), "skip {skip}");
        let (s, got) = read_all(src).unwrap();
        let from = skip.min(3000) as usize;
        assert_eq!(one(&s, &got), all.slice(from, 3000 - from), "skip {skip}");
    }
    let mut src = ParquetSource::open_with(dir.path(), &options).unwrap();
    let first = src.next_batch().unwrap().unwrap();
    assert_eq!(src.skip_rows(500).unwrap(), 0);
    assert_eq!(src.next_batch().unwrap().unwrap().slice(0, 1), all.slice(first.num_rows(), 1));
}

/// `dictionary` columns come back as `Dictionary(Int32, Utf8)` holding the same strings. The
/// batches of one row group share the file's dictionary (seven users, not one dictionary per
/// batch); a file written without dictionary pages reads the same. It works with a projection
/// and after a skip. A column that is not a string or not in the file is refused by name, and
/// IPC and CSV refuse the option.
#[test]
fn parquet_dictionary_columns_keep_the_files_dictionary() {
    use arrow::array::AsArray;
    use arrow::compute::cast;
    use parquet::arrow::ArrowWriter;
    use parquet::file::properties::WriterProperties;
    let dir = tempfile::tempdir().unwrap();
    let dict_type = DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8));
    let as_strings = |b: &RecordBatch| {
        let cols: Vec<ArrayRef> = b
            .columns()
            .iter()
            .map(|c| if c.data_type() == &dict_type { cast(c, &DataType::Utf8).unwrap() } else { Arc::clone(c) })
            .collect();
        let fields: Vec<Field> = b
            .schema()
            .fields()
            .iter()
            .zip(&cols)
            .map(|(f, c)| f.as_ref().clone().with_data_type(c.data_type().clone()))
            .collect();
        RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).unwrap()
    };
    for dictionary_pages in [true, false] {
        let path = dir.path().join(format!("d-{dictionary_pages}.parquet"));
        let props = WriterProperties::builder()
            .set_max_row_group_row_count(Some(1000))
            .set_dictionary_enabled(dictionary_pages)
            .build();
        let mut w = ArrowWriter::try_new(std::fs::File::create(&path).unwrap(), schema(), Some(props)).unwrap();
        w.write(&rows(0, 2000)).unwrap();
        w.close().unwrap();
        let label = format!("dictionary pages {dictionary_pages}");

        let opts = ReadOptions { batch_size: 300, dictionary: vec!["user".into()], ..ReadOptions::default() };
        let (s, got) = read_all(ParquetSource::open_with(&path, &opts).unwrap()).unwrap();
        assert_eq!(s.field_with_name("user").unwrap().data_type(), &dict_type, "{label}");
        assert_eq!(as_strings(&one(&s, &got)), rows(0, 2000), "{label}");
        if dictionary_pages {
            let values = |b: &RecordBatch| b.column(0).as_any_dictionary().values().to_data();
            assert!(values(&got[0]).ptr_eq(&values(&got[1])), "one row group, one dictionary");
            assert_eq!(values(&got[0]).len(), 7);
        }

        let opts = ReadOptions {
            batch_size: 300,
            columns: Some(vec!["n".into(), "user".into()]),
            dictionary: vec!["user".into()],
            ..ReadOptions::default()
        };
        let mut src = ParquetSource::open_with(&path, &opts).unwrap();
        assert_eq!(src.skip_rows(1500).unwrap(), 1500);
        let (s, got) = read_all(src).unwrap();
        assert_eq!(as_strings(&one(&s, &got)), rows(1500, 500).project(&[0, 2]).unwrap(), "{label}");
    }

    let path = dir.path().join("d-true.parquet");
    for (column, says) in [("n", "has type Int64"), ("nope", "\"nope\" is not in")] {
        let opts = ReadOptions { dictionary: vec![column.into()], ..ReadOptions::default() };
        let msg = err_text(ParquetSource::open_with(&path, &opts));
        assert!(msg.contains(says) && msg.contains("d-true.parquet"), "{msg}");
    }
    let ipc = dir.path().join("d.arrow");
    write_with(IpcSink::create(&ipc, schema()).unwrap(), &[rows(0, 10)]);
    let csv = dir.path().join("d.csv");
    write_with(CsvSink::create(&csv, schema()).unwrap(), &[rows(0, 10)]);
    let opts = ReadOptions { dictionary: vec!["user".into()], ..ReadOptions::default() };
    for msg in [read_error(IpcSource::open_with(&ipc, &opts)), read_error(CsvSource::open_with(&csv, &opts))] {
        assert!(msg.contains("\"user\"") && msg.contains("Parquet option"), "{msg}");
    }
}

/// A sink that fails on its `fail_at`-th write (counting from 1).
struct FailingSink {
    fail_at: usize,
    written: usize,
}

impl Sink for FailingSink {
    fn write(&mut self, _batch: &RecordBatch) -> windrow::Result<()> {
        self.written += 1;
        if self.written == self.fail_at {
            return Err(windrow::WindrowError::Data(format!("disk full at write {}", self.written)));
        }
        Ok(())
    }
    fn finish(&mut self) -> windrow::Result<windrow::sink::SinkSummary> {
        Ok(windrow::sink::SinkSummary { target: "failing".into(), rows: self.written as u64, ..Default::default() })
    }
}

/// A background sink writes every batch, in order, then finishes the inner sink; a write that
/// fails on its thread is reported (with the inner sink's message) by a later `write` or by
/// `finish`; dropped unfinished, it completes no file.
#[test]
fn background_sink_keeps_order_reports_failures_and_abandons_cleanly() {
    use windrow::sink::BackgroundSink;
    let (memory, handle) = MemorySink::new();
    let mut sink = BackgroundSink::spawn("memory", Box::new(memory)).unwrap();
    let input = chunks(2000, 7);
    for b in &input {
        sink.write(b).unwrap();
    }
    let summary = sink.finish().unwrap();
    assert_eq!(summary.rows, 2000);
    assert_eq!(handle.batches(), input, "every batch, in order");
    assert!(err_text(sink.write(&input[0])).contains("already finished"));

    // Failing on write 3 of 50: a later write or the finish says so.
    for finish_early in [false, true] {
        let mut sink = BackgroundSink::spawn("failing", Box::new(FailingSink { fail_at: 3, written: 0 })).unwrap();
        let mut failed = None;
        for b in input.iter().take(if finish_early { 3 } else { 50 }) {
            if let Err(e) = sink.write(b) {
                failed = Some(e.to_string());
                break;
            }
        }
        let msg = failed.unwrap_or_else(|| err_text(sink.finish()));
        assert!(msg.contains("disk full at write 3"), "{msg}");
    }

    // Sinks sharing a failure: the failed one's error comes out of the other's next writes,
    // once (later ones point to it).
    let failure = windrow::sink::WriteFailure::default();
    let mut failing =
        BackgroundSink::spawn_sharing("failing", Box::new(FailingSink { fail_at: 1, written: 0 }), &failure).unwrap();
    let (memory, _) = MemorySink::new();
    let mut other = BackgroundSink::spawn_sharing("memory", Box::new(memory), &failure).unwrap();
    failing.write(&input[0]).unwrap();
    let started = std::time::Instant::now();
    let msg = loop {
        match other.write(&input[1]) {
            Err(e) => break e.to_string(),
            Ok(()) if started.elapsed() < std::time::Duration::from_secs(10) => std::thread::yield_now(),
            Ok(()) => panic!("the other sink never reported the failure"),
        }
    };
    assert!(msg.contains("disk full at write 1"), "{msg}");
    let again = err_text(other.write(&input[1]));
    assert!(again.contains("reported above"), "{again}");
    assert!(err_text(failing.finish()).contains("reported above"));

    // Dropped without `finish`: the Parquet file is not completed.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("abandoned.parquet");
    let mut sink =
        BackgroundSink::spawn("p", Box::new(ParquetSink::create(&path, schema(), RollPolicy::default()).unwrap()))
            .unwrap();
    sink.write(&rows(0, 100)).unwrap();
    drop(sink);
    assert!(!path.exists(), "an abandoned output is not published");
}

/// The IPC file format holds one dictionary per column, but a stream brings new ones (each
/// Parquet row group its own): an `.arrow` output writes dictionary columns as their values,
/// whatever dictionaries its batches carry.
#[test]
fn ipc_output_takes_batches_with_different_dictionaries() {
    use arrow::array::{AsArray, DictionaryArray};
    use arrow::datatypes::Int32Type;
    let dir = tempfile::tempdir().unwrap();
    let dict_type = DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8));
    let schema =
        Arc::new(Schema::new(vec![Field::new("user", dict_type, false), Field::new("n", DataType::Int64, false)]));
    let batch = |values: Vec<&str>, keys: Vec<i32>, n: i64| {
        let len = keys.len();
        let user = DictionaryArray::<Int32Type>::try_new(keys.into(), Arc::new(StringArray::from(values))).unwrap();
        RecordBatch::try_new(Arc::clone(&schema), vec![Arc::new(user), Arc::new(Int64Array::from(vec![n; len]))])
            .unwrap()
    };
    let path = dir.path().join("d.arrow");
    let mut sink = IpcSink::create(&path, Arc::clone(&schema)).unwrap();
    sink.write(&batch(vec!["a", "b"], vec![0, 1, 1], 1)).unwrap();
    sink.write(&batch(vec!["c", "a"], vec![1, 0], 2)).unwrap();
    assert_eq!(sink.finish().unwrap().rows, 5);
    let (s, got) = read_all(IpcSource::open_with(&path, &ReadOptions::default()).unwrap()).unwrap();
    assert_eq!(s.field(0).data_type(), &DataType::Utf8);
    let all = one(&s, &got);
    let users: Vec<&str> = all.column(0).as_string::<i32>().iter().flatten().collect();
    assert_eq!(users, ["a", "b", "b", "a", "c"]);
}
