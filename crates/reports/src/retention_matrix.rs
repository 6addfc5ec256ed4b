//! The retention report's calendar matrix (`cohort=first`, `windows=calendar`), finished in
//! Rust from one row per user: the UTC periods in which they did the start event and the
//! return event (`days_active … FILTER`), and the UTC day of their last event.
//!
//! Why: the matrix's cohort sizes, retained counts and the zero cells all read the same
//! per-user rows, and DataFusion 55 inlines a shared subquery at each use; the SQL form (still
//! what the report stands for, printed by `NORTHSTAR_REPORT_SQL=1`) also builds the DISTINCT
//! (user, period) set of every event and joins it back to the cohorts. One pass per user is
//! what ClickHouse's own form does (`groupUniqArray` of periods). Tested equal to the SQL form
//! (`reports::funnel_and_retention_answers_equal_the_sql_they_stand_for`).

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Date32Array, Float64Array, Int32Array, Int64Array};
use datafusion::arrow::datatypes::{DataType, Date32Type, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::{internal_err, Result};
use northstar_functions::Period;

/// What the matrix counts: the period, how many periods, and `criterion=on_or_after`.
#[derive(Debug, Clone, Copy)]
pub struct Matrix {
    pub period: Period,
    pub periods: usize,
    pub on_or_after: bool,
}

/// Periods from the one holding `cohort` to the one holding `day` (days since 1970-01-01, as
/// DATE values), numbered as the per-user functions number them (`days_active`'s periods).
fn index(period: Period, cohort: i32, day: i32) -> i64 {
    i64::from(period.of_day(i64::from(day))) - i64::from(period.of_day(i64::from(cohort)))
}

/// One cohort: its users and, per period 1 ..= periods, the users retained.
struct Cohort {
    size: i64,
    retained: Vec<i64>,
}

/// The report's rows (in `schema`) from the per-user rows: column 0 the start periods, 1 the
/// return periods (each a `days_active` list, whose `period` field is the period's first day),
/// 2 the user's last day.
pub fn matrix(rows: &[RecordBatch], m: Matrix, schema: SchemaRef) -> Result<RecordBatch> {
    let mut cohorts: BTreeMap<i32, Cohort> = BTreeMap::new();
    let mut last_day: Option<i32> = None;
    for batch in rows {
        let (starts, returns) = (periods_of(batch.column(0))?, periods_of(batch.column(1))?);
        let last = batch.column(2).as_primitive::<Date32Type>();
        for r in 0..batch.num_rows() {
            if last.is_valid(r) {
                last_day = last_day.max(Some(last.value(r)));
            }
            // The cohort is the period of the first start event: the list is in period order.
            let Some(&cohort) = starts(r).first() else { continue };
            let entry = cohorts.entry(cohort).or_insert_with(|| Cohort { size: 0, retained: vec![0; m.periods + 1] });
            entry.size += 1;
            let ks = returns(r).iter().map(|&p| index(m.period, cohort, p)).filter(|&k| k >= 1);
            if m.on_or_after {
                let reached = ks.max().unwrap_or(0).min(m.periods as i64) as usize;
                entry.retained[1..=reached].iter_mut().for_each(|n| *n += 1);
            } else {
                ks.filter(|&k| k <= m.periods as i64).for_each(|k| entry.retained[k as usize] += 1);
            }
        }
    }
    rows_of(&cohorts, m, last_day, schema)
}

/// Per row, the `period` fields of a `days_active` list (first days of periods, ascending).
fn periods_of<'a>(column: &'a ArrayRef) -> Result<impl Fn(usize) -> &'a [i32] + 'a> {
    let Some(lists) = column.as_list_opt::<i32>() else {
        return internal_err!("retention: periods came as {}", column.data_type());
    };
    let Some(structs) = lists.values().as_struct_opt() else {
        return internal_err!("retention: periods came as {}", column.data_type());
    };
    if structs.column(0).data_type() != &DataType::Date32 {
        return internal_err!("retention: a period came as {}", structs.column(0).data_type());
    }
    let days = structs.column(0).as_primitive::<Date32Type>().values();
    let offsets = lists.value_offsets();
    Ok(move |r: usize| match lists.is_valid(r) {
        true => &days[offsets[r] as usize..offsets[r + 1] as usize],
        false => &[][..],
    })
}

fn rows_of(
    cohorts: &BTreeMap<i32, Cohort>,
    m: Matrix,
    last_day: Option<i32>,
    schema: SchemaRef,
) -> Result<RecordBatch> {
    let (mut start, mut size, mut period, mut retained, mut rate) = (vec![], vec![], vec![], vec![], vec![]);
    for (&cohort, c) in cohorts {
        // Periods after the data's last event are left out, not reported as zero.
        let observable = last_day.map_or(-1, |d| index(m.period, cohort, d));
        for k in 0..=m.periods {
            if (k as i64) > observable {
                break;
            }
            let kept = if k == 0 { c.size } else { c.retained[k] };
            start.push(cohort);
            size.push(c.size);
            period.push(k as i32);
            retained.push(kept);
            rate.push(kept as f64 / c.size as f64);
        }
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Date32Array::from(start)),
        Arc::new(Int64Array::from(size)),
        Arc::new(Int32Array::from(period)),
        Arc::new(Int64Array::from(retained)),
        Arc::new(Float64Array::from(rate)),
    ];
    Ok(RecordBatch::try_new(schema, columns)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn day(y: i32, m: u32, d: u32) -> i32 {
        (NaiveDate::from_ymd_opt(y, m, d).unwrap() - NaiveDate::from_ymd_opt(1970, 1, 1).unwrap()).num_days() as i32
    }

    #[test]
    fn periods_are_counted_on_the_calendar() {
        let monday = day(2025, 1, 6);
        assert_eq!(index(Period::Week, monday, day(2025, 1, 12)), 0);
        assert_eq!(index(Period::Week, monday, day(2025, 1, 13)), 1);
        assert_eq!(index(Period::Day, monday, day(2025, 1, 13)), 7);
        assert_eq!(index(Period::Month, day(2024, 12, 1), day(2025, 2, 28)), 2);
        assert_eq!(index(Period::Month, day(2025, 1, 1), day(2024, 12, 31)), -1);
    }
}
