//! The funnel report's last step, in Rust: from one row per user who reached step 1 (their
//! breakdown, level and, for ordered funnels, their chain's step times), the report's rows.
//!
//! Why not SQL: the per-step counts, the zero rows for steps nobody reached and the median
//! and 90th percentile of each step's times each read the per-user rows, and DataFusion 55
//! inlines a CTE at every reference, so the SQL form ran `funnel_step_times` over all events
//! three times (issue 22). Here the per-user query runs once and these few lines read its
//! rows; `reports::funnel_and_retention_answers_equal_the_sql_they_stand_for` (tests/it)
//! checks the result against that SQL form, which `NORTHSTAR_REPORT_SQL=1` still prints.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Float64Array, Int32Array, Int64Array, ListArray, StringArray,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Int64Type, SchemaRef, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::{internal_err, Result};

/// One breakdown value's users: how many reached at least each step, and each step's seconds
/// from the previous step (over the users who reached it).
struct Group {
    reached: Vec<i64>,
    seconds: Vec<Vec<f64>>,
}

impl Group {
    fn new(steps: usize) -> Self {
        Group { reached: vec![0; steps], seconds: vec![vec![]; steps] }
    }

    /// A user at `level` (≥ 1) with their chain's step times in seconds, if known.
    fn add(&mut self, level: usize, times: Option<&[f64]>) {
        for step in 0..level.min(self.reached.len()) {
            self.reached[step] += 1;
            if let (Some(t), true) = (times, step > 0) {
                if let (Some(this), Some(previous)) = (t.get(step), t.get(step - 1)) {
                    self.seconds[step].push(this - previous);
                }
            }
        }
    }
}

/// The report's rows (in `schema`, the funnel's output) from the per-user rows: column 0 the
/// breakdown, 1 the level, 2 (ordered funnels only) the chain's step times.
pub fn per_step(rows: &[RecordBatch], steps: &[String], schema: SchemaRef) -> Result<RecordBatch> {
    // BTreeMap over Option<String>: NULL first, then byte order, as the SQL's ORDER BY.
    let mut groups: BTreeMap<Option<String>, Group> = BTreeMap::new();
    for batch in rows {
        let breakdown = cast(batch.column(0), &DataType::Utf8)?;
        let breakdown = breakdown.as_string::<i32>();
        let level = cast(batch.column(1), &DataType::Int64)?;
        let level = level.as_primitive::<Int64Type>();
        let times = batch.columns().get(2).map(|c| step_seconds(c.as_ref())).transpose()?;
        for r in 0..batch.num_rows() {
            let key = breakdown.is_valid(r).then(|| breakdown.value(r).to_string());
            let user_times = times.as_ref().and_then(|t| t[r].as_deref());
            groups.entry(key).or_insert_with(|| Group::new(steps.len())).add(level.value(r) as usize, user_times);
        }
    }
    // Nobody reached step 1: still one (NULL) breakdown with every step at zero.
    if groups.is_empty() {
        groups.insert(None, Group::new(steps.len()));
    }
    rows_of(&groups, steps, schema)
}

/// Each user's chain as seconds since the epoch (`None` for a NULL chain).
fn step_seconds(column: &dyn Array) -> Result<Vec<Option<Vec<f64>>>> {
    let Some(lists) = column.as_any().downcast_ref::<ListArray>() else {
        return internal_err!("funnel: step times came as {}", column.data_type());
    };
    let per_second = match lists.value_type() {
        DataType::Timestamp(TimeUnit::Second, _) => 1.0,
        DataType::Timestamp(TimeUnit::Millisecond, _) => 1e3,
        DataType::Timestamp(TimeUnit::Microsecond, _) => 1e6,
        DataType::Timestamp(TimeUnit::Nanosecond, _) => 1e9,
        other => return internal_err!("funnel: step times of type {other}"),
    };
    // The raw integers of the instants (casting a timestamp to Int64 keeps them as they are).
    let ticks = cast(lists.values(), &DataType::Int64)?;
    let ticks = ticks.as_primitive::<Int64Type>();
    let offsets = lists.value_offsets();
    Ok((0..lists.len())
        .map(|r| {
            lists.is_valid(r).then(|| {
                let (start, end) = (offsets[r] as usize, offsets[r + 1] as usize);
                (start..end).map(|i| ticks.value(i) as f64 / per_second).collect()
            })
        })
        .collect())
}

fn rows_of(groups: &BTreeMap<Option<String>, Group>, steps: &[String], schema: SchemaRef) -> Result<RecordBatch> {
    let rows = groups.len() * steps.len();
    let mut breakdown = Vec::with_capacity(rows);
    let (mut step, mut step_name, mut users) = (vec![], vec![], vec![]);
    let (mut from_previous, mut from_first, mut drop_off) = (vec![], vec![], vec![]);
    let (mut median, mut p90) = (vec![], vec![]);
    for (value, group) in groups {
        let first = group.reached[0];
        for (i, name) in steps.iter().enumerate() {
            let reached = group.reached[i];
            let previous = if i == 0 { reached } else { group.reached[i - 1] };
            breakdown.push(value.clone());
            step.push(i as i32 + 1);
            step_name.push(name.clone());
            users.push(reached);
            from_previous.push(ratio(reached, previous));
            from_first.push(ratio(reached, first));
            drop_off.push(previous - reached);
            let mut seconds = group.seconds[i].clone();
            median.push(median_of(&mut seconds));
            p90.push(percentile_cont(&mut seconds, 0.9));
        }
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(breakdown)),
        Arc::new(Int32Array::from(step)),
        Arc::new(StringArray::from(step_name)),
        Arc::new(Int64Array::from(users)),
        Arc::new(Float64Array::from(from_previous)),
        Arc::new(Float64Array::from(from_first)),
        Arc::new(Int64Array::from(drop_off)),
        Arc::new(Float64Array::from(median)),
        Arc::new(Float64Array::from(p90)),
    ];
    Ok(RecordBatch::try_new(schema, columns)?)
}

/// `users / of`, 0.0 when `of` is zero (the SQL's `coalesce(… / NULLIF(of, 0), 0.0)`).
fn ratio(users: i64, of: i64) -> f64 {
    if of == 0 {
        0.0
    } else {
        users as f64 / of as f64
    }
}

/// DataFusion's `median`: the middle value, or the mean of the two middle values.
fn median_of(values: &mut [f64]) -> Option<f64> {
    let n = values.len();
    if n == 0 {
        return None;
    }
    values.sort_unstable_by(f64::total_cmp);
    Some(if n.is_multiple_of(2) { (values[n / 2 - 1] + values[n / 2]) / 2.0 } else { values[n / 2] })
}

/// DataFusion 55's `percentile_cont`: linear interpolation at `p × (n − 1)`, the fraction
/// rounded down to 6 digits as it does, so the report's figures equal the SQL's to the bit.
fn percentile_cont(values: &mut [f64], p: f64) -> Option<f64> {
    let n = values.len();
    if n == 0 {
        return None;
    }
    values.sort_unstable_by(f64::total_cmp);
    let index = p * (n - 1) as f64;
    let (lower, upper) = (values[index.floor() as usize], values[index.ceil() as usize]);
    if index.floor() == index.ceil() {
        return Some(lower);
    }
    let weight = ((index - index.floor()) * 1_000_000.0) as usize as f64 / 1_000_000.0;
    Some(lower + (upper - lower) * weight)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_percentile_follow_datafusion() {
        assert_eq!(median_of(&mut []), None);
        assert_eq!(median_of(&mut [3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median_of(&mut [4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(percentile_cont(&mut [5.0], 0.9), Some(5.0));
        // index 0.9 × 9 = 8.0999…96 in f64: the fraction truncated to 6 digits is 0.099999,
        // so 9.099999 where numpy says 9.1 (DataFusion's answer, which the SQL form gives).
        let mut ten: Vec<f64> = (1..=10).rev().map(f64::from).collect();
        assert_eq!(percentile_cont(&mut ten, 0.9), Some(9.0 + 0.099_999));
        assert_eq!(percentile_cont(&mut [0.0, 10.0], 0.5), Some(5.0));
    }

    #[test]
    fn a_user_counts_at_every_step_up_to_their_level() {
        let mut g = Group::new(3);
        g.add(2, Some(&[10.0, 25.0]));
        g.add(3, Some(&[0.0, 5.0, 65.0]));
        g.add(1, Some(&[7.0]));
        assert_eq!(g.reached, vec![3, 2, 1]);
        assert_eq!(g.seconds, vec![vec![], vec![15.0, 5.0], vec![60.0]]);
    }
}
