import os
import shutil
import subprocess
import sys
import tempfile

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lakebase import ROOT, Cluster, OperatorEnv, stop_s3rvers  # noqa: E402


@pytest.fixture
def workdir(request):
    """A fresh directory the postgres user can enter; removed unless the test
    failed or LB_KEEP_TMP is set."""
    d = tempfile.mkdtemp(prefix="lb-e2e-")
    os.chmod(d, 0o755)
    yield d
    stop_s3rvers(d)
    failed = getattr(request.node, "rep_call", None) and request.node.rep_call.failed
    if failed or os.environ.get("LB_KEEP_TMP"):
        print(f"\nkept {d}")
    else:
        shutil.rmtree(d, ignore_errors=True)


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


@pytest.fixture
def cluster(workdir):
    c = Cluster(workdir)
    pgs = []
    c.track = pgs.append
    c.start()
    yield c
    for pg in pgs:
        pg.stop("immediate")
    if hasattr(c, "base"):
        c.base.stop("immediate")
    c.stop()


@pytest.fixture(scope="module")
def op(request):
    """The operator tests' environment (e2e/test_operator*.py), one per
    module: the data-plane images from images/build.sh (cached), a
    devcluster in its own directory with lakebase's CRDs applied by
    kubectl, and one lakebase-controller outside it (OperatorEnv). A
    controller log with a sanitizer report fails the module."""
    r = subprocess.run([os.path.join(ROOT, "images", "build.sh"), "safekeeper", "pageserver",
                        "compute"], capture_output=True, text=True, timeout=3600)
    assert r.returncode == 0, f"images/build.sh failed: {r.stdout}{r.stderr}"
    name = request.module.__name__.rsplit(".", 1)[-1].replace("test_", "").replace("_", "-")
    root = tempfile.mkdtemp(prefix=f"lb-{name}-")
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
