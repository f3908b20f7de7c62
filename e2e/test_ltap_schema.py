"""LTAP schema evolution without a rewrite: ADD, DROP and RENAME COLUMN and
type changes on a real PostgreSQL primary, materialized from its hot
standby between lake snapshots. Field ids are attnums, so a rename keeps
its id; Iceberg keeps every schema (schemas, current-schema-id,
last-column-id, each snapshot's schema-id) and Delta maps columns by id.
Data files written under an older schema stay listed where no rewrite is
needed, and readers projecting by field id (ltap_read.mjs: parquet-wasm +
Arrow; ltap_duckdb_ids.mjs: DuckDB) get the rows SELECT gives on the
standby at P, as typsend bytes (assert_exact) and as DuckDB's values.
"""
import json
import os
import subprocess

import pytest

from lakebase import ROOT
from ltap_check import (assert_exact, dirty_blocks, materialize, pause_at_primary_lsn,
                        primary_and_standby, read_lake, table_dir)

PREFIX = "tenants/t1/timelines/l1"
CHUNK = 4


@pytest.fixture
def pgs(workdir):
    pri, sb = primary_and_standby(workdir)
    yield pri, sb
    sb.stop("immediate")
    pri.stop("immediate")


def chunk_of(path):
    return int(path.split("/c", 1)[1][:8])


def metadata(store):
    d = os.path.join(table_dir(store, PREFIX, "postgres", "public", "ev"), "metadata")
    n = max(int(x[1:].split(".")[0]) for x in os.listdir(d) if x.endswith(".metadata.json"))
    with open(os.path.join(d, f"v{n}.metadata.json")) as f:
        return json.load(f)


def delta_log(store):
    d = os.path.join(table_dir(store, PREFIX, "postgres", "public", "ev"), "_delta_log")
    out = []
    for n in sorted(x for x in os.listdir(d) if x.endswith(".json")):
        with open(os.path.join(d, n)) as f:
            out.append([json.loads(line) for line in f if line.strip()])
    return out


def check_delta_mapping(store, attnums):
    """The Delta log per the protocol's column mapping: the newest protocol
    supports it (reader 2 / writer 5, or 3 / 7 with the columnMapping
    feature in both lists); the newest metaData has mode id, a maxColumnId
    no lower than any id, and every field (nested too) an id and a physical
    name, ids unique, physical names unique among siblings; the top-level
    ids are the live columns' attnums (and the system columns')."""
    proto = meta = None
    for version in delta_log(store):
        for a in version:
            proto = a.get("protocol", proto)
            meta = a.get("metaData", meta)
    r, w = proto["minReaderVersion"], proto["minWriterVersion"]
    assert (r, w) == (2, 5) or ((r, w) == (3, 7) and "columnMapping" in proto["readerFeatures"]
                                and "columnMapping" in proto["writerFeatures"]), proto
    conf = meta["configuration"]
    assert conf["delta.columnMapping.mode"] == "id"
    schema = json.loads(meta["schemaString"])
    ids = []

    def walk(t):
        if isinstance(t, dict) and t.get("type") == "struct":
            phys = []
            for f in t["fields"]:
                md = f["metadata"]
                ids.append(md["delta.columnMapping.id"])
                phys.append(md["delta.columnMapping.physicalName"])
                if isinstance(f["type"], dict) and f["type"]["type"] == "array":
                    # the list element's id, keyed by the physical name
                    nested = md["delta.columnMapping.nested.ids"]
                    assert list(nested) == [phys[-1] + ".element"], nested
                    ids.append(nested[phys[-1] + ".element"])
                walk(f["type"])
            assert len(set(phys)) == len(phys), phys
        elif isinstance(t, dict) and t.get("type") == "array":
            walk(t["elementType"])
    walk(schema)
    assert len(set(ids)) == len(ids)
    assert int(conf["delta.columnMapping.maxColumnId"]) >= max(ids)
    top = {f["name"]: f["metadata"]["delta.columnMapping.id"] for f in schema["fields"]}
    assert {k: v for k, v in top.items() if not k.startswith("_pg_")} == attnums, top
    return schema


def attnums(sb):
    return {r[0]: r[1] for r in sb.sql(
        "SELECT attname, attnum FROM pg_attribute WHERE attrelid = 'ev'::regclass "
        "AND attnum > 0 AND NOT attisdropped")}


def duckdb_agrees(sb, store, cols):
    """DuckDB reading each format's live files by field id gives, for the
    native scalar columns cols, the standby's values at P."""
    with sb.connect() as c:
        want = sorted(tuple(None if v is None else str(v) for v in r) for r in c.execute(
            "SELECT " + ", ".join(f'"{n}"' for n in cols) + " FROM ev"))
    d = table_dir(store, PREFIX, "postgres", "public", "ev")
    for fmt in ("iceberg", "delta"):
        lake = read_lake(store, PREFIX, "postgres", "public", "ev", fmt)
        ids = [[lake["fields"][n], n] for n in cols]
        p = subprocess.run(["node", os.path.join(ROOT, "e2e", "ltap_duckdb_ids.mjs"), json.dumps(ids),
                            *[os.path.join(d, f) for f in lake["files"]]],
                           capture_output=True, text=True, cwd=ROOT)
        assert p.returncode == 0, p.stderr
        got = sorted(tuple(r[n] for n in cols) for r in json.loads(p.stdout))
        assert got == want, (fmt, [x for x in got if x not in want][:3], [x for x in want if x not in got][:3])


def test_ltap_schema_evolution(workdir, pgs):
    """ADD COLUMN (with and without a default), DROP COLUMN, RENAME COLUMN
    and type changes between lake snapshots: (a) old data files are kept
    where nothing needs them rewritten (only the dirty chunks' files are
    replaced), and replaced where they would be wrong (a default old rows
    read, a type change); (b) readers by field id get the standby's rows;
    (c) Iceberg keeps every schema and the Delta log maps columns by id."""
    pri, sb = pgs
    store = os.path.join(workdir, "store")
    with pri.connect() as c:
        c.execute("CREATE TABLE ev (id int, a int, b text, c numeric(10,2), d int, k int)")
        c.execute("INSERT INTO ev SELECT g, g * 3, 'b' || g, g / 7.0, g % 11, g FROM generate_series(1, 3000) g")
    p = pause_at_primary_lsn(pri, sb)
    materialize(sb, store, PREFIX, p, chunk_blocks=CHUNK)
    files1 = read_lake(store, PREFIX, "postgres", "public", "ev")["files"]
    assert len(files1) > 3
    assert_exact(sb, pri, store, PREFIX, "postgres", "public", "ev")
    rfn = sb.sql("SELECT relfilenode FROM pg_class WHERE relname = 'ev'")[0][0]
    sb.sql("SELECT pg_wal_replay_resume()")

    # 1. add (no default), rename, drop, and a few rows updated: only the dirty chunks are rewritten
    with pri.connect() as c:
        c.execute("ALTER TABLE ev ADD COLUMN e text")
        c.execute("ALTER TABLE ev RENAME COLUMN b TO b2")
        c.execute("ALTER TABLE ev DROP COLUMN d")
        c.execute("UPDATE ev SET a = -a, e = 'new' WHERE id <= 5")
    s, p = p, pause_at_primary_lsn(pri, sb)
    dirty = dirty_blocks(pri, s, p, os.path.join(workdir, "dirty-1"))
    assert sb.sql("SELECT relfilenode FROM pg_class WHERE relname = 'ev'")[0][0] == rfn
    materialize(sb, store, PREFIX, p, dirty=os.path.join(workdir, "dirty-1"), chunk_blocks=CHUNK)
    files2 = read_lake(store, PREFIX, "postgres", "public", "ev")["files"]
    dirty_chunks = {blk // CHUNK for (_, _, rel, blk) in dirty if rel == rfn}
    assert {chunk_of(f) for f in set(files1) - set(files2)} == dirty_chunks
    kept = set(files1) & set(files2)
    assert len(kept) >= len(files1) - len(dirty_chunks) - 1 and kept, "old files were rewritten"
    assert_exact(sb, pri, store, PREFIX, "postgres", "public", "ev")
    duckdb_agrees(sb, store, ["id", "a", "b2", "c", "e", "k"])
    md = metadata(store)
    assert len(md["schemas"]) == 2 and md["current-schema-id"] == 1
    cur = {f["name"]: f for f in md["schemas"][1]["fields"]}
    old = {f["name"]: f for f in md["schemas"][0]["fields"]}
    assert cur["b2"]["id"] == old["b"]["id"] == 3 and "d" not in cur and "d" in old
    assert cur["e"]["id"] == 7 and md["last-column-id"] >= 10003
    assert md["snapshots"][-1]["schema-id"] == 1 and md["snapshots"][0]["schema-id"] == 0
    schema = check_delta_mapping(store, attnums(sb))
    b2 = [f for f in schema["fields"] if f["name"] == "b2"][0]
    assert b2["metadata"]["delta.columnMapping.physicalName"] == "b", "the physical name outlives a rename"
    sb.sql("SELECT pg_wal_replay_resume()")

    # 2. ADD COLUMN with a non-volatile default: no heap rewrite, but old rows read 42, not NULL,
    #    so every old file is replaced
    with pri.connect() as c:
        c.execute("ALTER TABLE ev ADD COLUMN f int DEFAULT 42")
    s, p = p, pause_at_primary_lsn(pri, sb)
    assert sb.sql("SELECT relfilenode FROM pg_class WHERE relname = 'ev'")[0][0] == rfn
    assert sb.sql("SELECT atthasmissing FROM pg_attribute WHERE attrelid = 'ev'::regclass "
                  "AND attname = 'f'")[0][0]
    dirty_blocks(pri, s, p, os.path.join(workdir, "dirty-2"))
    res = materialize(sb, store, PREFIX, p, dirty=os.path.join(workdir, "dirty-2"), chunk_blocks=CHUNK)
    files3 = read_lake(store, PREFIX, "postgres", "public", "ev")["files"]
    assert not set(files2) & set(files3), "old files would read NULL for the default"
    assert [t for t in res["tables"] if t["table"] == "ev"][0]["full"]
    assert_exact(sb, pri, store, PREFIX, "postgres", "public", "ev")
    duckdb_agrees(sb, store, ["id", "a", "b2", "e", "f"])
    sb.sql("SELECT pg_wal_replay_resume()")

    # 3. a rename alone: a schema change with no file rewritten (Iceberg: no new snapshot;
    #    Delta: a version with metaData only)
    nsnap = len(metadata(store)["snapshots"])
    nver = len(delta_log(store))
    with pri.connect() as c:
        c.execute("ALTER TABLE ev RENAME COLUMN e TO e2")
    s, p = p, pause_at_primary_lsn(pri, sb)
    dirty_blocks(pri, s, p, os.path.join(workdir, "dirty-3"))
    materialize(sb, store, PREFIX, p, dirty=os.path.join(workdir, "dirty-3"), chunk_blocks=CHUNK)
    assert read_lake(store, PREFIX, "postgres", "public", "ev")["files"] == files3
    assert read_lake(store, PREFIX, "postgres", "public", "ev", "delta")["files"] == files3
    md = metadata(store)
    assert len(md["snapshots"]) == nsnap
    assert {f["name"]: f["id"] for f in md["schemas"][-1]["fields"]}["e2"] == 7
    log = delta_log(store)
    assert len(log) == nver + 1
    assert {next(iter(a)) for a in log[-1]} == {"commitInfo", "metaData"}
    assert_exact(sb, pri, store, PREFIX, "postgres", "public", "ev")
    check_delta_mapping(store, attnums(sb))
    sb.sql("SELECT pg_wal_replay_resume()")

    # 4. type changes that Iceberg takes as promotions keep the field id: int -> bigint (a heap
    #    rewrite) and numeric(10,2) -> numeric(14,2); the files are replaced (Delta has no type
    #    widening here)
    with pri.connect() as c:
        c.execute("ALTER TABLE ev ALTER COLUMN a TYPE bigint")
        c.execute("ALTER TABLE ev ALTER COLUMN c TYPE numeric(14,2)")
    s, p = p, pause_at_primary_lsn(pri, sb)
    materialize(sb, store, PREFIX, p, chunk_blocks=CHUNK)
    files4 = read_lake(store, PREFIX, "postgres", "public", "ev")["files"]
    assert not set(files3) & set(files4)
    md = metadata(store)
    cur = {f["id"]: f["type"] for f in md["schemas"][-1]["fields"]}
    assert cur[2] == "long" and cur[4] == "decimal(14, 2)"
    assert {f["id"]: f["type"] for f in md["schemas"][0]["fields"]}[2] == "int"
    assert_exact(sb, pri, store, PREFIX, "postgres", "public", "ev")
    duckdb_agrees(sb, store, ["id", "a", "c", "e2", "f"])
    check_delta_mapping(store, attnums(sb))
    uuid = md["table-uuid"]
    sb.sql("SELECT pg_wal_replay_resume()")

    # 5. a type change that is no promotion (text -> int): per the spec the field cannot keep its
    #    id; ids are attnums, so the lake table starts over, exact
    with pri.connect() as c:
        c.execute("ALTER TABLE ev ALTER COLUMN b2 TYPE int USING length(b2)")
    s, p = p, pause_at_primary_lsn(pri, sb)
    materialize(sb, store, PREFIX, p, chunk_blocks=CHUNK)
    md = metadata(store)
    assert md["table-uuid"] != uuid and len(md["schemas"]) == 1
    assert {f["name"]: f["type"] for f in md["schemas"][0]["fields"]}["b2"] == "int"
    assert_exact(sb, pri, store, PREFIX, "postgres", "public", "ev")
    check_delta_mapping(store, attnums(sb))
