"""``/events`` as docs/web.md says, over real sockets against the real server.

What test_events_stream.py covers (a sample and an alarm reach a stream of
their unit, ?units= keeps others out, a resume of two samples, a 403 for a
unit not seen, 400, 401 for a bad token, a 503 once full) is not repeated
here. Here: the frames byte for byte, a refusal is an answer and never a
started stream, the session cookie as well as the API token, a resume of
samples and of alarms that misses nothing and repeats nothing, too much to
resume, the keep-alive comment, the idle sweeps sparing a stream (over HTTP
and HTTPS), a client that stops reading ended with ``resync`` through real
socket buffers while the others are served, the cap's slot freed, and
everything again over the HTTPS listener.

Each stream is a raw HTTP/1.1 connection read as an EventSource reads it
(`EventClient`). Waits are for conditions (a line in the server's log, a
socket closed, an event), with generous timeouts; nothing is timed.
"""

import datetime
import json
import re
import socket
import ssl
import time
from http.client import HTTPSConnection

import pytest

from conftest import Browser, _factory, child_env, read_all

KEY = "k1"
ADMIN_PASSWORD = "pump-station-7"
ANN_PASSWORD = "pw-for-ann"
TIMEOUT = 30            # seconds a socket read may wait: a hang, not a measure
SAMPLE = re.compile(r'event: sample\nid: (\d+)\ndata: \{"unit": "([A-Z0-9]+)", "id": (\d+), '
                    r'"timestamp": "([^"]+)", "values": \[([^\]]*)\]\}')
RECEIVED = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d{6})?"


class EventClient:
    """One ``GET /events`` on a raw socket (HTTP/1.1, TLS with `context`),
    read as a browser's EventSource reads it: the head, then the chunked
    body cut into blocks at each empty line. `rcvbuf` shrinks the socket's
    receive buffer (SO_RCVBUF, before connecting) for a client that stops
    reading."""

    def __init__(self, port, path="/events", token=None, cookie=None, last_event_id=None,
                 context=None, rcvbuf=None):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.settimeout(TIMEOUT)
        sock.connect(("127.0.0.1", port))
        if context is not None:
            sock = context.wrap_socket(sock, server_hostname="127.0.0.1")
        self.sock = sock
        self.port = sock.getsockname()[1]
        lines = ["GET %s HTTP/1.1" % path, "Host: 127.0.0.1", "Accept: text/event-stream",
                 "Cache-Control: no-cache"]
        if token is not None:
            lines.append("Authorization: Bearer %s" % token)
        if cookie is not None:
            lines.append("Cookie: %s" % cookie)
        if last_event_id is not None:
            lines.append("Last-Event-ID: %s" % last_event_id)
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        self.raw = b""          # received, not yet unchunked
        while b"\r\n\r\n" not in self.raw:
            self._receive()
        head, self.raw = self.raw.split(b"\r\n\r\n", 1)
        status_line, *fields = head.decode("latin-1").split("\r\n")
        self.status = int(status_line.split()[1])
        self.headers = {}
        for field in fields:
            name, _, value = field.partition(":")
            self.headers[name.strip().lower()] = value.strip()
        self.body = b""         # the stream's text so far, unchunked
        self.ended = False      # its last chunk came
        self.comments = []      # ": ..." blocks, as they came
        self.others = []        # blocks without an event (retry)

    def _receive(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError("the server closed the connection; left unread: %r"
                           % self.raw[-300:])
        self.raw += chunk

    def _unchunk(self):
        while not self.ended:
            line, sep, rest = self.raw.partition(b"\r\n")
            if not sep:
                return
            size = int(line, 16)
            if len(rest) < size + 2:
                return
            assert rest[size:size + 2] == b"\r\n", rest[:size + 2]
            self.body += rest[:size]
            self.raw = rest[size + 2:]
            self.ended = size == 0

    def answer(self):
        """The whole body of an answer that is not a stream."""
        length = int(self.headers["content-length"])
        while len(self.raw) < length:
            self._receive()
        return self.raw[:length].decode("utf-8")

    def block(self):
        """The next block (its lines, without the empty line that ends
        it); EOFError once the stream ended before one."""
        while True:
            self._unchunk()
            if b"\n\n" in self.body:
                block, self.body = self.body.split(b"\n\n", 1)
                return block.decode("utf-8")
            if self.ended:
                raise EOFError("the stream ended; left: %r" % self.body)
            self._receive()

    def event(self):
        """The next event as {field: value}, with its whole block as
        ``block``; comments and the retry line are set aside."""
        while True:
            text = self.block()
            if text.startswith(":"):
                self.comments.append(text)
                continue
            fields = dict(line.split(": ", 1) for line in text.split("\n"))
            if "event" in fields:
                fields["block"] = text
                return fields
            self.others.append(text)

    def events(self, count):
        return [self.event() for _ in range(count)]

    def rest(self):
        """Every block until the stream ends (its last chunk)."""
        blocks = []
        while True:
            try:
                blocks.append(self.block())
            except EOFError:
                assert self.ended, "the connection closed without the stream's last chunk"
                return blocks

    def close(self):
        self.sock.close()


def stamps(count, start, skip=0):
    """`count` timestamps a second apart, from `skip` seconds after `start`."""
    first = datetime.datetime.strptime(start, "%Y-%m-%d %H:%M:%S")
    return [(first + datetime.timedelta(seconds=skip + i)).strftime("%Y-%m-%d %H:%M:%S")
            for i in range(count)]


def status_of(port, path, **how):
    """The status a new stream is answered with (then closed)."""
    stream = EventClient(port, path, **how)
    stream.close()
    return stream.status


class HTTPSBrowser(Browser):
    """conftest's Browser over TLS (as test_https has it)."""

    def __init__(self, port, context):
        super().__init__(port)
        self.context = context

    def connect(self):
        return HTTPSConnection("127.0.0.1", self.port, timeout=10, context=self.context)


def tls_conf(certificate):
    return "HTTPS_CERT_FILE: %s\nHTTPS_KEY_FILE: %s\n" % certificate


def upload(srv, code, samples, key=KEY):
    """Samples [(timestamp text, values...)] in one TTP request: OK."""
    line = "TTP /up/%s/%s %s" % (code, "".join(
        "<%s>" % ";".join(str(part) for part in sample) for sample in samples), key)
    assert srv.ask(line) == "OK"


def wait_for(predicate, what, seconds=TIMEOUT):
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("waited %d s for %s" % (seconds, what))
        time.sleep(0.02)


def last_id(srv, code, token):
    """The id of `code`'s newest sample, as last.json tells it."""
    answer = Browser(srv.http_port).get("/units/%s/last.json" % code,
                                        Authorization="Bearer %s" % token)
    assert answer.status == 200, answer.body
    return json.loads(answer.body)["sample"][0]


def give_units(srv, username, codes):
    """What the admin's user form does: `username` sees `codes` only."""
    db = srv.database()
    user = db.accounts.get_user_by_name(username)
    db.accounts.set_units("user", user.id, [db.units.get(code).id for code in codes])
    db.commit()
    db.close()


def admin_token(srv):
    """The Administrator's password changed (a default one is refused)
    and an API token of theirs, as `srv.token`."""
    srv.manage("changepassword", "Administrator", "--noinput",
               env=dict(child_env(), TXM_PASSWORD=ADMIN_PASSWORD))
    srv.token = srv.manage("addtoken", "Administrator", "--name", "t").stdout.strip()


def with_users(srv):
    """The Administrator's password changed and a token; ann (sees A1
    only) with a password and a token; newbie whose password is still the
    default one, with a token."""
    admin_token(srv)
    env = dict(child_env(), TXM_PASSWORD=ADMIN_PASSWORD)
    srv.manage("adduser", "ann", "--noinput", env=dict(env, TXM_PASSWORD=ANN_PASSWORD))
    give_units(srv, "ann", ["A1"])
    srv.ann = srv.manage("addtoken", "ann", "--name", "t").stdout.strip()
    srv.manage("adduser", "newbie", "--all-units", "--noinput", env=env)
    srv.manage("changepassword", "newbie", "--noinput", env=dict(env, TXM_PASSWORD="admin"))
    srv.newbie = srv.manage("addtoken", "newbie", "--name", "t").stdout.strip()
    return srv


@pytest.fixture(scope="module")
def srv(tmp_path_factory, engine):
    """One server for the module's plain tests, each on units of its own:
    A1 (2 fields), B7 (1), FMT (2), RES (2), OTH (1), BIG (1), NUL (2)."""
    make, _ = _factory(tmp_path_factory.mktemp("live"), engine)
    server = make(start=False)
    for code, fields in (("A1", 2), ("B7", 1), ("FMT", 2), ("RES", 2), ("OTH", 1),
                         ("BIG", 1), ("NUL", 2)):
        server.add_unit(code, KEY, fields)
    with_users(server)
    yield server.start()
    server.kill()


# -- the frames ---------------------------------------------------------------

def test_sample_and_alarm_frames_are_byte_for_byte_those_of_web_md(srv):
    """The answer is a 200 text/event-stream, not cached; its body starts
    with ``retry: 3000``; a sample is ``event: sample``, ``id: N`` and the
    JSON of web.md (the store's id, as last.json has it; the timestamp as
    the data endpoints write it, microseconds when not 0; values as floats);
    an alarm is ``event: alarm``, ``id: aN`` and its JSON (level, the data
    items as sent, when received)."""
    stream = EventClient(srv.http_port, "/events?units=FMT", srv.token)
    try:
        assert stream.status == 200
        assert stream.headers["content-type"] == "text/event-stream; charset=utf-8"
        assert stream.headers["cache-control"] == "no-cache"
        assert stream.headers["transfer-encoding"] == "chunked"
        assert stream.block() == "retry: 3000"
        upload(srv, "FMT", [("2009-01-16 15:30:45", 11, 22)])
        sample = stream.event()
        n = last_id(srv, "FMT", srv.token)
        assert sample["block"] == (
            'event: sample\nid: %d\ndata: {"unit": "FMT", "id": %d, '
            '"timestamp": "2009-01-16 15:30:45", "values": [11.0, 22.0]}' % (n, n))
        upload(srv, "FMT", [("2009-01-16 15:30:46.25", -0.001, "1e20")])
        assert stream.event()["block"] == (
            'event: sample\nid: %d\ndata: {"unit": "FMT", "id": %d, '
            '"timestamp": "2009-01-16 15:30:46.250000", "values": [-0.001, 1e+20]}'
            % (n + 1, n + 1))
        assert srv.ask("TTP /al/FMT/2/<2009-01-16 15:30:45;high> %s" % KEY) == "OK"
        alarm = stream.event()["block"]
        match = re.fullmatch(
            r'event: alarm\nid: a(\d+)\ndata: \{"unit": "FMT", "id": (\d+), "level": 2, '
            r'"data": \["2009-01-16 15:30:45", "high"\], "received": "(%s)"\}' % RECEIVED,
            alarm)
        assert match and match.group(1) == match.group(2), alarm
    finally:
        stream.close()


# -- who may watch what -------------------------------------------------------

@pytest.mark.parametrize("path, who, status, reason", [
    ("/events?units=A1,B7", "ann", 403, "units: you may not watch B7"),
    ("/events?units=NOPE", "ann", 403, "units: you may not watch NOPE"),
    ("/events?units=A1,NOPE", "admin", 403, "units: you may not watch NOPE"),
    ("/events", None, 401, "sign in, or send Authorization: Bearer TOKEN"),
    ("/events?units=A1", None, 401, "sign in, or send Authorization: Bearer TOKEN"),
    ("/events", "newbie", 403, "change the default password first, on /password/"),
    ("/events?units=A1&since=1", "admin", 400,
     "unknown parameter 'since'; this address takes units"),
])
def test_a_refusal_is_a_plain_answer_before_any_stream(srv, path, who, status, reason):
    """A unit the viewer may not see and one that does not exist are the
    same 403 (one among units they see is enough); nobody signed in with
    LOGIN_REQUIRED (the default) is 401 with ``WWW-Authenticate: Bearer``;
    a user still on the default password 403; an unknown parameter 400.
    Each is one text/plain line with its length, never a started stream;
    the connection stays usable."""
    token = {"ann": srv.ann, "admin": srv.token, "newbie": srv.newbie, None: None}[who]
    refused = EventClient(srv.http_port, path, token)
    try:
        assert refused.status == status
        assert refused.headers["content-type"].startswith("text/plain")
        assert "transfer-encoding" not in refused.headers
        assert refused.answer() == reason + "\n"
        if status == 401:
            assert refused.headers["www-authenticate"] == 'Bearer realm="texmate_ds"'
    finally:
        refused.close()


def test_a_session_cookie_and_an_api_token_watch_the_same_units(srv):
    """Signed in by the sign-in form, the session cookie alone opens the
    stream and sees what the user sees (ann: A1, not B7), as ann's API
    token does; once ann signs out the cookie is refused (401), and once
    the token is revoked (manage revoketoken) so is the token."""
    browser = Browser(srv.http_port)
    assert browser.sign_in("ann", ANN_PASSWORD).status == 303
    cookie = "txm_session=%s" % browser.cookies["txm_session"]
    by_cookie = EventClient(srv.http_port, "/events", cookie=cookie)
    by_token = EventClient(srv.http_port, "/events", token=srv.ann)
    try:
        assert (by_cookie.status, by_token.status) == (200, 200)
        assert status_of(srv.http_port, "/events?units=B7", cookie=cookie) == 403
        upload(srv, "B7", [("2024-04-01 00:00:00", 5)])
        upload(srv, "A1", [("2024-04-01 00:00:01", 1, 2)])
        seen = [by_cookie.event(), by_token.event()]
        assert [json.loads(e["data"])["unit"] for e in seen] == ["A1", "A1"]
        assert seen[0]["block"] == seen[1]["block"]
    finally:
        by_cookie.close()
        by_token.close()
    assert browser.post("/logout/", {"csrf_token": browser.csrf("/")}).status == 303
    assert status_of(srv.http_port, "/events", cookie=cookie) == 401
    srv.manage("revoketoken", "ann", "t")
    assert status_of(srv.http_port, "/events", token=srv.ann) == 401


# -- Last-Event-ID ------------------------------------------------------------

def test_a_resumed_stream_misses_nothing_and_repeats_nothing(srv):
    """Samples: a client that saw sample N, left, and comes back with
    ``Last-Event-ID: N`` first gets every sample of its unit stored since,
    in order, byte for byte as a client that stayed got them, and none of
    another unit; then the live stream goes on with no gap and no repeat.
    Alarms the same from ``Last-Event-ID: aN``. An id that is not one of
    ours resumes nothing."""
    stayed = EventClient(srv.http_port, "/events?units=RES", srv.token)
    left = EventClient(srv.http_port, "/events?units=RES", srv.token)
    try:
        times = stamps(8, "2024-05-01 00:00:00")
        upload(srv, "RES", [(times[0], 0, 0)])
        seen = left.event()["id"]
        assert stayed.event()["id"] == seen
        left.close()
        upload(srv, "RES", [(times[1], 1, 1), (times[2], 2, 2)])
        upload(srv, "OTH", [(times[1], 9)])
        upload(srv, "RES", [(times[3], 3, 3)])
        missed = stayed.events(3)
        back = EventClient(srv.http_port, "/events?units=RES", srv.token, last_event_id=seen)
        assert back.status == 200
        assert back.block() == "retry: 3000"
        assert [e["block"] for e in back.events(3)] == [e["block"] for e in missed]
        upload(srv, "RES", [(times[4], 4, 4)])
        live = back.event()
        assert live["block"] == stayed.event()["block"]
        assert int(live["id"]) > int(missed[-1]["id"])
        back.close()

        # Alarms: resumed from an alarm's id.
        assert srv.ask("TTP /al/RES/1/<first> %s" % KEY) == "OK"
        alarm = stayed.event()
        assert alarm["event"] == "alarm" and alarm["id"].startswith("a")
        for text in ("second", "third"):
            assert srv.ask("TTP /al/RES/3/<%s> %s" % (text, KEY)) == "OK"
        assert srv.ask("TTP /al/OTH/3/<elsewhere> %s" % KEY) == "OK"
        missed = stayed.events(2)
        back = EventClient(srv.http_port, "/events?units=RES", srv.token,
                           last_event_id=alarm["id"])
        assert [e["block"] for e in back.events(2)] == [e["block"] for e in missed]
        assert [json.loads(e["data"])["data"] for e in missed] == [["second"], ["third"]]
        assert srv.ask("TTP /al/RES/4/<fourth> %s" % KEY) == "OK"
        assert back.event()["block"] == stayed.event()["block"]
        back.close()

        # Not one of ours: the live stream only.
        odd = EventClient(srv.http_port, "/events?units=RES", srv.token, last_event_id="x1")
        upload(srv, "RES", [(times[5], 5, 5)])
        assert odd.event()["block"] == stayed.event()["block"]
        odd.close()
    finally:
        stayed.close()


def test_more_missed_than_can_be_resumed_is_resync(srv):
    """A client that missed more than 1,000 samples is sent ``event:
    resync`` instead of them, and that stream ends (its last chunk)."""
    first = EventClient(srv.http_port, "/events?units=BIG", srv.token)
    upload(srv, "BIG", [("2024-06-01 00:00:00", 0)])
    seen = first.event()["id"]
    first.close()
    upload(srv, "BIG", [(t, i) for i, t in enumerate(stamps(1001, "2024-06-01 00:00:01"))])
    back = EventClient(srv.http_port, "/events?units=BIG", srv.token, last_event_id=seen)
    try:
        assert back.rest() == ["retry: 3000", "event: resync\ndata: {}"]
    finally:
        back.close()


def test_an_empty_value_is_null(srv, tmp_path):
    """A sample with an empty value (only ``manage import`` stores one) goes
    out with ``null`` for it, here resumed from the store."""
    csv = tmp_path / "nul.csv"
    csv.write_text("id,timestamp,L1,L2\n,2024-07-01 00:00:00,,2.5\n")
    srv.manage("import", "NUL", csv)
    stream = EventClient(srv.http_port, "/events?units=NUL", srv.token, last_event_id="0")
    try:
        match = SAMPLE.fullmatch(stream.event()["block"])
        assert match and match.group(4, 5) == ("2024-07-01 00:00:00", "null, 2.5")
    finally:
        stream.close()


def batched(server_factory):
    """A server committing every 2 uploads (COMMIT_INTERVAL: 2, and no
    timer in the test's time), so an OK goes out before its commit; units
    RC and RD; a stream on RC that stayed (`stayed`) has seen two samples, the id of the
    second is `seen`, and a third is uploaded, answered and not committed
    (the test's own connection to the database does not see it)."""
    srv = server_factory("[database]\nCOMMIT_INTERVAL: 2\nCOMMIT_DELAY: 600000\n",
                         start=False)
    srv.add_unit("RC", KEY, 1)
    srv.add_unit("RD", KEY, 1)
    admin_token(srv)
    srv.start()
    srv.times = stamps(4, "2024-08-01 00:00:00")
    srv.stayed = EventClient(srv.http_port, "/events?units=RC", srv.token)
    upload(srv, "RC", [(srv.times[0], 0)])
    upload(srv, "RC", [(srv.times[1], 1)])      # the second upload commits both
    srv.seen = srv.stayed.events(2)[-1]["id"]
    upload(srv, "RC", [(srv.times[2], 2)])      # answered OK, not committed
    db = srv.database()
    assert db.one("SELECT count(*) FROM samples")[0] == 2
    db.close()
    return srv


def test_a_resume_during_a_batched_commit_sends_each_sample_once(server_factory):
    """A client resuming while a sample is uploaded but not yet committed
    gets each sample once, in order, as the client that stayed does: the
    one it resumed is not sent again when its commit publishes it, alone
    (a commit made by another unit's upload) or with others. (It was sent
    twice; live.py now skips a live event it resumed.)"""
    srv = batched(server_factory)
    try:
        back = EventClient(srv.http_port, "/events?units=RC", srv.token,
                           last_event_id=srv.seen)
        upload(srv, "RD", [(srv.times[0], 0)])      # commits RC's third sample alone
        expected = [srv.stayed.event()["block"]]
        upload(srv, "RC", [(srv.times[3], 3)])
        upload(srv, "RD", [(srv.times[1], 1)])      # commits the fourth
        expected.append(srv.stayed.event()["block"])
        got = [back.event()["block"]]
        while got[-1] != expected[-1]:
            got.append(back.event()["block"])
        back.close()
        assert got == expected
    finally:
        srv.stayed.close()


def test_a_resume_sends_a_sample_only_after_its_commit(server_factory):
    """web.md: "An event is sent once its upload ... is committed, never
    before": a client resuming while a sample is answered but not committed
    gets nothing of it in the first piece of its stream, which it is sent
    at once (the retry line and what the store had committed)."""
    srv = batched(server_factory)
    try:
        back = EventClient(srv.http_port, "/events?units=RC", srv.token,
                           last_event_id=srv.seen)
        assert back.block() == "retry: 3000"
        early = back.body.decode()      # what came with it
        back.close()
        assert "event: sample" not in early, "sent before its commit: %r" % early
    finally:
        srv.stayed.close()


# -- the keep-alive and the idle sweeps -----------------------------------------

def test_a_quiet_stream_gets_keep_alive_comments(server_factory):
    """A stream with nothing to say is sent ``: keep-alive`` comments, again
    and again (the interval, 15 s, shortened by TXM_LIVE_TIME_SCALE), and
    still gets its events between them."""
    srv = server_factory(start=False)
    srv.add_unit("A1", KEY, 2)
    admin_token(srv)
    srv.env = dict(srv.env, TXM_LIVE_TIME_SCALE="0.01")
    srv.start()
    stream = EventClient(srv.http_port, "/events?units=A1", srv.token)
    try:
        assert stream.block() == "retry: 3000"
        assert [stream.block() for _ in range(3)] == [": keep-alive"] * 3
        upload(srv, "A1", [("2024-09-01 00:00:00", 1, 2)])
        assert stream.event()["event"] == "sample"
        assert stream.block() == ": keep-alive"
    finally:
        stream.close()


@pytest.fixture(params=["http", "https"])
def swept(request, server_factory):
    """A server (plain or HTTPS) whose sweep closes a connection without
    traffic for 1 s (CHANNEL_TIMEOUT: 1, swept every second) and whose
    web port closes one idle between requests for 1 s (HTTP_HEADER_TIMEOUT:
    1); unit A1, the Administrator's token."""
    extra = "CHANNEL_TIMEOUT: 1\nHTTP_HEADER_TIMEOUT: 1\n"
    context = None
    if request.param == "https":
        certificate = request.getfixturevalue("certificate")
        extra += tls_conf(certificate)
        context = ssl.create_default_context(cafile=str(certificate[0]))
    srv = server_factory(extra, start=False)
    srv.add_unit("A1", KEY, 2)
    admin_token(srv)
    srv.start()
    srv.context = context
    return srv


def test_the_idle_sweeps_never_close_a_live_stream(swept):
    """A stream silent for longer than CHANNEL_TIMEOUT and
    HTTP_HEADER_TIMEOUT stays open while connections opened after it,
    silent as long, are closed (a TTP one by the sweep, as its log line
    says; a web one between requests); then it still gets its event. Over
    plain HTTP and over HTTPS."""
    srv = swept
    stream = EventClient(srv.http_port, "/events?units=A1", srv.token, context=srv.context)
    try:
        assert stream.block() == "retry: 3000"
        meter = srv.connect(timeout=TIMEOUT)
        web = socket.create_connection(("127.0.0.1", srv.http_port), timeout=TIMEOUT)
        assert read_all(meter) == b""
        assert read_all(web) == b""
        port = meter.getsockname()[1]
        meter.close()
        web.close()
        wait_for(lambda: "closing 127.0.0.1:%d: no progress" % port in srv.errors(),
                 "the sweep's log line")
        upload(srv, "A1", [("2024-10-01 00:00:00", 1, 2)])
        sample = SAMPLE.fullmatch(stream.event()["block"])
        assert sample and sample.group(2, 4) == ("A1", "2024-10-01 00:00:00")
    finally:
        stream.close()


# -- a client that does not read ------------------------------------------------

def test_a_client_that_stops_reading_is_told_to_resync_and_the_rest_are_served(
        server_factory):
    """A client with a small receive buffer that stops reading while a
    unit's samples pour in: the server's socket buffers fill, then its
    queue of 1,000 events, and it is dropped (the log says so), while the
    meters get every OK and a client that reads gets every sample. Reading
    again, the dropped client gets an unbroken first part of the samples,
    then ``event: resync``, then the end of its stream, which frees its
    place under MAX_EVENT_STREAMS for a new stream."""
    srv = server_factory("MAX_EVENT_STREAMS: 2\n", start=False)
    srv.add_unit("OV", KEY, 32)
    admin_token(srv)
    srv.start()
    reader = EventClient(srv.http_port, "/events?units=OV", srv.token)
    sleeper = EventClient(srv.http_port, "/events?units=OV", srv.token, rcvbuf=4096)
    try:
        assert (reader.status, sleeper.status) == (200, 200)
        dropped = "an event subscriber fell 1000 events behind; dropped"
        uploaded, ids = 0, []
        values = ["%d.%03d" % (100000 + field, field) for field in range(32)]
        batch = 100
        while dropped not in srv.errors():
            assert uploaded < 100000, "never dropped after %d samples" % uploaded
            upload(srv, "OV", [(t, *values)
                               for t in stamps(batch, "2024-11-01 00:00:00", uploaded)])
            uploaded += batch
            ids += [int(e["id"]) for e in reader.events(batch)]
        assert len(ids) == uploaded and ids == list(range(ids[0], ids[0] + uploaded))

        blocks = sleeper.rest()
        assert blocks[0] == "retry: 3000" and blocks[-1] == "event: resync\ndata: {}"
        got = [int(SAMPLE.fullmatch(b).group(1)) for b in blocks[1:-1]
               if not b.startswith(":")]     # a keep-alive, if this took 15 s
        assert 1000 < len(got) < uploaded
        assert got == ids[:len(got)]

        # Its place is free again (MAX_EVENT_STREAMS: 2, the reader holds one).
        again = EventClient(srv.http_port, "/events?units=OV", srv.token)
        assert again.status == 200
        upload(srv, "OV", [("2025-01-01 00:00:00", *values)])
        assert again.event()["block"] == reader.event()["block"]
        again.close()
    finally:
        reader.close()
        sleeper.close()


# -- MAX_EVENT_STREAMS ------------------------------------------------------------

def test_beyond_max_event_streams_is_503_until_a_stream_closes(server_factory):
    """With LOGIN_REQUIRED: no, anybody watches every unit without signing
    in. At MAX_EVENT_STREAMS (2) open streams one more is ``503`` with
    ``Retry-After: 5`` and the open ones go on; once a client closes its
    stream, a new one is let in (waited for: the server sees the close as
    it reads) and gets events."""
    srv = server_factory("MAX_EVENT_STREAMS: 2\nLOGIN_REQUIRED: no\n", start=False)
    srv.add_unit("A1", KEY, 2)
    srv.add_unit("B7", KEY, 1)
    srv.start()
    everything = EventClient(srv.http_port, "/events")
    one = EventClient(srv.http_port, "/events?units=A1")
    try:
        assert (everything.status, one.status) == (200, 200)
        full = EventClient(srv.http_port, "/events")
        assert full.status == 503 and full.headers["retry-after"] == "5"
        assert full.answer() == ("as many live streams are open as the server takes "
                                 "(MAX_EVENT_STREAMS); retry in a moment\n")
        full.close()
        upload(srv, "B7", [("2024-12-01 00:00:00", 7)])
        upload(srv, "A1", [("2024-12-01 00:00:01", 1, 2)])
        assert [json.loads(e["data"])["unit"] for e in everything.events(2)] == ["B7", "A1"]
        assert json.loads(one.event()["data"])["unit"] == "A1"
        one.close()

        def let_in():
            stream = EventClient(srv.http_port, "/events?units=A1")
            if stream.status == 200:
                let_in.stream = stream
                return True
            assert stream.status == 503
            stream.close()
            return False
        wait_for(let_in, "a place under MAX_EVENT_STREAMS")
        upload(srv, "A1", [("2024-12-01 00:00:02", 3, 4)])
        assert let_in.stream.event()["block"] == everything.event()["block"]
        let_in.stream.close()
    finally:
        everything.close()
        one.close()


# -- HTTPS ----------------------------------------------------------------------

def test_events_over_https_by_session_and_by_token(server_factory, certificate):
    """On the HTTPS listener: signed in over TLS, the Secure session cookie
    opens a stream over TLS, as the token does; both get the sample and the
    alarm byte for byte alike, a resume over TLS gets what was missed, and a
    unit not seen is 403 over TLS too."""
    srv = server_factory(tls_conf(certificate), start=False)
    srv.add_unit("A1", KEY, 2)
    srv.add_unit("B7", KEY, 1)
    with_users(srv)
    srv.start()
    context = ssl.create_default_context(cafile=str(certificate[0]))
    browser = HTTPSBrowser(srv.http_port, context)
    assert browser.sign_in("ann", ANN_PASSWORD).status == 303
    cookie = "txm_session=%s" % browser.cookies["txm_session"]
    by_cookie = EventClient(srv.http_port, "/events", cookie=cookie, context=context)
    by_token = EventClient(srv.http_port, "/events?units=A1", srv.token, context=context)
    try:
        assert by_cookie.sock.version() in ("TLSv1.2", "TLSv1.3")
        assert (by_cookie.status, by_token.status) == (200, 200)
        refused = EventClient(srv.http_port, "/events?units=B7", cookie=cookie, context=context)
        assert (refused.status, refused.answer()) == (403, "units: you may not watch B7\n")
        refused.close()
        upload(srv, "A1", [("2025-02-01 00:00:00", 1, 2)])
        assert srv.ask("TTP /al/A1/5/<x;y> %s" % KEY) == "OK"
        seen = by_cookie.events(2)
        assert [e["block"] for e in seen] == [e["block"] for e in by_token.events(2)]
        assert [e["event"] for e in seen] == ["sample", "alarm"]
        by_cookie.close()
        upload(srv, "A1", [("2025-02-01 00:00:01", 3, 4)])
        back = EventClient(srv.http_port, "/events", cookie=cookie, context=context,
                           last_event_id=seen[0]["id"])
        assert back.event()["block"] == by_token.event()["block"]
        back.close()
    finally:
        by_cookie.close()
        by_token.close()
