//! `ALTER VIEW a RENAME TO b`, and `ALTER TABLE a RENAME TO b` on a view (dbt's form) or on
//! a table made by SQL (dbt's table models swap their new table in this way).

use datafusion::catalog::MemTable;
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::{
    AlterTable, AlterTableOperation, ObjectName, ObjectNamePart, RenameTableNameKind, Statement,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;
use pgwire::error::PgWireResult;

use crate::errors::{error, from_datafusion, internal, FEATURE_NOT_SUPPORTED, SYNTAX_ERROR, UNDEFINED_TABLE};
use crate::query::plan;
use crate::relations::view_definition;
use crate::session::Session;

impl Session {
    /// A view is created under the new name from its definition, then the old one dropped,
    /// each saved to the data location like any CREATE/DROP VIEW. A table keeps its rows and
    /// changes its name in the catalog and in the data location.
    pub async fn rename_relation(&self, alter: &AlterTable) -> PgWireResult<()> {
        let from = &alter.name;
        let new_name = match alter.operations.as_slice() {
            [AlterTableOperation::RenameTable {
                table_name: RenameTableNameKind::To(to) | RenameTableNameKind::As(to),
            }] => match to.0.last() {
                Some(ObjectNamePart::Identifier(ident)) => ident.clone(),
                _ => return Err(error(SYNTAX_ERROR, format!("bad new name {to}"))),
            },
            _ => return Err(error(SYNTAX_ERROR, format!("not a RENAME: {alter}"))),
        };
        let table = self
            .ctx
            .table_provider(from.to_string().as_str())
            .await
            .map_err(|_| error(UNDEFINED_TABLE, format!("relation \"{from}\" does not exist")))?;
        let mut parts = from.0.clone();
        parts.pop();
        parts.push(ObjectNamePart::Identifier(new_name));
        let to = ObjectName(parts);
        if self.ctx.table_exist(to.to_string()).unwrap_or(false) {
            return Err(error("42P07", format!("relation \"{to}\" already exists")));
        }
        if table.downcast_ref::<MemTable>().is_some() {
            self.ctx.register_table(to.to_string(), table).map_err(from_datafusion)?;
            self.ctx.deregister_table(from.to_string()).map_err(from_datafusion)?;
            return self.shared.events.persist_table_rename(&self.ctx, from, &to).await.map_err(internal);
        }
        let Some(mut create) = view_definition(table.as_ref()) else {
            return Err(error(
                FEATURE_NOT_SUPPORTED,
                format!("\"{from}\" cannot be renamed: only views and tables made by SQL can"),
            ));
        };
        create.name = to;
        create.or_replace = false;
        let drop = Parser::parse_sql(&PostgreSqlDialect {}, &format!("DROP VIEW {from}"))
            .map_err(|e| error(SYNTAX_ERROR, e.to_string()))?
            .remove(0);
        for statement in [Statement::CreateView(create), drop] {
            let planned = plan(self, DfStatement::Statement(Box::new(statement.clone())), &self.limits()).await?;
            let df = self.ctx.execute_logical_plan(planned).await.map_err(from_datafusion)?;
            df.collect().await.map_err(from_datafusion)?;
            self.shared.events.persist_catalog_change(&self.ctx, &statement).await.map_err(internal)?;
        }
        Ok(())
    }
}
