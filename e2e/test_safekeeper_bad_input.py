"""Bad input never crashes a safekeeper nor corrupts what it stores.

Against real processes (three safekeepers, a PostgreSQL 15 primary):
malformed HTTP requests get a 4xx naming the problem, stale terms are
refused without changing anything, garbage on the replication port gets an
ErrorResponse or a closed connection, a full disk stops acknowledgements
(and nothing acknowledged is lost), and an fsync that stalls or fails is
never acknowledged. After each, the safekeepers keep serving a live
timeline.
"""
import http.client as httpclient
import json
import os
import random
import shutil
import socket
import struct
import subprocess
import tempfile
import threading
import time
import uuid
from contextlib import contextmanager

import pytest

import lakebase
from lakebase import Auth, Cluster, Wire, http, lsn_int, lsn_str, wait_for

SEG = 16 * 1024 * 1024


# ---- helpers -------------------------------------------------------------------------


def primary_flush(pg):
    return lsn_int(pg.sql("select pg_current_wal_flush_lsn()::text")[0][0])


def acked_flush(pg, name):
    """The flush position safekeeper `name` last reported to the primary
    (None while it is not connected)."""
    rows = pg.sql("select flush_lsn::text from pg_stat_replication where application_name = %s",
                  name)
    return lsn_int(rows[0][0]) if rows and rows[0][0] else None


def assert_serving(cluster, pg, sks=None):
    """Every safekeeper is up, answers /healthz, and streams a new commit
    from the primary and fsyncs it."""
    sks = sks or cluster.sks
    for sk in sks:
        assert sk.proc.alive(), f"{sk.name} died"
        assert http("GET", sk.url + "/healthz")[0] == 200
    pg.sql("create table if not exists probe (id serial primary key, at timestamptz)")
    pg.sql("insert into probe (at) values (now())")
    target = primary_flush(pg)
    wait_for(lambda: all(lsn_int(sk.status(cluster.tenant, cluster.timeline)["flush_lsn"]) >= target
                         for sk in sks), 30, what="every safekeeper to fsync a new commit")


def assert_error(status_body, statuses, *words):
    """A 4xx answer with a JSON {"error": "..."} that mentions each word."""
    st, body = status_body
    assert st in statuses, (st, body)
    assert isinstance(body, dict) and isinstance(body.get("error"), str) and body["error"], body
    for w in words:
        assert w in body["error"], (w, body)


def raw_http(port, head, body=b"", read_timeout=10):
    """Send a hand-written request; return (status, parsed JSON body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=read_timeout) as s:
        s.sendall(head)
        try:
            s.sendall(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # answered early and closed: read the answer
        data = b""
        while True:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            data += chunk
    head_end = data.index(b"\r\n\r\n")
    status = int(data.split(b" ", 2)[1])
    try:
        return status, json.loads(data[head_end + 4:])
    except ValueError:
        return status, data[head_end + 4:]


def errors_in(msgs):
    return [Wire.error_fields(b) for t, b in msgs if t == b"E"]


def expect_fatal_then_close(w, sqlstate=None, words=()):
    msgs = []
    while True:
        m = w.read()
        if m is None:
            break
        msgs.append(m)
    errs = errors_in(msgs)
    assert errs and errs[-1]["S"] == "FATAL", msgs
    if sqlstate:
        assert errs[-1]["C"] == sqlstate, errs
    for word in words:
        assert word in errs[-1]["M"], errs
    w.close()
    return errs[-1]


def expect_error_then_ready(msgs, sqlstate=None, words=()):
    errs = errors_in(msgs)
    assert len(errs) == 1 and errs[0]["S"] == "ERROR", msgs
    assert msgs[-1][0] == b"Z", msgs
    if sqlstate:
        assert errs[0]["C"] == sqlstate, errs
    for word in words:
        assert word in errs[0]["M"], errs
    return errs[0]


def replication_conn(cluster, sk, token=None, **extra):
    w = Wire(sk.pg_port)
    w.send(Wire.startup_packet(user="postgres", replication="true", application_name="probe",
                               options=f"-c tenant_id={cluster.tenant} "
                                       f"-c timeline_id={cluster.timeline}", **extra) +
           Wire.password(token or cluster.compute_token()))
    msgs = w.until_ready()
    assert msgs and msgs[-1][0] == b"Z" and not errors_in(msgs), msgs
    return w


def read_stream(w, start, end):
    """Read XLogData from a streaming connection until [start, end) is in."""
    out = bytearray()
    deadline = time.time() + 20
    while start + len(out) < end:
        assert time.time() < deadline, "stream stalled"
        m = w.read()
        assert m is not None, "stream closed"
        t, body = m
        assert t == b"d", m
        if body[:1] == b"w":
            wal_start = struct.unpack("!Q", body[1:9])[0]
            assert wal_start == start + len(out), (lsn_str(wal_start), lsn_str(start + len(out)))
            out += body[25:]
    return bytes(out[:end - start])


def start_cluster(workdir):
    c = Cluster(workdir)
    pgs = []
    c.track = pgs.append
    c.pgs = pgs
    return c


def stop_cluster(c):
    for pg in getattr(c, "pgs", []):
        pg.stop("immediate")
    if hasattr(c, "base"):
        c.base.stop("immediate")
    for sk in c.sks:
        if sk.proc:
            sk.stop()


# ---- a live timeline shared by the HTTP and replication-port tests -------------------


@pytest.fixture(scope="module")
def live():
    """Three safekeepers with a primary in term 2 (so that term 1 is stale):
    bootstrap under term 1, then a second election and a new primary."""
    d = tempfile.mkdtemp(prefix="lb-e2e-")
    os.chmod(d, 0o755)
    c = start_cluster(d)
    c.start()
    ok = False
    try:
        old, _ = c.bootstrap()
        old.sql("create table t (id int primary key, pad text)")
        old.sql("insert into t select g, 'term 1' from generate_series(1, 100) g")
        old.stop("immediate")
        election = c.elect()
        assert election["term"] == 2
        c.primary = c.start_primary(c.new_compute("pg1"), election)
        c.primary.sql("insert into t select g, 'term 2' from generate_series(101, 200) g")
        assert_serving(c, c.primary)
        yield c
        ok = True
    finally:
        stop_cluster(c)
        if ok and not os.environ.get("LB_KEEP_TMP"):
            shutil.rmtree(d, ignore_errors=True)
        else:
            print(f"\nkept {d}")


def protocol_state(sk, c):
    """The parts of a timeline's status that only the protocol may change."""
    st = sk.status(c.tenant, c.timeline)
    return {k: st[k] for k in ("term", "term_history", "last_log_term", "streaming_from",
                               "start_lsn", "system_id")}


# ---- HTTP ----------------------------------------------------------------------------


def test_malformed_bodies_get_a_clear_400(live):
    c = live
    sk = c.sks[0]
    before = protocol_state(sk, c)
    tl = sk.tl(c.tenant, c.timeline)
    create = f"{sk.url}/v1/tenant/{c.tenant}/timeline"
    generic = [
        (b"not json", "malformed JSON"),
        (b"", "empty"),
        (b"[1, 2]", "JSON object"),
        (b'"term"', "expected"),
        (b"{\"term\": 5", "malformed JSON"),
        (b'{"term": 1, "term": 2}', "duplicate"),
        (b"\xff\xfe{}", "malformed JSON"),
        (b"[" * 100000 + b"]" * 100000, "malformed JSON"),
        (b"{}", "missing field"),
    ]
    for route in ("/vote", "/accept", "/elected", "/consumer"):
        for body, words in generic:
            assert_error(http("POST", tl + route, body), (400,), words)
    for body, words in generic:
        assert_error(http("POST", create, body), (400,), words)

    bad_terms = [("x", "must be an integer"), (1.5, "must be an integer"),
                 (None, "term"), (True, "must be an integer"), ([1], "must be an integer"),
                 (2 ** 64, "too big"), (1e300, "must be an integer"), (-1, "term"), (0, "term")]
    for term, words in bad_terms:
        assert_error(http("POST", tl + "/vote", {"term": term}), (400,), words)
        assert_error(http("POST", tl + "/elected", {"term": term, "compute": "127.0.0.1:1"}),
                     (400,), words)

    start = before["term_history"][-1]["lsn"]
    hist = before["term_history"]
    accept = [
        ({"term": 3, "end_lsn": "0/1G", "term_history": hist}, "end_lsn"),
        ({"term": 3, "end_lsn": "1/", "term_history": hist}, "end_lsn"),
        ({"term": 3, "end_lsn": 5, "term_history": hist}, "end_lsn"),
        ({"term": 3, "end_lsn": start}, "term_history"),
        ({"term": 3, "end_lsn": start, "term_history": "x"}, "term_history"),
        ({"term": 3, "end_lsn": start, "term_history": [1, 2]}, "term_history"),
        ({"term": 3, "end_lsn": start, "term_history": [{"term": 3, "lsn": "0/1G", "tli": 3}]},
         "term_history"),
        ({"term": 3, "end_lsn": start, "term_history": [{"term": 3, "lsn": start, "tli": 0}]},
         "term_history"),
        ({"term": 3, "end_lsn": start,
          "term_history": [{"term": 3, "lsn": start, "tli": 2 ** 40}]}, "term_history"),
        ({"term": -3, "end_lsn": start, "term_history": [{"term": 3, "lsn": start, "tli": 3}]},
         "term"),
        # out of order: terms, then LSNs
        ({"term": 3, "end_lsn": start, "term_history": [
            {"term": 2, "lsn": "0/1000000", "tli": 2}, {"term": 1, "lsn": "0/1000000", "tli": 2},
            {"term": 3, "lsn": start, "tli": 3}]}, "terms must increase"),
        ({"term": 3, "end_lsn": "0/1000000", "term_history": [
            {"term": 1, "lsn": start, "tli": 2}, {"term": 3, "lsn": "0/1000000", "tli": 3}]},
         "must not decrease"),
        # the last entry must be this term, starting at end_lsn
        ({"term": 3, "end_lsn": start, "term_history": [{"term": 2, "lsn": start, "tli": 3}]},
         "must end with this term"),
        ({"term": 3, "end_lsn": start,
          "term_history": [{"term": i + 1, "lsn": start, "tli": 3} for i in range(1025)]},
         "at most"),
        ({"term": 3, "end_lsn": start, "term_history": [{"term": 3, "lsn": start, "tli": 3}],
          "donor": "ftp://elsewhere"}, "donor"),
        ({"term": 3, "end_lsn": start, "term_history": [{"term": 3, "lsn": start, "tli": 3}],
          "donor": 7}, "donor"),
    ]
    for body, words in accept:
        assert_error(http("POST", tl + "/accept", body), (400,), words)

    consumer = [
        ({"name": "", "applied_lsn": "0/0"}, "name"),
        ({"name": "x" * 100, "applied_lsn": "0/0"}, "name"),
        ({"name": "ps", "applied_lsn": "/5"}, "applied_lsn"),
        ({"name": "ps"}, "applied_lsn"),
        ({"name": ["ps"], "applied_lsn": "0/0"}, "name"),
    ]
    for body, words in consumer:
        assert_error(http("POST", tl + "/consumer", body), (400,), words)

    new_id = uuid.uuid4().hex
    good = {"timeline_id": new_id, "system_id": "7", "start_lsn": "0/1000000"}
    creates = [
        (dict(good, timeline_id="XYZ"), "timeline_id"),
        (dict(good, timeline_id=new_id.upper()), "timeline_id"),
        (dict(good, timeline_id=new_id + "0"), "timeline_id"),
        (dict(good, system_id="-1"), "system_id"),
        (dict(good, system_id=" 7"), "system_id"),
        (dict(good, system_id="0"), "system_id"),
        (dict(good, system_id="99999999999999999999999"), "system_id"),
        (dict(good, system_id=7), "system_id"),
        (dict(good, start_lsn="0/1G"), "start_lsn"),
        (dict(good, start_lsn="0/1000001"), "start_lsn"),
        (dict(good, start_lsn="FFFFFFFF/FFFFFFFF"), "start_lsn"),
        (dict(good, wal_seg_size=3), "wal_seg_size"),
        (dict(good, wal_seg_size=2 ** 40), "wal_seg_size"),
        (dict(good, wal_seg_size=-SEG), "wal_seg_size"),
        (dict(good, pg_tli=0), "pg_tli"),
        (dict(good, pg_tli=2 ** 33), "pg_tli"),
        (dict(good, pg_tli="1"), "pg_tli"),
    ]
    for body, words in creates:
        assert_error(http("POST", create, body), (400,), words)
    # None of them left a timeline behind, on the API or on disk.
    assert http("GET", sk.tl(c.tenant, new_id))[0] == 404
    assert not os.path.exists(os.path.join(sk.dir, "data", c.tenant, new_id))
    # The live timeline with other parameters: a conflict, not a new timeline.
    assert_error(http("POST", create, {"timeline_id": c.timeline, "system_id": "7",
                                       "start_lsn": "0/1000000"}), (409,), "different parameters")

    # Oversized bodies: announced by Content-Length (answered before the
    # body is read), and chunked (read, dropped, then refused).
    path = f"/v1/tenant/{c.tenant}/timeline/{c.timeline}/vote"
    big = b'{"term": 1, "pad": "' + b"x" * (2 << 20) + b'"}'
    head = (f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Authorization: Bearer {lakebase.DEFAULT_TOKEN}\r\n"
            f"Content-Length: {len(big)}\r\nConnection: close\r\n\r\n").encode()
    assert_error(raw_http(sk.http_port, head), (413,), "larger than")
    conn = httpclient.HTTPConnection("127.0.0.1", sk.http_port, timeout=20)
    conn.request("POST", path, body=iter([big[i:i + 65536] for i in range(0, len(big), 65536)]),
                 headers={"Content-Type": "application/json",
                          "Authorization": f"Bearer {lakebase.DEFAULT_TOKEN}"},
                 encode_chunked=True)
    r = conn.getresponse()
    assert_error((r.status, json.loads(r.read())), (413,), "larger than")
    conn.close()

    assert protocol_state(sk, c) == before
    assert_serving(c, c.primary)


def test_bad_ids_and_file_names_get_400_or_404(live):
    c = live
    sk = c.sks[1]
    before = protocol_state(sk, c)
    unknown = uuid.uuid4().hex
    malformed = ["XYZ", c.tenant.upper(), c.tenant[:31], c.tenant + "0", "g" * 32,
                 "%00" + c.tenant[3:], "..", "%2e%2e"]
    routes = [("GET", ""), ("DELETE", ""), ("POST", "/vote"), ("POST", "/accept"),
              ("POST", "/elected"), ("POST", "/consumer"),
              ("GET", "/wal?from=0/0&to=0/10"),
              ("GET", "/segment/000000010000000000000001"), ("GET", "/history/00000002.history")]
    bodies = {"/vote": {"term": 1}, "/elected": {"term": 1}, "/consumer": {"name": "x",
                                                                           "applied_lsn": "0/0"},
              "/accept": {"term": 9, "end_lsn": "0/1000000",
                          "term_history": [{"term": 9, "lsn": "0/1000000", "tli": 1}]}}
    for method, suffix in routes:
        body = bodies.get(suffix)
        for bad in malformed:
            for url, which in ((sk.tl(bad, c.timeline, suffix), "tenant_id"),
                               (sk.tl(c.tenant, bad, suffix), "timeline_id")):
                st, reply = http(method, url, body)
                if st == 404 and "no such endpoint" in str(reply):
                    continue  # ".." taken out of the path by the client or router
                assert_error((st, reply), (400,), which)
        for url in (sk.tl(unknown, c.timeline, suffix), sk.tl(c.tenant, unknown, suffix)):
            assert_error(http(method, url, body), (404,), "not found")
    # create: a malformed tenant in the path
    assert_error(http("POST", f"{sk.url}/v1/tenant/NOTHEX/timeline",
                      {"timeline_id": unknown, "system_id": "7", "start_lsn": "0/1000000"}),
                 (400,), "tenant_id")

    tl = sk.tl(c.tenant, c.timeline)
    st = sk.status(c.tenant, c.timeline)
    tli = st["term_history"][-1]["tli"]
    commit = lsn_int(st["commit_lsn"])
    segno = commit // SEG
    cur_seg = f"{tli:08X}{segno >> 8:08X}{segno & 0xFF:08X}"
    # What is there is served ...
    st_, body = http("GET", f"{tl}/segment/{cur_seg}")
    assert st_ == 200 and len(body) == SEG
    st_, body = http("GET", f"{tl}/history/{tli:08X}.history")
    assert st_ == 200 and b"no recovery target" in body
    # ... what is not, or cannot be, is refused.
    for name in ["x", f"{tli:08X}{0:08X}{0xAB:08X}".lower(), cur_seg[:-1], cur_seg + "0", "0" * 24,
                 f"{tli:08X}{segno >> 8:08X}{0x100:08X}", "%2e%2e", "00000002.history",
                 cur_seg + ".partial", "a" * 300]:
        assert_error(http("GET", f"{tl}/segment/{name}"), (400,), "is not a WAL segment name")
    ahead = segno + 5
    for name in [f"{tli:08X}{ahead >> 8:08X}{ahead & 0xFF:08X}",
                 f"{tli + 7:08X}{segno >> 8:08X}{segno & 0xFF:08X}",
                 f"{tli:08X}00000000000000FF", f"{tli:08X}0000000000000000"]:
        assert_error(http("GET", f"{tl}/segment/{name}"), (404,), "not available")
    for name in ["x", "00000000.history", "0000000G.history", "00000002.historyx",
                 "2.history", "00000002.HISTORY", "%2e%2e", cur_seg]:
        assert_error(http("GET", f"{tl}/history/{name}"), (400,), "history file name")
    for name in ["00000001.history", f"{tli + 1:08X}.history", "FFFFFFFF.history"]:
        assert_error(http("GET", f"{tl}/history/{name}"), (404,), "not available")
    # Raw WAL: malformed ranges are 400, ranges not held are 404.
    for q in ["", "?from=0/0", "?from=0/1G&to=0/2", "?from=0/2&to=0/1", "?from=0/0&to=1/0",
              "?from=&to=", "?from=-1/0&to=0/0"]:
        assert_error(http("GET", f"{tl}/wal{q}"), (400,), "from=X/X")
    ahead = lsn_int(st["end_lsn"]) + (1 << 30)  # far past anything this test writes
    for a, b in [(0, 16), (ahead, ahead + 8), (0xFFFFFFFF00000000, 0xFFFFFFFF00000010)]:
        assert_error(http("GET", f"{tl}/wal?from={lsn_str(a)}&to={lsn_str(b)}"), (404,),
                     "not held")

    assert protocol_state(sk, c) == before
    assert_serving(c, c.primary)


def test_stale_terms_are_refused_and_change_nothing(live):
    c = live
    for sk in c.sks:
        before = protocol_state(sk, c)
        end_before = lsn_int(sk.status(c.tenant, c.timeline)["end_lsn"])
        assert before["term"] == 2
        old_start = before["term_history"][0]["lsn"]
        tl = sk.tl(c.tenant, c.timeline)
        for term in (1, 2):
            st, body = http("POST", tl + "/vote", {"term": term})
            assert st == 200 and body["granted"] is False, (st, body)
            assert body["term"] == 2
        # An old term's proposer, adopting its own log: refused.
        assert_error(http("POST", tl + "/accept",
                          {"term": 1, "end_lsn": old_start,
                           "term_history": [{"term": 1, "lsn": old_start, "tli": 2}]}),
                     (409,), "stale term")
        for body in ({"term": 1, "compute": "127.0.0.1:1"}, {"term": 1},
                     {"term": 3, "compute": "127.0.0.1:1"}):
            assert_error(http("POST", tl + "/elected", body), (409,), "stale term")
        assert protocol_state(sk, c) == before
        assert lsn_int(sk.status(c.tenant, c.timeline)["end_lsn"]) >= end_before  # no truncation
    assert_serving(c, c.primary)
    assert c.primary.sql("select count(*) from t")[0][0] == 200


def test_bad_term_start_is_refused_before_anything_is_stored(live):
    """An accept whose history starts before the timeline, or whose term
    starts where no record can, used to be persisted and then refused by
    the state loader: the timeline was gone after a restart."""
    c = live
    sk = c.sks[2]
    other = uuid.uuid4().hex
    st, _ = http("POST", f"{sk.url}/v1/tenant/{c.tenant}/timeline",
                 {"timeline_id": other, "system_id": "7", "start_lsn": "0/1000000"})
    assert st == 200
    tl = sk.tl(c.tenant, other)
    fresh = http("GET", tl)[1]
    assert_error(http("POST", tl + "/accept",
                      {"term": 1, "end_lsn": "0/FFFFFF",
                       "term_history": [{"term": 1, "lsn": "0/FFFFFF", "tli": 1}]}),
                 (400,), "before the timeline's start")
    for bad in ("0/1000001", "0/1000004", "0/1002008"):
        assert_error(http("POST", tl + "/accept",
                          {"term": 1, "end_lsn": bad,
                           "term_history": [{"term": 1, "lsn": bad, "tli": 1}]}),
                     (400,), "end_lsn")
    # No term was ever accepted: elected for any term is stale, never served.
    assert_error(http("POST", tl + "/elected", {"term": 1, "compute": "127.0.0.1:1"}), (409,),
                 "stale term")
    after = http("GET", tl)[1]
    for k in ("term", "term_history", "end_lsn", "flush_lsn", "commit_lsn", "streaming_from"):
        assert after[k] == fresh[k], k

    # Both timelines survive a restart; the live one catches up.
    sk.stop()
    sk.start()
    assert http("GET", tl)[0] == 200
    assert sk.status(c.tenant, c.timeline)["term"] == 2
    assert_serving(c, c.primary)
    assert http("DELETE", tl)[0] == 200
    assert_error(http("DELETE", tl), (404,), "not found")


def test_out_of_range_terms_donors_and_addresses_are_refused(live):
    """A term no proposer could go above, an accept reaching far past the
    WAL held here, a donor that is not a configured peer, and a compute
    token without an address: each refused, nothing changes."""
    c = live
    sk = c.sks[0]
    before = protocol_state(sk, c)
    tl = sk.tl(c.tenant, c.timeline)
    term = before["term"]
    for t in (2 ** 63 - 1, term + (1 << 20) + 1):
        assert_error(http("POST", tl + "/vote", {"term": t}), (400,), "too far above")
    end = lsn_int(sk.status(c.tenant, c.timeline)["end_lsn"])
    far = lsn_str(((end + (32 << 30)) // SEG) * SEG + 40)
    hist = before["term_history"] + [{"term": term + 1, "lsn": far, "tli": 9}]
    assert_error(http("POST", tl + "/accept", {"term": term + 1, "end_lsn": far,
                                               "term_history": hist}),
                 (400,), "max_accept_bytes")
    start = before["term_history"][-1]["lsn"]
    hist = before["term_history"][:-1] + [{"term": term + 1, "lsn": start, "tli": 9}]
    for donor in ("http://127.0.0.1:1", "http://169.254.169.254", f"{c.sks[1].url}/x"):
        assert_error(http("POST", tl + "/accept", {"term": term + 1, "end_lsn": start,
                                                   "term_history": hist, "donor": donor}),
                     (403,), "not a configured peer")
    # a compute token names its own address; without one, no stream
    no_endpoint = c.auth.mint("compute", tenant=c.tenant, timeline=c.timeline)
    assert_error(http("POST", tl + "/elected", {"term": term, "compute": "127.0.0.1:1"},
                      token=no_endpoint), (403,), "endpoint")
    assert protocol_state(sk, c) == before
    assert_serving(c, c.primary)


# ---- the replication port ------------------------------------------------------------


def test_garbage_on_the_replication_port(live):
    c = live
    sk = c.sks[0]
    port = sk.pg_port
    st = sk.status(c.tenant, c.timeline)

    # Random bytes, then the client hangs up: an ErrorResponse or a close.
    rnd = random.Random(1234)
    for n in (1, 3, 7, 8, 9, 64, 1000, 70000):
        w = Wire(port)
        try:
            w.send(bytes(rnd.getrandbits(8) for _ in range(n)))
            w.s.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # closed already: before authentication little is read
        rest = []
        while (m := w.read()) is not None:
            rest.append(m)
        assert all(t == b"E" for t, _ in rest), rest
        w.close()

    # A truncated startup packet, then close.
    pkt = Wire.startup_packet(user="postgres", replication="true")
    for cut in (1, 4, 7, len(pkt) - 1):
        w = Wire(port)
        w.send(pkt[:cut])
        w.close()

    # Startup packets with impossible lengths.
    for head in (struct.pack("!II", 0x7FFFFFFF, 196608), struct.pack("!II", 0xFFFFFFFF, 196608),
                 struct.pack("!II", 10001, 196608), struct.pack("!II", 3, 196608)):
        w = Wire(port)
        w.send(head)
        expect_fatal_then_close(w, "08P01", ["invalid startup packet"])
    # A startup with a wrong protocol version, and one with a parameter
    # without a value.
    w = Wire(port)
    w.send(struct.pack("!II", 16, 2 << 16) + b"user\0x\0\0")
    expect_fatal_then_close(w, "08P01")
    w = Wire(port)
    body = struct.pack("!I", 196608) + b"user\0"
    w.send(struct.pack("!I", len(body) + 4) + body)
    expect_fatal_then_close(w, "08P01")

    # Not a replication connection, or no (valid) timeline named.
    opts = f"-c tenant_id={c.tenant} -c timeline_id={c.timeline}"
    for params, state, words in [
        (dict(user="postgres", options=opts), "08P01", ["physical replication"]),
        (dict(user="postgres", replication="database", options=opts), "08P01",
         ["physical replication"]),
        (dict(user="postgres", replication="true"), "28000", ["tenant_id"]),
        (dict(user="postgres", replication="true",
              options=f"-c tenant_id={c.tenant}0 -c timeline_id={c.timeline}"), "28000",
         ["tenant_id"]),
        (dict(user="postgres", replication="true",
              options=f"-c tenant_id={c.tenant} -c timeline_id={uuid.uuid4().hex}"), "3D000",
         ["does not exist"]),
    ]:
        w = Wire(port)
        w.send(Wire.startup_packet(**params) + Wire.password(lakebase.DEFAULT_TOKEN))
        expect_fatal_then_close(w, state, words)

    # SSLRequest is declined and the startup goes on in clear; a cancel
    # request just closes.
    w = Wire(port)
    w.send(struct.pack("!II", 8, 80877103))
    assert w.s.recv(1) == b"N"
    w.send(Wire.startup_packet(user="postgres", replication="true", options=opts) +
           Wire.password(c.compute_token()))
    msgs = w.until_ready()
    assert msgs[-1][0] == b"Z" and not errors_in(msgs)
    w.close()
    w = Wire(port)
    w.send(struct.pack("!IIII", 16, 80877102, 1000, 1234))
    assert w.read() is None
    w.close()

    # A valid startup followed by garbage or by impossible messages.
    for junk, words in [(b"\xde\xad\xbe\xef" * 16, ["invalid message"]),
                        (b"Q" + struct.pack("!I", 0x7FFFFFFF), ["invalid message"]),
                        (b"Q" + struct.pack("!I", (1 << 20) + 5), ["invalid message"]),
                        (b"Q" + struct.pack("!I", 3), ["invalid message"]),
                        (Wire.msg(b"Q", b"IDENTIFY_SYSTEM"), ["invalid query"]),
                        (Wire.msg(b"P", b"\0select 1\0\0\0"), ["not supported"]),
                        (Wire.msg(b"d", b"w" + b"\0" * 30), ["not supported"])]:
        w = replication_conn(c, sk)
        w.send(junk)
        expect_fatal_then_close(w, "08P01", words)
    # A message that announces a huge length and is cut short: closed.
    w = replication_conn(c, sk)
    w.send(b"Q" + struct.pack("!I", 1 << 20) + b"x" * 1000)
    w.close()
    # A query of 1 MiB: refused as a command, the connection goes on.
    w = replication_conn(c, sk)
    msgs = w.query("IDENTIFY_SYSTEM " + "x" * ((1 << 20) - 30))
    expect_error_then_ready(msgs, "42601", ["not supported"])

    # Unknown commands and bad arguments: an ERROR, and the connection is
    # still usable.
    cur_tli = st["term_history"][-1]["tli"]
    first = lsn_int(st["start_lsn"]) // SEG * SEG
    commit = lsn_int(st["commit_lsn"])
    for q, state, words in [
        ("SELECT 1", "42601", ["not supported"]),
        ("BASE_BACKUP", "42601", ["not supported"]),
        ("CREATE_REPLICATION_SLOT s PHYSICAL", "42601", ["not supported"]),
        ("\x01\x02\x7f", "42601", ["not supported"]),
        ("TIMELINE_HISTORY abc", "42601", ["invalid timeline"]),
        ("TIMELINE_HISTORY 0", "42601", ["invalid timeline"]),
        ("TIMELINE_HISTORY 4294967296", "42601", ["invalid timeline"]),
        ("TIMELINE_HISTORY 99", "58P01", ["history file"]),
        ("TIMELINE_HISTORY 1", "58P01", ["history file"]),
        ("SHOW data_directory_mode", "42704", ["unrecognized"]),
        ("START_REPLICATION", "42601", ["syntax"]),
        ("START_REPLICATION PHYSICAL 0/1G", "42601", ["syntax"]),
        ("START_REPLICATION PHYSICAL 1/", "42601", ["syntax"]),
        ("START_REPLICATION PHYSICAL 0/0 TIMELINE 0", "42601", ["syntax"]),
        ("START_REPLICATION PHYSICAL 0/0 TIMELINE -1", "42601", ["syntax"]),
        ("START_REPLICATION PHYSICAL 0/0 TIMELINE 1 2", "42601", ["syntax"]),
        ("START_REPLICATION PHYSICAL FFFFFFFF/FFFFFFFF", "55000", ["ahead"]),
        (f"START_REPLICATION PHYSICAL {lsn_str(commit + SEG)}", "55000", ["ahead"]),
        ("START_REPLICATION PHYSICAL 0/0", "58P01", ["removed"]),
        (f"START_REPLICATION PHYSICAL {lsn_str(max(first - 8, 0))}", "58P01", ["removed"]),
        (f"START_REPLICATION PHYSICAL {lsn_str(commit)} TIMELINE 99", "58P01",
         ["not in this server's history"]),
        (f"START_REPLICATION PHYSICAL {lsn_str(commit)} TIMELINE 4294967295", "58P01",
         ["not in this server's history"]),
    ]:
        expect_error_then_ready(w.query(q), state, words)
    assert w.query("")[-1][0] == b"Z"
    msgs = w.query("IDENTIFY_SYSTEM")
    rows = [b for t, b in msgs if t == b"D"]
    assert len(rows) == 1 and st["system_id"].encode() in rows[0], msgs
    assert str(cur_tli).encode() in rows[0]

    # While streaming: garbage CopyData, or a query, ends the connection.
    for junk in (Wire.msg(b"d", b"zzz"), Wire.msg(b"d", b"r" + b"\0" * 10),
                 Wire.msg(b"Q", b"IDENTIFY_SYSTEM\0"), Wire.msg(b"S", b"")):
        w2 = replication_conn(c, sk)
        w2.send(Wire.msg(b"Q", f"START_REPLICATION PHYSICAL {lsn_str(commit)}".encode() + b"\0"))
        assert w2.read()[0] == b"W"
        w2.send(junk)
        expect_fatal_then_close(w2, "08P01")

    # A real stream still works: the bytes are the timeline's WAL.
    st = sk.status(c.tenant, c.timeline)
    commit = lsn_int(st["commit_lsn"])
    frm = max(lsn_int(st["start_lsn"]), commit - 65536)
    w.send(Wire.msg(b"Q", f"START_REPLICATION PHYSICAL {lsn_str(frm)}".encode() + b"\0"))
    assert w.read()[0] == b"W"
    assert read_stream(w, frm, commit) == sk.wal(c.tenant, c.timeline, frm, commit)
    w.close()

    assert sk.proc.alive()
    assert_serving(c, c.primary)
    # And a vanilla hot standby streams from this safekeeper.
    c.primary.sql("insert into t values (1000, 'after garbage')")
    standby = c.start_standby("replica", sk)
    wait_for(lambda: standby.sql("select count(*) from t where id = 1000")[0][0] == 1, 60,
             what="the standby to replay from the safekeeper")
    standby.stop("immediate")


def peer_msg(tenant, timeline, term, last_log_term, flush):
    return Wire.msg(b"d", b"p" + tenant.encode() + timeline.encode() +
                    struct.pack("!QQQ", term, last_log_term, flush))


def peer_conn(sk, name, **extra):
    """A peer's connection, with the token of safekeeper `name`."""
    token = sk.auth.mint("safekeeper", sub=name)
    w = Wire(sk.pg_port)
    w.send(Wire.startup_packet(user=name, replication="true", application_name=name, **extra) +
           Wire.password(token))
    msgs = w.until_ready()
    assert msgs and msgs[-1][0] == b"Z" and not errors_in(msgs), msgs
    return w


def test_peer_position_stream_refuses_strangers_and_garbage(live):
    """The port where the safekeepers of a set stream their flush positions
    to each other: only configured peers may use it, every malformed
    message ends the connection with a clear error, and no message can move
    the commit LSN past what a quorum of this term holds."""
    c = live
    sk = c.sks[0]
    port = sk.pg_port
    st = sk.status(c.tenant, c.timeline)
    term = st["term"]

    # A name that is not a peer, with no timeline: refused at startup.
    w = Wire(port)
    w.send(Wire.startup_packet(user="x", replication="true", application_name="sk-9") +
           Wire.password(sk.auth.mint("safekeeper", sub="sk-9")))
    expect_fatal_then_close(w, "28000", ["tenant_id"])
    # A peer's name as application_name does not make a stranger a peer: the
    # name is its token's, and tokens of other roles never stream positions.
    for token in (sk.auth.mint("safekeeper", sub="sk-9"), lakebase.DEFAULT_TOKEN,
                  c.compute_token(), sk.auth.mint("pageserver", sub="sk-1")):
        w = Wire(port)
        w.send(Wire.startup_packet(user="sk-1", replication="true", application_name="sk-1") +
               Wire.password(token))
        expect_fatal_then_close(w, "28000", ["tenant_id"])
    # No token, or one that does not verify: 28P01 before anything else.
    for token in ("", "x.y.z", sk.auth.mint("safekeeper", sub="sk-1",
                                            key=sk.auth.other_key(c.workdir))):
        w = Wire(port)
        w.send(Wire.startup_packet(user="sk-1", replication="true", application_name="sk-1") +
               Wire.password(token))
        expect_fatal_then_close(w, "28P01", ["password authentication failed"])
    # A peer's name: nothing but the stream.
    w = peer_conn(sk, "sk-1")
    w.send(Wire.msg(b"Q", b"IDENTIFY_SYSTEM\0"))
    expect_fatal_then_close(w, "08P01", ["START_PEER_STREAM"])
    # A timeline connection cannot start a peer stream.
    w = replication_conn(c, sk)
    expect_error_then_ready(w.query("START_PEER_STREAM"), "42601", ["peer safekeepers"])
    w.close()

    good = peer_msg(c.tenant, c.timeline, term, term, 0)
    body = good[5:]
    for junk in (Wire.msg(b"d", b""), Wire.msg(b"d", body[:-1]), Wire.msg(b"d", body + b"\0"),
                 Wire.msg(b"d", b"w" + body[1:]),
                 Wire.msg(b"d", b"p" + c.tenant.upper().encode() + body[33:]),
                 Wire.msg(b"d", b"p" + b"g" * 32 + body[33:]),
                 peer_msg(c.tenant, c.timeline, term, term + 1, 0),
                 Wire.msg(b"Q", b"START_PEER_STREAM\0"), Wire.msg(b"c", b""),
                 b"\xde\xad\xbe\xef" * 4):
        w = peer_conn(sk, "sk-1")
        w.send(Wire.msg(b"Q", b"START_PEER_STREAM\0"))
        assert w.read()[0] == b"W"
        w.send(junk)
        expect_fatal_then_close(w, "08P01", ["invalid message"])

    # Well-formed positions that must not move the commit LSN: an unknown
    # timeline, an older term, a last log term behind the term (a peer that
    # has not caught up with the new term's WAL), and two peers' worth of a
    # past term. The connection stays up through all of them.
    before = lsn_int(sk.status(c.tenant, c.timeline)["commit_lsn"])
    far = before + (1 << 40)
    w = peer_conn(sk, "sk-2")
    w.send(Wire.msg(b"Q", b"START_PEER_STREAM\0"))
    assert w.read()[0] == b"W"
    w.send(peer_msg(uuid.uuid4().hex, c.timeline, term, term, far) +
           peer_msg(c.tenant, uuid.uuid4().hex, term, term, far) +
           peer_msg(c.tenant, c.timeline, term - 1, term - 1, far) +
           peer_msg(c.tenant, c.timeline, term, term - 1, far))
    w2 = peer_conn(sk, "sk-1")
    w2.send(Wire.msg(b"Q", b"START_PEER_STREAM\0"))
    assert w2.read()[0] == b"W"
    w2.send(peer_msg(c.tenant, c.timeline, term - 1, term - 1, far))
    time.sleep(0.5)
    w.s.settimeout(0.2)
    with pytest.raises(socket.timeout):
        w.s.recv(1)  # no error, no close
    after = sk.status(c.tenant, c.timeline)
    assert lsn_int(after["commit_lsn"]) < far
    assert lsn_int(after["commit_lsn"]) <= lsn_int(after["flush_lsn"])
    w.close()
    w2.close()
    assert sk.proc.alive()
    assert_serving(c, c.primary)
    # The real peers' streams came back (a heartbeat at most a second
    # later): the commit LSN follows new commits on every safekeeper.
    c.primary.sql("insert into t values (2000, 'after peer garbage')")
    target = primary_flush(c.primary)
    wait_for(lambda: all(lsn_int(s.status(c.tenant, c.timeline)["commit_lsn"]) >= target
                         for s in c.sks), 15, what="commit_lsn to follow on every safekeeper")


# ---- full disk ------------------------------------------------------------------------


def segment_bytes(sk, cluster, tli, lsn, n):
    """n bytes at lsn from sk's segment files on disk (one timeline)."""
    out = b""
    while n > 0:
        segno, off = divmod(lsn, SEG)
        k = min(n, SEG - off)
        name = f"{tli:08X}{segno >> 8:08X}{segno & 0xFF:08X}"
        with open(os.path.join(sk.dir, "data", cluster.tenant, cluster.timeline, name), "rb") as f:
            f.seek(off)
            out += f.read(k)
        lsn += k
        n -= k
    return out


def test_full_disk_stops_acknowledgements_and_loses_nothing(workdir):
    c = start_cluster(workdir)
    t, l = c.tenant, c.timeline
    sk0, sk1, sk2 = c.sks
    mnt = os.path.join(sk2.dir, "data")
    os.makedirs(mnt)
    # Room for two 16 MiB segments and the state file, not for a third.
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=40m", "tmpfs", mnt], check=True)
    try:
        c.start()
        pg, _ = c.bootstrap()
        tli = sk2.status(t, l)["term_history"][-1]["tli"]
        start = lsn_int(sk2.status(t, l)["start_lsn"])
        pg.sql("create table big (id int, pad text)")
        # ~60 MiB of WAL: sk-2 runs out of space at its third segment.
        pg.sql("insert into big select g, repeat('x', 1000) from generate_series(1, 50000) g")
        wait_for(lambda: "No space left on device" in open(sk2.proc.log).read()
                 or "no space left on device" in open(sk2.proc.log).read(), 30,
                 what="sk-2 to report the full disk")
        log = open(sk2.proc.log).read()
        assert "could not create segment" in log and "no space left on device" in log

        # Commits go on with the other two; sk-2 stays up, at a fixed flush
        # position that is never above what it fsynced.
        def stuck():
            f1 = lsn_int(sk2.status(t, l)["flush_lsn"])
            pg.sql("insert into big values (-1, 'more')")
            time.sleep(0.5)
            return lsn_int(sk2.status(t, l)["flush_lsn"]) == f1
        wait_for(stuck, 20, what="sk-2's flush position to stop")
        for i in range(5):
            t0 = time.time()
            pg.sql("insert into big values (%s, 'after full')", -10 - i)
            assert time.time() - t0 < 10
        flushed = lsn_int(sk2.status(t, l)["flush_lsn"])
        assert flushed <= 3 * SEG and flushed < primary_flush(pg)
        for _ in range(10):
            acked = acked_flush(pg, "sk-2")
            now = lsn_int(sk2.status(t, l)["flush_lsn"])
            assert acked is None or acked <= now, (lsn_str(acked), lsn_str(now))
            assert now == flushed
            time.sleep(0.1)
        assert sk2.proc.alive() and http("GET", sk2.url + "/healthz")[0] == 200
        st2 = sk2.status(t, l)
        assert not st2["broken"]

        # What it acknowledged is intact: the same bytes as sk-0's, through
        # the API up to its end of WAL and on disk up to its flush position.
        end2 = lsn_int(st2["end_lsn"])
        assert sk2.wal(t, l, start, end2) == sk0.wal(t, l, start, end2)
        assert segment_bytes(sk2, c, tli, start, flushed - start) == \
            segment_bytes(sk0, c, tli, start, flushed - start)

        # A restart with the disk still full comes back with that WAL (and
        # maybe more: bytes written into the last segment before the next
        # one could not be created are WAL of this term, found on reopening).
        sk2.kill()
        sk2.start()
        st2 = sk2.status(t, l)
        assert lsn_int(st2["end_lsn"]) >= end2 and st2["term"] == sk0.status(t, l)["term"]
        end2 = lsn_int(st2["end_lsn"])
        assert sk2.wal(t, l, start, end2) == sk0.wal(t, l, start, end2)

        # Space comes back: sk-2 catches up on its own.
        subprocess.run(["mount", "-o", "remount,size=256m", mnt], check=True)
        pg.sql("insert into big values (-100, 'after remount')")
        target = primary_flush(pg)
        wait_for(lambda: lsn_int(sk2.status(t, l)["flush_lsn"]) >= target, 60,
                 what="sk-2 to catch up once space is back")
        wait_for(lambda: (acked_flush(pg, "sk-2") or 0) >= target, 30,
                 what="sk-2 to acknowledge again")
        end2 = lsn_int(sk2.status(t, l)["end_lsn"])
        assert sk2.wal(t, l, start, end2) == sk0.wal(t, l, start, end2)
        assert_serving(c, pg)
    finally:
        stop_cluster(c)
        if subprocess.run(["umount", mnt]).returncode != 0:
            subprocess.run(["umount", "-l", mnt])


# ---- fsync: nothing acknowledged that is not fsynced ---------------------------------

FSYNC_SHIM = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* The file named by LB_FSYNC_CONTROL says what fsync does: "stall" blocks
 * (and leaves <file>.stalled behind), "fail" fails with EIO, else fsync. */
static int
gate(void)
{
    const char *ctl = getenv("LB_FSYNC_CONTROL");
    for (;;) {
        char mode[8] = {0};
        int fd = ctl ? open(ctl, O_RDONLY) : -1;
        if (fd >= 0) {
            if (read(fd, mode, sizeof(mode) - 1) < 0)
                mode[0] = 0;
            close(fd);
        }
        if (strncmp(mode, "fail", 4) == 0) {
            errno = EIO;
            return -1;
        }
        if (strncmp(mode, "stall", 5) != 0)
            return 0;
        char marker[4096];
        snprintf(marker, sizeof(marker), "%s.stalled", ctl);
        close(open(marker, O_CREAT | O_WRONLY, 0644));
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

int
fsync(int fd)
{
    static int (*real)(int);
    if (gate() != 0)
        return -1;
    if (!real)
        real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    return real(fd);
}

int
fdatasync(int fd)
{
    static int (*real)(int);
    if (gate() != 0)
        return -1;
    if (!real)
        real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    return real(fd);
}
"""


def set_fsync(ctl, mode):
    """Switch the shim's mode atomically: a reader never sees an empty file
    (which would let one fsync through in the middle of a stall)."""
    with open(ctl + ".new", "w") as f:
        f.write(mode)
    os.replace(ctl + ".new", ctl)


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


class Committer(threading.Thread):
    """Commits one row at a time until stopped; counts the commits that
    returned without a warning (a cancelled synchronous wait warns)."""

    def __init__(self, pg):
        super().__init__(daemon=True)
        self.pg = pg
        self.acked = 0
        self.error = None
        self.halt = threading.Event()

    def run(self):
        try:
            with self.pg.connect() as conn:
                warnings = []
                conn.add_notice_handler(lambda d: warnings.append(d.message_primary))
                while not self.halt.is_set():
                    warnings.clear()
                    conn.execute("insert into ticks values (default)")
                    if not warnings:
                        self.acked += 1
                    time.sleep(0.01)
        except Exception as e:  # noqa: BLE001 - reported to the test
            self.error = e


def test_stalled_or_failed_fsync_is_never_acknowledged(workdir):
    shim_c = os.path.join(workdir, "fsync_shim.c")
    shim = os.path.join(workdir, "fsync_shim.so")
    with open(shim_c, "w") as f:
        f.write(FSYNC_SHIM)
    subprocess.run(["cc", "-shared", "-fPIC", "-O1", "-o", shim, shim_c, "-ldl"], check=True)
    ctl = os.path.join(workdir, "fsync_control")
    set_fsync(ctl, "ok")

    c = start_cluster(workdir)
    t, l = c.tenant, c.timeline
    sk0, sk1, sk2 = c.sks
    try:
        sk0.start()
        sk1.start()
        with environment(LD_PRELOAD=shim, LB_FSYNC_CONTROL=ctl):
            sk2.start()
        pg, _ = c.bootstrap()
        pg.sql("create table ticks (id serial primary key)")
        assert_serving(c, pg)
        w = Committer(pg)
        w.start()
        wait_for(lambda: w.acked >= 20, 20, what="commits")

        # fsync stalls on sk-2: it holds WAL it has written and not synced,
        # and acknowledges none of it; commits go on with the other two.
        set_fsync(ctl, "stall")
        wait_for(lambda: os.path.exists(ctl + ".stalled"), 20, what="sk-2 to stall in fsync")
        # An acknowledgement sent before the stall may still be on its way.
        seen = [None]

        def settled():
            a, seen[0] = seen[0], acked_flush(pg, "sk-2")
            return a is not None and a == seen[0]
        wait_for(settled, 20, interval=0.3, what="sk-2's last acknowledgement to arrive")
        acked_at_stall = seen[0]
        n0 = w.acked
        for _ in range(15):
            assert acked_flush(pg, "sk-2") == acked_at_stall
            time.sleep(0.1)
        assert w.acked > n0 + 5, "commits stopped while one safekeeper stalled"
        assert primary_flush(pg) > acked_at_stall

        # The stalled fsync fails: the timeline is broken, its flush
        # position is what the last good fsync covered, and what was written
        # after it was never acknowledged.
        set_fsync(ctl, "fail")
        wait_for(lambda: sk2.status(t, l)["broken"], 20, what="sk-2's timeline to break")
        st = sk2.status(t, l)
        flushed, written = lsn_int(st["flush_lsn"]), lsn_int(st["write_lsn"])
        assert written > flushed, st
        assert acked_at_stall <= flushed, (lsn_str(acked_at_stall), lsn_str(flushed))
        log = open(sk2.proc.log).read()
        assert "could not fsync" in log and "timeline broken by fsync failure" in log
        # No acknowledgement from it any more, and nothing is retried.
        n1 = w.acked
        for _ in range(15):
            a = acked_flush(pg, "sk-2")
            assert a is None or a <= flushed
            assert lsn_int(sk2.status(t, l)["flush_lsn"]) == flushed
            time.sleep(0.1)
        assert w.acked > n1 + 5
        assert sk2.proc.alive()
        w.halt.set()
        w.join(10)
        assert w.error is None, w.error

        # Restarted (with fsync working), it reopens the WAL from disk and
        # catches up with the same bytes as the others.
        set_fsync(ctl, "ok")
        sk2.kill()
        with environment(LD_PRELOAD=shim, LB_FSYNC_CONTROL=ctl):
            sk2.start()
        assert_serving(c, pg)
        st = sk2.status(t, l)
        start, end = lsn_int(st["start_lsn"]), lsn_int(st["end_lsn"])
        assert not st["broken"]
        assert sk2.wal(t, l, start, end) == sk0.wal(t, l, start, end)
    finally:
        set_fsync(ctl, "ok")
        stop_cluster(c)


# ---- the loop never waits on a donor --------------------------------------------------


def test_a_stuck_donor_does_not_stop_the_loop(workdir):
    """An /accept whose donor never answers: while its fetch waits (on an
    HTTP thread), requests that need the safekeeper's loop are still
    answered. The donor stays stuck until they have been."""
    c = start_cluster(workdir)
    sk, donor = c.sks[0], c.sks[1]
    sk.start()  # donor is never started: a silent server takes its HTTP port
    silent = socket.socket()
    silent.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    silent.bind(("127.0.0.1", donor.http_port))
    silent.listen(16)
    held = []
    stop = threading.Event()

    def hold():
        silent.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(silent.accept()[0])  # read nothing, answer nothing
            except socket.timeout:
                pass

    t = threading.Thread(target=hold, daemon=True)
    t.start()
    try:
        start = 0x1000000 + 40
        st, body = http("POST", f"{sk.url}/v1/tenant/{c.tenant}/timeline",
                        {"timeline_id": c.timeline, "system_id": "7",
                         "start_lsn": lsn_str(start)})
        assert st == 200, body
        end = start + 4096
        accept = {}

        def do_accept():
            accept["r"] = http("POST", sk.tl(c.tenant, c.timeline, "/accept"),
                               {"term": 1, "end_lsn": lsn_str(end), "donor": donor.url,
                                "term_history": [{"term": 1, "lsn": lsn_str(end), "tli": 1}]},
                               timeout=300)

        a = threading.Thread(target=do_accept, daemon=True)
        a.start()
        wait_for(lambda: held, 30, what="the accept to reach the donor")
        # The fetch is waiting on the donor. The loop still answers.
        for _ in range(3):
            st, body = http("GET", sk.tl(c.tenant, c.timeline), timeout=30)
            assert st == 200, body
        assert a.is_alive(), "the accept finished: the donor was not stuck"
        assert not accept
    finally:
        stop.set()
        t.join()
        for s in held:
            s.close()
        silent.close()
        stop_cluster(c)
