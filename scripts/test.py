#!/usr/bin/env python3
"""Run the test suite: python3 scripts/test.py [pytest args...]

Installs pytest if it is missing, then runs pytest from the project root
(tests/ by default, see pyproject.toml) and exits with pytest's status,
except that "no tests collected" (pytest's 5) is a failure here.

Slow tests run when CI=true or TXM_SLOW=1 is set (this script passes
TXM_SLOW=1 on to the tests); otherwise they are skipped.
"""
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def have_pytest():
    cmd = [sys.executable, "-c", "import pytest"]
    return subprocess.run(cmd, stderr=subprocess.DEVNULL).returncode == 0


def ensure_pytest():
    if have_pytest():
        return
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "pytest"]
    print("test.py: pytest not found, running: " + " ".join(pip), flush=True)
    if subprocess.run(pip).returncode != 0:
        print("test.py: that failed, retrying with --user", flush=True)
        subprocess.run(pip + ["--user"])
    if not have_pytest():
        sys.exit("test.py: could not install pytest; install it and rerun")


def main():
    ensure_pytest()
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
    sys.exit(status)


if __name__ == "__main__":
    main()
