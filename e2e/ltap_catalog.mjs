// An Iceberg engine's view of a pageserver's lake, through its Iceberg REST
// catalog with the iceberg-js client, for test_ltap_catalog.py: every
// namespace (top level, then each one's children), every table of every
// namespace, each table loaded (LoadTableResult), its existence checked
// (HEAD), and its data files found the way an engine plans a scan: the
// current snapshot's manifest list, then its manifests (avsc), the files
// of entries that are not DELETED, then read with DuckDB
// (@duckdb/node-api), each column cast to VARCHAR by DuckDB itself.
//
//   node ltap_catalog.mjs BASE_URL TOKEN [WAREHOUSE]
//
// Prints one JSON object: {namespaces, tables: [{namespace, name, exists,
// result (the LoadTableResult), files (absolute paths), rows}], missing:
// {table, namespace} (what the client saw for names that do not exist:
// status, type, and whether tableExists/namespaceExists said false)}.
import avro from 'avsc';
import { DuckDBInstance } from '@duckdb/node-api';
import { IcebergError, IcebergRestCatalog } from 'iceberg-js';

const [baseUrl, token, warehouse] = process.argv.slice(2);
const catalog = new IcebergRestCatalog({
    baseUrl, auth: { type: 'bearer', token }, ...(warehouse ? { warehouse } : {}),
});

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
        avro.createFileDecoder(file, { parseHook: (s) => avro.Type.forSchema(s, { registry: { long: longType } }) })
            .on('data', (r) => recs.push(r)).on('error', reject).on('end', () => resolve(recs));
    });
}

// A file:// location as a local path; the catalog's store is a directory.
const localPath = (uri) => {
    if (!uri.startsWith('file://')) throw new Error(`not a file:// location: ${uri}`);
    return uri.slice('file://'.length);
};

async function dataFiles(meta) {
    const id = meta['current-snapshot-id'];
    if (id === undefined || id === null || BigInt(id) === -1n) return [];
    const snap = meta.snapshots.find((s) => BigInt(s['snapshot-id']) === BigInt(id));
    if (!snap) throw new Error(`current snapshot ${id} is not in the metadata`);
    const files = [];
    for (const m of await readAvro(localPath(snap['manifest-list']))) {
        for (const e of await readAvro(localPath(m.manifest_path))) {
            if (e.status !== 2) files.push(localPath(e.data_file.file_path));
        }
    }
    return files.sort();
}

const instance = await DuckDBInstance.create(':memory:');
const con = await instance.connect();
await con.run("SET TimeZone = 'UTC'");

async function rowsOf(files) {
    if (files.length === 0) return [];
    const list = '[' + files.map((f) => `'${f.replaceAll("'", "''")}'`).join(', ') + ']';
    const cols = (await con.runAndReadAll(`DESCRIBE SELECT * FROM read_parquet(${list})`)).getRowObjectsJson();
    const sel = cols.map((c) => `"${c.column_name}"::VARCHAR AS "${c.column_name}"`).join(', ');
    return (await con.runAndReadAll(`SELECT ${sel} FROM read_parquet(${list})`)).getRowObjectsJson();
}

async function failure(fn) {
    try {
        await fn();
        return { status: 200 };
    } catch (e) {
        if (!(e instanceof IcebergError)) throw e;
        return { status: e.status, type: e.icebergType ?? null, message: e.message };
    }
}

const out = { namespaces: [], tables: [], missing: {} };
const top = (await catalog.listNamespaces()).namespaces;
for (const ns of top) {
    out.namespaces.push(ns.namespace);
    if (!(await catalog.namespaceExists(ns))) throw new Error(`namespaceExists false for ${ns.namespace}`);
    await catalog.loadNamespaceMetadata(ns);
    for (const child of (await catalog.listNamespaces({ parent: ns })).namespaces) {
        out.namespaces.push(child.namespace);
        for (const id of (await catalog.listTables(child)).identifiers) {
            const result = await catalog.loadTableResult(id);
            const files = await dataFiles(result.metadata);
            out.tables.push({
                namespace: id.namespace, name: id.name, exists: await catalog.tableExists(id),
                result: { ...result, etag: result.etag }, files, rows: await rowsOf(files),
            });
        }
    }
}
const [first] = top;
out.missing.table = {
    ...(await failure(() => catalog.loadTable({ namespace: [first.namespace[0], 'public'], name: 'no_such_table' }))),
    exists: await catalog.tableExists({ namespace: [first.namespace[0], 'public'], name: 'no_such_table' }),
};
out.missing.namespace = {
    ...(await failure(() => catalog.listTables({ namespace: ['no_such_db', 'public'] }))),
    exists: await catalog.namespaceExists({ namespace: ['no_such_db'] }),
};
out.missing.create = await failure(() => catalog.createNamespace({ namespace: ['newdb'] }));
out.missing.drop = await failure(() => catalog.dropTable(out.tables[0]));
process.stdout.write(JSON.stringify(out, (k, v) => (typeof v === 'bigint' ? v.toString() : v)) + '\n');
