// DuckDB reading lake data files by field id, for test_ltap_schema.py: for
// each file, DuckDB's own parquet_schema() gives the field id of each of
// its columns; each wanted field (id, current name) is selected by its id
// under its current name, and is NULL where the file has no column with
// that id (added after the file was written). Values are cast to VARCHAR
// by DuckDB. Prints a JSON array of row objects.
//
//   node ltap_duckdb_ids.mjs '[[id, "name"], ...]' FILE...
import { DuckDBInstance } from '@duckdb/node-api';

const fields = JSON.parse(process.argv[2]);
const files = process.argv.slice(3);
const instance = await DuckDBInstance.create(':memory:');
const con = await instance.connect();
const lit = (s) => `'${s.replaceAll("'", "''")}'`;
const ident = (s) => `"${s.replaceAll('"', '""')}"`;
const out = [];
for (const f of files) {
    const byId = new Map((await con.runAndReadAll(`SELECT field_id, name FROM parquet_schema(${lit(f)})`))
        .getRowObjectsJson().filter((r) => r.field_id !== null).map((r) => [Number(r.field_id), r.name]));
    const sel = fields.map(([id, name]) => (byId.has(id)
        ? `${ident(byId.get(id))}::VARCHAR AS ${ident(name)}`
        : `NULL::VARCHAR AS ${ident(name)}`)).join(', ');
    out.push(...(await con.runAndReadAll(`SELECT ${sel} FROM read_parquet(${lit(f)})`)).getRowObjectsJson());
}
process.stdout.write(JSON.stringify(out) + '\n');
