// DuckDB reading lake data files, for test_ltap.py: every row of the given
// Parquet files (read_parquet over all of them), each column cast to
// VARCHAR by DuckDB itself (timestamps as epoch microseconds). Prints a JSON array of row objects.
//
//   node ltap_duckdb.mjs FILE...
import { DuckDBInstance } from '@duckdb/node-api';

const files = process.argv.slice(2);
const instance = await DuckDBInstance.create(':memory:');
const con = await instance.connect();
await con.run("SET TimeZone = 'UTC'");
const list = '[' + files.map((f) => `'${f.replaceAll("'", "''")}'`).join(', ') + ']';
const cols = (await con.runAndReadAll(`DESCRIBE SELECT * FROM read_parquet(${list})`)).getRowObjectsJson();
// timestamps as microseconds since the epoch, everything else as DuckDB's text
const sel = cols.map((c) => (c.column_type.startsWith('TIMESTAMP')
    ? `epoch_us("${c.column_name}")::VARCHAR AS "${c.column_name}"`
    : `"${c.column_name}"::VARCHAR AS "${c.column_name}"`)).join(', ');
const rows = (await con.runAndReadAll(`SELECT ${sel} FROM read_parquet(${list})`)).getRowObjectsJson();
process.stdout.write(JSON.stringify(rows) + '\n');
