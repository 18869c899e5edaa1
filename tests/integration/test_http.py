"""The HTTP/1.1 server over loopback sockets.

Part (a) talks to the real server (conftest's `server`), whose web port
serves the web UI (/healthz open, pages behind sign-in). Part (b) runs a real
`loop.Loop` with an `HTTPServer` in a thread of the test, serving test WSGI
apps, to check the WSGI bridge.
"""

import contextlib
import logging
import socket
import sys
import threading
import time
import wsgiref.validate

import pytest

from texmate_ds import __version__, config, http

from conftest import loop_serving


class Response:
    def __init__(self, status, headers, body, chunks):
        self.status = status
        self.headers = headers      # {lower-case name: value}
        self.body = body
        self.chunks = chunks        # sizes of the chunks, if chunked


class Client:
    """A raw socket reading HTTP responses strictly, one at a time."""

    def __init__(self, port, timeout=10):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise EOFError("closed after %r" % self.buf[:200])
        self.buf += data

    def _line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exactly(self, n):
        while len(self.buf) < n:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def response(self, head=False):
        """The next response; `head`: it answers a HEAD (no body)."""
        version, code, _ = self._line().decode("latin-1").split(" ", 2)
        assert version == "HTTP/1.1"
        headers = {}
        while True:
            line = self._line().decode("latin-1")
            if not line:
                break
            name, value = line.split(": ", 1)
            assert name.lower() not in headers, line
            headers[name.lower()] = value
        status = int(code)
        body, chunks = b"", None
        if head or status < 200 or status in (204, 304):
            pass
        elif headers.get("transfer-encoding") == "chunked":
            assert "content-length" not in headers
            chunks = []
            while True:
                size = int(self._line(), 16)
                if not size:
                    assert self._line() == b""
                    break
                chunks.append(size)
                body += self._exactly(size)
                assert self._exactly(2) == b"\r\n"
        elif "content-length" in headers:
            body = self._exactly(int(headers["content-length"]))
        else:
            assert headers["connection"] == "close"
            body = self.rest()
        return Response(status, headers, body, chunks)

    def rest(self):
        """Everything until the server closes."""
        with contextlib.suppress(EOFError):
            while True:
                self._fill()
        data, self.buf = self.buf, b""
        return data

    def closed(self):
        """True once the server has closed (or reset) the connection with
        nothing more to say."""
        try:
            return self.rest() == b""
        except ConnectionResetError:
            return True

    def close(self):
        self.sock.close()


def request(path="/", method="GET", headers="", version="HTTP/1.1", body=b""):
    return ("%s %s %s\r\nHost: test\r\n%s\r\n" % (method, path, version, headers)).encode() + body


# -- (a) the real server ------------------------------------------------------

def test_healthz_over_keep_alive(server):
    client = Client(server.http_port)
    for _ in range(3):
        client.send(request("/healthz"))
        answer = client.response()
        assert (answer.status, answer.body) == (200, b"ok\n")
        assert answer.headers["server"] == "texmate_ds/" + __version__
        assert answer.headers["date"].endswith(" GMT")
        assert answer.headers["content-length"] == "3"
        assert "connection" not in answer.headers
    client.send(request("/"))
    answer = client.response()
    assert (answer.status, answer.headers["location"]) == (302, "/login/?next=%2F")
    client.close()


def test_pipelined_requests_are_answered_in_order(server):
    client = Client(server.http_port)
    client.send(request("/healthz") + request("/nothing") + request("/healthz", "HEAD")
                + request("/healthz"))
    assert client.response().status == 200
    assert client.response().status == 404
    head = client.response(head=True)
    assert (head.status, head.headers["content-length"]) == (200, "3")
    assert client.response().body == b"ok\n"
    client.close()


def test_head_has_the_headers_and_no_body(server):
    client = Client(server.http_port)
    client.send(request("/healthz", "HEAD"))
    answer = client.response(head=True)
    assert answer.headers["content-length"] == "3"
    # Had a body been sent, it would be read as the next response's start.
    client.send(request("/healthz"))
    assert client.response().body == b"ok\n"
    client.close()


@pytest.mark.parametrize("data", [
    request("/healthz", headers="Connection: close\r\n"),
    request("/healthz", version="HTTP/1.0"),
])
def test_connection_close_both_ways(server, data):
    client = Client(server.http_port)
    client.send(data + request("/healthz"))
    answer = client.response()
    assert (answer.status, answer.headers["connection"]) == (200, "close")
    assert client.closed()


def test_http10_keep_alive(server):
    client = Client(server.http_port)
    for _ in range(2):
        client.send(request("/healthz", version="HTTP/1.0", headers="Connection: keep-alive\r\n"))
        assert client.response().headers["connection"] == "keep-alive"
    client.close()


@pytest.mark.parametrize("data,status", [
    (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"p" * http.MAX_HEAD, 431),
    (b"GET /" + b"a" * http.MAX_LINE, 414),
    (request("/", "POST", "Content-Length: %d\r\n" % (2 * http.MAX_BODY)), 413),
    (request("/", headers="Bad : colon\r\n"), 400),
    (b"GET / HTTP/1.1\r\n\r\n", 400),
    (request("/", "POST", "Transfer-Encoding: chunked\r\n"), 501),
    (b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505),
])
def test_protocol_errors_answer_and_close(server, data, status):
    client = Client(server.http_port)
    client.send(request("/healthz") + data)
    assert client.response().status == 200     # the request before is answered
    answer = client.response()
    assert answer.status == status
    assert answer.headers["connection"] == "close"
    assert answer.headers["content-type"] == "text/plain; charset=utf-8"
    assert answer.body.count(b"\n") == 1
    assert client.closed()


def test_a_request_cut_short_by_the_client_gets_400(server):
    client = Client(server.http_port)
    client.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    client.sock.shutdown(socket.SHUT_WR)
    assert client.response().status == 400
    assert client.closed()


def test_slow_head_gets_408_and_idle_connections_close(server_factory):
    srv = server_factory("HTTP_HEADER_TIMEOUT: 1\n")
    slow = Client(srv.http_port)
    idle = Client(srv.http_port)
    used = Client(srv.http_port)
    slow.send(b"GET /healthz HTTP/1.1\r\n")
    used.send(request("/healthz"))
    assert used.response().status == 200
    answer = slow.response()
    assert (answer.status, answer.headers["connection"]) == (408, "close")
    assert slow.closed()
    # Idle keep-alive connections are closed without a word: a client
    # sending its next request just then must not read a 408 for it.
    assert idle.closed()
    assert used.closed()
    assert srv.stop() == 0


# -- (b) the WSGI bridge, on a loop in this process -------------------------

def serving(app, make_context=None):
    """`app` on a real loop in a thread (conftest.loop_serving)."""
    return loop_serving(app, config.Settings(HTTP_HEADER_TIMEOUT=5), make_context)


def text_app(body=b"fine\n", status="200 OK"):
    def app(environ, start_response):
        start_response(status, [("Content-Type", "text/plain")])
        return [body]
    return app


ROWS = [b"%d,%s\n" % (i, b"x" * (i % 97)) for i in range(5000)]


def streaming_app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/csv")])
    for i, row in enumerate(ROWS):
        if i % 1000 == 0:
            yield b""       # an empty item must not end the chunked body
        yield row


def test_a_generator_streams_chunk_by_chunk():
    with serving(streaming_app) as server:
        client = Client(server.port)
        client.send(request("/rows.csv") + request("/rows.csv", version="HTTP/1.0"))
        answer = client.response()
        assert answer.headers["transfer-encoding"] == "chunked"
        assert answer.body == b"".join(ROWS)
        assert answer.chunks == [len(row) for row in ROWS]   # never joined
        old = client.response()     # HTTP/1.0: the body ends with the connection
        assert (old.headers["connection"], old.body) == ("close", b"".join(ROWS))
        client.close()
    assert server.requests_by_status == {200: 2}
    assert server.bytes_sent.value > 2 * len(b"".join(ROWS))
    assert server.bytes_received.value == len(request("/rows.csv")) * 2


def test_a_stream_is_pulled_as_the_socket_drains_and_closed_when_cut_off():
    block = b"b" * 65536
    made = []
    closed = threading.Event()

    def endless(environ, start_response):
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        try:
            for _ in range(100000):      # 6.5 GB if it were all made
                made.append(1)
                yield block
        finally:
            closed.set()

    with serving(endless) as server:
        client = Client(server.port)
        client.send(request("/big"))
        assert client._line() == b"HTTP/1.1 200 OK"
        time.sleep(0.5)     # time to run ahead, were it not held back
        # Kernel buffers on loopback hold some megabytes; far from all.
        assert len(made) < 1000
        client.close()
        assert closed.wait(10), "the app's iterable was not closed"


class Closing:
    """An app iterable that records its close()."""

    def __init__(self, items):
        self.items = items
        self.closed = False

    def __iter__(self):
        return iter(self.items)

    def close(self):
        self.closed = True


def test_close_is_called_after_the_answer_and_after_head():
    answers = []

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        answers.append(Closing([b"a", b"b"]))
        return answers[-1]

    with serving(app) as server:
        client = Client(server.port)
        client.send(request())
        assert client.response().body == b"ab"
        assert answers[0].closed
        client.send(request(method="HEAD"))
        assert client.response(head=True).headers["transfer-encoding"] == "chunked"
        assert answers[1].closed
        client.close()


def failing_app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/before":
        raise ValueError("secret detail before")
    if path == "/exc_info":
        try:
            raise KeyError("handled")
        except KeyError:
            start_response("200 OK", [("Content-Type", "text/plain")])
            start_response("503 Service Unavailable", [("Content-Type", "text/plain")],
                           sys.exc_info())
            return [b"replaced\n"]
    if path == "/hop":
        start_response("200 OK", [("Content-Type", "text/plain"), ("Connection", "close")])
        return [b"no\n"]
    return failing_generator(path, start_response)


def failing_generator(path, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    if path == "/after-start":
        raise ValueError("secret detail after start_response")
    yield b"first part\n"
    raise ValueError("secret detail mid-stream")


@pytest.mark.parametrize("path", ["/before", "/after-start", "/hop"])
def test_an_app_failing_before_its_head_answers_500(path, caplog):
    with serving(failing_app) as server:
        client = Client(server.port)
        for method in ("GET", "HEAD"):
            client.send(request(path, method))
            answer = client.response(head=method == "HEAD")
            assert answer.status == 500
            assert b"Traceback" not in answer.body and b"secret" not in answer.body
            assert answer.headers["content-type"] == "text/plain; charset=utf-8"
        assert answer.headers["content-length"] != "0"
        client.send(request("/exc_info"))    # the connection goes on
        answer = client.response()
        assert (answer.status, answer.body) == (503, b"replaced\n")
        client.close()
    assert "Traceback" in caplog.text
    assert "web app failed on GET %s from 127.0.0.1:" % path in caplog.text


def test_an_app_failing_mid_stream_resets_the_connection(caplog):
    with serving(failing_app) as server:
        client = Client(server.port)
        client.send(request("/mid"))
        assert client._line() == b"HTTP/1.1 200 OK"
        try:
            rest = client.rest()
        except ConnectionResetError:
            rest = client.buf
        assert not rest.endswith(b"0\r\n\r\n")      # never a whole-looking answer
        client.close()
        # The server answers on.
        client = Client(server.port)
        client.send(request("/before"))
        assert client.response().status == 500
        client.close()
    assert "secret detail mid-stream" in caplog.text


def test_content_length_from_the_app_is_honoured(caplog):
    def app(environ, start_response):
        declared = {"/exact": "10", "/long": "4", "/short": "20"}[environ["PATH_INFO"]]
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", declared)])
        yield b"01234"
        yield b"56789"

    with serving(app) as server:
        client = Client(server.port)
        client.send(request("/exact") + request("/long") + request("/short"))
        exact = client.response()
        assert (exact.headers["content-length"], exact.body, exact.chunks) == ("10", b"0123456789",
                                                                              None)
        assert "transfer-encoding" not in exact.headers
        assert client.response().body == b"0123"
        assert client._line() == b"HTTP/1.1 200 OK"
        with contextlib.suppress(ConnectionResetError):
            client.rest()       # 10 of 20 bytes, then the connection ends
        assert len(client.buf.split(b"\r\n\r\n", 1)[1]) < 20
        client.close()
    assert "more than its Content-Length" in caplog.text
    assert "10 bytes fewer than its Content-Length" in caplog.text


def test_no_body_statuses_and_empty_bodies():
    def app(environ, start_response):
        status = environ["PATH_INFO"][1:] + " Whatever"
        start_response(status, [])
        return [b"dropped"] if status.startswith(("204", "304")) else []

    with serving(app) as server:
        client = Client(server.port)
        client.send(request("/204") + request("/304") + request("/200"))
        for status in (204, 304):
            answer = client.response()
            assert answer.status == status
            assert "content-length" not in answer.headers
            assert "transfer-encoding" not in answer.headers
        empty = client.response()
        assert (empty.headers["content-length"], empty.body) == ("0", b"")
        client.close()


def echo_app(environ, start_response):
    body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    start_response("200 OK", [("Content-Type", environ.get("CONTENT_TYPE", "text/plain"))])
    return [environ["REQUEST_METHOD"].encode() + b" " + body]


def test_a_post_body_is_read_from_wsgi_input():
    body = bytes(range(256)) * 1200
    with serving(echo_app) as server:
        client = Client(server.port)
        head = request("/up", "POST", "Content-Type: application/x-test\r\n"
                                      "Content-Length: %d\r\n" % len(body))
        client.send(head)
        for at in range(0, len(body), 50000):
            client.send(body[at:at + 50000])
        answer = client.response()
        assert answer.body == b"POST " + body
        assert answer.headers["content-type"] == "application/x-test"
        client.close()


def test_expect_100_continue():
    with serving(echo_app) as server:
        client = Client(server.port)
        client.send(request("/up", "PUT", "Expect: 100-continue\r\nContent-Length: 5\r\n"))
        interim = client.response()
        assert (interim.status, interim.headers) == (100, {})
        client.send(b"hello")
        assert client.response().body == b"PUT hello"
        client.close()


def test_the_write_callable():
    def legacy(environ, start_response):
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"a")
        write(b"b")
        return [b"c"]

    def mixed(environ, start_response):
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"1")
        yield b"2"
        write(b"3")
        write(b"")
        yield b"4"
        write(b"5")

    with serving(lambda environ, start: (legacy if environ["PATH_INFO"] == "/legacy"
                                        else mixed)(environ, start)) as server:
        client = Client(server.port)
        client.send(request("/legacy") + request("/mixed"))
        legacy_answer = client.response()
        assert (legacy_answer.body, legacy_answer.headers["content-length"]) == (b"abc", "3")
        mixed_answer = client.response()
        assert (mixed_answer.body, mixed_answer.chunks) == (b"12345", [1, 1, 1, 1, 1])
        client.close()


def test_validator_wrapped_apps_pass(recwarn):
    def app(environ, start_response):
        return {"/stream": streaming_app, "/echo": echo_app}.get(
            environ["PATH_INFO"], text_app())(environ, start_response)

    with serving(wsgiref.validate.validator(app)) as server:
        client = Client(server.port)
        client.send(request("/stream") + request("/text", "HEAD") + request("/text")
                    + request("/echo", "POST", "Content-Length: 3\r\n", body=b"abc")
                    + request("/a%20b?x=1"))
        assert client.response().body == b"".join(ROWS)
        assert client.response(head=True).status == 200
        assert client.response().body == b"fine\n"
        assert client.response().body == b"POST abc"
        assert client.response().body == b"fine\n"
        client.close()
    assert server.requests_by_status == {200: 5}
    assert not [w for w in recwarn if issubclass(w.category, wsgiref.validate.WSGIWarning)]


def test_wsgi_errors_reach_the_log(caplog):
    def app(environ, start_response):
        print("trouble with", environ["PATH_INFO"], file=environ["wsgi.errors"])
        return text_app()(environ, start_response)

    with caplog.at_level(logging.WARNING, "texmate_ds.http"):
        with serving(app) as server:
            client = Client(server.port)
            client.send(request("/%1b[2J"))
            assert client.response().status == 200
            client.close()
    assert "web app: trouble with /\\x1b[2J" in caplog.text


# -- answers worked out on the pool (environ["texmate.offload"]) ---------------

def offloading_app(environ, start_response):
    """/quick answers at once; /slow is worked out on the pool once the
    context's `release` is set; /fail's work raises."""
    path = environ["PATH_INFO"]
    if path == "/quick":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"quick\n"]

    def work(context):
        if path == "/fail":
            raise RuntimeError("the slow part failed")
        assert context["release"].wait(10)
        return b"slow\n"

    def finish(body):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [body]
    return environ[http.OFFLOAD](work, finish)


def test_an_offloaded_answer_leaves_the_loop_free_for_others():
    release = threading.Event()
    with serving(offloading_app, lambda: {"release": release}) as server:
        slow = Client(server.port)
        slow.send(request("/slow") + request("/quick"))
        quick = Client(server.port)
        quick.send(request("/quick"))
        # Answered while /slow's work still waits on its worker thread.
        assert quick.response().body == b"quick\n"
        release.set()
        assert slow.response().body == b"slow\n"
        assert slow.response().body == b"quick\n"   # pipelined, in order
        slow.close()
        quick.close()


def test_offloaded_work_that_fails_answers_500_and_is_logged(caplog):
    with serving(offloading_app, dict) as server:
        client = Client(server.port)
        client.send(request("/fail") + request("/quick"))
        answer = client.response()
        assert answer.status == 500 and b"Traceback" not in answer.body
        assert client.response().body == b"quick\n"
        client.close()
    assert "the slow part failed" in caplog.text


# -- a long-lived answer (a stream of events) ---------------------------------

class EventStream:
    """A WSGI iterable that stays open: ``open`` at once, then a line for
    each `sample` event of A1 on `bus`, woken through environ's WAKE."""

    long_lived = True

    def __init__(self, bus, wake):
        self.lines = [b"open\n"]
        self.subscription = bus.subscribe(["sample"], {"A1"}, size=8, wake=wake)

    @property
    def ready(self):
        return bool(self.lines or len(self.subscription))

    def __iter__(self):
        return self

    def __next__(self):
        self.lines += [b"sample %d\n" % event.data["id"] for event in self.subscription.take()]
        lines, self.lines = self.lines, []
        return b"".join(lines)

    def close(self):
        self.subscription.close()


def stream_head(client):
    status = client._line()
    headers = []
    while True:
        line = client._line()
        if not line:
            return status, headers
        headers.append(line)


def next_chunk(client):
    size = int(client._line(), 16)
    data = client._exactly(size)
    assert client._exactly(2) == b"\r\n"
    return data


def test_a_long_lived_answer_outlives_the_sweep_at_no_cost_until_woken():
    from texmate_ds import events
    bus = events.Bus()

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/event-stream")])
        return EventStream(bus, environ[http.WAKE])

    with serving(app) as server:
        the_loop = server.loop
        counted = []
        # The sweep runs every 0.1 s and closes what was silent for 0.3 s.
        the_loop.call_soon_threadsafe(lambda: (
            the_loop.turn_hooks.append(lambda: counted.append(1)),
            the_loop.every(0.1, lambda: the_loop.sweep(0.3))))
        client = Client(server.port)
        client.send(request("/events"))
        status, headers = stream_head(client)
        assert status == b"HTTP/1.1 200 OK" and b"Transfer-Encoding: chunked" in headers
        assert next_chunk(client) == b"open\n"
        idle = Client(server.port)   # a connection that never asks: swept
        before = len(counted)
        time.sleep(1.5)
        # A dozen sweeps and their turns: the waiting stream costs none.
        assert len(counted) - before < 60, len(counted) - before
        assert idle.closed()
        for unit, sample_id in (("B7", 1), ("A1", 2)):
            the_loop.call_soon_threadsafe(lambda unit=unit, sample_id=sample_id: bus.publish(
                "sample", unit=unit, id=sample_id, timestamp=0, values=(1.0,)))
        assert next_chunk(client) == b"sample 2\n"   # B7's is not for it
        client.close()
        deadline = time.monotonic() + 5
        while bus.wants("sample", "A1") and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not bus.wants("sample", "A1")   # its connection gone, its iterable closed
