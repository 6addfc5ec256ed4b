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
//! rows for another partition are sent to that partition's channel. Done with its own, it
//! reads any input no partition has taken yet, so no partition waits on one never executed.
//! A partition's output ends when every input is done (all senders to it dropped). Only
//! moved rows wait in channels, and each partition takes from its channel before reading on.

use std::fmt;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray, RecordBatch, UInt32Array};
use datafusion::arrow::buffer::BooleanBuffer;
use datafusion::arrow::compute::{cast, filter_record_batch, take_record_batch};
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
use northstar_identity::{MappedDictionaries, Persons, OWN_BUCKET};
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
    /// Set when the key is the person of the stored `user_id` and each input partition reads
    /// whole user buckets (`partition = bucket % partitions`): a row then leaves its input
    /// partition only when its person is the person of a merged id, and only those persons
    /// are hashed (hashing every id of every chunk cost more than the routing itself).
    persons: Option<(Arc<Persons>, MappedDictionaries)>,
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
        Self { input, key, properties: Arc::new(properties), routes: Default::default(), persons: None }
    }

    /// Routing by the person of `user_id` over an input that reads whole user buckets per
    /// partition (see the field `persons`).
    /// `mapped`: the dictionaries the persons were mapped from, where each value's bucket is
    /// found without a lookup (`persons` looks up what is not found there).
    pub fn with_persons_over_buckets(mut self, persons: Arc<Persons>, mapped: MappedDictionaries) -> Self {
        self.persons = Some((persons, mapped));
        self
    }

    fn partitions(&self) -> usize {
        self.properties.partitioning.partition_count()
    }

    /// The senders of `partition`'s input (`None`: another partition read it already) and the
    /// receiver of its rows, for this execution; a partition taken already starts a new one.
    fn take_routes(&self, partition: usize) -> (Option<Vec<Sender>>, Receiver) {
        let mut routes = self.routes.lock().expect("not poisoned");
        if routes.receivers.get(partition).is_none_or(Option::is_none) {
            *routes = Routes::new(self.partitions());
        }
        let receiver = routes.receivers[partition].take().expect("just made");
        (routes.senders[partition].take(), receiver)
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
            // Other partitions are other buckets: every key is hashed.
            return Ok(Arc::new(Self::new(input, self.key)));
        }
        Ok(Arc::new(Self {
            input,
            key: self.key,
            properties: self.properties.clone(),
            routes: self.routes.clone(),
            persons: self.persons.clone(),
        }))
    }

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        let (senders, receiver) = self.take_routes(partition);
        let input = match senders {
            Some(senders) => Some((self.input.execute(partition, context.clone())?, senders)),
            None => None,
        };
        let reading = input.as_ref().map(|_| partition);
        Ok(Box::pin(RoutedStream {
            schema: self.schema(),
            input,
            receiver,
            partition,
            key: self.key,
            plan: self.input.clone(),
            context,
            routes: self.routes.clone(),
            dictionary_targets: None,
            reading,
            persons: self.persons.clone(),
        }))
    }
}

struct RoutedStream {
    schema: SchemaRef,
    /// The input partition being read, with the senders its rows go out by (to every
    /// partition, this one included: this partition's channel stays open while it reads);
    /// `None` once there is none left to read.
    input: Option<(SendableRecordBatchStream, Vec<Sender>)>,
    receiver: Receiver,
    partition: usize,
    key: usize,
    /// For reading the inputs of partitions not executed yet (below).
    plan: Arc<dyn ExecutionPlan>,
    context: Arc<TaskContext>,
    routes: Arc<Mutex<Routes>>,
    /// The last dictionary's values and their partitions: a chunk's batches share one
    /// dictionary, so its values are hashed once per chunk, not once per batch (hashing
    /// every batch's dictionary cost about as much as hashing every row).
    dictionary_targets: Option<(ArrayRef, Vec<u8>)>,
    /// The input partition being read.
    reading: Option<usize>,
    persons: Option<(Arc<Persons>, MappedDictionaries)>,
}

impl RoutedStream {
    /// The input of a partition that has not been executed, read here: a partition's rows
    /// may come from every input, so waiting for a partition that is never executed (a
    /// consumer that reads the partitions one after another) would never end. Its rows for
    /// that partition wait in its channel.
    fn adopt(&mut self) -> Result<()> {
        let next = {
            let mut routes = self.routes.lock().expect("not poisoned");
            routes.senders.iter_mut().enumerate().find_map(|(q, s)| s.take().map(|s| (q, s)))
        };
        let next_reading = next.as_ref().map(|(q, _)| *q);
        self.input = match next {
            Some((q, senders)) => Some((self.plan.execute(q, self.context.clone())?, senders)),
            None => None,
        };
        self.reading = next_reading;
        // Targets of "stays in its input partition" were of the previous input.
        self.dictionary_targets = None;
        Ok(())
    }

    /// Sends `batch`'s rows of other partitions to them; returns its rows of this one, if any.
    /// A chunk's batches share one dictionary, so its values' partitions are found once per
    /// chunk (`dictionary_targets`), not once per batch.
    fn route_batch(&mut self, batch: RecordBatch, senders: &[Sender]) -> Result<Option<RecordBatch>> {
        let keys = batch.column(self.key);
        let Some(dictionary) = keys.as_dictionary_opt::<Int32Type>().filter(|d| d.null_count() == 0) else {
            // Text keys, or a dictionary with null keys (a null key goes to partition 0).
            let text = match keys.data_type() {
                DataType::Dictionary(_, values) => cast(keys, values)?,
                _ => keys.clone(),
            };
            let targets = self.value_targets(&text, senders.len())?;
            return self.route(batch, |row| targets[row], senders);
        };
        let values = dictionary.values();
        let known = self.dictionary_targets.as_ref().filter(|(known, _)| known.to_data().ptr_eq(&values.to_data()));
        if known.is_none() {
            let value_targets = self.value_targets(values, senders.len())?;
            self.dictionary_targets = Some((values.clone(), value_targets));
        }
        let value_targets = &self.dictionary_targets.as_ref().expect("just set").1;
        let keys = dictionary.keys().values();
        self.route(batch.clone(), |row| value_targets[keys[row] as usize], senders)
    }

    /// The partition of each text key in `keys`.
    fn value_targets(&self, keys: &ArrayRef, partitions: usize) -> Result<Vec<u8>> {
        let (Some((persons, mapped)), Some(home)) = (&self.persons, self.reading) else {
            return targets(keys, partitions);
        };
        match mapped.buckets_of(keys) {
            Some(buckets) => Ok(buckets
                .iter()
                .map(|&bucket| if bucket == OWN_BUCKET { home as u8 } else { (bucket as usize % partitions) as u8 })
                .collect()),
            None => person_targets(keys, persons, home, partitions),
        }
    }

    /// Sends `batch`'s rows whose target (`target_of` each row) is another partition to it;
    /// returns the rest. Most rows stay (all but the rows of ids merged into a person of
    /// another bucket): only the rows that leave are listed, and the batch passes whole when
    /// none does.
    fn route(
        &self,
        batch: RecordBatch,
        target_of: impl Fn(usize) -> u8,
        senders: &[Sender],
    ) -> Result<Option<RecordBatch>> {
        let own = self.partition as u8;
        let rows = batch.num_rows();
        let staying = BooleanBuffer::collect_bool(rows, |row| target_of(row) == own);
        let stay = staying.count_set_bits();
        if stay == rows {
            return Ok(Some(batch));
        }
        let mut leaving: Vec<Vec<u32>> = vec![vec![]; senders.len()];
        for row in (!&staying).set_indices() {
            leaving[target_of(row) as usize].push(row as u32);
        }
        for (target, rows) in leaving.into_iter().enumerate().filter(|(_, rows)| !rows.is_empty()) {
            // A closed channel: that partition's consumer stopped reading; nothing waits.
            let _ = senders[target].send(Ok(take_record_batch(&batch, &UInt32Array::from(rows))?));
        }
        if stay == 0 {
            return Ok(None);
        }
        Ok(Some(filter_record_batch(&batch, &BooleanArray::new(staying, None))?))
    }
}

/// The partition of each row's text key: its user bucket modulo `partitions` (dictionaries:
/// `RoutedStream::route_batch`).
fn targets(keys: &ArrayRef, partitions: usize) -> Result<Vec<u8>> {
    targets_by(keys, &|id| (user_bucket(id) as usize % partitions) as u8)
}

/// The partition of each person in `keys` (persons of the stored `user_id`s read from input
/// partition `home`, which holds whole user buckets): the bucket of the person of a merged id,
/// `home` for any other id, which is its own person, stored in its own bucket.
fn person_targets(keys: &ArrayRef, persons: &Persons, home: usize, partitions: usize) -> Result<Vec<u8>> {
    targets_by(keys, &|id| match persons.bucket_of_merged_person(id) {
        Some(bucket) => (bucket as usize % partitions) as u8,
        None => home as u8,
    })
}

/// `of` each row's text key (a null key goes to partition 0).
fn targets_by(keys: &ArrayRef, of: &dyn Fn(&str) -> u8) -> Result<Vec<u8>> {
    let per_row = |ids: &mut dyn Iterator<Item = Option<&str>>| ids.map(|id| id.map_or(0, of)).collect();
    Ok(match keys.data_type() {
        DataType::Dictionary(_, _) => return exec_err!("BucketRoutingExec: a dictionary key must have Int32 keys"),
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
            let Some((input, _)) = self.input.as_mut() else { return Poll::Pending };
            match input.poll_next_unpin(cx) {
                Poll::Ready(Some(Ok(batch))) => {
                    let (input, senders) = self.input.take().expect("reading");
                    let routed = self.route_batch(batch, &senders);
                    self.input = Some((input, senders));
                    match routed {
                        Ok(Some(own)) => return Poll::Ready(Some(Ok(own))),
                        Ok(None) => continue,
                        Err(e) => return Poll::Ready(Some(Err(e))),
                    }
                }
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(None) => {
                    // Done: its senders go (this partition's channel closes once every input
                    // is done), and an input no partition has taken is read next.
                    self.input = None;
                    if let Err(e) = self.adopt() {
                        return Poll::Ready(Some(Err(e)));
                    }
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

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::StringArray;
    use datafusion::arrow::datatypes::{Field, Schema};
    use datafusion::datasource::memory::MemorySourceConfig;
    use futures::TryStreamExt;

    use super::*;

    fn batch(ids: &[&str]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("person_id", DataType::Utf8, false)]));
        RecordBatch::try_new(schema, vec![Arc::new(StringArray::from(ids.to_vec()))]).unwrap()
    }

    /// Partitions read one after another, as a consumer may: the first reads its input and
    /// then the second's (which is not executed yet), so neither waits on the other; every
    /// row comes out once, in its bucket's partition.
    #[tokio::test]
    async fn partitions_read_one_after_another_get_every_row_once_in_its_bucket() {
        let ids: Vec<String> = (0..200).map(|i| format!("id{i}")).collect();
        let (first, second): (Vec<&str>, Vec<&str>) =
            (ids[..120].iter().map(String::as_str).collect(), ids[120..].iter().map(String::as_str).collect());
        let (a, b) = (batch(&first), batch(&second));
        let input = MemorySourceConfig::try_new_exec(&[vec![a.clone()], vec![b]], a.schema(), None).unwrap();
        let routing = BucketRoutingExec::new(input, 0);
        let context = Arc::new(TaskContext::default());
        let mut seen = vec![];
        for partition in 0..2 {
            let stream = routing.execute(partition, context.clone()).unwrap();
            let batches: Vec<RecordBatch> =
                tokio::time::timeout(std::time::Duration::from_secs(30), stream.try_collect())
                    .await
                    .unwrap_or_else(|_| panic!("partition {partition} waits for a partition not executed"))
                    .unwrap();
            for batch in batches {
                for id in batch.column(0).as_string::<i32>().iter().flatten() {
                    assert_eq!(user_bucket(id) as usize % 2, partition, "{id}");
                    seen.push(id.to_string());
                }
            }
        }
        seen.sort();
        let mut expected = ids.clone();
        expected.sort();
        assert_eq!(seen, expected);
    }

    /// Routing by person over inputs that hold whole buckets: only the rows whose person is
    /// another bucket's move, whichever partition reads which input (the second partition's
    /// input is read by the first), and every row ends in its person's bucket.
    #[tokio::test]
    async fn persons_over_buckets_move_only_the_rows_of_merged_ids_of_another_bucket() {
        use northstar_identity::{resolve, Link, LinkKind};
        let ids: Vec<String> = (0..300).map(|i| format!("id{i}")).collect();
        // Every third id is merged into the next one (a person often of the other bucket).
        let links: Vec<Link> = (0..100)
            .map(|i| Link {
                time: i,
                user: ids[3 * i as usize + 1].clone(),
                other: Some(ids[3 * i as usize].clone()),
                kind: LinkKind::Identify,
            })
            .collect();
        let persons = Arc::new(resolve(&links));
        let person_batch = |bucket: usize| {
            let mine: Vec<&str> = ids
                .iter()
                .filter(|id| user_bucket(id) as usize % 2 == bucket)
                .map(|id| persons.person_of(id))
                .collect();
            batch(&mine)
        };
        let (a, b) = (person_batch(0), person_batch(1));
        let input = MemorySourceConfig::try_new_exec(&[vec![a.clone()], vec![b]], a.schema(), None).unwrap();
        let routing =
            BucketRoutingExec::new(input, 0).with_persons_over_buckets(persons.clone(), MappedDictionaries::default());
        let context = Arc::new(TaskContext::default());
        let mut seen = vec![];
        for partition in 0..2 {
            let batches: Vec<RecordBatch> =
                routing.execute(partition, context.clone()).unwrap().try_collect().await.unwrap();
            for batch in batches {
                for person in batch.column(0).as_string::<i32>().iter().flatten() {
                    assert_eq!(user_bucket(person) as usize % 2, partition, "{person}");
                    seen.push(person.to_string());
                }
            }
        }
        seen.sort();
        let mut expected: Vec<String> = ids.iter().map(|id| persons.person_of(id).to_string()).collect();
        expected.sort();
        assert_eq!(seen, expected);
        assert!(ids.iter().any(|id| user_bucket(id) % 2 != user_bucket(persons.person_of(id)) % 2), "rows must move");
    }
}
