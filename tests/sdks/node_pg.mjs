// What node-postgres (`pg`) and `pg-cursor` see: run by tests/clients/compat.py against
// PostgreSQL and against Northstar, printing one JSON document to compare.
// Usage: node node_pg.mjs postgresql://user@127.0.0.1:port/db
import pg from "pg";
import Cursor from "pg-cursor";

const client = new pg.Client({ connectionString: process.argv[2] });
await client.connect();
const seen = {};
const plain = (rows) => rows.map((r) => Object.fromEntries(Object.entries(r).map(([k, v]) => [k, v instanceof Date ? v.toISOString() : v])));
try {
  const counts = await client.query("SELECT event, count(*) FROM events GROUP BY event ORDER BY event");
  seen.counts = { fields: counts.fields.map((f) => [f.name, f.dataTypeID]), rows: plain(counts.rows), command: counts.command };
  const param = await client.query({
    name: "by-user",
    text: "SELECT user_id, event_time, event_date FROM events WHERE user_id = $1 AND event_time >= $2 ORDER BY event_time LIMIT 3",
    values: ["u0000010", new Date("2025-01-10T00:00:00Z")],
  });
  seen.prepared = plain(param.rows);
  const again = await client.query({ name: "by-user", values: ["u0000021", new Date("2025-01-01T00:00:00Z")] });
  seen.reused = plain(again.rows);
  seen.array_mode = (await client.query({ text: "SELECT user_id, count(*) FROM events GROUP BY user_id ORDER BY 2 DESC, 1 LIMIT 2", rowMode: "array" })).rows;
  await client.query("BEGIN");
  const cursor = client.query(new Cursor("SELECT user_id, event FROM events ORDER BY event_time, user_id"));
  const batches = [];
  for (const n of [3, 2, 4]) batches.push(plain(await cursor.read(n)));
  let total = 9;
  for (let rows = await cursor.read(1000); rows.length; rows = await cursor.read(1000)) total += rows.length;
  await cursor.close();
  await client.query("COMMIT");
  seen.cursor = { batches, total };
  try {
    await client.query("SELECT 1/0");
  } catch (e) {
    seen.error = e.code;
  }
  seen.after_error = (await client.query("SELECT count(*) AS n FROM events")).rows;
} finally {
  await client.end();
}
console.log(JSON.stringify(seen));
