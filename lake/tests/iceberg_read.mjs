// Reads an Iceberg v2 table the way the table spec tells a reader to, for
// test_iceberg.c: newest metadata JSON -> current snapshot -> manifest list
// (avsc) -> manifests (avsc) -> live data files, then their rows (DuckDB).
// DuckDB's iceberg extension cannot be downloaded here, so this is our own
// reader; it resolves every manifest field by its field id, not by name.
//
//   node iceberg_read.mjs TABLE_DIR
//
// TABLE_DIR is the table's local directory; the table location must be
// file://TABLE_DIR. Prints one JSON object:
//   version, metadata       the newest vN.metadata.json (N checked against
//                           version-hint.text)
//   list_meta, manifest_meta   Avro header metadata of the manifest list
//                           and of the first manifest
//   list_fields, entry_fields  field id -> [name, Avro type] for every
//                           field of the manifest_file and manifest_entry
//                           schemas (nested records, arrays and maps too,
//                           with element-id / key and value field ids)
//   manifests               manifest_file records (by id, longs as strings)
//   entries                 every manifest entry after inheritance:
//                           {manifest, status, snapshot_id, sequence_number,
//                           file_sequence_number, path, record_count, ...}
//   live                    sorted relative paths of ADDED/EXISTING entries
//   rows                    all rows of the live files (JSON arrays), sorted
//   checks                  per live file and top-level primitive column:
//                           bounds and counts from the manifest against the
//                           values DuckDB computes over the file, with "ok"
// Spec violations found on the way (missing required fields, sequence
// numbers missing on EXISTING/DELETED entries, counts in the list that do
// not match the manifest, a path live twice, ...) are errors.
import avro from 'avsc';
import { DuckDBInstance } from '@duckdb/node-api';
import fs from 'fs';
import path from 'path';

const dir = process.argv[2];
const fail = (m) => { throw new Error(m); };

const longType = avro.types.LongType.__with({
    fromBuffer: (buf) => buf.readBigInt64LE(),
    toBuffer: (n) => { const b = Buffer.alloc(8); b.writeBigInt64LE(BigInt(n)); return b; },
    fromJSON: BigInt, toJSON: (n) => n.toString(),
    isValid: (n) => typeof n === 'bigint', compare: (a, b) => (a < b ? -1 : a > b ? 1 : 0),
});

function readAvro(file) {
    return new Promise((resolve, reject) => {
        const out = { meta: {}, records: [], schema: null };
        avro.createFileDecoder(file, { parseHook: (s) => avro.Type.forSchema(s, { registry: { long: longType } }) })
            .on('metadata', (_t, _c, header) => {
                for (const [k, v] of Object.entries(header.meta)) out.meta[k] = v.toString('utf8');
                out.schema = JSON.parse(out.meta['avro.schema']);
            })
            .on('data', (r) => out.records.push(r))
            .on('error', reject)
            .on('end', () => resolve(out));
    });
}

// id -> {name, type, path} for every field of a record schema, recursively.
function fieldIds(schema, into = {}, prefix = '') {
    const unwrap = (t) => (Array.isArray(t) ? t.find((x) => x !== 'null') : t);
    for (const f of schema.fields) {
        const id = f['field-id'];
        if (id === undefined) fail(`field ${prefix}${f.name} has no field-id`);
        if (into[id]) fail(`field id ${id} used twice`);
        into[id] = { name: f.name, path: prefix + f.name, optional: Array.isArray(f.type) && f.type.includes('null'), type: f.type };
        const t = unwrap(f.type);
        if (t && t.type === 'record') fieldIds(t, into, prefix + f.name + '.');
        if (t && t.type === 'array') {
            if (t['element-id'] !== undefined) into[t['element-id']] = { name: 'element', path: prefix + f.name + '[]', type: t.items };
            if (t.items && t.items.type === 'record') fieldIds(t.items, into, prefix + f.name + '[].');
        }
    }
    return into;
}

// Value of the field with a given id from a record whose schema is known.
function byId(schema, rec, id) {
    const f = schema.fields.find((x) => x['field-id'] === id);
    if (!f) fail(`no field with id ${id} in ${schema.name}`);
    return rec[f.name];
}

const mapOf = (entries) => new Map((entries || []).map((e) => [e.key, e.value]));
const str = (v) => (typeof v === 'bigint' ? v.toString() : v);

const mdir = path.join(dir, 'metadata');
const versions = fs.readdirSync(mdir).map((n) => /^v(\d+)\.metadata\.json$/.exec(n)).filter(Boolean).map((m) => Number(m[1])).sort((a, b) => a - b);
if (versions.length === 0) fail('no metadata');
// contiguous: versions before the oldest kept one may have been expired
versions.forEach((v, i) => { if (v !== versions[0] + i) fail(`metadata versions are not M..N: ${versions}`); });
const version = versions[versions.length - 1];
const hint = fs.readFileSync(path.join(mdir, 'version-hint.text'), 'utf8').trim();
if (Number(hint) !== version) fail(`version-hint.text says ${hint}, newest is ${version}`);
const md = JSON.parse(fs.readFileSync(path.join(mdir, `v${version}.metadata.json`), 'utf8'));

for (const [k, t] of [['format-version', 'number'], ['table-uuid', 'string'], ['location', 'string'], ['last-sequence-number', 'number'],
    ['last-updated-ms', 'number'], ['last-column-id', 'number'], ['schemas', 'object'], ['current-schema-id', 'number'],
    ['partition-specs', 'object'], ['default-spec-id', 'number'], ['last-partition-id', 'number'], ['sort-orders', 'object'],
    ['default-sort-order-id', 'number']]) {
    if (typeof md[k] !== t) fail(`metadata: required "${k}" missing or not a ${t}`);
}
if (md['format-version'] !== 2) fail('not format version 2');
const location = md.location;
if (!location.startsWith('file://') || path.resolve(location.slice(7)) !== path.resolve(dir)) fail(`location ${location} is not ${dir}`);
const local = (uri) => {
    if (!uri.startsWith(location + '/')) fail(`${uri} is outside the table`);
    return uri.slice(location.length + 1);
};
// every older version still there, in order (expiry drops the oldest)
if (md['metadata-log'].length !== version - versions[0]) fail(`metadata-log has ${md['metadata-log'].length} entries, want ${version - versions[0]}`);
md['metadata-log'].forEach((e, i) => {
    if (local(e['metadata-file']) !== `metadata/v${versions[0] + i}.metadata.json`) fail(`metadata-log entry ${i} is ${e['metadata-file']}`);
    if (typeof e['timestamp-ms'] !== 'number') fail('metadata-log entry without timestamp-ms');
});

const out = { version, metadata: md, manifests: [], entries: [], live: [], rows: [], checks: [] };
const snapId = md['current-snapshot-id'];
if (snapId === -1 || snapId === undefined || snapId === null) {
    process.stdout.write(JSON.stringify(out) + '\n');
    process.exit(0);
}
// the snapshot ids are > 2^53: take them from the text to keep them exact
const text = fs.readFileSync(path.join(mdir, `v${version}.metadata.json`), 'utf8');
const snapIdText = /"current-snapshot-id"\s*:\s*(-?\d+)/.exec(text)[1];
const snaps = md.snapshots;
const snap = snaps.find((s) => s['snapshot-id'] === snapId);
if (!snap) fail('current snapshot not in snapshots');
for (const s of snaps) {
    for (const k of ['snapshot-id', 'sequence-number', 'timestamp-ms', 'manifest-list', 'summary']) if (s[k] === undefined) fail(`snapshot without ${k}`);
    if (!s.summary.operation) fail('snapshot summary without operation');
    if (s['sequence-number'] > md['last-sequence-number']) fail('snapshot sequence number past last-sequence-number');
    if (s['parent-snapshot-id'] !== undefined) {
        const p = snaps.find((x) => x['snapshot-id'] === s['parent-snapshot-id']);
        if (p && p['sequence-number'] >= s['sequence-number']) fail('sequence numbers do not increase');
    }
}
if (!md.refs || !md.refs.main || md.refs.main['snapshot-id'] !== snapId || md.refs.main.type !== 'branch') fail('refs.main is not the current snapshot');
if (md['snapshot-log'].length !== snaps.length) fail('snapshot-log does not list every snapshot');

const list = await readAvro(path.join(dir, local(snap['manifest-list'])));
out.list_meta = list.meta;
out.list_fields = Object.fromEntries(Object.entries(fieldIds(list.schema)).map(([id, f]) => [id, [f.path, f.type]]));
if (list.meta['snapshot-id'] !== snapIdText) fail(`manifest list snapshot-id ${list.meta['snapshot-id']}, want ${snapIdText}`);
if (list.meta['sequence-number'] !== String(snap['sequence-number'])) fail('manifest list sequence-number differs from the snapshot');
const ls = list.schema;
const seen = new Map();
const instance = await DuckDBInstance.create(':memory:');
const con = await instance.connect();

for (const mf of list.records) {
    const m = {};
    for (const id of [500, 501, 502, 517, 515, 516, 503, 504, 505, 506, 512, 513, 514, 507, 519]) m[id] = str(byId(ls, mf, id));
    out.manifests.push(m);
    const mpath = path.join(dir, local(m[500]));
    if (BigInt(fs.statSync(mpath).size) !== BigInt(m[501])) fail(`manifest_length of ${m[500]} is ${m[501]}, file has ${fs.statSync(mpath).size}`);
    const man = await readAvro(mpath);
    if (!out.manifest_meta) {
        out.manifest_meta = man.meta;
        out.entry_fields = Object.fromEntries(Object.entries(fieldIds(man.schema)).map(([id, f]) => [id, [f.path, f.type]]));
    }
    const es = man.schema;
    const dfSchema = es.fields.find((f) => f['field-id'] === 2).type;
    const counts = { 0: [0, 0n], 1: [0, 0n], 2: [0, 0n] };
    for (const e of man.records) {
        const status = byId(es, e, 0);
        let snapshotId = byId(es, e, 1), seq = byId(es, e, 3), fseq = byId(es, e, 4);
        const df = byId(es, e, 2);
        if (status === 1) {
            // spec: inherited when null and the entry is ADDED
            if (snapshotId === null) snapshotId = BigInt(m[503]);
            if (seq === null) seq = BigInt(m[515]);
            if (fseq === null) fseq = BigInt(m[515]);
            if (snapshotId.toString() !== m[503]) fail(`ADDED entry of ${m[500]} has snapshot ${snapshotId}, the manifest was added by ${m[503]}`);
        } else if (seq === null || fseq === null || snapshotId === null) {
            fail(`${status === 0 ? 'EXISTING' : 'DELETED'} entry without explicit snapshot id and sequence numbers in ${m[500]}`);
        }
        const rec = Number(byId(dfSchema, df, 103));
        counts[status][0]++;
        counts[status][1] += BigInt(rec);
        const p = local(byId(dfSchema, df, 100));
        const entry = {
            manifest: local(m[500]), status, snapshot_id: str(snapshotId), sequence_number: str(seq), file_sequence_number: str(fseq),
            content: byId(dfSchema, df, 134), path: p, file_format: byId(dfSchema, df, 101), record_count: rec,
            file_size_in_bytes: Number(byId(dfSchema, df, 104)), split_offsets: (byId(dfSchema, df, 132) || []).map(str),
            sort_order_id: byId(dfSchema, df, 140),
        };
        out.entries.push(entry);
        if (status !== 2) {
            if (BigInt(seq) < BigInt(m[516])) fail(`live entry ${p} has sequence number ${seq} below min_sequence_number ${m[516]}`);
            if (seen.has(p)) fail(`${p} is live twice`);
            seen.set(p, { entry, df, dfSchema });
        }
    }
    const want = [[504, 512, 1], [505, 513, 0], [506, 514, 2]];
    for (const [fc, rc, st] of want) {
        if (Number(m[fc]) !== counts[st][0] || BigInt(m[rc]) !== counts[st][1]) fail(`manifest list counts of ${m[500]} do not match its entries (status ${st})`);
    }
}

// Bounds and counts against the data.
const schema = md.schemas.find((s) => s['schema-id'] === md['current-schema-id']);
const lit = (s) => `'${s.replaceAll("'", "''")}'`;
function decode(type, buf) {
    if (type === 'int') return String(buf.readInt32LE(0));
    if (type === 'date') return String(buf.readInt32LE(0));
    if (type === 'long' || type === 'timestamp' || type === 'timestamptz' || type === 'time') return buf.readBigInt64LE(0).toString();
    if (type === 'double') return String(buf.readDoubleLE(0));
    if (type === 'float') return String(buf.readFloatLE(0));
    if (type === 'boolean') return buf[0] ? '1' : '0';
    if (type === 'string') return buf.toString('utf8');
    if (type.startsWith('decimal')) {
        let v = 0n;
        for (const b of buf) v = (v << 8n) | BigInt(b);
        if (buf.length && buf[0] & 0x80) v -= 1n << BigInt(8 * buf.length);
        return v.toString();
    }
    return null;
}
function sqlOf(type, col) {
    const c = `"${col}"`;
    if (type === 'date') return [`(min(${c}) - DATE '1970-01-01')::VARCHAR`, `(max(${c}) - DATE '1970-01-01')::VARCHAR`];
    if (type === 'timestamp' || type === 'timestamptz') return [`epoch_us(min(${c}))::VARCHAR`, `epoch_us(max(${c}))::VARCHAR`];
    if (type.startsWith('decimal')) return [`replace(min(${c})::VARCHAR, '.', '')`, `replace(max(${c})::VARCHAR, '.', '')`];
    if (type === 'boolean') return [`min(${c}::INT)::VARCHAR`, `max(${c}::INT)::VARCHAR`];
    if (type === 'double' || type === 'float') return [`min(${c})::DOUBLE::VARCHAR`, `max(${c})::DOUBLE::VARCHAR`];
    return [`min(${c})::VARCHAR`, `max(${c})::VARCHAR`];
}
const live = [...seen.keys()].sort();
out.live = live;
for (const p of live) {
    const { df, dfSchema } = seen.get(p);
    const file = path.join(dir, p);
    if (fs.statSync(file).size !== Number(byId(dfSchema, df, 104))) fail(`${p}: file_size_in_bytes is not the file's size`);
    const rows = (await con.runAndReadAll(`SELECT * FROM read_parquet(${lit(file)})`)).getRowsJson();
    if (rows.length !== Number(byId(dfSchema, df, 103))) fail(`${p}: record_count is not the file's row count`);
    for (const r of rows) out.rows.push(JSON.stringify(r));
    const lower = mapOf(byId(dfSchema, df, 125)), upper = mapOf(byId(dfSchema, df, 128));
    const values = mapOf(byId(dfSchema, df, 109)), nulls = mapOf(byId(dfSchema, df, 110));
    // columns by field id (spec "Column Projection"): a file written under
    // an older schema names a renamed column by its old name
    const named = new Map((await con.runAndReadAll(`SELECT field_id, name FROM parquet_schema(${lit(file)})`))
        .getRowObjectsJson().filter((x) => x.field_id !== null).map((x) => [Number(x.field_id), x.name]));
    for (const f of schema.fields) {
        if (typeof f.type !== 'string' || f.type === 'binary' || f.type === 'uuid' || f.type.startsWith('fixed')) continue;
        if (!named.has(f.id)) continue; // added after the file was written: NULL in it
        const col = named.get(f.id);
        const [qmin, qmax] = sqlOf(f.type, col);
        const [r] = (await con.runAndReadAll(`SELECT ${qmin} AS mn, ${qmax} AS mx, count(*) AS n, count(*) - count("${col}") AS nulls FROM read_parquet(${lit(file)})`)).getRowObjectsJson();
        const lo = lower.get(f.id), hi = upper.get(f.id);
        const check = {
            path: p, column: f.name, id: f.id, type: f.type,
            lower: lo ? decode(f.type, lo) : null, upper: hi ? decode(f.type, hi) : null, min: r.mn, max: r.mx,
            value_count: values.has(f.id) ? values.get(f.id).toString() : null, rows: String(r.n),
            null_count: nulls.has(f.id) ? nulls.get(f.id).toString() : null, nulls: String(r.nulls),
        };
        const num = (x) => (f.type === 'double' || f.type === 'float' ? Number(x) : x);
        check.ok = check.value_count === check.rows && check.null_count === check.nulls &&
            (r.mn === null ? lo === undefined : num(check.lower) === num(r.mn) && num(check.upper) === num(r.mx));
        out.checks.push(check);
    }
}
out.rows.sort();
process.stdout.write(JSON.stringify(out, (k, v) => (typeof v === 'bigint' ? v.toString() : v)) + '\n');
