//! The state shared by the order-dependent functions (window_funnel, funnel_step_times,
//! sequence_match, sequence_count): the events of every group as (time, condition bitmask),
//! appended in arrival order and sorted only when a result is computed — the arguments carry
//! the time, so no ORDER BY is needed and input order does not matter.
//! The events are kept flat ([`FlatGroups`]) and put together by group when emitted.
//!
//! The intermediate state is two list columns, `times` (Int64) and `masks` (UInt32), and
//! `seen` (whether the group had a row with no NULL argument), so partial aggregates merge
//! across partitions, spill, and travel to other executors.
//!
//! As in ClickHouse (its Null combinator), when any argument is nullable, a group none of
//! whose rows had all arguments non-NULL yields NULL instead of the empty answer.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayBuilder, ArrayRef, AsArray, BooleanArray, PrimitiveArray};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Int64Type, UInt32Type};
use datafusion::common::{exec_err, Result};
use datafusion::logical_expr::{EmitTo, GroupsAccumulator};

use crate::common::{time_values, ConditionRows, TimeKind};
use crate::flat_groups::{list_column, FlatGroups, Grouped};

/// One stored row: its time and the bitmask of its true conditions. Packed (12 bytes instead
/// of 16): the funnel keeps most rows of the table, and a third less memory to fault in is
/// measurably faster (docs/benchmarks.md); fields are read by value, never by reference.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
#[repr(C, packed(4))]
pub struct Event {
    pub time: i64,
    pub mask: u32,
}

/// Turns one group's events into its result.
pub trait Finisher: Send + Sync + 'static {
    type Builder: ArrayBuilder;
    fn builder(&self, capacity: usize) -> Self::Builder;
    /// `events` are in arrival order; the finisher sorts them as its semantics need.
    fn finish(&self, events: &mut [Event], out: &mut Self::Builder) -> Result<()>;
    fn append_null(&self, out: &mut Self::Builder);
    /// Final touch on the finished column (e.g. giving list elements their SQL type).
    fn output(&self, array: ArrayRef) -> Result<ArrayRef> {
        Ok(array)
    }
}

pub fn state_fields(name: &str) -> Vec<FieldRef> {
    vec![
        Arc::new(Field::new(format!("{name}[times]"), DataType::new_list(DataType::Int64, true), true)),
        Arc::new(Field::new(format!("{name}[masks]"), DataType::new_list(DataType::UInt32, true), true)),
        Arc::new(Field::new(format!("{name}[seen]"), DataType::Boolean, true)),
    ]
}

pub struct EventListAccumulator<F: Finisher> {
    events: FlatGroups<Event>,
    /// Per group: whether any row had no NULL argument.
    seen: Vec<bool>,
    /// Some argument is nullable: groups that saw no usable row yield NULL.
    null_when_unseen: bool,
    time_kind: TimeKind,
    /// Index of the timestamp among the function's arguments (constant parameters such as a
    /// window or pattern come first); the conditions follow it.
    time_arg: usize,
    /// Keep rows matching no condition (windowFunnel's strict_order needs them).
    keep_unmatched: bool,
    finisher: Arc<F>,
}

impl<F: Finisher> EventListAccumulator<F> {
    pub fn new(
        time_kind: TimeKind,
        time_arg: usize,
        keep_unmatched: bool,
        null_when_unseen: bool,
        finisher: Arc<F>,
    ) -> Self {
        Self {
            events: FlatGroups::new(),
            seen: Vec::new(),
            null_when_unseen,
            time_kind,
            time_arg,
            keep_unmatched,
            finisher,
        }
    }

    /// Per input row: whether it is stored, its time and its condition mask.
    fn rows(&self, values: &[ArrayRef], opt_filter: Option<&BooleanArray>) -> Result<(ArrayRef, ConditionRows)> {
        let times = self.time_kind.values(&values[self.time_arg])?;
        let rows = ConditionRows::new(&times, &values[self.time_arg + 1..], opt_filter)?;
        Ok((times, rows))
    }

    fn stored(&self, rows: &ConditionRows, row: usize) -> bool {
        (rows.masks[row] != 0 || self.keep_unmatched) && rows.counts(row)
    }

    fn resize(&mut self, total_num_groups: usize) -> Result<()> {
        self.events.resize(total_num_groups)?;
        if self.seen.len() < total_num_groups {
            self.seen.resize(total_num_groups, false);
        }
        Ok(())
    }

    /// The emitted groups' events, together by group, and their seen flags.
    fn take(&mut self, emit_to: EmitTo) -> (Grouped<Event>, Vec<bool>) {
        (self.events.take(emit_to), emit_to.take_needed(&mut self.seen))
    }
}

/// Builds the state columns for a sequence of per-group event lists and seen flags.
fn state_columns<'a>(groups: impl Iterator<Item = &'a [Event]>, seen: Vec<bool>) -> Result<Vec<ArrayRef>> {
    let mut offsets = vec![0i32];
    let mut times = Vec::new();
    let mut masks = Vec::new();
    for events in groups {
        times.extend(events.iter().map(|e| e.time));
        masks.extend(events.iter().map(|e| e.mask));
        offsets.push(times.len() as i32);
    }
    let offsets = OffsetBuffer::new(offsets.into());
    let times = PrimitiveArray::<Int64Type>::from(times);
    let masks = PrimitiveArray::<UInt32Type>::from(masks);
    Ok(vec![
        list_column(DataType::Int64, &offsets, Arc::new(times))?,
        list_column(DataType::UInt32, &offsets, Arc::new(masks))?,
        Arc::new(BooleanArray::from(seen)),
    ])
}

impl<F: Finisher> GroupsAccumulator for EventListAccumulator<F> {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.resize(total_num_groups)?;
        let (times, rows) = self.rows(values, opt_filter)?;
        let times = time_values(&times);
        for (row, &group) in group_indices.iter().enumerate() {
            if rows.counts(row) {
                self.seen[group] = true;
            }
            if self.stored(&rows, row) {
                self.events.push(group, Event { time: times[row], mask: rows.masks[row] });
            }
        }
        Ok(())
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let (mut grouped, seen) = self.take(emit_to);
        let mut out = self.finisher.builder(seen.len());
        for (events, seen) in grouped.groups_mut().zip(seen) {
            if self.null_when_unseen && !seen {
                self.finisher.append_null(&mut out);
            } else {
                self.finisher.finish(events, &mut out)?;
            }
        }
        self.finisher.output(out.finish())
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        let (grouped, seen) = self.take(emit_to);
        if grouped.values.len() > i32::MAX as usize {
            return exec_err!("more than {} events in one aggregate state", i32::MAX);
        }
        state_columns(grouped.groups(), seen)
    }

    fn merge_batch(&mut self, values: &[ArrayRef], group_indices: &[usize], total_num_groups: usize) -> Result<()> {
        self.resize(total_num_groups)?;
        let (times, masks) = (values[0].as_list::<i32>(), values[1].as_list::<i32>());
        let (time_values, mask_values) =
            (times.values().as_primitive::<Int64Type>().values(), masks.values().as_primitive::<UInt32Type>().values());
        let offsets = times.value_offsets();
        let seen = values[2].as_boolean();
        for (row, &group) in group_indices.iter().enumerate() {
            if times.is_null(row) {
                continue;
            }
            self.seen[group] |= seen.value(row);
            for i in offsets[row] as usize..offsets[row + 1] as usize {
                self.events.push(group, Event { time: time_values[i], mask: mask_values[i] });
            }
        }
        Ok(())
    }

    fn convert_to_state(&self, values: &[ArrayRef], opt_filter: Option<&BooleanArray>) -> Result<Vec<ArrayRef>> {
        let (times, rows) = self.rows(values, opt_filter)?;
        let times = time_values(&times);
        let events: Vec<Option<Event>> = (0..times.len())
            .map(|row| self.stored(&rows, row).then_some(Event { time: times[row], mask: rows.masks[row] }))
            .collect();
        let seen = (0..times.len()).map(|row| rows.counts(row)).collect();
        state_columns(events.iter().map(|e| e.as_slice()), seen)
    }

    fn size(&self) -> usize {
        self.events.size() + self.seen.capacity()
    }
}
