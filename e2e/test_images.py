"""No lakebase image runs a process as root.

- every images/NAME/Dockerfile's last stage sets a non-root USER (numeric
  uid, as the chart's runAsNonRoot needs to check it) and nothing after it
  switches back;
- every image built on this machine (`make images`, for the current
  sources) is configured with that user, and a process started in it (with
  no --user) runs as uid 65532.

The built images are looked up by the tag `images/build.sh --tag NAME`
gives the current sources; images not built yet are skipped (make images
builds them), so the test never builds images itself.
"""
import os
import re
import shutil
import subprocess

import pytest

ROOT = os.environ.get("LB_PROJECT_ROOT") or os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IMAGES = os.path.join(ROOT, "images")
PODMAN_DIR = os.environ.get("LB_PODMAN_DIR", "/var/lib/lakebase/podman")
NAMES = sorted(n for n in os.listdir(IMAGES) if os.path.isfile(os.path.join(IMAGES, n, "Dockerfile")))


def last_stage(text):
    lines = [l.strip() for l in text.splitlines() if l.strip() and not l.strip().startswith("#")]
    starts = [i for i, l in enumerate(lines) if l.upper().startswith("FROM ")]
    assert starts, "no FROM"
    return lines[starts[-1]:]


def user_of(stage):
    users = [l.split(None, 1)[1].strip() for l in stage if l.upper().startswith("USER ")]
    return users[-1] if users else None


def test_names_cover_every_image():
    assert {"safekeeper", "pageserver", "compute", "controller"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_dockerfile_last_stage_runs_as_a_numeric_non_root_user(name):
    with open(os.path.join(IMAGES, name, "Dockerfile")) as f:
        stage = last_stage(f.read())
    user = user_of(stage)
    assert user, f"images/{name}/Dockerfile: the last stage has no USER (it would run as root)"
    uid = user.split(":")[0]
    assert re.fullmatch(r"[0-9]+", uid), f"images/{name}: USER {user} is not numeric"
    assert int(uid) != 0, f"images/{name}: USER {user} is root"
    gid = user.split(":")[1] if ":" in user else None
    assert gid is None or (gid.isdigit() and int(gid) != 0), f"images/{name}: group {gid}"


def folders_included(folder):
    """Top-level folders whose headers folder's sources include ("lake/x.h")."""
    found = set()
    base = os.path.join(ROOT, folder)
    for dirpath, dirnames, files in os.walk(base):
        dirnames[:] = [d for d in dirnames if d not in ("tests", "fuzz")]
        for f in files:
            if f.endswith((".c", ".h")):
                with open(os.path.join(dirpath, f), errors="replace") as fh:
                    for m in re.finditer(r'^#include "([a-z_]+)/', fh.read(), re.M):
                        if os.path.isdir(os.path.join(ROOT, m.group(1))):
                            found.add(m.group(1))
    return found


@pytest.mark.parametrize("name", NAMES)
def test_sources_hold_every_folder_the_build_includes(name):
    # The build context is only what sources lists: a component that starts
    # including another's headers (the pageserver and ltap/) must bring it.
    with open(os.path.join(IMAGES, name, "sources")) as f:
        listed = {l.strip() for l in f if l.strip()}
    folders = {p for p in listed if os.path.isdir(os.path.join(ROOT, p))}
    if len(folders) != len(listed - {"Makefile"}):
        pytest.skip(f"images/{name}: a path in sources is not in this tree")
    todo, seen = list(folders), set(folders)
    while todo:
        for dep in folders_included(todo.pop()):
            if dep not in seen:
                seen.add(dep)
                todo.append(dep)
    assert seen <= listed, f"images/{name}/sources lacks {sorted(seen - listed)}"


def test_user_check_catches_root():
    # the same check on Dockerfiles that would run as root
    assert user_of(last_stage("FROM a AS b\nUSER 65532\nFROM c\nRUN x\n")) is None
    assert user_of(last_stage("FROM c\nUSER 65532\nUSER root\n")) == "root"


def podman(*args):
    env = dict(os.environ, CONTAINERS_CONF=os.path.join(PODMAN_DIR, "containers.conf"),
               CONTAINERS_STORAGE_CONF=os.path.join(PODMAN_DIR, "storage.conf"))
    return subprocess.run(["podman", *args], env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("name", NAMES)
def test_built_image_runs_as_uid_65532(name):
    if not shutil.which("podman") or not os.path.exists(os.path.join(PODMAN_DIR, "storage.conf")):
        pytest.skip("podman or lakebase's podman store is absent (make images)")
    r = subprocess.run([os.path.join(IMAGES, "build.sh"), "--tag", name], capture_output=True,
                       text=True, cwd=ROOT)
    if r.returncode != 0:
        pytest.skip(f"images/{name}: its sources are not all in this tree")
    ref = r.stdout.strip()
    if podman("image", "exists", ref).returncode != 0:
        pytest.skip(f"{ref} is not built (make images)")
    user = podman("image", "inspect", "--format", "{{.Config.User}}", ref).stdout.strip()
    assert user.split(":")[0] == "65532", f"{ref} runs as {user!r}"
    r = podman("run", "--rm", "--network=none", "--entrypoint", "/usr/bin/id", ref)
    assert r.returncode == 0, r.stderr
    assert re.match(r"uid=65532\b.* gid=65532\b", r.stdout), r.stdout
    assert "uid=0" not in r.stdout and "(root)" not in r.stdout
