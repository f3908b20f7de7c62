"""Branches: a branch at an LSN between two commits holds the first and not
the second, takes writes on a new PostgreSQL timeline, and is isolated from
its parent both ways; a branch of a branch works. Every compute here starts
from the pageserver's basebackup and replays WAL from the pageserver's WAL
endpoint, which serves the ancestors' WAL cut at the branch points."""
import http.server as http_server
import json
import os
import threading
import time
import urllib.error
import urllib.request
import uuid

from lakebase import (Pageserver, http, http_get_raw, ids, insert_lsn, lsn_int, lsn_str,
                      start_compute, start_root, timeline_view, tli, wait_for, wait_ingested)


class StaleSafekeeper:
    """An HTTP proxy in front of a safekeeper whose timeline status is
    changed by rewrite(doc): an older commit_lsn, as a safekeeper reports in
    the second after a restart (before its peers' positions arrive), or an
    older term history, as one that missed an election has. Everything else
    passes through."""

    def __init__(self, upstream, status_path, rewrite):
        outer = self

        class Handler(http_server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def relay(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else None
                hdrs = {k: v for k, v in self.headers.items()
                        if k.lower() in ("authorization", "content-type")}
                req = urllib.request.Request(upstream + self.path, data=body,
                                             method=self.command, headers=hdrs)
                try:
                    with urllib.request.urlopen(req, timeout=30) as r:
                        status, raw, rh = r.status, r.read(), r.headers
                except urllib.error.HTTPError as e:
                    status, raw, rh = e.code, e.read(), e.headers
                if self.command == "GET" and self.path == status_path and status == 200:
                    doc = json.loads(raw)
                    rewrite(doc)
                    raw = json.dumps(doc).encode()
                    outer.stale_answers += 1
                self.send_response(status)
                for k, v in rh.items():
                    if k.lower() == "content-type" or k.lower().startswith("lakebase-"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            do_GET = do_POST = do_PUT = do_DELETE = relay

        self.stale_answers = 0
        self.server = http_server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def test_branch_at_lsn_isolation_and_branch_of_branch(cluster):
    workdir = cluster.workdir
    ps = Pageserver(workdir).start()
    try:
        t, root = cluster.tenant, cluster.timeline
        primary, election = start_root(cluster, ps)
        primary.sql("create table t (id int primary key, who text)")
        primary.sql("insert into t values (1, 'root before the branch point')")
        at1 = insert_lsn(primary)
        primary.sql("insert into t values (2, 'root after the branch point')")
        # A snapshot past the branch point: the branch must not take the
        # root's later data from it, whatever the root's layers hold.
        primary.sql("checkpoint")
        target = lsn_int(insert_lsn(primary))
        wait_ingested(ps, t, root, target, 60, "the root's ingest")
        st, snap = http("POST", ps.tl(t, root, "/snapshot"), timeout=120)
        assert st == 200, snap

        # The branch: metadata only, on the PostgreSQL timeline the root had there.
        b1 = uuid.uuid4().hex
        st, meta = ps.create(t, b1, ancestor=root, lsn=at1)
        assert st == 201, meta
        assert meta["ancestor_timeline_id"] == root and meta["ancestor_lsn"] == at1
        assert meta["pg_tli"] == tli(primary) == election["tli"]
        assert meta["snapshots"] == []

        # The pageserver's WAL endpoint cuts the root's WAL at the branch point.
        seg = meta["wal_seg_size"]
        cut = lsn_int(at1)
        name = f"{meta['pg_tli']:08X}{(cut // seg) >> 32 & 0xFFFFFFFF:08X}" \
               f"{(cut // seg) & 0xFFFFFFFF:08X}"
        st, whole = http("GET", ps.tl(t, root, f"/wal/{name}"))
        assert st == 200 and len(whole) == seg
        st, cutseg, hdr = http_get_raw(ps.tl(t, b1, f"/wal/{name}"))
        assert st == 200 and len(cutseg) == seg
        off = cut % seg
        # The cut is said to be where the branch's copy of that WAL ends for good.
        assert int(hdr["lakebase-valid-bytes"]) == off and hdr["lakebase-valid-final"] == "true"
        assert cutseg[:off] == whole[:off]
        assert cutseg[off:] == bytes(seg - off) and whole[off:] != bytes(seg - off)
        nxt = f"{meta['pg_tli']:08X}{(cut // seg + 1) >> 32 & 0xFFFFFFFF:08X}" \
              f"{(cut // seg + 1) & 0xFFFFFFFF:08X}"
        assert http("GET", ps.tl(t, b1, f"/wal/{nxt}"))[0] == 404
        for bad in ("zz", "00000001000000000000000G", "0000000100000000000000001",
                    "00000000.history", "1.history"):
            st, e = http("GET", ps.tl(t, b1, f"/wal/{bad}"))
            assert st == 400 and "name" in e["error"], (bad, st, e)

        view1 = timeline_view(cluster, b1)
        branch, e1 = start_compute(view1, ps, "branch", meta)
        assert e1["tli"] == meta["pg_tli"] + 1 == tli(branch)
        assert ids(branch) == [1]
        # Writes on either side stay on that side.
        branch.sql("insert into t values (3, 'branch')")
        primary.sql("insert into t values (4, 'root after the branch')")
        assert ids(branch) == [1, 3]
        assert ids(primary) == [1, 2, 4]

        # A branch of the branch, at a point of the branch's own WAL.
        at3 = insert_lsn(branch)
        branch.sql("insert into t values (5, 'branch after its branch point')")
        b2 = uuid.uuid4().hex
        st, meta2 = ps.create(t, b2, ancestor=b1, lsn=at3)
        assert st == 201, meta2
        assert meta2["pg_tli"] == tli(branch)
        view2 = timeline_view(cluster, b2)
        grand, e2 = start_compute(view2, ps, "grandchild", meta2)
        assert e2["tli"] == tli(branch) + 1 == tli(grand)
        assert ids(grand) == [1, 3]
        grand.sql("insert into t values (6, 'grandchild')")
        assert ids(grand) == [1, 3, 6]
        assert ids(branch) == [1, 3, 5]
        assert ids(primary) == [1, 2, 4]

        # A new compute on the grandchild, after the old one stopped: from a
        # basebackup and WAL across two branch points, it has exactly the
        # grandchild's data.
        grand.stop("fast")
        grand2, _ = start_compute(view2, ps, "grandchild2", meta2)
        assert ids(grand2) == [1, 3, 6]
        assert [r[0] for r in grand2.sql("select who from t where id = 6")] == ["grandchild"]
    finally:
        ps.stop()


def test_branch_point_is_checked_against_the_quorums_commit_lsn(cluster):
    """The first safekeeper the pageserver knows reports a stale commit LSN
    (it just restarted); a branch at an LSN the quorum committed after it is
    still created, on the right PostgreSQL timeline: the pageserver takes
    the commit LSN of every safekeeper that answers, not the first's."""
    ps = Pageserver(cluster.workdir).start()
    proxy = None
    try:
        t, root = cluster.tenant, cluster.timeline
        st, boot = ps.create(t, root)
        assert st == 201, boot
        primary, election = start_compute(cluster, ps, "root", boot)
        primary.sql("create table t (id int primary key)")
        primary.sql("insert into t values (1)")
        stale = insert_lsn(primary)
        primary.sql("insert into t values (2)")
        at = insert_lsn(primary)
        primary.sql("insert into t values (3)")
        wait_ingested(ps, t, root, lsn_int(insert_lsn(primary)), 60, "the root's ingest")
        wait_for(lambda: all(lsn_int(sk.status(t, root)["commit_lsn"]) >= lsn_int(at)
                             for sk in cluster.sks), 20, what="every safekeeper past the point")

        sk0 = cluster.sks[0]

        def first_behind(rewrite):
            p = StaleSafekeeper(sk0.url, f"/v1/tenant/{t}/timeline/{root}", rewrite)
            sks = [{"pg": f"127.0.0.1:{sk0.pg_port}", "http": p.url}] + \
                  [{"pg": f"127.0.0.1:{sk.pg_port}", "http": sk.url} for sk in cluster.sks[1:]]
            st, body = http("PUT", ps.tl(t, root, "/safekeepers"), {"safekeepers": sks})
            assert st == 200, body
            return p

        proxy = first_behind(lambda doc: doc.update(commit_lsn=stale))
        b = uuid.uuid4().hex
        st, meta = ps.create(t, b, ancestor=root, lsn=at)
        assert proxy.stale_answers >= 1, "the pageserver did not ask the stale safekeeper"
        assert st == 201, meta
        assert meta["ancestor_lsn"] == at and meta["pg_tli"] == election["tli"]
        proxy.stop()

        # The first one missed the election: its history has no term yet.
        # The branch takes the TLI from the newest log, not from it.
        proxy = first_behind(lambda doc: doc.update(term_history=[], last_log_term=0))
        st, meta = ps.create(t, uuid.uuid4().hex, ancestor=root, lsn=at)
        assert proxy.stale_answers >= 1
        assert st == 201, meta
        assert meta["pg_tli"] == election["tli"] != boot["pg_tli"], (meta, boot)
        # Past what any safekeeper committed: refused.
        far = lsn_str(lsn_int(insert_lsn(primary)) + (1 << 20))
        st, e = ps.create(t, uuid.uuid4().hex, ancestor=root, lsn=far)
        assert st == 409 and "outside" in e["error"], (st, e)
    finally:
        if proxy:
            proxy.stop()
        ps.stop()


def test_branch_points_out_of_range_are_refused(cluster):
    workdir = cluster.workdir
    ps = Pageserver(workdir).start()
    try:
        t, root = cluster.tenant, cluster.timeline
        st, boot = ps.create(t, root)
        assert st == 201
        primary, _ = start_compute(cluster, ps, "root", boot)
        primary.sql("create table t (id int primary key, who text)")
        end = lsn_int(insert_lsn(primary))
        for lsn, code, words in [
                (lsn_str(lsn_int(boot["start_lsn"]) - 8), 409, "outside"),
                ("0/0", 409, "outside"),
                (lsn_str(end + (1 << 30)), 409, "outside"),  # waits, then refuses
                ("0/1G", 400, "ancestor_lsn")]:
            st, e = ps.create(t, uuid.uuid4().hex, ancestor=root, lsn=lsn)
            assert st == code and words in e["error"], (lsn, st, e)
        st, e = ps.create(t, uuid.uuid4().hex, ancestor=uuid.uuid4().hex, lsn=lsn_str(end))
        assert st == 404, e
        # Nothing was left behind.
        st, listed = http("GET", ps.tl(t))
        assert st == 200 and [x["timeline_id"] for x in listed] == [root]
        assert os.listdir(os.path.join(ps.data, "tenants", t)) == [root]
    finally:
        ps.stop()


def test_lost_disk_reloads_from_object_storage_and_ingest_goes_on(cluster):
    """kill -9 the pageserver and wipe its disk while it ingests: every
    timeline comes back from object storage, basebackup works, and ingest
    goes on from the newest snapshot with the safekeepers' WAL."""
    import shutil
    workdir = cluster.workdir
    ps = Pageserver(workdir).start()
    try:
        t, root = cluster.tenant, cluster.timeline
        st, boot = ps.create(t, root)
        assert st == 201
        primary, _ = start_compute(cluster, ps, "root", boot)
        primary.sql("create table t (id int primary key, who text)")
        primary.sql("insert into t select g, 'before' from generate_series(1, 1000) g")
        primary.sql("checkpoint")
        target = lsn_int(insert_lsn(primary))
        wait_ingested(ps, t, root, target, 60, "ingest")
        st, snap = http("POST", ps.tl(t, root, "/snapshot"), timeout=120)
        assert st == 200 and snap["snapshot_taken"], snap
        branch = uuid.uuid4().hex
        assert ps.create(t, branch, ancestor=root, lsn=insert_lsn(primary))[0] == 201

        ps.kill(with_standbys=True)
        shutil.rmtree(ps.data)
        primary.sql("insert into t select g, 'while the pageserver was down' "
                    "from generate_series(1001, 2000) g")
        ps.start()
        st, listed = http("GET", ps.tl(t))
        assert st == 200 and {x["timeline_id"] for x in listed} == {root, branch}
        # Ingest resumed by itself (the safekeepers are in the index) and
        # catches up with what was written meanwhile and after.
        primary.sql("insert into t select g, 'after' from generate_series(2001, 3000) g")
        primary.sql("checkpoint")
        target = lsn_int(insert_lsn(primary))
        wait_ingested(ps, t, root, target, 90, "ingest after the restart")
        st, snap2 = http("POST", ps.tl(t, root, "/snapshot"), timeout=120)
        assert st == 200 and snap2["snapshot_taken"], snap2
        assert len(snap2["snapshots"]) > len(snap["snapshots"])
        # A new compute from the new snapshot holds all of it.
        primary.stop("fast")
        restored, _ = start_compute(cluster, ps, "restored", boot)
        assert restored.sql("select count(*) from t")[0][0] == 3000
        # And the branch, restored from object storage only, still works.
        bview = timeline_view(cluster, branch)
        _, bmeta = http("GET", ps.tl(t, branch))
        bpg, _ = start_compute(bview, ps, "branch", bmeta)
        assert bpg.sql("select count(*) from t")[0][0] == 1000
    finally:
        ps.stop()


def test_branch_at_timestamp(cluster):
    """PITR: a branch at a time holds every transaction committed at or
    before it and none after, found through the ancestor's WAL index."""
    import time
    workdir = cluster.workdir
    ps = Pageserver(workdir).start()
    try:
        t, root = cluster.tenant, cluster.timeline
        primary, _ = start_root(cluster, ps)
        primary.sql("create table t (id int primary key, who text)")
        primary.sql("insert into t values (1, 'before')")
        when = primary.sql("select to_char(clock_timestamp() at time zone 'UTC', "
                           "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')")[0][0]
        after_first = lsn_int(insert_lsn(primary))
        time.sleep(0.3)
        primary.sql("insert into t values (2, 'after')")
        target = lsn_int(insert_lsn(primary))

        def indexed():
            st, body = http("GET", ps.tl(t, root, f"/lsn_by_timestamp?timestamp={when}"))
            return st == 200 and body
        found = wait_for(indexed, 60, what="the WAL index to reach the first commit")
        # The commit of row 1 ends at or before the insert LSN read after it.
        assert lsn_int(found["lsn"]) <= after_first, (found, after_first)
        assert found["commit_timestamp"] <= when
        # The same time written with an offset finds the same commit.
        st, same = http("GET", ps.tl(t, root, "/lsn_by_timestamp?timestamp=" +
                                     when[:-1] + "%2B00:00"))
        assert st == 200 and same["lsn"] == found["lsn"], same
        wait_ingested(ps, t, root, target, 60, "ingest")

        b = uuid.uuid4().hex
        st, meta = http("POST", ps.tl(t), {"timeline_id": b, "ancestor_timeline_id": root,
                                           "ancestor_timestamp": when}, timeout=60)
        assert st == 201, meta
        assert meta["ancestor_lsn"] == found["lsn"]
        bpg, _ = start_compute(timeline_view(cluster, b), ps, "pitr", meta)
        assert ids(bpg) == [1]

        # Bad times: malformed, or before the first commit.
        for bad in ("yesterday", "2026-13-01T00:00:00Z", "2026-01-01T00:00:00",
                    "2026-01-01 00:00:00Z", "2026-01-01T00:00:00.Z"):
            st, e = http("POST", ps.tl(t), {"timeline_id": uuid.uuid4().hex,
                                            "ancestor_timeline_id": root,
                                            "ancestor_timestamp": bad})
            assert st == 400 and "ancestor_timestamp" in e["error"], (bad, st, e)
        st, e = http("POST", ps.tl(t), {"timeline_id": uuid.uuid4().hex,
                                        "ancestor_timeline_id": root,
                                        "ancestor_timestamp": "2001-01-01T00:00:00Z"})
        assert st == 409 and "no commit" in e["error"], (st, e)
        st, e = http("POST", ps.tl(t), {"timeline_id": uuid.uuid4().hex,
                                        "ancestor_timeline_id": root,
                                        "ancestor_timestamp": when, "ancestor_lsn": "0/0"})
        assert st == 400 and "not both" in e["error"], (st, e)
        st, e = http("GET", ps.tl(t, root, "/lsn_by_timestamp?timestamp=soon"))
        assert st == 400, e
    finally:
        ps.stop()


def test_idle_redo_standby_stops_and_wakes_on_new_wal(cluster):
    """A redo standby that replayed nothing for ingest_idle_timeout stops
    (after a snapshot); new WAL on the safekeepers starts it again, and it
    goes on from where it was."""
    workdir = cluster.workdir
    ps = Pageserver(workdir, extra_args=["--ingest_idle_timeout", "1s"]).start()
    try:
        t, root = cluster.tenant, cluster.timeline
        primary, _ = start_root(cluster, ps)
        primary.sql("create table t (id int primary key, who text)")
        quiet_checks = 0
        for i in range(3):
            wait_for(lambda: http("GET", ps.tl(t, root))[1]["ingest"] == "idle", 60,
                     what="the redo standby to go idle")
            # It stays idle while nothing is written. (PostgreSQL itself
            # writes a standby snapshot record some seconds after activity,
            # which rightly wakes it: only a quiet stretch is checked.)
            # Counted only when the idle standby had replayed everything
            # written so far: WAL written just before it was seen idle
            # rightly wakes it a moment later.
            before = insert_lsn(primary)
            status = http("GET", ps.tl(t, root))[1]
            caught_up = (status["ingest"] == "idle"
                         and lsn_int(status["last_record_lsn"]) >= lsn_int(before))
            time.sleep(1.5)
            state = http("GET", ps.tl(t, root))[1]["ingest"]
            if caught_up and insert_lsn(primary) == before:
                assert state == "idle"
                quiet_checks += 1
            primary.sql(f"insert into t values ({i}, 'wakes it')")
            target = lsn_int(insert_lsn(primary))
            wait_ingested(ps, t, root, target, 60, "the standby to wake and replay")
        assert quiet_checks >= 1
        log = open(os.path.join(ps.dir, "pageserver.log")).read()
        assert log.count("reason=idle") >= 3
        assert log.count("reason=\"new WAL\"") >= 3
    finally:
        ps.stop()
