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
