"""Chores in the server: a long deletion goes a chunk per loop turn while a
meter's uploads are answered between the chunks, and the web UI asks for
one through ``environ["texmate.chores"]`` (`app.run_chore`), or without
texmate_ds's loop (wsgiref) has it run at once, a commit per chunk.

A test cannot reach into the server's process, so this assembles its
parts as server.py does (the store on each engine, its GroupCommit, the
Chores service, the TTP server and the web UI on an HTTPServer), listening
on 127.0.0.1, and turns its Loop itself: what happens in which turn is then
the order of events, never a matter of timing. The meter and the browser
are real sockets. A second connection to the database tells what was
committed when.
"""

import datetime
import socket

import pytest

from texmate_ds import auth, chores, config, events, http, loop, plugins, store, ttp
from texmate_ds.client import format_ts, up_request
from texmate_ds.web import app, site

import conftest
from conftest import WSGISite, database_settings

DELETED = 2000     # samples of A1 to delete
CHUNK = 100
T0 = 1700000000 * 1000000


class Watched:
    """A `chores.DeleteSamples` step that notes, as each of its steps
    begins, the loop turn, the TTP requests answered so far and the A1
    samples another connection sees."""

    def __init__(self, address, deleting, turn=lambda: None, answered=lambda: None):
        self.deleting = deleting
        self.turn, self.answered = turn, answered
        self.other = store.Database(address)
        self.seen = []

    def __call__(self):
        self.seen.append((self.turn(), self.answered(), self.other.one(
            "SELECT count(*) FROM samples WHERE unit_id = ?", (self.deleting.unit.id,))[0]))
        return self.deleting()

    @property
    def progress(self):
        return self.deleting.progress


def seed(st, code, count, fields=1):
    unit = st.units.add(code, "k" + code, fields)
    st.begin()
    st.executemany(st.samples.insert_sql(fields),
                   [(unit.id, T0 + n, 0) + (1.0,) * fields for n in range(count)])
    return unit


# Views the tests ask for the deletion through, as the admin will; each
# test says how to watch the step and where its chore goes once over.
WATCH = {}


@app.data
def _delete(request, code):
    unit = request.store.units.get(code)
    chore = app.run_chore(request, "delete samples of %s" % code, WATCH["step"](
        chores.DeleteSamples(request.store, unit, total=DELETED, chunk=CHUNK)),
        WATCH["ended"].append)
    in_environ = request.environ.get(http.CHORES) is not None
    return app.text(200, "%s: %d steps, %s; server's chores: %s\n" % (
        chore.name, chore.steps, chore.progress, in_environ))


@app.data
def _delete_then_fail(request, code):
    unit = request.store.units.get(code)
    app.run_chore(request, "doomed", chores.DeleteSamples(request.store, unit, chunk=CHUNK))
    raise app.HTTPError(409, "changed my mind")


@app.data
def _running(request):
    return app.text(200, "".join("%s: %s\n" % (chore.name, chore.progress)
                                 for chore in app.active_chores(request)))


ROUTES = site.ROUTES + [
    app.Route("/test/delete/<code>/", _delete, methods=("POST",)),
    app.Route("/test/fail/<code>/", _delete_then_fail, methods=("POST",)),
    app.Route("/test/running/", _running, methods=("GET", "POST")),
]


class Served:
    """The server's parts on a database of `engine` (the SQLite file
    `path`), turned by the test: `ttp_port`, `http_port`, `chores`,
    `store`; `token` signs the web requests in."""

    def __init__(self, engine, path):
        settings = config.Settings(LOGIN_REQUIRED=False, **database_settings(engine, path))
        self.address = store.address(settings)
        self.store = st = store.Database(self.address)
        st.migrate()
        self.unit = seed(st, "A1", DELETED)
        seed(st, "B7", 0)
        user = st.accounts.add_user("admin", auth.hash_password("pw"), is_staff=True)
        self.token = auth.create_api_token(st, user.id, "t")
        st.commit()
        self.loop = loop.Loop()
        self.turns = 0
        self.commits = store.GroupCommit(st, self.loop, 1, 50)
        self.chores = chores.Chores(self.loop, self.commits)
        for service in (self.commits, self.chores):
            self.loop.add_service(service)
            service.start()
        self.ttp = ttp.TTPServer(settings, st, self.commits, events.Bus(),
                                 plugins.load_ttp_apps(settings), self.loop)
        self.ttp_port = self.loop.listen("127.0.0.1", 0, self.ttp.accept,
                                         ("MAX_CONNECTIONS", 10), b"")[1]
        self.ended = WATCH["ended"] = []
        WATCH["step"] = self.watched
        self.web = http.HTTPServer(settings, site.Site(st, settings, routes=ROUTES), self.loop,
                                   chores=self.chores)
        self.http_port = self.loop.listen("127.0.0.1", 0, self.web.accept,
                                          ("MAX_HTTP_CONNECTIONS", 10), b"")[1]
        self.steps = None

    def watched(self, deleting):
        self.steps = Watched(self.address, deleting, lambda: self.turns,
                             lambda: self.ttp.requests.value)
        return self.steps

    def turn(self):
        self.turns += 1
        self.loop._turn(0.01)

    def until(self, done, what, turns=2000):
        for _ in range(turns):
            if done():
                return
            self.turn()
        raise AssertionError("%s did not happen in %d turns" % (what, turns))

    def post(self, path):
        """POST `path` signed in by the token; (status line, body). The
        loop is turned until the whole answer is in."""
        sock = socket.create_connection(("127.0.0.1", self.http_port), timeout=5)
        sock.sendall(("POST %s HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer %s\r\n"
                      "Content-Length: 0\r\nConnection: close\r\n\r\n"
                      % (path, self.token)).encode())
        sock.setblocking(False)
        got = []

        def answered():
            try:
                data = sock.recv(65536)
            except BlockingIOError:
                return False
            got.append(data)
            return not data
        self.until(answered, "the answer to POST %s" % path)
        sock.close()
        head, _, body = b"".join(got).decode().partition("\r\n\r\n")
        return head.split("\r\n")[0], body

    def close(self):
        for channel in list(self.loop.channels):
            channel.close()
        for listener in self.loop.listeners:
            listener.close()
        self.loop.selector.close()
        if self.steps is not None:
            self.steps.other.close()
        self.store.close()


@pytest.fixture
def served(tmp_path, engine):
    s = Served(engine, tmp_path / "data.db")
    yield s
    s.close()


def committed(address, code):
    """`code`'s samples another connection sees."""
    other = store.Database(address)
    try:
        return other.one("SELECT count(*) FROM samples JOIN units ON units.id = unit_id"
                         " WHERE code = ?", (code,))[0]
    finally:
        other.close()


class Meter:
    """A meter on the TTP port uploading to B7, one request at a time."""

    def __init__(self, served):
        self.served = served
        self.sock = socket.create_connection(("127.0.0.1", served.ttp_port), timeout=5)
        self.sock.setblocking(False)
        self.sent = 0

    def upload(self):
        """One upload; its answer, the loop turned until it is in."""
        self.sent += 1
        ts = datetime.datetime(2024, 1, 1) + datetime.timedelta(seconds=self.sent)
        line = up_request("B7", "kB7", ["%s;%d" % (format_ts(ts), self.sent)])
        self.sock.sendall(line.encode() + b"\r")
        got = b""

        def answered():
            nonlocal got
            try:
                got += self.sock.recv(100)
            except BlockingIOError:
                pass
            return got.endswith(b"\r")
        self.served.until(answered, "an answer")
        return got.decode().rstrip("\r")


def test_a_meter_is_answered_between_the_chunks_of_a_deletion(served):
    meter = Meter(served)
    assert meter.upload() == "OK"
    status, body = served.post("/test/delete/A1/")
    # The view only queued it: nothing was deleted before the answer.
    assert status == "HTTP/1.1 200 OK"
    assert body == "delete samples of A1: 0 steps, 0 of 2,000; server's chores: True\n"
    chore = served.chores.active()[0]
    running = served.post("/test/running/")[1]
    assert running.startswith("delete samples of A1: ") and running.endswith(" of 2,000\n")
    assert running != "delete samples of A1: 0 of 2,000\n"
    answers = []
    while served.chores.active():
        answers.append((meter.upload(), chore.steps, committed(served.address, "A1"),
                        committed(served.address, "B7")))
    steps = served.steps.seen
    assert chore.finished and served.ended == [chore]
    assert chore.steps == DELETED // CHUNK + 1 and chore.progress == "2,000 of 2,000"
    # Each step began on a turn of its own, with the chunk before it on
    # disk, and TTP requests were answered between the chunks.
    assert [turn for turn, _, _ in steps] == list(range(steps[0][0], steps[0][0] + len(steps)))
    assert [left for _, _, left in steps] == list(range(DELETED, -1, -CHUNK))
    answered = [n for _, n, _ in steps]
    assert answered == sorted(answered) and answered[-1] - answered[0] >= 5
    # And the meter's view: every upload OK and committed at once (it rode
    # in a chunk's commit), each answered part way through the deletion.
    assert all(answer == "OK" for answer, _, _, _ in answers)
    assert [b7 for _, _, _, b7 in answers] == list(range(2, len(answers) + 2))
    partway = [(steps_then, a1) for _, steps_then, a1, _ in answers if 0 < a1 < DELETED]
    assert len(partway) >= 5
    assert [s for s, _ in partway] == sorted(set(s for s, _ in partway))
    assert committed(served.address, "A1") == 0


def test_the_web_is_refused_with_503_when_the_chores_are_full(served):
    for n in range(chores.MAX_CHORES):
        served.chores.submit("filler %d" % n, lambda: False)
    status, body = served.post("/test/delete/A1/")
    assert status == "HTTP/1.1 503 Service Unavailable"
    assert "long jobs queued" in body
    assert len(served.chores.active()) == chores.MAX_CHORES


def test_a_view_that_fails_after_asking_leaves_no_chore(served):
    status, body = served.post("/test/fail/A1/")
    assert status == "HTTP/1.1 409 Conflict" and body == "changed my mind\n"
    assert served.chores.active() == []
    for _ in range(5):
        served.turn()
    assert committed(served.address, "A1") == DELETED


# -- without texmate_ds's loop: wsgiref ------------------------------------------

class OnWSGIRef(WSGISite):
    def __init__(self, engine, path):
        super().__init__(engine, path, ROUTES, LOGIN_REQUIRED=False)
        seed(self.db, "A1", DELETED)
        user = self.db.accounts.add_user("admin", auth.hash_password("pw"), is_staff=True)
        self.token = auth.create_api_token(self.db, user.id, "t")
        self.db.commit()

    def post(self, path):
        browser = conftest.Browser(self.port)
        return browser.request("POST", path, b"",
                               {"Authorization": "Bearer %s" % self.token})


def test_without_the_loop_the_steps_run_at_once_a_commit_each(tmp_path, engine):
    made = []

    def watched(deleting):
        made.append(Watched(web.address, deleting))
        return made[-1]
    ended = WATCH["ended"] = []
    WATCH["step"] = watched
    web = OnWSGIRef(engine, tmp_path / "web.db")
    try:
        answer = web.post("/test/delete/A1/")
        # The view answered before its chore ran; the chore ran before the
        # answer went out, each chunk committed before the next began.
        assert answer.status == 200
        assert answer.body == "delete samples of A1: 0 steps, 0 of 2,000; server's chores: False\n"
        assert [left for _, _, left in made[0].seen] == list(range(DELETED, -1, -CHUNK))
        assert len(ended) == 1 and ended[0].finished
        assert committed(web.address, "A1") == 0
        seed(web.db, "A2", 10)
        web.db.commit()
        failed = web.post("/test/fail/A2/")
        assert failed.status == 409 and committed(web.address, "A2") == 10
        assert web.post("/test/running/").body == ""   # nothing left running, ever
    finally:
        web.stop()
