"""The pageserver: bootstrap, basebackup, branches as metadata, reload from
object storage after losing its disk, bad requests."""
import os
import shutil
import uuid

from lakebase import Pageserver, Postgres, http, lsn_int, wait_for


def start_from_basebackup(ps, workdir, name, tenant, timeline, lsn=None):
    pg = Postgres(workdir, name)
    headers, size = ps.basebackup(tenant, timeline, pg.datadir, lsn)
    pg.conf(port=pg.port, listen_addresses="127.0.0.1", unix_socket_directories=pg.sockdir)
    pg.start()
    return pg, headers, size


def test_bootstrap_basebackup_and_reload(workdir):
    ps = Pageserver(workdir).start()
    pgs = []
    try:
        tenant, timeline = uuid.uuid4().hex, uuid.uuid4().hex
        st, body = ps.create(tenant, timeline)
        assert st == 201, body
        assert body["snapshots"] and body["start_lsn"] == body["snapshots"][0]["lsn"]
        assert int(body["system_id"]) > 0 and body["wal_seg_size"] == 16 * 1024 * 1024

        # A server started from the basebackup works and has data checksums on.
        pg, headers, size = start_from_basebackup(ps, workdir, "c1", tenant, timeline)
        pgs.append(pg)
        assert headers["X-Lakebase-Snapshot-Lsn"] == body["start_lsn"]
        assert pg.sql("show data_checksums")[0][0] == "on"
        assert str(pg.system_id()) == body["system_id"]
        pg.sql("create table t (x int)")

        # A branch is metadata only.
        branch = uuid.uuid4().hex
        st, b = ps.create(tenant, branch, ancestor=timeline, lsn=body["start_lsn"])
        assert st == 201, b
        assert b["ancestor_timeline_id"] == timeline and b["snapshots"] == []
        pg2, _, _ = start_from_basebackup(ps, workdir, "c2", tenant, branch)
        pgs.append(pg2)
        assert pg2.sql("select 1")[0][0] == 1

        # Lose the local disk: everything comes back from object storage.
        ps.stop()
        shutil.rmtree(ps.data)
        ps.start()
        st, listed = http("GET", ps.tl(tenant))
        assert st == 200 and {t["timeline_id"] for t in listed} == {timeline, branch}
        pg3, _, size3 = start_from_basebackup(ps, workdir, "c3", tenant, branch)
        pgs.append(pg3)
        assert size3 == size
        assert pg3.sql("select count(*) from pg_class")[0][0] > 100

        # Deleting a timeline that has a branch is refused; the branch first works.
        st, e = http("DELETE", ps.tl(tenant, timeline))
        assert st == 409 and branch in e["error"]
        assert http("DELETE", ps.tl(tenant, branch))[0] == 200
        assert http("GET", ps.tl(tenant, branch))[0] == 404
    finally:
        for p in pgs:
            p.stop("immediate")
        ps.stop()


def test_bad_requests(workdir):
    ps = Pageserver(workdir).start()
    try:
        tenant, timeline = uuid.uuid4().hex, uuid.uuid4().hex
        assert ps.create(tenant, timeline)[0] == 201
        cases = [
            ("POST", ps.tl(tenant), b"not json", 400),
            ("POST", ps.tl(tenant), {"timeline_id": "XYZ"}, 400),
            ("POST", ps.tl(tenant), {}, 400),
            ("POST", ps.tl("nothex"), {"timeline_id": uuid.uuid4().hex}, 400),
            ("POST", ps.tl(tenant), {"timeline_id": timeline}, 409),
            ("POST", ps.tl(tenant), {"timeline_id": uuid.uuid4().hex,
                                     "ancestor_timeline_id": uuid.uuid4().hex,
                                     "ancestor_lsn": "0/1"}, 404),
            ("POST", ps.tl(tenant), {"timeline_id": uuid.uuid4().hex,
                                     "ancestor_timeline_id": timeline,
                                     "ancestor_lsn": "0/1"}, 409),  # before the ancestor's start
            ("POST", ps.tl(tenant), {"timeline_id": uuid.uuid4().hex,
                                     "ancestor_timeline_id": timeline,
                                     "ancestor_lsn": "FF/0"}, 409),  # past its end
            ("POST", ps.tl(tenant), {"timeline_id": uuid.uuid4().hex,
                                     "ancestor_timeline_id": timeline,
                                     "ancestor_lsn": "0/1G"}, 400),
            ("GET", ps.tl(tenant, uuid.uuid4().hex), None, 404),
            ("GET", ps.tl(tenant, timeline, "/basebackup?lsn=zz"), None, 400),
            ("GET", ps.tl(tenant, timeline, "/basebackup?lsn=0/1"), None, 409),
            ("DELETE", ps.tl(tenant, uuid.uuid4().hex), None, 404),
        ]
        for method, url, body, want in cases:
            st, resp = http(method, url, body)
            assert st == want, (method, url, body, st, resp)
            assert isinstance(resp, dict) and resp.get("error"), resp
        assert http("GET", ps.url + "/healthz")[0] == 200
    finally:
        ps.stop()


def test_corrupt_layer_is_a_clear_error(workdir):
    ps = Pageserver(workdir).start()
    try:
        tenant, timeline = uuid.uuid4().hex, uuid.uuid4().hex
        st, body = ps.create(tenant, timeline)
        assert st == 201
        layer = body["snapshots"][0]["layer"]
        # Corrupt the layer in object storage and drop the local copy.
        remote = os.path.join(workdir, "remote-storage", tenant, timeline, "layers", layer)
        with open(remote, "r+b") as f:
            f.seek(os.path.getsize(remote) - 80)
            b = f.read(1)
            f.seek(-1, 1)
            f.write(bytes([b[0] ^ 0xFF]))
        os.remove(os.path.join(ps.data, "tenants", tenant, timeline, "layers", layer))
        # The layer's checksums catch it before any byte is sent: a clear error.
        st, e = http("GET", ps.tl(tenant, timeline, "/basebackup"))
        assert st == 500, (st, e)
        assert "unreadable" in e["error"] and layer in e["error"], e
        log = open(os.path.join(ps.dir, "pageserver.log")).read()
        assert "corrupt" in log
        assert http("GET", ps.url + "/healthz")[0] == 200
    finally:
        ps.stop()
