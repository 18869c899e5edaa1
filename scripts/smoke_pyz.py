#!/usr/bin/env python3
"""Smoke-test the built archive with one interpreter.

    python3 scripts/smoke_pyz.py PYTHON PYZ

In a fresh temporary directory (never the project root), with PYTHON:
syncdb and addunit through ``manage``, start ``serve`` on OS-chosen ports,
wait for ``ready``, then over TTP: an upload, ``dl last`` and the bundled
``ok`` app; SIGTERM must stop it with status 0, and ``manage export`` must
show the uploaded sample. Prints ``smoke OK python X.Y.Z`` and exits 0, or
says what failed, shows the server's output and exits 1. Every step has a
time limit, and the server is killed on any failure.
"""
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

CONF = """\
DS_PORT: 0
HTTP_PORT: 0
DS_BIND: 127.0.0.1
HTTP_BIND: 127.0.0.1

[database]
DATABASE_NAME: db/smoke.db
"""
UNIT, KEY = "SMOKE1", "smokekey"
READY_TIMEOUT = 20   # seconds from start to "ready"
STOP_TIMEOUT = 20    # seconds from SIGTERM to exit
CMD_TIMEOUT = 60     # seconds for one manage command
SOCKET_TIMEOUT = 10  # seconds for one TTP exchange


class SmokeError(Exception):
    pass


class Server:
    """The serve process, its output collected by a reader thread."""

    def __init__(self, cmd, cwd, env):
        self.lines = []
        self.queue = queue.Queue()
        self.proc = subprocess.Popen(
            cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        for raw in self.proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            self.lines.append(line)
            self.queue.put(line)
        self.queue.put(None)  # end of output

    def wait_ready(self, timeout):
        """Return the (TTP, HTTP) ports once 'ready' is printed."""
        deadline = time.monotonic() + timeout
        port = http_port = None
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise SmokeError("no 'ready' line within %d s" % timeout)
            try:
                line = self.queue.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                try:
                    status = self.proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    status = "unknown (it closed its output)"
                raise SmokeError("server exited with status %s before 'ready'"
                                 % status)
            m = re.match(r"TTP: listening on (\S+):(\d+)\s*$", line)
            if m:
                port = int(m.group(2))
            m = re.match(r"HTTP: listening on (\S+):(\d+)\s*$", line)
            if m:
                http_port = int(m.group(2))
            if line.strip() == "ready":
                if port is None or http_port is None:
                    raise SmokeError("'ready' without both 'listening on' lines")
                return port, http_port

    def stop(self, timeout):
        """SIGTERM; return the exit status."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise SmokeError("server still running %d s after SIGTERM" % timeout)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        self.thread.join(timeout=5)


def ttp(port, request):
    """Send one TTP request on a new connection; return the answer up to \\r."""
    answer = b""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=SOCKET_TIMEOUT) as s:
            s.sendall(request.encode("ascii"))
            while not answer.endswith(b"\r"):
                chunk = s.recv(4096)
                if not chunk:
                    break
                answer += chunk
    except OSError as e:
        raise SmokeError("TTP %r: %s (got %r so far)" % (request, e, answer))
    return answer.decode("ascii", "replace")


def get(port, path, token=None):
    """GET over HTTP; (status, body text). Error statuses are answers too."""
    request = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path))
    if token:
        request.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(request, timeout=SOCKET_TIMEOUT) as answer:
            return answer.status, answer.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8", "replace")
    except OSError as e:
        raise SmokeError("GET %s: %s" % (path, e))


def expect(what, got, ok):
    if not ok:
        raise SmokeError("%s: unexpected answer %r" % (what, got))


def run(cmd, cwd, env, what):
    try:
        p = subprocess.run(cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=CMD_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise SmokeError("%s: no exit within %d s" % (what, CMD_TIMEOUT))
    out = p.stdout.decode("utf-8", "replace")
    err = p.stderr.decode("utf-8", "replace")
    if p.returncode != 0:
        raise SmokeError("%s: exit status %d\n--- stdout\n%s--- stderr\n%s"
                         % (what, p.returncode, out, err))
    return out


def smoke(python, pyz, tmp, env):
    conf = "txm.conf"
    (tmp / conf).write_text(CONF, encoding="ascii")
    base = [python, str(pyz), "--config", conf]

    run(base + ["manage", "syncdb"], tmp, env, "manage syncdb")
    run(base + ["manage", "addunit", UNIT, KEY, "--fields", "2"], tmp, env,
        "manage addunit")
    run(base + ["manage", "changepassword", "Administrator", "--noinput"], tmp,
        dict(env, TXM_PASSWORD="smoke-password"), "manage changepassword")
    token = run(base + ["manage", "addtoken", "Administrator"], tmp, env,
                "manage addtoken").strip()

    server = Server(base + ["serve"], tmp, env)
    try:
        port, http_port = server.wait_ready(READY_TIMEOUT)
        a = ttp(port, "TTP /up/%s/<2009-1-16 15:30:45;11;22> %s\r" % (UNIT, KEY))
        expect("upload", a, a == "OK\r")
        a = ttp(port, "TTP /dl/%s/last %s\r" % (UNIT, KEY))
        expect("dl last", a, a.startswith("OK <") and "L1=11 L2=22" in a)
        a = ttp(port, "TTP /ok/%s %s\r" % (UNIT, KEY))
        expect("ok app", a, a == "OK\r")
        # The web UI's templates and static files come out of the zip.
        a = get(http_port, "/login/")
        expect("sign-in page", a, a[0] == 200 and 'name="password"' in a[1])
        a = get(http_port, "/static/style.css")
        expect("style sheet", a, a[0] == 200 and "{" in a[1])
        a = get(http_port, "/units/%s/graph.svg?from=2009-01-16&to=2009-01-17" % UNIT, token)
        expect("graph.svg", a, a[0] == 200 and a[1].startswith("<svg"))
        status = server.stop(STOP_TIMEOUT)
        if status != 0:
            raise SmokeError("server exited with status %s after SIGTERM" % status)
    except BaseException as e:
        server.kill()
        if isinstance(e, SmokeError):
            e.args = (e.args[0] + "\n--- server output\n" + "\n".join(server.lines),)
        raise
    server.kill()  # already stopped: just collects the reader thread

    out = run(base + ["manage", "export", UNIT], tmp, env, "manage export")
    if "11" not in out:
        raise SmokeError("manage export lacks the uploaded sample:\n" + out)


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: smoke_pyz.py PYTHON PYZ")
    python, pyz = sys.argv[1], Path(sys.argv[2]).resolve()
    if not pyz.is_file():
        sys.exit("smoke FAILED: %s not found" % pyz)

    env = dict(os.environ)
    for name in ("PYTHONPATH", "PYTHONSTARTUP", "PYTHONHOME", "TXM_CONF"):
        env.pop(name, None)  # the archive alone must be enough
    env["PYTHONUNBUFFERED"] = "1"

    try:
        version = subprocess.run(
            [python, "-c", "import platform; print(platform.python_version())"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, env=env,
            timeout=CMD_TIMEOUT, check=True).stdout.decode().strip()
    except (OSError, subprocess.SubprocessError) as e:
        sys.exit("smoke FAILED: cannot run %s: %s" % (python, e))

    with tempfile.TemporaryDirectory(prefix="txm-smoke-") as tmp:
        try:
            smoke(python, pyz, Path(tmp), env)
        except SmokeError as e:
            print("smoke FAILED python %s (%s)\n%s" % (version, python, e), flush=True)
            sys.exit(1)
    print("smoke OK python %s" % version, flush=True)


if __name__ == "__main__":
    main()
