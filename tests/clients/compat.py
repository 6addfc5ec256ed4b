"""Client compatibility checks, each run against a real PostgreSQL and against Northstar.

Run by tests/it/server/compat.rs with the project's venv:

    compat.py load NORTHSTAR_URL POSTGRES_URL   # copies `events` into PostgreSQL, makes the views
    compat.py run NORTHSTAR_URL POSTGRES_URL    # runs every check on both

URLs are `postgresql://user@127.0.0.1:port/dbname`. A check is a function taking the target's
URL and returning what a client sees (names, values, SQLSTATEs); it passes on a target when it
runs without raising, and on Northstar only when it returns what PostgreSQL returned. A check
that fails on PostgreSQL is broken, not a finding: the run fails. Checks Northstar is known to
fail are listed in KNOWN_GAPS with the reason; the run fails when one of them starts passing,
so the list (and docs/clients.md) stays true.
"""
import datetime
import decimal
import importlib.util
import json
import os
import subprocess
import sys
import traceback
from urllib.parse import urlparse

import pandas
import psycopg
import psycopg2
import sqlalchemy
from sqlalchemy import inspect, text

CHECKS = {}

# name -> why Northstar does not pass yet (docs/clients.md, "Known gaps").
KNOWN_GAPS = {}


def check(f):
    CHECKS[f.__name__] = f
    return f


def conninfo(url):
    u = urlparse(url)
    return f"host={u.hostname} port={u.port} user={u.username} dbname={u.path.lstrip('/')}"


def connect(url, **kw):
    return psycopg.connect(conninfo(url), autocommit=True, **kw)


def names(url, sql):
    with connect(url) as conn:
        cur = conn.execute(sql)
        cur.fetchall()
        return [d.name for d in cur.description]


def rows(url, sql, params=None):
    with connect(url) as conn:
        return [list(map(plain, r)) for r in conn.execute(sql, params).fetchall()]


def plain(v):
    """Values as a client compares them: numbers as numbers whatever their SQL type (8, 8.0
    and Decimal('8') alike: PostgreSQL's sum of bigint is numeric, DataFusion's is bigint)."""
    if isinstance(v, (decimal.Decimal, int, float)) and not isinstance(v, bool):
        return float(v)
    if isinstance(v, (datetime.datetime, datetime.date, datetime.timedelta)):
        return v.isoformat() if not isinstance(v, datetime.timedelta) else v.total_seconds()
    return v


def sqlstate(url, sql):
    with connect(url) as conn:
        try:
            conn.execute(sql).fetchall()
        except psycopg.Error as e:
            return e.sqlstate
    return None


# --- result column names (pandas, Superset and dbt key results by them) -------------------


@check
def names_of_aggregates():
    return lambda url: names(url, "SELECT count(*), max(event_time), min(event_date), sum(1), avg(1) FROM events")


@check
def names_of_expressions():
    return lambda url: names(url, "SELECT 1 + 1, 'a', upper(event), coalesce(session_id, ''), CASE WHEN true THEN 1 END, CAST(event_time AS date), event_time::date, 'a'::text, date_trunc('day', event_time) FROM events LIMIT 1")


@check
def names_of_qualified_columns():
    return lambda url: names(url, "SELECT e.user_id, e.event, events.event_date FROM events e JOIN events ON false LIMIT 1")


@check
def names_repeated_in_one_select():
    return lambda url: names(url, "SELECT count(*), count(DISTINCT user_id), max(event), max(user_id) FROM events")


@check
def names_seen_through_subqueries_and_ctes():
    def run(url):
        inner = names(url, "SELECT * FROM (SELECT event, count(*) FROM events GROUP BY event) t ORDER BY count DESC, event LIMIT 1")
        cte = rows(url, "WITH first AS (SELECT user_id, min(event_date) FROM events GROUP BY user_id) SELECT count(min) FROM first")
        return [inner, cte]
    return run


@check
def names_of_aliases_kept_as_written():
    return lambda url: names(url, 'SELECT event AS "Event Name", count(*) AS "COUNT(*)", max(event_time) AS Latest FROM events GROUP BY event')


@check
def names_of_special_values():
    return lambda url: names(url, "SELECT current_date, current_timestamp, now(), current_schema")


@check
def names_of_current_user():
    return lambda url: names(url, "SELECT current_user")


# --- SQLSTATEs (drivers and tools branch on them) -------------------------------------------


@check
def sqlstates_of_common_errors():
    return lambda url: [
        sqlstate(url, sql)
        for sql in [
            "SELECT 1 / 0",
            "SELECT count(*) / 0 FROM events",
            "SELECT 'x'::int",
            "SELECT CAST('2025-13-45' AS date)",
            "SELECT nope FROM events",
            "SELECT * FROM nope",
            "SELEC 1",
            "SELECT no_such_function(1)",
        ]
    ]


# --- PostgreSQL's date/time formatting functions (Superset's time filters) ------------------

SAMPLE_TIME = "TIMESTAMP '2025-03-04 05:06:07.123456'"


@check
def to_timestamp_with_superset_pattern():
    def run(url):
        first = rows(url, "SELECT TO_TIMESTAMP('2026-01-01 00:00:00.000000', 'YYYY-MM-DD HH24:MI:SS.US')")
        counted = rows(url, "SELECT count(*) FROM events WHERE event_time >= TO_TIMESTAMP('2025-01-15 00:00:00.000000', 'YYYY-MM-DD HH24:MI:SS.US') AND event_time < TO_TIMESTAMP('2025-02-01 00:00:00.000000', 'YYYY-MM-DD HH24:MI:SS.US')")
        assert counted[0][0] > 0, counted
        return [first, counted]
    return run


@check
def to_timestamp_and_to_date_patterns():
    return lambda url: rows(url, """SELECT
        to_timestamp('2025-03-04 17:06:07', 'YYYY-MM-DD HH24:MI:SS'),
        to_timestamp('04/03/2025 05:06 PM', 'DD/MM/YYYY HH12:MI AM'),
        to_timestamp('2025-03-04T05:06:07.5', 'YYYY-MM-DD"T"HH24:MI:SS.MS'),
        to_timestamp('Mar 4 2025', 'Mon DD YYYY'),
        to_date('2025-03-04', 'YYYY-MM-DD'),
        to_date('20250304', 'YYYYMMDD'),
        to_date('4 March 2025', 'DD Month YYYY')""")


@check
def to_char_patterns():
    return lambda url: rows(url, f"""SELECT
        to_char({SAMPLE_TIME}, 'YYYY-MM-DD HH24:MI:SS'),
        to_char({SAMPLE_TIME}, 'YYYY-MM-DD"T"HH24:MI:SS.US'),
        to_char({SAMPLE_TIME}, 'DD/MM/YY HH12:MI:SS AM'),
        to_char({SAMPLE_TIME}, 'Mon DD, YYYY'),
        to_char({SAMPLE_TIME}, 'Month'),
        to_char({SAMPLE_TIME}, 'FMMonth FMDD'),
        to_char({SAMPLE_TIME}, 'Day Dy D'),
        to_char({SAMPLE_TIME}, 'YYYY-"Q"Q'),
        to_char({SAMPLE_TIME}, 'IYYY-"W"IW DDD MS'),
        to_char(DATE '2025-12-31', 'YYYY-MM-DD'),
        to_char(event_time, 'YYYY-MM') FROM events ORDER BY event_time LIMIT 1""")


# --- catalog reads (psql, SQLAlchemy, dbt) --------------------------------------------------


@check
def pg_tables_and_pg_views_split_tables_from_views():
    return lambda url: [
        rows(url, "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1"),
        rows(url, "SELECT viewname FROM pg_views WHERE schemaname = 'public' ORDER BY 1"),
    ]


@check
def view_definition_and_serial_sequence():
    def run(url):
        definition = rows(url, "SELECT pg_get_viewdef('daily_counts'::regclass)")[0][0]
        assert "events" in definition and "count" in definition, definition
        definition_true = rows(url, "SELECT pg_get_viewdef(c.oid, true) FROM pg_class c WHERE c.relname = 'daily_counts'")[0][0]
        assert "events" in definition_true, definition_true
        return rows(url, "SELECT pg_get_serial_sequence('events', 'user_id')")
    return run


@check
def information_schema_columns_use_postgres_type_names():
    return lambda url: rows(url, "SELECT column_name, data_type, is_nullable FROM information_schema.columns WHERE table_name = 'events' ORDER BY ordinal_position")


@check
def alter_view_rename():
    def run(url):
        with connect(url) as conn:
            conn.execute("DROP VIEW IF EXISTS renamed_view")
            conn.execute("DROP VIEW IF EXISTS view_to_rename")
            conn.execute("CREATE VIEW view_to_rename AS SELECT event FROM events")
            conn.execute("ALTER VIEW view_to_rename RENAME TO renamed_view")
            n = conn.execute("SELECT count(*) FROM renamed_view").fetchone()[0]
            conn.execute("DROP VIEW renamed_view")
            return n
    return run


def psql(url, *args):
    out = subprocess.run(["psql", conninfo(url), "-X", "-v", "ON_ERROR_STOP=1", *args], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout


@check
def psql_describe_plus_events():
    """`\\d+` of the table (its column table as psql prints it) and of a view (names, types)."""

    def run(url):
        table = psql(url, "-c", "\\d+ events").split("Access method")[0].strip().splitlines()
        view = psql(url, "-c", "\\d+ daily_counts").split("View definition")[0].strip().splitlines()[3:]
        return [table, [[cell.strip() for cell in line.split("|")[:2]] for line in view]]

    return run


@check
def psql_list_views_and_tables():
    return lambda url: ["daily_counts" in psql(url, "-c", "\\dv"), "events" in psql(url, "-c", "\\dt")]


# --- SQLAlchemy 2 inspector, as Superset and pandas call it ---------------------------------


def engine(url):
    return sqlalchemy.create_engine(url.replace("postgresql://", "postgresql+psycopg2://"))


@check
def sqlalchemy_inspector_calls():
    def run(url):
        insp = inspect(engine(url))
        columns = [(c["name"], str(c["type"]), c["nullable"]) for c in insp.get_columns("events")]
        return {
            "schemas": "public" in insp.get_schema_names(),
            "tables": sorted(insp.get_table_names()),  # no ORDER BY in its query: order undefined
            "views": sorted(insp.get_view_names()),
            "has_table": insp.has_table("events"),
            "columns": columns,
            "view_columns": [c["name"] for c in insp.get_columns("daily_counts")],
            "pk": insp.get_pk_constraint("events")["constrained_columns"],
            "fks": insp.get_foreign_keys("events"),
            "indexes": insp.get_indexes("events"),
            "unique": insp.get_unique_constraints("events"),
            "checks": insp.get_check_constraints("events"),
            "comment": insp.get_table_comment("events")["text"],
        }
    return run


@check
def sqlalchemy_view_definition():
    return lambda url: "events" in inspect(engine(url)).get_view_definition("daily_counts")


# --- pandas -------------------------------------------------------------------------------


@check
def pandas_read_sql_and_read_sql_table():
    def run(url):
        e = engine(url)
        counts = pandas.read_sql("SELECT event, count(*) FROM events GROUP BY event ORDER BY event", e)
        table = pandas.read_sql_table("events", e)
        view = pandas.read_sql_table("daily_counts", e)
        return [list(counts.columns), counts.values.tolist(), list(table.columns), len(table), list(view.columns), len(view)]
    return run


# --- cursors --------------------------------------------------------------------------------

ORDERED = "SELECT user_id, event FROM events ORDER BY event_time, user_id, event"


@check
def sql_cursors_declare_fetch_move_close():
    def run(url):
        with psycopg.connect(conninfo(url)) as conn:  # a transaction block, as DECLARE needs
            conn.execute("DECLARE c1 CURSOR FOR " + ORDERED)
            first = conn.execute("FETCH 3 FROM c1").fetchall()
            conn.execute("MOVE FORWARD 10 IN c1")
            after_move = conn.execute("FETCH NEXT FROM c1").fetchall()
            rest = conn.execute("FETCH ALL FROM c1").fetchall()
            empty = conn.execute("FETCH 5 FROM c1").fetchall()
            conn.execute("CLOSE c1")
            conn.commit()
        return [first, after_move, len(rest), empty]
    return run


@check
def declare_outside_a_transaction_is_refused():
    return lambda url: sqlstate(url, "DECLARE c2 CURSOR FOR SELECT 1")


@check
def psycopg2_named_cursor_fetches_in_batches():
    def run(url):
        conn = psycopg2.connect(conninfo(url))
        try:
            cur = conn.cursor(name="named")
            cur.itersize = 1000
            cur.execute(ORDERED)
            head = cur.fetchmany(5)
            total = len(head) + sum(1 for _ in cur)
            cur.close()
            conn.commit()
            return [[list(r) for r in head], total]
        finally:
            conn.close()
    return run


@check
def psycopg3_named_cursor_fetches_in_batches():
    def run(url):
        with psycopg.connect(conninfo(url)) as conn:
            with conn.cursor(name="named3") as cur:
                cur.itersize = 1000
                cur.execute(ORDERED)
                head = cur.fetchmany(5)
                total = len(head) + sum(1 for _ in cur)
        return [[list(r) for r in head], total]
    return run


@check
def psycopg3_pipeline_mode():
    """psycopg 3's pipeline: several statements sent before any result is read (Parse, Bind,
    Execute for each, one Sync), then their results in order; an error in a pipeline fails the
    statements after it (PostgreSQL skips to the Sync) and the connection goes on."""
    def run(url):
        with connect(url) as conn:
            with conn.pipeline():
                purchases = conn.execute("SELECT count(*) FROM events WHERE event = %s", ("purchase",))
                days = conn.execute("SELECT min(event_date), max(event_date) FROM events")
                users = conn.execute("SELECT user_id FROM events ORDER BY event_time, user_id, event LIMIT %s", (3,))
                answers = [purchases.fetchone()[0], [str(d) for d in days.fetchone()], [r[0] for r in users.fetchall()]]
            failed = []
            try:
                with conn.pipeline():
                    conn.execute("SELECT 1 / (count(*) - count(*)) FROM events")
                    conn.execute("SELECT 2")
            except psycopg.Error as e:
                failed.append(e.sqlstate)
            failed.append(conn.execute("SELECT count(*) FROM events").fetchone()[0])
            return [answers, failed]
    return run


def copied_text(url, sql):
    """The COPY's data, and its row count from the `COPY n` tag (psycopg's rowcount)."""
    with connect(url) as conn:
        cur = conn.cursor()
        with cur.copy(sql) as copy:
            data = b"".join(copy).decode()
        return {"data": data, "rowcount": cur.rowcount}


def copied_rows(url, sql, types):
    with connect(url) as conn:
        cur = conn.cursor()
        with cur.copy(sql) as copy:
            copy.set_types(types)
            rows = [[plain(v) for v in r] for r in copy.rows()]
        return {"rows": rows, "rowcount": cur.rowcount}


@check
def copy_binary_out():
    return lambda url: copied_rows(
        url,
        "COPY (SELECT user_id, event_date FROM events ORDER BY event_time, user_id, event LIMIT 5) TO STDOUT (FORMAT binary)",
        ["text", "date"],
    )


@check
def copy_csv_out():
    return lambda url: copied_text(
        url,
        "COPY (SELECT user_id, event FROM events ORDER BY event_time, user_id, event LIMIT 5) TO STDOUT (FORMAT csv, HEADER)",
    )


@check
def copy_csv_out_of_nothing_keeps_its_header():
    return lambda url: copied_text(
        url,
        "COPY (SELECT user_id, event FROM events WHERE event = 'no such event') TO STDOUT (FORMAT csv, HEADER)",
    )


@check
def copy_out_among_other_statements_of_one_query():
    """psql -c with several statements is one simple query: each result, COPY rows and tags
    included, in statement order (a COPY after a SELECT, and one before)."""
    copy = "COPY (SELECT user_id FROM events ORDER BY event_time, user_id, event LIMIT 2) TO STDOUT"
    return lambda url: [
        psql(url, "-c", f"SELECT 1 AS one; {copy}; SELECT 2 AS two"),
        psql(url, "-c", f"{copy}; SELECT 3 AS three"),
    ]


@check
def copy_binary_out_of_nothing():
    return lambda url: copied_rows(
        url, "COPY (SELECT user_id, event_date FROM events WHERE event = 'no such event') TO STDOUT (FORMAT binary)", ["text", "date"]
    )


@check
def copy_binary_out_of_every_common_type():
    return lambda url: copied_rows(
        url,
        "COPY (SELECT user_id, event_time, event_date, CAST(1 AS bigint) AS n, true AS b, "
        "CAST(NULL AS text) AS nothing FROM events ORDER BY event_time, user_id, event LIMIT 3) "
        "TO STDOUT (FORMAT binary)",
        ["text", "timestamptz", "date", "int8", "bool", "text"],
    )


# --- session settings -----------------------------------------------------------------------


@check
def search_path_schemas():
    """The schemas on the search path, as pgcli's completion and psql read them."""
    return lambda url: rows(url, "SELECT current_schemas(true), current_schemas(false), current_schema()")


@check
def session_time_zone_changes_timestamptz_output():
    def run(url):
        with connect(url) as conn:
            conn.execute("SET TIME ZONE 'america/new_york'")
            shown = conn.execute("SELECT to_char(min(event_time), 'YYYY-MM-DD HH24:MI:SS TZ') FROM events").fetchone()[0]
            day = conn.execute("SELECT min(date_trunc('day', event_time))::text FROM events").fetchone()[0]
            return [conn.execute("SHOW TimeZone").fetchone()[0], shown, day]
    return run


@check
def session_time_zone_applies_to_days_hours_literals_and_text():
    """What PostgreSQL computes in the session's zone: days and hours of a timestamptz, the
    literal compared with one, to_timestamp's wall time, and the text of every timestamptz
    (simple protocol, so psycopg does not parse it)."""
    def run(url):
        out = []
        with connect(url) as conn:
            for zone in ("Asia/Kolkata", "-7", "UTC+5"):
                conn.execute(f"SET TIME ZONE '{zone}'")
                cur = conn.cursor()
                cur.execute(
                    "SELECT event_time::date AS d, extract(hour FROM event_time) AS h, count(*) AS n FROM events "
                    "WHERE event_time >= '2025-01-15' AND event_time < '2025-01-17' GROUP BY 1, 2 ORDER BY 1, 2"
                )
                out.append([zone, conn.execute("SHOW TimeZone").fetchone()[0], [list(map(plain, r)) for r in cur.fetchall()]])
                out.append(list(conn.execute(
                    "SELECT min(event_time)::text, min(date_trunc('week', event_time))::text, "
                    "to_timestamp('2025-01-15 10:00', 'YYYY-MM-DD HH24:MI')::text, "
                    "DATE '2025-01-15' = min(event_time)::date FROM events"
                ).fetchone()))
            conn.execute("RESET TIME ZONE")
            out.append(conn.execute("SHOW TimeZone").fetchone()[0] in ("UTC", "Etc/UTC"))
        return out
    return run


@check
def timestamptz_text_output_is_postgres_own():
    """The text a client receives for a timestamptz column (psql prints it as it comes)."""
    def run(url):
        with connect(url) as conn:
            conn.execute("SET TIME ZONE 'Asia/Kolkata'")
            text = conn.pgconn.exec_(b"SELECT min(event_time), min(date_trunc('day', event_time)) FROM events")
            return [text.get_value(0, i).decode() for i in range(text.nfields)]
    return run


@check
def time_zone_start_up_parameter_and_bad_zones():
    """pgjdbc sends its JVM's zone as the TimeZone start-up parameter; a zone PostgreSQL does
    not know is refused with 22023 and changes nothing."""
    def run(url):
        with connect(url, options="-c TimeZone=Europe/Paris") as conn:
            first = conn.execute("SELECT min(event_time)::text, current_setting('TimeZone') FROM events").fetchone()
            try:
                conn.execute("SET TIME ZONE 'Mars/Olympus'")
                refused = None
            except psycopg.Error as e:
                refused = e.sqlstate
            return [list(first), refused, conn.execute("SHOW TimeZone").fetchone()[0]]
    return run


@check
def table_function_names_fold_case():
    """Superset writes table functions in capitals (`FUNNEL(ARRAY[…])`); PostgreSQL folds them."""
    return lambda url: rows(url, "SELECT count(*), sum(g) FROM GENERATE_SERIES(1, 3) AS t(g)")


@check
def interval_times_a_number():
    """Superset's 5-second … 30-minute grains multiply an interval by a number."""
    return lambda url: rows(
        url,
        "SELECT INTERVAL '30 minutes' * 100, 2.5 * INTERVAL '1 second', "
        "TIMESTAMPTZ '2025-01-01 10:17:41+00' - INTERVAL '5 seconds' * FLOOR(EXTRACT(SECOND FROM TIMESTAMPTZ '2025-01-01 10:17:41+00') / 5)",
    )


# --- pgjdbc (Debian's libpostgresql-jdbc-java; DBeaver, Metabase, Tableau's JDBC path) ------


if importlib.util.find_spec("asyncpg"):  # .venv only: the check runs Java, not Python

    @check
    def pgjdbc_database_metadata_as_dbeaver_and_metabase_call_it():
        """DatabaseMetaData of a schema sync (schemas, tables, columns, keys, indexes, types), a
        native query's result metadata, a prepared statement past pgjdbc's switch to a named
        server-side statement, and a result read 100 rows per Execute (fetch size, autocommit off):
        tests/clients/JdbcMetadata.java prints one line per row."""
        def run(url):
            u = urlparse(url)
            program = os.path.join(os.path.dirname(os.path.abspath(__file__)), "JdbcMetadata.java")
            out = subprocess.run(
                ["java", "-cp", "/usr/share/java/postgresql.jar", program,
                 u.hostname, str(u.port), u.username, u.path.lstrip("/")],
                capture_output=True, text=True, timeout=120,
            )
            if out.returncode != 0:
                raise RuntimeError(f"JdbcMetadata.java failed: {out.stderr.strip()[-2000:]}")
            return out.stdout.splitlines()
        return run


# --- asyncpg (.venv; binary protocol throughout, its own portals for cursors) ---------------


if importlib.util.find_spec("asyncpg"):  # .venv only

    @check
    def asyncpg_queries_prepared_statements_cursors_and_copy():
        import asyncio

        import asyncpg

        async def session(url):
            u = urlparse(url)
            conn = await asyncpg.connect(host=u.hostname, port=u.port, user=u.username, database=u.path.lstrip("/"))
            try:
                seen = [
                    await conn.fetch("SELECT event, count(*) FROM events GROUP BY event ORDER BY event"),
                    await conn.fetchval(
                        "SELECT count(*) FROM events WHERE user_id = $1 AND event_time >= $2",
                        "u0000010",
                        datetime.datetime(2025, 1, 10, tzinfo=datetime.timezone.utc),
                    ),
                    await conn.fetchrow("SELECT event_time, event_date, user_id, properties FROM events ORDER BY event_time, user_id LIMIT 1"),
                    await conn.fetchrow("SELECT ARRAY['a', 'b'] AS a, CAST(1.5 AS numeric) AS n, INTERVAL '90 minutes' AS i, true AS b, CAST(2 AS smallint) AS s"),
                ]
                top = await conn.prepare("SELECT user_id, count(*) AS n FROM events WHERE event = $1 GROUP BY user_id ORDER BY n DESC, user_id LIMIT 3")
                seen.append(await top.fetch("purchase"))
                seen.append([a.name for a in top.get_attributes()])
                async with conn.transaction():
                    cursor = await conn.cursor("SELECT user_id FROM events ORDER BY event_time, user_id")
                    seen.append(await cursor.fetch(5))
                    seen.append(await cursor.fetch(2))
                    seen.append(sum([1 async for _ in conn.cursor("SELECT event FROM events", prefetch=1000)]))
                lines = []

                async def keep(block):
                    lines.append(bytes(block))

                await conn.copy_from_query("SELECT user_id, event FROM events ORDER BY event_time, user_id LIMIT 3", output=keep, format="csv")
                seen.append(b"".join(lines).decode())
                return [[list(map(plain, r)) if isinstance(r, asyncpg.Record) else r for r in x] if isinstance(x, list) else (list(map(plain, x)) if isinstance(x, asyncpg.Record) else x) for x in seen]
            finally:
                await conn.close()

        return lambda url: asyncio.run(session(url))


# --- polars through ConnectorX and ADBC; ADBC's own DB-API (.venv only) --------------------


if importlib.util.find_spec("polars") and importlib.util.find_spec("connectorx"):  # .venv only

    POLARS_QUERY = (
        "SELECT event_time, user_id, event, event_date, platform, length(user_id) AS n "
        "FROM events WHERE event_time < '2025-01-20' ORDER BY event_time, user_id, event"
    )

    def polars_rows(frame):
        return [str(frame.schema), frame.height, [list(map(plain, r)) for r in frame.head(5).rows()], frame.tail(1).rows()]

    @check
    def polars_read_database_uri_through_connectorx():
        """ConnectorX reads with binary COPY; partitioned, it first asks min/max of the column."""
        def run(url):
            import polars
            whole = polars.read_database_uri(POLARS_QUERY, url, engine="connectorx")
            parts = polars.read_database_uri(
                "SELECT length(user_id) AS n, event FROM events", url, engine="connectorx", partition_on="n", partition_num=3
            ).sort(["n", "event"])
            return [polars_rows(whole), parts.height, parts.group_by("n").len().sort("n").rows()]
        return run

    @check
    def polars_read_database_uri_through_adbc():
        def run(url):
            import polars
            return polars_rows(polars.read_database_uri(POLARS_QUERY, url, engine="adbc"))
        return run

    @check
    def adbc_dbapi_queries_parameters_and_catalog():
        """ADBC's PostgreSQL driver (also behind DBeaver's and Arrow Flight SQL tools'):
        Arrow results, a bound parameter, the table's Arrow schema and its catalog listing."""
        def run(url):
            import adbc_driver_postgresql.dbapi as adbc
            with adbc.connect(url) as conn, conn.cursor() as cur:
                cur.execute("SELECT event, count(*) AS n FROM events WHERE event <> $1 GROUP BY event ORDER BY event", ("purchase",))
                counts = cur.fetch_arrow_table().to_pylist()
                schema = conn.adbc_get_table_schema("events", db_schema_filter="public")
                objects = conn.adbc_get_objects(depth="tables", db_schema_filter="public", table_name_filter="events").read_all()
                tables = [
                    (schema_entry["db_schema_name"], [t["table_name"] for t in schema_entry["db_schema_tables"] or []])
                    for catalog in objects.to_pylist() for schema_entry in catalog["catalog_db_schemas"] or []
                ]
                return [counts, [(f.name, str(f.type)) for f in schema], tables]
        return run


# --- psqlODBC through pyodbc (the driver Excel, Power BI and Tableau use on Windows) -------


if importlib.util.find_spec("pyodbc"):  # .venv only

    def odbc(url, **options):
        import pyodbc
        u = urlparse(url)
        settings = {"DRIVER": "{PostgreSQL Unicode}", "SERVER": u.hostname, "PORT": u.port, "UID": u.username,
                    "DATABASE": u.path.lstrip("/"), **options}
        return pyodbc.connect(";".join(f"{k}={v}" for k, v in settings.items()), autocommit=True, timeout=20)

    @check
    def odbc_query_with_a_parameter():
        def run(url):
            with odbc(url) as conn:
                cur = conn.execute(
                    "SELECT user_id, event, event_time, event_date FROM events WHERE event = ? "
                    "ORDER BY event_time, user_id, event LIMIT 5", "purchase")
                return [[plain(v) for v in r] for r in cur.fetchall()], [(d[0], d[1].__name__) for d in cur.description]
        return run

    @check
    def odbc_declare_fetch_mode_reads_in_blocks():
        """UseDeclareFetch: the driver reads a result through a cursor, Fetch rows at a time
        (Tableau's and many DSNs' setting for large results)."""
        def run(url):
            with odbc(url, UseDeclareFetch=1, Fetch=100) as conn:
                cur = conn.execute("SELECT user_id, event FROM events ORDER BY event_time, user_id, event LIMIT 450")
                first = cur.fetchmany(10)
                rest = cur.fetchall()
                return len(first) + len(rest), [list(r) for r in first[:3]], [list(r) for r in rest[-2:]]
        return run

    @check
    def odbc_catalog_functions():
        """What Excel's and Power BI's navigators call: SQLTables, SQLColumns, SQLPrimaryKeys,
        SQLStatistics."""
        def run(url):
            with odbc(url) as conn:
                cur = conn.cursor()
                tables = sorted((r.table_name, r.table_type) for r in cur.tables(schema="public"))
                columns = [(r.column_name, r.type_name, r.nullable) for r in cur.columns(table="events", schema="public")]
                keys = [tuple(r) for r in cur.primaryKeys("events", schema="public")]
                statistics = [tuple(r)[:9] for r in cur.statistics("events", schema="public")]
                return tables, columns, keys, statistics
        return run

    @check
    def odbc_foreign_keys():
        """SQLForeignKeys, which Power BI's and Access's relationship detection call."""
        def run(url):
            with odbc(url) as conn:
                return [tuple(r) for r in conn.cursor().foreignKeys(table="events", schema="public")]
        return run


# --- pgcli: its completion catalog and pgspecial's backslash commands ----------------------


if importlib.util.find_spec("pgcli"):  # .venv only

    @check
    def pgcli_completions_and_backslash_commands():
        """What pgcli's completion refresher reads at start (relations, columns, keys, functions,
        types of the search path) and pgspecial's \\dt, \\dv and \\d."""
        def run(url):
            from pgcli.pgexecute import PGExecute
            from pgspecial.main import PGSpecial
            u = urlparse(url)
            executor = PGExecute(u.path.lstrip("/"), u.username, None, u.hostname, u.port)
            try:
                def public(items):
                    return sorted(tuple(i) for i in items if i[0] == "public")
                answer = {
                    "search_path": executor.search_path(),
                    "schemata": "public" in executor.schemata(),
                    "databases": u.path.lstrip("/") in executor.databases(),
                    "tables": public(executor.tables()),
                    "views": public(executor.views()),
                    "table_columns": public(executor.table_columns()),
                    "view_columns": public(executor.view_columns()),
                    "foreignkeys": public(executor.foreignkeys()),
                    # Northstar's own functions are in `public`, where PostgreSQL has none:
                    # compared are built-ins both have, with argument and result types.
                    "functions": sorted(
                        (f.func_name, tuple(f.arg_types or ()), f.return_type)
                        for f in executor.functions()
                        if f.schema_name == "pg_catalog" and f.func_name in ("upper", "now", "length", "date_trunc", "abs")
                    ),
                    "datatypes": public(executor.datatypes()),
                }
                special = PGSpecial()
                for command in ["\\dt", "\\dv", "\\d events", "SELECT count(*) FROM events"]:
                    _title, cur, headers, status, *_ = next(executor.run(command, pgspecial=special))
                    # The owner is whoever connected: postgres there, northstar here.
                    found = [["<user>" if v == u.username else plain(v) for v in r] for r in cur] if cur else None
                    answer[command] = [headers, found, status]
                return answer
            finally:
                executor.conn.close()
        return run


# --- node-postgres (`pg`) and `pg-cursor`, from npm (tests/sdks, locked) ---------------------

NODE_PG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "sdks", "node_pg.mjs")


@check
def node_pg_queries_prepared_statements_and_pg_cursor():
    """Field type oids, a named prepared statement reused, array row mode, a pg-cursor read in
    batches inside a transaction, an error code and the connection after it."""

    def run(url):
        done = subprocess.run(["node", NODE_PG, url], capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(done.stderr[-2000:])
        return json.loads(done.stdout)

    return run


# --- tables made by SQL (dbt's table models, seeds and incremental models) ------------------


@check
def tables_made_by_sql_change_as_in_postgresql():
    """CREATE TABLE … AS, INSERT, UPDATE and DELETE with IN/EXISTS subqueries, UPDATE … FROM,
    DELETE … USING, NULLs in conditions, a temporary table, RENAME; status tags and rows."""

    def run(url):
        seen = []
        with connect(url) as conn:
            def do(sql):
                cur = conn.execute(sql)
                seen.append([cur.statusmessage, [list(map(plain, r)) for r in cur.fetchall()] if cur.description else None])

            for sql in [
                "DROP TABLE IF EXISTS made_t", "DROP TABLE IF EXISTS made_s", "DROP TABLE IF EXISTS made_r",
                "CREATE TABLE made_t AS SELECT user_id, count(*) AS events, max(event) AS last_event FROM events GROUP BY user_id",
                "CREATE TABLE made_s (user_id text, note text)",
                "INSERT INTO made_s VALUES ('u0000010', 'a'), ('u0000021', NULL), ('nobody', 'b')",
                "UPDATE made_t SET last_event = 'kept' WHERE user_id IN (SELECT user_id FROM made_s)",
                "UPDATE made_t SET events = made_t.events + 1000, last_event = made_s.note FROM made_s WHERE made_s.user_id = made_t.user_id",
                "DELETE FROM made_t AS d WHERE (user_id) IN (SELECT DISTINCT user_id FROM made_s AS s WHERE note IS NULL)",
                "DELETE FROM made_t WHERE EXISTS (SELECT 1 FROM made_s WHERE made_s.note = made_t.last_event)",
                "DELETE FROM made_t WHERE last_event <> 'page_view'",
                "DELETE FROM made_t USING made_s WHERE made_t.user_id = made_s.user_id",
                "SELECT count(*), sum(events), count(last_event) FROM made_t",
                "UPDATE made_t SET last_event = NULL WHERE events > 1",
                "SELECT count(*), count(last_event) FROM made_t",
                "CREATE TEMPORARY TABLE made_tmp AS SELECT * FROM made_s",
                "DELETE FROM made_s WHERE user_id IN (SELECT user_id FROM made_tmp WHERE note = 'b')",
                "ALTER TABLE made_s RENAME TO made_r",
                "SELECT * FROM made_r ORDER BY user_id",
                "DROP TABLE made_t", "DROP TABLE made_r",
            ]:
                do(sql)
        return seen

    return run


# --- dbt-postgres (only where it is installed: .venv) ----------------------------------------

DBT = os.path.join(os.path.dirname(sys.executable), "dbt")
DBT_PROJECT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "dbt")

if os.path.exists(DBT):

    def dbt(project, *args):
        """Runs a dbt command in `project`; returns its exit code and each node's status."""
        done = subprocess.run([DBT, *args, "--profiles-dir", project, "--project-dir", project], capture_output=True, text=True)
        results = os.path.join(project, "target", "run_results.json")
        statuses = {}
        if os.path.exists(results):
            with open(results) as f:
                statuses = {r["unique_id"]: r["status"] for r in json.load(f)["results"]}
            os.remove(results)
        if done.returncode != 0 and not statuses:
            raise RuntimeError(f"dbt {' '.join(args)} failed: {done.stdout[-2000:]}")
        return [done.returncode, statuses]

    @check
    def dbt_debug_seed_run_twice_and_test():
        """tests/clients/dbt as an analyst runs it: debug, seed, run (views, tables, an
        incremental model), run again (every model replaced, the incremental one merged), test;
        then what each model holds."""
        import shutil
        import tempfile

        def run(url):
            u = urlparse(url)
            with tempfile.TemporaryDirectory() as scratch:
                project = os.path.join(scratch, "project")
                shutil.copytree(DBT_PROJECT, project)
                with open(os.path.join(project, "profiles.yml"), "w") as f:
                    f.write(
                        "compat:\n  target: t\n  outputs:\n    t:\n      type: postgres\n"
                        f"      host: {u.hostname}\n      port: {u.port}\n      user: {u.username}\n"
                        f"      password: ''\n      dbname: {u.path.lstrip('/')}\n      schema: public\n      threads: 1\n"
                    )
                steps = {c: dbt(project, c) for c in ["debug", "seed", "run"]}
                steps["run again"] = dbt(project, "run")
                steps["test"] = dbt(project, "test")
            models = ["platform_labels", "daily_events", "daily_totals", "purchasers", "events_by_label", "daily_signups"]
            held = {m: sorted(rows(url, f"SELECT * FROM {m}")) for m in models}
            kinds = rows(url, "SELECT tablename, 'table' FROM pg_tables WHERE schemaname = 'public' UNION ALL SELECT viewname, 'view' FROM pg_views WHERE schemaname = 'public'")
            with connect(url) as conn:
                for m in ["daily_totals", "daily_events"]:
                    conn.execute(f"DROP VIEW {m}")
                for m in ["platform_labels", "purchasers", "events_by_label", "daily_signups"]:
                    conn.execute(f"DROP TABLE {m}")
            return {"steps": steps, "models": held, "relations": sorted(kinds)}

        return run


# --- Superset 6.1 (only where it is installed: .venv-superset, with SQLAlchemy 1.4) ----------


def superset_engine_spec():
    """Superset's own PostgreSQL engine spec, inside a started Superset app; None without it."""
    try:
        from superset.app import create_app
    except ImportError:
        return None
    os.environ.setdefault("SUPERSET_CONFIG_PATH", os.path.join(os.path.dirname(__file__), "superset_config.py"))
    app = create_app()
    app.app_context().push()
    from superset.db_engine_specs.postgres import PostgresEngineSpec

    return PostgresEngineSpec


SUPERSET = superset_engine_spec()

if SUPERSET is not None:

    def superset_time_series(multiple_of_a_unit):
        """A time-series chart's query for each time grain Superset offers for PostgreSQL: the
        grain expression and the time-range filter are Superset's (`get_timestamp_expr`,
        `convert_dttm`), compiled by SQLAlchemy's PostgreSQL dialect, in the shape of the
        query Superset sends for a chart (metric COUNT(*), series limit 10,000). Grains of
        several units (5 seconds, 15 minutes …) are Superset's `INTERVAL … * FLOOR(…)` forms."""
        from sqlalchemy.dialects import postgresql

        start = SUPERSET.convert_dttm("TIMESTAMP WITH TIME ZONE", datetime.datetime(2025, 1, 15))
        end = SUPERSET.convert_dttm("TIMESTAMP WITH TIME ZONE", datetime.datetime(2025, 3, 1))
        every = [g for g in SUPERSET.get_time_grain_expressions() if g is not None]
        assert len(every) >= 14, every
        grains = [g for g in every if ("*" in SUPERSET.get_time_grain_expressions()[g]) == multiple_of_a_unit]

        def run(url):
            answers = {}
            for grain in grains:
                expr = SUPERSET.get_timestamp_expr(sqlalchemy.column("event_time"), None, grain)
                expr = str(expr.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))
                sql = (
                    f"SELECT {expr} AS event_time, COUNT(*) AS count FROM public.events "
                    f"WHERE event_time >= {start} AND event_time < {end} "
                    f"GROUP BY {expr} ORDER BY count DESC LIMIT 10000"
                )
                answers[grain] = sorted(rows(url, sql))
            return answers

        return run

    @check
    def superset_time_series_chart_calendar_grains():
        return superset_time_series(False)

    @check
    def superset_time_series_chart_multiple_unit_grains():
        return superset_time_series(True)

    @check
    def superset_dataset_metadata():
        """What Superset reads when a dataset is added: schemas, tables, views, columns with
        the types it maps (the engine spec's column specs), primary key, indexes, and a
        virtual dataset's columns."""

        def run(url):
            e = engine(url)
            insp = inspect(e)
            columns = insp.get_columns("events", schema="public")
            generic = [str(SUPERSET.get_column_spec(str(c["type"])).generic_type) for c in columns]
            with e.connect() as conn:
                virtual = conn.execute(text("SELECT * FROM (SELECT event, count(*) FROM events GROUP BY event) AS virtual_table LIMIT 1"))
                virtual_columns = list(virtual.keys())
            return {
                "schemas": "public" in SUPERSET.get_schema_names(insp),
                "tables": sorted(SUPERSET.get_table_names(None, insp, "public")),
                "views": sorted(SUPERSET.get_view_names(None, insp, "public")),
                "columns": [(c["name"], str(c["type"])) for c in columns],
                "generic_types": generic,
                "pk": insp.get_pk_constraint("events", "public")["constrained_columns"],
                "indexes": insp.get_indexes("events", "public"),
                "virtual_columns": virtual_columns,
            }

        return run


# --- driver ---------------------------------------------------------------------------------


def load(northstar, postgres):
    """Copies `events` from Northstar into PostgreSQL with the column types Northstar
    advertises, and makes the same view on both."""
    with connect(northstar) as src, connect(postgres) as dst:
        columns = src.execute(
            "SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull FROM pg_attribute a "
            "JOIN pg_class c ON a.attrelid = c.oid WHERE c.relname = 'events' AND a.attnum > 0 ORDER BY a.attnum"
        ).fetchall()
        ddl = ", ".join(f'"{n}" {t}{" NOT NULL" if nn else ""}' for n, t, nn in columns)
        dst.execute("DROP TABLE IF EXISTS events CASCADE")
        dst.execute(f"CREATE TABLE events ({ddl})")
        with src.cursor().copy("COPY events TO STDOUT") as out, dst.cursor().copy("COPY events FROM STDIN") as into:
            for block in out:
                into.write(block)
        for conn in (src, dst):
            conn.execute("DROP VIEW IF EXISTS daily_counts")
            conn.execute("CREATE VIEW daily_counts AS SELECT event_date, count(*) AS events FROM events GROUP BY event_date")
        # The views Northstar derives from the events (persons, groups, group_members:
        # docs/identity.md) exist on PostgreSQL too, with the columns Northstar advertises, so
        # catalog listings compare like with like. Their rows are not compared.
        derived = src.execute(
            "SELECT viewname FROM pg_views WHERE schemaname = 'public' AND viewname <> 'daily_counts' ORDER BY 1"
        ).fetchall()
        for (name,) in derived:
            view_columns = src.execute(
                "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
                "JOIN pg_class c ON a.attrelid = c.oid WHERE c.relname = %s AND a.attnum > 0 ORDER BY a.attnum",
                (name,),
            ).fetchall()
            select = ", ".join(f'NULL::{t} AS "{n}"' for n, t in view_columns)
            dst.execute(f'DROP VIEW IF EXISTS "{name}"')
            dst.execute(f'CREATE VIEW "{name}" AS SELECT {select} WHERE false')
        n = dst.execute("SELECT count(*) FROM events").fetchone()[0]
        print(f"loaded {n} events into PostgreSQL")


def attempt(check, url):
    try:
        return True, check(url)
    except Exception as e:  # the failure is the finding; its text goes into the report
        return False, "".join(traceback.format_exception_only(type(e), e)).strip()


def run(northstar, postgres, only=None):
    report = {}
    for name, make in CHECKS.items():
        if only and name not in only:
            continue
        f = make()
        pg_ok, pg_answer = attempt(f, postgres)
        ns_ok, ns_answer = attempt(f, northstar)
        if not pg_ok:
            status = "broken"  # the check itself is wrong: PostgreSQL must pass it
        elif ns_ok and json.dumps(ns_answer, default=str) == json.dumps(pg_answer, default=str):
            status = "pass"
        else:
            status = "fail"
        known = name in KNOWN_GAPS
        entry = {"status": status, "postgres": pg_answer}
        if status != "pass":
            entry["northstar"] = ns_answer
        if known:
            entry["known_gap"] = KNOWN_GAPS[name]
        report[name] = entry
        print(f"{status:6} {'(known gap) ' if known else ''}{name}", flush=True)
    unexpected = [n for n, e in report.items() if e["status"] == "broken" or (e["status"] == "fail") != (n in KNOWN_GAPS)]
    for n in unexpected:
        print(f"\n{n}: {json.dumps(report[n], default=str)[:4000]}")
    passed = sum(e["status"] == "pass" for e in report.values())
    print(f"\n{passed} of {len(report)} checks pass on Northstar as on PostgreSQL; {len(KNOWN_GAPS)} known gaps")
    return not unexpected


if __name__ == "__main__":
    command, northstar, postgres, *only = sys.argv[1:]
    if command == "load":
        load(northstar, postgres)
    else:
        sys.exit(0 if run(northstar, postgres, set(only)) else 1)
