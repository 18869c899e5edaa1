"""The sans-IO HTTP request parser, split_target, build_environ,
check_response, and how an app's body limits are read.

Every parser case is fed whole and split in two at every byte offset, and
must give the same events each way (a body may come in more `Data` pieces;
adjacent ones are joined before comparing).
"""

import io
import random
import wsgiref.validate

import pytest

from texmate_ds.http import (
    END,
    MAX_BODY,
    MAX_HEAD,
    MAX_LINE,
    Data,
    ErrorStream,
    Mounted,
    ProtocolError,
    RequestHead,
    RequestParser,
    build_environ,
    check_response,
    largest_body_of,
    limit_of,
    split_target,
)


def drain(parser):
    events = []
    while True:
        event = parser.next_event()
        if event is None:
            return events
        events.append(event)


def events_of(*chunks):
    parser = RequestParser()
    events = []
    for chunk in chunks:
        parser.feed(chunk)
        events += drain(parser)
    joined = []
    for event in events:
        if type(event) is Data and joined and type(joined[-1]) is Data:
            joined[-1] = Data(joined[-1].data + event.data)
        else:
            joined.append(event)
    return joined


def parse(data):
    """The events of `data`, checked to be the same at every split."""
    whole = events_of(data)
    for cut in range(1, len(data)):
        assert events_of(data[:cut], data[cut:]) == whole, "split at %d" % cut
    return whole


def head(method="GET", target="/", version="HTTP/1.1", headers=(("Host", "x"),),
         keep_alive=True, content_length=0, expect_continue=False):
    return RequestHead(method, target, version, list(headers), keep_alive, content_length,
                       expect_continue)


def error(status):
    """The one event of a request refused with `status` (reason not compared)."""
    def check(events):
        assert len(events) == 1 and type(events[0]) is ProtocolError, events
        assert events[0].status == status, events
        assert "\n" not in events[0].reason
    return check


# -- requests that parse ------------------------------------------------------

def test_get_with_crlf():
    assert parse(b"GET /a?b=1 HTTP/1.1\r\nHost: x\r\n\r\n") == [
        head(target="/a?b=1"), END]


def test_bare_lf_and_leading_empty_lines():
    assert parse(b"\r\n\nGET / HTTP/1.1\nHost: x\n\n") == [head(), END]


def test_field_values_lose_surrounding_whitespace_only():
    assert parse(b"GET / HTTP/1.1\r\nHost:x\r\nX-A: \t a  b \t\r\nX-Empty:\r\n\r\n") == [
        head(headers=[("Host", "x"), ("X-A", "a  b"), ("X-Empty", "")]), END]


def test_latin1_values_pass_through():
    assert parse(b"GET / HTTP/1.1\r\nHost: x\r\nX-N: caf\xe9\r\n\r\n")[0].headers[1] == (
        "X-N", "caf\xe9")


def test_post_body_then_pipelined_request():
    data = (b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello world"
            b"GET /next HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert parse(data) == [
        head("POST", "/up", headers=[("Host", "x"), ("Content-Length", "11")],
             content_length=11),
        Data(b"hello world"), END,
        head(target="/next", headers=[("Host", "x"), ("Connection", "close")],
             keep_alive=False), END]


def test_body_may_hold_anything():
    body = b"\r\n\r\nGET / HTTP/1.1\r\n\x00\xff"
    data = b"PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    assert parse(data)[1:] == [Data(body), END]


@pytest.mark.parametrize("version,connection,keep_alive", [
    ("HTTP/1.1", None, True),
    ("HTTP/1.1", "close", False),
    ("HTTP/1.1", "Upgrade, CLOSE", False),
    ("HTTP/1.0", None, False),
    ("HTTP/1.0", "Keep-Alive", True),
])
def test_keep_alive(version, connection, keep_alive):
    fields = [("Host", "x")] + ([("Connection", connection)] if connection else [])
    data = ("GET / %s\r\n%s\r\n" % (version, "".join("%s: %s\r\n" % f for f in fields))).encode()
    assert parse(data) == [head(version=version, headers=fields, keep_alive=keep_alive), END]


def test_http10_needs_no_host():
    assert parse(b"GET / HTTP/1.0\r\n\r\n") == [
        head(version="HTTP/1.0", headers=[], keep_alive=False), END]


def test_repeated_equal_content_lengths_are_one():
    data = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3, 3\r\nContent-Length: 003\r\n\r\nabc"
    events = parse(data)
    assert events[0].content_length == 3 and events[1:] == [Data(b"abc"), END]


def test_expect_continue_only_with_a_body():
    with_body = parse(b"POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-Continue\r\n"
                      b"Content-Length: 1\r\n\r\nz")
    assert with_body[0].expect_continue
    without = parse(b"POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n\r\n")
    assert not without[0].expect_continue


def test_absolute_form_target():
    assert parse(b"GET http://example.com:8080/p?q HTTP/1.1\r\nHost: x\r\n\r\n") == [
        head(target="http://example.com:8080/p?q"), END]


def test_body_at_the_cap_is_taken():
    events = events_of(b"PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % MAX_BODY,
                       b"z" * MAX_BODY)
    assert events[1:] == [Data(b"z" * MAX_BODY), END]


# -- the limits, exactly at their edges ---------------------------------------

def request_line(length, ending=b"\r\n"):
    """A request line `length` bytes long, counted up to its LF."""
    fixed = len(b"GET / HTTP/1.1") + len(ending) - 1
    return b"GET /" + b"a" * (length - fixed) + b" HTTP/1.1" + ending


@pytest.mark.parametrize("ending", [b"\r\n", b"\n"])
def test_request_line_at_the_limit_is_taken(ending):
    events = parse(request_line(MAX_LINE, ending) + b"Host: x\r\n\r\n")
    assert [type(e) for e in events] == [RequestHead, type(END)]


@pytest.mark.parametrize("ending", [b"\r\n", b"\n"])
def test_request_line_over_the_limit_is_414(ending):
    error(414)(parse(request_line(MAX_LINE + 1, ending) + b"Host: x\r\n\r\n"))


def test_unfinished_request_line_over_the_limit_is_414():
    error(414)(parse(b"GET /" + b"a" * MAX_LINE))


def request_head(length):
    """A request head `length` bytes long, counted up to its final LF."""
    start = b"GET / HTTP/1.1\r\nHost: x\r\nX-Pad: "
    return start + b"p" * (length - len(start) - len(b"\r\n\r")) + b"\r\n\r\n"


def test_head_at_the_limit_is_taken():
    data = request_head(MAX_HEAD)
    assert len(data) == MAX_HEAD + 1
    assert [type(e) for e in parse(data)] == [RequestHead, type(END)]


def test_head_over_the_limit_is_431():
    error(431)(parse(request_head(MAX_HEAD + 1)))


def test_unfinished_head_over_the_limit_is_431():
    error(431)(parse(b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X: y\r\n" * (MAX_HEAD // 6)))


def test_body_over_the_cap_is_413_before_it_arrives():
    error(413)(parse(b"PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (MAX_BODY + 1)))


def test_a_parser_may_take_larger_bodies():
    parser = RequestParser(3 * MAX_BODY)
    parser.feed(b"PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (3 * MAX_BODY))
    assert parser.next_event().content_length == 3 * MAX_BODY
    parser = RequestParser(3 * MAX_BODY)
    parser.feed(b"PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (3 * MAX_BODY + 1))
    assert parser.next_event() == ProtocolError(413, "request body larger than %d bytes"
                                                % (3 * MAX_BODY))


def test_a_length_of_thousands_of_digits_is_413():
    error(413)(parse(b"PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 1" + b"0" * 5000 + b"\r\n\r\n"))


# -- requests refused ---------------------------------------------------------

@pytest.mark.parametrize("data,status", [
    (b"GET / HTTP/1.1\r\nHost : x\r\n\r\n", 400),          # whitespace before the colon
    (b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n", 400),   # obs-fold
    (b"GET / HTTP/1.1\r\n Host: x\r\n\r\n", 400),          # whitespace before the first field
    (b"GET / HTTP/1.1\r\nHost: x\rX: y\r\n\r\n", 400),     # bare CR
    (b"GET / HTTP/1.1\r\nHost: x\r\nNo colon\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x1bb\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHo\xf6st: x\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\n\r\n", 400),                      # no Host
    (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 400),
    (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3, 4\r\n\r\nabcd", 400),
    (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +1\r\n\r\na", 400),
    (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: \r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: \xb2\r\n\r\n", 400),
    (b"GET / HTTP/1.1 \r\nHost: x\r\n\r\n", 400),
    (b"GET  / HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    (b"GET /\r\n\r\n", 400),                               # HTTP/0.9
    (b"G(T / HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    (b"GET / http/1.1\r\nHost: x\r\n\r\n", 400),
    (b"GET / HTTP/1.10\r\nHost: x\r\n\r\n", 400),
    (b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    (b"CONNECT x:443 HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    (b"GET /a#b HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    (b"GET /caf\xe9 HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    (b"GET /a\x01 HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    (b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505),
    (b"GET / HTTP/1.2\r\nHost: x\r\n\r\n", 505),
    (b"GET / HTTP/0.9\r\n\r\n", 505),
    (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 501),
    (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked"
     b"\r\n\r\n0\r\n\r\n", 501),
])
def test_refused(data, status):
    error(status)(parse(data))


def test_nothing_after_an_error():
    parser = RequestParser()
    parser.feed(b"GET / HTTP/9.9\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert drain(parser)[0].status == 505
    parser.feed(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert drain(parser) == []


def test_an_error_follows_the_requests_before_it():
    events = parse(b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost x\r\n\r\n")
    assert events[:2] == [head(target="/1"), END]
    error(400)(events[2:])


def test_mangled_requests_never_upset_the_parser():
    """Seeded random damage to valid requests: whatever comes out, it comes
    out the same at every split, and nothing raises."""
    rng = random.Random(9112)
    valid = [b"GET /a?b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
             b"POST /p HTTP/1.0\r\nContent-Length: 3\r\n\r\nabcGET / HTTP/1.1\nHost: y\n\n"]
    for _ in range(300):
        data = bytearray(rng.choice(valid))
        for _ in range(rng.randint(1, 3)):
            at = rng.randrange(len(data))
            data[at:at + rng.randint(0, 2)] = bytes(rng.choice(b"\r\n :,\x00\x7fa0")
                                                    for _ in range(rng.randint(0, 2)))
        parse(bytes(data))


# -- where the parser stands ----------------------------------------------------

def test_partial_and_pending():
    parser = RequestParser()
    assert not parser.partial()
    parser.feed(b"\r\n")
    assert drain(parser) == [] and not parser.partial()       # empty lines are skipped
    parser.feed(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n")
    assert drain(parser) == [] and parser.partial()
    parser.feed(b"\r\nab")
    assert [type(e) for e in drain(parser)] == [RequestHead, Data] and parser.partial()
    parser.feed(b"cdGET / HTTP/1.1\r\n")
    assert drain(parser)[-1] is END
    assert parser.pending() == len(b"GET / HTTP/1.1\r\n")


# -- targets and the environ --------------------------------------------------

@pytest.mark.parametrize("target,parts", [
    ("/", (None, "/", "")),
    ("/a/b?x=1&y", (None, "/a/b", "x=1&y")),
    ("/a?", (None, "/a", "")),
    ("/a?b?c", (None, "/a", "b?c")),
    ("http://h:1", ("h:1", "/", "")),
    ("HTTPS://h/p?q", ("h", "/p", "q")),
    ("*", None),
    ("h:443", None),
    ("?q", None),
    ("ftp://h/", None),
])
def test_split_target(target, parts):
    assert split_target(target) == parts


def test_environ():
    request = head("POST", "/a%20b/%2Fc%e9?x=%20", headers=[
        ("Host", "example.com"), ("Content-Type", "text/csv"), ("Content-Length", "04"),
        ("X-Many", "1"), ("x-many", "2"), ("X_Spoofed", "yes")], content_length=4)
    environ = build_environ(request, io.BytesIO(b"body"), ("127.0.0.1", 8080), ("10.0.0.9", 5555),
                            ErrorStream())
    wsgiref.validate.check_environ(environ)
    assert environ["wsgi.input"].read() == b"body"
    for key in ("wsgi.input", "wsgi.errors"):
        del environ[key]
    assert environ == {
        "REQUEST_METHOD": "POST", "SCRIPT_NAME": "", "PATH_INFO": "/a b//c\xe9",
        "QUERY_STRING": "x=%20", "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8080",
        "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "10.0.0.9",
        "CONTENT_TYPE": "text/csv", "CONTENT_LENGTH": "4",
        "HTTP_HOST": "example.com", "HTTP_X_MANY": "1,2",
        "wsgi.version": (1, 0), "wsgi.url_scheme": "http", "wsgi.multithread": False,
        "wsgi.multiprocess": False, "wsgi.run_once": False,
    }


def test_environ_of_an_absolute_target_takes_its_host():
    environ = build_environ(head(target="http://other:81/p"), io.BytesIO(), ("::1", 80),
                            ("::1", 1), ErrorStream())
    assert (environ["HTTP_HOST"], environ["PATH_INFO"]) == ("other:81", "/p")


def test_error_stream_logs_lines_escaped(caplog):
    stream = ErrorStream()
    stream.write("one\ntw")
    stream.writelines(["o\x1b[31m\n", "three"])
    stream.flush()
    assert [r.getMessage() for r in caplog.records] == [
        "web app: one", "web app: two\\x1b[31m", "web app: three"]


@pytest.mark.parametrize("status,headers,length", [
    ("200 OK", [("Content-Type", "text/plain")], None),
    ("404 Not Found", [("Content-Length", "12"), ("X-Note", "caf\xe9\tok")], 12),
    ("599 ", [], None),
])
def test_check_response_takes(status, headers, length):
    assert check_response(status, headers) == length


@pytest.mark.parametrize("status,headers", [
    (b"200 OK", []),
    ("200", []),
    ("20 OK", []),
    ("200 OK\r\nX-Injected: 1", []),
    ("200 OK", [("X-A", "1\r\nX-Injected: 1")]),
    ("200 OK", [("X A", "1")]),
    ("200 OK", [("X-A:", "1")]),
    ("200 OK", [("X-A", b"1")]),
    ("200 OK", [("Connection", "close")]),
    ("200 OK", [("Transfer-Encoding", "chunked")]),
    ("200 OK", [("Content-Length", "-1")]),
])
def test_check_response_refuses(status, headers):
    with pytest.raises(ValueError):
        check_response(status, headers)


def test_a_closed_parser_holds_nothing():
    parser = RequestParser()
    parser.feed(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\n\r\nabc")
    parser.close()
    parser.feed(b"defghi" * 1000)
    assert (parser.pending(), parser.next_event()) == (0, None)


# -- an app's body limits -----------------------------------------------------

class Limited:
    """A WSGI app that says what bodies it takes."""

    def __init__(self, limits, largest=None):
        self.limits = limits
        if largest is not None:
            self.largest_body = largest

    def __call__(self, environ, start_response):
        raise AssertionError("not called")

    def body_limit(self, method, path):
        return self.limits.get(path, 0)


def plain_app(environ, start_response):
    raise AssertionError("not called")


def test_an_app_that_says_nothing_takes_max_body():
    assert (largest_body_of(plain_app), limit_of(plain_app, "POST", "/")) == (MAX_BODY, MAX_BODY)


def test_an_app_limit_stops_at_its_largest_body():
    small = Limited({"/a": 10, "/big": 9 * MAX_BODY})
    assert largest_body_of(small) == MAX_BODY
    assert (limit_of(small, "POST", "/a"), limit_of(small, "POST", "/big")) == (10, MAX_BODY)
    large = Limited({"/big": 9 * MAX_BODY, "/huge": 99 * MAX_BODY}, largest=10 * MAX_BODY)
    assert largest_body_of(large) == 10 * MAX_BODY
    assert limit_of(large, "POST", "/big") == 9 * MAX_BODY
    assert limit_of(large, "POST", "/huge") == 10 * MAX_BODY
    # Saying less than MAX_BODY lowers nothing: MAX_BODY is a floor.
    assert largest_body_of(Limited({}, largest=5)) == MAX_BODY


def test_mounted_apps_keep_their_own_limits():
    root = Limited({"/upload/": 4 * MAX_BODY}, largest=4 * MAX_BODY)
    tool = Limited({"/x": 2 * MAX_BODY})   # says no largest_body: MAX_BODY at most
    mounted = Mounted(root, [("/tools/t/", tool), ("/tools/p/", plain_app)])
    assert mounted.largest_body == 4 * MAX_BODY
    assert limit_of(mounted, "POST", "/upload/") == 4 * MAX_BODY
    assert limit_of(mounted, "POST", "/tools/t/x") == MAX_BODY
    assert limit_of(mounted, "POST", "/tools/p/x") == MAX_BODY
    assert limit_of(mounted, "POST", "/tools/t/other") == 0
    assert Mounted(plain_app, []).largest_body == MAX_BODY
