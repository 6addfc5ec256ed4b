//! A physical optimizer rule: `event = 'purchase'` on a text column read as Utf8View, inside
//! an aggregate's arguments, becomes `text_equals(event, 'purchase')`
//! ([`northstar_functions::TextEquals`], which says why that is faster).
//!
//! Only aggregate arguments: the behavioural aggregates evaluate their conditions on every
//! row. Filters (`WHERE`) are left alone: their comparisons also prune Parquet files and row
//! groups.
//!
//! ```text
//! AggregateExec: aggr=[window_funnel(…, event = purchase)]   ==>   AggregateExec: aggr=[window_funnel(…, text_equals(event, purchase))]
//! ```

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode};
use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::{Operator, ScalarUDF};
use datafusion::physical_expr::expressions::{BinaryExpr, Literal};
use datafusion::physical_expr::{PhysicalExpr, ScalarFunctionExpr};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::aggregates::AggregateExec;
use datafusion::physical_plan::ExecutionPlan;
use northstar_functions::TextEquals;

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
        schema: &Schema,
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
        let short_text =
            matches!(constant.value(), ScalarValue::Utf8View(Some(v)) if v.len() <= TextEquals::MAX_FAST_CONSTANT_LEN);
        if !short_text || text.data_type(schema)? != DataType::Utf8View {
            return Ok(Transformed::no(expr));
        }
        let field = Arc::new(Field::new("text_equals", DataType::Boolean, expr.nullable(schema)?));
        let args = vec![text.clone(), Arc::new(constant.clone()) as Arc<dyn PhysicalExpr>];
        let call = ScalarFunctionExpr::new("text_equals", self.function.clone(), args, field, config.clone());
        Ok(Transformed::yes(Arc::new(call)))
    }
}
