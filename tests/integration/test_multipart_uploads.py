"""Forms with files over a real socket: a small site (the real `site.Site`
with test routes, one of them taking files up to 2 MiB) on the real server
loop and HTTPServer, in a thread of this process (conftest.loop_serving),
so tracemalloc sees what the server allocates.

A file larger than the server's default body cap arrives whole without the
server holding it in memory; the route's limit is a 413 before the body is
sent; the CSRF check reads a multipart form; a malformed one is a 400 with
its reason; a route that takes no files still refuses multipart (415); a
body dripping in is a 408; and pipelined bytes stay capped at a default
request's worth, whatever a route takes.
"""

import contextlib
import hashlib
import re
import socket
import threading
import tracemalloc

import pytest

from texmate_ds import config, http, store
from texmate_ds.web import app, site

from conftest import database_settings, loop_serving, read_all

MIB = 1024 * 1024
LIMIT = 2 * MIB
BOUNDARY = b"----WebKitFormBoundaryQ9q2Zr7kLm3xT8bW"
BOUND = 10      # seconds a socket waits: only a hung test ever reaches it


@app.data
def upload(request):
    """Says what arrived: the fields, and each file's size and hash."""
    lines = ["%s=%s" % item for item in sorted(request.form.items())]
    for name, sent in sorted(request.files.items()):
        digest = hashlib.sha256()
        for block in iter(lambda: sent.file.read(65536), b""):
            digest.update(block)
        lines.append("%s: %s %s %d %s" % (name, sent.filename, sent.content_type, sent.size,
                                          digest.hexdigest()))
    return app.text(200, "\n".join(lines) + "\n")


@app.data
def form(request):
    return app.text(200, "%r\n" % sorted(request.form))


@app.public
def csrf(request):
    return app.text(200, request.csrf_token)


RELEASE = threading.Event()


@app.data
def slow(request):
    """An answer worked out on the pool, held until the test lets it go."""
    return app.Later(lambda store: RELEASE.wait(BOUND) and app.text(200, "done\n"))


ROUTES = [
    app.Route("/upload/", upload, methods=("POST",), files=True, body_limit=LIMIT),
    app.Route("/form/", form, methods=("POST",)),
    app.Route("/csrf/", csrf),
    app.Route("/slow/", slow),
]


@contextlib.contextmanager
def serving(tmp_path, engine, **settings):
    """The test site on a real loop, its store on `engine`; yields the
    HTTPServer. The site and its store are made on the loop thread, where
    SQLite wants them."""
    settings = config.Settings(LOGIN_REQUIRED=False,
                               **database_settings(engine, tmp_path / "web.db"), **settings)
    path = store.address(settings)
    # The workers' connections to the same database, as the server's are
    # (a worker makes its own at its first piece of work).
    with loop_serving(None, settings, make_context=lambda: store.Database(path)) as server:
        made = threading.Event()

        def make():
            db = store.Database(path)
            db.migrate()
            server.app = site.Site(db, settings, routes=ROUTES)
            made.set()
        server.loop.call_soon_threadsafe(make)
        assert made.wait(BOUND)
        try:
            yield server
        finally:
            RELEASE.set()
            closed = threading.Event()
            server.loop.call_soon_threadsafe(lambda: (server.app.store.close(), closed.set()))
            closed.wait(BOUND)
            RELEASE.clear()


@pytest.fixture
def web(tmp_path, engine):
    with serving(tmp_path, engine, HTTP_HEADER_TIMEOUT=5) as server:
        yield server


def connect(server):
    return socket.create_connection(("127.0.0.1", server.port), timeout=BOUND)


def answer_of(data):
    """(status, body) of a whole answer."""
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def exchange(server, data):
    """`data` (whole requests, the last with Connection: close) sent on a
    new connection; everything answered."""
    with connect(server) as sock:
        sock.sendall(data)
        return read_all(sock)


def visitor(server):
    """(Cookie header, csrf_token) of an anonymous visitor, as the site
    hands them out."""
    data = exchange(server, b"GET /csrf/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    cookie = re.search(rb"Set-Cookie: (txm_csrf=[^;]+);", data).group(1)
    return b"Cookie: " + cookie + b"\r\n", answer_of(data)[1]


def multipart_body(parts):
    """A body as a browser sends it: `parts` are (name, value) for a text
    field, (name, filename, content) for a file."""
    out = []
    for part in parts:
        out += [b"--", BOUNDARY, b"\r\n", b'Content-Disposition: form-data; name="%s"' % part[0]]
        if len(part) == 3:
            out += [b'; filename="%s"\r\nContent-Type: text/csv' % part[1]]
        out += [b"\r\n\r\n", part[-1], b"\r\n"]
    return b"".join(out + [b"--", BOUNDARY, b"--\r\n"])


def post(path, body, headers=b"", length=None,
         content_type=b"multipart/form-data; boundary=" + BOUNDARY):
    return (b"POST %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n%sContent-Type: %s\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (path, headers, content_type,
                                               len(body) if length is None else length, body))


def file_content(size):
    """`size` bytes of CSV-like lines, each different."""
    lines, total, n = [], 0, 0
    while total < size:
        line = b"2009-01-16 %08d,%d.5,-%d\r\n" % (n, n, n % 97)
        lines.append(line)
        total, n = total + len(line), n + 1
    return b"".join(lines)[:size]


# -- a file arrives whole; memory does not grow with it -----------------------

def test_a_large_upload_arrives_whole_and_is_never_held_in_memory(web):
    cookie, token = visitor(web)
    content = file_content(MIB + MIB // 2)
    assert http.MAX_BODY < len(content) < LIMIT    # over the server's default cap
    request = post(b"/upload/", multipart_body([
        (b"csrf_token", token), (b"duplicates", b"skip"),
        (b"file", b"readings.csv", content)]), cookie)
    tracemalloc.start()
    try:
        data = exchange(web, request)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert answer_of(data) == (200, b"csrf_token=%s\nduplicates=skip\nfile: readings.csv text/csv "
                                    b"%d %s\n" % (token, len(content),
                                                  hashlib.sha256(content).hexdigest().encode()))
    # Everything both threads allocated meanwhile, the server's copies of
    # the body included: a few of its 64 KiB pieces at a time, never the
    # body (it went to a temporary file, then the upload's).
    assert peak < len(content) // 2, "%d bytes allocated at the peak" % peak


# -- refusals -------------------------------------------------------------------

def test_a_body_over_the_routes_limit_is_413_before_it_is_sent(web):
    for path, length, reason in (
            (b"/upload/", LIMIT + 1, b"request body larger than %d bytes\n" % LIMIT),
            # Over the form route's own limit, well under the largest body.
            (b"/form/", MIB, b"a request to /form/ takes a body of %d bytes at most\n"
             % app.MAX_FORM_BYTES)):
        with connect(web) as sock:
            sock.sendall(post(path, b"", b"Expect: 100-continue\r\n", length))
            data = read_all(sock)   # no body sent: the answer comes all the same
        assert data.startswith(b"HTTP/1.1 413 Content Too Large\r\n")
        assert data.endswith(reason)


def test_a_route_up_to_its_limit_takes_the_body(web):
    cookie, token = visitor(web)
    fields = [(b"csrf_token", token), (b"duplicates", b"refuse")]
    overhead = len(multipart_body(fields + [(b"file", b"a.csv", b"")]))
    content = file_content(LIMIT - overhead)
    data = exchange(web, post(b"/upload/", multipart_body(fields + [(b"file", b"a.csv", content)]),
                              cookie))
    assert answer_of(data)[0] == 200
    assert b" %d %s\n" % (len(content), hashlib.sha256(content).hexdigest().encode()) in data


def test_a_multipart_post_without_its_csrf_token_is_403(web):
    cookie, token = visitor(web)
    for fields in ([], [(b"csrf_token", b"0" * 64)]):
        body = multipart_body(fields + [(b"duplicates", b"skip"),
                                        (b"file", b"a.csv", b"time,L1\r\n")])
        status, reason = answer_of(exchange(web, post(b"/upload/", body, cookie)))
        assert (status, reason) == (403, b"this form has expired or did not come from this "
                                         b"site (CSRF check failed): reload it and try again\n")


@pytest.mark.parametrize("body, reason", [
    (multipart_body([(b"csrf_token", b"x")])[:-10],
     b"form: the body ends before its closing boundary\n"),
    (b"--" + BOUNDARY + b"\r\nContent-Disposition: form-data\r\n\r\nx\r\n--" + BOUNDARY + b"--",
     b"form: a part without a name\n"),
    (multipart_body([(b"csrf_token", b"x"), (b"csrf_token", b"y")]),
     b"form: the field 'csrf_token' is given twice\n"),
])
def test_a_malformed_multipart_body_is_400_with_its_reason(web, body, reason):
    cookie, _ = visitor(web)
    assert answer_of(exchange(web, post(b"/upload/", body, cookie))) == (400, reason)


def test_a_bad_boundary_is_400(web):
    body = multipart_body([(b"csrf_token", b"x")])
    assert answer_of(exchange(web, post(b"/upload/", body, content_type=b"multipart/form-data"))) \
        == (400, b"form: the Content-Type gives no boundary\n")


def test_a_route_without_files_still_refuses_multipart(web):
    cookie, token = visitor(web)
    body = multipart_body([(b"csrf_token", token), (b"file", b"a.csv", b"time,L1\r\n")])
    assert answer_of(exchange(web, post(b"/form/", body, cookie))) == (
        415, b"forms must be sent as application/x-www-form-urlencoded\n")
    # Its urlencoded form is read as ever.
    data = exchange(web, post(b"/form/", b"csrf_token=" + token + b"&a=1", cookie,
                              content_type=app.FORM_TYPE.encode()))
    assert answer_of(data) == (200, b"['a', 'csrf_token']\n")


def test_a_multipart_body_must_keep_arriving(tmp_path, engine):
    with serving(tmp_path, engine, HTTP_HEADER_TIMEOUT=1) as server:
        body = multipart_body([(b"csrf_token", b"x"), (b"file", b"a.csv", b"y" * 3000)])
        with connect(server) as sock:
            sock.sendall(post(b"/upload/", b"", length=len(body)) + body[:100])
            data = read_all(sock)
    assert data.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
    assert data.endswith(b"the request body arrived slower than 500 bytes/s\n")


# -- pipelining -------------------------------------------------------------------

def test_bytes_sent_ahead_stay_capped_whatever_a_route_takes(web):
    """While an answer waits for the pool, the next request comes with a
    body its route takes (2 MiB): it is cut off past MAX_AHEAD, which a
    route's limit does not raise."""
    assert http.MAX_AHEAD < LIMIT
    body = multipart_body([(b"csrf_token", b"x"), (b"file", b"a.csv", file_content(LIMIT - 300))])
    data = b"GET /slow/ HTTP/1.1\r\nHost: x\r\n\r\n" + post(b"/upload/", body)
    with connect(web) as sock:
        try:
            sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass        # cut off while still sending
        answered = read_all(sock)   # reset: nothing, not even the first answer
    RELEASE.set()
    assert answered == b""
