//! Reading the identity links out of data files: one scan of only the rows that can make a
//! link (a link event or call, or an anonymous or previous id beside the user id), each row
//! with the index of its file (a partition value of the scan), so each link is known with the
//! file it came from.

use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::Result;
use datafusion::execution::SessionState;
use datafusion::logical_expr::utils::disjunction;
use datafusion::logical_expr::{case, cast, ident, lit};
use datafusion::prelude::SessionContext;
use northstar_storage::columns::{EVENT, EVENT_TIME, PROPERTIES, USER_ID};
use northstar_storage::{DataFile, EventSnapshot, EventSnapshotSpec};

use crate::links::{link_of, Link, LinkColumns, LINK_CALLS, LINK_EVENTS};

/// The collector's columns (and any import's of the same names) that links are read from.
pub const MESSAGE_TYPE: &str = "message_type";
pub const ANONYMOUS_ID: &str = "anonymous_id";
pub const PREVIOUS_ID: &str = "previous_id";

/// The column that carries, on each row read for links, the index of its file: a partition
/// column of the scan, whose value each file gives (as Delta's partition values are given).
const FILE_INDEX: &str = "__northstar_file_index";

/// The links in `files` (of the table `spec` describes, whose query schema is `schema`), each
/// with the path of its file. One scan of all the files.
pub async fn links_in_files(
    state: &SessionState,
    spec: &EventSnapshotSpec,
    schema: &SchemaRef,
    files: Vec<DataFile>,
) -> Result<Vec<(Arc<str>, Link)>> {
    if files.is_empty() {
        return Ok(vec![]);
    }
    let paths: Vec<Arc<str>> = files.iter().map(|f| Arc::from(f.path.as_str())).collect();
    let mut partition_columns = spec.partition_columns.clone();
    partition_columns.push(FILE_INDEX.into());
    let files = files
        .into_iter()
        .enumerate()
        .map(|(i, mut file)| {
            file.partition_values.push(Some(i.to_string()));
            file
        })
        .collect();
    let spec = EventSnapshotSpec { files, partition_columns, ..spec.clone() };
    let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.push(Field::new(FILE_INDEX, DataType::Int32, false));
    let batches = link_rows(state, spec, &Arc::new(Schema::new(fields))).await?;
    Ok(batches
        .iter()
        .flat_map(|batch| {
            let files = batch.column(7).as_primitive::<datafusion::arrow::datatypes::Int32Type>();
            links_of_batch(batch).into_iter().map(|(row, link)| (paths[files.value(row) as usize].clone(), link))
        })
        .collect())
}

/// The rows that can make a link, as (time, user_id, event, message_type, anonymous_id,
/// previous_id, properties of PostHog's link events, file index).
async fn link_rows(state: &SessionState, spec: EventSnapshotSpec, schema: &SchemaRef) -> Result<Vec<RecordBatch>> {
    let has = |name: &str| schema.field_with_name(name).is_ok();
    let text = |name: &str| match has(name) {
        true => cast(ident(name), DataType::Utf8),
        false => lit(datafusion::common::ScalarValue::Utf8(None)),
    };
    let event = || ident(EVENT);
    let link_event = || event().in_list(LINK_EVENTS.iter().map(|e| lit(*e)).collect(), false);
    let mut can_link = vec![link_event()];
    if has(MESSAGE_TYPE) {
        can_link.push(ident(MESSAGE_TYPE).in_list(LINK_CALLS.iter().map(|c| lit(*c)).collect(), false));
    }
    if has(ANONYMOUS_ID) {
        can_link.push(ident(ANONYMOUS_ID).is_not_null().and(ident(ANONYMOUS_ID).not_eq(ident(USER_ID))));
    }
    if has(PREVIOUS_ID) {
        can_link.push(ident(PREVIOUS_ID).is_not_null());
    }
    // Properties are read only for PostHog's link events, whose other id may sit there
    // (`$anon_distinct_id`, `alias`) in imports of its exports.
    let properties = match has(PROPERTIES) {
        true => case(link_event()).when(lit(true), cast(ident(PROPERTIES), DataType::Utf8)).end()?,
        false => lit(datafusion::common::ScalarValue::Utf8(None)),
    };
    let provider = Arc::new(EventSnapshot::try_new(spec, schema.clone())?);
    let ctx = SessionContext::new_with_state(state.clone());
    ctx.read_table(provider)?
        .filter(disjunction(can_link).expect("at least the link events"))?
        .select(vec![
            cast(ident(EVENT_TIME), DataType::Int64).alias("time"),
            text(USER_ID).alias("user_id"),
            cast(event(), DataType::Utf8).alias("event"),
            text(MESSAGE_TYPE).alias("message_type"),
            text(ANONYMOUS_ID).alias("anonymous_id"),
            text(PREVIOUS_ID).alias("previous_id"),
            properties.alias("properties"),
            ident(FILE_INDEX),
        ])?
        .collect()
        .await
}

/// The links of `batch` (of [`link_rows`]), each with its row.
fn links_of_batch(batch: &RecordBatch) -> Vec<(usize, Link)> {
    let times = batch.column(0).as_primitive::<datafusion::arrow::datatypes::Int64Type>();
    let texts: Vec<_> = (1..7).map(|i| batch.column(i).as_string::<i32>()).collect();
    let value = |column: usize, row: usize| {
        let array = texts[column - 1];
        array.is_valid(row).then(|| array.value(row))
    };
    (0..batch.num_rows())
        .filter_map(|row| {
            let properties: Option<serde_json::Value> = value(6, row).and_then(|p| serde_json::from_str(p).ok());
            let property = |key: &str| properties.as_ref().and_then(|p| p.get(key)).and_then(|v| v.as_str());
            let link = link_of(LinkColumns {
                time: times.value(row),
                user_id: value(1, row)?,
                event: value(2, row).unwrap_or_default(),
                message_type: value(3, row),
                anonymous_id: value(4, row),
                previous_id: value(5, row),
                anon_property: property("$anon_distinct_id"),
                alias_property: property("alias"),
            });
            link.map(|link| (row, link))
        })
        .collect()
}
