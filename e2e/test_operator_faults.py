"""Zero acknowledged loss through the operator: a writer inserts ids through
the cluster's endpoint (a NodePort, which devcluster forwards from
127.0.0.1 to the ready compute) and records each one PostgreSQL
acknowledged, while the test deletes the compute pod, a safekeeper pod and
the pageserver pod. Every acknowledged id must be there at the end, and
every part must come back by itself (the StatefulSets and the controller
bring them back; nobody restarts anything by hand).

Bounds: the cluster Ready within 300 s, each part back within 300 s.
"""
import os
import shutil
import subprocess
import tempfile
import threading
import time

import psycopg
import pytest

from lakebase import OperatorEnv, ROOT, wait_for

NS = "faults"


@pytest.fixture(scope="module")
def op():
    r = subprocess.run([os.path.join(ROOT, "images", "build.sh"), "safekeeper", "pageserver",
                        "compute"], capture_output=True, text=True, timeout=3600)
    assert r.returncode == 0, f"images/build.sh failed: {r.stdout}{r.stderr}"
    root = tempfile.mkdtemp(prefix="lb-operator-faults-")
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


class Writer(threading.Thread):
    """Inserts 1, 2, 3, ... one transaction each, reconnecting on any error;
    an id counts as acknowledged once its COMMIT returned. It connects to
    the endpoint Service's ready address (what a cluster IP routes to),
    found again at each reconnect, with a TCP user timeout: a connection to
    a pod that vanished fails in seconds instead of hanging."""

    def __init__(self, op, dsn):
        super().__init__(daemon=True)
        self.op = op
        self.base_dsn = dsn
        self.acked = []
        self.errors = 0
        self.stop = threading.Event()

    def run(self):
        n = 0
        conn = None
        while not self.stop.is_set():
            try:
                if conn is None:
                    ep = self.op.get(NS, "endpoints", "bank")
                    ips = [a["ip"] for x in ep.get("subsets", []) for a in x.get("addresses", [])]
                    if not ips:
                        raise RuntimeError("no ready endpoint")
                    conn = psycopg.connect(f"{self.base_dsn} host={ips[0]} port=5432 "
                                           "tcp_user_timeout=5000 keepalives_idle=2 "
                                           "keepalives_interval=1 keepalives_count=3",
                                           autocommit=True, connect_timeout=5)
                n += 1
                conn.execute("insert into acked (id) values (%s)", (n,))
                self.acked.append(n)
            except Exception:  # noqa: BLE001 - any failure: the id is not acknowledged
                self.errors += 1
                if conn is not None:
                    try:
                        conn.close()
                    except Exception:  # noqa: BLE001
                        pass
                conn = None
                time.sleep(0.5)
        if conn is not None:
            conn.close()


def all_ready(op, pods):
    for name in pods:
        p = op.get(NS, "pod", name)
        if not p or p["metadata"].get("deletionTimestamp"):
            return False
        if not any(c["type"] == "Ready" and c["status"] == "True"
                   for c in p.get("status", {}).get("conditions", [])):
            return False
    return True


def test_no_acknowledged_insert_lost_while_pods_are_deleted(op):
    op.namespace(NS)
    op.apply({"apiVersion": "lakebase.io/v1alpha1", "kind": "LakebaseCluster",
              "metadata": {"name": "bank", "namespace": NS},
              "spec": {"objectStorage": {"volume": {"size": "1Gi"}},
                       "proxy": {"serviceType": "NodePort"}}})
    op.wait_condition(NS, "lakebasecluster", "bank", timeout=300)
    port = op.get(NS, "service", "bank")["spec"]["ports"][0]["nodePort"]
    user = op.secret(NS, "bank-app")
    dsn = (f"host=127.0.0.1 port={port} user={user['username']} password={user['password']} "
           f"dbname={user['dbname']}")
    wait_for(lambda: op.sql(dsn, "create table if not exists acked (id int primary key)") is None,
             120, 1.0, what="the endpoint")
    w = Writer(op, f"user={user['username']} password={user['password']} "
                   f"dbname={user['dbname']}")
    w.start()
    pods = ["bank-main-compute-0", "bank-safekeeper-1", "bank-pageserver-0",
            "bank-safekeeper-0", "bank-safekeeper-2"]
    try:
        for victim in ("bank-main-compute-0", "bank-safekeeper-1", "bank-pageserver-0"):
            before = len(w.acked)
            wait_for(lambda: len(w.acked) >= before + 20, 300, 0.2,
                     what=f"writes before deleting {victim}")
            uid = op.get(NS, "pod", victim)["metadata"]["uid"]
            op.kubectl("-n", NS, "delete", "pod", victim, "--wait=false")
            wait_for(lambda: (p := op.get(NS, "pod", victim)) and p["metadata"]["uid"] != uid,
                     300, 1.0, what=f"{victim} to be recreated")
            wait_for(lambda: all_ready(op, pods), 300, 1.0, what=f"every pod ready after {victim}")
            after = len(w.acked)
            wait_for(lambda: len(w.acked) >= after + 20, 300, 0.2,
                     what=f"writes after deleting {victim}")
    finally:
        w.stop.set()
        w.join(60)
    op.wait_condition(NS, "lakebasecluster", "bank", timeout=300)
    rows = {r[0] for r in wait_for(lambda: op.sql(dsn, "select id from acked"), 120, 1.0,
                                   what="the table after the faults")}
    lost = [i for i in w.acked if i not in rows]
    print(f"acknowledged {len(w.acked)} inserts, {w.errors} failed attempts, lost {len(lost)}")
    assert len(w.acked) >= 120
    assert lost == [], f"acknowledged ids lost: {lost[:20]}"
