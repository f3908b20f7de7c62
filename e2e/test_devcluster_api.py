"""devcluster's API server against the real kubectl 1.32 and helm 3.17.

Each test starts `devcluster serve --components none` (the API server
alone) in its own temporary directory on a free port, and stops it by its
pid. kubectl and helm come from build/tools (make deps); they get their own
HOME so that no discovery cache is shared between tests. Semantics that
kubectl does not expose directly are driven over HTTPS with the admin token
(or a service account's token for RBAC), the way a controller would.
"""
import http.client
import json
import os
import signal
import ssl
import subprocess
import sys
import threading
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lakebase import BIN, ROOT, free_port, wait_for  # noqa: E402

TOOLS = os.path.join(ROOT, "build", "tools")
KUBECTL = os.path.join(TOOLS, "kubectl")
HELM = os.path.join(TOOLS, "helm")
DEVCLUSTER = os.path.join(BIN, "devcluster")

pytestmark = pytest.mark.skipif(not os.path.exists(KUBECTL) or not os.path.exists(HELM),
                                reason="kubectl/helm not in build/tools; run make deps")


class Api:
    """One `devcluster serve` and clients for it."""

    def __init__(self, workdir, *args):
        self.workdir = workdir
        self.dir = os.path.join(workdir, "dc")
        self.home = os.path.join(workdir, "home")
        os.makedirs(self.home, exist_ok=True)
        self.port = free_port()
        self.args = list(args)
        self.proc = None
        self.start()

    def start(self):
        self.log = open(os.path.join(self.workdir, "devcluster.log"), "ab")
        self.proc = subprocess.Popen(
            [DEVCLUSTER, "serve", "--data_dir", self.dir, "--port", str(self.port),
             "--components", "none"] + self.args,
            stdout=self.log, stderr=self.log)
        wait_for(lambda: os.path.exists(os.path.join(self.dir, "kubeconfig")) and self._healthy(),
                 timeout=30, what="devcluster to serve")
        with open(os.path.join(self.dir, "admin.token")) as f:
            self.token = f.read().strip()
        self.kubeconfig = os.path.join(self.dir, "kubeconfig")

    def _healthy(self):
        if self.proc.poll() is not None:
            raise RuntimeError("devcluster exited")
        st, _ = self.request("GET", "/healthz", token=None)
        return st == 200

    def stop(self, sig=signal.SIGTERM):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()

    def conn(self, timeout=20):
        ctx = ssl.create_default_context(cafile=os.path.join(self.dir, "ca.crt"))
        return http.client.HTTPSConnection("127.0.0.1", self.port, context=ctx, timeout=timeout)

    def request(self, method, path, body=None, token="admin", content_type="application/json",
                headers=None):
        c = self.conn()
        h = dict(headers or {})
        if token == "admin":
            token = getattr(self, "token", None)
        if token:
            h["Authorization"] = "Bearer " + token
        if body is not None:
            if not isinstance(body, (bytes, str)):
                body = json.dumps(body)
            h["Content-Type"] = content_type
        c.request(method, path, body=body, headers=h)
        r = c.getresponse()
        raw = r.read()
        c.close()
        try:
            return r.status, json.loads(raw)
        except ValueError:
            return r.status, raw

    def watch(self, path, token="admin"):
        """An open watch: returns (connection, response); read events with next_event."""
        c = self.conn(timeout=30)
        c.request("GET", path, headers={"Authorization": "Bearer " + (self.token if token == "admin"
                                                                       else token)})
        return c, c.getresponse()

    def kubectl(self, *args, check=True, input=None, timeout=60):
        env = dict(os.environ, KUBECONFIG=self.kubeconfig, HOME=self.home)
        r = subprocess.run([KUBECTL] + list(args), capture_output=True, text=True, env=env,
                           input=input, timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {r.stderr}")
        return r

    def kubectl_bg(self, *args):
        env = dict(os.environ, KUBECONFIG=self.kubeconfig, HOME=self.home)
        return subprocess.Popen([KUBECTL] + list(args), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=env)

    def helm(self, *args, check=True):
        env = dict(os.environ, KUBECONFIG=self.kubeconfig, HOME=self.home,
                   HELM_CACHE_HOME=os.path.join(self.home, "hc"),
                   HELM_CONFIG_HOME=os.path.join(self.home, "hcfg"),
                   HELM_DATA_HOME=os.path.join(self.home, "hd"))
        r = subprocess.run([HELM] + list(args), capture_output=True, text=True, env=env, timeout=120)
        if check and r.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)} failed: {r.stderr}")
        return r


def next_event(resp):
    line = resp.readline()
    if not line:
        return None
    return json.loads(line)


@pytest.fixture
def api(workdir):
    a = Api(workdir)
    yield a
    a.stop()


CRD = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget, shortNames: [wd]}
  versions:
  - name: v1
    served: true
    storage: true
    subresources:
      status: {}
      scale: {specReplicasPath: .spec.replicas, statusReplicasPath: .status.replicas}
    additionalPrinterColumns:
    - {name: Size, type: integer, jsonPath: .spec.size}
    - {name: Ready, type: string, jsonPath: '.status.conditions[?(@.type=="Ready")].status'}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [size]
            properties:
              size: {type: integer, minimum: 1, maximum: 5}
              mode: {type: string, enum: [fast, slow], default: fast}
              name: {type: string, pattern: '^[a-z]+$'}
              replicas: {type: integer}
              extra: {type: object, x-kubernetes-preserve-unknown-fields: true}
          status:
            type: object
            properties:
              replicas: {type: integer}
              conditions:
                type: array
                items:
                  type: object
                  properties:
                    type: {type: string}
                    status: {type: string}
"""

WIDGETS = "/apis/example.com/v1/namespaces/default/widgets"


def make_crd(api):
    api.kubectl("apply", "-f", "-", input=CRD)
    api.kubectl("wait", "--for=condition=established", "crd/widgets.example.com", "--timeout=30s")


def widget(wname, size=2, **spec):
    spec = dict(spec, size=size)
    return {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": wname},
            "spec": spec}


def cm(name, data=None, **meta):
    m = dict(meta, name=name)
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": m, "data": data or {"k": "v"}}


CMS = "/api/v1/namespaces/default/configmaps"


# ---- kubectl ----

def test_kubectl_get_namespaces(api):
    out = api.kubectl("get", "ns").stdout
    for ns in ("default", "kube-system", "kube-public"):
        assert ns in out
    v = api.kubectl("version", "-o", "json").stdout
    assert json.loads(v)["serverVersion"]["minor"] == "32"


def test_aggregated_discovery_lists_builtins_and_crds(api):
    make_crd(api)
    accept = ("application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,"
              "application/json")
    c = api.conn()
    c.request("GET", "/apis", headers={"Authorization": "Bearer " + api.token, "Accept": accept})
    r = c.getresponse()
    doc = json.loads(r.read())
    c.close()
    assert r.getheader("Content-Type") == \
        "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
    groups = {g["metadata"]["name"]: g for g in doc["items"]}
    apps = {res["resource"]: res for res in groups["apps"]["versions"][0]["resources"]}
    assert {s["subresource"] for s in apps["deployments"]["subresources"]} == {"status", "scale"}
    assert apps["deployments"]["scope"] == "Namespaced"
    w = groups["example.com"]["versions"][0]["resources"][0]
    assert w["resource"] == "widgets" and w["shortNames"] == ["wd"]
    assert w["responseKind"] == {"group": "example.com", "version": "v1", "kind": "Widget"}
    # the legacy form is still what a plain Accept gets
    st, legacy = api.request("GET", "/apis")
    assert legacy["kind"] == "APIGroupList"


def test_metrics_and_health_answer_without_a_token(api):
    api.request("GET", CMS)
    api.request("GET", CMS + "/nope")
    assert api.request("GET", "/healthz", token=None)[0] == 200
    st, text = api.request("GET", "/metrics", token=None)
    assert st == 200
    text = text.decode()
    assert 'apiserver_request_total{verb="list",resource="configmaps",code="200"}' in text
    assert 'apiserver_request_total{verb="get",resource="configmaps",code="404"}' in text
    assert "devcluster_resource_version " in text


def test_crd_then_custom_resource_table_yaml(api):
    make_crd(api)
    api.kubectl("apply", "-f", "-", input=json.dumps(widget("w1", size=3)))
    out = api.kubectl("get", "widgets").stdout.splitlines()
    assert out[0].split() == ["NAME", "SIZE", "READY", "AGE"]
    assert out[1].split()[:2] == ["w1", "3"]
    y = api.kubectl("get", "wd", "w1", "-o", "json").stdout
    obj = json.loads(y)
    assert obj["spec"]["mode"] == "fast", "schema default applied"
    assert obj["metadata"]["generation"] == 1
    # -o yaml works too
    assert "mode: fast" in api.kubectl("get", "wd", "w1", "-o", "yaml").stdout


def test_deleting_a_crd_removes_its_objects_and_its_api(api):
    make_crd(api)
    api.request("POST", WIDGETS, widget("w1"))
    api.kubectl("delete", "crd", "widgets.example.com")
    st, _ = api.request("GET", WIDGETS)
    assert st == 404
    st, groups = api.request("GET", "/apis")
    assert "example.com" not in [g["name"] for g in groups["groups"]]
    # a new definition starts empty
    make_crd(api)
    st, l = api.request("GET", WIDGETS)
    assert st == 200 and l["items"] == []


def test_schema_violations_are_422_naming_the_field(api):
    make_crd(api)
    bad = widget("w2", size=9, mode="medium", name="ABC")
    st, body = api.request("POST", WIDGETS, bad)
    assert st == 422
    assert body["reason"] == "Invalid"
    fields = sorted(c["field"] for c in body["details"]["causes"])
    assert fields == ["spec.mode", "spec.name", "spec.size"]
    assert "spec.size: Invalid value: 9: spec.size in body should be less than or equal to 5" \
        in body["message"]
    assert 'spec.mode: Unsupported value: "medium": supported values: "fast", "slow"' \
        in body["message"]
    # required, and type
    st, body = api.request("POST", WIDGETS, {"apiVersion": "example.com/v1", "kind": "Widget",
                                             "metadata": {"name": "w3"},
                                             "spec": {"size": "big"}})
    assert st == 422
    assert 'spec.size: Invalid value: "string": spec.size in body must be of type integer' \
        in body["message"]
    st, body = api.request("POST", WIDGETS, {"apiVersion": "example.com/v1", "kind": "Widget",
                                             "metadata": {"name": "w3"}, "spec": {}})
    assert st == 422 and "spec.size: Required value" in body["message"]
    # unknown fields are pruned, or refused with fieldValidation=Strict (what kubectl sends)
    st, body = api.request("POST", WIDGETS, widget("w4", bogus=1, extra={"free": {"x": 1}}))
    assert st == 201 and "bogus" not in body["spec"] and body["spec"]["extra"] == {"free": {"x": 1}}
    r = api.kubectl("apply", "-f", "-", input=json.dumps(widget("w5", bogus=1)), check=False)
    assert r.returncode != 0 and 'unknown field "spec.bogus"' in r.stderr
    # a pattern Go's regexp refuses (and that would cost glibc gigabytes) refuses the CRD
    bad = CRD.replace("widgets", "gadgets").replace("Widget", "Gadget").replace(
        "widget", "gadget").replace("shortNames: [wd]", "shortNames: [gd]").replace(
        "'^[a-z]+$'", "'^(k++)+$'")
    r = api.kubectl("apply", "-f", "-", input=bad, check=False)
    assert r.returncode != 0 and "must be a valid regular expression" in r.stderr, r.stderr


def test_kubectl_get_watch_sees_changes(api):
    make_crd(api)
    api.kubectl("apply", "-f", "-", input=json.dumps(widget("w1", size=1)))
    p = api.kubectl_bg("get", "widgets", "-w", "--output-watch-events")
    try:
        wait_for(lambda: api.request("GET", WIDGETS + "/w1")[0] == 200)
        time.sleep(0.5)
        api.kubectl("patch", "widget", "w1", "--type=merge", "-p", '{"spec":{"size":4}}')
        lines = []

        def read():
            for line in p.stdout:
                lines.append(line)
                if "MODIFIED" in line:
                    return
        t = threading.Thread(target=read, daemon=True)
        t.start()
        t.join(30)
        assert any(line.split()[:3] == ["MODIFIED", "w1", "4"] for line in lines), lines
    finally:
        p.kill()
        p.wait()


def test_kubectl_wait_for_condition_set_through_status(api):
    make_crd(api)
    api.kubectl("apply", "-f", "-", input=json.dumps(widget("w1")))
    p = api.kubectl_bg("wait", "--for=condition=Ready", "widget/w1", "--timeout=60s")
    time.sleep(1)
    assert p.poll() is None, "wait returned before the condition was set"
    api.kubectl("patch", "widget", "w1", "--subresource=status", "--type=merge", "-p",
                '{"status":{"conditions":[{"type":"Ready","status":"True"}]}}')
    assert p.wait(timeout=30) == 0
    assert "condition met" in p.stdout.read()
    out = api.kubectl("get", "widget", "w1").stdout.splitlines()[1].split()
    assert out[2] == "True", "printer column from the status"


def test_delete_waits_for_finalizer_a_client_removes(api):
    make_crd(api)
    w = widget("w1")
    w["metadata"]["finalizers"] = ["example.com/cleanup"]
    api.kubectl("apply", "-f", "-", input=json.dumps(w))
    p = api.kubectl_bg("delete", "widget", "w1", "--timeout=60s")
    obj = wait_for(lambda: (lambda s: s[1] if s[0] == 200 and
                            s[1]["metadata"].get("deletionTimestamp") else None)(
        api.request("GET", WIDGETS + "/w1")), what="deletionTimestamp")
    time.sleep(0.5)
    assert p.poll() is None, "kubectl delete returned while a finalizer remains"
    # a finalizer cannot be added once deletion started
    st, body = api.request("PATCH", WIDGETS + "/w1",
                           {"metadata": {"finalizers": ["example.com/cleanup", "x/y"]}},
                           content_type="application/merge-patch+json")
    assert st == 422, body
    api.kubectl("patch", "widget", "w1", "--type=json", "-p",
                '[{"op":"remove","path":"/metadata/finalizers"}]')
    assert p.wait(timeout=30) == 0
    assert api.request("GET", WIDGETS + "/w1")[0] == 404
    assert obj["metadata"]["finalizers"] == ["example.com/cleanup"]


DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: example/web:1
        env:
        - {name: A, value: "1"}
        ports:
        - containerPort: 80
      - name: sidecar
        image: example/sidecar:1
"""


def test_kubectl_apply_changed_deployment_strategic_merge(api):
    api.kubectl("apply", "-f", "-", input=DEPLOYMENT)
    # another client adds an env var to one container by strategic merge patch
    api.kubectl("patch", "deployment", "web", "-p",
                '{"spec":{"template":{"spec":{"containers":[{"name":"web","env":'
                '[{"name":"B","value":"x"}]}]}}}}')
    d = json.loads(api.kubectl("get", "deploy", "web", "-o", "json").stdout)
    ctrs = {c["name"]: c for c in d["spec"]["template"]["spec"]["containers"]}
    assert set(ctrs) == {"web", "sidecar"}, "merged by name, not replaced"
    assert ctrs["web"]["image"] == "example/web:1"
    assert [e["name"] for e in ctrs["web"]["env"]] == ["A", "B"]
    assert d["metadata"]["generation"] == 2
    # the changed manifest: new image for web, env A changed, sidecar dropped
    changed = DEPLOYMENT.replace("example/web:1", "example/web:2").replace('"1"', '"2"')
    changed = changed[:changed.index("      - name: sidecar")]
    api.kubectl("apply", "-f", "-", input=changed)
    d = json.loads(api.kubectl("get", "deploy", "web", "-o", "json").stdout)
    ctrs = {c["name"]: c for c in d["spec"]["template"]["spec"]["containers"]}
    assert set(ctrs) == {"web"}, "apply deletes what the last applied configuration had"
    assert ctrs["web"]["image"] == "example/web:2"
    env = {e["name"]: e["value"] for e in ctrs["web"]["env"]}
    assert env == {"A": "2", "B": "x"}, "B was never applied, so apply keeps it"
    assert d["metadata"]["generation"] == 3
    # scale goes through the scale subresource and bumps generation
    api.kubectl("scale", "deployment", "web", "--replicas=5")
    d = json.loads(api.kubectl("get", "deploy", "web", "-o", "json").stdout)
    assert d["spec"]["replicas"] == 5 and d["metadata"]["generation"] == 4


def test_kubectl_create_commands_send_protobuf(api):
    """kubectl's typed create commands send protobuf bodies (client-go 1.32)."""
    api.kubectl("create", "deployment", "d1", "--image=example/app:1", "--port=80",
                "--replicas=2")
    d = json.loads(api.kubectl("get", "deploy", "d1", "-o", "json").stdout)
    assert d["spec"]["replicas"] == 2 and d["metadata"]["labels"] == {"app": "d1"}
    c = d["spec"]["template"]["spec"]["containers"][0]
    assert c["image"] == "example/app:1" and c["ports"][0]["containerPort"] == 80
    assert d["spec"]["strategy"]["type"] == "RollingUpdate" and "stdin" not in c
    api.kubectl("create", "secret", "generic", "s1", "--from-literal=pw=hunter2")
    s = json.loads(api.kubectl("get", "secret", "s1", "-o", "json").stdout)
    assert s["data"] == {"pw": "aHVudGVyMg=="} and s["type"] == "Opaque"
    api.kubectl("create", "namespace", "n1")
    api.kubectl("create", "serviceaccount", "sa1", "-n", "n1")
    api.kubectl("create", "service", "clusterip", "svc1", "--tcp=80:8080")
    svc = json.loads(api.kubectl("get", "svc", "svc1", "-o", "json").stdout)
    assert svc["spec"]["ports"][0]["targetPort"] == 8080 and svc["spec"]["clusterIP"]
    # a kind this server does not decode from protobuf is refused, never half-stored
    r = api.kubectl("create", "job", "j1", "--image=x", check=False)
    assert r.returncode != 0 and "send" in r.stderr and "JSON" in r.stderr
    assert api.request("GET", "/apis/batch/v1/namespaces/default/jobs/j1")[0] == 404


def test_server_side_apply_creates_then_updates(api):
    manifest = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ssa}\ndata: {a: '1'}\n"
    api.kubectl("apply", "--server-side", "-f", "-", input=manifest)
    api.kubectl("apply", "--server-side", "-f", "-", input=manifest.replace("'1'", "'2'"))
    assert json.loads(api.kubectl("get", "cm", "ssa", "-o", "json").stdout)["data"] == {"a": "2"}


def test_unknown_fields_of_builtin_kinds(api):
    # a typo is refused with kubectl's default validation (fieldValidation=Strict)
    typo = DEPLOYMENT.replace("replicas: 2", "replica: 2").replace("image: example/web:1",
                                                                   "imagee: example/web:1")
    r = api.kubectl("apply", "-f", "-", input=typo, check=False)
    assert r.returncode != 0
    assert "strict decoding error: " in r.stderr
    assert 'unknown field "spec.template.spec.containers[0].imagee"' in r.stderr
    assert 'unknown field "spec.replica"' in r.stderr
    # without it (helm, controllers) the object is taken, with a warning
    r = api.kubectl("apply", "--validate=warn", "-f", "-", input=typo)
    assert 'Warning: unknown field "spec.replica"' in r.stderr
    # a realistic set of manifests (probes, projected volumes, affinity, claim
    # templates, a PDB, a NetworkPolicy, a CronJob, an Ingress) has no false alarm
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)),
                           "devcluster_manifests.yaml")) as f:
        r = api.kubectl("apply", "-f", "-", input=f.read())
    assert "Warning" not in r.stderr, r.stderr


def test_defaults_apply_on_create_and_on_every_update(api):
    api.kubectl("apply", "-f", "-", input=DEPLOYMENT)
    st, d = api.request("GET", "/apis/apps/v1/namespaces/default/deployments/web")
    web = d["spec"]["template"]["spec"]["containers"][0]
    assert web["ports"][0]["protocol"] == "TCP" and web["imagePullPolicy"] == "IfNotPresent"
    assert d["spec"]["strategy"]["type"] == "RollingUpdate"
    # a PUT of a manifest without them gets them again, and that is no spec change
    bare = {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "resourceVersion": d["metadata"]["resourceVersion"]},
            "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "example/web:1",
                                         "env": [{"name": "A", "value": "1"}],
                                         "ports": [{"containerPort": 80}]},
                                        {"name": "sidecar", "image": "example/sidecar:1"}]}}}}
    st, d2 = api.request("PUT", "/apis/apps/v1/namespaces/default/deployments/web", bare)
    assert st == 200
    assert d2["spec"]["replicas"] == 1 and d2["metadata"]["generation"] == 2
    web = d2["spec"]["template"]["spec"]["containers"][0]
    assert web["ports"][0]["protocol"] == "TCP" and web["imagePullPolicy"] == "IfNotPresent"


def test_helm_install_upgrade_list_uninstall(api, workdir):
    chart = os.path.join(workdir, "chart")
    os.makedirs(os.path.join(chart, "templates"))
    with open(os.path.join(chart, "Chart.yaml"), "w") as f:
        f.write("apiVersion: v2\nname: demo\nversion: 0.1.0\n")
    with open(os.path.join(chart, "values.yaml"), "w") as f:
        f.write("greeting: hello\n")
    with open(os.path.join(chart, "templates", "cm.yaml"), "w") as f:
        f.write("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-cfg\n"
                "data:\n  greeting: {{ .Values.greeting | quote }}\n")
    api.helm("install", "r1", chart)
    assert json.loads(api.kubectl("get", "cm", "r1-cfg", "-o", "json").stdout)["data"] == \
        {"greeting": "hello"}
    api.helm("upgrade", "r1", chart, "--set", "greeting=bye")
    assert json.loads(api.kubectl("get", "cm", "r1-cfg", "-o", "json").stdout)["data"] == \
        {"greeting": "bye"}
    releases = json.loads(api.helm("list", "-o", "json").stdout)
    assert [(r["name"], r["revision"], r["status"]) for r in releases] == [("r1", "2", "deployed")]
    # helm keeps its releases in Secrets (sent as protobuf by its typed client)
    secrets = json.loads(api.kubectl("get", "secrets", "-l", "owner=helm", "-o", "json").stdout)
    assert sorted(s["metadata"]["name"] for s in secrets["items"]) == \
        ["sh.helm.release.v1.r1.v1", "sh.helm.release.v1.r1.v2"]
    api.helm("rollback", "r1", "1")
    assert json.loads(api.kubectl("get", "cm", "r1-cfg", "-o", "json").stdout)["data"] == \
        {"greeting": "hello"}
    history = json.loads(api.helm("history", "r1", "-o", "json").stdout)
    assert [(h["revision"], h["status"]) for h in history] == \
        [(1, "superseded"), (2, "superseded"), (3, "deployed")]
    api.helm("uninstall", "r1")
    assert json.loads(api.helm("list", "-o", "json").stdout) == []
    assert api.kubectl("get", "cm", "r1-cfg", check=False).returncode != 0


# ---- semantics ----

def test_resource_version_is_global_and_conflicts_are_409(api):
    st, a = api.request("POST", CMS, cm("a"))
    assert st == 201
    st, b = api.request("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                                       "metadata": {"name": "other"}})
    assert st == 201
    assert int(b["metadata"]["resourceVersion"]) > int(a["metadata"]["resourceVersion"])
    # creating an existing name
    st, body = api.request("POST", CMS, cm("a"))
    assert st == 409 and body["reason"] == "AlreadyExists"
    assert body["message"] == 'configmaps "a" already exists'
    # a stale update
    fresh = dict(a, data={"k": "2"})
    st, updated = api.request("PUT", CMS + "/a", fresh)
    assert st == 200
    stale = dict(a, data={"k": "3"})
    st, body = api.request("PUT", CMS + "/a", stale)
    assert st == 409 and body["reason"] == "Conflict"
    assert "the object has been modified" in body["message"]
    # a write that changes nothing is no write
    st, same = api.request("PUT", CMS + "/a", updated)
    assert st == 200
    assert same["metadata"]["resourceVersion"] == updated["metadata"]["resourceVersion"]


def test_generation_counts_spec_changes_only(api):
    make_crd(api)
    st, w = api.request("POST", WIDGETS, widget("w1", size=1))
    assert w["metadata"]["generation"] == 1
    st, w = api.request("PATCH", WIDGETS + "/w1", {"metadata": {"labels": {"a": "b"}}},
                        content_type="application/merge-patch+json")
    assert st == 200 and w["metadata"]["generation"] == 1
    st, w = api.request("PATCH", WIDGETS + "/w1", {"spec": {"size": 2}},
                        content_type="application/merge-patch+json")
    assert w["metadata"]["generation"] == 2
    st, w = api.request("PATCH", WIDGETS + "/w1/status", {"status": {"replicas": 7}},
                        content_type="application/merge-patch+json")
    assert w["metadata"]["generation"] == 2 and w["status"]["replicas"] == 7


def test_status_subresource_separates_status_from_spec(api):
    make_crd(api)
    api.request("POST", WIDGETS, widget("w1", size=1))
    # status on the main resource is ignored
    st, w = api.request("GET", WIDGETS + "/w1")
    w["status"] = {"replicas": 3}
    w["spec"]["size"] = 2
    st, w = api.request("PUT", WIDGETS + "/w1", w)
    assert st == 200 and "status" not in w and w["spec"]["size"] == 2
    # spec through /status is ignored
    w["status"] = {"replicas": 3}
    w["spec"]["size"] = 5
    st, w = api.request("PUT", WIDGETS + "/w1/status", w)
    assert st == 200 and w["status"] == {"replicas": 3} and w["spec"]["size"] == 2
    # scale reads spec and status by the CRD's paths
    st, scale = api.request("GET", WIDGETS + "/w1/scale")
    assert st == 200 and scale["kind"] == "Scale" and scale["status"]["replicas"] == 3
    st, scale = api.request("PATCH", WIDGETS + "/w1/scale", {"spec": {"replicas": 4}},
                            content_type="application/merge-patch+json")
    assert st == 200
    assert api.request("GET", WIDGETS + "/w1")[1]["spec"]["replicas"] == 4


def test_watch_resumes_from_a_resource_version(api):
    st, a = api.request("POST", CMS, cm("a"))
    rv = a["metadata"]["resourceVersion"]
    api.request("POST", CMS, cm("b"))
    api.request("PUT", CMS + "/a", dict(a, data={"k": "2"}))
    api.request("DELETE", CMS + "/b")
    api.request("POST", "/api/v1/namespaces/default/secrets",
                {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}})
    c, r = api.watch(CMS + "?watch=true&resourceVersion=" + rv)
    got = [next_event(r) for _ in range(3)]
    c.close()
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in got] == \
        [("ADDED", "b"), ("MODIFIED", "a"), ("DELETED", "b")]
    rvs = [int(e["object"]["metadata"]["resourceVersion"]) for e in got]
    assert rvs == sorted(rvs) and rvs[0] > int(rv)


def test_watch_past_the_window_is_410_expired(workdir):
    api = Api(workdir, "--watch_window", "5")
    try:
        st, a = api.request("POST", CMS, cm("a"))
        old = a["metadata"]["resourceVersion"]
        st, page = api.request("GET", CMS + "?limit=1")
        assert page["metadata"].get("continue")
        for i in range(8):
            api.request("PUT", CMS + "/a", dict(a, data={"k": str(i)}, metadata=dict(
                a["metadata"], resourceVersion=None)))
        c, r = api.watch(CMS + "?watch=true&resourceVersion=" + old)
        e = next_event(r)
        c.close()
        assert e["type"] == "ERROR"
        assert e["object"]["code"] == 410 and e["object"]["reason"] == "Expired"
        # so is continuing a list whose first page is that old
        st, body = api.request("GET", CMS + "?limit=1&continue=" + page["metadata"]["continue"])
        assert st == 410 and body["reason"] == "Expired"
        # a recent one still works
        st, now = api.request("GET", CMS + "/a")
        c, r = api.watch(CMS + "?watch=true&resourceVersion=" + now["metadata"]["resourceVersion"])
        api.request("POST", CMS, cm("b"))
        e = next_event(r)
        c.close()
        assert e["type"] == "ADDED" and e["object"]["metadata"]["name"] == "b"
    finally:
        api.stop()


def test_watch_bookmarks_timeout_and_selectors(workdir):
    api = Api(workdir, "--bookmark_interval", "200ms")
    try:
        api.request("POST", CMS, cm("a", labels={"app": "x"}))
        api.request("POST", CMS, cm("b", labels={"app": "y"}))
        c, r = api.watch(CMS + "?watch=true&allowWatchBookmarks=true&labelSelector=app%3Dx"
                         "&timeoutSeconds=3")
        first = next_event(r)
        assert first["type"] == "ADDED" and first["object"]["metadata"]["name"] == "a"
        api.request("PATCH", CMS + "/b", {"data": {"k": "changed"}},
                    content_type="application/merge-patch+json")
        api.request("PATCH", CMS + "/a", {"metadata": {"labels": {"app": "z"}}},
                    content_type="application/merge-patch+json")
        events = []
        start = time.time()
        while True:
            e = next_event(r)
            if e is None:
                break
            events.append(e)
        elapsed = time.time() - start
        c.close()
        types = [e["type"] for e in events]
        # b never matched; a left the selector: DELETED; bookmarks meanwhile
        assert "DELETED" in types and "MODIFIED" not in types and "ADDED" not in types, types
        assert "BOOKMARK" in types
        bm = [e for e in events if e["type"] == "BOOKMARK"][-1]
        assert int(bm["object"]["metadata"]["resourceVersion"]) >= \
            int([e for e in events if e["type"] == "DELETED"][0]["object"]["metadata"][
                "resourceVersion"])
        assert elapsed < 10, "timeoutSeconds ended the stream"
        # field selector on a list
        st, l = api.request("GET", CMS + "?fieldSelector=metadata.name%3Db")
        assert [i["metadata"]["name"] for i in l["items"]] == ["b"]
        st, l = api.request("GET", CMS + "?labelSelector=app+in+(y,z)")
        assert sorted(i["metadata"]["name"] for i in l["items"]) == ["a", "b"]
        st, l = api.request("GET", CMS + "?labelSelector=app+in+(y")
        assert st == 400
    finally:
        api.stop()


def test_list_limit_and_continue(api):
    for i in range(7):
        api.request("POST", CMS, cm(f"c{i}"))
    names, cont, pages = [], "", 0
    while True:
        st, l = api.request("GET", CMS + "?limit=3" + (f"&continue={cont}" if cont else ""))
        assert st == 200 and len(l["items"]) <= 3
        names += [i["metadata"]["name"] for i in l["items"]]
        pages += 1
        cont = l["metadata"].get("continue")
        if not cont:
            break
    assert names == sorted(names) and set(names) >= {f"c{i}" for i in range(7)}
    assert len(names) == len(set(names)) and pages >= 3
    # a change behind the cursor is not on the pages, but every page carries the
    # first page's resourceVersion, so a watch from it delivers the change
    st, first = api.request("GET", CMS + "?limit=3")
    api.request("POST", CMS, cm("a-behind"))
    st, second = api.request("GET", CMS + "?limit=3&continue=" + first["metadata"]["continue"])
    assert second["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]
    assert "a-behind" not in [i["metadata"]["name"] for i in second["items"]]
    c, r = api.watch(CMS + "?watch=true&resourceVersion=" + first["metadata"]["resourceVersion"])
    e = next_event(r)
    c.close()
    assert e["type"] == "ADDED" and e["object"]["metadata"]["name"] == "a-behind"
    st, body = api.request("GET", CMS + "?limit=3&continue=bm90IGpzb24=")
    assert st == 400


def owned(name, owner, **extra):
    o = cm(name)
    o["metadata"]["ownerReferences"] = [dict({"apiVersion": "v1", "kind": "ConfigMap",
                                              "name": owner["metadata"]["name"],
                                              "uid": owner["metadata"]["uid"]}, **extra)]
    return o


def test_garbage_collection_background_foreground_orphan(api):
    gone = lambda n: api.request("GET", CMS + "/" + n)[0] == 404  # noqa: E731
    # background: the owner goes at once, its dependent after
    st, o = api.request("POST", CMS, cm("owner1"))
    api.request("POST", CMS, owned("dep1", o))
    assert api.request("DELETE", CMS + "/owner1")[0] == 200
    wait_for(lambda: gone("dep1"), what="dependent collected")
    # foreground: the owner waits, marked, until its dependents are gone
    st, o = api.request("POST", CMS, cm("owner2"))
    dep = owned("dep2", o, blockOwnerDeletion=True)
    dep["metadata"]["finalizers"] = ["example.com/hold"]
    api.request("POST", CMS, dep)
    st, body = api.request("DELETE", CMS + "/owner2", {"propagationPolicy": "Foreground"})
    assert st in (200, 202) and "foregroundDeletion" in body["metadata"]["finalizers"]
    wait_for(lambda: api.request("GET", CMS + "/dep2")[1]["metadata"].get("deletionTimestamp"),
             what="dependent marked")
    assert not gone("owner2"), "owner must wait for its dependent"
    api.request("PATCH", CMS + "/dep2", {"metadata": {"finalizers": None}},
                content_type="application/merge-patch+json")
    wait_for(lambda: gone("dep2") and gone("owner2"), what="foreground deletion to finish")
    # orphan: the dependent stays, without its reference
    st, o = api.request("POST", CMS, cm("owner3"))
    api.request("POST", CMS, owned("dep3", o))
    api.request("DELETE", CMS + "/owner3?propagationPolicy=Orphan")
    wait_for(lambda: gone("owner3"), what="orphaning owner deleted")
    st, d = api.request("GET", CMS + "/dep3")
    assert st == 200 and "ownerReferences" not in d["metadata"]


def test_pod_deletion_is_graceful_once_bound_to_a_node(api):
    pods = "/api/v1/namespaces/default/pods"
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
           "spec": {"containers": [{"name": "c", "image": "x"}]}}
    st, p = api.request("POST", pods, pod)
    assert st == 201 and p["status"]["phase"] == "Pending"
    assert api.request("DELETE", pods + "/p")[0] == 200
    assert api.request("GET", pods + "/p")[0] == 404, "an unbound pod goes at once"
    pod["spec"]["nodeName"] = "node-1"
    st, p = api.request("POST", pods, pod)
    st, body = api.request("DELETE", pods + "/p")
    assert st == 200 and body["metadata"]["deletionGracePeriodSeconds"] == 30
    st, p2 = api.request("GET", pods + "/p")
    assert st == 200 and p2["metadata"]["deletionTimestamp"], "waits for its node"
    # the node agent's final delete: grace 0, with a propagation policy and a uid precondition
    st, _ = api.request("DELETE", pods + "/p", {"gracePeriodSeconds": 0,
                                                "propagationPolicy": "Background",
                                                "preconditions": {"uid": p["metadata"]["uid"]}})
    assert st == 200
    assert api.request("GET", pods + "/p")[0] == 404


def test_namespace_deletion_removes_its_objects(api):
    api.kubectl("create", "namespace", "doomed")
    api.kubectl("create", "configmap", "x", "-n", "doomed", "--from-literal=a=b")
    api.kubectl("delete", "namespace", "doomed", "--timeout=60s")
    assert api.kubectl("get", "ns", "doomed", check=False).returncode != 0
    st, l = api.request("GET", "/api/v1/namespaces/doomed/configmaps")
    assert st == 200 and l["items"] == []
    st, body = api.request("POST", "/api/v1/namespaces/nope/configmaps", cm("x"))
    assert st == 404 and body["message"] == 'namespaces "nope" not found'


ROLE = """
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: cm-reader, namespace: default}
rules:
- apiGroups: [""]
  resources: [configmaps]
  verbs: [get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: bot-reads, namespace: default}
subjects:
- {kind: ServiceAccount, name: bot, namespace: default}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: cm-reader}
"""


def test_rbac_service_account_gets_403_outside_its_role(api):
    api.kubectl("create", "serviceaccount", "bot")
    api.kubectl("apply", "-f", "-", input=ROLE)
    token = api.kubectl("create", "token", "bot").stdout.strip()
    assert api.request("GET", CMS, token=token)[0] == 200
    st, body = api.request("GET", "/api/v1/namespaces/default/secrets", token=token)
    assert st == 403 and body["reason"] == "Forbidden"
    assert body["message"] == ('secrets is forbidden: User "system:serviceaccount:default:bot" '
                               'cannot list resource "secrets" in API group "" in the namespace '
                               '"default"')
    st, body = api.request("POST", CMS, cm("nope"), token=token)
    assert st == 403 and 'cannot create resource "configmaps"' in body["message"]
    st, body = api.request("GET", "/api/v1/namespaces/kube-system/configmaps/kube-root-ca.crt",
                           token=token)
    assert st == 403 and 'configmaps "kube-root-ca.crt" is forbidden' in body["message"]
    # discovery stays readable
    assert api.request("GET", "/api/v1", token=token)[0] == 200
    # kubectl auth can-i, as the account (impersonated by the admin) and as itself
    sa = "--as=system:serviceaccount:default:bot"
    assert api.kubectl("auth", "can-i", "list", "configmaps", sa).stdout.strip() == "yes"
    r = api.kubectl("auth", "can-i", "list", "secrets", sa, check=False)
    assert r.returncode != 0 and r.stdout.strip() == "no"
    assert api.kubectl("auth", "can-i", "watch", "configmaps", "--token=" + token).stdout.strip() \
        == "yes"
    r = api.kubectl("get", "secrets", sa, check=False)
    assert r.returncode != 0 and "cannot list resource" in r.stderr
    # only the admin may impersonate
    r = api.kubectl("get", "cm", "--token=" + token, "--as=alice", check=False)
    assert r.returncode != 0 and "cannot impersonate" in r.stderr
    # a deleted account's token stops working
    api.kubectl("delete", "serviceaccount", "bot")
    assert api.request("GET", CMS, token=token)[0] == 401


def test_bad_input_gets_real_status_codes(api):
    st, body = api.request("POST", CMS, b"{not json")
    assert st == 400 and body["reason"] == "BadRequest"
    st, body = api.request("POST", CMS, b"a: [unclosed", content_type="application/yaml")
    assert st == 400
    st, body = api.request("POST", CMS, "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: y\n",
                           content_type="application/yaml")
    assert st == 201 and body["metadata"]["name"] == "y"
    st, body = api.request("GET", "/api/v1/namespaces/default/gizmos")
    assert st == 404
    st, body = api.request("GET", "/apis/nosuch.io/v1/things")
    assert st == 404
    st, body = api.request("POST", CMS, {"apiVersion": "v1", "kind": "Secret",
                                         "metadata": {"name": "z"}})
    assert st == 400
    st, body = api.request("POST", CMS, cm("Bad_Name"))
    assert st == 422 and body["details"]["causes"][0]["field"] == "metadata.name"
    st, _ = api.request("POST", CMS, cm("big", {"k": "x" * (4 * 1024 * 1024)}))
    assert st == 413
    assert api.request("GET", CMS, token=None)[0] == 401
    assert api.request("GET", CMS, token="wrong")[0] == 401
    assert api.request("GET", CMS, token="dcsa.AAAA.BBBB")[0] == 401
    st, _ = api.request("PATCH", CMS + "/y", b"[{bad", content_type="application/json-patch+json")
    assert st == 400
    st, _ = api.request("PATCH", CMS + "/y", b"{}", content_type="text/plain")
    assert st == 415
    st, _ = api.request("POST", CMS, b"k8s\x00\x0a\xff\xff", content_type=
                        "application/vnd.kubernetes.protobuf")
    assert st == 400
    # still serving, nothing corrupted
    st, l = api.request("GET", CMS)
    assert st == 200 and "y" in [i["metadata"]["name"] for i in l["items"]]


def test_table_output_with_printer_columns_over_http(api):
    make_crd(api)
    api.request("POST", WIDGETS, widget("w1", size=4))
    st, t = api.request("GET", WIDGETS, headers={
        "Accept": "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"})
    assert st == 200 and t["kind"] == "Table"
    assert [c["name"] for c in t["columnDefinitions"]] == ["Name", "Size", "Ready", "Age"]
    assert t["rows"][0]["cells"][:2] == ["w1", 4]
    assert t["rows"][0]["object"]["metadata"]["name"] == "w1"


def test_concurrent_clients_and_watchers_see_every_change_in_order(api):
    """Writers race on shared objects (409s retried as a controller would);
    two watchers must each see every change of the collection, in
    resourceVersion order, ending in the state a list returns."""
    st, start = api.request("GET", CMS)
    rv0 = start["metadata"]["resourceVersion"]
    watchers = [api.watch(CMS + "?watch=true&resourceVersion=" + rv0) for _ in range(2)]
    errors = []

    def writer(w):
        for i in range(15):
            name = f"w{w}-{i}"
            st, obj = api.request("POST", CMS, cm(name))
            if st != 201:
                errors.append((name, st))
            # everyone bumps one shared counter: read, modify, write, retry on conflict
            while True:
                st, shared = api.request("GET", CMS + "/shared")
                if st == 404:
                    st, _ = api.request("POST", CMS, cm("shared", {"n": "0"}))
                    if st in (201, 409):
                        continue
                shared["data"]["n"] = str(int(shared["data"]["n"]) + 1)
                st, _ = api.request("PUT", CMS + "/shared", shared)
                if st == 200:
                    break
                if st != 409:
                    errors.append(("shared", st))
                    break
            if i % 3 == 0:
                api.request("DELETE", CMS + "/" + name)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    st, final = api.request("GET", CMS)
    final_rv = int(final["metadata"]["resourceVersion"])
    state = {i["metadata"]["name"]: i for i in final["items"]}
    assert state["shared"]["data"]["n"] == str(4 * 15), "no lost update"
    for c, r in watchers:
        seen, last = {i["metadata"]["name"]: i for i in start["items"]}, int(rv0)
        while last < final_rv:
            e = next_event(r)
            assert e is not None
            rv = int(e["object"]["metadata"]["resourceVersion"])
            assert rv > last, "events in resourceVersion order"
            last = rv
            name = e["object"]["metadata"]["name"]
            if e["type"] == "DELETED":
                seen.pop(name, None)
            else:
                seen[name] = e["object"]
        c.close()
        assert set(seen) == set(state)
        assert all(seen[n]["metadata"]["resourceVersion"] == state[n]["metadata"]["resourceVersion"]
                   for n in state)


def test_kill_9_mid_write_loses_no_acknowledged_write(workdir):
    api = Api(workdir)
    acked = []
    stop = threading.Event()

    def writer(prefix):
        i = 0
        while not stop.is_set():
            try:
                st, _ = api.request("POST", CMS, cm(f"{prefix}-{i}"))
            except Exception:  # noqa: BLE001 - the server died mid-request
                return
            if st == 201:
                acked.append(f"{prefix}-{i}")
            i += 1

    threads = [threading.Thread(target=writer, args=(p,)) for p in ("a", "b")]
    for t in threads:
        t.start()
    wait_for(lambda: len(acked) >= 30, timeout=60, what="writes")
    api.proc.send_signal(signal.SIGKILL)
    api.proc.wait()
    stop.set()
    for t in threads:
        t.join()
    api.log.close()
    api.start()
    try:
        st, l = api.request("GET", CMS)
        have = {i["metadata"]["name"] for i in l["items"]}
        missing = [n for n in acked if n not in have]
        assert not missing, f"{len(missing)} acknowledged writes lost: {missing[:5]}"
        # resourceVersions keep rising after the restart
        st, n = api.request("POST", CMS, cm("after"))
        assert int(n["metadata"]["resourceVersion"]) > max(
            int(i["metadata"]["resourceVersion"]) for i in l["items"])
    finally:
        api.stop()


def test_up_down_and_a_second_up_finds_the_same_objects(workdir):
    d = os.path.join(workdir, "state")
    env = dict(os.environ, HOME=workdir)
    port = str(free_port())
    r = subprocess.run([DEVCLUSTER, "up", "--data_dir", d, "--port", port, "--components",
                        "none"], capture_output=True, text=True, env=env, timeout=90)
    assert r.returncode == 0, r.stderr
    kubeconfig = r.stdout.strip().splitlines()[-1]
    assert kubeconfig == os.path.join(d, "kubeconfig")
    kenv = dict(env, KUBECONFIG=kubeconfig)
    try:
        subprocess.run([KUBECTL, "create", "configmap", "keep", "--from-literal=a=b"], check=True,
                       env=kenv, capture_output=True)
    finally:
        subprocess.run([DEVCLUSTER, "down", "--data_dir", d], env=env, check=True, timeout=90)
    with open(os.path.join(d, "devcluster.log")) as f:
        assert "stopped" in f.read()
    r = subprocess.run([DEVCLUSTER, "up", "--data_dir", d, "--components", "none"],
                       capture_output=True, text=True, env=env, timeout=90)
    assert r.returncode == 0, r.stderr
    try:
        out = subprocess.run([KUBECTL, "get", "configmap", "keep", "-o", "json"], env=kenv,
                             capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)["data"] == {"a": "b"}
    finally:
        subprocess.run([DEVCLUSTER, "down", "--data_dir", d], env=env, check=True, timeout=90)


CEL_CRD = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: gadgets.example.com
spec:
  group: example.com
  scope: Namespaced
  names: {plural: gadgets, singular: gadget, kind: Gadget}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            x-kubernetes-validations:
            - rule: "size(self.name) <= 5 && self.min <= self.max"
              message: name too long or min above max
            - rule: "self.started < timestamp('2030-01-01T00:00:00Z')"
              message: started before 2030
            properties:
              name: {type: string, x-kubernetes-validations: [{rule: self == oldSelf}]}
              min: {type: integer, default: 0}
              max: {type: integer, default: 10}
              started: {type: string}
"""


def test_cel_rules_enforced_and_unsupported_ones_accepted_and_logged(api, workdir):
    # A rule outside the subset (timestamps) does not make the CRD fail:
    # a real server accepts it; devcluster logs that it does not enforce it.
    api.kubectl("apply", "-f", "-", input=CEL_CRD)
    api.kubectl("wait", "--for=condition=established", "crd/gadgets.example.com", "--timeout=30s")
    with open(os.path.join(workdir, "devcluster.log")) as f:
        log = f.read()
    assert "cel rule not enforced crd=gadgets.example.com field=spec" in log
    assert "timestamp()" in log

    def gadget(**spec):
        return json.dumps({"apiVersion": "example.com/v1", "kind": "Gadget",
                           "metadata": {"name": "g"}, "spec": spec})

    # the unsupported rule is not run (2031 would fail it on a real server)
    api.kubectl("apply", "-f", "-", input=gadget(name="abc", started="2031-01-01T00:00:00Z"))
    r = api.kubectl("apply", "-f", "-", input=gadget(name="abc", min=11), check=False)
    assert r.returncode != 0
    assert 'spec: Invalid value: "object": name too long or min above max' in r.stderr, r.stderr
    r = api.kubectl("apply", "-f", "-", input=gadget(name="abd"), check=False)
    assert 'spec.name: Invalid value: "string": failed rule: self == oldSelf' in r.stderr, r.stderr
    # the same through the API: 422 Invalid with the cause's field
    st, body = api.request("PATCH", "/apis/example.com/v1/namespaces/default/gadgets/g",
                           {"spec": {"name": "abcdef"}}, content_type="application/merge-patch+json")
    assert st == 422 and body["reason"] == "Invalid"
    fields = sorted(c["field"] for c in body["details"]["causes"])
    assert fields == ["spec", "spec.name"], body


def test_apply_of_a_list_as_kubectl_get_writes_it(api, workdir):
    # kubectl validates a `kind: List` against /openapi/v2 (protobuf): an
    # empty document lets it through, and the server still refuses unknown
    # fields of each item (fieldValidation=Strict).
    items = [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"l{i}"},
              "data": {"k": str(i)}} for i in range(3)]
    doc = {"apiVersion": "v1", "kind": "List", "items": items}
    r = api.kubectl("apply", "-f", "-", input=json.dumps(doc))
    assert r.stdout.count("created") == 3, r.stdout
    listed = api.kubectl("get", "configmaps", "l0", "l1", "l2", "-o", "yaml").stdout
    assert "kind: List" in listed
    r = api.kubectl("apply", "-f", "-", input=listed)
    # (configured: the last-applied annotation now holds the listed metadata)
    assert r.returncode == 0 and r.stdout.count("configured") == 3, r.stdout + r.stderr
    items[0]["bogus"] = 1
    r = api.kubectl("apply", "-f", "-", input=json.dumps(doc), check=False)
    assert r.returncode != 0 and 'unknown field "bogus"' in r.stderr, r.stderr
    st, body = api.request("GET", "/openapi/v2", headers={"Accept": "application/json"})
    assert st == 200 and body["swagger"] == "2.0" and body["definitions"] == {}
