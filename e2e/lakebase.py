"""Helpers for lakebase end-to-end tests: real processes on loopback.

Every process is started by the test, in the test's own temporary
directory, on free ports, and stopped by its pid. PostgreSQL runs as the
postgres user when the tests run as root.
"""
import copy
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import psycopg

ROOT = os.environ.get("LB_PROJECT_ROOT", os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("LB_BIN_DIR") or os.path.join(ROOT, "build", "bin")
PGBIN = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True).stdout.strip() \
    or "/usr/lib/postgresql/15/bin"
AS_ROOT = os.geteuid() == 0
CTL = os.path.join(BIN, "compute-ctl")
# The role users connect to a compute as (SCRAM; not a superuser).
USER = "app"


_ports_given = set()


def free_port():
    """A port free now and never handed out before by this process: the
    kernel may give the same ephemeral port to two binds in a row once the
    first socket is closed, and a safekeeper given one port for both of its
    listeners never starts."""
    for _ in range(1000):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _ports_given:
            _ports_given.add(port)
            return port
    raise RuntimeError("no free port left that this process has not handed out")


def wait_for(pred, timeout=30.0, interval=0.05, what="condition"):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            v = pred()
            if v:
                return v
        except Exception as e:  # noqa: BLE001 - keep polling, report the last error
            last = e
        time.sleep(interval)
    raise TimeoutError(f"timed out waiting for {what}" + (f": {last}" if last else ""))


# The token http() sends when a call names none: the management token of
# the test's keys (Auth sets it), as the operator's tooling would send.
# token="" sends none.
DEFAULT_TOKEN = None
# Per daemon: its base URL -> the management token of the keys it trusts,
# so that tests with several key sets (module fixtures) send the right one.
TOKEN_BY_BASE = {}


def http(method, url, body=None, timeout=10, token=None):
    """JSON over HTTP; returns (status, parsed body or raw bytes). token: a
    bearer token sent as Authorization (None: DEFAULT_TOKEN; "": none)."""
    data = json.dumps(body).encode() if body is not None and not isinstance(body, bytes) else body
    headers = {"Content-Type": "application/json"}
    if token is None:
        base = "/".join(url.split("/", 3)[:3])
        token = TOKEN_BY_BASE.get(base, DEFAULT_TOKEN)
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            raw, status = r.read(), r.status
    except urllib.error.HTTPError as e:
        raw, status = e.read(), e.code
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw


def http_get_raw(url, token=None, timeout=30):
    """GET url; returns (status, body bytes, response headers as a dict with
    lowercase names). token as for http()."""
    if token is None:
        token = TOKEN_BY_BASE.get("/".join(url.split("/", 3)[:3]), DEFAULT_TOKEN)
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read(), {k.lower(): v for k, v in r.headers.items()}
    except urllib.error.HTTPError as e:
        return e.code, e.read(), {k.lower(): v for k, v in e.headers.items()}


class Auth:
    """Credentials for one test: an Ed25519 key pair made in the test's own
    directory (auth/private/auth.key private, auth/keys/auth.pem public),
    and tokens minted with it by lakebase-token, as management would. A
    daemon gets auth_public_keys=self.keys_dir and its own token file.
    Auth.of(workdir) is the one every helper of that test shares."""

    _by_workdir = {}

    @classmethod
    def of(cls, workdir):
        a = cls._by_workdir.get(workdir)
        if a is None or not os.path.exists(a.public_key):
            a = cls._by_workdir[workdir] = cls(workdir)
        global DEFAULT_TOKEN
        DEFAULT_TOKEN = a.management
        return a

    def __init__(self, workdir, name="auth"):
        self.dir = os.path.join(workdir, "auth")
        self.keys_dir = os.path.join(self.dir, "keys")
        private_dir = os.path.join(self.dir, "private")
        self.name = name
        self.private_key = os.path.join(private_dir, f"{name}.key")
        self.public_key = os.path.join(self.keys_dir, f"{name}.pem")
        if not (os.path.exists(self.private_key) and os.path.exists(self.public_key)):
            # (a data directory that already has its keys, as make run's
            # on a later run, keeps them)
            subprocess.run([os.path.join(BIN, "lakebase-token"), "keygen", private_dir,
                            "--name", name], check=True, capture_output=True)
            os.makedirs(self.keys_dir, exist_ok=True)
            os.replace(os.path.join(private_dir, f"{name}.pem"), self.public_key)
        self.management = self.mint("management", sub="test-management")
        self._files = {}

    def mint(self, role, tenant=None, timeline=None, sub=None, endpoint=None, ttl=None,
             key=None):
        argv = [os.path.join(BIN, "lakebase-token"), "mint", "--key", key or self.private_key,
                "--role", role]
        for flag, v in (("--tenant", tenant), ("--timeline", timeline), ("--sub", sub),
                        ("--endpoint", endpoint), ("--ttl", ttl)):
            if v is not None:
                argv += [flag, str(v)]
        r = subprocess.run(argv, capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        return r.stdout.strip()

    def token_file_for(self, name, role, **claims):
        """A token file for a daemon or compute (minted once per name)."""
        if name not in self._files:
            self._files[name] = self.token_file(name, self.mint(role, **claims))
        return self._files[name]

    def compute_token(self, tenant, timeline, endpoint=None):
        return self.mint("compute", tenant=tenant, timeline=timeline, sub="compute",
                         endpoint=endpoint)

    def token_file(self, name, token):
        """Write token to auth/tokens/<name> (mode 0600); returns the path."""
        d = os.path.join(self.dir, "tokens")
        os.makedirs(d, exist_ok=True)
        path = os.path.join(d, name)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(token + "\n")
        return path

    def other_key(self, workdir, name="other"):
        """A second, unrelated key pair (not among the daemons' keys): tokens
        signed with it must be refused."""
        d = os.path.join(workdir, "auth-other")
        subprocess.run([os.path.join(BIN, "lakebase-token"), "keygen", d, "--name", name],
                       check=True, capture_output=True)
        return os.path.join(d, f"{name}.key")


def chown_pg(path):
    if AS_ROOT:
        pw = pwd.getpwnam("postgres")
        for dirpath, dirnames, filenames in os.walk(path):
            os.chown(dirpath, pw.pw_uid, pw.pw_gid)
            for f in filenames:
                os.chown(os.path.join(dirpath, f), pw.pw_uid, pw.pw_gid)


def secret_file(path):
    """A password in path (made if missing, mode 0600); returns it."""
    if not os.path.exists(path):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(24) + "\n")
    with open(path) as f:
        return f.readline().strip()


def as_pg(cmd):
    return (["runuser", "-u", "postgres", "--"] if AS_ROOT else []) + cmd


class Proc:
    """A child process with its log file; stop() by pid."""

    def __init__(self, argv, log, env=None):
        self.argv = argv
        self.log = log
        self.logf = open(log, "ab")
        self.p = subprocess.Popen(argv, stdout=self.logf, stderr=subprocess.STDOUT, env=env,
                                  start_new_session=True)

    @property
    def pid(self):
        return self.p.pid

    def alive(self):
        return self.p.poll() is None

    def kill(self, sig=signal.SIGKILL):
        if self.alive():
            os.kill(self.p.pid, sig)
        if sig in (signal.SIGKILL, signal.SIGTERM):
            try:
                self.p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.kill(self.p.pid, signal.SIGKILL)
                self.p.wait()

    def stop(self):
        self.kill(signal.SIGTERM)
        self.logf.close()


class Safekeeper:
    def __init__(self, workdir, name, peers=None, extra_args=None, env=None):
        self.auth = Auth.of(workdir)
        self.name = name
        self.env = env
        self.extra_args = list(extra_args or [])
        self.dir = os.path.join(workdir, name)
        os.makedirs(self.dir, exist_ok=True)
        self.http_port = free_port()
        self.pg_port = free_port()
        self.peers = peers or []
        self.proc = None
        # the password of role lakebase_safekeeper on the computes (Cluster sets it)
        self.compute_password_file = None

    @property
    def url(self):
        return f"http://127.0.0.1:{self.http_port}"

    def start(self):
        argv = [os.path.join(BIN, "safekeeper"), "--id", self.name,
                "--data_dir", os.path.join(self.dir, "data"),
                "--listen_http", f"127.0.0.1:{self.http_port}",
                "--listen_pg", f"127.0.0.1:{self.pg_port}"]
        if self.peers:
            argv += ["--peers", ",".join(f"{p.name}=127.0.0.1:{p.pg_port}" for p in self.peers),
                     "--peers_http", ",".join(f"{p.name}=127.0.0.1:{p.http_port}"
                                              for p in self.peers)]
        argv += ["--auth_public_keys", self.auth.keys_dir,
                 "--auth_token_file", self.auth.token_file_for(self.name, "safekeeper",
                                                               sub=self.name)]
        if self.compute_password_file:
            argv += ["--compute_password_file", self.compute_password_file]
        argv += self.extra_args
        TOKEN_BY_BASE[self.url] = self.auth.management
        self.proc = Proc(argv, os.path.join(self.dir, "safekeeper.log"),
                         env=dict(os.environ, **self.env) if self.env else None)
        wait_for(lambda: http("GET", self.url + "/healthz")[0] == 200, 15,
                 what=f"{self.name} to listen")
        return self

    def stop(self):
        if self.proc:
            self.proc.stop()

    def kill(self):
        if self.proc:
            self.proc.kill()

    def tl(self, tenant, timeline, suffix=""):
        return f"{self.url}/v1/tenant/{tenant}/timeline/{timeline}{suffix}"

    def wal(self, tenant, timeline, start, end):
        """Raw WAL bytes [start, end) through the peer-recovery endpoint."""
        out = b""
        pos = start
        while pos < end:
            n = min(end - pos, 4 << 20)
            st, body = http("GET", self.tl(tenant, timeline,
                                           f"/wal?from={lsn_str(pos)}&to={lsn_str(pos + n)}"))
            assert st == 200 and isinstance(body, bytes) and len(body) == n, (st, body)
            out += body
            pos += n
        return out

    def status(self, tenant, timeline):
        st, body = http("GET", self.tl(tenant, timeline))
        assert st == 200, body
        return body


class Wire:
    """A hand-driven PostgreSQL protocol connection to a walsender port."""

    def __init__(self, port, timeout=10):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""

    def close(self):
        self.s.close()

    def send(self, b):
        self.s.sendall(b)

    @staticmethod
    def startup_packet(**params):
        body = struct.pack("!I", 196608)
        for k, v in params.items():
            body += k.encode() + b"\0" + v.encode() + b"\0"
        body += b"\0"
        return struct.pack("!I", len(body) + 4) + body

    @staticmethod
    def msg(kind, body):
        return kind + struct.pack("!I", len(body) + 4) + body

    @staticmethod
    def password(token):
        """The PasswordMessage that answers the safekeeper's cleartext
        password request: the token."""
        return Wire.msg(b"p", token.encode() + b"\0")

    def _fill(self):
        try:
            chunk = self.s.recv(65536)
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            return False
        self.buf += chunk
        return True

    def read(self):
        """Next message as (type, body); None at end of stream."""
        while len(self.buf) < 5:
            if not self._fill():
                return None
        n = struct.unpack("!I", self.buf[1:5])[0]
        while len(self.buf) < 1 + n:
            if not self._fill():
                return None
        m = (self.buf[:1], self.buf[5:1 + n])
        self.buf = self.buf[1 + n:]
        return m

    def until_ready(self):
        """Messages up to ReadyForQuery, or up to the end of the stream."""
        out = []
        while True:
            m = self.read()
            if m is None:
                return out
            out.append(m)
            if m[0] == b"Z":
                return out

    def query(self, q):
        self.send(self.msg(b"Q", q.encode() + b"\0"))
        return self.until_ready()

    @staticmethod
    def error_fields(body):
        fields = {}
        for part in body.split(b"\0"):
            if part:
                fields[chr(part[0])] = part[1:].decode(errors="replace")
        return fields


def lsn_int(s):
    hi, lo = s.split("/")
    return (int(hi, 16) << 32) | int(lo, 16)


def lsn_str(v):
    return f"{v >> 32:X}/{v & 0xFFFFFFFF:X}"


class Postgres:
    """A vanilla PostgreSQL 15 cluster in dir/pgdata, on 127.0.0.1:port."""

    def __init__(self, workdir, name="pg"):
        self.dir = os.path.join(workdir, name)
        self.datadir = os.path.join(self.dir, "pgdata")
        self.sockdir = os.path.join(self.dir, "run")
        self.log = os.path.join(self.dir, "postgres.log")
        self.port = free_port()
        os.makedirs(self.sockdir, exist_ok=True)
        os.chmod(workdir, 0o755)
        chown_pg(self.dir)

    def run(self, cmd, check=True):
        return subprocess.run(as_pg(cmd), capture_output=True, text=True, check=check)

    def initdb(self, *args):
        self.run([os.path.join(PGBIN, "initdb"), "-k", "-A", "trust", "-U", "postgres",
                  "-D", self.datadir, *args])
        return self

    def conf(self, **settings):
        with open(os.path.join(self.datadir, "postgresql.auto.conf"), "a") as f:
            for k, v in settings.items():
                v = str(v).replace("'", "''")
                f.write(f"{k} = '{v}'\n")

    def base_conf(self):
        self.conf(port=self.port, listen_addresses="127.0.0.1",
                  unix_socket_directories=self.sockdir, wal_level="replica",
                  max_wal_senders=10, wal_keep_size="1GB", fsync="on",
                  logging_collector="off")

    def start(self, wait=True):
        self.run([os.path.join(PGBIN, "pg_ctl"), "-D", self.datadir, "-l", self.log,
                  "-w" if wait else "-W", "start"])
        return self

    def stop(self, mode="fast"):
        self.run([os.path.join(PGBIN, "pg_ctl"), "-D", self.datadir, "-m", mode, "-w", "stop"],
                 check=False)

    def pid(self):
        try:
            with open(os.path.join(self.datadir, "postmaster.pid")) as f:
                return int(f.readline())
        except (OSError, ValueError):
            return None

    def kill9(self):
        pid = self.pid()
        if pid:
            os.kill(pid, signal.SIGKILL)
            wait_for(lambda: not os.path.exists(f"/proc/{pid}"), 10, what="postmaster to die")

    def dsn(self, **kw):
        d = dict(host="127.0.0.1", port=self.port, user="postgres", dbname="postgres")
        d.update(kw)
        return " ".join(f"{k}={v}" for k, v in d.items())

    def connect(self, **kw):
        import psycopg
        return psycopg.connect(self.dsn(**kw), autocommit=True)

    def sql(self, query, *args):
        with self.connect() as c:
            cur = c.execute(query, args or None)
            return cur.fetchall() if cur.description else None

    def controldata(self):
        out = self.run([os.path.join(PGBIN, "pg_controldata"), self.datadir]).stdout
        return dict(line.split(":", 1) for line in out.splitlines() if ":" in line)

    def system_id(self):
        return self.controldata()["Database system identifier"].strip()

    def end_of_wal(self):
        """End of the last record in pg_wal (a stopped cluster), by pg_waldump."""
        cd = self.controldata()
        tli = int(cd["Latest checkpoint's TimeLineID"])
        ckpt = cd["Latest checkpoint location"].strip()
        out = self.run([os.path.join(PGBIN, "pg_waldump"), "-p",
                        os.path.join(self.datadir, "pg_wal"), "-t", str(tli), "-s", ckpt],
                       check=False).stdout
        last = None
        for line in out.splitlines():
            m = re.search(r"len \(rec/tot\):\s*\d+/\s*(\d+),.*lsn: ([0-9A-F]+/[0-9A-F]+)", line)
            if m:
                last = (lsn_int(m.group(2)), int(m.group(1)))
        assert last, out
        return (last[0] + last[1] + 7) & ~7


class Cluster:
    """N safekeepers forming one set, and one lakebase timeline on them."""

    def __init__(self, workdir, n=3, sk_args=None):
        import uuid
        self.workdir = workdir
        # Computes' secrets: the password of role lakebase_safekeeper, as
        # which the safekeepers connect to a compute's PostgreSQL (their
        # compute_password_file), and the user's. Kept if they exist, so
        # that `make run` keeps its passwords across runs.
        self.sk_password_file = os.path.join(workdir, "safekeeper.password")
        self.sk_password = secret_file(self.sk_password_file)
        self.user_password_file = os.path.join(workdir, "user.password")
        self.user_password = secret_file(self.user_password_file)
        self.sks = [Safekeeper(workdir, f"sk-{i}",
                               extra_args=["--compute_password_file", self.sk_password_file]
                               + list(sk_args or [])) for i in range(n)]
        for sk in self.sks:
            sk.peers = [p for p in self.sks if p is not sk]
        self.tenant = uuid.uuid4().hex
        self.timeline = uuid.uuid4().hex
        self.auth = Auth.of(workdir)

    def compute_token_file(self, endpoint=None):
        """A compute token of this timeline (with endpoint: the compute's
        host:port, the address safekeepers will stream from)."""
        key = f"compute-{self.tenant}-{self.timeline}-{endpoint or ''}".replace(":", "_")
        return self.auth.token_file_for(key, "compute", tenant=self.tenant,
                                        timeline=self.timeline, sub="compute",
                                        endpoint=endpoint)

    def compute_token(self, endpoint=None):
        with open(self.compute_token_file(endpoint)) as f:
            return f.read().strip()

    def start(self):
        try:
            for sk in self.sks:
                sk.start()
        except BaseException:
            self.stop()  # those already started would outlive the test
            raise
        return self

    def stop(self):
        for sk in self.sks:
            sk.stop()

    def create_timeline(self, system_id, start_lsn, pg_tli=1, seg_size=16 * 1024 * 1024, sks=None):
        for sk in sks or self.sks:
            st, body = http("POST", f"{sk.url}/v1/tenant/{self.tenant}/timeline",
                            {"timeline_id": self.timeline, "system_id": str(system_id),
                             "start_lsn": lsn_str(start_lsn), "pg_tli": pg_tli,
                             "wal_seg_size": seg_size})
            assert st == 200, body

    def elect(self, sks=None, check=True):
        urls = ",".join(sk.url for sk in (sks or self.sks))
        r = subprocess.run([os.path.join(BIN, "safekeeper"), "elect", "--tenant", self.tenant,
                            "--timeline", self.timeline, "--safekeepers", urls,
                            "--token_file", self.compute_token_file()],
                           capture_output=True, text=True)
        if check:
            assert r.returncode == 0, r.stderr
        return json.loads(r.stdout) if r.returncode == 0 else r

    def announce(self, election, pg, sks=None):
        urls = ",".join(sk.url for sk in (sks or self.sks))
        endpoint = f"127.0.0.1:{pg.port}"
        r = subprocess.run([os.path.join(BIN, "safekeeper"), "elect", "announce", "--tenant",
                            self.tenant, "--timeline", self.timeline, "--safekeepers", urls,
                            "--election", json.dumps(election), "--compute", endpoint,
                            "--token_file", self.compute_token_file(endpoint)],
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr + r.stdout
        return json.loads(r.stdout)

    def restore_script(self, pg, sks=None):
        """A restore_command that fetches WAL and history files from the safekeepers."""
        path = os.path.join(pg.dir, "restore.sh")
        urls = " ".join(sk.url for sk in (sks or self.sks))
        header = os.path.join(pg.dir, "restore.auth")
        with open(header, "w") as f:
            f.write(f"Authorization: Bearer {self.compute_token()}\n")
        os.chmod(header, 0o600)
        with open(path, "w") as f:
            f.write(f"""#!/bin/sh
f="$1"; p="$2"
case "$f" in *.history) kind=history ;; *) kind=segment ;; esac
for u in {urls}; do
    if curl -sf --max-time 20 -H @{header} -o "$p.part" "$u/v1/tenant/{self.tenant}/timeline/{self.timeline}/$kind/$f"; then
        mv "$p.part" "$p"; exit 0
    fi
done
rm -f "$p.part"; exit 1
""")
        os.chmod(path, 0o755)
        chown_pg(pg.dir)
        return path

    def start_primary(self, pg, election, sks=None, restore=None):
        """Recover pg (a stopped cluster) to the election's start, promote, announce.
        restore: a restore_command script (default: the safekeepers')."""
        script = restore or self.restore_script(pg, sks)
        # Names with a dash must be double-quoted in synchronous_standby_names.
        names = ", ".join(f'"{sk.name}"' for sk in self.sks)
        pg.conf(restore_command=f"{script} %f %p", recovery_target_timeline="latest",
                synchronous_standby_names=f"ANY {len(self.sks) // 2 + 1} ({names})")
        open(os.path.join(pg.datadir, "recovery.signal"), "w").close()
        chown_pg(pg.dir)
        pg.start()
        wait_for(lambda: pg.sql("select not pg_is_in_recovery()")[0][0], 60,
                 what="the compute to promote")
        tli = int(pg.sql("select timeline_id from pg_control_checkpoint()")[0][0])
        assert tli == election["tli"], (tli, election)
        self.safekeeper_role(pg)
        self.announce(election, pg, sks)
        return pg

    def safekeeper_role(self, pg):
        """The role the safekeepers connect as, on a vanilla compute (compute-ctl
        makes its own): committed locally, as no safekeeper streams yet."""
        pg.sql("set synchronous_commit = local; do $$ begin "
               "if not exists (select from pg_roles where rolname = 'lakebase_safekeeper') "
               "then create role lakebase_safekeeper login replication; end if; end $$")

    def bootstrap(self, pg_name="pg0", initdb_args=()):
        """initdb a cluster (kept as self.base, the base backup every later
        compute starts from), create the timeline at its end of WAL, elect,
        and start the first primary from a copy of it."""
        self.base = Postgres(self.workdir, "base").initdb(*initdb_args)
        self.base.base_conf()
        seg = int(self.base.controldata()["Bytes per WAL segment"])
        self.create_timeline(self.base.system_id(), self.base.end_of_wal(), seg_size=seg)
        election = self.elect()
        return self.start_primary(self.new_compute(pg_name), election), election

    def start_standby(self, name, sk):
        """A vanilla hot standby streaming from safekeeper sk: no copy of the
        primary, only the base backup and the safekeepers' WAL."""
        pg = self.new_compute(name)
        script = self.restore_script(pg)
        pg.conf(primary_conninfo=f"host=127.0.0.1 port={sk.pg_port} user=postgres "
                f"application_name={name} password={self.compute_token()} "
                f"options='-c tenant_id={self.tenant} -c timeline_id={self.timeline}'",
                restore_command=f"{script} %f %p", recovery_target_timeline="latest",
                hot_standby="on")
        open(os.path.join(pg.datadir, "standby.signal"), "w").close()
        chown_pg(pg.dir)
        pg.start()
        return pg

    def new_compute(self, name):
        """A compute's data directory: a copy of the base backup."""
        pg = Postgres(self.workdir, name)
        shutil.copytree(self.base.datadir, pg.datadir, symlinks=True)
        chown_pg(pg.dir)
        pg.conf(port=pg.port, unix_socket_directories=pg.sockdir)
        if hasattr(self, "track"):
            self.track(pg)
        return pg


class S3rver:
    """An S3 server (s3rver, from npm) with one bucket, in dir, on a free
    port; requests go unsigned."""
    BUCKET = "lakebase"

    def __init__(self, dir, address="127.0.0.1"):
        self.dir = dir
        self.address = address
        self.port = free_port()
        os.makedirs(os.path.join(dir, "data"), exist_ok=True)
        script = os.path.join(ROOT, "node_modules", "s3rver", "bin", "s3rver.js")
        # The legacy provider: s3rver makes its continuation tokens with DES.
        self.proc = Proc(["node", "--openssl-legacy-provider", script, "-d",
                          os.path.join(dir, "data"), "-a", address, "-p", str(self.port),
                          "--configure-bucket", self.BUCKET, "-s"],
                         os.path.join(dir, "s3rver.log"))

        def up():
            try:
                socket.create_connection((self.address, self.port), 0.2).close()
                return True
            except OSError:
                return False
        wait_for(up, 30, what="s3rver to listen")

    def url(self, prefix):
        return (f"s3://{self.BUCKET}/{prefix}?endpoint=http://{self.address}:{self.port}"
                f"&region=us-east-1&addressing=path")

    def keys(self, prefix):
        """The bucket's keys under prefix (ListObjectsV2, unsigned)."""
        import xml.etree.ElementTree as ET
        out, token = [], None
        while True:
            q = {"list-type": "2", "prefix": prefix}
            if token:
                q["continuation-token"] = token
            url = (f"http://{self.address}:{self.port}/{self.BUCKET}?"
                   + urllib.parse.urlencode(q))
            with urllib.request.urlopen(url, timeout=10) as r:
                root = ET.fromstring(r.read())
            ns = root.tag[:root.tag.index("}") + 1] if root.tag.startswith("{") else ""
            out += [k.text for k in root.iter(f"{ns}Key")]
            token = root.findtext(f"{ns}NextContinuationToken")
            if not token:
                return out

    def stop(self):
        self.proc.stop()


# One S3 server per test directory, when LB_REMOTE_STORAGE=s3 (make tsan);
# conftest's workdir fixture stops it.
_s3rvers = {}


def s3rver_for(workdir):
    if workdir not in _s3rvers:
        _s3rvers[workdir] = S3rver(os.path.join(workdir, "s3rver"))
    return _s3rvers[workdir]


def stop_s3rvers(workdir):
    s = _s3rvers.pop(workdir, None)
    if s:
        s.stop()


def default_remote(workdir):
    """The object store a test's pageserver uses: a directory, or with
    LB_REMOTE_STORAGE=s3 a bucket on an s3rver of the test's own."""
    if os.environ.get("LB_REMOTE_STORAGE") == "s3":
        return s3rver_for(workdir).url("pageserver")
    return f"file://{os.path.join(workdir, 'remote-storage')}"


class RemoteStore:
    """What tests see of a pageserver's object store, file:// or s3://
    (path style, unsigned): keys relative to the store's prefix."""

    def __init__(self, url):
        self.url = url

    def _s3(self):
        from urllib.parse import urlparse, parse_qs
        u = urlparse(self.url)
        endpoint = parse_qs(u.query)["endpoint"][0]
        return f"{endpoint}/{u.netloc}", u.path.strip("/")

    def _path(self, key):
        return os.path.join(self.url[len("file://"):], key)

    def list(self, prefix):
        """{key: size} of every object under prefix."""
        if self.url.startswith("file://"):
            root = self._path(prefix)
            out = {}
            for d, _, files in os.walk(root):
                for f in files:
                    if not f.startswith(".lbtmp-"):
                        full = os.path.join(d, f)
                        out[os.path.relpath(full, self._path(""))] = os.path.getsize(full)
            return out
        import xml.etree.ElementTree as ET
        base, pfx = self._s3()
        out, token = {}, None
        while True:
            q = f"?list-type=2&prefix={pfx}/{prefix}" + \
                (f"&continuation-token={urllib.parse.quote(token)}" if token else "")
            with urllib.request.urlopen(base + q, timeout=30) as r:
                root = ET.fromstring(r.read())
            ns = {"s": root.tag.split("}")[0].strip("{")}
            for c in root.findall("s:Contents", ns):
                out[c.find("s:Key", ns).text[len(pfx) + 1:]] = int(c.find("s:Size", ns).text)
            if root.findtext("s:IsTruncated", "false", ns) != "true":
                return out
            token = root.findtext("s:NextContinuationToken", None, ns)

    def exists(self, key):
        if self.url.startswith("file://"):
            return os.path.isfile(self._path(key))
        return key in self.list(key)

    def get(self, key):
        if self.url.startswith("file://"):
            with open(self._path(key), "rb") as f:
                return f.read()
        base, pfx = self._s3()
        with urllib.request.urlopen(f"{base}/{pfx}/{key}", timeout=30) as r:
            return r.read()

    def put(self, key, data):
        if self.url.startswith("file://"):
            os.makedirs(os.path.dirname(self._path(key)), exist_ok=True)
            with open(self._path(key), "wb") as f:
                f.write(data)
            return
        base, pfx = self._s3()
        req = urllib.request.Request(f"{base}/{pfx}/{key}", data=data, method="PUT")
        urllib.request.urlopen(req, timeout=30).read()


class Pageserver:
    def __init__(self, workdir, name="pageserver", remote=None, extra_args=None):
        self.auth = Auth.of(workdir)
        self.name = name
        self.extra_args = list(extra_args or [])
        self.dir = os.path.join(workdir, name)
        os.makedirs(self.dir, exist_ok=True)
        self.data = os.path.join(self.dir, "data")
        self.remote = remote or default_remote(workdir)
        self.store = RemoteStore(self.remote)
        self.port = free_port()
        self.proc = None

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def start(self):
        self.proc = Proc([os.path.join(BIN, "pageserver"), "--data_dir", self.data,
                          "--listen_http", f"127.0.0.1:{self.port}",
                          "--remote_storage", self.remote,
                          "--auth_public_keys", self.auth.keys_dir,
                          "--auth_token_file", self.auth.token_file_for(
                              self.name, "pageserver", sub=self.name)] + self.extra_args,
                         os.path.join(self.dir, "pageserver.log"))
        wait_for(lambda: http("GET", self.url + "/healthz")[0] == 200, 15,
                 what="the pageserver to listen")
        return self

    def stop(self):
        if self.proc:
            was_alive = self.proc.alive()
            self.proc.stop()
            self.check_sanitizer()
            # SIGTERM stops it cleanly (exit 0): a lost signal shows as the
            # SIGKILL Proc.stop falls back to.
            rc = self.proc.p.returncode
            assert not was_alive or rc == 0, f"the pageserver exited with {rc} on SIGTERM"

    def check_sanitizer(self):
        """A ThreadSanitizer build (make tsan) reports races in its log."""
        with open(os.path.join(self.dir, "pageserver.log"), errors="replace") as f:
            log = f.read()
        i = log.find("WARNING: ThreadSanitizer")
        assert i < 0, "ThreadSanitizer report in the pageserver's log:\n" + log[i:i + 6000]

    def kill(self, with_standbys=False):
        """kill -9 the pageserver; with_standbys: its redo standbys too, as
        when the whole machine goes (they outlive the pageserver otherwise)."""
        if self.proc:
            self.proc.kill()
        if with_standbys:
            import glob
            for pidfile in glob.glob(os.path.join(self.data, "standby", "*", "pgdata",
                                                  "postmaster.pid")):
                try:
                    with open(pidfile) as f:
                        pid = int(f.readline())
                    os.kill(pid, signal.SIGKILL)
                    wait_for(lambda: not os.path.exists(f"/proc/{pid}"), 10,
                             what="a redo standby to die")
                except (OSError, ValueError):
                    pass

    def tl(self, tenant, timeline="", suffix=""):
        return f"{self.url}/v1/tenant/{tenant}/timeline" + (f"/{timeline}" if timeline else "") + suffix

    def restore_script(self, pg, tenant, timeline):
        """A restore_command that fetches WAL and history files from the
        pageserver's WAL endpoint (the timeline's own WAL and its ancestors')."""
        path = os.path.join(pg.dir, "restore.sh")
        # A compute's token: its own timeline (the pageserver serves the
        # ancestors' WAL under it).
        header = os.path.join(pg.dir, "restore-pageserver.auth")
        with open(header, "w") as f:
            f.write(f"Authorization: Bearer {self.auth.compute_token(tenant, timeline)}\n")
        os.chmod(header, 0o600)
        with open(path, "w") as f:
            f.write(f"""#!/bin/sh
if curl -sf --max-time 60 -H @{header} -o "$2.part" "{self.tl(tenant, timeline)}/wal/$1"; then
    mv "$2.part" "$2"; exit 0
fi
rm -f "$2.part"; exit 1
""")
        os.chmod(path, 0o755)
        chown_pg(pg.dir)
        return path

    def create(self, tenant, timeline, ancestor=None, lsn=None):
        body = {"timeline_id": timeline}
        if ancestor:
            body.update(ancestor_timeline_id=ancestor, ancestor_lsn=lsn)
        return http("POST", self.tl(tenant), body, timeout=120)

    def basebackup(self, tenant, timeline, target_dir, lsn=None):
        """Fetch a basebackup and unpack it into target_dir (a new directory)."""
        import tarfile
        import io
        url = self.tl(tenant, timeline, "/basebackup" + (f"?lsn={lsn}" if lsn else ""))
        req = urllib.request.Request(url, headers={
            "Authorization": f"Bearer {self.auth.compute_token(tenant, timeline)}"})
        with urllib.request.urlopen(req, timeout=120) as r:
            data = r.read()
            headers = dict(r.headers)
        os.makedirs(target_dir, mode=0o700)
        with tarfile.open(fileobj=io.BytesIO(data)) as t:
            t.extractall(target_dir)
        chown_pg(target_dir)
        os.chmod(target_dir, 0o700)
        return headers, len(data)


# Shared by the compute, pageserver and fault tests, the benchmarks and
# scripts/run.py.

class BlockedCommit(threading.Thread):
    """Runs one statement in its own connection; records whether it returned."""

    def __init__(self, dsn, sql):
        super().__init__(daemon=True)
        self.dsn, self.sql = dsn, sql
        self.done = threading.Event()
        self.error = None

    def run(self):
        try:
            with psycopg.connect(self.dsn, autocommit=True) as c:
                c.execute(self.sql)
        except Exception as e:  # noqa: BLE001 - reported to the test
            self.error = e
        self.done.set()


class ComputeCtl:
    """One compute-ctl process and its spec, in workdir/name."""

    def __init__(self, cluster, ps, name, mode="primary", timeline=None, lsn=None,
                 settings=None, sks=None, tenant=None, workdir=None, port=None, http_port=None):
        self.dir = os.path.join(workdir or cluster.workdir, name)
        os.makedirs(self.dir, exist_ok=True)
        os.chmod(self.dir, 0o755)
        # The user's role and password are the tenant's: every compute of
        # the cluster (primary, replica, static) takes them from one file.
        self.user = USER
        self.password = cluster.user_password
        self.port = port or free_port()
        self.http_port = http_port or free_port()
        self.spec = {
            "tenant_id": tenant or cluster.tenant,
            "timeline_id": timeline or cluster.timeline,
            "mode": mode,
            "pageserver": ps.url,
            "safekeepers": [{"name": sk.name, "http": sk.url, "pg": f"127.0.0.1:{sk.pg_port}"}
                            for sk in (sks or cluster.sks)],
            "pg_port": self.port,
            "listen": f"127.0.0.1:{self.http_port}",
            "data_dir": os.path.join(self.dir, "pgdata"),
            "settings": settings or {"shared_buffers": "32MB"},
            "user": self.user,
            "password_file": cluster.user_password_file,
            "safekeeper_password_file": cluster.sk_password_file,
            # its token towards the safekeepers: its own timeline, and the
            # address they stream from
            "auth_token_file": cluster.auth.token_file_for(
                f"{name}-{self.port}-{tenant or cluster.tenant}-{timeline or cluster.timeline}"
                .replace("/", "_"),
                "compute", tenant=tenant or cluster.tenant,
                timeline=timeline or cluster.timeline, sub=name,
                endpoint=f"127.0.0.1:{self.port}"),
            "auth_public_keys": cluster.auth.keys_dir,
        }
        # Callers of compute-ctl's HTTP API: the tests act as management.
        self.token = cluster.auth.management
        if lsn:
            self.spec["lsn"] = lsn
        self.ps = ps
        self.proc = None

    @property
    def url(self):
        return f"http://127.0.0.1:{self.http_port}"

    def point_pageserver(self):
        """Management tells the pageserver where the timeline's WAL is (the
        PUT of safekeepers is management's: a compute token may not pick the
        addresses a pageserver connects to), as the controller does for a
        primary."""
        sks = [{"pg": sk["pg"], "http": sk["http"]} for sk in self.spec["safekeepers"]]
        st, body = http("PUT", f"{self.ps.url}/v1/tenant/{self.spec['tenant_id']}/timeline/"
                        f"{self.spec['timeline_id']}/safekeepers", {"safekeepers": sks})
        assert st == 200, (st, body)

    def create_sk_timelines(self):
        """Management creates the timeline on each safekeeper that lacks it,
        starting where the pageserver's does, as the controller does before
        it starts a primary (a compute token may not create). A safekeeper
        that does not answer is left to the election (a majority suffices);
        a timeline the pageserver lacks is compute-ctl's to report."""
        t, l = self.spec["tenant_id"], self.spec["timeline_id"]
        st, meta = http("GET", f"{self.ps.url}/v1/tenant/{t}/timeline/{l}")
        if st != 200:
            return
        body = {k: meta[k] for k in ("system_id", "start_lsn", "pg_tli", "wal_seg_size")}
        body["timeline_id"] = l
        for sk in self.spec["safekeepers"]:
            try:
                st, _ = http("GET", f"{sk['http']}/v1/tenant/{t}/timeline/{l}")
                if st == 404:
                    st, reply = http("POST", f"{sk['http']}/v1/tenant/{t}/timeline", body)
                    assert st in (200, 201, 409), (sk["name"], st, reply)
            except OSError:
                pass

    def write_spec(self, yaml=False):
        path = os.path.join(self.dir, "spec.yaml" if yaml else "spec.json")
        with open(path, "w") as f:
            if yaml:
                f.write(to_yaml(self.spec))
            else:
                json.dump(self.spec, f)
        return path

    def start(self, wait=True, yaml=True):
        spec = self.write_spec(yaml)
        if self.spec["mode"] == "primary":
            self.create_sk_timelines()
        self.proc = Proc([os.path.join(BIN, "compute-ctl"), "--spec", spec],
                         os.path.join(self.dir, "compute-ctl.log"))
        if wait:
            self.wait_ready()
        return self

    def status(self):
        st, body = http("GET", self.url + "/status", token=self.token)
        assert st == 200, body
        return body

    def ready(self):
        """True when compute-ctl answers that its PostgreSQL is ready."""
        try:
            st, body = http("GET", self.url + "/status", timeout=2, token=self.token)
        except OSError:
            return False
        return st == 200 and body.get("state") == "ready"

    def wait_ready(self, timeout=120, stop=lambda: False):
        """Until ready; raises if compute-ctl exits, the time runs out or
        stop() says so."""
        deadline = time.time() + timeout
        while time.time() < deadline and not stop():
            if not self.proc.alive():
                raise AssertionError(f"compute-ctl exited {self.proc.p.returncode}: "
                                     + self.log_tail())
            try:
                st, body = http("GET", self.url + "/status", token=self.token)
            except OSError:
                st, body = None, None
            if st == 200 and body["state"] == "ready":
                if self.spec["mode"] == "primary":
                    self.point_pageserver()
                return body
            time.sleep(0.2)
        raise AssertionError("not ready: " + self.log_tail())

    def psql_string(self):
        return f'psql "{self.dsn()}"'

    def log_tail(self, n=40):
        with open(self.proc.log, errors="replace") as f:
            return "".join(f.readlines()[-n:])

    def dsn(self, **kw):
        """The user's connection: its role and password, over TCP."""
        d = dict(host="127.0.0.1", port=self.port, user=self.user, password=self.password,
                 dbname="postgres")
        d.update(kw)
        return " ".join(f"{k}={v}" for k, v in d.items())

    def sql(self, query, *args):
        with psycopg.connect(self.dsn(), autocommit=True) as c:
            cur = c.execute(query, args or None)
            return cur.fetchall() if cur.description else None

    def superuser_dsn(self):
        """compute-ctl's own way in: the unix socket in the data directory,
        peer authentication (the tests run as root or as the PostgreSQL user)."""
        return f"host={self.spec['data_dir']} port={self.port} user=postgres dbname=postgres"

    def superuser_sql(self, query):
        with psycopg.connect(self.superuser_dsn(), autocommit=True) as c:
            cur = c.execute(query)
            return cur.fetchall() if cur.description else None

    def pg_pid(self):
        try:
            with open(os.path.join(self.spec["data_dir"], "postmaster.pid")) as f:
                return int(f.readline())
        except (OSError, ValueError):
            return None

    def wait_exit(self, timeout=60):
        try:
            return self.proc.p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError("compute-ctl did not exit: " + self.log_tail())

    def stop(self):
        """SIGTERM; returns the exit code."""
        if self.proc and self.proc.alive():
            os.kill(self.proc.pid, signal.SIGTERM)
            code = self.wait_exit()
        else:
            code = self.proc.p.returncode if self.proc else None
        return code

    def cleanup(self):
        """Whatever happened: no compute-ctl and no postgres left behind."""
        if self.proc:
            if self.proc.alive():
                self.proc.kill(signal.SIGKILL)
            self.proc.logf.close()
        pid = self.pg_pid()
        if pid and os.path.exists(f"/proc/{pid}"):
            try:
                os.kill(pid, signal.SIGQUIT)
                wait_for(lambda: not os.path.exists(f"/proc/{pid}"), 10)
            except (OSError, TimeoutError):
                pass


def to_yaml(v, indent=0):
    """Enough YAML for a spec: nested mappings, lists of mappings, scalars."""
    pad = " " * indent
    out = ""
    for k, x in v.items():
        if isinstance(x, dict):
            out += f"{pad}{k}:\n" + to_yaml(x, indent + 2)
        elif isinstance(x, list) and not x:
            out += f"{pad}{k}: []\n"
        elif isinstance(x, list):
            out += f"{pad}{k}:\n"
            for item in x:
                lines = to_yaml(item, indent + 4).splitlines()
                out += f"{pad}  - {lines[0].strip()}\n" + "".join(l + "\n" for l in lines[1:])
        elif isinstance(x, str):
            out += f"{pad}{k}: {json.dumps(x)}\n"
        else:
            out += f"{pad}{k}: {json.dumps(x)}\n"
    return out


def table_hashes(pg):
    """Every user table: row count and a hash of its rows in a fixed order."""
    out = {}
    for schema, name in pg.sql("select schemaname, tablename from pg_tables where schemaname "
                               "not in ('pg_catalog', 'information_schema') order by 1, 2"):
        q = (f'select count(*), md5(coalesce(string_agg(x::text, chr(10) order by x::text), \'\')) '
             f'from "{schema}"."{name}" x')
        out[f"{schema}.{name}"] = tuple(pg.sql(q)[0])
    return out


def timeline_view(cluster, timeline):
    """The same safekeepers, another timeline on them."""
    v = copy.copy(cluster)
    v.timeline = timeline
    return v


def start_compute(view, ps, name, meta, restore_from_pageserver=True):
    """A primary on a pageserver timeline: the timeline on the safekeepers
    (starting where the pageserver's does), an election, a basebackup,
    recovery from the pageserver's WAL endpoint (restore_from_pageserver,
    else from the safekeepers'), promotion; then the pageserver ingests what
    the safekeepers commit."""
    t, l = view.tenant, view.timeline
    st, sk_status = http("GET", view.sks[0].tl(t, l))
    if st == 404:
        view.create_timeline(int(meta["system_id"]), lsn_int(meta["start_lsn"]),
                             pg_tli=meta["pg_tli"], seg_size=meta["wal_seg_size"])
    election = view.elect()
    pg = Postgres(view.workdir, name)
    ps.basebackup(t, l, pg.datadir)
    pg.conf(port=pg.port, listen_addresses="127.0.0.1", unix_socket_directories=pg.sockdir,
            wal_level="replica", max_wal_senders=10, wal_keep_size="1GB")
    view.track(pg)
    restore = ps.restore_script(pg, t, l) if restore_from_pageserver else None
    view.start_primary(pg, election, restore=restore)
    sks = [{"pg": f"127.0.0.1:{sk.pg_port}", "http": sk.url} for sk in view.sks]
    st, body = http("PUT", ps.tl(t, l, "/safekeepers"), {"safekeepers": sks})
    assert st == 200, body
    return pg, election


def pageserver_with_ingest(cluster, remote=None, extra_args=None):
    """A pageserver (remote: its object store, default the test's) with the
    cluster's timeline, and a primary "primary" on it whose WAL goes through
    the safekeepers into the pageserver's ingest. (ps, primary, tenant,
    timeline); the pageserver is stopped if the set-up fails."""
    ps = Pageserver(cluster.workdir, remote=remote, extra_args=extra_args).start()
    try:
        t, l = cluster.tenant, cluster.timeline
        st, boot = ps.create(t, l)
        assert st == 201, boot
        primary, _ = start_compute(cluster, ps, "primary", boot, restore_from_pageserver=False)
    except BaseException:
        ps.stop()
        raise
    return ps, primary, t, l


def wait_ingested(ps, tenant, timeline, target, timeout=60, what="ingest"):
    """Until the pageserver has replayed the timeline up to target (an LSN)."""
    wait_for(lambda: lsn_int(http("GET", ps.tl(tenant, timeline))[1]["last_record_lsn"])
             >= target, timeout, what=what)


def ids(pg):
    return [r[0] for r in pg.sql("select id from t order by id")]


def insert_lsn(pg):
    """Everything committed so far is before this LSN (a record boundary)."""
    return pg.sql("select pg_current_wal_insert_lsn()::text")[0][0]


def tli(pg):
    return int(pg.sql("select timeline_id from pg_control_checkpoint()")[0][0])


# ---- the operator on devcluster (e2e/test_operator*.py) ----

KUBECTL = shutil.which("kubectl") or os.path.join(ROOT, "build", "tools", "kubectl")


class OperatorEnv:
    """A devcluster (in its own directory, own API port) with lakebase's CRDs,
    and lakebase-controller processes run outside it with its kubeconfig.
    Each controller logs to its own file; they are stopped by pid."""

    def __init__(self, root):
        self.dir = root
        self.kubeconfig = os.path.join(root, "kubeconfig")
        self.env = dict(os.environ, DEVCLUSTER_DIR=root, KUBECONFIG=self.kubeconfig)
        self.controllers = []
        self.images = {}
        for name in ("safekeeper", "pageserver", "compute"):
            with open(os.path.join(ROOT, "build", "images", f"{name}.ref")) as f:
                self.images[name] = f.read().strip()

    def devcluster(self, *args, check=True, timeout=300):
        r = subprocess.run([os.path.join(BIN, "devcluster"), *args], env=self.env,
                           capture_output=True, text=True, timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError(f"devcluster {' '.join(args)} failed: {r.stdout}{r.stderr}")
        return r

    def kubectl(self, *args, check=True, input=None, timeout=180):
        r = subprocess.run([KUBECTL, *args], env=self.env, capture_output=True, text=True,
                           input=input, timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {r.stdout}{r.stderr}")
        return r

    def apply(self, obj, check=True):
        return self.kubectl("apply", "-f", "-", input=json.dumps(obj), check=check)

    def get(self, ns, what, name=None):
        """The object (or list) as JSON, or None if it does not exist."""
        args = ["-n", ns, "get", what] + ([name] if name else []) + ["-o", "json"]
        r = self.kubectl(*args, check=False)
        if r.returncode != 0:
            if "NotFound" in r.stderr or "not found" in r.stderr:
                return None
            raise AssertionError(f"kubectl get {what} {name}: {r.stderr}")
        return json.loads(r.stdout)

    def namespace(self, ns):
        self.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})

    def secret(self, ns, name):
        import base64
        s = self.get(ns, "secret", name)
        return {k: base64.b64decode(v).decode() for k, v in (s.get("data") or {}).items()}

    def start_controller(self, *extra, name=None):
        name = name or f"controller-{len(self.controllers)}"
        port = free_port()
        log = os.path.join(self.dir, f"{name}.log")
        argv = [os.path.join(BIN, "lakebase-controller"), "--kubeconfig", self.kubeconfig,
                "--http_port", str(port), "--lease_namespace", "default",
                "--safekeeper_image", self.images["safekeeper"],
                "--pageserver_image", self.images["pageserver"],
                "--compute_image", self.images["compute"], *extra]
        p = Proc(argv, log)
        p.http_port = port
        p.name = name
        self.controllers.append(p)
        wait_for(lambda: self._answers(port), 30, what=f"{name} to serve /healthz")
        return p

    @staticmethod
    def _answers(port):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    def readyz(self, ctl):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{ctl.http_port}/readyz", timeout=2) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def stop_controllers(self):
        for c in self.controllers:
            if c.alive():
                c.stop()

    def lease_holder(self, name="lakebase-controller"):
        lease = self.get("default", "lease", name)
        return lease and lease["spec"].get("holderIdentity")

    def wait_condition(self, ns, kind, name, cond="Ready", status="True", timeout=300):
        """Until kind/name has condition cond == status for its current
        generation; returns the object."""
        def met():
            o = self.get(ns, kind, name)
            if not o:
                return None
            gen = o["metadata"].get("generation")
            for c in (o.get("status") or {}).get("conditions", []):
                if c["type"] == cond and c["status"] == status and \
                        c.get("observedGeneration") == gen:
                    return o
            return None
        return wait_for(met, timeout, 1.0, what=f"{kind} {ns}/{name} {cond}={status}")

    def condition(self, ns, kind, name, cond="Ready"):
        o = self.get(ns, kind, name) or {}
        for c in (o.get("status") or {}).get("conditions", []):
            if c["type"] == cond:
                return c
        return None

    def pod_ip(self, ns, pod):
        p = self.get(ns, "pod", pod)
        return p and p.get("status", {}).get("podIP")

    def branch_dsn(self, ns, cluster, branch):
        """The user's connection to a branch's compute: the pod's address
        (devcluster Services have no cluster IPs that route: NODE.md)."""
        user = self.secret(ns, f"{cluster}-app")
        ip = self.pod_ip(ns, f"{branch}-compute-0")
        return (f"host={ip} port=5432 user={user['username']} password={user['password']} "
                f"dbname={user['dbname']} connect_timeout=10")

    def sql(self, dsn, query, *args):
        with psycopg.connect(dsn, autocommit=True) as c:
            cur = c.execute(query, args or None)
            return cur.fetchall() if cur.description else None

    def management_token(self, ns, cluster):
        """A management token minted with the cluster's signing key (what an
        operator does by hand: docs/auth.md)."""
        key = self.secret(ns, f"{cluster}-signing")["signing.key"]
        path = os.path.join(self.dir, f"{ns}-{cluster}-signing.key")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(key)
        try:
            return subprocess.run([os.path.join(BIN, "lakebase-token"), "mint", "--key", path,
                                   "--role", "management", "--ttl", "600"],
                                  capture_output=True, text=True, check=True).stdout.strip()
        finally:
            os.unlink(path)

    def timelines(self, ns, cluster):
        """The pageserver's timelines of the cluster's tenant (ids)."""
        tenant = self.get(ns, "lakebasecluster", cluster)["status"]["tenantId"]
        ip = self.pod_ip(ns, f"{cluster}-pageserver-0")
        st, body = http("GET", f"http://{ip}:9898/v1/tenant/{tenant}/timeline",
                        token=self.management_token(ns, cluster))
        assert st == 200, (st, body)
        return sorted(t["timeline_id"] for t in body)

    def sanitizer_reports(self):
        """Controller logs that hold an AddressSanitizer or UBSan report (a
        controller built with make asan, run through LB_BIN_DIR)."""
        bad = []
        for c in self.controllers:
            with open(c.log, errors="replace") as f:
                text = f.read()
            if "ERROR: AddressSanitizer" in text or "ERROR: LeakSanitizer" in text or \
                    "runtime error:" in text:
                bad.append(c.log)
        return bad

    def close(self):
        self.stop_controllers()
        self.devcluster("down", check=False)
