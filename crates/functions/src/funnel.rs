//! The funnel scan behind `window_funnel` and `funnel_step_times`, with ClickHouse 26.9's
//! windowFunnel semantics (see docs/functions.md for the rules and their edge cases).

use std::marker::PhantomData;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, FieldRef};
use datafusion::common::{plan_err, Result};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDFImpl, Documentation, GroupsAccumulator, Signature, Volatility,
};

use crate::common::{any_nullable, check_conditions, check_time, literal_arg, literal_text, SingleGroup, TimeKind};
use crate::event_list::{state_fields, Event, EventListAccumulator, Finisher};

/// What a funnel function returns: `window_funnel` the level, `funnel_step_times` the times
/// of the steps. Everything else about the two functions is shared by [`FunnelFunction`].
pub trait FunnelOutput: std::fmt::Debug + Send + Sync + 'static {
    const NAME: &'static str;
    const USAGE: &'static str;
    type Finisher: Finisher;
    fn return_type(kind: TimeKind) -> DataType;
    fn documentation() -> &'static Documentation;
    fn finisher(funnel: Funnel, kind: TimeKind) -> Self::Finisher;
}

/// The SQL aggregate of a funnel function with output `O`.
#[derive(Debug)]
pub struct FunnelFunction<O> {
    signature: Signature,
    output: PhantomData<O>,
}

impl<O> Default for FunnelFunction<O> {
    fn default() -> Self {
        Self { signature: Signature::user_defined(Volatility::Immutable), output: PhantomData }
    }
}

impl<O> PartialEq for FunnelFunction<O> {
    fn eq(&self, other: &Self) -> bool {
        self.signature == other.signature
    }
}

impl<O> Eq for FunnelFunction<O> {}

impl<O> std::hash::Hash for FunnelFunction<O> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.signature.hash(state);
    }
}

impl<O: FunnelOutput> FunnelFunction<O> {
    fn factory(args: &AccumulatorArgs) -> Result<Arc<dyn Fn() -> Box<dyn GroupsAccumulator> + Send + Sync>> {
        FunnelLayout::accumulator_factory(O::NAME, args, O::finisher)
    }
}

impl<O: FunnelOutput> AggregateUDFImpl for FunnelFunction<O> {
    fn name(&self) -> &str {
        O::NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        FunnelLayout::check(O::NAME, arg_types, O::USAGE)?;
        Ok(arg_types.to_vec())
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        let (_, kind) = FunnelLayout::check(O::NAME, arg_types, O::USAGE)?;
        Ok(O::return_type(kind))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(state_fields(args.name))
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(SingleGroup::new(Self::factory(&args)?)))
    }

    fn groups_accumulator_supported(&self, _args: AccumulatorArgs) -> bool {
        true
    }

    fn create_groups_accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn GroupsAccumulator>> {
        Ok(Self::factory(&args)?())
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(O::documentation())
    }
}

/// Where a funnel function's arguments are: `(window, [mode,] ts, cond1, …)`.
#[derive(Debug, Clone, Copy)]
pub struct FunnelLayout {
    pub has_mode: bool,
}

impl FunnelLayout {
    /// Checks argument types at planning time.
    pub fn check(function: &str, arg_types: &[DataType], usage: &str) -> Result<(Self, TimeKind)> {
        let has_mode = matches!(arg_types.get(1), Some(DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View));
        let layout = Self { has_mode };
        if arg_types.len() < 2 + layout.first_condition() - 1 {
            return plan_err!("{function} needs a window, a timestamp and at least one condition; usage: {usage}");
        }
        let kind = check_time(function, arg_types, layout.time_index(), usage)?;
        check_conditions(function, arg_types, layout.first_condition(), 1, usage)?;
        Ok((layout, kind))
    }

    pub fn time_index(self) -> usize {
        if self.has_mode {
            2
        } else {
            1
        }
    }

    pub fn first_condition(self) -> usize {
        self.time_index() + 1
    }

    /// Reads the constant window and mode and builds the funnel.
    pub fn funnel(function: &str, args: &AccumulatorArgs) -> Result<(Funnel, TimeKind, FunnelLayout)> {
        let types: Vec<DataType> = args.expr_fields.iter().map(|f| f.data_type().clone()).collect();
        let (layout, kind) = Self::check(function, &types, "")?;
        let window = kind.window(function, literal_arg(function, "window", &args.exprs[0])?)?;
        let modes = if layout.has_mode {
            FunnelModes::parse(function, &literal_text(function, "mode", &args.exprs[1])?)?
        } else {
            FunnelModes::default()
        };
        let steps = types.len() - layout.first_condition();
        Ok((Funnel { steps, window, modes }, kind, layout))
    }

    /// The accumulator factory of a funnel function: reads the constant window and mode once,
    /// then makes event-list accumulators finished by `finisher`.
    pub fn accumulator_factory<F: Finisher>(
        function: &str,
        args: &AccumulatorArgs,
        finisher: impl FnOnce(Funnel, TimeKind) -> F,
    ) -> Result<Arc<dyn Fn() -> Box<dyn GroupsAccumulator> + Send + Sync>> {
        let (funnel, kind, layout) = Self::funnel(function, args)?;
        let finisher = Arc::new(finisher(funnel, kind));
        let nullable = any_nullable(args, layout.time_index());
        let (time_arg, keep_unmatched) = (layout.time_index(), funnel.keeps_unmatched());
        Ok(Arc::new(move || {
            Box::new(EventListAccumulator::new(kind, time_arg, keep_unmatched, nullable, finisher.clone()))
                as Box<dyn GroupsAccumulator>
        }))
    }
}

/// windowFunnel's modes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FunnelModes {
    pub strict_order: bool,
    pub strict_deduplication: bool,
    pub strict_increase: bool,
    pub strict_once: bool,
    pub allow_reentry: bool,
}

impl FunnelModes {
    /// Parses a comma-separated list such as `'strict_order, strict_increase'`.
    pub fn parse(function: &str, text: &str) -> Result<Self> {
        let mut modes = Self::default();
        for mode in text.split(',').map(str::trim).filter(|m| !m.is_empty()) {
            match mode {
                "strict_order" => modes.strict_order = true,
                "strict_deduplication" => modes.strict_deduplication = true,
                "strict_increase" => modes.strict_increase = true,
                "strict_once" => modes.strict_once = true,
                "allow_reentry" => modes.allow_reentry = true,
                "strict" => return plan_err!("{function}: mode 'strict' was renamed 'strict_deduplication'"),
                other => return plan_err!(
                    "{function}: unknown mode '{other}' (expected strict_order, strict_deduplication, strict_increase, strict_once, allow_reentry)"
                ),
            }
        }
        if modes.allow_reentry && !modes.strict_order {
            return plan_err!("{function}: mode allow_reentry requires strict_order");
        }
        Ok(modes)
    }
}

/// A funnel definition: number of steps, window (in the timestamp's units) and modes.
#[derive(Debug, Clone, Copy)]
pub struct Funnel {
    pub steps: usize,
    pub window: i64,
    pub modes: FunnelModes,
}

/// The outcome of a scan: the level reached and the times of the chain that first reached it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunnelResult {
    pub level: usize,
    pub step_times: Vec<i64>,
}

/// One (time, step) entry, step 0 meaning "matched no condition" (kept under strict_order),
/// and the row it came from (strict_once: a row serves at most one step of a chain).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Entry {
    time: i64,
    step: u8,
    row: u32,
}

impl Funnel {
    /// Whether rows matching no condition must be stored.
    pub fn keeps_unmatched(&self) -> bool {
        self.modes.strict_order
    }

    /// Computes the funnel of one group's events (any order). `scratch` is reused across groups.
    pub fn run(&self, events: &[Event], scratch: &mut Vec<(i64, u8, u32)>, track_times: bool) -> FunnelResult {
        if events.is_empty() {
            return FunnelResult { level: 0, step_times: Vec::new() };
        }
        if !self.modes.strict_order && self.steps == 1 && !track_times {
            return FunnelResult { level: 1, step_times: Vec::new() };
        }
        // Expand rows into (time, step) entries, each row's steps in ascending order, and sort
        // by (time, step): equal times run in step order, unmatched rows first — ClickHouse's
        // order, and independent of arrival order.
        scratch.clear();
        for (row, event) in events.iter().enumerate() {
            if event.mask == 0 {
                scratch.push((event.time, 0, row as u32));
            }
            let mut mask = event.mask;
            while mask != 0 {
                let step = mask.trailing_zeros() as u8 + 1;
                scratch.push((event.time, step, row as u32));
                mask &= mask - 1;
            }
        }
        let sorted_by_time_step = scratch.windows(2).all(|w| (w[0].0, w[0].1) <= (w[1].0, w[1].1));
        if !sorted_by_time_step {
            scratch.sort_unstable();
        }
        let entries = scratch.iter().map(|&(time, step, row)| Entry { time, step, row });
        if self.modes.strict_once {
            self.scan_strict_once(entries, track_times)
        } else {
            self.scan(entries, track_times)
        }
    }

    fn within(&self, first: i64, last: i64, time: i64) -> bool {
        time <= first.saturating_add(self.window) && (!self.modes.strict_increase || last < time)
    }

    /// The default scan: for each level, the (first, last) time of the latest chain reaching it.
    fn scan(&self, entries: impl Iterator<Item = Entry>, track_times: bool) -> FunnelResult {
        let n = self.steps;
        let mut levels: Vec<Option<(i64, i64)>> = vec![None; n];
        let mut chains: Vec<Vec<i64>> = if track_times { vec![Vec::new(); n] } else { Vec::new() };
        let mut best = Vec::new();
        let mut started = false;
        let highest = |levels: &[Option<(i64, i64)>]| levels.iter().rposition(Option::is_some).map_or(0, |p| p + 1);
        for Entry { time, step, .. } in entries {
            let idx = step as usize;
            if idx == 0 {
                if started {
                    break; // strict_order: an unmatched row after the start ends the funnel
                }
                continue;
            }
            let i = idx - 1;
            if i == 0 {
                levels[0] = Some((time, time));
                started = true;
                if track_times {
                    chains[0] = vec![time];
                }
            } else if self.modes.strict_deduplication && levels[i].is_some() {
                return self.result(highest(&levels), best, track_times);
            } else if self.modes.strict_order && started && levels[i - 1].is_none() {
                if self.modes.allow_reentry {
                    continue;
                }
                let leading = levels.iter().position(Option::is_none).unwrap_or(n);
                return self.result(leading, best, track_times);
            } else if let Some((first, last)) = levels[i - 1] {
                if self.within(first, last, time) {
                    levels[i] = Some((first, time));
                    if track_times {
                        let mut chain = chains[i - 1].clone();
                        chain.push(time);
                        if chain.len() > best.len() {
                            best = chain.clone();
                        }
                        chains[i] = chain;
                    }
                    if i + 1 == n {
                        return self.result(n, best, track_times);
                    }
                }
            }
            if track_times && best.is_empty() && levels[0].is_some() {
                best = chains[0].clone();
            }
        }
        self.result(highest(&levels), best, track_times)
    }

    /// strict_once: every chain is kept (a row may match several steps, but serves only one
    /// step of a chain); chains whose start left the window are dropped, keeping at least one.
    fn scan_strict_once(&self, entries: impl Iterator<Item = Entry>, track_times: bool) -> FunnelResult {
        #[derive(Clone)]
        struct Chain {
            first: i64,
            last: i64,
            rows: Vec<u32>,
            times: Vec<i64>,
        }
        let n = self.steps;
        let mut levels: Vec<Vec<Chain>> = vec![Vec::new(); n];
        let mut best: Vec<i64> = Vec::new();
        let mut started = false;
        let highest = |levels: &[Vec<Chain>]| levels.iter().rposition(|l| !l.is_empty()).map_or(0, |p| p + 1);
        for Entry { time, step, row } in entries {
            let idx = step as usize;
            if idx == 0 {
                if started {
                    break;
                }
                continue;
            }
            let i = idx - 1;
            if i == 0 {
                levels[0].push(Chain { first: time, last: time, rows: vec![row], times: vec![time] });
                started = true;
                if best.is_empty() {
                    best = vec![time];
                }
            } else if self.modes.strict_deduplication && !levels[i].is_empty() {
                return self.result(highest(&levels), best, track_times);
            } else if self.modes.strict_order && started && levels[i - 1].is_empty() {
                if self.modes.allow_reentry {
                    continue;
                }
                let leading = levels.iter().position(Vec::is_empty).unwrap_or(n);
                return self.result(leading, best, track_times);
            } else if !levels[i - 1].is_empty() {
                let mut extended = Vec::new();
                let previous = &mut levels[i - 1];
                let mut k = 0;
                while k < previous.len() {
                    let chain = &previous[k];
                    let in_window = time <= chain.first.saturating_add(self.window);
                    if !in_window && previous.len() > 1 {
                        previous.remove(k);
                        continue;
                    }
                    let matched =
                        in_window && !chain.rows.contains(&row) && (!self.modes.strict_increase || chain.last < time);
                    if matched {
                        let mut next = chain.clone();
                        next.last = time;
                        next.rows.push(row);
                        next.times.push(time);
                        if next.times.len() > best.len() {
                            best = next.times.clone();
                        }
                        extended.push(next);
                        if i + 1 == n {
                            return self.result(n, best, track_times);
                        }
                    }
                    k += 1;
                }
                levels[i].extend(extended);
            }
        }
        self.result(highest(&levels), best, track_times)
    }

    fn result(&self, level: usize, best: Vec<i64>, track_times: bool) -> FunnelResult {
        let step_times = if track_times { best.into_iter().take(level).collect() } else { Vec::new() };
        FunnelResult { level, step_times }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: u32 = 1;
    const B: u32 = 2;
    const C: u32 = 4;
    const D: u32 = 8;
    const X: u32 = 0;

    fn level(steps: usize, window: i64, modes: &str, events: &[(i64, u32)]) -> usize {
        result(steps, window, modes, events).level
    }

    fn result(steps: usize, window: i64, modes: &str, events: &[(i64, u32)]) -> FunnelResult {
        let funnel = Funnel { steps, window, modes: FunnelModes::parse("t", modes).unwrap() };
        let events: Vec<Event> = events
            .iter()
            .filter(|(_, m)| *m != 0 || funnel.keeps_unmatched())
            .map(|&(time, mask)| Event { time, mask })
            .collect();
        funnel.run(&events, &mut Vec::new(), true)
    }

    /// Events one second apart, in the given order of masks.
    fn seq(masks: &[u32]) -> Vec<(i64, u32)> {
        masks.iter().enumerate().map(|(i, &m)| (i as i64, m)).collect()
    }

    #[test]
    fn window_is_inclusive_and_measured_from_step_one() {
        assert_eq!(level(2, 10, "", &[(0, A), (10, B)]), 2);
        assert_eq!(level(2, 9, "", &[(0, A), (10, B)]), 1);
        assert_eq!(level(3, 10, "", &[(0, A), (5, B), (12, C)]), 2);
    }

    #[test]
    fn latest_start_wins_and_arrival_order_does_not_matter() {
        assert_eq!(level(2, 100, "", &[(0, A), (100, A), (150, B)]), 2);
        assert_eq!(level(3, 10, "", &[(3, C), (2, B), (1, A)]), 3);
    }

    #[test]
    fn same_timestamp_runs_in_step_order() {
        assert_eq!(level(2, 10, "", &[(5, A), (5, B)]), 2);
        assert_eq!(level(2, 10, "", &[(5, B), (5, A)]), 2);
        assert_eq!(level(2, 10, "strict_increase", &[(5, A), (5, B)]), 1);
    }

    #[test]
    fn one_row_matching_every_condition() {
        assert_eq!(level(3, 10, "", &[(1, A | B | C)]), 3);
        assert_eq!(level(3, 10, "strict_once", &[(1, A | B | C)]), 1);
        assert_eq!(level(3, 10, "strict_increase", &[(1, A | B | C)]), 1);
    }

    #[test]
    fn strict_order_cases() {
        assert_eq!(level(2, 10, "strict_order", &seq(&[A, X, B])), 1);
        assert_eq!(level(2, 10, "strict_order", &seq(&[X, A, B])), 2);
        assert_eq!(level(3, 10, "strict_order", &seq(&[A, A, B, B, C])), 3);
        assert_eq!(level(3, 10, "strict_order", &seq(&[A, C, B])), 1);
        assert_eq!(level(2, 10, "strict_order", &seq(&[A, X, A, B])), 1);
        assert_eq!(level(2, 10, "strict_order", &[(1, A), (2, X), (2, B)]), 1);
    }

    #[test]
    fn strict_order_with_allow_reentry() {
        assert_eq!(level(3, 10, "strict_order,allow_reentry", &seq(&[A, C, B, C])), 3);
        assert_eq!(level(2, 10, "strict_order, allow_reentry", &seq(&[A, X, B])), 1);
        let err = FunnelModes::parse("window_funnel", "allow_reentry").unwrap_err().to_string();
        assert!(err.contains("allow_reentry requires strict_order"), "{err}");
    }

    #[test]
    fn strict_deduplication_cases() {
        assert_eq!(level(4, 10, "strict_deduplication", &seq(&[A, B, C, B, D])), 3);
        assert_eq!(level(2, 10, "strict_deduplication", &seq(&[A, A, B])), 2);
        assert_eq!(level(3, 10, "strict_deduplication", &seq(&[A, B, A, B, C])), 2);
    }

    #[test]
    fn known_clickhouse_oddity_with_strict_increase_and_strict_once() {
        assert_eq!(level(2, 10, "strict_increase", &[(0, A), (1, A), (1, B)]), 1);
        assert_eq!(level(2, 10, "strict_increase,strict_once", &[(0, A), (1, A), (1, B)]), 2);
    }

    #[test]
    fn empty_and_single_step() {
        assert_eq!(level(2, 10, "", &[]), 0);
        assert_eq!(level(1, 10, "", &[(7, A)]), 1);
        assert_eq!(level(2, 10, "", &[(7, B)]), 0);
    }

    #[test]
    fn unknown_and_renamed_modes_are_planning_errors() {
        assert!(FunnelModes::parse("f", "strict").unwrap_err().to_string().contains("renamed 'strict_deduplication'"));
        assert!(FunnelModes::parse("f", "fast").unwrap_err().to_string().contains("unknown mode 'fast'"));
    }

    #[test]
    fn step_times_follow_the_chain_that_first_reached_the_highest_level() {
        assert_eq!(result(3, 100, "", &[(0, A), (5, B), (50, A), (60, B)]).step_times, vec![0, 5]);
        assert_eq!(result(3, 100, "", &[(0, A), (5, B), (50, A), (60, B), (70, C)]).step_times, vec![50, 60, 70]);
        assert_eq!(result(2, 100, "", &[(9, A)]).step_times, vec![9]);
        assert_eq!(result(2, 100, "", &[(9, B)]).step_times, Vec::<i64>::new());
        assert_eq!(result(3, 10, "strict_once", &[(0, A), (1, A | B), (2, C)]).step_times, vec![0, 1, 2]);
    }
}
