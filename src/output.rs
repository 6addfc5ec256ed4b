//! Printing query results as a table, CSV (with a header line) or JSON lines.

use std::io::Write;

use anyhow::Result;
use comfy_table::{presets::UTF8_FULL_CONDENSED, Table};
use datafusion::arrow::csv::WriterBuilder;
use datafusion::arrow::json::LineDelimitedWriter;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};

pub fn write_table(out: &mut impl Write, batches: &[RecordBatch]) -> Result<()> {
    let Some(first) = batches.first() else {
        writeln!(out, "(0 rows)")?;
        return Ok(());
    };
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED);
    table.set_header(first.schema().fields().iter().map(|f| f.name().clone()));
    let options = FormatOptions::default().with_null("NULL");
    let mut rows = 0;
    for batch in batches {
        let formatters = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
            .collect::<Result<Vec<_>, _>>()?;
        for row in 0..batch.num_rows() {
            table.add_row(formatters.iter().map(|f| f.value(row).to_string()));
        }
        rows += batch.num_rows();
    }
    writeln!(out, "{table}")?;
    writeln!(out, "({rows} row{})", if rows == 1 { "" } else { "s" })?;
    Ok(())
}

pub fn write_csv(out: &mut impl Write, batches: &[RecordBatch]) -> Result<()> {
    let mut writer = WriterBuilder::new().with_header(true).build(out);
    for batch in batches {
        writer.write(batch)?;
    }
    Ok(())
}

pub fn write_json(out: &mut impl Write, batches: &[RecordBatch]) -> Result<()> {
    let mut writer = LineDelimitedWriter::new(out);
    for batch in batches {
        writer.write(batch)?;
    }
    writer.finish()?;
    Ok(())
}
