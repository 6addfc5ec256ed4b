//! `session_transitions`: the moves between consecutive events in each session of a group —
//! what a paths report counts — per user in one aggregation, without sorting all events.
//!
//! ```sql
//! SELECT t['from'] AS from_event, t['to'] AS to_event, count(*) AS transitions, count(DISTINCT user_id) AS users
//! FROM (SELECT user_id, unnest(session_transitions(event_time, event, INTERVAL '30 minutes')) AS t
//!       FROM events GROUP BY user_id)
//! GROUP BY 1, 2 ORDER BY transitions DESC, from_event, to_event LIMIT 20;
//! ```
//!
//! `session_transitions(ts, event, gap [, start, end])` → a list of `{from, to}` pairs:
//! - a group's rows are ordered by (time, event); a session ends where the next row is more
//!   than `gap` later (as `session_number`);
//! - consecutive repeats of an event within a session collapse into the first;
//! - with the conditions `start` and `end`: a session keeps only its events at or after the
//!   first time `start` holds (a session where it never holds is dropped), then only those at
//!   or before the last time `end` holds among them (likewise);
//! - each consecutive pair of the kept events is one transition, sessions in order.
//!
//! Rows with a NULL time or event are ignored; a NULL condition counts as false.
//!
//! Why an aggregate: the same report as window functions (`session_number`, `lag`, `lead`
//! over PARTITION BY user ORDER BY time) sorts every event globally; at 100M events that sort
//! needed more memory than the pool could account for and failed. Here each user's events are
//! sorted alone, when the group is emitted.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, ListArray, PrimitiveArray, StringBuilder, StructArray, UInt8Array,
};
use datafusion::arrow::buffer::{NullBuffer, OffsetBuffer};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Fields, Int64Type, UInt8Type};
use datafusion::common::{exec_err, plan_err, Result};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDFImpl, Documentation, DocumentationBuilder, EmitTo, GroupsAccumulator, Signature,
    Volatility,
};

use crate::common::{
    check_conditions, check_time, is_text, literal_arg, time_values, SingleGroup, TimeKind, DOC_SECTION_BEHAVIOURAL,
};
use crate::flat_groups::{list_column, FlatGroups};

const NAME: &str = "session_transitions";
const COUNTS_NAME: &str = "session_transition_counts";
const USAGE: &str = "session_transitions(timestamp, event, gap [, start_condition, end_condition])";

const START: u8 = 1;
const END: u8 = 2;

/// `session_transitions`, or with `counted` `session_transition_counts`: the same
/// transitions, each distinct pair once per group with its count.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct SessionTransitions {
    signature: Signature,
    counted: bool,
}

impl Default for SessionTransitions {
    fn default() -> Self {
        Self { signature: Signature::user_defined(Volatility::Immutable), counted: false }
    }
}

impl SessionTransitions {
    /// `session_transition_counts`: why a second function: the paths report counts each pair's
    /// transitions and distinct users; from the pairs it needed a DISTINCT over (pair, user)
    /// of every transition, from the counted pairs a sum and a count of far fewer rows.
    pub fn counted() -> Self {
        Self { counted: true, ..Self::default() }
    }
}

fn pair_fields(counted: bool) -> Fields {
    let mut fields = vec![Field::new("from", DataType::Utf8, false), Field::new("to", DataType::Utf8, false)];
    if counted {
        fields.push(Field::new("transitions", DataType::Int64, false));
    }
    Fields::from(fields)
}

/// The arguments both functions take, documented once.
fn with_arguments(builder: DocumentationBuilder) -> DocumentationBuilder {
    builder
        .with_argument("timestamp", "The event time: a TIMESTAMP.")
        .with_argument("event", "The event name: text.")
        .with_argument(
            "gap",
            "Constant session gap: an INTERVAL or seconds; a gap of exactly `gap` stays in the session.",
        )
        .with_argument(
            "start",
            "Optional boolean condition where a session's path starts (TRUE: no bound); needs `end`.",
        )
        .with_argument("end", "Optional boolean condition where a session's path ends (TRUE: no bound).")
}

static DOCUMENTATION: LazyLock<Documentation> = LazyLock::new(|| {
    let builder = Documentation::builder(
        DOC_SECTION_BEHAVIOURAL,
        "Returns the moves between consecutive events in each session of the group, as a list of {from, to} \
         text pairs (what the paths report counts). Rows are ordered by (time, event); a session ends where \
         the next row is more than `gap` later; consecutive repeats of an event collapse into the first. \
         With `start` and `end`, a session keeps its events from the first time `start` holds to the last \
         time `end` holds. Rows with a NULL time or event are ignored.",
        "session_transitions(timestamp, event, gap [, start, end])",
    )
    .with_sql_example(
        r#"```sql
-- the most frequent moves between events within 30-minute sessions
SELECT t['from'] AS from_event, t['to'] AS to_event, count(*) AS transitions, count(DISTINCT user_id) AS users
FROM (SELECT user_id, unnest(session_transitions(event_time, event, INTERVAL '30 minutes')) AS t
      FROM events GROUP BY user_id)
GROUP BY 1, 2 ORDER BY transitions DESC, from_event, to_event LIMIT 20;
```"#,
    );
    with_arguments(builder).with_related_udf("session_number").build()
});

static COUNTS_DOCUMENTATION: LazyLock<Documentation> = LazyLock::new(|| {
    let builder = Documentation::builder(
        DOC_SECTION_BEHAVIOURAL,
        "Returns the transitions of session_transitions counted: each distinct {from, to} pair of the group \
         once, with `transitions`, how many times the group made that move (pairs in from, to order). \
         Summing `transitions` and counting rows per pair over all groups gives each move's transitions and \
         groups (users) without a DISTINCT.",
        "session_transition_counts(timestamp, event, gap [, start, end])",
    )
    .with_sql_example(
        r#"```sql
-- the most frequent moves between events within 30-minute sessions, and how many users made them
SELECT t['from'] AS from_event, t['to'] AS to_event, sum(t['transitions']) AS transitions, count(*) AS users
FROM (SELECT unnest(session_transition_counts(event_time, event, INTERVAL '30 minutes')) AS t
      FROM events GROUP BY user_id)
GROUP BY 1, 2 ORDER BY transitions DESC, from_event, to_event LIMIT 20;
```"#,
    );
    with_arguments(builder).with_related_udf("session_transitions").build()
});

impl AggregateUDFImpl for SessionTransitions {
    fn name(&self) -> &str {
        if self.counted {
            COUNTS_NAME
        } else {
            NAME
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(if self.counted { &COUNTS_DOCUMENTATION } else { &DOCUMENTATION })
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        if arg_types.len() != 3 && arg_types.len() != 5 {
            return plan_err!("{NAME} takes 3 or 5 arguments, got {}; usage: {USAGE}", arg_types.len());
        }
        if check_time(NAME, arg_types, 0, USAGE)? != TimeKind::Timestamp {
            return plan_err!("{NAME}: argument 1 must be a TIMESTAMP, got {}; usage: {USAGE}", arg_types[0]);
        }
        if !is_text(&arg_types[1]) {
            return plan_err!("{NAME}: argument 2 must be the event as text, got {}; usage: {USAGE}", arg_types[1]);
        }
        // start and end (arguments 4 and 5) are conditions; their count is checked above.
        check_conditions(NAME, arg_types, 3, 0, USAGE)?;
        Ok(arg_types.to_vec())
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::new_list(DataType::Struct(pair_fields(self.counted)), true))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![
            Arc::new(Field::new(format!("{}[times]", args.name), DataType::new_list(DataType::Int64, true), true)),
            Arc::new(Field::new(format!("{}[events]", args.name), DataType::new_list(DataType::Utf8, true), true)),
            Arc::new(Field::new(format!("{}[flags]", args.name), DataType::new_list(DataType::UInt8, true), true)),
        ])
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        let (gap, counted) = (Self::gap(&args)?, self.counted);
        Ok(Box::new(SingleGroup::new(Arc::new(move || Box::new(TransitionsAccumulator::new(gap, counted)) as _))))
    }

    fn groups_accumulator_supported(&self, _args: AccumulatorArgs) -> bool {
        true
    }

    fn create_groups_accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn GroupsAccumulator>> {
        Ok(Box::new(TransitionsAccumulator::new(Self::gap(&args)?, self.counted)))
    }
}

impl SessionTransitions {
    /// The session gap in microseconds.
    fn gap(args: &AccumulatorArgs) -> Result<i64> {
        TimeKind::Timestamp.window(NAME, literal_arg(NAME, "gap", &args.exprs[2])?)
    }
}

/// One stored row: its time, its event (an index into the accumulator's names) and whether
/// the start and end conditions held.
#[derive(Debug, Clone, Copy, Default)]
struct Row {
    time: i64,
    event: u32,
    flags: u8,
}

struct TransitionsAccumulator {
    gap: i64,
    /// Each distinct pair once per group, with its count (`session_transition_counts`).
    counted: bool,
    rows: FlatGroups<Row>,
    /// Event names, each stored once: rows refer to them by index.
    names: Vec<String>,
    /// Short names (inline in their 16-byte view) by view; others by text.
    short: HashMap<u128, u32>,
    long: HashMap<String, u32>,
    /// Bytes held by the names and their indexes, kept so that `size()` is O(1).
    name_bytes: usize,
}

impl TransitionsAccumulator {
    fn name(&self) -> &'static str {
        if self.counted {
            COUNTS_NAME
        } else {
            NAME
        }
    }

    fn new(gap: i64, counted: bool) -> Self {
        Self {
            gap,
            counted,
            rows: FlatGroups::new(),
            names: Vec::new(),
            short: HashMap::new(),
            long: HashMap::new(),
            name_bytes: 0,
        }
    }

    fn intern(&mut self, name: &str, view: u128) -> u32 {
        let (names, name_bytes) = (&mut self.names, &mut self.name_bytes);
        let mut add = || {
            names.push(name.to_string());
            // the text, once in `names` and once as a `long` key, and the index entries
            *name_bytes += 2 * name.len() + 64;
            (names.len() - 1) as u32
        };
        if name.len() <= 12 {
            *self.short.entry(view).or_insert_with(add)
        } else {
            match self.long.get(name) {
                Some(&id) => id,
                None => {
                    let id = add();
                    self.long.insert(name.to_string(), id);
                    id
                }
            }
        }
    }

    /// Stores the rows of `times`, `events` and `flags` (per row) in their groups.
    fn store(
        &mut self,
        times: &[i64],
        valid: &NullBuffer,
        events: &ArrayRef,
        flags: impl Fn(usize) -> u8,
        group_of: impl Fn(usize) -> usize,
    ) -> Result<()> {
        let events = cast(events, &DataType::Utf8View)?;
        let events = events.as_string_view();
        for row in valid.valid_indices() {
            let event = self.intern(events.value(row), events.views()[row]);
            self.rows.push(group_of(row), Row { time: times[row], event, flags: flags(row) });
        }
        Ok(())
    }

    /// The transitions of one group's rows (any order) into `out`.
    fn transitions(&self, rows: &mut [Row], out: &mut Vec<(u32, u32)>) {
        rows.sort_unstable_by(|a, b| {
            a.time.cmp(&b.time).then_with(|| self.names[a.event as usize].cmp(&self.names[b.event as usize]))
        });
        let mut session: Vec<Row> = Vec::new();
        let mut previous_time = None;
        for &row in rows.iter() {
            if previous_time.is_some_and(|t: i64| row.time - t > self.gap) {
                Self::session_transitions(&session, out);
                session.clear();
            }
            previous_time = Some(row.time);
            if session.last().is_none_or(|last| last.event != row.event) {
                session.push(row);
            }
        }
        Self::session_transitions(&session, out);
    }

    /// One session's transitions, between its first start and its last end.
    fn session_transitions(session: &[Row], out: &mut Vec<(u32, u32)>) {
        let Some(start) = session.iter().filter(|r| r.flags & START != 0).map(|r| r.time).min() else { return };
        let after_start: Vec<&Row> = session.iter().filter(|r| r.time >= start).collect();
        let Some(end) = after_start.iter().filter(|r| r.flags & END != 0).map(|r| r.time).max() else { return };
        let kept: Vec<&Row> = after_start.into_iter().filter(|r| r.time <= end).collect();
        out.extend(kept.windows(2).map(|w| (w[0].event, w[1].event)));
    }
}

/// Per row: whether it counts (time and event present, not filtered out) and its flags.
fn row_flags(values: &[ArrayRef], opt_filter: Option<&BooleanArray>) -> (NullBuffer, Vec<u8>) {
    let rows = values[0].len();
    let mut valid = NullBuffer::union(values[0].logical_nulls().as_ref(), values[1].logical_nulls().as_ref())
        .unwrap_or_else(|| NullBuffer::new_valid(rows));
    if let Some(filter) = opt_filter {
        let keep = NullBuffer::union(Some(&NullBuffer::new(filter.values().clone())), filter.nulls());
        valid = NullBuffer::union(Some(&valid), keep.as_ref()).expect("two buffers");
    }
    let mut flags = vec![START | END; rows];
    for (bit, condition) in [(START, values.get(3)), (END, values.get(4))] {
        let Some(condition) = condition else { continue };
        for f in flags.iter_mut() {
            *f &= !bit;
        }
        if let Some(condition) = condition.as_boolean_opt() {
            for row in condition.iter().enumerate().filter_map(|(row, v)| (v == Some(true)).then_some(row)) {
                flags[row] |= bit;
            }
        }
    }
    (valid, flags)
}

impl GroupsAccumulator for TransitionsAccumulator {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.rows.resize(total_num_groups)?;
        let times = TimeKind::Timestamp.values(&values[0])?;
        let (valid, flags) = row_flags(values, opt_filter);
        self.store(time_values(&times), &valid, &values[1], |row| flags[row], |row| group_indices[row])
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let mut grouped = self.rows.take(emit_to);
        let (mut froms, mut tos, mut counts) = (StringBuilder::new(), StringBuilder::new(), vec![]);
        let mut offsets = vec![0i32];
        let mut pairs = Vec::new();
        for rows in grouped.groups_mut() {
            pairs.clear();
            self.transitions(rows, &mut pairs);
            let before = counts.len();
            let mut append = |(from, to): (u32, u32), count: i64| {
                froms.append_value(&self.names[from as usize]);
                tos.append_value(&self.names[to as usize]);
                counts.push(count);
            };
            if self.counted {
                // Sorted by the pair's names, so that the output order does not depend on
                // the order names were first seen in.
                let name = |id: u32| self.names[id as usize].as_str();
                pairs.sort_unstable_by(|a, b| (name(a.0), name(a.1)).cmp(&(name(b.0), name(b.1))));
                for run in pairs.chunk_by(|a, b| a == b) {
                    append(run[0], run.len() as i64);
                }
            } else {
                pairs.iter().for_each(|&pair| append(pair, 1));
            }
            let end = offsets.last().copied().unwrap_or(0) as usize + (counts.len() - before);
            offsets.push(
                i32::try_from(end)
                    .or_else(|_| exec_err!("{}: more than {} transitions in one result", self.name(), i32::MAX))?,
            );
        }
        let mut columns: Vec<ArrayRef> = vec![Arc::new(froms.finish()), Arc::new(tos.finish())];
        if self.counted {
            columns.push(Arc::new(datafusion::arrow::array::Int64Array::from(counts)));
        }
        let fields = pair_fields(self.counted);
        let pairs = StructArray::try_new(fields.clone(), columns, None)?;
        let field = Arc::new(Field::new_list_field(DataType::Struct(fields), true));
        Ok(Arc::new(ListArray::try_new(field, OffsetBuffer::new(offsets.into()), Arc::new(pairs), None)?))
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        let grouped = self.rows.take(emit_to);
        let offsets = grouped.list_offsets(NAME)?;
        let times = PrimitiveArray::<Int64Type>::from_iter_values(grouped.values.iter().map(|r| r.time));
        let events: datafusion::arrow::array::StringArray =
            grouped.values.iter().map(|r| Some(self.names[r.event as usize].as_str())).collect();
        let flags = UInt8Array::from_iter_values(grouped.values.iter().map(|r| r.flags));
        Ok(vec![
            list_column(DataType::Int64, &offsets, Arc::new(times))?,
            list_column(DataType::Utf8, &offsets, Arc::new(events))?,
            list_column(DataType::UInt8, &offsets, Arc::new(flags))?,
        ])
    }

    fn merge_batch(&mut self, values: &[ArrayRef], group_indices: &[usize], total_num_groups: usize) -> Result<()> {
        self.rows.resize(total_num_groups)?;
        let (times, events, flags) =
            (values[0].as_list::<i32>(), values[1].as_list::<i32>(), values[2].as_list::<i32>());
        // One row per stored event, with the group of the state row it came from.
        let mut group_of = Vec::with_capacity(times.values().len());
        for (row, &group) in group_indices.iter().enumerate() {
            let n = if times.is_valid(row) { times.value_length(row) as usize } else { 0 };
            group_of.extend(std::iter::repeat_n(group, n));
        }
        // The three lists were built with the same lengths; each may start anywhere in its values.
        let span = |list: &ListArray| {
            (list.value_offsets()[0] as usize, (list.value_offsets()[list.len()] - list.value_offsets()[0]) as usize)
        };
        let ((t0, used), (e0, e_used), (f0, f_used)) = (span(times), span(events), span(flags));
        if e_used != used || f_used != used || group_of.len() != used {
            return exec_err!("{NAME}: inconsistent aggregate state");
        }
        let time_values = &time_values(times.values())[t0..t0 + used];
        let event_values = events.values().slice(e0, used);
        let flag_values = flags.values().as_primitive::<UInt8Type>().slice(f0, used);
        self.store(time_values, &NullBuffer::new_valid(used), &event_values, |i| flag_values.value(i), |i| group_of[i])
    }

    fn convert_to_state(&self, values: &[ArrayRef], opt_filter: Option<&BooleanArray>) -> Result<Vec<ArrayRef>> {
        let rows = values[0].len();
        let times = TimeKind::Timestamp.values(&values[0])?;
        let (valid, flags) = row_flags(values, opt_filter);
        let counts = |row: usize| if valid.is_valid(row) { 1 } else { 0 };
        let offsets = OffsetBuffer::from_lengths((0..rows).map(counts));
        let kept: Vec<u32> = valid.valid_indices().map(|r| r as u32).collect();
        let kept = datafusion::arrow::array::UInt32Array::from(kept);
        let take = |a: &ArrayRef| datafusion::arrow::compute::take(a, &kept, None);
        let events = cast(&take(&values[1])?, &DataType::Utf8)?;
        let flags: ArrayRef = Arc::new(UInt8Array::from_iter_values(valid.valid_indices().map(|r| flags[r])));
        Ok(vec![
            list_column(DataType::Int64, &offsets, take(&times)?)?,
            list_column(DataType::Utf8, &offsets, events)?,
            list_column(DataType::UInt8, &offsets, flags)?,
        ])
    }

    fn size(&self) -> usize {
        self.rows.size() + self.name_bytes
    }
}
