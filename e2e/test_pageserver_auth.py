"""The pageserver's HTTP API requires a credential (AUTH_DESIGN): every
route without one, with a token signed by another key, with another
tenant's token, and with a compute token on a route that is management's,
is refused with 401 or 403, and nothing changes on disk or in object
storage. A compute token reads its own timeline and its ancestors'."""
import hashlib
import os
import uuid

from lakebase import Auth, Pageserver, http


def tree_digest(*roots):
    """Names, sizes and contents of every file under roots."""
    h = hashlib.sha256()
    for root in roots:
        for d, dirs, files in sorted(os.walk(root)):
            dirs.sort()
            for f in sorted(files):
                p = os.path.join(d, f)
                if p.endswith("pageserver.log"):
                    continue
                h.update(p.encode())
                try:
                    with open(p, "rb") as fh:
                        h.update(fh.read())
                except OSError:
                    pass
    return h.hexdigest()


def test_every_route_refuses_missing_wrong_and_foreign_credentials(workdir):
    auth = Auth.of(workdir)
    ps = Pageserver(workdir).start()  # the harness gives it auth.keys_dir
    mgmt = auth.management
    try:
        tenant, root, branch = uuid.uuid4().hex, uuid.uuid4().hex, uuid.uuid4().hex
        st, boot = http("POST", ps.tl(tenant), {"timeline_id": root}, timeout=120, token=mgmt)
        assert st == 201, boot
        st, b = http("POST", ps.tl(tenant), {"timeline_id": branch, "ancestor_timeline_id": root,
                                             "ancestor_lsn": boot["start_lsn"]}, token=mgmt)
        assert st == 201, b

        other_tenant = uuid.uuid4().hex
        forged = auth.mint("management", key=auth.other_key(workdir))
        foreign = auth.mint("compute", tenant=other_tenant, timeline=root)
        own = auth.mint("compute", tenant=tenant, timeline=branch)
        pageserver = auth.mint("pageserver", sub="pageserver-0")
        newtl = uuid.uuid4().hex
        sks = {"safekeepers": [{"pg": "127.0.0.1:1", "http": "http://127.0.0.1:1"}]}
        routes = [
            ("POST", ps.tl(tenant), {"timeline_id": newtl}),
            ("GET", ps.tl(tenant), None),
            ("GET", ps.tl(tenant, root), None),
            ("DELETE", ps.tl(tenant, branch), None),
            ("GET", ps.tl(tenant, root, "/basebackup"), None),
            ("PUT", ps.tl(tenant, root, "/safekeepers"), sks),
            ("POST", ps.tl(tenant, root, "/snapshot"), None),
            ("GET", ps.tl(tenant, root, "/wal/000000010000000000000001"), None),
            ("POST", ps.url + "/v1/gc", None),
            ("GET", ps.tl(tenant, root, "/lsn_by_timestamp?timestamp=2026-01-01T00:00:00Z"),
             None),
        ]
        management_only = {0, 1, 3, 5, 6, 8}
        before = tree_digest(ps.data, os.path.join(workdir, "remote-storage"))
        for i, (method, url, body) in enumerate(routes):
            for name, token, want in [("none", "", 401), ("garbage", "not-a-token", 401),
                                      ("forged", forged, 401), ("foreign tenant", foreign, 403)]:
                st, resp = http(method, url, body, token=token)
                assert st == want, (method, url, name, st, resp)
            if i in management_only:
                for name, token in [("compute", own), ("pageserver", pageserver)]:
                    st, resp = http(method, url, body, token=token)
                    assert st == 403, (method, url, name, st, resp)
        # The WWW-Authenticate challenge comes with a 401.
        import urllib.error
        import urllib.request
        try:
            urllib.request.urlopen(ps.tl(tenant, root), timeout=10)
            assert False, "answered without a credential"
        except urllib.error.HTTPError as e:
            assert e.code == 401 and e.headers.get("WWW-Authenticate", "").startswith("Bearer")
        assert tree_digest(ps.data, os.path.join(workdir, "remote-storage")) == before
        st, listed = http("GET", ps.tl(tenant), token=mgmt)
        assert st == 200 and {t["timeline_id"] for t in listed} == {root, branch}

        # A compute token: its own timeline and its ancestors', nothing else.
        assert http("GET", ps.tl(tenant, branch), token=own)[0] == 200
        assert http("GET", ps.tl(tenant, root), token=own)[0] == 200  # ancestor
        st, _ = http("GET", ps.tl(tenant, root, "/basebackup"), token=own, timeout=60)
        assert st == 200
        root_token = auth.mint("compute", tenant=tenant, timeline=root)
        assert http("GET", ps.tl(tenant, branch), token=root_token)[0] == 403  # a child
        # The pageserver's own token reads WAL (its redo standbys' restore
        # script), nothing else.
        st, _ = http("GET", ps.tl(tenant, root, "/wal/000000010000000000000001"),
                     token=pageserver)
        assert st != 401 and st != 403
        # /healthz and /metrics stay open.
        assert http("GET", ps.url + "/healthz", token="")[0] == 200
        assert http("GET", ps.url + "/metrics", token="")[0] == 200
    finally:
        ps.stop()


def test_sighup_reloads_the_pageserver_token(workdir):
    """docs/auth.md: daemons re-read auth_token_file on SIGHUP. The
    pageserver's calls to a timeline's safekeepers (here, its WAL index's
    consumer reports to a stand-in safekeeper HTTP API) carry the new token
    after a SIGHUP, and a token file that no longer loads keeps the old."""
    import http.server as httpserver
    import signal
    import threading

    from lakebase import free_port, wait_for

    seen = []
    lock = threading.Lock()

    class Safekeeper(httpserver.BaseHTTPRequestHandler):
        def do_POST(self):
            n = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(n)
            with lock:
                seen.append((self.path, self.headers.get("Authorization", "")))
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args):
            pass

    sk = httpserver.ThreadingHTTPServer(("127.0.0.1", 0), Safekeeper)
    threading.Thread(target=sk.serve_forever, daemon=True).start()
    auth = Auth.of(workdir)
    ps = Pageserver(workdir).start()
    try:
        tenant, tl = uuid.uuid4().hex, uuid.uuid4().hex
        st, b = http("POST", ps.tl(tenant), {"timeline_id": tl}, timeout=120)
        assert st == 201, b
        sks = {"safekeepers": [{"pg": f"127.0.0.1:{free_port()}",
                                "http": f"http://127.0.0.1:{sk.server_address[1]}"}]}
        st, b = http("PUT", ps.tl(tenant, tl, "/safekeepers"), sks)
        assert st == 200, b
        token_file = auth.token_file_for(ps.name, "pageserver", sub=ps.name)
        with open(token_file) as f:
            old = f.read().strip()

        def reported_with(token):
            with lock:
                return any(p.endswith("/consumer") and a == f"Bearer {token}" for p, a in seen)

        wait_for(lambda: reported_with(old), 60, what="a consumer report with the first token")
        new = auth.mint("pageserver", sub="pageserver-rotated")
        assert new != old
        with open(token_file, "w") as f:
            f.write(new + "\n")
        os.kill(ps.proc.pid, signal.SIGHUP)
        wait_for(lambda: reported_with(new), 60, what="a consumer report with the new token")

        # A file that does not hold a token: the pageserver keeps the one it has.
        with open(token_file, "w") as f:
            f.write("not a token\n")
        os.kill(ps.proc.pid, signal.SIGHUP)
        wait_for(lambda: "could not reload auth_token_file" in open(
            os.path.join(ps.dir, "pageserver.log"), errors="replace").read(), 30,
            what="the failed reload in the log")
        with lock:
            seen.clear()
        wait_for(lambda: reported_with(new), 60, what="a report with the kept token")
        with lock:
            assert all(a == f"Bearer {new}" for p, a in seen if p.endswith("/consumer")), seen
        with open(token_file, "w") as f:
            f.write(new + "\n")
    finally:
        ps.stop()
        sk.shutdown()
