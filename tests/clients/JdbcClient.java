// What DBeaver, Metabase and Tableau do through pgjdbc: connect, list tables and columns via
// DatabaseMetaData, and run a prepared statement with a string and a timestamp parameter.
// Run by tests/it/server/clients.rs: java -cp postgresql.jar JdbcClient.java PORT
import java.sql.*;

public class JdbcClient {
    public static void main(String[] args) throws Exception {
        String url = "jdbc:postgresql://127.0.0.1:" + args[0] + "/northstar";
        try (Connection c = DriverManager.getConnection(url, "northstar", "")) {
            DatabaseMetaData meta = c.getMetaData();
            System.out.println("server " + meta.getDatabaseProductName() + " " + meta.getDatabaseProductVersion());
            boolean found = false;
            try (ResultSet rs = meta.getTables(null, "public", "%", new String[] {"TABLE", "VIEW"})) {
                while (rs.next()) found |= rs.getString("TABLE_NAME").equals("events");
            }
            if (!found) throw new AssertionError("getTables did not list events");
            int columns = 0;
            try (ResultSet rs = meta.getColumns(null, "public", "events", "%")) {
                while (rs.next()) {
                    columns++;
                    System.out.println("column " + rs.getString("COLUMN_NAME") + " " + rs.getString("TYPE_NAME"));
                }
            }
            if (columns < 6) throw new AssertionError("getColumns returned " + columns + " columns");
            try (PreparedStatement ps = c.prepareStatement("SELECT count(*) FROM events WHERE event = ? AND event_time >= ?")) {
                long total = 0;
                // pgjdbc switches to a named server-side statement after five executions.
                for (int i = 0; i < 7; i++) {
                    ps.setString(1, "purchase");
                    ps.setTimestamp(2, Timestamp.valueOf("2025-01-15 00:00:00"));
                    try (ResultSet rs = ps.executeQuery()) {
                        rs.next();
                        if (i > 0 && rs.getLong(1) != total) throw new AssertionError("unstable count");
                        total = rs.getLong(1);
                    }
                }
                if (total <= 0) throw new AssertionError("no purchases");
                System.out.println("prepared count " + total);
            }
        }
    }
}
