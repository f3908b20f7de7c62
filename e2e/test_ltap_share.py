"""LTAP: lake tables that share data files with others. A partitioned table
is one lake table over the files of its leaf partitions (referenced where
the leaf's columns have the parent's layout, copied where they do not),
read by DuckDB from the files its Iceberg metadata lists and its Delta log
adds, and compared with SELECT on the standby at P.

The transcoder runs through build/tools/ltap-materialize against a real
PostgreSQL hot standby (ltap_check.py), as in test_ltap.py.
"""
import json
import os
import subprocess
from decimal import Decimal

import pytest

from lakebase import ROOT
from ltap_check import (TOOLS, assert_exact, dirty_blocks, materialize, pause_at_primary_lsn,
                        primary_and_standby, read_lake, table_dir)

PREFIX = "tenants/t1/timelines/l1"


@pytest.fixture
def pgs(workdir):
    pri, sb = primary_and_standby(workdir)
    yield pri, sb
    sb.stop("immediate")
    pri.stop("immediate")


def duckdb_rows(files):
    p = subprocess.run(["node", os.path.join(ROOT, "e2e", "ltap_duckdb.mjs"), *files],
                       capture_output=True, text=True, cwd=ROOT)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def lake_rows(store, table, fmt):
    """(id, region, day, amount) of every row DuckDB reads from the files the
    lake table lists, sorted; and those files (absolute paths)."""
    d = table_dir(store, PREFIX, "postgres", "public", table)
    files = [os.path.join(d, f) for f in read_lake(store, PREFIX, "postgres", "public", table, fmt)["files"]]
    if not files:
        return [], files
    rows = [(int(r["id"]), r["region"], r["day"], None if r["amount"] is None else Decimal(r["amount"]))
            for r in duckdb_rows(files)]
    return sorted(rows, key=repr), files


def pg_rows(sb, table):
    with sb.connect() as c:
        return sorted(((r[0], r[1], r[2], r[3]) for r in c.execute(
            f"SELECT id, region, day::text, amount FROM {table}")), key=repr)


def assert_parent_exact(sb, store, table):
    want = pg_rows(sb, table)
    for fmt in ("iceberg", "delta"):
        got, files = lake_rows(store, table, fmt)
        assert len(got) == len(want), (fmt, table, len(got), len(want))
        assert got == want, (fmt, table)
    return files


def leaf_files(store, table):
    d = table_dir(store, PREFIX, "postgres", "public", table)
    return {os.path.join(d, f) for f in read_lake(store, PREFIX, "postgres", "public", table)["files"]}


def test_ltap_partitioned_parent_one_table(workdir, pgs):
    """A range-partitioned table with list sub-partitions, and a
    list-partitioned one with range sub-partitions, each read as one lake
    table: DuckDB on the files its Iceberg metadata lists and its Delta log
    adds returns exactly SELECT * FROM parent at P (and so for the
    sub-partitioned middle level). Leaves with the parent's column layout
    are shared by reference (their own files, no copy); a partition created
    after a DROP COLUMN (other attnums) is copied with the parent's. After
    DETACH, ATTACH and DROP of partitions the next lake snapshot's parent
    has exactly the leaves it then has; an unchanged copied leaf is not
    copied again."""
    pri, sb = pgs
    with pri.connect() as c:
        c.execute("""
            CREATE TABLE m (id int, extra text, region text, day date, amount numeric(10,2))
                PARTITION BY RANGE (day);
            CREATE TABLE m_2020 PARTITION OF m FOR VALUES FROM ('2020-01-01') TO ('2021-01-01')
                PARTITION BY LIST (region);
            CREATE TABLE m_2020_eu PARTITION OF m_2020 FOR VALUES IN ('eu');
            CREATE TABLE m_2020_us PARTITION OF m_2020 FOR VALUES IN ('us');
            CREATE TABLE m_2021 PARTITION OF m FOR VALUES FROM ('2021-01-01') TO ('2022-01-01');
            INSERT INTO m SELECT g, 'x', CASE WHEN g % 2 = 0 THEN 'eu' ELSE 'us' END,
                DATE '2020-01-01' + (g % 700), g * 1.25 FROM generate_series(1, 4000) g;
            ALTER TABLE m DROP COLUMN extra;  -- m: id 1, region 3, day 4, amount 5
            CREATE TABLE m_2022 PARTITION OF m FOR VALUES FROM ('2022-01-01') TO ('2023-01-01');
            INSERT INTO m SELECT g, 'eu', DATE '2022-01-01' + (g % 300), NULL
                FROM generate_series(5001, 6000) g;
            CREATE TABLE l (id int, region text, day date, amount numeric(10,2)) PARTITION BY LIST (region);
            CREATE TABLE l_eu PARTITION OF l FOR VALUES IN ('eu') PARTITION BY RANGE (id);
            CREATE TABLE l_eu_low PARTITION OF l_eu FOR VALUES FROM (MINVALUE) TO (1000);
            CREATE TABLE l_eu_high PARTITION OF l_eu FOR VALUES FROM (1000) TO (MAXVALUE);
            CREATE TABLE l_other PARTITION OF l DEFAULT;
            INSERT INTO l SELECT g, (ARRAY['eu', 'us', 'apac'])[g % 3 + 1], DATE '2000-02-29' + g,
                -g / 8.0 FROM generate_series(1, 3000) g;""")
        attnums = dict(c.execute("SELECT c.relname, array_agg(a.attnum ORDER BY a.attnum)::text "
                                 "FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
                                 "WHERE c.relname IN ('m', 'm_2021', 'm_2022') AND a.attnum > 0 "
                                 "AND NOT a.attisdropped GROUP BY 1").fetchall())
        assert attnums["m"] == attnums["m_2021"] == "{1,3,4,5}" and attnums["m_2022"] == "{1,2,3,4}"
        oid_2022 = c.execute("SELECT 'm_2022'::regclass::oid").fetchone()[0]
    s = pause_at_primary_lsn(pri, sb)
    store = os.path.join(workdir, "store")
    first = materialize(sb, store, PREFIX, s, chunk_blocks=4)
    by_name = {t["table"]: t for t in first["tables"]}
    assert by_name["m"].get("partitioned") and by_name["m_2020"].get("partitioned")
    assert by_name["m"]["rows"] == 5000 and by_name["l"]["rows"] == 3000

    files = assert_parent_exact(sb, store, "m")
    assert_parent_exact(sb, store, "m_2020")
    assert_parent_exact(sb, store, "l")
    assert_parent_exact(sb, store, "l_eu")
    # shared by reference: the leaves' own files; copied: m_2022, in m's own data/
    m_dir = table_dir(store, PREFIX, "postgres", "public", "m")
    shared = {f for f in files if not f.startswith(m_dir + "/")}
    own = {f for f in files if f.startswith(m_dir + "/")}
    assert shared == leaf_files(store, "m_2020_eu") | leaf_files(store, "m_2020_us") | \
        leaf_files(store, "m_2021")
    assert own and all(f.endswith(f"-l{oid_2022}.parquet") for f in own)
    assert by_name["m"]["chunks_written"] == len(own)
    l_files = set(lake_rows(store, "l", "iceberg")[1])
    assert not {f for f in l_files if f.startswith(table_dir(store, PREFIX, "postgres", "public", "l") + "/")}

    # detach, attach (with the parent's layout: shared), drop, and more rows
    sb.sql("SELECT pg_wal_replay_resume()")
    with pri.connect() as c:
        c.execute("""
            ALTER TABLE m DETACH PARTITION m_2021;
            CREATE TABLE m_2023 (id int, extra text, region text, day date, amount numeric(10,2));
            ALTER TABLE m_2023 DROP COLUMN extra;
            INSERT INTO m_2023 SELECT g, 'us', DATE '2023-06-01', 7 FROM generate_series(7001, 7100) g;
            ALTER TABLE m ATTACH PARTITION m_2023 FOR VALUES FROM ('2023-01-01') TO ('2024-01-01');
            DROP TABLE m_2020_us;
            INSERT INTO m SELECT g, 'eu', DATE '2020-03-01', 1 FROM generate_series(8001, 8050) g;
            ALTER TABLE l DETACH PARTITION l_eu;""")
    p = pause_at_primary_lsn(pri, sb)
    dirty = os.path.join(workdir, "dirty")
    dirty_blocks(pri, s, p, dirty)
    second = materialize(sb, store, PREFIX, p, dirty=dirty, chunk_blocks=4)
    by_name = {t["table"]: t for t in second["tables"]}
    files2 = assert_parent_exact(sb, store, "m")
    assert_parent_exact(sb, store, "m_2020")
    assert_parent_exact(sb, store, "l")
    assert_parent_exact(sb, store, "l_eu")  # detached, still partitioned on its own
    shared2 = {f for f in files2 if not f.startswith(m_dir + "/")}
    assert shared2 == leaf_files(store, "m_2020_eu") | leaf_files(store, "m_2023")
    assert not shared2 & leaf_files(store, "m_2021"), "a detached partition's files stay in the parent"
    assert os.path.isdir(table_dir(store, PREFIX, "postgres", "public", "m_2021")), \
        "the detached partition lost its own lake table"
    # m_2022 did not change: its copy is kept, not written again
    assert by_name["m"]["chunks_written"] == 0
    assert {f for f in files2 if f.startswith(m_dir + "/")} == own
    assert by_name["m"]["rows"] == len(pg_rows(sb, "m"))


def test_ltap_branch_starts_from_parent_files(workdir, pgs):
    """A branch's first lake run started from its parent's lake at S (the
    transcoder's seed): each table lists the parent's data files by key and
    writes only the chunks dirty between S and the branch's P (counted:
    files and bytes written against the parent's full run); DuckDB on the
    branch's tables equals SELECT at P, exactly; a table the parent does
    not have is written in full; and the parent's later changes do not
    appear in the branch."""
    pri, sb = pgs
    chunk = 8
    with pri.connect() as c:
        c.execute("""
            CREATE TABLE big (id int, v int, pad text) WITH (autovacuum_enabled = false);
            INSERT INTO big SELECT g, 0, repeat('p', 100) FROM generate_series(1, 20000) g;
            CREATE TABLE small (id int);
            INSERT INTO small SELECT generate_series(1, 10);""")
    s = pause_at_primary_lsn(pri, sb)
    store = os.path.join(workdir, "store")
    parent_prefix, branch_prefix = PREFIX, "tenants/t1/timelines/branch"
    parent = materialize(sb, store, parent_prefix, s, chunk_blocks=chunk)
    pbig = [t for t in parent["tables"] if t["table"] == "big"][0]
    assert pbig["chunks_written"] > 30
    parent_dir = table_dir(store, parent_prefix, "postgres", "public", "big")
    parent_files = set(read_lake(store, parent_prefix, "postgres", "public", "big")["files"])

    sb.sql("SELECT pg_wal_replay_resume()")
    with pri.connect() as c:
        c.execute("UPDATE big SET v = 1 WHERE id BETWEEN 1000 AND 1040")
        c.execute("CREATE TABLE fresh (id int); INSERT INTO fresh SELECT generate_series(1, 5)")
    p = pause_at_primary_lsn(pri, sb)
    dirty = os.path.join(workdir, "dirty")
    dirty_blocks(pri, s, p, dirty)
    argv = ["--seed-prefix", parent_prefix, "--seed-lsn", s]
    branch = materialize_seeded(sb, store, branch_prefix, p, dirty, chunk, argv)
    by_name = {t["table"]: t for t in branch["tables"]}
    big, small, fresh = by_name["big"], by_name["small"], by_name["fresh"]
    assert big["seeded"] and small["seeded"] and not fresh.get("seeded")
    print(f"parent wrote {pbig['chunks_written']} chunks ({parent['lake_bytes_written']} bytes); "
          f"the branch {big['chunks_written']} ({branch['lake_bytes_written']} bytes)")
    # the update's old and new row versions: a few chunks, not the table
    assert 0 < big["chunks_written"] <= 4 and small["chunks_written"] == 0
    assert branch["lake_bytes_written"] * 5 < parent["lake_bytes_written"]
    assert big["rows"] == 20000 and small["rows"] == 10 and fresh["rows"] == 5
    bfiles = read_lake(store, branch_prefix, "postgres", "public", "big")["files"]
    shared = {f for f in bfiles if f.startswith(parent_dir + "/")}
    assert len(shared) >= pbig["chunks_written"] - 4
    assert {f[len(parent_dir) + 1:] for f in shared} <= parent_files
    for t in ("big", "small", "fresh"):
        assert_exact(sb, pri, store, branch_prefix, "postgres", "public", t)
    at_p = pg_table(sb, "big")
    assert duckdb_table(store, branch_prefix, "big") == at_p

    # the parent goes on; the branch keeps what it had at P
    sb.sql("SELECT pg_wal_replay_resume()")
    with pri.connect() as c:
        c.execute("DELETE FROM big WHERE id <= 5000")
    p2 = pause_at_primary_lsn(pri, sb)
    dirty_blocks(pri, s, p2, dirty)
    materialize(sb, store, parent_prefix, p2, dirty=dirty, chunk_blocks=chunk)
    assert duckdb_table(store, parent_prefix, "big") == pg_table(sb, "big")
    assert duckdb_table(store, branch_prefix, "big") == at_p
    assert read_lake(store, branch_prefix, "postgres", "public", "big")["files"] == bfiles


def materialize_seeded(sb, store, prefix, lsn, dirty, chunk, extra):
    p = subprocess.run([os.path.join(TOOLS, "ltap-materialize"), "--conninfo", sb.dsn(), "--store",
                        "file://" + store, "--prefix", prefix, "--lsn", lsn, "--dirty", dirty,
                        "--chunk-blocks", str(chunk), *extra], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def pg_table(sb, table):
    with sb.connect() as c:
        return sorted(tuple(r) for r in c.execute(f"SELECT id, v, pad FROM {table}"))


def duckdb_table(store, prefix, table):
    d = table_dir(store, prefix, "postgres", "public", table)
    out = None
    for fmt in ("iceberg", "delta"):
        files = [os.path.join(d, f) for f in read_lake(store, prefix, "postgres", "public", table, fmt)["files"]]
        rows = sorted((int(r["id"]), int(r["v"]), r["pad"]) for r in duckdb_rows(files))
        assert out is None or rows == out, fmt
        out = rows
    return out


def test_ltap_pageserver_branch_shares_parent_files(cluster):
    """On the pageserver, a branch's first lake run starts from its parent's
    lake at the parent's run S before the branch point: its table lists
    the parent's data files by key and writes only the chunks dirty since
    (files and bytes written, against the parent's first run); the
    branch's lake equals SELECT on the branch at its P, exactly and as
    DuckDB reads it; the parent's later changes do not appear in it; and
    the parent's expiry (GC retention 2 s) keeps the files the branch still
    lists, so the branch stays readable."""
    import time
    import uuid
    from lakebase import insert_lsn, start_compute, timeline_view
    from test_ltap import lake_status, pageserver_with_ingest, ps_snapshot
    store = os.path.join(cluster.workdir, "lake-store")
    ps, pri, t, root = pageserver_with_ingest(
        cluster, store, extra_args=["--lake_chunk_blocks", "8", "--gc_retention", "2s"])
    try:
        pri.sql("CREATE TABLE big (id int, v int, pad text) WITH (autovacuum_enabled = false)")
        pri.sql("INSERT INTO big SELECT g, 0, repeat('p', 100) FROM generate_series(1, 20000) g")
        # Hint bits and visibility set, WAL-logged, before the parent's run: the branch's
        # first run counts a page whose LSN is past the parent's commit as dirty, and the
        # first hint bits set on the branch (an FPI each, with checksums) would be that.
        pri.sql("VACUUM (FREEZE) big")
        ps_snapshot(ps, pri, t, root)
        body, tables = lake_status(ps, t, root)
        parent_bytes = body["lake_bytes_written"]
        nfiles = tables[("postgres", "public", "big")]["files"]
        assert nfiles > 30
        root_prefix = f"{t}/{root}"
        root_dir = table_dir(store, root_prefix, "postgres", "public", "big")

        at = insert_lsn(pri)
        b = uuid.uuid4().hex
        st, meta = ps.create(t, b, ancestor=root, lsn=at)
        assert st == 201, meta
        br, _ = start_compute(timeline_view(cluster, b), ps, "branch", meta)
        br.sql("UPDATE big SET v = 1 WHERE id BETWEEN 1000 AND 1040")
        ps_snapshot(ps, br, t, b)
        body_b, tables_b = lake_status(ps, t, b)
        assert "error" not in body_b, body_b
        print(f"parent's first run wrote {parent_bytes} bytes in {nfiles} files; "
              f"the branch's {body_b['lake_bytes_written']}")
        assert 0 < body_b["lake_bytes_written"] * 5 < parent_bytes
        branch_prefix = f"{t}/{b}"
        bfiles = read_lake(store, branch_prefix, "postgres", "public", "big")["files"]
        shared = [f for f in bfiles if f.startswith(root_dir + "/")]
        assert len(shared) >= len(bfiles) - 4 and len(bfiles) - len(shared) >= 1
        assert_exact(br, br, store, branch_prefix, "postgres", "public", "big")
        at_p = sorted(tuple(r) for r in br.sql("SELECT id, v, pad FROM big"))
        assert duckdb_table(store, branch_prefix, "big") == at_p

        # the parent rewrites every chunk, and its expiry runs past the retention
        pri.sql("UPDATE big SET v = 2")
        ps_snapshot(ps, pri, t, root)
        time.sleep(3)
        pri.sql("INSERT INTO big VALUES (0, 0, 'x')")
        ps_snapshot(ps, pri, t, root)
        assert duckdb_table(store, root_prefix, "big") == \
            sorted(tuple(r) for r in pri.sql("SELECT id, v, pad FROM big"))
        bdir = table_dir(store, branch_prefix, "postgres", "public", "big")
        gone = [f for f in bfiles if not os.path.exists(os.path.join(bdir, f))]
        assert not gone, f"the parent's expiry deleted {len(gone)} files the branch lists"
        assert read_lake(store, branch_prefix, "postgres", "public", "big")["files"] == bfiles
        assert duckdb_table(store, branch_prefix, "big") == at_p
        assert_exact(br, br, store, branch_prefix, "postgres", "public", "big")
        # the parent's replaced files the branch does not list did expire
        assert len([f for f in os.listdir(os.path.join(root_dir, "data"))
                    if f.endswith(".parquet")]) < 2 * nfiles
    finally:
        ps.stop()
