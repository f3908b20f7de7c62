"""lakebase-controller on devcluster, with the real kubectl 1.32.

One devcluster (its own directory and API port) serves the module (the
`op` fixture of conftest.py); the CRDs from crds/ are applied with kubectl,
and lakebase-controller runs as
a process outside the cluster with the devcluster's kubeconfig (the chart's
in-cluster Deployment is tested with helm elsewhere). The data plane runs
in pods from `images/build.sh` (cached between runs).

One LakebaseCluster (namespace "db") serves the data tests; tests that need
a cluster of their own say so. PostgreSQL is reached at the compute pod's
address (devcluster's Services do not route cluster IPs: devcluster/NODE.md).

Bounds: a cluster Ready within 300 s, a branch within 180 s, on a shared
2-core machine; no test sleeps for a fixed time to get a result.
"""
import json
import os
import signal
import time

import psycopg
import pytest

from lakebase import S3rver, wait_for

NS = "db"
CLUSTER_READY_S = 300
BRANCH_READY_S = 180


def cluster_manifest(name, ns, **spec):
    s = {"objectStorage": {"volume": {"size": "1Gi"}},
         "pageservers": {"gcRetention": "168h"}}
    s.update(spec)
    return {"apiVersion": "lakebase.io/v1alpha1", "kind": "LakebaseCluster",
            "metadata": {"name": name, "namespace": ns}, "spec": s}


def branch_manifest(name, ns, cluster, parent=None, **spec):
    s = {"clusterRef": {"name": cluster}}
    if parent:
        s["parent"] = parent
    s.update(spec)
    return {"apiVersion": "lakebase.io/v1alpha1", "kind": "Branch",
            "metadata": {"name": name, "namespace": ns}, "spec": s}


@pytest.fixture(scope="module")
def db(op):
    """The shared cluster: applied, Ready within CLUSTER_READY_S."""
    op.namespace(NS)
    t0 = time.monotonic()
    op.apply(cluster_manifest("pg", NS))
    op.wait_condition(NS, "lakebasecluster", "pg", timeout=CLUSTER_READY_S)
    op.cluster_ready_s = time.monotonic() - t0
    return "pg"


def leading_process(op):
    """The live controller process that holds the Lease, or None."""
    holder = op.lease_holder()
    for c in op.controllers:
        if c.alive() and holder and f"identity={holder} " in open(c.log, errors="replace").read():
            return c
    return None


def ensure_controller(op):
    if not any(c.alive() for c in op.controllers):
        op.start_controller()


# ---- the cluster ----

def test_cluster_ready_with_endpoint_and_psql(op, db):
    print(f"cluster Ready after {op.cluster_ready_s:.1f}s (bound {CLUSTER_READY_S}s)")
    c = op.get(NS, "lakebasecluster", db)
    st = c["status"]
    assert st["phase"] == "Ready"
    assert st["safekeepersReady"] == "3/3"
    assert st["endpoint"] == f"{db}.{NS}.svc.cluster.local:5432"
    assert len(st["tenantId"]) == 32
    assert st["observedGeneration"] == c["metadata"]["generation"]
    types = {x["type"]: x for x in st["conditions"]}
    for t in ("Ready", "SafekeepersReady", "PageserversReady", "ProxyReady"):
        assert types[t]["status"] == "True", types[t]
        assert types[t]["reason"][0].isupper() and " " not in types[t]["reason"]
        assert types[t]["observedGeneration"] == c["metadata"]["generation"]
    # the user's Secret
    user = op.secret(NS, st["userSecret"])
    assert set(user) >= {"username", "password", "host", "port", "dbname", "uri"}
    assert user["host"] == f"{db}.{NS}.svc.cluster.local" and user["port"] == "5432"
    # the endpoint Service selects the main branch's compute pod (the
    # Endpoints controller may write it a moment after the pod is ready)
    ip = op.pod_ip(NS, f"{db}-main-compute-0")

    def endpoint_addrs():
        ep = op.get(NS, "endpoints", db) or {}
        return [a["ip"] for s in ep.get("subsets", []) for a in s.get("addresses", [])]
    addrs = wait_for(lambda: endpoint_addrs() == [ip] and [ip], 60, 0.5,
                     what="the endpoint Service to list the main compute")
    dsn = f"host={addrs[0]} port=5432 user={user['username']} password={user['password']} " \
          f"dbname={user['dbname']}"
    op.sql(dsn, "create table if not exists hello (id int primary key, v text)")
    op.sql(dsn, "insert into hello values (1, 'lakebase') on conflict do nothing")
    assert op.sql(dsn, "select v = 'lakebase' from hello where id = 1") == [(True,)]
    # useful columns
    out = op.kubectl("-n", NS, "get", "lakebaseclusters,branches").stdout
    assert "PHASE" in out and "SAFEKEEPERS" in out and "ENDPOINT" in out and "3/3" in out
    assert "PARENT" in out and "LSN" in out and f"{db}-main" in out and "Active" in out
    # owned objects carry ownerReferences and the recommended labels
    for kind, name in (("statefulset", f"{db}-safekeeper"), ("statefulset", f"{db}-pageserver"),
                       ("service", f"{db}-safekeeper"), ("secret", f"{db}-signing"),
                       ("configmap", f"{db}-auth-keys"), ("branch", f"{db}-main")):
        o = op.get(NS, kind, name)
        refs = o["metadata"]["ownerReferences"]
        assert refs[0]["kind"] == "LakebaseCluster" and refs[0]["name"] == db
        labels = o["metadata"]["labels"]
        assert labels["app.kubernetes.io/managed-by"] == "lakebase-controller"
        assert labels["app.kubernetes.io/instance"] == db
    svc = op.get(NS, "service", f"{db}-safekeeper")
    assert svc["spec"]["clusterIP"] == "None" and svc["spec"]["publishNotReadyAddresses"]


def test_branch_has_parent_data_writable_isolated(op, db):
    main = op.branch_dsn(NS, db, f"{db}-main")
    op.sql(main, "create table items (id int primary key, origin text)")
    op.sql(main, "insert into items select g, 'main' from generate_series(1, 1000) g")
    t0 = time.monotonic()
    op.apply(branch_manifest("dev", NS, db, parent=f"{db}-main"))
    b = op.wait_condition(NS, "branch", "dev", timeout=BRANCH_READY_S)
    print(f"branch Ready after {time.monotonic() - t0:.1f}s (bound {BRANCH_READY_S}s)")
    assert b["status"]["phase"] == "Active"
    assert len(b["status"]["timelineId"]) == 32
    assert b["status"]["compute"]["state"] == "Running"
    assert b["status"]["endpoint"] == f"dev-compute.{NS}.svc.cluster.local:5432"
    dev = op.branch_dsn(NS, db, "dev")
    assert op.sql(dev, "select count(*) from items") == [(1000,)]
    # writable, and isolated both ways
    op.sql(dev, "insert into items values (5000, 'dev')")
    op.sql(main, "insert into items values (6000, 'main-after')")
    assert op.sql(dev, "select count(*) from items where id = 5000") == [(1,)]
    assert op.sql(main, "select count(*) from items where id = 5000") == [(0,)]
    assert op.sql(dev, "select count(*) from items where id = 6000") == [(0,)]
    assert op.sql(main, "select count(*) from items") == [(1001,)]


def test_point_in_time_branch_shows_exactly_rows_before(op, db):
    main = op.branch_dsn(NS, db, f"{db}-main")
    op.sql(main, "create table pitr (id int primary key)")
    op.sql(main, "insert into pitr select generate_series(1, 50)")
    # the time between the two commits, by the database's own clock
    (when,) = op.sql(main, "select to_char(clock_timestamp() at time zone 'utc', "
                           "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')")[0]
    if isinstance(when, bytes):  # the computes' databases are SQL_ASCII
        when = when.decode()
    wait_for(lambda: op.sql(main, "select clock_timestamp() > %s::timestamptz + "
                                  "interval '1 second'", when)[0][0], 10, 0.2,
             what="a second to pass on the database's clock")
    op.sql(main, "insert into pitr select generate_series(51, 80)")
    op.apply(branch_manifest("pitr", NS, db, parent=f"{db}-main", timestamp=when))
    b = op.wait_condition(NS, "branch", "pitr", timeout=BRANCH_READY_S)
    assert b["status"]["branchLsn"]
    dsn = op.branch_dsn(NS, db, "pitr")
    assert op.sql(dsn, "select count(*), min(id), max(id) from pitr") == [(50, 1, 50)]


def test_delete_branch_removes_timeline_and_pods(op, db):
    op.apply(branch_manifest("gone", NS, db, parent=f"{db}-main"))
    b = op.wait_condition(NS, "branch", "gone", timeout=BRANCH_READY_S)
    tl = b["status"]["timelineId"]
    assert tl in op.timelines(NS, db)
    assert op.get(NS, "pod", "gone-compute-0")
    op.kubectl("-n", NS, "delete", "branch", "gone", "--wait=false")
    wait_for(lambda: op.get(NS, "branch", "gone") is None, 120, 1.0, what="the Branch to go")
    assert tl not in op.timelines(NS, db)
    wait_for(lambda: op.get(NS, "pod", "gone-compute-0") is None, 120, 1.0,
             what="the compute pod to go")
    assert op.get(NS, "statefulset", "gone-compute") is None or \
        op.get(NS, "statefulset", "gone-compute")["metadata"].get("deletionTimestamp")


def test_delete_of_branch_with_children_waits_for_them(op, db):
    op.apply(branch_manifest("p1", NS, db, parent=f"{db}-main", compute={"enabled": False}))
    op.wait_condition(NS, "branch", "p1", timeout=BRANCH_READY_S)
    op.apply(branch_manifest("c1", NS, db, parent="p1", compute={"enabled": False}))
    op.wait_condition(NS, "branch", "c1", timeout=BRANCH_READY_S)
    op.kubectl("-n", NS, "delete", "branch", "p1", "--wait=false")
    c = wait_for(lambda: (x := op.condition(NS, "branch", "p1")) and
                 x["reason"] == "HasChildBranches" and x, 60, 1.0,
                 what="HasChildBranches on p1")
    assert c["status"] == "False" and "c1" in c["message"]
    assert op.get(NS, "branch", "p1")["status"]["phase"] == "Deleting"
    op.kubectl("-n", NS, "delete", "branch", "c1", "--wait=false")
    wait_for(lambda: op.get(NS, "branch", "c1") is None and op.get(NS, "branch", "p1") is None,
             120, 1.0, what="both branches to go")


def test_scale_subresource_suspends_and_resumes(op, db):
    op.apply(branch_manifest("sc", NS, db, parent=f"{db}-main"))
    op.wait_condition(NS, "branch", "sc", timeout=BRANCH_READY_S)
    op.kubectl("-n", NS, "scale", "branch", "sc", "--replicas=0")
    wait_for(lambda: op.get(NS, "pod", "sc-compute-0") is None, 120, 1.0,
             what="the compute to stop")
    wait_for(lambda: (op.get(NS, "branch", "sc")["status"].get("phase") == "Suspended"), 60, 1.0,
             what="phase Suspended")
    op.kubectl("-n", NS, "scale", "branch", "sc", "--replicas=1")
    b = op.wait_condition(NS, "branch", "sc", cond="ComputeReady", timeout=BRANCH_READY_S)
    assert b["status"]["phase"] == "Active"
    op.sql(op.branch_dsn(NS, db, "sc"), "select 1")


def test_read_replica_streams_is_read_only_and_scales_to_zero(op, db):
    op.apply(branch_manifest("rr", NS, db, parent=f"{db}-main", compute={"readReplicas": 1}))
    op.wait_condition(NS, "branch", "rr", timeout=BRANCH_READY_S)
    primary = op.branch_dsn(NS, db, "rr")
    op.sql(primary, "create table seen (id int primary key, n int)")

    def ro_status():
        return (op.get(NS, "branch", "rr")["status"].get("readReplicas") or {})
    st = wait_for(lambda: (s := ro_status()).get("ready") == 1 and s, BRANCH_READY_S, 1.0,
                  what="the read replica to be ready")
    assert st == {"replicas": 1, "ready": 1, "endpoint": f"rr-ro.{NS}.svc.cluster.local:5432",
                  "selector": "app.kubernetes.io/component=compute-replica,"
                              "lakebase.io/branch=rr"}, st
    # the read-only Service lists the replica, never the primary; the
    # primary's endpoint Service never lists the replica
    replica_ip = op.pod_ip(NS, "rr-replica-0")
    primary_ip = op.pod_ip(NS, "rr-compute-0")
    assert replica_ip and replica_ip != primary_ip

    def addrs(svc):
        ep = op.get(NS, "endpoints", svc) or {}
        return sorted(a["ip"] for s in ep.get("subsets", []) for a in s.get("addresses", []))
    wait_for(lambda: addrs("rr-ro") == [replica_ip], 60, 0.5,
             what="the read-only Service to list the replica")
    assert addrs("rr-compute") == [primary_ip]
    svc = op.get(NS, "service", "rr-ro")
    assert svc["spec"]["type"] == "ClusterIP" and svc["spec"]["clusterIP"] != "None"
    assert svc["metadata"]["ownerReferences"][0]["kind"] == "Branch"
    user = op.secret(NS, f"{db}-app")
    ro = (f"host={addrs('rr-ro')[0]} port=5432 user={user['username']} "
          f"password={user['password']} dbname={user['dbname']} connect_timeout=10")
    # a row committed on the primary becomes visible on the replica
    op.sql(primary, "insert into seen values (1, 42)")
    wait_for(lambda: op.sql(ro, "select n from seen where id = 1") == [(42,)], 120, 0.5,
             what="the primary's row on the replica")
    assert op.sql(ro, "select pg_is_in_recovery()") == [(True,)]
    # a write on the replica fails as read-only
    with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        op.sql(ro, "insert into seen values (2, 7)")
    assert op.sql(primary, "select count(*) from seen") == [(1,)]
    # scale to 0: the replica's pod goes, the primary stays
    op.kubectl("-n", NS, "patch", "branch", "rr", "--type=merge", "-p",
               json.dumps({"spec": {"compute": {"readReplicas": 0}}}))
    wait_for(lambda: op.get(NS, "pod", "rr-replica-0") is None, 120, 1.0,
             what="the replica's pod to go")
    wait_for(lambda: ro_status() == dict(st, replicas=0, ready=0), 60, 1.0,
             what="status.readReplicas to show 0")
    assert op.get(NS, "statefulset", "rr-replica")["spec"]["replicas"] == 0
    op.sql(primary, "select 1")
    # deleted with the branch
    op.kubectl("-n", NS, "delete", "branch", "rr", "--wait=false")
    wait_for(lambda: op.get(NS, "branch", "rr") is None, 120, 1.0, what="the Branch to go")
    for kind, name in (("statefulset", "rr-replica"), ("service", "rr-ro"),
                       ("configmap", "rr-replica"), ("secret", "rr-replica")):
        wait_for(lambda: op.get(NS, kind, name) is None, 120, 1.0, what=f"{kind} {name} to go")


def test_branch_without_read_replicas_has_no_replica_objects(op, db):
    op.apply(branch_manifest("norr", NS, db, parent=f"{db}-main", compute={"enabled": False}))
    b = op.wait_condition(NS, "branch", "norr", timeout=BRANCH_READY_S)
    assert "readReplicas" not in b["status"]
    for kind, name in (("statefulset", "norr-replica"), ("service", "norr-ro")):
        assert op.get(NS, kind, name) is None
    op.kubectl("-n", NS, "delete", "branch", "norr", "--wait=false")


def test_safekeepers_offload_wal_to_the_clusters_s3(op, db):
    """With spec.objectStorage.s3, the safekeepers get the pageserver's
    store as their remote_storage: completed WAL segments appear in the
    bucket under <prefix>/<tenant>/<timeline>/wal/, where the pageserver
    reads them. The bucket is an s3rver on the host's address on podman's
    bridge (10.88.0.1, which exists while pods run: devcluster/NODE.md)."""
    ns, name = "objs3", "obj"
    s3 = S3rver(os.path.join(op.dir, "s3rver"), address="10.88.0.1")
    try:
        op.namespace(ns)
        op.apply(cluster_manifest(name, ns, objectStorage={"s3": {
            "endpoint": f"http://10.88.0.1:{s3.port}", "bucket": S3rver.BUCKET,
            "prefix": "wal-offload", "forcePathStyle": True}}))
        c = op.wait_condition(ns, "lakebasecluster", name, timeout=CLUSTER_READY_S)
        tenant = c["status"]["tenantId"]
        b = op.wait_condition(ns, "branch", f"{name}-main", timeout=BRANCH_READY_S)
        timeline = b["status"]["timelineId"]
        conf = op.get(ns, "configmap", f"{name}-safekeeper")["data"]
        assert len(conf) == 3
        for text in conf.values():
            assert f'remote_storage: "{s3.url("wal-offload")}"' in text, text
        dsn = op.branch_dsn(ns, name, f"{name}-main")
        op.sql(dsn, "create table big (id int, pad text)")
        # about 45 MB of WAL: at least two completed 16 MB segments
        op.sql(dsn, "insert into big select g, repeat(md5(g::text), 30) "
                    "from generate_series(1, 40000) g")
        (lsn,) = op.sql(dsn, "select pg_current_wal_flush_lsn()::text")[0]
        lsn = lsn.decode() if isinstance(lsn, bytes) else lsn  # SQL_ASCII databases
        hi, lo = (int(x, 16) for x in lsn.split("/"))
        completed = ((hi << 32) | lo) // (16 << 20)  # segments wholly below the commit
        prefix = f"wal-offload/{tenant}/{timeline}/wal/"
        keys = wait_for(lambda: (k := s3.keys(prefix)) and len(k) >= 2 and k, 180, 2.0,
                        what="offloaded WAL segments in the bucket")
        print(f"{len(keys)} segments offloaded, {completed} completed: {keys[:3]}")
        for k in keys:
            assert len(k.rsplit("/", 1)[1]) == 24, k  # WAL segment file names
    finally:
        op.kubectl("-n", ns, "delete", "lakebasecluster", name, "--wait=false", check=False)
        try:
            wait_for(lambda: op.get(ns, "lakebasecluster", name) is None and
                     not (op.get(ns, "pods") or {}).get("items"), 300, 2.0,
                     what="the S3 cluster to go")
        finally:
            s3.stop()


def test_superuser_logs_in_with_the_clusters_superuser_secret(op, db):
    su = op.secret(NS, f"{db}-superuser")
    assert su["username"] == "postgres"
    ip = op.pod_ip(NS, f"{db}-main-compute-0")
    dsn = (f"host={ip} port=5432 user=postgres password={su['password']} dbname=postgres "
           "connect_timeout=10")
    assert op.sql(dsn, "select rolsuper from pg_roles where rolname = current_user") == [(True,)]
    # the password is checked (SCRAM), not just the role name
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        op.sql(dsn.replace(su["password"], su["password"] + "x"), "select 1")
    # it reaches the compute as a mounted file, never in the pod's spec
    pod = json.dumps(op.get(NS, "pod", f"{db}-main-compute-0")["spec"])
    assert su["password"] not in pod
    assert "superuser_password_file" in op.get(NS, "configmap", f"{db}-main-compute")["data"][
        "spec.json"]


def test_analytics_secret_reads_the_lake_catalog_and_nothing_else(op, db):
    """The cluster's N-analytics Secret holds a token of role analytics for
    its tenant and the pageserver's address: with it an engine reads the
    Iceberg REST catalog of a branch's timeline, and is refused the
    basebackup and the management API."""
    import urllib.error
    import urllib.request
    a = op.secret(NS, f"{db}-analytics")
    cluster = op.get(NS, "lakebasecluster", db)
    assert a["tenant-id"] == cluster["status"]["tenantId"]
    assert a["pageserver"] == f"http://{db}-pageserver-0.{db}-pageserver.{NS}.svc.cluster.local:9898"
    timeline = op.get(NS, "branch", f"{db}-main")["status"]["timelineId"]
    ip = op.pod_ip(NS, f"{db}-pageserver-0")
    base = f"http://{ip}:9898/v1/tenant/{a['tenant-id']}/timeline/{timeline}"

    def get(url, token=a["token"], method="GET"):
        req = urllib.request.Request(url, method=method,
                                     headers={"Authorization": f"Bearer {token}"})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()
    st, body = get(base + "/iceberg/v1/config")
    assert st == 200 and json.loads(body)["overrides"]["prefix"] == "lake", (st, body)
    st, body = get(base + "/iceberg/v1/namespaces")
    assert st == 200 and "namespaces" in json.loads(body), (st, body)
    assert get(base + "/basebackup")[0] == 403
    assert get(f"http://{ip}:9898/v1/gc", method="POST")[0] == 403
    assert get(base + "/iceberg/v1/config", token=a["token"] + "x")[0] == 401


def test_superuser_secret_named_but_missing_or_bad_is_reported(op, db):
    ns = "susecret"
    op.namespace(ns)
    op.apply(cluster_manifest("named", ns, superuserSecret={"name": "my-su"}))
    c = wait_for(lambda: (x := op.condition(ns, "lakebasecluster", "named")) and
                 x["reason"] == "SuperuserSecretInvalid" and x, 60, 1.0,
                 what="SuperuserSecretInvalid")
    assert c["status"] == "False" and '"my-su"' in c["message"] and "does not exist" in c["message"]
    op.apply({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "my-su", "namespace": ns},
              "stringData": {"password": " padded"}})
    wait_for(lambda: "starts or ends with a space" in
             (op.condition(ns, "lakebasecluster", "named") or {}).get("message", ""), 60, 1.0,
             what="the bad password to be reported")
    assert op.get(ns, "statefulset", "named-safekeeper") is None  # nothing made meanwhile
    op.kubectl("-n", ns, "delete", "lakebasecluster", "named", "--wait=false")
    wait_for(lambda: op.get(ns, "lakebasecluster", "named") is None, 120, 1.0,
             what="the cluster to go")


# ---- bad input ----

def test_bad_resources_refused_or_reported(op, db):
    # two safekeepers: refused by the schema
    r = op.apply(cluster_manifest("two", NS, safekeepers={"replicas": 2}), check=False)
    assert r.returncode != 0 and "supported values" in r.stderr, r.stderr
    # an unknown field: refused (kubectl asks for strict validation)
    bad = cluster_manifest("unknown", NS)
    bad["spec"]["safekeeperz"] = {"replicas": 3}
    r = op.apply(bad, check=False)
    assert r.returncode != 0 and 'unknown field "spec.safekeeperz"' in r.stderr, r.stderr
    # a branch of a missing parent: reported
    op.apply(branch_manifest("orphan", NS, db, parent="no-such-branch"))
    c = wait_for(lambda: (x := op.condition(NS, "branch", "orphan")) and
                 x["reason"] == "ParentNotFound" and x, 60, 1.0, what="ParentNotFound")
    assert c["status"] == "False" and "no-such-branch" in c["message"]
    # an LSN in the future: reported by the pageserver's refusal
    op.apply(branch_manifest("future", NS, db, parent=f"{db}-main", lsn="FF/0",
                             compute={"enabled": False}))
    c = wait_for(lambda: (x := op.condition(NS, "branch", "future")) and
                 x["reason"] == "TimelineCreateFailed" and x, 120, 1.0,
                 what="TimelineCreateFailed")
    assert c["status"] == "False" and "FF/0" in c["message"], c
    assert op.get(NS, "branch", "future")["status"]["phase"] == "Failed"
    # a malformed LSN: refused by the schema
    r = op.apply(branch_manifest("badlsn", NS, db, parent=f"{db}-main", lsn="0/zz"), check=False)
    assert r.returncode != 0 and "spec.lsn" in r.stderr, r.stderr
    # a changed immutable field: refused by the CRD's CEL rule on an API
    # server that runs CEL, else reported by the controller
    r = op.kubectl("-n", NS, "patch", "lakebasecluster", db, "--type=merge", "-p",
                   json.dumps({"spec": {"objectStorage": {"volume": {"size": "5Gi"}}}}),
                   check=False)
    if r.returncode != 0:
        assert "immutable" in r.stderr, r.stderr
    else:
        c = wait_for(lambda: (x := op.condition(NS, "lakebasecluster", db)) and
                     x["reason"] == "ImmutableFieldChanged" and x, 60, 1.0,
                     what="ImmutableFieldChanged")
        assert c["status"] == "False" and "objectStorage" in c["message"]
        # put it back: Ready again, nothing was changed meanwhile
        op.kubectl("-n", NS, "patch", "lakebasecluster", db, "--type=merge", "-p",
                   json.dumps({"spec": {"objectStorage": {"volume": {"size": "1Gi"}}}}))
        op.wait_condition(NS, "lakebasecluster", db, timeout=120)
    for name in ("orphan", "future"):
        op.kubectl("-n", NS, "delete", "branch", name, "--wait=false")
    events = op.kubectl("-n", NS, "get", "events", "-o", "json").stdout
    reasons = {e["reason"] for e in json.loads(events)["items"]}
    assert {"ParentNotFound", "TimelineCreateFailed"} <= reasons, reasons


# ---- the controller's own failures ----

def test_kill9_mid_reconcile_converges_without_duplicates(op, db):
    ensure_controller(op)
    live = [c for c in op.controllers if c.alive()]
    before = op.timelines(NS, db)
    op.apply(branch_manifest("k9", NS, db, parent=f"{db}-main"))
    # kill as soon as the controller has recorded the timeline id, before
    # the branch is ready (mid-reconcile)
    wait_for(lambda: (op.get(NS, "branch", "k9") or {}).get("metadata", {}).get(
        "annotations", {}).get("lakebase.io/timeline-id"), 60, 0.05, what="the timeline id")
    for c in live:
        c.kill(signal.SIGKILL)
    op.start_controller()
    b = op.wait_condition(NS, "branch", "k9", timeout=BRANCH_READY_S)
    assert b["metadata"]["annotations"]["lakebase.io/timeline-id"] == b["status"]["timelineId"]
    after = op.timelines(NS, db)
    assert sorted(set(after) - set(before)) == [b["status"]["timelineId"]], (before, after)
    # exactly one of everything: names are fixed, and no second timeline
    sets = op.get(NS, "statefulsets")["items"]
    names = [s["metadata"]["name"] for s in sets]
    assert len(names) == len(set(names))
    assert names.count("k9-compute") == 1
    branches = op.get(NS, "branches")["items"]
    assert [x["metadata"]["name"] for x in branches].count(f"{db}-main") == 1
    op.sql(op.branch_dsn(NS, db, "k9"), "select 1")


def test_two_controllers_one_leads_other_takes_over(op, db):
    ensure_controller(op)
    second = op.start_controller()
    wait_for(lambda: op.readyz(second)[0] == 200, 30, what="the second controller's /readyz")
    holder = op.lease_holder()
    first = leading_process(op)
    assert first is not None and first is not second, holder
    assert "standby" in op.readyz(second)[1]
    assert op.readyz(first) == (200, "ok\n")
    first.kill(signal.SIGKILL)
    t0 = time.monotonic()
    wait_for(lambda: op.lease_holder() != holder, 60, 0.2, what="the Lease to move")
    took = time.monotonic() - t0
    print(f"takeover after {took:.1f}s (lease 15s, retry 2s)")
    assert took <= 15 + 2 + 5, took
    # the new leader reconciles: a change made now is acted on
    op.apply(branch_manifest("after", NS, db, parent=f"{db}-main", compute={"enabled": False}))
    op.wait_condition(NS, "branch", "after", timeout=BRANCH_READY_S)
    # SIGTERM releases the Lease at once
    second.stop()
    wait_for(lambda: op.lease_holder() == "", 10, 0.2, what="the Lease to be released")
    op.start_controller()


# ---- secrets ----

# Secret keys that are not secret: the public key, the tenant id (in the
# cluster's status by design) and the connection's non-secret parts.
PUBLIC_KEYS = {"signing.pem", "tenant-id", "username", "host", "port", "dbname"}


def test_no_secret_in_logs_status_events_or_command_lines(op, db):
    secrets_seen = []
    for s in op.get(NS, "secrets")["items"]:
        for k, v in op.secret(NS, s["metadata"]["name"]).items():
            if k in PUBLIC_KEYS:
                continue
            for line in v.splitlines():
                line = line.strip()
                if len(line) >= 16 and not line.startswith("-----") and "svc.cluster.local" \
                        not in line:
                    secrets_seen.append(line)
                # tokens: also their signature alone
                if line.count(".") == 2 and len(line) > 40:
                    secrets_seen.append(line.split(".")[2])
    assert len(secrets_seen) >= 10
    haystacks = {}
    for c in op.controllers:
        haystacks[c.log] = open(c.log, errors="replace").read()
    for kind in ("lakebaseclusters", "branches"):
        for o in op.get(NS, kind)["items"]:
            haystacks[f"{kind}/{o['metadata']['name']}/status"] = json.dumps(o.get("status"))
    haystacks["events"] = op.kubectl("-n", NS, "get", "events", "-o", "json").stdout
    for p in op.get(NS, "pods")["items"]:
        name = p["metadata"]["name"]
        for ctr in p["spec"]["containers"]:
            haystacks[f"pod/{name}/command"] = json.dumps([ctr.get("command"), ctr.get("args"),
                                                            ctr.get("env")])
        haystacks[f"pod/{name}/log"] = op.kubectl("-n", NS, "logs", name, check=False).stdout
    for where, text in haystacks.items():
        for s in secrets_seen:
            assert s not in text, f"a secret value appears in {where}"
