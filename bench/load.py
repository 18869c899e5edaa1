#!/usr/bin/env python3
"""The benchmark's load generator: one process, driven by ``bench/run.py``.

It reuses ``texmate_ds.simulate`` for everything that talks to the server:
``Simulation`` owns the sockets (interval 0 makes a closed loop, each
device sending its next request as soon as its answer is in), ``Meter``
builds the uploads, ``Stats``/``percentile`` reduce the answer times. This
file only adds the devices the simulator lacks (``dl last`` of another
unit, ``ok``), the idle-connections phase and the SQLite ceiling, and
reads the server's CPU time and memory from ``/proc`` around the measured
window.

Modes (``--mode``):

    up      --meters N uploading meters U1..UN, --samples K per request
    dl      --meters N readers R1..RN doing 'dl last' of --source
    ok      --meters N devices sending 'ok' (with --open-no: connections/s)
    idle    --idle N connections that each send one 'ok' and then stay open,
            while one meter (A1) uploads every --interval seconds
    sqlite  no server: insert rows into a fresh database at --db with one
            executemany + commit per --batch rows (the storage ceiling)

Every mode writes one JSON object to --json: the simulator's figures
(requests/s, samples/s, median and p99 answer times, errors by code...),
plus ``server_cpu_s``/``load_cpu_s`` over the measured window. A warm-up
run of --warmup seconds precedes the measured one and is not counted.
A harness that does something during the measured window (bench/deleteold.py)
passes ``--started-file PATH``, created as the window begins (up, dl and ok
modes), and may end the window early with SIGINT: the figures are then
over the window's real length.

Exit status: 0 when the run happened (whatever the answers were), 2 when
it could not (server unreachable, idle connections could not be opened).
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import random
import selectors
import socket
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from texmate_ds.client import ResponseSplitter, dl_request, ok_request  # noqa: E402
from texmate_ds.loop import raise_open_files  # noqa: E402
from texmate_ds.simulate import Meter, Simulation, Stats, percentile  # noqa: E402

HOST = "127.0.0.1"
KEY = "benchkey"
FIELDS = 4
IDLE_CONNECT_BATCH = 256       # idle connections being set up at once
IDLE_OPEN_TIMEOUT = 120.0      # seconds to open them all, at most
IDLE_SETTLE = 0.5              # seconds between the last idle answer and reading VmRSS
SQLITE_MAX_BATCHES = 1000      # bound on the ceiling's loop, besides its time


class DlLast:
    """A reader: ``dl last`` of ``source`` as unit ``code``."""

    samples_per_request = 0

    def __init__(self, code, key, source):
        self.request = dl_request(code, key, "last", source)

    def next_request(self):
        return self.request


class Ok:
    """A device that only checks its credentials (``ok``)."""

    samples_per_request = 0

    def __init__(self, code, key):
        self.request = ok_request(code, key)

    def next_request(self):
        return self.request


# -- what the server process costs ---------------------------------------------

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_seconds(pid):
    """User + system CPU seconds of process ``pid`` so far; None if unknown."""
    if not pid:
        return None
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / _TICK


def rss_kib(pid):
    """Resident memory of ``pid`` in KiB (VmRSS); None if unknown."""
    if not pid:
        return None
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def own_cpu():
    t = os.times()
    return t.user + t.system


def machine_cpu():
    """(busy, steal) CPU seconds of the whole machine so far, all cores,
    from /proc/stat; None where there is none. Busy minus what the server
    and the load process used is what everything else on the machine took
    (other programs, and kernel network work charged to no process)."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    # user nice system idle iowait irq softirq steal ...
    busy = sum(fields[:3]) + sum(fields[5:7])
    steal = fields[7] if len(fields) > 7 else 0
    return busy / _TICK, steal / _TICK


def add_cpu(fig, server_before, server_after, load_before, load_after,
            machine_before, machine_after):
    """Put what the measured window cost into ``fig``."""
    fig["load_cpu_s"] = round(load_after - load_before, 3)
    fig["server_cpu_s"] = (None if server_before is None or server_after is None
                           else round(server_after - server_before, 3))
    if machine_before is not None and machine_after is not None:
        busy = machine_after[0] - machine_before[0]
        fig["machine_busy_cpu_s"] = round(busy, 3)
        fig["steal_cpu_s"] = round(machine_after[1] - machine_before[1], 3)
        if fig["server_cpu_s"] is not None:
            fig["other_cpu_s"] = round(
                max(0.0, busy - fig["server_cpu_s"] - fig["load_cpu_s"]), 3)


# -- the closed-loop runs ------------------------------------------------------

def simulate(args, devices, interval, seconds):
    """One Simulation run; its figures plus the CPU both sides used."""
    sim = Simulation(socket.AF_INET, (HOST, args.port), devices, interval, seconds,
                     open_no=args.open_no)
    machine_before = machine_cpu()
    server_before, load_before = cpu_seconds(args.server_pid), own_cpu()
    sim.run()
    server_after, load_after = cpu_seconds(args.server_pid), own_cpu()
    machine_after = machine_cpu()
    fig = sim.figures()
    fig["connections_per_s"] = round(sim.stats.connections / (sim.elapsed or 1e-9), 1)
    add_cpu(fig, server_before, server_after, load_before, load_after,
            machine_before, machine_after)
    return fig


def devices_for(args):
    if args.mode == "up":
        return [Meter("U%d" % n, KEY, FIELDS, args.samples, max(args.interval, 1.0))
                for n in range(1, args.meters + 1)]
    if args.mode == "dl":
        return [DlLast("R%d" % n, KEY, args.source) for n in range(1, args.meters + 1)]
    return [Ok("C%d" % n, KEY) for n in range(1, args.meters + 1)]


def run_closed(args):
    devices = devices_for(args)
    raise_open_files(len(devices) + 64)
    result = {}
    if args.warmup > 0:
        warm = simulate(args, devices, args.interval, args.warmup)
        result["warmup"] = {k: warm[k] for k in ("answered", "errors", "connection_failures")}
    if args.started_file:
        open(args.started_file, "w").close()
    result.update(simulate(args, devices, args.interval, args.seconds))
    return result


# -- idle connections ----------------------------------------------------------

class _Idle:
    __slots__ = ("sock", "splitter", "out", "state")


def open_idle(count, port, code_of, deadline):
    """Open ``count`` connections, each sending one ``ok`` and reading its
    answer; return (sockets kept open, Stats of those answers).  At most
    IDLE_CONNECT_BATCH are being set up at any time."""
    sel = selectors.DefaultSelector()
    stats = Stats()
    kept = []
    started = 0
    busy = 0
    try:
        while len(kept) + stats.connection_failures < count:
            if time.monotonic() > deadline:
                raise TimeoutError("opened %d of %d idle connections in time"
                                   % (len(kept), count))
            while busy < IDLE_CONNECT_BATCH and started < count:
                link = _Idle()
                link.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                link.sock.setblocking(False)
                err = link.sock.connect_ex((HOST, port))
                if err not in (0, errno.EINPROGRESS):
                    link.sock.close()
                    stats.connection_failures += 1
                    started += 1
                    continue
                link.splitter = ResponseSplitter()
                link.out = (ok_request(code_of(started), KEY) + "\r").encode("ascii")
                link.state = time.monotonic()
                sel.register(link.sock, selectors.EVENT_WRITE, link)
                started += 1
                busy += 1
            for key, mask in sel.select(0.5):
                link = key.data
                if link.out:
                    if link.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                        sel.unregister(link.sock)
                        link.sock.close()
                        stats.connection_failures += 1
                        busy -= 1
                        continue
                    stats.connections += 1
                    stats.sent += 1
                    link.sock.send(link.out)   # a few bytes on a fresh socket
                    link.out = b""
                    sel.modify(link.sock, selectors.EVENT_READ, link)
                    continue
                try:
                    data = link.sock.recv(4096)
                except OSError:
                    data = b""
                answers = link.splitter.feed(data) if data else None
                if answers is None or answers:
                    sel.unregister(link.sock)
                    busy -= 1
                    if answers:
                        stats.record(answers[0], time.monotonic() - link.state, 0)
                        kept.append(link.sock)
                    else:
                        link.sock.close()
                        stats.connection_failures += 1
    except BaseException:
        for sock in kept:
            sock.close()
        raise
    finally:
        for key in list(sel.get_map().values()):
            key.fileobj.close()
        sel.close()
    return kept, stats


def run_idle(args):
    raise_open_files(args.idle + 256)
    result = {"idle_target": args.idle}
    # Warm up: the first answers compile statements and fill caches, which
    # is no per-connection cost.
    active = Meter("A1", KEY, FIELDS, 1, 1.0)
    if args.warmup > 0:
        simulate(args, [active], args.interval, args.warmup)
    time.sleep(IDLE_SETTLE)
    rss_before = rss_kib(args.server_pid)
    started = time.monotonic()
    idle, stats = open_idle(args.idle, args.port,
                            lambda n: "I%d" % (n + 1) if args.distinct_units else "I1",
                            started + IDLE_OPEN_TIMEOUT)
    try:
        opened_s = time.monotonic() - started
        time.sleep(IDLE_SETTLE)
        rss_idle = rss_kib(args.server_pid)
        times = sorted(stats.answer_times)
        result.update({
            "idle_open": len(idle),
            "idle_open_s": round(opened_s, 3),
            "idle_ok": stats.ok,
            "idle_errors": dict(sorted(stats.errors.items())),
            "idle_failures": stats.connection_failures,
            "idle_ok_p99_ms": None if not times else round(percentile(times, 0.99) * 1000, 3),
            "rss_before_kib": rss_before,
            "rss_idle_kib": rss_idle,
        })
        if rss_before is not None and rss_idle is not None and idle:
            result["kib_per_connection"] = round((rss_idle - rss_before) / len(idle), 3)
        # The active meter's figures are the run's figures.
        result.update(simulate(args, [active], args.interval, args.seconds))
        result["rss_after_kib"] = rss_kib(args.server_pid)
    finally:
        for sock in idle:
            sock.close()
    return result


# -- the SQLite ceiling --------------------------------------------------------

def run_sqlite(args):
    """Insert rows like the server's into a fresh database: WAL,
    synchronous=FULL, the server's own schema and column list, one
    executemany + commit per --batch rows: the storage ceiling.

    Timed: the executemany and the commit. Also reported: the rate with
    building the row tuples from already-parsed values counted, as the
    server's store does (``(unit_id, ts, received, *values)``). Making up
    the values (random numbers) is never timed."""
    from texmate_ds import store, times
    st = store.Database(args.db)     # durable: WAL + synchronous=FULL, like COMMIT_INTERVAL: 1
    try:
        st.migrate()
        unit = st.units.add("CEIL", KEY, fields=FIELDS, name="CEIL")
        st.commit()
        sql = st.samples.insert_sql(FIELDS)
        rng = random.Random(1)
        ts = 1_230_000_000_000_000
        rows_done = 0
        insert_s = 0.0
        build_s = 0.0
        batches = 0
        unit_id = unit.id
        wall_start = time.monotonic()
        while (batches < SQLITE_MAX_BATCHES
               and time.monotonic() - wall_start < args.seconds + args.warmup):
            parsed = []
            for _ in range(args.batch):
                ts += 1_000_000
                parsed.append((ts, [round(rng.uniform(-50.0, 150.0), 3) for _ in range(FIELDS)]))
            building = time.monotonic()
            received = times.now()
            rows = [(unit_id, t, received, *values) for t, values in parsed]
            started = time.monotonic()
            st.begin()
            st.executemany(sql, rows)
            st.commit()
            done = time.monotonic()
            batches += 1
            if done - wall_start > args.warmup:
                rows_done += len(rows)
                insert_s += done - started
                build_s += started - building
        stored = st.samples.count(unit)
    finally:
        st.close()
    return {
        "rows": rows_done,
        "rows_stored": stored,
        "batch": args.batch,
        "batches": batches,
        "insert_s": round(insert_s, 3),
        "build_s": round(build_s, 3),
        "samples_per_s": round(rows_done / insert_s, 1) if insert_s else None,
        "samples_per_s_with_build": (round(rows_done / (insert_s + build_s), 1)
                                     if insert_s else None),
        "journal": "wal", "synchronous": "full",
    }


# -- the command line ----------------------------------------------------------

def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", required=True, choices=("up", "dl", "ok", "idle", "sqlite"))
    parser.add_argument("--port", type=int)
    parser.add_argument("--server-pid", type=int, default=0)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--meters", type=int, default=50)
    parser.add_argument("--samples", type=int, default=1)
    parser.add_argument("--interval", type=float, default=0.0,
                        help="seconds between one device's requests; 0: closed loop")
    parser.add_argument("--open-no", action="store_true")
    parser.add_argument("--source", default="SRC")
    parser.add_argument("--idle", type=int, default=10000)
    parser.add_argument("--distinct-units", action="store_true",
                        help="idle connections use units I1..IN, not all I1")
    parser.add_argument("--db")
    parser.add_argument("--batch", type=int, default=10000)
    parser.add_argument("--json", required=True)
    parser.add_argument("--started-file",
                        help="created when the measured window begins (SIGINT ends it early)")
    args = parser.parse_args(argv)

    try:
        if args.mode == "sqlite":
            result = run_sqlite(args)
        elif args.mode == "idle":
            result = run_idle(args)
        else:
            result = run_closed(args)
    except (OSError, TimeoutError) as exc:
        print("load.py: %s" % exc, file=sys.stderr)
        return 2
    result["mode"] = args.mode
    with open(args.json, "w") as out:
        json.dump(result, out, indent=2)
        out.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
