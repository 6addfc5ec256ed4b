//! `sequence_match` and `sequence_count`: whether, and how many non-overlapping times, a
//! group's events contain a pattern.
//!
//! ```sql
//! -- per user: did an add-to-cart lead to a purchase within an hour, and how often
//! SELECT user_id,
//!        sequence_match('(?1)(?t<=3600)(?2)', event_time, event = 'add_to_cart', event = 'purchase') AS converted,
//!        sequence_count('(?1)(?t<=3600)(?2)', event_time, event = 'add_to_cart', event = 'purchase') AS times
//! FROM events GROUP BY user_id;
//! ```
//!
//! ClickHouse's `sequenceMatch(pattern)(ts, cond1, …)` and `sequenceCount`; see
//! [`crate::sequence`] for the pattern language.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{BooleanBuilder, Int64Builder};
use datafusion::arrow::datatypes::{DataType, FieldRef};
use datafusion::common::Result;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDFImpl, Documentation, DocumentationBuilder, GroupsAccumulator, Signature, Volatility,
};

use crate::common::{SingleGroup, DOC_SECTION_BEHAVIOURAL};
use crate::event_list::{state_fields, Event, Finisher};
use crate::sequence::{accumulator_factory, check_arguments, sort_by_time, Pattern};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Match,
    Count,
}

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct SequenceFunction {
    signature: Signature,
    kind: Kind,
}

impl SequenceFunction {
    pub fn sequence_match() -> Self {
        Self { signature: Signature::user_defined(Volatility::Immutable), kind: Kind::Match }
    }

    pub fn sequence_count() -> Self {
        Self { signature: Signature::user_defined(Volatility::Immutable), kind: Kind::Count }
    }

    /// Parses the pattern once; accumulators are then made on demand.
    fn factory(&self, args: &AccumulatorArgs) -> Result<Arc<dyn Fn() -> Box<dyn GroupsAccumulator> + Send + Sync>> {
        match self.kind {
            Kind::Match => accumulator_factory(self.static_name(), args, MatchFinisher),
            Kind::Count => accumulator_factory(self.static_name(), args, CountFinisher),
        }
    }

    fn static_name(&self) -> &'static str {
        match self.kind {
            Kind::Match => "sequence_match",
            Kind::Count => "sequence_count",
        }
    }
}

struct MatchFinisher(Pattern);

impl Finisher for MatchFinisher {
    type Builder = BooleanBuilder;
    fn builder(&self, capacity: usize) -> BooleanBuilder {
        BooleanBuilder::with_capacity(capacity)
    }
    fn append_null(&self, out: &mut BooleanBuilder) {
        out.append_null();
    }
    fn finish(&self, events: &mut [Event], out: &mut BooleanBuilder) -> Result<()> {
        sort_by_time(events);
        out.append_value(self.0.matches(events)?);
        Ok(())
    }
}

struct CountFinisher(Pattern);

impl Finisher for CountFinisher {
    type Builder = Int64Builder;
    fn builder(&self, capacity: usize) -> Int64Builder {
        Int64Builder::with_capacity(capacity)
    }
    fn append_null(&self, out: &mut Int64Builder) {
        out.append_null();
    }
    fn finish(&self, events: &mut [Event], out: &mut Int64Builder) -> Result<()> {
        sort_by_time(events);
        out.append_value(self.0.count(events)?);
        Ok(())
    }
}

/// What both functions' documentation says of their arguments and pattern language.
fn documented(description: &str, syntax: &str) -> DocumentationBuilder {
    let pattern_rules = "Only rows satisfying at least one condition are events, ordered by time. Pattern: an \
         implicit leading .*; (?N) an event satisfying condition N; . one event; .* any number; time gates \
         (?t<=V), (?t<V), (?t>=V), (?t>V), (?t==V) compare the next event's time with the last matched one \
         (V in seconds for TIMESTAMP, days for DATE, raw for integers).";
    Documentation::builder(DOC_SECTION_BEHAVIOURAL, format!("{description} {pattern_rules}"), syntax)
        .with_sql_example(
            r#"```sql
-- per user: did an add-to-cart lead to a purchase within an hour, and how often
SELECT user_id,
       sequence_match('(?1)(?t<=3600)(?2)', event_time, event = 'add_to_cart', event = 'purchase') AS converted,
       sequence_count('(?1)(?t<=3600)(?2)', event_time, event = 'add_to_cart', event = 'purchase') AS times
FROM events GROUP BY user_id;
```"#,
        )
        .with_argument("pattern", "Constant text: the pattern, e.g. '(?1)(?t<=3600)(?2)'; no whitespace.")
        .with_argument("timestamp", "The event time: TIMESTAMP (any precision), DATE or an integer.")
        .with_argument("cond1, ..., condN", "2 to 32 boolean conditions, referred to as (?1) .. (?N).")
}

static MATCH_DOCUMENTATION: LazyLock<Documentation> = LazyLock::new(|| {
    documented(
        "Returns whether the group's events contain the pattern: ClickHouse's sequenceMatch.",
        "sequence_match(pattern, timestamp, cond1, ..., condN)",
    )
    .with_related_udf("sequence_count")
    .build()
});

static COUNT_DOCUMENTATION: LazyLock<Documentation> = LazyLock::new(|| {
    documented(
        "Returns how many non-overlapping times the group's events contain the pattern, resuming after each \
         match: ClickHouse's sequenceCount.",
        "sequence_count(pattern, timestamp, cond1, ..., condN)",
    )
    .with_related_udf("sequence_match")
    .build()
});

impl AggregateUDFImpl for SequenceFunction {
    fn name(&self) -> &str {
        self.static_name()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(match self.kind {
            Kind::Match => &MATCH_DOCUMENTATION,
            Kind::Count => &COUNT_DOCUMENTATION,
        })
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let usage = format!("{}('(?1)(?t<=3600)(?2)', timestamp, cond1, cond2, ...)", self.name());
        check_arguments(self.static_name(), arg_types, &usage)?;
        Ok(arg_types.to_vec())
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(match self.kind {
            Kind::Match => DataType::Boolean,
            Kind::Count => DataType::Int64,
        })
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(state_fields(args.name))
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(SingleGroup::new(self.factory(&args)?)))
    }

    fn groups_accumulator_supported(&self, _args: AccumulatorArgs) -> bool {
        true
    }

    fn create_groups_accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn GroupsAccumulator>> {
        Ok(self.factory(&args)?())
    }
}
