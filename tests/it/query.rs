//! `northstar query`: output formats and errors.

use crate::support::{fails, ok, Scratch};

#[test]
fn output_formats_and_readable_errors() {
    let s = Scratch::new();
    let message = fails(&["query", "--data", &s.data(), "SELECT 1 FROM events"]);
    assert!(message.contains("no events table at") && message.contains("import"), "{message}");
    let f = s.write("e.ndjson", "{\"ts\":\"2024-01-01T00:00:00Z\",\"user_id\":\"a\",\"event\":\"open\"}\n{\"ts\":\"2024-01-02T00:00:00Z\",\"user_id\":\"b\",\"event\":\"buy\"}\n");
    ok(&["import", "--data", &s.data(), &f]);
    let csv = ok(&[
        "query",
        "--data",
        &s.data(),
        "--format",
        "csv",
        "SELECT user_id, event FROM events WHERE event = 'nothing'",
    ]);
    assert_eq!(csv.trim(), "user_id,event", "an empty CSV result still has its header");
    let json = ok(&[
        "query",
        "--data",
        &s.data(),
        "--format",
        "json",
        "SELECT user_id, event_date FROM events ORDER BY user_id",
    ]);
    assert_eq!(
        json.trim(),
        "{\"user_id\":\"a\",\"event_date\":\"2024-01-01\"}\n{\"user_id\":\"b\",\"event_date\":\"2024-01-02\"}"
    );
    let table = ok(&["query", "--data", &s.data(), "SELECT count(*) AS n FROM events"]);
    assert!(table.contains("│ n ") && table.contains("│ 2 ") && table.contains("(1 row)"), "{table}");
    let message = fails(&["query", "--data", &s.data(), "SELEC nonsense"]);
    assert!(message.contains("SQL error") || message.contains("syntax"), "{message}");
    let message = fails(&["query", "--data", &s.data(), "SELECT nope FROM events"]);
    assert!(message.contains("nope"), "{message}");
}

/// A table made by one `northstar query` is there for the next, with its changes; a DELETE
/// whose condition DataFusion would apply to every row (a subquery) is refused, not run.
#[test]
fn tables_made_by_sql_are_saved_and_a_delete_with_a_subquery_is_refused() {
    let s = Scratch::new();
    let f = s.write("e.ndjson", "{\"ts\":\"2024-01-01T00:00:00Z\",\"user_id\":\"a\",\"event\":\"open\"}\n{\"ts\":\"2024-01-02T00:00:00Z\",\"user_id\":\"b\",\"event\":\"buy\"}\n");
    ok(&["import", "--data", &s.data(), &f]);
    ok(&["query", "--data", &s.data(), "CREATE TABLE users AS SELECT DISTINCT user_id FROM events"]);
    ok(&["query", "--data", &s.data(), "INSERT INTO users VALUES ('c')"]);
    ok(&["query", "--data", &s.data(), "DELETE FROM users WHERE user_id = 'a'"]);
    let message =
        fails(&["query", "--data", &s.data(), "DELETE FROM users WHERE user_id IN (SELECT user_id FROM events)"]);
    assert!(message.contains("run by the server only"), "{message}");
    let csv = ok(&["query", "--data", &s.data(), "--format", "csv", "SELECT user_id FROM users ORDER BY user_id"]);
    assert_eq!(csv.trim(), "user_id\nb\nc");
}
