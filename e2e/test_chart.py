"""The Helm chart (deploy/helm/lakebase) against the real helm 3.17 and
kubectl 1.32, Kubernetes' own schemas and devcluster.

- `helm lint --strict` is clean, with default and non-default values;
- `helm template` output validates against Kubernetes' OpenAPI schemas
  (kubernetes-models + @kubernetes-models/validate, e2e/k8s_validate.mjs),
  and a broken object is caught by the same check;
- the restricted securityContext, the contract's controller flags and the
  recommended labels are in the rendered Deployment;
- the chart's CRDs are the API's (byte-identical to crds/ once it exists);
- `kubectl apply --dry-run=server` accepts the rendered chart and examples/;
- `helm install` creates the operator's objects, and the CRDs it installs
  take the examples and refuse bad custom resources;
- the service account may do what the RBAC rules say and nothing else
  (`kubectl auth can-i --as=system:serviceaccount:...`), cluster-wide and
  with watchNamespace.

The devcluster tests start `devcluster serve --components none` (the API
server alone: nothing runs the controller's pods) on a free port in the
test's directory.
"""
import json
import os
import subprocess
import sys

import pytest
import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lakebase import ROOT  # noqa: E402
from test_devcluster_api import HELM, KUBECTL, Api  # noqa: E402

CHART = os.path.join(ROOT, "deploy", "helm", "lakebase")
EXAMPLES = os.path.join(ROOT, "examples")
VALIDATE = os.path.join(ROOT, "e2e", "k8s_validate.mjs")
RELEASE, NS = "lb", "lakebase-system"
SA = f"system:serviceaccount:{NS}:lb-lakebase-controller"

pytestmark = pytest.mark.skipif(not os.path.exists(KUBECTL) or not os.path.exists(HELM),
                                reason="kubectl/helm not in build/tools; run make deps")

# Non-default values: one namespace, HA with leader election off, a digest,
# a ServiceMonitor, extra flags and env, scheduling constraints.
NON_DEFAULT = [
    "--set", "watchNamespace=apps",
    "--set", "replicaCount=2",
    "--set", "leaderElection.enabled=false",
    "--set", "image.digest=sha256:" + "a" * 64,
    "--set", "metrics.serviceMonitor.enabled=true",
    "--set", "metrics.serviceMonitor.labels.release=prom",
    "--set", "controller.logLevel=debug",
    "--set", "controller.extraArgs[0]=--workers=4",
    "--set", "controller.extraEnv[0].name=TZ",
    "--set", "controller.extraEnv[0].value=UTC",
    "--set", "nodeSelector.kubernetes\\.io/os=linux",
    "--set", "tolerations[0].key=dedicated",
    "--set", "tolerations[0].operator=Exists",
    "--set", "podAnnotations.example\\.com/team=db",
    "--set", "imagePullSecrets[0].name=regcred",
    "--set", "serviceAccount.annotations.example\\.com/role=x",
]


def helm(*args, check=True):
    env = dict(os.environ, HOME=os.environ.get("HOME", "/root"))
    r = subprocess.run([HELM] + list(args), capture_output=True, text=True, env=env, timeout=120)
    if check and r.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed: {r.stderr}")
    return r


def render(*values, crds=False):
    args = ["template", RELEASE, CHART, "--namespace", NS] + list(values)
    if crds:
        args.append("--include-crds")
    out = helm(*args).stdout
    return out, [d for d in yaml.safe_load_all(out) if d]


def validate(objs):
    r = subprocess.run(["node", VALIDATE], input=json.dumps(objs), capture_output=True, text=True,
                       cwd=ROOT, timeout=120)
    results = [json.loads(line) for line in r.stdout.splitlines() if line.strip()]
    return r.returncode, results, r.stderr


def by_kind(objs, kind):
    return [o for o in objs if o["kind"] == kind]


def test_helm_lint_strict_is_clean():
    for values in ([], NON_DEFAULT):
        r = helm("lint", "--strict", CHART, *values, check=False)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "[WARNING]" not in r.stdout and "[ERROR]" not in r.stdout, r.stdout
        assert "1 chart(s) linted, 0 chart(s) failed" in r.stdout


def test_template_validates_against_kubernetes_schemas():
    for values in ([], NON_DEFAULT):
        _, objs = render(*values, crds=True)
        rc, results, err = validate(objs)
        assert rc == 0, f"{err}\n" + "\n".join(json.dumps(x) for x in results if not x["ok"])
        assert len(results) == len(objs) and all(x["ok"] for x in results)
        kinds = {o["kind"] for o in objs}
        assert {"CustomResourceDefinition", "ServiceAccount", "Deployment", "Service"} <= kinds
        if values:
            assert {"Role", "RoleBinding", "ServiceMonitor"} <= kinds
            assert "ClusterRole" not in kinds and "ClusterRoleBinding" not in kinds
        else:
            assert {"ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"} <= kinds
            assert "ServiceMonitor" not in kinds


def test_values_schema_refuses_typos_and_bad_values():
    # values.schema.json: a misspelt key or a wrong value stops helm before
    # anything is rendered, with the key's name.
    for args, message in ((["--set", "watchNamespce=apps"], "watchNamespce is not allowed"),
                          (["--set", "controller.workers=0"], "controller.workers"),
                          (["--set", "controller.logLevel=loud"], "controller.logLevel"),
                          (["--set", "image.pullPolicy=Sometimes"], "image.pullPolicy"),
                          (["--set", "image.digest=latest"], "image.digest"),
                          (["--set", "leaderElection.enabled=maybe"], "leaderElection.enabled"),
                          (["--set", "metrics.serviceMonitor.enable=true"], "enable is not allowed")):
        r = helm("template", RELEASE, CHART, *args, check=False)
        assert r.returncode != 0, f"{args} accepted"
        assert message in r.stderr, r.stderr
    # every value of values.yaml and NON_DEFAULT passes (rendered above)
    render(*NON_DEFAULT)


def test_schema_check_catches_a_broken_object():
    # The same check must fail on what the API server would refuse: a port
    # given as a string, an unknown imagePullPolicy, a kind with no schema.
    _, objs = render()
    dep = by_kind(objs, "Deployment")[0]
    c = dep["spec"]["template"]["spec"]["containers"][0]
    c["ports"][0]["containerPort"] = "http"
    rc, results, _ = validate([dep])
    assert rc == 1 and not results[0]["ok"] and "containerPort" in results[0]["error"]
    c["ports"][0]["containerPort"] = 8080
    c["imagePullPolicy"] = "Sometimes"
    rc, results, _ = validate([dep])
    assert rc == 1 and "imagePullPolicy" in results[0]["error"]
    rc, results, _ = validate([{"apiVersion": "v1", "kind": "NoSuchKind", "metadata": {"name": "x"}}])
    assert rc == 2 and not results[0]["ok"]


def test_deployment_is_restricted_and_passes_the_contract_flags():
    for values in ([], NON_DEFAULT):
        _, objs = render(*values)
        dep = by_kind(objs, "Deployment")[0]
        pod = dep["spec"]["template"]["spec"]
        psc = pod["securityContext"]
        assert psc["runAsNonRoot"] is True and psc["runAsUser"] == 65532
        assert psc["seccompProfile"] == {"type": "RuntimeDefault"}
        (c,) = pod["containers"]
        sc = c["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"] == {"drop": ["ALL"]}
        assert sc["readOnlyRootFilesystem"] is True and sc["runAsNonRoot"] is True
        assert not sc.get("privileged") and "add" not in sc["capabilities"]
        assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert c["resources"]["limits"]["memory"] and c["resources"]["requests"]["cpu"]
        flags = dict(a[2:].split("=", 1) for a in c["args"])
        for f in ("leader_elect", "lease_name", "lease_namespace", "http_port", "safekeeper_image",
                  "pageserver_image", "compute_image", "log_level", "workers"):
            assert f in flags, f"--{f} missing from {c['args']}"
        assert flags["lease_namespace"] == NS
        assert {p["containerPort"] for p in c["ports"]} == {int(flags["http_port"])}
        if values:
            assert flags["namespace"] == "apps" and flags["leader_elect"] == "false"
            assert c["image"] == "localhost/lakebase/controller@sha256:" + "a" * 64
            assert "--workers=4" in c["args"] and flags["log_level"] == "debug"
            assert dep["spec"]["replicas"] == 2
        else:
            assert "namespace" not in flags and flags["leader_elect"] == "true"
            assert c["image"] == "localhost/lakebase/controller:dev"
            assert flags["safekeeper_image"] == "localhost/lakebase/safekeeper:dev"
        # The recommended labels on every object, and the selector a subset
        # of the pod's labels.
        for o in objs:
            labels = o["metadata"]["labels"]
            assert labels["app.kubernetes.io/name"] == "lakebase"
            assert labels["app.kubernetes.io/instance"] == RELEASE
            assert labels["app.kubernetes.io/managed-by"] == "Helm"
            assert labels["app.kubernetes.io/version"] and labels["helm.sh/chart"]
        sel = dep["spec"]["selector"]["matchLabels"]
        assert sel.items() <= dep["spec"]["template"]["metadata"]["labels"].items()


def test_rbac_rules_are_commented_and_never_wildcards():
    with open(os.path.join(CHART, "templates", "rbac.yaml")) as f:
        lines = f.read().splitlines()
    for i, line in enumerate(lines):
        if line.strip().startswith("- apiGroups:"):
            assert lines[i - 1].strip().startswith("#"), f"rule at rbac.yaml:{i + 1} has no comment"
    _, objs = render()
    for o in by_kind(objs, "ClusterRole") + by_kind(objs, "Role"):
        for rule in o["rules"]:
            for k in ("apiGroups", "resources", "verbs"):
                assert "*" not in rule[k], f"{o['metadata']['name']}: wildcard in {rule}"
            assert "escalate" not in rule["verbs"] and "bind" not in rule["verbs"]
            assert "impersonate" not in rule["verbs"]


def test_chart_crds_are_the_apis():
    api_dir = os.path.join(ROOT, "crds")
    names = sorted(os.listdir(os.path.join(CHART, "crds")))
    assert names == ["lakebase.io_branches.yaml", "lakebase.io_lakebaseclusters.yaml"]
    if not os.path.isdir(api_dir):
        pytest.skip("crds/ (the controller's API) is not in this tree yet")
    assert sorted(f for f in os.listdir(api_dir) if f.endswith(".yaml")) == names
    for n in names:
        with open(os.path.join(api_dir, n), "rb") as a, open(os.path.join(CHART, "crds", n), "rb") as b:
            assert a.read() == b.read(), f"deploy/helm/lakebase/crds/{n} differs from crds/{n}"


@pytest.fixture
def api(workdir):
    a = Api(workdir)
    yield a
    a.stop()


def write(workdir, name, text):
    p = os.path.join(workdir, name)
    with open(p, "w") as f:
        f.write(text)
    return p


def test_server_side_dry_run_accepts_the_chart_and_examples(api, workdir):
    api.kubectl("create", "namespace", NS)
    api.kubectl("create", "namespace", "apps")
    # The CRDs first (a dry run of a custom resource needs its CRD).
    api.kubectl("apply", "--dry-run=server", "-f", os.path.join(CHART, "crds"))
    api.kubectl("apply", "-f", os.path.join(CHART, "crds"))
    for i, values in enumerate(([], NON_DEFAULT)):
        text, objs = render(*values)
        # No ServiceMonitor CRD on devcluster; its schema was checked above.
        keep = [o for o in objs if o["kind"] != "ServiceMonitor"]
        p = write(workdir, f"chart{i}.yaml", yaml.safe_dump_all(keep))
        r = api.kubectl("apply", "--dry-run=server", "-f", p)
        assert r.stdout.count("(server dry run)") == len(keep), r.stdout
    # Nothing was created by the dry runs.
    assert api.kubectl("get", "deployments", "-A", "-o", "name").stdout.strip() == ""
    r = api.kubectl("apply", "--dry-run=server", "-n", "apps", "-f", EXAMPLES)
    assert r.stdout.count("(server dry run)") == len(os.listdir(EXAMPLES)), r.stdout
    # A dry run still refuses what the schema refuses.
    with open(os.path.join(EXAMPLES, "cluster.yaml")) as f:
        bad = f.read().replace("replicas: 3", "replicas: 2")
    r = api.kubectl("apply", "--dry-run=server", "-n", "apps", "-f", "-", input=bad, check=False)
    assert r.returncode != 0 and 'spec.safekeepers.replicas: Unsupported value: 2' in r.stderr, r.stderr


def test_helm_install_creates_the_operator_objects(api, workdir):
    r = api.helm("install", RELEASE, CHART, "--namespace", NS, "--create-namespace")
    assert "STATUS: deployed" in r.stdout and "kubectl apply -f examples/cluster.yaml" in r.stdout
    name = "lb-lakebase-controller"
    dep = json.loads(api.kubectl("get", "deployment", name, "-n", NS, "-o", "json").stdout)
    assert dep["spec"]["template"]["spec"]["serviceAccountName"] == name
    api.kubectl("get", "serviceaccount", name, "-n", NS)
    api.kubectl("get", "service", name + "-metrics", "-n", NS)
    api.kubectl("get", "clusterrole", name)
    api.kubectl("get", "clusterrolebinding", name)
    api.kubectl("get", "role,rolebinding", name + "-leader-election", "-n", NS)
    for crd in ("lakebaseclusters.lakebase.io", "branches.lakebase.io"):
        api.kubectl("get", "crd", crd)
    # The installed CRDs serve the examples, with defaults and short names.
    api.kubectl("create", "namespace", "apps")
    api.kubectl("apply", "-n", "apps", "-f", EXAMPLES)
    c = json.loads(api.kubectl("get", "lbc", "demo", "-n", "apps", "-o", "json").stdout)
    assert c["spec"]["safekeepers"]["replicas"] == 3
    assert c["spec"]["proxy"] == {"replicas": 1, "serviceType": "NodePort"}
    b = json.loads(api.kubectl("get", "br", "before-migration", "-n", "apps", "-o", "json").stdout)
    assert b["spec"]["compute"] == {"enabled": True, "replicas": 1, "readReplicas": 0}
    out = api.kubectl("get", "branches", "-n", "apps").stdout
    assert out.split("\n")[0].split() == ["NAME", "CLUSTER", "PARENT", "PHASE", "ENDPOINT", "LSN", "AGE"]
    # Bad custom resources are refused by the schema.
    bad = {"apiVersion": "lakebase.io/v1alpha1", "kind": "Branch", "metadata": {"name": "x"},
           "spec": {"clusterRef": {"name": "demo"}, "lsn": "0/zz"}}
    r = api.kubectl("apply", "-n", "apps", "-f", "-", input=json.dumps(bad), check=False)
    assert r.returncode != 0 and "spec.lsn" in r.stderr, r.stderr
    bad["spec"] = {"clusterRef": {"name": "demo"}, "colour": "red"}
    r = api.kubectl("apply", "-n", "apps", "-f", "-", input=json.dumps(bad), check=False)
    assert r.returncode != 0 and 'unknown field "spec.colour"' in r.stderr, r.stderr
    # helm uninstall removes the operator but leaves the CRDs (and the data).
    api.helm("uninstall", RELEASE, "--namespace", NS)
    assert api.kubectl("get", "deployment", name, "-n", NS, check=False).returncode != 0
    api.kubectl("get", "crd", "branches.lakebase.io")


def can_i(api, verb, resource, ns=None, sa=SA):
    # "kind/status" is a subresource (kubectl would read it as an object's name).
    resource, _, sub = resource.partition("/")
    args = ["auth", "can-i", verb, resource, "--as=" + sa]
    if sub:
        args.append("--subresource=" + sub)
    if ns:
        args += ["-n", ns]
    r = api.kubectl(*args, check=False)
    out = r.stdout.strip()
    assert out in ("yes", "no"), f"can-i {verb} {resource}: {r.stdout} {r.stderr}"
    return out == "yes"


# controller/README.md's RBAC table, verb by verb, and what it leaves out.
ALLOWED = [
    ("get", "lakebaseclusters.lakebase.io"), ("list", "lakebaseclusters.lakebase.io"),
    ("watch", "lakebaseclusters.lakebase.io"), ("patch", "lakebaseclusters.lakebase.io"),
    ("get", "branches.lakebase.io"), ("watch", "branches.lakebase.io"),
    ("create", "branches.lakebase.io"), ("patch", "branches.lakebase.io"),
    ("delete", "branches.lakebase.io"),
    ("update", "lakebaseclusters.lakebase.io/status"), ("update", "branches.lakebase.io/status"),
    ("update", "lakebaseclusters.lakebase.io/finalizers"),
    ("update", "branches.lakebase.io/finalizers"),
    ("get", "secrets"), ("create", "secrets"), ("patch", "secrets"), ("update", "secrets"),
    ("get", "configmaps"), ("create", "configmaps"), ("update", "configmaps"),
    ("get", "services"), ("create", "services"), ("update", "services"),
    ("get", "persistentvolumeclaims"), ("create", "persistentvolumeclaims"),
    ("update", "persistentvolumeclaims"), ("list", "persistentvolumeclaims"),
    ("delete", "persistentvolumeclaims"),
    ("get", "pods"), ("list", "pods"), ("watch", "pods"), ("delete", "pods"),
    ("create", "events"), ("patch", "events"),
    ("get", "statefulsets.apps"), ("list", "statefulsets.apps"), ("watch", "statefulsets.apps"),
    ("create", "statefulsets.apps"), ("update", "statefulsets.apps"),
]
DENIED = [
    ("create", "lakebaseclusters.lakebase.io"), ("update", "lakebaseclusters.lakebase.io"),
    ("delete", "lakebaseclusters.lakebase.io"), ("update", "branches.lakebase.io"),
    ("patch", "branches.lakebase.io/status"), ("delete", "lakebaseclusters.lakebase.io/status"),
    ("update", "branches.lakebase.io/scale"), ("update", "lakebaseclusters.lakebase.io/scale"),
    ("list", "secrets"), ("watch", "secrets"), ("delete", "secrets"),
    ("list", "configmaps"), ("delete", "configmaps"), ("patch", "services"),
    ("delete", "services"), ("watch", "persistentvolumeclaims"), ("patch", "persistentvolumeclaims"),
    ("create", "pods"), ("update", "pods"), ("get", "pods/log"), ("create", "pods/exec"),
    ("update", "pods/status"), ("get", "events"), ("delete", "events"),
    ("delete", "statefulsets.apps"), ("patch", "statefulsets.apps"),
    ("update", "statefulsets.apps/status"), ("create", "deployments.apps"),
    ("update", "replicasets.apps"), ("create", "daemonsets.apps"), ("create", "jobs.batch"),
    ("get", "endpoints"), ("create", "roles.rbac.authorization.k8s.io"),
    ("create", "rolebindings.rbac.authorization.k8s.io"), ("get", "nodes"),
    ("create", "namespaces"), ("delete", "namespaces"),
    ("create", "customresourcedefinitions.apiextensions.k8s.io"), ("create", "serviceaccounts"),
    ("create", "serviceaccounts/token"), ("create", "leases.coordination.k8s.io"),
]


def test_rbac_allows_what_the_rules_say_and_no_more(api):
    api.helm("install", RELEASE, CHART, "--namespace", NS, "--create-namespace")
    api.kubectl("create", "namespace", "apps")
    for verb, res in ALLOWED:
        assert can_i(api, verb, res, "apps"), f"{SA} cannot {verb} {res} in apps"
    for verb, res in DENIED:
        assert not can_i(api, verb, res, "apps"), f"{SA} may {verb} {res} in apps"
    # Leases only in the release's namespace, and not delete or list them.
    for verb in ("get", "create", "update"):
        assert can_i(api, verb, "leases.coordination.k8s.io", NS)
    for verb in ("delete", "list", "watch"):
        assert not can_i(api, verb, "leases.coordination.k8s.io", NS)
    # Another account in the same namespace gets nothing from the chart.
    api.kubectl("create", "serviceaccount", "other", "-n", NS)
    assert not can_i(api, "get", "secrets", "apps", sa=f"system:serviceaccount:{NS}:other")


def test_rbac_with_watch_namespace_stays_in_it(api):
    api.kubectl("create", "namespace", "apps")
    api.kubectl("create", "namespace", "elsewhere")
    api.helm("install", RELEASE, CHART, "--namespace", NS, "--create-namespace",
             "--set", "watchNamespace=apps")
    assert api.kubectl("get", "clusterrole", "lb-lakebase-controller", check=False).returncode != 0
    for verb, res in ALLOWED:
        assert can_i(api, verb, res, "apps"), f"{SA} cannot {verb} {res} in apps"
        assert not can_i(api, verb, res, "elsewhere"), f"{SA} may {verb} {res} in elsewhere"
    for verb, res in DENIED:
        assert not can_i(api, verb, res, "apps"), f"{SA} may {verb} {res} in apps"
    assert not can_i(api, "list", "lakebaseclusters.lakebase.io", "default")
    assert can_i(api, "update", "leases.coordination.k8s.io", NS)
    assert not can_i(api, "update", "leases.coordination.k8s.io", "apps")


def crd_schema(plural):
    with open(os.path.join(CHART, "crds", f"lakebase.io_{plural}.yaml")) as f:
        crd = yaml.safe_load(f)
    return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def flat(text):
    return " ".join(text.split())  # explain wraps descriptions at 80 columns


def test_kubectl_explain_shows_the_crds_documented_fields(api):
    api.kubectl("apply", "-f", os.path.join(CHART, "crds"))
    for kind, plural in (("LakebaseCluster", "lakebaseclusters"), ("Branch", "branches")):
        schema = crd_schema(plural)
        out = api.kubectl("explain", f"{plural}.spec").stdout
        assert f"KIND:       {kind}" in out and "VERSION:    v1alpha1" in out
        spec = schema["properties"]["spec"]
        assert flat(spec["description"]) in flat(out)
        for field, sub in spec["properties"].items():
            req = " -required-" if field in spec.get("required", []) else ""
            assert f"  {field}\t<" in out, f"{field} missing from explain:\n{out}"
            line = next(l for l in out.splitlines() if l.startswith(f"  {field}\t<"))
            assert line.endswith(">" + req), line
            assert flat(sub["description"]) in flat(out), f"{field}'s description missing:\n{out}"
    out = api.kubectl("explain", "lbc.spec.safekeepers.replicas").stdout
    assert "ENUM:\n    3\n    5" in out
    out = api.kubectl("explain", "branch.spec.compute").stdout
    assert "replicas\t<integer>" in out and "enum: 0, 1" in out
    out = api.kubectl("explain", "br.status.conditions").stdout
    assert "lastTransitionTime\t<string> -required-" in out
    out = api.kubectl("explain", "branches", "--recursive").stdout
    assert "metadata\t<ObjectMeta>" in out and "clusterRef\t<Object> -required-" in out
    r = api.kubectl("explain", "lbc.spec.nosuchfield", check=False)
    assert r.returncode != 0 and 'field "nosuchfield" does not exist' in r.stderr


def test_cel_rules_of_the_crds_are_enforced(api, workdir):
    api.kubectl("apply", "-f", os.path.join(CHART, "crds"))
    api.kubectl("apply", "-f", EXAMPLES)
    with open(os.path.join(EXAMPLES, "branch.yaml")) as f:
        branch = f.read()
    with open(os.path.join(EXAMPLES, "cluster.yaml")) as f:
        cluster = f.read()

    def refused(text, message):
        r = api.kubectl("apply", "-f", "-", input=text, check=False)
        assert r.returncode != 0, f"accepted:\n{text}"
        assert message in r.stderr, r.stderr

    # Immutable fields: the real server's format, field: Invalid value: "type": message.
    refused(branch.replace("name: demo", "name: other"),
            'The Branch "dev" is invalid: spec.clusterRef: Invalid value: "object": '
            'clusterRef is immutable')
    refused(branch.replace("parent: demo-main", "parent: before-migration"),
            'spec: Invalid value: "object": parent is immutable')
    refused(branch.replace("  parent: demo-main\n", ""),
            'spec: Invalid value: "object": parent is immutable')
    refused(branch.replace("  ttl: 72h", "  lsn: 0/3000028"),
            'spec: Invalid value: "object": lsn is immutable')
    refused(cluster.replace("    volume:\n      size: 10Gi", "    s3:\n      bucket: b"),
            'spec.objectStorage: Invalid value: "object": objectStorage is immutable')
    # One-of and at-most-one rules, also on create.
    both = branch.replace("name: dev", "name: both").replace(
        "  ttl: 72h", '  lsn: 0/3000028\n  timestamp: "2026-12-04T12:00:00Z"')
    refused(both, 'spec: Invalid value: "object": at most one of lsn and timestamp may be set')
    none = cluster.replace("name: demo", "name: nostore").replace(
        "    volume:\n      size: 10Gi", "    {}")
    refused(none, 'spec.objectStorage: Invalid value: "object": exactly one of objectStorage.s3 '
                  'or objectStorage.volume must be set')
    # The durability settings compute-ctl owns, whatever their case.
    refused(cluster.replace("shared_buffers: 128MB", "FSync: \"off\""),
            'spec.compute.parameters: Invalid value: "object": parameters may not set the '
            'durability settings')
    # What the rules allow still goes through: mutable fields change, the
    # scale subresource suspends the compute.
    api.kubectl("apply", "-f", "-", input=branch.replace("ttl: 72h", "ttl: 24h"))
    api.kubectl("scale", "branch", "dev", "--replicas=0")
    b = json.loads(api.kubectl("get", "branch", "dev", "-o", "json").stdout)
    assert b["spec"]["compute"]["replicas"] == 0 and b["spec"]["ttl"] == "24h"
    assert b["spec"]["clusterRef"] == {"name": "demo"}


def test_chart_runs_the_controller_on_devcluster(workdir):
    """The chart with the real controller image on devcluster with its node:
    the pod passes its probes under the restricted securityContext, takes
    the Lease, and with the chart's RBAC alone creates a cluster's objects
    without one request refused. Needs controller/ (skipped before it lands)."""
    if not os.path.isdir(os.path.join(ROOT, "controller")):
        pytest.skip("controller/ is not in this tree yet")
    r = subprocess.run([os.path.join(ROOT, "images", "build.sh")], capture_output=True, text=True,
                       timeout=3600, cwd=ROOT)
    assert r.returncode == 0, f"images/build.sh failed: {r.stdout}{r.stderr}"

    def ref(name):
        with open(os.path.join(ROOT, "build", "images", name + ".ref")) as f:
            return f.read().strip()

    from lakebase import BIN
    home = os.path.join(workdir, "home")
    os.makedirs(home)
    env = dict(os.environ, DEVCLUSTER_DIR=os.path.join(workdir, "dc"), HOME=home,
               KUBECONFIG=os.path.join(workdir, "dc", "kubeconfig"))

    def run(*args, check=True, input=None, timeout=300):
        p = subprocess.run(list(args), capture_output=True, text=True, env=env, input=input,
                           timeout=timeout)
        if check and p.returncode != 0:
            raise AssertionError(f"{' '.join(args)} failed: {p.stdout}{p.stderr}")
        return p

    kubectl = lambda *a, **k: run(KUBECTL, *a, **k)  # noqa: E731
    run(os.path.join(BIN, "devcluster"), "up", timeout=120)
    try:
        repo, tag = ref("controller").rsplit(":", 1)
        run(HELM, "install", RELEASE, CHART, "--namespace", NS, "--create-namespace",
            "--set", f"image.repository={repo}", "--set", f"image.tag={tag}",
            "--set", f"dataPlaneImages.safekeeper={ref('safekeeper')}",
            "--set", f"dataPlaneImages.pageserver={ref('pageserver')}",
            "--set", f"dataPlaneImages.compute={ref('compute')}")
        kubectl("-n", NS, "rollout", "status", "deployment/lb-lakebase-controller",
                "--timeout=300s", timeout=320)
        pods = json.loads(kubectl("-n", NS, "get", "pods", "-o", "json").stdout)["items"]
        assert len(pods) == 1
        pod = pods[0]
        assert any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"]["conditions"])
        lease = json.loads(kubectl("-n", NS, "get", "lease", "lakebase-controller", "-o", "json").stdout)
        assert lease["spec"]["holderIdentity"].startswith(pod["metadata"]["name"])
        kubectl("apply", "-f", os.path.join(EXAMPLES, "cluster.yaml"))

        def created():
            out = kubectl("get", "statefulsets,services,secrets,configmaps", "-l",
                          "lakebase.io/cluster=demo", "-o", "name").stdout.split()
            return ("statefulset.apps/demo-safekeeper" in out and "statefulset.apps/demo-pageserver"
                    in out and any(o.startswith("secret/") for o in out)
                    and any(o.startswith("configmap/") for o in out))

        from lakebase import wait_for
        wait_for(created, timeout=300, what="the controller to create the cluster's objects")
        logs = kubectl("-n", NS, "logs", "deployment/lb-lakebase-controller").stdout
        assert "forbidden" not in logs.lower() and " 403" not in logs, logs
    finally:
        run(os.path.join(BIN, "devcluster"), "down", check=False, timeout=300)
