//! `events` with `person_id`: the table provider that adds the person of each row's `user_id`,
//! resolved at scan time from the persons of the version being read. A query that does not
//! read `person_id` gets the plain scan, unchanged; one that does gets the scan of `user_id`
//! and a projection computing the person from it.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{
    Array, ArrayData, ArrayRef, AsArray, LargeStringArray, RecordBatch, StringArray, StringViewArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Int32Type, Schema, SchemaRef};
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::{plan_err, Result, ScalarValue};
use datafusion::datasource::TableType;
use datafusion::logical_expr::{ColumnarValue, Expr, TableProviderFilterPushDown};
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::ExecutionPlan;
use northstar_storage::columns::USER_ID;

use crate::resolve::Persons;

/// The column the provider adds.
pub const PERSON_ID: &str = "person_id";

#[derive(Debug)]
pub struct PersonEvents {
    inner: Arc<dyn TableProvider>,
    persons: Arc<Persons>,
    /// The inner table's columns, then `person_id`.
    schema: SchemaRef,
    user_id: usize,
}

impl PersonEvents {
    pub fn try_new(inner: Arc<dyn TableProvider>, persons: Arc<Persons>) -> Result<Self> {
        let inner_schema = inner.schema();
        let Ok(user_id) = inner_schema.index_of(USER_ID) else {
            return plan_err!("events has no {USER_ID} column to resolve persons from");
        };
        if inner_schema.index_of(PERSON_ID).is_ok() {
            return plan_err!("events has a column named {PERSON_ID} of its own; rename it to resolve persons");
        }
        let user_field = inner_schema.field(user_id);
        let mut fields: Vec<Field> = inner_schema.fields().iter().map(|f| f.as_ref().clone()).collect();
        fields.push(Field::new(PERSON_ID, user_field.data_type().clone(), user_field.is_nullable()));
        Ok(Self { inner, persons, schema: Arc::new(Schema::new(fields)), user_id })
    }

    pub fn persons(&self) -> &Arc<Persons> {
        &self.persons
    }

    fn person_column(&self) -> usize {
        self.schema.fields().len() - 1
    }
}

/// Whether `expr` reads `person_id`.
fn reads_person_id(expr: &Expr) -> bool {
    expr.column_refs().iter().any(|c| c.name == PERSON_ID)
}

#[async_trait]
impl TableProvider for PersonEvents {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        self.inner.table_type()
    }

    fn supports_filters_pushdown(&self, filters: &[&Expr]) -> Result<Vec<TableProviderFilterPushDown>> {
        let on_files: Vec<&Expr> = filters.iter().copied().filter(|f| !reads_person_id(f)).collect();
        let mut answers = self.inner.supports_filters_pushdown(&on_files)?.into_iter();
        Ok(filters
            .iter()
            .map(|f| match reads_person_id(f) {
                true => TableProviderFilterPushDown::Unsupported,
                false => answers.next().unwrap_or(TableProviderFilterPushDown::Unsupported),
            })
            .collect())
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let person = self.person_column();
        let wanted: Vec<usize> = projection.cloned().unwrap_or_else(|| (0..=person).collect());
        let filters: Vec<Expr> = filters.iter().filter(|f| !reads_person_id(f)).cloned().collect();
        if !wanted.contains(&person) {
            return self.inner.scan(state, Some(&wanted), &filters, limit).await;
        }
        let mut inner_columns: Vec<usize> = wanted.iter().copied().filter(|&c| c != person).collect();
        if !inner_columns.contains(&self.user_id) {
            inner_columns.push(self.user_id);
        }
        let scan = self.inner.scan(state, Some(&inner_columns), &filters, limit).await?;
        let at = |c: usize| inner_columns.iter().position(|&i| i == c).expect("scanned");
        let user_id: Arc<dyn PhysicalExpr> = Arc::new(Column::new(USER_ID, at(self.user_id)));
        let exprs = wanted
            .iter()
            .map(|&c| {
                let name = self.schema.field(c).name().clone();
                let expr: Arc<dyn PhysicalExpr> = match c == person {
                    true => Arc::new(PersonOf::new(user_id.clone(), self.persons.clone())),
                    false => Arc::new(Column::new(&name, at(c))),
                };
                (expr, name)
            })
            .collect::<Vec<_>>();
        Ok(Arc::new(ProjectionExec::try_new(exprs, scan)?))
    }
}

/// The person of each `user_id`.
#[derive(Debug)]
pub struct PersonOf {
    user_id: Arc<dyn PhysicalExpr>,
    persons: Arc<Persons>,
    dictionaries: MappedDictionaries,
}

/// The last dictionaries a [`PersonOf`] mapped, with their persons: the batches of a Parquet
/// column chunk share one dictionary, and handing out the same persons array for each lets
/// the user-bucket operator look its values up once per chunk, as it does for `user_id`.
/// Shared with the routing that reads the persons (`BucketRoutingExec`), which finds there
/// where each value's rows belong without looking any id up again.
#[derive(Debug, Clone, Default)]
pub struct MappedDictionaries(Arc<std::sync::Mutex<Vec<MappedDictionary>>>);

#[derive(Debug)]
struct MappedDictionary {
    ids: ArrayData,
    persons: ArrayRef,
    /// `persons`' data, kept to compare pointers with (made once, not per comparison).
    persons_data: ArrayData,
    /// Per value: the user bucket of the person of a merged id, else [`OWN_BUCKET`].
    buckets: Arc<[i32]>,
}

/// In [`MappedDictionaries::buckets_of`]: the id is its own person, so its rows are in the
/// bucket they were stored in.
pub const OWN_BUCKET: i32 = -1;

/// Dictionaries of recent column chunks kept mapped (a few per partition).
const MAPPED_DICTIONARIES: usize = 16;

impl MappedDictionaries {
    /// For `persons`, an array of persons this mapping handed out: per value, the user bucket
    /// of its person when the id was merged into another's, else [`OWN_BUCKET`]. `None` when
    /// the array is not (or no longer) among the mapped ones.
    pub fn buckets_of(&self, persons: &ArrayRef) -> Option<Arc<[i32]>> {
        let data = persons.to_data();
        let mapped = self.0.lock().expect("not poisoned");
        mapped.iter().rev().find(|m| m.persons_data.ptr_eq(&data)).map(|m| m.buckets.clone())
    }
}

impl PersonOf {
    fn new(user_id: Arc<dyn PhysicalExpr>, persons: Arc<Persons>) -> Self {
        PersonOf { user_id, persons, dictionaries: Default::default() }
    }

    /// The persons of `ids`, a dictionary array's values, mapped once per dictionary.
    fn dictionary_persons(&self, ids: &ArrayRef) -> Result<ArrayRef> {
        // The same dictionary is the same buffers (arrow's pointer equality), not equal text.
        let data = ids.to_data();
        let mut mapped = self.dictionaries.0.lock().expect("not poisoned");
        if let Some(known) = mapped.iter().find(|m| m.ids.ptr_eq(&data)) {
            return Ok(known.persons.clone());
        }
        let (persons, buckets) = persons_of(&self.persons, ids)?;
        if mapped.len() == MAPPED_DICTIONARIES {
            mapped.remove(0);
        }
        let persons_data = persons.to_data();
        mapped.push(MappedDictionary { ids: data, persons: persons.clone(), persons_data, buckets: buckets.into() });
        Ok(persons)
    }

    /// The dictionaries this expression mapped (see [`MappedDictionaries`]).
    pub fn mapped_dictionaries(&self) -> &MappedDictionaries {
        &self.dictionaries
    }

    /// The persons ids are resolved to.
    pub fn persons(&self) -> &Arc<Persons> {
        &self.persons
    }

    /// The `user_id` expression persons are resolved from.
    pub fn user_id(&self) -> &Arc<dyn PhysicalExpr> {
        &self.user_id
    }
}

impl PartialEq for PersonOf {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.persons, &other.persons) && self.user_id.as_ref() == other.user_id.as_ref()
    }
}

impl Eq for PersonOf {}

impl Hash for PersonOf {
    fn hash<H: Hasher>(&self, state: &mut H) {
        Arc::as_ptr(&self.persons).hash(state);
        self.user_id.hash(state);
    }
}

impl fmt::Display for PersonOf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "person_of({})", self.user_id)
    }
}

impl PhysicalExpr for PersonOf {
    fn data_type(&self, input_schema: &Schema) -> Result<DataType> {
        self.user_id.data_type(input_schema)
    }

    fn nullable(&self, input_schema: &Schema) -> Result<bool> {
        self.user_id.nullable(input_schema)
    }

    fn evaluate(&self, batch: &RecordBatch) -> Result<ColumnarValue> {
        Ok(match self.user_id.evaluate(batch)? {
            ColumnarValue::Array(ids) => match ids.as_dictionary_opt::<Int32Type>() {
                Some(dictionary) if !self.persons.is_trivial() => {
                    let persons = self.dictionary_persons(dictionary.values())?;
                    ColumnarValue::Array(Arc::new(dictionary.with_values(persons)))
                }
                _ => ColumnarValue::Array(persons_of(&self.persons, &ids)?.0),
            },
            ColumnarValue::Scalar(id) => ColumnarValue::Scalar(match id.try_as_str() {
                Some(Some(text)) => {
                    ScalarValue::Utf8(Some(self.persons.person_of(text).to_string())).cast_to(&id.data_type())?
                }
                _ => id,
            }),
        })
    }

    fn children(&self) -> Vec<&Arc<dyn PhysicalExpr>> {
        vec![&self.user_id]
    }

    fn with_new_children(self: Arc<Self>, children: Vec<Arc<dyn PhysicalExpr>>) -> Result<Arc<dyn PhysicalExpr>> {
        // The mapped dictionaries stay shared: DataFusion rewrites a scan's expressions for
        // each file it opens (column indexes), and the routing reads the buckets of what the
        // rewritten copies map (with a fresh cache it found none and looked every id up again).
        // Shared is safe: a dictionary's persons do not depend on which expression read it.
        Ok(Arc::new(PersonOf {
            user_id: children[0].clone(),
            persons: self.persons.clone(),
            dictionaries: self.dictionaries.clone(),
        }))
    }

    fn fmt_sql(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The person of every id in `ids` (the ids themselves when no id belongs to another person),
/// with the bucket of each value's person ([`MappedDictionaries::buckets_of`]).
fn persons_of(persons: &Persons, ids: &ArrayRef) -> Result<(ArrayRef, Vec<i32>)> {
    if persons.is_trivial() {
        return Ok((ids.clone(), vec![OWN_BUCKET; ids.len()]));
    }
    let mut buckets = Vec::with_capacity(ids.len());
    let mapped = match ids.data_type() {
        DataType::Utf8View => map_ids(persons, ids.as_string_view().iter(), &mut buckets),
        DataType::Utf8 => map_ids(persons, ids.as_string::<i32>().iter(), &mut buckets),
        DataType::LargeUtf8 => map_ids(persons, ids.as_string::<i64>().iter(), &mut buckets),
        other => return plan_err!("{USER_ID} must be text to resolve persons, not {other}"),
    };
    // Most ids of a chunk's dictionary are their own person: then the ids are the persons,
    // and no array is built.
    let Some(mapped) = mapped else { return Ok((ids.clone(), buckets)) };
    let persons: ArrayRef = match ids.data_type() {
        DataType::Utf8View => Arc::new(StringViewArray::from(mapped)),
        DataType::LargeUtf8 => Arc::new(LargeStringArray::from(mapped)),
        _ => Arc::new(StringArray::from(mapped)),
    };
    Ok((persons, buckets))
}

/// The person of each of `ids`, `None` when every id is its own; pushes each one's bucket to
/// `buckets` ([`OWN_BUCKET`] for an id that is its own person).
fn map_ids<'a>(
    persons: &'a Persons,
    ids: impl Iterator<Item = Option<&'a str>>,
    buckets: &mut Vec<i32>,
) -> Option<Vec<Option<&'a str>>> {
    let mut mapped: Vec<Option<&str>> = Vec::with_capacity(buckets.capacity());
    let mut changed = false;
    for id in ids {
        let person = id.and_then(|id| persons.person_of_merged_id(id));
        buckets.push(person.map_or(OWN_BUCKET, |(_, bucket)| bucket));
        changed |= person.is_some();
        mapped.push(person.map(|(person, _)| person).or(id));
    }
    changed.then_some(mapped)
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::DictionaryArray;

    use super::*;
    use crate::links::{Link, LinkKind};
    use crate::resolve::resolve;

    /// DataFusion rewrites a scan's expressions for each file it opens; the routing holds the
    /// mapped dictionaries of the expression it planned with, so a rewritten copy must fill the
    /// same ones (else every chunk's ids are looked up a second time by the routing).
    #[test]
    fn a_rewritten_person_of_maps_into_the_dictionaries_the_plan_holds() {
        let link = Link { time: 1, user: "u1".into(), other: Some("a1".into()), kind: LinkKind::Identify };
        let persons = Arc::new(resolve([&link]));
        let planned = Arc::new(PersonOf::new(Arc::new(Column::new(USER_ID, 0)), persons.clone()));
        let rewritten = planned.clone().with_new_children(vec![Arc::new(Column::new(USER_ID, 0))]).unwrap();
        let ids: DictionaryArray<Int32Type> = vec!["a1", "stranger", "a1"].into_iter().collect();
        let schema = Arc::new(Schema::new(vec![Field::new(USER_ID, ids.data_type().clone(), false)]));
        let batch = RecordBatch::try_new(schema, vec![Arc::new(ids)]).unwrap();
        let ColumnarValue::Array(mapped) = rewritten.evaluate(&batch).unwrap() else { panic!("an array") };
        let mapped = mapped.as_dictionary::<Int32Type>();
        let texts: Vec<&str> = mapped.downcast_dict::<StringArray>().unwrap().into_iter().flatten().collect();
        assert_eq!(texts, ["u1", "stranger", "u1"]);
        let buckets = planned.mapped_dictionaries().buckets_of(mapped.values()).expect("mapped by the copy");
        let a1 = mapped.values().as_string::<i32>().iter().position(|v| v == Some("u1")).unwrap();
        assert_eq!(buckets[a1], northstar_storage::user_bucket("u1"));
        let stranger = mapped.values().as_string::<i32>().iter().position(|v| v == Some("stranger")).unwrap();
        assert_eq!(buckets[stranger], OWN_BUCKET);
    }
}
