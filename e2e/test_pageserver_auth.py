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
