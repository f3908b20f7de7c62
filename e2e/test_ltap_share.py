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
from ltap_check import (dirty_blocks, materialize, pause_at_primary_lsn, primary_and_standby,
                        read_lake, table_dir)

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
