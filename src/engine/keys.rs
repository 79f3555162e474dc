//! Keys: evaluating key columns or expressions, checking nulls, encoding and hashing whole
//! key columns at once (DESIGN.md: intern each key once per row, hash vectorised).
//!
//! A key is interned by its bytes. One `Utf8` column — the common case — is interned by the
//! string's own bytes, straight from the input array; every other key shape goes through
//! arrow's row format (`arrow::row`), which turns any combination of columns into comparable
//! bytes and back. The string path skips the row encoding and decoding, which a profile of
//! the 1000-key benchmark showed as about an eighth of all time.

use std::sync::Arc;

use crate::agg::ByteInterner;
use arrow::array::{Array, ArrayRef, AsArray, StringArray, UInt32Array};
use arrow::buffer::OffsetBuffer;
use arrow::compute::take;
use arrow::datatypes::{Field, FieldRef, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use arrow::row::{RowConverter, Rows, SortField};
use datafusion::common::DFSchema;
use datafusion::common::hash_utils::{RandomState, create_hashes};
use datafusion::execution::context::ExecutionProps;
use datafusion::logical_expr::Expr;
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::physical_expr::{PhysicalExpr, create_physical_expr};
use rayon::prelude::*;

use crate::error::{Result, WindrowError, plan_err};

/// What a stream is keyed by.
#[derive(Clone, Debug)]
pub enum KeySpec {
    /// One or more columns; rows with equal values in all of them share a key.
    Columns(Vec<String>),
    /// Named DataFusion expressions; each becomes a key column of the outputs.
    Exprs(Vec<(String, Expr)>),
}

impl KeySpec {
    /// Keys on the given columns.
    pub fn columns<I, S>(cols: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        KeySpec::Columns(cols.into_iter().map(Into::into).collect())
    }

    /// Keys on one expression, named `name` on the outputs.
    pub fn expr(name: impl Into<String>, expr: Expr) -> Self {
        KeySpec::Exprs(vec![(name.into(), expr)])
    }
}

/// Plans a DataFusion expression against `schema`, to be evaluated once per batch.
pub(crate) fn bind_expr(expr: &Expr, schema: &SchemaRef) -> Result<Arc<dyn PhysicalExpr>> {
    let df_schema = DFSchema::try_from(schema.as_ref().clone())?;
    Ok(create_physical_expr(expr, &df_schema, &ExecutionProps::new(), &PhysicalPlanningContext::default())?)
}

enum KeyPart {
    Column(usize),
    Expr(Arc<dyn PhysicalExpr>),
}

/// Rows hashed per task when hashing in parallel.
const HASH_CHUNK: usize = 16 * 1024;

/// How a bound key becomes interned bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Encoding {
    /// One `Utf8` column: the string's bytes.
    Utf8,
    /// Anything else: arrow's row format.
    Rows,
}

/// A key spec bound to an input schema.
pub(crate) struct BoundKeys {
    encoding: Encoding,
    parts: Vec<KeyPart>,
    names: Vec<String>,
    converter: RowConverter,
    /// Output key fields (as the row converter returns them: dictionaries come back as values).
    pub fields: Vec<FieldRef>,
    /// Input columns that are key columns (omitted from `late`'s payload columns).
    pub key_columns: Vec<usize>,
    /// Types of the evaluated key columns, before row encoding.
    raw_types: Vec<arrow::datatypes::DataType>,
    random: RandomState,
}

/// The keys of one batch.
pub(crate) struct BatchKeys {
    /// The evaluated key columns (hashed from these).
    arrays: Vec<ArrayRef>,
    encoded: EncodedKeys,
    /// Per row: the key's hash. Filled by [`BoundKeys::encode`], or chunk by chunk with
    /// [`BoundKeys::hash_rows`] after [`BoundKeys::encode_unhashed`].
    pub hashes: Vec<u64>,
    /// Per row: the name of the first null key column, if any.
    pub null_key: Option<Vec<Option<usize>>>,
}

enum EncodedKeys {
    Utf8(StringArray),
    Rows(Rows),
}

impl BatchKeys {
    /// The interned bytes of row `r`'s key.
    #[inline]
    pub fn key(&self, r: usize) -> &[u8] {
        match &self.encoded {
            EncodedKeys::Utf8(a) => a.value(r).as_bytes(),
            EncodedKeys::Rows(rows) => rows.row(r).data(),
        }
    }
}

impl BoundKeys {
    pub fn bind(spec: &KeySpec, schema: &SchemaRef) -> Result<Self> {
        let mut parts = Vec::new();
        let mut names = Vec::new();
        let mut types = Vec::new();
        let mut key_columns = Vec::new();
        match spec {
            KeySpec::Columns(cols) => {
                if cols.is_empty() {
                    return plan_err("key_on needs at least one key column");
                }
                for c in cols {
                    let Ok(i) = schema.index_of(c) else {
                        let have: Vec<_> = schema.fields().iter().map(|f| f.name().as_str()).collect();
                        return plan_err(format!("key column \"{c}\" not found; the input has columns {have:?}"));
                    };
                    parts.push(KeyPart::Column(i));
                    names.push(c.clone());
                    types.push(schema.field(i).data_type().clone());
                    key_columns.push(i);
                }
            }
            KeySpec::Exprs(exprs) => {
                if exprs.is_empty() {
                    return plan_err("key_on needs at least one key expression");
                }
                for (name, e) in exprs {
                    let phys = bind_expr(e, schema)?;
                    types.push(phys.data_type(schema)?);
                    parts.push(KeyPart::Expr(phys));
                    names.push(name.clone());
                }
            }
        }
        for (n, t) in names.iter().zip(&types) {
            if !RowConverter::supports_fields(&[SortField::new(t.clone())]) {
                return plan_err(format!("key \"{n}\" has type {t}, which cannot be used as a key"));
            }
        }
        let encoding = if types.len() == 1 && types[0] == arrow::datatypes::DataType::Utf8 {
            Encoding::Utf8
        } else {
            Encoding::Rows
        };
        let converter = RowConverter::new(types.iter().cloned().map(SortField::new).collect())?;
        // Round-trip an empty set of rows to learn the output key types.
        let empty: Vec<ArrayRef> = types.iter().map(arrow::array::new_empty_array).collect();
        let back = converter.convert_rows(converter.convert_columns(&empty)?.iter())?;
        let fields =
            names.iter().zip(&back).map(|(n, a)| Arc::new(Field::new(n, a.data_type().clone(), false))).collect();
        Ok(BoundKeys {
            encoding,
            parts,
            names,
            converter,
            fields,
            key_columns,
            raw_types: types,
            random: RandomState::with_seed(0x77696e64),
        })
    }

    /// Evaluates, encodes and hashes the keys of `batch` (hashing in row chunks on `pool`
    /// when one is given).
    pub fn encode(&self, batch: &RecordBatch, pool: Option<&rayon::ThreadPool>) -> Result<BatchKeys> {
        let mut keys = self.encode_unhashed(batch)?;
        let mut hashes = std::mem::take(&mut keys.hashes);
        match pool {
            Some(pool) if hashes.len() >= 2 * HASH_CHUNK => pool.install(|| {
                hashes
                    .par_chunks_mut(HASH_CHUNK)
                    .enumerate()
                    .try_for_each(|(i, chunk)| self.hash_rows(&keys, i * HASH_CHUNK, chunk))
            })?,
            _ => self.hash_rows(&keys, 0, &mut hashes)?,
        }
        keys.hashes = hashes;
        Ok(keys)
    }

    /// Evaluates and encodes the keys of `batch`; `hashes` is left zeroed for the caller to
    /// fill with [`hash_rows`](Self::hash_rows) (the operator does it in the same parallel
    /// pass that shards the rows).
    pub fn encode_unhashed(&self, batch: &RecordBatch) -> Result<BatchKeys> {
        let arrays = self.arrays(batch)?;
        let mut null_key: Option<Vec<Option<usize>>> = None;
        for (ki, a) in arrays.iter().enumerate() {
            if let Some(n) = a.logical_nulls().filter(|n| n.null_count() > 0) {
                let v = null_key.get_or_insert_with(|| vec![None; batch.num_rows()]);
                for (r, slot) in v.iter_mut().enumerate() {
                    if slot.is_none() && n.is_null(r) {
                        *slot = Some(ki);
                    }
                }
            }
        }
        let encoded = match self.encoding {
            Encoding::Utf8 => EncodedKeys::Utf8(arrays[0].as_string::<i32>().clone()),
            Encoding::Rows => EncodedKeys::Rows(self.converter.convert_columns(&arrays)?),
        };
        let hashes = vec![0u64; batch.num_rows()];
        Ok(BatchKeys { arrays, encoded, hashes, null_key })
    }

    /// Hashes the keys of rows `start..start + out.len()` into `out`.
    pub fn hash_rows(&self, keys: &BatchKeys, start: usize, out: &mut [u64]) -> Result<()> {
        let sliced: Vec<ArrayRef> = keys.arrays.iter().map(|a| a.slice(start, out.len())).collect();
        create_hashes(&sliced, &self.random, out)?;
        Ok(())
    }

    /// The key columns of `batch`, evaluated.
    pub fn arrays(&self, batch: &RecordBatch) -> Result<Vec<ArrayRef>> {
        self.parts
            .iter()
            .zip(&self.names)
            .map(|(p, name)| match p {
                KeyPart::Column(i) => Ok(Arc::clone(batch.column(*i))),
                KeyPart::Expr(e) => e
                    .evaluate(batch)
                    .and_then(|v| v.into_array(batch.num_rows()))
                    .map_err(|err| WindrowError::Data(format!("key expression \"{name}\" failed: {err}"))),
            })
            .collect()
    }

    /// The evaluated key columns' fields (names and types before row encoding).
    pub fn raw_fields(&self) -> Vec<FieldRef> {
        self.names.iter().zip(&self.raw_types).map(|(n, t)| Arc::new(Field::new(n, t.clone(), false))).collect()
    }

    /// Name of key part `i`.
    pub fn name(&self, i: usize) -> &str {
        &self.names[i]
    }

    /// The key columns of interned keys `ids`, in that order.
    pub fn decode_interned(&self, table: &KeyTable, ids: impl ExactSizeIterator<Item = u32>) -> Result<Vec<ArrayRef>> {
        match self.encoding {
            Encoding::Utf8 => {
                // Gather the bytes, then validate UTF-8 once for the whole array.
                let mut values = Vec::with_capacity(ids.len() * 8);
                let mut offsets = Vec::with_capacity(ids.len() + 1);
                offsets.push(0i32);
                for k in ids {
                    table.0.append_to(k, &mut values);
                    offsets.push(values.len() as i32); // checked once below
                }
                if i32::try_from(values.len()).is_err() {
                    return Err(WindrowError::Internal("closed windows' keys exceed 2 GiB in one step".into()));
                }
                let array = StringArray::try_new(OffsetBuffer::new(offsets.into()), values.into(), None)?;
                Ok(vec![Arc::new(array)])
            }
            Encoding::Rows => {
                let parser = self.converter.parser();
                Ok(self.converter.convert_rows(ids.map(|k| parser.parse(table.key(k))))?)
            }
        }
    }

    /// The key columns of rows `rows` of a batch's keys.
    pub fn decode_batch(&self, keys: &BatchKeys, rows: &[u32]) -> Result<Vec<ArrayRef>> {
        match &keys.encoded {
            EncodedKeys::Utf8(a) => Ok(vec![take(a, &UInt32Array::from(rows.to_vec()), None)?]),
            EncodedKeys::Rows(r) => Ok(self.converter.convert_rows(rows.iter().map(|&i| r.row(i as usize)))?),
        }
    }

    /// The key fields followed by `rest`.
    pub fn schema_with(&self, rest: impl IntoIterator<Item = FieldRef>) -> SchemaRef {
        let fields: Vec<FieldRef> = self.fields.iter().cloned().chain(rest).collect();
        Arc::new(Schema::new(fields))
    }
}

/// The shard (of `nshards`) that owns keys with `hash`.
///
/// A multiply-shift on bits 24..56 of the hash instead of `hash % nshards`: no division per
/// row, and the bits it uses are neither the low bits the shard's hash table indexes buckets
/// with nor the top bits it keeps as tags, so every shard's table still sees well-spread hashes
/// (with `%` and two shards, each table used only every other bucket).
#[inline]
pub(crate) fn shard_of(hash: u64, nshards: usize) -> usize {
    ((u64::from((hash >> 24) as u32) * nshards as u64) >> 32) as usize
}

/// Dense per-shard key ids, with each key's bytes kept in one arena.
#[derive(Default)]
pub(crate) struct KeyTable(ByteInterner);

impl KeyTable {
    /// The bytes of key `k`.
    #[inline]
    pub fn key(&self, k: u32) -> &[u8] {
        self.0.get(k)
    }

    /// The id of row `r` of `keys`, and whether it is new.
    ///
    /// # Errors
    /// More than `u32::MAX` keys in one shard.
    #[inline]
    pub fn intern(&mut self, keys: &BatchKeys, r: usize) -> Result<(u32, bool)> {
        self.0.intern(keys.key(r), keys.hashes[r])
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The hash key `k` was interned with (checkpoints save it, so a restore can shard keys
    /// without re-evaluating key expressions).
    pub fn hash(&self, k: u32) -> u64 {
        self.0.hash(k)
    }

    /// Interns saved key bytes with their saved hash (restore). Kept out of line: it is cold,
    /// and a second inlined caller of the interner changed how the hot path was inlined.
    #[inline(never)]
    pub fn intern_saved(&mut self, bytes: &[u8], hash: u64) -> Result<(u32, bool)> {
        self.0.intern(bytes, hash)
    }
}
