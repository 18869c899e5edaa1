"""Two server processes on one PostgreSQL database keep every promise one
process keeps (docs/architecture.md, "Several processes on PostgreSQL"),
each reached at its own ports: any process takes any session cookie and
CSRF token; sign-in throttles count across processes.

Several processes share a database on PostgreSQL only: on SQLite (one
process) every test here skips, saying so.
"""

import pytest

from conftest import Browser, child_env

KEY = "k1"
PASSWORD = "a long password"


@pytest.fixture
def pair(server_factory, engine):
    """make(extra="") -> (a, b): two started servers on one new database;
    units A1 (2 fields), B7 (1) and M (1), all of key KEY; the
    Administrator's password PASSWORD and an API token of theirs
    (``a.token``)."""
    if engine != "postgresql":
        pytest.skip("several processes share a database on PostgreSQL only "
                    "(SQLite: one process)")

    def make(extra=""):
        a = server_factory(extra, start=False, name="a")
        for code, fields in (("A1", 2), ("B7", 1), ("M", 1)):
            a.add_unit(code, KEY, fields)
        env = dict(child_env(), TXM_PASSWORD=PASSWORD)
        a.manage("changepassword", "Administrator", "--noinput", env=env)
        a.token = a.manage("addtoken", "Administrator", "--name", "t").stdout.strip()
        a.start()
        b = server_factory(extra, name="b", conf=a.database_conf())
        return a, b
    return make


def settled(srv):
    """Return once what `srv` answered so far is committed. A web answer
    goes out just before the commit of the loop turn that made it (which
    a second process may not see yet); a request after it is served after
    that commit."""
    assert Browser(srv.http_port).get("/healthz").status == 200


# -- sessions, CSRF, throttles --------------------------------------------------------

def test_any_process_takes_any_session_cookie_and_csrf_token(pair):
    a, b = pair()
    browser = Browser(a.http_port)
    token = browser.csrf("/login/")         # the sign-in form, served by a
    browser.port = b.http_port              # sent to b, with a's txm_csrf cookie
    answer = browser.post("/login/", {"username": "Administrator", "password": PASSWORD,
                                      "next": "/", "csrf_token": token})
    assert answer.status == 303, answer.body
    settled(b)
    browser.port = a.http_port              # b's session cookie on a
    assert browser.get("/").status == 200
    token = browser.csrf("/password/")
    browser.port = b.http_port              # a's form, posted to b
    assert browser.post("/logout/", {"csrf_token": token}).status == 303
    settled(b)
    browser.port = a.http_port              # signed out everywhere
    assert browser.get("/").status in (302, 303)


def test_failed_sign_ins_on_one_process_count_on_the_other(pair):
    a, b = pair()
    for _ in range(5):
        answer = Browser(a.http_port).sign_in("Administrator", "wrong")
        assert answer.status == 403 and "wrong username or password" in answer.body
    refused = Browser(b.http_port).sign_in("Administrator", PASSWORD)
    assert refused.status == 429 and refused.header("Retry-After")
    assert "too many failed sign-ins" in refused.body
