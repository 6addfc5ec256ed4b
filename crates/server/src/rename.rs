//! `ALTER VIEW a RENAME TO b`, and `ALTER TABLE a RENAME TO b` on a view (dbt's form).

use datafusion::catalog::view::ViewTable;
use datafusion::sql::sqlparser::ast::Statement;
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;

impl crate::session::Session {
    /// `ALTER VIEW a RENAME TO b` (and `ALTER TABLE a RENAME TO b` on a view, as dbt writes
    /// it): the view is created under the new name from its saved definition, then the old one
    /// dropped, each saved to the data location like any CREATE/DROP VIEW.
    pub async fn rename_view(
        &self,
        from: &datafusion::sql::sqlparser::ast::ObjectName,
        to: &datafusion::sql::sqlparser::ast::Ident,
    ) -> pgwire::error::PgWireResult<pgwire::api::results::Response> {
        use datafusion::sql::sqlparser::ast::{ObjectName, ObjectNamePart};

        use crate::errors::{error, from_datafusion, internal, FEATURE_NOT_SUPPORTED, UNDEFINED_TABLE};
        let table = self
            .ctx
            .table_provider(from.to_string().as_str())
            .await
            .map_err(|_| error(UNDEFINED_TABLE, format!("relation \"{from}\" does not exist")))?;
        let definition = table.downcast_ref::<ViewTable>().and_then(|v| v.definition().cloned());
        let Some(Statement::CreateView(mut create)) =
            definition.and_then(|d| Parser::parse_sql(&PostgreSqlDialect {}, &d).ok()).and_then(|mut s| s.pop())
        else {
            return Err(error(FEATURE_NOT_SUPPORTED, format!("\"{from}\" is not a view; only views can be renamed")));
        };
        let mut parts = from.0.clone();
        parts.pop();
        parts.push(ObjectNamePart::Identifier(to.clone()));
        let new_name = ObjectName(parts);
        if self.ctx.table_exist(new_name.to_string()).unwrap_or(false) {
            return Err(error("42P07", format!("relation \"{new_name}\" already exists")));
        }
        create.name = new_name;
        create.or_replace = false;
        let drop = Parser::parse_sql(&PostgreSqlDialect {}, &format!("DROP VIEW {from}"))
            .map_err(|e| error(crate::errors::SYNTAX_ERROR, e.to_string()))?
            .remove(0);
        for statement in [Statement::CreateView(create), drop] {
            let plan = crate::query::plan(
                self,
                datafusion::sql::parser::Statement::Statement(Box::new(statement.clone())),
                &self.limits(),
            )
            .await?;
            self.ctx
                .execute_logical_plan(plan)
                .await
                .map_err(from_datafusion)?
                .collect()
                .await
                .map_err(from_datafusion)?;
            self.shared.events.persist_view_change(&statement).await.map_err(internal)?;
        }
        Ok(pgwire::api::results::Response::Execution(pgwire::api::results::Tag::new("ALTER VIEW")))
    }
}
