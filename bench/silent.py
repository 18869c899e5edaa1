#!/usr/bin/env python3
"""Benchmark of the silent-meter check: what one look costs the loop.

    python3 bench/silent.py [--units N] [--runs R] [--json FILE]

A fresh database on disk (WAL, as the server has it) with N units
(default 10,000), every one watched (``silent_minutes`` 15: the worst
case, where no row is passed over before the time test), each with its
newest upload a minute ago. Timed, R times each (default 50), median and
slowest:

* ``quiet``: a look that finds nothing (what nearly every look is): the
  one query of ``Units.silence`` and nothing else;
* ``silent 100``: 100 of the units went silent, each with a mailing list
  of one address: a look that raises their 100 alarms and queues their
  100 letters (one batch, ``alarms.SILENT_BATCH``), rolled back each time
  so the next run finds them again.

Times are the check's own (`alarms.SilentMeters.check`), in the
benchmark's process, without the commit (the group commit's, shared with
that turn's uploads). Target (printed, not asserted): a quiet look over
10,000 units well under a millisecond per thousand units, so a look every
30 s costs the meters nothing they could notice.
"""

import argparse
import os
import platform
import sys
import tempfile
import types

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "bench"))

import run as harness  # noqa: E402  (bench/run.py: timed, write_json)

from texmate_ds import alarms, events, store, times  # noqa: E402


def site(path, units):
    db = store.Database(path)
    db.migrate()
    now = times.now()
    db.begin()
    db.executemany(
        "INSERT INTO units (code, key, name, fields, created, silent_minutes, last_received)"
        " VALUES (?, 'k', ?, 4, ?, 15, ?)",
        [("U%d" % n, "Meter %d" % n, now - times.DAY, now - times.MINUTE)
         for n in range(units)])
    user = db.accounts.add_user("ops", "x", email="ops@example.org")
    db.executemany("INSERT INTO mailing_list (unit_id, user_id) VALUES (?, ?)",
                   [(unit_id, user.id) for (unit_id,) in db.all("SELECT id FROM units")])
    db.commit()
    loop = types.SimpleNamespace(call_later=lambda delay, fn: None)
    server = types.SimpleNamespace(store=db, loop=loop, events=events.Bus(),
                                   after_commit=lambda fn: None)
    return db, alarms.SilentMeters(server, 30)


def main(argv):
    parser = argparse.ArgumentParser(prog="bench/silent.py", description=__doc__.split("\n")[0])
    parser.add_argument("--units", type=int, default=10000)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--json", default=os.path.join(ROOT, "bench", "results", "silent.json"))
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        db, check = site(os.path.join(folder, "silent.db"), args.units)
        assert check.check() == []
        quiet = harness.timed(check.check, args.runs)
        db.execute("UPDATE units SET last_received = ? WHERE id <= 100",
                   (times.now() - times.HOUR,))
        db.commit()

        def silent_100():
            raised = check.check()
            assert len(raised) == 100, len(raised)
            db.rollback()
        silent = harness.timed(silent_100, args.runs)
        db.close()
    result = {"units": args.units, "runs": args.runs, "quiet": quiet, "silent_100": silent,
              "python": platform.python_version(), "sqlite": store.sqlite.sqlite3.sqlite_version}
    print("units %d, %d runs each (Python %s, SQLite %s)" % (
        args.units, args.runs, result["python"], result["sqlite"]))
    print("%-12s %10s %10s" % ("look", "median", "slowest"))
    for name, figures in (("quiet", quiet), ("silent 100", silent)):
        print("%-12s %7.3f ms %7.3f ms" % (name, figures["median_ms"], figures["max_ms"]))
    harness.write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
