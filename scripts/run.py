#!/usr/bin/python3
"""`make run`: a quorum-durable PostgreSQL on this machine.

Starts three safekeepers and one PostgreSQL 15 primary whose every commit
is fsynced on two of them, all on loopback, with data under ./data. The
first run bootstraps (initdb, timeline, election, promotion); later runs
resume the same data. The launcher supervises what it started: a process
that dies is restarted. Ctrl-C stops everything.

This is the local stack as far as it exists today: there is no pageserver
or compute-ctl yet, so the compute keeps its own data directory.
"""
import json
import os
import signal
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "e2e"))
os.environ.setdefault("LB_PROJECT_ROOT", ROOT)
from lakebase import Cluster, Postgres, wait_for  # noqa: E402

DATA = os.environ.get("LB_DATA", os.path.join(ROOT, "data"))
PG_PORT = int(os.environ.get("LB_PG_PORT", "55432"))
SK_HTTP = int(os.environ.get("LB_SK_HTTP_PORT", "7676"))
SK_PG = int(os.environ.get("LB_SK_PG_PORT", "5454"))
STATE = os.path.join(DATA, "run.json")

stopping = False


def on_signal(signo, frame):
    global stopping
    stopping = True


def main():
    os.makedirs(DATA, exist_ok=True)
    os.chmod(DATA, 0o755)
    state = json.load(open(STATE)) if os.path.exists(STATE) else None
    c = Cluster(DATA)
    for i, sk in enumerate(c.sks):
        sk.http_port, sk.pg_port = SK_HTTP + i, SK_PG + i
    if state:
        c.tenant, c.timeline = state["tenant"], state["timeline"]
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    c.start()
    pg = Postgres(DATA, "compute")
    try:
        if not state:
            print("lakebase: first run: bootstrapping a timeline on 3 safekeepers", flush=True)
            c.track = lambda p: None
            c.base = Postgres(DATA, "base").initdb()
            c.base.base_conf()
            seg = int(c.base.controldata()["Bytes per WAL segment"])
            c.create_timeline(c.base.system_id(), c.base.end_of_wal(), seg_size=seg)
            election = c.elect()
            pg = c.new_compute("compute")
            pg.port = PG_PORT
            pg.conf(port=PG_PORT)
            c.start_primary(pg, election)
            json.dump({"tenant": c.tenant, "timeline": c.timeline, "election": election},
                      open(STATE, "w"))
        else:
            pg.port = PG_PORT
            pg.start()
        print(f"lakebase: ready. Every commit is durable on 2 of 3 safekeepers.\n"
              f'  psql "host=127.0.0.1 port={pg.port} user=postgres dbname=postgres"\n'
              f"  data in {DATA}; Ctrl-C stops everything", flush=True)
        while not stopping:
            time.sleep(0.5)
            for sk in c.sks:
                if not sk.proc.alive() and not stopping:
                    print(f"lakebase: {sk.name} exited; restarting", flush=True)
                    sk.start()
            if pg.pid() is None and not stopping:
                print("lakebase: postgres exited; restarting", flush=True)
                pg.start()
    finally:
        print("lakebase: stopping", flush=True)
        pg.stop("fast")
        c.stop()


if __name__ == "__main__":
    main()
