//! Tables made by SQL (`CREATE TABLE`, dbt's table models and seeds), kept next to the events
//! table so they survive restarts: one `_northstar_tables/<schema>.<table>.parquet` object per
//! table, holding all of its rows, rewritten whole after each statement that changes it. An
//! object store's put replaces an object in one step, so a crash leaves the table as it was
//! before or after the statement, never half-written. Rewriting whole suits the small tables
//! SQL clients make (models, seeds, lookups); large data belongs in `events`. Delta ignores
//! paths that start with `_`, so the events table and its tools never see these objects.

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use datafusion::parquet::arrow::ArrowWriter;
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutPayload};

use crate::table::EventStore;
use crate::{Result, StorageError};

const DIR: &str = "_northstar_tables";

/// A saved table: where it lives in the catalog, its columns and its rows.
#[derive(Debug)]
pub struct SavedTable {
    pub schema_name: String,
    pub table_name: String,
    pub columns: SchemaRef,
    pub rows: Vec<RecordBatch>,
}

impl EventStore {
    /// Saves (or replaces) every row of a table in one put.
    pub async fn save_table(
        &self,
        schema_name: &str,
        table_name: &str,
        columns: SchemaRef,
        rows: &[RecordBatch],
    ) -> Result<()> {
        let name = format!("{schema_name}.{table_name}");
        let mut bytes = Vec::new();
        let mut writer = ArrowWriter::try_new(&mut bytes, columns, None).map_err(|e| self.table_error(&name, e))?;
        for batch in rows {
            writer.write(batch).map_err(|e| self.table_error(&name, e))?;
        }
        writer.close().map_err(|e| self.table_error(&name, e))?;
        let store = self.delta_table().object_store();
        store
            .put(&path(schema_name, table_name), PutPayload::from(bytes))
            .await
            .map_err(|e| self.table_error(&name, e))?;
        Ok(())
    }

    pub async fn drop_table(&self, schema_name: &str, table_name: &str) -> Result<()> {
        let store = self.delta_table().object_store();
        match store.delete(&path(schema_name, table_name)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.table_error(&format!("{schema_name}.{table_name}"), e)),
        }
    }

    /// Every saved table, by schema and name.
    pub async fn saved_tables(&self) -> Result<Vec<SavedTable>> {
        let objects = self.objects_under(DIR).await.map_err(|(file, e)| self.table_error(&file, e))?;
        let mut tables = Vec::new();
        for (file, bytes) in objects {
            let Some((schema_name, table_name)) = names_of(&file) else { continue };
            let name = format!("{schema_name}.{table_name}");
            let reader = ParquetRecordBatchReaderBuilder::try_new(bytes).map_err(|e| self.table_error(&name, e))?;
            let columns = reader.schema().clone();
            let rows = reader
                .build()
                .map_err(|e| self.table_error(&name, e))?
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(|e| self.table_error(&name, e))?;
            tables.push(SavedTable { schema_name, table_name, columns, rows });
        }
        tables.sort_by(|a, b| (&a.schema_name, &a.table_name).cmp(&(&b.schema_name, &b.table_name)));
        Ok(tables)
    }

    fn table_error(&self, name: &str, e: impl std::fmt::Display) -> StorageError {
        StorageError::InvalidLocation(self.location().to_string(), format!("table {name}: {e}"))
    }
}

fn path(schema_name: &str, table_name: &str) -> Path {
    Path::from(DIR).join(format!("{}.{}.parquet", escape(schema_name), escape(table_name)))
}

/// The (schema, table) a file name holds, `None` for anything else in the directory.
fn names_of(file_name: &str) -> Option<(String, String)> {
    let (schema_name, table_name) = file_name.strip_suffix(".parquet")?.split_once('.')?;
    Some((unescape(schema_name)?, unescape(table_name)?))
}

/// A quoted SQL name may hold any character (`"a.b/../c"`): all but letters, digits and `_`
/// are written as `-XX` bytes (`-`, unlike `%`, is a plain character in object store keys), so
/// a name never leaves the directory and the `.` between schema and table is never part of
/// either.
fn escape(name: &str) -> String {
    name.bytes()
        .map(|b| if b.is_ascii_alphanumeric() || b == b'_' { (b as char).to_string() } else { format!("-{b:02X}") })
        .collect()
}

fn unescape(escaped: &str) -> Option<String> {
    let mut bytes = Vec::new();
    let mut rest = escaped.as_bytes();
    while let Some((&b, tail)) = rest.split_first() {
        if b == b'-' {
            let hex = std::str::from_utf8(tail.get(..2)?).ok()?;
            bytes.push(u8::from_str_radix(hex, 16).ok()?);
            rest = &tail[2..];
        } else {
            bytes.push(b);
            rest = tail;
        }
    }
    String::from_utf8(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_name_round_trips_through_its_file_name_and_stays_in_the_directory() {
        for (schema_name, table_name) in [("public", "daily"), ("Ana.lytics", "../../etc/passwd"), ("s", "a%2Eb é")] {
            let path = path(schema_name, table_name);
            assert_eq!(path.parts().count(), 2, "{path}");
            assert_eq!(names_of(path.filename().unwrap()), Some((schema_name.to_string(), table_name.to_string())));
        }
        assert_eq!(names_of("notes.txt"), None);
    }
}
