//! Writing generated events as Parquet or NDJSON, a batch at a time.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::arrow::array::{ArrayRef, StringBuilder, TimestampMicrosecondBuilder};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::file::properties::WriterProperties;

use crate::model::{account_of, Event, EventGenerator, GeneratorConfig, PlantedExperiment};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    Parquet,
    Ndjson,
}

#[derive(Debug, Clone)]
pub struct WriteSummary {
    pub events: u64,
    pub users: u64,
    pub bytes: u64,
    pub elapsed: Duration,
}

const BATCH: usize = 64 * 1024;

/// The columns of generated files: the core event columns plus platform and country, and
/// `anonymous_id` when some users start anonymous.
pub fn generated_schema(config: &GeneratorConfig) -> SchemaRef {
    let mut fields = vec![
        Field::new("event_time", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), false),
        Field::new("user_id", DataType::Utf8, false),
        Field::new("event", DataType::Utf8, false),
        Field::new("session_id", DataType::Utf8, false),
        Field::new("platform", DataType::Utf8, false),
        Field::new("country", DataType::Utf8, false),
        Field::new("properties", DataType::Utf8, false),
    ];
    if has_identities(config) {
        fields.push(Field::new("anonymous_id", DataType::Utf8, true));
    }
    Arc::new(Schema::new(fields))
}

fn has_identities(config: &GeneratorConfig) -> bool {
    config.identities > 0.0
}

/// The id a row carries: the user's own, or the anonymous id of one of their devices.
fn user_id(e: &Event) -> String {
    match e.device {
        None => format!("u{:07}", e.user),
        Some(device) => anonymous_id(e.user, device),
    }
}

fn anonymous_id(user: u32, device: u8) -> String {
    format!("a{user:07}-{device}")
}

fn session_id(session: u32) -> String {
    format!("s{session:09}")
}

fn properties(e: &Event, config: &GeneratorConfig) -> String {
    let own = own_properties(e, config.experiment.as_ref());
    let Some(account) = account_of(config, e.user) else { return own };
    // With accounts, every row names its account as posthog-js does after `group()`, and a
    // sign-up sets person properties (docs/identity.md).
    let mut extra = format!("\"$groups\":{{\"company\":\"{}\"}}", account_id(account));
    if e.event == "signup" {
        extra += &format!(
            ",\"$set\":{{\"plan\":\"{}\",\"country\":\"{}\"}},\"$set_once\":{{\"signup_platform\":\"{}\"}}",
            e.plan, e.country, e.platform
        );
    }
    format!("{},{extra}}}", own.strip_suffix('}').expect("an object"))
}

/// An account's id (`company` group key).
pub fn account_id(account: u32) -> String {
    format!("c{account:05}")
}

fn own_properties(e: &Event, experiment: Option<&PlantedExperiment>) -> String {
    if let (Some(variant), Some(x)) = (e.variant, experiment) {
        let quoted = |s: &str| serde_json::Value::from(s).to_string();
        return format!(
            "{{\"$feature_flag\":{},\"$feature_flag_response\":{},\"plan\":\"{}\"}}",
            quoted(&x.flag),
            quoted(&x.variants[variant as usize].0),
            e.plan
        );
    }
    if e.price_cents > 0 {
        format!("{{\"plan\":\"{}\",\"price\":{}.{:02}}}", e.plan, e.price_cents / 100, e.price_cents % 100)
    } else {
        format!("{{\"plan\":\"{}\"}}", e.plan)
    }
}

fn to_batch(events: &[Event], config: &GeneratorConfig) -> datafusion::arrow::error::Result<RecordBatch> {
    let mut time = TimestampMicrosecondBuilder::with_capacity(events.len());
    let mut text: Vec<StringBuilder> =
        (0..7).map(|_| StringBuilder::with_capacity(events.len(), events.len() * 12)).collect();
    for e in events {
        time.append_value(e.micros);
        text[6].append_option(e.signs_in.map(|d| anonymous_id(e.user, d)));
        text[0].append_value(user_id(e));
        text[1].append_value(e.event);
        text[2].append_value(session_id(e.session));
        text[3].append_value(e.platform);
        text[4].append_value(e.country);
        text[5].append_value(properties(e, config));
    }
    let schema = generated_schema(config);
    let mut columns: Vec<ArrayRef> = vec![Arc::new(time.finish().with_timezone("UTC"))];
    columns.extend(text.iter_mut().map(|b| Arc::new(b.finish()) as ArrayRef).take(schema.fields().len() - 1));
    RecordBatch::try_new(schema, columns)
}

fn ndjson_line(out: &mut impl Write, e: &Event, config: &GeneratorConfig) -> std::io::Result<()> {
    let ts = chrono::DateTime::from_timestamp_micros(e.micros).expect("in range").format("%Y-%m-%dT%H:%M:%S%.6fZ");
    let anonymous = match e.signs_in {
        Some(device) => format!(",\"anonymous_id\":\"{}\"", anonymous_id(e.user, device)),
        None => String::new(),
    };
    writeln!(
        out,
        "{{\"event_time\":\"{ts}\",\"user_id\":\"{}\",\"event\":\"{}\",\"session_id\":\"{}\",\"platform\":\"{}\",\"country\":\"{}\",\"properties\":{}{anonymous}}}",
        user_id(e), e.event, session_id(e.session), e.platform, e.country, properties(e, config)
    )
}

/// Generates `config.events` events into `path`. A partly written file is removed on error.
pub fn generate_to_file(
    config: &GeneratorConfig,
    path: &Path,
    format: OutputFormat,
    mut on_progress: impl FnMut(u64),
) -> Result<WriteSummary, String> {
    let started = Instant::now();
    let result = write_all(config, path, format, &mut on_progress);
    if result.is_err() {
        let _ = std::fs::remove_file(path);
    }
    let (events, users) = result?;
    let bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    Ok(WriteSummary { events, users, bytes, elapsed: started.elapsed() })
}

fn write_all(
    config: &GeneratorConfig,
    path: &Path,
    format: OutputFormat,
    on_progress: &mut impl FnMut(u64),
) -> Result<(u64, u64), String> {
    let err = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
    let file = File::create(path).map_err(|e| err(&e))?;
    let mut generator = EventGenerator::new(config.clone());
    let mut chunk: Vec<Event> = Vec::with_capacity(BATCH);
    let mut count = 0u64;
    let mut users = DistinctUsers::default();
    match format {
        OutputFormat::Parquet => {
            let props = WriterProperties::builder()
                .set_compression(Compression::ZSTD(ZstdLevel::try_new(1).expect("level")))
                .build();
            let mut writer = ArrowWriter::try_new(BufWriter::new(file), generated_schema(config), Some(props))
                .map_err(|e| err(&e))?;
            loop {
                chunk.clear();
                chunk.extend(generator.by_ref().take(BATCH));
                if chunk.is_empty() {
                    break;
                }
                count += chunk.len() as u64;
                chunk.iter().for_each(|e| users.add(e.user));
                writer.write(&to_batch(&chunk, config).map_err(|e| err(&e))?).map_err(|e| err(&e))?;
                on_progress(count);
            }
            writer.close().map_err(|e| err(&e))?;
        }
        OutputFormat::Ndjson => {
            let mut out = BufWriter::with_capacity(1 << 20, file);
            for e in generator {
                ndjson_line(&mut out, &e, config).map_err(|e| err(&e))?;
                count += 1;
                users.add(e.user);
                if count.is_multiple_of(BATCH as u64) {
                    on_progress(count);
                }
            }
            out.flush().map_err(|e| err(&e))?;
        }
    }
    Ok((count, users.count))
}

/// Users that have at least one event in the output (user ids are dense, so a bit per id).
#[derive(Default)]
struct DistinctUsers {
    seen: Vec<bool>,
    count: u64,
}

impl DistinctUsers {
    fn add(&mut self, user: u32) {
        let i = user as usize;
        if i >= self.seen.len() {
            self.seen.resize(i + 1, false);
        }
        if !self.seen[i] {
            self.seen[i] = true;
            self.count += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accounts_name_the_users_account_on_every_row_and_sign_ups_set_person_properties() {
        let plain = GeneratorConfig { events: 5_000, seed: 9, ..Default::default() };
        let with_accounts = GeneratorConfig { accounts: 50, ..plain.clone() };
        let events: Vec<Event> = EventGenerator::new(plain.clone()).collect();
        let mut accounts = std::collections::HashMap::new();
        for e in &events {
            let own: serde_json::Value = serde_json::from_str(&properties(e, &plain)).unwrap();
            let mut with: serde_json::Value = serde_json::from_str(&properties(e, &with_accounts)).unwrap();
            let company = with["$groups"]["company"].as_str().unwrap().to_string();
            // One account per user, always the same.
            assert_eq!(accounts.entry(e.user).or_insert_with(|| company.clone()), &company);
            assert_eq!(with.get("$set").is_some(), e.event == "signup", "{e:?}");
            if e.event == "signup" {
                assert_eq!(with["$set"]["plan"], e.plan);
                assert_eq!(with["$set_once"]["signup_platform"], e.platform);
            }
            // Nothing else of the row changes.
            for key in ["$groups", "$set", "$set_once"] {
                with.as_object_mut().unwrap().remove(key);
            }
            assert_eq!(with, own);
        }
        let distinct: std::collections::HashSet<&String> = accounts.values().collect();
        assert!(distinct.len() > 25 && distinct.len() <= 50, "{} accounts", distinct.len());
    }
}
