#!/usr/bin/env python3
"""Run the test suite: python3 scripts/test.py [pytest args...]

Installs pytest and ruff if they are missing, and psycopg, the optional
PostgreSQL driver the tests' PostgreSQL half needs (without it that half
skips, saying so), checks the code with ruff (the rules are in
pyproject.toml), then runs pytest from the project root (tests/ by
default) and exits with pytest's status, or 1 if ruff found something;
"no tests collected" (pytest's 5) is a failure here.

Slow tests run when CI=true or TXM_SLOW=1 is set (this script passes
TXM_SLOW=1 on to the tests); otherwise they are skipped.
"""
import os
import subprocess
import sys
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
    status = subprocess.run(cmd, cwd=ROOT, env=env).returncode
    if status == 5:
        print("test.py: FAILED: pytest collected no tests (exit 5)", flush=True)
        status = 1
    if not linted and status == 0:
        print("test.py: FAILED: ruff found problems (above)", flush=True)
        status = 1
    sys.exit(status)


if __name__ == "__main__":
    main()
