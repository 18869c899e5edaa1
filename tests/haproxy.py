"""A real HAProxy for the tests: Debian's ``haproxy`` package, run in the
foreground (``-db``) as a child of the test with a generated config, in
front of texmate_ds processes on 127.0.0.1.

Both ports go through in TCP mode, as docs/scale-out.md configures them:
HAProxy reads nothing of TTP or HTTP, it only picks a backend per
connection (``balance roundrobin``, so consecutive connections alternate
and a test knows both processes serve). Each backend is watched by the
server's ``GET /healthz`` on its HTTP port (the TTP side's ``check port``
is that port too, so one process is up or down for both), checked every
`INTERVAL` ms so the tests wait little for a kill to be noticed, and a
server marked down has its sessions shut (``on-marked-down
shutdown-sessions``). A connection whose backend refuses is tried
again on another one at once (``retries``, ``option redispatch 1``): a
meter reconnecting right after a kill -9 reaches the survivor even
before the check has seen the death.

`HAProxy.status()` reads the servers' states from its stats socket, so
a test waits for "both UP" or "s1 DOWN" instead of sleeping.

`available()` says why there is none; the fixtures skip with it.
"""

import os
import shutil
import socket
import subprocess
import time

from postgres import free_port

BINARY = "/usr/sbin/haproxy"
# Health checks: every INTERVAL ms, down after FALL failures, up after RISE.
INTERVAL = 100
FALL = 2
RISE = 1
# Seconds to wait for HAProxy to listen, or for a server to reach a state.
TIMEOUT = 20


def binary():
    return BINARY if os.access(BINARY, os.X_OK) else shutil.which("haproxy")


def available():
    """None, or why HAProxy tests cannot run here."""
    if binary() is None:
        return "HAProxy is not installed (apt-get install haproxy; .ci/run does)"
    return None


def config(ttp_port, http_port, stats_socket, backends):
    """HAProxy's configuration: `backends` is [(name, ttp port, http port)]."""
    check = ("check port %%d inter %d fall %d rise %d on-marked-down shutdown-sessions"
             % (INTERVAL, FALL, RISE))
    lines = [
        "global",
        "    maxconn 4000",
        "    stats socket %s mode 600 level admin" % stats_socket,
        "defaults",
        "    mode tcp",
        "    balance roundrobin",
        "    retries 3",
        # Each retry on another server, not only the last one.
        "    option redispatch 1",
        "    timeout connect 2s",
        "    timeout check 2s",
        # Meters and event streams stay connected between requests.
        "    timeout client 1h",
        "    timeout server 1h",
        "    option httpchk",
        "    http-check send meth GET uri /healthz ver HTTP/1.1 hdr Host haproxy",
        "    http-check expect status 200",
    ]
    for side, port, index in (("ttp", ttp_port, 1), ("http", http_port, 2)):
        lines += ["frontend %s_in" % side,
                  "    bind 127.0.0.1:%d" % port,
                  "    default_backend %s" % side,
                  "backend %s" % side]
        lines += ["    server %s 127.0.0.1:%d %s" % (ports[0], ports[index], check % ports[2])
                  for ports in backends]
    return "\n".join(lines) + "\n"


class HAProxy:
    """HAProxy in front of `servers` (conftest.Server, started), on ports
    of its own (`ttp_port`, `http_port`), running until `stop()`. The
    servers are named s1, s2... in HAProxy's config and `status()`."""

    def __init__(self, folder, servers):
        self.folder = str(folder)
        os.makedirs(self.folder, exist_ok=True)
        self.ttp_port, self.http_port = free_port(), free_port()
        self.socket_path = os.path.join(self.folder, "stats.sock")
        self.conf = os.path.join(self.folder, "haproxy.cfg")
        self.names = ["s%d" % n for n in range(1, len(servers) + 1)]
        with open(self.conf, "w") as f:
            f.write(config(self.ttp_port, self.http_port, self.socket_path,
                           [(name, srv.ttp_port, srv.http_port)
                            for name, srv in zip(self.names, servers)]))
        self.log = os.path.join(self.folder, "haproxy.log")
        with open(self.log, "w") as log:
            self.proc = subprocess.Popen([binary(), "-db", "-f", self.conf], stdout=log,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            self.wait(lambda states: len(states) == 2 * len(servers), "to start")
        except BaseException:
            self.stop()
            raise

    def log_text(self):
        with open(self.log) as f:
            return f.read()[-4000:]

    def command(self, line):
        """One command on the stats socket; its answer."""
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(5)
            sock.connect(self.socket_path)
            sock.sendall(line.encode() + b"\n")
            answer = b""
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    return answer.decode()
                answer += chunk

    def status(self):
        """{(backend, server): "UP" | "DOWN" | ...} of every server."""
        rows = self.command("show stat").splitlines()
        header = rows[0].lstrip("# ").split(",")
        states = {}
        for row in rows[1:]:
            cells = dict(zip(header, row.split(",")))
            if cells.get("svname") not in (None, "FRONTEND", "BACKEND"):
                states[(cells["pxname"], cells["svname"])] = cells["status"].split()[0]
        return states

    def wait(self, condition, what):
        """Until `condition(status())` holds; AssertionError after TIMEOUT s."""
        deadline = time.monotonic() + TIMEOUT
        states = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("haproxy exited (%s):\n%s" % (
                    self.proc.returncode, self.log_text()))
            try:
                states = self.status()
            except OSError:
                states = None       # its socket is not there yet
            if states is not None and condition(states):
                return states
            time.sleep(INTERVAL / 1000 / 4)
        raise AssertionError("haproxy did not come %s in %d s: %s\n%s" % (
            what, TIMEOUT, states, self.log_text()))

    def wait_all(self, state, names=None):
        """Until each of `names` (all by default) is `state` on both sides."""
        names = set(names or self.names)
        return self.wait(lambda states: all(s == state for (_, name), s in states.items()
                                            if name in names),
                         "to see %s %s" % (" ".join(sorted(names)), state))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
