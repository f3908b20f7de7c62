// Reads a Parquet file with DuckDB and prints it for test_parquet.c.
//
//   node parquet_duckdb.mjs rows FILE   one line per row, values in the
//                                       canonical text form below
//   node parquet_duckdb.mjs meta FILE   JSON: parquet_schema, parquet_metadata,
//                                       parquet_file_metadata, parquet_kv_metadata
//   node parquet_duckdb.mjs stats FILE  JSON: per row group and top-level
//                                       primitive column, the footer's
//                                       statistics next to min/max/null/NaN
//                                       counts computed by SQL over that row
//                                       group's rows (NaN left out of min/max)
//
// Canonical values (shared with parquet_arrow.mjs and the C test):
// null; true/false; integers, dates (days), times and timestamps (µs) and
// decimals (unscaled) as decimal integers; floats as f:<8 hex bits> and
// doubles as d:<16 hex bits>, NaN as NaN; strings JSON-quoted; binary, fixed
// and uuid as 0x<hex>; lists [a,b]; structs {a,b}; fields joined by " | ".
import { DuckDBInstance, DuckDBTypeId } from '@duckdb/node-api';

const [mode, file] = process.argv.slice(2);
const hex = (bytes) => '0x' + Buffer.from(bytes).toString('hex');

function floatBits(x, single) {
    if (Number.isNaN(x)) return 'NaN';
    const b = new DataView(new ArrayBuffer(8));
    if (single) {
        b.setFloat32(0, x);
        return 'f:' + b.getUint32(0).toString(16).padStart(8, '0');
    }
    b.setFloat64(0, x);
    return 'd:' + b.getBigUint64(0).toString(16).padStart(16, '0');
}

function render(type, v) {
    if (v === null || v === undefined) return 'null';
    switch (type.typeId) {
    case DuckDBTypeId.BOOLEAN: return v ? 'true' : 'false';
    case DuckDBTypeId.TINYINT: case DuckDBTypeId.SMALLINT: case DuckDBTypeId.INTEGER:
    case DuckDBTypeId.BIGINT: case DuckDBTypeId.HUGEINT:
        return String(v);
    case DuckDBTypeId.FLOAT: return floatBits(v, true);
    case DuckDBTypeId.DOUBLE: return floatBits(v, false);
    case DuckDBTypeId.DECIMAL: return String(v.value);
    case DuckDBTypeId.DATE: return String(v.days);
    case DuckDBTypeId.TIME: case DuckDBTypeId.TIMESTAMP: case DuckDBTypeId.TIMESTAMP_TZ:
        return String(v.micros);
    case DuckDBTypeId.VARCHAR: return JSON.stringify(v);
    case DuckDBTypeId.BLOB: return hex(v.bytes);
    case DuckDBTypeId.UUID: return '0x' + v.toString().replaceAll('-', '');
    case DuckDBTypeId.LIST:
        return '[' + v.items.map((x) => render(type.valueType, x)).join(',') + ']';
    case DuckDBTypeId.STRUCT:
        return '{' + type.entryNames.map((n, i) => render(type.entryTypes[i], v.entries[n])).join(',') + '}';
    default:
        throw new Error(`unexpected duckdb type ${type.toString()}`);
    }
}

const instance = await DuckDBInstance.create(':memory:');
const con = await instance.connect();
const lit = `'${file.replaceAll("'", "''")}'`;

if (mode === 'rows') {
    const reader = await con.runAndReadAll(`SELECT * FROM read_parquet(${lit})`);
    const types = reader.columnTypes();
    const lines = reader.getRows().map((row) => row.map((v, i) => render(types[i], v)).join(' | '));
    process.stdout.write(lines.map((l) => l + '\n').join(''));
} else if (mode === 'meta') {
    const out = {};
    for (const [name, fn] of [['schema', 'parquet_schema'], ['metadata', 'parquet_metadata'],
                              ['file', 'parquet_file_metadata'], ['kv', 'parquet_kv_metadata']]) {
        const reader = await con.runAndReadAll(`SELECT * FROM ${fn}(${lit})`);
        out[name] = reader.getRowObjectsJson();
    }
    const types = await con.runAndReadAll(`DESCRIBE SELECT * FROM read_parquet(${lit})`);
    out.types = types.getRowObjectsJson().map((r) => [r.column_name, r.column_type]);
    process.stdout.write(JSON.stringify(out) + '\n');
} else if (mode === 'stats') {
    const md = (await con.runAndReadAll(
        `SELECT * FROM parquet_metadata(${lit}) ORDER BY row_group_id, column_id`)).getRowObjectsJson();
    const types = Object.fromEntries((await con.runAndReadAll(
        `DESCRIBE SELECT * FROM read_parquet(${lit})`)).getRowObjectsJson().map((r) => [r.column_name, r.column_type]));
    const starts = {};
    let next = 0;
    for (const col of md) {
        if (!(col.row_group_id in starts)) {
            starts[col.row_group_id] = [next, next + Number(col.row_group_num_rows)];
            next += Number(col.row_group_num_rows);
        }
    }
    const out = [];
    for (const col of md) {
        const name = col.path_in_schema;
        if (name.includes(',')) continue; // nested: not a top-level primitive
        const [lo, hi] = starts[col.row_group_id];
        const q = `"${name.replaceAll('"', '""')}"`;
        const isFloat = col.type === 'FLOAT' || col.type === 'DOUBLE';
        const keep = isFloat ? `FILTER (WHERE NOT isnan(${q}))` : '';
        // DuckDB's time zone aware cast to text is off by a millisecond near
        // the end of its range; render instants as the footer does.
        const text = (agg) => types[name] === 'TIMESTAMP WITH TIME ZONE'
            ? `CAST(make_timestamp(epoch_us(${agg}(${q}))) AS VARCHAR) || '+00'`
            : `CAST(${agg}(${q}) ${keep} AS VARCHAR)`;
        const sql = `SELECT ${text('min')} AS mn, ${text('max')} AS mx,
                            count(*) FILTER (WHERE ${q} IS NULL) AS nulls,
                            ${isFloat ? `count(*) FILTER (WHERE isnan(${q}))` : '0'} AS nans
                     FROM read_parquet(${lit}, file_row_number = true)
                     WHERE file_row_number >= ${lo} AND file_row_number < ${hi}`;
        const [t] = (await con.runAndReadAll(sql)).getRowObjectsJson();
        out.push({
            row_group: col.row_group_id, column: name, type: col.type, duckdb_type: types[name],
            stats_min: col.stats_min_value, stats_max: col.stats_max_value,
            stats_null_count: col.stats_null_count, min_is_exact: col.min_is_exact,
            max_is_exact: col.max_is_exact,
            true_min: t.mn, true_max: t.mx, true_nulls: t.nulls, true_nans: t.nans,
        });
    }
    process.stdout.write(JSON.stringify(out) + '\n');
} else {
    throw new Error(`usage: parquet_duckdb.mjs rows|meta|stats FILE`);
}
