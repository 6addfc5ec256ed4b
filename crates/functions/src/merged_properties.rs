//! `merged_properties`: the properties a person (or an account) ends up with after PostHog's
//! `$set` and `$set_once` of its events, applied in time order.
//!
//! ```sql
//! -- each person's properties: latest $set value of a key, else its first $set_once value
//! SELECT person_id,
//!        merged_properties(event_time, json_get_json(properties, '$set'), json_get_json(properties, '$set_once'))
//! FROM events GROUP BY person_id;
//! ```
//!
//! Applying the operations one by one in time order (`$set` overwrites a key, `$set_once`
//! writes it only when it has no value) gives, for every key, the value of its latest `$set`
//! if there is one, else the value of its first `$set_once`. That per-key rule needs no order,
//! so the state is two small maps merged across partitions, and the input is never sorted.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::{exec_err, plan_err, Result, ScalarValue};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{Accumulator, AggregateUDFImpl, Documentation, Signature, Volatility};
use serde_json::Value;

use crate::common::{check_time, is_text, time_values, TimeKind, DOC_SECTION_BEHAVIOURAL};

const USAGE: &str = "merged_properties(timestamp, set_json, set_once_json)";

static DOCUMENTATION: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        DOC_SECTION_BEHAVIOURAL,
        "Returns, as JSON text, the object that PostHog's `$set` and `$set_once` operations of the group's rows \
         give when applied in time order: for each key, the value of its latest `$set`, else of its first \
         `$set_once`. Arguments that are NULL or not a JSON object are ignored; equal times are broken by the \
         value's text, so the result never depends on row order. NULL when no row sets anything.",
        USAGE,
    )
    .with_sql_example(
        r#"```sql
-- each person's properties, as PostHog's person processing gives them
SELECT person_id,
       merged_properties(event_time, json_get_json(properties, '$set'), json_get_json(properties, '$set_once'))
FROM events GROUP BY person_id;
```"#,
    )
    .with_argument("timestamp", "The event time: TIMESTAMP, DATE or an integer.")
    .with_argument("set_json", "Text: a JSON object of the keys the row sets (PostHog's `$set`, Segment's traits).")
    .with_argument("set_once_json", "Text: a JSON object of the keys the row sets only if unset (`$set_once`).")
    .build()
});

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct MergedProperties {
    signature: Signature,
}

impl Default for MergedProperties {
    fn default() -> Self {
        Self { signature: Signature::user_defined(Volatility::Immutable) }
    }
}

impl AggregateUDFImpl for MergedProperties {
    fn name(&self) -> &str {
        "merged_properties"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&DOCUMENTATION)
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        if arg_types.len() != 3 {
            return plan_err!("merged_properties takes 3 arguments, got {}; usage: {USAGE}", arg_types.len());
        }
        check_time(self.name(), arg_types, 0, USAGE)?;
        for (i, t) in arg_types.iter().enumerate().skip(1) {
            if !is_text(t) && t != &DataType::Null {
                return plan_err!("merged_properties: argument {} must be JSON text, got {t}; usage: {USAGE}", i + 1);
            }
        }
        Ok(vec![arg_types[0].clone(), DataType::Utf8, DataType::Utf8])
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![Field::new(format!("{}[keys]", args.name), DataType::Utf8, true).into()])
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        let kind = TimeKind::of(&args.exprs[0].data_type(args.schema)?).ok_or_else(|| {
            datafusion::common::plan_datafusion_err!("merged_properties: bad timestamp; usage: {USAGE}")
        })?;
        Ok(Box::new(MergedPropertiesAccumulator { kind, set: BTreeMap::new(), set_once: BTreeMap::new() }))
    }
}

/// A key's value and the time it was written.
type Stamped = (i64, Value);

#[derive(Debug)]
struct MergedPropertiesAccumulator {
    kind: TimeKind,
    /// Per key, its latest `$set`.
    set: BTreeMap<String, Stamped>,
    /// Per key, its first `$set_once`.
    set_once: BTreeMap<String, Stamped>,
}

/// Whether `candidate` comes after `held` (ties: the larger value's text), so keeping the
/// later of two is the same whichever is seen first.
fn later(candidate: &Stamped, held: &Stamped) -> bool {
    (candidate.0, candidate.1.to_string()) > (held.0, held.1.to_string())
}

impl MergedPropertiesAccumulator {
    fn set(&mut self, key: String, stamped: Stamped) {
        match self.set.get(&key) {
            Some(held) if !later(&stamped, held) => {}
            _ => {
                self.set.insert(key, stamped);
            }
        }
    }

    fn set_once(&mut self, key: String, stamped: Stamped) {
        match self.set_once.get(&key) {
            Some(held) if later(&stamped, held) || held == &stamped => {}
            _ => {
                self.set_once.insert(key, stamped);
            }
        }
    }

    /// One row's operation: `text` a JSON object, anything else ignored.
    fn apply(&mut self, time: i64, text: &str, once: bool) {
        let Ok(Value::Object(object)) = serde_json::from_str::<Value>(text) else { return };
        for (key, value) in object {
            if once {
                self.set_once(key, (time, value));
            } else {
                self.set(key, (time, value));
            }
        }
    }

    fn result(&self) -> Option<String> {
        if self.set.is_empty() && self.set_once.is_empty() {
            return None;
        }
        let mut merged: BTreeMap<&str, &Value> = self.set_once.iter().map(|(k, (_, v))| (k.as_str(), v)).collect();
        merged.extend(self.set.iter().map(|(k, (_, v))| (k.as_str(), v)));
        Some(serde_json::to_string(&merged).expect("JSON values serialize"))
    }
}

impl Accumulator for MergedPropertiesAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let times = self.kind.values(&values[0])?;
        let (set, set_once) = (values[1].as_string::<i32>(), values[2].as_string::<i32>());
        for (row, &time) in time_values(&times).iter().enumerate() {
            if times.is_null(row) {
                continue;
            }
            if set.is_valid(row) {
                self.apply(time, set.value(row), false);
            }
            if set_once.is_valid(row) {
                self.apply(time, set_once.value(row), true);
            }
        }
        Ok(())
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        Ok(ScalarValue::Utf8(self.result()))
    }

    fn size(&self) -> usize {
        let entries = self.set.iter().chain(&self.set_once);
        size_of_val(self) + entries.map(|(k, (_, v))| k.len() + v.to_string().len() + 64).sum::<usize>()
    }

    /// The state: `[{key: [time, value]} of set, {…} of set_once]` as JSON text.
    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let encode = |map: &BTreeMap<String, Stamped>| {
            map.iter().map(|(k, (t, v))| (k.clone(), Value::from(vec![Value::from(*t), v.clone()]))).collect()
        };
        let both = Value::Array(vec![Value::Object(encode(&self.set)), Value::Object(encode(&self.set_once))]);
        Ok(vec![ScalarValue::Utf8(Some(both.to_string()))])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let states: &StringArray = states[0].as_string::<i32>();
        for state in states.iter().flatten() {
            let Ok(Value::Array(parts)) = serde_json::from_str::<Value>(state) else {
                return exec_err!("merged_properties: a partial state is not the JSON it writes: {state}");
            };
            for (part, once) in parts.into_iter().zip([false, true]) {
                let Value::Object(entries) = part else { continue };
                for (key, entry) in entries {
                    let Value::Array(mut pair) = entry else { continue };
                    let (Some(value), Some(time)) = (pair.pop(), pair.pop().and_then(|t| t.as_i64())) else { continue };
                    if once {
                        self.set_once(key, (time, value));
                    } else {
                        self.set(key, (time, value));
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::TimestampMicrosecondArray;
    use rand::seq::SliceRandom;
    use rand::SeedableRng;

    use super::*;

    type Row = (i64, Option<&'static str>, Option<&'static str>);

    fn accumulate(rows: &[Row]) -> MergedPropertiesAccumulator {
        let mut acc =
            MergedPropertiesAccumulator { kind: TimeKind::Timestamp, set: BTreeMap::new(), set_once: BTreeMap::new() };
        let times: ArrayRef = Arc::new(TimestampMicrosecondArray::from(rows.iter().map(|r| r.0).collect::<Vec<_>>()));
        let set: ArrayRef = Arc::new(StringArray::from(rows.iter().map(|r| r.1).collect::<Vec<_>>()));
        let once: ArrayRef = Arc::new(StringArray::from(rows.iter().map(|r| r.2).collect::<Vec<_>>()));
        acc.update_batch(&[times, set, once]).unwrap();
        acc
    }

    /// PostHog's person processing written the obvious way: the operations one by one in time order.
    fn fold(rows: &[Row]) -> Option<String> {
        let mut rows = rows.to_vec();
        rows.sort_by_key(|r| r.0);
        let mut person = BTreeMap::<String, Value>::new();
        let mut touched = false;
        for (_, set, once) in rows {
            for (text, is_once) in [(set, false), (once, true)] {
                let Some(Ok(Value::Object(object))) = text.map(serde_json::from_str::<Value>) else { continue };
                for (k, v) in object {
                    touched = true;
                    if !is_once || !person.contains_key(&k) {
                        person.insert(k, v);
                    }
                }
            }
        }
        touched.then(|| serde_json::to_string(&person).unwrap())
    }

    const ROWS: [Row; 6] = [
        (30, Some(r#"{"plan":"pro"}"#), None),
        (10, Some(r#"{"plan":"free","email":"a@x"}"#), Some(r#"{"initial_utm_source":"ads"}"#)),
        (20, None, Some(r#"{"initial_utm_source":"mail","first_plan":"free","plan":"trial"}"#)),
        (40, Some("not json"), Some("[1, 2]")),
        (5, None, Some(r#"{"first_plan":"none"}"#)),
        (50, None, None),
    ];

    #[test]
    fn the_latest_set_else_the_first_set_once_as_applying_them_in_order_gives() {
        let got = accumulate(&ROWS).result();
        assert_eq!(
            got.as_deref(),
            Some(r#"{"email":"a@x","first_plan":"none","initial_utm_source":"ads","plan":"pro"}"#)
        );
        assert_eq!(got, fold(&ROWS));
        assert_eq!(accumulate(&[(1, None, None)]).result(), None);
    }

    #[test]
    fn partial_states_merged_in_any_split_and_order_give_the_same_object() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        for _ in 0..50 {
            let mut rows = ROWS.to_vec();
            rows.shuffle(&mut rng);
            let cut = rows.len() / 2;
            let mut whole = accumulate(&[]);
            for part in [&rows[cut..], &rows[..cut]] {
                let state = accumulate(part).state().unwrap();
                let ScalarValue::Utf8(text) = &state[0] else { panic!("{state:?}") };
                whole.merge_batch(&[Arc::new(StringArray::from(vec![text.clone()]))]).unwrap();
            }
            assert_eq!(whole.result(), fold(&ROWS));
        }
    }
}
