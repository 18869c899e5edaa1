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
from http.client import HTTPConnection

from texmate_ds import config, http, loop, store

from conftest import spoil_commit


class Site:
    """`app(db, environ, start_response)` served by a real loop whose group
    commit holds `db`, the loop thread's own connection to the database at
    `path` (SQLite's stay in their thread)."""

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
        server = http.HTTPServer(config.Settings(), lambda env, start: app(db, env, start),
                                 self.loop, commits=commits)
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


def test_a_writing_answer_is_sent_after_its_commit_and_a_failed_commit_says_so(store_db):
    seen_by_others = {}

    def app(db, environ, start_response):
        code = environ["PATH_INFO"].strip("/")
        db.units.add(code, "key", 1)
        if code == "SPOILT":
            spoil_commit(db)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"saved"]

    def committed(code):
        other = store.Database(store_db.path)
        try:
            return other.units.get(code) is not None
        finally:
            other.close()

    site = Site(store_db.path, app)
    try:
        assert site.get("/P1/") == (200, "saved")
        # Read the moment the answer is in: another connection sees it.
        seen_by_others["P1"] = committed("P1")
        status, text = site.get("/SPOILT/")
        seen_by_others["SPOILT"] = committed("SPOILT")
    finally:
        site.stop()
    assert seen_by_others == {"P1": True, "SPOILT": False}
    assert status == 500
    assert "nothing was saved" in text
