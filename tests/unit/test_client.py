"""The TTP client and the simulator, against a throwaway TTP stand-in.

The real server is not needed here (tests/integration/test_client_server.py
has it): ``StandIn`` below is a few lines of thread-per-connection TTP on a
loopback port, with modes for the awkward things servers do (close after
each answer or after two, close an idle connection, split an answer over
two writes, die in the middle of an answer or before answering, never
answer, stop reading while its answers are not read). The parser, the
request lines and the retry policy are tested without sockets. Every
socket wait is bounded by a timeout and every simulation by its duration.
"""

import asyncio
import datetime
import json
import re
import socket
import threading
import time

import pytest

from texmate_ds import client, simulate
from texmate_ds.client import (
    Answer,
    AsyncTTPClient,
    ProtocolError,
    ResponseSplitter,
    Sample,
    TTPClient,
    TTPConnectionError,
    TTPError,
    TTPTimeout,
)

TIMEOUT = 5.0
DL_ANSWER = "OK <1 2009-01-16 15:30:45 L1=1>"
DL_SAMPLE = Sample(1, datetime.datetime(2009, 1, 16, 15, 30, 45), [1.0])
# Seconds a connection of the "idle" stand-in may rest before it is closed.
IDLE = 0.3
BIG_ANSWER = "OK " + "x" * 65536


class StandIn:
    """A tiny TTP server. Modes: ``normal``, ``close`` (close after each
    answer), ``close2`` (after two answers), ``idle`` (close a connection
    quiet for IDLE seconds), ``split`` (each answer in two writes),
    ``truncate`` (half an answer, then close), ``mute`` (close without
    answering), ``silent`` (read, never answer), ``big`` (64 KiB answers;
    as each waits to be written whole, it stops reading while the client
    does not read)."""

    def __init__(self, mode="normal"):
        self.mode = mode
        self.requests = []
        self.connections = 0
        self.ended = 0          # connections the client closed or reset
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=128)
        self._listener.settimeout(0.1)
        self.port = self._listener.getsockname()[1]
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def stop(self):
        self._stopping.set()
        self._thread.join(TIMEOUT)
        self._listener.close()

    def _accept(self):
        while not self._stopping.is_set():
            try:
                conn, _ = self._listener.accept()
            except socket.timeout:
                continue
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        conn.settimeout(IDLE if self.mode == "idle" else TIMEOUT)
        buffer = b""
        answered = 0
        with conn:
            while not self._stopping.is_set():
                try:
                    data = conn.recv(65536)
                except socket.timeout:  # "idle" closes; others give up
                    return
                except OSError:         # the client reset the connection
                    data = b""
                if not data:
                    self.ended += 1
                    return
                buffer += data
                while b"\r" in buffer:
                    line, buffer = buffer.split(b"\r", 1)
                    buffer = buffer.lstrip(b"\n")
                    answered += 1
                    try:
                        if not self._answer(conn, line.decode("ascii"), answered):
                            return
                    except OSError:     # the client reset the connection
                        self.ended += 1
                        return

    def _answer(self, conn, line, answered):
        """Answer one request; False when the connection must close."""
        self.requests.append(line)
        answer = BIG_ANSWER if self.mode == "big" else answer_for(line)
        answer = answer.encode("ascii") + b"\r"
        if self.mode == "silent":
            return True
        if self.mode == "mute":
            return False
        if self.mode == "truncate":
            conn.sendall(answer[:len(answer) // 2])
            return False
        if self.mode == "split":
            conn.sendall(answer[:3])
            time.sleep(0.05)
            conn.sendall(answer[3:])
        else:
            conn.sendall(answer)
        return self.mode != "close" and not (self.mode == "close2" and answered == 2)


def answer_for(line):
    path = line.split(" ", 1)[1].rsplit(" ", 1)[0]
    app, unit = path.split("/")[1:3]
    if unit.startswith("NOPE"):
        return "405 Unit not found"
    return DL_ANSWER if app == "dl" else "OK"


@pytest.fixture
def standin():
    servers = []

    def start(mode="normal"):
        servers.append(StandIn(mode))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(condition, seconds=TIMEOUT):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


# -- answers (no sockets) ------------------------------------------------------------

def test_answers_are_their_text_with_parts():
    ok = Answer("OK")
    assert ok == "OK" and isinstance(ok, str) and repr(ok) == "Answer('OK')"
    assert (ok.code, ok.ok, ok.message, ok.samples, ok.duplicates) == (200, True, "", [], [])
    error = Answer("402 Unauthorized")
    assert (error.code, error.ok, error.message, error.samples) == (402, False, "Unauthorized", [])
    assert (Answer("500").code, Answer("500").message) == (500, "")
    app = Answer("OK hello there")      # a site app's own answer
    assert (app.code, app.message, app.samples) == (200, "hello there", [])
    for text in ("garbage", "\nOK", "4021 x", ""):
        assert (Answer(text).code, Answer(text).ok, Answer(text).message) == (None, False, text)


def test_dl_answers_hold_samples():
    answer = Answer("OK <123 2009-01-16 15:30:45 L1=11 L2=-0.001 L3=1e+20 L4=>"
                    "<124 1969-12-31 23:59:59.000042 L1=-3 L2=2500 L3=0 L4=5>")
    first, second = answer.samples
    assert first == Sample(123, datetime.datetime(2009, 1, 16, 15, 30, 45),
                           [11.0, -0.001, 1e20, None])
    assert first.timestamp_text == "2009-01-16 15:30:45"
    assert second.timestamp == datetime.datetime(1969, 12, 31, 23, 59, 59, 42)
    assert second.timestamp_text == "1969-12-31 23:59:59.000042"
    assert second.values == [-3, 2500, 0, 5]
    assert answer.message.startswith("<123 ")
    # Not in dl's form as a whole: no samples, the text stays the message.
    for text in ("OK <x>", "OK <1 2009-01-16 15:30:45 L1=1> junk", "OK <1 2009-02-30 00:00:00>",
                 "OK <1 2009-01-16 15:30:45 L1=one>", "404 <1 2009-01-16 15:30:45 L1=1>"):
        assert Answer(text).samples == []


def test_406_names_its_duplicates():
    answer = Answer("406 Duplicate sample 2<2009-1-16 15:30:45>4<7-1-16 15:30:49>")
    assert (answer.code, answer.message) == (406, "Duplicate sample 2<2009-1-16 15:30:45>"
                                                  "4<7-1-16 15:30:49>")
    assert answer.duplicates == [(2, "2009-1-16 15:30:45"), (4, "7-1-16 15:30:49")]


def test_answer_code():
    assert client.answer_code("OK") == "OK"
    assert client.answer_code(DL_ANSWER) == "OK"
    assert client.answer_code("406 Duplicate sample 1<7-1-16 1:2:3>") == "406"
    assert client.answer_code("500") == "500"
    assert client.answer_code("garbage") == "?"


# -- the sans-IO parser ------------------------------------------------------------------

STREAM = (b"OK\r\n405 Unit not found\r" + DL_ANSWER.encode() + b"\r\r\n"
          b"406 Duplicate sample 1<7-1-16 1:2:3>\rOK 1\r\n")
STREAM_ANSWERS = ["OK", "405 Unit not found", DL_ANSWER, "",
                  "406 Duplicate sample 1<7-1-16 1:2:3>", "OK 1"]


def feed_pieces(splitter, data, cuts):
    answers = []
    for start, end in zip([0] + cuts, cuts + [len(data)]):
        answers += splitter.feed(data[start:end])
    return answers


def test_splitter_joins_pieces_and_ignores_lf_after_cr():
    splitter = ResponseSplitter()
    assert splitter.feed(b"OK <1 2009") == []
    assert splitter.partial == b"OK <1 2009"
    assert splitter.feed(b">\r\nOK\r") == ["OK <1 2009>", "OK"]
    assert splitter.feed(b"\n405 Unit not found\r") == ["405 Unit not found"]
    assert splitter.feed(b"\n") == []
    assert splitter.feed(b"\nOK\r") == ["\nOK"]   # only one \n is a terminator's
    assert splitter.partial == b""


def test_splitter_gives_the_same_answers_however_the_stream_is_split():
    whole = ResponseSplitter().feed(STREAM)
    assert whole == STREAM_ANSWERS and all(isinstance(a, Answer) for a in whole)
    assert whole[2].samples == [DL_SAMPLE]
    for i in range(len(STREAM) + 1):
        for j in range(i, len(STREAM) + 1):
            assert feed_pieces(ResponseSplitter(), STREAM, [i, j]) == STREAM_ANSWERS, (i, j)
    assert feed_pieces(ResponseSplitter(), STREAM, list(range(1, len(STREAM)))) == STREAM_ANSWERS


def test_splitter_refuses_an_answer_over_its_bound_however_split():
    bound = len("405 Unit not found")
    data = b"OK\r405 Unit not found\r405 Unit not found!\rOK\r"
    for i in range(len(data) + 1):
        for j in range(i, len(data) + 1):
            splitter = ResponseSplitter(max_bytes=bound)
            got = []
            with pytest.raises(ProtocolError, match="longer than %d bytes" % bound) as caught:
                for start, end in zip([0, i, j], [i, j, len(data)]):
                    got += splitter.feed(data[start:end])
            # What came before the long one is never lost, nor anything after it taken.
            assert got + caught.value.answers == ["OK", "405 Unit not found"], (i, j)


def test_splitter_memory_is_bounded_without_a_terminator():
    splitter = ResponseSplitter(max_bytes=1000)
    splitter.feed(b"x" * 1000)
    with pytest.raises(ProtocolError):
        for _ in range(10 ** 6):    # a server that never ends its answer
            splitter.feed(b"x" * 100)
    assert len(splitter.partial) <= 1100


def test_the_default_bound_holds_the_longest_dl_answer():
    sample = "<%d 2009-01-16 15:30:45.123456 %s>" % (2 ** 63 - 1, " ".join(
        "L%d=%r" % (n, -2.2250738585072014e-308) for n in range(1, 33)))
    longest = "OK " + sample * 1000
    assert len(longest) == client.MAX_ANSWER_BYTES
    assert ResponseSplitter().feed(longest.encode() + b"\r") == [longest]


# -- request lines (no sockets) ----------------------------------------------------------

def test_format_ts():
    assert client.format_ts(datetime.datetime(2009, 1, 16, 15, 30, 45)) == "2009-01-16 15:30:45"
    assert (client.format_ts(datetime.datetime(2009, 1, 16, 15, 30, 45, 42))
            == "2009-01-16 15:30:45.000042")
    with pytest.raises(ValueError, match="time zone"):
        client.format_ts(datetime.datetime(2009, 1, 16, tzinfo=datetime.timezone.utc))


def test_request_lines():
    assert (client.up_request("U1", "K", ["2009-1-16 15:30:45;11;22", "2009-1-16 15:30:46;12;23"])
            == "TTP /up/U1/<2009-1-16 15:30:45;11;22><2009-1-16 15:30:46;12;23> K")
    assert (client.up_request("U1", "K", [(datetime.datetime(2009, 1, 16, 15, 30, 45, 500000),
                                           [11, 2.5, -1e20, "3e3"]), ("9-1-16 8:0:0", [0.1]),
                                          DL_SAMPLE])
            == "TTP /up/U1/<2009-01-16 15:30:45.500000;11;2.5;-1e+20;3e3><9-1-16 8:0:0;0.1>"
               "<2009-01-16 15:30:45;1.0> K")
    assert client.dl_request("U1", "K") == "TTP /dl/U1/last K"
    assert client.dl_request("U1", "K", "next") == "TTP /dl/U1/next K"
    assert client.dl_request("A1", "K", "from<9-1-16 0:0:0>", "B7") == \
        "TTP /dl/A1/from<9-1-16 0:0:0>/B7 K"
    assert client.dl_request("A1", "K", since=datetime.datetime(2009, 1, 16)) == \
        "TTP /dl/A1/from<2009-01-16 00:00:00> K"
    assert client.dl_request("A1", "K", datetime.datetime(2009, 1, 16, 0, 0, 0, 1)) == \
        "TTP /dl/A1/<2009-01-16 00:00:00.000001> K"
    assert client.al_request("U1", "K", 2, "d0;d1") == "TTP /al/U1/2/<d0;d1> K"
    assert client.al_request("U1", "K", 0, "") == "TTP /al/U1/0/<> K"
    assert client.al_request("U1", "K", 99, [datetime.datetime(2009, 1, 16), "tank 2/high", ""]) \
        == "TTP /al/U1/99/<2009-01-16 00:00:00;tank 2/high;> K"
    assert client.ok_request("U1", "K") == "TTP /ok/U1 K"


HOSTILE_CODES = ["", "A 1", "A1\r", "A1\rTTP /ok/B1 K", "A1\n", "A/1", "A-1", "Ä1", "A" * 33, None]
HOSTILE_KEYS = ["", "se cret", "secret\r", "secret\rTTP /ok/A1 x", "secret\n", "k" * 65,
                "clé", "\x00", None]


@pytest.mark.parametrize("code", HOSTILE_CODES)
def test_a_hostile_unit_code_is_refused(code):
    for build in (lambda: client.ok_request(code, "K"), lambda: client.dl_request(code, "K"),
                  lambda: client.dl_request("A1", "K", "last", code or "x y"),
                  lambda: client.up_request(code, "K", ["9-1-1 0:0:0;1"]),
                  lambda: client.al_request(code, "K", 1)):
        with pytest.raises(ValueError, match="unit code"):
            build()


@pytest.mark.parametrize("key", HOSTILE_KEYS)
def test_a_hostile_key_is_refused_and_never_shown(key):
    with pytest.raises(ValueError, match="unit key") as caught:
        client.ok_request("A1", key)
    if key:
        assert key not in str(caught.value)


@pytest.mark.parametrize("sample", [
    "2009-1-16T15:30:45;1", "2009-2-30 0:0:0;1", " 2009-1-16 15:30:45;1", "now;1",
    "2009-1-16 15:30:45;1>\r", "2009-1-16 15:30:45;1><2009-1-16 15:30:46;2",
    "2009-1-16 15:30:45;", "2009-1-16 15:30:45;1 2", ("2009-1-16 15:30:45", [float("nan")]),
    ("2009-1-16 15:30:45", [float("inf")]), ("2009-1-16 15:30:45", [10 ** 400]),
    ("2009-1-16 15:30:45", ["1;2"]), ("2009-1-16 15:30:45", ["<1>"]),
    (datetime.datetime(2009, 1, 16, tzinfo=datetime.timezone.utc), [1]),
])
def test_a_bad_sample_is_refused(sample):
    with pytest.raises(ValueError):
        client.up_request("A1", "K", [sample])


@pytest.mark.parametrize("sample", [
    ("2009-1-16 15:30:45", [True]), ("2009-1-16 15:30:45", [None]),
    ("2009-1-16 15:30:45", "12"), (datetime.date(2009, 1, 16), [1]), (1234567890, [1]),
])
def test_a_sample_of_the_wrong_type_is_refused(sample):
    with pytest.raises(TypeError):
        client.up_request("A1", "K", [sample])


@pytest.mark.parametrize("build", [
    lambda: client.up_request("A1", "K", []),
    lambda: client.dl_request("A1", "K", "latest"),
    lambda: client.dl_request("A1", "K", "last/B7"),
    lambda: client.dl_request("A1", "K", "last\r"),
    lambda: client.dl_request("A1", "K", "from<2009-1-16>"),
    lambda: client.dl_request("A1", "K", "<2009-1-16 0:0:0><2009-1-16 0:0:1>"),
    lambda: client.dl_request("A1", "K", "first", since="2009-1-16 0:0:0"),
    lambda: client.al_request("A1", "K", 100),
    lambda: client.al_request("A1", "K", -1),
    lambda: client.al_request("A1", "K", True),
    lambda: client.al_request("A1", "K", 2, "a<b"),
    lambda: client.al_request("A1", "K", 2, ["a;b"]),
    lambda: client.al_request("A1", "K", 2, ["high\r"]),
    lambda: client.al_request("A1", "K", 2, [3]),
], ids=lambda build: "")
def test_other_bad_requests_are_refused(build):
    with pytest.raises(ValueError):
        build()


def test_bad_requests_are_refused_before_connecting():
    # Nothing listens on the port: had anything been sent, connecting would fail.
    with TTPClient(port=free_port(), unit="A1", key="K") as c:
        for line in ["", "\r", "TTP /ok/A K\rTTP /ok/B K", "TTP /ok/A K\n", "TTP /ok/Ä K"]:
            with pytest.raises(ValueError):
                c.raw(line)
        with pytest.raises(ValueError, match="unit code"):
            c.ok(unit="A 1")
        with pytest.raises(ValueError, match="unit key"):
            c.pipeline().ok().ok(key="x\ry").execute()
        with pytest.raises(ValueError, match="no unit code or key"):
            TTPClient(port=free_port()).ok()


# -- the retry policy (no sockets) --------------------------------------------------------

def ledger_with(requests, received):
    ledger = client._Ledger("127.0.0.1:9", client.MAX_ANSWER_BYTES)
    ledger.connected()
    ledger.begin([line.encode() + b"\r" for line in requests])
    ledger.received(received)
    return ledger


THREE = ["TTP /ok/A1 K", "TTP /al/A1/2/<x> K", "TTP /dl/A1/last K"]


def test_after_the_first_answer_of_a_connection_the_rest_go_again():
    # SOCKET_OPEN: no answers the first request, then closes without reading on.
    ledger = ledger_with(THREE, b"OK\r")
    assert ledger.ended() == b"TTP /al/A1/2/<x> K\rTTP /dl/A1/last K\r"
    ledger.connected()
    ledger.received(b"OK\r")
    assert ledger.ended() == b"TTP /dl/A1/last K\r"
    ledger.connected()
    ledger.received(DL_ANSWER.encode() + b"\r")
    assert ledger.done and ledger.answers == ["OK", "OK", DL_ANSWER]


def test_a_close_before_any_answer_raises_with_nothing_sent_again():
    ledger = ledger_with(THREE, b"")
    with pytest.raises(TTPConnectionError, match="before answering") as caught:
        ledger.ended()
    assert (caught.value.answers, caught.value.unanswered) == ([], THREE)


def test_a_close_after_two_answers_raises():
    ledger = ledger_with(THREE, b"OK\rOK\r")
    with pytest.raises(TTPConnectionError, match=r"after 2 answers on it \(2 of 3") as caught:
        ledger.ended()
    assert (caught.value.answers, caught.value.unanswered) == (["OK", "OK"], THREE[2:])


def test_a_close_in_the_middle_of_an_answer_raises():
    ledger = ledger_with(THREE, b"OK\rOK <1 2009")
    with pytest.raises(TTPConnectionError, match="middle of an answer") as caught:
        ledger.ended()
    assert (caught.value.answers, caught.value.unanswered) == (["OK"], THREE[1:])


def test_an_answer_to_no_request_raises():
    with pytest.raises(TTPConnectionError, match="an answer to no request") as caught:
        ledger_with(THREE[:1], b"OK\rOK\r")
    assert caught.value.answers == ["OK"] and caught.value.unanswered == []


def test_errors_are_connection_errors():
    assert issubclass(TTPConnectionError, ConnectionError)
    assert issubclass(TTPTimeout, TTPConnectionError) and issubclass(TTPTimeout, TimeoutError)
    error = TTPError(402, "Unauthorized", Answer("402 Unauthorized"))
    assert (str(error), error.code, error.message) == ("402 Unauthorized", 402, "Unauthorized")


# -- TTPClient -----------------------------------------------------------------------------

def test_requests_and_pipelines(standin):
    server = standin()
    with TTPClient(port=server.port, timeout=TIMEOUT, unit="U1", key="K") as c:
        assert c.ok() == "OK"
        assert c.raw("TTP /dl/U1/last K\r") == DL_ANSWER
        assert c.request("TTP /ok/U1 K").ok
        assert c.up([("2009-1-16 15:30:45", [11, 22])]).code == 200
        answer = c.dl("last")
        assert (answer, answer.samples) == (DL_ANSWER, [DL_SAMPLE])
        assert c.al(2, ["d0", "d1"], unit="NOPE").code == 405
        assert c.pipeline(["TTP /ok/U1 K", "TTP /dl/U1/last K", "TTP /ok/NOPE K"]) == \
            ["OK", DL_ANSWER, "405 Unit not found"]
        ok, last, nope = c.pipeline().ok().dl().ok(unit="NOPE").execute()
        assert (ok.ok, last.samples, nope.code) == (True, [DL_SAMPLE], 405)
    assert server.connections == 1
    assert server.requests[3] == "TTP /up/U1/<2009-1-16 15:30:45;11;22> K"
    assert server.requests[-3:] == ["TTP /ok/U1 K", "TTP /dl/U1/last K", "TTP /ok/NOPE K"]


def test_check_raises_error_answers_once_every_answer_is_read(standin):
    server = standin()
    with TTPClient(port=server.port, timeout=TIMEOUT, unit="U1", key="K", check=True) as c:
        with pytest.raises(TTPError) as caught:
            c.ok(unit="NOPE")
        assert (caught.value.code, caught.value.message) == (405, "Unit not found")
        assert c.ok(unit="NOPE", check=False).code == 405
        with pytest.raises(TTPError) as caught:
            c.pipeline().ok().ok(unit="NOPE1").ok(unit="NOPE2").dl().execute()
        assert caught.value.answers == ["OK", "405 Unit not found", "405 Unit not found",
                                        DL_ANSWER]
        assert caught.value.answer is caught.value.answers[1]
        assert c.dl().samples == [DL_SAMPLE]    # still in step
    with TTPClient(port=server.port, timeout=TIMEOUT, unit="U1", key="K") as c:
        assert c.ok(unit="NOPE").code == 405
        with pytest.raises(TTPError):
            c.ok(unit="NOPE", check=True)
    with TTPClient(port=server.port, timeout=TIMEOUT, unit="U1", key="K") as c:
        assert c.pipeline().execute() == [] and c.pipeline([]) == []    # nothing to connect for
    assert server.connections == 2


def test_the_context_manager_closes(standin):
    server = standin()
    with TTPClient(port=server.port, timeout=TIMEOUT, unit="U1", key="K") as c:
        c.ok()
    wait_for(lambda: server.ended == 1)
    c.ok()      # a closed client connects again when used
    c.close()
    wait_for(lambda: server.ended == 2)


def test_reconnects_when_server_closes_after_each_answer(standin):
    server = standin("close")
    with TTPClient(port=server.port, timeout=TIMEOUT, unit="U1", key="K") as c:
        assert [c.ok() for n in range(3)] == ["OK"] * 3
        assert c.pipeline(["TTP /ok/U1 K", "TTP /dl/U1/last K", "TTP /ok/NOPE K"]) == \
            ["OK", DL_ANSWER, "405 Unit not found"]
    assert server.connections == 6


def test_reconnects_once_when_an_idle_connection_was_closed(standin):
    server = standin("idle")
    with TTPClient(port=server.port, timeout=TIMEOUT, unit="U1", key="K") as c:
        assert c.pipeline().ok().ok().execute() == ["OK", "OK"]
        time.sleep(IDLE * 3)
        assert c.ok() == "OK"
    assert server.connections == 2 and len(server.requests) == 3


def test_a_close_after_two_answers_is_not_retried(standin):
    server = standin("close2")
    with TTPClient(port=server.port, timeout=TIMEOUT, unit="U1", key="K") as c:
        with pytest.raises(TTPConnectionError, match="after 2 answers") as caught:
            c.pipeline().ok().dl().al(1, ["x"]).execute()
        assert caught.value.answers == ["OK", DL_ANSWER]
        assert caught.value.unanswered == ["TTP /al/U1/1/<x> K"]
        assert server.connections == 1     # the alarm may have been stored: not sent again
        assert c.ok() == "OK"               # a new connection for what comes next
    assert server.connections == 2


def test_answer_split_over_two_writes(standin):
    server = standin("split")
    with TTPClient(port=server.port, timeout=TIMEOUT, unit="U1", key="K") as c:
        assert c.dl("last") == DL_ANSWER
        assert c.pipeline(["TTP /ok/U1 K", "TTP /dl/U1/last K"]) == ["OK", DL_ANSWER]


def test_close_in_the_middle_of_an_answer_raises(standin):
    server = standin("truncate")
    with TTPClient(port=server.port, timeout=TIMEOUT, unit="U1", key="K") as c:
        with pytest.raises(TTPConnectionError, match="middle of an answer"):
            c.dl("last")


def test_close_before_the_first_answer_raises(standin):
    server = standin("mute")
    with TTPClient(port=server.port, timeout=TIMEOUT, unit="U1", key="K") as c:
        with pytest.raises(TTPConnectionError, match="before answering") as caught:
            c.up([("2009-1-16 15:30:45", [1])])
        assert caught.value.unanswered == ["TTP /up/U1/<2009-1-16 15:30:45;1> K"]
    assert server.connections == 1     # no retry: the server may have acted


def test_a_silent_server_times_out(standin):
    server = standin("silent")
    with TTPClient(port=server.port, timeout=0.3, unit="U1", key="K") as c:
        started = time.monotonic()
        with pytest.raises(TTPTimeout, match=r"127\.0\.0\.1:\d+: nothing from the server for 0.3 s"):
            c.ok()
        assert time.monotonic() - started < 2
    wait_for(lambda: server.ended == 1)     # a late answer must not pass for the next one


def test_cannot_connect():
    port = free_port()
    with TTPClient(port=port, timeout=2, unit="U1", key="K") as c:
        with pytest.raises(TTPConnectionError, match=r"127\.0\.0\.1:%d: cannot connect: "
                                                     r"Connection refused" % port) as caught:
            c.ok()
    assert caught.value.unanswered == ["TTP /ok/U1 K"] and caught.value.answers == []


def test_a_long_pipeline_reads_while_it_writes(standin):
    # The stand-in stops reading while its 64 KiB answers are not read, as
    # the real server does past 64 queued answers: a client that wrote
    # these 8 MiB before reading would wait for ever (here: time out).
    server = standin("big")
    padding = "x" * 65000
    lines = ["TTP /ok/U1/%s%d K" % (padding, n) for n in range(128)]
    with TTPClient(port=server.port, timeout=TIMEOUT,
                   max_answer_bytes=len(BIG_ANSWER)) as c:
        assert c.pipeline(lines) == [BIG_ANSWER] * 128
    assert server.requests == lines


def test_an_answer_over_the_bound_drops_the_connection(standin):
    server = standin("big")
    with TTPClient(port=server.port, timeout=TIMEOUT, unit="U1", key="K",
                   max_answer_bytes=1000) as c:
        with pytest.raises(TTPConnectionError, match="longer than 1000 bytes"):
            c.pipeline().ok().ok().execute()
    wait_for(lambda: server.ended == 1)


# -- AsyncTTPClient --------------------------------------------------------------------

def test_async_requests_pipelines_and_errors(standin):
    server = standin()

    async def talk():
        async with AsyncTTPClient(port=server.port, timeout=TIMEOUT, unit="U1", key="K") as c:
            assert await c.ok() == "OK"
            assert (await c.dl()).samples == [DL_SAMPLE]
            assert (await c.up([(datetime.datetime(2009, 1, 16), [1])])).ok
            assert (await c.al(2, "x", unit="NOPE")).code == 405
            assert await c.pipeline(["TTP /ok/U1 K", "TTP /ok/NOPE K"]) == \
                ["OK", "405 Unit not found"]
            answers = await c.pipeline().ok().dl().execute()
            assert answers == ["OK", DL_ANSWER]
            with pytest.raises(TTPError) as caught:
                await c.ok(unit="NOPE", check=True)
            assert caught.value.code == 405
            # Tasks sharing a client take turns: each gets its own answer.
            got = await asyncio.gather(*(c.ok(unit="NOPE%d" % n if n % 2 else "U1")
                                         for n in range(10)))
            assert [a.code for a in got] == [200, 405] * 5

    asyncio.run(talk())
    assert server.connections == 1
    wait_for(lambda: server.ended == 1)


def test_async_reconnects_as_the_blocking_client_does(standin):
    close, idle, mute = standin("close"), standin("idle"), standin("mute")

    async def talk():
        async with AsyncTTPClient(port=close.port, timeout=TIMEOUT, unit="U1", key="K") as c:
            assert [await c.ok() for _ in range(3)] == ["OK"] * 3
            assert await c.pipeline().ok().dl().ok().execute() == ["OK", DL_ANSWER, "OK"]
        async with AsyncTTPClient(port=idle.port, timeout=TIMEOUT, unit="U1", key="K") as c:
            assert await c.pipeline().ok().ok().execute() == ["OK", "OK"]
            await asyncio.sleep(IDLE * 3)
            assert await c.ok() == "OK"
        async with AsyncTTPClient(port=mute.port, timeout=TIMEOUT, unit="U1", key="K") as c:
            with pytest.raises(TTPConnectionError, match="before answering"):
                await c.ok()

    asyncio.run(talk())
    assert (close.connections, idle.connections, mute.connections) == (6, 2, 1)


def test_async_timeouts_cancels_and_refusals(standin):
    silent = standin("silent")
    port = free_port()

    async def talk():
        async with AsyncTTPClient(port=silent.port, timeout=0.3, unit="U1", key="K") as c:
            with pytest.raises(TTPTimeout, match="nothing from the server for 0.3 s"):
                await c.ok()
            # A call cancelled while its answer is awaited drops its connection.
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(c.ok(), 0.1)
            assert await c.pipeline().execute() == []
        async with AsyncTTPClient(port=port, unit="U1", key="K") as c:
            with pytest.raises(TTPConnectionError, match="cannot connect"):
                await c.ok()
            with pytest.raises(ValueError, match="unit code"):
                await c.ok(unit="A1 x")

    asyncio.run(talk())
    assert silent.connections == 2
    wait_for(lambda: silent.ended == 2)


# -- the client command --------------------------------------------------------

def test_main_exit_codes(standin, capsys):
    server = standin()
    port = str(server.port)
    assert client.main(["--port", port, "ok", "U1", "K"]) == 0
    assert capsys.readouterr().out == "OK\n"
    assert client.main(["--port", port, "dl", "U1", "K", "last"]) == 0
    assert capsys.readouterr().out == DL_ANSWER + "\n"
    assert client.main(["--port", port, "al", "U1", "K", "2", "d0;d1"]) == 0
    assert client.main(["--port", port, "up", "NOPE", "K", "2009-1-16 15:30:45;1"]) == 1
    assert capsys.readouterr().out.endswith("405 Unit not found\n")

    closed = str(free_port())
    assert client.main(["--port", closed, "--timeout", "2", "ok", "U1", "K"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "127.0.0.1:%s" % closed in captured.err
    assert "refused" in captured.err.lower()


def test_main_refuses_bad_requests_before_sending(standin, capsys):
    server = standin()
    port = str(server.port)
    for args in (["ok", "U 1", "K"], ["ok", "U1", "K\rTTP"], ["up", "U1", "K", "2009-1-16;1"],
                 ["dl", "U1", "K", "latest"], ["al", "U1", "K", "100", "x"],
                 ["raw", "TTP /ok/U1 K", ""]):
        assert client.main(["--port", port] + args) == 2
        captured = capsys.readouterr()
        assert captured.out == "" and captured.err.startswith("texmate_ds client: ")
    assert server.requests == []


def test_main_prints_the_answers_that_came_before_a_failure(standin, capsys):
    server = standin("close2")
    assert client.main(["--port", str(server.port), "raw", "TTP /ok/U1 K", "TTP /ok/NOPE K",
                        "TTP /ok/U1 K"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "OK\n405 Unit not found\n"
    assert "after 2 answers" in captured.err


def test_main_raw_pipelines(standin, capsys):
    server = standin()
    assert client.main(["--port", str(server.port), "raw",
                        "TTP /ok/U1 K", "TTP /dl/U1/last K", "TTP /ok/NOPE K"]) == 1
    assert capsys.readouterr().out.splitlines() == ["OK", DL_ANSWER, "405 Unit not found"]
    assert server.connections == 1


def test_main_up_now(standin, capsys):
    server = standin()
    assert client.main(["--port", str(server.port), "up", "U1", "K", "now;1;2", "now;3;4"]) == 0
    ts = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d{6})?"
    match = re.fullmatch(r"TTP /up/U1/<(%s);1;2><(%s);3;4> K" % (ts, ts), server.requests[0])
    assert match
    assert match.group(1) < match.group(3)


# -- the simulator ---------------------------------------------------------------

def test_meter_timestamps_strictly_increase():
    meter = simulate.Meter("SIM1", "simkey", fields=3, samples_per_request=2, interval=1.0)
    now = datetime.datetime(2024, 5, 1, 12, 0, 0)
    first = meter.next_samples(now)
    second = meter.next_samples(now)     # a clock that did not move
    stamps = [s.split(";")[0] for s in first + second]
    assert stamps == ["2024-05-01 11:59:59.500000", "2024-05-01 12:00:00",
                      "2024-05-01 12:00:00.000001", "2024-05-01 12:00:00.000002"]
    assert all(len(s.split(";")) == 4 for s in first + second)
    assert simulate.Meter("SIM1", "simkey", 3).next_samples(now)[0] != \
        simulate.Meter("SIM2", "simkey", 3).next_samples(now)[0]


def test_meter_raises_an_alarm_every_nth_request():
    meter = simulate.Meter("SIM1", "simkey", fields=2, samples_per_request=3, alarm_every=3)
    requests = [meter.next_request() for _ in range(7)]
    kinds = [r.split("/")[1] for r in requests]
    assert kinds == ["up", "up", "al", "up", "up", "al", "up"]
    assert re.fullmatch(r"TTP /al/SIM1/1/<\d{4}-\d\d-\d\d [0-9:.]+;simulated alarm 2> simkey",
                        requests[5])
    assert (meter.last_samples, meter.last_was_alarm, meter.alarms) == (3, False, 2)
    never = simulate.Meter("SIM2", "simkey", fields=1)
    assert all(never.next_request().startswith("TTP /up/") for _ in range(5))


def test_percentile():
    values = [float(n) for n in range(1, 101)]
    assert simulate.percentile(values, 0.5) == 50.0
    assert simulate.percentile(values, 0.99) == 99.0
    assert simulate.percentile([7.0], 0.99) == 7.0
    assert simulate.percentile([], 0.5) is None


def run_simulate(port, *options, tmp_path):
    out = tmp_path / "figures.json"
    status = simulate.main(["--port", str(port), "--json", str(out)] + list(options))
    return status, json.loads(out.read_text())


def test_simulate_five_meters(standin, tmp_path, capsys):
    server = standin()
    status, fig = run_simulate(server.port, "--meters", "5", "--interval", "0.1",
                               "--duration", "2", "--samples", "2", tmp_path=tmp_path)
    assert status == 0
    assert fig["errors"] == {} and fig["connection_failures"] == 0 and fig["unanswered"] == 0
    assert fig["meters"] == 5 and fig["ok"] == fig["answered"] == fig["requests_sent"]
    assert 35 <= fig["requests_per_s"] <= 55      # 5 meters, 10 requests/s each
    assert fig["samples_per_s"] == pytest.approx(2 * fig["requests_per_s"], rel=0.01)
    assert 0 < fig["median_ms"] <= fig["p99_ms"] < 1000
    assert server.connections == 1 + 5     # the reachability probe, then one per meter
    assert {line.split("/")[2] for line in server.requests} == {"SIM1", "SIM2", "SIM3",
                                                                "SIM4", "SIM5"}
    assert re.fullmatch(r"TTP /up/SIM\d/(<[^<>]+(;-?\d+\.\d{3}){4}>){2} simkey",
                        server.requests[0])
    printed = capsys.readouterr().out
    assert "samples/s" in printed and "median" in printed


def test_simulate_open_no_and_downloads(standin, tmp_path):
    server = standin()
    status, fig = run_simulate(server.port, "--meters", "2", "--download", "2", "--interval",
                               "0.2", "--duration", "1", "--open-no", tmp_path=tmp_path)
    assert status == 0
    assert server.connections == 1 + fig["answered"]    # the probe, then one per request
    downloads = [line for line in server.requests if line.startswith("TTP /dl/")]
    assert downloads and set(downloads) <= {"TTP /dl/SIM1/last simkey",
                                            "TTP /dl/SIM2/last simkey"}


def test_simulate_against_a_server_that_closes_after_each_answer(standin, tmp_path):
    server = standin("close")
    status, fig = run_simulate(server.port, "--meters", "3", "--interval", "0.2",
                               "--duration", "1", tmp_path=tmp_path)
    assert status == 0 and fig["connection_failures"] == 0 and fig["ok"] >= 9


def test_simulate_counts_error_answers(standin, tmp_path):
    server = standin()
    status, fig = run_simulate(server.port, "--meters", "2", "--prefix", "NOPE", "--interval",
                               "0.2", "--duration", "0.5", tmp_path=tmp_path)
    assert status == 1
    assert fig["ok"] == 0 and fig["errors"] == {"405": fig["answered"]} and fig["answered"] > 0


def test_simulate_without_a_server(capsys):
    port = free_port()
    assert simulate.main(["--port", str(port), "--duration", "1"]) == 2
    assert "127.0.0.1:%d" % port in capsys.readouterr().err


def test_up_line_joins_what_a_program_made_as_up_request_would_send():
    texts = ["2024-01-01 00:00:00;1.5;2", "2024-01-01 00:00:01;3;4"]
    assert client.up_line("SIM1", "simkey", texts) == client.up_request("SIM1", "simkey", texts)
