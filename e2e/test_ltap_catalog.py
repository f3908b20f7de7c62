"""The pageserver's lake as engines find it: its Iceberg REST catalog read
by a real client (iceberg-js), the data files it leads to read by DuckDB,
and the lake status after a restart (also with the pageserver's disk lost).
"""
import json
import os
import shutil
import subprocess
import urllib.parse
import urllib.request

from lakebase import ROOT, Auth, http, lsn_int, wait_for
from test_ltap import lake_status, pageserver_with_ingest, ps_snapshot

SCHEMA = """
CREATE SCHEMA sales;
CREATE TABLE public.items (id int, name text, price numeric(10,2), added date, ok bool);
INSERT INTO public.items SELECT g, 'item ' || g, g * 1.25, DATE '2020-01-01' + g, g % 3 = 0
    FROM generate_series(1, 5000) g;
DELETE FROM public.items WHERE id % 7 = 0;
CREATE TABLE sales.orders (id bigint, item int, qty int2, note text);
INSERT INTO sales.orders SELECT g, g % 100, (g % 9)::int2, CASE WHEN g % 5 = 0 THEN NULL ELSE 'n' || g END
    FROM generate_series(1, 3000) g;
CREATE TABLE "odd name" ("Mixed Case" int);
INSERT INTO "odd name" VALUES (1), (2);
"""

# what each table's rows are in PostgreSQL, as text DuckDB's VARCHAR casts give
QUERIES = {
    ("postgres", "public", "items"):
        "SELECT id::text, name, price::text, added::text, ok::text FROM public.items",
    ("postgres", "sales", "orders"):
        "SELECT id::text, item::text, qty::text, note FROM sales.orders",
    ("postgres", "public", "odd name"): 'SELECT "Mixed Case"::text FROM "odd name"',
    ("shop", "public", "stock"): "SELECT sku, n::text FROM stock",
}
COLUMNS = {
    ("postgres", "public", "items"): ["id", "name", "price", "added", "ok"],
    ("postgres", "sales", "orders"): ["id", "item", "qty", "note"],
    ("postgres", "public", "odd name"): ["Mixed Case"],
    ("shop", "public", "stock"): ["sku", "n"],
}


def _big_ints_as_float(text):
    """JSON as a JavaScript client parses it: integers past 2^53 lose
    precision (snapshot ids), so compare both sides that way."""
    return json.loads(text, parse_int=lambda s: float(s) if abs(int(s)) > 2 ** 53 else int(s))


def catalog_view(base, token, warehouse=None):
    argv = ["node", os.path.join(ROOT, "e2e", "ltap_catalog.mjs"), base, token]
    if warehouse:
        argv.append(warehouse)
    p = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert p.returncode == 0, p.stderr
    return _big_ints_as_float(p.stdout)


def raw(method, url, token, headers=None):
    """(status, headers, parsed JSON body or raw bytes) without the harness's defaults."""
    h = dict(headers or {})
    if token:
        h["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, method=method, headers=h,
                                 data=b"{}" if method in ("POST", "PUT") else None)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            status, hdrs, body = r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        status, hdrs, body = e.code, dict(e.headers), e.read()
    try:
        return status, hdrs, json.loads(body)
    except ValueError:
        return status, hdrs, body


def error_model(resp, status, typ):
    st, _, body = resp
    assert st == status, resp
    assert isinstance(body, dict) and set(body) == {"error"}, resp
    assert body["error"]["code"] == status and body["error"]["type"] == typ, resp
    assert body["error"]["message"], resp


def test_ltap_iceberg_catalog(cluster):
    """An Iceberg REST client (iceberg-js) lists the lake's namespaces
    ([database], then [database, schema]) and tables, loads each table: the
    metadata it gets equals the table's newest metadata file, and the data
    files that metadata leads to (manifest list, manifests) read in DuckDB
    to the rows PostgreSQL has at the lake LSN. With and without a
    warehouse (the /v1/config prefix). Unknown names, bad paths and bad
    tokens get the spec's error model; writes are refused (read-only)."""
    store = os.path.join(cluster.workdir, "lake-store")
    ps, pri, t, l = pageserver_with_ingest(cluster, store)
    auth = Auth.of(cluster.workdir)
    try:
        with pri.connect() as c:
            c.execute(SCHEMA)
        pri.sql("CREATE DATABASE shop")
        with pri.connect(dbname="shop") as c:
            c.execute("CREATE TABLE stock (sku text, n int); "
                      "INSERT INTO stock SELECT 'sku-' || g, g FROM generate_series(1, 100) g")
        p = ps_snapshot(ps, pri, t, l)
        body, status = lake_status(ps, t, l)
        assert set(status) == set(QUERIES), body

        base = f"{ps.url}/v1/tenant/{t}/timeline/{l}/iceberg"
        analytics = auth.mint("analytics", tenant=t)
        views = [catalog_view(base, analytics), catalog_view(base, analytics, warehouse="lakebase")]
        for view in views:
            assert sorted(view["namespaces"]) == [["postgres"], ["postgres", "public"],
                                                  ["postgres", "sales"], ["shop"],
                                                  ["shop", "public"]]
            got = {(x["namespace"][0], x["namespace"][1], x["name"]): x for x in view["tables"]}
            assert set(got) == set(QUERIES)
            for key, x in got.items():
                assert x["exists"] is True
                res = x["result"]
                loc = res["metadata-location"]
                assert loc.startswith("file://" + store + "/"), loc
                with open(loc[len("file://"):]) as f:
                    on_disk = _big_ints_as_float(f.read())
                assert res["metadata"] == on_disk, key
                assert os.path.isdir(res["config"]["lakebase.table-path"]), res["config"]
                assert res["etag"], res
                summary = [s for s in on_disk["snapshots"]
                           if s["snapshot-id"] == on_disk["current-snapshot-id"]][0]["summary"]
                assert lsn_int(summary["lakebase.lsn"]) <= lsn_int(p)
                assert len(x["files"]) == int(summary["total-data-files"]) == status[key]["files"]
                # The primary is quiesced since P: its rows are the rows at P.
                dbname = key[0]
                with pri.connect(dbname=dbname) as c:
                    want = sorted(tuple(r) for r in c.execute(QUERIES[key]))
                rows = sorted(tuple(r[col] for col in COLUMNS[key]) for r in x["rows"])
                assert rows == want, key
                assert all(r["_pg_tid_block"] is not None for r in x["rows"])
            # names that do not exist, and writes, as the client sees them
            m = view["missing"]
            assert m["table"]["status"] == 404 and m["table"]["type"] == "NoSuchTableException"
            assert m["table"]["exists"] is False
            assert m["namespace"]["status"] == 404
            assert m["namespace"]["type"] == "NoSuchNamespaceException"
            assert m["namespace"]["exists"] is False
            for op in ("create", "drop"):
                assert m[op]["status"] == 406, m[op]
                assert m[op]["type"] == "UnsupportedOperationException", m[op]

        # The same over plain HTTP: shapes and every refusal.
        st, _, cfg = raw("GET", base + "/v1/config?warehouse=x", analytics)
        assert st == 200 and cfg["overrides"]["prefix"] == "lake", cfg
        assert "GET /v1/{prefix}/namespaces/{namespace}/tables/{table}" in cfg["endpoints"]
        tbl = base + "/v1/lake/namespaces/postgres%1Fpublic/tables/items"
        st, hdrs, loaded = raw("GET", tbl, analytics)
        assert st == 200 and loaded["metadata-location"].endswith(".metadata.json"), loaded
        assert raw("GET", tbl, analytics, {"If-None-Match": hdrs["ETag"]})[0] == 304
        assert raw("HEAD", tbl, analytics)[0] == 204
        assert raw("HEAD", base + "/v1/namespaces/shop", analytics)[0] == 204
        st, _, ns = raw("GET", base + "/v1/namespaces/shop%1Fpublic", analytics)
        assert st == 200 and ns["namespace"] == ["shop", "public"], ns
        st, _, lst = raw("GET", base + "/v1/namespaces?parent=shop", analytics)
        assert st == 200 and lst["namespaces"] == [["shop", "public"]], lst
        # pages: pageSize bounds a page, next-page-token leads on, bad ones are refused
        st, _, pg1 = raw("GET", base + "/v1/namespaces?pageToken=&pageSize=1", analytics)
        assert st == 200 and pg1["namespaces"] == [["postgres"]] and pg1["next-page-token"], pg1
        st, _, pg2 = raw("GET", base + "/v1/namespaces?pageSize=1&pageToken=" +
                         pg1["next-page-token"], analytics)
        assert st == 200 and pg2["namespaces"] == [["shop"]] and "next-page-token" not in pg2, pg2
        st, _, tp = raw("GET", base + "/v1/namespaces/postgres%1Fpublic/tables?pageSize=1&pageToken=1",
                        analytics)
        assert st == 200 and [x["name"] for x in tp["identifiers"]] == ["odd name"], tp
        assert "next-page-token" not in tp, tp
        for q in ("pageToken=x", "pageToken=99", "pageToken=-1", "pageSize=0", "pageSize=abc"):
            error_model(raw("GET", base + "/v1/namespaces?" + q, analytics), 400,
                        "BadRequestException")
        odd = base + "/v1/namespaces/postgres%1Fpublic/tables/" + urllib.parse.quote("odd name")
        assert raw("GET", odd, analytics)[0] == 200
        assert raw("HEAD", base + "/v1/namespaces/postgres%1Fpublic/tables/nope", analytics)[0] \
            == 404
        error_model(raw("GET", base + "/v1/namespaces/postgres%1Fpublic/tables/nope", analytics),
                    404, "NoSuchTableException")
        error_model(raw("GET", base + "/v1/namespaces/postgres/tables/items", analytics),
                    404, "NoSuchTableException")  # a database holds schemas, not tables
        error_model(raw("GET", base + "/v1/namespaces/nodb%1Fpublic/tables", analytics),
                    404, "NoSuchNamespaceException")
        error_model(raw("GET", base + "/v1/namespaces/postgres%1Fpublic%1Fx", analytics),
                    404, "NoSuchNamespaceException")
        error_model(raw("GET", base + "/v1/namespaces?parent=nodb", analytics),
                    404, "NoSuchNamespaceException")
        error_model(raw("GET", base + "/v1/namespaces/postgres%1F", analytics),
                    400, "BadRequestException")
        error_model(raw("GET", base + "/v1/namespaces/%1Fpublic/tables", analytics),
                    400, "BadRequestException")
        error_model(raw("GET", base + "/v1/otherprefix/namespaces", analytics),
                    404, "NotFoundException")
        other = "ab" * 16
        error_model(raw("GET", f"{ps.url}/v1/tenant/{t}/timeline/{other}/iceberg/v1/namespaces",
                        analytics), 404, "NotFoundException")
        error_model(raw("GET", f"{ps.url}/v1/tenant/{t}/timeline/XYZ/iceberg/v1/namespaces",
                        analytics), 400, "BadRequestException")
        # credentials: none, garbage, another tenant's, another timeline's compute
        error_model(raw("GET", base + "/v1/namespaces", None), 401, "NotAuthorizedException")
        error_model(raw("GET", base + "/v1/namespaces", "not.a.token"), 401,
                    "NotAuthorizedException")
        error_model(raw("GET", base + "/v1/namespaces", auth.mint("analytics", tenant=other)),
                    403, "ForbiddenException")
        error_model(raw("GET", base + "/v1/namespaces",
                        auth.mint("compute", tenant=t, timeline=other)), 403, "ForbiddenException")
        error_model(raw("GET", base + "/v1/namespaces", auth.mint("safekeeper", sub="sk-9")),
                    403, "ForbiddenException")
        # the timeline's own compute token and management read it too
        assert raw("GET", base + "/v1/namespaces", auth.mint("compute", tenant=t, timeline=l))[0] \
            == 200
        assert raw("GET", base + "/v1/namespaces", auth.management)[0] == 200
        # an analytics token reads the lake status, but nothing else of the API
        assert http("GET", ps.tl(t, l, "/lake"), token=analytics)[0] == 200
        assert http("GET", ps.tl(t, l, "/basebackup"), token=analytics)[0] == 403
        assert http("POST", ps.tl(t, l, "/snapshot"), token=analytics)[0] == 403
        # read-only: every write is refused, and the table stays
        for method, path in [("POST", "/v1/namespaces"),
                             ("DELETE", "/v1/namespaces/postgres%1Fpublic"),
                             ("POST", "/v1/namespaces/postgres%1Fpublic/tables"),
                             ("POST", "/v1/lake/namespaces/postgres%1Fpublic/tables/items"),
                             ("DELETE", "/v1/namespaces/postgres%1Fpublic/tables/items"),
                             ("POST", "/v1/tables/rename"), ("POST", "/v1/transactions/commit")]:
            error_model(raw(method, base + path, auth.management), 406,
                        "UnsupportedOperationException")
        assert raw("GET", tbl, analytics)[0] == 200
        assert raw("POST", tbl + "/metrics", analytics)[0] == 204
    finally:
        ps.stop()


def _metrics(ps, t, l):
    text = urllib.request.urlopen(ps.url + "/metrics", timeout=10).read().decode()
    out = {}
    for line in text.splitlines():
        if line.startswith("pageserver_lake_") and f'timeline_id="{l}"' in line:
            name, value = line.rsplit(" ", 1)
            if not name.startswith("pageserver_lake_lag_bytes"):
                out[name] = float(value)
    return out


def _tables(body):
    return sorted((x["database"], x["schema"], x["table"], x["lake_lsn"], x["files"], x["bytes"],
                   x["rows"]) for x in body["tables"])


def test_ltap_lake_status_survives_restart(cluster):
    """After a restart, and after a restart with the pageserver's disk lost,
    GET .../lake and the pageserver_lake_* metrics report the same per-table
    lake LSN, files, bytes and rows as before, read back from the lake's
    own metadata in object storage, before any new lake run."""
    store = os.path.join(cluster.workdir, "lake-store")
    ps, pri, t, l = pageserver_with_ingest(cluster, store,
                                           extra_args=["--snapshot_interval", "1h"])
    try:
        pri.sql("CREATE TABLE a (id int, v text)")
        pri.sql("INSERT INTO a SELECT g, md5(g::text) FROM generate_series(1, 20000) g")
        pri.sql("CREATE TABLE b (id int)")
        pri.sql("INSERT INTO b SELECT generate_series(1, 10)")
        ps_snapshot(ps, pri, t, l)
        pri.sql("UPDATE a SET v = 'x' WHERE id = 1")  # a second commit of a, none of b
        p = ps_snapshot(ps, pri, t, l)
        before, _ = lake_status(ps, t, l)
        assert before["run_lsn"] == p and len(before["tables"]) == 2, before
        metrics_before = _metrics(ps, t, l)
        assert len(metrics_before) == 8, metrics_before  # lsn, files, bytes, rows per table

        for lose_disk in (False, True):
            if lose_disk:  # the machine is gone: its redo standbys with it
                ps.kill(with_standbys=True)
                shutil.rmtree(ps.data)
            else:
                ps.stop()
            ps.start()
            # the start-up job fills /metrics without a status request
            wait_for(lambda: _metrics(ps, t, l) == metrics_before, 60,
                     what="the lake metrics read back from the store")
            after, _ = lake_status(ps, t, l)
            assert after["run_lsn"] == before["run_lsn"], (lose_disk, after)
            assert _tables(after) == _tables(before), (lose_disk, before, after)
            assert lsn_int(after["commit_lsn"]) >= lsn_int(p)
    finally:
        ps.stop()


def _snapshots(store, prefix, table):
    d = os.path.join(store, prefix, "lake", "postgres", "public", table)
    p = subprocess.run(["node", os.path.join(ROOT, "e2e", "ltap_snapshots.mjs"), d],
                       capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def test_ltap_expired_snapshots_leave_the_metadata(cluster):
    """Once a replaced data file expires with the GC retention, the Iceberg
    snapshots that named it are gone from the metadata ("snapshots",
    "snapshot-log") with their manifest lists, so no snapshot a reader can
    choose names a missing file (time travel to an expired snapshot finds
    no such snapshot); the snapshots inside the window stay whole and
    readable; the catalog serves the trimmed metadata; the next commit
    goes on from it, exactly."""
    from ltap_check import assert_exact
    store = os.path.join(cluster.workdir, "lake-store")
    ps, pri, t, l = pageserver_with_ingest(cluster, store, extra_args=["--gc_retention", "3s"])
    prefix = f"{t}/{l}"
    try:
        pri.sql("CREATE TABLE t (id int, v text)")
        pri.sql("INSERT INTO t SELECT g, 'a' FROM generate_series(1, 1000) g")
        ps_snapshot(ps, pri, t, l)
        first = _snapshots(store, prefix, "t")
        (s1,) = [s for s in first["snapshots"] if s["id"] == first["current"]]
        pri.sql("UPDATE t SET v = 'b'")
        ps_snapshot(ps, pri, t, l)
        two = _snapshots(store, prefix, "t")
        assert len(two["snapshots"]) == 2 and not two["unreadable"], two
        assert all(not s["missing"] for s in two["snapshots"]), "a file expired inside the window"
        import time
        time.sleep(3.5)
        pri.sql("UPDATE t SET v = 'c'")
        ps_snapshot(ps, pri, t, l)
        after = _snapshots(store, prefix, "t")
        ids = [s["id"] for s in after["snapshots"]]
        assert s1["id"] not in ids and s1["id"] not in after["snapshotLog"], after
        assert len(ids) == 2 and after["current"] in ids, after
        assert not after["unreadable"], after
        for s in after["snapshots"]:
            assert s["files"] and not s["missing"], s  # every kept snapshot reads whole
        assert all(not os.path.exists(f) for f in s1["files"]), "the expired file is still there"
        # the expired snapshot's manifest list is gone from the store
        mdir = os.path.join(store, prefix, "lake", "postgres", "public", "t", "metadata")
        lists = [f for f in os.listdir(mdir) if f.startswith("snap-")]
        assert not [f for f in lists if f.startswith(f"snap-{s1['id']}-")], lists
        # the catalog serves the trimmed metadata
        base = f"{ps.url}/v1/tenant/{t}/timeline/{l}/iceberg"
        st, loaded = http("GET", base + "/v1/namespaces/postgres%1Fpublic/tables/t")
        assert st == 200 and loaded["metadata-location"].endswith("/" + after["metadata"]), loaded
        assert len(loaded["metadata"]["snapshots"]) == 2
        # and the writer goes on from it
        pri.sql("UPDATE t SET v = 'd' WHERE id <= 10")
        ps_snapshot(ps, pri, t, l)
        assert_exact(pri, pri, store, prefix, "postgres", "public", "t")
        last = _snapshots(store, prefix, "t")
        assert not last["unreadable"] and all(not s["missing"] for s in last["snapshots"]), last
    finally:
        ps.stop()


def test_ltap_iceberg_catalog_on_s3(cluster):
    """With an S3 store (s3rver), loadTable gives s3:// locations (the
    bucket and key, not the client's endpoint query), the metadata equals
    the object at that location, and config says how to reach it: the
    endpoint, path-style access and the region."""
    from lakebase import RemoteStore, s3rver_for
    url = s3rver_for(cluster.workdir).url("lake")
    ps, pri, t, l = pageserver_with_ingest(cluster, url)
    try:
        pri.sql("CREATE TABLE t (id int)")
        pri.sql("INSERT INTO t SELECT generate_series(1, 100)")
        ps_snapshot(ps, pri, t, l)
        base = f"{ps.url}/v1/tenant/{t}/timeline/{l}/iceberg"
        token = Auth.of(cluster.workdir).mint("analytics", tenant=t, timeline=l)
        st, _, res = raw("GET", base + "/v1/lake/namespaces/postgres%1Fpublic/tables/t", token)
        assert st == 200, res
        bucket_prefix = url.split("?")[0]
        loc = res["metadata-location"]
        assert loc.startswith(bucket_prefix + f"/{t}/{l}/lake/postgres/public/t/metadata/v"), loc
        assert "?" not in loc and "?" not in res["metadata"]["location"], res
        key = loc[len(bucket_prefix) + 1:]
        assert json.loads(RemoteStore(url).get(key)) == res["metadata"]
        endpoint = urllib.parse.parse_qs(urllib.parse.urlparse(url).query)["endpoint"][0]
        assert res["config"] == {"s3.endpoint": endpoint, "s3.path-style-access": "true",
                                 "client.region": "us-east-1"}, res["config"]
        # every manifest list the metadata names is in the bucket
        for s in res["metadata"]["snapshots"]:
            assert s["manifest-list"].startswith(bucket_prefix + "/")
            RemoteStore(url).get(s["manifest-list"][len(bucket_prefix) + 1:])
    finally:
        ps.stop()


def test_ltap_catalog_load_is_fresh(cluster):
    """loadTable first brings the lake up to the committed WAL the redo
    standby has replayed: rows committed after the last snapshot (no
    checkpoint, no snapshot since) are in what the client reads."""
    store = os.path.join(cluster.workdir, "lake-store")
    ps, pri, t, l = pageserver_with_ingest(cluster, store,
                                           extra_args=["--snapshot_interval", "1h"])
    try:
        pri.sql("CREATE TABLE t (id int, v text)")
        pri.sql("INSERT INTO t SELECT g, 'old' FROM generate_series(1, 1000) g")
        p1 = ps_snapshot(ps, pri, t, l)
        pri.sql("INSERT INTO t SELECT g, 'new' FROM generate_series(1001, 1500) g")
        pri.sql("UPDATE t SET v = 'changed' WHERE id <= 10")
        target = lsn_int(pri.sql("select pg_current_wal_flush_lsn()::text")[0][0])
        wait_for(lambda: lsn_int(http("GET", ps.tl(t, l))[1]["last_record_lsn"]) >= target, 120,
                 what="the redo standby to replay the new rows")
        body, _ = lake_status(ps, t, l)
        assert body["run_lsn"] == p1, body  # no lake run since the snapshot
        base = f"{ps.url}/v1/tenant/{t}/timeline/{l}/iceberg"
        view = catalog_view(base, Auth.of(cluster.workdir).mint("analytics", tenant=t))
        (x,) = [x for x in view["tables"] if x["name"] == "t"]
        want = sorted((str(i), v) for i, v in pri.sql("SELECT id, v FROM t"))
        assert sorted((r["id"], r["v"]) for r in x["rows"]) == want
        meta = x["result"]["metadata"]
        (cur,) = [s for s in meta["snapshots"] if s["snapshot-id"] == meta["current-snapshot-id"]]
        assert lsn_int(cur["summary"]["lakebase.lsn"]) >= target
        body, _ = lake_status(ps, t, l)
        assert lsn_int(body["run_lsn"]) >= target, body
    finally:
        ps.stop()
