#!/usr/bin/env python3
"""Benchmarks of the data endpoints: a big graph and a big CSV export.

    python3 bench/web.py [--samples N] [--json FILE]

Builds a temporary store holding N samples (default 1,000,000) of one
field, one a second: a slow sine with noise and 50 spikes of 5 to 10 times
its height. Then, in this process, through the web UI's own WSGI
application (no sockets; a request is an environ, its answer the iterable
the server would send):

* **graph**: ``graph.svg?width=1000`` over every sample, three times; the
  median request's time, and of that the store's decimation query alone
  (`Samples.plot_rows` with the columns the endpoint asks for); the SVG's
  size, its points, and how many spikes the graph rows kept as their
  column's minimum or maximum (a spike sharing its column with a bigger
  one of the same sign is inside that column's line, not its end: such
  spikes are counted apart).
* **csv**: ``samples.csv`` over the first 100,000 and over all N samples,
  read to the end and thrown away chunk by chunk as a server would send
  them: rows/s and bytes/s from a run without tracing, then the
  ``tracemalloc`` peak of a second run, and the process's RSS before and
  after. Constant memory shows as the same peak for both sizes.

* **meters under load**: the real server (a subprocess) on a copy of the
  store, 50 durable meters uploading (``bench/load.py``, as ``up1`` in
  bench/run.py) for ``--seconds`` with nothing else going on; then again
  while this process downloads ``samples.csv`` with all N rows over HTTP,
  over and over for the whole window; then again while it asks for the
  graph of all N over and over: the meters' median and p99 answer time
  each time, the downloads' rows/s and the graphs' time. Target: the
  median during the export within 2x of the idle one.

The table lists each figure with its target (the issue's: graph under 1 s
and 200 kB; CSV memory not growing with the row count); nothing asserts
them. The JSON (default ``bench/results/web.json``) holds every figure and
the environment. Exit status 0, or 2 for a bad command line.
"""

import argparse
import bisect
import datetime
import math
import os
import random
import re
import shutil
import statistics
import sys
import tempfile
import threading
import time
import tracemalloc
import urllib.request
import xml.etree.ElementTree as ET
from wsgiref.util import setup_testing_defaults

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
for folder in (ROOT, BENCH):
    if folder not in sys.path:
        sys.path.insert(0, folder)

import load as loadgen  # noqa: E402  (bench/load.py: RSS from /proc)
import run as harness  # noqa: E402  (bench/run.py: environment, competing processes)

from texmate_ds import config, store, svg_graph, times  # noqa: E402
from texmate_ds.web import make_app  # noqa: E402

T0 = times.parse("2024-01-01 00:00:00")
SECOND = 1000000
SPIKES = 50
GRAPH_WIDTH = 1000
GRAPH_RUNS = 3
BATCH = 10000
METERS = 50


def build(path, count):
    """The unit B1 with `count` samples; returns the spikes {ts: value}."""
    random.seed(1)
    spikes = dict((i, random.choice((-1, 1)) * random.uniform(5, 10))
                  for i in random.sample(range(count), min(SPIKES, count)))
    st = store.Database(path, durable=False)
    st.migrate()
    unit = st.units.add("B1", "benchkey", 1, name="bench")
    for first in range(0, count, BATCH):
        st.samples.add(unit, [
            (T0 + i * SECOND, (spikes.get(i, math.sin(i / 20000) + random.random() / 10),))
            for i in range(first, min(first + BATCH, count))])
        st.commit()
    st.close()
    return {T0 + i * SECOND: value for i, value in spikes.items()}


def request(site, path, query):
    """(status, body iterable) of a GET through the WSGI application."""
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": path, "QUERY_STRING": query}
    setup_testing_defaults(environ)
    answer = {}

    def start_response(status, headers):
        answer["status"] = status
    body = site(environ, start_response)
    return answer["status"], body


def until(count):
    return "from=%s&to=%s" % (times.text(T0).replace(" ", "+"),
                              times.text(T0 + (count - 1) * SECOND).replace(" ", "+"))


def bench_graph(site, st, count, spikes):
    query = until(count) + "&width=%d" % GRAPH_WIDTH
    times, svg = [], b""
    for _ in range(GRAPH_RUNS):
        started = time.perf_counter()
        status, body = request(site, "/units/B1/graph.svg", query)
        svg = b"".join(body)
        times.append(time.perf_counter() - started)
    if not status.startswith("200"):
        raise SystemExit("graph.svg answered %s" % status)
    lines = ET.fromstring(svg).iter("{http://www.w3.org/2000/svg}polyline")   # well-formed
    points = sum(len(line.get("points").split()) for line in lines)
    unit = st.units.get("B1")
    columns = svg_graph.columns(GRAPH_WIDTH, 1, 0)
    started = time.perf_counter()
    rows = st.samples.plot_rows(unit, [1], T0, T0 + (count - 1) * SECOND, columns)
    query_s = time.perf_counter() - started
    kept, hidden = _spikes_kept(rows, spikes)
    return {"samples": count, "width": GRAPH_WIDTH, "columns": columns, "rows": len(rows),
            "seconds": statistics.median(times), "runs_s": times, "query_s": query_s,
            "svg_bytes": len(svg), "points": points,
            "spikes": len(spikes), "spikes_kept": kept, "spikes_in_a_bigger_ones_column": hidden}


def _spikes_kept(rows, spikes):
    """(spikes that are their row's min or max, spikes that cannot be: a
    bigger one of the same sign shares their row)."""
    starts = [row[0] for row in rows]
    by_row = {}
    for ts, value in spikes.items():
        by_row.setdefault(bisect.bisect_right(starts, ts) - 1, []).append(value)
    kept = hidden = 0
    for index, values in by_row.items():
        for value in values:
            if value in (rows[index][2], rows[index][3]):
                kept += 1
            elif any(abs(other) > abs(value) and other * value > 0 for other in values):
                hidden += 1
    return kept, hidden


def drain(body):
    rows = size = 0
    for chunk in body:
        rows += chunk.count(b"\n")
        size += len(chunk)
    return rows - 1, size   # the header is no sample


def bench_csv(site, count):
    rss_before = loadgen.rss_kib(os.getpid())
    started = time.perf_counter()
    rows, size = drain(request(site, "/units/B1/samples.csv", until(count))[1])
    seconds = time.perf_counter() - started
    rss_after = loadgen.rss_kib(os.getpid())
    tracemalloc.start()
    drain(request(site, "/units/B1/samples.csv", until(count))[1])
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return {"rows": rows, "bytes": size, "seconds": seconds, "rows_per_s": rows / seconds,
            "mb_per_s": size / seconds / 1e6, "tracemalloc_peak_kib": peak / 1024,
            "rss_before_kib": rss_before, "rss_after_kib": rss_after}


def download(port, path, query):
    """GET over HTTP, reading to the end in 64 KiB pieces; (rows, seconds)."""
    started = time.perf_counter()
    with urllib.request.urlopen("http://127.0.0.1:%d%s?%s" % (port, path, query),
                                timeout=120) as answer:
        rows = 0
        while True:
            chunk = answer.read(65536)
            if not chunk:
                break
            rows += chunk.count(b"\n")
    return rows - 1, time.perf_counter() - started


def bench_meters_under_load(work, path, count, seconds):
    """Meters' answer times with the server idle, then while this process
    downloads the whole CSV over and over, then while it asks for the
    graph of every sample over and over."""
    def setup(conf):
        os.makedirs(os.path.join(os.path.dirname(conf), "db"))
        shutil.copy(path, os.path.join(os.path.dirname(conf), "db", "bench.db"))
        harness.make_units(harness.units("U", METERS))(conf)

    server = harness.start_ours(os.path.join(work, "meters"), "meters",
                                {"LOGIN_REQUIRED": "no"}, setup)
    try:
        http_port = int(re.search(r"^HTTP: listening on .*:(\d+)$",
                                  harness._read(server.out_path), re.M).group(1))
        load = ("--meters", METERS, "--samples", 1, "--interval", 0)
        figures = {"meters": METERS, "seconds": seconds}

        def meters(name):
            fig = harness.run_load(server, server.folder, "up", seconds, 1, *load)
            figures.update({name + "_median_ms": fig["median_ms"], name + "_p99_ms": fig["p99_ms"],
                            name + "_requests_per_s": fig["requests_per_s"]})

        def meanwhile(name, path, query):
            """Meters while `path` is fetched over and over; its fetches."""
            fetches = []
            stop = threading.Event()

            def fetch_forever():
                while not stop.is_set():
                    fetches.append(download(http_port, path, query))

            fetcher = threading.Thread(target=fetch_forever, daemon=True)
            fetcher.start()
            try:
                meters(name)
            finally:
                stop.set()
                fetcher.join()
            figures[name + "_fetches"] = len(fetches)
            figures[name + "_fetch_s"] = sum(t for _, t in fetches) / len(fetches)
            figures[name + "_rows_per_s"] = sum(r for r, _ in fetches) / sum(
                t for _, t in fetches)

        meters("idle")
        meanwhile("export", "/units/B1/samples.csv", until(count))
        meanwhile("graph", "/units/B1/graph.svg", until(count) + "&width=%d" % GRAPH_WIDTH)
    finally:
        server.stop()
    return figures


def table(graph, csvs, loaded):
    big, small = csvs[-1], csvs[0]
    growth = big["tracemalloc_peak_kib"] / small["tracemalloc_peak_kib"]
    lines = [
        ("graph %s samples, %d px: time (median of %d)" % (
            format(graph["samples"], ","), graph["width"], GRAPH_RUNS),
         "%.3f s" % graph["seconds"], "< 1 s", graph["seconds"] < 1),
        ("  of which the decimation query", "%.3f s" % graph["query_s"], "", None),
        ("  SVG size (%s points)" % format(graph["points"], ","),
         "%.1f kB" % (graph["svg_bytes"] / 1000), "< 200 kB", graph["svg_bytes"] < 200000),
        ("  spikes kept as column extremes", "%d of %d (%d beside a bigger one)" % (
            graph["spikes_kept"], graph["spikes"], graph["spikes_in_a_bigger_ones_column"]),
         "all", graph["spikes_kept"] + graph["spikes_in_a_bigger_ones_column"] == graph["spikes"]),
    ]
    for fig in csvs:
        lines += [
            ("csv %s rows: rate" % format(fig["rows"], ","),
             "%s rows/s (%.1f MB/s)" % (format(round(fig["rows_per_s"]), ","), fig["mb_per_s"]),
             "", None),
            ("  tracemalloc peak", "%.0f KiB" % fig["tracemalloc_peak_kib"], "", None),
            ("  RSS before -> after", "%s -> %s KiB" % (fig["rss_before_kib"],
                                                        fig["rss_after_kib"]), "", None),
        ]
    lines.append(("csv peak memory, %s rows / %s rows" % (
        format(big["rows"], ","), format(small["rows"], ",")),
        "%.2f x" % growth, "flat (< 1.5 x)", growth < 1.5))
    def meters(name, what):
        return ("%s: median / p99" % what, "%.2f / %.2f ms (%s req/s)" % (
            loaded[name + "_median_ms"], loaded[name + "_p99_ms"],
            format(round(loaded[name + "_requests_per_s"]), ",")), "", None)

    export_slowdown = loaded["export_median_ms"] / loaded["idle_median_ms"]
    graph_slowdown = loaded["graph_median_ms"] / loaded["idle_median_ms"]
    lines += [
        meters("idle", "%d meters, server otherwise idle" % loaded["meters"]),
        meters("export", "  while whole-range CSV exports download"),
        ("  median during exports / idle", "%.2f x" % export_slowdown, "<= 2 x",
         export_slowdown <= 2),
        ("  the exports meanwhile", "%d, %s rows/s" % (
            loaded["export_fetches"], format(round(loaded["export_rows_per_s"]), ",")), "", None),
        meters("graph", "  while whole-range graphs are asked for"),
        ("  median during graphs / idle", "%.2f x" % graph_slowdown, "", None),
        ("  the graphs meanwhile", "%d, %.3f s each" % (
            loaded["graph_fetches"], loaded["graph_fetch_s"]), "", None),
    ]
    shown = [("metric", "value", "target", "met")] + [
        (name, value, target, "" if met is None else "yes" if met else "NO")
        for name, value, target, met in lines]
    widths = [max(len(line[i]) for line in shown) for i in range(3)]
    text = ["  ".join(cell.ljust(width) for cell, width in zip(line, widths + [0])).rstrip()
            for line in shown]
    return "\n".join(text), [dict(zip(("metric", "value", "target", "met"), line))
                             for line in lines]


def parse_args(argv):
    parser = argparse.ArgumentParser(description="Benchmark the graph and CSV endpoints.")
    parser.add_argument("--samples", type=int, default=1000000,
                        help="samples in the store (default %(default)s)")
    parser.add_argument("--seconds", type=float, default=10,
                        help="seconds each meters' run lasts (default %(default)s)")
    parser.add_argument("--json", default=os.path.join(BENCH, "results", "web.json"),
                        help="where to write the results (default %(default)s)")
    args = parser.parse_args(argv)
    if not 1000 <= args.samples <= 10000000:
        parser.error("--samples: 1000 to 10000000")
    return args


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    env = harness.checked_environment()
    work = tempfile.mkdtemp(prefix="txm-bench-web-")
    try:
        path = os.path.join(work, "web.db")
        print("building %s samples..." % format(args.samples, ","), end="", flush=True)
        started = time.monotonic()
        spikes = build(path, args.samples)
        print(" %.1f s" % (time.monotonic() - started), flush=True)
        st = store.Database(path)
        site = make_app(st, config.Settings(LOGIN_REQUIRED=False))
        graph = bench_graph(site, st, args.samples, spikes)
        csvs = [bench_csv(site, count) for count in sorted({min(100000, args.samples),
                                                             args.samples})]
        st.close()
        print("%d meters idle, during exports, during graphs (3 x %g s)..."
              % (METERS, args.seconds), flush=True)
        loaded = bench_meters_under_load(work, path, args.samples, args.seconds)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    text, rows = table(graph, csvs, loaded)
    print()
    print(text)
    print("\ntargets are reported, not asserted")
    document = {"when": datetime.datetime.now().isoformat(timespec="seconds"),
                "command": " ".join(["python3", "bench/web.py"] + (
                    sys.argv[1:] if argv is None else list(argv))),
                "environment": env, "table": rows, "graph": graph, "csv": csvs,
                "meters_under_load": loaded}
    harness.write_json(args.json, document)
    print("results written to %s" % args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
