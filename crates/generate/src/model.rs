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
    /// An A/B test planted in the data (docs/experiments.md).
    pub experiment: Option<PlantedExperiment>,
    /// Share of users (0 to 1) who browse anonymously before they sign in, half of them later
    /// on a second device too (docs/identity.md). 0, the default: every event carries the
    /// user's own id, and the data is exactly as without this setting.
    pub identities: f64,
    /// How many accounts (`company` groups) users belong to, each user to one drawn by a hash;
    /// 0, the default: no accounts, and the data is exactly as without this setting.
    pub accounts: u32,
}

impl Default for GeneratorConfig {
    fn default() -> Self {
        Self {
            events: 1_000_000,
            seed: 42,
            days: 90,
            start_unix: 1_735_689_600,
            experiment: None,
            identities: 0.0,
            accounts: 0,
        }
    }
}

/// A 64-bit mix of (seed, user, salt): choices drawn from it take nothing from the event
/// stream's generator, so turning a setting on leaves the rest of the data as it was.
fn mix(seed: u64, user: u32, salt: u64) -> u64 {
    let mut z = seed ^ (user as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ salt;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The account `user` belongs to, when the data has accounts.
pub fn account_of(config: &GeneratorConfig, user: u32) -> Option<u32> {
    (config.accounts > 0).then(|| (mix(config.seed, user, 0xACC0) % u64::from(config.accounts)) as u32)
}

/// A uniform number in [0, 1) from [`mix`].
fn unit(seed: u64, user: u32, salt: u64) -> f64 {
    (mix(seed, user, salt) >> 11) as f64 / (1u64 << 53) as f64
}

/// A feature flag tested on checkout: from `start_day`, a user's first `begin_checkout` (or,
/// with `at=app_open`, their first session) calls the flag (a `$feature_flag_called` event with
/// `$feature_flag` and `$feature_flag_response`, as PostHog's SDKs send it, at the same time),
/// and from then on each of their checkouts ends in a purchase with probability
/// 0.65 × (1 + lift) of their variant. Users are assigned by a hash of (seed, user), in equal
/// shares.
#[derive(Debug, Clone, PartialEq)]
pub struct PlantedExperiment {
    pub flag: String,
    /// (variant, lift); the first is the control, conventionally with lift 0.
    pub variants: Vec<(String, f64)>,
    /// The first day of the test (days from the start); default: half way through.
    pub start_day: Option<u32>,
    /// Where the flag is called: on checkout (default), or as the app opens (every user active
    /// during the test is exposed, as for a flag evaluated on start-up).
    pub at_app_open: bool,
}

impl PlantedExperiment {
    /// The demo's experiment: `checkout-redesign` with control, test (+15 %) and test_b (0 %).
    pub fn demo() -> Self {
        Self::parse("checkout-redesign:control=0,test=0.15,test_b=0").expect("valid")
    }

    /// `flag:variant=lift,variant=lift,…[;start=day][;at=app_open|begin_checkout]` (the first
    /// variant is the control).
    pub fn parse(text: &str) -> Result<Self, String> {
        let usage = "expected flag:variant=lift,variant=lift,…[;start=day][;at=app_open] such as checkout-redesign:control=0,test=0.15";
        let (flag, rest) = text.split_once(':').ok_or_else(|| format!("experiment '{text}': {usage}"))?;
        let mut parts = rest.split(';');
        let variants = parts
            .next()
            .unwrap_or_default()
            .split(',')
            .map(|v| {
                let (name, lift) = v.split_once('=').ok_or_else(|| format!("experiment variant '{v}': {usage}"))?;
                let lift: f64 = lift.trim().parse().map_err(|_| format!("experiment variant '{v}': lift must be a number"))?;
                if !(-1.0..=0.5).contains(&lift) {
                    return Err(format!("experiment variant '{v}': lift must be between -1 and 0.5 (a purchase probability stays below 1)"));
                }
                Ok((name.trim().to_string(), lift))
            })
            .collect::<Result<Vec<_>, String>>()?;
        if flag.trim().is_empty() || variants.len() < 2 || variants.iter().any(|(n, _)| n.is_empty()) {
            return Err(format!("experiment '{text}': a flag name and two or more variants; {usage}"));
        }
        let mut planted =
            PlantedExperiment { flag: flag.trim().to_string(), variants, start_day: None, at_app_open: false };
        for setting in parts {
            match setting.split_once('=').map(|(k, v)| (k.trim(), v.trim())) {
                Some(("start", day)) => {
                    planted.start_day =
                        Some(day.parse().map_err(|_| format!("experiment start '{day}': a day number from 0"))?)
                }
                Some(("at", "app_open")) => planted.at_app_open = true,
                Some(("at", "begin_checkout")) => planted.at_app_open = false,
                _ => return Err(format!("experiment setting '{setting}': start=day or at=app_open|begin_checkout")),
            }
        }
        Ok(planted)
    }

    /// The variant of `user`: a hash, so that assigning draws nothing from the event stream.
    fn variant_of(&self, seed: u64, user: u32) -> u8 {
        (mix(seed, user, 0x5EED_F1A6) % self.variants.len() as u64) as u8
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
    /// For the planted experiment's exposure event, the variant's index.
    pub variant: Option<u8>,
    /// The row carries the anonymous id of this device of the user instead of the user's id.
    pub device: Option<u8>,
    /// The row (carrying the user's id) signs this device in: its `anonymous_id` is the
    /// device's anonymous id, an identity link.
    pub signs_in: Option<u8>,
}

/// The event of a returning user signing in on a device (an identify call's name).
pub const SIGN_IN: &str = "login";

/// The event a feature-flag check sends (PostHog's name).
pub const FLAG_CALLED: &str = "$feature_flag_called";

/// The planted experiment as one session sees it.
struct Arm {
    variant: u8,
    lift: f64,
    exposed: bool,
    at_app_open: bool,
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
    /// Per user: called the experiment's flag already.
    exposed: Vec<bool>,
    /// Per user: the devices signed in (bit per device), for users who start anonymous.
    signed_in: Vec<u8>,
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
            exposed: Vec::new(),
            signed_in: Vec::new(),
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
        self.exposed.resize(self.users.len(), false);
        self.signed_in.resize(self.users.len(), 0);
        let experiment =
            self.config.experiment.as_ref().filter(|x| day >= x.start_day.unwrap_or(self.config.days / 2)).cloned();
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
                let mut arm = experiment.as_ref().map(|x| {
                    let variant = x.variant_of(self.config.seed, id as u32);
                    Arm {
                        variant,
                        lift: x.variants[variant as usize].1,
                        exposed: self.exposed[id],
                        at_app_open: x.at_app_open,
                    }
                });
                let ids = (id as u32, self.sessions_started);
                let mut device = self.device_of(id as u32, is_first);
                session(&mut rng, &mut events, ids, user, start, is_first, arm.as_mut(), device.as_mut());
                self.exposed[id] = arm.is_some_and(|a| a.exposed);
                if let Some(device) = device.filter(|d| d.signed_in) {
                    self.signed_in[id] |= 1 << device.device;
                }
            }
        }
        events.sort_by_key(|e| (e.micros, e.user));
        events
    }
}

impl EventGenerator {
    /// The device of a session of a user who starts anonymous (`None` for the others): device
    /// 0 first; later, for half of them, device 1 in about half of their sessions.
    fn device_of(&self, user: u32, first: bool) -> Option<Device> {
        let seed = self.config.seed;
        if unit(seed, user, 0x1D) >= self.config.identities {
            return None;
        }
        let two_devices = unit(seed, user, 0x2D) < 0.5;
        let second = !first && two_devices && unit(seed, user, 0x3D ^ ((self.sessions_started as u64) << 8)) < 0.5;
        let device = u8::from(second);
        Some(Device { device, signed_in: self.signed_in[user as usize] & (1 << device) != 0 })
    }
}

/// The device a session of a user who starts anonymous runs on, and whether it is signed in.
#[derive(Clone, Copy)]
struct Device {
    device: u8,
    signed_in: bool,
}

/// Writes a session's events one after another, moving the clock on.
struct SessionWriter<'a> {
    out: &'a mut Vec<Event>,
    t: i64,
    ids: (u32, u32),
    traits: User,
    /// For a user who starts anonymous: the session's device.
    device: Option<Device>,
}

impl SessionWriter<'_> {
    /// One event, carrying the device's anonymous id while the device is not signed in. With a
    /// generator, the clock moves on after it; without, the next event shares its time.
    fn emit(&mut self, rng: Option<&mut ChaCha8Rng>, name: &'static str, price_cents: u32, variant: Option<u8>) {
        let device = self.device.filter(|d| !d.signed_in).map(|d| d.device);
        self.push(name, price_cents, variant, device, None);
        if let Some(rng) = rng {
            self.t += rng.random_range(2_000_000..180_000_000i64);
        }
    }

    /// `name` as the row that signs the device in (the user's id, and the device's anonymous
    /// id beside it), when the device is not signed in yet; `false` otherwise. With a
    /// generator, the clock moves on as after [`Self::emit`]; without (a login, which the data
    /// without identities does not have), by a time drawn from the ids, so the generator stays
    /// in step with that data.
    fn sign_in(&mut self, rng: Option<&mut ChaCha8Rng>, name: &'static str) -> bool {
        let Some(device) = self.device.as_mut().filter(|d| !d.signed_in) else { return false };
        device.signed_in = true;
        let signs_in = Some(device.device);
        self.push(name, 0, None, None, signs_in);
        self.t += match rng {
            Some(rng) => rng.random_range(2_000_000..180_000_000i64),
            None => 2_000_000 + (mix(u64::from(self.ids.1), self.ids.0, 0x4D) % 60_000_000) as i64,
        };
        true
    }

    fn push(
        &mut self,
        name: &'static str,
        price_cents: u32,
        variant: Option<u8>,
        device: Option<u8>,
        signs_in: Option<u8>,
    ) {
        let (user, session) = self.ids;
        let traits = self.traits;
        self.out.push(Event {
            micros: self.t,
            user,
            session,
            event: name,
            platform: traits.platform,
            country: traits.country,
            plan: traits.plan,
            price_cents,
            variant,
            device,
            signs_in,
        });
    }
}

/// One session: a walk down the funnel with drop-off at every step. `ids` is (user, session).
/// On a device not signed in, rows carry the device's anonymous id until the user signs in:
/// at sign-up in their first session, else with a login right after the app opens.
#[allow(clippy::too_many_arguments)]
fn session(
    rng: &mut ChaCha8Rng,
    out: &mut Vec<Event>,
    ids: (u32, u32),
    traits: User,
    start: i64,
    first: bool,
    arm: Option<&mut Arm>,
    device: Option<&mut Device>,
) {
    let mut w = SessionWriter { out, t: start, ids, traits, device: device.as_deref().copied() };
    walk(rng, &mut w, first, arm);
    if let (Some(device), Some(now)) = (device, w.device) {
        *device = now;
    }
}

fn walk(rng: &mut ChaCha8Rng, w: &mut SessionWriter<'_>, first: bool, arm: Option<&mut Arm>) {
    let mut arm = arm;
    if let Some(arm) = arm.as_deref_mut().filter(|a| a.at_app_open && !a.exposed) {
        w.emit(None, FLAG_CALLED, 0, Some(arm.variant));
        arm.exposed = true;
    }
    w.emit(Some(&mut *rng), "app_open", 0, None);
    if !first {
        w.sign_in(None, SIGN_IN);
    }
    if first && rng.random::<f64>() < 0.45 && !w.sign_in(Some(&mut *rng), "signup") {
        w.emit(Some(&mut *rng), "signup", 0, None);
    }
    for _ in 0..rng.random_range(1..=4) {
        w.emit(Some(&mut *rng), "page_view", 0, None);
    }
    if rng.random::<f64>() < 0.6 {
        w.emit(Some(&mut *rng), "search", 0, None);
    }
    if rng.random::<f64>() >= 0.7 {
        return;
    }
    let price = rng.random_range(199..=19_999u32);
    w.emit(Some(&mut *rng), "view_item", price, None);
    if rng.random::<f64>() >= 0.35 {
        return;
    }
    w.emit(Some(&mut *rng), "add_to_cart", price, None);
    if rng.random::<f64>() >= 0.55 {
        return;
    }
    let mut purchase = 0.65;
    if let Some(arm) = arm {
        if !arm.exposed {
            w.emit(None, FLAG_CALLED, 0, Some(arm.variant));
            arm.exposed = true;
        }
        purchase *= 1.0 + arm.lift;
    }
    w.emit(Some(&mut *rng), "begin_checkout", price, None);
    if rng.random::<f64>() < purchase {
        w.emit(Some(&mut *rng), "purchase", price, None);
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
    fn a_flag_called_at_app_open_exposes_every_active_user_once() {
        let experiment = PlantedExperiment::parse("f:control=0,test=0.1;start=0;at=app_open").unwrap();
        assert!(experiment.at_app_open && experiment.start_day == Some(0));
        let config = GeneratorConfig { events: 20_000, seed: 3, experiment: Some(experiment), ..Default::default() };
        let events: Vec<Event> = EventGenerator::new(config).collect();
        let users: std::collections::BTreeSet<u32> = events.iter().map(|e| e.user).collect();
        let calls: Vec<&Event> = events.iter().filter(|e| e.event == FLAG_CALLED).collect();
        // The last day is cut at exactly 20,000 events: a few of its users may lack their call.
        assert!(calls.len() <= users.len() && calls.len() + 100 > users.len(), "{} {}", calls.len(), users.len());
        let called: std::collections::BTreeSet<u32> = calls.iter().map(|e| e.user).collect();
        assert_eq!(called.len(), calls.len(), "one call per user");
        assert!(calls
            .iter()
            .all(|c| events.iter().any(|e| e.user == c.user && e.event == "app_open" && e.micros == c.micros)));
        for bad in ["f:a=0,b=0;at=lunch", "f:a=0,b=0;start=x", "f:a=0,b=0;when=1"] {
            assert!(PlantedExperiment::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn identities_leave_other_users_alone_and_sign_anonymous_devices_in() {
        let plain = small(5);
        let config = GeneratorConfig { events: 20_000, seed: 5, identities: 0.3, ..Default::default() };
        let mixed: Vec<Event> = EventGenerator::new(config).collect();
        // Users who start anonymous: their rows carry a device until a sign-in row links it.
        let anonymous_users: std::collections::BTreeSet<u32> =
            mixed.iter().filter(|e| e.device.is_some()).map(|e| e.user).collect();
        let share = anonymous_users.len() as f64 / mixed.iter().map(|e| e.user).max().unwrap() as f64;
        assert!((0.2..0.4).contains(&share), "{share}");
        for e in mixed.iter().filter(|e| e.signs_in.is_some()) {
            assert!(e.device.is_none() && (e.event == "signup" || e.event == SIGN_IN), "{e:?}");
        }
        let two_devices =
            anonymous_users.iter().filter(|u| mixed.iter().any(|e| e.user == **u && e.device == Some(1))).count();
        assert!(two_devices > anonymous_users.len() / 8, "{two_devices} of {}", anonymous_users.len());
        // In a session, every row after the sign-in carries the user's id. (Sessions of one day
        // may overlap, as two tabs do, so this holds per session, not per device.)
        let mut signed_in = std::collections::HashSet::new();
        for e in &mixed {
            if e.signs_in.is_some() {
                signed_in.insert(e.session);
            }
            assert!(e.device.is_none() || !signed_in.contains(&e.session), "anonymous after signing in: {e:?}");
        }
        // The other users' events are exactly those of the data without identities (the logins
        // end the 20,000 a little earlier).
        let logins = mixed.iter().filter(|e| e.event == SIGN_IN).count();
        assert!(logins > 50, "{logins} logins");
        let others = |events: &[Event]| -> Vec<(i64, u32, &'static str)> {
            events.iter().filter(|e| !anonymous_users.contains(&e.user)).map(|e| (e.micros, e.user, e.event)).collect()
        };
        let (plain, mixed) = (others(&plain), others(&mixed));
        assert!(mixed.len() > 10_000 && mixed[..] == plain[..mixed.len()]);
    }

    #[test]
    fn day_30_activity_is_about_six_to_seven_percent() {
        let p30 = activity_probability(30);
        assert!((0.06..0.07).contains(&p30), "{p30}");
    }
}
