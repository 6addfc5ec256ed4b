//! Faster conditions for the behavioural aggregates: `event = 'purchase'` on a text column
//! read as Utf8View, inside an aggregate's arguments, becomes `text_equals(event, 'purchase')`.
//!
//! Why: the conditions are evaluated on every row (four comparisons per event for a
//! four-step funnel); arrow's comparison checks each value's length, prefix and buffers. A
//! constant of at most 12 bytes is stored inline in its 16-byte view, and a value equals it
//! exactly when the two views are equal (a longer value has a longer length field, a shorter
//! or different one differs in the inline bytes), so one 128-bit comparison per row decides.
//! Measured on the 20M-event funnel: the comparisons took a fifth of its CPU time.
//!
//! `text_equals` is an ordinary scalar function, registered everywhere Northstar's functions
//! are, so rewritten plans still travel to Ballista executors by name. Filters (`WHERE`) are
//! left alone: their comparisons also prune Parquet files and row groups.
//!
//! ```sql
//! SELECT text_equals(event, 'purchase') FROM events;  -- the same as event = 'purchase'
//! ```

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{make_view, Array, ArrayRef, AsArray, BooleanArray, Scalar};
use datafusion::arrow::buffer::BooleanBuffer;
use datafusion::arrow::compute::kernels::cmp::eq;
use datafusion::arrow::datatypes::{DataType, Field};
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode};
use datafusion::common::{exec_err, Result, ScalarValue};
use datafusion::logical_expr::scalar_doc_sections::DOC_SECTION_STRING;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, Operator, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::physical_expr::expressions::{BinaryExpr, Literal};
use datafusion::physical_expr::{PhysicalExpr, ScalarFunctionExpr};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::aggregates::AggregateExec;
use datafusion::physical_plan::ExecutionPlan;

/// Longest text stored inline in a view.
const INLINE: usize = 12;

/// `text_equals(text, constant)`: `text = constant`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct TextEquals {
    signature: Signature,
}

impl Default for TextEquals {
    fn default() -> Self {
        Self { signature: Signature::any(2, Volatility::Immutable) }
    }
}

static DOCUMENTATION: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        DOC_SECTION_STRING,
        "Returns text = constant. Northstar's planner writes it in place of column = 'short text' inside \
         aggregate arguments when the column is read as Utf8View and the constant has at most 12 bytes: one \
         128-bit comparison per row then decides.",
        "text_equals(text, constant)",
    )
    .with_sql_example(
        r#"```sql
SELECT count(*) FILTER (WHERE text_equals(event, 'purchase')) AS purchases FROM events;
```"#,
    )
    .with_argument("text", "The text to compare.")
    .with_argument("constant", "A constant text.")
    .build()
});

impl ScalarUDFImpl for TextEquals {
    fn name(&self) -> &str {
        "text_equals"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&DOCUMENTATION)
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Boolean)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [text, constant] = args.args.as_slice() else {
            return exec_err!("text_equals takes a text and a constant");
        };
        let ColumnarValue::Scalar(constant) = constant else {
            return exec_err!("text_equals: the second argument must be a constant");
        };
        let rows = args.number_rows;
        let text = text.to_array(rows)?;
        // Called directly, the constant may be of another text type.
        let constant = &constant.cast_to(text.data_type())?;
        if let (DataType::Utf8View, ScalarValue::Utf8View(Some(value))) = (text.data_type(), constant) {
            if value.len() <= INLINE {
                let wanted = make_view(value.as_bytes(), 0, 0);
                let views = text.as_string_view().views();
                let equal = BooleanBuffer::collect_bool(views.len(), |i| views[i] == wanted);
                let result: ArrayRef = Arc::new(BooleanArray::new(equal, text.logical_nulls()));
                return Ok(ColumnarValue::Array(result));
            }
        }
        let constant = Scalar::new(constant.to_array_of_size(1)?);
        Ok(ColumnarValue::Array(Arc::new(eq(&text, &constant)?)))
    }
}

/// Rewrites `column = 'short constant'` (Utf8View) in aggregate arguments to `text_equals`.
#[derive(Debug)]
pub struct FastTextEquality {
    function: Arc<ScalarUDF>,
}

impl Default for FastTextEquality {
    fn default() -> Self {
        Self { function: Arc::new(ScalarUDF::from(TextEquals::default())) }
    }
}

impl PhysicalOptimizerRule for FastTextEquality {
    fn optimize(&self, plan: Arc<dyn ExecutionPlan>, config: &ConfigOptions) -> Result<Arc<dyn ExecutionPlan>> {
        let config = Arc::new(config.clone());
        plan.transform_up(|plan| {
            Ok(match self.rewrite_aggregate(&plan, &config)? {
                Some(rewritten) => Transformed::yes(rewritten),
                None => Transformed::no(plan),
            })
        })
        .data()
    }

    fn name(&self) -> &str {
        "FastTextEquality"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

impl FastTextEquality {
    fn rewrite_aggregate(
        &self,
        plan: &Arc<dyn ExecutionPlan>,
        config: &Arc<ConfigOptions>,
    ) -> Result<Option<Arc<dyn ExecutionPlan>>> {
        let Some(aggregate) = plan.downcast_ref::<AggregateExec>() else { return Ok(None) };
        let input_schema = aggregate.input_schema();
        let mut changed = false;
        let mut functions = Vec::with_capacity(aggregate.aggr_expr().len());
        for function in aggregate.aggr_expr() {
            let all = function.all_expressions();
            let mut args = Vec::with_capacity(all.args.len());
            for arg in all.args {
                let rewritten = arg.transform_up(|e| self.rewrite_equality(e, &input_schema, config))?;
                changed |= rewritten.transformed;
                args.push(rewritten.data);
            }
            match function.with_new_expressions(args, all.order_by_exprs) {
                Some(new) => functions.push(Arc::new(new)),
                None => return Ok(None),
            }
        }
        if !changed {
            return Ok(None);
        }
        let rewritten = AggregateExec::try_new(
            *aggregate.mode(),
            aggregate.group_expr().clone(),
            functions,
            aggregate.filter_expr().to_vec(),
            aggregate.input().clone(),
            input_schema,
        )?
        .with_limit_options(aggregate.limit_options());
        Ok((rewritten.schema() == aggregate.schema()).then(|| Arc::new(rewritten) as Arc<dyn ExecutionPlan>))
    }

    fn rewrite_equality(
        &self,
        expr: Arc<dyn PhysicalExpr>,
        schema: &datafusion::arrow::datatypes::Schema,
        config: &Arc<ConfigOptions>,
    ) -> Result<Transformed<Arc<dyn PhysicalExpr>>> {
        let Some(binary) = expr.downcast_ref::<BinaryExpr>() else { return Ok(Transformed::no(expr)) };
        if *binary.op() != Operator::Eq {
            return Ok(Transformed::no(expr));
        }
        let (text, constant) = match (binary.left().downcast_ref::<Literal>(), binary.right().downcast_ref::<Literal>())
        {
            (None, Some(constant)) => (binary.left(), constant),
            (Some(constant), None) => (binary.right(), constant),
            _ => return Ok(Transformed::no(expr)),
        };
        let short_text = matches!(constant.value(), ScalarValue::Utf8View(Some(v)) if v.len() <= INLINE);
        if !short_text || text.data_type(schema)? != DataType::Utf8View {
            return Ok(Transformed::no(expr));
        }
        let field = Arc::new(Field::new("text_equals", DataType::Boolean, expr.nullable(schema)?));
        let args = vec![text.clone(), Arc::new(constant.clone()) as Arc<dyn PhysicalExpr>];
        let call = ScalarFunctionExpr::new("text_equals", self.function.clone(), args, field, config.clone());
        Ok(Transformed::yes(Arc::new(call)))
    }
}
