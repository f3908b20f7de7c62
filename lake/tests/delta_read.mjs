// Replays a Delta table's log the way the Delta protocol tells a reader to,
// checks every action for the fields the protocol requires, and reads the
// live files' rows with DuckDB. For test_delta.c.
//
//   node delta_read.mjs TABLE_DIR
//
// prints one JSON object:
//   version   the last version (log entries must run 0, 1, ..., version)
//   protocol  the last protocol action; metaData the last metaData action
//             with schemaString parsed into "schema"
//   live      the live files after replay, sorted by path: {path, size,
//             stats (parsed, or null: the protocol makes them optional)}; a remove of a path that is not live, an
//             add of a path already live, two actions on one path in a
//             version, or an action missing a required field is an error
//   rows      every row of the live files, read by DuckDB read_parquet,
//             rendered as JSON arrays (bigint and decimal as strings) and
//             sorted
//   checked   for each live file, per top-level column with a min/max in
//             its stats: the stats' min/max/nullCount next to the
//             values DuckDB computes over the file
import { DuckDBInstance } from '@duckdb/node-api';
import fs from 'fs';
import path from 'path';

const dir = process.argv[2];
const logDir = path.join(dir, '_delta_log');

function fail(msg) {
    throw new Error(msg);
}

function need(obj, field, type, where) {
    const v = obj[field];
    const ok = type === 'array' ? Array.isArray(v) : type === 'object' ? v && typeof v === 'object' && !Array.isArray(v) : typeof v === type;
    if (!ok) fail(`${where}: "${field}" is required as ${type}, found ${JSON.stringify(v)}`);
    return v;
}

const names = fs.readdirSync(logDir).filter((n) => /^\d{20}\.json$/.test(n)).sort();
if (names.length === 0) fail('no log entries');
const live = new Map();
let protocol = null, metaData = null;
const out_commits = [];
names.forEach((name, i) => {
    const version = Number(name.slice(0, 20));
    if (version !== i) fail(`log entry ${name} where version ${i} was expected`);
    const lines = fs.readFileSync(path.join(logDir, name), 'utf8').split('\n').filter((l) => l.length);
    const seen = new Set();
    let metas = 0, commitInfos = 0;
    for (const line of lines) {
        const action = JSON.parse(line);
        const keys = Object.keys(action);
        if (keys.length !== 1) fail(`${name}: an action line holds ${keys.length} actions`);
        const kind = keys[0], a = action[kind];
        const where = `${name} ${kind}`;
        switch (kind) {
        case 'protocol': {
            const r = need(a, 'minReaderVersion', 'number', where);
            const w = need(a, 'minWriterVersion', 'number', where);
            if (r === 3) need(a, 'readerFeatures', 'array', where);
            if (w === 7) need(a, 'writerFeatures', 'array', where);
            protocol = a;
            break;
        }
        case 'metaData': {
            metas++;
            need(a, 'id', 'string', where);
            const format = need(a, 'format', 'object', where);
            need(format, 'provider', 'string', where + '.format');
            need(format, 'options', 'object', where + '.format');
            const schema = JSON.parse(need(a, 'schemaString', 'string', where));
            if (schema.type !== 'struct') fail(`${where}: schema is not a struct`);
            need(a, 'partitionColumns', 'array', where);
            need(a, 'configuration', 'object', where);
            if ('createdTime' in a) need(a, 'createdTime', 'number', where);
            metaData = { ...a, schema };
            break;
        }
        case 'add': {
            const p = need(a, 'path', 'string', where);
            need(a, 'partitionValues', 'object', where);
            need(a, 'size', 'number', where);
            need(a, 'modificationTime', 'number', where);
            need(a, 'dataChange', 'boolean', where);
            // stats are optional in the protocol; when present they must be complete
            const stats = 'stats' in a ? JSON.parse(need(a, 'stats', 'string', where)) : null;
            if (stats) need(stats, 'numRecords', 'number', where + '.stats');
            if (seen.has('add:' + p)) fail(`${where}: "${p}" added twice in one version`);
            seen.add('add:' + p);
            if (live.has(decodeURI(p))) fail(`${where}: "${p}" is already live`);
            live.set(decodeURI(p), { path: decodeURI(p), size: a.size, stats });
            break;
        }
        case 'remove': {
            const p = need(a, 'path', 'string', where);
            need(a, 'dataChange', 'boolean', where);
            if ('deletionTimestamp' in a) need(a, 'deletionTimestamp', 'number', where);
            if (seen.has('remove:' + p)) fail(`${where}: "${p}" removed twice in one version`);
            seen.add('remove:' + p);
            if (!live.delete(decodeURI(p))) fail(`${where}: "${p}" is not live`);
            break;
        }
        case 'commitInfo':
            commitInfos++;
            need(a, 'timestamp', 'number', where);
            need(a, 'operation', 'string', where);
            out_commits.push(a);
            break;
        default:
            fail(`${where}: unexpected action`);
        }
    }
    if (metas > 1) fail(`${name}: more than one metaData`);
    if (commitInfos !== 1) fail(`${name}: ${commitInfos} commitInfo actions`);
    if (version === 0 && (!protocol || !metaData)) fail('version 0 lacks protocol or metaData');
});

const files = [...live.values()].sort((a, b) => (a.path < b.path ? -1 : 1));
const out = { version: names.length - 1, protocol, metaData, live: files, rows: [], checked: [],
              lastCommit: out_commits[out_commits.length - 1] };

const instance = await DuckDBInstance.create(':memory:');
const con = await instance.connect();
const lit = (s) => `'${s.replaceAll("'", "''")}'`;
const json = (v) => JSON.stringify(v, (k, x) => (typeof x === 'bigint' ? x.toString() : x));
for (const f of files) {
    const file = path.join(dir, f.path);
    const rows = (await con.runAndReadAll(`SELECT * FROM read_parquet(${lit(file)})`)).getRowsJson();
    for (const r of rows) out.rows.push(json(r));
    if (!f.stats) continue;
    if (rows.length !== f.stats.numRecords) fail(`${f.path}: ${rows.length} rows, stats say ${f.stats.numRecords}`);
    for (const col of Object.keys(f.stats.minValues || {})) {
        if (typeof f.stats.minValues[col] === 'object') continue; // structs: nested
        const q = `SELECT min("${col}")::VARCHAR AS mn, max("${col}")::VARCHAR AS mx, count(*) - count("${col}") AS nulls FROM read_parquet(${lit(file)})`;
        const [r] = (await con.runAndReadAll(q)).getRowObjectsJson();
        out.checked.push({ path: f.path, column: col, stats_min: f.stats.minValues[col], stats_max: f.stats.maxValues[col],
                           stats_nulls: f.stats.nullCount[col], min: r.mn, max: r.mx, nulls: Number(r.nulls) });
    }
}
out.rows.sort();
process.stdout.write(JSON.stringify(out) + '\n');
