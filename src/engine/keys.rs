//! Keys: evaluating key columns or expressions, checking nulls, encoding and hashing whole
//! key columns at once (DESIGN.md: intern each key once per row, hash vectorised).
//!
//! A key is interned by its bytes. One `Utf8` column — the common case — is interned by the
//! string's own bytes, straight from the input array; every other key shape goes through
//! arrow's row format (`arrow::row`), which turns any combination of columns into comparable
//! bytes and back. The string path skips the row encoding and decoding, which a profile of
//! the 1000-key benchmark showed as about an eighth of all time.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::agg::ByteInterner;
use arrow::array::{Array, ArrayRef, AsArray, StringArray, UInt32Array};
use arrow::buffer::OffsetBuffer;
use arrow::compute::take;
use arrow::datatypes::{DataType, Field, FieldRef, Schema, SchemaRef};
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
    /// One dictionary column of `Utf8` values: the value's bytes, as for `Utf8` (the same
    /// keys and hashes), hashed once per dictionary value and interned once per value that
    /// a shard sees in a batch.
    DictUtf8,
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
    raw_types: Vec<DataType>,
    random: RandomState,
    /// Dictionary keys: the last dictionary seen (see [`DictCache`]).
    dict_cache: Mutex<Option<DictCache>>,
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
    Dict(DictKeys),
    Rows(Rows),
}

/// A dictionary key column: per row the index of its value (any index for a null row).
pub(crate) struct DictKeys {
    pub indices: Vec<u32>,
    pub values: StringArray,
    /// Per dictionary value: its hash (what hashing a `Utf8` column with it gives).
    value_hashes: Arc<[u64]>,
    /// Names this dictionary: batches carrying the very same dictionary (the same buffers) get
    /// the same generation, any other dictionary another, unique in the process. Shards keep
    /// their value-to-key-id lookups for as long as the generation lasts.
    pub generation: u64,
}

/// The dictionary a key column last came with and its values' hashes. A Parquet reader hands
/// every batch of a row group the same dictionary, so it is hashed once per row group, not
/// once per batch (with 100,000 keys, a 65,536-row batch's dictionary has more values than the
/// batch has rows).
struct DictCache {
    /// Kept alive, so that no other dictionary can reuse its buffers' addresses.
    values: StringArray,
    hashes: Arc<[u64]>,
    generation: u64,
}

/// Dictionary generations, unique in the process (0: none).
static NEXT_DICT_GENERATION: AtomicU64 = AtomicU64::new(1);

impl DictKeys {
    #[inline(never)]
    fn key(&self, r: usize) -> &[u8] {
        self.values.value(self.indices[r] as usize).as_bytes()
    }
}

impl BatchKeys {
    /// The interned bytes of row `r`'s key.
    #[inline]
    pub fn key(&self, r: usize) -> &[u8] {
        match &self.encoded {
            EncodedKeys::Utf8(a) => a.value(r).as_bytes(),
            EncodedKeys::Rows(rows) => rows.row(r).data(),
            // Once per value and batch (see `DictInterning::intern`). Out of line: inlined here,
            // the `Utf8` path's lookup was no longer inlined (tumbling count 688M -> 758M
            // instructions, 1M events).
            EncodedKeys::Dict(d) => d.key(r),
        }
    }

    /// The dictionary of a dictionary key column (shards intern each of its values once).
    #[inline]
    pub fn dictionary(&self) -> Option<&DictKeys> {
        match &self.encoded {
            EncodedKeys::Dict(d) => Some(d),
            _ => None,
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
        let encoding = match types.as_slice() {
            [DataType::Utf8] => Encoding::Utf8,
            [DataType::Dictionary(index, values)] if index.is_dictionary_key_type() && **values == DataType::Utf8 => {
                Encoding::DictUtf8
            }
            _ => Encoding::Rows,
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
            dict_cache: Mutex::new(None),
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
            Encoding::DictUtf8 => EncodedKeys::Dict(self.dict_keys(arrays[0].as_ref())?),
            Encoding::Rows => EncodedKeys::Rows(self.converter.convert_columns(&arrays)?),
        };
        let hashes = vec![0u64; batch.num_rows()];
        Ok(BatchKeys { arrays, encoded, hashes, null_key })
    }

    /// The indices, values and value hashes of a dictionary key column.
    fn dict_keys(&self, array: &dyn Array) -> Result<DictKeys> {
        let dict = array.as_any_dictionary_opt().ok_or_else(|| {
            WindrowError::Internal(format!("key column of type {} is not a dictionary", array.data_type()))
        })?;
        let values = dict.values().as_string::<i32>().clone();
        if u32::try_from(values.len()).is_err() {
            return Err(WindrowError::Data("a key dictionary with more than 2^32 values".into()));
        }
        // With no values every row is null (refused before interning): any indices do.
        let indices = if values.is_empty() {
            vec![0; array.len()]
        } else {
            dict.normalized_keys().into_iter().map(|i| i as u32).collect()
        };
        let (value_hashes, generation) = self.dict_hashes(&values)?;
        Ok(DictKeys { indices, values, value_hashes, generation })
    }

    /// The hashes of dictionary `values` and its generation: those of the last dictionary when
    /// it is the same one (the same buffers), else hashed now under a new generation.
    fn dict_hashes(&self, values: &StringArray) -> Result<(Arc<[u64]>, u64)> {
        let mut cache =
            self.dict_cache.lock().map_err(|_| WindrowError::Internal("dictionary cache poisoned".into()))?;
        if let Some(c) = cache.as_ref().filter(|c| c.values.to_data().ptr_eq(&values.to_data())) {
            return Ok((Arc::clone(&c.hashes), c.generation));
        }
        let mut hashes = vec![0; values.len()];
        create_hashes(&[Arc::new(values.clone()) as ArrayRef], &self.random, &mut hashes)?;
        let hashes: Arc<[u64]> = hashes.into();
        let generation = NEXT_DICT_GENERATION.fetch_add(1, Ordering::Relaxed);
        *cache = Some(DictCache { values: values.clone(), hashes: Arc::clone(&hashes), generation });
        Ok((hashes, generation))
    }

    /// Hashes the keys of rows `start..start + out.len()` into `out`.
    pub fn hash_rows(&self, keys: &BatchKeys, start: usize, out: &mut [u64]) -> Result<()> {
        if let EncodedKeys::Dict(d) = &keys.encoded {
            // Each value was hashed once; a null row gets its index's hash (or 0 without
            // values) and is refused.
            if d.value_hashes.is_empty() {
                out.fill(0);
            } else {
                for (h, &i) in out.iter_mut().zip(&d.indices[start..]) {
                    *h = d.value_hashes[i as usize];
                }
            }
            return Ok(());
        }
        let sliced: Vec<ArrayRef> = keys.arrays.iter().map(|a| a.slice(start, out.len())).collect();
        create_hashes(&sliced, &self.random, out)?;
        Ok(())
    }

    /// Whether the key is one dictionary column, interned by value (a checkpoint of the same
    /// step from before that was interned in Arrow's row format and must not be restored).
    pub fn interned_by_dictionary_value(&self) -> bool {
        self.encoding == Encoding::DictUtf8
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
            Encoding::Utf8 | Encoding::DictUtf8 => {
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
            EncodedKeys::Dict(d) => {
                let indices: UInt32Array = rows.iter().map(|&r| d.indices[r as usize]).collect();
                Ok(vec![take(&d.values, &indices, None)?])
            }
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
    #[inline(always)]
    pub fn intern(&mut self, keys: &BatchKeys, r: usize) -> Result<(u32, bool)> {
        self.0.intern(keys.key(r), keys.hashes[r])
    }

    /// Starts loading the table bucket of row `r`'s key ([`ByteInterner::prefetch`]).
    #[inline]
    pub fn prefetch(&self, keys: &BatchKeys, r: usize) {
        self.0.prefetch(keys.hashes[r]);
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The hash key `k` was interned with (checkpoints save it, so a restore can shard keys
    /// without re-evaluating key expressions).
    pub fn hash(&self, k: u32) -> u64 {
        self.0.hash(k)
    }

    /// Interns saved key bytes with their saved hash (restore, and dictionary values). Kept out
    /// of line: it is cold, and a second inlined caller of the interner changed how the hot
    /// path was inlined.
    #[inline(never)]
    pub fn intern_saved(&mut self, bytes: &[u8], hash: u64) -> Result<(u32, bool)> {
        self.0.intern(bytes, hash)
    }
}

/// A shard's interning of dictionary key columns: per dictionary index, the key id of its
/// value, looked up in the [`KeyTable`] once per dictionary (per row group, read from Parquet).
#[derive(Default)]
pub(crate) struct DictInterning {
    /// Per dictionary index: `(generation, id)`, the key id of that value if it was interned
    /// while dictionary `generation` was current (entries of other generations are stale:
    /// another dictionary may order its values differently). Key ids are never reused, so an
    /// entry stays right for as long as its dictionary comes back.
    by_index: Vec<(u64, u32)>,
    /// The current dictionary's generation (0: none yet).
    generation: u64,
}

impl DictInterning {
    /// Starts a batch with dictionary `dict`.
    pub fn begin_batch(&mut self, dict: &DictKeys) {
        self.generation = dict.generation;
        if self.by_index.len() < dict.values.len() {
            self.by_index.resize(dict.values.len(), (0, 0));
        }
    }

    /// The id of row `r` of `keys` (whose dictionary is `dict`) in `table`, and whether it
    /// is new: each value is looked up once per dictionary, its other rows find it by index.
    #[inline]
    pub fn intern(&mut self, table: &mut KeyTable, keys: &BatchKeys, dict: &DictKeys, r: usize) -> Result<(u32, bool)> {
        let v = dict.indices[r] as usize;
        let (generation, id) = self.by_index[v];
        if generation == self.generation {
            return Ok((id, false));
        }
        // Through the out-of-line lookup restores use: a third caller of the table's lookup
        // made the compiler stop inlining it into the `Utf8` path.
        let (id, new) = table.intern_saved(dict.values.value(v).as_bytes(), keys.hashes[r])?;
        self.by_index[v] = (self.generation, id);
        Ok((id, new))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{DictionaryArray, Int8Array};
    use arrow::datatypes::Int8Type;

    fn batch(key: ArrayRef) -> (RecordBatch, BoundKeys) {
        let schema = Arc::new(Schema::new(vec![Field::new("k", key.data_type().clone(), true)]));
        let keys = BoundKeys::bind(&KeySpec::columns(["k"]), &schema).unwrap();
        (RecordBatch::try_new(schema, vec![key]).unwrap(), keys)
    }

    /// A dictionary key column is interned and hashed by value: the same bytes and hashes as
    /// a `Utf8` column of the same strings (so both intern, shard and checkpoint alike), and
    /// the hashes DataFusion gives the dictionary column itself.
    #[test]
    fn dictionary_keys_are_the_strings_they_stand_for() {
        let strings = ["b", "a", "a much longer key than eight bytes", "b", "", "a"];
        let values = StringArray::from(vec!["a", "unused", "b", "a much longer key than eight bytes", "", "b"]);
        let indices = Int8Array::from(vec![2, 0, 3, 5, 4, 0]);
        let dict: ArrayRef = Arc::new(DictionaryArray::<Int8Type>::try_new(indices, Arc::new(values)).unwrap());
        let (dict_batch, dict_keys) = batch(Arc::clone(&dict));
        let (utf8_batch, utf8_keys) = batch(Arc::new(StringArray::from(strings.to_vec())));
        assert!(dict_keys.interned_by_dictionary_value() && !utf8_keys.interned_by_dictionary_value());
        assert_eq!(dict_keys.fields[0].data_type(), &DataType::Utf8, "keys come out as their values");
        let d = dict_keys.encode(&dict_batch, None).unwrap();
        let u = utf8_keys.encode(&utf8_batch, None).unwrap();
        let mut datafusion = vec![0; strings.len()];
        create_hashes(&[dict], &dict_keys.random, &mut datafusion).unwrap();
        for (r, s) in strings.iter().enumerate() {
            assert_eq!(d.key(r), s.as_bytes(), "row {r}");
            assert_eq!(d.hashes[r], u.hashes[r], "row {r}: hash as Utf8");
            assert_eq!(d.hashes[r], datafusion[r], "row {r}: hash of the dictionary column");
        }
        // Hashing in chunks gives the same.
        let mut part = vec![0; 3];
        dict_keys.hash_rows(&d, 2, &mut part).unwrap();
        assert_eq!(part, d.hashes[2..5]);
        // Late rows' key column: the values, as `Utf8`.
        let late = dict_keys.decode_batch(&d, &[4, 2, 0]).unwrap();
        assert_eq!(late[0].as_string::<i32>(), &StringArray::from(vec!["", "a much longer key than eight bytes", "b"]));
        // Interned once per value and batch; equal values at other indices are the same key.
        let (mut table, mut interning) = (KeyTable::default(), DictInterning::default());
        let dict = d.dictionary().unwrap();
        interning.begin_batch(dict);
        let ids: Vec<(u32, bool)> =
            (0..strings.len()).map(|r| interning.intern(&mut table, &d, dict, r).unwrap()).collect();
        assert_eq!(ids, [(0, true), (1, true), (2, true), (0, false), (3, true), (1, false)]);
        let utf8_ids: Vec<u32> = (0..strings.len()).map(|r| table.intern(&u, r).unwrap().0).collect();
        assert_eq!(utf8_ids, [0, 1, 2, 0, 3, 1]);
    }

    /// Batches sharing one dictionary (slices of one array, as a Parquet reader's batches of a
    /// row group) share its hashes and its generation; an equal dictionary in other buffers is
    /// another generation, and a shard's value lookups of one generation are not reused for it.
    #[test]
    fn a_shared_dictionary_is_hashed_and_looked_up_once() {
        let values = StringArray::from(vec!["x", "y", "z"]);
        let whole: ArrayRef = Arc::new(
            DictionaryArray::<Int8Type>::try_new(Int8Array::from(vec![0, 1, 2, 0, 1, 2]), Arc::new(values)).unwrap(),
        );
        let (batch1, keys) = batch(whole.slice(0, 3));
        let batch2 = RecordBatch::try_new(batch1.schema(), vec![whole.slice(3, 3)]).unwrap();
        let (k1, k2) = (keys.encode(&batch1, None).unwrap(), keys.encode(&batch2, None).unwrap());
        let (d1, d2) = (k1.dictionary().unwrap(), k2.dictionary().unwrap());
        assert_eq!(d1.generation, d2.generation, "slices of one array: one dictionary");
        assert!(Arc::ptr_eq(&d1.value_hashes, &d2.value_hashes), "hashed once");
        // The same strings, reordered, in buffers of their own: a new dictionary.
        let other: ArrayRef = Arc::new(
            DictionaryArray::<Int8Type>::try_new(
                Int8Array::from(vec![0, 1, 2]),
                Arc::new(StringArray::from(vec!["z", "x", "y"])),
            )
            .unwrap(),
        );
        let batch3 = RecordBatch::try_new(batch1.schema(), vec![other]).unwrap();
        let k3 = keys.encode(&batch3, None).unwrap();
        let d3 = k3.dictionary().unwrap();
        assert_ne!(d3.generation, d1.generation);
        assert_eq!((k3.hashes[0], k3.hashes[1]), (k1.hashes[2], k1.hashes[0]), "hashed by value");
        // A shard: the second batch finds every value from the first; the third looks its own
        // up again and gets the ids of its strings, not of its indices' old values.
        let (mut table, mut interning) = (KeyTable::default(), DictInterning::default());
        let mut ids = |k: &BatchKeys| {
            let dict = k.dictionary().unwrap();
            interning.begin_batch(dict);
            (0..3).map(|r| interning.intern(&mut table, k, dict, r).unwrap()).collect::<Vec<_>>()
        };
        assert_eq!(ids(&k1), [(0, true), (1, true), (2, true)]);
        assert_eq!(ids(&k2), [(0, false), (1, false), (2, false)]);
        assert_eq!(ids(&k3), [(2, false), (0, false), (1, false)]);
    }

    /// A null index and an index to a null value are both null keys; an all-null column
    /// without values encodes (its rows are refused, never interned).
    #[test]
    fn null_dictionary_keys_are_null_keys() {
        let values = StringArray::from(vec![Some("a"), None]);
        let indices = Int8Array::from(vec![Some(0), None, Some(1)]);
        let dict = DictionaryArray::<Int8Type>::try_new(indices, Arc::new(values)).unwrap();
        let (b, keys) = batch(Arc::new(dict));
        let encoded = keys.encode(&b, None).unwrap();
        assert_eq!(encoded.null_key, Some(vec![None, Some(0), Some(0)]));
        // A null row's stored index may be anything, even out of range or negative: it is
        // clamped into the dictionary, so hashing the rows stays in bounds.
        for stored in [100i8, -3] {
            let nulls = arrow::buffer::NullBuffer::from(vec![true, false]);
            let indices = Int8Array::new(vec![1, stored].into(), Some(nulls));
            let values = StringArray::from(vec!["a", "b"]);
            let dict = DictionaryArray::<Int8Type>::try_new(indices, Arc::new(values)).unwrap();
            let (b, keys) = batch(Arc::new(dict));
            let encoded = keys.encode(&b, None).unwrap();
            assert_eq!(encoded.dictionary().unwrap().indices, [1, 1], "stored {stored}");
            assert_eq!(encoded.null_key, Some(vec![None, Some(0)]));
        }
        let empty = DictionaryArray::<Int8Type>::try_new(
            Int8Array::from(vec![None, None]),
            Arc::new(StringArray::from(Vec::<&str>::new())),
        )
        .unwrap();
        let (b, keys) = batch(Arc::new(empty));
        assert_eq!(keys.encode(&b, None).unwrap().null_key, Some(vec![Some(0), Some(0)]));
    }
}
