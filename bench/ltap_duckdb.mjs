// The DuckDB side of bench/ltap: load a CSV export of a PostgreSQL table
// (untimed), then time COPY t TO 'x.parquet' (FORMAT parquet, COMPRESSION
// zstd) with one thread. Prints {"seconds": ..., "bytes": ..., "rows": ...}.
//
//   node ltap_duckdb.mjs CSV OUT.parquet
import { DuckDBInstance } from '@duckdb/node-api';
import fs from 'fs';

const [csv, out] = process.argv.slice(2);
const instance = await DuckDBInstance.create(':memory:', { threads: '1' });
const con = await instance.connect();
const lit = (s) => `'${s.replaceAll("'", "''")}'`;
await con.run(`CREATE TABLE t AS SELECT * FROM read_csv(${lit(csv)}, header = true)`);
const t0 = process.hrtime.bigint();
await con.run(`COPY t TO ${lit(out)} (FORMAT parquet, COMPRESSION zstd)`);
const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
const [r] = (await con.runAndReadAll('SELECT count(*)::BIGINT AS n FROM t')).getRowObjectsJson();
process.stdout.write(JSON.stringify({ seconds, bytes: fs.statSync(out).size, rows: Number(r.n) }) + '\n');
