//! Deterministic synthetic product-analytics events with the shape of real apps.
//!
//! Users arrive at a steady rate; each is active on a given later day with a probability that
//! decays with age (about 6–7 % are active on day 30 after first being seen, as in typical
//! apps). An active day holds one to a few sessions; a session walks the funnel app_open →
//! page_view → search → view_item → add_to_cart → begin_checkout → purchase with drop-off at
//! each step; new users sign up in their first session. Events come out day by day in time
//! order, so memory holds one day at a time whatever the total.
//!
//! The same seed and event count always give the same events (ChaCha8, portable across
//! platforms and releases of `rand_chacha`).

mod model;
mod writer;

pub use model::{account_of, Event, EventGenerator, GeneratorConfig, PlantedExperiment, FLAG_CALLED};
pub use writer::account_id;
pub use writer::{generate_to_file, OutputFormat, WriteSummary};
