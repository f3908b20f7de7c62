"""lakebase-controller on devcluster, with the real kubectl 1.32.

One devcluster (its own directory and API port) serves the module; the
CRDs from crds/ are applied with kubectl, and lakebase-controller runs as
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
import shutil
import signal
import subprocess
import tempfile
import time

import psycopg
import pytest

from lakebase import OperatorEnv, ROOT, wait_for

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
def op():
    r = subprocess.run([os.path.join(ROOT, "images", "build.sh"), "safekeeper", "pageserver",
                        "compute"], capture_output=True, text=True, timeout=3600)
    assert r.returncode == 0, f"images/build.sh failed: {r.stdout}{r.stderr}"
    root = tempfile.mkdtemp(prefix="lb-operator-")
    env = OperatorEnv(root)
    env.devcluster("up")
    env.kubectl("apply", "-f", os.path.join(ROOT, "crds"))
    env.start_controller()
    yield env
    env.close()
    reports = env.sanitizer_reports()
    if reports:
        pytest.fail("sanitizer reports in " + ", ".join(reports) + f" (kept {root})")
    shutil.rmtree(root, ignore_errors=True)


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
