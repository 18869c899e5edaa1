#!/usr/bin/env python3
"""Benchmark of the admin's samples change list: is the last page of a
million samples as quick as the first?

    python3 bench/changelist.py [--samples N] [--runs R] [--json FILE]

Builds a temporary store holding N samples (default 1,000,000) of one
unit of four fields (`web.build`'s shape), signs a superuser in, and asks
the admin's WSGI application (in this process, no sockets) for pages of
``/admin/samples/?unit=B1``: the first (newest), one in the middle
(``before=`` the middle timestamp) and the last (``oldest=1``), R times
each in turn. The figure is the time to the first byte of the answer,
the median of R, in milliseconds. For contrast, the same page's rows
fetched the way a numbered paginator would, ``ORDER BY ts DESC LIMIT 100
OFFSET k``: what keyset paging saves. Target: the last page's time to
first byte the same as the first page's within noise (10 %).

Prints a table; the JSON (default ``bench/results/changelist.json``)
holds every run. Nothing is asserted. Exit status 0, or 2 for a bad
command line.
"""

import argparse
import datetime
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from wsgiref.util import setup_testing_defaults

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
for folder in (ROOT, BENCH):
    if folder not in sys.path:
        sys.path.insert(0, folder)

import run as harness  # noqa: E402  (bench/run.py: environment, competing processes)

from texmate_ds import auth, config, store, times  # noqa: E402
from texmate_ds.web import app, make_app  # noqa: E402

T0 = times.parse("2024-01-01 00:00:00")
SECOND = 1000000
BATCH = 10000
FIELDS = 4
PAGE = 100


def build(path, count):
    st = store.Database(path, durable=False)
    st.migrate()
    unit = st.units.add("B1", "benchkey", FIELDS, name="bench")
    for first in range(0, count, BATCH):
        st.samples.add(unit, [(T0 + i * SECOND, (i * 0.5, i % 97, 1.5, -i))
                              for i in range(first, min(first + BATCH, count))])
        st.commit()
    root = st.accounts.add_user("root", "x", is_staff=True, is_superuser=True)
    secret = auth.start_session(st, root.id, 1)
    st.commit()
    st.close()
    return secret


def first_byte(site, query, cookie):
    """Seconds from the call to the answer's first chunk, and its status."""
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/admin/samples/",
               "QUERY_STRING": query, "HTTP_COOKIE": "%s=%s" % (app.SESSION_COOKIE, cookie)}
    setup_testing_defaults(environ)
    answer = {}

    def start_response(status, headers):
        answer["status"] = status
    started = time.perf_counter()
    body = iter(site(environ, start_response))
    next(body)
    took = time.perf_counter() - started
    for _ in body:
        pass
    return took, answer["status"]


def offset_rows(st, unit, offset):
    started = time.perf_counter()
    st.all("SELECT id, ts, v1, v2, v3, v4 FROM samples WHERE unit_id = ? ORDER BY ts DESC"
           " LIMIT ? OFFSET ?", (unit.id, PAGE, offset))
    return time.perf_counter() - started


def main(argv=None):
    parser = argparse.ArgumentParser(description="Benchmark the samples change list.")
    parser.add_argument("--samples", type=int, default=1000000)
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--json", default=os.path.join(BENCH, "results", "changelist.json"))
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if not 1000 <= args.samples <= 10000000 or not 1 <= args.runs <= 100:
        parser.error("--samples: 1000 to 10000000; --runs: 1 to 100")
    env = harness.environment()
    work = tempfile.mkdtemp(prefix="txm-bench-changelist-")
    try:
        path = os.path.join(work, "admin.db")
        print("building %s samples..." % format(args.samples, ","), end="", flush=True)
        started = time.monotonic()
        cookie = build(path, args.samples)
        print(" %.1f s" % (time.monotonic() - started), flush=True)
        st = store.Database(path)
        site = make_app(st, config.Settings())
        unit = st.units.get("B1")
        middle = T0 + (args.samples // 2) * SECOND
        pages = [("first", "unit=B1", 0), ("middle", "unit=B1&before=%d" % middle,
                                           args.samples // 2),
                 ("last", "unit=B1&oldest=1", args.samples - PAGE)]
        runs = {name: [] for name, _, _ in pages}
        offsets = {name: [] for name, _, _ in pages}
        for _ in range(args.runs):
            for name, query, offset in pages:   # in turn, so drift hits all alike
                took, status = first_byte(site, query, cookie)
                if not status.startswith("200"):
                    raise SystemExit("%s page answered %s" % (name, status))
                runs[name].append(took)
                offsets[name].append(offset_rows(st, unit, offset))
        st.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    first = statistics.median(runs["first"])
    rows = []
    print("\n%-8s %16s %14s %24s" % ("page", "first byte (ms)", "vs first", "OFFSET query (ms)"))
    for name, _, _ in pages:
        median = statistics.median(runs[name])
        offset = statistics.median(offsets[name])
        rows.append({"page": name, "first_byte_ms": round(median * 1000, 2),
                     "ratio_to_first": round(median / first, 3),
                     "offset_query_ms": round(offset * 1000, 2)})
        print("%-8s %16.2f %14.2f %24.2f" % (name, median * 1000, median / first,
                                             offset * 1000))
    print("\ntarget: the last page within 10 % of the first (reported, not asserted)")
    document = {"when": datetime.datetime.now().isoformat(timespec="seconds"),
                "command": " ".join(["python3", "bench/changelist.py"] + (
                    sys.argv[1:] if argv is None else list(argv))),
                "environment": env, "samples": args.samples, "table": rows,
                "runs_s": runs, "offset_runs_s": offsets}
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump(document, f, indent=2)
    print("results written to %s" % args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
