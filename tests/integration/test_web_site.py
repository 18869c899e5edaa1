"""The web UI over real HTTP: the WSGI site on wsgiref (127.0.0.1, a port
the OS picks) in a thread, over a store.Database on each engine (a temporary
file, a new PostgreSQL database). The test keeps its own connection to the
same database, as ``manage`` would, to set things up and to check what
changed."""

import hashlib
import logging

import pytest

from texmate_ds import auth
from texmate_ds.web import app, site

import conftest
from conftest import WSGISite

PASSWORD = "correct horse"
METRICS = "# TYPE texmate_requests_total counter\ntexmate_requests_total 3\n"


@app.page
def _boom(request, what):
    raise RuntimeError("secret detail")


@app.page
def _half_done(request):
    request.store.units.add("HALF", "k", 1)
    if request.form.get("fail"):
        raise app.HTTPError(400, "refused after writing")
    raise RuntimeError("crashed after writing")


@app.page
def _staff_room(request, number):
    return app.text(200, "room %d for %s via %s\n" % (
        number, request.user.username, request.url_for("staff_room", number)))


TEST_ROUTES = [app.Route("/boom/<what>", _boom), app.Route("/half/", _half_done, methods=("POST",))]
# A small group as the admin will mount its pages: a prefix, and staff only.
TEST_ROUTES += app.group("/staff", [
    app.Route("/rooms/<number:int>/", _staff_room, "staff_room", methods=("GET", "POST"))],
    app.staff)


class WebSite(WSGISite):
    """A running web UI with the test routes; `db` is the test's own
    connection to its store."""

    def __init__(self, engine, folder, **settings):
        super().__init__(engine, folder / "web.db", site.ROUTES + TEST_ROUTES, lambda: METRICS,
                         **settings)

    def browser(self):
        return Browser(self.port)

    def add_user(self, username, password=PASSWORD, encoded=None, **flags):
        self.db.accounts.add_user(username, encoded or auth.hash_password(password), **flags)
        self.db.commit()
        return self.user(username)

    def user(self, username):
        return self.db.accounts.get_user_by_name(username)

    def count(self, table):
        return self.db.one("SELECT count(*) FROM %s" % table)[0]


class Browser(conftest.Browser):
    def sign_in(self, username, password=PASSWORD, next="/"):
        return super().sign_in(username, password, next)


@pytest.fixture
def web(tmp_path, engine):
    """`web(**settings)` -> a running WebSite, stopped after the test."""
    sites = []

    def start(**settings):
        sites.append(WebSite(engine, tmp_path / str(len(sites)), **settings))
        return sites[-1]
    yield start
    for running in sites:
        running.stop()


# -- signing in ---------------------------------------------------------------

def test_sign_in_starts_a_session_and_returns_to_next(web):
    w = web()
    w.add_user("ann")
    b = w.browser()
    first = b.get("/?page=1")
    assert first.status == 302
    assert first.header("Location") == "/login/?next=%2F%3Fpage%3D1"
    form = b.get(first.header("Location")).body
    assert 'name="next" value="/?page=1"' in form
    signed = b.sign_in("ann", next="/?page=1")
    assert (signed.status, signed.header("Location")) == (303, "/?page=1")
    cookie = [c for c in signed.headers.get_all("Set-Cookie") if c.startswith("txm_session=")][0]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Max-Age=1209600" in cookie
    home = b.get("/")
    assert home.status == 200 and '<span class="who">ann</span>' in home.body
    assert w.count("sessions") == 1 and w.user("ann").last_login is not None


def test_wrong_password_and_unknown_user_are_refused_alike(web):
    w = web()
    w.add_user("ann")
    b = w.browser()
    for username, password in (("ann", "wrong"), ("nobody", PASSWORD)):
        answer = b.sign_in(username, password)
        assert answer.status == 403
        assert "wrong username or password" in answer.body
        assert "txm_session" not in b.cookies
    assert b.post("/login/", {"username": "ann", "csrf_token": b.csrf("/login/")}).status == 400
    assert w.count("sessions") == 0


def test_sign_ins_are_throttled_after_five_failures(web):
    w = web()
    w.add_user("ann")
    b = w.browser()
    for _ in range(5):
        assert b.sign_in("ann", "wrong").status == 403
    throttled = b.sign_in("ann")  # even the right password
    assert throttled.status == 429
    assert 0 < int(throttled.header("Retry-After")) <= 900
    assert "too many failed sign-ins" in throttled.body
    assert w.count("sessions") == 0


def test_next_must_stay_on_this_site(web):
    w = web()
    w.add_user("ann")
    for target in ("http://evil.example/", "//evil.example/", "/\\evil.example"):
        assert w.browser().sign_in("ann", next=target).header("Location") == "/"


def test_inactive_users_cannot_sign_in(web):
    w = web()
    w.add_user("ann")
    w.db.execute("UPDATE users SET is_active = 0")
    answer = w.browser().sign_in("ann")
    assert answer.status == 403 and "disabled" in answer.body


def test_legacy_sha1_hash_is_accepted_and_upgraded(web):
    w = web()
    legacy = "sha1$$" + hashlib.sha1(PASSWORD.encode()).hexdigest()
    w.add_user("old", encoded=legacy)
    assert w.browser().sign_in("old").status == 303
    w.db.notice_others()
    upgraded = w.user("old").password
    assert upgraded.startswith("pbkdf2_sha256$%d$" % auth.ITERATIONS)
    assert auth.check_password(PASSWORD, upgraded)


def test_sign_out_ends_the_session(web):
    w = web()
    w.add_user("ann")
    b = w.browser()
    b.sign_in("ann")
    old = dict(b.cookies)
    out = b.post("/logout/", {"csrf_token": b.csrf("/")})
    assert (out.status, out.header("Location")) == (303, "/login/")
    assert "txm_session" not in b.cookies and w.count("sessions") == 0
    b.cookies = old  # a copy of the cookie is worth nothing now
    assert b.get("/").status == 302


# -- CSRF ---------------------------------------------------------------------

def test_posts_without_a_valid_csrf_token_are_refused_and_change_nothing(web):
    w = web()
    w.add_user("ann")
    b = w.browser()
    b.get("/login/")
    for form in ({"username": "ann", "password": PASSWORD},
                 {"username": "ann", "password": PASSWORD, "csrf_token": "forged"}):
        refused = b.post("/login/", form)
        assert refused.status == 403 and "CSRF" in refused.body
    assert w.count("sessions") == 0
    b.sign_in("ann")
    before = w.user("ann").password
    change = {"old_password": PASSWORD, "new_password": "n3w secret",
              "new_password2": "n3w secret"}
    assert b.post("/password/", change).status == 403
    assert b.post("/password/", dict(change, csrf_token="x" * 64)).status == 403
    assert b.post("/logout/", {}).status == 403
    w.db.notice_others()
    assert w.user("ann").password == before and w.count("sessions") == 1
    assert b.get("/").status == 200


def test_the_anonymous_csrf_token_is_bound_to_its_cookie(web):
    w = web()
    w.add_user("ann")
    thief, victim = w.browser(), w.browser()
    token = thief.csrf("/login/")
    victim.get("/login/")
    answer = victim.post("/login/", {"username": "ann", "password": PASSWORD,
                                     "csrf_token": token})
    assert answer.status == 403


# -- the default password -----------------------------------------------------

def test_default_password_must_be_changed_before_anything_else(web):
    w = web()
    w.add_user("Administrator", auth.DEFAULT_PASSWORD, must_change_password=True,
               is_staff=True, is_superuser=True)
    other = w.browser()
    other.sign_in("Administrator", auth.DEFAULT_PASSWORD)
    b = w.browser()
    signed = b.sign_in("Administrator", auth.DEFAULT_PASSWORD, next="/views/1/")
    assert signed.header("Location") == "/password/?next=%2Fviews%2F1%2F"
    home = b.get("/")
    assert (home.status, home.header("Location")) == (302, "/password/?next=%2F")
    page = b.get("/password/")
    assert page.status == 200 and "default password" in page.body
    csrf = b.csrf("/password/")

    def change(old, new, again=None):
        return b.post("/password/", {"old_password": old, "new_password": new,
                                     "new_password2": new if again is None else again,
                                     "csrf_token": csrf, "next": "/"})
    assert change("admin", "s3cret!", "other").status == 400
    assert change("admin", "admin").status == 400
    assert change("wrong", "s3cret!").status == 403
    done = change("admin", "s3cret!")
    assert (done.status, done.header("Location")) == (303, "/")
    assert b.get("/").status == 200
    w.db.notice_others()
    admin = w.user("Administrator")
    assert not admin.must_change_password and auth.check_password("s3cret!", admin.password)
    assert w.count("sessions") == 1  # the other browser's session ended
    assert other.get("/").status == 302


# -- API tokens ---------------------------------------------------------------

def test_bearer_tokens_open_data_views(web):
    w = web()
    staff = w.add_user("ops", is_staff=True)
    plain = w.add_user("ann")
    staff_token = auth.create_api_token(w.db, staff.id, "prometheus")
    plain_token = auth.create_api_token(w.db, plain.id, "cron")
    w.db.commit()
    b = w.browser()
    anonymous = b.get("/metrics")
    assert anonymous.status == 401
    assert anonymous.header("WWW-Authenticate") == 'Bearer realm="texmate_ds"'
    assert anonymous.header("Content-Type").startswith("text/plain")
    assert b.get("/metrics", Authorization="Bearer nonsense").status == 401
    assert b.get("/metrics", Authorization="Basic b3BzOng=").status == 401
    assert b.get("/metrics", Authorization="Bearer " + plain_token).status == 403
    ok = b.get("/metrics", Authorization="Bearer " + staff_token)
    assert ok.status == 200 and ok.body == METRICS
    assert ok.header("Content-Type") == "text/plain; version=0.0.4; charset=utf-8"
    w.db.notice_others()
    assert w.db.accounts.get_api_token(auth.digest(staff_token)).last_used is not None
    # Pages take sessions only: a token does not open them.
    assert b.get("/", Authorization="Bearer " + staff_token).status == 302
    auth.revoke_api_token(w.db, staff.id, "prometheus")
    w.db.commit()
    assert b.get("/metrics", Authorization="Bearer " + staff_token).status == 401


def test_metrics_for_a_staff_session(web):
    w = web()
    w.add_user("ops", is_staff=True)
    w.add_user("ann")
    b = w.browser()
    b.sign_in("ann")
    assert b.get("/metrics").status == 403
    b.sign_in("ops")
    assert b.get("/metrics").body == METRICS


# -- route groups -------------------------------------------------------------

@pytest.mark.parametrize("login_required", [True, False])
def test_a_staff_group_admits_staff_only(web, login_required):
    w = web(LOGIN_REQUIRED=login_required)
    w.add_user("ops", is_staff=True)
    w.add_user("ann")
    b = w.browser()
    anonymous = b.get("/staff/rooms/7/")
    assert anonymous.status == 302
    assert anonymous.header("Location") == "/login/?next=%2Fstaff%2Frooms%2F7%2F"
    b.sign_in("ann")
    refused = b.get("/staff/rooms/7/")
    assert refused.status == 403 and '<p class="error">staff only</p>' in refused.body
    b.sign_in("ops")
    room = b.get("/staff/rooms/7/")
    assert (room.status, room.body) == (200, "room 7 for ops via /staff/rooms/7/\n")
    assert b.post("/staff/rooms/7/", {}).status == 403          # no CSRF token
    assert b.post("/staff/rooms/7/", {"csrf_token": b.csrf("/")}).status == 200
    assert b.get("/staff/rooms/7").header("Location") == "/staff/rooms/7/"
    assert b.get("/staff/rooms/x/").status == 404


# -- LOGIN_REQUIRED: no -------------------------------------------------------

def test_without_login_required_pages_are_open_but_accounts_are_not(web):
    w = web(LOGIN_REQUIRED=False)
    w.db.units.add("A1", "k", 1, name="Pump")
    w.db.commit()
    b = w.browser()
    home = b.get("/")
    assert home.status == 200 and "Pump" in home.body and 'href="/login/"' in home.body
    assert b.get("/password/").status == 302
    assert b.get("/metrics").status == 401


def test_healthz_and_static_need_no_sign_in(web):
    w = web()
    b = w.browser()
    health = b.get("/healthz")
    assert (health.status, health.body) == (200, "ok\n")
    assert b.get("/static/style.css").status == 200


# -- escaping -----------------------------------------------------------------

SCRIPT = "<script>alert(1)</script>"


def test_unit_names_labels_and_display_names_are_escaped(web):
    w = web(LOGIN_REQUIRED=False)
    unit = w.db.units.add("X1", "k", 2, name=SCRIPT,
                         field_names=['<img src=x onerror="alert(2)">', "ok"])
    w.db.samples.add(unit, [(10**15, [1.5, 2])])
    display_id = w.db.displays.add(SCRIPT, 7, [(unit, 1), (unit, 2)]).id
    w.db.commit()
    b = w.browser()
    for path in ("/", "/views/%d/" % display_id):
        page = b.get(path)
        assert page.status == 200
        assert SCRIPT not in page.body and "<img" not in page.body
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.body
        assert "script-src 'self'" in page.header("Content-Security-Policy")
    shown = b.get("/views/%d/" % display_id).body
    assert "&lt;img src=x onerror=&quot;alert(2)&quot;&gt;" in shown
    assert "<title>&lt;script&gt;" in shown


# -- pages --------------------------------------------------------------------

def test_home_lists_units_with_counts_and_pages_them(web):
    w = web(LOGIN_REQUIRED=False)
    for i in range(51):
        w.db.units.add("U%02d" % i, "k", 1)
    a = w.db.units.get("U00")
    w.db.samples.add(a, [(10**15, [1]), (10**15 + 1, [2])])
    w.db.commit()
    b = w.browser()
    first = b.get("/").body
    assert first.count('<td class="num">') == 2 * 50     # samples and active alarms, a row each
    assert "U49" in first and "U50" not in first
    # The newest sample's time, to the second as pages show times.
    assert '<td class="num">2</td>' in first and "<td>2001-09-09 01:46:40</td>" in first
    assert ".000001" not in first
    assert '<a href="/units/U00/samples.csv">CSV</a>' in first
    assert 'href="?page=2"' in first and "page 1 of 2" in first
    second = b.get("/?page=2").body
    assert "U50" in second and "U49" not in second and 'href="?page=1"' in second


def test_display_shows_newest_values_and_refreshes(web):
    w = web(LOGIN_REQUIRED=False)
    a = w.db.units.add("A1", "k", 3, name="Pump", field_names=["Flow"])
    b7 = w.db.units.add("B7", "k", 1)
    w.db.samples.add(a, [(10**15, [1, 2, 3]), (2 * 10**15, [4.25, 5, 6])])
    display_id = w.db.displays.add("Plant", 15, [(a, 1), (a, 3), (b7, 1)]).id
    w.db.commit()
    page = w.browser().get("/views/%d/" % display_id).body
    # Without script it reloads itself; with it, display.js updates it live.
    assert '<noscript><meta http-equiv="refresh" content="15"></noscript>' in page
    assert 'src="/static/display.js"' in page and 'data-events="/events?units=A1%2CB7"' in page
    assert ('<dt>Flow</dt><dd data-field="1"><span class="value">4.25</span></dd>'
            '<dt>L3</dt><dd data-field="3"><span class="value">6</span></dd>') in page
    assert "L2" not in page and "no samples yet" in page
    home = w.browser().get("/").body
    assert '<a href="/views/%d/">Plant</a>' % display_id in home


@pytest.mark.parametrize("path, status", [
    ("/?page=0", 400), ("/?page=x", 400), ("/?page=2", 404), ("/?page=1&page=2", 400),
    ("/?displays_page=-1", 400), ("/?page=%ff", 400), ("/views/999/", 404),
    ("/views/abc/", 404), ("/nothing/", 404), ("/static/nothing.css", 404),
    ("/static/.hidden", 404),
])
def test_bad_parameters_get_a_clear_answer(web, path, status):
    w = web(LOGIN_REQUIRED=False)
    answer = w.browser().get(path)
    assert answer.status == status
    assert '<p class="error">' in answer.body


def test_bad_form_bodies_are_refused(web):
    w = web()
    b = w.browser()
    b.get("/login/")
    assert b.post("/login/", b"x=" + b"a" * app.MAX_FORM_BYTES).status == 413
    assert b.post("/login/", b"{}", **{"Content-Type": "application/json"}).status == 415
    assert b.post("/login/", b"username=%ff").status == 400
    assert b.post("/healthz", {}).status == 405


def test_a_missing_slash_redirects(web):
    w = web()
    answer = w.browser().get("/login?next=%2F")
    assert (answer.status, answer.header("Location")) == (301, "/login/?next=%2F")


def test_a_crashing_view_answers_500_without_traceback(web, caplog):
    w = web(LOGIN_REQUIRED=False)
    with caplog.at_level(logging.ERROR, logger="texmate_ds.web"):
        answer = w.browser().get("/boom/%1b%0a")
    assert answer.status == 500
    assert "secret detail" not in answer.body and "Traceback" not in answer.body
    assert "internal error" in answer.body
    assert "secret detail" in caplog.text and "/boom/\\x1b\\n failed" in caplog.text
    assert w.browser().get("/healthz").status == 200


def test_a_failing_post_changes_nothing(web):
    w = web(LOGIN_REQUIRED=False)
    b = w.browser()
    token = b.csrf("/login/")
    assert b.post("/half/", {"csrf_token": token}).status == 500
    assert b.post("/half/", {"csrf_token": token, "fail": "1"}).status == 400
    w.db.notice_others()
    assert w.db.units.get("HALF") is None


# -- static files -------------------------------------------------------------

def test_static_files_answer_conditional_gets_and_head(web):
    w = web()
    b = w.browser()
    css = b.get("/static/style.css")
    assert css.status == 200 and css.header("Content-Type") == "text/css; charset=utf-8"
    etag, modified = css.header("ETag"), css.header("Last-Modified")
    assert etag and modified
    for headers in ({"If-None-Match": etag}, {"If-None-Match": '"x", W/' + etag},
                    {"If-Modified-Since": modified}):
        again = b.get("/static/style.css", **headers)
        assert again.status == 304 and again.raw == b"" and again.header("ETag") == etag
    assert b.get("/static/style.css", **{"If-None-Match": '"other"'}).status == 200
    assert b.get("/static/style.css", **{"If-Modified-Since": "Sat, 01 Jan 2000 00:00:00 GMT"}
                 ).status == 200
    head = b.request("HEAD", "/static/style.css")
    assert head.status == 200 and head.raw == b""
    assert head.header("Content-Length") == str(len(css.raw))
