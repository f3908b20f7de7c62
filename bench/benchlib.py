"""Shared pieces of the benchmarks in bench/.

A benchmark runs every alternative it compares in the same run, each on a
fresh PostgreSQL 15 primary with the same settings (PG_SETTINGS), in one
temporary directory, on loopback. Every process it starts is registered
with the Bench object and stopped by its pid when the benchmark ends, fails
or is interrupted (Ctrl-C, SIGTERM, SIGHUP).
"""
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "e2e"))

import lakebase as lb  # noqa: E402

PGBIN = lb.PGBIN

# The postgresql.conf every alternative shares, on top of Postgres.base_conf
# (wal_level replica, fsync on, wal_keep_size 1GB). Checkpoints are kept out
# of the measured runs; each run starts right after an explicit CHECKPOINT.
PG_SETTINGS = dict(shared_buffers="512MB", max_wal_size="8GB", min_wal_size="1GB",
                   checkpoint_timeout="30min", full_page_writes="on",
                   synchronous_commit="on", max_connections="100")


def env_number(name, default, kind=float):
    v = os.environ.get(name)
    return kind(v) if v not in (None, "") else default


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def _raise_interrupt(signo, frame):
    raise KeyboardInterrupt(f"signal {signo}")


class Bench:
    """A temporary directory and the cleanups of everything started in it.

    Use as a context manager; cleanups run last-registered first. The
    directory is removed at the end unless LB_KEEP_TMP is set; on failure
    the tail of every log in it is shown first."""

    def __init__(self, name):
        self.name = name
        self.cleanups = []

    def __enter__(self):
        for s in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(s, _raise_interrupt)
        # Also when started in the background, where SIGINT comes ignored.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        self.dir = tempfile.mkdtemp(prefix=f"lb-bench-{self.name}-")
        os.chmod(self.dir, 0o755)
        return self

    def on_exit(self, fn):
        self.cleanups.append(fn)
        return fn

    def run_cleanups(self):
        while self.cleanups:
            fn = self.cleanups.pop()
            try:
                fn()
            except Exception as e:  # noqa: BLE001 - keep cleaning up
                log(f"cleanup failed: {e}")

    def __exit__(self, kind, value, tb):
        # A second Ctrl-C must not abandon processes half way.
        old = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            self.run_cleanups()
            if kind is not None and kind is not KeyboardInterrupt:
                self.show_logs()
            if os.environ.get("LB_KEEP_TMP"):
                log(f"kept {self.dir}")
            else:
                shutil.rmtree(self.dir, ignore_errors=True)
        finally:
            signal.signal(signal.SIGINT, old)
        return False

    def show_logs(self, lines=20):
        for dirpath, _, files in os.walk(self.dir):
            for f in files:
                if f.endswith(".log"):
                    path = os.path.join(dirpath, f)
                    with open(path, errors="replace") as fh:
                        tail = fh.readlines()[-lines:]
                    log(f"--- {os.path.relpath(path, self.dir)}\n" + "".join(tail))

    def subdir(self, name):
        """A directory for one alternative's processes and data."""
        path = os.path.join(self.dir, name)
        os.makedirs(path)
        os.chmod(path, 0o755)
        return path

    # ---- processes -------------------------------------------------------------

    def postgres_cleanup(self, pg):
        def stop():
            pid = pg.pid()
            pg.stop("fast")
            if pid and os.path.exists(f"/proc/{pid}"):
                os.kill(pid, signal.SIGKILL)
        return self.on_exit(stop)

    def vanilla_primary(self, workdir, name, **settings):
        """An initdb'd PostgreSQL 15 primary with PG_SETTINGS and settings."""
        pg = lb.Postgres(workdir, name).initdb()
        pg.base_conf()
        pg.conf(**{**PG_SETTINGS, **settings})
        self.postgres_cleanup(pg)
        pg.start()
        return pg

    def lakebase_primary(self, workdir, n):
        """n safekeepers and a primary promoted by their election, whose
        commits wait for ANY n//2+1 of them. Cluster.bootstrap, with
        PG_SETTINGS in the base backup. Returns (cluster, primary)."""
        c = lb.Cluster(workdir, n=n)
        self.on_exit(c.stop)
        c.start()
        c.base = lb.Postgres(workdir, "base").initdb()
        c.base.base_conf()
        c.base.conf(**PG_SETTINGS)
        c.create_timeline(c.base.system_id(), c.base.end_of_wal())
        election = c.elect()
        pg = c.new_compute("pg")
        self.postgres_cleanup(pg)
        c.start_primary(pg, election)
        lb.wait_for(lambda: all(sk.status(c.tenant, c.timeline)["streaming"] for sk in c.sks),
                    30, what="every safekeeper streaming")
        return c, pg

    def receivewal(self, workdir, pg, name):
        """pg_receivewal --synchronous into its own directory, connected as
        application_name=name. Returns the harness Proc (stopped by pid)."""
        d = os.path.join(workdir, name)
        os.makedirs(d)
        argv = [os.path.join(PGBIN, "pg_receivewal"), "-D", d, "--synchronous", "-n", "-w",
                "-d", pg.dsn(application_name=name)]
        proc = lb.Proc(argv, os.path.join(workdir, f"{name}.log"))
        self.on_exit(proc.stop)
        return proc

    def popen(self, argv, **kw):
        """A child in its own session (Ctrl-C reaches only us), killed by pid
        if it is still running at the end."""
        p = subprocess.Popen(argv, start_new_session=True, **kw)

        def kill():
            if p.poll() is None:
                p.kill()
                p.wait()
        self.on_exit(kill)
        return p


def wait_replication(pg, names, timeout=30):
    """Until every name streams to pg as a synchronous (quorum) standby."""
    want = set(names)

    def ready():
        rows = pg.sql("select application_name, state, sync_state from pg_stat_replication")
        ok = {r[0] for r in rows if r[1] == "streaming" and r[2] in ("sync", "quorum")}
        return want <= ok
    lb.wait_for(ready, timeout, what=f"{', '.join(sorted(want))} streaming synchronously")


def quiesce(pgs):
    """CHECKPOINT every primary and sync: no run pays for writing back the
    dirty pages of an earlier one, of any alternative."""
    for pg in pgs:
        pg.sql("checkpoint")
    os.sync()


def current_lsn(pg):
    return lb.lsn_int(pg.sql("select pg_current_wal_lsn()::text")[0][0])


def proc_memory_kb(pid):
    """(VmRSS, VmHWM) of a process in kB, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            fields = dict(line.split(":", 1) for line in f if ":" in line)
        return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])
    except (OSError, KeyError, ValueError):
        return None


class Sampler(threading.Thread):
    """Samples a process's memory, and whatever probe() returns, at a fixed
    rate from a thread of its own.

    samples holds (seconds since start, VmRSS kB, VmHWM kB, probe()). A
    failed probe repeats the previous value."""

    def __init__(self, pid, probe, hz=10.0):
        super().__init__(daemon=True)
        self.pid, self.probe, self.period = pid, probe, 1.0 / hz
        self.samples = []
        self.stopping = threading.Event()
        self.t0 = time.monotonic()

    def sample(self):
        mem = proc_memory_kb(self.pid)
        try:
            value = self.probe()
        except Exception:  # noqa: BLE001 - keep the memory figure
            value = self.samples[-1][3] if self.samples else None
        if mem:
            self.samples.append((time.monotonic() - self.t0, mem[0], mem[1], value))

    def run(self):
        next_at = time.monotonic()
        while not self.stopping.is_set():
            self.sample()
            next_at += self.period
            self.stopping.wait(max(0.0, next_at - time.monotonic()))

    def stop(self):
        self.stopping.set()
        self.join()
        self.sample()


def cpu_seconds(pid):
    """User + system CPU time of a process (all its threads) so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(sorted_values, p):
    """Nearest-rank percentile (p in 0..100) of an ascending list."""
    if not sorted_values:
        return float("nan")
    k = math.ceil(p / 100.0 * len(sorted_values)) - 1
    return sorted_values[max(0, min(len(sorted_values) - 1, k))]


def ratio(a, b):
    return a / b if b else float("nan")
