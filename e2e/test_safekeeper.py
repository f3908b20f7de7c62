"""Safekeepers with a real PostgreSQL 15 primary: quorum commit, zero loss
across failover, fencing of a stale primary."""
import threading
import time

import psycopg
import pytest

from lakebase import wait_for


def sync_rep_waiters(pg):
    return pg.sql("select pid from pg_stat_activity where wait_event = 'SyncRep'")


class BlockedCommit(threading.Thread):
    """Runs one INSERT in its own connection; records whether it returned."""

    def __init__(self, pg, sql):
        super().__init__(daemon=True)
        self.pg, self.sql = pg, sql
        self.done = threading.Event()
        self.error = None
        self.warnings = []

    def run(self):
        try:
            with self.pg.connect() as c:
                c.add_notice_handler(lambda d: self.warnings.append(d.message_primary))
                c.execute(self.sql)
        except Exception as e:  # noqa: BLE001 - reported to the test
            self.error = e
        self.done.set()


def test_commits_need_a_quorum(cluster):
    pg, _ = cluster.bootstrap()
    pg.sql("create table t (id int primary key)")
    pg.sql("insert into t values (1)")
    wait_for(lambda: all(sk.status(cluster.tenant, cluster.timeline)["streaming"]
                         for sk in cluster.sks), 20, what="all safekeepers streaming")

    # One down: commits still succeed.
    cluster.sks[2].kill()
    pg.sql("insert into t values (2)")

    # Two down: a commit waits for synchronous replication.
    cluster.sks[1].kill()
    blocked = BlockedCommit(pg, "insert into t values (3)")
    blocked.start()
    wait_for(lambda: sync_rep_waiters(pg), 10, what="a backend waiting in SyncRep")
    time.sleep(1.0)
    assert not blocked.done.is_set(), "a commit returned with one safekeeper of three"

    # One comes back: the commit completes, acknowledged by a quorum.
    cluster.sks[1].start()
    assert blocked.done.wait(30), "commit did not complete after a safekeeper came back"
    assert blocked.error is None, blocked.error
    assert not blocked.warnings, blocked.warnings
    assert pg.sql("select count(*) from t")[0][0] == 3
    lsn = pg.sql("select pg_current_wal_flush_lsn()::text")[0][0]
    from lakebase import lsn_int
    flushed = [lsn_int(sk.status(cluster.tenant, cluster.timeline)["flush_lsn"])
               for sk in cluster.sks[:2]]
    assert all(f >= lsn_int(lsn) - 8192 for f in flushed)


class Workload(threading.Thread):
    """Inserts ids one commit at a time; keeps those whose COMMIT returned
    without a warning (a cancelled synchronous-replication wait warns)."""

    def __init__(self, pg):
        super().__init__(daemon=True)
        self.pg = pg
        self.acked = []
        self.stop = threading.Event()

    def run(self):
        try:
            with self.pg.connect() as c:
                warnings = []
                c.add_notice_handler(lambda d: warnings.append(d.message_primary))
                i = 0
                while not self.stop.is_set():
                    i += 1
                    warnings.clear()
                    c.execute("insert into acked values (%s, repeat('x', 500))", (i,))
                    if not warnings:
                        self.acked.append(i)
        except psycopg.Error:
            pass  # the primary was killed


@pytest.mark.parametrize("pair", [(0, 1), (0, 2), (1, 2)])
def test_failover_loses_no_acknowledged_commit(cluster, pair):
    pg, _ = cluster.bootstrap()
    pg.sql("create table acked (id int primary key, pad text)")
    w = Workload(pg)
    w.start()
    wait_for(lambda: len(w.acked) >= 200, 30, what="the workload to commit")
    pg.kill9()
    w.stop.set()
    w.join(10)
    assert len(w.acked) >= 200

    # Only the pair survives; a new primary is elected with it.
    (left_out,) = set(range(3)) - set(pair)
    cluster.sks[left_out].kill()
    election = cluster.elect()
    assert election["voters"] == 2 and election["term"] == 2
    new = cluster.start_primary(cluster.new_compute("pg1"), election)

    got = {r[0] for r in new.sql("select id from acked")}
    lost = [i for i in w.acked if i not in got]
    assert not lost, f"{len(lost)} acknowledged commits lost, e.g. {lost[:5]}"
    # The new primary takes writes, acknowledged by the pair.
    new.sql("insert into acked values (-1, 'after failover')")


def test_stale_primary_is_fenced(cluster):
    old, _ = cluster.bootstrap()
    old.sql("create table t (id int primary key, who text)")
    old.sql("insert into t values (1, 'old')")

    # A new term for a new compute while the old primary still runs.
    election = cluster.elect()
    assert election["term"] == 2
    new = cluster.start_primary(cluster.new_compute("pg1"), election)
    assert new.sql("select who from t")[0][0] == "old"

    # The old primary can no longer get a commit acknowledged.
    blocked = BlockedCommit(old, "insert into t values (2, 'stale')")
    blocked.start()
    wait_for(lambda: sync_rep_waiters(old), 10, what="the stale commit to wait in SyncRep")
    time.sleep(2.0)
    assert not blocked.done.is_set(), "a stale primary got a commit acknowledged"
    # The new one can.
    new.sql("insert into t values (3, 'new')")
    assert [r[0] for r in new.sql("select id from t order by id")] == [1, 3]
    old.stop("immediate")
    blocked.done.wait(10)


def test_divergent_tail_is_truncated(cluster):
    from lakebase import lsn_int
    t, l = cluster.tenant, cluster.timeline
    p1, _ = cluster.bootstrap()
    p1.sql("create table t (id int primary key, who text)")
    p1.sql("insert into t select g, 'acked' from generate_series(1, 100) g")
    sk0, sk1, sk2 = cluster.sks
    wait_for(lambda: all(sk.status(t, l)["streaming"] for sk in cluster.sks), 20,
             what="all safekeepers streaming")

    # sk-0 alone receives a commit that can never be acknowledged.
    sk1.kill()
    sk2.kill()
    blocked = BlockedCommit(p1, "insert into t select g, 'unacked' from generate_series(101, 2000) g")
    blocked.start()
    wait_for(lambda: sync_rep_waiters(p1), 10, what="the commit to wait")
    wait_for(lambda: lsn_int(sk0.status(t, l)["end_lsn"]) > lsn_int(sk0.status(t, l)["commit_lsn"]),
             10, what="sk-0 to hold an unacknowledged tail")
    tail_end = lsn_int(sk0.status(t, l)["end_lsn"])
    p1.kill9()
    sk0.kill()

    # The other two elect a new term without sk-0: it starts before the tail.
    sk1.start()
    sk2.start()
    election = cluster.elect()
    start = lsn_int(election["start_lsn"])
    assert start < tail_end
    p2 = cluster.start_primary(cluster.new_compute("pg1"), election)
    assert [r[0] for r in p2.sql("select distinct who from t")] == ["acked"]
    p2.sql("insert into t select g, 'term2' from generate_series(5000, 5100) g")

    # sk-0 comes back and joins the term: its tail is cut, it follows p2.
    sk0.start()
    cluster.announce(election, p2)
    wait_for(lambda: sk0.status(t, l)["term"] == election["term"], 20, what="sk-0 in the new term")
    p2.sql("insert into t values (9999, 'after rejoin')")
    target = lsn_int(p2.sql("select pg_current_wal_flush_lsn()::text")[0][0])
    wait_for(lambda: all(lsn_int(sk.status(t, l)["commit_lsn"]) >= target for sk in cluster.sks),
             30, what="every safekeeper to commit past the rejoin")

    # Byte-identical WAL on all three up to the commit LSN.
    commit = min(lsn_int(sk.status(t, l)["commit_lsn"]) for sk in cluster.sks)
    first = lsn_int(sk1.status(t, l)["start_lsn"])
    ref = sk1.wal(t, l, first, commit)
    assert sk0.wal(t, l, first, commit) == ref
    assert sk2.wal(t, l, first, commit) == ref
    st0 = sk0.status(t, l)
    assert st0["term_history"] == sk1.status(t, l)["term_history"]


def test_hot_standby_follows_and_never_passes_commit(cluster):
    from lakebase import lsn_int
    t, l = cluster.tenant, cluster.timeline
    primary, _ = cluster.bootstrap()
    primary.sql("create table t (id int primary key)")
    primary.sql("insert into t select generate_series(1, 500)")
    sk0, sk1, sk2 = cluster.sks
    standby = cluster.start_standby("replica", sk0)
    wait_for(lambda: standby.sql("select count(*) from t")[0][0] == 500, 60,
             what="the standby to replay from the safekeeper")
    primary.sql("insert into t select generate_series(501, 600)")
    wait_for(lambda: standby.sql("select count(*) from t")[0][0] == 600, 30,
             what="the standby to follow")
    assert standby.sql("select pg_is_in_recovery()")[0][0]

    # Commits now block: sk-0 holds WAL past the commit LSN; the standby
    # must not receive any of it.
    sk1.kill()
    sk2.kill()
    blocked = BlockedCommit(primary, "insert into t select generate_series(601, 5000)")
    blocked.start()
    wait_for(lambda: lsn_int(sk0.status(t, l)["end_lsn"]) > lsn_int(sk0.status(t, l)["commit_lsn"]),
             10, what="sk-0 to hold uncommitted WAL")
    for _ in range(20):
        commit = lsn_int(sk0.status(t, l)["commit_lsn"])
        received = standby.sql("select pg_last_wal_receive_lsn()::text")[0][0]
        assert received is None or lsn_int(received) <= commit, (received, commit)
        time.sleep(0.1)
    assert standby.sql("select count(*) from t")[0][0] == 600

    # Quorum back: the commit completes and the standby gets it.
    sk1.start()
    assert blocked.done.wait(30)
    wait_for(lambda: standby.sql("select count(*) from t")[0][0] == 5000, 30,
             what="the standby to receive the commit")
