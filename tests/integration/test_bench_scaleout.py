"""bench/scaleout.py and bench/pgbatch.py keep working: a tiny run of
each (half a second a load; a few turns) completes and reports each
part's figures and CPU. The figures themselves are never checked
(test_bench.py says why); a part whose PostgreSQL or HAProxy is missing
here is left out, saying why."""

import haproxy
import postgres
import pytest

from conftest import run_bench


@pytest.mark.slow
def test_scaleout_tiny_run_reports(tmp_path):
    stdout, report = run_bench(
        tmp_path, "scaleout.py", "--seconds", "0.5", "--warmup", "0.2", timeout=240)
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
        assert "budget at the target: " in stdout
    assert set(report["parts"]) == set(expected) - set(report["left_out"])
    for part, figures in report["parts"].items():
        for load in ("up1", "dl", "ok"):
            fig = figures[load]
            assert fig["requests_per_s"] > 0 and fig["p99_ms"] > 0, (part, load, fig)
            assert not fig["errors"] and not fig["connection_failures"], (part, load, fig)
            assert set(fig["cpu_s"]) == {"texmate_ds 1", "load", "other"} | expected[part]
            assert fig["cpu_s"]["texmate_ds 1"] > 0
            assert set(fig["cpu_us_per_request"]) == set(fig["cpu_s"])
    assert "requests/s" in stdout and "ceiling" in stdout
    print(stdout[-2500:])


@pytest.mark.slow
def test_pgbatch_tiny_run_reports(tmp_path):
    stdout, report = run_bench(
        tmp_path, "pgbatch.py", "--turns", "5", "--sizes", "1,3", timeout=240)
    if postgres.available():
        assert report["left_out"] == postgres.available() and report["sizes"] == {}
        return
    assert set(report["sizes"]) == {"1", "3"}
    for ways in report["sizes"].values():
        for way in ("store", "one", "batched"):
            # CPU is read in clock ticks: a tiny run's may be 0.
            assert ways[way]["postgresql_us"] >= 0 and ways[way]["samples_per_s"] > 0, ways
    assert "store / batched" in stdout
