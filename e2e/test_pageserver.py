"""The pageserver: bootstrap, basebackup, branches as metadata, reload from
object storage after losing its disk, bad requests."""
import os
import re
import shutil
import socket
import subprocess
import uuid
from contextlib import contextmanager

import lakebase
from lakebase import (PGBIN, Pageserver, Postgres, http, http_get_raw, insert_lsn, lsn_int,
                      pageserver_with_ingest, start_compute, table_hashes, wait_for,
                      wait_ingested)


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


def basebackups_running(ps):
    st, text = http("GET", ps.url + "/metrics")
    m = re.search(rb"^pageserver_basebackups_running (\d+)", text, re.M)
    return int(m.group(1)) if m else -1


def test_slow_basebackup_clients_never_hold_every_worker(workdir):
    """A basebackup holds a worker thread while its client reads. With two
    workers, max_basebackups is 1 (worker_threads - 1): a client that reads
    nothing holds that one, the next basebackup gets 503 at once and the
    pageserver goes on answering; when the slow client goes, basebackups
    are served again."""
    ps = Pageserver(workdir, extra_args=["--worker_threads", "2"]).start()
    slow = None
    try:
        tenant, timeline = uuid.uuid4().hex, uuid.uuid4().hex
        st, body = ps.create(tenant, timeline)
        assert st == 201, body
        path = f"/v1/tenant/{tenant}/timeline/{timeline}/basebackup"
        # The slow client: a tiny receive window, and it never reads. The
        # tar (tens of MB) cannot all fit in the socket buffers meanwhile.
        slow = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        slow.connect(("127.0.0.1", ps.port))
        token = lakebase.TOKEN_BY_BASE.get(ps.url, lakebase.DEFAULT_TOKEN)
        slow.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     f"Authorization: Bearer {token}\r\n\r\n".encode())
        wait_for(lambda: basebackups_running(ps) == 1, 20, what="the slow basebackup to run")

        st, b, hdr = http_get_raw(ps.url + path)
        assert st == 503 and b"max_basebackups" in b, (st, b[:200])
        assert hdr.get("retry-after") == "1"
        # The pageserver still answers, and a worker is free for other work.
        st, meta = http("GET", ps.tl(tenant, timeline))
        assert st == 200, meta
        # (creating a timeline runs initdb on the worker pool)
        st, other = ps.create(tenant, uuid.uuid4().hex)
        assert st == 201, other
        assert basebackups_running(ps) == 1

        slow.close()
        slow = None
        wait_for(lambda: basebackups_running(ps) == 0, 30, what="the slow basebackup to end")
        st, tar, _ = http_get_raw(ps.url + path, timeout=60)
        assert st == 200 and len(tar) > (4 << 20)
        assert basebackups_running(ps) == 0
    finally:
        if slow:
            slow.close()
        ps.stop()


# getaddrinfo() for "gated.lakebase.test": in the pageserver it waits until
# the file $LB_GAI_CONTROL.open exists (after creating $LB_GAI_CONTROL.entered),
# as a DNS server that does not answer would; then, and in every other
# process at once, it is 127.0.0.1.
GAI_SHIM = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef int (*gai_fn)(const char *, const char *, const struct addrinfo *, struct addrinfo **);

int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                struct addrinfo **res)
{
    gai_fn real = (gai_fn)dlsym(RTLD_NEXT, "getaddrinfo");
    const char *ctl = getenv("LB_GAI_CONTROL");
    if (ctl && node && strcmp(node, "gated.lakebase.test") == 0) {
        if (strcmp(program_invocation_short_name, "pageserver") == 0) {
            char path[4096];
            snprintf(path, sizeof(path), "%s.entered", ctl);
            int fd = open(path, O_CREAT | O_WRONLY, 0644);
            if (fd >= 0)
                close(fd);
            snprintf(path, sizeof(path), "%s.open", ctl);
            while (access(path, F_OK) != 0)
                usleep(20000);
        }
        node = "127.0.0.1";
    }
    return real(node, service, hints, res);
}
"""


@contextmanager
def environment(**env):
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def test_a_safekeeper_name_that_does_not_resolve_never_stops_the_loop(cluster):
    """The WAL index connects to a safekeeper named by a host name whose DNS
    lookup does not return. The lookup runs on the worker pool, so the
    pageserver's loop goes on: a DELETE of the timeline, which stops its
    ingest through the loop, completes while the lookup still waits; and
    once the name resolves the pageserver works as before."""
    workdir = cluster.workdir
    shim_c, shim = os.path.join(workdir, "gai_shim.c"), os.path.join(workdir, "gai_shim.so")
    with open(shim_c, "w") as f:
        f.write(GAI_SHIM)
    subprocess.run(["cc", "-shared", "-fPIC", "-O1", "-o", shim, shim_c, "-ldl"], check=True)
    ctl = os.path.join(workdir, "gai")
    ps = Pageserver(workdir)
    try:
        with environment(LD_PRELOAD=shim, LB_GAI_CONTROL=ctl):
            ps.start()
        t, root = cluster.tenant, cluster.timeline
        st, boot = ps.create(t, root)
        assert st == 201, boot
        primary, _ = start_compute(cluster, ps, "root", boot)
        primary.sql("create table t (id int)")
        wait_ingested(ps, t, root, lsn_int(insert_lsn(primary)), 60, "ingest")
        # Management names the first safekeeper by a host name; restarted,
        # the pageserver's WAL index connects to it first.
        sk0 = cluster.sks[0]
        sks = [{"pg": f"gated.lakebase.test:{sk0.pg_port}", "http": sk0.url}] + \
              [{"pg": f"127.0.0.1:{sk.pg_port}", "http": sk.url} for sk in cluster.sks[1:]]
        st, body = http("PUT", ps.tl(t, root, "/safekeepers"), {"safekeepers": sks})
        assert st == 200, body
        ps.kill(with_standbys=True)
        with environment(LD_PRELOAD=shim, LB_GAI_CONTROL=ctl):
            ps.start()
        wait_for(lambda: os.path.exists(ctl + ".entered"), 60,
                 what="the pageserver to look the name up")
        st, body = http("DELETE", ps.tl(t, root), timeout=60)
        assert st == 200, body
        assert http("GET", ps.tl(t, root))[0] == 404
        open(ctl + ".open", "w").close()
        st, other = ps.create(t, uuid.uuid4().hex)
        assert st == 201, other
        assert ps.proc.alive()
    finally:
        open(ctl + ".open", "w").close()
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
            # WAL file names: common's parser (no sign, upper-case hex only).
            ("GET", ps.tl(tenant, timeline, "/wal/+0000001.history"), None, 400),
            ("GET", ps.tl(tenant, timeline, "/wal/00000001.HISTORY"), None, 400),
            ("GET", ps.tl(tenant, timeline, "/wal/00000000.history"), None, 400),
            ("GET", ps.tl(tenant, timeline, "/wal/00000001000000000000000g"), None, 400),
        ]
        # Safekeeper addresses: common's host:port parser (hostport.h): a
        # port from 1 to 65535, an IPv6 address in brackets.
        for pg in ["127.0.0.1", "127.0.0.1:", ":5432", "127.0.0.1:0", "127.0.0.1:65536",
                   "::1:5432", "[::1]", "127.0.0.1:54x", "a b:5432", "h:5432 "]:
            cases.append(("PUT", ps.tl(tenant, timeline, "/safekeepers"),
                          {"safekeepers": [{"pg": pg, "http": "http://127.0.0.1:1"}]}, 400))
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
        key = f"{tenant}/{timeline}/layers/{layer}"
        data = bytearray(ps.store.get(key))
        data[len(data) - 80] ^= 0xFF
        ps.store.put(key, bytes(data))
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


def test_ingest_snapshot_and_restore(cluster):
    """WAL from a real primary through the safekeepers into the pageserver's
    redo standby; a snapshot; a new server from basebackup(latest) plus the
    safekeepers' WAL holds exactly the primary's committed data, passes
    amcheck on every index and pg_checksums on its directory."""
    workdir = cluster.workdir
    ps, primary, t, l = pageserver_with_ingest(cluster)
    try:
        primary.sql("create extension amcheck")
        primary.sql("create table t (id int primary key, v text)")
        primary.sql("insert into t select g, md5(g::text) from generate_series(1, 50000) g")
        primary.sql("create index on t (v)")
        # More shapes of data: TOASTed values, a hash index, a sequence,
        # deleted rows, a dropped table, an unlogged table (empty after restore).
        primary.sql("create table big (id serial primary key, doc text, tags int[])")
        primary.sql("insert into big (doc, tags) select repeat(md5(g::text), 300), "
                    "array[g, g * 2] from generate_series(1, 300) g")
        primary.sql("create index on big using hash (doc)")
        primary.sql("delete from big where id % 7 = 0")
        primary.sql("create table gone (x int)")
        primary.sql("insert into gone select generate_series(1, 1000)")
        primary.sql("drop table gone")
        primary.sql("update t set v = 'x' || v where id % 10 = 0")
        primary.sql("checkpoint")
        target = lsn_int(primary.sql("select pg_current_wal_flush_lsn()::text")[0][0])

        def replayed():
            _, s = http("GET", ps.tl(t, l))
            return lsn_int(s["last_record_lsn"]) >= target
        wait_for(replayed, 60, what="the redo standby to replay the primary's WAL")
        st, snap = http("POST", ps.tl(t, l, "/snapshot"), timeout=120)
        assert st == 200 and snap["snapshot_taken"], snap
        assert len(snap["snapshots"]) == 2
        p = lsn_int(snap["snapshots"][-1]["lsn"])
        assert p >= lsn_int(snap["snapshots"][-1]["redo_lsn"])

        # /metrics: the snapshot, its size and pages, the ingest position,
        # the bytes sent to object storage.
        import urllib.request
        text = urllib.request.urlopen(ps.url + "/metrics", timeout=10).read().decode()
        metrics = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, value = line.rsplit(" ", 1)
                metrics[name] = float(value)
        assert metrics["pageserver_snapshot_seconds_count"] >= 1
        assert metrics["pageserver_snapshot_bytes_count"] >= 1
        assert metrics["pageserver_snapshot_pages_total"] > 0
        assert metrics["pageserver_storage_bytes_total"] > snap["snapshots"][-1]["bytes"]
        assert metrics["pageserver_storage_errors_total"] == 0
        series = f'pageserver_last_record_lsn{{tenant_id="{t}",timeline_id="{l}"}}'
        assert metrics[series] >= target, (series, metrics.get(series))
        assert f'pageserver_ingest_lag_bytes{{tenant_id="{t}",timeline_id="{l}"}}' in metrics

        # A new server from the snapshot, replaying the rest from the safekeepers.
        want = table_hashes(primary)
        assert set(want) == {"public.t", "public.big"}
        restored = Postgres(workdir, "restored")
        headers, _ = ps.basebackup(t, l, restored.datadir)
        assert lsn_int(headers["X-Lakebase-Snapshot-Lsn"]) == p
        restored.conf(port=restored.port, listen_addresses="127.0.0.1",
                      unix_socket_directories=restored.sockdir,
                      restore_command=f"{cluster.restore_script(restored)} %f %p",
                      recovery_target_timeline="latest", hot_standby="on")
        open(os.path.join(restored.datadir, "standby.signal"), "w").close()
        from lakebase import chown_pg
        chown_pg(restored.dir)
        cluster.track(restored)
        restored.start()
        wait_for(lambda: lsn_int(restored.sql("select pg_last_wal_replay_lsn()::text")[0][0])
                 >= target, 60, what="the restored server to replay to the primary's end")
        assert table_hashes(restored) == want
        checked = restored.sql(
            "select count(*) from (select bt_index_check(c.oid, true) from pg_index i "
            "join pg_class c on c.oid = i.indexrelid join pg_am a on a.oid = c.relam "
            "where a.amname = 'btree' and c.relpersistence = 'p') x")[0][0]
        assert checked > 10
        restored.stop("fast")
        r = restored.run([os.path.join(PGBIN, "pg_checksums"), "--check", "-D", restored.datadir],
                         check=False)
        assert r.returncode == 0, r.stdout + r.stderr
    finally:
        ps.stop()
