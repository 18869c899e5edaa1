"""TTP client library and the ``texmate_ds client`` command.

The library is meant to be easy from Python::

    from texmate_ds.client import TTPClient
    with TTPClient('127.0.0.1', 9995) as c:
        c.up('U1', 'KEY', ['2009-1-16 15:30:45;11;22'])    # 'OK'
        c.dl('U1', 'KEY', 'last')     # 'OK <123 2009-01-16 15:30:45 L1=11 L2=22>'

Design:

- Requests are built by small module-level functions (``up_request``, ...)
  so the simulator builds exactly the same lines without a ``TTPClient``.
- Answers are cut out of the byte stream by ``ResponseSplitter``, a sans-IO
  helper shared with the simulator: feed it whatever ``recv`` returned and
  it hands back every complete answer, however TCP split or joined them.
- One blocking socket per client with a timeout on every operation.  A
  timeout closes the connection, because a late answer would otherwise be
  taken for the answer to the next request.
- ``SOCKET_OPEN: no`` servers close after each answer.  When a connection
  that has already answered ends cleanly between answers, the unanswered
  requests are sent again on a new connection.  That is safe: the server
  closes only after flushing an answer, so it never acted on them.  A
  connection that ends in the middle of an answer, or before its first
  answer, raises ``ConnectionError`` instead: the server may have acted on
  the request, and a second try would not make progress.
"""

from __future__ import annotations

import argparse
import datetime
import re
import socket
import sys

from texmate_ds import times

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 9995
DEFAULT_TIMEOUT = 10.0
RECV_SIZE = 65536

_ERROR_ANSWER = re.compile(r"(\d{3})(?: |$)")


class ResponseSplitter:
    """Cut TTP answers out of a byte stream (sans-IO).

    An answer ends with ``\\r``; a ``\\n`` right after a ``\\r`` is ignored,
    even when it arrives in the next chunk.
    """

    def __init__(self):
        self._buffer = bytearray()
        self._scanned = 0      # bytes of _buffer known to hold no '\r'
        self._after_cr = False

    @property
    def partial(self) -> bytes:
        """The start of an answer whose end has not arrived yet."""
        return bytes(self._buffer)

    def feed(self, data: bytes) -> list[str]:
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
            answers.append(buffer[start:end].decode("ascii", "replace"))
            start = end + 1
            if buffer[start:start + 1] == b"\n":
                start += 1
            end = buffer.find(b"\r", start)
        self._after_cr = start == len(buffer) and buffer[start - 1:start] == b"\r"
        del buffer[:start]
        self._scanned = len(buffer)
        return answers


def answer_code(answer: str) -> str:
    """``'OK'`` for a success, the 3-digit code of an error, ``'?'`` else."""
    if answer.startswith("OK"):
        return "OK"
    match = _ERROR_ANSWER.match(answer)
    return match.group(1) if match else "?"


_EPOCH = datetime.datetime(1970, 1, 1)


def format_ts(ts: datetime.datetime) -> str:
    """A naive datetime in the protocol's form (``times.text``)."""
    return times.text((ts - _EPOCH) // datetime.timedelta(microseconds=1))


def up_request(code: str, key: str, samples: list[str]) -> str:
    """An upload of samples given as ``'TS;v1;...;vN'`` strings."""
    return "TTP /up/%s/%s %s" % (code, "".join("<%s>" % s for s in samples), key)


def dl_request(code: str, key: str, selector: str, source: str | None = None) -> str:
    """A download; ``selector`` as the protocol writes it (``last``, ``from<TS>``...)."""
    path = "%s/%s" % (code, selector)
    if source:
        path += "/" + source
    return "TTP /dl/%s %s" % (path, key)


def al_request(code: str, key: str, level: int, data: str) -> str:
    """An alarm; ``data`` is ``'d0;d1;...'`` without the angle brackets."""
    return "TTP /al/%s/%d/<%s> %s" % (code, level, data, key)


def ok_request(code: str, key: str) -> str:
    """A liveness and credentials check."""
    return "TTP /ok/%s %s" % (code, key)


def _frame(line: str) -> bytes:
    if line.endswith("\r"):
        line = line[:-1]
    # An empty request gets no answer and an embedded terminator two: either
    # would leave answers paired with the wrong requests.
    if not line or "\r" in line or "\n" in line:
        raise ValueError("a TTP request is one non-empty line: %r" % line)
    return line.encode("ascii") + b"\r"


class TTPClient:
    """A connection to a TTP server; connects on first use or ``connect()``.

    ``timeout`` bounds connecting and each wait for data, in seconds.
    Methods return the server's answer without its ``\\r``; error answers
    are returned, not raised (see ``answer_code``).  Transport problems
    raise ``OSError`` (``ConnectionError``, ``socket.timeout``...).
    """

    def __init__(self, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
                 timeout: float = DEFAULT_TIMEOUT):
        self.host = host
        self.port = port
        self.timeout = timeout
        self._sock = None
        self._splitter = None
        self._answered = 0    # answers received on the current connection

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def connect(self):
        if self._sock is None:
            self._sock = socket.create_connection((self.host, self.port), self.timeout)
            self._splitter = ResponseSplitter()
            self._answered = 0

    def close(self):
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def request(self, line: str) -> str:
        """Send one request line (``\\r`` optional) and return its answer."""
        return self.pipeline([line])[0]

    def pipeline(self, lines: list[str]) -> list[str]:
        """Send every request, then read their answers, in the same order.

        Everything is written before anything is read, so keep a pipeline
        to what the socket buffers hold (thousands of short requests).
        """
        requests = [_frame(line) for line in lines]
        answers = []
        while len(answers) < len(requests):
            self.connect()
            try:
                self._sock.sendall(b"".join(requests[len(answers):]))
                self._receive(answers, len(requests))
            except ConnectionError:
                pass    # a reset or broken pipe is one more way of closing
            except OSError:
                self.close()
                raise
            if len(answers) < len(requests):
                self._reconnect_or_fail()
        return answers

    def up(self, code: str, key: str, samples: list[str]) -> str:
        return self.request(up_request(code, key, samples))

    def dl(self, code: str, key: str, selector: str, source: str | None = None) -> str:
        return self.request(dl_request(code, key, selector, source))

    def al(self, code: str, key: str, level: int, data: str) -> str:
        return self.request(al_request(code, key, level, data))

    def ok(self, code: str, key: str) -> str:
        return self.request(ok_request(code, key))

    def _receive(self, answers: list[str], wanted: int):
        """Read until ``wanted`` answers are in, or the server closes."""
        while len(answers) < wanted:
            data = self._sock.recv(RECV_SIZE)
            if not data:
                return
            got = self._splitter.feed(data)
            self._answered += len(got)
            answers.extend(got)

    def _reconnect_or_fail(self):
        partial, answered = self._splitter.partial, self._answered
        self.close()
        if partial:
            raise ConnectionError(
                "the server closed the connection in the middle of an answer "
                "(received %r)" % partial)
        if not answered:
            raise ConnectionError("the server closed the connection before answering")


# -- the command line ------------------------------------------------------

def main(argv: list[str]) -> int:
    """``texmate_ds client ...``: 0 if every answer is OK, 1 if any is an
    error, 2 if the server could not be reached, the connection failed or
    a request was not one line of ASCII."""
    args = _parser().parse_args(argv)
    client = TTPClient(args.host, args.port, args.timeout)
    try:
        with client:
            answers = client.pipeline(_request_lines(args))
    except ValueError as exc:     # a request that is not one ASCII line
        print("texmate_ds client: %s" % exc, file=sys.stderr)
        return 2
    except OSError as exc:
        print("texmate_ds client: %s:%d: %s" % (args.host, args.port, exc.strerror or exc),
              file=sys.stderr)
        return 2
    for answer in answers:
        print(answer)
    return 0 if all(answer_code(a) == "OK" for a in answers) else 1


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


def _request_lines(args: argparse.Namespace) -> list[str]:
    if args.command == "up":
        return [up_request(args.code, args.key, _expand_now(args.samples))]
    if args.command == "dl":
        return [dl_request(args.code, args.key, args.selector, args.source)]
    if args.command == "al":
        return [al_request(args.code, args.key, args.level, args.data)]
    if args.command == "ok":
        return [ok_request(args.code, args.key)]
    return args.lines


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
