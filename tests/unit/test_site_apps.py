"""A site HTTP app as the server mounts it (`site.Site.mount`): the app's
own body limits kept, and who signed in under environ["texmate.user"], an
`access.Visitor` that holds no password hash and cannot be changed. The
real server's side of it is tests/integration/test_http_apps.py."""

import pytest

from texmate_ds import auth, config, store
from texmate_ds.http import MAX_BODY, limit_of
from texmate_ds.web import site


class Limited:
    """A WSGI app that says what bodies it takes, and keeps what it saw."""

    largest_body = 8 * MAX_BODY

    def __init__(self):
        self.seen = []

    def body_limit(self, method, path):
        return 3 * MAX_BODY if path == "/big" else 10

    def __call__(self, environ, start_response):
        self.seen.append(environ[site.USER])
        start_response("200 OK", [])
        return [b""]


@pytest.fixture
def ui(tmp_path):
    db = store.Database(str(tmp_path / "t.db"))
    db.migrate()
    yield site.Site(db, config.Settings())
    db.close()


def visit(ui, application, secret=None):
    environ = {"HTTP_COOKIE": "txm_session=%s" % secret if secret else ""}
    ui.mount(application)(environ, lambda status, headers: None)
    return application.seen[-1]


def test_the_app_keeps_its_body_limits(ui):
    mounted = ui.mount(Limited())
    assert mounted.largest_body == 8 * MAX_BODY
    assert (limit_of(mounted, "POST", "/big"), limit_of(mounted, "POST", "/x")) == (
        3 * MAX_BODY, 10)


def test_the_visitor_is_who_the_session_signs_in_and_holds_no_hash(ui):
    accounts = ui.store.accounts
    user = accounts.add_user("ann", auth.hash_password("pw"), is_staff=True)
    secret = auth.start_session(ui.store, user.id, 1)
    app = Limited()
    assert visit(ui, app) is None
    assert visit(ui, app, "not-a-session") is None
    visitor = visit(ui, app, secret)
    assert (visitor.username, visitor.is_staff, visitor.is_superuser) == ("ann", True, False)
    assert not visitor.may("units", "view")
    assert not hasattr(visitor, "password")
    with pytest.raises(AttributeError):
        visitor.is_superuser = True
    with pytest.raises(AttributeError):
        visitor.anything = 1
    assert "pbkdf2" not in repr([getattr(visitor, name) for name in visitor.__slots__])


def test_one_who_must_change_the_default_password_is_no_one_yet(ui):
    user = ui.store.accounts.add_user("Administrator", auth.hash_password(auth.DEFAULT_PASSWORD),
                                      is_superuser=True, must_change_password=True)
    assert visit(ui, Limited(), auth.start_session(ui.store, user.id, 1)) is None
