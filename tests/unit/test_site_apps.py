"""A site HTTP app as the server mounts it (`site.Site.mount`): the app's
own body limits kept, and who signed in under environ["texmate.user"], an
`access.Visitor` that holds no password hash and cannot be changed; the
admin models an app declares (`admin.tables.TableAdmin`), checked, and in
the admin of the site that has them only; an app's migrations read in
order without running it, from a folder or a zip. The real server's side of it is
tests/integration/test_http_apps.py and test_admin_apps.py."""

import importlib.util
import zipfile

import pytest

from texmate_ds import auth, config, plugins, store
from texmate_ds.http import MAX_BODY, limit_of
from texmate_ds.web import admin, site
from texmate_ds.web.admin.tables import TableAdmin


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


NOTE = {"name": "note", "table": "notes_note",
        "columns": [{"name": "unit", "required": True},
                    {"name": "done", "type": "boolean"},
                    {"name": "kind", "type": "choice", "choices": [["a", "A"], ["b", "B"]]}],
        "list": ["unit", "kind"], "search": ["unit"], "sort": ["unit"]}


def test_a_declared_model_is_an_admin_model_of_its_site_only(tmp_path):
    model = TableAdmin("Notes", NOTE)
    assert (model.name, model.singular, model.plural, model.search) == (
        "notes.note", "note", "notes", "unit")
    assert [(c.name, c.heading, c.order, c.kind) for c in model.columns] == [
        ("unit", "Unit", "unit", "text"), ("kind", "Kind", None, "text")]
    assert [f.name for f in model.form(None, None).fields] == ["unit", "done", "kind"]
    db = store.Database(str(tmp_path / "t.db"))
    db.migrate()
    with_notes = site.Site(db, config.Settings(), admin_models=[model])
    assert with_notes.admin.lookup("notes.note") is model
    assert ("notes.note", "notes", ["notes.note.%s" % action for action in (
        "view", "add", "change", "delete")]) in with_notes.admin.permissions()
    assert "notes.note" not in site.Site(db, config.Settings()).admin.models
    assert "notes.note" not in admin.ADMIN.models
    with pytest.raises(ValueError, match="exists already"):
        admin.ADMIN.extended([model, TableAdmin("notes", NOTE)])
    db.close()


@pytest.mark.parametrize("changes, reason", [
    ({"name": "Note"}, "model 'Note': name: lower-case letters"),
    ({"table": "units"}, "model note: table units is not the app's"),
    ({"colour": "red"}, "model: unknown key 'colour'"),
    ({"columns": []}, "model note: columns: one at least"),
    ({"columns": "unit"}, "model: columns: expected list, not 'unit'"),
    ({"list": ["nothing"]}, "model note: list: 'nothing' is not one of its columns"),
    ({"search": ["done"]}, "model note: search: text and choice columns only"),
    ({"columns": [{"label": "x"}]}, "model note: columns[0]: name: required"),
    ({"columns": [{"name": "a", "type": "date"}]}, "columns[0] (a): type: one of text, "
                                                   "integer, boolean, choice, not 'date'"),
    ({"columns": [{"name": "a", "min": 1}]}, "columns[0] (a): min: only for integer columns"),
    ({"columns": [{"name": "a", "required": 1}]}, "columns[0]: required: expected bool, not 1"),
    ({"columns": [{"name": "a", "type": "integer", "max": True}]}, "max: expected int"),
    ({"columns": [{"name": "a", "type": "integer", "min": 5, "max": 1}]}, "min and max"),
    ({"columns": [{"name": "a", "max_length": 0}]}, "max_length: 1 to 10000"),
    ({"columns": [{"name": "a", "type": "choice"}]}, "choices: required for a choice"),
    ({"columns": [{"name": "a", "type": "choice", "choices": [["x", ""]]}]},
     'choices: expected ["value", "text"] pairs'),
    ({"columns": [{"name": "a", "type": "choice", "choices": [["x", "X"], ["x", "Y"]]}]},
     "choices: a value is offered twice"),
    ({"columns": [{"name": "id"}]}, "column 'id'"),
])
def test_a_declaration_says_what_is_wrong(changes, reason):
    declaration = dict(NOTE, list=[], search=[], sort=[])
    declaration.update(changes)
    with pytest.raises(ValueError) as raised:
        TableAdmin("notes", declaration)
    assert reason in str(raised.value)


def package_app(folder, files):
    """The AppInfo of the package notes/ in `folder` holding `files`."""
    for name, text in dict({"__init__.py": "raise SystemExit('never run')\n"}, **files).items():
        path = folder / "notes" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    spec = importlib.util.spec_from_file_location(
        "_txm_httpapp_notes", folder / "notes" / "__init__.py",
        submodule_search_locations=[str(folder / "notes")])
    return plugins.AppInfo("notes", False, spec, True)


def test_an_apps_migrations_are_read_in_order_without_running_it(tmp_path):
    app = package_app(tmp_path, {"migrations/0002_more.sql": "two", "migrations/README": "-",
                                 "migrations/0001_first.sql": "one"})
    migrations = tmp_path / "notes" / "migrations"
    assert app.migrations() == [(str(migrations / "0001_first.sql"), "one"),
                                (str(migrations / "0002_more.sql"), "two")]
    assert package_app(tmp_path / "none", {}).migrations() == []


@pytest.mark.parametrize("names, wrong", [
    (["0002_first.sql"], "0002_first.sql: expected 0001_what.sql next"),
    (["0001_a.sql", "0001_b.sql"], "0001_b.sql: expected 0002_what.sql next"),
    (["0001_a.sql", "0003_c.sql"], "0003_c.sql: expected 0002_what.sql next"),
    (["1_a.sql"], "1_a.sql: expected 0001_what.sql next"),
    (["0001 a.sql"], "0001 a.sql: expected 0001_what.sql next"),
])
def test_migrations_out_of_sequence_are_refused_naming_the_file(tmp_path, names, wrong):
    app = package_app(tmp_path, {"migrations/" + name: "x" for name in names})
    with pytest.raises(plugins.AppError, match=wrong):
        app.migrations()


def test_an_apps_migrations_are_read_from_inside_a_zip(tmp_path, monkeypatch):
    archive = tmp_path / "apps.pyz"
    with zipfile.ZipFile(archive, "w") as pyz:
        pyz.writestr("zipped_notes/__init__.py", "raise SystemExit('never run')\n")
        pyz.writestr("zipped_notes/migrations/0001_first.sql", "CREATE TABLE notes_x (a);\n")
    monkeypatch.syspath_prepend(str(archive))
    app = plugins.AppInfo("notes", True, importlib.util.find_spec("zipped_notes"), True)
    [(path, text)] = app.migrations()
    assert path.endswith("0001_first.sql") and text == "CREATE TABLE notes_x (a);\n"
