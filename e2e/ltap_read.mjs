// Reads one lake table the way an engine would, for test_ltap*.py: the live
// data files from the Iceberg metadata (newest vN.metadata.json -> current
// snapshot -> manifest list -> manifests, with avsc) or from the Delta log
// (replayed adds and removes), then every row of those files with
// parquet-wasm into Apache Arrow.
//
//   node ltap_read.mjs iceberg|delta TABLE_DIR
//
// Columns are projected by field id onto the table's current schema, as
// the formats prescribe (Iceberg "Column Projection"; Delta column mapping
// by id): a file written under an older schema gives a renamed column under
// its new name, a column added since as NULL, and a dropped one not at all;
// struct fields likewise.
//
// Prints one JSON object: files (sorted relative paths; absolute for files
// of another table that this one shares), summary (the
// Iceberg snapshot summary, or the last Delta commitInfo.lakebase),
// fields (name -> field id, of the current schema), schema (the current
// schema as the format states it) and rows, each an object by column name with exact
// values: integers, dates, times and timestamps as decimal strings, floats
// as their IEEE bits ("f:xxxxxxxx", "d:xxxxxxxxxxxxxxxx"), decimals as the
// unscaled integer, strings as strings, binary as hex, lists as arrays,
// structs as objects, NULL as null.
import avro from 'avsc';
import { tableFromIPC, Type } from 'apache-arrow';
import fs from 'fs';
import path from 'path';
import { readParquet } from 'parquet-wasm';

const [format, dir] = process.argv.slice(2);
const fail = (m) => { throw new Error(m); };

// longs as BigInt: snapshot ids pass 2^53
const longType = avro.types.LongType.__with({
    fromBuffer: (buf) => buf.readBigInt64LE(),
    toBuffer: (n) => { const b = Buffer.alloc(8); b.writeBigInt64LE(BigInt(n)); return b; },
    fromJSON: BigInt, toJSON: (n) => n.toString(),
    isValid: (n) => typeof n === 'bigint', compare: (a, b) => (a < b ? -1 : a > b ? 1 : 0),
});

function readAvro(file) {
    return new Promise((resolve, reject) => {
        const recs = [];
        avro.createFileDecoder(file, { parseHook: (s) => avro.Type.forSchema(s, { registry: { long: longType } }) }).on('data', (r) => recs.push(r)).on('error', reject).on('end', () => resolve(recs));
    });
}

async function icebergFiles() {
    const mdir = path.join(dir, 'metadata');
    const versions = fs.readdirSync(mdir).map((n) => /^v(\d+)\.metadata\.json$/.exec(n)).filter(Boolean).map((m) => Number(m[1]));
    if (!versions.length) fail('no metadata');
    const md = JSON.parse(fs.readFileSync(path.join(mdir, `v${Math.max(...versions)}.metadata.json`), 'utf8'));
    const cur = md.schemas.find((x) => x['schema-id'] === md['current-schema-id']);
    if (!cur) fail('no current schema');
    const schema = norm('iceberg', cur);
    const snap = (md.snapshots || []).find((s) => s['snapshot-id'] === md['current-snapshot-id']);
    if (!snap) return { files: [], summary: {}, schema, raw: cur };
    const local = (uri) => {
        if (!uri.startsWith(md.location + '/')) fail(`${uri} is outside ${md.location}`);
        return uri.slice(md.location.length + 1);
    };
    // a data file another table owns (a partitioned parent's leaf file, a
    // branch's file of its parent): its absolute location, as a local path
    const data = (uri) => (uri.startsWith(md.location + '/') ? local(uri)
        : uri.startsWith('file:///') ? uri.slice('file://'.length) : fail(`${uri} is not a local file`));
    const files = [];
    for (const mf of await readAvro(path.join(dir, local(snap['manifest-list'])))) {
        for (const e of await readAvro(path.join(dir, local(mf.manifest_path)))) {
            if (e.status !== 2) files.push(data(e.data_file.file_path));
        }
    }
    return { files: files.sort(), summary: snap.summary, schema, raw: cur };
}

// A schema type in one shape for both formats: {kind: 'struct', fields:
// [{id, name, type}]}, {kind: 'list', element}, or {kind: 'primitive'}.
function norm(fmt, t) {
    if (typeof t === 'string') return { kind: 'primitive' };
    if (t.type === 'struct') {
        return {
            kind: 'struct',
            fields: t.fields.map((f) => ({
                id: fmt === 'iceberg' ? f.id : (f.metadata || {})['delta.columnMapping.id'],
                name: f.name, type: norm(fmt, f.type),
            })),
        };
    }
    if (t.type === 'list') return { kind: 'list', element: norm(fmt, t.element) };
    if (t.type === 'array') return { kind: 'list', element: norm(fmt, t.elementType) };
    fail(`unknown type ${JSON.stringify(t)}`);
}

const fieldId = (f) => (f.metadata.has('PARQUET:field_id') ? Number(f.metadata.get('PARQUET:field_id')) : undefined);

// The value at row i projected onto schema type sch: struct fields by id.
function project(data, i, sch) {
    if (!data.getValid(i)) return null;
    if (sch.kind === 'struct' && data.type.typeId === Type.Struct) {
        const obj = {};
        for (const f of sch.fields) {
            const k = data.type.children.findIndex((c) => fieldId(c) === f.id);
            obj[f.name] = k < 0 ? null : project(data.children[k], i, f.type);
        }
        return obj;
    }
    if (sch.kind === 'list' && (data.type.typeId === Type.List || data.type.typeId === Type.LargeList)) {
        const o = data.valueOffsets, j = data.offset + i;
        const items = [];
        for (let k = Number(o[j]); k < Number(o[j + 1]); k++) items.push(project(data.children[0], k, sch.element));
        return items;
    }
    return cell(data, i);
}

function deltaFiles() {
    const logDir = path.join(dir, '_delta_log');
    const names = fs.readdirSync(logDir).filter((n) => /^\d{20}\.json$/.test(n)).sort();
    const live = new Set();
    let summary = {}, meta = null;
    for (const n of names) {
        for (const line of fs.readFileSync(path.join(logDir, n), 'utf8').split('\n')) {
            if (!line) continue;
            const a = JSON.parse(line);
            // an absolute URI (a file another table owns) as a local path
            const p = (u) => { const d = decodeURIComponent(u); return d.startsWith('file:///') ? d.slice('file://'.length) : d; };
            if (a.add) live.add(p(a.add.path));
            if (a.remove) live.delete(p(a.remove.path));
            if (a.commitInfo && a.commitInfo.lakebase) summary = a.commitInfo.lakebase;
            if (a.metaData) meta = a.metaData;
        }
    }
    if (!meta) fail('no metaData');
    const raw = JSON.parse(meta.schemaString);
    if ((meta.configuration || {})['delta.columnMapping.mode'] !== 'id') fail('no column mapping by id');
    return { files: [...live].sort(), summary, schema: norm('delta', raw), raw };
}

function int128(words, at) {
    let x = 0n;
    for (let k = 3; k >= 0; k--) x = (x << 32n) | BigInt(words[at + k]);
    return BigInt.asIntN(128, x);
}

function cell(data, i) {
    if (!data.getValid(i)) return null;
    const t = data.type;
    const j = data.offset + i;
    switch (t.typeId) {
    case Type.Bool: return ((data.values[j >> 3] >> (j & 7)) & 1) === 1;
    case Type.Int: case Type.Date: case Type.Time: case Type.Timestamp:
        if (t.typeId === Type.Date && t.unit !== 0) fail('date in milliseconds');
        return String(data.values[j]);
    case Type.Float: {
        const v = data.values;
        if (t.precision === 1) return 'f:' + new Uint32Array(v.buffer, v.byteOffset, v.length)[j].toString(16).padStart(8, '0');
        return 'd:' + new BigUint64Array(v.buffer, v.byteOffset, v.length)[j].toString(16).padStart(16, '0');
    }
    case Type.Decimal: return String(int128(data.values, j * 4));
    case Type.Utf8: case Type.LargeUtf8: {
        const o = data.valueOffsets;
        return Buffer.from(data.values.subarray(Number(o[j]), Number(o[j + 1]))).toString('utf8');
    }
    case Type.Binary: case Type.LargeBinary: {
        const o = data.valueOffsets;
        return Buffer.from(data.values.subarray(Number(o[j]), Number(o[j + 1]))).toString('hex');
    }
    case Type.FixedSizeBinary:
        return Buffer.from(data.values.subarray(j * t.byteWidth, (j + 1) * t.byteWidth)).toString('hex');
    case Type.List: case Type.LargeList: {
        const o = data.valueOffsets;
        const items = [];
        for (let k = Number(o[j]); k < Number(o[j + 1]); k++) items.push(cell(data.children[0], k));
        return items;
    }
    case Type.Struct: {
        const obj = {};
        t.children.forEach((f, k) => { obj[f.name] = cell(data.children[k], i); });
        return obj;
    }
    default:
        fail(`unexpected arrow type ${t}`);
    }
}

const { files, summary, schema, raw } = format === 'iceberg' ? await icebergFiles() : format === 'delta' ? deltaFiles() : fail('iceberg|delta');
const out = { files, summary, fields: {}, schema: raw, rows: [] };
for (const f of schema.fields) {
    if (!Number.isInteger(f.id)) fail(`field ${f.name} has no id`);
    out.fields[f.name] = f.id;
}
for (const f of files) {
    const table = tableFromIPC(readParquet(new Uint8Array(fs.readFileSync(path.resolve(dir, f)))).intoIPCStream());
    // top-level columns by field id
    const at = schema.fields.map((sf) => table.schema.fields.findIndex((c) => fieldId(c) === sf.id));
    for (const batch of table.batches) {
        const cols = batch.data.children;
        for (let i = 0; i < batch.numRows; i++) {
            const row = {};
            schema.fields.forEach((sf, k) => { row[sf.name] = at[k] < 0 ? null : project(cols[at[k]], i, sf.type); });
            out.rows.push(row);
        }
    }
}
process.stdout.write(JSON.stringify(out) + '\n');
