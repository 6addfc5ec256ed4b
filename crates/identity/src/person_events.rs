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
    /// The last dictionaries mapped, with their persons: the batches of a Parquet column chunk
    /// share one dictionary, and handing out the same persons array for each lets the
    /// user-bucket operator look its values up once per chunk, as it does for `user_id`.
    dictionaries: std::sync::Mutex<Vec<(ArrayData, ArrayRef)>>,
}

/// Dictionaries of recent column chunks kept mapped (a few per partition).
const MAPPED_DICTIONARIES: usize = 16;

impl PersonOf {
    fn new(user_id: Arc<dyn PhysicalExpr>, persons: Arc<Persons>) -> Self {
        PersonOf { user_id, persons, dictionaries: Default::default() }
    }

    /// The persons of `ids`, a dictionary array's values, mapped once per dictionary.
    fn dictionary_persons(&self, ids: &ArrayRef) -> Result<ArrayRef> {
        // The same dictionary is the same buffers (arrow's pointer equality), not equal text.
        let data = ids.to_data();
        let mut mapped = self.dictionaries.lock().expect("not poisoned");
        if let Some((_, persons)) = mapped.iter().find(|(known, _)| known.ptr_eq(&data)) {
            return Ok(persons.clone());
        }
        let persons = persons_of(&self.persons, ids)?;
        if mapped.len() == MAPPED_DICTIONARIES {
            mapped.remove(0);
        }
        mapped.push((data, persons.clone()));
        Ok(persons)
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
                _ => ColumnarValue::Array(persons_of(&self.persons, &ids)?),
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
        Ok(Arc::new(PersonOf::new(children[0].clone(), self.persons.clone())))
    }

    fn fmt_sql(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The person of every id in `ids`; the ids themselves when no id belongs to another person.
fn persons_of(persons: &Persons, ids: &ArrayRef) -> Result<ArrayRef> {
    if persons.is_trivial() {
        return Ok(ids.clone());
    }
    Ok(match ids.data_type() {
        DataType::Utf8View => Arc::new(
            ids.as_string_view().iter().map(|id| id.map(|id| persons.person_of(id))).collect::<StringViewArray>(),
        ),
        DataType::Utf8 => {
            // Most ids of a chunk's dictionary are their own person: then the ids are the
            // persons, and no array is built.
            let strings = ids.as_string::<i32>();
            let persons: Vec<Option<&str>> = strings.iter().map(|id| id.map(|id| persons.person_of(id))).collect();
            let unchanged = persons.iter().zip(strings.iter()).all(|(p, id)| match (p, id) {
                (Some(p), Some(id)) => *p == id,
                (p, id) => p.is_none() && id.is_none(),
            });
            if unchanged {
                return Ok(ids.clone());
            }
            Arc::new(StringArray::from(persons))
        }
        DataType::LargeUtf8 => Arc::new(
            ids.as_string::<i64>().iter().map(|id| id.map(|id| persons.person_of(id))).collect::<LargeStringArray>(),
        ),
        other => return plan_err!("{USER_ID} must be text to resolve persons, not {other}"),
    })
}
