// Every snapshot an Iceberg reader can choose in a lake table, for
// test_ltap_catalog.py: the newest metadata's snapshots, and for each the
// data files its manifest list and manifests name (entries not DELETED),
// with the ones missing from the store.
//
//   node ltap_snapshots.mjs TABLE_DIR
//
// Prints {metadata, snapshots: [{id, sequence, files, missing}], unreadable:
// [manifest lists or manifests named but missing]}.
import avro from 'avsc';
import fs from 'fs';
import path from 'path';

const [dir] = process.argv.slice(2);
const longType = avro.types.LongType.__with({
    fromBuffer: (buf) => buf.readBigInt64LE(),
    toBuffer: (n) => { const b = Buffer.alloc(8); b.writeBigInt64LE(BigInt(n)); return b; },
    fromJSON: BigInt, toJSON: (n) => n.toString(),
    isValid: (n) => typeof n === 'bigint', compare: (a, b) => (a < b ? -1 : a > b ? 1 : 0),
});
const readAvro = (file) => new Promise((resolve, reject) => {
    const recs = [];
    avro.createFileDecoder(file, { parseHook: (s) => avro.Type.forSchema(s, { registry: { long: longType } }) })
        .on('data', (r) => recs.push(r)).on('error', reject).on('end', () => resolve(recs));
});
const local = (uri) => uri.replace(/^file:\/\//, '');

const mdir = path.join(dir, 'metadata');
const versions = fs.readdirSync(mdir).map((f) => /^v(\d+)\.metadata\.json$/.exec(f)).filter(Boolean)
    .map((m) => Number(m[1]));
const newest = Math.max(...versions);
const text = fs.readFileSync(path.join(mdir, `v${newest}.metadata.json`), 'utf8');
// snapshot ids as strings: they pass 2^53
const meta = JSON.parse(text.replace(/("(?:snapshot-id|parent-snapshot-id|current-snapshot-id)":\s*)(-?\d+)/g, '$1"$2"'));
const out = { metadata: `v${newest}.metadata.json`, versions: versions.sort((a, b) => a - b),
              snapshotLog: meta['snapshot-log'].map((e) => e['snapshot-id']),
              metadataLog: meta['metadata-log'].map((e) => path.basename(e['metadata-file'])),
              current: meta['current-snapshot-id'], snapshots: [], unreadable: [] };
for (const s of meta.snapshots) {
    const files = [];
    const list = local(s['manifest-list']);
    if (!fs.existsSync(list)) { out.unreadable.push(list); continue; }
    for (const m of await readAvro(list)) {
        if (!fs.existsSync(local(m.manifest_path))) { out.unreadable.push(local(m.manifest_path)); continue; }
        for (const e of await readAvro(local(m.manifest_path))) {
            if (e.status !== 2) files.push(local(e.data_file.file_path));
        }
    }
    out.snapshots.push({ id: s['snapshot-id'], sequence: s['sequence-number'], files: files.sort(),
                         missing: files.filter((f) => !fs.existsSync(f)) });
}
process.stdout.write(JSON.stringify(out) + '\n');
