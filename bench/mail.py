#!/usr/bin/env python3
"""Benchmark of the mail service: 1,000 alarms' letters queued at once, and
the time until the last message is accepted by a local SMTP sink.

    python3 bench/mail.py [--letters N] [--seconds S] [--meters M] [--json FILE] [--keep]

In a temporary folder, texmate_ds serves (``python -m texmate_ds serve``
as bench/run.py starts it: ports 0, 127.0.0.1, ``COMMIT_INTERVAL: 1``)
with ``[email]`` pointing at the SMTP sink of ``tests/smtp_sink.py``,
which runs in this process (127.0.0.1, a port the OS picks, accepting
everything). Three measurements:

* **quiet**: N alarms (default 1,000) of unit A1, each with its one
  letter to one address, are written in one transaction through the
  store, as the alarm code writes an alarm and its letters, and
  committed; then the clock runs until the sink has taken the N-th
  message. ``commit -> first`` is the service's pick-up: nothing wakes it
  from another process, so it is its poll (up to ``mail.POLL_SECONDS``),
  a wait the alarm code's ``wake()`` takes away; ``first -> last`` is the
  sending itself, and its letters/s the rate.
* **with meters**: M durable meters (default 50) upload one sample each
  every 0.1 s (``bench/load.py --mode up --interval 0.1``): first
  ``--seconds`` with nothing else going on (idle), then again while N
  more letters are queued as the window begins and sent (the window ends
  once the sink has the last). Their median and p99 answer times idle
  and during, and the sending's figures under that load.
* **baseline**: the same N messages (``mail.message`` of the same
  letters) sent by a bare ``smtplib`` loop on one connection from a
  process of its own to the same sink, with no database: what the sink
  and smtplib allow on this machine. The ratio ours/baseline compares the
  sending rates.

* **over TTP**: N alarms raised as a meter raises them, ``TTP
  /al/A1/2/<d0;d1;n> KEY`` pipelined on one connection
  (``TTPClient.pipeline``), unit A1 having one person on its mailing
  list: alarms/s stored (N over the time to the last ``OK``, each sent
  only once its alarm and letter are committed), and the time from the
  first request to the last message, which includes the alarm code's
  rendering and its wake-up of the mail service (no poll).

The quiet and with-meters runs write the alarms and letters directly
through the store (`queue_alarms`), from another process, so they time
the mail service alone.

Figures are printed in a table and written as JSON (default
``bench/results/mail.json``) with the environment; nothing is asserted.
Exit status 0 whatever the figures are, 1 when the harness failed (a
server that did not start, letters that never arrived), 2 for a bad
command line.
"""

import argparse
import json
import os
import shutil
import signal
import smtplib
import subprocess
import sys
import tempfile
import time
import traceback

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
for folder in (ROOT, BENCH, os.path.join(ROOT, "tests")):
    if folder not in sys.path:
        sys.path.insert(0, folder)

import run as harness  # noqa: E402  (bench/run.py: servers, load runs, environment)

from texmate_ds import mail, store, times  # noqa: E402
from texmate_ds.client import TTPClient  # noqa: E402
from texmate_ds.store.alarms import Letter  # noqa: E402

from smtp_sink import SMTPSink  # noqa: E402  (tests/smtp_sink.py)

UNIT = "A1"
RECIPIENT = "operator@example.com"
SENDER = "dataserver@example.com"
DELIVERY_TIMEOUT = 300.0    # seconds for all letters to arrive before the run is failed
TAIL = 0.1                  # seconds the window stays open after the last message


def subject(n):
    return "Alarm level 2 on %s (Pump house 1) at 2009-01-16 15:%02d:%02d" % (
        UNIT, n // 60 % 60, n % 60)


def body(n):
    # About what the built-in default renders: the unit, the level, the
    # time and each data item on a line.
    return ("Unit %s (Pump house 1) raised an alarm of level 2.\n\n"
            "Received: 2009-01-16 15:%02d:%02d\n"
            "The localtime for this Alarm was 2009-1-16 15:30:45\n"
            "data 1: high\ndata 2: %d\ndata 3: tank level 98.5 %%\n\n"
            "-- \ntexmate_ds at dataserver.example.com\n" % (UNIT, n // 60 % 60, n % 60, n))


def queue_alarms(db_path, count, start):
    """`count` alarms of UNIT and their letters in one transaction, as the
    alarm code writes them; the time.time() of the commit."""
    db = store.Database(db_path)
    try:
        unit = db.units.get(UNIT)
        db.begin()
        for n in range(start, start + count):
            alarm = db.alarms.add(unit, 2, ["2009-1-16 15:30:45", "high", str(n)])
            db.outbox.add(alarm.id, "email", RECIPIENT, subject(n), body(n))
        db.commit()
        return time.time()
    finally:
        db.close()


def setup_for(sink_port):
    def setup(conf):
        with open(conf, "a") as f:
            f.write("[email]\nEMAIL_HOST: 127.0.0.1\nEMAIL_PORT: %d\nDEFAULT_FROM_EMAIL: %s\n"
                    % (sink_port, SENDER))
        st = harness.open_store(conf)
        try:
            unit = st.units.add(UNIT, harness.KEY, harness.FIELDS, name="Pump house 1")
            # For the alarms raised over TTP: one person on the unit's list.
            person = st.accounts.add_user("operator", "x", email=RECIPIENT)
            st.alarms.set_mailing_list(unit, [person.id])
            st.commit()
        finally:
            st.close()
        harness.make_units(harness.units("U", 50))(conf)
    return setup


def delivery(sink, before, count, committed):
    """Wait for the sink's `count` messages after the first `before`; the
    figures from the commit at `committed` (time.time())."""
    try:
        received = sink.wait_for(before + count, DELIVERY_TIMEOUT)[before:before + count]
    except AssertionError as exc:
        raise harness.HarnessError(str(exc))
    first, last = received[0].when, received[-1].when
    sending = last - first
    return {"letters": count, "commit_to_first_s": round(first - committed, 3),
            "first_to_last_s": round(sending, 3), "commit_to_last_s": round(last - committed, 3),
            "letters_per_s_sending": round((count - 1) / sending, 1) if sending > 0 else None,
            "letters_per_s_overall": round(count / (last - committed), 1)}


def outbox_counts(db_path, expect_sent, timeout=10.0):
    """The outbox's counts once `expect_sent` are recorded sent (or the
    timeout passed)."""
    deadline = time.monotonic() + timeout
    db = store.Database(db_path)
    try:
        while True:
            counts = db.outbox.counts()
            if counts.get("sent", 0) >= expect_sent or time.monotonic() > deadline:
                return counts
            time.sleep(0.05)
    finally:
        db.close()


def during_meters(server, folder, sink, db_path, args, start):
    """The meters' figures over a window that begins as the letters are
    queued and ends once the last is accepted; and the sending's."""
    def during():
        before = len(sink.messages)
        committed = queue_alarms(db_path, args.letters, start)
        sending = delivery(sink, before, args.letters, committed)
        time.sleep(TAIL)
        return sending
    return harness.load_window(server, folder, args.warmup, during,
                               "--meters", args.meters, "--interval", "0.1")


def over_ttp(server, sink, count):
    """`count` alarms raised by ``al`` requests pipelined on one connection:
    alarms/s to the last ``OK`` (each committed before its OK), and the
    delivery of their letters (the alarm code renders each and wakes the
    mail service after its commit: no poll)."""
    before = len(sink.messages)
    lines = ["TTP /al/%s/2/<2009-1-16 15:30:45;high;%d> %s" % (UNIT, n, harness.KEY)
             for n in range(count)]
    started = time.time()
    with TTPClient("127.0.0.1", server.port, timeout=60) as client:
        answers = client.pipeline(lines)
    answered = time.time() - started
    fig = delivery(sink, before, count, started)
    fig.update(alarms_ok=answers.count("OK"), answered_s=round(answered, 3),
               alarms_per_s=round(count / answered, 1))
    return fig


# -- the baseline: smtplib alone ---------------------------------------------------

def baseline_client(port, count):
    """Send `count` messages like ours on one connection; prints the JSON."""
    messages = []
    for n in range(count):
        letter = Letter(n + 1, None, "email", RECIPIENT, subject(n), body(n), "queued",
                        times.now(), 0, 0, None, "")
        messages.append(mail.message(letter, SENDER).as_bytes())
    started = time.time()
    smtp = smtplib.SMTP("127.0.0.1", port, local_hostname="localhost", timeout=mail.TIMEOUT)
    for data in messages:
        smtp.sendmail(SENDER, [RECIPIENT], data)
    smtp.quit()
    print(json.dumps({"started": started, "letters": count}))


def run_baseline(sink, count, folder):
    before = len(sink.messages)
    result = subprocess.run([harness.PYTHON, os.path.abspath(__file__), "--baseline-client",
                             str(sink.port), str(count)], cwd=folder, env=harness.child_env(),
                            capture_output=True, text=True, timeout=DELIVERY_TIMEOUT)
    if result.returncode != 0:
        raise harness.HarnessError("the smtplib baseline failed:\n%s" % result.stderr[-2000:])
    started = json.loads(result.stdout)["started"]
    fig = delivery(sink, before, count, started)
    return {"letters": count, "first_to_last_s": fig["first_to_last_s"],
            "letters_per_s_sending": fig["letters_per_s_sending"],
            "start_to_last_s": fig["commit_to_last_s"]}


# -- the table ---------------------------------------------------------------------

def _ms(fig, key):
    value = fig.get(key)
    return "-" if value is None else "%.2f" % value


def table(doc):
    header = ("run", "letters", "commit -> first", "first -> last", "commit -> last",
              "letters/s sending", "x baseline")
    rows = [header]
    base = doc["baseline"]["letters_per_s_sending"]
    for name, fig in (("quiet", doc["quiet"]), ("%d meters" % doc["meters"],
                                                doc["with_meters"]["sending"])):
        rate = fig["letters_per_s_sending"]
        rows.append((name, format(fig["letters"], ","), "%.3f s" % fig["commit_to_first_s"],
                     "%.3f s" % fig["first_to_last_s"], "%.3f s" % fig["commit_to_last_s"],
                     "-" if rate is None else format(round(rate), ","),
                     "%.2f" % (rate / base) if rate and base else "-"))
    t = doc["over_ttp"]
    rows.append(("raised over TTP (al)", format(t["letters"], ","),
                 "%.3f s" % t["commit_to_first_s"], "%.3f s" % t["first_to_last_s"],
                 "%.3f s" % t["commit_to_last_s"],
                 format(round(t["letters_per_s_sending"] or 0), ","),
                 "%.2f" % (t["letters_per_s_sending"] / base)
                 if t["letters_per_s_sending"] and base else "-"))
    b = doc["baseline"]
    rows.append(("smtplib alone (baseline)", format(b["letters"], ","), "-",
                 "%.3f s" % b["first_to_last_s"], "-",
                 "-" if base is None else format(round(base), ","), "1.00"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip()
             for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    idle, during = doc["with_meters"]["idle"], doc["with_meters"]["during"]
    lines.append("")
    lines.append("al: %s alarms stored (each OK after its commit) in %.3f s, %s alarms/s; "
                 "the row's times count from the first request sent" % (
                     format(t["alarms_ok"], ","), t["answered_s"],
                     format(round(t["alarms_per_s"]), ",")))
    lines.append("meters' answers (median / p99 ms): idle %s / %s, while mailing %s / %s "
                 "(median x idle: %s)" % (
                     _ms(idle, "median_ms"), _ms(idle, "p99_ms"), _ms(during, "median_ms"),
                     _ms(during, "p99_ms"),
                     "%.2f" % (during["median_ms"] / idle["median_ms"])
                     if idle.get("median_ms") and during.get("median_ms") else "-"))
    return "\n".join(lines)


def notes_for(doc):
    notes = []
    for phase in ("idle", "during"):
        fig = doc["with_meters"][phase]
        errors = sum(fig.get("errors", {}).values()) + fig.get("connection_failures", 0)
        if errors:
            notes.append("meters %s: %d error answers or failed connections" % (phase, errors))
    expected = 3 * doc["letters"]
    if doc["over_ttp"]["alarms_ok"] != doc["letters"]:
        notes.append("al: %d OK of %d" % (doc["over_ttp"]["alarms_ok"], doc["letters"]))
    if doc["outbox"].get("sent", 0) != expected:
        notes.append("outbox: %s, %d sent expected" % (doc["outbox"], expected))
    if (doc["server"] or {}).get("stderr_notes", {}).get("lines"):
        notes.append("server stderr: %s" % doc["server"]["stderr_notes"]["first"][:3])
    return notes


# -- main --------------------------------------------------------------------------

def parse_args(argv):
    parser = argparse.ArgumentParser(
        description="Alarm letters queued at once: the time until the last is accepted.")
    parser.add_argument("--letters", type=int, default=1000,
                        help="alarms (one letter each) per run (default %(default)s)")
    parser.add_argument("--seconds", type=float, default=3.0,
                        help="the meters' idle window (default %(default)s)")
    parser.add_argument("--warmup", type=float, default=0.5,
                        help="each load run's warm-up (default %(default)s)")
    parser.add_argument("--meters", type=int, default=50,
                        help="meters uploading every 0.1 s meanwhile, 1 to 50 "
                             "(default %(default)s)")
    parser.add_argument("--json", default=os.path.join(BENCH, "results", "mail.json"),
                        help="where to write the results (default %(default)s)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the work folder (database, server logs) and print it")
    parser.add_argument("--baseline-client", nargs=2, type=int, metavar=("PORT", "N"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.baseline_client:
        return args
    if not 2 <= args.letters <= 100000:
        parser.error("--letters: 2 to 100000")
    if not 1 <= args.meters <= 50:
        parser.error("--meters: 1 to 50")
    if not 0 < args.seconds <= 600 or not 0 <= args.warmup <= 60:
        parser.error("--seconds: above 0 and at most 600; --warmup: 0 to 60")
    return args


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.baseline_client:
        baseline_client(*args.baseline_client)
        return 0
    signal.signal(signal.SIGTERM, harness._interrupt)
    env = harness.checked_environment()
    work = tempfile.mkdtemp(prefix="txm-mail-bench-")
    doc = {"letters": args.letters, "meters": args.meters, "environment": env,
           "poll_seconds": mail.POLL_SECONDS, "batch": mail.BATCH}
    failure = None
    server = None
    sink = SMTPSink()
    try:
        folder = os.path.join(work, "ours")
        server = harness.start_ours(folder, "mail", {"COMMIT_INTERVAL": 1},
                                    setup_for(sink.port))
        db_path = os.path.join(folder, "db", "bench.db")
        committed = queue_alarms(db_path, args.letters, 0)
        doc["quiet"] = delivery(sink, 0, args.letters, committed)
        idle = harness.run_load(server, folder, "up", args.seconds, args.warmup,
                                "--meters", args.meters, "--interval", "0.1")
        during, sending = during_meters(server, folder, sink, db_path, args, args.letters)
        doc["with_meters"] = {"idle": idle, "during": during, "sending": sending}
        doc["over_ttp"] = over_ttp(server, sink, args.letters)
        doc["outbox"] = outbox_counts(db_path, 3 * args.letters)
        server.stop()
        doc["server"] = server.stopped
        doc["baseline"] = run_baseline(sink, args.letters, work)
    except harness.HarnessError as exc:
        failure = str(exc)
    except Exception:
        failure = traceback.format_exc()
    finally:
        if server is not None:
            server.stop()
        sink.stop()
        if args.keep:
            print("work folder kept: %s" % work)
        else:
            shutil.rmtree(work, ignore_errors=True)
    doc["failure"] = failure
    if failure is None:
        print(table(doc))
        notes = notes_for(doc)
        doc["notes"] = notes
        if notes:
            print("\nnotes:\n  " + "\n  ".join(notes))
        waits = [doc["quiet"]["commit_to_first_s"], doc["with_meters"]["sending"][
            "commit_to_first_s"]]
        print("\ncommit -> first is the service's poll (every %.0f s; here %s s): the alarm "
              "code's wake() takes it away" % (mail.POLL_SECONDS, " and ".join(
                  "%.2f" % w for w in waits)))
    else:
        print("HARNESS FAILURE:\n%s" % failure)
    harness.write_json(args.json, doc)
    print("results: %s" % args.json)
    return 1 if failure else 0


if __name__ == "__main__":
    sys.exit(main())
