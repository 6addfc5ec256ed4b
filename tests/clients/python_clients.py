"""What Superset (SQLAlchemy) and Python analysts (psycopg 3) do against Northstar.

Run by tests/it/server/clients.rs with the project's venv: python_clients.py PORT.
Prints one line per check; exits non-zero on the first failure.
"""
import datetime
import sys

import psycopg
import sqlalchemy
from sqlalchemy import inspect, text

port = int(sys.argv[1])

# psycopg 3: server-side parameters, text and binary results.
with psycopg.connect(f"host=127.0.0.1 port={port} user=northstar dbname=northstar") as conn:
    since = datetime.datetime(2025, 1, 15, tzinfo=datetime.timezone.utc)
    n = conn.execute("SELECT count(*) FROM events WHERE event = %s AND event_time >= %s", ("purchase", since)).fetchone()[0]
    literal = conn.execute("SELECT count(*) FROM events WHERE event = 'purchase' AND event_time >= TIMESTAMP '2025-01-15 00:00:00Z'").fetchone()[0]
    assert n == literal and n > 0, (n, literal)
    print("psycopg parameters ok", n)
    with conn.cursor(binary=True) as cur:
        cur.execute("SELECT event_time, user_id, event_date FROM events ORDER BY event_time LIMIT 3")
        rows = cur.fetchall()
        assert len(rows) == 3
        assert isinstance(rows[0][0], datetime.datetime) and rows[0][0].tzinfo is not None, rows[0]
        assert isinstance(rows[0][2], datetime.date), rows[0]
        assert rows[0][2] == rows[0][0].date()
    print("psycopg binary cursor ok", rows[0])

# SQLAlchemy 2 with psycopg2, as Superset connects and reflects.
engine = sqlalchemy.create_engine(f"postgresql+psycopg2://northstar@127.0.0.1:{port}/northstar")
inspector = inspect(engine)
tables = inspector.get_table_names()
assert "events" in tables, tables
columns = {c["name"]: str(c["type"]) for c in inspector.get_columns("events")}
assert columns["event_time"].startswith("TIMESTAMP"), columns
assert columns["user_id"] == "TEXT" and columns["event_date"] == "DATE", columns
print("sqlalchemy reflection ok", sorted(columns))
inspector.get_pk_constraint("events")
inspector.get_foreign_keys("events")
assert inspector.get_indexes("events") == []
print("sqlalchemy constraints ok")
with engine.connect() as c:
    users = c.execute(text("SELECT count(DISTINCT user_id) FROM events WHERE event = :e"), {"e": "signup"}).scalar()
    assert users > 0
print("sqlalchemy query ok", users)
