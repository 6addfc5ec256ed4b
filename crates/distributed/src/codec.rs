//! How Northstar's own plan parts travel between cluster processes; everything else is
//! Ballista's own codec.
//!
//! - Client to scheduler ([`NorthstarLogicalCodec`]): the `events` table's [`EventSnapshot`]
//!   provider, as its file list (JSON, after a tag), rebuilt on the scheduler with the schema
//!   the plan carries.
//! - Scheduler to executors ([`NorthstarPhysicalCodec`]): [`BucketAggregateExec`], as the
//!   grouped column and the `AggregateExec` it answers as (DataFusion's own encoding, after a
//!   tag), rebuilt over its decoded input.
//!
//! Functions need no encoding: plans name them, and every scheduler and executor registers
//! Northstar's functions under those names.

use std::sync::Arc;

use ballista_core::serde::{BallistaLogicalExtensionCodec, BallistaPhysicalExtensionCodec};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::TableProvider;
use datafusion::common::{internal_datafusion_err, Result, TableReference};
use datafusion::datasource::file_format::FileFormatFactory;
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{Extension, LogicalPlan};
use datafusion::physical_plan::aggregates::AggregateExec;
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::physical_plan::ExecutionPlan;
use datafusion_proto::bytes::{
    physical_plan_from_bytes_with_extension_codec, physical_plan_to_bytes_with_extension_codec,
};
use datafusion_proto::logical_plan::LogicalExtensionCodec;
use datafusion_proto::physical_plan::{PhysicalExtensionCodec, PhysicalProtoConverterExtension};
use northstar_execution::BucketAggregateExec;
use northstar_storage::{EventSnapshot, EventSnapshotSpec};

/// Marks an encoded [`EventSnapshot`]; other providers' bytes never start with it.
const TAG: &[u8] = b"northstar.events/1:";

#[derive(Debug, Default)]
pub struct NorthstarLogicalCodec {
    ballista: BallistaLogicalExtensionCodec,
}

impl LogicalExtensionCodec for NorthstarLogicalCodec {
    fn try_decode(&self, buf: &[u8], inputs: &[LogicalPlan], ctx: &TaskContext) -> Result<Extension> {
        self.ballista.try_decode(buf, inputs, ctx)
    }

    fn try_encode(&self, node: &Extension, buf: &mut Vec<u8>) -> Result<()> {
        self.ballista.try_encode(node, buf)
    }

    fn try_decode_table_provider(
        &self,
        buf: &[u8],
        table_ref: &TableReference,
        schema: SchemaRef,
        ctx: &TaskContext,
    ) -> Result<Arc<dyn TableProvider>> {
        match buf.strip_prefix(TAG) {
            Some(json) => {
                let spec: EventSnapshotSpec = serde_json::from_slice(json)
                    .map_err(|e| internal_datafusion_err!("cannot decode the file list of table {table_ref}: {e}"))?;
                Ok(Arc::new(EventSnapshot::try_new(spec, schema)?))
            }
            None => self.ballista.try_decode_table_provider(buf, table_ref, schema, ctx),
        }
    }

    fn try_encode_table_provider(
        &self,
        table_ref: &TableReference,
        node: Arc<dyn TableProvider>,
        buf: &mut Vec<u8>,
    ) -> Result<()> {
        match node.downcast_ref::<EventSnapshot>() {
            Some(events) => {
                buf.extend_from_slice(TAG);
                serde_json::to_writer(buf, events.spec())
                    .map_err(|e| internal_datafusion_err!("cannot encode the file list of table {table_ref}: {e}"))
            }
            None => self.ballista.try_encode_table_provider(table_ref, node, buf),
        }
    }

    fn try_decode_file_format(&self, buf: &[u8], ctx: &TaskContext) -> Result<Arc<dyn FileFormatFactory>> {
        self.ballista.try_decode_file_format(buf, ctx)
    }

    fn try_encode_file_format(&self, buf: &mut Vec<u8>, node: Arc<dyn FileFormatFactory>) -> Result<()> {
        self.ballista.try_encode_file_format(buf, node)
    }
}

/// Marks an encoded [`BucketAggregateExec`]; Ballista's protobuf never starts with it (`n` would
/// be field 13 of wire type 6, which does not exist).
const BUCKET_AGGREGATE_TAG: &[u8] = b"northstar.bucket_aggregate/1:";

#[derive(Debug, Default)]
pub struct NorthstarPhysicalCodec {
    ballista: BallistaPhysicalExtensionCodec,
}

impl PhysicalExtensionCodec for NorthstarPhysicalCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[Arc<dyn ExecutionPlan>],
        ctx: &TaskContext,
        proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let Some(rest) = buf.strip_prefix(BUCKET_AGGREGATE_TAG) else {
            return self.ballista.try_decode(buf, inputs, ctx, proto_converter);
        };
        let [input] = inputs else {
            return Err(internal_datafusion_err!("BucketAggregateExec has one input, got {}", inputs.len()));
        };
        let (key, aggregate) = rest
            .split_first_chunk::<4>()
            .ok_or_else(|| internal_datafusion_err!("a BucketAggregateExec without its grouped column"))?;
        let decoded = physical_plan_from_bytes_with_extension_codec(aggregate, ctx, self)?;
        let aggregate = decoded
            .downcast_ref::<AggregateExec>()
            .ok_or_else(|| internal_datafusion_err!("a BucketAggregateExec whose aggregate is a {}", decoded.name()))?;
        // Over a stand-in with the input's partition count, so that the operator reports
        // (and its stage runs) as many partitions as its input has.
        let partitions = input.properties().output_partitioning().partition_count();
        let stand_in = Arc::new(EmptyExec::new(aggregate.input_schema()).with_partitions(partitions));
        let aggregate = AggregateExec::try_new(
            *aggregate.mode(),
            aggregate.group_expr().clone(),
            aggregate.aggr_expr().to_vec(),
            aggregate.filter_expr().to_vec(),
            stand_in,
            aggregate.input_schema(),
        )?;
        BucketAggregateExec::try_new(&aggregate, u32::from_le_bytes(*key) as usize, input.clone())
            .map(|exec| Arc::new(exec) as Arc<dyn ExecutionPlan>)
            .ok_or_else(|| internal_datafusion_err!("a BucketAggregateExec whose aggregate it cannot run"))
    }

    fn try_encode(
        &self,
        node: Arc<dyn ExecutionPlan>,
        buf: &mut Vec<u8>,
        proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> Result<()> {
        let Some(exec) = node.downcast_ref::<BucketAggregateExec>() else {
            return self.ballista.try_encode(node, buf, proto_converter);
        };
        let key = u32::try_from(exec.key()).map_err(|_| internal_datafusion_err!("grouped column {}", exec.key()))?;
        let stand_in = Arc::new(EmptyExec::new(exec.aggregate_input_schema()));
        let aggregate =
            physical_plan_to_bytes_with_extension_codec(Arc::new(exec.replaced_aggregate(stand_in)?), self)?;
        buf.extend_from_slice(BUCKET_AGGREGATE_TAG);
        buf.extend_from_slice(&key.to_le_bytes());
        buf.extend_from_slice(&aggregate);
        Ok(())
    }
}
