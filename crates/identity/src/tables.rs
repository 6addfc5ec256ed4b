//! The tables derived from `events` beside `person_id` (docs/identity.md): `persons` (each
//! person's properties), `groups` (each account's properties) and `group_members` (the account
//! of each type a person last joined). Each is SQL over `events`, planned when it is scanned,
//! so it always belongs to the version being read and nothing is stored. The SQL depends only
//! on which columns the table has: the collector's (`traits`, `group_id`, `utm_source`, …) or,
//! for data imported from files, the same facts inside `properties` (PostHog's shape).

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use northstar_storage::event_time_type;

use crate::extract::MESSAGE_TYPE;

/// A table defined by its SQL over `events` and the schema that SQL is cast to.
#[derive(Debug, Clone)]
pub struct DerivedTable {
    pub name: &'static str,
    pub sql: String,
    pub schema: SchemaRef,
}

/// The columns of `persons` a report's rows can carry, each as `person_<column>`.
pub const PERSON_COLUMNS: [&str; 8] = [
    "events",
    "first_seen",
    "last_seen",
    "properties",
    "initial_utm_source",
    "initial_utm_medium",
    "initial_utm_campaign",
    "initial_referrer",
];

/// The columns of `groups` a report may name as `group_<column>` when it counts accounts.
pub const GROUP_COLUMNS: [&str; 3] = ["properties", "first_seen", "last_seen"];

/// The group type of a Segment `group` call, which names no type (docs/identity.md).
pub const DEFAULT_GROUP_TYPE: &str = "company";

/// `persons`, `groups` and `group_members` for an `events` table with `columns`.
pub fn derived_tables(events: &Schema) -> Vec<DerivedTable> {
    let columns = Columns(events);
    vec![persons(&columns), groups(&columns), group_members(&columns)]
}

struct Columns<'a>(&'a Schema);

impl Columns<'_> {
    fn has(&self, name: &str) -> bool {
        self.0.column_with_name(name).is_some()
    }

    /// The column `name` where the table has it, else the property `key` (the JSON is parsed
    /// only on rows whose text mentions the key).
    fn column_or_property(&self, name: &str, key: &str) -> String {
        if self.has(name) {
            name.to_string()
        } else {
            property(key, "json_get_str")
        }
    }

    /// The condition of a row that names an account for its person (Segment's `group` call).
    fn group_call(&self) -> Option<String> {
        if !self.has("group_id") {
            return None;
        }
        let call = if self.has(MESSAGE_TYPE) { "message_type = 'group'" } else { "event = 'group'" };
        Some(format!("group_id IS NOT NULL AND {call}"))
    }

    /// A group row's type: its `group_type` where given, else the default.
    fn group_type(&self) -> String {
        if self.has("group_type") {
            format!("coalesce(group_type, '{DEFAULT_GROUP_TYPE}')")
        } else {
            format!("'{DEFAULT_GROUP_TYPE}'")
        }
    }
}

/// `json_get_*(properties, key)` on the rows whose properties text holds `"key"`, else NULL.
/// Keys here are fixed words without quotes or LIKE wildcards.
fn property(key: &str, function: &str) -> String {
    format!("CASE WHEN properties LIKE '%\"{key}\"%' THEN {function}(properties, '{key}') END")
}

fn text(name: &str) -> Field {
    Field::new(name, DataType::Utf8, true)
}

fn time(name: &str) -> Field {
    Field::new(name, event_time_type(), true)
}

fn persons(columns: &Columns) -> DerivedTable {
    // A person's `$set`: Segment traits (not of a group call: those are the account's), else
    // PostHog's `$set` inside the properties.
    let json_set = property("$set", "json_get_json");
    let set = match (columns.has("traits"), columns.has("group_id")) {
        (true, true) => format!("coalesce(CASE WHEN group_id IS NULL THEN traits END, {json_set})"),
        (true, false) => format!("coalesce(traits, {json_set})"),
        _ => json_set,
    };
    let set_once = property("$set_once", "json_get_json");
    // Only rows that may set something or carry a first-touch value are read for properties:
    // one text search of the properties each instead of a JSON field per row and column
    // (`_` matches any character: a superset, which the JSON functions then narrow).
    let mut may_set = vec!["properties LIKE '%\"$set%'".to_string(), "properties LIKE '%\"utm_%'".to_string()];
    if columns.has("traits") {
        may_set.push("traits IS NOT NULL".into());
    }
    let initial = |column: &str, key: &str, name: &str, may_set: &mut Vec<String>| {
        let value = columns.column_or_property(column, key);
        if columns.has(column) {
            may_set.push(format!("{column} IS NOT NULL"));
        } else if !key.starts_with("utm_") {
            may_set.push(format!("properties LIKE '%\"{key}\"%'"));
        }
        format!("first_value({value} ORDER BY event_time) FILTER (WHERE {value} IS NOT NULL) AS {name}")
    };
    let initials = [
        initial("utm_source", "utm_source", "initial_utm_source", &mut may_set),
        initial("utm_medium", "utm_medium", "initial_utm_medium", &mut may_set),
        initial("utm_campaign", "utm_campaign", "initial_utm_campaign", &mut may_set),
        initial("referrer", "$referrer", "initial_referrer", &mut may_set),
    ];
    // Counts and times per person over all rows (the user-bucket operator runs it); the
    // properties over the rows that may set them, joined on.
    let sql = format!(
        "SELECT a.person_id, a.events, a.first_seen, a.last_seen, s.properties, {} \
         FROM (SELECT person_id, count(*) AS events, min(event_time) AS first_seen, max(event_time) AS last_seen \
               FROM events GROUP BY person_id) AS a \
         LEFT JOIN (SELECT person_id, merged_properties(event_time, {set}, {set_once}) AS properties, {} \
                    FROM events WHERE {} GROUP BY person_id) AS s ON a.person_id = s.person_id",
        PERSON_COLUMNS[4..].iter().map(|c| format!("s.{c}")).collect::<Vec<_>>().join(", "),
        initials.join(", "),
        may_set.join(" OR "),
    );
    let mut fields = vec![Field::new("person_id", DataType::Utf8, false), Field::new("events", DataType::Int64, false)];
    fields.extend([time("first_seen"), time("last_seen"), text("properties")]);
    fields.extend(PERSON_COLUMNS[4..].iter().map(|c| text(c)));
    DerivedTable { name: "persons", sql, schema: Arc::new(Schema::new(fields)) }
}

fn groups(columns: &Columns) -> DerivedTable {
    // Rows that set an account's properties (as plain text: a JSON column's field metadata
    // would make the branches' schemas differ): the collector's group rows (Segment `group`,
    // PostHog `$groupidentify`), and `$groupidentify` events imported with PostHog's properties.
    let mut sources = vec![];
    if columns.has("group_id") {
        let traits = if columns.has("traits") { "CAST(traits AS TEXT)" } else { "CAST(NULL AS TEXT)" };
        sources.push(format!(
            "SELECT {} AS group_type, group_id AS group_key, event_time, {traits} AS traits FROM events WHERE group_id IS NOT NULL",
            columns.group_type()
        ));
    }
    let imported = if columns.has("group_id") { " AND group_id IS NULL" } else { "" };
    sources.push(format!(
        "SELECT json_get_str(properties, '$group_type') AS group_type, json_get_str(properties, '$group_key') AS group_key, \
         event_time, CAST(json_get_json(properties, '$group_set') AS TEXT) AS traits FROM events WHERE event = '$groupidentify'{imported}"
    ));
    let sql = format!(
        "SELECT group_type, group_key, merged_properties(event_time, traits, CAST(NULL AS TEXT)) AS properties, \
         min(event_time) AS first_seen, max(event_time) AS last_seen \
         FROM ({}) AS group_rows WHERE group_type IS NOT NULL AND group_key IS NOT NULL GROUP BY group_type, group_key",
        sources.join(" UNION ALL ")
    );
    let fields = vec![text("group_type"), text("group_key"), text("properties"), time("first_seen"), time("last_seen")];
    DerivedTable { name: "groups", sql, schema: Arc::new(Schema::new(fields)) }
}

fn group_members(columns: &Columns) -> DerivedTable {
    let sql = match columns.group_call() {
        Some(call) => format!(
            "SELECT person_id, {} AS group_type, last_value(group_id ORDER BY event_time, group_id) AS group_key, \
             max(event_time) AS joined_at FROM events WHERE {call} GROUP BY 1, 2",
            columns.group_type()
        ),
        None => "SELECT CAST(NULL AS TEXT) AS person_id, CAST(NULL AS TEXT) AS group_type, CAST(NULL AS TEXT) AS group_key, \
                 CAST(NULL AS TIMESTAMP) AS joined_at WHERE FALSE"
            .to_string(),
    };
    let fields = vec![text("person_id"), text("group_type"), text("group_key"), time("joined_at")];
    DerivedTable { name: "group_members", sql, schema: Arc::new(Schema::new(fields)) }
}

/// The rows of `table` counted by account of `group_type` (a report's `by=<group type>`):
/// `user_id` holds the event's account, from PostHog's `$groups` on the event, else the
/// account its person last joined by a `group` call; events of no account are left out.
/// `group_type` must be a plain word (the reports check it).
pub fn rows_by_account(table: &str, group_type: &str) -> String {
    format!(
        "(SELECT * EXCLUDE (__northstar_account) REPLACE (__northstar_account AS user_id) FROM \
         (SELECT t.*, coalesce(CASE WHEN t.properties LIKE '%\"$groups\"%' THEN json_get_str(t.properties, '$groups', '{group_type}') END, m.group_key) AS __northstar_account \
          FROM {table} AS t LEFT JOIN (SELECT person_id AS __northstar_member, group_key FROM group_members WHERE group_type = '{group_type}') AS m \
          ON t.person_id = m.__northstar_member) AS rows_with_accounts \
         WHERE __northstar_account IS NOT NULL)"
    )
}

/// `rows` (the rows of a report counting accounts of `group_type`, `user_id` the account) with
/// the account's `groups` columns named in `columns` added as `group_<column>`; NULL for an
/// account that no call described. `group_type` must be a plain word (the reports check it).
pub fn rows_with_account_columns(rows: &str, group_type: &str, columns: &[&str]) -> String {
    let picked: Vec<String> = columns.iter().map(|c| format!("g.{c} AS group_{c}")).collect();
    format!(
        "(SELECT a.*, {} FROM {rows} AS a LEFT JOIN (SELECT * FROM groups WHERE group_type = '{group_type}') AS g \
         ON a.user_id = g.group_key)",
        picked.join(", ")
    )
}
