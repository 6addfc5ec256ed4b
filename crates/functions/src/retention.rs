//! `retention`: which of several conditions a group satisfied, relative to the first.
//!
//! ```sql
//! -- users who came back on day 1 and day 7 after their first day in the period
//! SELECT sum(r[1]) AS cohort, sum(r[2]) AS day_1, sum(r[3]) AS day_7
//! FROM (SELECT user_id,
//!              retention(event_date = DATE '2025-01-01',
//!                        event_date = DATE '2025-01-02',
//!                        event_date = DATE '2025-01-08') AS r
//!       FROM events GROUP BY user_id);
//! ```
//!
//! ClickHouse's `retention(cond1, …, condN)`: `[c1, c1 AND c2, …, c1 AND cN]`, each 0 or 1,
//! where `ci` is whether any row of the group satisfied condition i. Time order plays no part.
//! 2 to 32 conditions; a row with a NULL condition is skipped.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Int32Builder, ListBuilder, UInt32Array};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, UInt32Type};
use datafusion::common::Result;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDFImpl, Documentation, EmitTo, GroupsAccumulator, Signature, Volatility,
};

use crate::common::{check_conditions, ConditionRows, SingleGroup, DOC_SECTION_BEHAVIOURAL};

const NAME: &str = "retention";
const USAGE: &str = "retention(cond1, cond2, ..., condN)";

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Retention {
    signature: Signature,
}

impl Default for Retention {
    fn default() -> Self {
        Self { signature: Signature::user_defined(Volatility::Immutable) }
    }
}

fn output_type() -> DataType {
    DataType::new_list(DataType::Int32, true)
}

static DOCUMENTATION: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        DOC_SECTION_BEHAVIOURAL,
        "Returns [c1, c1 AND c2, ..., c1 AND cN] as 0/1 integers, where ci is whether any row of the group \
         satisfied condition i: ClickHouse's retention. Time order plays no part; a row with a NULL \
         condition is skipped; a group without rows gets all zeros.",
        "retention(cond1, cond2, ..., condN)",
    )
    .with_sql_example(
        r#"```sql
-- users active on 2025-01-01, and of those, how many came back on day 1 and day 7
SELECT sum(r[1]) AS cohort, sum(r[2]) AS day_1, sum(r[3]) AS day_7
FROM (SELECT user_id,
             retention(event_date = DATE '2025-01-01',
                       event_date = DATE '2025-01-02',
                       event_date = DATE '2025-01-08') AS r
      FROM events GROUP BY user_id);
```"#,
    )
    .with_argument("cond1", "The boolean condition that puts a group in the cohort.")
    .with_argument("cond2, ..., condN", "1 to 31 more boolean conditions, each counted only with cond1.")
    .build()
});

impl AggregateUDFImpl for Retention {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&DOCUMENTATION)
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        check_conditions(NAME, arg_types, 0, 2, USAGE)?;
        Ok(arg_types.to_vec())
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(output_type())
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![Arc::new(Field::new(format!("{}[mask]", args.name), DataType::UInt32, true))])
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        let conditions = args.exprs.len();
        Ok(Box::new(SingleGroup::new(Arc::new(move || Box::new(RetentionAccumulator::new(conditions)) as _))))
    }

    fn groups_accumulator_supported(&self, _args: AccumulatorArgs) -> bool {
        true
    }

    fn create_groups_accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn GroupsAccumulator>> {
        Ok(Box::new(RetentionAccumulator::new(args.exprs.len())))
    }
}

/// Per group, the OR of its rows' condition bitmasks.
pub struct RetentionAccumulator {
    conditions: usize,
    masks: Vec<u32>,
}

impl RetentionAccumulator {
    pub fn new(conditions: usize) -> Self {
        Self { conditions, masks: Vec::new() }
    }

    /// Each row's condition bitmask, 0 for a row that does not count (a NULL argument, or
    /// filtered out): OR-ing 0 into a group changes nothing, so every row is added unchecked.
    fn counted_masks(values: &[ArrayRef], opt_filter: Option<&BooleanArray>) -> Result<Vec<u32>> {
        let ConditionRows { mut masks, valid } = ConditionRows::new(&values[0], values, opt_filter)?;
        if let Some(valid) = valid {
            for (mask, counts) in masks.iter_mut().zip(valid.iter()) {
                if !counts {
                    *mask = 0;
                }
            }
        }
        Ok(masks)
    }
}

impl GroupsAccumulator for RetentionAccumulator {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.masks.resize(total_num_groups, 0);
        // Straight over the masks, no per-row check: this loop runs once per row of the table.
        for (mask, &group) in Self::counted_masks(values, opt_filter)?.into_iter().zip(group_indices) {
            self.masks[group] |= mask;
        }
        Ok(())
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let masks = emit_to.take_needed(&mut self.masks);
        let mut out =
            ListBuilder::with_capacity(Int32Builder::with_capacity(masks.len() * self.conditions), masks.len());
        for mask in masks {
            let first = mask & 1;
            for i in 0..self.conditions {
                out.values().append_value((first & (mask >> i)) as i32);
            }
            out.append(true);
        }
        Ok(Arc::new(out.finish()))
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        Ok(vec![Arc::new(UInt32Array::from(emit_to.take_needed(&mut self.masks)))])
    }

    fn merge_batch(&mut self, values: &[ArrayRef], group_indices: &[usize], total_num_groups: usize) -> Result<()> {
        self.masks.resize(total_num_groups, 0);
        let states = values[0].as_primitive::<UInt32Type>();
        for (row, &group) in group_indices.iter().enumerate() {
            if states.is_valid(row) {
                self.masks[group] |= states.value(row);
            }
        }
        Ok(())
    }

    fn convert_to_state(&self, values: &[ArrayRef], opt_filter: Option<&BooleanArray>) -> Result<Vec<ArrayRef>> {
        Ok(vec![Arc::new(UInt32Array::from(Self::counted_masks(values, opt_filter)?))])
    }

    fn size(&self) -> usize {
        self.masks.capacity() * size_of::<u32>()
    }
}
