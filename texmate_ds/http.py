"""HTTP/1.1 on the web port: a sans-IO request parser, the connection, and a
WSGI bridge, so the web UI (and any site HTTP app) is a plain WSGI app.

Three layers, each usable without the next, as in ttp.py, and a router:

1. `RequestParser` turns received bytes into events (h11 style:
   ``feed(data)``, then ``next_event()`` until it returns None): a
   `RequestHead`, the body as `Data`, `END` once the request is complete,
   or a `ProtocolError` carrying the status to answer. It reads RFC 9112
   strictly where leniency has let requests be smuggled past other parsers
   (whitespace before a colon, obs-fold, bare CR, conflicting
   Content-Length) and caps what it holds: the request line (`MAX_LINE`,
   414), the head (`MAX_HEAD`, 431) and the body (413): MAX_BODY, or the
   largest body the app takes (`largest_body_of`). Each request's own
   limit, often smaller, is the app's (`limit_of`), asked before a byte
   of the body is read. Bodies come with Content-Length only; a request
   Transfer-Encoding is 501.
2. The bridge: `build_environ` makes a request's PEP 3333 environ, and
   `WSGIResponse` is the producer that runs the app. Its first ``more()``
   calls the app, each later one takes the next item of the app's
   iterable, so an answer of a million CSV rows is pulled chunk by chunk as
   the socket drains, never joined. The head goes out with the first
   non-empty chunk (until then ``start_response(..., exc_info)`` may still
   replace it); a body of unknown length is chunked for HTTP/1.1 and ends
   with the connection for HTTP/1.0. An iterable may say it is not
   ``ready`` (nothing to send yet, it is not done): the channel then waits
   at no cost until ``environ["texmate.wake"]()`` is called on the loop
   thread. One that is also ``long_lived`` (a stream of events) keeps its
   connection from the idle sweep while it waits (see `loop.Channel`).
   Besides ``texmate.wake`` the environ offers the server's worker pool
   (``texmate.offload``, see `Offloaded`) and its chores
   (``texmate.chores``: a `chores.Chores`, for long writes a chunk per
   turn), where the server has them.
3. `HTTPChannel` reads, feeds its parser and answers one request at a
   time: a pipelined request is dispatched once the answer before it is
   written, so answers go out in order and one app at a time runs for a
   connection. It closes a connection idle for ``HTTP_HEADER_TIMEOUT`` and
   answers 408 to a request head that takes longer. `HTTPServer` holds the
   app, the settings and the counters.

   With HTTPS on (HTTPS_CERT_FILE, HTTPS_KEY_FILE) each channel has a
   `tls.TLSLayer` as its transport (see `loop.Channel`): the loop reads
   and writes ciphertext, the parser and the answers see plaintext, and
   nothing else changes. The handshake is driven by the client's bytes on
   the same loop, and the idle timer above times it: a connection that
   has not completed its handshake and sent a request's first byte within
   HTTP_HEADER_TIMEOUT is closed. A client whose TLS fails (a plain-HTTP
   request, garbage) is closed without an answer, in one log line.
   ``wsgi.url_scheme`` is ``https`` on such a server.

   Behind a TLS-terminating reverse proxy (BEHIND_HTTPS_PROXY),
   ``wsgi.url_scheme`` is ``https`` for every request, so cookies are
   always ``Secure``, and a request from one of PROXY_ADDRESSES has
   X-Forwarded-For believed (`client_address`): REMOTE_ADDR is the
   client's, so the sign-in throttle counts clients, not the proxy.

4. `Mounted` sends each request under the URL prefix of one of the site's
   own WSGI apps (``[httpapps]``, loaded by `plugins.load_http_apps`) to
   it, everything else to the web UI.

A failure stays in its request: an app that raises before its head went out
answers 500 (logged with the traceback, which never reaches the browser);
after that the connection is reset, so a browser never takes a truncated
answer for a whole one. Anything a client sent is escaped before it is
logged.
"""

import collections
import email.utils
import functools
import io
import ipaddress
import logging
import re
import socket
import struct
import tempfile
import time
import urllib.parse

from texmate_ds import __version__, config, loop, tls

log = logging.getLogger("texmate_ds.http")

# Longest request line, and request head, in bytes: counted up to the LF
# that ends them (a CR before it counts). RFC 9112 asks for at least 8000.
MAX_LINE = 8192
MAX_HEAD = 16384
# Largest request body of an app that says nothing of its bodies. An app
# may say more (`largest_body_of`); each request's own limit comes from
# the app (`limit_of`), and a longer Content-Length is a 413 before any of
# the body is read.
MAX_BODY = 1024 * 1024
# Bodies longer than this wait for their app in a temporary file, not in
# memory: a thousand connections each holding a body cost no more than
# their heads. (A form's files are read from that file into files of
# their own, web/app.py: a large upload is on disk twice at most, never in
# memory.)
SPOOL_BYTES = 16384
# Bytes a second a request body must keep arriving at, once its head is in
# and HTTP_HEADER_TIMEOUT has passed (Apache mod_reqtimeout's MinRate).
BODY_MIN_RATE = 500
# Bytes of pipelined requests a client may send ahead while an answer is
# being written: a whole request of the default size. Past that it is cut
# off, so a client that sends without reading cannot make the server
# buffer without bound. A route that takes a larger body does not raise
# it: that body is read once its request is the one being served (into a
# file), never held ahead in memory.
MAX_AHEAD = MAX_HEAD + MAX_BODY

SERVER = "texmate_ds/" + __version__
PHRASES = {
    400: "Bad Request", 408: "Request Timeout", 413: "Content Too Large",
    414: "URI Too Long", 431: "Request Header Fields Too Large",
    500: "Internal Server Error", 501: "Not Implemented",
    505: "HTTP Version Not Supported",
}
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
# The environ key of the server's offer to work an answer out off the loop
# (see Offloaded); WSGI servers other than ours leave it out.
OFFLOAD = "texmate.offload"
# A response's first chunk before it is taken (None is an empty body's).
_UNTAKEN = object()
# The environ key of the callable (loop thread only) that has the server
# look at the app's iterable again once it is `ready`; see WSGIResponse.
WAKE = "texmate.wake"
# The environ key of the server's `chores.Chores`, which takes long writes a
# chunk per loop turn; WSGI servers other than ours leave it out.
CHORES = "texmate.chores"
REFUSAL = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
           b"Content-Length: 30\r\nConnection: close\r\n\r\n"
           b"too many connections; retry.\r\n")


def _escaped(text):
    """`text` fit for a log line: control and non-ASCII characters escaped."""
    return text.encode("unicode_escape").decode("ascii")


# -- 1. sans-IO ---------------------------------------------------------------

RequestHead = collections.namedtuple(
    "RequestHead", "method target version headers keep_alive content_length expect_continue")
RequestHead.__doc__ = """A request line and its header fields (latin-1 str),
with what they mean for the connection: `keep_alive`, `content_length` (0
without a body) and `expect_continue` (the client waits for ``100
Continue`` before it sends the body)."""
Data = collections.namedtuple("Data", "data")
EndOfRequest = collections.namedtuple("EndOfRequest", "")
END = EndOfRequest()
ProtocolError = collections.namedtuple("ProtocolError", "status reason")

_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_REQUEST_LINE = re.compile(r"(%s) ([\x21-\x7e]+) HTTP/([0-9])\.([0-9])" % _TOKEN)
_FIELD_NAME = re.compile(_TOKEN)
# Control characters other than HTAB: never in a field value (CR, LF and
# NUL would split or end it for some other reader).
_BAD_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_DIGITS = re.compile(r"[0-9]+\Z")
_BLANK_LINES = re.compile(rb"[\r\n]*")
# origin-form (/path?query) or absolute-form (http://host/path?query).
_TARGET = re.compile(r"(?:(?i:https?)://([^/?#]*))?(/[^?#]*)?(?:\?([^#]*))?\Z")


def split_target(target):
    """``(authority or None, path, query)`` of an origin-form or
    absolute-form request target; None for any other form."""
    match = _TARGET.match(target)
    if match is None or match.group(1) is None and match.group(2) is None:
        return None
    authority, path, query = match.groups()
    return authority, path or "/", query or ""


class RequestParser:
    """Splits received bytes into request events; a body longer than
    `max_body` is a 413.

    ``next_event()`` returns the next `RequestHead`, `Data`, `END` or
    `ProtocolError`, or None when it needs more bytes. After a
    `ProtocolError`, or `close()`, it returns None for good and holds no
    bytes: the connection is answered and closed. Lines end with CRLF or a bare LF; empty lines before a
    request line are skipped (RFC 9112 section 2.2). However the bytes are
    split, the events are the same (apart from how a body is cut into
    `Data`).
    """

    def __init__(self, max_body=MAX_BODY):
        self._max_body = max_body
        self._buf = bytearray()
        # Where the search for the end of the head resumes.
        self._scanned = 0
        # Body bytes still due; None while reading a head.
        self._body_left = None
        self._failed = False

    def feed(self, data):
        if not self._failed:
            self._buf += data

    def close(self):
        """No more requests on this connection: drop what is buffered, and
        whatever is fed from now on."""
        self._failed = True
        self._buf.clear()

    def pending(self):
        """Bytes received but not yet returned in an event."""
        return len(self._buf)

    def partial(self):
        """True while part of a request (its head or body) is in, not all.
        Meaningful once ``next_event()`` has returned None."""
        return bool(self._buf) or self._body_left is not None

    def next_event(self):
        if self._failed:
            return None
        if self._body_left is None:
            return self._head()
        return self._body()

    def _fail(self, status, reason):
        self._failed = True
        return ProtocolError(status, reason)

    def _body(self):
        left = self._body_left
        if not left:
            self._body_left = None
            return END
        if not self._buf:
            return None
        data = bytes(self._buf[:left])
        del self._buf[:len(data)]
        self._body_left = left - len(data)
        return Data(data)

    def _head(self):
        buf = self._buf
        blank = _BLANK_LINES.match(buf).end()
        if blank:
            del buf[:blank]
            self._scanned = 0
        line_end = buf.find(b"\n", 0, MAX_LINE + 1)
        if line_end < 0:
            if len(buf) > MAX_LINE:
                return self._fail(414, "request line longer than %d bytes" % MAX_LINE)
            return None
        end = self._head_end(max(line_end, self._scanned))
        if end < 0:
            if len(buf) > MAX_HEAD:
                return self._fail(431, "request head longer than %d bytes" % MAX_HEAD)
            self._scanned = max(len(buf) - 2, 0)
            return None
        text = bytes(buf[:end]).decode("latin-1")
        del buf[:end + 1]
        self._scanned = 0
        return self._parse(text)

    def _head_end(self, start):
        """Offset of the LF of the empty line that ends the head, or -1.
        Only an end within MAX_HEAD is looked for."""
        limit = MAX_HEAD + 1
        found = [at + extra for at, extra in ((self._buf.find(b"\n\n", start, limit), 1),
                                              (self._buf.find(b"\n\r\n", start, limit), 2))
                 if at >= 0]
        return min(found) if found else -1

    def _parse(self, text):
        lines = [line[:-1] if line.endswith("\r") else line for line in text.split("\n")[:-1]]
        if any("\r" in line for line in lines):
            return self._fail(400, "bare CR in the request head")
        request = _REQUEST_LINE.fullmatch(lines[0])
        if request is None or split_target(request.group(2)) is None:
            return self._fail(400, "malformed request line")
        method, target, major, minor = request.groups()
        if (major, minor) not in (("1", "0"), ("1", "1")):
            return self._fail(505, "only HTTP/1.0 and HTTP/1.1 are served")
        headers = []
        for line in lines[1:]:
            if line[:1] in (" ", "\t"):
                return self._fail(400, "obsolete line folding in the request head")
            name, colon, value = line.partition(":")
            if not colon or not _FIELD_NAME.fullmatch(name) or _BAD_VALUE.search(value):
                return self._fail(400, "malformed header field")
            headers.append((name, value.strip(" \t")))
        return self._meaning(method, target, "HTTP/%s.%s" % (major, minor), headers)

    def _meaning(self, method, target, version, headers):
        values = collections.defaultdict(list)
        for name, value in headers:
            values[name.lower()].append(value)
        hosts = values["host"]
        if len(hosts) > 1 or version == "HTTP/1.1" and not hosts:
            return self._fail(400, "an HTTP/1.1 request needs exactly one Host header")
        if values["transfer-encoding"]:
            return self._fail(501, "request bodies must come with Content-Length, "
                                   "not Transfer-Encoding")
        lengths = {part.strip() for value in values["content-length"]
                   for part in value.split(",")}
        if not all(_DIGITS.match(n) for n in lengths):
            return self._fail(400, "invalid Content-Length")
        lengths = {n.lstrip("0") for n in lengths}
        if len(lengths) > 1:
            return self._fail(400, "conflicting Content-Length values")
        digits = lengths.pop() if lengths else ""
        # The length of the digits first: int() of thousands of them is slow
        # or refused.
        if len(digits) > len(str(self._max_body)) or int(digits or 0) > self._max_body:
            return self._fail(413, "request body larger than %d bytes" % self._max_body)
        length = int(digits or 0)
        connection = {token.strip().lower() for value in values["connection"]
                      for token in value.split(",")}
        if version == "HTTP/1.1":
            keep_alive = "close" not in connection
        else:
            keep_alive = "keep-alive" in connection
        expect_continue = (version == "HTTP/1.1" and length > 0 and any(
            value.strip().lower() == "100-continue" for value in values["expect"]))
        self._body_left = length
        return RequestHead(method, target, version, headers, keep_alive, length,
                           expect_continue)


# -- 2. the WSGI bridge -------------------------------------------------------

class ErrorStream:
    """``wsgi.errors``: what an app writes goes to the log, a line at a
    time, escaped (it may quote what a client sent)."""

    def __init__(self):
        self._partial = ""

    def write(self, text):
        lines = (self._partial + text).split("\n")
        self._partial = lines.pop()
        for line in lines:
            log.warning("web app: %s", _escaped(line))

    def writelines(self, lines):
        for line in lines:
            self.write(line)

    def flush(self):
        if self._partial:
            self.write("\n")


def request_path(head):
    """The decoded path of a request (PATH_INFO, latin-1 as PEP 3333 has it)."""
    return urllib.parse.unquote_to_bytes(split_target(head.target)[1]).decode("latin-1")


def _address(text):
    """`text` as an IP address, an IPv4-mapped IPv6 one as the IPv4 it
    maps (a dual-stack socket's peers); ValueError if it is none."""
    address = ipaddress.ip_address(text.strip())
    return getattr(address, "ipv4_mapped", None) or address


def client_address(peer, forwarded_for, proxies):
    """The address a request comes from: the TCP `peer` (text), unless the
    peer is in `proxies` (trusted reverse proxies: ipaddress networks) and
    `forwarded_for` (X-Forwarded-For, its fields joined by commas, or
    None) names one.

    Each proxy appends the address it got the request from, so the list is
    read from the right, skipping trusted proxies: the first other address
    is the client. Whatever lies left of it the client wrote itself and is
    never believed. If every address is a proxy's, the leftmost is the
    client (a browser on the proxy's host). An entry read on the way that
    is not an IP address leaves the peer."""
    if not forwarded_for or not proxies:
        return peer
    try:
        if not any(_address(peer) in network for network in proxies):
            return peer
        for hop in reversed(forwarded_for.split(",")):
            address = _address(hop)
            if not any(address in network for network in proxies):
                break
    except ValueError:
        return peer
    return str(address)


def build_environ(head, body, local, remote, errors, scheme="http", proxies=()):
    """The PEP 3333 environ of a request: `head` (a `RequestHead`), its
    `body` (a file at its start), the server's and the client's (host, port), the
    ``wsgi.errors`` stream, ``wsgi.url_scheme``, and the trusted reverse
    proxies whose X-Forwarded-For is believed (`client_address`).

    Header fields whose names hold ``_`` are left out: as ``HTTP_X_USER``
    they would pass for ``X-User``, which a proxy in front may have set."""
    authority, path, query = split_target(head.target)
    environ = {
        "REQUEST_METHOD": head.method,
        "SCRIPT_NAME": "",
        "PATH_INFO": urllib.parse.unquote_to_bytes(path).decode("latin-1"),
        "QUERY_STRING": query,
        "SERVER_NAME": local[0],
        "SERVER_PORT": str(local[1]),
        "SERVER_PROTOCOL": head.version,
        "REMOTE_ADDR": remote[0],
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scheme,
        "wsgi.input": body,
        "wsgi.errors": errors,
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    for name, value in head.headers:
        key = name.upper().replace("-", "_")
        if key == "CONTENT_LENGTH":
            environ[key] = str(head.content_length)
        elif key == "CONTENT_TYPE":
            environ[key] = value
        elif "_" not in name:
            key = "HTTP_" + key
            environ[key] = environ[key] + "," + value if key in environ else value
    if authority is not None:
        # An absolute-form target's host wins over Host (RFC 9112 3.2.2).
        environ["HTTP_HOST"] = authority
    if proxies:
        environ["REMOTE_ADDR"] = client_address(
            remote[0], environ.get("HTTP_X_FORWARDED_FOR"), proxies)
    return environ


def head_bytes(status, headers, version, keep_alive):
    """A response head: status line, Date and Server unless given, the
    header fields, and what becomes of the connection."""
    names = {name.lower() for name, _ in headers}
    lines = ["HTTP/1.1 " + status]
    if "date" not in names:
        lines.append("Date: " + email.utils.formatdate(usegmt=True))
    if "server" not in names:
        lines.append("Server: " + SERVER)
    lines.extend("%s: %s" % header for header in headers)
    if not keep_alive:
        lines.append("Connection: close")
    elif version == "HTTP/1.0":
        lines.append("Connection: keep-alive")
    lines.append("\r\n")
    return "\r\n".join(lines).encode("latin-1")


def error_answer(status, reason, head=None):
    """A whole plain-text answer with a one-line reason. Without the
    request's `head` (a protocol error) the connection closes after it."""
    body = (reason + "\n").encode("latin-1")
    fields = [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))]
    if head is None:
        return head_bytes("%d %s" % (status, PHRASES[status]), fields, "HTTP/1.1", False) + body
    answer = head_bytes("%d %s" % (status, PHRASES[status]), fields, head.version, head.keep_alive)
    return answer if head.method == "HEAD" else answer + body


_STATUS = re.compile(r"[1-9][0-9][0-9] [^\x00-\x1f\x7f]*\Z")
_HOP_BY_HOP = frozenset(("connection", "keep-alive", "proxy-authenticate",
                         "proxy-authorization", "te", "trailer", "trailers",
                         "transfer-encoding", "upgrade"))


def check_response(status, headers):
    """What an app gave ``start_response``, checked (PEP 3333): a bad one
    raises ValueError. Returns the app's Content-Length, or None."""
    if not isinstance(status, str) or not _STATUS.match(status):
        raise ValueError("invalid status %r" % (status,))
    length = None
    for name, value in headers:
        if not (isinstance(name, str) and isinstance(value, str)
                and _FIELD_NAME.fullmatch(name) and not _BAD_VALUE.search(value)):
            raise ValueError("invalid header field %r: %r" % (name, value))
        lower = name.lower()
        if lower in _HOP_BY_HOP:
            raise ValueError("hop-by-hop header field %s: the server sends those" % name)
        if lower == "content-length":
            if not _DIGITS.match(value):
                raise ValueError("invalid Content-Length %r" % value)
            length = int(value)
    return length


class WSGIResponse:
    """The producer of one answer: runs the app and frames what it yields.

    The channel queues it; the loop calls ``more()`` whenever the socket
    has room, and ``flushed()`` once the last byte is written. The app's
    iterable is closed however the answer ends: complete, failed, or cut
    off by the client (`abandon`).
    """

    def __init__(self, channel, head, environ):
        self.channel = channel
        self.head = head
        self.environ = environ
        # The body as the server made it: middleware may wrap environ's.
        self._input = environ["wsgi.input"]
        self.keep_alive = head.keep_alive
        self.status = None
        self.headers = None
        self._length = None      # the app's Content-Length
        self._written = collections.deque()  # data given to write()
        self._result = None      # the app's iterable
        self._chunks = None      # its non-empty chunks, write() data in order
        self._started = False    # the head is out
        self._chunked = False
        self._left = None        # body bytes due under a Content-Length
        self._done = False
        # Waiting for the commit of what the app wrote (`_hold`); True
        # once that commit failed.
        self._held = False
        self._uncommitted = False
        # The first chunk, once taken: the head goes out with it.
        self._first = _UNTAKEN

    # -- the app's side (PEP 3333) --------------------------------------------

    def start_response(self, status, headers, exc_info=None):
        if exc_info:
            try:
                if self._started:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None  # no reference cycle through the traceback
        elif self.status is not None:
            raise AssertionError("start_response called twice without exc_info")
        self._length = check_response(status, headers)
        self.status, self.headers = status, list(headers)
        return self.write

    def write(self, data):
        """The legacy write() callable: the data goes out, in order, with
        the next chunk the channel takes."""
        if self.status is None:
            raise AssertionError("write() before start_response()")
        if not isinstance(data, bytes):
            raise TypeError("write() takes bytes, not %s" % type(data).__name__)
        self._written.append(data)

    def _chunks_of(self, result):
        yield from self._drain()
        for item in result:
            if not isinstance(item, bytes):
                raise TypeError("a WSGI app must yield bytes, not %s" % type(item).__name__)
            yield from self._drain()
            if item:
                yield item
        yield from self._drain()

    def _drain(self):
        written = self._written
        while written:
            data = written.popleft()
            if data:
                yield data

    # -- the channel's side ---------------------------------------------------

    @property
    def ready(self):
        """False while the app's iterable has nothing to send yet: an answer
        worked out on the pool, a stream waiting for its next event, an
        answer waiting for the commit of what its request wrote."""
        return not self._held and getattr(self._result, "ready", True)

    @property
    def long_lived(self):
        """The app's iterable is a stream that stays open (see loop.Channel)."""
        return getattr(self._result, "long_lived", False)

    def more(self):
        if self._done:
            return b""
        try:
            if self._chunks is None:
                self._result = self._held_if_writing(
                    lambda: self.channel.server.app(self.environ, self.start_response))
                self._chunks = self._chunks_of(self._result)
                if not self.ready:
                    return b""  # worked out on the pool; not done (see loop._refill)
            if self._uncommitted:
                return self._not_committed()
            if not self._started and self._first is _UNTAKEN:
                # An answer worked out on the pool is ended here, on the
                # loop (`Offloaded`): what that end writes holds it too.
                self._first = self._held_if_writing(lambda: next(self._chunks, None))
                if self._held:
                    return b""
            if not self._started:
                return self._start(self._first)
            chunk = next(self._chunks, None)
            return self._complete() if chunk is None else self._frame(chunk)
        except Exception:
            return self._failed()

    def flushed(self):
        self.channel.answered(self)

    def _held_if_writing(self, work):
        """What `work()` gives; the answer held (`_hold`) if it wrote."""
        commits = self.channel.server.commits
        if commits is None or not commits.durable:
            return work()
        before = commits.db.changes
        result = work()
        if commits.db.changes != before:
            self._hold(commits)
        return result

    def _hold(self, commits):
        """The request wrote: its answer waits for the group commit, as a
        meter's OK does, so that what it says is saved is on disk, and
        another process sharing the database that the client asks next
        (through a load balancer) sees it."""
        self._held = True

        def release(committed):
            self._held = False
            self._uncommitted = not committed
            self.channel.wake()
        commits.after_commit(release)

    def _not_committed(self):
        """The commit holding what the request wrote failed: nothing of it
        was saved, and the client is told so instead of the app's answer."""
        log.error("%s: the commit of what it wrote failed; answered 500", self._describe())
        self._end()
        self._started = True
        self.channel.server.requests_by_status[500] += 1
        return error_answer(500, "the database did not commit this change: nothing was saved",
                            self.head)

    def abandon(self):
        """The connection closed before the answer was complete."""
        if not self._done:
            self._end()

    def _start(self, chunk):
        """The head and the first chunk (None: the body is empty); decides
        how the body is framed."""
        if self.status is None:
            raise AssertionError("the app returned without calling start_response")
        whole = chunk is None or isinstance(self._result, (list, tuple))
        if whole:
            # The body is all in memory already: it goes out with its length.
            chunk = b"".join([chunk or b"", *self._chunks])
        code = int(self.status[:3])
        headers = self.headers
        has_body = code >= 200 and code not in (204, 304)
        if has_body:
            if self._length is not None:
                self._left = self._length
            elif whole:
                headers = headers + [("Content-Length", str(len(chunk)))]
                self._left = len(chunk)
            elif self.head.version == "HTTP/1.1":
                headers = headers + [("Transfer-Encoding", "chunked")]
                self._chunked = True
            else:
                self.keep_alive = False  # the body ends with the connection
        head = head_bytes(self.status, headers, self.head.version, self.keep_alive)
        self._started = True
        self.channel.server.requests_by_status[code] += 1
        if not has_body or self.head.method == "HEAD":
            self._end()
            return head
        data = head + self._frame(chunk)
        if whole and not self._done:
            data += self._complete()
        return data

    def _frame(self, chunk):
        """`chunk` (empty only as a whole empty body) as it goes on the
        wire; ends the answer when the app's Content-Length is reached."""
        if self._chunked:
            return b"%x\r\n%s\r\n" % (len(chunk), chunk)
        if self._left is None:
            return chunk
        if len(chunk) >= self._left:
            if len(chunk) > self._left:
                log.warning("%s: the app sent more than its Content-Length; the rest is "
                            "dropped", self._describe())
                chunk = chunk[:self._left]
            self._end()
        self._left -= len(chunk)
        return chunk

    def _complete(self):
        """The app's iterable is exhausted."""
        if self._left:
            log.error("%s: the app sent %d bytes fewer than its Content-Length",
                      self._describe(), self._left)
            return self._abort()
        self._end()
        return b"0\r\n\r\n" if self._chunked else b""

    def _failed(self):
        log.exception("web app failed on %s", self._describe())
        if self._started:
            return self._abort()
        self._end()
        self._started = True
        self.channel.server.requests_by_status[500] += 1
        return error_answer(500, "the web application failed; the server log has the details",
                            self.head)

    def _abort(self):
        self._end()
        self.keep_alive = False
        self.channel.abort()
        return b""

    def _end(self):
        """Close the app's iterable (PEP 3333: however the answer ended),
        and the request body (a temporary file when it was long)."""
        self._done = True
        self._input.close()
        close = getattr(self._result, "close", None)
        self._result = None
        if close is not None:
            try:
                close()
            except Exception:
                log.exception("web app failed closing its answer to %s", self._describe())

    def _describe(self):
        return "%s %s from %s" % (self.head.method, _escaped(self.head.target),
                                  loop._peer(self.channel.addr))


# Raised by ``environ["texmate.offload"]`` when the client already has as
# much slow work queued or running as it may (the app answers 503).
Busy = loop.Busy


class Offloaded:
    """What ``environ["texmate.offload"](work, finish)`` returns to an app:
    a WSGI iterable whose answer is worked out on the server's `loop.Pool`,
    in the queue of the request's client (its REMOTE_ADDR), so one client
    can only delay itself; `Busy` when that queue is full.

    ``work(context)`` runs on a worker thread with that thread's context
    (the web's read-only store); meanwhile the iterable is not `ready`, so
    the channel waits and the loop serves everyone else. Back on the loop
    thread, the first ``next()`` calls ``finish(result)``, which may call
    ``start_response`` (PEP 3333 allows it until the first body bytes) and
    returns the body iterable, yielded from then on. An exception in
    `work` is raised there, so it answers 500 like any app failure.
    Closing it (the connection went away) drops work not yet started.
    """

    def __init__(self, pool, channel, client, work, finish):
        self.ready = False
        self._channel = channel
        self._finish = finish
        self._future = None
        self._body = None
        self._job = pool.submit(work, self._done, client)

    def _done(self, future):
        self._future = future
        self.ready = True
        self._channel.wake()

    def __iter__(self):
        return self

    def __next__(self):
        if self._body is None:
            self._body = iter(self._finish(self._future.result()))
        return next(self._body)

    def close(self):
        self._job.cancel()
        close = getattr(self._body, "close", None)
        if close is not None:
            close()


# -- 3. server and channel ----------------------------------------------------

def largest_body_of(application):
    """The longest request body the WSGI `application` takes on any
    request: its ``largest_body`` attribute where it is larger than
    MAX_BODY, the default, else MAX_BODY."""
    return max(MAX_BODY, getattr(application, "largest_body", 0))


def limit_of(application, method, path):
    """The longest body `application` takes for `method` on `path`
    (PATH_INFO): what its ``body_limit(method, path)`` answers, never more
    than `largest_body_of` it; MAX_BODY for an app without body_limit."""
    ask = getattr(application, "body_limit", None)
    if ask is None:
        return MAX_BODY
    return min(largest_body_of(application), ask(method, path))


class HTTPServer:
    """The web port: the WSGI app, the settings, and the counters the
    /metrics page reads: ``bytes_received`` and ``bytes_sent`` (counted at
    the socket, as ttp.TTPServer counts them; under TLS, the HTTP bytes
    before encryption) and ``requests_by_status`` (answers by status code,
    protocol errors included). `tls_context` is the `ssl.SSLContext` of an
    HTTPS port (`tls.server_context`), None for plain HTTP; `refusal` is
    what the listener answers a connection beyond the limit. `pool` and
    `chores` (a `loop.Pool`, a `chores.Chores`) are offered to the app in
    each request's environ (OFFLOAD, CHORES) when given. With `commits`
    (the store's durable `GroupCommit`), an answer to a request that wrote
    through its store waits for the commit, and is a 500 if it failed."""

    def __init__(self, settings, app, loop_, pool=None, tls_context=None, chores=None,
                 commits=None):
        self.settings = settings
        self.app = app
        self.loop = loop_
        self.pool = pool
        self.chores = chores
        self.commits = commits
        self.tls_context = tls_context
        behind_proxy = settings.BEHIND_HTTPS_PROXY
        self.scheme = "https" if tls_context is not None or behind_proxy else "http"
        self.proxies = config.networks(settings.PROXY_ADDRESSES) if behind_proxy else ()
        # What a connection past the limit gets: plain text would be
        # garbage to a TLS client, so under TLS it is only closed.
        self.refusal = REFUSAL if tls_context is None else b""
        self.errors = ErrorStream()
        self.bytes_received = loop.Counter()
        self.bytes_sent = loop.Counter()
        self.requests_by_status = collections.Counter()

    def largest_body(self):
        """The longest body any request may announce (the parser's cap)."""
        return largest_body_of(self.app)

    def body_limit(self, head):
        """The longest body `head`'s request may carry (`limit_of`)."""
        return limit_of(self.app, head.method, request_path(head))

    def accept(self, loop_, sock, addr):
        """Listener factory: one HTTPChannel per connection."""
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return HTTPChannel(self, sock, addr)


class HTTPChannel(loop.Channel):
    """One web connection: feeds received bytes to its `RequestParser`,
    gathers each request's body, and queues one `WSGIResponse` at a time.
    Stops taking requests after a protocol error, after an answer that
    closes the connection, and once the peer has closed its side and every
    complete request is answered."""

    def __init__(self, server, sock, addr):
        self.server = server
        if server.tls_context is not None:
            self.transport = tls.TLSLayer(server.tls_context)
        self.parser = RequestParser(server.largest_body())
        self.local = sock.getsockname()[:2]
        self._head = None       # the request whose body is being read
        self._body = None       # its bytes so far: a bytearray, or a file if long
        self._body_got = 0
        self._body_started = None
        self._response = None   # the answer being written
        self._accepting = True
        self._timer = None
        self._timing_head = False
        super().__init__(server.loop, sock, addr)
        self._watch()

    def received(self, data):
        self.server.bytes_received.value += len(data)
        self.parser.feed(data)
        if self._response is not None and self.parser.pending() > MAX_AHEAD:
            log.info("%s: sent more than %d bytes ahead of its answers; closing",
                     loop._peer(self.addr), MAX_AHEAD)
            self._linger_zero()
            self.close()
            return
        self.process()

    def eof(self):
        response = self._response
        if response is not None and not response.ready:
            # The client left while its answer waits for a worker (a graph,
            # a password hash): taken as gone, as nginx does, so the work is
            # dropped before it starts rather than done for nobody.
            self.close()
            return
        self.process()

    def sent(self, nbytes):
        self.server.bytes_sent.value += nbytes

    def closed_hook(self):
        self._cancel_timer()
        if self._body is not None and not isinstance(self._body, bytearray):
            self._body.close()
        if self._response is not None:
            self._response.abandon()

    def process(self):
        """Take events until a request is dispatched or more bytes are needed."""
        parser = self.parser
        while self._accepting and self._response is None:
            event = parser.next_event()
            if event is None:
                self._between_events()
                return
            kind = type(event)
            if kind is Data:
                self._body_got += len(event.data)
                if isinstance(self._body, bytearray):
                    self._body += event.data
                else:
                    self._body.write(event.data)
            elif kind is RequestHead:
                self._begin(event)
            elif kind is EndOfRequest:
                self._dispatch()
            else:
                self._refuse(event)

    def _between_events(self):
        if self.peer_closed:
            if self.parser.partial():
                self._refuse(ProtocolError(400, "the connection closed in the middle of a request"))
            else:
                self._stop()
        elif self._head is None:
            self._watch()

    def _begin(self, head):
        self._cancel_timer()
        # Only a request with a body asks its route (most have none).
        limit = self.server.body_limit(head) if head.content_length else 0
        if head.content_length > limit:
            self._refuse(ProtocolError(413, "a request to %s takes a body of %d bytes at most"
                                       % (_escaped(head.target[:200]), limit)))
            return
        self._head = head
        self._body_got = 0
        self._body = (bytearray() if head.content_length <= SPOOL_BYTES
                      else tempfile.TemporaryFile())
        if head.content_length:
            self._body_started = time.monotonic()
            self._watch_body()
        if head.expect_continue:
            self.push(loop.Answer(CONTINUE))

    def _dispatch(self):
        self._cancel_timer()
        head, body = self._head, self._body
        self._head = self._body = None
        if isinstance(body, bytearray):
            body = io.BytesIO(bytes(body))
        else:
            body.seek(0)
        environ = build_environ(head, body, self.local, self.addr, self.server.errors,
                                self.server.scheme, self.server.proxies)
        environ[WAKE] = self.wake
        if self.server.pool is not None:
            environ[OFFLOAD] = functools.partial(Offloaded, self.server.pool, self,
                                                 environ["REMOTE_ADDR"])
        if self.server.chores is not None:
            environ[CHORES] = self.server.chores
        self._response = WSGIResponse(self, head, environ)
        self.push(self._response)

    def answered(self, response):
        """`response` is written: on to the next request, or close."""
        self._response = None
        if response.keep_alive:
            self.process()
        else:
            self._stop()

    def _refuse(self, error):
        log.info("%s: %d %s", loop._peer(self.addr), error.status, error.reason)
        self.server.requests_by_status[error.status] += 1
        # The client may still be sending (a body refused with 413): what
        # it sends is read and dropped for a moment after the answer, so
        # the answer is not lost to a reset.
        self.linger = True
        self._stop(error_answer(error.status, error.reason))

    def _stop(self, answer=None):
        self._accepting = False
        self.parser.close()
        self._cancel_timer()
        if answer:
            self.push(loop.Answer(answer))
        self.finish()

    def abort(self):
        """Reset the connection once the output buffer is written: the peer
        sees an error, never a short answer it could take for a whole one."""
        self._accepting = False
        self._linger_zero()
        # Not finish(): this runs inside the loop's refill, which must not
        # be entered again.
        self.closing = True

    def _linger_zero(self):
        # Closing then sends RST instead of FIN (and no TLS close_notify).
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.goodbye = False

    # -- HTTP_HEADER_TIMEOUT ---------------------------------------------------

    def _watch(self):
        """Waiting for a request: time the idle connection, or from its
        first byte, the request head."""
        started = self.parser.partial()
        if self._timer is not None and (self._timing_head or not started):
            return
        self._cancel_timer()
        self._timing_head = started
        self._timer = self.loop.call_later(self.server.settings.HTTP_HEADER_TIMEOUT,
                                           lambda: self.guarded(self._timed_out))

    def _timed_out(self):
        self._timer = None
        if self._timing_head:
            self._refuse(ProtocolError(408, "the request head did not arrive within %d s"
                                       % self.server.settings.HTTP_HEADER_TIMEOUT))
        else:
            self._stop()

    def _body_due(self):
        """When the body read so far must be in by: HTTP_HEADER_TIMEOUT after
        the head, plus a second for every BODY_MIN_RATE bytes received."""
        return (self._body_started + self.server.settings.HTTP_HEADER_TIMEOUT
                + self._body_got / BODY_MIN_RATE)

    def _watch_body(self):
        self._timer = self.loop.call_later(max(0.0, self._body_due() - time.monotonic()),
                                           lambda: self.guarded(self._body_timed_out))

    def _body_timed_out(self):
        self._timer = None
        if time.monotonic() < self._body_due():
            self._watch_body()  # more arrived meanwhile
            return
        self._refuse(ProtocolError(408, "the request body arrived slower than %d bytes/s"
                                   % BODY_MIN_RATE))

    def _cancel_timer(self):
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


# -- 4. mounting the site's HTTP apps -----------------------------------------

class Mounted:
    """A WSGI app sending each request under a mounted prefix to that app
    (the longest prefix wins; SCRIPT_NAME becomes the prefix, PATH_INFO the
    rest, as PEP 3333 has it) and every other request to `root`."""

    def __init__(self, root, mounts):
        self.root = root
        self.mounts = sorted(mounts, key=lambda mount: -len(mount[0]))
        self.largest_body = max(largest_body_of(application) for application in
                                [root] + [application for _, application in self.mounts])

    def _route(self, path):
        """(app, SCRIPT_NAME, PATH_INFO) for a request on `path`."""
        for prefix, application in self.mounts:
            if path.startswith(prefix) or path == prefix[:-1]:
                return application, prefix[:-1], path[len(prefix) - 1:]
        return self.root, "", path

    def __call__(self, environ, start_response):
        application, environ["SCRIPT_NAME"], environ["PATH_INFO"] = self._route(
            environ["PATH_INFO"])
        return application(environ, start_response)

    def body_limit(self, method, path):
        """The limit of the app `path` goes to (`limit_of`)."""
        application, _, rest = self._route(path)
        return limit_of(application, method, rest)
