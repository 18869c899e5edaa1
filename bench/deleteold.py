#!/usr/bin/env python3
"""Benchmark of a long deletion on the server's loop: the meters' answer
times while a chore deletes a million samples, for a few chunk sizes.

    python3 bench/deleteold.py [--samples N] [--chunks 250,500,1000,2000] [--seconds S]
                               [--via in-process|admin] [--json FILE] [--keep]

A database is seeded once in a temporary folder, through the store and
before any server runs (one ``executemany``, as bench/run.py seeds its
units): units U1..U50 for the meters, D1 with N samples (default
1,000,000) to delete and 1,000 newer ones to keep, and a staff user for
the admin. Then, for each chunk size, on a fresh copy of it:

* a server starts with ports 0 on 127.0.0.1 and ``COMMIT_INTERVAL: 1``;
* **idle**: 50 durable meters upload one sample per request, closed loop
  (``bench/load.py --mode up``, as bench/run.py's ``up1``), for
  ``--seconds`` after a warm-up, with nothing else going on;
* **during**: the same load again; as its measured window begins
  (``--started-file``), the deletion of D1's N oldest samples ("delete
  samples older than a date") is asked for, and the window ends with it
  (SIGINT to load.py, which then reports over the window's real length).

The figures: how long the deletion took and its samples/s, and the
meters' median and p99 answer time idle and during it. Target (printed,
never asserted): the median during the deletion within 2x of the idle
one.

How the deletion is asked for (``--via``):

* ``in-process`` (the default, for now): the server's parts run in this
  process as server.py assembles them (the store, its GroupCommit, the
  Chores service, the TTP server on its listener), the loop on a thread of
  its own, and the deletion is a `chores.DeleteSamples` chore submitted on
  that loop with the chunk size under test. The meters are still another
  process; this one only waits meanwhile.
* ``admin``: the real server (``python -m texmate_ds serve``, as bench/run.py
  starts it), signed in as the staff user through ``POST /login/``, and
  ``POST /admin/samples/`` with ``action=delete_old``, ``unit``, ``before``,
  ``confirm=yes`` (the confirmation page's answer) and the ``csrf_token``
  of the unit's samples page; the deletion is over when D1 has no sample
  before that time. Its chunk is whatever the server uses: ``--chunks``
  does not apply. This needs the admin's page, which this branch does not
  have (``GET /admin/samples/`` answers 404 here).

Each figure is printed in a table; the JSON (default
``bench/results/deleteold.json``) holds them all and the environment. Exit
status 0 whatever the figures are, 1 when the harness failed, 2 for a bad
command line.
"""

import argparse
import datetime
import http.client
import os
import re
import shutil
import signal
import sqlite3
import sys
import tempfile
import threading
import time
import traceback
from urllib.parse import urlencode

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
for folder in (ROOT, BENCH):
    if folder not in sys.path:
        sys.path.insert(0, folder)

import run as harness  # noqa: E402  (bench/run.py: servers, load runs, environment)

from texmate_ds import (  # noqa: E402
    auth,
    chores,
    config,
    events,
    loop,
    plugins,
    store,
    times,
    ttp,
)

METERS = 50
UNIT = "D1"
KEEP = 1000                  # D1's newer samples, which the deletion leaves
T0 = times.parse("2020-01-01 00:00:00")
SECOND = 1000000
STAFF, STAFF_PASSWORD = "bench", "bench deletes old samples"
DELETION_TIMEOUT = 600.0     # seconds a deletion may take before the run is failed
MIN_WINDOW = 0.3             # seconds of a measured window at least, however fast the deletion
# Seconds the window stays open after the deletion is over, for the answers
# then on their way (those its last commit released): a request cut off by
# SIGINT counts as unanswered (one per meter, in a closed loop), never in
# the answer times.
TAIL = 0.1


def seed(path, samples):
    """The database every run starts from a copy of. D1's samples go in as
    ``manage import`` stores them: one ``executemany`` into the store's
    staging table, one copy into samples (`Samples.add_staged`), so that
    whatever the store keeps beside the samples (a unit's count) is kept."""
    st = store.Database(path, durable=False)
    try:
        st.migrate()
        for n in range(1, METERS + 1):
            st.units.add("U%d" % n, harness.KEY, harness.FIELDS, name="U%d" % n)
        unit = st.units.add(UNIT, harness.KEY, harness.FIELDS, name="deleted")
        st.accounts.add_user(STAFF, auth.hash_password(STAFF_PASSWORD), is_staff=True,
                             is_superuser=True)
        st.commit()
        insert = st.samples.stage(harness.FIELDS)
        st.begin()
        st.executemany(insert, ((T0 + i * SECOND, i, 1.0, 2.0, 3.0, float(i))
                                for i in range(samples + KEEP)))
        st.commit()
        st.samples.add_staged(unit)
        st.commit()
        st.samples.drop_staged()
    finally:
        st.close()


# -- asking for the deletion ---------------------------------------------------

class Deletion:
    """One deletion under way: `wait()` until it is over, then `seconds`,
    `deleted`, `steps` (None where the server does not say)."""

    def __init__(self):
        self.started = time.monotonic()
        self.over = threading.Event()
        self.seconds = self.deleted = self.steps = self.outcome = None

    def end(self, deleted, steps, outcome):
        self.seconds = time.monotonic() - self.started
        self.deleted, self.steps, self.outcome = deleted, steps, outcome
        self.over.set()

    def wait(self):
        if not self.over.wait(DELETION_TIMEOUT):
            raise harness.HarnessError("the deletion took over %d s" % DELETION_TIMEOUT)


class InProcessServer:
    """texmate_ds's parts as server.py assembles them, in this process: the
    TTP server on 127.0.0.1 with port 0, the group commit (COMMIT_INTERVAL 1)
    and the Chores service, on a Loop in a thread of its own (which makes
    its own store: SQLite connections stay with their thread).
    `delete_old(before, chunk)` submits a `chores.DeleteSamples` chore on
    that loop: the trigger the admin's POST will be."""

    kind = "in-process"

    def __init__(self, folder, db_path):
        self.folder = folder
        self.pid = os.getpid()   # the load reads this process's CPU
        self.stopped = None
        self._ready = threading.Event()
        self._failure = None
        self._thread = threading.Thread(target=self._serve, args=(db_path,), daemon=True)
        self._thread.start()
        if not self._ready.wait(harness.START_TIMEOUT) or self._failure:
            raise harness.HarnessError("the in-process server did not start: %s"
                                       % self._failure)

    def _serve(self, db_path):
        try:
            settings = config.Settings(DATABASE_NAME=db_path, COMMIT_INTERVAL=1,
                                       DS_BIND="127.0.0.1", DS_PORT=0)
            self.store = st = store.Database(db_path, durable=True)
            self.loop = the_loop = loop.Loop()
            commits = store.GroupCommit(st, the_loop, settings.COMMIT_INTERVAL,
                                        settings.COMMIT_DELAY)
            the_loop.add_service(commits)
            self.chores = chores.Chores(the_loop, commits)
            the_loop.add_service(self.chores)
            server = ttp.TTPServer(settings, st, commits, events.Bus(),
                                   plugins.load_ttp_apps(settings), the_loop)
            self.port = the_loop.listen("127.0.0.1", 0, server.accept,
                                        ("MAX_CONNECTIONS", settings.MAX_CONNECTIONS),
                                        ttp.error_text(502).encode())[1]
        except Exception:
            self._failure = traceback.format_exc()
            self._ready.set()
            return
        self._ready.set()
        try:
            the_loop.run()
        finally:
            st.close()

    def delete_old(self, before, chunk):
        deletion = Deletion()

        def submit():
            unit = self.store.units.get(UNIT)
            step = chores.DeleteSamples(self.store, unit, before, chunk=chunk)
            self.chores.submit("delete samples of %s before %s" % (UNIT, times.text(before)),
                               step, lambda chore: deletion.end(step.deleted, chore.steps,
                                                                chore.outcome))
        self.loop.call_soon_threadsafe(submit)
        return deletion

    def stop(self):
        if self.stopped is None:
            started = time.monotonic()
            self.loop.stop()
            self._thread.join(harness.STOP_TIMEOUT)
            self.stopped = {"stop_s": round(time.monotonic() - started, 3),
                            "ignored_stop": self._thread.is_alive()}
        return self.stopped


class Browser:
    """Just enough of one to sign in and send the admin's form: cookies
    kept, redirects not followed, ``csrf_token`` read from a page's hidden
    input."""

    def __init__(self, port):
        self.port = port
        self.cookies = {}

    def request(self, method, path, form=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        headers = {}
        if self.cookies:
            headers["Cookie"] = "; ".join("%s=%s" % c for c in self.cookies.items())
        body = None
        if form is not None:
            body = urlencode(form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            conn.request(method, path, body, headers)
            answer = conn.getresponse()
            text = answer.read().decode("utf-8", "replace")
        finally:
            conn.close()
        for cookie in answer.headers.get_all("Set-Cookie") or []:
            name, _, value = cookie.split(";")[0].partition("=")
            self.cookies[name] = value
        return answer.status, text

    def csrf(self, path):
        status, page = self.request("GET", path)
        found = re.search(r'name="csrf_token" value="([^"]+)"', page)
        if status != 200 or not found:
            raise harness.HarnessError("GET %s answered %d without a csrf_token" % (path, status))
        return found.group(1)

    def post(self, path, form_page=None, **form):
        """POST `form` to `path` with the csrf_token of `form_page` (the
        page the form is on; `path` itself by default)."""
        form["csrf_token"] = self.csrf(form_page or path)
        return self.request("POST", path, form)


def admin_deletion(server, db_path, before):
    """The deletion asked for as a person would: signed in as the staff
    user, the admin's form sent; over once D1 has no sample before
    `before` (one indexed look-up every 50 ms, on a connection of this
    process's own)."""
    browser = Browser(server.http_port)
    status, _ = browser.post("/login/", username=STAFF, password=STAFF_PASSWORD,
                             next="/admin/samples/")
    if status != 303:
        raise harness.HarnessError("signing in as %s answered %d" % (STAFF, status))
    deletion = Deletion()
    status, page = browser.post("/admin/samples/", "/admin/samples/?unit=" + UNIT,
                                action="delete_old", unit=UNIT, before=times.text(before),
                                confirm="yes")
    if status >= 400:
        raise harness.HarnessError("POST /admin/samples/ answered %d%s" % (
            status, " (no admin page yet?)" if status == 404 else ""))

    def watch():
        other = sqlite3.connect("file:%s?mode=ro" % db_path, uri=True)
        try:
            while other.execute(
                    "SELECT 1 FROM samples JOIN units ON units.id = samples.unit_id"
                    " WHERE units.code = ? AND ts < ? LIMIT 1", (UNIT, before)).fetchone():
                time.sleep(0.05)
        finally:
            other.close()
        deletion.end(None, None, "finished")
    threading.Thread(target=watch, daemon=True).start()
    return deletion


def start_admin_server(folder, seeded):
    """The real server on a copy of the seeded database."""
    def setup(conf):
        os.makedirs(os.path.join(folder, "db"))
        shutil.copy(seeded, os.path.join(folder, "db", "bench.db"))
    server = harness.start_ours(folder, "deleteold", {"COMMIT_INTERVAL": 1}, setup)
    server.http_port = int(re.search(r"^HTTP: listening on .*:(\d+)$",
                                     harness._read(server.out_path), re.M).group(1))
    return server


# -- the load ------------------------------------------------------------------

def load_during(server, folder, warmup, ask):
    """The meters' figures over a window that begins as `ask()` is called
    (it returns a `Deletion`) and ends with the deletion."""
    def during():
        window_started = time.monotonic()
        deletion = ask()
        deletion.wait()
        time.sleep(max(TAIL, window_started + MIN_WINDOW - time.monotonic()))
        return deletion
    return harness.load_window(server, folder, warmup, during, "--meters", METERS)


def run_one(folder, seeded, samples, chunk, plan):
    """Idle, then during the deletion, on a fresh server and copy in
    `folder` (new)."""
    before = T0 + samples * SECOND
    if plan.via == "admin":
        server = start_admin_server(folder, seeded)
        db_path = os.path.join(folder, "db", "bench.db")

        def ask():
            return admin_deletion(server, db_path, before)
    else:
        os.makedirs(folder)
        db_path = os.path.join(folder, "bench.db")
        shutil.copy(seeded, db_path)
        server = InProcessServer(folder, db_path)

        def ask():
            return server.delete_old(before, chunk)
    try:
        idle = harness.run_load(server, folder, "up", plan.seconds, plan.warmup,
                                "--meters", METERS)
        during, deletion = load_during(server, folder, plan.warmup, ask)
    finally:
        server.stop()
    with sqlite3.connect(db_path) as other:
        left = other.execute("SELECT count(*) FROM samples JOIN units ON units.id = unit_id"
                             " WHERE code = ?", (UNIT,)).fetchone()[0]
    return {"chunk": chunk, "samples": samples, "deletion_s": round(deletion.seconds, 3),
            "deleted": deletion.deleted, "steps": deletion.steps, "outcome": deletion.outcome,
            "left": left, "kept_as_expected": left == KEEP,
            "samples_per_s": round(samples / deletion.seconds), "idle": idle, "during": during,
            "median_ratio": _ratio(during.get("median_ms"), idle.get("median_ms")),
            "p99_ratio": _ratio(during.get("p99_ms"), idle.get("p99_ms")),
            "server": server.stopped}


def _ratio(a, b):
    return round(a / b, 3) if a is not None and b else None


# -- the table -----------------------------------------------------------------

def table(runs):
    header = ("chunk", "deletion", "samples/s", "idle median / p99", "during median / p99",
              "answers/s idle, during", "median x idle", "target", "met")
    rows = [header]
    for r in runs:
        idle, during = r["idle"], r["during"]
        ratio = r["median_ratio"]
        rows.append((
            "server's" if r["chunk"] is None else format(r["chunk"], ","),
            "%.2f s" % r["deletion_s"], format(r["samples_per_s"], ","),
            "%.2f / %.2f ms" % (idle["median_ms"], idle["p99_ms"]),
            "%.2f / %.2f ms" % (during["median_ms"], during["p99_ms"]),
            "%s, %s" % (format(round(idle["requests_per_s"]), ","),
                        format(round(during["requests_per_s"]), ",")),
            "-" if ratio is None else "%.2f x" % ratio, "<= 2 x",
            "-" if ratio is None else "yes" if ratio <= 2 else "NO"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip()
             for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def cpu_lines(runs):
    """Each window's CPU (100 % = one core), as bench/run.py prints it: the
    server (with this process's waiting, in-process), the load, and the
    rest of the machine; much "other" means something else ran and those
    figures are off."""
    lines = []
    for r in runs:
        parts = []
        for phase in ("idle", "during"):
            fig = r[phase]
            elapsed = fig.get("elapsed_s") or 1e-9
            parts.append("%s server %s load %s other %s" % (
                phase, harness._pct(fig.get("server_cpu_s"), elapsed),
                harness._pct(fig.get("load_cpu_s"), elapsed),
                harness._pct(fig.get("other_cpu_s"), elapsed)))
        lines.append("  chunk %-8s %s" % ("-" if r["chunk"] is None else r["chunk"],
                                          " | ".join(parts)))
    return lines


def notes_for(runs):
    notes = []
    for r in runs:
        label = "chunk %s" % ("(the server's)" if r["chunk"] is None else r["chunk"])
        for phase in ("idle", "during"):
            fig = r[phase]
            other = fig.get("other_cpu_s")
            if other is not None and other > 0.1 * (fig.get("elapsed_s") or 0):
                notes.append("%s %s: the rest of the machine used %s of a core: these "
                             "figures are off" % (label, phase, harness._pct(
                                 other, fig["elapsed_s"])))
        if not r["kept_as_expected"]:
            notes.append("%s: %d samples of %s left, %d expected" % (label, r["left"], UNIT, KEEP))
        if r["outcome"] != "finished":
            notes.append("%s: the deletion ended %s" % (label, r["outcome"]))
        window = r["during"].get("elapsed_s") or 0
        if window > 1.2 * r["deletion_s"]:
            notes.append("%s: the deletion filled %s of its window (%.2f of %.2f s): the "
                         "during figures are partly idle" % (
                             label, harness._pct(r["deletion_s"], window), r["deletion_s"],
                             window))
        for phase in ("idle", "during"):
            fig = r[phase]
            errors = sum(fig.get("errors", {}).values()) + fig.get("connection_failures", 0)
            if errors:
                notes.append("%s %s: %d error answers or failed connections" % (
                    label, phase, errors))
        if (r["server"] or {}).get("ignored_stop") or (r["server"] or {}).get("ignored_sigterm"):
            notes.append("%s: the server did not stop in time" % label)
    return notes


# -- main ----------------------------------------------------------------------

def parse_args(argv):
    parser = argparse.ArgumentParser(
        description="The meters' answer times while a chore deletes many samples.")
    parser.add_argument("--samples", type=int, default=1000000,
                        help="samples to delete (default %(default)s)")
    parser.add_argument("--chunks", default="250,500,1000,2000",
                        help="samples per chunk, comma-separated (default %(default)s)")
    parser.add_argument("--seconds", type=float, default=5.0,
                        help="the idle window's length (default %(default)s)")
    parser.add_argument("--warmup", type=float, default=1.0,
                        help="each load run's warm-up (default %(default)s)")
    parser.add_argument("--via", choices=("in-process", "admin"), default="in-process",
                        help="how the deletion is asked for (default %(default)s)")
    parser.add_argument("--json", default=os.path.join(BENCH, "results", "deleteold.json"),
                        help="where to write the results (default %(default)s)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the work folder (databases, load output) and print it")
    args = parser.parse_args(argv)
    if not 1000 <= args.samples <= 10000000:
        parser.error("--samples: 1000 to 10000000")
    try:
        args.chunk_sizes = [int(c) for c in args.chunks.split(",") if c.strip()]
    except ValueError:
        parser.error("--chunks: whole numbers, comma-separated")
    if not args.chunk_sizes or not all(1 <= c <= 1000000 for c in args.chunk_sizes):
        parser.error("--chunks: 1 to 1000000 each")
    if args.via == "admin":
        args.chunk_sizes = [None]   # the server's own
    if not 0 < args.seconds <= 600 or not 0 <= args.warmup <= 60:
        parser.error("--seconds: above 0 and at most 600; --warmup: 0 to 60")
    return args


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    signal.signal(signal.SIGTERM, harness._interrupt)
    env = harness.checked_environment()
    work = tempfile.mkdtemp(prefix="txm-bench-deleteold-")
    runs, failures = [], {}
    started = time.monotonic()
    try:
        seeded = os.path.join(work, "seeded.db")
        print("seeding %s samples..." % format(args.samples + KEEP, ","), end="", flush=True)
        t0 = time.monotonic()
        seed(seeded, args.samples)
        print(" %.1f s" % (time.monotonic() - t0), flush=True)
        for number, chunk in enumerate(args.chunk_sizes, 1):
            label = "chunk %s" % ("(the server's)" if chunk is None else format(chunk, ","))
            print("%s: idle %g s, then during the deletion..." % (label, args.seconds),
                  end="", flush=True)
            t0 = time.monotonic()
            try:
                folder = os.path.join(work, "run%d-chunk-%s" % (number, chunk or "server"))
                runs.append(run_one(folder, seeded, args.samples, chunk, args))
            except harness.HarnessError as exc:
                failures[label] = str(exc)
                print(" FAILED", flush=True)
                continue
            except KeyboardInterrupt:
                failures[label] = "interrupted"
                print(" interrupted", flush=True)
                break
            except Exception:
                failures[label] = traceback.format_exc()
                print(" FAILED", flush=True)
                continue
            print(" %.1f s" % (time.monotonic() - t0), flush=True)
    finally:
        if args.keep:
            print("work folder kept: %s" % work)
        else:
            shutil.rmtree(work, ignore_errors=True)
    print()
    if runs:
        print("%s samples of one unit deleted while %d meters upload (closed loop, "
              "COMMIT_INTERVAL 1), via %s:" % (format(args.samples, ","), METERS, args.via))
        print(table(runs))
        print('\nCPU over each window (100% = one core; "other": the rest of the machine):')
        print("\n".join(cpu_lines(runs)))
    notes = notes_for(runs)
    if notes:
        print("\nnotes:\n  " + "\n  ".join(notes))
    for label, text in failures.items():
        print("\nHARNESS FAILURE in %s:\n%s" % (label, text))
    print("\ntotal wall time %.1f s; targets are reported, not asserted"
          % (time.monotonic() - started))
    document = {
        "when": datetime.datetime.now().isoformat(timespec="seconds"),
        "command": " ".join(["python3", "bench/deleteold.py"] + (
            sys.argv[1:] if argv is None else list(argv))),
        "environment": env, "via": args.via, "meters": METERS, "samples": args.samples,
        "seconds": args.seconds, "warmup": args.warmup, "default_chunk": chores.DELETE_CHUNK,
        "runs": runs, "notes": notes, "failures": failures,
    }
    harness.write_json(args.json, document)
    print("results: %s" % args.json)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
