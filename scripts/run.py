#!/usr/bin/python3
"""`make run-local`: lakebase on this machine as plain processes (a developer
tool; `make run` runs it as an operator on devcluster).

    scripts/run.py                      the stack: 3 safekeepers, a pageserver, a primary
    scripts/run.py branch NAME [--lsn X/X | --time 2026-01-02T03:04:05Z] [--from BRANCH]
    scripts/run.py compute NAME [--port N]   a primary compute on branch NAME (foreground)
    scripts/run.py branches                  list the branches

The stack: three safekeepers, one pageserver whose object store is a
directory under ./data (the safekeepers offload completed WAL segments to
the same store), and a primary compute (compute-ctl) on the `main` branch,
all on loopback. The first run bootstraps a tenant and its `main` timeline
on the pageserver; later runs resume the same data: the compute is
stateless and starts from the pageserver's snapshot and the safekeepers'
WAL. The launcher supervises what it started: a process that dies is
restarted. Ctrl-C stops everything.

Branches are pageserver timelines; `branch` needs the stack running.

Credentials: the launcher plays management. The first run makes an
Ed25519 key pair under data/auth (private/auth.key stays with the
launcher; keys/ holds the public key every daemon verifies with) and
mints each component's token into data/auth/tokens (docs/auth.md).
"""
import argparse
import json
import os
import signal
import sys
import time
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "e2e"))
os.environ.setdefault("LB_PROJECT_ROOT", ROOT)
from lakebase import Auth, Cluster, ComputeCtl, Pageserver, chown_pg, http  # noqa: E402

DATA = os.path.abspath(os.environ.get("LB_DATA", os.path.join(ROOT, "data")))
PG_PORT = int(os.environ.get("LB_PG_PORT", "55432"))
SK_HTTP = int(os.environ.get("LB_SK_HTTP_PORT", "7676"))
SK_PG = int(os.environ.get("LB_SK_PG_PORT", "5454"))
PS_PORT = int(os.environ.get("LB_PS_PORT", "9898"))
CTL_PORT = int(os.environ.get("LB_CTL_PORT", "9900"))
STATE = os.path.join(DATA, "run.json")
# The object store of the pageserver and the safekeepers' offload: a
# directory under the data directory, or LB_STORE (e.g. an s3:// URL).
STORE = os.environ.get("LB_STORE") or "file://" + os.path.join(DATA, "store")

stopping = False


def on_signal(signo, frame):
    global stopping
    stopping = True


def say(msg):
    print(f"lakebase: {msg}", flush=True)


def load_state():
    return json.load(open(STATE)) if os.path.exists(STATE) else None


def save_state(state):
    tmp = STATE + ".tmp"
    with open(tmp, "w") as f:
        json.dump(state, f, indent=1)
    os.replace(tmp, STATE)


def ps_url():
    return f"http://127.0.0.1:{PS_PORT}"


def new_compute(cluster, ps, state, branch, port, http_port):
    """compute-ctl for one branch, its spec and log under data/computes/BRANCH."""
    c = ComputeCtl(cluster, ps, branch, timeline=state["branches"][branch], tenant=state["tenant"],
                   workdir=os.path.join(DATA, "computes"), port=port, http_port=http_port,
                   settings={"shared_buffers": "128MB"})
    chown_pg(c.dir)
    return c


def start_compute(c):
    """Start c; True once it is ready, False if it exits or we are stopping."""
    c.start(wait=False, yaml=False)
    try:
        c.wait_ready(timeout=300, stop=lambda: stopping)
    except AssertionError:
        return False
    return not stopping


def stack_handles():
    """The Cluster and Pageserver of the stack, on the stack's fixed ports."""
    c = Cluster(DATA, sk_args=["--remote_storage", STORE])
    for i, sk in enumerate(c.sks):
        sk.http_port, sk.pg_port = SK_HTTP + i, SK_PG + i
    ps = Pageserver(DATA, remote=STORE)
    ps.port = PS_PORT
    return c, ps


def stack():
    os.makedirs(DATA, exist_ok=True)
    os.chmod(DATA, 0o755)
    state = load_state()
    if state and "branches" not in state:
        raise SystemExit(f"lakebase: {DATA} holds data of an older lakebase without a "
                         "pageserver; move it away to start afresh")
    c, ps = stack_handles()
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    compute = None
    try:
        c.start()
        ps.start()
        if not state:
            say("first run: bootstrapping a tenant and its main timeline")
            state = {"tenant": uuid.uuid4().hex, "branches": {"main": uuid.uuid4().hex}}
            st, body = http("POST", f"{ps_url()}/v1/tenant/{state['tenant']}/timeline",
                            {"timeline_id": state["branches"]["main"]}, timeout=300)
            if st != 201:
                raise SystemExit(f"lakebase: could not bootstrap: {body}")
            save_state(state)
        compute = new_compute(c, ps, state, "main", PG_PORT, CTL_PORT)
        if not start_compute(compute):
            raise SystemExit("lakebase: the compute did not start; see "
                             + os.path.join(compute.dir, "compute-ctl.log"))
        say("ready. Every commit is durable on 2 of 3 safekeepers.\n"
            f"  {compute.psql_string()}\n"
            f"  data in {DATA}; Ctrl-C stops everything")
        while not stopping:
            time.sleep(0.5)
            for sk in c.sks:
                if not sk.proc.alive() and not stopping:
                    say(f"{sk.name} exited; restarting")
                    sk.start()
            if not ps.proc.alive() and not stopping:
                say("pageserver exited; restarting")
                ps.start()
            if not compute.proc.alive() and not stopping and compute.proc.p.returncode == 4:
                # Superseded: another compute won a newer term on the
                # safekeepers; starting this one again would take it back.
                say("another compute is primary on main now; not restarting ours")
                compute.proc = None
            if compute.proc and not compute.proc.alive() and not stopping:
                say(f"compute exited ({compute.proc.p.returncode}); starting a new one")
                if start_compute(compute):
                    say("compute ready again")
    finally:
        say("stopping")
        if compute:
            compute.stop()
        ps.stop()
        c.stop()


def branch(args):
    state = load_state()
    if not state:
        raise SystemExit("lakebase: no stack yet: run `make run` first")
    Auth.of(DATA)  # the stack's keys: requests below go as management
    if args.name in state["branches"]:
        raise SystemExit(f"lakebase: branch {args.name} exists")
    parent = state["branches"].get(args.parent)
    if not parent:
        raise SystemExit(f"lakebase: no branch {args.parent}")
    body = {"timeline_id": uuid.uuid4().hex, "ancestor_timeline_id": parent}
    if args.time:
        body["ancestor_timestamp"] = args.time
    else:
        lsn = args.lsn
        if not lsn:
            st, meta = http("GET", f"{ps_url()}/v1/tenant/{state['tenant']}/timeline/{parent}")
            if st != 200:
                raise SystemExit(f"lakebase: is the stack running? {meta}")
            lsn = meta["last_record_lsn"]
        body["ancestor_lsn"] = lsn
    st, meta = http("POST", f"{ps_url()}/v1/tenant/{state['tenant']}/timeline", body, timeout=60)
    if st != 201:
        raise SystemExit(f"lakebase: could not branch: {meta.get('error', meta)}")
    state["branches"][args.name] = meta["timeline_id"]
    save_state(state)
    print(f"branch {args.name} of {args.parent} at {meta['ancestor_lsn']}")


def compute(args):
    state = load_state()
    if not state or args.name not in state["branches"]:
        raise SystemExit(f"lakebase: no branch {args.name}")
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    cluster, ps = stack_handles()
    c = new_compute(cluster, ps, state, args.name, args.port, args.port + 1000)
    try:
        if not start_compute(c):
            raise SystemExit("lakebase: the compute did not start; see "
                             + os.path.join(c.dir, "compute-ctl.log"))
        say(f"compute on branch {args.name} ready:\n"
            f"  {c.psql_string()}\n"
            "  Ctrl-C stops it")
        while not stopping and c.proc.alive():
            time.sleep(0.5)
    finally:
        c.stop()


def main():
    p = argparse.ArgumentParser(description="lakebase on this machine")
    sub = p.add_subparsers(dest="cmd")
    b = sub.add_parser("branch", help="create a branch")
    b.add_argument("name")
    b.add_argument("--from", dest="parent", default="main")
    g = b.add_mutually_exclusive_group()
    g.add_argument("--lsn", help="branch point (default: what the pageserver has now)")
    g.add_argument("--time", help="point in time, RFC 3339")
    cp = sub.add_parser("compute", help="start a primary compute on a branch")
    cp.add_argument("name")
    cp.add_argument("--port", type=int, default=55433)
    sub.add_parser("branches", help="list the branches")
    args = p.parse_args()
    if args.cmd == "branch":
        branch(args)
    elif args.cmd == "compute":
        compute(args)
    elif args.cmd == "branches":
        state = load_state() or {"branches": {}}
        for name, tl in state["branches"].items():
            print(f"{name}\t{tl}")
    else:
        stack()


if __name__ == "__main__":
    main()
