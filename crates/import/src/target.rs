//! The schema an import writes: the core columns, the table's existing columns, and new
//! columns found in the inputs.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

use crate::convert::Kind;
use crate::ImportError;

#[derive(Debug)]
pub struct TargetSchema {
    pub schema: SchemaRef,
    pub kinds: Vec<Kind>,
    index: HashMap<String, usize>,
}

pub const EVENT_TIME_IDX: usize = 0;
pub const USER_ID_IDX: usize = 1;
pub const EVENT_IDX: usize = 2;
pub const PROPERTIES_IDX: usize = 4;
pub const EVENT_DATE_IDX: usize = 5;

impl TargetSchema {
    /// `existing`: the table's schema, if it exists. `new_columns`: columns the inputs bring,
    /// in first-seen order, with their types. Existing columns keep their types: inputs are
    /// converted to them.
    pub fn build(existing: Option<&Schema>, new_columns: &[(String, DataType)]) -> Result<Self, ImportError> {
        let mut fields = northstar_storage::write_fields(existing);
        for (name, data_type) in new_columns {
            if !fields.iter().any(|f| f.name() == name) {
                fields.push(Field::new(name, data_type.clone(), true));
            }
        }
        let index = fields.iter().enumerate().map(|(i, f)| (f.name().clone(), i)).collect();
        let kinds = fields.iter().map(|f| Kind::of(f.data_type())).collect();
        Ok(Self { schema: Arc::new(Schema::new(fields)), kinds, index })
    }

    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }

    pub fn len(&self) -> usize {
        self.kinds.len()
    }
}

/// The type a new column gets in the table. Delta has no unsigned integers and one string
/// type; timestamps are stored in microseconds, UTC.
pub fn delta_compatible(data_type: &DataType) -> DataType {
    match data_type {
        DataType::Utf8View | DataType::LargeUtf8 => DataType::Utf8,
        DataType::Dictionary(_, value) => delta_compatible(value),
        DataType::UInt8 | DataType::UInt16 => DataType::Int32,
        DataType::UInt32 | DataType::UInt64 => DataType::Int64,
        DataType::Float16 => DataType::Float32,
        DataType::Timestamp(_, _) => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        DataType::Date64 => DataType::Date32,
        DataType::BinaryView | DataType::LargeBinary => DataType::Binary,
        other => other.clone(),
    }
}
