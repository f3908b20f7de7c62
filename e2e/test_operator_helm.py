"""The operator installed with its Helm chart on devcluster: the controller
runs in a pod (the chart's Deployment, RBAC and securityContext), and a
user's steps are the README's: `helm install`, `kubectl apply -f
examples/cluster.yaml`, wait for Ready, psql through the endpoint (the
example's NodePort, which devcluster forwards from 127.0.0.1), then
`kubectl apply -f examples/branch.yaml`.

Also: `helm upgrade` that changes the controller's pod (a new controller
process reconciling everything) restarts no safekeeper, pageserver or
compute pod, since their specs did not change.

Bounds: the cluster Ready within 300 s, the branch within 180 s.
"""
import json
import os
import shutil
import subprocess
import tempfile
import time

import pytest

from lakebase import OperatorEnv, ROOT, wait_for

HELM = os.path.join(ROOT, "build", "tools", "helm")
CHART = os.path.join(ROOT, "deploy", "helm", "lakebase")
EXAMPLES = os.path.join(ROOT, "examples")
RELEASE, SYSTEM_NS = "lb", "lakebase-system"
NS = "default"  # the examples name no namespace

pytestmark = pytest.mark.skipif(not os.path.exists(HELM) or not os.path.isdir(CHART),
                                reason="helm (make deps) or the chart is missing")


def ref(name):
    with open(os.path.join(ROOT, "build", "images", name + ".ref")) as f:
        return f.read().strip()


@pytest.fixture(scope="module")
def env():
    r = subprocess.run([os.path.join(ROOT, "images", "build.sh"), "controller", "safekeeper",
                        "pageserver", "compute"], capture_output=True, text=True, timeout=3600)
    assert r.returncode == 0, f"images/build.sh failed: {r.stdout}{r.stderr}"
    root = tempfile.mkdtemp(prefix="lb-operator-helm-")
    e = OperatorEnv(root)
    e.env["HOME"] = os.path.join(root, "home")
    os.makedirs(e.env["HOME"])
    e.devcluster("up")
    yield e
    e.close()
    shutil.rmtree(root, ignore_errors=True)


def helm(env, *args):
    r = subprocess.run([HELM, *args], env=env.env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, f"helm {' '.join(args)} failed: {r.stdout}{r.stderr}"
    return r.stdout


def helm_values():
    repo, tag = ref("controller").rsplit(":", 1)
    return ["--set", f"image.repository={repo}", "--set", f"image.tag={tag}",
            "--set", f"dataPlaneImages.safekeeper={ref('safekeeper')}",
            "--set", f"dataPlaneImages.pageserver={ref('pageserver')}",
            "--set", f"dataPlaneImages.compute={ref('compute')}"]


def data_plane_pods(env):
    """name -> (uid, restarts) of every safekeeper, pageserver and compute pod."""
    out = {}
    for p in env.get(NS, "pods")["items"]:
        comp = p["metadata"].get("labels", {}).get("app.kubernetes.io/component")
        if comp in ("safekeeper", "pageserver", "compute"):
            restarts = sum(c.get("restartCount", 0) for c in
                           p.get("status", {}).get("containerStatuses", []))
            out[p["metadata"]["name"]] = (p["metadata"]["uid"], restarts)
    return out


def test_helm_install_cluster_branch_and_upgrade(env):
    helm(env, "install", RELEASE, CHART, "--namespace", SYSTEM_NS, "--create-namespace",
         *helm_values())
    env.kubectl("-n", SYSTEM_NS, "rollout", "status", "deployment/lb-lakebase-controller",
                "--timeout=300s", timeout=320)
    t0 = time.monotonic()
    env.kubectl("apply", "-f", os.path.join(EXAMPLES, "cluster.yaml"))
    env.wait_condition(NS, "lakebasecluster", "demo", timeout=300)
    print(f"cluster Ready after {time.monotonic() - t0:.1f}s through the chart (bound 300s)")
    out = env.kubectl("get", "lakebaseclusters,branches").stdout
    assert "demo" in out and "Ready" in out and "3/3" in out and "demo-main" in out

    # psql through the endpoint: the NodePort on 127.0.0.1
    svc = env.get(NS, "service", "demo")
    assert svc["spec"]["type"] == "NodePort"
    node_port = svc["spec"]["ports"][0]["nodePort"]
    user = env.secret(NS, "demo-app")
    dsn = (f"host=127.0.0.1 port={node_port} user={user['username']} "
           f"password={user['password']} dbname={user['dbname']} connect_timeout=10")
    wait_for(lambda: env.sql(dsn, "select 1") == [(1,)], 120, 1.0,
             what="psql through the NodePort")
    env.sql(dsn, "create table notes (id int primary key)")
    env.sql(dsn, "insert into notes select generate_series(1, 10)")

    # the example branch
    t0 = time.monotonic()
    env.kubectl("apply", "-f", os.path.join(EXAMPLES, "branch.yaml"))
    b = env.wait_condition(NS, "branch", "dev", timeout=180)
    print(f"branch Ready after {time.monotonic() - t0:.1f}s (bound 180s)")
    assert b["status"]["expiresAt"]
    dev = env.branch_dsn(NS, "demo", "dev")
    assert env.sql(dev, "select count(*) from notes") == [(10,)]

    # the controller's logs: no request refused by the chart's RBAC
    logs = env.kubectl("-n", SYSTEM_NS, "logs", "deployment/lb-lakebase-controller").stdout
    assert "forbidden" not in logs.lower() and " 403 " not in logs, logs

    # helm upgrade: a new controller pod; the data plane keeps running
    before = data_plane_pods(env)
    assert len(before) == 3 + 1 + 2, before
    old_ctl = {p["metadata"]["uid"] for p in env.get(SYSTEM_NS, "pods")["items"]}
    helm(env, "upgrade", RELEASE, CHART, "--namespace", SYSTEM_NS, *helm_values(),
         "--set", "controller.logLevel=debug")
    env.kubectl("-n", SYSTEM_NS, "rollout", "status", "deployment/lb-lakebase-controller",
                "--timeout=300s", timeout=320)
    new_ctl = [p for p in env.get(SYSTEM_NS, "pods")["items"]
               if p["metadata"]["uid"] not in old_ctl and not p["metadata"].get("deletionTimestamp")]
    assert new_ctl, "the upgrade made no new controller pod"
    # the new controller has reconciled every object (debug logs say so)
    wait_for(lambda: "reconciled branch=default/dev" in env.kubectl(
        "-n", SYSTEM_NS, "logs", new_ctl[0]["metadata"]["name"], check=False).stdout and
        "reconciled cluster=default/demo" in env.kubectl(
        "-n", SYSTEM_NS, "logs", new_ctl[0]["metadata"]["name"], check=False).stdout,
        180, 1.0, what="the new controller to reconcile the cluster and the branch")
    assert data_plane_pods(env) == before
    env.wait_condition(NS, "lakebasecluster", "demo", timeout=60)
    assert env.sql(dsn, "select count(*) from notes") == [(10,)]
