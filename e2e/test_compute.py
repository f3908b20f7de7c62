"""compute-ctl: a compute started from a spec, with real safekeepers, a real
pageserver and PostgreSQL 15. A primary from a fresh pageserver timeline
takes durable writes; a second primary (new term) has every committed row;
PostgreSQL dying makes compute-ctl exit non-zero; SIGTERM stops it cleanly;
a replica follows; a static compute shows exactly the data before its LSN;
a branch starts; bad specs are refused with the field named."""
import os
import re
import signal
import subprocess
import threading
import time
import uuid

import psycopg
import pytest

import lakebase

from lakebase import (BIN, CTL, BlockedCommit, ComputeCtl, Pageserver, free_port, http, http_get_raw,
                      lsn_int, to_yaml, wait_for)


@pytest.fixture
def env(cluster):
    """Safekeepers (the cluster fixture), a pageserver, a fresh root
    timeline bootstrapped on it, and every compute-ctl stopped at the end."""
    ps = Pageserver(cluster.workdir).start()
    st, meta = ps.create(cluster.tenant, cluster.timeline)
    assert st == 201, meta
    ctls = []

    def new(name, **kw):
        c = ComputeCtl(cluster, ps, name, **kw)
        ctls.append(c)
        return c
    yield cluster, ps, new
    for c in ctls:
        c.cleanup()
    ps.stop()


def sync_rep_waiters(ctl):
    return ctl.sql("select pid from pg_stat_activity where wait_event = 'SyncRep'")


def ids(ctl):
    return [r[0] for r in ctl.sql("select id from t order by id")]


def test_primary_durable_writes_and_restart(env):
    cluster, ps, new = env
    c1 = new("c1").start()
    st = c1.status()
    assert st["mode"] == "primary" and st["term"] >= 1 and st["tli"] >= 2
    assert st["pid"] == c1.pg_pid()
    # The settings lakebase relies on are in force.
    got = dict(c1.sql("select name, setting from pg_settings where name in ('fsync', "
                      "'synchronous_commit', 'full_page_writes', 'wal_level', "
                      "'synchronous_standby_names', 'data_checksums', 'max_wal_senders')"))
    assert got["synchronous_standby_names"] == 'ANY 2 ("sk-0", "sk-1", "sk-2")'
    assert got["fsync"] == "on" and got["full_page_writes"] == "on"
    assert got["synchronous_commit"] == "on" and got["wal_level"] == "replica"
    assert got["data_checksums"] == "on" and int(got["max_wal_senders"]) >= 8
    assert c1.sql("select current_setting('shared_buffers')")[0][0] == "32MB"

    c1.sql("create table t (id int primary key)")
    c1.sql("insert into t select generate_series(1, 100)")
    wait_for(lambda: all(sk.status(cluster.tenant, cluster.timeline)["streaming"]
                         for sk in cluster.sks), 20, what="all safekeepers streaming")
    # Two safekeepers down: a commit waits.
    cluster.sks[1].kill()
    cluster.sks[2].kill()
    blocked = BlockedCommit(c1.dsn(), "insert into t values (101)")
    blocked.start()
    wait_for(lambda: sync_rep_waiters(c1), 10, what="a backend waiting in SyncRep")
    time.sleep(1.0)
    assert not blocked.done.is_set(), "a commit returned with one safekeeper of three"
    cluster.sks[1].start()
    assert blocked.done.wait(30), "commit did not complete after a safekeeper came back"
    assert blocked.error is None, blocked.error
    cluster.sks[2].start()

    # /status reports activity; /metrics is served.
    wait_for(lambda: c1.status()["connections"] == 0, 10, what="no connections in /status")
    before = c1.status()
    with psycopg.connect(c1.dsn(), autocommit=True) as conn:
        conn.execute("select 1")
        wait_for(lambda: c1.status()["connections"] == 1, 10, what="a connection in /status")
    assert c1.status()["last_activity_ms"] >= before["last_activity_ms"]
    assert lsn_int(c1.status()["lsn"]) > lsn_int(st["lsn"])
    st_m, metrics = http("GET", c1.url + "/metrics")
    assert st_m == 200 and b"compute_ready 1" in metrics

    # kill -9 of its PostgreSQL: compute-ctl exits non-zero.
    os.kill(c1.pg_pid(), signal.SIGKILL)
    assert c1.wait_exit(30) == 3

    # A second primary on the same timeline: a new term, every committed row.
    c2 = new("c2").start()
    # A third pointed at c2's running data directory is refused, and c2 lives on.
    dup = new("dup")
    dup.spec["data_dir"] = c2.spec["data_dir"]
    dup.start(wait=False)
    assert dup.wait_exit(60) == 1
    assert "still runs on data_dir" in dup.log_tail()
    dup.spec["data_dir"] = os.path.join(dup.dir, "pgdata")  # so cleanup leaves c2 alone
    assert c2.proc.alive() and c2.status()["state"] == "ready"
    assert c2.status()["term"] > st["term"]
    assert ids(c2) == list(range(1, 102))
    c2.sql("insert into t values (102)")
    # SIGTERM: a clean stop, exit 0, no postgres left.
    pid = c2.pg_pid()
    assert c2.stop() == 0
    assert not os.path.exists(f"/proc/{pid}")
    c3 = new("c3").start(yaml=False)
    assert ids(c3) == list(range(1, 103))


def test_replica_follows_and_static_sees_exactly_before_its_lsn(env):
    cluster, ps, new = env
    primary = new("primary").start()
    primary.sql("create table t (id int primary key)")
    primary.sql("insert into t select generate_series(1, 10)")
    at = primary.sql("select pg_current_wal_insert_lsn()::text")[0][0]
    primary.sql("insert into t select generate_series(11, 20)")

    # A replica: no copy of the primary, streaming from a safekeeper (not
    # the first one, which is down).
    cluster.sks[0].kill()
    replica = new("replica", mode="replica").start()
    cluster.sks[0].start()
    assert replica.sql("select pg_is_in_recovery()")[0][0] is True
    wait_for(lambda: ids(replica) == list(range(1, 21)), 30, what="the replica to catch up")
    primary.sql("insert into t values (21)")
    wait_for(lambda: ids(replica) == list(range(1, 22)), 30, what="the replica to follow")
    with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        replica.sql("insert into t values (1000)")
    st = replica.status()
    assert st["mode"] == "replica" and st["state"] == "ready" and lsn_int(st["lsn"]) > 0

    # A static compute at an LSN: exactly the rows committed before it.
    static = new("static", mode="static", lsn=at).start()
    assert ids(static) == list(range(1, 11))
    st = static.status()
    assert st["mode"] == "static" and st["target_lsn"] == at
    with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        static.sql("insert into t values (1000)")
    for c in (static, replica, primary):
        assert c.stop() == 0


def test_a_lagging_safekeepers_short_segment_is_not_taken_for_the_whole(env):
    """A safekeeper that comes back behind the others (restarted with a
    stale commit LSN, or missing WAL) serves the segment holding the end of
    WAL cut at its own position, zeros after. Asked first, it must not be
    believed: a static compute past that position still restores to its
    LSN (restore via compute-ctl, sk-0 first), and the pageserver's /wal
    serves the most any safekeeper has, saying how much is WAL."""
    cluster, ps, new = env
    primary = new("primary").start()
    primary.sql("create table t (id int primary key)")
    primary.sql("insert into t select generate_series(1, 10)")
    wait_for(lambda: all(sk.status(cluster.tenant, cluster.timeline)["streaming"]
                         for sk in cluster.sks), 20, what="all safekeepers streaming")
    cluster.sks[0].kill()
    primary.sql("insert into t select generate_series(11, 20)")
    at = primary.sql("select pg_current_wal_insert_lsn()::text")[0][0]
    primary.sql("insert into t values (21)")
    tli = primary.status()["tli"]
    # No compute to catch up from: sk-0 stays behind once it is back.
    assert primary.stop() == 0
    cluster.sks[0].start()
    lagging = cluster.sks[0].status(cluster.tenant, cluster.timeline)
    assert lsn_int(lagging["flush_lsn"]) < lsn_int(at), lagging
    seg_size = lagging["wal_seg_size"]
    segno = lsn_int(at) // seg_size
    seg = f"{tli:08X}{segno // (0x100000000 // seg_size):08X}{segno % (0x100000000 // seg_size):08X}"
    need = lsn_int(at) - segno * seg_size

    st0, body0, hdr0 = http_get_raw(cluster.sks[0].tl(cluster.tenant, cluster.timeline,
                                                      f"/segment/{seg}"))
    st1, body1, hdr1 = http_get_raw(cluster.sks[1].tl(cluster.tenant, cluster.timeline,
                                                      f"/segment/{seg}"))
    assert st1 == 200 and len(body1) == seg_size
    # The lagging one answers 200 with a whole (zero-padded) file.
    assert st0 == 200 and len(body0) == seg_size

    # The pageserver's /wal: the WAL sk-1 has, not sk-0's zeros.
    st, body, hdr = http_get_raw(f"{ps.url}/v1/tenant/{cluster.tenant}/timeline/"
                                 f"{cluster.timeline}/wal/{seg}")
    assert st == 200 and len(body) == seg_size
    assert body[:need] == body1[:need]

    # A static compute past sk-0's position: every row before its LSN.
    static = new("static", mode="static", lsn=at).start()
    assert ids(static) == list(range(1, 21))

    # The header says how much of each answer is WAL.
    assert int(hdr0["lakebase-valid-bytes"]) < need and "lakebase-valid-final" not in hdr0
    assert body0[int(hdr0["lakebase-valid-bytes"]):] == bytes(seg_size -
                                                              int(hdr0["lakebase-valid-bytes"]))
    assert int(hdr1["lakebase-valid-bytes"]) > need
    assert int(hdr["lakebase-valid-bytes"]) > need
    assert static.stop() == 0


def test_branch_with_compute_ctl(env):
    cluster, ps, new = env
    root = new("root").start()
    root.sql("create table t (id int primary key)")
    root.sql("insert into t values (1)")
    at = root.sql("select pg_current_wal_insert_lsn()::text")[0][0]
    root.sql("insert into t values (2)")
    branch_id = uuid.uuid4().hex
    st, meta = ps.create(cluster.tenant, branch_id, ancestor=cluster.timeline, lsn=at)
    assert st == 201, meta
    branch = new("branch", timeline=branch_id).start()
    assert ids(branch) == [1]
    branch.sql("insert into t values (3)")
    root.sql("insert into t values (4)")
    assert ids(branch) == [1, 3]
    assert ids(root) == [1, 2, 4]
    # Stopped and started again, the branch keeps its own row.
    assert branch.stop() == 0
    branch2 = new("branch2", timeline=branch_id).start()
    assert ids(branch2) == [1, 3]


BAD_SPECS = [
    (lambda s: s.pop("tenant_id"), 'missing field "tenant_id"'),
    (lambda s: s.update(tenant_id="xyz"), '"tenant_id" must be 32 lowercase hex'),
    (lambda s: s.update(timeline_id=12), '"timeline_id" must be a string'),
    (lambda s: s.update(mode="leader"), '"mode" must be primary, replica or static'),
    (lambda s: s.update(mode="static"), 'missing field "lsn"'),
    (lambda s: s.update(lsn="0/1"), '"lsn" is only for mode static'),
    (lambda s: s.update(pageserver="ftp://x"), '"pageserver" must be an http'),
    (lambda s: s.update(safekeepers=[]), '"safekeepers" must list 1 to'),
    (lambda s: s["safekeepers"][1].pop("pg"), 'missing field "safekeepers[1].pg"'),
    (lambda s: s["safekeepers"][0].update(pg="nohost"), '"safekeepers[0].pg" must be host:port'),
    (lambda s: s.update(pg_port=70000), '"pg_port" must be a port number'),
    (lambda s: s.update(data_dir="relative"), '"data_dir" must be an absolute path'),
    (lambda s: s.update(colour="blue"), 'unknown field "colour"'),
    (lambda s: s["settings"].update(fsync="off"), '"fsync" = "off" is refused'),
    (lambda s: s["settings"].update(synchronous_commit="local"),
     '"synchronous_commit" = "local" is refused'),
    (lambda s: s["settings"].update(full_page_writes=False), '"full_page_writes" = "off"'),
    (lambda s: s["settings"].update(wal_level="minimal"), '"wal_level" = "minimal" is refused'),
    (lambda s: s["settings"].update(synchronous_standby_names="*"),
     '"synchronous_standby_names" is managed by compute-ctl'),
    (lambda s: s["settings"].update(restore_command="cp"), '"restore_command" is managed'),
    (lambda s: s["settings"].update(max_wal_size="10GB"), '"max_wal_size" = "10GB" is refused'),
    (lambda s: s.pop("user"), 'missing field "user"'),
    (lambda s: s.update(user="postgres"), '"user": "postgres" is reserved'),
    (lambda s: s.update(user="App"), '"user" must be a lowercase identifier'),
    (lambda s: s.pop("safekeeper_password_file"), 'missing field "safekeeper_password_file"'),
    (lambda s: s.pop("auth_public_keys"), 'missing field "auth_public_keys"'),
    (lambda s: s["settings"].update(restart_after_crash="on"), '"restart_after_crash" is managed'),
    (lambda s: s["settings"].update(logging_collector="on"), '"logging_collector" is managed'),
    (lambda s: s["settings"].update(log_min_messages="error"),
     '"log_min_messages" = "error" is refused'),
]


@pytest.mark.parametrize("yaml", [False, True])
def test_bad_specs_are_refused(env, yaml):
    cluster, ps, new = env
    for i, (mutate, message) in enumerate(BAD_SPECS):
        c = new(f"bad{i}-{int(yaml)}")
        mutate(c.spec)
        r = subprocess.run([CTL, "--spec", c.write_spec(yaml)], capture_output=True, text=True,
                           timeout=30)
        assert r.returncode == 2, (message, r.returncode, r.stderr)
        assert message in r.stderr, (message, r.stderr)
        assert not os.path.exists(c.spec.get("data_dir", "/nonexistent")), message
    # A data_dir that holds something else is never replaced.
    c = new(f"notpg-{int(yaml)}")
    os.makedirs(c.spec["data_dir"])
    keep = os.path.join(c.spec["data_dir"], "precious.txt")
    open(keep, "w").close()
    c.start(wait=False, yaml=yaml)
    assert c.wait_exit(60) == 1
    assert os.path.exists(keep)
    assert "is not a PostgreSQL data directory" in c.log_tail()
    r = subprocess.run([CTL, "--spec", "/nonexistent/spec.yaml"], capture_output=True, text=True)
    assert r.returncode == 2 and "could not read spec" in r.stderr
    r = subprocess.run([CTL], capture_output=True, text=True)
    assert r.returncode == 2 and "spec" in r.stderr


def test_sigterm_while_electing_and_no_quorum(env):
    cluster, ps, new = env
    cluster.sks[1].kill()
    cluster.sks[2].kill()
    c = new("lonely").start(wait=False)
    wait_for(lambda: c.status()["state"] == "electing", 30, what="compute-ctl electing")
    time.sleep(1.0)
    assert c.status()["state"] == "electing", "elected with one safekeeper of three"
    os.kill(c.proc.pid, signal.SIGTERM)
    assert c.wait_exit(20) == 0
    assert c.pg_pid() is None  # it never got as far as starting PostgreSQL


def pg_gone(pid):
    return pid and not os.path.exists(f"/proc/{pid}")


def test_users_connect_with_scram_and_are_not_superuser(env):
    cluster, ps, new = env
    c = new("c").start()
    # The user: SCRAM with its password, not a superuser, no replication.
    assert c.sql("select rolsuper, rolreplication, rolcreaterole, rolcreatedb from pg_roles "
                 "where rolname = current_user") == [(False, False, False, True)]
    c.sql("create table t (id int primary key)")
    c.sql("insert into t values (1)")
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(c.dsn(password="wrong"))
    # Nobody else over TCP: not the superuser (trust before), not the
    # safekeepers' role outside replication.
    for user, password in (("postgres", ""), ("postgres", c.password),
                           ("lakebase_safekeeper", cluster.sk_password)):
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(c.dsn(user=user, password=password or "x"))
    # The safekeepers stream as lakebase_safekeeper, with SCRAM (the compute
    # is ready once a quorum streams; the third may connect a moment later).
    want = [("lakebase_safekeeper", sk.name) for sk in cluster.sks]

    def streaming():
        return c.superuser_sql("select usename, application_name from pg_stat_replication "
                               "order by application_name")
    try:
        wait_for(lambda: streaming() == want, 60, what="every safekeeper streaming")
    finally:
        rows = streaming()
    assert rows == want, rows
    verifier = c.superuser_sql("select rolpassword from pg_authid where rolname in "
                               "('app', 'lakebase_safekeeper')")
    assert all(v[0].startswith("SCRAM-SHA-256$4096:") for v in verifier), verifier
    # What only a superuser may do, the user may not: settings durability
    # rests on, server files, tablespaces (the pageserver copies only the
    # data directory).
    for stmt in ("alter system set synchronous_standby_names = ''",
                 "alter system set fsync = off",
                 "select pg_read_file('postgresql.auto.conf')",
                 "copy t to program 'true'",
                 "create tablespace ts location '/tmp'",
                 "set allow_in_place_tablespaces = on",
                 "create role other superuser"):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            c.sql(stmt)
    assert c.superuser_sql("select count(*) from pg_tablespace")[0][0] == 2
    # The superuser is compute-ctl's, over the unix socket in the data directory.
    assert c.superuser_sql("select rolsuper from pg_roles where rolname = current_user") == \
        [(True,)]
    assert oct(os.stat(c.spec["data_dir"]).st_mode & 0o777) == "0o700"


def test_changed_durability_settings_restart_from_the_quorum(env):
    cluster, ps, new = env
    c = new("c").start()
    c.sql("create table t (id int primary key)")
    c.sql("insert into t values (1)")
    term, pid = c.status()["term"], c.pg_pid()
    # A superuser turns the quorum off: compute-ctl stops that PostgreSQL
    # and starts the compute again from the quorum, with its own settings.
    c.superuser_sql("alter system set synchronous_standby_names = ''")
    c.superuser_sql("select pg_reload_conf()")
    wait_for(lambda: pg_gone(pid), 30, what="compute-ctl to stop the tampered postgres")
    assert c.proc.alive()
    st = c.wait_ready()
    assert st["term"] > term and c.pg_pid() != pid
    assert c.sql("show synchronous_standby_names")[0][0] == 'ANY 2 ("sk-0", "sk-1", "sk-2")'
    assert "synchronous_standby_names =  (in force)" in open(c.proc.log).read()
    assert ids(c) == [1]
    # The user sets its own default of synchronous_commit (it may: ALTER
    # ROLE on itself): the same; the next start removes the default.
    term, pid = st["term"], c.pg_pid()
    c.sql("alter role app set synchronous_commit = off")
    wait_for(lambda: pg_gone(pid), 30, what="compute-ctl to stop postgres")
    st = c.wait_ready()
    assert st["term"] > term
    assert c.superuser_sql("select count(*) from pg_db_role_setting, unnest(setconfig) kv "
                           "where kv like 'synchronous_commit=%'")[0][0] == 0
    assert c.sql("show synchronous_commit")[0][0] == "on"
    c.sql("insert into t values (2)")
    assert ids(c) == [1, 2]


def test_cancelled_sync_wait_restarts_from_the_quorum(env):
    cluster, ps, new = env
    c = new("c").start()
    c.sql("create table t (id int primary key)")
    wait_for(lambda: all(sk.status(cluster.tenant, cluster.timeline)["streaming"]
                         for sk in cluster.sks), 20, what="all safekeepers streaming")
    term, pid = c.status()["term"], c.pg_pid()
    cluster.sks[1].kill()
    cluster.sks[2].kill()
    blocked = BlockedCommit(c.dsn(), "insert into t values (1)")
    blocked.start()
    waiter = wait_for(lambda: sync_rep_waiters(c), 10, what="a backend waiting in SyncRep")[0][0]
    # Cancelling the wait leaves the commit visible locally, though no
    # quorum has it: compute-ctl must stop serving it.
    c.sql("select pg_cancel_backend(%s)", waiter)
    assert blocked.done.wait(10)
    wait_for(lambda: pg_gone(pid), 30, what="compute-ctl to stop postgres")
    assert c.proc.alive()
    assert "cancelled a wait for synchronous replication" in open(c.proc.log).read()
    cluster.sks[1].start()
    cluster.sks[2].start()
    st = c.wait_ready()
    assert st["term"] > term
    c.sql("insert into t values (2) on conflict do nothing")
    assert 2 in ids(c)


def test_superseded_primary_stops(env):
    cluster, ps, new = env
    c = new("c").start()
    c.sql("create table t (id int primary key)")
    pid = c.pg_pid()
    # Another proposer wins a newer term on the safekeepers.
    election = cluster.elect()
    assert election["term"] > c.status()["term"]
    assert c.wait_exit(30) == 4
    assert pg_gone(pid)
    assert "another compute is primary" in c.log_tail()


def test_primary_makes_no_request_its_token_is_refused(env):
    """compute-ctl does what its compute token allows and nothing else: it
    neither creates the timeline on the safekeepers nor tells the pageserver
    which safekeepers to ingest from (management does both: docs/auth.md),
    so none of its requests is refused, and the pageserver still ingests
    the primary's commits."""
    cluster, ps, new = env
    c = new("c").start()
    c.sql("create table t (id int)")
    c.sql("insert into t values (1)")
    lsn = lsn_int(c.sql("select pg_current_wal_flush_lsn()::text")[0][0])
    wait_for(lambda: lsn_int(http("GET", ps.tl(cluster.tenant, cluster.timeline))[1]
                             ["last_record_lsn"]) >= lsn, 60, what="the pageserver to ingest")
    with open(c.proc.log, errors="replace") as f:
        refused = [line for line in f if re.search(r": 40[13] ", line)]
    assert not refused, refused


def test_http_api_needs_a_credential(env):
    cluster, ps, new = env
    c = new("c").start()
    auth = cluster.auth
    t, tl = cluster.tenant, cluster.timeline
    other_tenant, other_tl = uuid.uuid4().hex, uuid.uuid4().hex
    refused = {
        "": 401,  # none (http() sends the harness's default token for None)
        "not-a-token": 401,
        auth.mint("management", key=auth.other_key(cluster.workdir)): 401,  # unknown key
        auth.mint("compute", tenant=other_tenant, timeline=other_tl): 403,  # another tenant's
        auth.mint("compute", tenant=t, timeline=other_tl): 403,  # another timeline's
        auth.mint("pageserver", tenant=t): 403,  # a role that has no business here
        auth.mint("safekeeper", sub="sk-0"): 403,
    }
    allowed = [auth.management, auth.mint("compute", tenant=t, timeline=tl)]
    pid = c.pg_pid()
    listing = sorted(os.listdir(c.spec["data_dir"]))
    for route in ("/status", "/wal/000000010000000000000001", "/wal/00000002.history"):
        for token, want in refused.items():
            st, body = http("GET", c.url + route, token=token)
            assert st == want, (route, token, st, body)
        for token in allowed:
            st, body = http("GET", c.url + route, token=token)
            assert st not in (401, 403), (route, st, body)
    for route in ("/metrics", "/healthz"):
        assert http("GET", c.url + route, token="")[0] == 200
    # The restore_command's credential: a file only the PostgreSQL user
    # (and root) can read; SQL users cannot.
    header = os.path.join(c.spec["data_dir"], "compute_ctl_restore.header")
    assert oct(os.stat(header).st_mode & 0o777) == "0o600"
    secret = open(header).read().split("Bearer ", 1)[1].strip()
    st, _ = http("GET", c.url + "/wal/000000010000000000000001", token=secret)
    assert st not in (401, 403)
    assert http("GET", c.url + "/status", token=secret)[0] == 401  # /wal only
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        c.sql("select pg_read_file('compute_ctl_restore.header')")
    # Nothing changed: the same PostgreSQL, the same files.
    assert c.pg_pid() == pid and c.status()["state"] == "ready"
    assert sorted(os.listdir(c.spec["data_dir"])) == listing


def rotate_keys(cluster, ctls):
    """Rotation as docs/auth.md gives it, each step told by SIGHUP to the
    safekeepers and to the compute-ctls ctls: the new public key is added;
    every safekeeper's and compute's token is minted again with the new
    private key; the old public key is removed. Checks that tokens signed
    with the old key are refused from then on and the new ones taken, and
    makes the test's own calls use the new management token."""
    auth = cluster.auth
    t = cluster.tenant
    old_mgmt = auth.management

    def hup():
        for sk in cluster.sks:
            os.kill(sk.proc.pid, signal.SIGHUP)
        for c in ctls:
            os.kill(c.proc.pid, signal.SIGHUP)

    def everywhere(token, want):
        urls = [sk.tl(t, cluster.timeline) for sk in cluster.sks] + [c.url + "/status"
                                                                     for c in ctls]
        return all(http("GET", u, token=token)[0] == want for u in urls)

    def token_reloads(c):
        with open(c.proc.log, errors="replace") as f:
            return f.read().count("auth_token_file reloaded")

    # 1. The new public key beside the old one: both verify.
    private_dir = os.path.dirname(auth.private_key)
    subprocess.run([os.path.join(BIN, "lakebase-token"), "keygen", private_dir, "--name", "new"],
                   check=True, capture_output=True)
    new_key = os.path.join(private_dir, "new.key")
    os.replace(os.path.join(private_dir, "new.pem"), os.path.join(auth.keys_dir, "new.pem"))
    hup()
    new_mgmt = auth.mint("management", sub="test-management", key=new_key)
    wait_for(lambda: everywhere(new_mgmt, 200), 30, what="the new key to verify everywhere")
    assert everywhere(old_mgmt, 200)

    # 2. Every component's token minted again with the new key.
    for sk in cluster.sks:
        auth.token_file(sk.name, auth.mint("safekeeper", sub=sk.name, key=new_key))
    for c in ctls:
        auth.token_file(os.path.basename(c.spec["auth_token_file"]),
                        auth.mint("compute", tenant=t, timeline=c.spec["timeline_id"],
                                  sub="c", endpoint=f"127.0.0.1:{c.port}", key=new_key))
    reloads = [token_reloads(c) for c in ctls]
    hup()
    for c, n in zip(ctls, reloads):
        wait_for(lambda: token_reloads(c) > n, 30, what="compute-ctl to read its new token")

    # 3. The old public key goes: its tokens are refused from then on.
    os.unlink(auth.public_key)
    hup()
    wait_for(lambda: everywhere(old_mgmt, 401), 30, what="the old key to be dropped")
    assert everywhere(new_mgmt, 200)
    lakebase.DEFAULT_TOKEN = auth.management = new_mgmt
    for c in ctls:
        c.token = new_mgmt
    for sk in cluster.sks:
        lakebase.TOKEN_BY_BASE[sk.url] = new_mgmt


def test_key_rotation_keeps_the_compute_committing(env):
    """After a key rotation (rotate_keys) on the safekeepers and a running
    primary's compute-ctl, tokens of the old key are refused, compute-ctl's
    own requests (its term watch) carry its new token, a safekeeper started
    again joins with its new one, and the compute keeps committing."""
    cluster, ps, new = env
    c = new("c").start()
    c.sql("create table r (id int)")
    c.sql("insert into r values (0)")
    t, tl = cluster.tenant, cluster.timeline
    old_compute = cluster.auth.mint("compute", tenant=t, timeline=tl,
                                    endpoint=f"127.0.0.1:{c.port}")
    with open(c.proc.log, errors="replace") as f:
        blind = f.read().count("no safekeeper told its term")
    rotate_keys(cluster, [c])
    for sk in cluster.sks:
        assert http("GET", sk.tl(t, tl), token=old_compute)[0] == 401

    # compute-ctl's term watch (every 2 s) goes on being answered: its
    # requests carry the new token.
    c.sql("insert into r values (1)")
    time.sleep(5)
    with open(c.proc.log, errors="replace") as f:
        assert f.read().count("no safekeeper told its term") == blind, c.log_tail()
    # A safekeeper started again authenticates with its new token, and the
    # compute keeps committing, with it in the quorum.
    victim = cluster.sks[2]
    victim.stop()
    victim.start()
    cluster.sks[0].stop()
    try:
        for i in range(2, 12):
            c.sql("insert into r values (%s)", i)
        assert [r[0] for r in c.sql("select id from r order by id")] == list(range(12))
    finally:
        cluster.sks[0].start()
    assert c.status()["state"] == "ready"


def test_replica_streams_on_after_a_key_rotation(env):
    """A replica streams from a safekeeper with its compute token as the
    password (primary_conninfo). After a key rotation compute-ctl has put
    the new token there and had PostgreSQL reload, so when the safekeeper
    restarts the replica's WAL receiver reconnects with the new token and
    streams again."""
    cluster, ps, new = env
    p = new("p").start()
    p.sql("create table f (id int)")
    p.sql("insert into f values (0)")
    r = new("r", mode="replica").start()
    wait_for(lambda: r.sql("select count(*) from f")[0][0] == 1, 60, what="the replica to follow")
    rotate_keys(cluster, [p, r])
    # every safekeeper restarts: whichever the replica streams from drops it
    for sk in cluster.sks:
        sk.stop()
        sk.start()
    for i in range(1, 6):
        p.sql("insert into f values (%s)", i)
    wait_for(lambda: r.sql("select count(*) from f")[0][0] == 6, 90,
             what="the replica to follow after the rotation")
    # and it follows by streaming, not only through restore_command
    # (compute-ctl's WAL endpoint, which would mask a refused stream)
    wait_for(lambda: r.superuser_sql("select status from pg_stat_wal_receiver") ==
             [("streaming",)], 60, what="the replica's WAL receiver to stream again")
    assert r.status()["state"] == "ready"
