//! The session's time zone (`SET TIME ZONE`, the `TimeZone` start-up parameter) in effect:
//! DataFusion is given it (`now()`, `::timestamptz`, `to_timestamp`, and the engine's
//! `SessionTimeZone` rule, which computes `date_trunc`, `extract`, `to_char` and casts in it),
//! and results show UTC timestamps in it, as PostgreSQL shows every `timestamptz` in the
//! session's zone. The instants do not change: the binary format sends the same microseconds.

use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::error::Result;
use datafusion::execution::{FunctionRegistry, SendableRecordBatchStream};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::StreamExt;
use northstar_functions::{is_utc_zone, time_zone_setting};
use pgwire::error::PgWireResult;

use crate::errors::{error, from_datafusion, INVALID_PARAMETER_VALUE};
use crate::session::Session;

impl Session {
    /// Gives the session's DataFusion options the `TimeZone` setting, when it changed, and
    /// rebuilds the functions that follow it, as DataFusion's own `SET` does.
    pub fn apply_time_zone(&self) -> PgWireResult<()> {
        let shown = self.settings.get("TimeZone").unwrap_or_default();
        let zone = time_zone_setting(&shown).map_err(|e| error(INVALID_PARAMETER_VALUE, e))?.arrow;
        let state = self.ctx.state_ref();
        let mut state = state.write();
        if state.config().options().execution.time_zone.as_deref() == Some(zone.as_str()) {
            return Ok(());
        }
        state.config_mut().options_mut().execution.time_zone = Some(zone);
        let options = state.config().options();
        let rebuilt: Vec<_> = state
            .scalar_functions()
            .values()
            .filter_map(|f| f.inner().with_updated_config(options).map(Arc::new))
            .collect();
        for function in rebuilt {
            state.register_udf(function).map_err(from_datafusion)?;
        }
        Ok(())
    }
}

/// `stream` with its UTC timestamps labelled with `zone` (the session's), so that they are
/// written as text in it; unchanged when the zone is UTC or no column is a UTC timestamp.
pub(crate) fn in_session_zone(stream: SendableRecordBatchStream, zone: Option<&str>) -> SendableRecordBatchStream {
    let Some(zone) = zone.filter(|zone| !is_utc_zone(zone)) else { return stream };
    let relabel = |data_type: &DataType| match data_type {
        DataType::Timestamp(unit, Some(from)) if is_utc_zone(from) => {
            Some(DataType::Timestamp(*unit, Some(zone.into())))
        }
        _ => None,
    };
    let schema = stream.schema();
    if !schema.fields().iter().any(|f| relabel(f.data_type()).is_some()) {
        return stream;
    }
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| match relabel(f.data_type()) {
            Some(to) => f.as_ref().clone().with_data_type(to),
            None => f.as_ref().clone(),
        })
        .collect();
    let zoned: SchemaRef = Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()));
    let target = zoned.clone();
    let batches = stream.map(move |batch| relabelled(batch?, &target));
    Box::pin(RecordBatchStreamAdapter::new(zoned, batches))
}

/// `batch` in `schema`'s types: Arrow's cast between two zones changes the label only.
fn relabelled(batch: RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
    let columns =
        batch
            .columns()
            .iter()
            .zip(schema.fields())
            .map(|(column, field)| {
                if column.data_type() == field.data_type() {
                    Ok(column.clone())
                } else {
                    cast(column, field.data_type())
                }
            })
            .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}
