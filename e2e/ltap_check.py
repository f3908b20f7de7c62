"""Helpers for the LTAP end-to-end tests (test_ltap*.py).

A primary and a real hot standby; ltap-materialize pointed at the standby
with replay paused at P; lake tables read back by engines (ltap_read.mjs:
Iceberg metadata or Delta log, then parquet-wasm + Arrow), turned back into
PostgreSQL's binary COPY format and loaded with COPY FROM (FORMAT binary);
rows compared as typsend bytes with what SELECT returns on the standby at P.
"""
import ipaddress
import json
import os
import re
import struct
import subprocess

from lakebase import PGBIN, ROOT, Postgres, wait_for

TOOLS = os.environ.get("LB_TOOLS_DIR") or os.path.join(ROOT, "build", "tools")
PG_EPOCH_DAYS = 10957
PG_EPOCH_USECS = 946684800000000
COPY_SIG = b"PGCOPY\n\xff\r\n\x00"


def primary_and_standby(workdir):
    """A primary (wal_level replica) and a hot standby streaming from it."""
    pri = Postgres(workdir, "primary").initdb()
    pri.base_conf()
    pri.conf(hot_standby="on", max_connections=30)
    pri.start()
    sb = Postgres(workdir, "standby")
    pri.run([os.path.join(PGBIN, "pg_basebackup"), "-h", "127.0.0.1", "-p", str(pri.port),
             "-U", "postgres", "-D", sb.datadir, "-R", "-X", "stream"])
    sb.base_conf()
    sb.conf(hot_standby="on", max_connections=30, max_standby_streaming_delay="-1")
    sb.start()
    return pri, sb


def pause_at_primary_lsn(pri, sb, wait=True):
    """Wait until the standby has replayed the primary's current WAL (with
    wait), pause replay there and return P (the standby's replay LSN)."""
    if sb.sql("SELECT pg_is_wal_replay_paused()")[0][0]:
        sb.sql("SELECT pg_wal_replay_resume()")
    if wait:
        target = pri.sql("SELECT pg_current_wal_lsn()::text")[0][0]
        wait_for(lambda: sb.sql("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", target)[0][0], 60,
                 what="standby to replay")
    sb.sql("SELECT pg_wal_replay_pause()")
    wait_for(lambda: sb.sql("SELECT pg_get_wal_replay_pause_state()")[0][0] == "paused", 30,
             what="replay to pause")
    return sb.sql("SELECT pg_last_wal_replay_lsn()::text")[0][0]


def materialize(sb, store_dir, prefix, lsn, dirty=None, chunk_blocks=None, check=True):
    argv = [os.path.join(TOOLS, "ltap-materialize"), "--conninfo", sb.dsn(), "--store",
            "file://" + store_dir, "--prefix", prefix, "--lsn", lsn]
    if dirty is not None:
        argv += ["--dirty", dirty]
    if chunk_blocks:
        argv += ["--chunk-blocks", str(chunk_blocks)]
    p = subprocess.run(argv, capture_output=True, text=True)
    if check:
        assert p.returncode == 0, p.stderr
        return json.loads(p.stdout)
    return p


def table_dir(store_dir, prefix, db, schema, table):
    return os.path.join(store_dir, prefix, "lake", db, schema, table)


def read_lake(store_dir, prefix, db, schema, table, fmt="iceberg"):
    p = subprocess.run(["node", os.path.join(ROOT, "e2e", "ltap_read.mjs"), fmt,
                        table_dir(store_dir, prefix, db, schema, table)],
                       capture_output=True, text=True, cwd=ROOT)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


# ---- PostgreSQL side --------------------------------------------------------------

def columns(pg, db, schema, table):
    """(attnum, name, typid, typmod, typtype, elem typid: an array's element
    type or a range's subtype, a composite's attributes) of each live column,
    domains resolved to their base type, as ltap resolves them."""
    q = """
    SELECT a.attnum, a.attname,
           CASE WHEN ty.typtype = 'd' THEN ty.typbasetype ELSE a.atttypid END,
           CASE WHEN ty.typtype = 'd' THEN ty.typtypmod ELSE a.atttypmod END,
           coalesce(bt.typtype, ty.typtype)::text,
           coalesce(el.oid, rg.rngsubtype, 0)::int
    FROM pg_attribute a JOIN pg_type ty ON ty.oid = a.atttypid
    LEFT JOIN pg_type bt ON ty.typtype = 'd' AND bt.oid = ty.typbasetype
    LEFT JOIN pg_type el ON el.oid = coalesce(bt.typelem, ty.typelem)
          AND coalesce(bt.typlen, ty.typlen) = -1
    LEFT JOIN pg_range rg ON rg.rngtypid = coalesce(bt.oid, ty.oid)
    WHERE a.attrelid = (quote_ident(%s) || '.' || quote_ident(%s))::regclass
      AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum"""
    fq = """
    SELECT a.atttypid::int,
           CASE WHEN ty.typtype = 'd' THEN ty.typbasetype ELSE a.atttypid END::int,
           CASE WHEN ty.typtype = 'd' THEN ty.typtypmod ELSE a.atttypmod END,
           coalesce(bt.typtype, ty.typtype)::text
    FROM pg_attribute a JOIN pg_type ty ON ty.oid = a.atttypid
    LEFT JOIN pg_type bt ON ty.typtype = 'd' AND bt.oid = ty.typbasetype
    WHERE a.attrelid = (SELECT typrelid FROM pg_type WHERE oid = %s)
      AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum"""
    with pg.connect(dbname=db) as c:
        cols = [tuple(r) for r in c.execute(q, (schema, table)).fetchall()]
        # a composite's attributes: (declared type, base type, typmod, typtype)
        return [col + ([tuple(f) for f in c.execute(fq, (col[2],)).fetchall()]
                       if col[4] == "c" else None,) for col in cols]


def parse_copy(data):
    """Rows of a binary COPY stream, each a list of bytes (None for NULL)."""
    assert data[:11] == COPY_SIG, data[:16]
    ext = struct.unpack(">I", data[15:19])[0]
    pos = 19 + ext
    rows = []
    while True:
        (n,) = struct.unpack(">h", data[pos:pos + 2])
        pos += 2
        if n == -1:
            return rows
        row = []
        for _ in range(n):
            (ln,) = struct.unpack(">i", data[pos:pos + 4])
            pos += 4
            if ln < 0:
                row.append(None)
            else:
                row.append(bytes(data[pos:pos + ln]))
                pos += ln
        rows.append(row)


def quote(name):
    return '"' + name.replace('"', '""') + '"'


def standby_rows(sb, db, schema, table, cols):
    """{(block, offset): [typsend bytes or None per column]} of SELECT on the
    standby (replay paused at P)."""
    sel = ", ".join(quote(c[1]) for c in cols)
    sql = (f"COPY (SELECT ctid{', ' + sel if sel else ''} FROM ONLY {quote(schema)}.{quote(table)}) "
           "TO STDOUT (FORMAT binary)")
    with sb.connect(dbname=db) as c:
        with c.cursor().copy(sql) as cp:
            data = b"".join(bytes(b) for b in cp)
    out = {}
    for r in parse_copy(data):
        blk, off = struct.unpack(">IH", r[0])
        out[(blk, off)] = r[1:]
    return out


# ---- lake values back to typsend -------------------------------------------------

def numeric_send(text):
    if text in ("NaN", "Infinity", "-Infinity"):
        sign = {"NaN": 0xC000, "Infinity": 0xD000, "-Infinity": 0xF000}[text]
        return struct.pack(">hhHh", 0, 0, sign, 0)
    neg = text.startswith("-")
    ip, _, fp = text.lstrip("-").partition(".")
    dscale = len(fp)
    ip = ip.lstrip("0")
    ipart = "0" * ((-len(ip)) % 4) + ip
    fpart = fp + "0" * ((-len(fp)) % 4)
    groups = [int(ipart[i:i + 4]) for i in range(0, len(ipart), 4)] + \
             [int(fpart[i:i + 4]) for i in range(0, len(fpart), 4)]
    weight = len(ipart) // 4 - 1
    while groups and groups[0] == 0:
        groups.pop(0)
        weight -= 1
    while groups and groups[-1] == 0:
        groups.pop()
    if not groups:
        weight, neg = 0, False
    return struct.pack(">hhHh", len(groups), weight, 0x4000 if neg else 0, dscale) + \
        b"".join(struct.pack(">H", g) for g in groups)


def decimal_text(unscaled, scale):
    u = int(unscaled)
    s = str(abs(u)).rjust(scale + 1, "0")
    t = s[:-scale] + "." + s[-scale:] if scale else s
    return ("-" if u < 0 else "") + t


TEXTISH = {25, 1043, 1042, 19}
REGTYPES = {26, 24, 2202, 2203, 2204, 2205, 2206, 3734, 3769, 4089, 4096, 4191}


def scalar_send(typid, typmod, typtype, v):
    if typtype == "e" or typid in TEXTISH or typid == 114:
        return v.encode()
    if typid == 16:
        return b"\x01" if v else b"\x00"
    if typid == 21:
        return struct.pack(">h", int(v))
    if typid == 23:
        return struct.pack(">i", int(v))
    if typid in (20, 790):
        return struct.pack(">q", int(v))
    if typid in REGTYPES:
        return struct.pack(">I", int(v))
    if typid in (700, 701):
        return bytes.fromhex(v[2:])
    if typid == 1700:
        if typmod >= 4 and isinstance(v, str) and re.fullmatch(r"-?\d+", v) and \
                1 <= ((typmod - 4) >> 16) <= 38:
            return numeric_send(decimal_text(v, (typmod - 4) & 0x7FF))
        return numeric_send(v)
    if typid in (17, 2950):
        return bytes.fromhex(v)
    if typid == 1082:
        return struct.pack(">i", int(v) - PG_EPOCH_DAYS)
    if typid == 1083:
        return struct.pack(">q", int(v))
    if typid in (1114, 1184):
        return struct.pack(">q", int(v) - PG_EPOCH_USECS)
    if typid == 3802:
        return b"\x01" + v.encode()
    if typid == 1186:
        return struct.pack(">qii", int(v["microseconds"]), int(v["days"]), int(v["months"]))
    if typid in (869, 650):  # inet, cidr: "<address>/<bits>"
        addr, bits = v.rsplit("/", 1)
        packed = ipaddress.ip_address(addr).packed
        return struct.pack(">BBBB", 2 if len(packed) == 4 else 3, int(bits), typid == 650,
                           len(packed)) + packed
    if typid in (829, 774):  # macaddr, macaddr8
        return bytes.fromhex(v.replace(":", ""))
    if typid in (1560, 1562):  # bit, varbit: '0'/'1' text
        n = len(v)
        padded = v + "0" * ((-n) % 8)
        return struct.pack(">i", n) + bytes(int(padded[i:i + 8], 2) for i in range(0, len(padded), 8))
    raise AssertionError(f"no encoder for type {typid}")


def range_send(subtype, v):
    """A range STRUCT {empty, lower, upper, lower_inclusive, upper_inclusive}
    (a NULL bound is an infinite one) back to range_send's bytes."""
    if v["empty"]:
        return b"\x01"
    flags = (0x02 if v["lower_inclusive"] else 0) | (0x04 if v["upper_inclusive"] else 0) | \
        (0x08 if v["lower"] is None else 0) | (0x10 if v["upper"] is None else 0)
    out = bytes([flags])
    for b in (v["lower"], v["upper"]):
        if b is not None:
            sb = scalar_send(subtype, -1, "b", b)
            out += struct.pack(">i", len(sb)) + sb
    return out


def composite_send(fields, v):
    """A composite STRUCT back to record_send's bytes: the count, then per
    attribute its declared type, length and send bytes."""
    vals = list(v.values())
    assert len(vals) == len(fields), (fields, v)
    out = struct.pack(">i", len(fields))
    for (decl, base, typmod, typtype), x in zip(fields, vals):
        if x is None:
            out += struct.pack(">Ii", decl, -1)
        else:
            b = scalar_send(base, typmod, typtype, x)
            out += struct.pack(">Ii", decl, len(b)) + b
    return out


def value_send(col, v):
    _, _, typid, typmod, typtype, elem, fields = col
    if typtype == "r":
        return range_send(elem, v)
    if typtype == "c":
        return composite_send(fields, v)
    if isinstance(v, list):
        assert elem, col
        if not v:
            return struct.pack(">iiI", 0, 0, elem)
        body = b""
        for x in v:
            if x is None:
                body += struct.pack(">i", -1)
            else:
                b = scalar_send(elem, -1, "b", x)
                body += struct.pack(">i", len(b)) + b
        hasnull = 1 if any(x is None for x in v) else 0
        return struct.pack(">iiIii", 1, hasnull, elem, len(v), 1) + body
    return scalar_send(typid, typmod, typtype, v)


def lake_to_send(cols, lake):
    """{(block, offset): [typsend bytes or None per column]} from the rows an
    engine read: native values encoded back, overflow bytes as they are."""
    out = {}
    for row in lake["rows"]:
        tid = (int(row["_pg_tid_block"]), int(row["_pg_tid_offset"]))
        assert tid not in out, f"TID {tid} twice in the lake"
        ovf = {int(e["attnum"]): bytes.fromhex(e["send"]) for e in (row.get("_pg_overflow") or [])}
        vals = []
        for col in cols:
            attnum, name = col[0], col[1]
            if attnum in ovf:
                assert row.get(name) is None, f"{name}: native value and overflow both set"
                vals.append(ovf[attnum])
            elif row.get(name) is not None:
                vals.append(value_send(col, row[name]))
            else:
                vals.append(None)
        out[tid] = vals
    return out


def copy_binary(rows):
    data = bytearray(COPY_SIG + struct.pack(">ii", 0, 0))
    for r in rows:
        data += struct.pack(">h", len(r))
        for v in r:
            data += struct.pack(">i", -1) if v is None else struct.pack(">i", len(v)) + v
    data += struct.pack(">h", -1)
    return bytes(data)


def roundtrip(pri, db, schema, table, cols, lake_send):
    """Load the lake's rows into a new table of the same column types with
    COPY FROM (FORMAT binary) and read them back as typsend bytes."""
    tids = sorted(lake_send)
    rt = f"ltap_rt_{table}"
    names = ", ".join(quote(c[1]) for c in cols)
    with pri.connect(dbname=db) as c:
        c.execute(f"DROP TABLE IF EXISTS {quote(rt)}")
        c.execute(f"CREATE TABLE {quote(rt)} (_k int, LIKE {quote(schema)}.{quote(table)})")
        rows = [[struct.pack(">i", k)] + lake_send[t] for k, t in enumerate(tids)]
        with c.cursor().copy(f"COPY {quote(rt)} (_k, {names}) FROM STDIN (FORMAT binary)") as cp:
            cp.write(copy_binary(rows))
        with c.cursor().copy(f"COPY (SELECT _k, {names} FROM {quote(rt)} ORDER BY _k) "
                             "TO STDOUT (FORMAT binary)") as cp:
            data = b"".join(bytes(b) for b in cp)
        c.execute(f"DROP TABLE {quote(rt)}")
    back = {}
    for r in parse_copy(data):
        back[tids[struct.unpack(">i", r[0])[0]]] = r[1:]
    return back


def assert_exact(sb, pri, store_dir, prefix, db, schema, table, formats=("iceberg", "delta")):
    """The lake table equals SELECT on the standby at P, row for row and
    value for value: the rows an engine reads (from the first format's
    metadata) go back through COPY FROM (FORMAT binary) and come out as the
    standby's typsend bytes; every other format lists the same files with
    the same rows."""
    cols = columns(sb, db, schema, table)
    want = standby_rows(sb, db, schema, table, cols)
    files = first = None
    for fmt in formats:
        lake = read_lake(store_dir, prefix, db, schema, table, fmt)
        got = lake_to_send(cols, lake)
        if files is None:
            files, first = lake["files"], got
        else:
            assert lake["files"] == files, f"{fmt} lists other files"
            assert got == first, f"{fmt} reads other rows"
            continue
        assert set(got) == set(want), \
            f"{table} ({fmt}): rows differ: lake has {len(got)}, standby {len(want)}; " \
            f"missing {sorted(set(want) - set(got))[:5]} extra {sorted(set(got) - set(want))[:5]}"
        back = roundtrip(pri, db, schema, table, cols, got)
        for tid in want:
            for i, col in enumerate(cols):
                assert back[tid][i] == want[tid][i], \
                    f"{table} TID {tid} column {col[1]}: after COPY FROM {back[tid][i]!r}, " \
                    f"standby {want[tid][i]!r}"
    return files


# ---- dirty blocks from the WAL (what the pageserver's WAL block index holds) ------

BLKREF = re.compile(r"blkref #\d+: rel (\d+)/(\d+)/(\d+)(?: fork (\w+))? blk (\d+)")
RECORD = re.compile(r"tx:\s*(\d+), lsn: ([0-9A-F]+/[0-9A-F]+),.*?desc: (\S+)(.*)$")


def lsn_int(s):
    hi, lo = s.split("/")
    return (int(hi, 16) << 32) | int(lo, 16)


def dirty_blocks_since(pri, since, upto, path):
    """dirty_blocks, reading the WAL from since only: transactions that
    started before since contribute only their records after it (enough for
    short transactions; the benchmark's pgbench)."""
    return dirty_blocks(pri, since, upto, path, scan_from=since)


def dirty_blocks(pri, since, upto, path, scan_from=None):
    """Write to path the blocks dirty in (since, upto]: changed by a record in
    that range, or touched by a transaction (or one of its subtransactions)
    whose commit or abort record is in that range. Records that only set
    hint bits (XLOG FPI_FOR_HINT, which checksums make every first hint
    after a checkpoint write) or visibility-map bits (Heap2 VISIBLE) change
    no row and do not count. Read from the primary's
    WAL with pg_waldump, from its first segment (the transactions that end
    in the range may have started long before it)."""
    wal = os.path.join(pri.datadir, "pg_wal")
    first = sorted(n for n in os.listdir(wal) if re.fullmatch(r"[0-9A-F]{24}", n))[0]
    start = (int(first[8:16], 16) << 32) | (int(first[16:24], 16) * (16 << 20))
    start_s = scan_from or f"{start >> 32:X}/{start & 0xFFFFFFFF:X}"
    out = pri.run([os.path.join(PGBIN, "pg_waldump"), "-p", wal, "-s", start_s, "-e", upto],
                  check=False).stdout
    s, u = lsn_int(since), lsn_int(upto)
    by_xid, dirty, ended = {}, set(), []
    for line in out.splitlines():
        m = RECORD.search(line)
        if not m:
            continue
        xid, lsn, kind, rest = int(m.group(1)), lsn_int(m.group(2)), m.group(3), m.group(4)
        # records that only set hint bits or visibility-map bits change no row
        hint_only = ("rmgr: XLOG" in line and kind == "FPI_FOR_HINT") or \
            ("rmgr: Heap2" in line and kind == "VISIBLE")
        blocks = set() if hint_only else \
            {(int(a), int(b), int(c), int(blk)) for a, b, c, fork, blk in BLKREF.findall(line)
             if fork in ("", "main")}
        if xid:
            by_xid.setdefault(xid, set()).update(blocks)
        if s < lsn <= u:
            dirty |= blocks
            if "rmgr: Transaction" in line and kind in ("COMMIT", "ABORT", "COMMIT_PREPARED",
                                                         "ABORT_PREPARED"):
                ended.append(xid)
                if "subxacts:" in rest:
                    ended += [int(x) for x in re.findall(r"\d+", rest.split("subxacts:")[1].split(";")[0])]
    for x in ended:
        dirty |= by_xid.get(x, set())
    with open(path, "w") as f:
        for spc, db, rel, blk in sorted(dirty):
            f.write(f"{spc} {db} {rel} {blk}\n")
    return dirty
