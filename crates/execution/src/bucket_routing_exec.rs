//! `BucketRoutingExec`: moves each row to the partition of its key's user bucket, where most
//! rows already are — `GROUP BY person_id` over the user buckets (issue 20).
//!
//! Why not DataFusion's `RepartitionExec`: it hashes every row's key and copies every row
//! into a new batch. Grouped by person, a row is already in its person's bucket unless its
//! id was merged into a person whose id hashes to another bucket (an anonymous device of a
//! user who signed in); only those rows move here, the rest pass through as they were read,
//! dictionary and all, so the user-bucket operator groups them as it groups `user_id`.
//!
//! Each output partition drives its own input partition: rows for it are returned at once,
//! rows for another partition are sent to that partition's channel. A partition's output ends
//! when its input is done and every other input is done (all senders to it dropped). Only
//! moved rows wait in channels, and each partition takes from its channel before reading on.

use std::fmt;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch, UInt32Array};
use datafusion::arrow::compute::take_record_batch;
use datafusion::arrow::datatypes::{DataType, Int32Type, SchemaRef};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{exec_err, Result};
use datafusion::execution::{RecordBatchStream, SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties, Partitioning, PlanProperties,
};
use futures::{Stream, StreamExt};
use northstar_storage::user_bucket;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

type Sender = UnboundedSender<Result<RecordBatch>>;
type Receiver = UnboundedReceiver<Result<RecordBatch>>;

/// Rows of `input` in the partition `user_bucket(key) % partitions`, `partitions` being the
/// input's partition count.
#[derive(Debug)]
pub struct BucketRoutingExec {
    input: Arc<dyn ExecutionPlan>,
    key: usize,
    properties: Arc<PlanProperties>,
    /// The channels of the current execution, shared by the copies of this node that
    /// `replace_children` makes (the user-bucket operator rebuilds its input per partition).
    routes: Arc<Mutex<Routes>>,
}

/// Per partition: the senders its input's rows go out by (one per partition), and the
/// receiver of the rows sent to it. Taken by the partition's `execute`.
#[derive(Debug, Default)]
struct Routes {
    senders: Vec<Option<Vec<Sender>>>,
    receivers: Vec<Option<Receiver>>,
}

impl Routes {
    fn new(partitions: usize) -> Self {
        let (senders, receivers): (Vec<Sender>, Vec<Receiver>) = (0..partitions).map(|_| unbounded_channel()).unzip();
        Routes {
            senders: (0..partitions).map(|_| Some(senders.clone())).collect(),
            receivers: receivers.into_iter().map(Some).collect(),
        }
    }
}

impl BucketRoutingExec {
    pub fn new(input: Arc<dyn ExecutionPlan>, key: usize) -> Self {
        let partitions = input.output_partitioning().partition_count();
        let properties = PlanProperties::new(
            input.equivalence_properties().clone(),
            Partitioning::UnknownPartitioning(partitions),
            EmissionType::Incremental,
            Boundedness::Bounded,
        );
        Self { input, key, properties: Arc::new(properties), routes: Default::default() }
    }

    fn partitions(&self) -> usize {
        self.properties.partitioning.partition_count()
    }

    /// The senders and receiver of `partition` for this execution; a partition taken already
    /// starts a new execution.
    fn take_routes(&self, partition: usize) -> (Vec<Sender>, Receiver) {
        let mut routes = self.routes.lock().expect("not poisoned");
        if routes.receivers.get(partition).is_none_or(Option::is_none) {
            *routes = Routes::new(self.partitions());
        }
        let receiver = routes.receivers[partition].take().expect("just made");
        let senders = routes.senders[partition].take().unwrap_or_default();
        (senders, receiver)
    }
}

impl DisplayAs for BucketRoutingExec {
    fn fmt_as(&self, _format: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "BucketRoutingExec: key={}, partitions={}", self.schema().field(self.key).name(), self.partitions())
    }
}

impl ExecutionPlan for BucketRoutingExec {
    fn name(&self) -> &'static str {
        "BucketRoutingExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        f(&(Arc::new(Column::new(self.schema().field(self.key).name(), self.key)) as Arc<dyn PhysicalExpr>))
    }

    fn with_new_children(self: Arc<Self>, mut children: Vec<Arc<dyn ExecutionPlan>>) -> Result<Arc<dyn ExecutionPlan>> {
        if children.len() != 1 {
            return exec_err!("BucketRoutingExec takes one input, got {}", children.len());
        }
        let input = children.swap_remove(0);
        if input.output_partitioning().partition_count() != self.partitions() {
            return Ok(Arc::new(Self::new(input, self.key)));
        }
        Ok(Arc::new(Self { input, key: self.key, properties: self.properties.clone(), routes: self.routes.clone() }))
    }

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        let input = self.input.execute(partition, context)?;
        let (senders, receiver) = self.take_routes(partition);
        Ok(Box::pin(RoutedStream {
            schema: self.schema(),
            input: Some(input),
            senders,
            receiver,
            partition,
            key: self.key,
        }))
    }
}

struct RoutedStream {
    schema: SchemaRef,
    /// `None` once the input is done.
    input: Option<SendableRecordBatchStream>,
    /// To every partition, this one included (kept so that this partition's channel stays
    /// open while its own input runs); dropped when the input is done.
    senders: Vec<Sender>,
    receiver: Receiver,
    partition: usize,
    key: usize,
}

impl RoutedStream {
    /// Sends `batch`'s rows of other partitions to them; its rows of this one, if any.
    fn route(&self, batch: RecordBatch) -> Result<Option<RecordBatch>> {
        let partitions = self.senders.len();
        let targets = targets(batch.column(self.key), partitions)?;
        if targets.iter().all(|&t| t as usize == self.partition) {
            return Ok(Some(batch));
        }
        let mut rows: Vec<Vec<u32>> = vec![vec![]; partitions];
        for (row, &target) in targets.iter().enumerate() {
            rows[target as usize].push(row as u32);
        }
        let mut own = None;
        for (target, rows) in rows.into_iter().enumerate() {
            if rows.is_empty() {
                continue;
            }
            let part = take_record_batch(&batch, &UInt32Array::from(rows))?;
            if target == self.partition {
                own = Some(part);
            } else {
                // A closed channel: that partition's consumer stopped reading; nothing waits.
                let _ = self.senders[target].send(Ok(part));
            }
        }
        Ok(own)
    }
}

/// The partition of each row's key: its user bucket modulo `partitions`. A dictionary's
/// values are hashed once each.
fn targets(keys: &ArrayRef, partitions: usize) -> Result<Vec<u8>> {
    let of = |id: &str| (user_bucket(id) as usize % partitions) as u8;
    let per_row = |ids: &mut dyn Iterator<Item = Option<&str>>| ids.map(|id| id.map_or(0, of)).collect();
    Ok(match keys.data_type() {
        DataType::Dictionary(_, _) => {
            let Some(dictionary) = keys.as_dictionary_opt::<Int32Type>() else {
                return exec_err!("BucketRoutingExec: a dictionary key must have Int32 keys");
            };
            let values: Vec<u8> = targets(dictionary.values(), partitions)?;
            let nulls = dictionary.keys().nulls();
            let keys = dictionary.keys().values();
            (0..keys.len())
                .map(|i| if nulls.is_some_and(|n| n.is_null(i)) { 0 } else { values[keys[i] as usize] })
                .collect()
        }
        DataType::Utf8 => per_row(&mut keys.as_string::<i32>().iter()),
        DataType::LargeUtf8 => per_row(&mut keys.as_string::<i64>().iter()),
        DataType::Utf8View => per_row(&mut keys.as_string_view().iter()),
        other => return exec_err!("BucketRoutingExec: the key must be text, got {other}"),
    })
}

impl Stream for RoutedStream {
    type Item = Result<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            // Rows sent here first: they are held in memory until taken.
            match self.receiver.poll_recv(cx) {
                Poll::Ready(Some(batch)) => return Poll::Ready(Some(batch)),
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => {}
            }
            let Some(input) = self.input.as_mut() else { return Poll::Pending };
            match input.poll_next_unpin(cx) {
                Poll::Ready(Some(Ok(batch))) => match self.route(batch) {
                    Ok(Some(own)) => return Poll::Ready(Some(Ok(own))),
                    Ok(None) => continue,
                    Err(e) => return Poll::Ready(Some(Err(e))),
                },
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(None) => {
                    // Done: this partition's channel closes once the other inputs are done too.
                    self.input = None;
                    self.senders.clear();
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl RecordBatchStream for RoutedStream {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
}
