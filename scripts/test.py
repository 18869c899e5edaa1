#!/usr/bin/env python3
"""Run the test suite: python3 scripts/test.py [pytest args...]

Installs pytest and ruff if they are missing, and psycopg, the optional
PostgreSQL driver the tests' PostgreSQL half needs (without it that half
skips, saying so), checks the code with ruff (the rules are in
pyproject.toml), then runs pytest from the project root (tests/ by
default) and exits with pytest's status, or 1 if ruff found something;
"no tests collected" (pytest's 5) is a failure here.

The suite runs on TXM_TEST_WORKERS pytest processes at once (by default
one a core, four at most: each starts its own PostgreSQL and Chromium).
Most of a test's time is spent waiting on the servers it started, so one
process keeps under one core busy; the workers share the suite out a
module at a time (tests/workers.py). Each line a worker prints comes
with its number, "[2] ...". TXM_TEST_WORKERS=1 is plain pytest, for
--pdb and the like.

Slow tests run when CI=true or TXM_SLOW=1 is set (this script passes
TXM_SLOW=1 on to the tests); otherwise they are skipped.
"""
import os
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def have(module):
    cmd = [sys.executable, "-c", "import " + module]
    return subprocess.run(cmd, stderr=subprocess.DEVNULL).returncode == 0


def ensure(module, package=None, without=None):
    """Install `module` (from the pip `package`, by default the same name)
    if missing. Without it the run stops, unless `without` says what then
    skips."""
    if have(module):
        return
    pip = [sys.executable, "-m", "pip", "install", "--quiet", package or module]
    print("test.py: %s not found, running: %s" % (module, " ".join(pip)), flush=True)
    if subprocess.run(pip).returncode != 0:
        print("test.py: that failed, retrying with --user", flush=True)
        subprocess.run(pip + ["--user"])
    if have(module):
        return
    if without is None:
        sys.exit("test.py: could not install %s; install it and rerun" % module)
    print("test.py: could not install %s: %s will skip" % (module, without), flush=True)


def lint():
    """ruff over the whole tree; True when it found nothing."""
    cmd = [sys.executable, "-m", "ruff", "check", "."]
    print("test.py: " + " ".join(cmd[2:]), flush=True)
    return subprocess.run(cmd, cwd=ROOT).returncode == 0


def run_workers(cmd, env, count):
    """`cmd` on `count` pytest processes sharing the suite out; each
    line they print goes out as it comes, "[k] " before it. The status:
    the first worker's that is not 0, else 0."""
    print("test.py: %d workers (TXM_TEST_WORKERS)" % count, flush=True)
    out_lock = threading.Lock()

    def relay(number, stream):
        for line in stream:
            with out_lock:
                sys.stdout.write("[%d] %s" % (number, line))
                sys.stdout.flush()

    with tempfile.TemporaryDirectory(prefix="txm-workers-") as folder:
        env = dict(env, TXM_TEST_CLAIMS=os.path.join(folder, "claims"))
        # -u: a worker's lines come out as it writes them (and only its:
        # the servers the tests start buffer as they would in service).
        cmd = [cmd[0], "-u"] + cmd[1:]
        workers = [subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    text=True, errors="replace")
                   for _ in range(count)]
        relays = [threading.Thread(target=relay, args=(number, worker.stdout))
                  for number, worker in enumerate(workers, 1)]
        for thread in relays:
            thread.start()
        # A SIGTERM (CI's timeout) ends the workers too, after their
        # output so far has gone out.
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
        try:
            statuses = [worker.wait() for worker in workers]
        finally:
            for worker in workers:
                if worker.poll() is None:
                    worker.terminate()
            for thread in relays:
                thread.join()
    print("test.py: the workers' statuses: %s" % " ".join(map(str, statuses)), flush=True)
    return next((status for status in statuses if status != 0), 0)


def main():
    ensure("pytest")
    ensure("ruff")
    # The binary build: libpq comes with it, whatever the system has, and
    # its C implementation costs a server half the pure-Python one's CPU
    # per statement (docs/performance.md, "Scale-out").
    ensure("psycopg", "psycopg[binary]", without="the PostgreSQL half of the tests")
    linted = lint()
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    if env.get("CI", "").lower() == "true" or env.get("TXM_SLOW") == "1":
        env["TXM_SLOW"] = "1"
        print("test.py: slow tests ON (TXM_SLOW=1)", flush=True)
    else:
        print("test.py: slow tests off (set TXM_SLOW=1 to run them)", flush=True)

    cmd = [sys.executable, "-m", "pytest"] + sys.argv[1:]
    count = int(env.get("TXM_TEST_WORKERS") or min(os.cpu_count() or 1, 4))
    if count <= 1:
        status = subprocess.run(cmd, cwd=ROOT, env=env).returncode
    else:
        status = run_workers(cmd, env, count)
    if status == 5:
        print("test.py: FAILED: pytest collected no tests (exit 5)", flush=True)
        status = 1
    if not linted and status == 0:
        print("test.py: FAILED: ruff found problems (above)", flush=True)
        status = 1
    sys.exit(status)


if __name__ == "__main__":
    main()
