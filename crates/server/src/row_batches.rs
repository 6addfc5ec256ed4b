//! Result rows encoded a record batch at a time.
//!
//! arrow-pg's row encoder (`encode_recordbatch`) handles one value at a time: it looks up the
//! column, downcasts its array, clones the field's type and format options and, for a
//! timestamp with a time zone, parses the zone's name again — for every value. Streaming a
//! 10M-row result ran at a quarter of PostgreSQL's rate that way (docs/benchmarks.md). Here
//! each column is downcast once per batch; the common types (strings, dictionaries of
//! strings, integers, booleans; floats, dates and timestamps in binary format) are written
//! straight into 64 KiB buffers, and the rows are cut from them without copying. Text-format
//! timestamps and dates (whose form depends on the session's DateStyle) are the chrono values
//! arrow-pg makes, formatted with the chrono format pgwire takes from the DateStyle — the zone
//! and the format parsed once per batch, not per value (parsing them was half of a text
//! stream's time); in the ISO DateStyle (the default) they are written digit by digit, and
//! timestamps as PostgreSQL writes them (`2026-01-31 09:05:00+05:30`; pgwire's format writes
//! `2026-01-31 09:05:00.000000+05`). Every other column goes through arrow-pg's own
//! `encode_value`, so its bytes are arrow-pg's. A unit test holds every fast path to
//! arrow-pg's bytes, in both formats and every DateStyle, except ISO timestamps, held to
//! PostgreSQL's text (`northstar_functions::postgres_timestamp_text`).

use std::str::FromStr;
use std::sync::Arc;

use arrow_pg::encoder::{encode_value, Encoder};
use bytes::{BufMut, BytesMut};
use chrono::format::{Item, StrftimeItems};
use chrono::{Datelike, NaiveDate, NaiveDateTime, NaiveTime, Timelike};
use datafusion::arrow::array::timezone::Tz;
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Date32Array, Float32Array, Float64Array, Int16Array, Int32Array,
    Int64Array, LargeStringArray, PrimitiveArray, RecordBatch, StringArray, StringViewArray, TimestampMicrosecondArray,
    TimestampNanosecondArray,
};
use datafusion::arrow::datatypes::{ArrowTimestampType, DataType, Field, TimeUnit, TimestampMicrosecondType};
use pgwire::api::results::{FieldFormat, FieldInfo};
use pgwire::api::Type;
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::data::DataRow;
use pgwire::types::format::date_style::DateStyle;
use pgwire::types::ToSqlText;
use postgres_types::{IsNull, ToSql};

/// Rows are written into buffers of this size (a row larger than what is left grows it).
/// Buffers of a whole batch (hundreds of KiB) were fresh pages from the system every time:
/// zeroing them was 13 % of the server's time in a profile of a 10M-row stream.
const BUFFER_BYTES: usize = 64 * 1024;

/// Microseconds and days from 1970-01-01 (Arrow's epoch) to 2000-01-01 (PostgreSQL's).
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;
const PG_EPOCH_DAYS: i32 = 10_957;

/// The rows of one batch, in the wire's DataRow form; an error stops the batch after the rows
/// encoded before it.
pub(crate) fn encode_batch(
    fields: &Arc<Vec<FieldInfo>>,
    batch: &RecordBatch,
) -> Box<dyn Iterator<Item = PgWireResult<DataRow>> + Send> {
    let (rows, error) = encode_rows(fields, batch);
    Box::new(rows.into_iter().map(Ok).chain(error.map(Err)))
}

/// How many encoded batches may wait for the connection to send them.
const BATCHES_AHEAD: usize = 2;

/// A result's rows, encoded on a task of their own up to [`BATCHES_AHEAD`] batches ahead of
/// the connection writing them out, so that scanning and encoding one batch overlap with
/// sending the one before (on the connection's own task, they took turns: a 10M-row stream
/// kept 1.45 of 2 cores busy). The task stops when the batches end, at the first error, or as
/// soon as the stream is dropped (a client gone or a statement canceled), even while it waits
/// for a batch. A panic on it is resumed where the rows are read, as if it had happened there.
pub(crate) fn encoded_ahead<S>(
    fields: Arc<Vec<FieldInfo>>,
    batches: S,
) -> impl futures::Stream<Item = PgWireResult<DataRow>> + Send + 'static
where
    S: futures::Stream<Item = PgWireResult<RecordBatch>> + Send + 'static,
{
    use futures::StreamExt;
    let (sender, receiver) = tokio::sync::mpsc::channel::<Vec<PgWireResult<DataRow>>>(BATCHES_AHEAD);
    let producer = tokio::spawn(async move {
        futures::pin_mut!(batches);
        loop {
            let next = tokio::select! {
                next = batches.next() => next,
                () = sender.closed() => return,
            };
            let rows: Vec<_> = match next {
                None => return,
                Some(Ok(batch)) => encode_batch(&fields, &batch).collect(),
                Some(Err(e)) => vec![Err(e)],
            };
            let failed = rows.last().is_some_and(Result::is_err);
            if sender.send(rows).await.is_err() || failed {
                return;
            }
        }
    });
    futures::stream::unfold((receiver, Some(producer)), |(mut receiver, producer)| async move {
        if let Some(rows) = receiver.recv().await {
            return Some((futures::stream::iter(rows), (receiver, producer)));
        }
        match producer?.await {
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            _ => None,
        }
    })
    .flatten()
}

fn encode_rows(fields: &[FieldInfo], batch: &RecordBatch) -> (Vec<DataRow>, Option<PgWireError>) {
    let schema = batch.schema();
    let columns: Vec<Column> = batch
        .columns()
        .iter()
        .zip(schema.fields().iter())
        .zip(fields)
        .map(|((array, arrow_field), pg_field)| Column::new(array, arrow_field, pg_field))
        .collect();
    let field_count = columns.len() as i16;
    let mut buffer = RowBuffer { bytes: BytesMut::with_capacity(BUFFER_BYTES) };
    let mut rows = Vec::with_capacity(batch.num_rows());
    let mut error = None;
    'rows: for row in 0..batch.num_rows() {
        for column in &columns {
            if let Err(e) = column.write(row, &mut buffer) {
                error = Some(e);
                break 'rows;
            }
        }
        // The row shares the buffer's memory; once little is left, the next rows get a new one.
        rows.push(DataRow::new(buffer.bytes.split(), field_count));
        if buffer.bytes.capacity() < BUFFER_BYTES / 16 {
            buffer.bytes = BytesMut::with_capacity(BUFFER_BYTES);
        }
    }
    (rows, error)
}

/// One column of a batch, downcast once, in the form its values are written in.
enum Column<'a> {
    Utf8(&'a StringArray),
    LargeUtf8(&'a LargeStringArray),
    Utf8View(&'a StringViewArray),
    /// A dictionary of strings: each row's key (`None` for a null key) into its values.
    Dictionary(Vec<Option<usize>>, Box<Column<'a>>),
    Bool(&'a BooleanArray, FieldFormat),
    Int16(&'a Int16Array, FieldFormat),
    Int32(&'a Int32Array, FieldFormat),
    Int64(&'a Int64Array, FieldFormat),
    /// Binary format only: text floats follow extra_float_digits.
    Float32(&'a Float32Array),
    Float64(&'a Float64Array),
    /// Binary format only, microseconds, sent as microseconds from 2000-01-01 whatever the zone
    /// (text follows DateStyle). Other units are left to arrow-pg, which goes through chrono.
    TimestampMicros(&'a dyn Array, &'a [i64]),
    Date32(&'a Date32Array),
    /// Text format: the chrono values arrow-pg makes, formatted with pgwire's DateStyle format,
    /// the zone and the format parsed once per batch instead of once per value.
    TimestampText(TimestampArray<'a>, Option<Tz>, TextFormat),
    DateText(&'a Date32Array, TextFormat),
    /// Anything else, through arrow-pg's encoder.
    Other {
        array: &'a ArrayRef,
        arrow_field: &'a Field,
        pg_field: &'a FieldInfo,
    },
}

impl<'a> Column<'a> {
    fn new(array: &'a ArrayRef, arrow_field: &'a Field, pg_field: &'a FieldInfo) -> Self {
        let other = Column::Other { array, arrow_field, pg_field };
        // Field metadata marks PostgreSQL types Arrow has no name for ("char", oid …): arrow-pg
        // encodes those.
        if !arrow_field.metadata().is_empty() {
            return other;
        }
        let format = pg_field.format();
        let binary = format == FieldFormat::Binary;
        let pg_type = pg_field.datatype();
        let text_type = matches!(*pg_type, Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME);
        match array.data_type() {
            DataType::Utf8 if text_type => Column::Utf8(array.as_string::<i32>()),
            DataType::LargeUtf8 if text_type => Column::LargeUtf8(array.as_string::<i64>()),
            DataType::Utf8View if text_type => Column::Utf8View(array.as_string_view()),
            DataType::Dictionary(_, values) if text_type && is_string(values) => {
                let dictionary = array.as_any_dictionary();
                let keys = dictionary.normalized_keys();
                let keys = (0..array.len()).map(|row| dictionary.keys().is_valid(row).then(|| keys[row])).collect();
                let values = Column::strings(dictionary.values());
                Column::Dictionary(keys, Box::new(values))
            }
            DataType::Boolean if *pg_type == Type::BOOL => Column::Bool(array.as_boolean(), format),
            DataType::Int16 if *pg_type == Type::INT2 => Column::Int16(array.as_primitive(), format),
            DataType::Int32 if *pg_type == Type::INT4 => Column::Int32(array.as_primitive(), format),
            DataType::Int64 if *pg_type == Type::INT8 => Column::Int64(array.as_primitive(), format),
            DataType::Float32 if binary && *pg_type == Type::FLOAT4 => Column::Float32(array.as_primitive()),
            DataType::Float64 if binary && *pg_type == Type::FLOAT8 => Column::Float64(array.as_primitive()),
            DataType::Date32 if binary && *pg_type == Type::DATE => Column::Date32(array.as_primitive()),
            DataType::Timestamp(TimeUnit::Microsecond, zone) if binary && *pg_type == timestamp_type(zone) => {
                Column::TimestampMicros(array.as_ref(), array.as_primitive::<TimestampMicrosecondType>().values())
            }
            DataType::Timestamp(unit @ (TimeUnit::Microsecond | TimeUnit::Nanosecond), zone) if !binary => {
                // pgwire formats a zoned time as `timestamptz`, a plain one as `timestamp`;
                // other pairings, and an unknown zone, are left to arrow-pg (and its errors).
                let style = DateStyle::new(&pg_field.format_options().date_style);
                let (zone, format) = match (zone.as_deref().map(Tz::from_str), pg_type) {
                    (Some(Ok(zone)), &Type::TIMESTAMPTZ) => (Some(zone), style.full_tz_format_str()),
                    (None, &Type::TIMESTAMP) => (None, style.full_format_str().to_string()),
                    _ => return other,
                };
                let Some(format) = TextFormat::new(&format) else { return other };
                let values = match unit {
                    TimeUnit::Microsecond => TimestampArray::Micros(array.as_primitive()),
                    _ => TimestampArray::Nanos(array.as_primitive()),
                };
                Column::TimestampText(values, zone, format)
            }
            DataType::Date32 if *pg_type == Type::DATE => {
                let style = DateStyle::new(&pg_field.format_options().date_style);
                match TextFormat::new(style.date_format_str()) {
                    Some(format) => Column::DateText(array.as_primitive(), format),
                    None => other,
                }
            }
            _ => other,
        }
    }

    /// A dictionary's values; checked to be strings by the caller.
    fn strings(values: &'a ArrayRef) -> Self {
        match values.data_type() {
            DataType::LargeUtf8 => Column::LargeUtf8(values.as_string::<i64>()),
            DataType::Utf8View => Column::Utf8View(values.as_string_view()),
            _ => Column::Utf8(values.as_string::<i32>()),
        }
    }

    fn write(&self, row: usize, out: &mut RowBuffer) -> PgWireResult<()> {
        match self {
            Column::Utf8(a) => out.bytes_or_null(a.is_valid(row).then(|| a.value(row).as_bytes())),
            Column::LargeUtf8(a) => out.bytes_or_null(a.is_valid(row).then(|| a.value(row).as_bytes())),
            Column::Utf8View(a) => out.bytes_or_null(a.is_valid(row).then(|| a.value(row).as_bytes())),
            Column::Dictionary(keys, values) => match keys[row] {
                Some(key) => return values.write(key, out),
                None => out.null(),
            },
            Column::Bool(a, format) => match (a.is_valid(row), format) {
                (false, _) => out.null(),
                (true, FieldFormat::Binary) => out.bytes(&[a.value(row) as u8]),
                (true, FieldFormat::Text) => out.bytes(if a.value(row) { b"t" } else { b"f" }),
            },
            Column::Int16(a, format) => out.integer(a.is_valid(row).then(|| a.value(row)), *format, i16::to_be_bytes),
            Column::Int32(a, format) => out.integer(a.is_valid(row).then(|| a.value(row)), *format, i32::to_be_bytes),
            Column::Int64(a, format) => out.integer(a.is_valid(row).then(|| a.value(row)), *format, i64::to_be_bytes),
            Column::Float32(a) => {
                out.bytes_or_null(a.is_valid(row).then(|| a.value(row).to_be_bytes()).as_ref().map(|b| &b[..]))
            }
            Column::Float64(a) => {
                out.bytes_or_null(a.is_valid(row).then(|| a.value(row).to_be_bytes()).as_ref().map(|b| &b[..]))
            }
            Column::Date32(a) => {
                let days = a.is_valid(row).then(|| (a.value(row) - PG_EPOCH_DAYS).to_be_bytes());
                out.bytes_or_null(days.as_ref().map(|b| &b[..]))
            }
            Column::TimestampMicros(array, values) => match array.is_null(row) {
                true => out.null(),
                false => out.bytes(&values[row].saturating_sub(PG_EPOCH_MICROS).to_be_bytes()),
            },
            Column::TimestampText(values, zone, format) => return values.write_text(row, *zone, format, out),
            Column::DateText(a, format) => {
                let Some(date) = a.is_valid(row).then(|| a.value_as_date(row)).flatten() else {
                    out.null();
                    return Ok(());
                };
                if format.iso && out.iso(date, None, None) {
                    return Ok(());
                }
                return out.formatted(Some(date.format_with_items(format.items.iter())));
            }
            Column::Other { array, arrow_field, pg_field } => {
                return encode_value(out, array, row, arrow_field, pg_field)
            }
        }
        Ok(())
    }
}

/// A timestamp column in a unit `TimestampText` takes.
enum TimestampArray<'a> {
    Micros(&'a TimestampMicrosecondArray),
    Nanos(&'a TimestampNanosecondArray),
}

impl TimestampArray<'_> {
    fn write_text(&self, row: usize, zone: Option<Tz>, format: &TextFormat, out: &mut RowBuffer) -> PgWireResult<()> {
        match self {
            TimestampArray::Micros(a) => timestamp_text(a, row, zone, format, out),
            TimestampArray::Nanos(a) => timestamp_text(a, row, zone, format, out),
        }
    }
}

/// As arrow-pg and pgwire write a timestamp: NULL (also for a time chrono cannot hold), or the
/// chrono time in the column's zone, formatted.
fn timestamp_text<T: ArrowTimestampType>(
    array: &PrimitiveArray<T>,
    row: usize,
    zone: Option<Tz>,
    format: &TextFormat,
    out: &mut RowBuffer,
) -> PgWireResult<()> {
    if array.is_null(row) {
        out.null();
        return Ok(());
    }
    match zone {
        Some(zone) => {
            let Some(time) = array.value_as_datetime_with_tz(row, zone).map(|d| d.fixed_offset()) else {
                out.null();
                return Ok(());
            };
            if format.iso {
                out.postgres_timestamp(time.naive_local(), Some(time.offset().local_minus_utc()));
                return Ok(());
            }
            out.formatted(Some(time.format_with_items(format.items.iter())))
        }
        None => {
            let Some(time) = array.value_as_datetime(row) else {
                out.null();
                return Ok(());
            };
            if format.iso {
                out.postgres_timestamp(time, None);
                return Ok(());
            }
            out.formatted(Some(time.format_with_items(format.items.iter())))
        }
    }
}

/// The chrono format pgwire writes a date or time with, parsed once; `iso` when it is the ISO
/// DateStyle's (`%Y-%m-%d`, then ` %H:%M:%S%.6f`, then `%:::z` for a zoned time), which
/// [`RowBuffer::iso`] writes without chrono's formatting machinery.
struct TextFormat {
    items: Vec<Item<'static>>,
    iso: bool,
}

impl TextFormat {
    fn new(format: &str) -> Option<Self> {
        let items = StrftimeItems::new(format).parse_to_owned().ok()?;
        let iso = ["%Y-%m-%d", "%Y-%m-%d %H:%M:%S%.6f", "%Y-%m-%d %H:%M:%S%.6f%:::z"].contains(&format);
        Some(TextFormat { items, iso })
    }
}

fn timestamp_type(zone: &Option<Arc<str>>) -> Type {
    if zone.is_some() {
        Type::TIMESTAMPTZ
    } else {
        Type::TIMESTAMP
    }
}

fn is_string(data_type: &DataType) -> bool {
    matches!(data_type, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
}

/// The rows of a batch, one after another: each value a 4-byte length (-1 for NULL) and its
/// bytes, as in a DataRow message's body.
struct RowBuffer {
    bytes: BytesMut,
}

impl RowBuffer {
    fn null(&mut self) {
        self.bytes.put_i32(-1);
    }

    fn bytes(&mut self, value: &[u8]) {
        self.bytes.put_i32(value.len() as i32);
        self.bytes.put_slice(value);
    }

    /// A timestamp as PostgreSQL writes it in the ISO DateStyle: `2026-01-31 09:05:00`,
    /// `… 09:05:00.5`, `… 09:05:00.000001+05:30` (the fraction without trailing zeros, the
    /// offset's minutes when it has some). pgwire's ISO format, which arrow-pg uses, always
    /// writes six fraction digits and the offset's hours only (`+05` for Asia/Kolkata).
    fn postgres_timestamp(&mut self, local: NaiveDateTime, offset_seconds: Option<i32>) {
        if local.year() < 1 || !self.iso(local.date(), Some(local.time()), offset_seconds) {
            // BC years, years past 9999 and leap seconds, rare enough for a String.
            self.bytes(northstar_functions::postgres_timestamp_text(local, offset_seconds).as_bytes());
        }
    }

    /// A date (`2026-01-31`, as chrono's and PostgreSQL's ISO formats write it), or a
    /// timestamp and its offset as PostgreSQL writes them (see [`Self::postgres_timestamp`]);
    /// false, with nothing written, for years outside 0–9999 and leap seconds.
    fn iso(&mut self, date: NaiveDate, time: Option<NaiveTime>, offset_seconds: Option<i32>) -> bool {
        let year = date.year();
        if !(0..=9999).contains(&year) || time.is_some_and(|t| t.nanosecond() >= 1_000_000_000) {
            return false;
        }
        let mut text = IsoText { bytes: [0; 32], length: 0 };
        text.digits(year as u32, 4);
        text.push(b'-');
        text.digits(date.month(), 2);
        text.push(b'-');
        text.digits(date.day(), 2);
        if let Some(time) = time {
            for (separator, value) in [(b' ', time.hour()), (b':', time.minute()), (b':', time.second())] {
                text.push(separator);
                text.digits(value, 2);
            }
            let micros = time.nanosecond() / 1_000;
            if micros > 0 {
                text.push(b'.');
                text.digits(micros, 6);
                while text.bytes[text.length - 1] == b'0' {
                    text.length -= 1;
                }
            }
        }
        if let Some(offset) = offset_seconds {
            let (hours, minutes, seconds) =
                (offset.unsigned_abs() / 3600, offset.unsigned_abs() % 3600 / 60, offset.unsigned_abs() % 60);
            text.push(if offset < 0 { b'-' } else { b'+' });
            text.digits(hours, 2);
            if minutes != 0 || seconds != 0 {
                text.push(b':');
                text.digits(minutes, 2);
            }
            if seconds != 0 {
                text.push(b':');
                text.digits(seconds, 2);
            }
        }
        let IsoText { bytes, length } = text;
        self.bytes(&bytes[..length]);
        true
    }

    /// A value written by its Display (chrono's formatting), or NULL.
    fn formatted(&mut self, value: Option<impl std::fmt::Display>) -> PgWireResult<()> {
        use std::fmt::Write;
        let Some(value) = value else {
            self.null();
            return Ok(());
        };
        self.length_prefixed(|bytes| {
            write!(bytes, "{value}").map_err(|e| PgWireError::ApiError(Box::new(e)))?;
            Ok(IsNull::No)
        })
    }

    /// A value `write` appends, behind its 4-byte length (-1, and nothing, when it says NULL).
    fn length_prefixed(&mut self, write: impl FnOnce(&mut BytesMut) -> PgWireResult<IsNull>) -> PgWireResult<()> {
        let start = self.bytes.len();
        self.bytes.put_i32(-1);
        match write(&mut self.bytes)? {
            IsNull::No => {
                let length = (self.bytes.len() - start - 4) as i32;
                self.bytes[start..start + 4].copy_from_slice(&length.to_be_bytes());
            }
            IsNull::Yes => self.bytes.truncate(start + 4),
        }
        Ok(())
    }

    fn bytes_or_null(&mut self, value: Option<&[u8]>) {
        match value {
            Some(value) => self.bytes(value),
            None => self.null(),
        }
    }

    fn integer<T: itoa::Integer, const N: usize>(
        &mut self,
        value: Option<T>,
        format: FieldFormat,
        big_endian: fn(T) -> [u8; N],
    ) {
        match (value, format) {
            (None, _) => self.null(),
            (Some(value), FieldFormat::Binary) => self.bytes(&big_endian(value)),
            (Some(value), FieldFormat::Text) => self.bytes(itoa::Buffer::new().format(value).as_bytes()),
        }
    }
}

/// The longest ISO text (`9999-12-31 23:59:59.999999+14`), built on the stack.
struct IsoText {
    bytes: [u8; 32],
    length: usize,
}

impl IsoText {
    fn push(&mut self, byte: u8) {
        self.bytes[self.length] = byte;
        self.length += 1;
    }

    /// `value` in `width` digits, zero-padded.
    fn digits(&mut self, mut value: u32, width: usize) {
        for i in (0..width).rev() {
            self.bytes[self.length + i] = b'0' + (value % 10) as u8;
            value /= 10;
        }
        self.length += width;
    }
}

/// arrow-pg's value encoders write through this, into the batch's buffer, exactly as pgwire's
/// `DataRowEncoder` writes a value.
impl Encoder for RowBuffer {
    type Item = ();

    fn encode_field<T>(&mut self, value: &T, pg_field: &FieldInfo) -> PgWireResult<()>
    where
        T: ToSql + ToSqlText + Sized,
    {
        self.length_prefixed(|bytes| {
            Ok(match pg_field.format() {
                FieldFormat::Text => value.to_sql_text(pg_field.datatype(), bytes, pg_field.format_options())?,
                FieldFormat::Binary => value.to_sql(pg_field.datatype(), bytes)?,
            })
        })
    }

    fn take_row(&mut self) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_pg::datatypes::{arrow_schema_to_pg_fields, encode_recordbatch};
    use datafusion::arrow::array::{
        DictionaryArray, Int32Builder, ListBuilder, StringDictionaryBuilder, TimestampSecondArray, UInt16Array,
        UInt64Array,
    };
    use datafusion::arrow::datatypes::{Int32Type, Schema};
    use pgwire::api::portal::Format;
    use pgwire::types::format::FormatOptions;
    use proptest::prelude::*;

    fn with_null<T>(values: Vec<T>) -> Vec<Option<T>> {
        values.into_iter().map(Some).chain(std::iter::once(None)).collect()
    }

    /// Columns of every type with a fast path, and some without, each with a NULL last.
    fn every_kind() -> RecordBatch {
        let strings = with_null(vec!["", "a", "ünïcödé", "with \"quotes\" and {braces}", "x"]);
        let mut dictionary = StringDictionaryBuilder::<Int32Type>::new();
        for value in &strings {
            dictionary.append_option(*value);
        }
        let view_dictionary = DictionaryArray::new(
            UInt16Array::from(vec![Some(1), Some(0), None, Some(1), Some(2), Some(0)]),
            Arc::new(StringViewArray::from(vec![Some("long enough to live outside the view"), Some("b"), None])),
        );
        let mut list = ListBuilder::new(Int32Builder::new());
        for row in 0..6i32 {
            list.append_value((0..row).map(Some));
        }
        // 1969, 2000, 2026, year 1, and year 11476 (which chrono writes with a sign).
        let micros = with_null(vec![
            -1,
            946_684_800_000_000,
            1_767_225_600_123_456,
            -62_135_596_800_000_000,
            300_000_000_000_000_000,
        ]);
        let nanos = with_null(vec![0, -1, -1_999, 1_999, 1_767_225_600_123_456_789]);
        let columns: Vec<(&str, ArrayRef)> = vec![
            ("utf8", Arc::new(StringArray::from(strings.clone()))),
            ("large_utf8", Arc::new(LargeStringArray::from(strings.clone()))),
            ("utf8_view", Arc::new(StringViewArray::from(strings))),
            ("dictionary", Arc::new(dictionary.finish())),
            ("view_dictionary", Arc::new(view_dictionary)),
            ("bool", Arc::new(BooleanArray::from(with_null(vec![true, false, true, false, true])))),
            ("int16", Arc::new(Int16Array::from(with_null(vec![0, -1, i16::MIN, i16::MAX, 42])))),
            ("int32", Arc::new(Int32Array::from(with_null(vec![0, -1, i32::MIN, i32::MAX, 42])))),
            ("int64", Arc::new(Int64Array::from(with_null(vec![0, -1, i64::MIN, i64::MAX, 42])))),
            ("float32", Arc::new(Float32Array::from(with_null(vec![0.0, -1.5, f32::NAN, f32::INFINITY, 0.1])))),
            ("float64", Arc::new(Float64Array::from(with_null(vec![0.0, -1.5, f64::NAN, f64::NEG_INFINITY, 0.1])))),
            ("date32", Arc::new(Date32Array::from(with_null(vec![3_000_000, -1, 10_957, 20_454, -719_162])))),
            ("micros_utc", Arc::new(TimestampMicrosecondArray::from(micros.clone()).with_timezone("UTC"))),
            ("micros_paris", Arc::new(TimestampMicrosecondArray::from(micros.clone()).with_timezone("Europe/Paris"))),
            ("micros_kolkata", Arc::new(TimestampMicrosecondArray::from(micros.clone()).with_timezone("Asia/Kolkata"))),
            ("micros_minus", Arc::new(TimestampMicrosecondArray::from(micros.clone()).with_timezone("-07:00"))),
            ("micros", Arc::new(TimestampMicrosecondArray::from(micros))),
            ("nanos_utc", Arc::new(TimestampNanosecondArray::from(nanos.clone()).with_timezone("+00:00"))),
            ("nanos", Arc::new(TimestampNanosecondArray::from(nanos))),
            ("seconds", Arc::new(TimestampSecondArray::from(with_null(vec![0, -1, 1, 2, 3])))),
            ("uint64", Arc::new(UInt64Array::from(with_null(vec![0, 1, u64::MAX, 7, 8])))),
            ("list", Arc::new(list.finish())),
        ];
        RecordBatch::try_from_iter_with_nullable(columns.into_iter().map(|(n, c)| (n, c, true))).unwrap()
    }

    /// Rows as field counts and bodies, to compare.
    type Rows = Vec<(i16, Vec<u8>)>;

    fn rows_of(rows: impl Iterator<Item = PgWireResult<DataRow>>) -> Rows {
        rows.map(|row| row.unwrap()).map(|row| (row.field_count, row.data.to_vec())).collect()
    }

    /// Both encoders' rows for one batch in one format: ours, and the reference (arrow-pg's,
    /// with text timestamps in the ISO DateStyle as PostgreSQL writes them).
    fn both(batch: &RecordBatch, format: &Format, options: FormatOptions) -> (Rows, Rows) {
        let schema: &Schema = &batch.schema();
        let iso_text = matches!(format, Format::UnifiedText) && options.date_style.starts_with("ISO");
        let fields = Arc::new(arrow_schema_to_pg_fields(schema, format, Some(Arc::new(options))).unwrap());
        let arrow_pgs = rows_of(encode_recordbatch(fields.clone(), batch.clone()));
        let reference = if iso_text { with_postgres_timestamps(batch, arrow_pgs) } else { arrow_pgs };
        (rows_of(encode_batch(&fields, batch)), reference)
    }

    /// `rows` with each µs or ns timestamp value that chrono holds replaced by PostgreSQL's
    /// text of it.
    fn with_postgres_timestamps(batch: &RecordBatch, rows: Rows) -> Rows {
        let rows = rows.into_iter().enumerate().map(|(row, (count, data))| {
            let mut out = Vec::new();
            for (column, value) in split_values(&data).into_iter().enumerate() {
                match postgres_text(batch.column(column), row) {
                    Some(text) => {
                        out.extend((text.len() as i32).to_be_bytes());
                        out.extend(text.as_bytes());
                    }
                    None => out.extend(value),
                }
            }
            (count, out)
        });
        rows.collect()
    }

    fn postgres_text(array: &ArrayRef, row: usize) -> Option<String> {
        fn wall_time<T: ArrowTimestampType>(
            array: &PrimitiveArray<T>,
            row: usize,
            zone: &Option<Arc<str>>,
        ) -> Option<(NaiveDateTime, Option<i32>)> {
            match zone {
                Some(zone) => {
                    let time = array.value_as_datetime_with_tz(row, zone.parse().ok()?)?.fixed_offset();
                    Some((time.naive_local(), Some(time.offset().local_minus_utc())))
                }
                None => Some((array.value_as_datetime(row)?, None)),
            }
        }
        if array.is_null(row) {
            return None;
        }
        let (local, offset) = match array.data_type() {
            DataType::Timestamp(TimeUnit::Microsecond, zone) => {
                wall_time(array.as_primitive::<TimestampMicrosecondType>(), row, zone)?
            }
            DataType::Timestamp(TimeUnit::Nanosecond, zone) => {
                wall_time(array.as_primitive::<datafusion::arrow::datatypes::TimestampNanosecondType>(), row, zone)?
            }
            _ => return None,
        };
        Some(northstar_functions::postgres_timestamp_text(local, offset))
    }

    /// PostgreSQL 15's text of the same instants under `SET TIME ZONE 'Asia/Kolkata'` and of
    /// timestamps without zone: the reference's own check.
    #[test]
    fn iso_timestamps_are_postgres_text() {
        let batch = RecordBatch::try_from_iter(vec![
            (
                "kolkata",
                Arc::new(
                    TimestampMicrosecondArray::from(vec![1_735_690_755_352_656, 1_735_516_800_000_000])
                        .with_timezone("Asia/Kolkata"),
                ) as ArrayRef,
            ),
            ("plain", Arc::new(TimestampMicrosecondArray::from(vec![1_741_064_767_500_000, 0])) as ArrayRef),
        ])
        .unwrap();
        let (ours, _) = both(&batch, &Format::UnifiedText, FormatOptions::default());
        let texts: Vec<Vec<String>> = ours
            .iter()
            .map(|(_, data)| split_values(data).iter().map(|v| String::from_utf8(v[4..].to_vec()).unwrap()).collect())
            .collect();
        assert_eq!(
            texts,
            [
                ["2025-01-01 05:49:15.352656+05:30", "2025-03-04 05:06:07.5"],
                ["2024-12-30 05:30:00+05:30", "1970-01-01 00:00:00"]
            ]
        );
    }

    #[test]
    fn rows_are_byte_for_byte_arrow_pgs_in_both_formats() {
        let batch = every_kind();
        for format in [Format::UnifiedText, Format::UnifiedBinary] {
            let (ours, arrow_pgs) = both(&batch, &format, FormatOptions::default());
            assert_eq!(ours.len(), batch.num_rows());
            for (row, (ours, theirs)) in ours.iter().zip(&arrow_pgs).enumerate() {
                for (column, (a, b)) in split_values(&ours.1).iter().zip(split_values(&theirs.1)).enumerate() {
                    assert_eq!(a, &b, "{format:?}, row {row}, column {}", batch.schema().field(column).name());
                }
            }
            assert_eq!(ours, arrow_pgs, "{format:?}");
        }
        // A session's settings reach every value, in every DateStyle pgwire knows.
        for date_style in ["ISO, MDY", "SQL, DMY", "SQL, MDY", "Postgres, DMY", "Postgres, MDY", "German, DMY"] {
            let mut options = FormatOptions::default();
            options.date_style = date_style.into();
            options.extra_float_digits = 0;
            let (ours, arrow_pgs) = both(&batch, &Format::UnifiedText, options);
            assert_eq!(ours, arrow_pgs, "{date_style}");
        }
    }

    /// A DataRow body's values, each with its length prefix.
    fn split_values(mut data: &[u8]) -> Vec<Vec<u8>> {
        let mut values = Vec::new();
        while !data.is_empty() {
            let length = i32::from_be_bytes(data[..4].try_into().unwrap());
            let end = 4 + length.max(0) as usize;
            values.push(data[..end].to_vec());
            data = &data[end..];
        }
        values
    }

    #[test]
    fn a_failing_value_ends_the_batch_after_the_rows_before_it() {
        // An unknown zone fails arrow-pg's encoder at the first non-NULL value (row 1).
        let batch = RecordBatch::try_from_iter(vec![
            ("n", Arc::new(Int32Array::from(vec![1, 2, 3])) as ArrayRef),
            (
                "t",
                Arc::new(TimestampSecondArray::from(vec![None, Some(1), Some(2)]).with_timezone("Mars/Olympus"))
                    as ArrayRef,
            ),
        ])
        .unwrap();
        let fields = Arc::new(arrow_schema_to_pg_fields(&batch.schema(), &Format::UnifiedBinary, None).unwrap());
        let outcome = |rows: &mut dyn Iterator<Item = PgWireResult<DataRow>>| {
            let mut seen = Vec::new();
            for row in rows {
                seen.push(row.map(|r| r.data.to_vec()).map_err(|e| e.to_string()));
                if seen.last().unwrap().is_err() {
                    break;
                }
            }
            seen
        };
        let ours = outcome(&mut encode_batch(&fields, &batch));
        assert_eq!(ours, outcome(&mut encode_recordbatch(fields.clone(), batch.clone())));
        assert_eq!(ours.len(), 2);
        assert!(ours[1].is_err());
        assert_eq!(encode_batch(&fields, &batch).count(), 2, "nothing after the error");
    }

    proptest! {
        #[test]
        fn random_rows_match_arrow_pg(
            times in proptest::collection::vec(proptest::option::of(-9_000_000_000_000_000_000i64..9_000_000_000_000_000_000), 1..40),
            texts in proptest::collection::vec(proptest::option::of(".{0,12}"), 1..40),
            binary in any::<bool>(),
        ) {
            let rows = times.len().min(texts.len());
            let batch = RecordBatch::try_from_iter_with_nullable(vec![
                ("nanos", Arc::new(TimestampNanosecondArray::from(times[..rows].to_vec()).with_timezone("UTC")) as ArrayRef, true),
                ("micros", Arc::new(TimestampMicrosecondArray::from(times[..rows].iter().map(|t| t.map(|t| t / 100_000)).collect::<Vec<_>>())) as ArrayRef, true),
                ("text", Arc::new(StringArray::from(texts[..rows].to_vec())) as ArrayRef, true),
                ("int", Arc::new(Int64Array::from(times[..rows].to_vec())) as ArrayRef, true),
            ]).unwrap();
            let format = if binary { Format::UnifiedBinary } else { Format::UnifiedText };
            let (ours, arrow_pgs) = both(&batch, &format, FormatOptions::default());
            prop_assert_eq!(ours, arrow_pgs);
        }
    }
}
