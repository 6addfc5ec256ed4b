//! `experiment_user`: one user's part of an A/B test, in one pass over their events — the
//! variant and time of their first exposure, and every metric's value after it (and before
//! it, for CUPED).
//!
//! ```sql
//! -- per variant: users, and purchases per user within 7 days of their first exposure
//! SELECT u['variant'] AS variant, count(*) AS users, avg(u['values'][1]) AS purchases_per_user
//! FROM (SELECT experiment_user('count', INTERVAL '7 days', NULL, event_time,
//!                              CASE WHEN event = '$feature_flag_called'
//!                                   THEN json_get_str(properties, '$feature_flag_response') END,
//!                              event = 'purchase') AS u
//!       FROM events GROUP BY user_id)
//! WHERE u IS NOT NULL AND NOT u['multiple']
//! GROUP BY 1;
//! ```
//!
//! Why one aggregate: a user's metric values depend on their exposure time, which is known
//! only once all their events are seen. In SQL that is a per-user exposure table joined back
//! to every event and grouped again (the `experiment` report's first form: 43× the plain
//! funnel at 20M events, docs/benchmarks.md); here the events of a user are read once,
//! grouped by `user_id`, which the bucket rule runs without a repartition.
//!
//! Arguments: `layout` names the metrics in order (`'conversion 3, count, sum, ratio'`), and
//! so how the metric arguments after `exposure_variant` are read: a conversion of n steps
//! takes n boolean conditions (`window_funnel` semantics, the user converts on reaching the
//! last step); a count one condition; a sum one number (NULL: the row does not count); a
//! ratio two numbers (numerator, denominator). `window` (an INTERVAL, or NULL for no limit)
//! bounds the post-exposure period `[exposed_at, exposed_at + window]`; `cuped_period` (an
//! INTERVAL, or NULL for no CUPED) is the pre-exposure period `[exposed_at - period,
//! exposed_at)`. `exposure_variant` is the variant of an exposure row and NULL on any other.
//!
//! The result is NULL for a user with no exposure, else `{variant, multiple, values}`:
//! the variant of the first exposure (at equal times the least name), whether the user was
//! exposed to two or more variants, and two values per metric — conversion, count and sum:
//! after exposure, then before it (0 without CUPED); ratio: the numerator's sum, then the
//! denominator's, both after exposure.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, BooleanBuilder, Float64Builder, Int64Array, ListBuilder, PrimitiveArray,
    StringArray, StructArray,
};
use datafusion::arrow::buffer::BooleanBuffer;
use datafusion::arrow::buffer::{NullBuffer, OffsetBuffer};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Fields, Float64Type, Int64Type, UInt32Type, UInt64Type};
use datafusion::common::{exec_err, plan_err, Result};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDFImpl, Documentation, EmitTo, GroupsAccumulator, Signature, Volatility,
};

use crate::common::{
    check_time, is_text, literal_arg, literal_text, SingleGroup, TimeKind, DOC_SECTION_BEHAVIOURAL, MAX_CONDITIONS,
};
use crate::event_list::Event;
use crate::flat_groups::{list_column, FlatGroups};
use crate::funnel::{Funnel, FunnelModes};

const NAME: &str = "experiment_user";
const USAGE: &str = "experiment_user(layout, window, cuped_period, timestamp, exposure_variant, metric arguments...)";
/// The arguments before the metrics'.
const FIXED_ARGS: usize = 5;

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ExperimentUser {
    signature: Signature,
}

impl Default for ExperimentUser {
    fn default() -> Self {
        Self { signature: Signature::user_defined(Volatility::Immutable) }
    }
}

/// One metric of the layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MetricKind {
    /// Reaching the last of n steps.
    Conversion(usize),
    Count,
    Sum,
    Ratio,
}

impl MetricKind {
    fn parse_layout(text: &str) -> Result<Vec<Self>> {
        let mut metrics = vec![];
        for part in text.split(',').map(str::trim) {
            let words: Vec<&str> = part.split_whitespace().collect();
            let metric = match words.as_slice() {
                ["conversion", n] => match n.parse::<usize>() {
                    Ok(n) if (1..=MAX_CONDITIONS).contains(&n) => MetricKind::Conversion(n),
                    _ => return plan_err!("{NAME}: a conversion has 1 to {MAX_CONDITIONS} steps, got '{n}'"),
                },
                ["count"] => MetricKind::Count,
                ["sum"] => MetricKind::Sum,
                ["ratio"] => MetricKind::Ratio,
                _ => {
                    return plan_err!(
                        "{NAME}: unknown metric '{part}' in the layout (expected 'conversion <steps>', 'count', 'sum' or 'ratio', separated by commas)"
                    )
                }
            };
            metrics.push(metric);
        }
        Ok(metrics)
    }

    /// The metric's arguments: booleans for conversion and count, numbers for sum and ratio.
    fn arguments(self) -> (usize, DataType) {
        match self {
            MetricKind::Conversion(n) => (n, DataType::Boolean),
            MetricKind::Count => (1, DataType::Boolean),
            MetricKind::Sum => (1, DataType::Float64),
            MetricKind::Ratio => (2, DataType::Float64),
        }
    }
}

/// What a stored row is: `slot` 0.. in layout order, one per conversion, count and sum, two
/// per ratio.
#[derive(Debug, Clone, Copy)]
enum Slot {
    Conversion { metric: usize, steps: usize },
    Count { metric: usize },
    Sum { metric: usize },
    Numerator { metric: usize },
    Denominator { metric: usize },
}

/// The parameters every accumulator of one call shares.
#[derive(Debug)]
struct Parameters {
    kind: TimeKind,
    metrics: Vec<MetricKind>,
    slots: Vec<Slot>,
    /// In the timestamp's units; `None`: to the end of the data.
    window: Option<i64>,
    cuped_period: Option<i64>,
}

impl Parameters {
    fn from_args(args: &AccumulatorArgs) -> Result<Self> {
        let types: Vec<DataType> = args.expr_fields.iter().map(|f| f.data_type().clone()).collect();
        let kind = check_time(NAME, &types, 3, USAGE)?;
        let metrics = MetricKind::parse_layout(&literal_text(NAME, "layout", &args.exprs[0])?)?;
        let expected: usize = metrics.iter().map(|m| m.arguments().0).sum();
        if types.len() != FIXED_ARGS + expected {
            return plan_err!(
                "{NAME}: the layout names {expected} metric arguments, got {}; usage: {USAGE}",
                types.len().saturating_sub(FIXED_ARGS)
            );
        }
        let mut slots = vec![];
        let mut next = FIXED_ARGS;
        for (metric, &m) in metrics.iter().enumerate() {
            let (count, want) = m.arguments();
            if let Some(t) = types[next..next + count].iter().find(|t| **t != want) {
                return plan_err!("{NAME}: metric {} ({m:?}) takes {want} arguments, got {t}", metric + 1);
            }
            next += count;
            match m {
                MetricKind::Conversion(steps) => slots.push(Slot::Conversion { metric, steps }),
                MetricKind::Count => slots.push(Slot::Count { metric }),
                MetricKind::Sum => slots.push(Slot::Sum { metric }),
                MetricKind::Ratio => {
                    slots.extend([Slot::Numerator { metric }, Slot::Denominator { metric }]);
                }
            }
        }
        let period = |index: usize, what: &str| -> Result<Option<i64>> {
            let value = literal_arg(NAME, what, &args.exprs[index])?;
            if value.is_null() {
                return Ok(None);
            }
            kind.window(NAME, value).map(Some)
        };
        Ok(Self { kind, window: period(1, "window")?, cuped_period: period(2, "cuped period")?, metrics, slots })
    }
}

static DOCUMENTATION: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        DOC_SECTION_BEHAVIOURAL,
        "Returns one user's part of an A/B test from their events, in one pass: {variant, multiple, values} — the \
         variant of their first exposure (at equal times the least name), whether they saw two or more variants, \
         and two values per metric of `layout` (conversion, count, sum: after exposure within `window`, then in \
         `cuped_period` before it, 0 without; ratio: numerator and denominator sums after exposure). NULL for a \
         user never exposed. The `experiment` report's per-user step (docs/experiments.md).",
        "experiment_user(layout, window, cuped_period, timestamp, exposure_variant, metric arguments...)",
    )
    .with_sql_example(
        r#"```sql
-- per variant: users, and purchases per user within 7 days of their first exposure
SELECT u['variant'] AS variant, count(*) AS users, avg(u['values'][1]) AS purchases_per_user
FROM (SELECT experiment_user('count', INTERVAL '7 days', NULL, event_time,
                             CASE WHEN event = '$feature_flag_called'
                                  THEN json_get_str(properties, '$feature_flag_response') END,
                             event = 'purchase') AS u
      FROM events GROUP BY user_id)
WHERE u IS NOT NULL AND NOT u['multiple']
GROUP BY 1;
```"#,
    )
    .with_argument(
        "layout",
        "Constant text: the metrics in order, separated by commas: 'conversion <steps>', 'count', 'sum', 'ratio'.",
    )
    .with_argument("window", "Constant INTERVAL after the exposure in which metrics count, or NULL for no limit.")
    .with_argument("cuped_period", "Constant INTERVAL before the exposure measured for CUPED, or NULL for none.")
    .with_argument("timestamp", "The event time: TIMESTAMP, DATE or an integer.")
    .with_argument("exposure_variant", "Text: the variant on an exposure row, NULL on any other row.")
    .with_argument(
        "metric arguments",
        "Per metric: a conversion's step conditions (boolean; a row with a NULL step is ignored, as in \
         window_funnel), a count's condition, a sum's number (NULL: not counted), a ratio's numerator and \
         denominator (numbers).",
    )
    .with_related_udf("window_funnel")
    .build()
});

fn return_fields() -> Fields {
    Fields::from(vec![
        Field::new("variant", DataType::Utf8, true),
        Field::new("multiple", DataType::Boolean, true),
        Field::new("values", DataType::new_list(DataType::Float64, true), true),
    ])
}

impl AggregateUDFImpl for ExperimentUser {
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
        if arg_types.len() <= FIXED_ARGS {
            return plan_err!(
                "{NAME} takes at least {} arguments, got {}; usage: {USAGE}",
                FIXED_ARGS + 1,
                arg_types.len()
            );
        }
        check_time(NAME, arg_types, 3, USAGE)?;
        if !is_text(&arg_types[0]) {
            return plan_err!("{NAME}: argument 1 must be the layout as text, got {}; usage: {USAGE}", arg_types[0]);
        }
        if !matches!(arg_types[4], DataType::Null) && !is_text(&arg_types[4]) {
            return plan_err!("{NAME}: argument 5 must be the exposure's variant as text, got {}", arg_types[4]);
        }
        let mut coerced = arg_types.to_vec();
        coerced[4] = DataType::Utf8View;
        for (i, t) in arg_types.iter().enumerate().skip(FIXED_ARGS) {
            coerced[i] = match t {
                DataType::Boolean => DataType::Boolean,
                t if t.is_numeric() => DataType::Float64,
                // An untyped NULL: a condition never true (a sum's NULL is typed by its CAST).
                DataType::Null => DataType::Boolean,
                other => {
                    return plan_err!("{NAME}: argument {} must be a boolean condition or a number, got {other}", i + 1)
                }
            };
        }
        Ok(coerced)
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Struct(return_fields()))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        let field = |what: &str, t: DataType| Arc::new(Field::new(format!("{}[{what}]", args.name), t, true));
        Ok(vec![
            field("exposed_at", DataType::Int64),
            field("first_variant", DataType::Utf8),
            field("any_variant", DataType::Utf8),
            field("several", DataType::Boolean),
            field("times", DataType::new_list(DataType::Int64, true)),
            field("slots", DataType::new_list(DataType::UInt32, true)),
            field("payloads", DataType::new_list(DataType::UInt64, true)),
        ])
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        let parameters = Arc::new(Parameters::from_args(&args)?);
        Ok(Box::new(SingleGroup::new(Arc::new(move || Box::new(UserAccumulator::new(parameters.clone())) as _))))
    }

    fn groups_accumulator_supported(&self, _args: AccumulatorArgs) -> bool {
        true
    }

    fn create_groups_accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn GroupsAccumulator>> {
        Ok(Box::new(UserAccumulator::new(Arc::new(Parameters::from_args(&args)?))))
    }
}

/// One stored metric row. `payload`: a conversion's step mask, a sum's or ratio part's f64
/// bits, nothing for a count. Packed: 20 bytes instead of 24.
#[derive(Debug, Clone, Copy, Default)]
#[repr(C, packed(4))]
struct Row {
    time: i64,
    slot: u32,
    payload: u64,
}

const NO_VARIANT: u32 = u32::MAX;

/// A user's exposures so far, kept reduced: first (time, variant), and whether two variants
/// were seen (`any` is some variant seen; another one differing from it sets `several`).
#[derive(Debug, Clone, Copy)]
struct Exposure {
    at: i64,
    first: u32,
    any: u32,
    several: bool,
}

impl Default for Exposure {
    fn default() -> Self {
        Self { at: i64::MAX, first: NO_VARIANT, any: NO_VARIANT, several: false }
    }
}

struct UserAccumulator {
    parameters: Arc<Parameters>,
    rows: FlatGroups<Row>,
    exposures: Vec<Exposure>,
    /// Variant names, interned: a test has a handful.
    variants: Vec<String>,
    variant_ids: HashMap<String, u32>,
    /// Bytes held by `variants`, for `size`.
    variant_bytes: usize,
}

impl UserAccumulator {
    fn new(parameters: Arc<Parameters>) -> Self {
        Self {
            parameters,
            rows: FlatGroups::new(),
            exposures: Vec::new(),
            variants: Vec::new(),
            variant_ids: HashMap::new(),
            variant_bytes: 0,
        }
    }

    fn resize(&mut self, total_num_groups: usize) -> Result<()> {
        self.rows.resize(total_num_groups)?;
        if self.exposures.len() < total_num_groups {
            self.exposures.resize(total_num_groups, Exposure::default());
        }
        Ok(())
    }

    fn intern(&mut self, name: &str) -> u32 {
        // A test has a handful of variants: comparing with each beats hashing the name.
        if self.variants.len() <= 8 {
            if let Some(id) = self.variants.iter().position(|v| v == name) {
                return id as u32;
            }
        } else if let Some(&id) = self.variant_ids.get(name) {
            return id;
        }
        let id = self.variants.len() as u32;
        self.variants.push(name.to_string());
        self.variant_ids.insert(name.to_string(), id);
        self.variant_bytes += 2 * name.len() + 64;
        id
    }

    /// Records an exposure at `at` to `variant`.
    fn expose(&mut self, group: usize, at: i64, variant: u32) {
        let e = &mut self.exposures[group];
        if e.first == NO_VARIANT {
            *e = Exposure { at, first: variant, any: variant, several: false };
            return;
        }
        e.several |= variant != e.any;
        if at < e.at || (at == e.at && self.variants[variant as usize] < self.variants[e.first as usize]) {
            e.at = at;
            e.first = variant;
        }
    }

    /// Stores input row `row` for `slot`, unless its time is NULL (or a FILTER left it out).
    #[inline]
    fn push(&mut self, slot: usize, times: &Int64Array, groups: &[usize], row: usize, payload: u64) {
        if times.is_valid(row) {
            self.rows.push(groups[row], Row { time: times.value(row), slot: slot as u32, payload });
        }
    }

    /// One user's values: two per metric.
    fn values(&self, exposure: &Exposure, rows: &[Row], scratch: &mut Scratch) -> Vec<f64> {
        let p = &self.parameters;
        let at = exposure.at;
        let post_end = p.window.map_or(i64::MAX, |w| at.saturating_add(w));
        let pre_start = p.cuped_period.map(|c| at.saturating_sub(c));
        let mut values = vec![0.0; 2 * p.metrics.len()];
        for funnel in scratch.post.iter_mut().chain(scratch.pre.iter_mut()) {
            funnel.clear();
        }
        for &Row { time, slot, payload } in rows {
            let post = time >= at && time <= post_end;
            let pre = pre_start.is_some_and(|start| time >= start && time < at);
            if !post && !pre {
                continue;
            }
            let f = f64::from_bits(payload);
            match p.slots[slot as usize] {
                Slot::Conversion { .. } => {
                    let events = if post { &mut scratch.post[slot as usize] } else { &mut scratch.pre[slot as usize] };
                    events.push(Event { time, mask: payload as u32 });
                }
                Slot::Count { metric } => values[2 * metric + usize::from(pre)] += 1.0,
                Slot::Sum { metric } => values[2 * metric + usize::from(pre)] += f,
                Slot::Numerator { metric } if post => values[2 * metric] += f,
                Slot::Denominator { metric } if post => values[2 * metric + 1] += f,
                Slot::Numerator { .. } | Slot::Denominator { .. } => {}
            }
        }
        for (slot, &s) in p.slots.iter().enumerate() {
            if let Slot::Conversion { metric, steps } = s {
                let funnel = Funnel { steps, window: p.window.unwrap_or(i64::MAX), modes: FunnelModes::default() };
                let converted = |events: &[Event], funnel_scratch: &mut Vec<(i64, u8, u32)>| {
                    if funnel.run(events, funnel_scratch, false).level >= steps {
                        1.0
                    } else {
                        0.0
                    }
                };
                values[2 * metric] = converted(&scratch.post[slot], &mut scratch.funnel);
                if p.cuped_period.is_some() {
                    values[2 * metric + 1] = converted(&scratch.pre[slot], &mut scratch.funnel);
                }
            }
        }
        values
    }

    fn take(&mut self, emit_to: EmitTo) -> (crate::flat_groups::Grouped<Row>, Vec<Exposure>) {
        (self.rows.take(emit_to), emit_to.take_needed(&mut self.exposures))
    }

    fn variant_column(&self, ids: impl Iterator<Item = u32>) -> StringArray {
        ids.map(|id| (id != NO_VARIANT).then(|| self.variants[id as usize].as_str())).collect()
    }
}

/// The rows of `array` that are not NULL.
fn non_null_rows(array: &dyn Array) -> BooleanBuffer {
    array.logical_nulls().map_or_else(|| BooleanBuffer::new_set(array.len()), |n| n.inner().clone())
}

/// Where a condition is true (NULL counts as false).
fn true_bits(condition: &BooleanArray) -> BooleanBuffer {
    match condition.nulls() {
        Some(nulls) => condition.values() & nulls.inner(),
        None => condition.values().clone(),
    }
}

/// Buffers reused across users: per slot (used by conversions), its post- and pre-exposure events.
struct Scratch {
    post: Vec<Vec<Event>>,
    pre: Vec<Vec<Event>>,
    funnel: Vec<(i64, u8, u32)>,
}

impl GroupsAccumulator for UserAccumulator {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.resize(total_num_groups)?;
        let times = self.parameters.kind.values(&values[3])?;
        let mut valid = times.logical_nulls();
        if let Some(filter) = opt_filter {
            valid = NullBuffer::union(valid.as_ref(), Some(&NullBuffer::new(true_bits(filter))));
        }
        let times = Int64Array::new(times.as_primitive::<Int64Type>().values().clone(), valid);
        // Each pass visits only the rows that matter to it (set bits, non-NULL values): most
        // events are neither exposures nor metric events.
        let variants = values[4].as_string_view();
        let exposure_rows = non_null_rows(variants);
        for row in exposure_rows.set_indices() {
            if times.is_valid(row) {
                let id = self.intern(variants.value(row));
                self.expose(group_indices[row], times.value(row), id);
            }
        }
        let parameters = self.parameters.clone();
        let mut next = FIXED_ARGS;
        for (slot, s) in parameters.slots.iter().enumerate() {
            match *s {
                Slot::Conversion { steps, .. } => {
                    let conditions: Vec<&BooleanArray> =
                        values[next..next + steps].iter().map(|c| c.as_boolean()).collect();
                    next += steps;
                    let mut any = true_bits(conditions[0]);
                    let mut complete = conditions[0].logical_nulls();
                    for condition in &conditions[1..] {
                        any = &any | &true_bits(condition);
                        complete = NullBuffer::union(complete.as_ref(), condition.logical_nulls().as_ref());
                    }
                    for row in any.set_indices() {
                        // A row with a NULL step is ignored, as window_funnel ignores it.
                        if complete.as_ref().is_some_and(|c| c.is_null(row)) {
                            continue;
                        }
                        let mask = conditions
                            .iter()
                            .enumerate()
                            .fold(0u32, |mask, (bit, c)| mask | (u32::from(c.value(row)) << bit));
                        self.push(slot, &times, group_indices, row, u64::from(mask));
                    }
                }
                Slot::Count { .. } => {
                    for row in true_bits(values[next].as_boolean()).set_indices() {
                        self.push(slot, &times, group_indices, row, 0);
                    }
                    next += 1;
                }
                Slot::Sum { .. } | Slot::Numerator { .. } | Slot::Denominator { .. } => {
                    let numbers = values[next].as_primitive::<Float64Type>();
                    next += 1;
                    let present = non_null_rows(numbers);
                    for row in present.set_indices() {
                        // Zeros add nothing: not stored.
                        let value = numbers.value(row);
                        if value != 0.0 {
                            self.push(slot, &times, group_indices, row, value.to_bits());
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let (mut grouped, exposures) = self.take(emit_to);
        let slots = self.parameters.slots.len();
        let mut scratch = Scratch { post: vec![Vec::new(); slots], pre: vec![Vec::new(); slots], funnel: Vec::new() };
        let mut multiple = BooleanBuilder::with_capacity(exposures.len());
        let mut values = ListBuilder::new(Float64Builder::new());
        for (rows, exposure) in grouped.groups_mut().zip(&exposures) {
            if exposure.first == NO_VARIANT {
                multiple.append_null();
                values.append_null();
                continue;
            }
            multiple.append_value(exposure.several);
            values.values().append_slice(&self.values(exposure, rows, &mut scratch));
            values.append(true);
        }
        let variant = self.variant_column(exposures.iter().map(|e| e.first));
        let nulls = NullBuffer::from(exposures.iter().map(|e| e.first != NO_VARIANT).collect::<Vec<_>>());
        let columns: Vec<ArrayRef> = vec![Arc::new(variant), Arc::new(multiple.finish()), Arc::new(values.finish())];
        Ok(Arc::new(StructArray::try_new(return_fields(), columns, Some(nulls))?))
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        let (grouped, exposures) = self.take(emit_to);
        let offsets: OffsetBuffer<i32> = grouped.list_offsets(NAME)?;
        let exposed = |e: &Exposure| e.first != NO_VARIANT;
        let rows = &grouped.values;
        Ok(vec![
            Arc::new(exposures.iter().map(|e| exposed(e).then_some(e.at)).collect::<Int64Array>()),
            Arc::new(self.variant_column(exposures.iter().map(|e| e.first))),
            Arc::new(self.variant_column(exposures.iter().map(|e| e.any))),
            Arc::new(exposures.iter().map(|e| Some(e.several)).collect::<BooleanArray>()),
            list_column(DataType::Int64, &offsets, Arc::new(rows.iter().map(|r| r.time).collect::<Int64Array>()))?,
            list_column(
                DataType::UInt32,
                &offsets,
                Arc::new(PrimitiveArray::<UInt32Type>::from_iter_values(rows.iter().map(|r| r.slot))),
            )?,
            list_column(
                DataType::UInt64,
                &offsets,
                Arc::new(PrimitiveArray::<UInt64Type>::from_iter_values(rows.iter().map(|r| r.payload))),
            )?,
        ])
    }

    fn merge_batch(&mut self, values: &[ArrayRef], group_indices: &[usize], total_num_groups: usize) -> Result<()> {
        self.resize(total_num_groups)?;
        let exposed_at = values[0].as_primitive::<Int64Type>();
        let (first, any, several) =
            (values[1].as_string::<i32>(), values[2].as_string::<i32>(), values[3].as_boolean());
        let times = values[4].as_list::<i32>();
        let (time_values, slots, payloads) = (
            times.values().as_primitive::<Int64Type>().values(),
            values[5].as_list::<i32>().values().as_primitive::<UInt32Type>().values().clone(),
            values[6].as_list::<i32>().values().as_primitive::<UInt64Type>().values().clone(),
        );
        let offsets = times.value_offsets();
        for (row, &group) in group_indices.iter().enumerate() {
            if exposed_at.is_valid(row) {
                let (first, any) = (self.intern(first.value(row)), self.intern(any.value(row)));
                self.expose(group, exposed_at.value(row), first);
                let e = &mut self.exposures[group];
                e.several |= several.value(row) || any != e.any;
            }
            if times.is_null(row) {
                continue;
            }
            for i in offsets[row] as usize..offsets[row + 1] as usize {
                if slots[i] as usize >= self.parameters.slots.len() {
                    return exec_err!("{NAME}: a state row names slot {}, past the layout's", slots[i]);
                }
                self.rows.push(group, Row { time: time_values[i], slot: slots[i], payload: payloads[i] });
            }
        }
        Ok(())
    }

    fn convert_to_state(&self, values: &[ArrayRef], opt_filter: Option<&BooleanArray>) -> Result<Vec<ArrayRef>> {
        // Each row its own group: the same reading as `update_batch`, so one definition.
        let rows = values.first().map_or(0, |v| v.len());
        let mut one_per_row = UserAccumulator::new(self.parameters.clone());
        one_per_row.update_batch(values, &(0..rows).collect::<Vec<_>>(), opt_filter, rows)?;
        one_per_row.state(EmitTo::All)
    }

    fn size(&self) -> usize {
        self.rows.size() + self.exposures.capacity() * size_of::<Exposure>() + self.variant_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_layout_names_each_metric_and_its_steps() {
        assert_eq!(
            MetricKind::parse_layout("conversion 3, count,sum , ratio").unwrap(),
            [MetricKind::Conversion(3), MetricKind::Count, MetricKind::Sum, MetricKind::Ratio]
        );
        for (bad, message) in [
            ("conversion", "unknown metric 'conversion'"),
            ("conversion 0", "1 to 32 steps, got '0'"),
            ("count, median", "unknown metric 'median'"),
        ] {
            let error = MetricKind::parse_layout(bad).unwrap_err().to_string();
            assert!(error.contains(message), "{bad}: {error}");
        }
    }

    #[test]
    fn exposures_merge_to_the_first_time_and_least_name_and_notice_a_second_variant() {
        let parameters =
            Parameters { kind: TimeKind::Timestamp, metrics: vec![], slots: vec![], window: None, cuped_period: None };
        let mut a = UserAccumulator::new(Arc::new(parameters));
        a.resize(2).unwrap();
        let (b, c) = (a.intern("b"), a.intern("c"));
        a.expose(0, 10, c);
        a.expose(0, 10, b); // same time: the least name wins
        a.expose(0, 20, c);
        a.expose(1, 5, b);
        a.expose(1, 7, b);
        let first = |e: &Exposure| (e.at, e.first, e.several);
        assert_eq!(first(&a.exposures[0]), (10, b, true));
        assert_eq!(first(&a.exposures[1]), (5, b, false));
    }

    /// Partial states (split input, spilled or sent to another executor) merge to the answer
    /// of one accumulator over all rows, through `state`, `merge_batch` and `convert_to_state`.
    #[test]
    fn merged_states_give_the_same_users_as_one_pass() {
        use datafusion::arrow::array::{Float64Array, TimestampMicrosecondArray};
        let parameters = Arc::new(Parameters {
            kind: TimeKind::Timestamp,
            metrics: vec![MetricKind::Conversion(2), MetricKind::Count, MetricKind::Sum],
            slots: vec![Slot::Conversion { metric: 0, steps: 2 }, Slot::Count { metric: 1 }, Slot::Sum { metric: 2 }],
            window: Some(100),
            cuped_period: Some(50),
        });
        // (group, time, exposure variant, step 1, step 2, count, sum)
        type TestRow<'a> = (usize, i64, Option<&'a str>, bool, bool, bool, Option<f64>);
        let rows: &[TestRow] = &[
            (0, 10, None, true, false, true, Some(2.0)), // before exposure: the CUPED period
            (0, 60, Some("test"), false, false, false, None),
            (0, 70, None, true, false, true, Some(5.0)),
            (0, 90, None, false, true, false, Some(1.5)),
            (0, 200, None, true, true, true, Some(100.0)), // after the window
            (1, 5, Some("control"), false, false, false, None),
            (1, 6, Some("test"), false, false, true, None),
            (2, 1, None, true, true, true, Some(3.0)), // never exposed
        ];
        let batch = |rows: &[TestRow]| -> (Vec<ArrayRef>, Vec<usize>) {
            let values: Vec<ArrayRef> = vec![
                Arc::new(StringArray::from(vec!["layout"; rows.len()])),
                Arc::new(StringArray::from(vec!["window"; rows.len()])),
                Arc::new(StringArray::from(vec!["cuped"; rows.len()])),
                Arc::new(TimestampMicrosecondArray::from(rows.iter().map(|r| r.1).collect::<Vec<_>>())),
                Arc::new(rows.iter().map(|r| r.2).collect::<datafusion::arrow::array::StringViewArray>()),
                Arc::new(rows.iter().map(|r| Some(r.3)).collect::<BooleanArray>()),
                Arc::new(rows.iter().map(|r| Some(r.4)).collect::<BooleanArray>()),
                Arc::new(rows.iter().map(|r| Some(r.5)).collect::<BooleanArray>()),
                Arc::new(rows.iter().map(|r| r.6).collect::<Float64Array>()),
            ];
            (values, rows.iter().map(|r| r.0).collect())
        };
        let users = |a: &mut UserAccumulator| -> Vec<Option<(String, bool, Vec<f64>)>> {
            let result = a.evaluate(EmitTo::All).unwrap();
            let result = result.as_struct();
            (0..result.len())
                .map(|i| {
                    result.is_valid(i).then(|| {
                        let values = result.column(2).as_list::<i32>().value(i);
                        (
                            result.column(0).as_string::<i32>().value(i).to_string(),
                            result.column(1).as_boolean().value(i),
                            values.as_primitive::<Float64Type>().values().to_vec(),
                        )
                    })
                })
                .collect()
        };
        let mut whole = UserAccumulator::new(parameters.clone());
        let (values, groups) = batch(rows);
        whole.update_batch(&values, &groups, None, 3).unwrap();
        let expected = users(&mut whole);
        assert_eq!(
            expected,
            vec![
                // converts after exposure (70 → 90), one count, 5 + 1.5; before: step 1 only, 1, 2
                Some(("test".to_string(), false, vec![1.0, 0.0, 1.0, 1.0, 6.5, 2.0])),
                Some(("control".to_string(), true, vec![0.0, 0.0, 1.0, 0.0, 0.0, 0.0])),
                None,
            ]
        );
        // Split in two, each half's state merged; and every row converted to its own state.
        let mut merged = UserAccumulator::new(parameters.clone());
        for half in [&rows[..3], &rows[3..]] {
            let mut part = UserAccumulator::new(parameters.clone());
            let (values, groups) = batch(half);
            part.update_batch(&values, &groups, None, 3).unwrap();
            merged.merge_batch(&part.state(EmitTo::All).unwrap(), &[0, 1, 2], 3).unwrap();
        }
        assert_eq!(users(&mut merged), expected);
        let mut converted = UserAccumulator::new(parameters);
        let states = whole.convert_to_state(&values, None).unwrap();
        converted.merge_batch(&states, &groups, 3).unwrap();
        assert_eq!(users(&mut converted), expected);
    }
}
