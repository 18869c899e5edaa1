#!/usr/bin/env python3
"""Benchmarks of texmate_ds against a bare baseline, in one invocation.

    python3 bench/run.py [--quick] [--only up1,dl,...] [--seconds S] [--json FILE]

Each scenario runs twice: against texmate_ds (started fresh, a new temporary
database, the scenario's txm.conf) and against ``bench/baseline.py`` (a bare
selectors server answering ``OK\\r``), each driven by ``bench/load.py`` (or
``texmate_ds simulate`` for ``mixed``) in a separate process. The table shows
ours, baseline, the ratio ours/baseline and the issue's target; the JSON
(default ``bench/results/latest.json``) holds every figure both load runs
and the servers produced. Absolute numbers drift 20-50 % between runs on
shared machines: compare ratios.

Targets are printed, never asserted: the exit status is 0 whatever the
figures, 1 when the harness itself failed (a server that did not start or
stop, a load process that crashed), 2 for a bad command line.

See bench/README.md for what each scenario measures.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import traceback

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from texmate_ds import config, store  # noqa: E402
from texmate_ds.client import TTPClient  # noqa: E402
from texmate_ds.simulate import Meter, ensure_units  # noqa: E402

if BENCH not in sys.path:
    sys.path.insert(0, BENCH)
import load as loadgen  # noqa: E402  (bench/load.py: the /proc readings)

PYTHON = sys.executable
KEY = "benchkey"      # bench/load.py uses the same key and field count
FIELDS = 4
START_TIMEOUT = 30.0  # seconds for a server to print "ready"
STOP_TIMEOUT = 20.0   # texmate_ds drains answers for up to 10 s on SIGTERM
LOAD_SLACK = 90.0     # seconds a load process may take beyond its planned run

# Everything at its default but what a scenario sets (``conf_extra``).
BASE_CONF = {
    "main": {"DS_PORT": 0, "HTTP_PORT": 0, "DS_BIND": "127.0.0.1", "HTTP_BIND": "127.0.0.1"},
    "database": {"DATABASE_NAME": "db/bench.db"},
}
DATABASE_KEYS = ("DATABASE_ENGINE", "DATABASE_NAME", "DATABASE_HOST", "DATABASE_PORT",
                 "DATABASE_USER", "DATABASE_PASSWORD", "COMMIT_INTERVAL", "COMMIT_DELAY")


def conf_text(scenario, extra):
    """A txm.conf: the base settings plus ``extra`` ({KEY: value})."""
    sections = {name: dict(keys) for name, keys in BASE_CONF.items()}
    for key, value in extra.items():
        sections["database" if key in DATABASE_KEYS else "main"][key] = value
    lines = ["# written by bench/run.py for the %s scenario" % scenario]
    for name in ("main", "database"):
        lines.append("[%s]" % name)
        lines.extend("%s: %s" % item for item in sections[name].items())
    return "\n".join(lines) + "\n"


SCENARIOS = ("up1", "up100", "batched", "dl", "connect", "idle", "mixed")


class HarnessError(Exception):
    """The benchmark could not measure (not a slow figure: a broken run)."""


# -- processes -----------------------------------------------------------------

def child_env():
    env = dict(os.environ)
    for name in ("TXM_CONF", "TXM_PASSWORD"):
        env.pop(name, None)
    env["PYTHONPATH"] = ROOT
    return env


class ServerProcess:
    """texmate_ds or the baseline, started in ``folder`` and stopped by
    ``stop()`` (SIGTERM, then SIGKILL if it does not exit in time)."""

    def __init__(self, kind, folder, command, port_pattern):
        self.kind = kind
        self.folder = folder
        self.out_path = os.path.join(folder, "%s.out" % kind)
        self.err_path = os.path.join(folder, "%s.err" % kind)
        self.port = None
        self.stopped = None
        with open(self.out_path, "w") as out, open(self.err_path, "w") as err:
            self.proc = subprocess.Popen(command, cwd=folder, env=child_env(), stdout=out,
                                         stderr=err, stdin=subprocess.DEVNULL)
        self.pid = self.proc.pid
        try:
            if self._wait_ready(port_pattern):
                return
        except BaseException:   # Ctrl-C while it starts: no orphan
            self.kill()
            raise
        self.kill()
        raise HarnessError("%s did not start (exit %s):\n%s\n%s" % (
            kind, self.proc.returncode, _read(self.out_path)[-2000:],
            _read(self.err_path)[-2000:]))

    def _wait_ready(self, port_pattern):
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            text = _read(self.out_path)
            if "\nready\n" in text or text.startswith("ready\n"):
                match = re.search(port_pattern, text, re.M)
                if match:
                    self.port = int(match.group(1))
                    return True
            if self.proc.poll() is not None:
                return False
            time.sleep(0.02)
        return False

    def stop(self):
        """SIGTERM and wait; returns what happened, for the JSON."""
        if self.stopped is not None:
            return self.stopped
        info = {"rss_at_stop_kib": loadgen.rss_kib(self.pid)}
        started = time.monotonic()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                info["ignored_sigterm"] = True
                self.kill()
        else:
            info["died_before_stop"] = True
        info["exit_status"] = self.proc.returncode
        info["stop_s"] = round(time.monotonic() - started, 3)
        info["stderr_notes"] = _notable(_read(self.err_path))
        self.stopped = info
        return info

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def _read(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return ""


# Lines every start prints on stderr; anything else there is worth a look.
_ROUTINE = re.compile(r"created user Administrator|TTP app \w+: /")


def _notable(stderr_text):
    lines = [line for line in stderr_text.splitlines()
             if line.strip() and not _ROUTINE.search(line)]
    return {"lines": len(lines), "first": lines[:8]}


# ``--profile DIR``: run texmate_ds under cProfile, one DIR/SCENARIO.prof each.
PROFILE_DIR = None


def start_ours(folder, scenario, conf_extra, setup=None):
    os.makedirs(folder)
    conf = os.path.join(folder, "txm.conf")
    with open(conf, "w") as f:
        f.write(conf_text(scenario, conf_extra))
    if setup is not None:
        setup(conf)
    command = [PYTHON]
    if PROFILE_DIR:
        command += ["-m", "cProfile", "-o", os.path.join(PROFILE_DIR, scenario + ".prof")]
    command += ["-m", "texmate_ds", "--config", conf, "serve"]
    return ServerProcess("ours", folder, command, r"^TTP: listening on .*:(\d+)$")


def start_baseline(folder, close=False):
    os.makedirs(folder)
    return ServerProcess("baseline", folder,
                         [PYTHON, os.path.join(BENCH, "baseline.py"), "--port", "0"]
                         + (["--close"] if close else []),
                         r"^listening on .*:(\d+)$")


def run_process(command, folder, name, planned_s, json_path, ok_status=(0,)):
    """Run a load process to its end; its JSON, or HarnessError."""
    out_path = os.path.join(folder, name + ".out")
    with open(out_path, "w") as out:
        proc = subprocess.Popen(command, cwd=folder, env=child_env(), stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            status = proc.wait(planned_s + LOAD_SLACK)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
            raise HarnessError("%s ran past %d s and was killed:\n%s" % (
                name, planned_s + LOAD_SLACK, _read(out_path)[-2000:]))
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
    if status not in ok_status or not os.path.exists(json_path):
        raise HarnessError("%s failed (exit %s):\n%s" % (name, status, _read(out_path)[-3000:]))
    with open(json_path) as f:
        return json.load(f)


def run_load(server, folder, mode, seconds, warmup, *extra):
    json_path = os.path.join(folder, "load-%s-%s.json" % (server.kind, mode))
    command = [PYTHON, os.path.join(BENCH, "load.py"), "--mode", mode, "--port", str(server.port),
               "--server-pid", str(server.pid), "--seconds", str(seconds),
               "--warmup", str(warmup), "--json", json_path] + [str(e) for e in extra]
    return run_process(command, folder, "load-%s-%s" % (server.kind, mode),
                       seconds + warmup, json_path)


# The planned length of a window `load_window` ends with SIGINT.
WINDOW_CAP = 900.0


def load_window(server, folder, warmup, during, *extra, mode="up"):
    """bench/load.py's figures (of its `mode`, ``up`` by default) over a
    window that begins just before ``during()`` is called and ends as it
    returns (SIGINT to load.py, which then reports over the window's real
    length); and what ``during()`` returned. `extra`: more of load.py's
    arguments (``--meters 50``)."""
    started_file = os.path.join(folder, "window-started")
    json_path = os.path.join(folder, "load-during.json")
    out_path = os.path.join(folder, "load-during.out")
    command = [PYTHON, os.path.join(BENCH, "load.py"), "--mode", mode,
               "--port", str(server.port), "--server-pid", str(server.pid),
               "--seconds", str(WINDOW_CAP), "--warmup", str(warmup),
               "--started-file", started_file, "--json", json_path] + [str(e) for e in extra]
    with open(out_path, "w") as out:
        proc = subprocess.Popen(command, cwd=folder, env=child_env(), stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + warmup + LOAD_SLACK
        while not os.path.exists(started_file):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise HarnessError("load.py never began its window:\n%s"
                                   % _read(out_path)[-2000:])
            time.sleep(0.005)
        result = during()
        proc.send_signal(signal.SIGINT)
        status = proc.wait(LOAD_SLACK)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    if status != 0 or not os.path.exists(json_path):
        raise HarnessError("load.py failed (exit %s):\n%s" % (status, _read(out_path)[-3000:]))
    with open(json_path) as f:
        return json.load(f), result


# -- setting up units ----------------------------------------------------------

def open_store(conf):
    settings = config.load(cli_path=conf)
    st = store.Database(store.address(settings))
    st.migrate()
    return st


def units(prefix, count):
    return ["%s%d" % (prefix, n) for n in range(1, count + 1)]


def make_units(*codes_lists):
    """A setup that creates the units (4 fields, key benchkey), as
    ``simulate --create`` does."""
    def setup(conf):
        for codes in codes_lists:
            ensure_units(conf, codes, KEY, FIELDS)
    return setup


def make_readers(count, source):
    """SRC and readers R1..RN allowed to read it: what ``manage addunit RN
    KEY --fields 4 --reads SRC`` does, in one transaction."""
    def setup(conf):
        st = open_store(conf)
        try:
            src = st.units.add(source, KEY, FIELDS, name=source)
            for code in units("R", count):
                st.units.allow_read(st.units.add(code, KEY, FIELDS, name=code), src)
            st.commit()
        finally:
            st.close()
    return setup


def upload_source(port, source, requests=10, per_request=100):
    """Samples for the readers to read, uploaded through the server."""
    meter = Meter(source, KEY, FIELDS, per_request, 100.0)
    with TTPClient("127.0.0.1", port, timeout=30) as client:
        for _ in range(requests):
            answer = client.request(meter.next_request())
            if not answer.startswith("OK"):
                raise HarnessError("uploading to %s: %r" % (source, answer))


# -- scenarios -----------------------------------------------------------------

class Plan:
    """Durations of this invocation."""

    def __init__(self, args):
        self.quick = args.quick
        self.seconds = args.seconds or (2.0 if args.quick else 6.0)
        self.warmup = 0.3 if args.quick else 1.0
        self.idle = args.idle or (2000 if args.quick else 10000)
        self.mixed = args.mixed_seconds or (15.0 if args.quick else 30.0)


def both(name, work, load, conf_extra=None, setup=None, baseline_close=False,
         after_start=None):
    """Run ``load(server, folder)`` against ours, then against the baseline;
    each server is stopped however the run ends."""
    result = {}
    for kind in ("ours", "baseline"):
        folder = os.path.join(work, name, kind)
        server = None
        try:
            if kind == "ours":
                server = start_ours(folder, name, conf_extra or {}, setup)
            else:
                server = start_baseline(folder, baseline_close)
            if after_start is not None:
                after_start(server)
            figures = load(server, folder)
        finally:
            if server is not None:
                server.stop()
        figures["server"] = server.stopped
        result[kind] = figures
    return result


def scenario_up1(plan, work, commit_interval=1, name="up1"):
    def load(server, folder):
        return run_load(server, folder, "up", plan.seconds, plan.warmup, "--meters", 50)
    return both(name, work, load, {"COMMIT_INTERVAL": commit_interval},
                make_units(units("U", 50)))


def scenario_batched(plan, work):
    return scenario_up1(plan, work, commit_interval=100, name="batched")


def scenario_up100(plan, work):
    def load(server, folder):
        return run_load(server, folder, "up", plan.seconds, plan.warmup,
                        "--meters", 1, "--samples", 100)
    result = both("up100", work, load, {"COMMIT_INTERVAL": 1}, make_units(["U1"]))
    folder = os.path.join(work, "up100", "sqlite")
    os.makedirs(folder)
    json_path = os.path.join(folder, "ceiling.json")
    result["ceiling"] = run_process(
        [PYTHON, os.path.join(BENCH, "load.py"), "--mode", "sqlite", "--seconds",
         str(plan.seconds), "--warmup", str(plan.warmup), "--batch", "10000",
         "--db", os.path.join(folder, "ceiling.db"), "--json", json_path],
        folder, "sqlite-ceiling", plan.seconds + plan.warmup, json_path)
    return result


def scenario_dl(plan, work):
    def load(server, folder):
        return run_load(server, folder, "dl", plan.seconds, plan.warmup,
                        "--meters", 50, "--source", "SRC")
    return both("dl", work, load, {}, make_readers(50, "SRC"),
                after_start=lambda server: upload_source(server.port, "SRC"))


def scenario_connect(plan, work):
    def load(server, folder):
        return run_load(server, folder, "ok", plan.seconds, plan.warmup,
                        "--meters", 16, "--open-no")
    return both("connect", work, load, {"SOCKET_OPEN": "no"}, make_units(units("C", 16)),
                baseline_close=True)


IDLE_INTERVAL = 0.02   # the active meter uploads 50 times a second


def scenario_idle(plan, work):
    def load(server, folder):
        return run_load(server, folder, "idle", plan.seconds, plan.warmup,
                        "--idle", plan.idle, "--distinct-units", "--interval", IDLE_INTERVAL)
    # MAX_CONNECTIONS counts every meter connection: 10,000 idle ones plus
    # the active meter need more than the default 10000.
    return both("idle", work, load, {"MAX_CONNECTIONS": max(10000, plan.idle + 100)},
                make_units(units("I", plan.idle), ["A1"]))


MIXED_METERS = 1000
MIXED_READERS = 20


def scenario_mixed(plan, work):
    def load(server, folder):
        json_path = os.path.join(folder, "simulate-%s.json" % server.kind)
        command = [PYTHON, "-m", "texmate_ds", "simulate", "--port", str(server.port),
                   "--meters", str(MIXED_METERS), "--download", str(MIXED_READERS),
                   "--interval", "1", "--duration", str(plan.mixed), "--fields", str(FIELDS),
                   "--prefix", "SIM", "--key", KEY, "--json", json_path]
        # CPU over the whole simulate process (its start-up included).
        machine_before = loadgen.machine_cpu()
        cpu_before = loadgen.cpu_seconds(server.pid)
        children_before = _children_cpu()
        # simulate exits 1 when any answer was an error: a figure, not a failure.
        figures = run_process(command, folder, "simulate-%s" % server.kind, plan.mixed + 5,
                              json_path, ok_status=(0, 1))
        loadgen.add_cpu(figures, cpu_before, loadgen.cpu_seconds(server.pid),
                     children_before, _children_cpu(), machine_before, loadgen.machine_cpu())
        return figures
    return both("mixed", work, load, {"COMMIT_INTERVAL": 1},
                make_units(units("SIM", MIXED_METERS)))


def _children_cpu():
    """CPU seconds of the finished children waited for so far (the load
    process, once it has ended)."""
    try:
        import resource
    except ImportError:
        return 0.0
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


RUNNERS = {
    "up1": scenario_up1, "up100": scenario_up100, "batched": scenario_batched,
    "dl": scenario_dl, "connect": scenario_connect, "idle": scenario_idle,
    "mixed": scenario_mixed,
}


# -- the table -----------------------------------------------------------------

def _get(figures, key):
    return None if figures is None else figures.get(key)


def row(scenario, metric, ours, baseline, target=None):
    """A table row. ``target`` is (kind, value[, unit]): 'ratio>=' compares
    ours/baseline, '<' / '<=' / '==' compare ours itself."""
    ratio = (ours / baseline) if ours is not None and baseline else None
    met = None
    text = ""
    if target is not None:
        kind, value, unit = (tuple(target) + ("",))[:3]
        if kind == "ratio>=":
            text = ">= %.1f x %s" % (value, unit or "base")
            met = None if ratio is None else ratio >= value
        elif kind == "<":
            text = "< %g %s" % (value, unit)
            met = None if ours is None else ours < value
        elif kind == "<=":
            text = "<= %g %s" % (value, unit)
            met = None if ours is None else ours <= value
        elif kind == "==":
            text = "%g" % value
            met = None if ours is None else ours == value
    return {"scenario": scenario, "metric": metric, "ours": ours, "baseline": baseline,
            "ratio": None if ratio is None else round(ratio, 3), "target": text.strip(),
            "met": met}


def _errors(fig):
    if fig is None:
        return None
    return (sum(fig.get("errors", {}).values()) + fig.get("connection_failures", 0)
            + fig.get("unanswered", 0))


def rows_for(name, result):
    ours, base = result.get("ours"), result.get("baseline")
    out = []

    def add(*args, **kw):
        out.append(row(name, *args, **kw))

    if name in ("up1", "batched"):
        ratio = 0.4 if name == "up1" else 0.7
        add("requests/s", _get(ours, "requests_per_s"), _get(base, "requests_per_s"),
            ("ratio>=", ratio))
        add("samples/s", _get(ours, "samples_per_s"), _get(base, "samples_per_s"))
        add("median ms", _get(ours, "median_ms"), _get(base, "median_ms"))
        add("p99 ms", _get(ours, "p99_ms"), _get(base, "p99_ms"),
            ("<", 20, "ms") if name == "up1" else None)
    elif name == "up100":
        add("samples/s vs SQLite", _get(ours, "samples_per_s"),
            _get(result.get("ceiling"), "samples_per_s"), ("ratio>=", 0.5, "ceiling"))
        add("samples/s vs bare srv", _get(ours, "samples_per_s"), _get(base, "samples_per_s"))
        add("p99 ms", _get(ours, "p99_ms"), _get(base, "p99_ms"))
    elif name == "dl":
        add("requests/s", _get(ours, "requests_per_s"), _get(base, "requests_per_s"),
            ("ratio>=", 0.6))
        add("median ms", _get(ours, "median_ms"), _get(base, "median_ms"))
        add("p99 ms", _get(ours, "p99_ms"), _get(base, "p99_ms"))
    elif name == "connect":
        add("connections/s", _get(ours, "connections_per_s"), _get(base, "connections_per_s"),
            ("ratio>=", 0.5))
        add("p99 ms", _get(ours, "p99_ms"), _get(base, "p99_ms"))
    elif name == "idle":
        add("KiB/connection", _get(ours, "kib_per_connection"),
            _get(base, "kib_per_connection"), ("<=", 10, "KiB"))
        add("active median ms", _get(ours, "median_ms"), _get(base, "median_ms"))
        add("active p99 ms", _get(ours, "p99_ms"), _get(base, "p99_ms"), ("<", 20, "ms"))
    elif name == "mixed":
        add("samples/s", _get(ours, "samples_per_s"), _get(base, "samples_per_s"))
        add("requests/s", _get(ours, "requests_per_s"), _get(base, "requests_per_s"))
        add("errors", _errors(ours), _errors(base), ("==", 0))
        add("p99 ms", _get(ours, "p99_ms"), _get(base, "p99_ms"), ("<", 50, "ms"))
    if name != "mixed" and (_errors(ours) or _errors(base)):
        add("errors", _errors(ours), _errors(base))
    return out


def _fmt(value):
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int) or (isinstance(value, float) and value >= 1000):
        return "{:,.0f}".format(value)
    if value >= 100:
        return "%.1f" % value
    return "%.2f" % value


def format_table(rows):
    header = ("scenario", "metric", "ours", "baseline", "ratio", "target", "met")
    cells = [header]
    for r in rows:
        cells.append((r["scenario"], r["metric"], _fmt(r["ours"]), _fmt(r["baseline"]),
                      "-" if r["ratio"] is None else "%.2f" % r["ratio"], r["target"] or "-",
                      "-" if r["met"] is None else ("yes" if r["met"] else "NO")))
    widths = [max(len(c[i]) for c in cells) for i in range(len(header))]
    right = {2, 3, 4}
    lines = []
    for n, c in enumerate(cells):
        lines.append("  ".join(c[i].rjust(widths[i]) if i in right else c[i].ljust(widths[i])
                               for i in range(len(header))).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _pct(seconds, elapsed):
    return "-" if seconds is None else "%d%%" % round(100 * seconds / elapsed)


def cpu_lines(results):
    """Server and load CPU over each measured window: a server near 100 %
    is saturated; a load process near 100 % means the figure is the load
    generator's ceiling, not the server's. "other" is what the rest of the
    machine used meanwhile (kernel network work included; 0-5 % when the
    machine is quiet): much more means something else was running and the
    figures are suspect."""
    lines = []
    for name, result in results.items():
        parts = []
        for kind in ("ours", "baseline"):
            fig = result.get(kind)
            if not fig or not fig.get("elapsed_s"):
                continue
            elapsed = fig["elapsed_s"]
            parts.append("%s server %s load %s other %s" % (
                kind, _pct(fig.get("server_cpu_s"), elapsed),
                _pct(fig.get("load_cpu_s"), elapsed), _pct(fig.get("other_cpu_s"), elapsed)))
        if parts:
            lines.append("  %-8s %s" % (name, " | ".join(parts)))
    return lines


def notes_for(name, result):
    notes = []
    for kind in ("ours", "baseline"):
        fig = result.get(kind) or {}
        srv = fig.get("server") or {}
        if srv.get("ignored_sigterm"):
            notes.append("%s %s: ignored SIGTERM for %d s, killed" % (name, kind, STOP_TIMEOUT))
        if srv.get("died_before_stop"):
            notes.append("%s %s: server died during the run" % (name, kind))
        if srv.get("exit_status") not in (0, None) and not srv.get("ignored_sigterm"):
            notes.append("%s %s: server exited %s" % (name, kind, srv.get("exit_status")))
        if srv.get("stderr_notes", {}).get("lines"):
            notes.append("%s %s: %d stderr lines, first: %s" % (
                name, kind, srv["stderr_notes"]["lines"], srv["stderr_notes"]["first"][0][:200]))
        errors = fig.get("errors")
        if errors:
            notes.append("%s %s: error answers %s" % (name, kind, errors))
        for key in ("connection_failures", "unanswered", "idle_failures"):
            if fig.get(key):
                notes.append("%s %s: %s %d" % (name, kind, key, fig[key]))
        if fig.get("idle_errors"):
            notes.append("%s %s: idle ok answers were errors %s" % (name, kind, fig["idle_errors"]))
        if "idle_open" in fig and fig["idle_open"] != fig.get("idle_target"):
            notes.append("%s %s: only %d of %d idle connections opened" % (
                name, kind, fig["idle_open"], fig["idle_target"]))
    return notes


# -- main ----------------------------------------------------------------------

_COMPETITORS = re.compile(r"bench/(run|load|baseline)\.py|texmate_ds.* serve|pytest|scripts/test\.py")


def competitors():
    """Other processes that would share the CPUs with the measurement:
    another benchmark, a texmate_ds server, a test run."""
    found = []
    mine = {os.getpid(), os.getppid()}
    try:
        pids = [int(p) for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return found
    for pid in pids:
        if pid in mine:
            continue
        try:
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                args = f.read().replace(b"\0", b" ").decode("utf-8", "replace").strip()
        except OSError:
            continue
        if _COMPETITORS.search(args):
            found.append("%d: %s" % (pid, args[:160]))
    return found


def environment():
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                                capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--", "texmate_ds"],
                                    cwd=ROOT, capture_output=True, text=True,
                                    timeout=10).stdout.strip())
    except (OSError, subprocess.SubprocessError):
        commit, dirty = None, None
    return {
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "commit": commit,
        "texmate_ds_modified": dirty,
    }


def checked_environment():
    """`environment()` with the processes that would share the CPUs
    (``competing_processes``), and a warning on stdout when there are any.
    Call it before the servers run: it names the code they ran."""
    env = environment()
    env["competing_processes"] = competitors()
    if env["competing_processes"]:
        print("warning: these share the CPUs with the benchmark; its figures will be off:\n  "
              + "\n  ".join(env["competing_processes"]), flush=True)
    return env


def timed(fn, runs):
    """{median_ms, max_ms} of `runs` calls of `fn`, after one call that
    warms the caches and is not counted (a micro-benchmark's figure)."""
    fn()
    seconds = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        seconds.append(time.perf_counter() - started)
    return {"median_ms": round(statistics.median(seconds) * 1000, 3),
            "max_ms": round(max(seconds) * 1000, 3)}


def write_json(path, document):
    """Write `document` to `path` (its folder made if need be), indented."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as out:
        json.dump(document, out, indent=2)
        out.write("\n")


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description="Benchmark texmate_ds against a bare selectors baseline.")
    parser.add_argument("--only", help="comma-separated scenarios (default: all of %s)"
                        % ",".join(SCENARIOS))
    parser.add_argument("--seconds", type=float,
                        help="measured seconds per side of each scenario except mixed "
                             "(default 6, 2 with --quick)")
    parser.add_argument("--quick", action="store_true",
                        help="short runs for a fast check (2 s per side, 2,000 idle "
                             "connections, mixed 15 s)")
    parser.add_argument("--idle", type=int, help="idle connections (default 10000)")
    parser.add_argument("--mixed-seconds", type=float, help="duration of mixed (default 30)")
    parser.add_argument("--json", default=os.path.join(BENCH, "results", "latest.json"),
                        help="where to write the results (default %(default)s)")
    parser.add_argument("--profile", metavar="DIR",
                        help="run texmate_ds under cProfile and write DIR/SCENARIO.prof "
                             "(its figures then include the profiler's overhead)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the work folder (databases, server logs) and print it")
    args = parser.parse_args(argv)
    if args.only:
        args.scenarios = []
        for name in args.only.split(","):
            if name.strip() and name.strip() not in args.scenarios:
                args.scenarios.append(name.strip())
        unknown = [s for s in args.scenarios if s not in SCENARIOS]
        if unknown or not args.scenarios:
            parser.error("unknown scenario %s (choose from %s)"
                         % (",".join(unknown) or "(none)", ",".join(SCENARIOS)))
    else:
        args.scenarios = list(SCENARIOS)
    if args.seconds is not None and not 0 < args.seconds <= 600:
        parser.error("--seconds: above 0 and at most 600")
    if args.mixed_seconds is not None and not 0 < args.mixed_seconds <= 600:
        parser.error("--mixed-seconds: above 0 and at most 600")
    if args.idle is not None and not 1 <= args.idle <= 19000:
        parser.error("--idle: 1 to 19000")
    return args


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def run_one(label, width, run, results, failures):
    """Run one part of a benchmark, `run()`, on a line of its own: its
    result goes to results[label], or why it failed to failures[label],
    and the parts after it run either way (KeyboardInterrupt excepted).
    True when it ran."""
    print("%-*s running..." % (width, label), end="", flush=True)
    started = time.monotonic()
    try:
        results[label] = run()
    except HarnessError as exc:
        failures[label] = str(exc)
    except Exception:   # a bug of the harness: report it, go on with the rest
        failures[label] = traceback.format_exc()
    else:
        print(" %.1f s" % (time.monotonic() - started), flush=True)
        return True
    print(" FAILED", flush=True)
    return False


def main(argv=None):
    global PROFILE_DIR
    args = parse_args(sys.argv[1:] if argv is None else argv)
    plan = Plan(args)
    if args.profile:
        PROFILE_DIR = os.path.abspath(args.profile)
        os.makedirs(PROFILE_DIR, exist_ok=True)
    # SIGTERM ends the run like Ctrl-C: the finally blocks stop every process.
    signal.signal(signal.SIGTERM, _interrupt)
    interrupted = False
    env = checked_environment()
    work = tempfile.mkdtemp(prefix="txm-bench-")
    started = time.monotonic()
    results = {}
    failures = {}
    try:
        for name in args.scenarios:
            try:
                ran = run_one(name, 8, lambda: RUNNERS[name](plan, work), results, failures)
            except KeyboardInterrupt:
                failures[name] = "interrupted"
                interrupted = True
                print(" interrupted", flush=True)
                break
            if not ran:
                continue
            died = [kind for kind in ("ours", "baseline")
                    if results[name][kind]["server"].get("died_before_stop")]
            if died:
                failures[name] = ("the %s server died during the run: its figures are no "
                                  "measurement (see its stderr in the JSON)" % " and ".join(died))
    finally:
        if args.keep:
            print("work folder kept: %s" % work)
        else:
            shutil.rmtree(work, ignore_errors=True)
    wall = time.monotonic() - started

    rows = [r for name in results for r in rows_for(name, results[name])]
    notes = [n for name in results for n in notes_for(name, results[name])]
    print()
    print(format_table(rows))
    print()
    print('CPU over the measured window (100% = one core; "other": the rest of the machine):')
    print("\n".join(cpu_lines(results)))
    if notes:
        print("\nnotes:")
        for note in notes:
            print("  " + note)
    for name, text in failures.items():
        print("\nHARNESS FAILURE in %s:\n%s" % (name, text))
    if PROFILE_DIR:
        print("\nprofiles (figures include cProfile overhead): %s/SCENARIO.prof" % PROFILE_DIR)
    print("\ntotal wall time %.1f s%s; ratio = ours / baseline; targets are reported, "
          "not asserted" % (wall, " (--quick)" if args.quick else ""))

    document = {
        "when": datetime.datetime.now().isoformat(timespec="seconds"),
        "command": " ".join(["python3", "bench/run.py"] + (sys.argv[1:] if argv is None
                                                            else list(argv))),
        "wall_s": round(wall, 1),
        "plan": {"seconds": plan.seconds, "warmup": plan.warmup, "idle": plan.idle,
                 "mixed_seconds": plan.mixed, "quick": plan.quick},
        "environment": env,
        "table": rows,
        "notes": notes,
        "failures": failures,
        "interrupted": interrupted,
        "profiled": bool(PROFILE_DIR),
        "scenarios": results,
    }
    write_json(args.json, document)
    print("results: %s" % args.json)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
