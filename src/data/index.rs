//! Secondary indexes: one table per (collection, field path) mapping
//! `sort_key(value) ++ document id` to the document id.
//!
//! Indexes only ever *narrow* the candidates of a query: every candidate is re-tested against
//! the whole filter, so an index can never change a query's answer, only its speed.

use std::ops::ControlFlow;

use redb::{ReadableTable, WriteTransaction};
use serde_json::{Map, Value};

use crate::data::query::{Compiler, FieldRef, Op, Row, RowData, RowId, Test};
use crate::data::values::{self, JsonType};
use crate::error::{Error, Result};
use crate::store::changes::DocsWriter;
use crate::store::schema::{self, DocRecord, IndexTable};

/// A compiled index: its path, the table name and how to read its value from a document.
#[derive(Debug, Clone)]
pub(crate) struct IndexDef {
    pub(crate) path: String,
    pub(crate) table: String,
    field: FieldRef,
    slots: Vec<String>,
}

impl IndexDef {
    pub(crate) fn new(collection: &str, path: &str) -> Result<IndexDef> {
        let mut compiler = Compiler::default();
        let field = compiler.field(path)?;
        Ok(IndexDef {
            path: path.to_owned(),
            table: schema::index_table_name(collection, path),
            field,
            slots: compiler.into_slots(),
        })
    }

    /// The index key of a document: `sort_key(value at path) ++ id`.
    pub(crate) fn key(
        &self,
        id: &str,
        created_at: i64,
        updated_at: i64,
        data: &Map<String, Value>,
    ) -> Vec<u8> {
        let row = Row {
            id: RowId::Str(id),
            created_at,
            updated_at,
            data: RowData::Full(data, &self.slots),
        };
        let mut key = values::sort_key(row.resolve(&self.field).as_deref());
        key.extend_from_slice(id.as_bytes());
        key
    }
}

/// Creates the (empty) table of an index.
pub(crate) fn create(txn: &WriteTransaction, collection: &str, path: &str) -> Result<()> {
    txn.open_table(IndexTable::new(&schema::index_table_name(collection, path)))?;
    Ok(())
}

/// Deletes the table of an index.
pub(crate) fn drop(txn: &WriteTransaction, collection: &str, path: &str) -> Result<()> {
    txn.delete_table(IndexTable::new(&schema::index_table_name(collection, path)))?;
    Ok(())
}

/// Fills a new index from the collection's documents.
pub(crate) fn backfill(txn: &WriteTransaction, collection: &str, path: &str) -> Result<()> {
    let def = IndexDef::new(collection, path)?;
    let docs = DocsWriter::open(txn, collection)?;
    let mut index = txn.open_table(IndexTable::new(&def.table))?;
    for entry in docs.iter()? {
        let (id, bytes) = entry?;
        let record = DocRecord::decode(bytes.value())?;
        let data: Map<String, Value> =
            serde_json::from_slice(record.json).map_err(Error::internal)?;
        let id = id.value();
        index.insert(
            def.key(id, record.created_at, record.updated_at, &data)
                .as_slice(),
            id,
        )?;
    }
    Ok(())
}

/// A plan to read candidates from one index: byte ranges `[start, end)`, sorted and disjoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IndexScan {
    pub(crate) index: usize,
    pub(crate) ranges: Vec<(Vec<u8>, Vec<u8>)>,
}

/// Picks an index that narrows `test`: an `eq`/`in`/`is null` conjunct on an indexed field
/// (preferred), or the range conjuncts on one indexed field, intersected per JSON type.
pub(crate) fn choose(
    test: &Test,
    indexes: &[IndexDef],
    field_path: impl Fn(&FieldRef) -> String,
) -> Option<IndexScan> {
    let mut conjuncts = Vec::new();
    flatten_and(test, &mut conjuncts);
    let indexed = |field: &FieldRef| {
        let path = field_path(field);
        indexes.iter().position(|def| def.path == path)
    };

    for conjunct in &conjuncts {
        let (index, ranges) = match conjunct {
            Test::Compare(field, Op::Eq, value) => {
                (indexed(field), equal_ranges(std::slice::from_ref(value)))
            }
            Test::In(field, values) => {
                // An index keys an array by the whole array: every array is a candidate, and
                // the filter then checks its elements.
                let mut ranges = equal_ranges(values);
                let (array, after) = JsonType::Array.tag_range();
                ranges.push((vec![array], vec![after]));
                (indexed(field), ranges)
            }
            Test::IsNull(field) => (indexed(field), vec![(vec![0x00], vec![0x02])]),
            _ => continue,
        };
        if let Some(index) = index {
            return Some(IndexScan {
                index,
                ranges: merge(ranges),
            });
        }
    }

    for (index, def) in indexes.iter().enumerate() {
        let bounds: Vec<(Op, &Value)> = conjuncts
            .iter()
            .filter_map(|c| match c {
                Test::Compare(field, op @ (Op::Gt | Op::Gte | Op::Lt | Op::Lte), value)
                    if field_path(field) == def.path =>
                {
                    Some((*op, value))
                }
                _ => None,
            })
            .collect();
        if bounds.is_empty() {
            continue;
        }
        let mut ranges = Vec::new();
        'types: for json_type in JsonType::ALL {
            let (tag_start, tag_end) = json_type.tag_range();
            let mut start = vec![tag_start];
            let mut end = vec![tag_end];
            for (op, value) in &bounds {
                let Some(coerced) = values::coerce(value, json_type) else {
                    continue 'types;
                };
                let key = values::sort_key(Some(&coerced));
                // Bounds are inclusive of equal keys: numbers that differ beyond f64 precision
                // share a key, and the re-test decides.
                match op {
                    Op::Gt | Op::Gte => start = start.max(key),
                    _ => {
                        let upper = values::prefix_successor(&key).unwrap_or_else(|| vec![tag_end]);
                        end = end.min(upper);
                    }
                }
            }
            if start < end {
                ranges.push((start, end));
            }
        }
        return Some(IndexScan {
            index,
            ranges: merge(ranges),
        });
    }
    None
}

fn flatten_and<'t>(test: &'t Test, out: &mut Vec<&'t Test>) {
    match test {
        Test::And(all) => all.iter().for_each(|t| flatten_and(t, out)),
        other => out.push(other),
    }
}

/// The key ranges holding values typed-equal to any of `values`.
fn equal_ranges(values: &[Value]) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut ranges = Vec::new();
    for value in values {
        for json_type in JsonType::ALL {
            if let Some(coerced) = values::coerce(value, json_type) {
                let key = values::sort_key(Some(&coerced));
                let end =
                    values::prefix_successor(&key).unwrap_or_else(|| vec![0xFF; key.len() + 1]);
                ranges.push((key, end));
            }
        }
    }
    ranges
}

/// Sorts ranges and merges the overlapping ones.
fn merge(mut ranges: Vec<(Vec<u8>, Vec<u8>)>) -> Vec<(Vec<u8>, Vec<u8>)> {
    ranges.sort();
    let mut merged: Vec<(Vec<u8>, Vec<u8>)> = Vec::with_capacity(ranges.len());
    for (start, end) in ranges {
        match merged.last_mut() {
            Some(last) if start <= last.1 => {
                if end > last.1 {
                    last.1 = end;
                }
            }
            _ => merged.push((start, end)),
        }
    }
    merged
}

/// Visits the ids in the given ranges of an index, in key order.
pub(crate) fn visit_ranges<T>(
    table: &T,
    ranges: &[(Vec<u8>, Vec<u8>)],
    mut visit: impl FnMut(&str) -> Result<ControlFlow<()>>,
) -> Result<()>
where
    T: ReadableTable<&'static [u8], &'static str>,
{
    for (start, end) in ranges {
        for entry in table.range::<&[u8]>(start.as_slice()..end.as_slice())? {
            let (_, id) = entry?;
            if visit(id.value())?.is_break() {
                return Ok(());
            }
        }
    }
    Ok(())
}

/// Visits every id of an index in key order, or in reverse.
pub(crate) fn visit_all<T>(
    table: &T,
    descending: bool,
    mut visit: impl FnMut(&str) -> Result<ControlFlow<()>>,
) -> Result<()>
where
    T: ReadableTable<&'static [u8], &'static str>,
{
    let mut step = |entry: std::result::Result<
        (
            redb::AccessGuard<'_, &'static [u8]>,
            redb::AccessGuard<'_, &'static str>,
        ),
        redb::StorageError,
    >|
     -> Result<ControlFlow<()>> {
        let (_, id) = entry?;
        visit(id.value())
    };
    if descending {
        for entry in table.iter()?.rev() {
            if step(entry)?.is_break() {
                break;
            }
        }
    } else {
        for entry in table.iter()? {
            if step(entry)?.is_break() {
                break;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_joins_overlaps_and_keeps_gaps() {
        let r = |a: u8, b: u8| (vec![a], vec![b]);
        assert_eq!(
            merge(vec![r(5, 7), r(1, 3), r(2, 4), r(7, 8)]),
            vec![r(1, 4), r(5, 8)]
        );
    }
}
