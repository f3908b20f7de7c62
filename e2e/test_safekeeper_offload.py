"""Completed WAL segments go to object storage; local segments are removed
only once offloaded and no consumer still needs them."""
import os

from lakebase import Cluster, http, lsn_int, lsn_str, wait_for

SEG = 1024 * 1024


def local_segments(sk, tenant, timeline):
    d = os.path.join(sk.dir, "data", tenant, timeline)
    return sorted(f for f in os.listdir(d) if len(f) == 24)


def test_offload_and_removal(workdir):
    store = os.path.join(workdir, "store")
    c = Cluster(workdir, sk_args=["--remote_storage", f"file://{store}"])
    c.start()
    pgs = []
    c.track = pgs.append
    try:
        pg, election = c.bootstrap(initdb_args=("--wal-segsize=1",))
        t, l = c.tenant, c.timeline
        start = lsn_int(election["start_lsn"])
        # A consumer that has applied nothing yet holds everything locally.
        for sk in c.sks:
            st, body = http("POST", sk.tl(t, l, "/consumer"),
                            {"name": "pageserver-1", "applied_lsn": lsn_str(start)})
            assert st == 200, body
        pg.sql("create table t (id int, pad text)")
        pg.sql("insert into t select g, repeat('x', 200) from generate_series(1, 20000) g")
        commit = lsn_int(pg.sql("select pg_current_wal_flush_lsn()::text")[0][0])
        assert commit - start > 4 * SEG

        prefix = os.path.join(store, t, l, "wal")
        want_complete = commit // SEG  # segments wholly below the commit LSN
        wait_for(lambda: len(os.listdir(prefix)) >= want_complete - start // SEG, 30,
                 what="completed segments in object storage")
        for sk in c.sks:
            wait_for(lambda: lsn_int(sk.status(t, l)["offloaded_lsn"]) >= want_complete * SEG, 30,
                     what=f"{sk.name} to record the offload")

        # Each offloaded file equals the compute's own copy of that segment.
        names = sorted(os.listdir(prefix))
        assert names, "nothing offloaded"
        for name in names:
            if not name.startswith("00000002"):
                continue
            with open(os.path.join(prefix, name), "rb") as f, \
                    open(os.path.join(pg.datadir, "pg_wal", name), "rb") as g:
                assert f.read() == g.read(), f"offloaded {name} differs from the compute's"

        # The consumer still needs them: nothing removed locally.
        first = start // SEG
        for sk in c.sks:
            segs = local_segments(sk, t, l)
            assert int(segs[0][16:], 16) <= first, segs[:3]

        # It moves on: segments below its position and offloaded go away,
        # never the one it still needs, nor anything not offloaded.
        applied = (first + 3) * SEG + 100
        for sk in c.sks:
            http("POST", sk.tl(t, l, "/consumer"),
                 {"name": "pageserver-1", "applied_lsn": lsn_str(applied)})
        for sk in c.sks:
            segs = [int(s[16:], 16) for s in local_segments(sk, t, l) if s.startswith("00000002")]
            assert min(segs) >= first, segs
            # The term's first segment is kept (a restoring compute reads it)
            # and every segment from the consumer's on is kept.
            assert set(range(first + 3, commit // SEG + 1)) <= set(segs)
            assert first + 1 not in segs and first + 2 not in segs, segs

        # Bad consumer reports are refused.
        st, body = http("POST", c.sks[0].tl(t, l, "/consumer"), {"name": "", "applied_lsn": "0/0"})
        assert st == 400 and "name" in body["error"]
        st, body = http("POST", c.sks[0].tl(t, l, "/consumer"), {"name": "x", "applied_lsn": "1"})
        assert st == 400
    finally:
        for p in pgs:
            p.stop("immediate")
        if hasattr(c, "base"):
            c.base.stop("immediate")
        c.stop()
