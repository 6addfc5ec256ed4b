//! The pattern language and matchers behind `sequence_match` and `sequence_count`, with
//! ClickHouse 26.9's sequenceMatch / sequenceCount semantics:
//!
//! - a pattern has an implicit leading `.*`; tokens are `(?N)` (an event satisfying condition
//!   N), `.` (exactly one stored event), `.*` (any number), and time gates `(?t<=V)`, `(?t<V)`,
//!   `(?t>=V)`, `(?t>V)`, `(?t==V)` comparing an event with the last matched one, V in seconds
//!   for TIMESTAMP (days for DATE, raw for integers); no whitespace;
//! - only rows satisfying at least one condition are events; they are ordered by time;
//! - patterns without time gates run on a DFA, patterns with them by backtracking (bounded to
//!   1,000,000 steps per attempt, as in ClickHouse); sequence_count counts non-overlapping
//!   matches, resuming after each.
//!
//! ClickHouse also runs a "deterministic parts" pre-check; in 26.9 its lambda captures its
//! bounds by value, so it always passes — it is not reproduced because it never changes an
//! answer.

use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::{exec_err, plan_err, Result};
use datafusion::logical_expr::function::AccumulatorArgs;
use datafusion::logical_expr::GroupsAccumulator;

use crate::common::{any_nullable, check_conditions, check_time, literal_text, TimeKind};
use crate::event_list::{Event, EventListAccumulator, Finisher};

/// Backtracking steps one match attempt may take before giving up (ClickHouse's limit).
const MAX_ITERATIONS: usize = 1_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TimeOp {
    LessOrEqual,
    Less,
    GreaterOrEqual,
    Greater,
    Equal,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Event(u32),
    Any,
    Star,
    Time(TimeOp, i64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transition {
    None,
    Event(u32),
    Any,
}

#[derive(Debug, Clone, Copy)]
struct DfaState {
    kleene: bool,
    transition: Transition,
}

/// A parsed pattern.
#[derive(Debug, Clone)]
pub struct Pattern {
    actions: Vec<Action>,
    dfa: Vec<DfaState>,
    has_time: bool,
    /// Conditions the pattern names; if the group never satisfied one, there is no match.
    required: u32,
}

impl Pattern {
    /// Parses `text` for a function with `conditions` conditions. `per_second` converts time
    /// gate values (given in seconds) into the timestamp's units.
    pub fn parse(function: &str, text: &str, conditions: usize, per_second: i64) -> Result<Self> {
        let mut actions = vec![Action::Star];
        let mut dfa = vec![DfaState { kleene: true, transition: Transition::None }];
        let mut has_time = false;
        let mut required = 0u32;
        let bytes = text.as_bytes();
        let mut pos = 0;
        let fail = |pos: usize, reason: &str| -> Result<Self> {
            plan_err!(
                "{function}: invalid pattern '{text}': {reason} at position {pos} ('{}')",
                &text[pos.min(text.len())..]
            )
        };
        let eat = |pos: &mut usize, token: &str| -> bool {
            if text[*pos..].starts_with(token) {
                *pos += token.len();
                true
            } else {
                false
            }
        };
        let number = |pos: &mut usize| -> Option<u64> {
            let digits = bytes[*pos..].iter().take_while(|b| b.is_ascii_digit()).count();
            let value = text[*pos..*pos + digits].parse().ok()?;
            *pos += digits;
            Some(value)
        };
        while pos < bytes.len() {
            let start = pos;
            if eat(&mut pos, "(?") {
                if eat(&mut pos, "t") {
                    let op = if eat(&mut pos, "<=") {
                        TimeOp::LessOrEqual
                    } else if eat(&mut pos, "<") {
                        TimeOp::Less
                    } else if eat(&mut pos, ">=") {
                        TimeOp::GreaterOrEqual
                    } else if eat(&mut pos, ">") {
                        TimeOp::Greater
                    } else if eat(&mut pos, "==") {
                        TimeOp::Equal
                    } else {
                        return fail(pos, "unknown time condition (expected <=, <, >=, > or ==)");
                    };
                    let Some(seconds) = number(&mut pos) else { return fail(pos, "expected a number of seconds") };
                    if matches!(actions.last(), Some(Action::Time(..))) {
                        return fail(start, "a time condition must follow an event, '.' or '.*'");
                    }
                    has_time = true;
                    let value = i64::try_from(seconds).unwrap_or(i64::MAX).saturating_mul(per_second);
                    actions.push(Action::Time(op, value));
                } else {
                    let Some(event) = number(&mut pos) else { return fail(pos, "expected a condition number") };
                    if event == 0 || event as usize > conditions {
                        return fail(start, &format!("condition number {event} is out of range 1..{conditions}"));
                    }
                    let bit = event as u32 - 1;
                    actions.push(Action::Event(bit));
                    dfa.last_mut().expect("dfa has a state").transition = Transition::Event(bit);
                    dfa.push(DfaState { kleene: false, transition: Transition::None });
                    required |= 1 << bit;
                }
                if !eat(&mut pos, ")") {
                    return fail(pos, "expected ')'");
                }
            } else if eat(&mut pos, ".*") {
                actions.push(Action::Star);
                dfa.last_mut().expect("dfa has a state").kleene = true;
            } else if eat(&mut pos, ".") {
                actions.push(Action::Any);
                dfa.last_mut().expect("dfa has a state").transition = Transition::Any;
                dfa.push(DfaState { kleene: false, transition: Transition::None });
            } else {
                return fail(pos, "unexpected character (expected '(?N)', '(?t<=N)', '.' or '.*')");
            }
        }
        Ok(Self { actions, dfa, has_time, required })
    }

    /// Whether the group's events can match at all: every condition the pattern names must
    /// have been satisfied by some event.
    fn possible(&self, events: &[Event]) -> bool {
        let seen = events.iter().fold(0u32, |acc, e| acc | e.mask);
        seen & self.required == self.required
    }

    /// sequence_match on time-ordered events.
    pub fn matches(&self, events: &[Event]) -> Result<bool> {
        if !self.possible(events) {
            return Ok(false);
        }
        if self.has_time {
            self.backtracking_match(events, &mut 0)
        } else {
            Ok(self.dfa_match(events))
        }
    }

    /// sequence_count on time-ordered events: non-overlapping matches, resuming after each.
    pub fn count(&self, events: &[Event]) -> Result<i64> {
        if !self.possible(events) {
            return Ok(0);
        }
        let mut position = 0;
        let mut count = 0;
        while position < events.len() && self.backtracking_match(events, &mut position)? {
            count += 1;
        }
        Ok(count)
    }

    fn dfa_match(&self, events: &[Event]) -> bool {
        let last = self.dfa.len() - 1;
        let mut active = vec![false; self.dfa.len()];
        let mut next = vec![false; self.dfa.len()];
        active[0] = true;
        let mut live = 1;
        for event in events {
            if live == 0 || active[last] {
                break;
            }
            live = 0;
            next.fill(false);
            for (state, dfa) in self.dfa.iter().enumerate() {
                if !active[state] {
                    continue;
                }
                let advance = match dfa.transition {
                    Transition::None => false,
                    Transition::Any => true,
                    Transition::Event(bit) => event.mask & (1 << bit) != 0,
                };
                if advance {
                    next[state + 1] = true;
                    live += 1;
                }
                if dfa.kleene {
                    next[state] = true;
                    live += 1;
                }
            }
            std::mem::swap(&mut active, &mut next);
        }
        active[last]
    }

    /// One match attempt starting at `*position`; leaves `*position` after the match (or one
    /// past the start when nothing was consumed), as ClickHouse does.
    fn backtracking_match(&self, events: &[Event], position: &mut usize) -> Result<bool> {
        let end = events.len();
        let begin = *position;
        let (mut action, mut event, mut base) = (0usize, begin, begin);
        let mut stack: Vec<(usize, usize, usize)> = Vec::new();
        // Resume from the latest choice point, one event further.
        let backtrack =
            |stack: &mut Vec<(usize, usize, usize)>, action: &mut usize, event: &mut usize, base: &mut usize| -> bool {
                while let Some((a, e, b)) = stack.pop() {
                    (*action, *event, *base) = (a, e + 1, b);
                    if *event != end {
                        return true;
                    }
                }
                false
            };
        let mut iterations = 0;
        while action < self.actions.len() && event < end {
            match self.actions[action] {
                Action::Event(bit) => {
                    if events[event].mask & (1 << bit) != 0 {
                        base = event;
                        action += 1;
                        event += 1;
                    } else if !backtrack(&mut stack, &mut action, &mut event, &mut base) {
                        break;
                    }
                }
                Action::Any => {
                    base = event;
                    action += 1;
                    event += 1;
                }
                Action::Star => {
                    stack.push((action, event, base));
                    base = event;
                    action += 1;
                }
                Action::Time(op, value) => {
                    let (time, reference) = (events[event].time, events[base].time.saturating_add(value));
                    let holds = match op {
                        TimeOp::LessOrEqual => time <= reference,
                        TimeOp::Less => time < reference,
                        TimeOp::GreaterOrEqual => time >= reference,
                        TimeOp::Greater => time > reference,
                        TimeOp::Equal => time == reference,
                    };
                    if holds {
                        stack.push((action, event, base));
                        base = event;
                        action += 1;
                    } else if matches!(op, TimeOp::LessOrEqual | TimeOp::Less) {
                        if !backtrack(&mut stack, &mut action, &mut event, &mut base) {
                            break;
                        }
                    } else {
                        // a later event may still be far enough: try it
                        event += 1;
                        if event == end && !backtrack(&mut stack, &mut action, &mut event, &mut base) {
                            break;
                        }
                    }
                }
            }
            iterations += 1;
            if iterations > MAX_ITERATIONS {
                return exec_err!(
                    "pattern matching exceeded {MAX_ITERATIONS} steps for one group; simplify the pattern"
                );
            }
        }
        // Trailing actions that match the empty sequence.
        while action < self.actions.len()
            && matches!(
                self.actions[action],
                Action::Star
                    | Action::Time(TimeOp::LessOrEqual | TimeOp::Less, _)
                    | Action::Time(TimeOp::GreaterOrEqual, 0)
            )
        {
            action += 1;
        }
        *position = if event == begin { event + 1 } else { event };
        Ok(action == self.actions.len())
    }
}

/// Argument checks shared by sequence_match and sequence_count:
/// `(pattern, timestamp, cond1, cond2, …)`.
pub fn check_arguments(function: &str, arg_types: &[DataType], usage: &str) -> Result<TimeKind> {
    if !matches!(arg_types.first(), Some(DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)) {
        return plan_err!("{function}: the first argument must be the pattern text; usage: {usage}");
    }
    let kind = check_time(function, arg_types, 1, usage)?;
    check_conditions(function, arg_types, 2, 2, usage)?;
    Ok(kind)
}

/// Builds the accumulator factory of a sequence function from its constant pattern.
pub fn accumulator_factory<F: Finisher>(
    function: &'static str,
    args: &AccumulatorArgs,
    finisher: impl FnOnce(Pattern) -> F,
) -> Result<Arc<dyn Fn() -> Box<dyn GroupsAccumulator> + Send + Sync>> {
    let types: Vec<DataType> = args.expr_fields.iter().map(|f| f.data_type().clone()).collect();
    let kind = check_arguments(function, &types, "")?;
    let text = literal_text(function, "pattern", &args.exprs[0])?;
    let pattern = Pattern::parse(function, &text, types.len() - 2, kind.per_second())?;
    let finisher = Arc::new(finisher(pattern));
    let nullable = any_nullable(args, 1);
    Ok(Arc::new(move || {
        Box::new(EventListAccumulator::new(kind, 1, false, nullable, finisher.clone())) as Box<dyn GroupsAccumulator>
    }))
}

/// Orders a group's events by time, ties in arrival order.
pub fn sort_by_time(events: &mut [Event]) {
    if !events.windows(2).all(|w| w[0].time <= w[1].time) {
        events.sort_by_key(|e| e.time);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: u32 = 1;
    const B: u32 = 2;
    const C: u32 = 4;

    fn events(list: &[(i64, u32)]) -> Vec<Event> {
        list.iter().map(|&(time, mask)| Event { time, mask }).collect()
    }

    fn matches(pattern: &str, list: &[(i64, u32)]) -> bool {
        Pattern::parse("t", pattern, 3, 1).unwrap().matches(&events(list)).unwrap()
    }

    fn count(pattern: &str, list: &[(i64, u32)]) -> i64 {
        Pattern::parse("t", pattern, 3, 1).unwrap().count(&events(list)).unwrap()
    }

    #[test]
    fn events_matching_no_condition_are_invisible_but_others_interrupt() {
        // X matches no condition: not stored, so (?1)(?2) matches A,X,B
        assert!(matches("(?1)(?2)", &[(0, A), (2, B)]));
        // X matches condition 3: stored, and interrupts
        assert!(!matches("(?1)(?2)", &[(0, A), (1, C), (2, B)]));
        assert!(matches("(?1).*(?2)", &[(0, A), (1, C), (2, B)]));
    }

    #[test]
    fn time_gates_compare_with_the_last_matched_event() {
        assert!(matches("(?1)(?t<=5)(?2)", &[(0, A), (5, B)]));
        assert!(!matches("(?1)(?t<5)(?2)", &[(0, A), (5, B)]));
        assert!(matches("(?1).*(?t>3)(?2)", &[(0, A), (1, C), (6, B)]));
        // quirk: after .* the reference is the next event
        assert!(!matches("(?1).*(?t>0)(?2)", &[(0, A), (5, B)]));
        assert!(matches("(?1)(?t==5)(?2)", &[(0, A), (5, B)]));
    }

    #[test]
    fn one_row_matching_both_conditions_is_one_event() {
        assert!(!matches("(?1)(?2)", &[(0, A | B)]));
        assert!(matches("(?1)", &[(0, A | B)]));
    }

    #[test]
    fn counts_are_non_overlapping() {
        assert_eq!(count("(?1)(?2)", &[(0, A), (1, B), (2, A), (3, B)]), 2);
        assert_eq!(count("(?1).*(?2)", &[(0, A), (1, A), (2, B), (3, B)]), 1);
        assert_eq!(count("(?1)(?t<=3600)(?2)", &[(0, A), (10, B), (20, A), (5000, B)]), 1);
    }

    #[test]
    fn unused_condition_short_circuits_to_no_match() {
        assert!(!matches("(?1).*(?3)", &[(0, A), (1, B)]));
        assert_eq!(count("(?3)", &[(0, A)]), 0);
    }

    #[test]
    fn any_event_consumes_exactly_one() {
        assert!(matches("(?1).(?2)", &[(0, A), (1, C), (2, B)]));
        assert!(!matches("(?1).(?2)", &[(0, A), (2, B)]));
    }

    #[test]
    fn bad_patterns_name_position_and_reason() {
        let err = |p: &str| Pattern::parse("sequence_match", p, 2, 1).unwrap_err().to_string();
        assert!(
            err("(?1)(?3)").contains("condition number 3 is out of range 1..2 at position 4"),
            "{}",
            err("(?1)(?3)")
        );
        assert!(err("(?1)x").contains("unexpected character") && err("(?1)x").contains("at position 4"));
        assert!(err("(?1").contains("expected ')' at position 3"));
        assert!(err("(?t<=)").contains("expected a number of seconds at position 5"));
        assert!(err("(?1)(?t<=1)(?t<=2)").contains("must follow an event"));
        assert!(err("(?t~1)").contains("unknown time condition"));
        assert!(err("(?0)").contains("out of range"));
        assert!(err("(?1) (?2)").contains("at position 4"), "no whitespace");
    }
}
