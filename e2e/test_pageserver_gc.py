"""GC under a steady update workload: object storage stays bounded (full
snapshots let older layers go once the retention window has passed them),
and nothing that a branch point or the window needs is ever deleted."""
import os
import time
import uuid

from lakebase import (Pageserver, http, ids, insert_lsn, lsn_int, start_compute, timeline_view, wait_for,
                      wait_ingested)

RETENTION_S = 2
ROUNDS = 36


def layer_files(ps, tenant, timeline):
    prefix = f"{tenant}/{timeline}/layers/"
    return {k[len(prefix):]: size for k, size in ps.store.list(prefix).items()}


def test_gc_bounds_storage_and_keeps_what_is_needed(cluster):
    workdir = cluster.workdir
    ps = Pageserver(workdir, extra_args=["--gc_retention", f"{RETENTION_S}s",
                                         "--gc_interval", "200ms"]).start()
    try:
        t, root = cluster.tenant, cluster.timeline
        st, boot = ps.create(t, root)
        assert st == 201, boot
        primary, _ = start_compute(cluster, ps, "root", boot)
        primary.sql("create table t (id int primary key, v int, pad text)")
        primary.sql("insert into t select g, 0, repeat('x', 200) from generate_series(1, 40000) g")

        taken = []  # every snapshot ever listed: (lsn, created_ms, layer, bytes)
        counts = []
        branch_point = branch_sum = branch = None

        def snapshot_round(r):
            lo = (r * 20000) % 40000  # half the table, the other half next time
            primary.sql(f"update t set v = v + 1 where id > {lo} and id <= {lo + 20000}")
            primary.sql("checkpoint")
            target = lsn_int(insert_lsn(primary))
            wait_ingested(ps, t, root, target, 60, "ingest")
            st, body = http("POST", ps.tl(t, root, "/snapshot"), timeout=120)
            assert st == 200, body
            for s in body["snapshots"]:
                if s["layer"] not in {x["layer"] for x in taken}:
                    taken.append(s)

        for r in range(ROUNDS):
            snapshot_round(r)
            if r == 3:
                # A branch early on: its point must outlive the window.
                branch_point = insert_lsn(primary)
                branch_sum = primary.sql("select sum(v) from t")[0][0]
                branch = uuid.uuid4().hex
                st, bmeta = ps.create(t, branch, ancestor=root, lsn=branch_point)
                assert st == 201, bmeta
            counts.append(sum(layer_files(ps, t, root).values()))
            time.sleep(0.2)
        # One more gc pass, then look.
        st, g = http("POST", ps.url + "/v1/gc")
        assert st == 200, g
        _, meta = http("GET", ps.tl(t, root))
        now_ms = time.time() * 1000
        listed = {s["layer"] for s in meta["snapshots"]}
        files = layer_files(ps, t, root)

        # Full snapshots were taken, and gc deleted what nothing needs.
        assert sum(1 for s in taken if s["full"]) >= 2, taken
        assert len(taken) >= ROUNDS
        written = sum(s["bytes"] for s in taken)
        kept = sum(files.values())
        print(f"\nsnapshots taken={len(taken)} kept={len(listed)} layer bytes per round={counts} "
              f"bytes written={written} kept={kept}")
        assert kept < written / 2, (kept, written)
        # Bounded: once the window has filled, stored bytes stop growing
        # while snapshots go on.
        assert max(counts[ROUNDS // 2:]) <= 1.5 * max(counts[:ROUNDS // 2]), counts
        # And by what the policy promises: two chains of a full snapshot and
        # deltas weighing at most as much (the window's and the newest), and
        # the branch point's chain.
        biggest_full = max(s["bytes"] for s in taken if s["full"])
        assert max(counts) <= 6 * biggest_full, (counts, biggest_full)
        # The index and the store agree: every listed layer exists.
        assert listed <= set(files), (listed, files)
        # Every snapshot taken inside the window is still there.
        for s in taken:
            if s["created_ms"] >= now_ms - (RETENTION_S - 1) * 1000:
                assert s["layer"] in listed, (s, listed)
        # Every kept snapshot can be restored (its whole chain is there).
        for s in meta["snapshots"]:
            st, _ = http("GET", ps.tl(t, root, f"/basebackup?lsn={s['lsn']}"), timeout=120)
            assert st == 200, s

        # The early branch still works: a compute on it has the data as of
        # its branch point.
        view = timeline_view(cluster, branch)
        bpg, _ = start_compute(view, ps, "branch", bmeta)
        assert bpg.sql("select sum(v) from t")[0][0] == branch_sum
        assert len(ids(bpg)) == 40000
    finally:
        ps.stop()
