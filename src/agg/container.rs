//! `collect_window` into a set or a dict (spec §8.2): the distinct values of one column, or a
//! key → value mapping where the last write wins, each in first-insertion order.
//!
//! ```text
//! application order   a  b  a  c  b        (k,v): (x,1) (y,2) (x,3)
//! set                 [a, b, c]            dict:  {x: 3, y: 2}
//! ```
//!
//! Both containers are functions of the list `into = list` would give for the same window:
//! the set is that list without repeats (each value where it first occurs), the dict is that
//! list of pairs written into an empty map one by one. That holds for ordered mode (the list is
//! sorted by timestamp, ties in arrival order) and for unordered session merges (the list is the
//! target's then the original's), which is how the merge rules of §8.2 are implemented.
//!
//! Values are held in Arrow's row format ([`arrow::row`]): two values are equal iff their
//! encodings are, every row-encodable type works without a per-type kernel, and no input batch
//! is retained. The encoding makes nulls equal to each other, and floats compare by Arrow's
//! total order (`NaN` equals a `NaN` with the same bits; `-0.0` and `0.0` differ), as
//! max/min do (§16 item 21).

use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, ListArray, MapArray, StructArray, UInt32Array, new_empty_array};
use arrow::buffer::OffsetBuffer;
use arrow::compute::{cast, take};
use arrow::datatypes::{DataType, Field, FieldRef, Fields, SchemaRef};
use arrow::row::{RowConverter, Rows, SortField};

use super::{AggFactory, BatchStore, BatchView, ByteInterner, RowMap, RowRef, SlotAgg, StateColumns};
use crate::error::{Result, WindrowError, plan_err};

/// The distinct encoded values of one window, in first-insertion order, in one byte arena.
#[derive(Default)]
struct Distinct(ByteInterner);

impl Distinct {
    fn len(&self) -> usize {
        self.0.len()
    }

    fn get(&self, i: usize) -> &[u8] {
        self.0.get(i as u32)
    }

    /// The position of `bytes`, appending it if absent; `true` if it was appended.
    fn intern(&mut self, bytes: &[u8], hasher: &RandomState) -> Result<(usize, bool)> {
        let (id, new) = self.0.intern(bytes, hasher.hash_one(bytes))?;
        Ok((id as usize, new))
    }
}

/// Whether set elements and dict keys of this type are supported: scalar values (numbers,
/// booleans, strings, binary, temporal, decimals), or dictionaries of them.
fn is_scalar(dt: &DataType) -> bool {
    match dt {
        DataType::Dictionary(_, values) => is_scalar(values),
        DataType::RunEndEncoded(..) => false,
        d => !d.is_nested(),
    }
}

/// A row converter for one column, after checking that the type can be compared (`scalar`:
/// also that it is a scalar type).
fn converter_for(what: &str, column: &str, dt: &DataType, scalar: bool) -> Result<Arc<RowConverter>> {
    if scalar && !is_scalar(dt) {
        return plan_err(format!(
            "collect_window {what}: column \"{column}\" has type {dt}; set elements and dict keys are \
             compared as scalar values (numbers, booleans, strings, binary, temporal, decimals, or \
             dictionaries of them); collect it into a list instead"
        ));
    }
    let fields = vec![SortField::new(dt.clone())];
    let unsupported =
        || format!("collect_window {what}: column \"{column}\" has type {dt}, which Arrow's row format cannot encode");
    if !RowConverter::supports_fields(&fields) {
        return plan_err(unsupported());
    }
    Ok(Arc::new(RowConverter::new(fields).map_err(|e| WindrowError::Plan(format!("{}: {e}", unsupported())))?))
}

/// The encoded values of `rows` of `column`, in the order of `rows`.
fn encode(converter: &RowConverter, column: &ArrayRef, rows: &[u32]) -> Result<Rows> {
    let values = if rows.len() == column.len() && rows.iter().enumerate().all(|(i, &r)| i == r as usize) {
        Arc::clone(column)
    } else {
        take(column, &UInt32Array::from(rows.to_vec()), None)?
    };
    Ok(converter.convert_columns(&[values])?)
}

/// Decodes encoded values back to an array of `dt` (dictionaries come back hydrated).
fn decode<'a>(converter: &RowConverter, values: impl Iterator<Item = &'a [u8]>, dt: &DataType) -> Result<ArrayRef> {
    let parser = converter.parser();
    let rows: Vec<_> = values.map(|b| parser.parse(b)).collect();
    if rows.is_empty() {
        return Ok(new_empty_array(dt));
    }
    let mut out = converter.convert_rows(rows)?;
    let arr = out.pop().ok_or_else(|| WindrowError::Internal("row converter returned no column".into()))?;
    Ok(if arr.data_type() != dt { cast(&arr, dt)? } else { arr })
}

// ---------------------------------------------------------------------------------------------
// set
// ---------------------------------------------------------------------------------------------

/// `collect_window(into = set)` of one column: `List<T>` of its distinct values.
pub(crate) struct CollectSetFactory {
    column: usize,
    item_type: DataType,
    field: FieldRef,
    converter: Arc<RowConverter>,
}

impl CollectSetFactory {
    /// # Errors
    /// A column type without an equality encoding (plan error naming the column and type).
    pub fn bind(column: usize, schema: &SchemaRef) -> Result<Self> {
        let f = schema.field(column);
        let item_type = f.data_type().clone();
        let converter = converter_for("into set", f.name(), &item_type, true)?;
        let field = Field::new(f.name(), DataType::List(Arc::new(Field::new("item", item_type.clone(), true))), false);
        Ok(CollectSetFactory { column, item_type, field: Arc::new(field), converter })
    }
}

impl AggFactory for CollectSetFactory {
    fn describe(&self) -> String {
        format!("collect set(column {}) as {}", self.column, self.field.name())
    }
    fn result_fields(&self) -> Vec<FieldRef> {
        vec![Arc::clone(&self.field)]
    }
    fn create(&self) -> Box<dyn SlotAgg> {
        Box::new(CollectSet {
            column: self.column,
            item_type: self.item_type.clone(),
            field: Arc::clone(&self.field),
            converter: Arc::clone(&self.converter),
            hasher: RandomState::new(),
            sets: Vec::new(),
        })
    }
}

struct CollectSet {
    column: usize,
    item_type: DataType,
    field: FieldRef,
    converter: Arc<RowConverter>,
    hasher: RandomState,
    sets: Vec<Distinct>,
}

impl SlotAgg for CollectSet {
    fn ensure_slots(&mut self, n: usize) {
        if self.sets.len() < n {
            self.sets.resize_with(n, Distinct::default);
        }
    }
    fn update(&mut self, b: &BatchView<'_>, rows: &[u32], slots: &[u32], _: &mut BatchStore) -> Result<()> {
        let enc = encode(&self.converter, b.batch.column(self.column), rows)?;
        for (i, &s) in slots.iter().enumerate() {
            self.sets[s as usize].intern(enc.row(i).data(), &self.hasher)?;
        }
        Ok(())
    }
    fn merge(&mut self, target: u32, original: u32, _: &mut BatchStore) -> Result<()> {
        // Union, the target's values first (spec §8.2).
        let orig = std::mem::take(&mut self.sets[original as usize]);
        let t = &mut self.sets[target as usize];
        for i in 0..orig.len() {
            t.intern(orig.get(i), &self.hasher)?;
        }
        Ok(())
    }
    fn evaluate(&mut self, slots: &[u32], _: &mut BatchStore) -> Result<Vec<ArrayRef>> {
        let sets: Vec<Distinct> = slots.iter().map(|&s| std::mem::take(&mut self.sets[s as usize])).collect();
        let offsets = OffsetBuffer::from_lengths(sets.iter().map(Distinct::len));
        let values =
            decode(&self.converter, sets.iter().flat_map(|d| (0..d.len()).map(|i| d.get(i))), &self.item_type)?;
        let DataType::List(item) = self.field.data_type() else {
            return Err(WindrowError::Internal("set field is not a list".into()));
        };
        Ok(vec![Arc::new(ListArray::try_new(Arc::clone(item), offsets, values, None)?)])
    }
    /// `values`: each set's values in first-insertion order, decoded (Arrow's row format is
    /// not a stable encoding to save).
    fn snapshot(&mut self, slots: &[u32], _: &mut Vec<RowRef>) -> Result<Vec<(String, ArrayRef)>> {
        let sets: Vec<&Distinct> = slots.iter().map(|&s| &self.sets[s as usize]).collect();
        let values =
            decode(&self.converter, sets.iter().flat_map(|d| (0..d.len()).map(|i| d.get(i))), &self.item_type)?;
        Ok(vec![("values".into(), StateColumns::write_lists(sets.iter().map(|d| d.len()), values)?)])
    }
    /// Interning the values in their saved order keeps first-insertion order.
    fn restore(&mut self, slots: &[u32], state: &StateColumns<'_>, _: &RowMap, _: &mut BatchStore) -> Result<()> {
        for (i, &s) in slots.iter().enumerate() {
            let values = state.list_value("values", slots.len(), i, &self.item_type)?;
            let rows = self.converter.convert_columns(&[values])?;
            let set = &mut self.sets[s as usize];
            for r in rows.iter() {
                set.intern(r.data(), &self.hasher)?;
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// dict
// ---------------------------------------------------------------------------------------------

/// `collect_window(into = dict)`: `Map<K, V>` from a key column and a value column.
pub(crate) struct CollectDictFactory {
    key: usize,
    value: usize,
    key_type: DataType,
    value_type: DataType,
    field: FieldRef,
    key_converter: Arc<RowConverter>,
    value_converter: Arc<RowConverter>,
    /// The `errors` reason for a row whose key is null.
    null_key_reason: String,
}

impl CollectDictFactory {
    /// The result column is named after the value column; its entries are `keys` (non-null)
    /// and `values` (nullable), Arrow's usual names.
    ///
    /// # Errors
    /// A key or value column type without an equality encoding.
    pub fn bind(key: usize, value: usize, schema: &SchemaRef) -> Result<Self> {
        let (kf, vf) = (schema.field(key), schema.field(value));
        let (key_type, value_type) = (kf.data_type().clone(), vf.data_type().clone());
        let key_converter = converter_for("into dict (key)", kf.name(), &key_type, true)?;
        let value_converter = converter_for("into dict (value)", vf.name(), &value_type, false)?;
        let entries = Field::new(
            "entries",
            DataType::Struct(Fields::from(vec![
                Field::new("keys", key_type.clone(), false),
                Field::new("values", value_type.clone(), true),
            ])),
            false,
        );
        let field = Field::new(vf.name(), DataType::Map(Arc::new(entries), false), false);
        Ok(CollectDictFactory {
            key,
            value,
            key_type,
            value_type,
            field: Arc::new(field),
            key_converter,
            value_converter,
            null_key_reason: format!("null dict key column \"{}\"", kf.name()),
        })
    }
}

impl AggFactory for CollectDictFactory {
    fn describe(&self) -> String {
        format!("collect dict(column {} -> column {}) as {}", self.key, self.value, self.field.name())
    }
    fn result_fields(&self) -> Vec<FieldRef> {
        vec![Arc::clone(&self.field)]
    }
    fn create(&self) -> Box<dyn SlotAgg> {
        Box::new(CollectDict {
            key: self.key,
            value: self.value,
            key_type: self.key_type.clone(),
            value_type: self.value_type.clone(),
            field: Arc::clone(&self.field),
            key_converter: Arc::clone(&self.key_converter),
            value_converter: Arc::clone(&self.value_converter),
            hasher: RandomState::new(),
            dicts: Vec::new(),
        })
    }
    fn refused_nulls(&self) -> Option<(usize, String)> {
        // Map keys cannot be null (Arrow); such a row goes to `errors` instead of vanishing.
        Some((self.key, self.null_key_reason.clone()))
    }
}

/// One window's dict: keys in first-insertion order, and the current value of each.
#[derive(Default)]
struct DictSlot {
    keys: Distinct,
    values: Vec<Vec<u8>>,
}

impl DictSlot {
    /// `d[k] = v`: a new key goes last, an existing key keeps its place and takes the value.
    fn write(&mut self, k: &[u8], v: &[u8], hasher: &RandomState) -> Result<()> {
        let (pos, new) = self.keys.intern(k, hasher)?;
        if new {
            self.values.push(v.to_vec());
        } else {
            let cell = &mut self.values[pos];
            cell.clear();
            cell.extend_from_slice(v);
        }
        Ok(())
    }
}

struct CollectDict {
    key: usize,
    value: usize,
    key_type: DataType,
    value_type: DataType,
    field: FieldRef,
    key_converter: Arc<RowConverter>,
    value_converter: Arc<RowConverter>,
    hasher: RandomState,
    dicts: Vec<DictSlot>,
}

impl SlotAgg for CollectDict {
    fn ensure_slots(&mut self, n: usize) {
        if self.dicts.len() < n {
            self.dicts.resize_with(n, DictSlot::default);
        }
    }
    fn update(&mut self, b: &BatchView<'_>, rows: &[u32], slots: &[u32], _: &mut BatchStore) -> Result<()> {
        let key_col = b.batch.column(self.key);
        if let Some(nulls) = key_col.logical_nulls()
            && let Some(&r) = rows.iter().find(|&&r| nulls.is_null(r as usize))
        {
            // The operator routes these rows to `errors` before they reach a window.
            return Err(WindrowError::Internal(format!("null dict key reached the aggregator (row {r})")));
        }
        let keys = encode(&self.key_converter, key_col, rows)?;
        let values = encode(&self.value_converter, b.batch.column(self.value), rows)?;
        for (i, &s) in slots.iter().enumerate() {
            self.dicts[s as usize].write(keys.row(i).data(), values.row(i).data(), &self.hasher)?;
        }
        Ok(())
    }
    fn merge(&mut self, target: u32, original: u32, _: &mut BatchStore) -> Result<()> {
        // The original's entries override the target's; new keys follow the target's
        // (Python's `target.update(original)`, spec §8.2).
        let orig = std::mem::take(&mut self.dicts[original as usize]);
        let t = &mut self.dicts[target as usize];
        for (i, v) in orig.values.iter().enumerate() {
            t.write(orig.keys.get(i), v, &self.hasher)?;
        }
        Ok(())
    }
    fn evaluate(&mut self, slots: &[u32], _: &mut BatchStore) -> Result<Vec<ArrayRef>> {
        let dicts: Vec<DictSlot> = slots.iter().map(|&s| std::mem::take(&mut self.dicts[s as usize])).collect();
        let offsets = OffsetBuffer::from_lengths(dicts.iter().map(|d| d.keys.len()));
        let keys = decode(
            &self.key_converter,
            dicts.iter().flat_map(|d| (0..d.keys.len()).map(|i| d.keys.get(i))),
            &self.key_type,
        )?;
        let values = decode(
            &self.value_converter,
            dicts.iter().flat_map(|d| d.values.iter().map(Vec::as_slice)),
            &self.value_type,
        )?;
        let DataType::Map(entries_field, _) = self.field.data_type() else {
            return Err(WindrowError::Internal("dict field is not a map".into()));
        };
        let DataType::Struct(entry_fields) = entries_field.data_type() else {
            return Err(WindrowError::Internal("map entries are not a struct".into()));
        };
        let entries = StructArray::try_new(entry_fields.clone(), vec![keys, values], None)?;
        Ok(vec![Arc::new(MapArray::try_new(Arc::clone(entries_field), offsets, entries, None, false)?)])
    }
    /// `keys` and `values`: each dict's entries in first-insertion order of their keys,
    /// decoded (Arrow's row format is not a stable encoding to save).
    fn snapshot(&mut self, slots: &[u32], _: &mut Vec<RowRef>) -> Result<Vec<(String, ArrayRef)>> {
        let dicts: Vec<&DictSlot> = slots.iter().map(|&s| &self.dicts[s as usize]).collect();
        let keys = decode(
            &self.key_converter,
            dicts.iter().flat_map(|d| (0..d.keys.len()).map(|i| d.keys.get(i))),
            &self.key_type,
        )?;
        let values = decode(
            &self.value_converter,
            dicts.iter().flat_map(|d| d.values.iter().map(Vec::as_slice)),
            &self.value_type,
        )?;
        let lengths = || dicts.iter().map(|d| d.keys.len());
        Ok(vec![
            ("keys".into(), StateColumns::write_lists(lengths(), keys)?),
            ("values".into(), StateColumns::write_lists(lengths(), values)?),
        ])
    }
    /// Writing the entries in their saved order keeps first-insertion order.
    fn restore(&mut self, slots: &[u32], state: &StateColumns<'_>, _: &RowMap, _: &mut BatchStore) -> Result<()> {
        let n = slots.len();
        for (i, &s) in slots.iter().enumerate() {
            let keys = self.key_converter.convert_columns(&[state.list_value("keys", n, i, &self.key_type)?])?;
            let values =
                self.value_converter.convert_columns(&[state.list_value("values", n, i, &self.value_type)?])?;
            if keys.num_rows() != values.num_rows() {
                return Err(WindrowError::Data(format!(
                    "checkpoint state of a dict has {} keys and {} values",
                    keys.num_rows(),
                    values.num_rows()
                )));
            }
            let dict = &mut self.dicts[s as usize];
            for (k, v) in keys.iter().zip(values.iter()) {
                dict.write(k.data(), v.data(), &self.hasher)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::{AsArray, DictionaryArray, Float64Array, Int64Array, ListArray, RecordBatch, StringArray};
    use arrow::datatypes::{Float64Type, Int32Type, Int64Type, Schema};

    use super::*;

    fn batch(cols: Vec<(&str, ArrayRef)>) -> RecordBatch {
        let schema =
            Schema::new(cols.iter().map(|(n, a)| Field::new(*n, a.data_type().clone(), true)).collect::<Vec<_>>());
        RecordBatch::try_new(Arc::new(schema), cols.into_iter().map(|(_, a)| a).collect()).unwrap()
    }

    fn update(agg: &mut dyn SlotAgg, seq: u64, b: &RecordBatch, rows: &[u32], slots: &[u32]) {
        let mut store = BatchStore::default();
        agg.update(&BatchView { seq, batch: b }, rows, slots, &mut store).unwrap();
    }

    fn strings(a: &ArrayRef) -> Vec<Option<String>> {
        let a = cast(a, &DataType::Utf8).unwrap();
        a.as_string::<i32>().iter().map(|v| v.map(str::to_string)).collect()
    }

    fn list_strings(out: &ArrayRef) -> Vec<Vec<Option<String>>> {
        let l = out.as_list::<i32>();
        (0..l.len()).map(|i| strings(&l.value(i))).collect()
    }

    fn s(v: &str) -> Option<String> {
        Some(v.to_string())
    }

    #[test]
    fn set_keeps_first_occurrences_in_application_order_and_one_null() {
        let b = batch(vec![(
            "v",
            Arc::new(StringArray::from(vec![Some("b"), None, Some("a"), Some("b"), None, Some("c")])),
        )]);
        let f = CollectSetFactory::bind(0, &b.schema()).unwrap();
        let mut agg = f.create();
        agg.ensure_slots(2);
        // Slot 0 gets rows 0..6 in a scrambled application order; slot 1 rows 3 and 5.
        update(agg.as_mut(), 0, &b, &[5, 0, 1, 3, 2, 4, 3, 5], &[0, 0, 0, 0, 0, 0, 1, 1]);
        let out = agg.evaluate(&[0, 1], &mut BatchStore::default()).unwrap();
        assert_eq!(list_strings(&out[0]), vec![vec![s("c"), s("b"), None, s("a")], vec![s("b"), s("c")]]);
        // Evaluated slots are left empty.
        let again = agg.evaluate(&[0], &mut BatchStore::default()).unwrap();
        assert_eq!(list_strings(&again[0]), vec![Vec::<Option<String>>::new()]);
    }

    #[test]
    fn set_merge_is_union_target_first() {
        let b = batch(vec![("v", Arc::new(Int64Array::from(vec![1, 2, 3, 2, 4])) as ArrayRef)]);
        let mut agg = CollectSetFactory::bind(0, &b.schema()).unwrap().create();
        agg.ensure_slots(2);
        // target (slot 1): 3, 2; original (slot 0): 1, 2, 4.
        update(agg.as_mut(), 0, &b, &[0, 2, 1, 3, 4], &[0, 1, 0, 1, 0]);
        agg.merge(1, 0, &mut BatchStore::default()).unwrap();
        let out = agg.evaluate(&[1, 0], &mut BatchStore::default()).unwrap();
        let l = out[0].as_list::<i32>();
        assert_eq!(l.value(0).as_primitive::<Int64Type>().values().to_vec(), vec![3, 2, 1, 4]);
        assert_eq!(l.value(1).len(), 0, "the original is empty after the merge");
    }

    #[test]
    fn set_floats_use_the_total_order() {
        let b =
            batch(vec![("v", Arc::new(Float64Array::from(vec![0.0, -0.0, f64::NAN, 0.0, f64::NAN, 1.5])) as ArrayRef)]);
        let mut agg = CollectSetFactory::bind(0, &b.schema()).unwrap().create();
        agg.ensure_slots(1);
        update(agg.as_mut(), 0, &b, &[0, 1, 2, 3, 4, 5], &[0; 6]);
        let out = agg.evaluate(&[0], &mut BatchStore::default()).unwrap();
        let v = out[0].as_list::<i32>().value(0);
        let v: Vec<u64> = v.as_primitive::<Float64Type>().values().iter().map(|x| x.to_bits()).collect();
        assert_eq!(v, vec![0.0f64.to_bits(), (-0.0f64).to_bits(), f64::NAN.to_bits(), 1.5f64.to_bits()]);
    }

    #[test]
    fn set_of_dictionary_column_keeps_the_type_and_compares_values() {
        // Two batches with different dictionaries for the same strings.
        let d1 =
            DictionaryArray::<Int32Type>::try_new(vec![0, 1, 0].into(), Arc::new(StringArray::from(vec!["x", "y"])))
                .unwrap();
        let d2 = DictionaryArray::<Int32Type>::try_new(vec![0, 1].into(), Arc::new(StringArray::from(vec!["y", "z"])))
            .unwrap();
        let (b1, b2) = (batch(vec![("v", Arc::new(d1) as ArrayRef)]), batch(vec![("v", Arc::new(d2) as ArrayRef)]));
        let f = CollectSetFactory::bind(0, &b1.schema()).unwrap();
        let mut agg = f.create();
        agg.ensure_slots(1);
        update(agg.as_mut(), 0, &b1, &[0, 1, 2], &[0, 0, 0]);
        update(agg.as_mut(), 1, &b2, &[0, 1], &[0, 0]);
        let out = agg.evaluate(&[0], &mut BatchStore::default()).unwrap();
        assert_eq!(out[0].data_type(), f.result_fields()[0].data_type());
        assert_eq!(list_strings(&out[0]), vec![vec![s("x"), s("y"), s("z")]]);
    }

    #[test]
    fn nested_set_elements_and_dict_keys_are_rejected_naming_column_and_type() {
        let list = ListArray::from_iter_primitive::<Int64Type, _, _>(vec![Some(vec![Some(1)])]);
        let b = batch(vec![("tags", Arc::new(list) as ArrayRef), ("n", Arc::new(Int64Array::from(vec![1])))]);
        let err = CollectSetFactory::bind(0, &b.schema()).err().expect("a list column is refused").to_string();
        assert!(err.contains("\"tags\"") && err.contains("List("), "{err}");
        let err = CollectDictFactory::bind(0, 1, &b.schema()).err().expect("a list key is refused").to_string();
        assert!(err.contains("\"tags\"") && err.contains("dict"), "{err}");
        // A nested dict *value* is fine.
        assert!(CollectDictFactory::bind(1, 0, &b.schema()).is_ok());
    }

    fn map_entries(out: &ArrayRef) -> Vec<Vec<(Option<String>, Option<i64>)>> {
        let m = out.as_map();
        (0..m.len())
            .map(|i| {
                let e = m.value(i);
                let k = strings(e.column(0));
                let v = e.column(1).as_primitive::<Int64Type>();
                k.into_iter().zip(v.iter()).collect()
            })
            .collect()
    }

    #[test]
    fn dict_last_write_wins_keys_in_first_insertion_order() {
        let b = batch(vec![
            ("page", Arc::new(StringArray::from(vec!["home", "cart", "home", "faq", "cart"])) as ArrayRef),
            ("ms", Arc::new(Int64Array::from(vec![Some(1), Some(2), Some(3), Some(4), None]))),
        ]);
        let f = CollectDictFactory::bind(0, 1, &b.schema()).unwrap();
        assert_eq!(f.refused_nulls(), Some((0, "null dict key column \"page\"".to_string())));
        assert_eq!(f.result_fields()[0].name(), "ms");
        let mut agg = f.create();
        agg.ensure_slots(1);
        update(agg.as_mut(), 0, &b, &[0, 1, 2, 3, 4], &[0; 5]);
        let out = agg.evaluate(&[0], &mut BatchStore::default()).unwrap();
        // cart's last write is a null value: stored, not skipped.
        assert_eq!(map_entries(&out[0]), vec![vec![(s("home"), Some(3)), (s("cart"), None), (s("faq"), Some(4))]]);
    }

    #[test]
    fn dict_merge_original_overrides_target() {
        let b = batch(vec![
            ("page", Arc::new(StringArray::from(vec!["a", "b", "c", "b", "a"])) as ArrayRef),
            ("ms", Arc::new(Int64Array::from(vec![1, 2, 3, 4, 5]))),
        ]);
        let mut agg = CollectDictFactory::bind(0, 1, &b.schema()).unwrap().create();
        agg.ensure_slots(2);
        // target (slot 0): a=1, b=2; original (slot 1): c=3, b=4, a=5.
        update(agg.as_mut(), 0, &b, &[0, 1, 2, 3, 4], &[0, 0, 1, 1, 1]);
        agg.merge(0, 1, &mut BatchStore::default()).unwrap();
        let out = agg.evaluate(&[0, 1], &mut BatchStore::default()).unwrap();
        assert_eq!(map_entries(&out[0]), vec![vec![(s("a"), Some(5)), (s("b"), Some(4)), (s("c"), Some(3))], vec![]]);
    }

    #[test]
    fn dict_with_a_null_key_is_an_internal_error_not_a_silent_drop() {
        let b = batch(vec![
            ("page", Arc::new(StringArray::from(vec![Some("a"), None])) as ArrayRef),
            ("ms", Arc::new(Int64Array::from(vec![1, 2]))),
        ]);
        let mut agg = CollectDictFactory::bind(0, 1, &b.schema()).unwrap().create();
        agg.ensure_slots(1);
        let err = agg.update(&BatchView { seq: 0, batch: &b }, &[0, 1], &[0, 0], &mut BatchStore::default());
        assert!(err.is_err());
    }
}
