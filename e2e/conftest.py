import os
import shutil
import sys
import tempfile

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lakebase import Cluster, stop_s3rvers  # noqa: E402


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
