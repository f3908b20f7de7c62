"""devcluster's node half against the real kubectl 1.32: pods as podman pods.

One devcluster (`devcluster up` in a temporary directory, its own free API
port) serves the whole module; each test works in its own namespace. The
images come from `images/build.sh` (cached between runs: a fresh machine
builds the Debian base and the safekeeper image in about 90 s).

No test sleeps for a fixed time: each waits for the state it needs, with a
generous bound (the machine is shared and slow).
"""
import json
import os
import shutil
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

import pytest

ROOT = os.environ.get("LB_PROJECT_ROOT") or os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("LB_DEVCLUSTER_BIN") or os.path.join(ROOT, "build", "bin", "devcluster")
KUBECTL = shutil.which("kubectl") or os.path.join(ROOT, "build", "tools", "kubectl")
PODMAN_DIR = os.environ.get("LB_PODMAN_DIR", "/var/lib/lakebase/podman")


def podman_env():
    env = dict(os.environ)
    env["CONTAINERS_CONF"] = os.path.join(PODMAN_DIR, "containers.conf")
    env["CONTAINERS_STORAGE_CONF"] = os.path.join(PODMAN_DIR, "storage.conf")
    return env


def podman(*args, check=True):
    r = subprocess.run(["podman", *args], env=podman_env(), capture_output=True, text=True, timeout=120)
    if check and r.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)} failed: {r.stderr}")
    return r.stdout


def wait_for(pred, timeout=180.0, interval=0.5, what="condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = pred()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


class Devcluster:
    def __init__(self, root):
        self.dir = root
        self.env = dict(os.environ, DEVCLUSTER_DIR=root, KUBECONFIG=os.path.join(root, "kubeconfig"))

    def run(self, *args, check=True, input=None, timeout=180):
        r = subprocess.run([BIN, *args], env=self.env, capture_output=True, text=True, timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError(f"devcluster {' '.join(args)} failed: {r.stdout}{r.stderr}")
        return r

    def kubectl(self, *args, check=True, input=None, timeout=180):
        r = subprocess.run([KUBECTL, *args], env=self.env, capture_output=True, text=True, input=input,
                           timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {r.stdout}{r.stderr}")
        return r.stdout

    def namespace(self, ns):
        # apply sends JSON; `kubectl create namespace` would send protobuf
        self.kubectl("apply", "-f", "-", input=json.dumps(
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}))

    def get(self, ns, what):
        out = self.kubectl("-n", ns, "get", what, "-o", "json", check=False)
        return json.loads(out) if out.strip() else None

    def pods(self, ns, selector=None):
        args = ["-n", ns, "get", "pods", "-o", "json"] + (["-l", selector] if selector else [])
        return json.loads(self.kubectl(*args))["items"]

    def cluster_id(self):
        with open(os.path.join(self.dir, "node", "cluster-id")) as f:
            return f.read().strip()

    def containers(self):
        out = podman("ps", "-a", "--filter", f"label=io.lakebase.devcluster={self.cluster_id()}", "-q")
        return [line for line in out.split() if line]


def ready(pod):
    for c in pod.get("status", {}).get("conditions", []):
        if c["type"] == "Ready":
            return c["status"] == "True"
    return False


@pytest.fixture(scope="module")
def dc():
    r = subprocess.run([os.path.join(ROOT, "images", "build.sh"), "safekeeper"], capture_output=True, text=True,
                       timeout=1800)
    assert r.returncode == 0, f"images/build.sh failed: {r.stdout}{r.stderr}"
    with open(os.path.join(ROOT, "build", "images", "safekeeper.ref")) as f:
        image = f.read().strip()
    root = tempfile.mkdtemp(prefix="lb-devcluster-")
    d = Devcluster(root)
    d.image = image
    out = d.run("up").stdout.strip()
    assert out.endswith("kubeconfig"), out
    yield d
    d.run("down", check=False)
    leftover = d.containers()
    shutil.rmtree(root, ignore_errors=True)
    assert leftover == [], f"devcluster down left containers {leftover}"


def public_key():
    """An Ed25519 public key in PEM: the safekeeper refuses to start without
    auth_public_keys (docs/auth.md)."""
    private = subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519"], capture_output=True,
                             check=True).stdout
    return subprocess.run(["openssl", "pkey", "-pubout"], input=private, capture_output=True,
                          check=True).stdout.decode()


def keys(dc, ns):
    """The public key as a ConfigMap, mounted by the safekeepers at /keys."""
    dc.kubectl("apply", "-f", "-", input=json.dumps({
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "auth-keys", "namespace": ns},
        "data": {"signing.pem": public_key()}}))


def safekeeper_set(image, ns, replicas=3, version="1"):
    # Each start appends to /data/boots on the claim and prints the count,
    # so the logs tell whether the data survived.
    script = ('echo boot >> /data/boots; echo "boots=$(wc -l < /data/boots) host=$(hostname)"; '
              'exec /usr/local/bin/safekeeper --id "$POD_NAME" --data_dir /data '
              '--listen_http 0.0.0.0:7676 --listen_pg 0.0.0.0:5454 --auth_public_keys /keys')
    return f"""
apiVersion: v1
kind: Service
metadata: {{name: sk, namespace: {ns}}}
spec:
  clusterIP: None
  selector: {{app: sk}}
  ports: [{{name: pg, port: 5454}}, {{name: http, port: 7676}}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {{name: sk, namespace: {ns}}}
spec:
  serviceName: sk
  replicas: {replicas}
  selector: {{matchLabels: {{app: sk}}}}
  template:
    metadata: {{labels: {{app: sk}}}}
    spec:
      securityContext: {{runAsNonRoot: true, fsGroup: 65532}}
      containers:
      - name: safekeeper
        image: {image}
        command: ["sh", "-c", {json.dumps(script)}]
        env:
        - name: POD_NAME
          valueFrom: {{fieldRef: {{fieldPath: metadata.name}}}}
        - {{name: VERSION, value: "{version}"}}
        readinessProbe: {{httpGet: {{path: /healthz, port: 7676}}, periodSeconds: 1}}
        livenessProbe: {{tcpSocket: {{port: 5454}}, periodSeconds: 5}}
        securityContext: {{allowPrivilegeEscalation: false, capabilities: {{drop: [ALL]}}}}
        resources: {{limits: {{memory: 256Mi, cpu: 500m}}}}
        volumeMounts: [{{name: data, mountPath: /data}}, {{name: keys, mountPath: /keys}}]
      volumes: [{{name: keys, configMap: {{name: auth-keys}}}}]
  volumeClaimTemplates:
  - metadata: {{name: data}}
    spec: {{accessModes: [ReadWriteOnce], resources: {{requests: {{storage: 1Gi}}}}}}
"""


def boots(dc, ns, pod):
    for line in dc.kubectl("-n", ns, "logs", pod).splitlines():
        if line.startswith("boots="):
            return int(line.split()[0].split("=")[1])
    return None


def test_statefulset_of_safekeepers(dc):
    ns = "sk"
    dc.namespace(ns)
    keys(dc, ns)
    dc.kubectl("apply", "-f", "-", input=safekeeper_set(dc.image, ns))

    # Ordered start: whenever sk-N exists, sk-0..N-1 are ready.
    seen = set()

    def all_ready():
        pods = {p["metadata"]["name"]: p for p in dc.pods(ns, "app=sk")}
        for name in pods:
            i = int(name.rsplit("-", 1)[1])
            if name not in seen:
                seen.add(name)
                for j in range(i):
                    assert f"sk-{j}" in pods and ready(pods[f"sk-{j}"]), \
                        f"{name} created before sk-{j} was ready"
        return len(pods) == 3 and all(ready(p) for p in pods.values())

    wait_for(all_ready, what="3 ready safekeepers", interval=0.2)
    dc.kubectl("-n", ns, "rollout", "status", "statefulset/sk", "--timeout=120s")
    pods = {p["metadata"]["name"]: p for p in dc.pods(ns, "app=sk")}
    assert sorted(pods) == ["sk-0", "sk-1", "sk-2"]
    for name, p in pods.items():
        assert p["spec"]["hostname"] == name and p["spec"]["subdomain"] == "sk"
        assert p["status"]["podIP"].startswith("10.88.")
        types = {c["type"]: c["status"] for c in p["status"]["conditions"]}
        assert types["PodScheduled"] == types["Initialized"] == types["ContainersReady"] == "True"
    claims = json.loads(dc.kubectl("-n", ns, "get", "pvc", "-o", "json"))["items"]
    assert sorted(c["metadata"]["name"] for c in claims) == ["data-sk-0", "data-sk-1", "data-sk-2"]
    assert all(c["status"]["phase"] == "Bound" for c in claims)

    # kubectl logs: the container's own output; -f streams it (until kubectl
    # is stopped: the log never ends while the safekeeper runs).
    assert boots(dc, ns, "sk-0") == 1
    assert "safekeeper started id=sk-0" in dc.kubectl("-n", ns, "logs", "sk-0")
    follow = subprocess.Popen([KUBECTL, "-n", ns, "logs", "-f", "sk-0"], env=dc.env, stdout=subprocess.PIPE,
                              text=True)
    try:
        first = follow.stdout.readline()
        assert first.startswith("boots=1"), first
    finally:
        follow.kill()
        follow.wait()

    # Every safekeeper by its DNS name from another pod, plus the Service
    # name and the API server (KUBERNETES_SERVICE_HOST/PORT, token, ca.crt).
    check = " ".join(
        f'exec 3<>/dev/tcp/sk-{i}.sk.{ns}.svc.cluster.local/7676 && '
        f'printf "GET /healthz HTTP/1.0\\r\\n\\r\\n" >&3 && echo "sk-{i}: $(head -1 <&3)";'
        for i in range(3))
    check += (' getent hosts sk.sk.svc.cluster.local | wc -l | sed "s/^/service-addresses: /";'
              ' exec 4<>/dev/tcp/$KUBERNETES_SERVICE_HOST/$KUBERNETES_SERVICE_PORT && echo api: reachable;'
              ' d=/var/run/secrets/kubernetes.io/serviceaccount;'
              ' echo "namespace: $(cat $d/namespace)"; grep -c "BEGIN CERTIFICATE" $d/ca.crt | sed "s/^/ca: /";'
              ' test -s $d/token && echo token: present')
    client = {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "client", "namespace": ns},
        "spec": {"restartPolicy": "Never",
                 "containers": [{"name": "c", "image": "docker.io/library/debian:bookworm-slim",
                                 "command": ["bash", "-c", check]}]},
    }
    dc.kubectl("apply", "-f", "-", input=json.dumps(client))
    wait_for(lambda: (dc.get(ns, "pod/client") or {}).get("status", {}).get("phase") in ("Succeeded", "Failed"),
             what="client pod to finish")
    out = dc.kubectl("-n", ns, "logs", "client")
    for i in range(3):
        assert f"sk-{i}: HTTP/1.1 200 OK" in out, out
    assert "service-addresses: 3" in out, out
    assert "api: reachable" in out and f"namespace: {ns}" in out, out
    assert "ca: 1" in out and "token: present" in out, out
    assert dc.get(ns, "pod/client")["status"]["phase"] == "Succeeded"

    # What a pod's client library does with those files: TLS to
    # KUBERNETES_SERVICE_HOST:PORT verified with ca.crt (the certificate names
    # the bridge address), and the service-account token is accepted (200, or
    # 403 from RBAC; never 401).
    uid = dc.get(ns, "pod/sk-1")["metadata"]["uid"]
    sa = os.path.join(dc.dir, "node", "pods", uid, "sa")
    env = {e["name"]: e["value"] for e in dc.get(ns, "pod/sk-1")["spec"]["containers"][0].get("env", [])
           if "value" in e}
    assert "KUBERNETES_SERVICE_HOST" not in env  # set by the node, not in the spec
    with open(os.path.join(dc.dir, "port")) as f:
        port = int(f.read().strip())
    with open(os.path.join(sa, "token")) as f:
        token = f.read().strip()
    ctx = ssl.create_default_context(cafile=os.path.join(sa, "ca.crt"))
    req = urllib.request.Request(f"https://10.88.0.1:{port}/api/v1/namespaces/{ns}/pods",
                                 headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
            code = r.status
    except urllib.error.HTTPError as e:
        code = e.code
    assert code in (200, 403), code

    # A killed container is restarted, and its restartCount grows.
    before = dc.get(ns, "pod/sk-1")
    cid = before["status"]["containerStatuses"][0]["containerID"].split("://", 1)[1]
    assert before["status"]["containerStatuses"][0]["restartCount"] == 0
    podman("kill", cid)
    after = wait_for(lambda: (lambda p: p if p["status"]["containerStatuses"][0]["restartCount"] >= 1
                              and ready(p) else None)(dc.get(ns, "pod/sk-1")),
                     what="sk-1 restarted")
    last = after["status"]["containerStatuses"][0]["lastState"]["terminated"]
    assert last["exitCode"] == 137
    assert after["metadata"]["uid"] == before["metadata"]["uid"]

    # Deleting a pod: the StatefulSet recreates it under the same name, and
    # its claim's data is still there.
    old_uid = dc.get(ns, "pod/sk-0")["metadata"]["uid"]
    dc.kubectl("-n", ns, "delete", "pod", "sk-0", "--wait=true", "--timeout=120s")
    new = wait_for(lambda: (lambda p: p if p and p["metadata"]["uid"] != old_uid and ready(p) else None)(
        dc.get(ns, "pod/sk-0")), what="sk-0 recreated")
    vols = {v["name"]: v for v in new["spec"]["volumes"]}
    assert vols["data"]["persistentVolumeClaim"]["claimName"] == "data-sk-0"
    assert boots(dc, ns, "sk-0") == 2

    # Deleting the StatefulSet removes its pods (and their containers);
    # the claims stay.
    dc.kubectl("-n", ns, "delete", "statefulset", "sk", "--wait=true", "--timeout=120s")
    wait_for(lambda: dc.pods(ns, "app=sk") == [], what="the set's pods to go")
    wait_for(lambda: not any(n.startswith("sk-") for n in podman(
        "ps", "-a", "--filter", f"label=io.lakebase.devcluster={dc.cluster_id()}",
        "--filter", f"label=io.kubernetes.pod.namespace={ns}",
        "--format", '{{index .Labels "io.kubernetes.pod.name"}}').split()),
        what="the set's containers to go")
    assert len(json.loads(dc.kubectl("-n", ns, "get", "pvc", "-o", "json"))["items"]) == 3


def web(image, ns, version):
    return f"""
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web, namespace: {ns}}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers:
      - name: sk
        image: {image}
        args: ["--listen_http", "0.0.0.0:7676", "--listen_pg", "0.0.0.0:5454", "--data_dir", "/scratch",
               "--auth_public_keys", "/keys"]
        env: [{{name: VERSION, value: "{version}"}}]
        readinessProbe: {{exec: {{command: ["sh", "-c", "test -d /scratch"]}}, periodSeconds: 1}}
        volumeMounts: [{{name: scratch, mountPath: /scratch}}, {{name: keys, mountPath: /keys}}]
      volumes: [{{name: scratch, emptyDir: {{}}}}, {{name: keys, configMap: {{name: auth-keys}}}}]
---
apiVersion: v1
kind: Service
metadata: {{name: web, namespace: {ns}}}
spec:
  type: NodePort
  selector: {{app: web}}
  ports: [{{name: http, port: 80, targetPort: 7676}}]
"""


def test_statefulset_rolling_update(dc):
    ns = "roll"
    dc.namespace(ns)
    keys(dc, ns)
    dc.kubectl("apply", "-f", "-", input=safekeeper_set(dc.image, ns, replicas=2))
    dc.kubectl("-n", ns, "rollout", "status", "statefulset/sk", "--timeout=180s")
    before = {p["metadata"]["name"]: p["metadata"]["uid"] for p in dc.pods(ns, "app=sk")}
    dc.kubectl("apply", "-f", "-", input=safekeeper_set(dc.image, ns, replicas=2, version="2"))
    dc.kubectl("-n", ns, "rollout", "status", "statefulset/sk", "--timeout=180s")
    sts = dc.get(ns, "statefulset/sk")
    assert sts["status"]["currentRevision"] == sts["status"]["updateRevision"]
    pods = {p["metadata"]["name"]: p for p in dc.pods(ns, "app=sk")}
    assert sorted(pods) == ["sk-0", "sk-1"]
    for name, p in pods.items():
        assert p["metadata"]["uid"] != before[name]  # replaced
        assert p["metadata"]["labels"]["controller-revision-hash"] == sts["status"]["updateRevision"]
        assert {"name": "VERSION", "value": "2"} in p["spec"]["containers"][0]["env"]
    # highest ordinal first
    assert pods["sk-1"]["metadata"]["creationTimestamp"] <= pods["sk-0"]["metadata"]["creationTimestamp"]
    assert boots(dc, ns, "sk-0") == 2  # same claim across the update
    dc.kubectl("delete", "namespace", ns, "--wait=false")


def test_deployment_rolls_out_and_node_port_reaches_it(dc):
    ns = "web"
    dc.namespace(ns)
    keys(dc, ns)
    dc.kubectl("apply", "-f", "-", input=web(dc.image, ns, "1"))
    dc.kubectl("-n", ns, "rollout", "status", "deployment/web", "--timeout=180s")
    first = {p["metadata"]["name"] for p in dc.pods(ns, "app=web")}
    assert len(first) == 2

    # A changed template (kubectl apply: a strategic merge patch) rolls out
    # new pods and retires the old ones.
    dc.kubectl("apply", "-f", "-", input=web(dc.image, ns, "2"))
    dc.kubectl("-n", ns, "rollout", "status", "deployment/web", "--timeout=180s")
    wait_for(lambda: len([p for p in dc.pods(ns, "app=web") if not p["metadata"].get("deletionTimestamp")]) == 2,
             what="old pods to go")
    pods = [p for p in dc.pods(ns, "app=web") if not p["metadata"].get("deletionTimestamp")]
    assert not first & {p["metadata"]["name"] for p in pods}
    for p in pods:
        env = p["spec"]["containers"][0]["env"]
        assert env == [{"name": "VERSION", "value": "2"}]
    sets = json.loads(dc.kubectl("-n", ns, "get", "replicasets", "-o", "json"))["items"]
    assert sorted(rs["spec"]["replicas"] for rs in sets) == [0, 2]

    # The NodePort service answers on 127.0.0.1 of the host.
    svc = wait_for(lambda: (lambda s: s if s["spec"]["ports"][0].get("nodePort") else None)(
        dc.get(ns, "service/web")), what="a node port")
    port = svc["spec"]["ports"][0]["nodePort"]

    def answers():
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
                return r.status == 200
        except OSError:
            return False

    wait_for(answers, what=f"127.0.0.1:{port} to answer")


def test_bad_pods_wait_with_reasons(dc):
    ns = "bad"
    dc.namespace(ns)
    pods = [
        {"name": "no-secret", "image": dc.image,
         "env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "missing", "key": "k"}}}],
         "want": "CreateContainerConfigError"},
        {"name": "no-image", "image": "localhost/lakebase/does-not-exist:1", "want": "ErrImageNeverPull"},
        {"name": "root", "image": "docker.io/library/debian:bookworm-slim",
         "securityContext": {"runAsNonRoot": True}, "want": "CreateContainerConfigError"},
        {"name": "crash", "image": "docker.io/library/debian:bookworm-slim", "command": ["false"],
         "want": "CrashLoopBackOff"},
    ]
    for p in pods:
        c = {"name": "c", "image": p["image"], "command": p.get("command", ["sleep", "600"])}
        for k in ("env", "securityContext"):
            if k in p:
                c[k] = p[k]
        dc.kubectl("apply", "-f", "-", input=json.dumps({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": p["name"], "namespace": ns},
            "spec": {"containers": [c]}}))
    for p in pods:
        def reason():
            st = (dc.get(ns, f"pod/{p['name']}") or {}).get("status", {}).get("containerStatuses") or [{}]
            return st[0].get("state", {}).get("waiting", {}).get("reason") == p["want"]
        wait_for(reason, what=f"{p['name']} waiting with {p['want']}")
    crash = dc.get(ns, "pod/crash")["status"]["containerStatuses"][0]
    assert crash["restartCount"] >= 1 and crash["lastState"]["terminated"]["exitCode"] == 1
    # A missing secret that appears later is picked up.
    dc.kubectl("apply", "-f", "-", input=json.dumps({
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "missing", "namespace": ns},
        "data": {"k": "dg=="}}))
    wait_for(lambda: ready(dc.get(ns, "pod/no-secret")), what="no-secret to start once its secret exists")
    dc.kubectl("delete", "namespace", ns, "--wait=false")


def test_init_containers_run_first_and_share_volumes(dc):
    ns = "init"
    dc.namespace(ns)
    image = "docker.io/library/debian:bookworm-slim"
    dc.kubectl("apply", "-f", "-", input=json.dumps({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "staged", "namespace": ns,
                                                        "labels": {"tier": "db"}},
        "spec": {
            "restartPolicy": "Never",
            "volumes": [{"name": "work", "emptyDir": {}},
                        {"name": "info", "downwardAPI": {"items": [
                            {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]}}],
            "initContainers": [
                {"name": "first", "image": image, "command": ["sh", "-c", "echo one > /work/steps"],
                 "volumeMounts": [{"name": "work", "mountPath": "/work"}]},
                {"name": "second", "image": image, "command": ["sh", "-c", "echo two >> /work/steps"],
                 "volumeMounts": [{"name": "work", "mountPath": "/work"}]}],
            "containers": [
                {"name": "main", "image": image,
                 "command": ["sh", "-c", "cat /work/steps /info/labels; echo; echo ip=$POD_IP"],
                 "env": [{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
                 "securityContext": {"readOnlyRootFilesystem": True},
                 "volumeMounts": [{"name": "work", "mountPath": "/work"},
                                  {"name": "info", "mountPath": "/info"}]}]}}))
    p = wait_for(lambda: (lambda p: p if p and p["status"].get("phase") in ("Succeeded", "Failed") else None)(
        dc.get(ns, "pod/staged")), what="the pod to finish")
    assert p["status"]["phase"] == "Succeeded", p["status"]
    conds = {c["type"]: c["status"] for c in p["status"]["conditions"]}
    assert conds["Initialized"] == "True"
    assert [s["state"]["terminated"]["exitCode"] for s in p["status"]["initContainerStatuses"]] == [0, 0]
    out = dc.kubectl("-n", ns, "logs", "staged", "-c", "main")
    assert "one\ntwo\n" in out and 'tier="db"' in out, out
    assert f"ip={p['status']['podIP']}" in out, out
    dc.kubectl("delete", "namespace", ns, "--wait=false")


def test_liveness_failure_restarts_the_container(dc):
    ns = "live"
    dc.namespace(ns)
    # alive for a few seconds, then the probe's file goes; the shell is PID 1
    # and ignores SIGTERM, so the stop ends with SIGKILL after the grace period
    script = "touch /tmp/alive; sleep 3; rm /tmp/alive; while true; do sleep 1; done"
    dc.kubectl("apply", "-f", "-", input=json.dumps({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "flaky", "namespace": ns},
        "spec": {"terminationGracePeriodSeconds": 2, "containers": [{
            "name": "c", "image": "docker.io/library/debian:bookworm-slim", "command": ["sh", "-c", script],
            "livenessProbe": {"exec": {"command": ["test", "-f", "/tmp/alive"]}, "periodSeconds": 1,
                              "failureThreshold": 2}}]}}))

    def restarted():
        st = ((dc.get(ns, "pod/flaky") or {}).get("status", {}).get("containerStatuses") or [{}])[0]
        return st if st.get("restartCount", 0) >= 1 and st.get("lastState", {}).get("terminated") else None

    st = wait_for(restarted, what="the container restarted by its liveness probe")
    assert st["lastState"]["terminated"]["exitCode"] == 137
    dc.kubectl("delete", "namespace", ns, "--wait=false")


def test_down_stops_every_container_and_up_finds_them(dc):
    ns = "again"
    dc.namespace(ns)
    keys(dc, ns)
    dc.kubectl("apply", "-f", "-", input=safekeeper_set(dc.image, ns, replicas=1))
    wait_for(lambda: (lambda p: p and ready(p))(dc.get(ns, "pod/sk-0")), what="sk-0 ready")
    assert boots(dc, ns, "sk-0") == 1
    uid = dc.get(ns, "pod/sk-0")["metadata"]["uid"]
    assert dc.containers(), "no containers before down"
    dc.run("down")
    assert dc.containers() == []
    dc.run("up")
    p = wait_for(lambda: (lambda p: p if p and ready(p) else None)(dc.get(ns, "pod/sk-0")), what="sk-0 back")
    assert p["metadata"]["uid"] == uid  # the same object, found again
    assert boots(dc, ns, "sk-0") == 2  # and the same claim


def test_down_after_kill_9_removes_the_containers(dc):
    ns = "again"  # sk-0 of the test above runs here
    wait_for(lambda: (lambda p: p and ready(p))(dc.get(ns, "pod/sk-0")), what="sk-0 ready")
    with open(os.path.join(dc.dir, "devcluster.pid")) as f:
        pid = int(f.read().strip())
    os.kill(pid, 9)
    wait_for(lambda: not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z",
             what="devcluster to die")
    assert dc.containers(), "the containers should outlive a kill -9"
    dc.run("down")
    assert dc.containers() == []
    dc.run("up")  # for the module's teardown
