// DuckDB's side of the lake_write benchmark (see bench/lake_write.c for the table).
//
//   node lake_write_duckdb.mjs serve CSV OUT  load CSV (the output of `lake_write csv`) into an
//                                             in-memory table, untimed, and print one JSON
//                                             line: rows, input_bytes. Then for each line
//                                             "copy" on stdin, time only
//                                             COPY t TO OUT (FORMAT parquet, COMPRESSION zstd)
//                                             and print one JSON line: seconds, cpu_seconds,
//                                             file_bytes, row_groups. Exits at end of input.
//   node lake_write_duckdb.mjs check FILE...  one JSON line: per file, rows, a hash of every
//                                             value, the column types, and each column's
//                                             compressed bytes and encodings
//
// Everything runs with SET threads=1. input_bytes is the sum of the values' natural binary
// sizes as defined in lake_write.c, computed here over the loaded table, so that the caller
// can check that both writers got the same data.
import { DuckDBInstance } from '@duckdb/node-api';
import { statSync } from 'node:fs';
import { createInterface } from 'node:readline';

const COLUMNS = [
    ['id', 'BIGINT'], ['customer', 'INTEGER'], ['price', 'DOUBLE'], ['amount', 'DECIMAL(18,2)'],
    ['day', 'DATE'], ['ts', 'TIMESTAMP'], ['status', 'VARCHAR'], ['comment', 'VARCHAR'],
    ['discount', 'INTEGER'], ['flag', 'BOOLEAN'],
];
const NULLABLE = new Set(['discount']);

const lit = (s) => `'${s.replaceAll("'", "''")}'`;
const names = COLUMNS.map(([n]) => n).join(', ');
const print = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');

const [mode, ...args] = process.argv.slice(2);
const instance = await DuckDBInstance.create(':memory:');
const con = await instance.connect();
await con.run('SET threads=1');
const one = async (sql) => (await con.runAndReadAll(sql)).getRowObjectsJson()[0];

if (mode === 'serve' && args.length === 2) {
    const [csv, out] = args;
    const defs = COLUMNS.map(([n, t]) => `${n} ${t}${NULLABLE.has(n) ? '' : ' NOT NULL'}`);
    await con.run(`CREATE TABLE t (${defs.join(', ')})`);
    const spec = '{' + COLUMNS.map(([n, t]) => `'${n}': '${t}'`).join(', ') + '}';
    await con.run(`INSERT INTO t SELECT * FROM read_csv(${lit(csv)}, columns = ${spec},
                   header = false, delim = ',', quote = '"', escape = '"', auto_detect = false)`);
    const loaded = await one(`SELECT count(*) AS rows,
        sum(8 + 4 + 8 + 8 + 4 + 8 + strlen(status) + strlen(comment)
            + CASE WHEN discount IS NULL THEN 0 ELSE 4 END + 1) AS input_bytes FROM t`);
    print({ rows: Number(loaded.rows), input_bytes: Number(loaded.input_bytes) });
    for await (const line of createInterface({ input: process.stdin })) {
        if (line.trim() !== 'copy')
            throw new Error(`unknown command "${line}"`);
        const cpu0 = process.cpuUsage();
        const t0 = performance.now();
        await con.run(`COPY t TO ${lit(out)} (FORMAT parquet, COMPRESSION zstd)`);
        const seconds = (performance.now() - t0) / 1000;
        const cpu = process.cpuUsage(cpu0);
        const meta = await one(`SELECT num_row_groups FROM parquet_file_metadata(${lit(out)})`);
        print({
            seconds, cpu_seconds: (cpu.user + cpu.system) / 1e6, file_bytes: statSync(out).size,
            row_groups: Number(meta.num_row_groups),
        });
    }
} else if (mode === 'check' && args.length >= 1) {
    const files = [];
    for (const file of args) {
        const f = lit(file);
        const content = await one(`SELECT count(*) AS rows,
            sum(hash(${names})::HUGEINT)::VARCHAR AS hash FROM read_parquet(${f})`);
        const cols = (await con.runAndReadAll(`SELECT path_in_schema AS col,
                sum(total_compressed_size) AS bytes,
                string_agg(DISTINCT encodings, ' ') AS encodings
            FROM parquet_metadata(${f}) GROUP BY col ORDER BY min(column_id)`)).getRowObjectsJson();
        const types = (await con.runAndReadAll(`DESCRIBE SELECT * FROM read_parquet(${f})`))
            .getRowObjectsJson().map((r) => r.column_type);
        files.push({
            file, rows: Number(content.rows), hash: content.hash, types,
            columns: Object.fromEntries(cols.map((c) => [c.col, {
                bytes: Number(c.bytes), encodings: c.encodings }])),
        });
    }
    print(files);
} else {
    process.stderr.write('usage: lake_write_duckdb.mjs serve CSV OUT | check FILE...\n');
    process.exit(2);
}
