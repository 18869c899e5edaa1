"""The suite's workers (tests/workers.py): every test runs once, on one
of them, and a module's fixture is made once a run of its tests."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import workers

TESTS = Path(__file__).resolve().parent.parent

MODULE = """\
import os
import pytest

@pytest.fixture(scope="module")
def made():
    with open(os.environ["MADE"], "a") as f:
        f.write(__name__ + "\\n")

@pytest.mark.parametrize("n", range({count}))
def test_one(made, n):
    with open(os.environ["RAN"], "a") as f:
        f.write("%s %s %d\\n" % (os.getpid(), __name__, n))
"""


def test_runs_are_taken_once_each_in_order_then_none(tmp_path):
    claims = str(tmp_path / "claims")
    taken = [workers.take(claims, "d1", 3) for _ in range(4)]
    assert taken == [0, 1, 2, None]


def test_a_worker_that_collected_other_tests_stops(tmp_path):
    claims = str(tmp_path / "claims")
    workers.take(claims, "d1", 3)
    with pytest.raises(pytest.UsageError, match="collected different tests"):
        workers.take(claims, "d2", 3)


def test_three_workers_run_every_test_once_and_each_module_fixture_once(tmp_path):
    suite = tmp_path / "suite"
    suite.mkdir()
    counts = {"test_m%02d" % i: 1 + i % 4 for i in range(12)}
    for name, count in counts.items():
        (suite / (name + ".py")).write_text(MODULE.format(count=count))
    env = dict(os.environ, PYTHONPATH=str(TESTS), RAN=str(tmp_path / "ran"),
               MADE=str(tmp_path / "made"), TXM_TEST_CLAIMS=str(tmp_path / "claims"))
    cmd = [sys.executable, "-m", "pytest", "-p", "workers", "-q", "-p", "no:cacheprovider",
           "--rootdir", str(suite), str(suite)]
    procs = [subprocess.Popen(cmd, cwd=suite, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for _ in range(3)]
    outputs = [proc.communicate(timeout=60)[0] for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0, 0], outputs

    ran = [line.split() for line in (tmp_path / "ran").read_text().splitlines()]
    assert sorted((name, int(n)) for _, name, n in ran) == sorted(
        (name, n) for name, count in counts.items() for n in range(count))
    # A module's tests all ran in one worker, which made its fixture once.
    assert all(len({pid for pid, n, _ in ran if n == name}) == 1 for name in counts)
    assert sorted((tmp_path / "made").read_text().split()) == sorted(counts)
