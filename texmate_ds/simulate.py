"""Many simulated meters, for trials and load: ``texmate_ds simulate``.

Design:

- One process, one ``selectors`` loop, one non-blocking socket per
  simulated meter, so a thousand meters cost a thousand sockets, not a
  thousand threads.
- Each meter behaves like a real one: it sends its next request at its
  schedule (every ``--interval`` seconds, first sends staggered evenly over
  the first interval) and only once its previous answer has arrived.  A
  meter whose answer comes late sends as soon as it arrives and skips the
  slots it missed, so an overloaded server shows up as a lower achieved
  rate and longer answer times, not as a burst of catch-up requests.
- The pieces are separate so a benchmark harness can reuse them:
  ``Meter`` and ``Reader`` decide what a device sends (sans-IO), ``Stats``
  and ``percentile`` hold and reduce the measurements, ``Simulation`` owns
  the sockets and the schedule.  Answers are cut out of the stream by the
  client's ``ResponseSplitter``, requests built by its ``*_request``
  functions.
- ``--alarm-every N`` makes each uploading meter's every Nth request an
  alarm (``al``) instead of an upload: level 1, its time and a count as
  data (``<TS;simulated alarm K>``), answered OK counted apart
  (``alarms_ok``), so samples stored still equal samples answered OK.
- Downloading meters (``--download``) read the newest sample of an
  uploading unit as that unit itself (same code and key), so they need no
  read permission set up by an administrator.  They start one interval
  after the uploaders, once there is something to read.
- The answer time of a request runs from its first byte sent to the end of
  its answer; connecting is not included (with ``--open-no`` every request
  connects first).
"""

from __future__ import annotations

import argparse
import collections
import datetime
import errno
import heapq
import json
import math
import random
import selectors
import socket
import sys
import time

from texmate_ds.client import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    RECV_SIZE,
    ResponseSplitter,
    al_request,
    answer_code,
    dl_request,
    format_ts,
    up_line,
)
from texmate_ds.loop import raise_open_files

GRACE_SECONDS = 5.0         # how long outstanding answers are awaited after --duration
REPORT_EVERY = 5.0          # seconds between progress lines on stderr
PROBE_TIMEOUT = 5.0
ONE_MICROSECOND = datetime.timedelta(microseconds=1)


class Meter:
    """An uploading meter: a smooth wave plus noise per field, seeded by
    its code, with timestamps strictly increasing from one sample to the
    next (the server would answer 406 to a repeated one)."""

    def __init__(self, code: str, key: str, fields: int, samples_per_request: int = 1,
                 interval: float = 1.0, alarm_every: int = 0):
        self.code = code
        self.key = key
        self.samples_per_request = samples_per_request
        self.alarm_every = alarm_every
        self.requests = 0
        self.alarms = 0
        # What the request built last carries: samples, or an alarm.
        self.last_samples = 0
        self.last_was_alarm = False
        self._spacing = datetime.timedelta(seconds=interval / samples_per_request)
        self._rng = random.Random(code)
        self._waves = [self._new_wave() for _ in range(fields)]
        self._last = None

    def next_request(self) -> str:
        self.requests += 1
        now = datetime.datetime.now()
        self.last_was_alarm = bool(self.alarm_every) and self.requests % self.alarm_every == 0
        if self.last_was_alarm:
            self.alarms += 1
            self.last_samples = 0
            return al_request(self.code, self.key, 1,
                              "%s;simulated alarm %d" % (format_ts(now), self.alarms))
        self.last_samples = self.samples_per_request
        return up_line(self.code, self.key, self.next_samples(now))

    def next_samples(self, now: datetime.datetime) -> list[str]:
        """The samples of one upload: the latest ends at ``now``, the others
        are spread over the interval before it, as a logging meter would."""
        count = self.samples_per_request
        samples = []
        for age in range(count - 1, -1, -1):
            ts = now - self._spacing * age
            if self._last is not None and ts <= self._last:
                ts = self._last + ONE_MICROSECOND
            self._last = ts
            samples.append(self._sample(ts))
        return samples

    def _sample(self, ts: datetime.datetime) -> str:
        t = ts.timestamp()
        values = ["%.3f" % self._value(wave, t) for wave in self._waves]
        return ";".join([format_ts(ts)] + values)

    def _new_wave(self) -> tuple:
        rng = self._rng
        amplitude = rng.uniform(1.0, 50.0)
        return (rng.uniform(-50.0, 150.0), amplitude,
                rng.uniform(60.0, 900.0), rng.uniform(0.0, 2 * math.pi))

    def _value(self, wave: tuple, t: float) -> float:
        base, amplitude, period, phase = wave
        smooth = base + amplitude * math.sin(2 * math.pi * t / period + phase)
        return smooth + self._rng.gauss(0.0, amplitude * 0.03)


class Reader:
    """A downloading meter: ``dl last`` of one unit, as that unit."""

    samples_per_request = 0

    def __init__(self, code: str, key: str):
        self.code = code
        self.key = key

    def next_request(self) -> str:
        return dl_request(self.code, self.key, "last")


def percentile(sorted_values: list[float], fraction: float) -> float | None:
    """Nearest-rank percentile (``fraction`` 0.5 = median) of sorted values;
    None when there are none."""
    if not sorted_values:
        return None
    rank = math.ceil(fraction * len(sorted_values))
    return sorted_values[max(rank, 1) - 1]


class Stats:
    """What happened to the requests of a run."""

    def __init__(self):
        self.connections = 0
        self.connection_failures = 0   # connects refused and exchanges cut short
        self.sent = 0
        self.ok = 0
        self.errors = collections.Counter()   # error code -> answers
        self.samples_ok = 0
        self.alarms_ok = 0
        self.answer_times = []   # seconds, one per answer, in arrival order

    @property
    def answered(self) -> int:
        return len(self.answer_times)

    def record(self, answer: str, seconds: float, samples: int, alarm: bool = False):
        self.answer_times.append(seconds)
        code = answer_code(answer)
        if code == "OK":
            self.ok += 1
            self.samples_ok += samples
            self.alarms_ok += alarm
        else:
            self.errors[code] += 1


class _Link:
    """One simulated device's connection and where its exchange stands."""

    def __init__(self, index: int, device, due: float):
        self.index = index        # its place in Simulation._links, for the heap
        self.device = device
        self.due = due
        self.sock = None
        self.splitter = None
        self.events = 0           # what the selector watches; 0: not registered
        self.connecting = False
        self.busy = False         # between its due time and its answer
        self.request = b""
        self.out = b""            # what is left to send of the request
        self.sent_at = None       # when the request's first byte went out


class Simulation:
    """Runs devices against one server address until the duration is over."""

    def __init__(self, family: int, address: tuple, devices: list, interval: float,
                 duration: float, open_no: bool = False,
                 start_delays: list[float] | None = None):
        """``start_delays`` (seconds, one per device) defaults to spreading
        the devices evenly over the first interval."""
        self.family = family
        self.address = address
        self.interval = interval
        self.duration = duration
        self.open_no = open_no
        self.stats = Stats()
        self.elapsed = 0.0
        delays = start_delays or [interval * n / len(devices) for n in range(len(devices))]
        self._links = [_Link(n, device, delay)
                       for n, (device, delay) in enumerate(zip(devices, delays))]
        self._selector = selectors.DefaultSelector()
        self._due = []           # heap of (due, index) of idle links
        self._outstanding = 0    # busy links
        self._mark = (0.0, 0, 0)  # time, answers, samples at the last progress line

    def run(self) -> Stats:
        start = time.monotonic()
        stop_at = start + self.duration
        for link in self._links:
            link.due += start
            heapq.heappush(self._due, (link.due, link.index))
        self._mark = (start, 0, 0)
        try:
            self._loop(start, stop_at)
        except KeyboardInterrupt:
            pass    # a person stopped the run early: report what happened so far
        finally:
            self.elapsed = time.monotonic() - start
            for link in self._links:
                self._close(link)
            self._selector.close()
        return self.stats

    def unanswered(self) -> int:
        return sum(1 for link in self._links if link.sent_at is not None)

    def figures(self) -> dict:
        """What the run measured; rates are over the time it really took."""
        stats = self.stats
        elapsed = self.elapsed or 1e-9
        times = sorted(stats.answer_times)
        return {
            "elapsed_s": round(elapsed, 3),
            "connections": stats.connections,
            "requests_sent": stats.sent,
            "answered": stats.answered,
            "ok": stats.ok,
            "errors": dict(sorted(stats.errors.items())),
            "connection_failures": stats.connection_failures,
            "unanswered": self.unanswered(),
            "samples_ok": stats.samples_ok,
            "alarms_ok": stats.alarms_ok,
            "samples_per_s": round(stats.samples_ok / elapsed, 1),
            "requests_per_s": round(stats.answered / elapsed, 1),
            "median_ms": _ms(percentile(times, 0.5)),
            "p99_ms": _ms(percentile(times, 0.99)),
        }

    def _loop(self, start: float, stop_at: float):
        give_up_at = stop_at + GRACE_SECONDS
        next_report = start + REPORT_EVERY
        while True:
            now = time.monotonic()
            if now >= give_up_at or (now >= stop_at and not self._outstanding):
                return
            if now >= next_report:
                self._report_progress(now, start)
                next_report += REPORT_EVERY
            self._start_due(now, stop_at)
            deadline = min(next_report, stop_at if now < stop_at else give_up_at)
            if self._due and self._due[0][0] < deadline:
                deadline = self._due[0][0]
            for key, mask in self._selector.select(max(deadline - now, 0.0)):
                self._on_event(key.data, mask)

    def _start_due(self, now: float, stop_at: float):
        while self._due and self._due[0][0] <= now:
            _, index = heapq.heappop(self._due)
            if now < stop_at:
                self._begin(self._links[index])

    def _begin(self, link: _Link):
        link.busy = True
        self._outstanding += 1
        link.request = link.device.next_request().encode("ascii") + b"\r"
        if link.sock is None:
            self._connect(link)
        else:
            self._send(link)

    def _connect(self, link: _Link):
        try:
            link.sock = socket.socket(self.family, socket.SOCK_STREAM)
            link.sock.setblocking(False)
            err = link.sock.connect_ex(self.address)
        except OSError as exc:
            err = exc.errno
        if err not in (0, errno.EINPROGRESS, errno.EWOULDBLOCK):
            self._fail(link)
            return
        link.splitter = ResponseSplitter()
        link.connecting = True
        self._watch(link)

    def _on_event(self, link: _Link, mask: int):
        if link.connecting:
            self._on_connected(link)
            return
        if mask & selectors.EVENT_READ:
            self._on_readable(link)
        if link.sock is not None and link.out and mask & selectors.EVENT_WRITE:
            self._flush(link)

    def _on_connected(self, link: _Link):
        link.connecting = False
        if link.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
            self._fail(link)
            return
        self.stats.connections += 1
        self._send(link)

    def _send(self, link: _Link):
        link.out = link.request
        link.sent_at = time.monotonic()
        self.stats.sent += 1
        self._flush(link)

    def _flush(self, link: _Link):
        try:
            sent = link.sock.send(link.out)
        except BlockingIOError:
            sent = 0
        except OSError:
            self._fail(link)
            return
        link.out = link.out[sent:]
        self._watch(link)

    def _on_readable(self, link: _Link):
        try:
            data = link.sock.recv(RECV_SIZE)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            # An idle connection the server closed (SOCKET_OPEN: no) is no
            # failure: the next request simply connects again.
            if link.busy:
                self._fail(link)
            else:
                self._close(link)
            return
        for answer in link.splitter.feed(data):
            if link.sent_at is not None:
                self._on_answer(link, answer)

    def _on_answer(self, link: _Link, answer: str):
        now = time.monotonic()
        # A device may tell what its last request carried (a Meter with
        # --alarm-every does); one that does not always sends the same.
        device = link.device
        self.stats.record(answer, now - link.sent_at,
                          getattr(device, "last_samples", device.samples_per_request),
                          getattr(device, "last_was_alarm", False))
        link.sent_at = None
        if self.open_no:
            self._close(link)
        self._finish(link, now)

    def _fail(self, link: _Link):
        self.stats.connection_failures += 1
        link.sent_at = None
        self._close(link)
        self._finish(link, time.monotonic())

    def _finish(self, link: _Link, now: float):
        """End the exchange and schedule the next one."""
        link.busy = False
        self._outstanding -= 1
        link.due = max(link.due + self.interval, now)
        heapq.heappush(self._due, (link.due, link.index))

    def _watch(self, link: _Link):
        if link.connecting:
            events = selectors.EVENT_WRITE
        else:
            events = selectors.EVENT_READ | (selectors.EVENT_WRITE if link.out else 0)
        if not link.events:
            self._selector.register(link.sock, events, link)
        elif events != link.events:
            self._selector.modify(link.sock, events, link)
        link.events = events

    def _close(self, link: _Link):
        if link.sock is None:
            return
        if link.events:
            self._selector.unregister(link.sock)
        link.sock.close()
        link.sock = None
        link.events = 0
        link.connecting = False
        link.out = b""

    def _report_progress(self, now: float, start: float):
        """One line on stderr: totals so far, rates and times of the last window."""
        stats = self.stats
        since, answered, samples = self._mark
        window = now - since
        recent = sorted(stats.answer_times[answered:])
        print("%6.1fs  sent %d  OK %d  errors %s  failures %d  |  %.1f samples/s  "
              "%.1f requests/s  median %s  p99 %s"
              % (now - start, stats.sent, stats.ok, _format_errors(stats.errors),
                 stats.connection_failures, (stats.samples_ok - samples) / window,
                 (stats.answered - answered) / window,
                 _format_ms(_ms(percentile(recent, 0.5))),
                 _format_ms(_ms(percentile(recent, 0.99)))),
              file=sys.stderr)
        self._mark = (now, stats.answered, stats.samples_ok)


def format_figures(fig: dict) -> str:
    alarms = (["alarms raised and answered OK: %d" % fig["alarms_ok"]]
              if fig.get("alarm_every") else [])
    return "\n".join([
        "meters: %d uploading, %d downloading" % (fig["meters"], fig["downloading_meters"]),
        "requests sent: %d, answered OK: %d" % (fig["requests_sent"], fig["ok"]),
        "errors: %s" % _format_errors(fig["errors"]),
        "connection failures: %d, unanswered at the end: %d"
        % (fig["connection_failures"], fig["unanswered"]),
    ] + alarms + [
        "achieved: %.1f samples/s, %.1f requests/s over %.1f s"
        % (fig["samples_per_s"], fig["requests_per_s"], fig["elapsed_s"]),
        "answer time: median %s, p99 %s"
        % (_format_ms(fig["median_ms"]), _format_ms(fig["p99_ms"])),
    ])


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


def _format_ms(ms: float | None) -> str:
    return "-" if ms is None else "%.2f ms" % ms


def _format_errors(errors: dict) -> str:
    return " ".join("%s:%d" % item for item in sorted(errors.items())) or "none"


# -- the command line ------------------------------------------------------

def main(argv: list[str]) -> int:
    """``texmate_ds simulate ...``: 0 if every request was answered OK, 1 if
    any answer was an error or any exchange failed, 2 if the server could
    not be reached at all."""
    args = _parser().parse_args(argv)
    codes = ["%s%d" % (args.prefix, n) for n in range(1, args.meters + 1)]
    if args.create:
        from texmate_ds import config, store  # as ensure_units: --create only
        try:
            ensure_units(args.create, codes, args.key, args.fields)
        except (config.ConfigError, store.StoreError) as exc:
            print("texmate_ds simulate: --create %s: %s" % (args.create, exc), file=sys.stderr)
            return 2
    try:
        family, address = _probe(args.host, args.port)
    except OSError as exc:
        print("texmate_ds simulate: %s:%d: %s" % (args.host, args.port, exc.strerror or exc),
              file=sys.stderr)
        return 2
    devices = ([Meter(code, args.key, args.fields, args.samples, args.interval, args.alarm_every)
                for code in codes]
               + [Reader(codes[n % len(codes)], args.key) for n in range(args.download)])
    raise_open_files(len(devices) + 64)
    simulation = Simulation(family, address, devices, args.interval, args.duration,
                            args.open_no, _start_delays(len(codes), args.download, args.interval))
    simulation.run()
    result = dict(meters=len(codes), downloading_meters=args.download,
                  interval_s=args.interval, duration_s=args.duration, fields=args.fields,
                  samples_per_request=args.samples, alarm_every=args.alarm_every,
                  open_no=args.open_no,
                  **simulation.figures())
    print(format_figures(result))
    if args.json:
        with open(args.json, "w") as out:
            json.dump(result, out, indent=2)
            out.write("\n")
    failed = result["errors"] or result["connection_failures"] or result["unanswered"]
    return 1 if failed else 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="texmate_ds simulate",
        description="Run many simulated meters against a texmate_ds server and "
                    "report throughput and answer times.")
    parser.add_argument("--host", default=DEFAULT_HOST, help="server address (default %(default)s)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT,
                        help="TTP port (default %(default)s)")
    parser.add_argument("--meters", type=_positive_int, default=10,
                        help="uploading meters (default %(default)s)")
    parser.add_argument("--interval", type=_positive_float, default=1.0,
                        help="seconds between requests of one meter (default %(default)s)")
    parser.add_argument("--duration", type=_positive_float, default=10.0,
                        help="seconds to run (default %(default)s)")
    parser.add_argument("--fields", type=_positive_int, default=4,
                        help="values per sample (default %(default)s)")
    parser.add_argument("--prefix", default="SIM", help="units are PREFIX1..PREFIXN "
                        "(default %(default)s)")
    parser.add_argument("--key", default="simkey", help="the units' key (default %(default)s)")
    parser.add_argument("--samples", type=_positive_int, default=1,
                        help="samples per upload (default %(default)s)")
    parser.add_argument("--download", type=_count, default=0, metavar="N",
                        help="extra meters doing 'dl last' of the uploading units "
                             "(default %(default)s)")
    parser.add_argument("--alarm-every", type=_count, default=0, metavar="N",
                        help="each uploading meter raises an alarm instead of uploading "
                             "every Nth request (default 0: never)")
    parser.add_argument("--open-no", action="store_true",
                        help="open a new connection for every request")
    parser.add_argument("--create", metavar="CONFIG",
                        help="first create the missing units in the database of this txm.conf")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    return parser


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("%s is not 1 or more" % text)
    return value


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("%s is negative" % text)
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not 0 < value < math.inf:
        raise argparse.ArgumentTypeError("%s is not a number above 0" % text)
    return value


def _start_delays(meters: int, readers: int, interval: float) -> list[float]:
    """Uploaders spread over the first interval, readers over the second."""
    return ([interval * n / meters for n in range(meters)]
            + [interval * (1 + n / readers) for n in range(readers)])


def _probe(host: str, port: int) -> tuple:
    """Resolve the server address and check that it accepts connections, so
    a wrong host or port fails at once instead of after the whole run."""
    family, _, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.settimeout(PROBE_TIMEOUT)
        probe.connect(address)
    return family, address


def ensure_units(config_path: str, codes: list[str], key: str, fields: int):
    """Create the units of ``codes`` missing from the local database named
    by ``config_path``, with ``fields`` fields and ``key``.  Units that
    exist are left as they are."""
    # Imported here: only --create needs the storage layer; a simulator
    # aimed at a remote server does not.
    from texmate_ds import config, store
    settings = config.load(cli_path=config_path)
    st = store.Database(store.address(settings))
    try:
        st.migrate()
        for code in codes:
            if st.units.get(code) is None:
                st.units.add(code, key, fields=fields, name=code)
        st.commit()
    finally:
        st.close()
