"""bench/scaleout.py and bench/pgbatch.py keep working: a tiny run of
each (half a second a load; a few turns) completes and reports each
part's figures and CPU. The figures themselves are never checked
(test_bench.py says why); a part whose PostgreSQL or HAProxy is missing
here is left out, saying why."""

import json
import subprocess
import sys

import haproxy
import postgres
import pytest

from conftest import ROOT, child_env


@pytest.mark.slow
def test_scaleout_tiny_run_reports(tmp_path):
    out = tmp_path / "scaleout.json"
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "scaleout.py"), "--seconds", "0.5",
         "--warmup", "0.2", "--json", str(out)],
        cwd=ROOT, env=child_env(), capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(out.read_text())
    assert report["failures"] == {}
    expected = {"sqlite x1": set(), "postgresql x1": {"PostgreSQL"},
                "postgresql x2": {"PostgreSQL", "HAProxy", "texmate_ds 2"}}
    missing = postgres.available() or None
    if missing:
        assert set(report["left_out"]) == {"postgresql x1", "postgresql x2"}
    elif haproxy.available():
        assert set(report["left_out"]) == {"postgresql x2"}
    else:
        assert report["left_out"] == {}
        assert report["up1_ratio_postgresql_x2_to_sqlite_x1"] > 0
        assert report["budget"]["us_per_upload"] > 0 and report["budget"]["ok_postgresql_x2_us"] > 0
        assert "budget at the target: " in result.stdout
    assert set(report["parts"]) == set(expected) - set(report["left_out"])
    for part, figures in report["parts"].items():
        for load in ("up1", "dl", "ok"):
            fig = figures[load]
            assert fig["requests_per_s"] > 0 and fig["p99_ms"] > 0, (part, load, fig)
            assert not fig["errors"] and not fig["connection_failures"], (part, load, fig)
            assert set(fig["cpu_s"]) == {"texmate_ds 1", "load", "other"} | expected[part]
            assert fig["cpu_s"]["texmate_ds 1"] > 0
            assert set(fig["cpu_us_per_request"]) == set(fig["cpu_s"])
    assert "requests/s" in result.stdout and "ceiling" in result.stdout
    print(result.stdout[-2500:])


@pytest.mark.slow
def test_pgbatch_tiny_run_reports(tmp_path):
    out = tmp_path / "pgbatch.json"
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "pgbatch.py"), "--turns", "5", "--sizes", "1,3",
         "--json", str(out)],
        cwd=ROOT, env=child_env(), capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(out.read_text())
    if postgres.available():
        assert report["left_out"] == postgres.available() and report["sizes"] == {}
        return
    assert set(report["sizes"]) == {"1", "3"}
    for ways in report["sizes"].values():
        for way in ("store", "one", "batched"):
            # CPU is read in clock ticks: a tiny run's may be 0.
            assert ways[way]["postgresql_us"] >= 0 and ways[way]["samples_per_s"] > 0, ways
    assert "store / batched" in result.stdout
