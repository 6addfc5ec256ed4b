//! Criterion micro-benchmarks of the behavioural aggregates: events per second on one core
//! (one partition) at a realistic group size, over an in-memory table, so the numbers are the
//! functions' own cost plus DataFusion's grouping — no file scan.
//!
//! cargo bench --bench aggregates            (results: docs/benchmarks.md)

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use datafusion::arrow::array::{ArrayRef, RecordBatch, StringArray, TimestampMicrosecondArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::catalog::MemTable;
use datafusion::prelude::SessionContext;
use northstar_engine::{new_context, EngineOptions};
use rand::{Rng, SeedableRng};

const EVENTS: usize = 1_000_000;
/// Events per user: the generator's 20M-event set has about 120 per user over 90 days.
const PER_USER: usize = 120;
const NAMES: [&str; 8] =
    ["app_open", "page_view", "search", "view_item", "add_to_cart", "begin_checkout", "purchase", "signup"];

fn table() -> MemTable {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let schema = Arc::new(Schema::new(vec![
        Field::new("user_id", DataType::Utf8, false),
        Field::new("event_time", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), false),
        Field::new("event", DataType::Utf8, false),
    ]));
    let mut batches = vec![];
    for chunk in 0..EVENTS / 100_000 {
        let users: Vec<String> = (0..100_000).map(|i| format!("u{:07}", (chunk * 100_000 + i) / PER_USER)).collect();
        let times: Vec<i64> =
            (0..100_000).map(|_| 1_735_689_600_000_000 + rng.random_range(0..90 * 86_400_000_000i64)).collect();
        let events: Vec<&str> = (0..100_000).map(|_| NAMES[rng.random_range(0..NAMES.len())]).collect();
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(users)),
            Arc::new(TimestampMicrosecondArray::from(times).with_timezone("UTC")),
            Arc::new(StringArray::from(events)),
        ];
        batches.push(RecordBatch::try_new(schema.clone(), columns).unwrap());
    }
    MemTable::try_new(schema, vec![batches]).unwrap()
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let ctx: SessionContext = new_context(&EngineOptions { target_partitions: Some(1), ..Default::default() }).unwrap();
    ctx.register_table("t", Arc::new(table())).unwrap();
    let queries = [
        ("window_funnel", "SELECT window_funnel(INTERVAL '1 day', event_time, event = 'app_open', event = 'view_item', event = 'add_to_cart', event = 'purchase') FROM t GROUP BY user_id"),
        ("funnel_step_times", "SELECT funnel_step_times(INTERVAL '1 day', event_time, event = 'app_open', event = 'view_item', event = 'add_to_cart', event = 'purchase') FROM t GROUP BY user_id"),
        ("retention", "SELECT retention(event = 'signup', event = 'purchase', event = 'search') FROM t GROUP BY user_id"),
        ("sequence_count", "SELECT sequence_count('(?1)(?t<=3600)(?2)', event_time, event = 'add_to_cart', event = 'purchase') FROM t GROUP BY user_id"),
        ("group_by_count (floor)", "SELECT count(*) FROM t GROUP BY user_id"),
    ];
    let mut group = c.benchmark_group("aggregates_1_core");
    group.throughput(Throughput::Elements(EVENTS as u64));
    group.sample_size(10);
    for (name, sql) in queries {
        group.bench_function(name, |b| {
            b.iter(|| runtime.block_on(async { ctx.sql(sql).await.unwrap().collect().await.unwrap() }))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
