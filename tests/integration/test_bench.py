"""The benchmark harnesses keep working (bench/run.py, bench/web.py,
bench/import.py, bench/deleteold.py, bench/mail.py, bench/fanout.py). Figures are printed
and written as JSON; this test checks that the run completes and reports,
never what the figures are."""

import pytest

from conftest import run_bench


@pytest.mark.slow
def test_bench_quick_run_reports(tmp_path):
    stdout, report = run_bench(tmp_path, "run.py", "--quick", "--only", "up1", "--seconds", "1")
    rows = [r for r in report["table"] if r["scenario"] == "up1"]
    assert {r["metric"] for r in rows} >= {"requests/s", "p99 ms"}
    assert all(r["ours"] and r["baseline"] for r in rows)
    assert report["failures"] == {}
    print(stdout[-1500:])


def test_web_bench_reports(tmp_path):
    stdout, report = run_bench(tmp_path, "web.py", "--samples", "5000", "--seconds", "1")
    assert report["graph"]["samples"] == 5000 and report["graph"]["svg_bytes"] > 0
    assert [fig["rows"] for fig in report["csv"]] == [5000]
    assert "csv peak memory" in stdout
    loaded = report["meters_under_load"]
    assert loaded["export_fetches"] >= 1 and loaded["graph_fetches"] >= 1
    assert loaded["idle_median_ms"] > 0


@pytest.mark.slow
def test_import_bench_reports(tmp_path):
    stdout, report = run_bench(
        tmp_path, "import.py", "--rows", "3000", "--small", "1000", "--ceiling-seconds", "0.5")
    assert [fig["rows"] for fig in report["imports"]] == [1000, 3000]
    assert all(fig["ok"] and fig["peak_rss_kib"] > 0 for fig in report["imports"])
    assert report["ceiling"]["samples_per_s"] > 0
    assert "import / ceiling" in stdout


def test_deleteold_bench_reports(tmp_path):
    stdout, report = run_bench(
        tmp_path, "deleteold.py", "--samples", "5000", "--chunks", "500,2000", "--seconds", "0.5", "--warmup", "0.2")
    assert report["failures"] == {}
    assert [run["chunk"] for run in report["runs"]] == [500, 2000]
    for run in report["runs"]:
        assert run["deleted"] == 5000 and run["kept_as_expected"] and run["outcome"] == "finished"
        assert run["steps"] == 5000 // run["chunk"] + 1
        assert run["idle"]["median_ms"] > 0 and run["during"]["answered"] > 0
    assert "during median / p99" in stdout


def test_mail_bench_reports(tmp_path):
    stdout, report = run_bench(
        tmp_path, "mail.py", "--letters", "100", "--meters", "5", "--seconds", "0.5", "--warmup", "0.2")
    assert report["failure"] is None
    assert report["quiet"]["letters"] == 100 and report["quiet"]["commit_to_last_s"] > 0
    assert report["with_meters"]["sending"]["letters"] == 100
    assert report["with_meters"]["idle"]["median_ms"] > 0
    assert report["over_ttp"]["alarms_ok"] == 100 and report["over_ttp"]["letters"] == 100
    assert report["outbox"] == {"sent": 300}
    assert report["baseline"]["letters_per_s_sending"] > 0
    assert "smtplib alone (baseline)" in stdout


def test_fanout_bench_reports(tmp_path):
    stdout, report = run_bench(
        tmp_path, "fanout.py", "--watchers", "4", "--meters", "3", "--seconds", "0.5", "--warmup", "0.2", "--rounds", "1", "--idle", "20")
    assert report["failure"] is None and report["notes"] == []
    without, watched = report["fanout"]["windows"]
    assert not without["watched"] and watched["watched"] and watched["watchers"] == 4
    for window in (without, watched):
        assert window["meters"]["answered"] > 0 and window["meters"]["median_ms"] > 0
        assert window["w1_ok"] == window["w1_uploads"] > 0
    # every watcher got every sample W1 had answered OK, once, in order
    assert watched["watchers_with_every_sample"] == 4
    assert watched["events_received"] == watched["events_expected"] == 4 * watched["w1_ok"]
    assert watched["out_of_order"] == watched["resyncs"] == watched["streams_ended"] == 0
    assert report["fanout"]["delivery"]["pairs"] == watched["events_received"]
    assert report["fanout"]["delivery"]["from_send_median_ms"] > 0
    idle = report["idle"]
    assert idle["streams"] == 20 and idle["rss_idle_kib"] > 0 and "bytes_per_stream" in idle
    sent = idle["samples"]
    assert sent["events_received"] == sent["events_expected"] == 20 * sent["w1_ok"] > 0
    assert "delivery from OK" in stdout
