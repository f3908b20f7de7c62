"""The safekeeper's resource bounds hold, and it keeps serving at each.

  - walsender max_connections: the connection past the bound gets a FATAL
    53300 "too many clients" and is closed; the ones already open stay,
    and once they close a new one is served;
  - walsender startup_timeout: a client that connects and sends nothing,
    or sends a startup packet and no password, is dropped;
  - running out of file descriptors (EMFILE): with RLIMIT_NOFILE lowered on
    the running daemon and more connections waiting than it can accept,
    the daemon does not spin (its CPU time stays far below one core, and
    it retries accept() a few times a second, not thousands), and
    it serves again once connections close;
  - HTTP max connections: past http_max_connections a connection is
    refused or answered 503, and the daemon keeps serving;
  - response bodies: a reply larger than the client's bound (a vote reply
    of a safekeeper that sends endless bytes) ends the request with an
    error; the client stops reading long before the end.

No assertion depends on how fast the machine is: each bound is checked by
what happens, with generous deadlines.
"""
import http.server as httpserver
import os
import resource
import socket
import subprocess
import threading
import time
import uuid

from lakebase import BIN, Safekeeper, Wire, http, wait_for


def cpu_seconds(pid):
    """utime + stime of the process, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def served(sk):
    """A new walsender connection gets as far as the password request (a
    refused one may be reset while the startup packet is on its way)."""
    try:
        w = Wire(sk.pg_port, timeout=20)
    except OSError:
        return False
    try:
        w.send(Wire.startup_packet(user="postgres", replication="true"))
        m = w.read()
        return m is not None and m[0] == b"R"
    except OSError:
        return False
    finally:
        w.close()


def closed_by_server(s, timeout):
    """True if the server closes s (EOF or reset) within timeout seconds;
    any bytes it sends first are read and dropped."""
    s.settimeout(timeout)
    try:
        while s.recv(65536):
            pass
        return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False


def start_one(workdir, *args):
    return Safekeeper(workdir, "sk-0", extra_args=list(args)).start()


def test_walsender_max_connections(workdir):
    sk = start_one(workdir, "--max_connections", "4", "--startup_timeout", "10m")
    held = []
    try:
        for _ in range(4):
            held.append(Wire(sk.pg_port))
        # Each of the four is accepted (it gets the password request).
        for w in held:
            w.send(Wire.startup_packet(user="postgres", replication="true"))
            assert w.read()[0] == b"R"
        extra = Wire(sk.pg_port)
        m = extra.read()
        assert m is not None and m[0] == b"E", m
        err = Wire.error_fields(m[1])
        assert err["S"] == "FATAL" and err["C"] == "53300" and "too many" in err["M"], err
        assert extra.read() is None  # and closed
        extra.close()
        assert http("GET", sk.url + "/healthz", token="")[0] == 200
        # The four still stand: the bound refused only the fifth.
        for w in held:
            w.send(Wire.password("not.a.token"))
            m = w.read()
            assert m is not None and Wire.error_fields(m[1])["C"] == "28P01", m
        for w in held:
            w.close()
        held = []
        wait_for(lambda: served(sk), 30, what="a new connection to be served")
        assert sk.proc.alive()
    finally:
        for w in held:
            w.close()
        sk.stop()


def test_walsender_startup_timeout(workdir):
    sk = start_one(workdir, "--startup_timeout", "500ms")
    try:
        silent = socket.create_connection(("127.0.0.1", sk.pg_port), timeout=10)
        half = Wire(sk.pg_port)
        half.send(Wire.startup_packet(user="postgres", replication="true"))
        assert half.read()[0] == b"R"  # asked for a password it never gets
        assert closed_by_server(silent, 30), "a silent connection was not dropped"
        assert closed_by_server(half.s, 30), "a connection without a password was not dropped"
        silent.close()
        half.close()
        assert served(sk) and sk.proc.alive()
    finally:
        sk.stop()


def test_emfile_does_not_spin_and_recovers(workdir):
    sk = start_one(workdir, "--startup_timeout", "10m", "--max_connections", "1000")
    pid = sk.proc.pid
    conns = []
    try:
        # A few descriptors above what the daemon holds now: the loop
        # accepts a handful of connections, then accept() fails with EMFILE
        # while the rest wait in the listen backlog (the listener stays
        # readable).
        held_fds = len(os.listdir(f"/proc/{pid}/fd"))
        limit = held_fds + 6
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (limit, limit))
        for _ in range(40):
            conns.append(socket.create_connection(("127.0.0.1", sk.pg_port), timeout=10))
        wait_for(lambda: len(os.listdir(f"/proc/{pid}/fd")) >= limit, 30,
                 what="the daemon to reach its descriptor limit")
        wait_for(lambda: "could not accept" in open(sk.proc.log, errors="replace").read(), 30,
                 what="the daemon to report EMFILE")
        # At the limit, with connections pending: measure its CPU time, and
        # count its failed accepts (each one logs a line). A loop that
        # pauses accepting tries a few times a second; one that spins
        # tries as fast as the CPU lets it, which on a loaded machine may
        # still be well under one core, so the count is the sharper test.
        def failed_accepts():
            with open(sk.proc.log, errors="replace") as f:
                return f.read().count("could not accept")
        t0, c0, n0 = time.monotonic(), cpu_seconds(pid), failed_accepts()
        time.sleep(3)
        t1, c1, n1 = time.monotonic(), cpu_seconds(pid), failed_accepts()
        share = (c1 - c0) / (t1 - t0)
        assert share < 0.5, f"the daemon used {share:.0%} of a core at EMFILE"
        assert n1 - n0 < 30 * (t1 - t0) + 10, f"{n1 - n0} failed accepts in {t1 - t0:.1f} s"
        assert sk.proc.alive()
        # Connections close: it accepts and serves again.
        for s in conns:
            s.close()
        conns = []
        wait_for(lambda: served(sk), 60, what="the daemon to serve after EMFILE")
        assert http("GET", sk.url + "/healthz", token="")[0] == 200
    finally:
        for s in conns:
            s.close()
        sk.stop()


def test_http_connection_cap(workdir):
    sk = start_one(workdir, "--http_threads", "1", "--http_max_connections", "4")
    held = []
    try:
        for _ in range(12):
            held.append(socket.create_connection(("127.0.0.1", sk.http_port), timeout=10))
        # Past the cap, a request is refused (closed, reset, or never
        # answered while the cap holds) or answered 503: never served.
        s = socket.create_connection(("127.0.0.1", sk.http_port), timeout=5)
        try:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            reply = s.recv(65536)
            assert reply == b"" or reply.startswith(b"HTTP/1.1 503"), reply[:100]
        except (ConnectionResetError, BrokenPipeError, socket.timeout):
            pass
        finally:
            s.close()
        assert sk.proc.alive()
        for c in held:
            c.close()
        held = []
        wait_for(lambda: http("GET", sk.url + "/healthz", token="", timeout=2)[0] == 200, 60,
                 what="HTTP to serve after the connections close")
    finally:
        for c in held:
            c.close()
        sk.stop()


class Endless(httpserver.BaseHTTPRequestHandler):
    """Answers every request 200 with a body that does not end."""
    sent = 0

    def do_POST(self):  # noqa: N802 - the library's name
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(1 << 34))
        self.end_headers()
        chunk = b"[" * 65536
        try:
            while Endless.sent < (1 << 34):
                self.wfile.write(chunk)
                Endless.sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass

    do_GET = do_POST  # noqa: N815

    def log_message(self, *args):
        pass


def test_reply_bodies_are_bounded(workdir):
    srv = httpserver.ThreadingHTTPServer(("127.0.0.1", 0), Endless)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        url = f"http://127.0.0.1:{srv.server_address[1]}"
        r = subprocess.run([os.path.join(BIN, "safekeeper"), "elect", "--tenant", uuid.uuid4().hex,
                            "--timeline", uuid.uuid4().hex, "--safekeepers", url,
                            "--timeout", "60s"],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode != 0, r.stdout
        # The client gave up after its 1 MiB bound (plus what the sockets
        # buffer), not after reading gigabytes.
        assert Endless.sent < (64 << 20), Endless.sent
        assert r.stderr.strip(), "no error message"
    finally:
        srv.shutdown()
        srv.server_close()
