"""Faults a review found in the pageserver (issue 11): DELETE during ingest,
index writes racing each other, deleting storage that is not the
pageserver's, and the restore script of a root pageserver."""
import json
import os
import pwd
import stat
import threading
import uuid

from lakebase import Pageserver, free_port, http, wait_for


def standby_pid(ps, tenant, timeline):
    path = os.path.join(ps.data, "standby", f"{tenant}-{timeline}", "pgdata", "postmaster.pid")
    try:
        with open(path) as f:
            return int(f.readline())
    except (OSError, ValueError):
        return None


def alive(pid):
    """Running (a zombie waiting for its reaper is not)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, TypeError):
        return False


def dead_safekeepers():
    """Addresses where nothing listens: the redo standby starts and keeps
    trying to stream."""
    return {"safekeepers": [{"pg": f"127.0.0.1:{free_port()}",
                             "http": f"http://127.0.0.1:{free_port()}"}]}


def test_delete_stops_ingest_and_keeps_what_is_not_the_pageservers(workdir):
    ps = Pageserver(workdir, extra_args=["--deleted_retention", "1h"]).start()
    try:
        tenant, timeline = uuid.uuid4().hex, uuid.uuid4().hex
        assert ps.create(tenant, timeline)[0] == 201
        st, body = http("PUT", ps.tl(tenant, timeline, "/safekeepers"), dead_safekeepers())
        assert st == 200, body
        wait_for(lambda: alive(standby_pid(ps, tenant, timeline)), 60,
                 what="the redo standby to start")
        pid = standby_pid(ps, tenant, timeline)
        # The safekeepers offload WAL under the timeline's prefix.
        wal = f"{tenant}/{timeline}/wal/000000010000000000000001"
        ps.store.put(wal, b"\1" * 8192)
        layers = f"{tenant}/{timeline}/layers/"
        assert ps.store.list(layers)

        st, body = http("DELETE", ps.tl(tenant, timeline))
        assert st == 200, body
        # Its ingest stopped first: the redo standby is gone.
        assert not alive(pid), "the redo standby outlived its timeline"
        assert http("GET", ps.tl(tenant, timeline))[0] == 404
        assert http("GET", ps.tl(tenant))[1] == []
        # Softly: the layers stay until the purge, the WAL stays for good.
        assert ps.store.list(layers)
        assert ps.store.exists(wal)
        # Its id is not taken again while the purge is pending.
        assert ps.create(tenant, timeline)[0] == 409
        # A restart does not bring it back.
        ps.stop()
        ps.start()
        assert http("GET", ps.tl(tenant, timeline))[0] == 404

        # Purged once the retention has passed: the pageserver's objects
        # go, the safekeepers' WAL does not.
        ps.stop()
        ps.extra_args = ["--deleted_retention", "0"]
        ps.start()
        assert http("POST", ps.url + "/v1/gc")[0] == 200
        assert ps.store.list(layers) == {}
        assert ps.store.list(f"{tenant}/{timeline}/index/") == {}
        assert ps.store.exists(wal)
        # The id is free again.
        assert ps.create(tenant, timeline)[0] == 201
    finally:
        ps.stop()


def test_concurrent_index_saves_leave_one_whole_index(workdir):
    ps = Pageserver(workdir).start()
    try:
        tenant, timeline = uuid.uuid4().hex, uuid.uuid4().hex
        assert ps.create(tenant, timeline)[0] == 201
        errors = []

        def put(k):
            for i in range(15):
                body = {"safekeepers": [{"pg": f"127.0.0.1:{1000 + k * 100 + i}",
                                         "http": f"http://127.0.0.1:{1000 + k * 100 + i}"}]}
                st, b = http("PUT", ps.tl(tenant, timeline, "/safekeepers"), body)
                if st != 200:
                    errors.append((st, b))

        threads = [threading.Thread(target=put, args=(k,)) for k in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        st, status = http("GET", ps.tl(tenant, timeline))
        assert st == 200
        local = os.path.join(ps.data, "tenants", tenant, timeline, "index.json")
        with open(local) as f:
            local_doc = json.load(f)
        remote_doc = json.loads(ps.store.get(f"{tenant}/{timeline}/index/index.json"))
        # The last state, everywhere: what was uploaded is what was written.
        assert local_doc == remote_doc
        assert local_doc["safekeepers"] == status["safekeepers"]
        # No temporary file is left behind.
        leftovers = [n for n in os.listdir(os.path.dirname(local)) if n != "index.json"
                     and not os.path.isdir(os.path.join(os.path.dirname(local), n))]
        assert leftovers == []
    finally:
        ps.stop()


def test_restore_script_is_never_written_through_a_link(workdir):
    if os.geteuid() != 0:
        import pytest
        pytest.skip("the attack needs a root pageserver and a postgres user")
    ps = Pageserver(workdir).start()
    try:
        tenant, timeline = uuid.uuid4().hex, uuid.uuid4().hex
        assert ps.create(tenant, timeline)[0] == 201
        # A root-only file the PostgreSQL user would like to read or change.
        target = os.path.join(workdir, "secret")
        with open(target, "w") as f:
            f.write("secret\n")
        os.chmod(target, 0o600)
        # The standby's directory belongs to the PostgreSQL user, who plants
        # links at every name the pageserver could write there.
        pw = pwd.getpwnam("postgres")
        root = os.path.join(ps.data, "standby", f"{tenant}-{timeline}")
        os.makedirs(root, exist_ok=True)
        os.chown(root, pw.pw_uid, pw.pw_gid)
        for name in ["restore.sh", f"restore.sh.tmp.{ps.proc.pid}"]:
            os.symlink(target, os.path.join(root, name))
        st, body = http("PUT", ps.tl(tenant, timeline, "/safekeepers"), dead_safekeepers())
        assert st == 200, body
        wait_for(lambda: alive(standby_pid(ps, tenant, timeline)), 60,
                 what="the redo standby to start")
        with open(target) as f:
            assert f.read() == "secret\n"
        st_t = os.stat(target)
        assert stat.S_IMODE(st_t.st_mode) == 0o600 and st_t.st_uid == 0
        # The script the standby runs is root's, in a directory that is root's.
        conf = open(os.path.join(root, "pgdata", "postgresql.auto.conf")).read()
        script = conf.split("restore_command = '")[1].split(" ")[0]
        for path in [script, os.path.dirname(script)]:
            s = os.lstat(path)
            assert s.st_uid == 0 and not stat.S_ISLNK(s.st_mode)
            assert not s.st_mode & 0o022, f"{path} is writable by others"
    finally:
        ps.stop()


def test_tablespace_snapshot_is_a_clear_error_and_ingest_goes_on(cluster):
    """A CREATE TABLESPACE that reached the redo standby (the compute should
    refuse it) makes snapshots fail with an error that names it, while
    replay goes on; once it is dropped, snapshots work again."""
    from lakebase import lsn_int, start_compute, wait_ingested
    ps = Pageserver(cluster.workdir, extra_args=["--snapshot_interval", "24h"]).start()
    try:
        t, l = cluster.tenant, cluster.timeline
        st, boot = ps.create(t, l)
        assert st == 201, boot
        pg = start_compute(cluster, ps, "primary", boot)[0]
        location = os.path.join(cluster.workdir, "tblspc")
        os.makedirs(location)
        pw = pwd.getpwnam("postgres") if os.geteuid() == 0 else None
        if pw:
            os.chown(location, pw.pw_uid, pw.pw_gid)
        pg.sql(f"create tablespace extra location '{location}'")
        pg.sql("create table t (id int)")
        pg.sql("insert into t select generate_series(1, 1000)")
        pg.sql("checkpoint")
        end = lsn_int(pg.sql("select pg_current_wal_insert_lsn()::text")[0][0])
        wait_ingested(ps, t, l, end)

        st, body = http("POST", ps.tl(t, l, "/snapshot"))
        assert st == 409, body
        assert "pg_tblspc/" in body["error"] and location in body["error"], body
        st, status = http("GET", ps.tl(t, l))
        assert status["ingest"] == "running" and location in status.get("snapshot_error", "")

        # Ingest goes on.
        pg.sql("insert into t select generate_series(1, 1000)")
        end = lsn_int(pg.sql("select pg_current_wal_insert_lsn()::text")[0][0])
        wait_ingested(ps, t, l, end)

        pg.sql("drop tablespace extra")
        pg.sql("checkpoint")
        end = lsn_int(pg.sql("select pg_current_wal_insert_lsn()::text")[0][0])
        wait_ingested(ps, t, l, end)
        st, body = http("POST", ps.tl(t, l, "/snapshot"))
        assert st == 200 and body["snapshot_taken"], body
        assert "snapshot_error" not in http("GET", ps.tl(t, l))[1]
    finally:
        ps.stop()


def test_full_worker_queue_gets_503_and_frees_up(workdir):
    """Blocking work runs on a bounded worker pool (worker_threads,
    worker_queue): with one worker held by a basebackup whose client reads
    nothing and one more queued, a request that needs a worker gets 503 at
    once, one that does not (status) is served, and once the clients go
    the pool serves again. /metrics shows the pool's jobs."""
    import re
    import socket

    # max_basebackups 2: both basebackups go to the pool (its own cap,
    # tested in test_pageserver.py, would refuse the second at once)
    ps = Pageserver(workdir, extra_args=["--worker_threads", "1", "--worker_queue", "1",
                                         "--max_basebackups", "2",
                                         "--gc_interval", "24h"]).start()
    conns = []

    def gauge(name):
        st, body = http("GET", ps.url + "/metrics", token="")
        text = body.decode() if isinstance(body, bytes) else str(body)
        m = re.search(rf"^{name} (\S+)$", text, re.M)
        return float(m.group(1)) if m else None

    def stalled_basebackup(tenant, timeline):
        """A basebackup request whose client never reads: its tar (tens of
        MB) fills the small buffers, and the job writing it waits."""
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect(("127.0.0.1", ps.port))
        token = ps.auth.compute_token(tenant, timeline)
        s.sendall(f"GET /v1/tenant/{tenant}/timeline/{timeline}/basebackup HTTP/1.1\r\n"
                  f"Host: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\r\n".encode())
        conns.append(s)

    try:
        tenant, tl = uuid.uuid4().hex, uuid.uuid4().hex
        st, boot = http("POST", ps.tl(tenant), {"timeline_id": tl}, timeout=120)
        assert st == 201, boot
        assert gauge("pageserver_worker_jobs_running") == 0
        stalled_basebackup(tenant, tl)
        wait_for(lambda: gauge("pageserver_worker_jobs_running") == 1, 60,
                 what="the first basebackup to hold the worker")
        stalled_basebackup(tenant, tl)
        wait_for(lambda: gauge("pageserver_worker_jobs_queued") == 1, 60,
                 what="the second basebackup to wait in the queue")
        st, body = http("POST", ps.url + "/v1/gc", timeout=30)
        assert st == 503, (st, body)
        st, body = http("POST", ps.tl(tenant), {"timeline_id": uuid.uuid4().hex}, timeout=30)
        assert st == 503, (st, body)
        assert http("GET", ps.tl(tenant, tl))[0] == 200
        for s in conns:
            s.close()
        conns.clear()
        wait_for(lambda: gauge("pageserver_worker_jobs_running") == 0 and
                 gauge("pageserver_worker_jobs_queued") == 0, 120, what="the pool to drain")
        st, body = http("POST", ps.url + "/v1/gc", timeout=120)
        assert st == 200, (st, body)
    finally:
        for s in conns:
            s.close()
        ps.stop()
