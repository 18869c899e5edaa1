#!/usr/bin/env python3
"""Benchmark of status at a glance (texmate_ds/status.py): what the home
page's statuses and its "problems first" order cost, and what keeping
each unit's usual interval costs an upload.

    python3 bench/status.py [--units N] [--samples S] [--runs R] [--json FILE]

A fresh database on disk (WAL, as the server has it) with N units
(default 10,000): one in 50 never heard from, the rest last heard from
up to two hours ago, with usual intervals, expected intervals and
silent-meter waits mixed, so every state is there. Timed, R times each
(default 50), median and slowest, in the benchmark's process:

* ``by code``: a page of 50 units (`Units.page`), the default order;
* ``problems first``: the same with ``order="status"``, first page and
  last page (the sort is one pass over the units table; a later page
  keeps more rows in the sort);
* ``statuses``: `Units.heard` for the 50 units of a page (what the page
  adds to read their statuses);
* ``measure``: one unit's usual interval measured and stored
  (`Samples._measure`, which the upload path does once per
  `samples.MEASURE_EVERY` samples of a unit), the unit holding S samples
  (default 1,000,000), rolled back each time.

Target (printed, not asserted): problems first over 10,000 units within
a few milliseconds; a measure a small fraction of one upload.
"""

import argparse
import os
import platform
import random
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "bench"))

import run as harness  # noqa: E402  (bench/run.py: timed, write_json)

from texmate_ds import store, times  # noqa: E402


def site(path, units, samples):
    db = store.Database(path)
    db.migrate()
    now = times.now()
    pick = random.Random(11)
    db.begin()
    db.executemany(
        "INSERT INTO units (code, key, fields, created, last_received, usual_interval,"
        " expected_interval, silent_minutes) VALUES (?, 'k', 1, 0, ?, ?, ?, ?)",
        [("U%06d" % n, None if n % 50 == 0 else now - pick.randrange(7200) * times.SECOND,
          pick.choice([None, 10 * times.SECOND, times.MINUTE]), pick.choice([None, None, 30]),
          pick.choice([None, 15])) for n in range(units)])
    unit = db.units.get("U000001")
    db.executemany("INSERT INTO samples (unit_id, ts, received, v1) VALUES (?, ?, 0, 1.0)",
                   ((unit.id, n * times.SECOND) for n in range(samples)))
    db.commit()
    return db, unit, now


def main(argv):
    parser = argparse.ArgumentParser(prog="bench/status.py", description=__doc__.split("\n")[0])
    parser.add_argument("--units", type=int, default=10000)
    parser.add_argument("--samples", type=int, default=1000000)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--json", default=os.path.join(ROOT, "bench", "results", "status.json"))
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        db, unit, now = site(os.path.join(folder, "status.db"), args.units, args.samples)
        last = max(0, (args.units - 1) // 50 * 50)
        shown = [u for u, _, _ in db.units.page(0, 50)]

        def measure():
            db.begin()
            db.samples._measure(unit.id)
            db.rollback()
        figures = {
            "by code": harness.timed(lambda: db.units.page(0, 50), args.runs),
            "problems first, page 1": harness.timed(
                lambda: db.units.page(0, 50, order="status", now=now), args.runs),
            "problems first, last page": harness.timed(
                lambda: db.units.page(last, 50, order="status", now=now), args.runs),
            "statuses of a page": harness.timed(lambda: db.units.heard(shown), args.runs),
            "measure": harness.timed(measure, args.runs),
        }
        db.close()
    result = {"units": args.units, "samples": args.samples, "runs": args.runs,
              "figures": figures, "python": platform.python_version(),
              "sqlite": store.sqlite.sqlite3.sqlite_version}
    print("units %d, samples of the measured unit %d, %d runs each (Python %s, SQLite %s)" % (
        args.units, args.samples, args.runs, result["python"], result["sqlite"]))
    print("%-26s %10s %10s" % ("what", "median", "slowest"))
    for name, found in figures.items():
        print("%-26s %7.3f ms %7.3f ms" % (name, found["median_ms"], found["max_ms"]))
    harness.write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
