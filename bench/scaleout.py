#!/usr/bin/env python3
"""Scale-out: the same loads on one process on SQLite, one process on
PostgreSQL, and two processes on PostgreSQL behind HAProxy, in one run.

    python3 bench/scaleout.py [--seconds S] [--warmup W] [--json FILE]

Three parts, one after the other, each on a fresh database:

* ``sqlite x1``: ``texmate_ds serve`` on SQLite (WAL, synchronous=FULL);
* ``postgresql x1``: the same on PostgreSQL;
* ``postgresql x2``: two processes on one PostgreSQL database, reached
  through HAProxy (TCP mode, round robin: tests/haproxy.py's config).

PostgreSQL is the tests' own cluster (tests/postgres.py: Debian's
package, initdb in a temporary folder, 127.0.0.1) but durable as
PostgreSQL ships it (``fsync``, ``full_page_writes``, ``synchronous_commit``
on): an OK means committed to disk on both engines.

Each part runs three loads from bench/load.py, each a closed loop after a
warm-up (not counted):

* ``up1``: 50 meters, one sample per upload, ``COMMIT_INTERVAL: 1``;
* ``dl``: 50 meters doing ``dl last`` of a unit they may read;
* ``ok``: 50 meters sending ``ok``, which asks no database: what an
  exchange costs each part before any database work.

For each: requests/s and p99 (bench/load.py's figures), and the CPU
seconds each part of the system used over the measured window, from
``/proc/PID/stat``: every texmate_ds process, PostgreSQL (the postmaster
and all its children), HAProxy, the load generator, and "other" (the
machine's busy time less all those: the kernel's network work, mostly).
The same CPU is then shown per request, with the rate the machine's
cores could carry at that cost were nothing else running (the
"ceiling"): CPU per request changes little when the machine is shared,
where rates drift. The target, printed and never asserted: up1 on two
processes on PostgreSQL at least 1.5x up1 on one process on SQLite; and
with it the CPU an upload may cost at that rate on this machine's cores
(the "budget"), beside what an ``ok`` costs through two processes.

Without PostgreSQL (or psycopg) or HAProxy the parts that need them are
left out, saying why. Exit status: 0 when the run happened, whatever the
figures; 1 when the harness failed (a server did not start or died).
"""

import argparse
import os
import re
import shutil
import signal
import sys
import tempfile
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
for folder in (ROOT, BENCH, os.path.join(ROOT, "tests")):
    if folder not in sys.path:
        sys.path.insert(0, folder)

import haproxy  # noqa: E402  (tests/haproxy.py)
import load as loadgen  # noqa: E402  (bench/load.py: the /proc readings)
import postgres  # noqa: E402  (tests/postgres.py)
import run as harness  # noqa: E402  (bench/run.py)

METERS = 50
TARGET = 1.5        # up1 on postgresql x2 against sqlite x1
PARTS = ("sqlite x1", "postgresql x1", "postgresql x2")
LOADS = {
    "up1": ("up", "--meters", METERS),
    "dl": ("dl", "--meters", METERS, "--source", "SRC"),
    "ok": ("ok", "--meters", METERS),
}


class Target:
    """What load.py is pointed at: a port, and the pid it reads as "the
    server" (unused here: every part's CPU is read by `cpu`)."""

    def __init__(self, port, pid):
        self.port, self.pid = port, pid


class Backend:
    """A texmate_ds process as tests/haproxy.py wants it: its two ports."""

    def __init__(self, server):
        with open(server.out_path) as f:
            text = f.read()
        self.ttp_port = server.port
        self.http_port = int(re.search(r"^HTTP: listening on .*:(\d+)$", text, re.M).group(1))


def postgres_pids(cluster):
    """The postmaster of `cluster` and every process it started."""
    with open(os.path.join(cluster.data, "postmaster.pid")) as f:
        master = int(f.readline())
    pids = [master]
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open("/proc/%s/stat" % name) as f:
                    parent = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if parent == master:
                pids.append(int(name))
    return pids


def cpu(parts):
    """{part: {pid: CPU seconds}} now; `parts` is {part: callable giving its pids}."""
    return {name: {pid: loadgen.cpu_seconds(pid) or 0.0 for pid in pids()}
            for name, pids in parts.items()}


def spent(before, after):
    """CPU seconds of each part between two `cpu` readings (a process
    that started between counts from zero)."""
    return {name: round(sum(seconds - before[name].get(pid, 0.0)
                            for pid, seconds in after[name].items()), 3)
            for name in after}


def measure(target, parts, folder, workload, seconds, warmup):
    """One workload's window: load.py's figures, with each part's CPU."""
    os.makedirs(folder)

    def during():
        machine, before = loadgen.machine_cpu(), cpu(parts)
        time.sleep(seconds)
        return spent(before, cpu(parts)), loadgen.machine_cpu()[0] - machine[0]

    mode, *extra = LOADS[workload]
    figures, (used, busy) = harness.load_window(target, folder, warmup, during, *extra,
                                                mode=mode)
    used["load"] = figures["load_cpu_s"]
    used["other"] = round(max(0.0, busy - sum(used.values())), 3)
    figures["cpu_s"] = used
    answered = figures["answered"] or 1
    figures["cpu_us_per_request"] = {name: round(seconds / answered * 1e6, 1)
                                     for name, seconds in used.items()}
    return figures


def setup(conf):
    """The meters U1..U50, SRC and its readers R1..R50, and C1..C50 (ok),
    in the database before the first process starts."""
    harness.make_units(harness.units("U", METERS), harness.units("C", METERS))(conf)
    harness.make_readers(METERS, "SRC")(conf)


def run_part(name, folder, plan, cluster):
    """Start the part's processes, run each workload, stop them."""
    conf = {"COMMIT_INTERVAL": 1}
    if cluster is not None:
        conf.update({key: value for key, value in
                     cluster.settings_values(cluster.database()).items()})
    processes = 2 if name.endswith("x2") else 1
    servers, balancer = [], None
    try:
        for n in range(processes):
            servers.append(harness.start_ours(os.path.join(folder, "texmate_ds%d" % (n + 1)),
                                              "scaleout", conf, setup if n == 0 else None))
        parts = {"texmate_ds %d" % (n + 1): (lambda pid=srv.pid: [pid])
                 for n, srv in enumerate(servers)}
        if cluster is not None:
            parts["PostgreSQL"] = lambda: postgres_pids(cluster)
        if processes > 1:
            balancer = haproxy.HAProxy(os.path.join(folder, "haproxy"),
                                       [Backend(srv) for srv in servers])
            balancer.wait_all("UP")
            parts["HAProxy"] = lambda: [balancer.proc.pid]
            target = Target(balancer.ttp_port, servers[0].pid)
        else:
            target = Target(servers[0].port, servers[0].pid)
        harness.upload_source(target.port, "SRC")
        result = {workload: measure(target, parts, os.path.join(folder, workload), workload,
                                    plan.seconds, plan.warmup)
                  for workload in LOADS}
    finally:
        if balancer is not None:
            balancer.stop()
        stopped = [srv.stop() for srv in servers]
    died = [n + 1 for n, info in enumerate(stopped) if info.get("died_before_stop")]
    if died:
        raise harness.HarnessError("texmate_ds %s died during the run" % died)
    result["servers"] = stopped
    return result


def cost(fig):
    """The CPU (µs) this load cost each request: every part but "other"."""
    return sum(us for name, us in fig["cpu_us_per_request"].items() if name != "other")


def ceiling(fig):
    """Requests/s the machine's cores could carry at the CPU this load
    cost each request, were nothing else there."""
    return os.cpu_count() * 1e6 / cost(fig) if cost(fig) else None


def tables(results):
    """The rates and each part's CPU seconds; then the same CPU per request."""
    rates = [("part", "load", "requests/s", "p99 ms", "texmate_ds CPU s", "PostgreSQL",
              "HAProxy", "load gen", "other")]
    costs = [("part", "load", "texmate_ds us/req", "PostgreSQL", "HAProxy", "load gen",
              "sum", "%d-core ceiling req/s" % os.cpu_count())]
    for part, result in results.items():
        for workload in LOADS:
            fig = result[workload]
            rates.append((part, workload, "{:,.0f}".format(fig["requests_per_s"]),
                          "%.2f" % fig["p99_ms"] if fig["p99_ms"] is not None else "-")
                         + _parts(fig["cpu_s"], "%.2f", other=True))
            us = fig["cpu_us_per_request"]
            costs.append((part, workload) + _parts(us, "%.0f")
                         + ("%.0f" % cost(fig),
                            "{:,.0f}".format(ceiling(fig) or 0)))
    return _format(rates) + "\n\n" + _format(costs)


def budget(results):
    """What the target leaves each upload: {the rate (TARGET times sqlite
    x1's up1), the CPU (µs) per upload the cores carry at it, and what an
    exchange asking no database (ok) cost through postgresql x2}."""
    rate = TARGET * results["sqlite x1"]["up1"]["requests_per_s"]
    return {"uploads_per_s": round(rate), "us_per_upload": round(os.cpu_count() * 1e6 / rate, 1),
            "ok_postgresql_x2_us": round(cost(results["postgresql x2"]["ok"]), 1)}


def _parts(values, form, other=False):
    ours = [values[k] for k in sorted(values) if k.startswith("texmate_ds")]
    cells = (" + ".join(form % v for v in ours),) + tuple(
        form % values[k] if k in values else "-" for k in ("PostgreSQL", "HAProxy", "load"))
    return cells + ((form % values["other"],) if other else ())


def _format(cells):
    header = cells[0]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) if i < 2 else c.rjust(w)
                       for i, (c, w) in enumerate(zip(row, widths))) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv):
    parser = argparse.ArgumentParser(prog="bench/scaleout.py",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=6.0,
                        help="measured seconds of each load (default %(default)s)")
    parser.add_argument("--warmup", type=float, default=1.0,
                        help="seconds of warm-up before each (default %(default)s)")
    parser.add_argument("--json", default=os.path.join(BENCH, "results", "scaleout.json"))
    plan = parser.parse_args(argv)
    if not (0 < plan.seconds <= 600 and 0 <= plan.warmup <= 60):
        parser.error("--seconds: above 0 and at most 600; --warmup: 0 to 60")
    # SIGTERM ends the run like Ctrl-C: the finally blocks stop every process.
    signal.signal(signal.SIGTERM, harness._interrupt)
    env = harness.checked_environment()
    missing = {}
    why = postgres.available()
    if why:
        missing["postgresql x1"] = missing["postgresql x2"] = why
    elif haproxy.available():
        missing["postgresql x2"] = haproxy.available()
    for part, reason in missing.items():
        print("%s: left out: %s" % (part, reason), flush=True)
    work = tempfile.mkdtemp(prefix="txm-scaleout-")
    cluster = None
    results, failures = {}, {}
    try:
        if len(missing) < 2:
            cluster = postgres.Cluster(fsync=True)
            env["postgresql"] = postgres_version(cluster)
        for part in PARTS:
            if part in missing:
                continue
            harness.run_one(part, 14, lambda: run_part(
                part, os.path.join(work, part.replace(" ", "")), plan,
                None if part.startswith("sqlite") else cluster), results, failures)
    finally:
        if cluster is not None:
            cluster.remove()
        shutil.rmtree(work, ignore_errors=True)
    if results:
        print()
        print(tables(results))
    ratio = left = None
    if "sqlite x1" in results and "postgresql x2" in results:
        ratio = round(results["postgresql x2"]["up1"]["requests_per_s"]
                      / results["sqlite x1"]["up1"]["requests_per_s"], 3)
        print("\nup1, postgresql x2 / sqlite x1: %.2f (target >= %.1f: %s)"
              % (ratio, TARGET, "met" if ratio >= TARGET else "NOT met"))
        left = budget(results)
        print("budget at the target: {:,} uploads/s on {} cores is {:.0f} us of CPU an upload;"
              " an ok through postgresql x2 (no database work) cost {:.0f} us".format(
                  left["uploads_per_s"], os.cpu_count(), left["us_per_upload"],
                  left["ok_postgresql_x2_us"]))
    for part, text in failures.items():
        print("\n%s FAILED:\n%s" % (part, text.strip()[-3000:]))
    harness.write_json(plan.json, {
        "environment": env, "seconds": plan.seconds, "warmup": plan.warmup,
        "parts": results, "left_out": missing, "failures": failures,
        "up1_ratio_postgresql_x2_to_sqlite_x1": ratio, "target": TARGET, "budget": left,
    })
    print("\nJSON: %s" % plan.json)
    return 1 if failures else 0


def postgres_version(cluster):
    with cluster.connect() as conn:
        return conn.execute("SHOW server_version").fetchone()[0]


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
