#!/usr/bin/env python3
"""Benchmark of ``manage import``: rows/s and peak memory, against the
SQLite ceiling.

    python3 bench/import.py [--rows N] [--small M] [--json FILE] [--keep]

In a temporary folder: a CSV in the export's format with N rows (default
1,000,000) and, for the memory comparison, one of M rows (default
100,000), 4 fields, a sample a second (every 7th with microseconds, every
11th with an empty cell). Each is imported into a new unit of a fresh
database by ``python -m texmate_ds manage import`` as a subprocess: its
wall time, rows/s, and its peak RSS (``ru_maxrss`` of that child, from
``os.wait4``). Flat memory shows as the same peak for both sizes.

The ceiling is measured in the same run by ``bench/load.py``'s
`run_sqlite` (the ``up100`` ceiling of bench/run.py): rows like these
inserted with the server's own statement, one ``executemany`` + commit per
10,000, in a fresh database. Target (printed, not asserted): the import of
N rows at least half the ceiling's rows/s.

The JSON (default ``bench/results/import.json``) holds every figure.
Exit status 0, 1 when an import failed, 2 for a bad command line.
"""

import argparse
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
sys.path.insert(0, BENCH)

import load  # noqa: E402  (bench/load.py: the SQLite ceiling)

FIELDS = 4


def write_csv(path, rows):
    """The export's format: id,timestamp,L1..L4, CRLF, a sample a second."""
    rng = random.Random(rows)
    start = 1_230_000_000  # 2008-12-23, whole seconds
    with open(path, "w", newline="", encoding="utf-8") as out:
        out.write("id,timestamp,%s\r\n" % ",".join("L%d" % i for i in range(1, FIELDS + 1)))
        chunk = []
        for i in range(rows):
            stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(start + i))
            if i % 7 == 0:
                stamp += ".%06d" % rng.randrange(1, 1000000)
            values = ["%g" % round(rng.uniform(-50.0, 150.0), 3) for _ in range(FIELDS)]
            if i % 11 == 0:
                values[2] = ""
            chunk.append("%d,%s,%s\r\n" % (i + 1, stamp, ",".join(values)))
            if len(chunk) == 10000:
                out.write("".join(chunk))
                chunk = []
        out.write("".join(chunk))


def manage(conf, *args):
    return [sys.executable, "-m", "texmate_ds", "--config", conf, "manage"] + list(args)


def run_import(folder, rows):
    """Make the file and a fresh database, import, measure."""
    work = os.path.join(folder, "n%d" % rows)
    os.makedirs(work)
    conf = os.path.join(work, "txm.conf")
    with open(conf, "w") as f:
        f.write("DS_PORT: 0\nHTTP_PORT: 0\n")
    path = os.path.join(work, "in.csv")
    write_csv(path, rows)
    env = dict(os.environ, PYTHONPATH=ROOT)
    subprocess.run(manage(conf, "addunit", "IMP", "k", "--fields", str(FIELDS)), cwd=work,
                   env=env, check=True, capture_output=True)
    out_path, err_path = os.path.join(work, "import.out"), os.path.join(work, "import.err")
    with open(out_path, "wb") as out_file, open(err_path, "wb") as err_file:
        started = time.monotonic()
        proc = subprocess.Popen(manage(conf, "import", "IMP", path), cwd=work, env=env,
                                stdout=out_file, stderr=err_file, stdin=subprocess.DEVNULL)
        # wait4 reaps this child and gives its own rusage (ru_maxrss: peak RSS, KiB).
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.monotonic() - started
    proc.returncode = os.waitstatus_to_exitcode(status) if hasattr(
        os, "waitstatus_to_exitcode") else status >> 8
    with open(out_path, "rb") as f:
        out = f.read()
    with open(err_path, "rb") as f:
        err = f.read()
    ok = proc.returncode == 0 and ("imported %d samples" % rows).encode() in out
    return {
        "rows": rows,
        "file_bytes": os.path.getsize(path),
        "seconds": round(seconds, 3),
        "rows_per_s": round(rows / seconds, 1),
        "peak_rss_kib": usage.ru_maxrss,
        "ok": ok,
        "output": out.decode(errors="replace").strip(),
        "errors": err.decode(errors="replace").strip()[-2000:],
    }


def ceiling(folder, seconds):
    args = argparse.Namespace(db=os.path.join(folder, "ceiling.db"), batch=10000,
                              seconds=seconds, warmup=0.5)
    return load.run_sqlite(args)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1000000, help="rows of the big file")
    parser.add_argument("--small", type=int, default=100000,
                        help="rows of the small file, for the memory comparison (0: none)")
    parser.add_argument("--ceiling-seconds", type=float, default=3.0)
    parser.add_argument("--json", default=os.path.join(BENCH, "results", "import.json"))
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args(argv)
    if args.rows < 1 or args.small < 0:
        parser.error("--rows must be at least 1, --small at least 0")
    folder = tempfile.mkdtemp(prefix="txm-import-bench-")
    try:
        sizes = sorted({n for n in (args.small, args.rows) if n})
        imports = [run_import(folder, n) for n in sizes]
        ceil = ceiling(folder, args.ceiling_seconds)
    finally:
        if args.keep:
            print("work folder kept: %s" % folder)
        else:
            shutil.rmtree(folder, ignore_errors=True)
    ceiling_rate = ceil["samples_per_s"] or 0
    print("%-26s %12s %10s %12s %14s" % ("", "rows", "seconds", "rows/s", "peak RSS MiB"))
    for fig in imports:
        print("%-26s %12d %10.2f %12.0f %14.1f%s" % (
            "manage import", fig["rows"], fig["seconds"], fig["rows_per_s"],
            fig["peak_rss_kib"] / 1024, "" if fig["ok"] else "  FAILED"))
    print("%-26s %12d %10.2f %12.0f" % ("executemany ceiling", ceil["rows"], ceil["insert_s"],
                                       ceiling_rate))
    big = imports[-1]
    share = big["rows_per_s"] / ceiling_rate if ceiling_rate else 0
    print("import / ceiling: %.2f (target >= 0.5: %s)" % (share, "met" if share >= 0.5
                                                          else "NOT met"))
    if len(imports) > 1:
        print("peak RSS %d rows / %d rows: %.2f (flat: about 1)" % (
            big["rows"], imports[0]["rows"], big["peak_rss_kib"] / imports[0]["peak_rss_kib"]))
    document = {
        "imports": imports, "ceiling": ceil, "import_vs_ceiling": round(share, 3),
        "environment": {"python": platform.python_version(), "machine": platform.machine(),
                        "cpus": os.cpu_count(), "sqlite": __import__("sqlite3").sqlite_version},
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump(document, f, indent=2)
        f.write("\n")
    print("results written to %s" % args.json)
    for fig in imports:
        if not fig["ok"]:
            print("import of %d rows failed:\n%s\n%s" % (fig["rows"], fig["output"],
                                                        fig["errors"]), file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
