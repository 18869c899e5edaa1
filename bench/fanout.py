#!/usr/bin/env python3
"""Benchmark of ``/events`` fan-out (issue 12): many browsers watching one
unit while meters upload durably, and what an idle stream costs.

    python3 bench/fanout.py [--watchers N] [--meters M] [--seconds S] [--idle K] [--json FILE]

The real server runs as bench/run.py starts it (``python -m texmate_ds
serve`` in a temporary folder: ports 0, 127.0.0.1, a new SQLite database,
``COMMIT_INTERVAL: 1``, so every ``OK`` means committed), with
``MAX_EVENT_STREAMS`` and ``MAX_HTTP_CONNECTIONS`` raised to fit the
streams. The units, a user who may see only the watched unit W1, and that
user's API token are written through the store before it starts. Every
stream is ``GET /events?units=W1`` with ``Authorization: Bearer TOKEN``,
written by hand over a raw socket (HTTP/1.1); its chunked body is cut into
Server-Sent Events here.

**Fan-out.** M meters (default 50) upload one sample per request: M-1 of
them (U1..U{M-1}) in a closed loop from a process of their own
(``bench/load.py --mode up``, as run.py's ``up1``), and W1, the watched
one, from this process, one sample every ``--interval`` seconds (default
0.1: ten times what a fast-logging meter does, so that every window holds
enough samples). Real meters are distinct units and a display watches
one of them, so one unit of the M is watched and the fan-out is N frames
per W1 sample. Each sample's first value is its sequence number, which
matches an event to its upload. The windows alternate, ``--rounds``
times (default 2): with no stream open, then with N (default 200) open
(opened before the window, closed after it), so both sides share the
machine's drift. Per window: the closed-loop meters' median, p99 and
requests/s (load.py), W1's answer times, and with watchers, for every
(watcher, sample) pair, the delivery latency: from W1 receiving the
sample's ``OK`` to the watcher receiving its event, and from W1 sending
the upload. The server publishes an event after the COMMIT returns and
releases the ``OK`` after it too, so a negative latency from ``OK`` (the
event came first) would be a measurement, not an error. Every socket of
this process is read in one selector loop, a read is stamped with the
time ``select()`` returned, and what the watchers read is parsed only
after the window, once no socket had anything for ``QUIET`` seconds: the
time this process takes over 200 sockets is hardly counted against the
server, and its CPU is reported beside the server's. After each window
W1 stops and the watchers are read until every sample answered ``OK``
has reached every one of them (or ``DRAIN_SECONDS`` passed).

**Idle streams.** A second server, with W1 only: a warm-up (a few
streams get a sample, then close), the server's VmRSS (``/proc/PID/
status``), K (default 1,000) streams opened (at most ``CONNECT_BATCH``
being set up at once) and left idle, VmRSS again: bytes per stream, the
process's memory only (the kernel's socket buffers are not in it). Then
``IDLE_SAMPLES`` samples, one every ``IDLE_INTERVAL`` s, each to all K
streams (they are live, not just open): their delivery, and the server's
CPU over it per event received (one frame to one stream). This process needs a descriptor per stream: it
raises its soft limit (``resource``) where it is lower; the server raises
its own to MAX_CONNECTIONS + MAX_HTTP_CONNECTIONS and some.

Targets (printed, never asserted): the meters' median with watchers
within 1.5x of it without; p99 delivery from ``OK`` under 100 ms. The
table is printed; the JSON (default ``bench/results/fanout.json``) has
every window's figures and the environment. Exit status 0 whatever the
figures are, 1 when the harness failed (a server that did not start, a
stream refused), 2 for a bad command line.
"""

import argparse
import json
import os
import re
import selectors
import shutil
import signal
import socket
import statistics
import sys
import tempfile
import time
import traceback

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
for folder in (ROOT, BENCH):
    if folder not in sys.path:
        sys.path.insert(0, folder)

import load as loadgen  # noqa: E402  (bench/load.py: /proc readings)
import run as harness  # noqa: E402  (bench/run.py: servers, load windows, environment)

from texmate_ds import auth, times  # noqa: E402
from texmate_ds.client import ResponseSplitter, up_request  # noqa: E402
from texmate_ds.loop import raise_open_files  # noqa: E402
from texmate_ds.simulate import Stats, percentile  # noqa: E402

WATCHED = "W1"
HOST = "127.0.0.1"
RECV_SIZE = 65536
CONNECT_BATCH = 100      # streams being opened at once
OPEN_TIMEOUT = 120.0     # seconds to open all streams of a window, at most
DRAIN_SECONDS = 5.0      # after a window: at most this long for the last events
QUIET = 0.05             # seconds without a read before a drain parses what it read
SETTLE = 0.5             # seconds after closing streams, and before reading VmRSS
WARM_STREAMS = 10        # the idle part's warm-up streams
IDLE_SAMPLES = 20        # then sent to all idle streams, one every IDLE_INTERVAL s
IDLE_INTERVAL = 0.05
STREAM_ROOM = 100        # MAX_EVENT_STREAMS and MAX_HTTP_CONNECTIONS above the streams


# -- a stream, read by hand ----------------------------------------------------------

class Watcher:
    """One ``/events`` stream: the HTTP/1.1 head, the chunked body, the
    events. For every ``sample`` event it notes when it came (`feed`'s
    `now`) under the sample's sequence number in `arrivals`."""

    __slots__ = ("sock", "received", "raw", "body", "status", "got", "last", "disorder",
                 "resyncs", "foreign", "ended")

    def __init__(self, sock):
        self.sock = sock
        self.received = []          # (when, bytes) read, not yet parsed
        self.raw = bytearray()      # parsed, but not yet cut out of its chunk
        self.body = bytearray()     # unchunked, not yet a whole event
        self.status = None
        self.got = 0                # sample events of W1
        self.last = -1              # the latest one's sequence number
        self.disorder = 0           # events that came after a later sample's
        self.resyncs = 0
        self.foreign = 0            # events of another unit (there should be none)
        self.ended = False

    def parse(self, arrivals):
        """Parse what was read (`received`), each event under its read's time."""
        for now, data in self.received:
            self.feed(data, now, arrivals)
        self.received = []

    def feed(self, data, now, arrivals):
        raw = self.raw
        raw += data
        if self.status is None:
            end = raw.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(raw[:end]).decode("latin-1")
            del raw[:end + 4]
            self.status = int(head.split(None, 2)[1])
            if self.status != 200 or "transfer-encoding: chunked" not in head.lower():
                raise harness.HarnessError("/events answered:\n%s" % head[:500])
        while True:
            line_end = raw.find(b"\r\n")
            if line_end < 0:
                break
            size = int(raw[:line_end], 16)
            start = line_end + 2
            if len(raw) < start + size + 2:
                break
            self.body += raw[start:start + size]
            del raw[:start + size + 2]
            if size == 0:
                self.ended = True
        body = self.body
        start = 0
        while True:
            end = body.find(b"\n\n", start)
            if end < 0:
                break
            block = bytes(body[start:end])
            start = end + 2
            if block.startswith(b"event: sample"):
                data = json.loads(block[block.index(b"\ndata: ") + 7:])
                if data["unit"] != WATCHED:
                    self.foreign += 1
                    continue
                n = int(data["values"][0])
                if n <= self.last:
                    self.disorder += 1
                self.last = max(self.last, n)
                self.got += 1
                arrivals.setdefault(n, []).append(now)
            elif block.startswith(b"event: resync"):
                self.resyncs += 1
        del body[:start]


def stream_request(token):
    return ("GET /events?units=%s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\n"
            "Accept: text/event-stream\r\n\r\n" % (WATCHED, HOST, token)).encode("ascii")


def open_streams(port, token, count):
    """`count` streams, each answered ``200`` (its head read); at most
    CONNECT_BATCH being opened at any time."""
    request = stream_request(token)
    deadline = time.monotonic() + OPEN_TIMEOUT
    sel = selectors.DefaultSelector()
    opened = []
    opening = 0
    try:
        while len(opened) < count:
            if time.monotonic() > deadline:
                raise harness.HarnessError("opened %d of %d streams in %d s"
                                           % (len(opened), count, OPEN_TIMEOUT))
            while opening < CONNECT_BATCH and len(opened) + opening < count:
                sock = socket.create_connection((HOST, port), timeout=10)
                sock.sendall(request)
                sock.setblocking(False)
                sel.register(sock, selectors.EVENT_READ, Watcher(sock))
                opening += 1
            for key, _ in sel.select(0.5):
                watcher = key.data
                data = watcher.sock.recv(RECV_SIZE)
                if not data:
                    raise harness.HarnessError("a stream was closed before its answer")
                watcher.feed(data, 0.0, {})
                if watcher.status is not None:
                    sel.unregister(watcher.sock)
                    opening -= 1
                    opened.append(watcher)
    except BaseException:
        close_streams(opened)
        raise
    finally:
        for key in list(sel.get_map().values()):
            key.fileobj.close()
        sel.close()
    return opened


def close_streams(watchers):
    for watcher in watchers:
        watcher.sock.close()


# -- the watched meter and a window ------------------------------------------------

class WatchedMeter:
    """W1 on one TTP connection: one upload of one sample in flight at a
    time, sample n's first value n. `sent` and `ok` map n to when its
    upload went out and when its ``OK`` came."""

    def __init__(self, port):
        self.sock = socket.create_connection((HOST, port), timeout=10)
        self.sock.setblocking(False)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.splitter = ResponseSplitter()
        self.next_n = 0
        self.in_flight = None
        self.last_ts = 0
        self.sent = {}
        self.ok = {}
        self.stats = Stats()

    def send(self, now):
        n = self.next_n
        self.next_n += 1
        ts = max(times.now(), self.last_ts + 1)
        self.last_ts = ts
        sample = "%s;%d;%.3f;%.3f;%.3f" % (times.text(ts), n, 20 + n % 97 / 7,
                                           50 - n % 89 / 3, n % 1000 / 10)
        self.sock.sendall((up_request(WATCHED, harness.KEY, [sample]) + "\r").encode("ascii"))
        self.in_flight = n
        self.sent[n] = now

    def feed(self, data, now):
        if not data:
            raise harness.HarnessError("the server closed W1's connection")
        for answer in self.splitter.feed(data):
            n, self.in_flight = self.in_flight, None
            self.stats.record(answer, now - self.sent[n], 1)
            if answer.startswith("OK"):
                self.ok[n] = now

    def close(self):
        self.sock.close()


class Window:
    """W1 uploading every `interval` seconds while `watchers` read, in one
    selector loop; `run` for the measured window, `drain` after it."""

    def __init__(self, meter, watchers, interval):
        self.meter = meter
        self.watchers = watchers
        self.interval = interval
        self.arrivals = {}
        self.first_n = meter.next_n
        self.answers_before = meter.stats.answered
        self.selector = selectors.DefaultSelector()
        self.selector.register(meter.sock, selectors.EVENT_READ, None)
        for watcher in watchers:
            self.selector.register(watcher.sock, selectors.EVENT_READ, watcher)
        self.elapsed = 0.0
        self.cpu_s = 0.0

    def _read(self, timeout):
        """Read every socket that is ready within `timeout`; how many were."""
        ready = self.selector.select(timeout)
        now = time.monotonic()
        for key, _ in ready:
            try:
                data = key.fileobj.recv(RECV_SIZE)
            except (BlockingIOError, InterruptedError):
                continue
            if key.data is None:
                self.meter.feed(data, now)
            elif data:
                key.data.received.append((now, data))
            else:
                key.data.ended = True
                self.selector.unregister(key.fileobj)
        return len(ready)

    def run(self, seconds, limit=None):
        """Upload every `interval` s for `seconds` (or `limit` samples),
        reading the watchers meanwhile."""
        meter = self.meter
        cpu, started = loadgen.own_cpu(), time.monotonic()
        stop_at = started + seconds
        due = started
        while True:
            now = time.monotonic()
            done = now >= stop_at or (limit is not None and meter.next_n - self.first_n >= limit)
            if done and meter.in_flight is None:
                break
            if not done and meter.in_flight is None and now >= due:
                meter.send(now)
                due = max(due + self.interval, now)
            self._read(max(0.0, min(due, stop_at) - now) if meter.in_flight is None else 0.05)
        self.elapsed = time.monotonic() - started
        self.cpu_s = loadgen.own_cpu() - cpu

    def delivered(self):
        for watcher in self.watchers:
            watcher.parse(self.arrivals)
        return all(watcher.got >= self.expected_each() or watcher.ended
                   for watcher in self.watchers)

    def expected_each(self):
        return sum(1 for n in self.meter.ok if n >= self.first_n)

    def drain(self):
        """Read on until every sample answered OK reached every watcher.
        What was read is parsed only once nothing came for QUIET seconds,
        so no parsing delays the stamping of a read."""
        deadline = time.monotonic() + DRAIN_SECONDS
        while time.monotonic() < deadline:
            if not self._read(QUIET) and self.delivered():
                break
        self.delivered()
        self.selector.close()

    def figures(self):
        meter = self.meter
        answer_times = sorted(meter.stats.answer_times[self.answers_before:])
        fig = {"w1_uploads": len(answer_times), "w1_ok": self.expected_each(),
               "w1_median_ms": _ms(percentile(answer_times, 0.5)),
               "w1_p99_ms": _ms(percentile(answer_times, 0.99)),
               "elapsed_s": round(self.elapsed, 3), "bench_cpu_s": round(self.cpu_s, 3)}
        if self.watchers:
            expected = self.expected_each() * len(self.watchers)
            fig.update({
                "watchers": len(self.watchers),
                "events_expected": expected,
                "events_received": sum(watcher.got for watcher in self.watchers),
                "watchers_with_every_sample": sum(
                    1 for watcher in self.watchers if watcher.got == self.expected_each()),
                "out_of_order": sum(watcher.disorder for watcher in self.watchers),
                "other_units": sum(watcher.foreign for watcher in self.watchers),
                "resyncs": sum(watcher.resyncs for watcher in self.watchers),
                "streams_ended": sum(1 for watcher in self.watchers if watcher.ended),
                "delivery": delivery(*self.latencies()),
            })
        return fig

    def latencies(self):
        """(from OK, from sending) in seconds, one per (watcher, sample)."""
        from_ok, from_sent = [], []
        for n, arrived in self.arrivals.items():
            ok, sent = self.meter.ok.get(n), self.meter.sent[n]
            for when in arrived:
                from_sent.append(when - sent)
                if ok is not None:
                    from_ok.append(when - ok)
        return from_ok, from_sent


def delivery(from_ok, from_sent):
    """Median, p99 and max (ms) of the latencies from OK and from sending,
    and how many events came before their OK."""
    fig = {"pairs": len(from_sent), "events_before_ok": sum(1 for v in from_ok if v < 0)}
    for name, values in (("from_ok", sorted(from_ok)), ("from_send", sorted(from_sent))):
        fig.update({name + "_median_ms": _ms(percentile(values, 0.5)),
                    name + "_p99_ms": _ms(percentile(values, 0.99)),
                    name + "_max_ms": _ms(values[-1] if values else None)})
    return fig


def _ms(seconds):
    return None if seconds is None else round(seconds * 1000, 3)


# -- the servers -----------------------------------------------------------------------

def setup_for(token, meters):
    """A setup for harness.start_ours: W1, U1..U`meters`, and a user who sees
    W1 only, with an API token (put in token["value"])."""
    def setup(conf):
        harness.make_units(harness.units("U", meters), [WATCHED])(conf)
        st = harness.open_store(conf)
        try:
            viewer = st.accounts.add_user("viewer", "!", email="viewer@example.com")
            st.accounts.set_units("user", viewer.id, [st.units.get(WATCHED).id])
            token["value"] = auth.create_api_token(st, viewer.id, "fanout")
            st.commit()
        finally:
            st.close()
    return setup


def start_server(work, name, streams, meters):
    token = {}
    room = max(1000, streams + STREAM_ROOM)
    server = harness.start_ours(os.path.join(work, name), name, {
        "COMMIT_INTERVAL": 1, "MAX_EVENT_STREAMS": room, "MAX_HTTP_CONNECTIONS": room},
        setup_for(token, meters))
    match = re.search(r"^HTTP: listening on .*:(\d+)$", harness._read(server.out_path), re.M)
    if match is None:
        server.stop()
        raise harness.HarnessError("the server printed no HTTP port")
    return server, int(match.group(1)), token["value"]


def fanout(args, work):
    """The alternating windows; their figures, and the pooled delivery."""
    server, http_port, token = start_server(work, "fanout", args.watchers, args.meters - 1)
    windows = []
    pooled_ok, pooled_sent = [], []
    meter = None
    try:
        meter = WatchedMeter(server.port)
        for round_no in range(1, args.rounds + 1):
            for watched in (False, True):
                name = "round %d, %s" % (round_no, "%d watchers" % args.watchers
                                         if watched else "no watchers")
                print("%-28s" % name, end="", flush=True)
                folder = os.path.join(server.folder, "r%d-%s" % (round_no, watched))
                os.makedirs(folder)
                watchers = open_streams(http_port, token, args.watchers) if watched else []
                try:
                    window = Window(meter, watchers, args.interval)
                    load, _ = harness.load_window(
                        server, folder, args.warmup, lambda: window.run(args.seconds),
                        "--meters", args.meters - 1)
                    window.drain()
                finally:
                    close_streams(watchers)
                time.sleep(SETTLE)   # the server sees the streams go
                fig = window.figures()
                fig.update(round=round_no, watched=watched, meters=_meters(load))
                windows.append(fig)
                if watched:
                    from_ok, from_sent = window.latencies()
                    pooled_ok += from_ok
                    pooled_sent += from_sent
                other = fig["meters"].get("other_cpu_s")
                print(" %.1f s, meters' median %s ms, other CPU %s" % (
                    fig["elapsed_s"], fig["meters"]["median_ms"],
                    "-" if other is None else "%.0f%%" % (100 * other / fig["elapsed_s"])),
                    flush=True)
    finally:
        if meter is not None:
            meter.close()
        server.stop()
    return {"windows": windows, "server": server.stopped,
            "delivery": delivery(pooled_ok, pooled_sent)}


def _meters(load):
    """What of load.py's figures the table and the JSON keep."""
    keep = ("elapsed_s", "answered", "ok", "errors", "connection_failures", "unanswered",
            "requests_per_s", "median_ms", "p99_ms", "server_cpu_s", "load_cpu_s",
            "machine_busy_cpu_s", "other_cpu_s", "steal_cpu_s")
    return {key: load[key] for key in keep if key in load}


def idle_streams(args, work):
    """Server memory per idle stream; then IDLE_SAMPLES samples to all of
    them, and the server's CPU for it."""
    server, http_port, token = start_server(work, "idle", args.idle, 0)
    meter = None
    streams = []
    try:
        meter = WatchedMeter(server.port)
        warm = open_streams(http_port, token, WARM_STREAMS)
        try:
            window = Window(meter, warm, IDLE_INTERVAL)
            window.run(DRAIN_SECONDS, limit=1)
            window.drain()
        finally:
            close_streams(warm)
        time.sleep(SETTLE)
        rss_before = loadgen.rss_kib(server.pid)
        started = time.monotonic()
        streams = open_streams(http_port, token, args.idle)
        open_s = time.monotonic() - started
        time.sleep(SETTLE)
        rss_idle = loadgen.rss_kib(server.pid)
        window = Window(meter, streams, IDLE_INTERVAL)
        cpu_before = loadgen.cpu_seconds(server.pid)
        window.run(IDLE_SAMPLES * IDLE_INTERVAL + DRAIN_SECONDS, limit=IDLE_SAMPLES)
        window.drain()
        cpu_s = loadgen.cpu_seconds(server.pid) - cpu_before
        sent = window.figures()
    finally:
        close_streams(streams)
        if meter is not None:
            meter.close()
        server.stop()
    fig = {"streams": len(streams), "open_s": round(open_s, 3), "rss_before_kib": rss_before,
           "rss_idle_kib": rss_idle, "server": server.stopped,
           "samples": {key: sent[key] for key in (
               "w1_ok", "events_expected", "events_received", "delivery")}}
    fig["samples"].update(interval_s=IDLE_INTERVAL, server_cpu_s=round(cpu_s, 3))
    if sent["events_received"]:
        fig["samples"]["server_cpu_us_per_event"] = round(
            cpu_s * 1e6 / sent["events_received"], 1)
    if rss_before is not None and rss_idle is not None and streams:
        fig["bytes_per_stream"] = round((rss_idle - rss_before) * 1024 / len(streams))
    return fig


# -- the table ---------------------------------------------------------------------------

def _mean(windows, watched, key, part="meters"):
    values = [w[part][key] if part else w[key] for w in windows if w["watched"] == watched]
    values = [v for v in values if v is not None]
    return statistics.mean(values) if values else None


def _num(value, digits=2):
    if value is None:
        return "-"
    if digits == 0:
        return format(round(value), ",")
    return "%.*f" % (digits, value)


def _pct(windows, watched, key):
    """A CPU figure of load.py's (server, load, other) as % of one core."""
    used = [w["meters"].get(key) for w in windows if w["watched"] == watched]
    spans = [w["meters"]["elapsed_s"] for w in windows if w["watched"] == watched]
    if None in used or not spans:
        return "-"
    return "%.0f%%" % (100 * sum(used) / sum(spans))


def summary(doc):
    """The table's rows: (metric, no watchers, watchers, ratio, target, met)."""
    windows = doc["fanout"]["windows"]
    pooled = doc["fanout"]["delivery"]
    rows = []
    for key, label, digits, target in (
            ("median_ms", "median ms", 2, 1.5), ("p99_ms", "p99 ms", 2, None),
            ("requests_per_s", "requests/s", 0, None)):
        none, watched = _mean(windows, False, key), _mean(windows, True, key)
        ratio = watched / none if none and watched is not None else None
        rows.append(("%d meters: %s" % (doc["meters"] - 1, label), _num(none, digits),
                     _num(watched, digits), _num(ratio),
                     "<= %.1f x" % target if target else "",
                     "" if not target or ratio is None else "yes" if ratio <= target else "NO"))
    none_w1 = (_num(_mean(windows, False, "w1_median_ms", None)),
               _num(_mean(windows, False, "w1_p99_ms", None)))
    with_w1 = (_num(_mean(windows, True, "w1_median_ms", None)),
               _num(_mean(windows, True, "w1_p99_ms", None)))
    rows.append(("W1: median / p99 ms", " / ".join(none_w1), " / ".join(with_w1), "", "", ""))
    p99 = pooled["from_ok_p99_ms"]
    rows.append(("delivery from OK: median / p99 / max ms", "-", "%s / %s / %s" % (
        _num(pooled["from_ok_median_ms"]), _num(p99), _num(pooled["from_ok_max_ms"])),
        "", "p99 < 100 ms", "-" if p99 is None else "yes" if p99 < 100 else "NO"))
    rows.append(("delivery from sending: median / p99 / max ms", "-", "%s / %s / %s" % (
        _num(pooled["from_send_median_ms"]), _num(pooled["from_send_p99_ms"]),
        _num(pooled["from_send_max_ms"])), "", "", ""))
    watched = [w for w in windows if w["watched"]]
    expected = sum(w["events_expected"] for w in watched)
    received = sum(w["events_received"] for w in watched)
    rows.append(("events received / expected", "-", "%s / %s" % (
        format(received, ","), format(expected, ",")), "", "all",
        "yes" if received == expected else "NO"))
    for key, label in (("server_cpu_s", "server"), ("load_cpu_s", "meters' load process"),
                       ("other_cpu_s", "other (this process included)")):
        rows.append(("CPU: %s" % label, _pct(windows, False, key), _pct(windows, True, key),
                     "", "", ""))
    rows.append(("CPU: this process (W1, watchers)",) + tuple(
        "%.0f%%" % (100 * sum(w["bench_cpu_s"] for w in windows if w["watched"] == side)
                    / sum(w["elapsed_s"] for w in windows if w["watched"] == side))
        for side in (False, True)) + ("", "", ""))
    return rows


def table(doc):
    header = ("fan-out", "no watchers", "%d watchers" % doc["watchers"], "ratio", "target",
              "met")
    rows = [header] + summary(doc)
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip()
             for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    idle = doc["idle"]
    sent = idle["samples"]
    lines += ["", "idle: %s streams opened in %.2f s; server VmRSS %s -> %s KiB: %s bytes "
              "per stream" % (format(idle["streams"], ","), idle["open_s"],
                              format(idle["rss_before_kib"] or 0, ","),
                              format(idle["rss_idle_kib"] or 0, ","),
                              format(idle.get("bytes_per_stream", 0), ",")),
              "idle: then %d samples, one every %g s: %s of %s events received, each %s ms "
              "(median) and at most %s ms after its OK; server CPU %s us per event" % (
                  sent["w1_ok"], sent["interval_s"], format(sent["events_received"], ","),
                  format(sent["events_expected"], ","),
                  _num(sent["delivery"]["from_ok_median_ms"]),
                  _num(sent["delivery"]["from_ok_max_ms"]),
                  _num(sent.get("server_cpu_us_per_event"), 1))]
    return "\n".join(lines)


def notes_for(doc):
    notes = []
    for w in doc["fanout"]["windows"]:
        name = "round %d %s" % (w["round"], "watchers" if w["watched"] else "no watchers")
        meters = w["meters"]
        errors = sum(meters.get("errors", {}).values()) + meters.get("connection_failures", 0)
        if errors or w["w1_ok"] != w["w1_uploads"]:
            notes.append("%s: %d meters' error answers or failed connections, W1 %d OK of %d"
                         % (name, errors, w["w1_ok"], w["w1_uploads"]))
        if w["watched"]:
            for key in ("out_of_order", "other_units", "resyncs", "streams_ended"):
                if w[key]:
                    notes.append("%s: %s %d" % (name, key.replace("_", " "), w[key]))
    sent = doc["idle"]["samples"]
    if sent["events_received"] != sent["events_expected"]:
        notes.append("idle: %d of %d events received" % (sent["events_received"],
                                                          sent["events_expected"]))
    for part in ("fanout", "idle"):
        stopped = doc[part]["server"] or {}
        if stopped.get("stderr_notes", {}).get("lines"):
            notes.append("%s server stderr: %s" % (part, stopped["stderr_notes"]["first"][:3]))
        if stopped.get("exit_status"):
            notes.append("%s server exited %s" % (part, stopped["exit_status"]))
    return notes


# -- main ----------------------------------------------------------------------------------

def parse_args(argv):
    parser = argparse.ArgumentParser(
        description="/events fan-out: watchers of one unit while meters upload durably; "
                    "memory per idle stream.")
    parser.add_argument("--watchers", type=int, default=200,
                        help="streams watching W1 in the windows with watchers "
                             "(default %(default)s)")
    parser.add_argument("--meters", type=int, default=50,
                        help="uploading meters, W1 included (default %(default)s)")
    parser.add_argument("--interval", type=float, default=0.1,
                        help="seconds between W1's uploads (default %(default)s)")
    parser.add_argument("--seconds", type=float, default=5.0,
                        help="each window's measured seconds (default %(default)s)")
    parser.add_argument("--warmup", type=float, default=1.0,
                        help="the meters' warm-up before each window (default %(default)s)")
    parser.add_argument("--rounds", type=int, default=2,
                        help="windows without, then with watchers, this many times "
                             "(default %(default)s)")
    parser.add_argument("--idle", type=int, default=1000,
                        help="idle streams whose memory is measured (default %(default)s)")
    parser.add_argument("--json", default=os.path.join(BENCH, "results", "fanout.json"),
                        help="where to write the results (default %(default)s)")
    parser.add_argument("--profile", metavar="DIR",
                        help="run texmate_ds under cProfile and write DIR/fanout.prof and "
                             "DIR/idle.prof (its figures then include the profiler's overhead)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the work folder (databases, server logs) and print it")
    args = parser.parse_args(argv)
    if not 1 <= args.watchers <= 10000 or not 1 <= args.idle <= 10000:
        parser.error("--watchers, --idle: 1 to 10000")
    if not 2 <= args.meters <= 1000:
        parser.error("--meters: 2 to 1000 (W1 and at least one other)")
    if not 0.001 <= args.interval <= 60:
        parser.error("--interval: 0.001 to 60")
    if not 0 < args.seconds <= 600 or not 0 <= args.warmup <= 60:
        parser.error("--seconds: above 0 and at most 600; --warmup: 0 to 60")
    if not 1 <= args.rounds <= 20:
        parser.error("--rounds: 1 to 20")
    return args


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.profile:
        harness.PROFILE_DIR = os.path.abspath(args.profile)
        os.makedirs(harness.PROFILE_DIR, exist_ok=True)
    signal.signal(signal.SIGTERM, harness._interrupt)
    env = harness.checked_environment()
    # A descriptor per stream (and W1's): raised where the soft limit is lower.
    env["open_files_soft_limit"] = raise_open_files(max(args.watchers, args.idle) + 256)
    work = tempfile.mkdtemp(prefix="txm-fanout-bench-")
    doc = {"watchers": args.watchers, "meters": args.meters, "interval_s": args.interval,
           "seconds": args.seconds, "warmup": args.warmup, "rounds": args.rounds,
           "environment": env, "profiled": bool(args.profile)}
    failure = None
    try:
        doc["fanout"] = fanout(args, work)
        print("%-28s" % ("%s idle streams" % format(args.idle, ",")), end="", flush=True)
        doc["idle"] = idle_streams(args, work)
        print(" %s bytes per stream" % format(doc["idle"].get("bytes_per_stream", 0), ","))
    except harness.HarnessError as exc:
        failure = str(exc)
    except Exception:
        failure = traceback.format_exc()
    finally:
        if args.keep:
            print("work folder kept: %s" % work)
        else:
            shutil.rmtree(work, ignore_errors=True)
    doc["failure"] = failure
    if failure is None:
        doc["table"] = [dict(zip(("metric", "no_watchers", "watchers", "ratio", "target",
                                  "met"), row)) for row in summary(doc)]
        print()
        print(table(doc))
        doc["notes"] = notes_for(doc)
        if doc["notes"]:
            print("\nnotes:\n  " + "\n  ".join(doc["notes"]))
        print("\n%d meters: %d closed-loop, W1 every %g s; means over %d round(s) of %g s each "
              "way; targets are reported, not asserted%s" % (
                  args.meters, args.meters - 1, args.interval, args.rounds, args.seconds,
                  " (profiled)" if args.profile else ""))
    else:
        print("\nHARNESS FAILURE:\n%s" % failure)
    harness.write_json(args.json, doc)
    print("results: %s" % args.json)
    return 1 if failure else 0


if __name__ == "__main__":
    sys.exit(main())
