//! The behaviour model: who is active when, and what a session does.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Settings of a generated data set.
#[derive(Debug, Clone)]
pub struct GeneratorConfig {
    pub events: u64,
    pub seed: u64,
    /// Length of the period users arrive over, in days.
    pub days: u32,
    /// First day, as Unix seconds at 00:00 UTC (default 2025-01-01).
    pub start_unix: i64,
}

impl Default for GeneratorConfig {
    fn default() -> Self {
        Self { events: 1_000_000, seed: 42, days: 90, start_unix: 1_735_689_600 }
    }
}

/// One generated event. Strings borrow from static tables where they can.
#[derive(Debug, Clone)]
pub struct Event {
    pub micros: i64,
    pub user: u32,
    pub session: u32,
    pub event: &'static str,
    pub platform: &'static str,
    pub country: &'static str,
    pub plan: &'static str,
    /// Price in cents for item events, 0 otherwise.
    pub price_cents: u32,
}

const PLATFORMS: [(&str, u32); 3] = [("ios", 40), ("android", 35), ("web", 25)];
const COUNTRIES: [(&str, u32); 8] =
    [("US", 30), ("IN", 15), ("BR", 10), ("DE", 10), ("GB", 10), ("FR", 8), ("JP", 8), ("CA", 9)];
const PLANS: [(&str, u32); 3] = [("free", 80), ("pro", 15), ("team", 5)];

/// Probability that a user is active `age` days after first being seen: a fast early decay to
/// a long tail, 0.34 on day 1, 0.15 on day 7 and 0.065 on day 30.
pub fn activity_probability(age: u32) -> f64 {
    0.062 + 0.29 * (-(age as f64) / 6.0).exp()
}

/// Expected events per user within a period of `days`, users arriving evenly over it (for
/// sizing the arrival rate so that the events span about `days`).
fn expected_events_per_user(days: u32) -> f64 {
    let active_days: f64 =
        (0..days).map(|arrival| 1.0 + (1..days - arrival).map(activity_probability).sum::<f64>()).sum::<f64>()
            / days as f64;
    // sessions per active day (1 + geometric(0.4), up to 5) × events per session (see `session`).
    active_days * 1.65 * 5.3
}

fn pick<T: Copy>(rng: &mut ChaCha8Rng, table: &[(T, u32)]) -> T {
    let total: u32 = table.iter().map(|(_, w)| w).sum();
    let mut r = rng.random_range(0..total);
    for (value, weight) in table {
        if r < *weight {
            return *value;
        }
        r -= weight;
    }
    table[table.len() - 1].0
}

/// Per-user traits, drawn from a generator seeded by (seed, user) so that any user's traits can
/// be recomputed on any day without storing them.
#[derive(Clone, Copy)]
struct User {
    first_day: u32,
    platform: &'static str,
    country: &'static str,
    plan: &'static str,
    /// Multiplies the activity probability: some users are keener than others.
    keenness: f64,
}

pub struct EventGenerator {
    config: GeneratorConfig,
    users: Vec<User>,
    arrivals_per_day: f64,
    day: u32,
    emitted: u64,
    buffer: std::vec::IntoIter<Event>,
    sessions_started: u32,
}

impl EventGenerator {
    pub fn new(config: GeneratorConfig) -> Self {
        // Spread the users so the period is roughly `days` long; the generator stops at
        // exactly `events` events.
        let days = config.days.max(1);
        let total_users = (config.events as f64 / expected_events_per_user(days)).max(1.0);
        let arrivals_per_day = total_users / days as f64;
        Self {
            config,
            users: Vec::new(),
            arrivals_per_day,
            day: 0,
            emitted: 0,
            buffer: Vec::new().into_iter(),
            sessions_started: 0,
        }
    }

    fn day_rng(&self, day: u32, salt: u64) -> ChaCha8Rng {
        ChaCha8Rng::seed_from_u64(self.config.seed ^ (day as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ salt)
    }

    /// Generates every event of the current day, sorted by time.
    fn generate_day(&mut self) -> Vec<Event> {
        let day = self.day;
        let mut rng = self.day_rng(day, 0xA5A5);
        let arrived_by_tonight = (((day + 1) as f64 * self.arrivals_per_day) as usize).max(1);
        let arrivals = arrived_by_tonight.saturating_sub(self.users.len());
        for _ in 0..arrivals {
            let user = User {
                first_day: day,
                platform: pick(&mut rng, &PLATFORMS),
                country: pick(&mut rng, &COUNTRIES),
                plan: pick(&mut rng, &PLANS),
                keenness: 0.6 + 0.8 * rng.random::<f64>(),
            };
            self.users.push(user);
        }
        let day_start = (self.config.start_unix + day as i64 * 86_400) * 1_000_000;
        let mut events = Vec::new();
        for id in 0..self.users.len() {
            let user = self.users[id];
            let age = day - user.first_day;
            let p = if age == 0 { 1.0 } else { (activity_probability(age) * user.keenness).min(1.0) };
            if rng.random::<f64>() >= p {
                continue;
            }
            let sessions = 1 + (0..4).take_while(|_| rng.random::<f64>() < 0.4).count();
            for s in 0..sessions {
                self.sessions_started += 1;
                let start = day_start + rng.random_range(0..86_000_000_000i64);
                let is_first = age == 0 && s == 0;
                session(&mut rng, &mut events, id as u32, self.sessions_started, user, start, is_first);
            }
        }
        events.sort_by_key(|e| (e.micros, e.user));
        events
    }
}

/// One session: a walk down the funnel with drop-off at every step.
fn session(rng: &mut ChaCha8Rng, out: &mut Vec<Event>, user: u32, session: u32, traits: User, start: i64, first: bool) {
    let mut t = start;
    let mut emit = |rng: &mut ChaCha8Rng, name: &'static str, price_cents: u32| {
        out.push(Event {
            micros: t,
            user,
            session,
            event: name,
            platform: traits.platform,
            country: traits.country,
            plan: traits.plan,
            price_cents,
        });
        t += rng.random_range(2_000_000..180_000_000i64);
    };
    emit(rng, "app_open", 0);
    if first && rng.random::<f64>() < 0.45 {
        emit(rng, "signup", 0);
    }
    for _ in 0..rng.random_range(1..=4) {
        emit(rng, "page_view", 0);
    }
    if rng.random::<f64>() < 0.6 {
        emit(rng, "search", 0);
    }
    if rng.random::<f64>() >= 0.7 {
        return;
    }
    let price = rng.random_range(199..=19_999u32);
    emit(rng, "view_item", price);
    if rng.random::<f64>() >= 0.35 {
        return;
    }
    emit(rng, "add_to_cart", price);
    if rng.random::<f64>() >= 0.55 {
        return;
    }
    emit(rng, "begin_checkout", price);
    if rng.random::<f64>() < 0.65 {
        emit(rng, "purchase", price);
    }
}

impl Iterator for EventGenerator {
    type Item = Event;

    fn next(&mut self) -> Option<Event> {
        if self.emitted >= self.config.events {
            return None;
        }
        loop {
            if let Some(e) = self.buffer.next() {
                self.emitted += 1;
                return Some(e);
            }
            let day = self.generate_day();
            self.day += 1;
            self.buffer = day.into_iter();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small(seed: u64) -> Vec<Event> {
        EventGenerator::new(GeneratorConfig { events: 20_000, seed, ..Default::default() }).collect()
    }

    #[test]
    fn exact_count_same_seed_same_events() {
        let a = small(7);
        let b = small(7);
        assert_eq!(a.len(), 20_000);
        assert!(a.iter().zip(&b).all(|(x, y)| x.micros == y.micros && x.user == y.user && x.event == y.event));
        let c = small(8);
        assert!(a.iter().zip(&c).any(|(x, y)| x.micros != y.micros));
    }

    #[test]
    fn events_are_in_time_order_and_funnels_narrow() {
        let events = small(1);
        assert!(events.windows(2).all(|w| w[0].micros <= w[1].micros));
        let count = |name| events.iter().filter(|e| e.event == name).count();
        assert!(count("app_open") > count("view_item"));
        assert!(count("view_item") > count("add_to_cart"));
        assert!(count("add_to_cart") > count("begin_checkout"));
        assert!(count("begin_checkout") > count("purchase"));
        assert!(count("purchase") > 0 && count("signup") > 0);
    }

    #[test]
    fn day_30_activity_is_about_six_to_seven_percent() {
        let p30 = activity_probability(30);
        assert!((0.06..0.07).contains(&p30), "{p30}");
    }
}
