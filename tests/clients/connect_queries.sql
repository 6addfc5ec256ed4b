-- Connect-time and schema-browser queries of Grafana's PostgreSQL data source and Metabase's
-- PostgreSQL driver (as they send them; see docs/clients.md). Each statement ends with ';' on
-- its own line end; tests/it/server/clients.rs runs every one over the extended protocol.
-- grafana: version check
SELECT current_setting('server_version_num')::int/100 AS version;
-- grafana: timescaledb check
SELECT extname FROM pg_catalog.pg_extension WHERE extname = 'timescaledb';
-- grafana: search path
SELECT current_setting('search_path');
-- grafana: schemas
SELECT quote_ident(schema_name) AS "schema" FROM information_schema.schemata WHERE schema_name NOT IN ('information_schema', 'pg_catalog') AND schema_name NOT LIKE 'pg_%' ORDER BY schema_name;
-- grafana: tables
SELECT quote_ident(table_name) AS "table" FROM information_schema.tables WHERE quote_ident(table_schema) NOT IN ('information_schema', 'pg_catalog', '_timescaledb_cache', '_timescaledb_catalog', '_timescaledb_internal', '_timescaledb_config', 'timescaledb_information', 'timescaledb_experimental') AND table_type = 'BASE TABLE' ORDER BY table_name;
-- grafana: columns
SELECT quote_ident(column_name) AS "column", data_type AS "type" FROM information_schema.columns WHERE quote_ident(table_name) = 'events' ORDER BY ordinal_position;
-- grafana: time column candidates
SELECT quote_ident(column_name) AS "column" FROM information_schema.columns WHERE quote_ident(table_schema) = 'public' AND quote_ident(table_name) = 'events' AND data_type IN ('timestamp without time zone', 'timestamp with time zone', 'bigint', 'integer', 'double precision', 'real');
-- grafana: a time-series panel
SELECT date_trunc('day', event_time) AS "time", count(*) AS "events" FROM events WHERE event_time BETWEEN '2025-01-01T00:00:00Z' AND '2025-02-01T00:00:00Z' GROUP BY 1 ORDER BY 1;
-- metabase: session setup
SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL READ COMMITTED;
-- metabase: isolation
SHOW TRANSACTION ISOLATION LEVEL;
-- metabase: timezone
SHOW timezone;
-- metabase: current schema
SELECT current_schemas(true)[1];
-- metabase: schemas
SELECT nspname FROM pg_catalog.pg_namespace WHERE nspname NOT IN ('information_schema', 'pg_catalog') AND nspname NOT LIKE 'pg_toast%' ORDER BY nspname;
-- metabase: tables with descriptions and row estimates
SELECT n.nspname AS schema, c.relname AS name, CASE c.relkind WHEN 'r' THEN 'TABLE' WHEN 'p' THEN 'PARTITIONED TABLE' WHEN 'v' THEN 'VIEW' WHEN 'f' THEN 'FOREIGN TABLE' WHEN 'm' THEN 'MATERIALIZED VIEW' ELSE NULL END AS type, d.description AS description, stat.n_live_tup AS estimated_row_count FROM pg_catalog.pg_class c INNER JOIN pg_catalog.pg_namespace n ON c.relnamespace = n.oid LEFT JOIN pg_catalog.pg_description d ON c.oid = d.objoid AND d.objsubid = 0 AND d.classoid = 'pg_class'::regclass LEFT JOIN pg_stat_user_tables stat ON n.nspname = stat.schemaname AND c.relname = stat.relname WHERE c.relnamespace = n.oid AND c.relkind IN ('r', 'p', 'v', 'f', 'm') AND n.nspname !~ '^information_schema$' AND n.nspname !~ '^pg_' ORDER BY type, schema, name;
-- metabase: privileges
SELECT schemaname AS schema, tablename AS table, has_table_privilege(quote_ident(schemaname) || '.' || quote_ident(tablename), 'SELECT') AS select FROM pg_catalog.pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema') UNION ALL SELECT schemaname, viewname, has_table_privilege(quote_ident(schemaname) || '.' || quote_ident(viewname), 'SELECT') FROM pg_catalog.pg_views WHERE schemaname NOT IN ('pg_catalog', 'information_schema');
-- metabase: column descriptions
SELECT c.relname, a.attname, col_description(c.oid, a.attnum) AS description FROM pg_catalog.pg_class c JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid WHERE c.relname = 'events' AND a.attnum > 0;
