#!/usr/bin/env python3
"""What PostgreSQL's own CPU per upload comes to: the store's way of
writing a loop turn's uploads against two others, in one run.

    python3 bench/pgbatch.py [--turns N] [--sizes 10,25] [--json FILE]

The store (``store``) holds a loop turn's uploads and writes them with
one statement that locks their units, stores them and counts them
(``Samples.add_later``, ``PostgreSQL.insert_samples``), then COMMITs.
Two other ways write the same turn: ``one``, a statement per sample
that locks its unit, stores it and counts it (a ``WITH``: the store's
way before it held uploads was a little dearer still), and ``batched``,
three statements whatever the turn's size: one lock of all its units,
one INSERT of every sample, one UPDATE of every unit's counts from a
list of values; then the COMMIT. No server runs: this process writes
straight to the database, the ``store`` way through the store itself
(``samples.add_later`` and ``commit``, what the upload path calls), the
others through the driver. The turns are of `--sizes`
samples (50 meters through two processes make turns of up to 25 each),
each of its own unit's, as up1's are.

For each size and way: PostgreSQL's CPU (the postmaster and every process
it started, from ``/proc``) per sample, and this process's, over
`--turns` turns after a warm-up of a tenth as many; each way twice,
alternating, the better of the two kept. PostgreSQL is the tests'
cluster (tests/postgres.py), with ``fsync`` on as shipped. Without it
(or psycopg) nothing runs, saying why. Exit status 0 when the run
happened, whatever the figures.
"""

import argparse
import os
import sys
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
for folder in (ROOT, BENCH, os.path.join(ROOT, "tests")):
    if folder not in sys.path:
        sys.path.insert(0, folder)

import postgres  # noqa: E402  (tests/postgres.py)
import run as harness  # noqa: E402  (bench/run.py)
import scaleout  # noqa: E402  (its /proc readings of PostgreSQL)

from texmate_ds import config, store  # noqa: E402

FIELDS = 4
UNITS = 50
WAYS = ("store", "one", "batched")


class Turns:
    """Turns of `size` samples, one per unit, for each way: each turn's
    timestamps new, so that every sample is stored."""

    def __init__(self, db, size):
        self.db = db
        self.size = size
        self.units = [db.units.add("P%d_%d" % (size, n), "k", FIELDS) for n in range(UNITS)]
        db.commit()
        self.next_ts = 10 ** 12
        self.conn = postgres_connection(db)

    def _samples(self):
        """[(unit, ts, values)] of the next turn."""
        turn = [(self.units[(self.next_ts + i) % UNITS], self.next_ts + i, (1.0, 2.0, 3.0, 4.0))
                for i in range(self.size)]
        self.next_ts += self.size
        return turn

    def store(self):
        for unit, ts, values in self._samples():
            self.db.samples.add_later(unit, [(ts, values)])
        self.db.commit()

    def one(self):
        turn = self._samples()
        received = int(time.time() * 1e6)
        with self.conn.transaction():
            cursor = self.conn.cursor()
            for unit, ts, values in turn:
                cursor.execute(
                    "WITH unit AS (SELECT id FROM units WHERE id = %s FOR NO KEY UPDATE),"
                    " stored AS (INSERT INTO samples (unit_id, ts, received, v1, v2, v3, v4)"
                    " SELECT id, %s, %s, %s, %s, %s, %s FROM unit ON CONFLICT DO NOTHING"
                    " RETURNING unit_id, ts, received)"
                    " UPDATE units SET sample_count = units.sample_count + 1,"
                    " last_ts = greatest(units.last_ts, stored.ts),"
                    " last_received = stored.received FROM stored WHERE units.id = stored.unit_id",
                    (unit.id, ts, received) + values, prepare=True)

    def batched(self):
        turn = self._samples()
        marks = ", ".join(["(%s, %s, %s, %s, %s, %s, %s)"] * len(turn))
        counts = ", ".join(["(%s::bigint, %s::bigint, %s::bigint)"] * len(turn))
        received = int(time.time() * 1e6)
        with self.conn.transaction():
            cursor = self.conn.cursor()
            cursor.execute("SELECT id FROM units WHERE id = ANY(%s) ORDER BY id"
                           " FOR NO KEY UPDATE", ([unit.id for unit, _, _ in turn],))
            cursor.execute("INSERT INTO samples (unit_id, ts, received, v1, v2, v3, v4) VALUES "
                           + marks + " ON CONFLICT DO NOTHING",
                           [v for unit, ts, values in turn for v in (unit.id, ts, received)
                            + values], prepare=True)
            cursor.execute(
                "UPDATE units SET sample_count = units.sample_count + 1,"
                " last_ts = greatest(units.last_ts, v.ts), last_received = v.received"
                " FROM (VALUES " + counts + ") AS v(id, ts, received) WHERE units.id = v.id",
                [v for unit, ts, _ in turn for v in (unit.id, ts, received)], prepare=True)


def postgres_connection(db):
    """A driver connection of its own to the database `db` is on."""
    import psycopg
    where = db.path
    return psycopg.connect(dbname=where.name, host=where.host, port=where.port,
                           user=where.user or None, autocommit=True)


def measure(turns, way, count, cluster):
    """{postgresql_us, client_us, samples_per_s} per sample over `count`
    turns the `way` way."""
    write = getattr(turns, way)
    for _ in range(max(1, count // 10)):
        write()

    def pg():
        return sum(scaleout.cpu({"pg": lambda: scaleout.postgres_pids(cluster)})["pg"].values())
    pg_before, client_before, started = pg(), time.process_time(), time.monotonic()
    for _ in range(count):
        write()
    pg_after, client_after, ended = pg(), time.process_time(), time.monotonic()
    samples = count * turns.size
    return {"postgresql_us": round((pg_after - pg_before) / samples * 1e6, 1),
            "client_us": round((client_after - client_before) / samples * 1e6, 1),
            "samples_per_s": round(samples / (ended - started))}


def main(argv):
    parser = argparse.ArgumentParser(prog="bench/pgbatch.py",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--turns", type=int, default=400, help="measured turns (default 400)")
    parser.add_argument("--sizes", default="10,25", help="samples a turn (default 10,25)")
    parser.add_argument("--json", default=os.path.join(BENCH, "results", "pgbatch.json"))
    plan = parser.parse_args(argv)
    try:
        sizes = [int(size) for size in plan.sizes.split(",")]
    except ValueError:
        parser.error("--sizes: whole numbers, comma-separated")
    if not (1 <= plan.turns <= 100000 and sizes and all(1 <= s <= UNITS for s in sizes)):
        parser.error("--turns: 1 to 100000; --sizes: each 1 to %d" % UNITS)
    env = harness.checked_environment()
    why = postgres.available()
    results = {}
    if why:
        print("left out: " + why)
    else:
        cluster = postgres.Cluster(fsync=True)
        try:
            env["postgresql"] = scaleout.postgres_version(cluster)
            db = store.Database(store.address(config.Settings(
                **cluster.settings_values(cluster.database()))))
            db.migrate()
            for size in sizes:
                turns = Turns(db, size)
                runs = {way: [] for way in WAYS}
                for _ in range(2):
                    for way in WAYS:
                        runs[way].append(measure(turns, way, plan.turns, cluster))
                results[size] = {way: min(figures, key=lambda f: f["postgresql_us"])
                                 for way, figures in runs.items()}
                turns.conn.close()
            db.close()
        finally:
            cluster.remove()
        print(table(results))
    harness.write_json(plan.json, {"environment": env, "turns": plan.turns,
                                   "left_out": why, "sizes": results})
    print("\nJSON: %s" % plan.json)
    return 0


def table(results):
    rows = [("samples a turn", "way", "PostgreSQL us/sample", "this process us/sample",
             "samples/s")]
    for size, ways in results.items():
        for way, fig in ways.items():
            rows.append((str(size), way, "%.1f" % fig["postgresql_us"], "%.1f" % fig["client_us"],
                         "{:,}".format(fig["samples_per_s"])))
        batched = ways["batched"]["postgresql_us"]   # 0 in a window shorter than a clock tick
        rows.append((str(size), "store / batched",
                     "%.2f" % (ways["store"]["postgresql_us"] / batched) if batched else "-",
                     "", ""))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in
                       enumerate(zip(row, widths))) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
