"""A web answer to a request that wrote waits for the group commit, as a
meter's OK does (http.WSGIResponse, held by the server's GroupCommit):
what a page says is saved is on disk before the client reads it, so a
second process behind a load balancer sees it at the client's next
request, and a commit that fails turns the answer into a 500 saying
nothing was saved, never the app's "saved".

The real loop, HTTP server and group commit over a real store on either
engine, in a thread of the test; the client is http.client over a
socket.
"""

import threading
import time
from http.client import HTTPConnection

from texmate_ds import config, http, loop, store

from conftest import spoil_commit


class Site:
    """`app(db, environ, start_response)` served by a real loop whose group
    commit holds `db`, the loop thread's own connection to the database at
    `path` (SQLite's stay in their thread), and a one-thread pool for the
    work an app offloads (``environ[http.OFFLOAD]``)."""

    def __init__(self, path, app):
        self.loop = loop.Loop()
        ready = threading.Event()
        self.thread = threading.Thread(target=self._serve, args=(path, app, ready), daemon=True)
        self.thread.start()
        assert ready.wait(20)

    def _serve(self, path, app, ready):
        db = store.Database(path)
        commits = store.GroupCommit(db, self.loop, 1, 0)
        self.loop.add_service(commits)
        pool = loop.Pool(self.loop, 1, lambda: None, 8)
        self.loop.add_service(pool)
        server = http.HTTPServer(config.Settings(), lambda env, start: app(db, env, start),
                                 self.loop, pool, commits=commits)
        self.port = self.loop.listen("127.0.0.1", 0, server.accept,
                                     ("MAX_HTTP_CONNECTIONS", 10), server.refusal)[1]
        ready.set()
        try:
            self.loop.run()
        finally:
            db.close()

    def get(self, path):
        conn = HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request("GET", path)
            answer = conn.getresponse()
            return answer.status, answer.read().decode()
        finally:
            conn.close()

    def stop(self):
        self.loop.stop()
        self.thread.join(20)


def committed_in(path, code):
    """Whether another connection to the database at `path` sees unit `code`."""
    other = store.Database(path)
    try:
        return other.units.get(code) is not None
    finally:
        other.close()


def test_an_answer_worked_out_on_the_pool_waits_for_the_commit_of_what_its_end_wrote(
        store_db):
    """A view that returns `app.Later` (sign-in: the password hash) writes
    in its end, on the loop once the pool's work is done: the session a
    sign-in starts is committed before its 303 leaves, or the next request,
    to another process, finds no session. The commit is made slow, so an
    answer sent before it would be read while nothing is committed."""
    def app(db, environ, start_response):
        code = environ["PATH_INFO"].strip("/")

        def finish(_):
            db.units.add(code, "key", 1)
            db.before_commit.append(lambda: time.sleep(0.5))
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"saved"]
        return environ[http.OFFLOAD](lambda context: None, finish)

    site = Site(store_db.path, app)
    try:
        assert site.get("/L1/") == (200, "saved")
        seen_by_others = committed_in(store_db.path, "L1")
    finally:
        site.stop()
    assert seen_by_others


def test_a_writing_answer_is_sent_after_its_commit_and_a_failed_commit_says_so(store_db):
    seen_by_others = {}

    def app(db, environ, start_response):
        code = environ["PATH_INFO"].strip("/")
        db.units.add(code, "key", 1)
        if code == "SPOILT":
            spoil_commit(db)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"saved"]

    site = Site(store_db.path, app)
    try:
        assert site.get("/P1/") == (200, "saved")
        # Read the moment the answer is in: another connection sees it.
        seen_by_others["P1"] = committed_in(store_db.path, "P1")
        status, text = site.get("/SPOILT/")
        seen_by_others["SPOILT"] = committed_in(store_db.path, "SPOILT")
    finally:
        site.stop()
    assert seen_by_others == {"P1": True, "SPOILT": False}
    assert status == 500
    assert "nothing was saved" in text
