//! Received events as one Arrow batch in the table's write schema: the core columns, the
//! table's other columns (NULL unless they are the collector's), and the collector's columns
//! the table does not have yet (the append adds them to the table schema in its commit).

use std::sync::Arc;

use datafusion::arrow::array::{
    new_null_array, ArrayRef, Date32Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::error::ArrowError;
use northstar_storage::columns::{EVENT, EVENT_DATE, EVENT_TIME, PROPERTIES, SESSION_ID, USER_ID};
use northstar_storage::{event_date_from_micros, event_time_type};

use crate::message::{EventRow, IP, RECEIVED_AT, TEXT_COLUMNS};

/// `table` (the store's write schema) with the collector's columns it lacks appended.
/// Fails, naming the column, when the table holds one of them with another type.
pub fn write_schema(table: &Schema) -> Result<SchemaRef, String> {
    let mut fields: Vec<Field> = table.fields().iter().map(|f| f.as_ref().clone()).collect();
    let wanted = TEXT_COLUMNS
        .iter()
        .map(|(name, _)| (*name, DataType::Utf8))
        .chain([(IP, DataType::Utf8), (RECEIVED_AT, event_time_type())]);
    for (name, data_type) in wanted {
        match table.field_with_name(name) {
            Ok(field) if field.data_type() == &data_type => {}
            Ok(field) => {
                return Err(format!(
                    "the events table's column {name} is {}, but the collector writes {data_type} to it; \
                     rename that column or use another data location",
                    field.data_type()
                ))
            }
            Err(_) => fields.push(Field::new(name, data_type, true)),
        }
    }
    Ok(Arc::new(Schema::new(fields)))
}

pub fn to_batch(schema: &SchemaRef, rows: &[&EventRow]) -> Result<RecordBatch, ArrowError> {
    let text = |get: &dyn Fn(&EventRow) -> Option<&str>| -> ArrayRef {
        Arc::new(rows.iter().map(|r| get(r)).collect::<StringArray>())
    };
    let columns = schema
        .fields()
        .iter()
        .map(|field| -> ArrayRef {
            let name = field.name().as_str();
            match name {
                EVENT_TIME => Arc::new(
                    TimestampMicrosecondArray::from_iter_values(rows.iter().map(|r| r.event_time)).with_timezone("UTC"),
                ),
                EVENT_DATE => {
                    Arc::new(Date32Array::from_iter_values(rows.iter().map(|r| event_date_from_micros(r.event_time))))
                }
                RECEIVED_AT => Arc::new(
                    TimestampMicrosecondArray::from_iter_values(rows.iter().map(|r| r.received_at))
                        .with_timezone("UTC"),
                ),
                USER_ID => text(&|r| Some(r.user_id.as_str())),
                EVENT => text(&|r| Some(r.event.as_str())),
                SESSION_ID => text(&|r| r.session_id.as_deref()),
                PROPERTIES => text(&|r| r.properties.as_deref()),
                IP => text(&|r| r.ip.as_deref()),
                _ => match TEXT_COLUMNS.iter().find(|(column, _)| *column == name) {
                    Some((_, get)) => text(get),
                    None => new_null_array(field.data_type(), rows.len()),
                },
            }
        })
        .collect();
    RecordBatch::try_new(schema.clone(), columns)
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::AsArray;

    use super::*;

    #[test]
    fn rows_fill_their_columns_and_other_columns_are_null() {
        let mut table: Vec<Field> = northstar_storage::write_fields(None);
        table.push(Field::new("platform", DataType::Utf8, true));
        table.push(Field::new("price", DataType::Int64, true));
        let schema = write_schema(&Schema::new(table)).unwrap();
        let row = EventRow {
            event_time: 86_400_000_001,
            user_id: "u".into(),
            event: "e".into(),
            message_id: "m".into(),
            message_type: "track",
            utm_source: Some("ads".into()),
            received_at: 5,
            ..Default::default()
        };
        let batch = to_batch(&schema, &[&row, &row]).unwrap();
        assert_eq!(batch.num_rows(), 2);
        let column = |name: &str| batch.column_by_name(name).unwrap().clone();
        assert_eq!(column("event_date").as_primitive::<datafusion::arrow::datatypes::Date32Type>().value(0), 1);
        assert_eq!(column("utm_source").as_string::<i32>().value(1), "ads");
        assert_eq!(column("message_type").as_string::<i32>().value(0), "track");
        assert_eq!(column("price").null_count(), 2);
        assert_eq!(column("price").data_type(), &DataType::Int64);
        assert_eq!(column("platform").null_count(), 2);
        assert_eq!(column("received_at").data_type(), &event_time_type());

        let clash = Schema::new(vec![Field::new("url", DataType::Int64, true)]);
        assert!(write_schema(&clash).unwrap_err().contains("column url is Int64"));
    }
}
