"""Every safekeeper API needs a credential, and only the right one works.

Each HTTP route and each walsender command is called without a token, with
a token whose signature does not verify (signed by a key the safekeeper
does not hold), and with a valid token of another tenant, and the routes
that create, delete, list or act for a pageserver or peer with the
compute's own token: each gets 401 or
403 (on the walsender port, FATAL 28P01 or 28000 before any command
runs), and the data directory is byte for byte what it was. Then the same
calls with the right credential get past authentication, so the refusals
above are the credential's doing. /metrics and /healthz stay open.
"""
import hashlib
import os
import socket
import struct
import uuid

import lakebase
from lakebase import Cluster, Wire, http, lsn_str, wait_for

SEG = 16 * 1024 * 1024


def tree_hash(path):
    """Names, sizes and contents of every file under path."""
    h = hashlib.sha256()
    for dirpath, dirnames, filenames in sorted(os.walk(path)):
        dirnames.sort()
        h.update(dirpath.encode())
        for f in sorted(filenames):
            p = os.path.join(dirpath, f)
            h.update(f.encode())
            with open(p, "rb") as fh:
                h.update(hashlib.sha256(fh.read()).digest())
    return h.hexdigest()


def routes(c, sk, st):
    """(method, url, body) for every route of the safekeeper's HTTP API."""
    t, l = c.tenant, c.timeline
    tl = sk.tl(t, l)
    start = st["start_lsn"]
    seg = f"{st['term_history'][-1]['tli']:08X}{0:08X}{int(start.split('/')[1], 16) // SEG:08X}"
    # (method, url, body, the role that may call it)
    return [
        ("GET", f"{sk.url}/v1/status", None, "management"),
        ("POST", f"{sk.url}/v1/tenant/{t}/timeline",
         {"timeline_id": uuid.uuid4().hex, "system_id": st["system_id"], "start_lsn": start},
         "management"),
        ("GET", tl, None, "compute"),
        ("POST", tl + "/vote", {"term": st["term"] + 10}, "compute"),
        ("POST", tl + "/accept", {"term": st["term"] + 10, "end_lsn": start,
                                  "term_history": [{"term": st["term"] + 10, "lsn": start,
                                                    "tli": 9}]}, "compute"),
        ("POST", tl + "/elected", {"term": st["term"], "compute": "127.0.0.1:1"}, "compute"),
        ("POST", tl + "/consumer", {"name": "intruder", "applied_lsn": "FFFFFFFF/0"},
         "pageserver"),
        ("GET", tl + f"/wal?from={start}&to={lsn_str(int(start.split('/')[1], 16) + 8)}", None,
         "safekeeper"),
        ("GET", tl + f"/segment/{seg}", None, "pageserver"),
        ("GET", tl + "/history/00000002.history", None, "pageserver"),
        ("DELETE", tl, None, "management"),  # last: the others need the timeline
    ]


def q(text):
    return Wire.msg(b"Q", text.encode() + b"\0")


def walsender_exchange(port, data):
    """Send data, read until the server closes; the messages as (type, body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(data)
        buf = b""
        while True:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            buf += chunk
    out = []
    while len(buf) >= 5:
        n = struct.unpack("!I", buf[1:5])[0]
        out.append((buf[:1], buf[5:1 + n]))
        buf = buf[1 + n:]
    return out


def fields(body):
    return {chr(p[0]): p[1:].decode(errors="replace") for p in body.split(b"\0") if p}


COMMANDS = ["IDENTIFY_SYSTEM", "TIMELINE_HISTORY 2", "SHOW wal_segment_size",
            "START_REPLICATION PHYSICAL 0/1000000", "START_PEER_STREAM"]


def test_every_route_refuses_missing_bad_and_foreign_credentials(workdir):
    c = Cluster(workdir)
    c.track = lambda pg: None
    c.start()
    try:
        pg, election = c.bootstrap()
        pg.sql("create table t (id int)")
        pg.sql("insert into t values (1)")
        wait_for(lambda: all(s.status(c.tenant, c.timeline)["commit_lsn"] ==
                             c.sks[0].status(c.tenant, c.timeline)["flush_lsn"] for s in c.sks),
                 30, what="the safekeepers to agree")
        pg.stop("immediate")
        c.base.stop("immediate")
        # A second tenant's timeline on the same safekeepers, whose tokens
        # must get nothing of the first.
        other_tenant, other_timeline = uuid.uuid4().hex, uuid.uuid4().hex
        auth = c.auth
        foreign = {
            "compute": auth.mint("compute", tenant=other_tenant, timeline=other_timeline,
                                 endpoint="127.0.0.1:1"),
            "pageserver": auth.mint("pageserver", tenant=other_tenant, sub="ps-x"),
        }
        bad_signature = auth.mint("management", key=auth.other_key(workdir))
        sk = c.sks[0]
        st = sk.status(c.tenant, c.timeline)
        data = os.path.join(sk.dir, "data")
        before = tree_hash(data)

        for method, url, body, _ in routes(c, sk, st):
            what = f"{method} {url}"
            status, reply = http(method, url, body, token="")
            assert status == 401, (what, status, reply)
            status, reply = http(method, url, body, token=bad_signature)
            assert status == 401, (what, status, reply)
            for role, token in foreign.items():
                status, reply = http(method, url, body, token=token)
                assert status == 403, (what, role, status, reply)
        # A compute's own token (its tenant and timeline) creates, deletes
        # and lists nothing, reports no consumer position and fetches no
        # peer WAL range; nor may a compute token create the timeline it
        # names (only management creates).
        own_compute = c.compute_token("127.0.0.1:1")
        for method, url, body, role in routes(c, sk, st):
            if role == "management" or url.endswith("/consumer") or "/wal?" in url:
                status, reply = http(method, url, body, token=own_compute)
                assert status == 403, (method, url, status, reply)
        new_tl = uuid.uuid4().hex
        status, reply = http("POST", f"{sk.url}/v1/tenant/{c.tenant}/timeline",
                             {"timeline_id": new_tl, "system_id": st["system_id"],
                              "start_lsn": st["start_lsn"]},
                             token=auth.mint("compute", tenant=c.tenant, timeline=new_tl,
                                             endpoint="127.0.0.1:1"))
        assert status == 403, (status, reply)
        # the 401s tell the client to bring a bearer token
        import urllib.request
        import urllib.error
        try:
            urllib.request.urlopen(sk.tl(c.tenant, c.timeline), timeout=10)
            raise AssertionError("no 401")
        except urllib.error.HTTPError as e:
            assert e.code == 401 and e.headers["WWW-Authenticate"].startswith("Bearer")

        # The walsender port: every command, after a startup with no
        # token, a bad one, or another tenant's.
        opts = f"-c tenant_id={c.tenant} -c timeline_id={c.timeline}"
        for cmd in COMMANDS:
            for token, state in [("", "28P01"), (bad_signature, "28P01"),
                                 ("not.a.token", "28P01"),
                                 (foreign["compute"], "28000"), (foreign["pageserver"], "28000")]:
                params = dict(user="postgres", replication="true", application_name="sk-1")
                if cmd != "START_PEER_STREAM":
                    params["options"] = opts
                msgs = walsender_exchange(sk.pg_port,
                                          Wire.startup_packet(**params) + Wire.password(token) +
                                          q(cmd))
                errs = [fields(b) for t, b in msgs if t == b"E"]
                assert errs and errs[-1]["S"] == "FATAL" and errs[-1]["C"] == state, (cmd, msgs)
                # nothing but the password request and the error came back
                assert [t for t, _ in msgs] == [b"R", b"E"], (cmd, msgs)
        # a peer's name in application_name with a non-peer token: no peer stream
        msgs = walsender_exchange(sk.pg_port,
                                  Wire.startup_packet(user="sk-1", replication="true",
                                                      application_name="sk-1") +
                                  Wire.password(auth.mint("safekeeper", sub="sk-9")) +
                                  q("START_PEER_STREAM"))
        assert [fields(b)["C"] for t, b in msgs if t == b"E"] == ["28000"], msgs

        assert tree_hash(data) == before, "a refused request changed the data directory"
        after = sk.status(c.tenant, c.timeline)
        for k in ("term", "term_history", "end_lsn", "flush_lsn", "commit_lsn", "streaming_from"):
            assert after[k] == st[k], k

        # Open routes stay open.
        assert http("GET", sk.url + "/healthz", token="")[0] == 200
        assert http("GET", sk.url + "/metrics", token="")[0] == 200

        # The right credential gets past authentication on every route
        # (what it then gets, 200 or a 4xx about the body, is the route's).
        own = {"compute": c.compute_token("127.0.0.1:1"),
               "pageserver": auth.mint("pageserver", sub="ps-0"),
               "safekeeper": auth.mint("safekeeper", sub="sk-1"),
               "management": auth.management}
        for cmd in COMMANDS[:4]:
            msgs = walsender_exchange(sk.pg_port,
                                      Wire.startup_packet(user="postgres", replication="true",
                                                          options=opts) +
                                      Wire.password(own["pageserver"]) + q(cmd) +
                                      b"X\0\0\0\4")
            assert b"Z" in [t for t, _ in msgs] and not [t for t, _ in msgs if t == b"E"], \
                (cmd, msgs)
        for method, url, body, role in routes(c, sk, st):
            status, reply = http(method, url, body, token=own[role])
            assert status not in (401, 403), (method, url, role, status, reply)
    finally:
        c.stop()
