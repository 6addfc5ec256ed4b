//! `pg_tables` and `pg_views` read from the live catalog, as PostgreSQL's views of `pg_class`.
//!
//! datafusion-pg-catalog 0.19 lists views in `pg_tables` and leaves `pg_views` empty; dbt
//! decides between `CREATE VIEW` and `CREATE TABLE` from them, and psql, SQLAlchemy and
//! Superset show view definitions from `pg_views.definition`. Both are computed when scanned,
//! so a view made by any connection shows at once.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{ArrayRef, BooleanArray, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::view::ViewTable;
use datafusion::catalog::{CatalogProvider, Session, TableProvider};
use datafusion::common::Result as DfResult;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::TableType;
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::sql::sqlparser::ast::{CreateView, Statement};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;

/// Which relations a [`CatalogRelations`] lists.
#[derive(Debug, Clone, Copy)]
pub enum Relations {
    Tables,
    Views,
}

/// `pg_tables` or `pg_views` over one catalog.
#[derive(Debug)]
pub struct CatalogRelations {
    catalog: Arc<dyn CatalogProvider>,
    relations: Relations,
    schema: SchemaRef,
}

impl CatalogRelations {
    pub fn new(catalog: Arc<dyn CatalogProvider>, relations: Relations) -> Self {
        let text = |name: &str, nullable: bool| Field::new(name, DataType::Utf8, nullable);
        let flag = |name: &str| Field::new(name, DataType::Boolean, false);
        let fields = match relations {
            Relations::Tables => vec![
                text("schemaname", false),
                text("tablename", false),
                text("tableowner", false),
                text("tablespace", true),
                flag("hasindex"),
                flag("hasrules"),
                flag("hastriggers"),
                flag("rowsecurity"),
            ],
            Relations::Views => {
                vec![
                    text("schemaname", false),
                    text("viewname", false),
                    text("viewowner", false),
                    text("definition", true),
                ]
            }
        };
        CatalogRelations { catalog, relations, schema: Arc::new(Schema::new(fields)) }
    }

    async fn rows(&self) -> DfResult<RecordBatch> {
        let wanted = match self.relations {
            Relations::Tables => TableType::Base,
            Relations::Views => TableType::View,
        };
        let (mut schemas, mut names, mut definitions) = (vec![], vec![], vec![]);
        let mut schema_names = self.catalog.schema_names();
        schema_names.sort();
        for schema_name in schema_names {
            let Some(schema) = self.catalog.schema(&schema_name) else { continue };
            let mut table_names = schema.table_names();
            table_names.sort();
            for table_name in table_names {
                let Some(table) = schema.table(&table_name).await? else { continue };
                if table.table_type() != wanted {
                    continue;
                }
                schemas.push(schema_name.clone());
                names.push(table_name);
                definitions.push(view_query(table.as_ref()));
            }
        }
        let n = names.len();
        let owners = || Arc::new(StringArray::from(vec!["postgres"; n])) as ArrayRef;
        let no = || Arc::new(BooleanArray::from(vec![false; n])) as ArrayRef;
        let columns: Vec<ArrayRef> = match self.relations {
            Relations::Tables => vec![
                Arc::new(StringArray::from(schemas)),
                Arc::new(StringArray::from(names)),
                owners(),
                Arc::new(StringArray::from(vec![None::<String>; n])),
                no(),
                no(),
                no(),
                no(),
            ],
            Relations::Views => vec![
                Arc::new(StringArray::from(schemas)),
                Arc::new(StringArray::from(names)),
                owners(),
                Arc::new(StringArray::from(definitions)),
            ],
        };
        Ok(RecordBatch::try_new(self.schema.clone(), columns)?)
    }
}

/// The `CREATE VIEW` statement DataFusion keeps for a view; `None` for anything else.
pub fn view_definition(table: &dyn TableProvider) -> Option<CreateView> {
    let definition = table.downcast_ref::<ViewTable>()?.definition()?;
    match Parser::parse_sql(&PostgreSqlDialect {}, definition).ok()?.pop()? {
        Statement::CreateView(create) => Some(create),
        _ => None,
    }
}

/// A view's query as `pg_views.definition` shows it (the SELECT, ending in `;`).
fn view_query(table: &dyn TableProvider) -> Option<String> {
    view_definition(table).map(|create| format!(" {};", create.query))
}

#[async_trait]
impl TableProvider for CatalogRelations {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let batch = self.rows().await?;
        Ok(MemorySourceConfig::try_new_exec(&[vec![batch]], self.schema.clone(), projection.cloned())?)
    }
}
