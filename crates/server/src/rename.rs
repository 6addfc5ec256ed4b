//! `ALTER VIEW a RENAME TO b`, and `ALTER TABLE a RENAME TO b` on a view (dbt's form).

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
    /// The view is created under the new name from its definition, then the old one dropped,
    /// each saved to the data location like any CREATE/DROP VIEW.
    pub async fn rename_view(&self, alter: &AlterTable) -> PgWireResult<()> {
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
        let Some(mut create) = view_definition(table.as_ref()) else {
            return Err(error(FEATURE_NOT_SUPPORTED, format!("\"{from}\" is not a view; only views can be renamed")));
        };
        let mut parts = from.0.clone();
        parts.pop();
        parts.push(ObjectNamePart::Identifier(new_name));
        create.name = ObjectName(parts);
        create.or_replace = false;
        if self.ctx.table_exist(create.name.to_string()).unwrap_or(false) {
            return Err(error("42P07", format!("relation \"{}\" already exists", create.name)));
        }
        let drop = Parser::parse_sql(&PostgreSqlDialect {}, &format!("DROP VIEW {from}"))
            .map_err(|e| error(SYNTAX_ERROR, e.to_string()))?
            .remove(0);
        for statement in [Statement::CreateView(create), drop] {
            let planned = plan(self, DfStatement::Statement(Box::new(statement.clone())), &self.limits()).await?;
            let df = self.ctx.execute_logical_plan(planned).await.map_err(from_datafusion)?;
            df.collect().await.map_err(from_datafusion)?;
            self.shared.events.persist_view_change(&statement).await.map_err(internal)?;
        }
        Ok(())
    }
}
