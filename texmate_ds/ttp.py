"""TTP, the Tiger Transfer Protocol (docs/protocol.md).

Two layers, the first usable without the second:

1. Sans-IO parsing. `LineParser` turns received bytes into request lines
   (h11 style: ``feed(data)``, then ``next_event()`` until it returns None);
   it never touches a socket and caps a line at ``MAX_REQUEST_BYTES``.
   `parse_request`, `parse_samples`, `parse_alarm` and the formatters are
   pure functions (timestamps are times.py's). A malformed request raises
   `TTPError` with its answer code.
2. `TTPServer` (the ``server`` object apps receive) and `TTPChannel`, which
   reads, feeds the parser, dispatches each line to its app and queues the
   producer. Every ``<app>`` code is served by a `plugins.Extension`
   (docs/protocol.md, "Site TTP apps"), bundled ones from ``texmate_ds/apps/`` and a site's
   own from ``TTP_APPS_DIR``, found and loaded by plugins.py; a producer
   may raise `TTPError` from its constructor to answer an error. An
   upload's answer is held until the group commit when ``COMMIT_INTERVAL``
   is 1 (see ``store.groupcommit``).

`TTPServer.subscribe` is how an app reacts to what others do (a unit's
upload, an alarm): ``callback(event)`` is called on the loop for each event
of the bus (events.py) the app chose, after its commit, from a bounded
queue emptied every loop turn (`AppSubscription`; docs/protocol.md,
"Reacting to other units' uploads"). An app subscribes from the
``start(server)`` its Extension names, which plugins.py calls once, before
the server listens.

A key is never logged; anything a meter sent is escaped before logging.

What meters got wrong reaches the log through `RefusalLog`: an answer
402, 403, 405 or 501 (wrong key, disabled unit, unknown unit, unknown app)
is logged once per unit and code at once, then counted, a line per unit
and code each minute, in bounded memory however many unit codes are sent.
"""

import collections
import logging
import math
import re
import socket
import time
import traceback

from texmate_ds import events, loop, models, times
from texmate_ds.loop import Answer, Counter  # noqa: F401  (apps use ttp.Answer)

log = logging.getLogger("texmate_ds.ttp")

RESPONSES = {
    200: "OK", 201: "Created", 202: "Accepted", 203: "Partial information",
    204: "No response", 301: "Moved", 302: "Found", 303: "Method",
    304: "Not modified",
    400: "Bad request", 401: "Authorization Required", 402: "Unauthorized",
    403: "Forbidden", 404: "Data not found", 405: "Unit not found",
    406: "Duplicate sample", 500: "Internal error", 501: "Not implemented",
    502: "Service temporarily overloaded", 503: "Gateway timeout",
}
ERROR_MESSAGE = "%(code)d %(message)s\r"
# Kernel send buffer of a meter connection, bytes (Linux doubles it).
SEND_BUFFER = 128 * 1024


class TTPError(Exception):
    """A request that must be answered with error `code`."""

    def __init__(self, code):
        super().__init__(code)
        self.code = code


def error_text(code):
    return ERROR_MESSAGE % {"code": code, "message": RESPONSES[code]}


# -- 1. sans-IO ---------------------------------------------------------------

TOO_LONG = object()


class LineParser:
    """Splits received bytes into request lines.

    Requests end with ``\\r``; a bare ``\\n`` also ends one, and the ``\\n``
    of ``\\r\\n`` then ends an empty request, which is skipped: so CR, LF and
    CRLF all work however the bytes are split. A line longer than
    `max_bytes` yields `TOO_LONG` (the caller answers 400 and closes).
    """

    def __init__(self, max_bytes):
        self.max_bytes = max_bytes
        self._buf = bytearray()
        self._pos = 0
        # Where the search for a terminator resumes: a line dribbled a byte
        # at a time is scanned once, not once per byte.
        self._scanned = 0

    def feed(self, data):
        self._buf += data

    def next_event(self):
        """The next complete line (bytes, without terminator), `TOO_LONG`,
        or None when more data is needed."""
        buf = self._buf
        while True:
            pos = start = self._pos
            if self._scanned > pos:
                start = self._scanned
            end = buf.find(b"\r", start)
            lf = buf.find(b"\n", start, end if end >= 0 else len(buf))
            if lf >= 0:
                end = lf
            if end < 0:
                if len(buf) - pos > self.max_bytes:
                    return TOO_LONG
                if pos:
                    del buf[:pos]
                    self._pos = 0
                self._scanned = len(buf)
                return None
            line = bytes(buf[self._pos:end])
            self._pos = end + 1
            if len(line) > self.max_bytes:
                return TOO_LONG
            if line:
                return line

    def pending(self):
        """Bytes received but not yet returned as a line."""
        return len(self._buf) - self._pos


_UNIT_CODE = re.compile(r"[A-Za-z0-9]{1,32}\Z")
_PRINTABLE = re.compile(rb"[\x20-\x7e]*\Z")


class Request(str):
    """The request line as a str (what apps receive), with its parts:
    `app`, `unit`, `argument` (may be empty) and `key`."""


def parse_request(line):
    """Parse one request line (bytes, no terminator) into a `Request`."""
    if not _PRINTABLE.match(line):
        raise TTPError(400)
    text = line.decode("ascii")
    head, sep, rest = text.partition(" ")
    if head != "TTP" or not sep:
        raise TTPError(400)
    path, sep, key = rest.rpartition(" ")
    if not sep or not key or len(key) > 64 or not path.startswith("/"):
        raise TTPError(400)
    parts = path[1:].split("/", 2)
    if len(parts) < 2 or not _UNIT_CODE.match(parts[1]):
        raise TTPError(400)
    request = Request(text)
    request.app = parts[0]
    request.unit = parts[1]
    request.argument = parts[2] if len(parts) == 3 else ""
    request.key = key
    return request


def check_unit_code(code):
    if not _UNIT_CODE.match(code):
        raise TTPError(400)
    return code


def redact(line):
    """A request line fit for a log: key hidden, control bytes escaped."""
    if isinstance(line, str):
        line = line.encode("latin-1", "replace")
    head, sep, _ = line.rpartition(b" ")
    if sep:
        line = head + b" ***"
    return line.decode("latin-1").encode("unicode_escape").decode("ascii")


# The grammar of docs/protocol.md, "Timestamps" and "Numbers": a whole sample, one regex per
# sample on the upload path (the timestamp's part comes from times.py).
# Linear on any input: no two repeats can share a run of characters (the
# fraction's digits only follow a '.'), so a failing match backtracks over
# each character at most once. ``\d+\.?\d*`` could split a run of n digits
# n ways, and a line of 20,000 digits then took 19 s to refuse.
_NUM = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
_SAMPLE = re.compile(r"<(%s)((?:;%s)*)>" % (times.PATTERN, _NUM), re.ASCII)
# The number grammar for other readers of samples (`importer` builds its
# row pattern from it), so a CSV cell is held to exactly what TTP accepts.
NUMBER = _NUM


def stored_values(values):
    """`values` (floats, or None for an empty value) as they are stored:
    TTPError(400), as the upload path answers it, if one is out of range
    (``1e999`` matches the grammar and reads as infinity); ``-0`` as 0,
    which SQLite makes of it anyway (a whole number is an integer there),
    so that every engine gives back what it was sent the same way."""
    if math.inf in values or -math.inf in values:
        raise TTPError(400)
    if 0.0 in values:
        return tuple(None if v is None else v + 0.0 for v in values)   # -0.0 + 0.0 is 0.0
    return values


def format_value(value):
    """Shortest text that reads back to the same float, without ``.0``."""
    text = repr(value)
    return text[:-2] if text.endswith(".0") else text


def parse_samples(argument, fields):
    """``<TS;v1;...;vN>...`` as a list of (timestamp_us, values, ts_as_sent).

    All or nothing: any malformed sample raises `TTPError(400)`."""
    try:
        return _samples(argument, fields)
    except times.BadTime:
        raise TTPError(400) from None


def _samples(argument, fields):
    samples = []
    pos, end = 0, len(argument)
    if not end:
        raise TTPError(400)
    while pos < end:
        match = _SAMPLE.match(argument, pos)
        if match is None:
            raise TTPError(400)
        groups = match.groups()
        values = groups[8][1:].split(";") if groups[8] else ()
        if len(values) != fields:
            raise TTPError(400)
        values = stored_values(tuple(map(float, values)))
        samples.append((times.from_parts(*groups[1:8]), values, groups[0]))
        pos = match.end()
    return samples


# An alarm's argument (docs/protocol.md, "al: raise an alarm"): a level of
# one or two digits, then its data items in one pair of angle brackets.
_ALARM = re.compile(r"([0-9]{1,2})/<([^<>]*)>\Z", re.ASCII)


def parse_alarm(argument):
    """``<level>/<d0;d1;...>`` as (level, [item, ...]): ``<>`` is no item,
    an item is any text without ``;``, ``<``, ``>`` (empty too). Anything
    else raises `TTPError(400)`."""
    match = _ALARM.match(argument)
    if match is None:
        raise TTPError(400)
    level, items = match.groups()
    return int(level), items.split(";") if items else []


def format_sample(row):
    """A stored row (id, ts, v1, ...) in dl form: ``<ID TS L1=v1 ...>``; an
    empty value (one imported from an empty CSV cell) is ``L2=``."""
    return "<%d %s %s>" % (row[0], times.text(row[1]), " ".join(
        "L%d=%s" % (i, "" if v is None else format_value(v)) for i, v in enumerate(row[2:], 1)))


# -- 2. server and channel ----------------------------------------------------

# Answers that mean a meter is misconfigured (wrong key, disabled, unknown
# unit, unknown app), as _count sees their first three characters.
REFUSALS = frozenset(("402", "403", "405", "501"))
# Seconds between the refusal counts in the log (`RefusalLog.flush`).
REFUSAL_LOG_SECONDS = 60
# Characters of a request line shown with its first refusal (key hidden).
_SHOWN = 120


class RefusalLog:
    """Tells the log which meters are being refused, without drowning it.

    The first refusal of a unit with a code is logged at once (INFO, with
    the peer and the request, key hidden); the rest are counted and told at
    `flush` (every REFUSAL_LOG_SECONDS, and at stop) in one line per unit
    and code: ``unit A1: 402 Unauthorized x57 in the last 60 s``. A unit
    refused with the same code in the period before is counted only, so a
    misconfigured meter makes one line a minute; quiet for a period, it is
    told at once again. Unit codes are the sender's to choose (405): at
    most MAX_KEYS (unit, code) pairs are tracked a period, and refusals
    beyond them make one line, ``N more refusals for other units``."""

    MAX_KEYS = 1000

    def __init__(self, clock=time.monotonic):
        self.clock = clock
        self._since = clock()
        self._counts = {}  # (unit, code) -> refusals this period
        self._told = set()  # keys logged at once this period
        self._before = frozenset()  # keys refused in the period before
        self._others = 0  # refusals of keys beyond MAX_KEYS

    def note(self, unit, code, peer, line):
        key = (unit, code)
        count = self._counts.get(key)
        if count is not None:
            self._counts[key] = count + 1
            return
        if len(self._counts) >= self.MAX_KEYS:
            self._others += 1
            return
        self._counts[key] = 1
        if key not in self._before:
            self._told.add(key)
            log.info("unit %s: %s %s from %s for '%s'; more are counted each minute",
                     unit, code, RESPONSES[int(code)], peer, redact(line)[:_SHOWN])

    def flush(self):
        """Log the counts of the period now ending and start the next."""
        seconds = round(self.clock() - self._since)
        for (unit, code), count in sorted(self._counts.items()):
            if count > 1 or (unit, code) not in self._told:
                log.info("unit %s: %s %s x%d in the last %d s",
                         unit, code, RESPONSES[int(code)], count, seconds)
        if self._others:
            log.info("%d more refusals for other units in the last %d s", self._others, seconds)
        self._before = frozenset(self._counts)
        self._counts = {}
        self._told = set()
        self._others = 0
        self._since = self.clock()


class AppServer:
    """What TTP apps see as ``server`` (docs/apps.md, "The server
    object"), and nothing more: the TTP server's workings (its channels,
    counters, the group commit, the loop) stay behind it, so an app cannot
    come to depend on them.

    * ``responses`` ({code: text}) and ``ERROR_MESSAGE``
      (``"%(code)d %(message)s\\r"``): the answer texts, as the vendor's
      apps use them;
    * ``bytes_out``: the counter vendor apps add what they send to;
    * ``models``: `texmate_ds.models` (Unit, Sample, Alarm, User);
    * ``settings``: the server's `config.Settings`, read-only;
    * ``store``: the repositories, for an app that writes (in the shared
      transaction, committed by the group commit);
    * ``events``: the event bus, and `subscribe` (`TTPServer.subscribe`)
      to react to others' samples and alarms after their commit;
    * ``after_commit(fn)``: ``fn(committed)`` once the open transaction
      ends;
    * ``log``: the apps' logger (``texmate_ds.apps``);
    * ``call_later(seconds, fn)``: ``fn()`` on the loop then (a Timer
      with ``cancel()``); one that raises is logged and changes nothing
      else;
    * ``authenticate(code, key)``: the unit, or TTPError 405, 402, 403.

    Its attributes are the server's own objects and bound methods, so an
    app's call costs what a call on the server would."""

    __slots__ = ("responses", "ERROR_MESSAGE", "bytes_out", "models", "settings", "store",
                 "events", "subscribe", "after_commit", "log", "call_later", "authenticate")

    def __init__(self, core):
        self.responses = RESPONSES
        self.ERROR_MESSAGE = ERROR_MESSAGE
        self.bytes_out = core.bytes_out
        self.models = models
        self.settings = core.settings
        self.store = core.store
        self.events = core.events
        self.subscribe = core.subscribe
        self.after_commit = core.after_commit
        self.log = logging.getLogger("texmate_ds.apps")
        self.call_later = core.loop.call_later
        self.authenticate = core.authenticate


class TTPServer:
    """The TTP server: the meters' channels, their counters (``bytes_out``,
    which vendor apps add to; ``bytes_sent`` and ``bytes_received``,
    counted at the socket), and what apps are given, `app_server`."""

    responses = RESPONSES
    ERROR_MESSAGE = ERROR_MESSAGE

    def __init__(self, settings, store, commits, events, extensions, loop_):
        self.settings = settings
        self.store = store
        self.commits = commits
        self.events = events
        self.extensions = extensions
        self.loop = loop_
        self.bytes_out = Counter()
        self.bytes_sent = Counter()
        self.bytes_received = Counter()
        self.requests = Counter()
        # Answers by (app code, answer code): "OK" or the three digits.
        self.answers = collections.Counter()
        self.refusals = RefusalLog()
        self.since_sweep = 0
        self.app_server = AppServer(self)

    def after_commit(self, fn):
        """``fn(committed)`` once the open transaction ends (the group commit)."""
        self.commits.after_commit(fn)

    def authenticate(self, code, key):
        """The enabled unit `code` whose key is `key`, else TTPError 405,
        402 or 403 (docs/protocol.md, "Authentication")."""
        unit = self.store.units.get(code)
        if unit is None:
            raise TTPError(405)
        if not unit.check_key(key):
            raise TTPError(402)
        if not unit.enabled:
            raise TTPError(403)
        return unit

    def accept(self, loop_, sock, addr):
        """Listener factory: one TTPChannel per meter connection."""
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # A fixed send buffer instead of the kernel's autotuning (megabytes
        # on a fast link): a meter that stops reading stops taking answers
        # soon, and the server stops producing them for it.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
        return TTPChannel(self, loop_, sock, addr)

    def sweep(self):
        """Close dead channels; the channels call it every
        MAINTENANCE_INTERVAL requests, a timer when the server is idle."""
        self.since_sweep = 0
        self.loop.sweep(self.settings.CHANNEL_TIMEOUT)

    def subscribe(self, topics, callback, units=None):
        """Call ``callback(event)`` on the loop for each event of `topics`
        (names in events.TOPICS: ``"sample"``, ``"alarm"``) of the unit
        codes in `units` (None: every unit), once it is committed; returns
        the `AppSubscription`, whose ``close()`` stops it. An app calls it
        from its Extension's ``start(server)``. Guarantees: `AppSubscription`."""
        return AppSubscription(self, topics, callback, units)


# Events an app's subscription holds at most. Its queue is emptied at the
# end of every loop turn, so it holds what one turn committed for it at
# most: it fills only in a burst, thousands of meters' uploads in one group
# commit, or uploads of thousands of samples each. An event is a small dict
# (a few hundred bytes): a full queue is a few megabytes, one per app.
SUBSCRIPTION_QUEUE = 10000
# Seconds between two log lines of one subscription's failing callback, and
# between two of its overflows: those in between are counted, the count
# told with the next line, so a callback that fails on every event of a
# busy site writes a line a minute, not one an event.
SUBSCRIPTION_LOG_SECONDS = 60


def _name(fn):
    """A callback as the log names it: ``module.qualified_name``."""
    return "%s.%s" % (getattr(fn, "__module__", "?"), getattr(fn, "__qualname__", repr(fn)))


class _Throttle:
    """A log line every `seconds` at most: `due()` is None while this one
    must be held back (it is counted), else how many were held back since
    the last line."""

    def __init__(self, seconds, clock):
        self.seconds = seconds
        self.clock = clock
        self._next = -math.inf  # the first line is due at once
        self._held = 0

    def due(self):
        now = self.clock()
        if now < self._next:
            self._held += 1
            return None
        held, self._held = self._held, 0
        self._next = now + self.seconds
        return held


class AppSubscription:
    """An app's subscription to the event bus (`TTPServer.subscribe`).

    * ``callback(event)`` gets each `events.Event` (``event.topic``,
      ``event.data``: the payload of events.TOPICS, shared with other
      subscribers, so read, never changed) on the loop thread, in the
      order published, after its transaction committed: the bus publishes
      only then. Never inside the publisher: the bus queues the event and
      wakes this, and the queue is emptied at the end of the loop turn
      (`loop.Loop.call_soon`), so an upload's answer never waits for an app
      and an app's writes never run inside someone else's commit.
    * Each call runs in a savepoint of the store's shared transaction
      (``store.atomic``): what the callback wrote is committed by the next
      group commit, or undone if it raised.
    * A callback that raises is logged with its traceback (escaped) and the
      subscription goes on: one bad event never unsubscribes an app, nor
      stops another subscriber. One failure is logged each
      `SUBSCRIPTION_LOG_SECONDS`; those in between are counted.
    * Bounded: `SUBSCRIPTION_QUEUE` events wait at most. One turn that
      publishes more for it (see that constant) overflows it: the bus drops
      it and the rest of that turn's events are missed. The subscription
      then delivers what it holds, subscribes again at once, logs a warning
      (throttled as failures are) and calls ``callback(events.OVERFLOWED)``
      (``event.topic == "overflowed"``): every event missed is committed by
      then, so a callback that reads the store again at that point misses
      nothing.
    * `close()` stops it: nothing is delivered after, not even what was
      queued. Events committed by the last commit of a stopping server are
      not delivered (the loop has stopped turning).
    """

    def __init__(self, server, topics, callback, units, clock=time.monotonic):
        self.server = server
        self.topics = tuple(topics)
        self.callback = callback
        self.units = None if units is None else frozenset(units)
        self.closed = False
        self._failures = _Throttle(SUBSCRIPTION_LOG_SECONDS, clock)
        self._overflows = _Throttle(SUBSCRIPTION_LOG_SECONDS, clock)
        self._queue = self._subscribe()

    def _subscribe(self):
        return self.server.events.subscribe(self.topics, self.units, size=SUBSCRIPTION_QUEUE,
                                            wake=self._woken)

    def _woken(self):
        # Called by the bus while it publishes: deliver later, on the loop.
        self.server.loop.call_soon(self._deliver)

    def _deliver(self):
        for event in self._queue.take():
            if self.closed:
                return  # closed by a callback (this one's, or another's)
            if event is events.OVERFLOWED:
                self._queue = self._subscribe()  # first: nothing later is missed
                held = self._overflows.due()
                if held is not None:
                    log.warning("TTP app subscriber %s missed events: more than %d in one "
                                "loop turn (SUBSCRIPTION_QUEUE); subscribed again%s",
                                _name(self.callback), SUBSCRIPTION_QUEUE, _since(held))
            self._call(event)

    def _call(self, event):
        try:
            with self.server.store.atomic():
                self.callback(event)
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception:
            held = self._failures.due()
            if held is not None:
                log.error("TTP app subscriber %s failed on %s, its writes undone%s:\n%s",
                          _name(self.callback), loop.printable(_what(event)), _since(held),
                          loop.printable(traceback.format_exc(), lines=True).rstrip())

    def close(self):
        """Stop: no event is delivered after this (again is harmless)."""
        self.closed = True
        self._queue.close()


def _what(event):
    if event is events.OVERFLOWED:
        return "the overflowed event"
    return "the %s event %s of unit %s" % (event.topic, event.data["id"], event.data["unit"])


def _since(held):
    return "; %d more not logged since the last" % held if held else ""


class Response:
    """Wraps an app's producer for the channel: holds it until its commit,
    turns an exception before its first byte into ``500``, and runs the
    app's `after` (``run_after``, the dl cursor) once the answer is written;
    the channel dispatches nothing further until then, so a pipelined
    request sees the effects of the one before it."""

    __slots__ = ("inner", "ready", "started", "channel", "request", "unit", "app", "after",
                 "flushed", "text")

    def __init__(self, inner, channel, request, unit, app, after):
        self.inner = inner
        self.ready = True
        self.started = False
        self.channel = channel
        self.request = request
        self.unit = unit
        self.app = app
        self.after = after
        self.flushed = None if after is None else self._flushed
        # A ready-made answer (every built-in one but dl's streams) is
        # taken as it is, sparing two calls per request.
        self.text = inner.data if type(inner).more is Answer.more else None

    def _flushed(self):
        try:
            if self.after is not None:
                self.after()
        finally:
            self.channel.resume()

    def more(self):
        text = self.text
        if text is not None:
            self.text = ""
            if text and not self.started:
                self._count(text)
            return text
        try:
            chunk = self.inner.more()
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception:
            if self.started:
                raise
            log.exception("TTP app failed answering %s", redact(self.request))
            self.after = None  # a failed answer has no effects to apply
            self.text = ""
            chunk = error_text(500)
        if chunk and not self.started:
            self._count(chunk)
        return chunk

    def _count(self, first):
        """Count the answer by app and code (for /metrics) at its first
        chunk, and tell the refusal log of a refusal."""
        self.started = True
        if isinstance(first, bytes):
            first = first[:3].decode("latin-1")
        code = "OK" if first.startswith("OK") else first[:3]
        server = self.channel.server
        server.answers[self.app, code] += 1
        if code in REFUSALS:
            server.refusals.note(self.unit, code, loop._peer(self.channel.addr), self.request)

    def hold(self, commits):
        self.ready = False
        commits.after_commit(self.release)

    def release(self, committed):
        if not committed:
            self.text = error_text(500)
            self.after = None
        self.ready = True
        self.channel.guarded(self.channel.send_now)


def _chain(first, second):
    if first is None:
        return second
    if second is None:
        return first

    def both():
        first()
        second()
    return both


class TTPChannel(loop.Channel):
    """One meter connection: feeds received bytes to its `LineParser` and
    answers each line in order, reading on only while its output has room.
    Stops taking requests after an over-long line, after each answer with
    ``SOCKET_OPEN: no``, and once the peer has closed its side and every
    complete line is answered."""

    def __init__(self, server, loop_, sock, addr):
        self.server = server
        self.parser = LineParser(server.settings.MAX_REQUEST_BYTES)
        self._accepting = True
        self._processing = False
        self._paused = False
        # An answer with effects on flush (see Response) is not written yet.
        self._awaiting = False
        super().__init__(loop_, sock, addr)

    def received(self, data):
        self.server.bytes_received.value += len(data)
        self.parser.feed(data)
        self.process()

    def eof(self):
        self.process()

    def sent(self, nbytes):
        self.server.bytes_sent.value += nbytes
        if self._paused and not self._processing and not self.output_full():
            self.process()

    def process(self):
        """Answer complete lines while output has room (backpressure)."""
        if self._processing:
            return
        self._processing = True
        parser, producers, out = self.parser, self.producers, self.out
        try:
            exhausted = False
            while self._accepting and not self._awaiting:
                if len(producers) > loop.QUEUE_CAP or len(out) >= loop.OUTPUT_CAP:
                    self._paused = True  # sent() resumes once output drains
                    break
                line = parser.next_event()
                if line is None:
                    self._paused = False
                    exhausted = True
                    break
                if line is TOO_LONG:
                    log.info("%s: request longer than MAX_REQUEST_BYTES; closing",
                             loop._peer(self.addr))
                    self._stop_with(error_text(400))
                    break
                self.dispatch(line)
                if not self.server.settings.SOCKET_OPEN:
                    self._stop_with(None)
            if self.peer_closed and self._accepting and exhausted:
                # The peer sent its last byte: anything unterminated is an
                # incomplete request, never guessed at.
                self._stop_with(error_text(400) if self.parser.pending() else None)
        finally:
            self._processing = False

    def resume(self):
        """The answer this channel was awaiting is written: go on."""
        self._awaiting = False
        self.process()

    def _stop_with(self, text):
        self._accepting = False
        if text:
            # An answer to no request (a line too long, or cut off): counted
            # for /metrics under app "none", as a malformed line is.
            self.server.answers["none", text[:3]] += 1
            self.push(Answer(text))
        self.finish()

    def _run(self, ext, request):
        """The app's answer to `request` (its run_before hook first)."""
        given = self.server.app_server
        if ext.run_before is not None:
            code = ext.run_before(given, request, request.unit, request.key)
            if isinstance(code, int) and code in RESPONSES:
                raise TTPError(code)
        return ext.producer(given, request, request.unit, request.key)

    def dispatch(self, line):
        server = self.server
        server.requests.value += 1
        server.since_sweep += 1
        if server.since_sweep >= server.settings.MAINTENANCE_INTERVAL:
            server.sweep()
        ext = None
        after = None
        unit = None  # until the line parses; nothing but a 400 comes before
        try:
            request = parse_request(line)
            unit = request.unit
            ext = server.extensions.get(request.app)
            if ext is None:
                raise TTPError(501)
            before = server.store.changes
            if ext.app.bundled:
                producer = self._run(ext, request)
            else:
                # A site app's writes are all or nothing: one that fails
                # leaves no half of them in the turn's shared transaction
                # (which PostgreSQL would abort for every meter in it).
                with server.store.atomic():
                    producer = self._run(ext, request)
            after = getattr(producer, "flushed", None)
            if ext.run_after is not None:
                after = _chain(after, lambda: ext.run_after(
                    server.app_server, request, request.unit, request.key))
            wrote = server.store.changes != before
        except TTPError as exc:
            producer = Answer(error_text(exc.code))
            wrote = False
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception:
            log.exception("TTP app %s failed on %s",
                          ext.app.name if ext else "?", redact(line))
            producer = Answer(error_text(500))
            wrote = False
        response = Response(producer, self, line, unit, ext.code if ext else "none", after)
        if after is not None:
            self._awaiting = True
        if wrote and server.commits.durable:
            response.hold(server.commits)
        self.push(response)
