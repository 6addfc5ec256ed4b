//! How Northstar's `events` table travels from the client to Ballista's scheduler: the
//! [`EventSnapshot`] provider is encoded as its file list (JSON, after a tag) and rebuilt on the
//! scheduler with the schema the plan carries. Everything else is Ballista's own codec.
//!
//! Functions need no encoding: plans name them, and every scheduler and executor registers
//! Northstar's functions under those names.

use std::sync::Arc;

use ballista_core::serde::BallistaLogicalExtensionCodec;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::TableProvider;
use datafusion::common::{internal_datafusion_err, Result, TableReference};
use datafusion::datasource::file_format::FileFormatFactory;
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{Extension, LogicalPlan};
use datafusion_proto::logical_plan::LogicalExtensionCodec;
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
