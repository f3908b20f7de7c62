"""Zero acknowledged loss through the operator: the fault suite's workload
(e2e/test_faults.py) runs against the cluster while the test deletes the
compute pod, a safekeeper pod and the pageserver pod. Client threads do,
each in its own transaction, either a bank transfer between two of 100
accounts (the total never changes) or an insert of a new id, recorded as
acknowledged once its COMMIT returned without the synchronous replication
cancel warning. At the end every acknowledged id is there exactly once,
the bank's total and number of accounts are unchanged, and every part came
back by itself (the StatefulSets and the controller bring them back;
nobody restarts anything by hand).

The clients connect to the endpoint Service's ready address (what a
cluster IP routes to; devcluster/NODE.md), found again at each reconnect,
with a TCP user timeout: a connection to a pod that vanished fails in
seconds instead of hanging.

Bounds: the cluster Ready within 300 s, each part back within 300 s.
"""
import random
import threading
import time

import psycopg

from lakebase import wait_for

NS = "faults"
ACCOUNTS = 100
START_BALANCE = 1000


class Workload:
    """Client threads doing transfers and inserts through the endpoint,
    reconnecting on any error. A transaction that got an error, or whose
    COMMIT returned with the cancel warning, is not acknowledged."""

    def __init__(self, op, dsn, nthreads=3):
        self.op = op
        self.base_dsn = dsn
        self.lock = threading.Lock()
        self.acked = []          # ids whose COMMIT returned cleanly
        self.transfers = 0       # transfers committed cleanly
        self.failed = 0          # attempts that got an error
        self.warned = 0          # commits with the synchronous replication warning
        self.next_id = 0
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self.run, args=(i,), daemon=True)
                        for i in range(nthreads)]

    def start(self):
        for t in self.threads:
            t.start()

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(60)

    def done(self):
        with self.lock:
            return len(self.acked) + self.transfers

    def connect(self):
        ep = self.op.get(NS, "endpoints", "bank")
        ips = [a["ip"] for x in ep.get("subsets", []) for a in x.get("addresses", [])]
        if not ips:
            raise RuntimeError("no ready endpoint")
        return psycopg.connect(f"{self.base_dsn} host={ips[0]} port=5432 "
                               "tcp_user_timeout=5000 keepalives_idle=2 "
                               "keepalives_interval=1 keepalives_count=3",
                               autocommit=False, connect_timeout=5)

    def run(self, n):
        rnd = random.Random(n)
        conn = None
        notices = []
        while not self.stop.is_set():
            try:
                if conn is None:
                    conn = self.connect()
                    notices = []
                    conn.add_notice_handler(lambda d, notices=notices: notices.append(d))
                notices.clear()
                i = None
                if rnd.random() < 0.5:
                    a, b = rnd.sample(range(1, ACCOUNTS + 1), 2)
                    x = rnd.randint(1, 50)
                    conn.execute("update accounts set balance = balance - %s where id = %s",
                                 (x, a))
                    conn.execute("update accounts set balance = balance + %s where id = %s",
                                 (x, b))
                else:
                    with self.lock:
                        self.next_id += 1
                        i = self.next_id
                    conn.execute("insert into acked (id) values (%s)", (i,))
                conn.commit()
                ok = not any("synchronous replication" in str(d.message_primary)
                             for d in notices)
                with self.lock:
                    if not ok:
                        self.warned += 1
                    elif i is not None:
                        self.acked.append(i)
                    else:
                        self.transfers += 1
            except Exception:  # noqa: BLE001 - any failure: not acknowledged
                with self.lock:
                    self.failed += 1
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


def test_no_acknowledged_commit_lost_while_pods_are_deleted(op):
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

    def setup():
        with psycopg.connect(dsn, connect_timeout=10) as c:  # one transaction
            c.execute("create table if not exists accounts "
                      "(id int primary key, balance bigint not null)")
            c.execute("create table if not exists acked (id bigint primary key)")
            c.execute("insert into accounts select g, %s from generate_series(1, %s) g "
                      "on conflict do nothing", (START_BALANCE, ACCOUNTS))
        return True
    wait_for(setup, 120, 1.0, what="the endpoint")
    work = Workload(op, f"user={user['username']} password={user['password']} "
                        f"dbname={user['dbname']}")
    work.start()
    pods = ["bank-main-compute-0", "bank-safekeeper-1", "bank-pageserver-0",
            "bank-safekeeper-0", "bank-safekeeper-2"]
    try:
        for victim in ("bank-main-compute-0", "bank-safekeeper-1", "bank-pageserver-0"):
            before = work.done()
            wait_for(lambda: work.done() >= before + 20, 300, 0.2,
                     what=f"commits before deleting {victim}")
            uid = op.get(NS, "pod", victim)["metadata"]["uid"]
            op.kubectl("-n", NS, "delete", "pod", victim, "--wait=false")
            wait_for(lambda: (p := op.get(NS, "pod", victim)) and p["metadata"]["uid"] != uid,
                     300, 1.0, what=f"{victim} to be recreated")
            wait_for(lambda: all_ready(op, pods), 300, 1.0, what=f"every pod ready after {victim}")
            after = work.done()
            wait_for(lambda: work.done() >= after + 20, 300, 0.2,
                     what=f"commits after deleting {victim}")
    finally:
        work.finish()
    op.wait_condition(NS, "lakebasecluster", "bank", timeout=300)
    present = [r[0] for r in wait_for(lambda: op.sql(dsn, "select id from acked"), 120, 1.0,
                                      what="the table after the faults")]
    total = op.sql(dsn, "select sum(balance), count(*) from accounts")[0]
    print(f"acknowledged {len(work.acked)} inserts and {work.transfers} transfers; "
          f"{work.failed} failed attempts, {work.warned} commits with the cancel warning")
    assert len(work.acked) >= 60 and work.transfers >= 60
    assert len(present) == len(set(present))
    lost = sorted(set(work.acked) - set(present))
    assert lost == [], f"{len(lost)} acknowledged ids lost: {lost[:20]}"
    assert total == (ACCOUNTS * START_BALANCE, ACCOUNTS), total
