// What DBeaver and Metabase ask pgjdbc when they sync a database and run a question: the
// DatabaseMetaData calls of their schema sync (schemas, tables and views, columns, primary and
// foreign keys, indexes, types), a native query's result metadata, a prepared statement that
// pgjdbc turns into a named server-side statement, and a large result read with a fetch size
// and autocommit off (pgjdbc then reads it through a portal, `fetchSize` rows per Execute).
// Prints one line per row, `call<TAB>value<TAB>…`; compat.py runs it against PostgreSQL and
// Northstar and compares the lines.
//   java -cp /usr/share/java/postgresql.jar JdbcMetadata.java HOST PORT USER DATABASE
import java.sql.*;
import java.util.*;

public class JdbcMetadata {
    interface Call {
        ResultSet run() throws SQLException;
    }

    /** Prints the rows of one metadata call, sorted; a failing call prints its SQLSTATE. */
    static void print(String call, Call results, String... columns) {
        try {
            printRows(call, results.run(), columns);
        } catch (SQLException e) {
            System.out.println(call + "\tERROR " + e.getSQLState() + " " + e.getMessage().split("\n")[0]);
        }
    }

    static void printRows(String call, ResultSet rs, String... columns) throws SQLException {
        List<String> lines = new ArrayList<>();
        while (rs.next()) {
            StringBuilder line = new StringBuilder(call);
            for (String column : columns) line.append('\t').append(rs.getString(column));
            lines.add(line.toString());
        }
        rs.close();
        Collections.sort(lines);
        if (lines.isEmpty()) lines.add(call + "\t(no rows)");
        lines.forEach(System.out::println);
    }

    public static void main(String[] args) throws Exception {
        String url = "jdbc:postgresql://" + args[0] + ":" + args[1] + "/" + args[3];
        try (Connection c = DriverManager.getConnection(url, args[2], "")) {
            DatabaseMetaData meta = c.getMetaData();
            System.out.println("product\t" + meta.getDatabaseProductName());
            print("getSchemas", () -> meta.getSchemas(), "TABLE_SCHEM");
            print("getTables", () -> meta.getTables(null, "public", "%",
                new String[] {"TABLE", "PARTITIONED TABLE", "VIEW", "FOREIGN TABLE", "MATERIALIZED VIEW"}),
                "TABLE_SCHEM", "TABLE_NAME", "TABLE_TYPE");
            for (String table : new String[] {"events", "daily_counts"}) {
                print("getColumns " + table, () -> meta.getColumns(null, "public", table, "%"),
                    "ORDINAL_POSITION", "COLUMN_NAME", "DATA_TYPE", "TYPE_NAME", "COLUMN_SIZE", "DECIMAL_DIGITS",
                    "NULLABLE", "IS_NULLABLE", "IS_AUTOINCREMENT", "IS_GENERATEDCOLUMN");
            }
            print("getPrimaryKeys", () -> meta.getPrimaryKeys(null, "public", "events"), "COLUMN_NAME", "PK_NAME");
            print("getImportedKeys", () -> meta.getImportedKeys(null, "public", "events"), "PKTABLE_NAME", "FKCOLUMN_NAME");
            print("getExportedKeys", () -> meta.getExportedKeys(null, "public", "events"), "FKTABLE_NAME", "FKCOLUMN_NAME");
            print("getIndexInfo", () -> meta.getIndexInfo(null, "public", "events", false, true), "INDEX_NAME", "COLUMN_NAME");
            List<String> common = Arrays.asList("bool", "int2", "int4", "int8", "float4", "float8", "numeric", "text",
                "varchar", "date", "timestamp", "timestamptz", "interval", "bytea", "json", "jsonb");
            List<String> types = new ArrayList<>();
            try (ResultSet rs = meta.getTypeInfo()) {
                // (the common types only: PostgreSQL has hundreds)
                while (rs.next()) {
                    if (common.contains(rs.getString("TYPE_NAME"))) {
                        types.add("getTypeInfo\t" + rs.getString("TYPE_NAME") + "\t" + rs.getInt("DATA_TYPE") + "\t"
                            + rs.getInt("NULLABLE") + "\t" + rs.getBoolean("CASE_SENSITIVE") + "\t"
                            + rs.getShort("SEARCHABLE") + "\t" + rs.getBoolean("UNSIGNED_ATTRIBUTE"));
                    }
                }
            } catch (SQLException e) {
                types.add("getTypeInfo\tERROR " + e.getSQLState() + " " + e.getMessage().split("\n")[0]);
            }
            Collections.sort(types);
            types.forEach(System.out::println);

            try (Statement st = c.createStatement();
                 ResultSet rs = st.executeQuery(
                     "SELECT event, count(*) AS n, min(event_time) AS first_seen FROM events GROUP BY event ORDER BY event")) {
                ResultSetMetaData md = rs.getMetaData();
                for (int i = 1; i <= md.getColumnCount(); i++) {
                    System.out.println("resultMetaData\t" + md.getColumnLabel(i) + "\t" + md.getColumnType(i) + "\t"
                        + md.getColumnTypeName(i) + "\t" + md.getColumnClassName(i));
                }
                while (rs.next()) System.out.println("row\t" + rs.getString(1) + "\t" + rs.getLong(2));
            }

            // pgjdbc switches to a named server-side statement after five executions.
            try (PreparedStatement ps = c.prepareStatement("SELECT count(*) FROM events WHERE event = ? AND event_time >= ?")) {
                Set<Long> counts = new TreeSet<>();
                for (int i = 0; i < 7; i++) {
                    ps.setString(1, "purchase");
                    ps.setTimestamp(2, Timestamp.valueOf("2025-01-15 00:00:00"));
                    try (ResultSet rs = ps.executeQuery()) {
                        rs.next();
                        counts.add(rs.getLong(1));
                    }
                }
                System.out.println("prepared\t" + counts);
            }

            c.setAutoCommit(false);
            try (Statement st = c.createStatement()) {
                st.setFetchSize(100);
                try (ResultSet rs = st.executeQuery(
                         "SELECT user_id, event, event_time FROM events ORDER BY event_time, user_id, event")) {
                    long rows = 0;
                    String first = null, last = null;
                    while (rs.next()) {
                        rows++;
                        last = rs.getString(1) + " " + rs.getString(2);
                        if (first == null) first = last;
                    }
                    System.out.println("fetchSize\t" + rows + "\t" + first + "\t" + last);
                }
            }
            c.commit();
        }
    }
}
