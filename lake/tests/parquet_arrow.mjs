// Reads a Parquet file with parquet-wasm (the Rust parquet crate) into Apache
// Arrow and prints it for test_parquet.c.
//
//   node parquet_arrow.mjs rows FILE     one line per row, in the canonical
//                                        text form of parquet_duckdb.mjs
//   node parquet_arrow.mjs schema FILE   JSON: [name, arrow type, field id] per
//                                        top-level field
//
// Values are taken from the Arrow buffers, not from Vector.get(), which
// rounds dates and timestamps to JavaScript milliseconds.
import { readFileSync } from 'node:fs';
import { readParquet } from 'parquet-wasm';
import { tableFromIPC, Type } from 'apache-arrow';

const [mode, file] = process.argv.slice(2);
const table = tableFromIPC(readParquet(new Uint8Array(readFileSync(file))).intoIPCStream());
const hex = (bytes) => '0x' + Buffer.from(bytes).toString('hex');

function int128(words, at) {
    // Four little-endian 32-bit words, two's complement.
    let x = 0n;
    for (let k = 3; k >= 0; k--) x = (x << 32n) | BigInt(words[at + k]);
    return BigInt.asIntN(128, x);
}

function floatBits(values, j, single) {
    const x = values[j];
    if (Number.isNaN(x)) return 'NaN';
    if (single) {
        const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
        return 'f:' + bits[j].toString(16).padStart(8, '0');
    }
    const bits = new BigUint64Array(values.buffer, values.byteOffset, values.length);
    return 'd:' + bits[j].toString(16).padStart(16, '0');
}

function cell(data, i) {
    if (!data.getValid(i)) return 'null';
    const t = data.type;
    const j = data.offset + i;
    switch (t.typeId) {
    case Type.Bool: return (data.values[j >> 3] >> (j & 7)) & 1 ? 'true' : 'false';
    case Type.Int: case Type.Date: case Type.Time: case Type.Timestamp:
        if (t.typeId === Type.Date && t.unit !== 0) throw new Error('date in milliseconds');
        return String(data.values[j]);
    case Type.Float: return floatBits(data.values, j, t.precision === 1);
    case Type.Decimal: return String(int128(data.values, j * 4));
    case Type.Utf8: case Type.LargeUtf8: {
        const o = data.valueOffsets;
        return JSON.stringify(Buffer.from(data.values.subarray(Number(o[j]), Number(o[j + 1]))).toString('utf8'));
    }
    case Type.Binary: case Type.LargeBinary: {
        const o = data.valueOffsets;
        return hex(data.values.subarray(Number(o[j]), Number(o[j + 1])));
    }
    case Type.FixedSizeBinary:
        return hex(data.values.subarray(j * t.byteWidth, (j + 1) * t.byteWidth));
    case Type.List: case Type.LargeList: {
        const o = data.valueOffsets;
        const items = [];
        for (let k = Number(o[j]); k < Number(o[j + 1]); k++) items.push(cell(data.children[0], k));
        return '[' + items.join(',') + ']';
    }
    case Type.Struct:
        return '{' + data.children.map((child) => cell(child, i)).join(',') + '}';
    default:
        throw new Error(`unexpected arrow type ${t}`);
    }
}

if (mode === 'rows') {
    let out = '';
    for (const batch of table.batches) {
        const columns = batch.data.children;
        for (let i = 0; i < batch.numRows; i++)
            out += columns.map((c) => cell(c, i)).join(' | ') + '\n';
    }
    process.stdout.write(out);
} else if (mode === 'schema') {
    const fields = table.schema.fields.map((f) => [f.name, String(f.type), f.metadata.get('PARQUET:field_id') ?? null]);
    process.stdout.write(JSON.stringify(fields) + '\n');
} else {
    throw new Error('usage: parquet_arrow.mjs rows|schema FILE');
}
