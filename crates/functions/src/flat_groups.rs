//! Values of many groups in one flat vector, each beside its group's index, put together by
//! group only when the groups are emitted. Shared by the aggregates that keep a list per
//! group (the event lists of funnels and sequences, cohort periods).
//!
//! Why flat: appending is sequential (no allocation per group, no cache miss per row on a
//! group's own vector), and one counting sort by group at the end puts each group's values
//! together, in arrival order. Measured on 20M events and 435k groups: per-group vectors
//! spent more time in the allocator and in cache misses than the funnel itself.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, ListArray};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::datatypes::{DataType, Field};
use datafusion::common::{exec_err, Result};
use datafusion::logical_expr::EmitTo;

pub struct FlatGroups<T> {
    values: Vec<T>,
    group_of: Vec<u32>,
    groups: usize,
}

/// The values of some groups, together: group `g`'s are `values[offsets[g]..offsets[g + 1]]`.
pub struct Grouped<T> {
    pub offsets: Vec<usize>,
    pub values: Vec<T>,
}

impl<T> Grouped<T> {
    /// Each group's values, mutable (to sort them in place).
    pub fn groups_mut(&mut self) -> impl Iterator<Item = &mut [T]> {
        let mut rest = self.values.as_mut_slice();
        self.offsets.windows(2).map(move |w| {
            let (group, tail) = std::mem::take(&mut rest).split_at_mut(w[1] - w[0]);
            rest = tail;
            group
        })
    }

    pub fn groups(&self) -> impl Iterator<Item = &[T]> {
        self.offsets.windows(2).map(|w| &self.values[w[0]..w[1]])
    }

    /// The offsets as a list column's (i32), or an error naming `function` past i32::MAX.
    pub fn list_offsets(&self, function: &str) -> Result<OffsetBuffer<i32>> {
        match self.offsets.iter().map(|&o| i32::try_from(o)).collect::<std::result::Result<Vec<i32>, _>>() {
            Ok(offsets) => Ok(OffsetBuffer::new(offsets.into())),
            Err(_) => exec_err!("{function}: more than {} values in one aggregate state", i32::MAX),
        }
    }
}

/// A list column of `values` (of `item` type) cut at `offsets`: the shape of every list state.
pub fn list_column(item: DataType, offsets: &OffsetBuffer<i32>, values: ArrayRef) -> Result<ArrayRef> {
    Ok(Arc::new(ListArray::try_new(Arc::new(Field::new_list_field(item, true)), offsets.clone(), values, None)?))
}

impl<T: Copy + Default> FlatGroups<T> {
    pub fn new() -> Self {
        Self { values: Vec::new(), group_of: Vec::new(), groups: 0 }
    }

    /// Makes room for groups up to `total_num_groups` (group indices are kept as u32).
    pub fn resize(&mut self, total_num_groups: usize) -> Result<()> {
        if total_num_groups > u32::MAX as usize {
            return exec_err!("more than {} groups in one aggregate", u32::MAX);
        }
        self.groups = self.groups.max(total_num_groups);
        Ok(())
    }

    pub fn reserve(&mut self, additional: usize) {
        self.values.reserve(additional);
        self.group_of.reserve(additional);
    }

    pub fn push(&mut self, group: usize, value: T) {
        self.values.push(value);
        self.group_of.push(group as u32);
    }

    /// Removes the groups `emit_to` selects and returns their values together (one pass to
    /// count, one to place). Groups left behind are renumbered from 0, as `EmitTo::First`
    /// requires.
    pub fn take(&mut self, emit_to: EmitTo) -> Grouped<T> {
        let taken = match emit_to {
            EmitTo::All => self.groups,
            EmitTo::First(n) => n.min(self.groups),
        };
        let mut offsets = vec![0usize; taken + 1];
        for &g in &self.group_of {
            if (g as usize) < taken {
                offsets[g as usize + 1] += 1;
            }
        }
        for g in 0..taken {
            offsets[g + 1] += offsets[g];
        }
        let mut next = offsets.clone();
        let mut grouped = vec![T::default(); offsets[taken]];
        let (values, group_of) = (std::mem::take(&mut self.values), std::mem::take(&mut self.group_of));
        self.groups -= taken;
        for (value, g) in values.into_iter().zip(group_of) {
            let g = g as usize;
            if g < taken {
                grouped[next[g]] = value;
                next[g] += 1;
            } else {
                self.push(g - taken, value);
            }
        }
        Grouped { offsets, values: grouped }
    }

    /// Bytes held, O(1).
    pub fn size(&self) -> usize {
        self.values.capacity() * size_of::<T>() + self.group_of.capacity() * size_of::<u32>()
    }
}
