// Reads an Avro object container file with avsc and prints it for the C
// tests (test_avro.c, test_iceberg.c).
//
//   node avro_read.mjs FILE
//
// prints one JSON object:
//   codec    the header's avro.codec
//   meta     every header metadata pair, values as UTF-8 text
//   schema   the writer schema from the header (JSON.parse of
//            avro.schema, which avsc decoded with), attributes such as
//            field-id included
//   blocks   the number of blocks, counted by walking the file here, each
//            block's sync marker checked against the header's
//   counts   objects per block, as the block headers say
//   records  one canonical text per datum, from avsc's decoded values:
//            null; true/false; ints and longs as decimal integers; floats
//            f:<8 hex bits>, doubles d:<16 hex bits>; bytes and fixed
//            0x<hex>; strings JSON-quoted; records {a=1,b=2}; arrays [1,2];
//            maps {"k":1}; a union value as <branch type name>:<value>
//            (null as plain null).
import avro from 'avsc';
import fs from 'fs';
import zlib from 'zlib';

const file = process.argv[2];
const bytes = fs.readFileSync(file);

// Longs as BigInt so that no value loses precision.
const longType = avro.types.LongType.__with({
    fromBuffer: (buf) => buf.readBigInt64LE(),
    toBuffer: (n) => {
        const b = Buffer.alloc(8);
        b.writeBigInt64LE(BigInt(n));
        return b;
    },
    fromJSON: BigInt,
    toJSON: (n) => n.toString(),
    isValid: (n) => typeof n === 'bigint',
    compare: (a, b) => (a < b ? -1 : a > b ? 1 : 0),
});

function hex(buf) {
    return '0x' + Buffer.from(buf).toString('hex');
}

function floatBits(x, single) {
    const b = new DataView(new ArrayBuffer(8));
    if (single) {
        b.setFloat32(0, x);
        return 'f:' + b.getUint32(0).toString(16).padStart(8, '0');
    }
    b.setFloat64(0, x);
    return 'd:' + b.getBigUint64(0).toString(16).padStart(16, '0');
}

function branchName(t) {
    return t.branchName ? t.branchName : t.typeName;
}

function render(type, v) {
    switch (type.typeName) {
    case 'null': return 'null';
    case 'boolean': return v ? 'true' : 'false';
    case 'int': return String(v);
    case 'long': case 'abstract:long': return v.toString();
    case 'float': return floatBits(v, true);
    case 'double': return floatBits(v, false);
    case 'bytes': case 'fixed': return hex(v);
    case 'string': return JSON.stringify(v);
    case 'record': case 'error':
        return '{' + type.fields.map((f) => f.name + '=' + render(f.type, v[f.name])).join(',') + '}';
    case 'array': return '[' + v.map((x) => render(type.itemsType, x)).join(',') + ']';
    case 'map':
        return '{' + Object.keys(v).map((k) => JSON.stringify(k) + ':' + render(type.valuesType, v[k])).join(',') + '}';
    case 'union:wrapped': {
        if (v === null) return 'null';
        const key = Object.keys(v)[0];
        const t = type.types.find((b) => branchName(b) === key);
        return (t.name ? t.name.split('.').pop() : t.typeName.replace(/^abstract:/, '')) + ':' + render(t, v[key]);
    }
    default:
        throw new Error('unexpected avsc type ' + type.typeName);
    }
}

// Walk the container by hand: header map, then blocks.
function walk(buf) {
    let pos = 4;
    function long() {
        let z = 0n, shift = 0n, b;
        do {
            b = buf[pos++];
            if (b === undefined) throw new Error('file ends inside a varint');
            z |= BigInt(b & 0x7f) << shift;
            shift += 7n;
        } while (b & 0x80);
        return (z >> 1n) ^ -(z & 1n);
    }
    if (buf.subarray(0, 4).toString('latin1') !== 'Obj\x01') throw new Error('bad magic');
    for (;;) {
        let n = long();
        if (n === 0n) break;
        if (n < 0n) { n = -n; long(); }
        for (let i = 0n; i < n; i++) {
            for (let kv = 0; kv < 2; kv++) {
                const len = Number(long()); // read before pos is used
                pos += len;
            }
        }
    }
    const sync = buf.subarray(pos, pos + 16);
    pos += 16;
    const counts = [];
    while (pos < buf.length) {
        const count = long();
        const size = Number(long());
        pos += size;
        if (!buf.subarray(pos, pos + 16).equals(sync)) throw new Error(`block ${counts.length} has a bad sync marker`);
        pos += 16;
        counts.push(Number(count));
    }
    if (pos !== buf.length) throw new Error('trailing bytes');
    return counts;
}

const counts = walk(bytes);
const out = { meta: {}, records: [], blocks: counts.length, counts };
let type;
const decoder = avro.createFileDecoder(file, {
    codecs: { null: (b, cb) => cb(null, b), deflate: zlib.inflateRaw },
    parseHook: (schema) => (type = avro.Type.forSchema(schema, { registry: { long: longType }, wrapUnions: true })),
});
decoder.on('metadata', (_t, codec, header) => {
    out.codec = codec;
    for (const [k, v] of Object.entries(header.meta)) out.meta[k] = v.toString('utf8');
});
decoder.on('data', (r) => out.records.push(render(type, r)));
decoder.on('error', (e) => {
    process.stderr.write(String(e && e.stack ? e.stack : e) + '\n');
    process.exit(2);
});
decoder.on('end', () => {
    out.schema = JSON.parse(out.meta['avro.schema']);
    process.stdout.write(JSON.stringify(out) + '\n');
});
