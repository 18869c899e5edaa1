"""TTP client library and the ``texmate_ds client`` command (docs/client.md).

From Python, a meter's requests are method calls and its answers objects::

    import datetime
    from texmate_ds.client import TTPClient

    with TTPClient("127.0.0.1", 9995, unit="A1", key="secret", check=True) as c:
        c.up([(datetime.datetime(2009, 1, 16, 15, 30, 45), [11, 22, 33, 44])])
        sample = c.dl("last").samples[0]
        sample.id, sample.timestamp, sample.values
        # 1, datetime.datetime(2009, 1, 16, 15, 30, 45), [11.0, 22.0, 33.0, 44.0]

Design, in layers that do no I/O until the last:

- Requests: ``up_request``, ``dl_request``, ``al_request`` and
  ``ok_request`` build request lines (the simulator and the benchmarks
  build theirs with them too). They refuse, with ``ValueError`` and before
  anything is sent, whatever would not make one well-formed line: a unit
  code or key with a space or a line break would make the server split the
  line elsewhere, or read two requests and send two answers, and every
  later answer would be paired with the wrong request.
- Answers: ``ResponseSplitter`` is a sans-IO parser: ``feed(bytes)``
  returns the ``Answer`` objects the bytes complete, however TCP split or
  joined them. An answer is bounded (``MAX_ANSWER_BYTES``, from the
  protocol's longest), so a server that never ends one costs bounded memory
  and raises ``ProtocolError``. An ``Answer`` is the answer's text, a
  ``str``, with its parts as attributes (``code``, ``message``,
  ``samples``), as ``ttp.Request`` is the request line with its parts: the
  text stays at hand and code that compares answers with ``"OK"`` works.
- Retries: ``_Ledger`` (sans-IO too) pairs requests with answers across
  connections and decides, when a connection ends early, whether the
  unanswered requests may go out again (below).
- I/O: ``TTPClient`` (a socket and a selector) and ``AsyncTTPClient``
  (asyncio streams) only move bytes between those layers and the network.
  Both read while they write, so a long pipeline never deadlocks against
  a server that stops reading until its answers are read (it does, past
  64 queued answers). Every wait is bounded by ``timeout``; a timeout
  closes the connection, because a late answer would otherwise be taken
  for the answer to the next request.

Retry policy. A request is sent again only when the server cannot have
acted on it:

- the connection was found closed before sending (the server closed it
  after ``CHANNEL_TIMEOUT`` idle seconds, or restarted): the client
  reconnects once and sends. It looks before each exchange: an idle
  connection that has anything to read (its end, a reset) is finished.
- the connection ended right after its first answer, with requests queued
  behind it: that is ``SOCKET_OPEN: no``, which answers the first request
  of a connection and reads nothing after it (docs/protocol.md), so the
  rest go out again, each new connection answering one more.

Any other end with requests unanswered (a close or reset before the
connection's first answer or after its second, a close in the middle of
an answer, a timeout) raises ``TTPConnectionError``, whose ``answers`` and ``unanswered``
say what came back and what did not. The server may have acted on the
first unanswered request before it died, and a second try would do it
twice: an alarm (``al``) stored and mailed twice, a site app's action
repeated. The one case told wrongly: a ``SOCKET_OPEN: yes`` server that
dies right after the first answer of a connection while it handles the
next request looks like ``SOCKET_OPEN: no``, and that request goes out
again.

An upload in particular is not retried by the client, though sending one
again could not store a sample twice: the server refuses a sample whose
timestamp the unit already has with ``406 Duplicate sample`` and stores
the others (spec section 5). But the answer to that second try would be a
406 for the samples the lost try stored, which reads as someone else's
samples being there first. So the caller decides: after a
``TTPConnectionError`` an upload may be sent again, and a 406 naming
every sample of it then means they are stored.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime
import functools
import math
import numbers
import re
import selectors
import socket
import sys

from texmate_ds import times

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 9995
DEFAULT_TIMEOUT = 10.0
RECV_SIZE = 65536

# The longest answer the bundled apps send with the default configuration:
# a ``dl .../from<TS>`` of DL_MAX_SAMPLES (1000) samples of 32 fields (the
# most a unit has), each with a 19-digit id, a timestamp with microseconds
# and values of 24 characters, the longest a float prints in: 967 bytes a
# sample. A 406 names at most the samples of one request (65536 bytes by
# default, MAX_REQUEST_BYTES), well under it.
_LONGEST_SAMPLE = len("<%s 2009-01-16 15:30:45.123456>" % ("9" * 19)) + sum(
    len(" L%d=-2.2250738585072014e-308" % field) for field in range(1, 33))
MAX_ANSWER_BYTES = len("OK ") + 1000 * _LONGEST_SAMPLE

_ERROR_ANSWER = re.compile(r"(\d{3})(?: |$)")
_UNIT_CODE = re.compile(r"[A-Za-z0-9]{1,32}\Z")
_KEY = re.compile(r"[!-~]{1,64}\Z")
# A value as text: printable, no space, none of the ';<>' that frame samples.
_VALUE = re.compile(r"[!-:=?-~]+\Z")
# A sample as a meter writes it, 'TS;v1;...', checked in one match: the
# simulator builds thousands a second.
_TEXT_SAMPLE = re.compile(r"(%s)((?:;[!-:=?-~]+)*)\Z" % times.PATTERN, re.ASCII)
# An alarm's data item: printable, spaces too, none of ';<>'.
_ITEM = re.compile(r"[ -:=?-~]*\Z")
_SELECTOR = re.compile(r"(last|first|next)\Z|(from)?<([^<>]*)>\Z")
# dl's sample form, <ID TS L1=v1 ... LN=vN>; an empty value is "L2=".
_SAMPLE = re.compile(r"<(\d+) (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d{6})?)((?: L\d+=[^ <>]*)*)>")
_DUPLICATE = re.compile(r"(\d+)<([^<>]*)>")


# -- errors ---------------------------------------------------------------------

class TTPError(Exception):
    """An error answer, raised only when asked (``check=True``).

    ``code`` (``402``), ``message`` (``'Unauthorized'``), ``answer`` (the
    `Answer`) and ``answers``: every answer of the call or pipeline it came
    from, all read before raising, so the connection stays in step.
    """

    def __init__(self, code: int | None, message: str, answer: Answer | None = None,
                 answers: list | None = None):
        super().__init__(code, message)
        self.code = code
        self.message = message
        self.answer = answer
        self.answers = answers or []

    def __str__(self):
        return str(self.answer) if self.answer is not None else "%s %s" % (self.code, self.message)


class TTPConnectionError(ConnectionError):
    """The server could not be reached, or a connection failed before
    every answer came. The message begins with ``host:port``.

    ``answers``: the answers that did come, in request order.
    ``unanswered``: the request lines after them, with no answer; the
    first may have been acted on unless nothing could be sent (the message
    then says "cannot connect").
    """

    def __init__(self, message: str, answers=(), unanswered=()):
        super().__init__(message)
        self.answers = list(answers)
        self.unanswered = list(unanswered)


class TTPTimeout(TTPConnectionError, TimeoutError):
    """No connection, or no progress on one, within the timeout."""


class ProtocolError(ValueError):
    """Bytes that are no TTP answers: an answer longer than the bound, or
    one nobody asked for. ``answers``: those complete before it. The
    stream is out of step after it: the connection must go."""

    def __init__(self, message: str, answers=()):
        super().__init__(message)
        self.answers = list(answers)


# -- answers ----------------------------------------------------------------------

_EPOCH = datetime.datetime(1970, 1, 1)


@dataclasses.dataclass
class Sample:
    """One sample of a ``dl`` answer: its ``id`` on the server, its
    ``timestamp`` (a naive datetime, the meter's wall time), its ``values``
    (floats; None for an empty one) and ``timestamp_text``, the time as the
    server wrote it (not compared)."""

    id: int
    timestamp: datetime.datetime
    values: list
    timestamp_text: str = dataclasses.field(default="", compare=False)


class Answer(str):
    """One answer: the text the server sent, without its ``\\r``, with its parts.

    - ``code``: 200 for ``OK...`` (the protocol's table has 200 for OK,
      though the wire says ``OK``), the number of an error (``402``), None
      for text that is neither (a site app's own form);
    - ``ok``: the answer begins with ``OK``;
    - ``message``: what follows the code and its space: ``'Unauthorized'``,
      ``''`` for a plain ``OK``, the samples' text of a ``dl`` answer;
    - ``samples``: a ``dl`` answer's samples as `Sample` objects, ``[]``
      for any other answer;
    - ``duplicates``: a 406's ``(offset, timestamp as sent)`` pairs, the
      offset counting the upload's samples from 1.
    """

    def __new__(cls, text: str):
        self = super().__new__(cls, text)
        if text.startswith("OK"):
            self.code, self.message = 200, text[3:] if text[2:3] == " " else text[2:]
        else:
            match = _ERROR_ANSWER.match(text)
            if match:
                self.code, self.message = int(match.group(1)), text[4:]
            else:
                self.code, self.message = None, text
        return self

    def __repr__(self):
        return "Answer(%s)" % str.__repr__(self)

    @property
    def ok(self) -> bool:
        return self.code == 200

    # Parsed when first asked for: the simulator feeds thousands of answers
    # a second through here and never looks at their samples.
    @functools.cached_property
    def samples(self) -> list[Sample]:
        if not self.ok or not self.message.startswith("<"):
            return []
        return _parse_samples(self.message)

    @functools.cached_property
    def duplicates(self) -> list[tuple[int, str]]:
        if self.code != 406:
            return []
        return [(int(offset), ts) for offset, ts in _DUPLICATE.findall(self.message)]


def _parse_samples(text: str) -> list[Sample]:
    """The samples of ``<ID TS L1=v ...><...>``; none unless all of
    `text` is samples."""
    samples, pos = [], 0
    try:
        while pos < len(text):
            match = _SAMPLE.match(text, pos)
            if match is None:
                return []
            ident, stamp, fields = match.groups()
            values = [float(v) if v else None
                      for v in (field.partition("=")[2] for field in fields.split(" ")[1:])]
            moment = _EPOCH + datetime.timedelta(microseconds=times.parse(stamp))
            samples.append(Sample(int(ident), moment, values, stamp))
            pos = match.end()
    except ValueError:      # a value no float, a date that does not exist
        return []
    return samples


def answer_code(answer: str) -> str:
    """``'OK'`` for a success, the 3-digit code of an error, ``'?'`` else
    (the simulator counts its answers by it)."""
    if answer.startswith("OK"):
        return "OK"
    match = _ERROR_ANSWER.match(answer)
    return match.group(1) if match else "?"


class ResponseSplitter:
    """Cut TTP answers out of a byte stream (sans-IO).

    An answer ends with ``\\r``; a ``\\n`` right after a ``\\r`` is
    ignored, even when it arrives in the next chunk. An answer longer than
    `max_bytes` raises `ProtocolError`, whether its end has come or not,
    so memory stays bounded by `max_bytes` and one chunk.
    """

    def __init__(self, max_bytes: int = MAX_ANSWER_BYTES):
        self.max_bytes = max_bytes
        self._buffer = bytearray()
        self._scanned = 0      # bytes of _buffer known to hold no '\r'
        self._after_cr = False

    @property
    def partial(self) -> bytes:
        """The start of an answer whose end has not arrived yet."""
        return bytes(self._buffer)

    def feed(self, data: bytes) -> list[Answer]:
        """Add received bytes; return the answers they complete, in order."""
        if self._after_cr and data[:1] == b"\n":
            data = data[1:]
            self._after_cr = False
        if not data:
            return []
        buffer = self._buffer
        buffer += data
        answers = []
        start = 0
        end = buffer.find(b"\r", self._scanned)
        while end >= 0:
            if end - start > self.max_bytes:
                raise self._too_long(answers)
            answers.append(Answer(buffer[start:end].decode("ascii", "replace")))
            start = end + 1
            if buffer[start:start + 1] == b"\n":
                start += 1
            end = buffer.find(b"\r", start)
        if len(buffer) - start > self.max_bytes:
            raise self._too_long(answers)
        self._after_cr = start == len(buffer) and buffer[start - 1:start] == b"\r"
        del buffer[:start]
        self._scanned = len(buffer)
        return answers

    def _too_long(self, answers: list[Answer]) -> ProtocolError:
        return ProtocolError("an answer longer than %d bytes (max_answer_bytes)" % self.max_bytes,
                             answers)


# -- requests ---------------------------------------------------------------------

def format_ts(ts: datetime.datetime) -> str:
    """A naive datetime in the protocol's form (``times.text``)."""
    if not isinstance(ts, datetime.datetime):
        raise TypeError("a timestamp is a datetime or text, not %r" % (ts,))
    if ts.utcoffset() is not None:
        raise ValueError("%s has a time zone; a meter's time is its wall time, without one"
                         % ts.isoformat())
    return times.text((ts - _EPOCH) // datetime.timedelta(microseconds=1))


def _timestamp(ts) -> str:
    """A datetime, or text checked to be a timestamp and sent as it is
    (a 406 quotes a timestamp as sent)."""
    if isinstance(ts, str):
        try:
            times.parse(ts)
        except times.BadTime:
            raise ValueError("%s is not a timestamp Y-M-D H:M:S[.F]" % times.quoted(ts)) from None
        return ts
    return format_ts(ts)


def _unit_code(code: str) -> str:
    if not isinstance(code, str) or not _UNIT_CODE.match(code):
        raise ValueError("a unit code is 1 to 32 letters and digits, not %r" % (code,))
    return code


def _credentials(code: str, key: str) -> tuple[str, str]:
    # The key is never shown: messages end up in logs.
    if not isinstance(key, str) or not _KEY.match(key):
        raise ValueError("a unit key is 1 to 64 printable ASCII characters without spaces")
    return _unit_code(code), key


def _value(value) -> str:
    if isinstance(value, str):
        if not _VALUE.match(value):
            raise ValueError("%s is no value: printable, without spaces or ';<>'"
                             % times.quoted(value))
        return value
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError("a value is a number or its text, not %r" % (value,))
    try:
        number = float(value)
    except OverflowError:       # an int beyond any float
        number = math.inf
    if not math.isfinite(number):
        raise ValueError("%r: the server stores finite 64-bit floats only" % (value,))
    return str(value) if isinstance(value, int) else repr(number)


def _sample(sample) -> str:
    if isinstance(sample, str):     # 'TS;v1;...', as a meter writes it
        match = _TEXT_SAMPLE.match(sample)
        if match:
            try:
                times.from_parts(*match.groups()[1:8])
                return sample
            except times.BadTime:
                pass
        ts, *values = sample.split(";")     # the checks below say what is wrong
    elif isinstance(sample, Sample):    # one downloaded, to store in another unit
        ts, values = sample.timestamp, sample.values
    else:
        ts, values = sample
        if isinstance(values, (str, bytes)):
            raise TypeError("a sample's values are a list, not %r" % (values,))
    return ";".join([_timestamp(ts)] + [_value(v) for v in values])


def up_request(code: str, key: str, samples) -> str:
    """An upload. Each sample is a ``(timestamp, values)`` pair (a
    datetime or text, and numbers or their text) or a ``'TS;v1;...'``
    string."""
    code, key = _credentials(code, key)
    samples = [_sample(s) for s in samples]
    if not samples:
        raise ValueError("an upload needs a sample at least")
    return "TTP /up/%s/%s %s" % (code, "".join("<%s>" % s for s in samples), key)


def up_line(code: str, key: str, texts) -> str:
    """The upload line of `texts`, samples already in the meters' form
    (``'TS;v1;...'``), for credentials and samples made by a program
    rather than taken from people: joined, not checked, so a load
    generator (simulate, bench/) spends on it what a meter would, and the
    benchmarks' baseline stays the bare server's, not the checking's."""
    return "TTP /up/%s/%s %s" % (code, "".join("<%s>" % text for text in texts), key)


def _dl_selector(selector, since) -> str:
    if since is not None:
        if selector is not None:
            raise ValueError("give a selector or since=, not both")
        return "from<%s>" % _timestamp(since)
    if selector is None:
        return "last"
    if isinstance(selector, datetime.datetime):
        return "<%s>" % format_ts(selector)
    match = _SELECTOR.match(selector) if isinstance(selector, str) else None
    if match is None:
        raise ValueError("a dl selector is last, first, next, a timestamp, '<TS>' or "
                         "'from<TS>', not %r" % (selector,))
    if match.group(3) is not None:
        _timestamp(match.group(3))
    return selector


def dl_request(code: str, key: str, selector=None, source: str | None = None, *,
               since=None) -> str:
    """A download. ``selector``: ``'last'``, ``'first'``, ``'next'``, a
    datetime (the sample at exactly that time), or the protocol's
    ``'<TS>'`` or ``'from<TS>'``; ``since=`` a timestamp is ``from<TS>``;
    neither is ``'last'``.
    ``source``: the unit to read, if not the configured one."""
    code, key = _credentials(code, key)
    path = "%s/%s" % (code, _dl_selector(selector, since))
    if source:
        path += "/" + _unit_code(source)
    return "TTP /dl/%s %s" % (path, key)


def al_request(code: str, key: str, level: int, data=()) -> str:
    """An alarm at ``level`` (0 to 99). ``data``: its items (text, or a
    datetime for the meter's time, by convention the first), or one
    ``'d0;d1;...'`` string."""
    code, key = _credentials(code, key)
    if isinstance(level, bool) or not isinstance(level, int) or not 0 <= level <= 99:
        raise ValueError("an alarm level is 0 to 99, not %r" % (level,))
    items = data.split(";") if isinstance(data, str) else list(data)
    for n, item in enumerate(items):
        if isinstance(item, datetime.datetime):
            items[n] = format_ts(item)
        elif not isinstance(item, str) or not _ITEM.match(item):
            raise ValueError("%r is no alarm item: text, printable, without ';<>'" % (item,))
    return "TTP /al/%s/%d/<%s> %s" % (code, level, ";".join(items), key)


def ok_request(code: str, key: str) -> str:
    """A liveness and credentials check."""
    return "TTP /ok/%s %s" % _credentials(code, key)


def _frame(line: str) -> bytes:
    if line.endswith("\r"):
        line = line[:-1]
    # An empty request gets no answer and an embedded terminator two: either
    # would leave answers paired with the wrong requests.
    if not line or "\r" in line or "\n" in line:
        raise ValueError("a TTP request is one non-empty line: %r" % line)
    try:
        return line.encode("ascii") + b"\r"
    except UnicodeEncodeError:
        raise ValueError("a TTP request is ASCII: %r" % line) from None


def _checked(answers: list[Answer], checks: list[bool]) -> list[Answer]:
    for answer, check in zip(answers, checks):
        if check and not answer.ok:
            raise TTPError(answer.code, answer.message, answer, answers)
    return answers


# -- pairing requests with answers --------------------------------------------------

class _Ended(Exception):
    """The server ended the connection (a close or a reset)."""


class _Ledger:
    """One client's requests and answers across its connections (sans-IO).

    An exchange is a list of framed requests, written together; the ledger
    takes the bytes received, and when a connection ends early says what
    the next one must be sent, or raises (the module docstring's policy).
    """

    def __init__(self, where: str, max_answer_bytes: int):
        self.where = where              # 'host:port', for messages
        self.max_answer_bytes = max_answer_bytes
        self.requests = []
        self.answers = []
        self.connected()

    def connected(self):
        self.parser = ResponseSplitter(self.max_answer_bytes)
        self.answered_here = 0          # answers on this connection, all exchanges

    def begin(self, requests: list[bytes]) -> bytes:
        """Start an exchange; the bytes to write."""
        self.requests, self.answers = requests, []
        return b"".join(requests)

    @property
    def done(self) -> bool:
        return len(self.answers) == len(self.requests)

    def received(self, data: bytes):
        try:
            got = self.parser.feed(data)
        except ProtocolError as exc:
            self.answers += exc.answers[:len(self.requests) - len(self.answers)]
            raise self.failure(str(exc)) from exc
        self.answered_here += len(got)
        self.answers += got
        if len(self.answers) > len(self.requests):
            del self.answers[len(self.requests):]
            raise self.failure("an answer to no request")

    def ended(self) -> bytes:
        """The connection ended before every answer came: what to write on a
        new one; raises `TTPConnectionError` when nothing may be."""
        partial = self.parser.partial
        if partial:
            raise self.failure("the server closed the connection in the middle of an answer "
                               "(received %r)" % partial[:80])
        if self.answered_here == 1:     # SOCKET_OPEN: no read nothing after it
            return b"".join(self.requests[len(self.answers):])
        if not self.answered_here:
            raise self.failure("the server closed the connection before answering")
        raise self.failure("the server closed the connection after %d answers on it"
                           % self.answered_here)

    def failure(self, what: str, kind=TTPConnectionError) -> TTPConnectionError:
        unanswered = [r[:-1].decode("ascii") for r in self.requests[len(self.answers):]]
        if self.answers or len(self.requests) > 1:
            what += " (%d of %d requests answered)" % (len(self.answers), len(self.requests))
        return kind("%s: %s" % (self.where, what), self.answers, unanswered)

    def cannot_connect(self, exc: Exception, timeout: float) -> TTPConnectionError:
        if isinstance(exc, (socket.timeout, asyncio.TimeoutError)):
            return self.failure("cannot connect within %g s" % timeout, TTPTimeout)
        error = self.failure("cannot connect: %s" % (getattr(exc, "strerror", None) or exc))
        error.errno = getattr(exc, "errno", None)
        return error

    def timed_out(self, timeout: float) -> TTPTimeout:
        return self.failure("nothing from the server for %g s; the connection is closed"
                            % timeout, TTPTimeout)


# -- the clients ----------------------------------------------------------------------

class _Requests:
    """The TTP apps as methods, shared by the clients and `Pipeline`: each
    builds its line and hands it to ``_call(line, check)``, which sends it
    (a client) or queues it (a pipeline).

    ``unit=`` and ``key=`` default to the client's; ``check=`` to its
    ``check``: when true, an error answer raises `TTPError`.
    """

    unit = key = None

    def up(self, samples, *, unit=None, key=None, check=None):
        """Upload ``[(timestamp, [v1, v2, ...]), ...]``: a timestamp is a
        naive datetime (the meter's wall time) or text (``'9-1-16
        8:0:0.5'``, sent as written); a value a number or its text. A
        ``'TS;v1;...'`` string is a sample too."""
        return self._call(up_request(*self._who(unit, key), samples), check)

    def dl(self, selector=None, source=None, *, since=None, unit=None, key=None, check=None):
        """Download: ``dl()`` or ``dl('last')``, ``dl('first')``, ``dl('next')``,
        ``dl(a_datetime)`` (that very sample), ``dl(since=a_datetime)``
        (at most DL_MAX_SAMPLES from then on), or the protocol's text
        (``'from<9-1-16 0:0:0>'``). ``source``: another unit to read."""
        return self._call(dl_request(*self._who(unit, key), selector, source, since=since),
                          check)

    def al(self, level, data=(), *, unit=None, key=None, check=None):
        """Raise an alarm: ``al(2, [datetime.now(), 'tank high'])``."""
        return self._call(al_request(*self._who(unit, key), level, data), check)

    def ok(self, *, unit=None, key=None, check=None):
        """Check liveness, unit code and key."""
        return self._call(ok_request(*self._who(unit, key)), check)

    def raw(self, line: str, *, check=None):
        """Send one request line as written (``'TTP /ec/A1/hi secret'``:
        a site app); only an empty line, a line break or a non-ASCII
        character is refused."""
        return self._call(line, check)

    def _who(self, unit, key):
        unit = self.unit if unit is None else unit
        key = self.key if key is None else key
        if unit is None or key is None:
            raise ValueError("no unit code or key: give unit= and key= to the client or the call")
        return unit, key

    def _call(self, line: str, check):
        raise NotImplementedError


class Pipeline(_Requests):
    """Requests gathered to go out together, answers in request order::

        ok, up, last = c.pipeline().ok().up(samples).dl("last").execute()

    Each request method returns the pipeline; ``execute()`` sends them all
    before reading any answer, and returns the answers (an awaitable of
    them, from an `AsyncTTPClient`). With ``check``, the first error
    answer raises `TTPError`, once every answer is read.
    """

    def __init__(self, client: _Client):
        self._client = client
        self.unit, self.key = client.unit, client.key
        self._queued = []

    def _call(self, line, check):
        self._queued.append((line, check))
        return self

    def execute(self):
        queued, self._queued = self._queued, []
        return self._client._run(queued)


class _Client(_Requests):
    """What both clients share: settings, the ledger, pipelines."""

    def __init__(self, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
                 timeout: float = DEFAULT_TIMEOUT, *, unit: str | None = None,
                 key: str | None = None, check: bool = False,
                 connect_timeout: float | None = None,
                 max_answer_bytes: int = MAX_ANSWER_BYTES):
        self.host, self.port = host, port
        self.timeout = timeout
        self.connect_timeout = timeout if connect_timeout is None else connect_timeout
        self.unit, self.key = unit, key
        self.check = check
        self._ledger = _Ledger("%s:%d" % (host, port), max_answer_bytes)

    def pipeline(self, lines=None, *, check=None):
        """``pipeline()``: an empty `Pipeline` to fill. ``pipeline(lines)``:
        send request lines as written, all before reading, and return
        their answers in order."""
        if lines is None:
            return Pipeline(self)
        return self._run([(line, check) for line in lines])

    def _framed(self, queued):
        """The framed requests and their checks (ValueError before any I/O)."""
        return ([_frame(line) for line, _ in queued],
                [self.check if check is None else check for _, check in queued])


class TTPClient(_Client):
    """A connection to a TTP server, made on first use (or ``connect()``).

    ``timeout``: seconds each wait for the server may last (connecting,
    and any wait in which no byte moves; ``connect_timeout`` apart if
    given). ``unit``, ``key``: the defaults of the request methods.
    ``check``: raise `TTPError` for error answers (else they are returned,
    ``answer.ok`` false). ``max_answer_bytes``: the longest answer taken;
    raise it for a server with a larger DL_MAX_SAMPLES or a site app with
    long answers. Failures raise `TTPConnectionError` (a ConnectionError),
    timeouts `TTPTimeout`; a request that cannot be one line raises
    ValueError before anything is sent. Not for several threads at once.
    """

    _sock = _selector = None     # while connected

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def connect(self):
        if self._sock is not None:
            return
        try:
            sock = socket.create_connection((self.host, self.port), self.connect_timeout)
        except OSError as exc:
            raise self._ledger.cannot_connect(exc, self.connect_timeout) from exc
        sock.setblocking(False)
        # The end of a request goes out at once, not once the server has
        # acknowledged what came before (Nagle), which it may delay while it
        # waits for that very end.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock = sock
        self._selector = selectors.DefaultSelector()
        self._selector.register(sock, selectors.EVENT_READ)
        self._ledger.connected()

    def close(self):
        if self._sock is not None:
            self._selector.close()
            self._sock.close()
            self._sock = self._selector = None

    # The name bench/ and older scripts use for raw().
    request = _Requests.raw

    def _call(self, line, check):
        return self._run([(line, check)])[0]

    def _run(self, queued):
        requests, checks = self._framed(queued)
        if not requests:
            return []
        return _checked(self._exchange(requests), checks)

    def _exchange(self, requests: list[bytes]) -> list[Answer]:
        ledger = self._ledger
        out = ledger.begin(requests)
        if self._sock is not None and any(events & selectors.EVENT_READ
                                          for _, events in self._selector.select(0)):
            # Something to read while no answer is awaited: the server closed
            # the idle connection (or reset it, or sent what nobody asked
            # for). Nothing of this exchange is sent yet: a new connection.
            self.close()
        while True:
            self.connect()
            try:
                self._pump(out)
                return ledger.answers
            except _Ended:
                pass
            except BaseException as exc:
                # Whatever stopped the exchange (a failure, Ctrl-C), the
                # answers still on their way would pass for the next ones.
                self.close()
                if isinstance(exc, OSError) and not isinstance(exc, TTPConnectionError):
                    raise ledger.failure(exc.strerror or str(exc)) from exc
                raise
            self.close()
            out = ledger.ended()

    def _pump(self, out: bytes):
        """Write `out` while reading, until every answer is in."""
        ledger, sock, selector = self._ledger, self._sock, self._selector
        pending = memoryview(out)
        watching = selectors.EVENT_READ
        while not ledger.done:
            wanted = selectors.EVENT_READ | (selectors.EVENT_WRITE if pending else 0)
            if wanted != watching:
                selector.modify(sock, wanted)
                watching = wanted
            ready = selector.select(self.timeout)
            if not ready:
                raise ledger.timed_out(self.timeout)
            events = ready[0][1]
            try:
                if events & selectors.EVENT_READ:
                    data = sock.recv(RECV_SIZE)
                    if not data:
                        raise _Ended()
                    ledger.received(data)
                if pending and events & selectors.EVENT_WRITE:
                    pending = pending[sock.send(pending):]
            except BlockingIOError:
                pass
            except (ConnectionResetError, BrokenPipeError, ConnectionAbortedError):
                raise _Ended() from None


class AsyncTTPClient(_Client):
    """`TTPClient` for asyncio, with the same arguments, request methods
    (to be awaited), answers, errors and retry policy::

        async with AsyncTTPClient(unit="A1", key="secret") as c:
            answer = await c.dl("last")

    Calls from several tasks take turns, so answers never cross; a
    pipeline is one turn. A pipeline's requests are handed to the
    transport whole, and read while they go out.
    """

    _reader = _writer = None     # while connected
    # An asyncio.Lock, made on first use: Python 3.9 binds a lock to the
    # event loop current when it is made, which may not be the one it runs in.
    _turn = None

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc_info):
        await self.close()

    async def connect(self):
        if self._writer is not None:
            return
        try:
            self._reader, self._writer = await asyncio.wait_for(
                asyncio.open_connection(self.host, self.port), self.connect_timeout)
        except (OSError, asyncio.TimeoutError) as exc:
            raise self._ledger.cannot_connect(exc, self.connect_timeout) from exc
        self._ledger.connected()

    async def close(self):
        writer = self._drop()
        if writer is not None:
            try:
                await writer.wait_closed()
            except OSError:
                pass

    def _drop(self):
        """Close at once (no await: a cancelled task still gets it done)."""
        writer, self._reader, self._writer = self._writer, None, None
        if writer is not None:
            # Abort, not close: close() would first flush what the server
            # may never read, and wait for it.
            writer.transport.abort()
        return writer

    async def _call(self, line, check):
        return (await self._run([(line, check)]))[0]

    async def _run(self, queued):
        requests, checks = self._framed(queued)
        if not requests:
            return []
        if self._turn is None:
            self._turn = asyncio.Lock()
        async with self._turn:
            answers = await self._exchange(requests)
        return _checked(answers, checks)

    async def _exchange(self, requests: list[bytes]) -> list[Answer]:
        ledger = self._ledger
        out = ledger.begin(requests)
        if self._writer is not None and (self._writer.is_closing() or self._reader.at_eof()):
            self._drop()        # closed while idle, as in TTPClient._exchange
        while True:
            await self.connect()
            try:
                self._writer.write(out)
                while not ledger.done:
                    data = await asyncio.wait_for(self._reader.read(RECV_SIZE), self.timeout)
                    if not data:
                        raise _Ended()
                    ledger.received(data)
                return ledger.answers
            except (_Ended, ConnectionResetError, BrokenPipeError, ConnectionAbortedError):
                pass
            except BaseException as exc:
                self._drop()    # as in TTPClient._exchange; a cancelled task too
                if isinstance(exc, TTPConnectionError):
                    raise
                if isinstance(exc, asyncio.TimeoutError):
                    raise ledger.timed_out(self.timeout) from None
                if isinstance(exc, OSError):
                    raise ledger.failure(exc.strerror or str(exc)) from exc
                raise
            self._drop()
            out = ledger.ended()


# -- the command line ------------------------------------------------------

def main(argv: list[str]) -> int:
    """``texmate_ds client ...``: 0 if every answer is OK, 1 if any is an
    error, 2 if the server could not be reached, the connection failed or
    a request was refused before sending (not one line of ASCII, a unit
    code, key, timestamp or value that would not make a request)."""
    args = _parser().parse_args(argv)
    ttp = TTPClient(args.host, args.port, args.timeout,
                    unit=getattr(args, "code", None), key=getattr(args, "key", None))
    try:
        with ttp:
            answers = _send(ttp, args)
    except ValueError as exc:
        print("texmate_ds client: %s" % exc, file=sys.stderr)
        return 2
    except TTPConnectionError as exc:
        for answer in exc.answers:
            print(answer)
        print("texmate_ds client: %s" % exc, file=sys.stderr)
        return 2
    for answer in answers:
        print(answer)
    return 0 if all(answer.ok for answer in answers) else 1


def _send(ttp: TTPClient, args: argparse.Namespace) -> list[Answer]:
    if args.command == "up":
        return [ttp.up(_expand_now(args.samples))]
    if args.command == "dl":
        return [ttp.dl(args.selector, args.source)]
    if args.command == "al":
        return [ttp.al(args.level, args.data)]
    if args.command == "ok":
        return [ttp.ok()]
    return ttp.pipeline(args.lines)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="texmate_ds client",
        description="Send TTP requests to a texmate_ds server and print the answers.")
    parser.add_argument("--host", default=DEFAULT_HOST,
                        help="server address (default %(default)s)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT,
                        help="TTP port (default %(default)s)")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT,
                        help="seconds to wait for the server (default %(default)s)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    up = commands.add_parser("up", help="upload samples")
    _add_unit(up)
    up.add_argument("samples", nargs="+", metavar="TS;v1;...",
                    help="a sample; TS may be 'now' (local time, microseconds)")

    dl = commands.add_parser("dl", help="download samples")
    _add_unit(dl)
    dl.add_argument("selector", help="last, first, next, '<TS>' or 'from<TS>'")
    dl.add_argument("source", nargs="?", help="the unit to read (default: configured)")

    al = commands.add_parser("al", help="raise an alarm")
    _add_unit(al)
    al.add_argument("level", type=int, help="0-99")
    al.add_argument("data", metavar="d0;d1;...", help="alarm data, without <>")

    ok = commands.add_parser("ok", help="check liveness and credentials")
    _add_unit(ok)

    raw = commands.add_parser("raw", help="send request lines as written (pipelined)")
    raw.add_argument("lines", nargs="+", metavar="LINE", help="e.g. 'TTP /ok/U1 KEY'")
    return parser


def _add_unit(parser: argparse.ArgumentParser):
    parser.add_argument("code", help="unit code")
    parser.add_argument("key", help="unit key")


def _expand_now(samples: list[str]) -> list[str]:
    """Replace a ``now`` timestamp by the local time.

    Several ``now`` samples in one upload are a microsecond apart, so the
    server does not take them for duplicates.
    """
    now = datetime.datetime.now()
    expanded = []
    for sample in samples:
        ts, sep, values = sample.partition(";")
        if ts.strip().lower() == "now":
            sample = format_ts(now) + sep + values
            now += datetime.timedelta(microseconds=1)
        expanded.append(sample)
    return expanded
