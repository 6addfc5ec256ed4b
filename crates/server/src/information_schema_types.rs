//! `information_schema.columns.data_type` in PostgreSQL's words (`timestamp with time zone`,
//! `bigint`, `text`, `ARRAY`) instead of Arrow's (`Timestamp(µs, "UTC")`, `Int64`, `Utf8View`):
//! dbt's `get_columns_in_relation` and other tools read column types there.
//!
//! DataFusion builds `information_schema` itself (its session answers that schema before any
//! registered one), so the names are mapped where the table is read: an analyzer rule puts a
//! projection over every scan of `information_schema.columns` that passes `data_type` through
//! `information_schema_type`. The type chosen is the one `pg_attribute` gives the column
//! (datafusion-pg-catalog's mapping: arrow-pg's type where it lists one, else text), so the
//! two catalogs agree; its name is `format_type`'s, arrays `ARRAY`, as PostgreSQL's
//! information_schema writes them.

use std::str::FromStr;
use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{Array, ArrayRef, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::Transformed;
use datafusion::common::{Column, Result};
use datafusion::logical_expr::{
    ColumnarValue, Expr, LogicalPlan, Projection, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::optimizer::AnalyzerRule;
use pgwire::api::Type;

use crate::function_catalog::display_type_name;

/// Maps `information_schema.columns.data_type` to PostgreSQL's type names.
#[derive(Debug, Default)]
pub struct InformationSchemaTypes;

impl AnalyzerRule for InformationSchemaTypes {
    fn name(&self) -> &str {
        "information_schema_types"
    }

    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        Ok(plan.transform_up_with_subqueries(with_postgres_types)?.data)
    }
}

fn with_postgres_types(plan: LogicalPlan) -> Result<Transformed<LogicalPlan>> {
    let LogicalPlan::TableScan(scan) = &plan else { return Ok(Transformed::no(plan)) };
    let is_columns = scan.table_name.table() == "columns" && scan.table_name.schema() == Some("information_schema");
    if !is_columns || scan.projected_schema.field_with_unqualified_name("data_type").is_err() {
        return Ok(Transformed::no(plan));
    }
    let exprs = scan
        .projected_schema
        .iter()
        .map(|(qualifier, field)| {
            let column = Expr::Column(Column::new(qualifier.cloned(), field.name()));
            if field.name() == "data_type" {
                INFORMATION_SCHEMA_TYPE.call(vec![column]).alias_qualified(qualifier.cloned(), "data_type")
            } else {
                column
            }
        })
        .collect();
    Ok(Transformed::yes(LogicalPlan::Projection(Projection::try_new(exprs, Arc::new(plan))?)))
}

static INFORMATION_SCHEMA_TYPE: LazyLock<ScalarUDF> = LazyLock::new(|| {
    ScalarUDF::from(InformationSchemaType { signature: Signature::exact(vec![DataType::Utf8], Volatility::Immutable) })
});

/// `information_schema_type(arrow_type_text)`: PostgreSQL's information_schema name of the
/// type `pg_attribute` gives a column of that Arrow type. Text that is not an Arrow type is
/// returned as it is (so mapping twice changes nothing).
#[derive(Debug, PartialEq, Eq, Hash)]
struct InformationSchemaType {
    signature: Signature,
}

impl ScalarUDFImpl for InformationSchemaType {
    fn name(&self) -> &str {
        "information_schema_type"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let texts: ArrayRef = cast(&args.args[0].to_array(args.number_rows)?, &DataType::Utf8)?;
        let texts = texts.as_any().downcast_ref::<StringArray>().expect("cast to Utf8");
        let names: StringArray = texts.iter().map(|text| text.map(postgres_name)).collect();
        Ok(ColumnarValue::Array(Arc::new(names)))
    }
}

/// The information_schema name of the PostgreSQL type of a column of Arrow type `text`.
fn postgres_name(text: &str) -> String {
    let Ok(data_type) = DataType::from_str(text) else { return text.to_string() };
    // datafusion-pg-catalog's pg_attribute: these types as arrow-pg maps them, all else text.
    let pg_type = match arrow_pg::datatypes::into_pg_type(&data_type) {
        Ok(
            t @ (Type::BOOL
            | Type::CHAR
            | Type::INT2
            | Type::INT4
            | Type::INT8
            | Type::FLOAT4
            | Type::FLOAT8
            | Type::TEXT
            | Type::BYTEA
            | Type::DATE
            | Type::TIME
            | Type::TIMESTAMP
            | Type::TIMESTAMPTZ
            | Type::NUMERIC
            | Type::INT4_ARRAY
            | Type::TEXT_ARRAY),
        ) => t,
        _ => Type::TEXT,
    };
    match pg_type {
        Type::INT4_ARRAY | Type::TEXT_ARRAY => "ARRAY".to_string(),
        Type::CHAR => "\"char\"".to_string(),
        t => display_type_name(t.name()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrow_type_texts_become_postgres_information_schema_names() {
        for (arrow, postgres) in [
            ("Timestamp(µs, \"UTC\")", "timestamp with time zone"),
            ("Timestamp(Microsecond, None)", "timestamp without time zone"),
            ("Utf8View", "text"),
            ("Utf8", "text"),
            ("Int64", "bigint"),
            ("Int32", "integer"),
            ("Float64", "double precision"),
            ("Boolean", "boolean"),
            ("Date32", "date"),
            ("List(Utf8)", "ARRAY"),
            ("timestamp with time zone", "timestamp with time zone"),
        ] {
            let shown = DataType::from_str(arrow).map(|t| t.to_string()).unwrap_or_else(|_| arrow.to_string());
            assert_eq!(postgres_name(&shown), postgres, "{arrow} shown as {shown}");
        }
    }
}
