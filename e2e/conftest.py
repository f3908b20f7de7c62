import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lakebase import Cluster  # noqa: E402


@pytest.fixture
def workdir(tmp_path):
    os.chmod(tmp_path, 0o755)
    os.chmod(tmp_path.parent, 0o755)
    return str(tmp_path)


@pytest.fixture
def cluster(workdir):
    c = Cluster(workdir).start()
    pgs = []
    c.track = pgs.append
    yield c
    for pg in pgs:
        pg.stop("immediate")
    c.stop()
