"""LTAP: tables materialized by the transcoder from a hot standby paused at
P, read back by engines from the Iceberg metadata and from the Delta log,
and compared as typsend bytes with SELECT on that standby at P.

The transcoder runs through build/tools/ltap-materialize, the same
ltap_materialize() the pageserver calls, pointed at a real PostgreSQL hot
standby. The dirty blocks for incremental runs come from the primary's WAL
(pg_waldump), by the same rule as the pageserver's WAL block index: blocks
changed in (S, P], and blocks touched by transactions that ended in (S, P].
"""
import json
import os
import random
import signal
import subprocess
import time

import pytest

from lakebase import ROOT, lsn_int, wait_for
from ltap_check import (TOOLS, assert_exact, dirty_blocks, materialize, pause_at_primary_lsn,
                        primary_and_standby, read_lake, table_dir)

PREFIX = "tenants/t1/timelines/l1"


@pytest.fixture
def pgs(workdir):
    pri, sb = primary_and_standby(workdir)
    yield pri, sb
    sb.stop("immediate")
    pri.stop("immediate")


ADVERSARIAL = r"""
CREATE EXTENSION hstore;
CREATE EXTENSION citext;
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE DOMAIN posint AS int CHECK (VALUE > 0);
CREATE TYPE pair AS (a int, b text);
CREATE TYPE posint_pair AS (a posint, b int8);
CREATE TABLE every_type (
    id int PRIMARY KEY,
    b bool, i2 int2, i4 int4, i8 int8, f4 float4, f8 float8,
    n numeric, n10_2 numeric(10,2), n38 numeric(38,0), n38_10 numeric(38,10),
    t text, vc varchar(20), c char(5), nm name, ba bytea, u uuid,
    d date, tm time, tmtz timetz, ts timestamp, tstz timestamptz, iv interval,
    j json, jb jsonb, e mood, dom posint, o oid, rc regclass, m money,
    inet_ inet, cidr_ cidr, mac macaddr, bits bit(4), vbits varbit(10),
    r int4range, tr tstzrange, pt point,
    a_i int[], a_t text[], a_n numeric[], a_f8 float8[], a_2d int[],
    comp pair, hs hstore, ci citext, x xml
);
INSERT INTO every_type (id) VALUES (0);  -- every column NULL
INSERT INTO every_type VALUES (1,
    true, -32768, -2147483648, -9223372036854775808, 'NaN', '-Infinity',
    'NaN', -99999999.99, 99999999999999999999999999999999999999, 0.0000000001,
    '', '', '', '', '\x', '00000000-0000-0000-0000-000000000000',
    '-infinity', '00:00:00', '00:00:00+15:59', '-infinity', '-infinity',
    '-178000000 years',
    '{}', '{}', 'sad', 1, 0, 'pg_class', '-92233720368547758.08',
    '0.0.0.0/0', '::/0', '00:00:00:00:00:00', B'0000', B'',
    'empty', '(,)', '(0,0)',
    '{}', '{}', '{}', '{}', '{{1,2},{3,4}}',
    ROW(NULL, NULL), '', '', '<a/>');
INSERT INTO every_type VALUES (2,
    false, 32767, 2147483647, 9223372036854775807, '-0', 'Infinity',
    'Infinity', 99999999.99, -99999999999999999999999999999999999999, -9999999999999999999999999999.9999999999,
    'héllo wörld ✓ 𝄞', 'x', 'ab', 'name', '\x00ff10', 'ffffffff-ffff-ffff-ffff-ffffffffffff',
    'infinity', '24:00:00', '23:59:59.999999-15:59', 'infinity', 'infinity',
    '178000000 years 11 mons 30 days 23:59:59.999999',
    '{"a": [1, 2.50, null], "b": "\u00e9"}', '{"k": [true, false, null, 1e100], "a": {"b": "c"}}',
    'happy', 2147483647, 4294967295, 'pg_type', '92233720368547758.07',
    '2001:db8::1/128', '10.0.0.0/8', 'ff:ff:ff:ff:ff:ff', B'1111', B'1010101010',
    '[1,10)', '[2020-01-01,infinity)', '(1e300,-1e-300)',
    '{1,NULL,3}', '{"",NULL,"a\"b"}', '{NaN,1.5,-0.001}', '{-0,NaN,Infinity}', '[0:1]={7,8}',
    ROW(1, 'x'), 'a=>1, b=>NULL', 'MiXeD', '<x y="z">t</x>');
INSERT INTO every_type (id, n, n10_2, d, ts, tstz, f4, f8, a_i, t) VALUES
    (3, '-0.000', 0.00, '4713-01-01 BC', '4713-01-01 00:00:00 BC', '294276-12-31 23:59:59.999999+00',
     '1.17549435e-38', '4.9e-324', '[5:6]={1,2}', repeat('long toasted text ', 20000)),
    (4, repeat('9', 1000)::numeric, NULL, '5874897-12-31', '294276-12-31 23:59:59.999999', '4713-01-01 00:00:00+00 BC',
     '3.4028235e38', '1.7976931348623157e308', '{}', NULL),
    (5, ('-' || repeat('1', 500) || '.' || repeat('0', 499) || '1')::numeric, NULL, '2000-01-01', '1970-01-01', '1970-01-01 00:00:00+00',
     '-1.4e-45', '-2.2250738585072014e-308', '{NULL}', 'x'),
    (6, '1e-1000'::numeric, NULL, '1999-12-31', '2000-01-01 00:00:00.000001', NULL, '0', '0', NULL, NULL);
CREATE TYPE money_at AS (amount numeric(10,2), day date, note text, ok bool);
CREATE TYPE nested AS (p pair, n int);
CREATE TABLE composites (id int, m money_at, n nested, d posint_pair);
INSERT INTO composites VALUES
    (1, ROW(12.50, '2020-02-29', 'a "quoted" note', true), ROW(ROW(1, 'x'), 2), ROW(1, 2)),
    (2, ROW(NULL, NULL, NULL, NULL), ROW(NULL, NULL), ROW(NULL, NULL)),
    (3, ROW('NaN', 'infinity', '', false), NULL, NULL),
    (4, NULL, ROW(NULL, 5), ROW(7, NULL));
CREATE TABLE net_types (id int, i inet, c cidr, m8 macaddr8, ia inet[], ma macaddr[], vb varbit[]);
INSERT INTO net_types VALUES
    (1, '192.168.1.5/24', '192.168.0.0/16', '08:00:2b:01:02:03:04:05',
     '{192.168.1.5/24, ::ffff:1.2.3.4, NULL, fe80::1/64}', '{08:00:2b:01:02:03}', '{101, "", NULL}'),
    (2, '::ffff:10.0.0.1', '0.0.0.0/0', 'ff:ff:ff:ff:ff:ff:ff:ff', '{}', '{}', '{}'),
    (3, NULL, NULL, NULL, NULL, NULL, NULL);
"""


def test_ltap_adversarial_types_roundtrip(workdir, pgs):
    """Every built-in type at its extremes (NaN, ±Infinity, -0, 1000-digit
    numerics, BC and infinite dates, interval extremes, arrays with NULLs
    and lower bounds, empty and NULL composites, hstore and citext values)
    comes back from the lake files through COPY FROM (FORMAT binary) as
    identical typsend bytes, from the Iceberg metadata and the Delta log."""
    pri, sb = pgs
    with pri.connect() as c:
        c.execute(ADVERSARIAL)
    p = pause_at_primary_lsn(pri, sb)
    store = os.path.join(workdir, "store")
    res = materialize(sb, store, PREFIX, p)
    t = [x for x in res["tables"] if x["table"] == "every_type"]
    assert len(t) == 1 and t[0]["rows"] == 7 and t[0]["lake_lsn"] == p, res
    assert_exact(sb, pri, store, PREFIX, "postgres", "public", "net_types")
    assert_exact(sb, pri, store, PREFIX, "postgres", "public", "composites")
    comp = read_lake(store, PREFIX, "postgres", "public", "composites")
    crow = {int(r["id"]): r for r in comp["rows"]}
    assert crow[1]["m"] == {"amount": "1250", "day": "18321", "note": 'a "quoted" note', "ok": True}
    assert crow[2]["m"] == {"amount": None, "day": None, "note": None, "ok": None}
    assert crow[4]["m"] is None and crow[1]["d"] == {"a": "1", "b": "2"}
    assert crow[3]["m"] is None and [int(e["attnum"]) for e in crow[3]["_pg_overflow"]] == [2]
    assert "n" not in comp["fields"] and crow[1]["_pg_overflow"]  # a composite inside: overflow
    net = {int(r["id"]): r for r in read_lake(store, PREFIX, "postgres", "public", "net_types")["rows"]}
    assert net[1]["ia"] == ["192.168.1.5/24", "::ffff:1.2.3.4/128", None, "fe80::1/64"]
    assert net[1]["vb"] == ["101", "", None] and not net[1]["_pg_overflow"]
    files = assert_exact(sb, pri, store, PREFIX, "postgres", "public", "every_type")
    assert files, "no data files"
    lake = read_lake(store, PREFIX, "postgres", "public", "every_type")
    # the native columns are native: a NaN numeric is in overflow, a finite one is a decimal
    rows = {int(r["id"]): r for r in lake["rows"]}
    assert rows[1]["n10_2"] == "-9999999999" and rows[2]["n38"] == "-" + "9" * 38
    assert rows[1]["n"] is None and any(int(e["attnum"]) == 8 for e in rows[1]["_pg_overflow"])
    assert rows[1]["d"] is None and rows[2]["tm"] == "86400000000"
    assert rows[2]["iv"] == {"months": "2136000011", "days": "30", "microseconds": "86399999999"}
    assert rows[2]["a_i"] == ["1", None, "3"] and rows[1]["a_i"] == []
    assert rows[2]["a_2d"] is None  # lower bound 0: overflow
    assert rows[2]["comp"] == {"a": "1", "b": "x"} and rows[1]["comp"] == {"a": None, "b": None}
    # ranges are STRUCTs, an infinite bound NULL; one with an 'infinity' bound is in overflow
    assert rows[1]["r"] == {"empty": True, "lower": None, "upper": None,
                            "lower_inclusive": False, "upper_inclusive": False}
    assert rows[2]["r"] == {"empty": False, "lower": "1", "upper": "10",
                            "lower_inclusive": True, "upper_inclusive": False}
    assert rows[1]["tr"]["lower"] is None and rows[1]["tr"]["upper"] is None
    assert rows[2]["tr"] is None and any(int(e["attnum"]) == 37 for e in rows[2]["_pg_overflow"])
    # network addresses, MAC addresses and bit strings are native strings
    assert rows[2]["inet_"] == "2001:db8::1/128" and rows[1]["cidr_"] == "::/0"
    assert rows[2]["cidr_"] == "10.0.0.0/8" and rows[2]["mac"] == "ff:ff:ff:ff:ff:ff"
    assert rows[2]["bits"] == "1111" and rows[2]["vbits"] == "1010101010" and rows[1]["vbits"] == ""
    assert lake["fields"]["id"] == 1 and lake["fields"]["_pg_overflow"] == 10003
    # the summary records P in both formats
    assert lake["summary"]["lakebase.lsn"] == p
    assert read_lake(store, PREFIX, "postgres", "public", "every_type", "delta")["summary"]["lakebase.lsn"] == p


def tables_of(sb, db):
    return [tuple(r) for r in sb.connect(dbname=db).execute(
        "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.relkind = 'r' AND c.relpersistence = 'p' "
        "AND n.nspname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2").fetchall()]


def test_ltap_random_workload_exact(workdir, pgs):
    """Random rounds of inserts, updates, deletes, aborted transactions,
    rolled-back subtransactions, a long transaction that commits after S,
    TRUNCATE, ADD/DROP/RENAME COLUMN, DROP TABLE and TOASTed values, in two
    databases and a partitioned table: after each round the incremental
    lake snapshot at P equals SELECT on the standby at P, value for value.
    Temp and unlogged tables are never materialized."""
    pri, sb = pgs
    seed = int(os.environ.get("LB_LTAP_SEED", random.randrange(1 << 30)))
    print(f"LB_LTAP_SEED={seed}")
    rng = random.Random(seed)
    store = os.path.join(workdir, "store")
    pri.sql("CREATE DATABASE db2")
    setup = """
        CREATE TABLE acct (id int PRIMARY KEY, v int, pad text, dropme int, renameme int);
        CREATE TABLE longtx_t (id int, n int);
        INSERT INTO longtx_t SELECT g, 0 FROM generate_series(1, 20) g;
        CREATE TABLE toasty (id int, big text, n numeric(12,3), at timestamptz);
        CREATE TABLE meas (id int, day date, val float8) PARTITION BY RANGE (day);
        CREATE TABLE meas_a PARTITION OF meas FOR VALUES FROM ('2000-01-01') TO ('2020-01-01');
        CREATE TABLE meas_b PARTITION OF meas FOR VALUES FROM ('2020-01-01') TO ('2040-01-01');
        CREATE UNLOGGED TABLE scratch_unlogged (x int);
        INSERT INTO scratch_unlogged VALUES (1);
        INSERT INTO acct (id, v, pad, dropme, renameme) SELECT g, g, repeat('p', 50), g, g FROM generate_series(1, 3000) g;
    """
    for db in ("postgres", "db2"):
        with pri.connect(dbname=db) as c:
            c.execute(setup)
    next_id = {"postgres": 3001, "db2": 3001}
    long_tx = None
    s = None
    for rnd in range(6):
        for db in ("postgres", "db2"):
            with pri.connect(dbname=db) as c:
                for _ in range(rng.randrange(5, 15)):
                    op = rng.choice(["ins", "upd", "del", "abort", "sub", "toast", "part"])
                    if op == "ins":
                        n = rng.randrange(1, 200)
                        c.execute("INSERT INTO acct (id, v, pad) SELECT g, g, repeat('i', %s::int) FROM generate_series(%s::int, %s::int) g",
                                  (rng.randrange(0, 80), next_id[db], next_id[db] + n - 1))
                        next_id[db] += n
                    elif op == "upd":
                        lo = rng.randrange(1, next_id[db])
                        c.execute("UPDATE acct SET v = v + 1, pad = pad || 'u' WHERE id BETWEEN %s AND %s",
                                  (lo, lo + rng.randrange(1, 100)))
                    elif op == "del":
                        lo = rng.randrange(1, next_id[db])
                        c.execute("DELETE FROM acct WHERE id BETWEEN %s AND %s", (lo, lo + rng.randrange(1, 30)))
                    elif op == "abort":
                        with c.transaction(force_rollback=True):
                            c.execute("INSERT INTO acct (id, v, pad) VALUES (-1, -1, 'aborted')")
                            c.execute("UPDATE acct SET v = -v WHERE id BETWEEN 1 AND 100")
                    elif op == "sub":
                        with c.transaction():
                            c.execute("UPDATE acct SET v = v * 2 WHERE id > 0 AND id % 97 = 0")
                            try:
                                with c.transaction():
                                    c.execute("DELETE FROM acct WHERE id > 0 AND id % 89 = 0")
                                    raise RuntimeError("roll back the savepoint")
                            except RuntimeError:
                                pass
                    elif op == "toast":
                        c.execute("INSERT INTO toasty VALUES (%s, repeat(md5(%s::text), %s::int), %s, now())",
                                  (rng.randrange(1000), rng.random(), rng.choice([1, 1000, 5000]),
                                   round(rng.uniform(-1e8, 1e8), 3)))
                        c.execute("UPDATE toasty SET big = big || 'x' WHERE id %% 7 = %s", (rng.randrange(7),))
                    else:
                        c.execute("INSERT INTO meas SELECT g, DATE '2000-01-01' + (g * 37 %% 14000), %s "
                                  "FROM generate_series(1, %s::int) g", (rng.random(), rng.randrange(1, 300)))
        with pri.connect() as c:
            if rnd == 2:
                c.execute("TRUNCATE toasty")
                c.execute("ALTER TABLE acct ADD COLUMN extra text DEFAULT 'dflt'")
            if rnd == 3:
                c.execute("ALTER TABLE acct RENAME COLUMN renameme TO renamed")
                c.execute("ALTER TABLE acct DROP COLUMN dropme")
                c.execute("CREATE TABLE doomed (x int)")
                c.execute("INSERT INTO doomed SELECT generate_series(1, 10)")
            if rnd == 4:
                c.execute("DROP TABLE doomed")
                c.execute("ALTER TABLE toasty ALTER COLUMN n TYPE numeric(20,5)")
        # a transaction that wrote before S and commits after it
        if long_tx is not None:
            long_tx.commit()
            long_tx.close()
            long_tx = None
        p = pause_at_primary_lsn(pri, sb)
        dirty = os.path.join(workdir, f"dirty-{rnd}")
        if s is not None:
            dirty_blocks(pri, s, p, dirty)
        res = materialize(sb, store, PREFIX, p, dirty=dirty if s is not None else None, chunk_blocks=4)
        for db in ("postgres", "db2"):
            tables = tables_of(sb, db)
            assert ("public", "scratch_unlogged") not in tables
            for schema, table in tables:
                assert_exact(sb, pri, store, PREFIX, db, schema, table)
            assert not os.path.exists(table_dir(store, PREFIX, db, "public", "scratch_unlogged"))
            # the partitioned parent: one lake table over exactly its leaves' files
            # (test_ltap_share.py compares its rows with SELECT through DuckDB)
            meas = read_lake(store, PREFIX, db, "public", "meas")
            mdir = table_dir(store, PREFIX, db, "public", "meas")
            leaves = set()
            for leaf in ("meas_a", "meas_b"):
                ldir = table_dir(store, PREFIX, db, "public", leaf)
                leaves |= {os.path.join(ldir, f) for f in read_lake(store, PREFIX, db, "public", leaf)["files"]}
            assert {os.path.join(mdir, f) for f in meas["files"]} == leaves
            with sb.connect(dbname=db) as c:
                assert len(meas["rows"]) == c.execute("SELECT count(*) FROM meas").fetchone()[0]
        if rnd == 4:
            assert res["dropped"] == 1
            assert not os.path.exists(table_dir(store, PREFIX, "postgres", "public", "doomed"))
        if rnd >= 1:
            written = {(t["database"], t["table"]): t["chunks_written"] for t in res["tables"]}
            assert written[("postgres", "longtx_t")] == (1 if rnd in (1, 4) else 0), \
                "the long transaction's commit after S makes its blocks dirty, and nothing else does"
        sb.sql("SELECT pg_wal_replay_resume()")
        s = p
        if rnd in (0, 3):
            import psycopg
            long_tx = psycopg.connect(pri.dsn())
            long_tx.execute("UPDATE longtx_t SET n = n + 1 WHERE id < 10")
            long_tx.execute("INSERT INTO acct (id, pad) VALUES (%s, 'long')", (-7 - rnd,))


def duckdb_rows(files):
    p = subprocess.run(["node", os.path.join(ROOT, "e2e", "ltap_duckdb.mjs"), *files],
                       capture_output=True, text=True, cwd=ROOT)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def test_ltap_duckdb_agrees(workdir, pgs):
    """DuckDB reading the data files the Iceberg metadata lists, and those
    the Delta log adds, gives the same value as PostgreSQL for every native
    column of every row."""
    pri, sb = pgs
    with pri.connect() as c:
        c.execute("""
            SET TimeZone = 'UTC';
            CREATE TABLE facts (id int, big bigint, small int2, amount numeric(10,2), label text,
                day date, at timestamp, atz timestamptz, ok bool, ratio float8, u uuid,
                tags text[]);
            INSERT INTO facts SELECT g, g::bigint * 1000000007, (g % 30000)::int2, g * 1.25 - 500, 'label ' || g,
                DATE '1960-01-01' + g, TIMESTAMP '1999-12-31 23:59:59.5' + g * INTERVAL '1 hour 1.000001 s',
                TIMESTAMPTZ '2020-02-29 12:00:00+00' - g * INTERVAL '1 day', g % 2 = 0, g / 8.0,
                md5(g::text)::uuid, ARRAY['a' || g, NULL, 'b']
            FROM generate_series(1, 3000) g;
            INSERT INTO facts (id) VALUES (0);""")
    p = pause_at_primary_lsn(pri, sb)
    store = os.path.join(workdir, "store")
    materialize(sb, store, PREFIX, p, chunk_blocks=8)
    d = table_dir(store, PREFIX, "postgres", "public", "facts")
    want = {}
    with sb.connect() as c:
        c.execute("SET TimeZone = 'UTC'; SET extra_float_digits = 0")
        for r in c.execute("SELECT id, big, small, amount::text, label, day::text, "
                           "(extract(epoch FROM at) * 1000000)::bigint::text, "
                           "(extract(epoch FROM atz) * 1000000)::bigint::text, ok, ratio, u::text, tags "
                           "FROM facts"):
            want[r[0]] = tuple(r)
    for fmt in ("iceberg", "delta"):
        files = read_lake(store, PREFIX, "postgres", "public", "facts", fmt)["files"]
        assert len(files) > 1
        rows = duckdb_rows([os.path.join(d, f) for f in files])
        assert len(rows) == len(want)
        for r in rows:
            num = lambda x, f=int: None if x is None else f(x)  # noqa: E731
            got = (int(r["id"]), num(r["big"]), num(r["small"]), r["amount"], r["label"], r["day"],
                   r["at"], r["atz"], None if r["ok"] is None else r["ok"] == "true",
                   num(r["ratio"], float), r["u"],
                   None if r["tags"] is None else [None if x == "NULL" else x
                                                   for x in r["tags"].strip("[]").split(", ")])
            assert want[got[0]] == got, (fmt, want[got[0]], got)


def test_ltap_incremental_bound(workdir, pgs):
    """Updating 1% of a table rewrites only the chunks that hold the updated
    rows' old or new versions: at most |chunks(old TIDs) ∪ chunks(new TIDs)|
    chunks, and the snapshot stays exact. LB_LTAP_INCR_MB sets the table's
    size (default 24 MB; at 1024 a run takes about two minutes here and
    rewrote 84 of 4103 chunks, the bound; it rewrote all of them before hint
    FPIs stopped counting as changes)."""
    pri, sb = pgs
    mb = int(os.environ.get("LB_LTAP_INCR_MB", "24"))
    rows = mb * 1000000 // 120
    chunk = 32
    with pri.connect() as c:
        c.execute("CREATE TABLE big (id int, v int, pad text) WITH (autovacuum_enabled = false)")
        c.execute("INSERT INTO big SELECT g, 0, repeat('x', 80) FROM generate_series(1, %s::int) g", (rows,))
    s = pause_at_primary_lsn(pri, sb)
    store = os.path.join(workdir, "store")
    first = materialize(sb, store, PREFIX, s, chunk_blocks=chunk)
    nchunks = [t for t in first["tables"] if t["table"] == "big"][0]["chunks_written"]
    sb.sql("SELECT pg_wal_replay_resume()")
    lo = rows // 3
    hi = lo + rows // 100
    with pri.connect() as c:
        old = [r[0] for r in c.execute("SELECT (ctid::text::point)[0]::int FROM big WHERE id BETWEEN %s AND %s",
                                       (lo, hi - 1))]
        c.execute("UPDATE big SET v = 1 WHERE id BETWEEN %s AND %s", (lo, hi - 1))
        new = [r[0] for r in c.execute("SELECT (ctid::text::point)[0]::int FROM big WHERE id BETWEEN %s AND %s",
                                       (lo, hi - 1))]
    p = pause_at_primary_lsn(pri, sb)
    dirty = os.path.join(workdir, "dirty")
    dirty_blocks(pri, s, p, dirty)
    res = materialize(sb, store, PREFIX, p, dirty=dirty, chunk_blocks=chunk)
    written = [t for t in res["tables"] if t["table"] == "big"][0]["chunks_written"]
    bound = len({b // chunk for b in old} | {b // chunk for b in new})
    print(f"table {nchunks} chunks of {chunk} blocks; 1% update rewrote {written}, bound {bound}")
    assert 0 < written <= bound, (written, bound)
    assert written * 10 < nchunks, "a 1% update rewrote more than a tenth of the table"
    if mb <= 64:  # the readers hold every row in memory; exactness at scale: the other tests
        assert_exact(sb, pri, store, PREFIX, "postgres", "public", "big", formats=("iceberg",))


def test_ltap_kill9_mid_materialization(workdir, pgs):
    """kill -9 of the transcoder while it writes a table's chunks leaves the
    previous lake snapshot visible, unchanged, in both formats (no half
    snapshot); the next run at the same P finishes it, exactly, and deletes
    the data files the killed run wrote but never committed."""
    pri, sb = pgs
    with pri.connect() as c:
        c.execute("CREATE TABLE t (id int, pad text)")
        c.execute("INSERT INTO t SELECT g, repeat('y', 200) FROM generate_series(1, 20000) g")
    p1 = pause_at_primary_lsn(pri, sb)
    store = os.path.join(workdir, "store")
    materialize(sb, store, PREFIX, p1, chunk_blocks=4)
    before = {fmt: read_lake(store, PREFIX, "postgres", "public", "t", fmt) for fmt in ("iceberg", "delta")}
    sb.sql("SELECT pg_wal_replay_resume()")
    with pri.connect() as c:
        c.execute("TRUNCATE t")  # a new relfilenode: the next run rewrites every chunk
        c.execute("INSERT INTO t SELECT g, repeat('z', 200) FROM generate_series(1, 200000) g")
    p2 = pause_at_primary_lsn(pri, sb)
    data = os.path.join(table_dir(store, PREFIX, "postgres", "public", "t"), "data")
    old_files = set(os.listdir(data))
    proc = subprocess.Popen([os.path.join(TOOLS, "ltap-materialize"), "--conninfo", sb.dsn(), "--store",
                             "file://" + store, "--prefix", PREFIX, "--lsn", p2, "--chunk-blocks", "4"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    wait_for(lambda: len(set(os.listdir(data)) - old_files) >= 3 or proc.poll() is not None, 120,
             what="new data files")
    assert proc.poll() is None, "the run finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    for fmt in ("iceberg", "delta"):
        after = read_lake(store, PREFIX, "postgres", "public", "t", fmt)
        assert after["files"] == before[fmt]["files"] and after["rows"] == before[fmt]["rows"], \
            f"{fmt}: the killed run changed the visible snapshot"
    # objects only: a file:// put killed mid-write leaves a ".lbtmp-" temp file, which listings skip
    objects = lambda: {f for f in os.listdir(data) if not f.startswith(".lbtmp-")}  # noqa: E731
    orphans = objects() - old_files
    assert orphans
    res = materialize(sb, store, PREFIX, p2, chunk_blocks=4)
    t = [x for x in res["tables"] if x["table"] == "t"][0]
    assert t["lake_lsn"] == p2 and t["full"] and t["rows"] == 200000
    assert_exact(sb, pri, store, PREFIX, "postgres", "public", "t")
    # the killed run's files are gone; what is left is live, or was live before (older snapshots)
    left = objects()
    assert not (orphans & left), f"{len(orphans & left)} orphans of the killed run remain"
    assert res["orphans_deleted"] >= len(orphans)
    live = set(read_lake(store, PREFIX, "postgres", "public", "t", "iceberg")["files"])
    assert {"data/" + f for f in left} == live | set(before["iceberg"]["files"])


def test_ltap_bad_input(workdir):
    """A standby that does not answer, a bad LSN and a bad store URL get a
    clear error and exit status 1, and write nothing."""
    tool = os.path.join(TOOLS, "ltap-materialize")
    store = os.path.join(workdir, "store")
    dead = "host=127.0.0.1 port=1 user=postgres connect_timeout=2"
    cases = [
        ([tool, "--conninfo", dead, "--store", "file://" + store, "--prefix", "p", "--lsn", "0/1000000"],
         "could not connect to the standby"),
        ([tool, "--conninfo", dead, "--store", "file://" + store, "--prefix", "p", "--lsn", "nonsense"],
         "no LSN"),
        ([tool, "--conninfo", dead, "--store", "ftp://x", "--prefix", "p", "--lsn", "0/1"],
         "could not open store"),
        ([tool, "--conninfo", dead], "usage"),
    ]
    for argv, msg in cases:
        p = subprocess.run(argv, capture_output=True, text=True)
        assert p.returncode == 1 and msg in p.stderr, (argv, p.returncode, p.stderr)
    assert not os.path.exists(os.path.join(store, "p"))


# ---- the pageserver's lake: materialized at each snapshot ------------------------------


def pageserver_with_ingest(cluster, store, extra_args=None):
    """lakebase.pageserver_with_ingest on store: a directory, or an s3:// URL."""
    import lakebase
    remote = store if "://" in store else "file://" + store
    return lakebase.pageserver_with_ingest(cluster, remote=remote, extra_args=extra_args)


def ps_snapshot(ps, primary, t, l):
    """Checkpoint the primary, wait for the redo standby to replay it, take
    a snapshot (the lake run happens inside it) and return its P."""
    from lakebase import http
    primary.sql("checkpoint")
    target = lsn_int(primary.sql("select pg_current_wal_flush_lsn()::text")[0][0])
    wait_for(lambda: lsn_int(http("GET", ps.tl(t, l))[1]["last_record_lsn"]) >= target, 120,
             what="the redo standby to replay the primary's WAL")
    st, snap = http("POST", ps.tl(t, l, "/snapshot"), timeout=600)
    assert st == 200, snap
    if snap["snapshot_taken"]:
        return snap["snapshots"][-1]["lsn"]
    # the ingest's own tick took it first: its lake run follows
    return wait_lake(ps, t, l, target)


def wait_lake(ps, t, l, target):
    """Wait until a lake run at or past target completed; its LSN."""
    from lakebase import http

    def ran():
        _, body = http("GET", ps.tl(t, l, "/lake"))
        return body.get("run_lsn") and lsn_int(body["run_lsn"]) >= target and body["run_lsn"]
    return wait_for(ran, 300, what="a lake run past the primary's checkpoint")


def lake_status(ps, t, l):
    from lakebase import http
    st, body = http("GET", ps.tl(t, l, "/lake"))
    assert st == 200, body
    return body, {(x["database"], x["schema"], x["table"]): x for x in body["tables"]}


def test_ltap_pageserver_lake_at_each_snapshot(cluster):
    """With ingest, each pageserver snapshot at P materializes every table
    into <tenant>/<timeline>/lake: DuckDB and the Iceberg and Delta readers
    read rows that equal the primary's (quiesced, so at P) as typsend
    bytes; a transaction open at the first snapshot that commits before the
    second shows in the second although its commit touched no heap block
    (the pending blocks carried by the WAL block index's scan); GET .../lake
    and /metrics show each table's lake LSN, lag, files and bytes."""
    import urllib.request
    store = os.path.join(cluster.workdir, "lake-store")
    ps, pri, t, l = pageserver_with_ingest(cluster, store)
    prefix = f"{t}/{l}"
    try:
        with pri.connect() as c:
            c.execute("""
                CREATE TABLE acct (id int PRIMARY KEY, owner text, balance numeric(12,2),
                    opened date, tags text[]);
                INSERT INTO acct SELECT g, 'owner ' || g, g * 1.5, DATE '2000-01-01' + g,
                    ARRAY['t' || g, NULL] FROM generate_series(1, 20000) g;
                DELETE FROM acct WHERE id % 11 = 0;
                CREATE TABLE docs (id int, body text);
                INSERT INTO docs SELECT g, repeat(md5(g::text), 400) FROM generate_series(1, 50) g;
                CREATE UNLOGGED TABLE scratch (x int);
                INSERT INTO scratch VALUES (1);""")
        long = pri.connect()
        long.execute("BEGIN")
        long.execute("UPDATE acct SET owner = 'long-running' WHERE id <= 300")
        long.execute("INSERT INTO docs VALUES (1000, 'from the long transaction')")
        p1 = ps_snapshot(ps, pri, t, l)
        body, tables = lake_status(ps, t, l)
        assert body["run_lsn"] == p1 and "error" not in body, body
        assert set(tables) == {("postgres", "public", "acct"), ("postgres", "public", "docs")}
        for key in tables:
            assert tables[key]["lake_lsn"] == p1 and tables[key]["files"] >= 1, tables[key]
        assert tables[("postgres", "public", "acct")]["rows"] == 20000 - 20000 // 11
        for table in ("acct", "docs"):
            assert_exact(pri, pri, store, prefix, "postgres", "public", table)

        long.execute("COMMIT")  # changes no heap block after P1
        long.close()
        pri.sql("UPDATE acct SET balance = -1 WHERE id = 20000")
        p2 = ps_snapshot(ps, pri, t, l)
        body, tables = lake_status(ps, t, l)
        assert body["run_lsn"] == p2 and "error" not in body, body
        for table in ("acct", "docs"):
            assert_exact(pri, pri, store, prefix, "postgres", "public", table)
        owners = pri.sql("SELECT count(*) FROM acct WHERE owner = 'long-running'")[0][0]
        assert owners == 300 - 300 // 11
        d = table_dir(store, prefix, "postgres", "public", "acct")
        for fmt in ("iceberg", "delta"):
            files = read_lake(store, prefix, "postgres", "public", "acct", fmt)["files"]
            rows = duckdb_rows([os.path.join(d, f) for f in files])
            assert sum(1 for r in rows if r["owner"] == "long-running") == owners, fmt
            assert [r["balance"] for r in rows if int(r["id"]) == 20000] == ["-1.00"], fmt

        text = urllib.request.urlopen(ps.url + "/metrics", timeout=10).read().decode()
        labels = f'tenant_id="{t}",timeline_id="{l}",database="postgres",schema="public",table="acct"'
        metrics = dict(line.rsplit(" ", 1) for line in text.splitlines()
                       if line and not line.startswith("#"))
        assert float(metrics[f"pageserver_lake_lsn{{{labels}}}"]) == lsn_int(p2)
        assert float(metrics[f"pageserver_lake_files{{{labels}}}"]) == tables[("postgres", "public", "acct")]["files"]
        assert float(metrics[f"pageserver_lake_bytes{{{labels}}}"]) > 0
        assert f"pageserver_lake_lag_bytes{{{labels}}}" in metrics
    finally:
        ps.stop()


# heap blocks per lake data file in the kill tests: the 400000-row table
# (about 11800 blocks) is about 185 chunks, so a run is caught mid-flight
# with many chunks still to write.
KILL_CHUNK_BLOCKS = 64


def _data_files(data):
    return {f for f in os.listdir(data) if f.endswith(".parquet") and not f.startswith(".lbtmp-")}


def _lake_both(store, prefix):
    return {fmt: read_lake(store, prefix, "postgres", "public", "t", fmt)
            for fmt in ("iceberg", "delta")}


@pytest.mark.parametrize("how", ["kill9", "sigterm"])
def test_ltap_pageserver_kill9_mid_materialization(cluster, how):
    """kill -9 of the pageserver while its lake run writes a table's chunks
    leaves the previous lake snapshot visible, unchanged, in both formats;
    after a restart the next lake run finishes the table, exactly, and
    deletes the data files the killed run wrote but never committed.
    SIGTERM stops the run before its next chunk (a clean exit, status 0,
    without waiting for the table), with the same result.

    Mid-flight is made certain, not hoped for: once the run has written two
    new data files the pageserver is frozen (SIGSTOP), both formats are read
    in that one frozen state and compared with the commit read before the
    run; only if they still equal it (and most chunks are still to be
    written) is the signal sent. A run that had already committed is let
    finish and the round is retried with a fresh TRUNCATE + INSERT."""
    import threading
    from lakebase import Pageserver
    store = os.path.join(cluster.workdir, "lake-store")
    args = ["--lake_chunk_blocks", str(KILL_CHUNK_BLOCKS)]
    # SIGTERM: the snapshot comes from the ingest's own tick (an HTTP request
    # in flight would hold the shutdown until it is answered).
    if how == "sigterm":
        args += ["--snapshot_interval", "1s"]
    ps, pri, t, l = pageserver_with_ingest(cluster, store, extra_args=args)
    prefix = f"{t}/{l}"
    try:
        pri.sql("CREATE TABLE t (id int, pad text)")
        pri.sql("INSERT INTO t SELECT g, repeat('y', 200) FROM generate_series(1, 2000) g")
        ps_snapshot(ps, pri, t, l)
        data = os.path.join(table_dir(store, prefix, "postgres", "public", "t"), "data")
        for attempt in range(5):
            # the commit readers see before the run
            committed = _lake_both(store, prefix)
            assert committed["iceberg"]["files"] == committed["delta"]["files"], committed
            # A new relfilenode: the next run rewrites every chunk of the table.
            pri.sql("TRUNCATE t")
            pri.sql("INSERT INTO t SELECT g, repeat('z', 200) FROM generate_series(1, 400000) g")
            nblocks = pri.sql("SELECT pg_relation_size('t') / 8192")[0][0]
            nchunks = -(-nblocks // KILL_CHUNK_BLOCKS)
            old_files = _data_files(data)
            done = []
            if how == "kill9":
                th = threading.Thread(target=lambda: done.append(_try_snapshot(ps, pri, t, l)),
                                      daemon=True)
                th.start()
            else:
                pri.sql("checkpoint")  # the tick snapshots once the standby replays it
            wait_for(lambda: len(_data_files(data) - old_files) >= 2 or done, 300,
                     what="new data files of the lake run")
            os.kill(ps.proc.p.pid, signal.SIGSTOP)
            # what readers see while the run writes chunks, in one frozen state
            before = _lake_both(store, prefix)
            written = len(_data_files(data) - old_files)
            unchanged = all(before[f]["files"] == committed[f]["files"] and
                            before[f]["rows"] == committed[f]["rows"] for f in before)
            # A format shows the commit before the run or the run's whole
            # table (the run committed before it was frozen), never a part.
            for f in before:
                assert (before[f]["files"] == committed[f]["files"] or
                        len(before[f]["rows"]) == 400000), \
                    f"{f}: a lake run in progress made part of its table visible"
            mid_flight = not done and written <= nchunks // 2 and unchanged
            print(f"round={attempt} written={written}/{nchunks} unchanged={unchanged} "
                  f"done={bool(done)}")
            if mid_flight:
                break
            # the run committed (or nearly finished) before it was caught: let it finish
            os.kill(ps.proc.p.pid, signal.SIGCONT)
            if how == "kill9":
                th.join(600)
            ps_snapshot(ps, pri, t, l)
        else:
            pytest.fail("no lake run was caught in the middle in 5 rounds")
        if how == "kill9":
            ps.kill()  # SIGKILL ends a stopped process too
            th.join(60)
        else:
            # pending while stopped, delivered as it continues
            os.kill(ps.proc.p.pid, signal.SIGTERM)
            os.kill(ps.proc.p.pid, signal.SIGCONT)
            ps.stop()  # asserts exit status 0
        for fmt in ("iceberg", "delta"):
            after = read_lake(store, prefix, "postgres", "public", "t", fmt)
            assert after["files"] == before[fmt]["files"] and after["rows"] == before[fmt]["rows"], \
                f"{fmt}: the killed run changed the visible snapshot"
        orphans = _data_files(data) - old_files  # written by the stopped run, never committed
        assert orphans
        ps2 = Pageserver(cluster.workdir, remote="file://" + store, extra_args=args)
        ps2.data, ps2.dir, ps2.port = ps.data, ps.dir, ps.port
        ps = ps2.start()
        pri.sql("INSERT INTO t VALUES (0, 'after the restart')")
        rows = pri.sql("SELECT count(*) FROM t")[0][0]
        # The lake status is in memory: the first lake run after the restart
        # fills it. A snapshot taken while the reopened WAL block index is
        # still behind P skips its lake run (its status shows the error and
        # no run): the next snapshot's run is the one to check.
        for _ in range(5):
            p = ps_snapshot(ps, pri, t, l)
            body, tables = lake_status(ps, t, l)
            if body.get("run_lsn") == p:
                break
            print(f"no lake run at {p} after the restart: {body}")
            assert "not yet at the snapshot" in body.get("error", "not yet at the snapshot"), body
        else:
            pytest.fail(f"no lake run after the restart: {body}")
        assert "error" not in body, body
        assert tables[("postgres", "public", "t")]["lake_lsn"] == p, body
        assert tables[("postgres", "public", "t")]["rows"] == rows == 400001
        assert_exact(pri, pri, store, prefix, "postgres", "public", "t")
        left = orphans & _data_files(data)
        assert not left, f"{len(left)} of {len(orphans)} files of the stopped run remain"
    finally:
        try:
            os.kill(ps.proc.p.pid, signal.SIGCONT)
        except (OSError, AttributeError):
            pass
        ps.stop()


def _try_snapshot(ps, primary, t, l):
    try:
        return ps_snapshot(ps, primary, t, l)
    except Exception as e:  # the pageserver was killed under it
        return e


def test_ltap_pageserver_expiry(cluster):
    """A data file that a lake run replaced is kept while it is younger than
    the timeline's GC retention (older snapshots stay readable) and deleted
    by the first run after it has been out of the live set longer; the
    current snapshot stays exact."""
    store = os.path.join(cluster.workdir, "lake-store")
    ps, pri, t, l = pageserver_with_ingest(cluster, store, extra_args=["--gc_retention", "2s"])
    prefix = f"{t}/{l}"
    data = os.path.join(table_dir(store, prefix, "postgres", "public", "t"), "data")
    try:
        pri.sql("CREATE TABLE t (id int, v text)")
        pri.sql("INSERT INTO t SELECT g, 'a' FROM generate_series(1, 1000) g")
        ps_snapshot(ps, pri, t, l)
        (f1,) = read_lake(store, prefix, "postgres", "public", "t")["files"]
        pri.sql("UPDATE t SET v = 'b'")
        ps_snapshot(ps, pri, t, l)
        (f2,) = read_lake(store, prefix, "postgres", "public", "t")["files"]
        assert f2 != f1 and os.path.exists(os.path.join(store, prefix, "lake", "postgres", "public",
                                                        "t", f1)), "removed inside the retention"
        time.sleep(2.5)
        pri.sql("UPDATE t SET v = 'c'")
        ps_snapshot(ps, pri, t, l)
        (f3,) = read_lake(store, prefix, "postgres", "public", "t")["files"]
        names = set(os.listdir(data))
        assert os.path.basename(f1) not in names, "not deleted after the retention"
        assert os.path.basename(f2) in names and os.path.basename(f3) in names
        assert_exact(pri, pri, store, prefix, "postgres", "public", "t")
    finally:
        ps.stop()
