//! `window_funnel`: the furthest step of a funnel a group's events reach within a window.
//!
//! ```sql
//! SELECT level, count(*) AS users
//! FROM (SELECT user_id,
//!              window_funnel(INTERVAL '1 day', event_time,
//!                            event = 'view_item', event = 'add_to_cart', event = 'purchase') AS level
//!       FROM events GROUP BY user_id)
//! GROUP BY level ORDER BY level;
//! ```
//!
//! ClickHouse's `windowFunnel(window, modes…)(ts, cond1, …)`, answer for answer; the modes go
//! in one text argument: `window_funnel(3600, 'strict_order, strict_increase', ts, …)`.

use datafusion::arrow::array::Int32Builder;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::Result;

use crate::common::TimeKind;
use crate::event_list::{Event, Finisher};
use crate::funnel::{Funnel, FunnelFunction, FunnelOutput};

/// `window_funnel`'s output: the level.
#[derive(Debug)]
pub struct Level;

pub type WindowFunnel = FunnelFunction<Level>;

impl FunnelOutput for Level {
    const NAME: &'static str = "window_funnel";
    const USAGE: &'static str = "window_funnel(window, [mode,] timestamp, cond1, ..., condN)";
    type Finisher = LevelFinisher;

    fn return_type(_kind: TimeKind) -> DataType {
        DataType::Int32
    }

    fn finisher(funnel: Funnel, _kind: TimeKind) -> LevelFinisher {
        LevelFinisher { funnel, scratch: Default::default() }
    }
}

pub struct LevelFinisher {
    funnel: Funnel,
    scratch: std::sync::Mutex<Vec<(i64, u8, u32)>>,
}

impl Finisher for LevelFinisher {
    type Builder = Int32Builder;
    fn builder(&self, capacity: usize) -> Int32Builder {
        Int32Builder::with_capacity(capacity)
    }
    fn append_null(&self, out: &mut Int32Builder) {
        out.append_null();
    }
    fn finish(&self, events: &mut [Event], out: &mut Int32Builder) -> Result<()> {
        let mut scratch = self.scratch.lock().expect("scratch");
        out.append_value(self.funnel.run(events, &mut scratch, false).level as i32);
        Ok(())
    }
}
