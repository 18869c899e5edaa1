"""An HTTP app's own tables and admin models on the real server, with
the example app of docs/web.md ("Apps' models") as the page shows it:
its migrations applied at start (and by manage syncdb) after the store's
own, its model managed through the admin's own forms (with CSRF) and
logged, its permissions given through the admin's user form; and every
way such an app can be wrong stopping the start with the app, the file
and why."""

import json
import re
import subprocess

import pytest
from test_admin import PASSWORD, Browser, errors

from conftest import ROOT


def documented(heading):
    """The code block under the line of docs/web.md that starts with
    `heading`: the example app is tested as the page shows it."""
    lines = (ROOT / "docs" / "web.md").read_text().splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith(heading))
    start = next(i for i in range(at, len(lines)) if lines[i].startswith("    "))
    end = next(i for i in range(start, len(lines)) if lines[i] and not lines[i].startswith(" "))
    return "\n".join(line[4:] for line in lines[start:end]).strip() + "\n"


INIT = documented("`HTTPApps/notes/__init__.py`")
SCHEMA = documented("`HTTPApps/notes/migrations/0001_notes.sql`:")
ADMIN = documented("`HTTPApps/notes/admin.py`:")
LAST_COLUMN = '        {"name": "done", "type": "boolean"},\n'


def with_column(line):
    """The example's admin.py with one more column, declared by `line`."""
    assert ADMIN.count(LAST_COLUMN) == 1
    return ADMIN.replace(LAST_COLUMN, LAST_COLUMN + "        %s\n" % line)


def notes_app(folder, migrations=None, admin=ADMIN):
    """HTTPApps/notes/ in `folder`: the package, its migrations ({file
    name: text}) and its admin.py; the HTTPApps folder."""
    package = folder / "HTTPApps" / "notes"
    (package / "migrations").mkdir(parents=True)
    (package / "__init__.py").write_text(INIT)
    (package / "admin.py").write_text(admin)
    for name, text in (migrations or {"0001_notes.sql": SCHEMA}).items():
        (package / "migrations" / name).write_text(text)
    return folder / "HTTPApps"


def conf(apps):
    return "HTTP_APPS_DIR: %s\n[httpapps]\nnotes: on\n" % apps


def signed_in(server_factory, apps):
    srv = server_factory(conf(apps), start=False)
    srv.manage("changepassword", "Administrator", "--noinput",
               env=dict(srv.env, TXM_PASSWORD=PASSWORD))
    srv.start()
    root = Browser(srv.http_port)
    assert root.sign_in("Administrator", PASSWORD).status == 303
    return srv, root


def rows(answer):
    """The change list's rows: [(id, the words of its cells)]."""
    table = answer.body.split("<tbody>")[1].split("</tbody>")[0]
    found = []
    for row in re.findall(r"<tr>(.*?)</tr>", table, re.S):
        link = re.search(r'href="/admin/notes\.note/(\d+)/change/"', row)
        if link:
            found.append((int(link.group(1)), re.sub(r"<[^>]+>", " ", row).split()))
    return found


NOTE = {"unit": "A1", "body": "Pump seal <leaks>", "kind": "fault", "priority": "2"}


def test_an_apps_model_is_added_listed_searched_changed_and_deleted_with_a_log(
        server_factory, tmp_path):
    srv, root = signed_in(server_factory, notes_app(tmp_path))
    assert "HTTP app notes: tables at version 1 (were at 0)" in srv.errors()
    index = root.get("/admin/")
    assert "Notes on units" in index.body and 'href="/admin/notes.note/add/"' in index.body

    answer = root.submit("/admin/notes.note/add/", NOTE)
    assert answer.status == 303 and answer.header("Location") == "/admin/notes.note/"
    listing = root.get("/admin/notes.note/")
    assert "The note “A1” was added." in listing.body
    assert rows(listing) == [(1, ["A1", "Fault", "2", "no"])]
    answer = root.submit("/admin/notes.note/add/", {"unit": "B7", "body": "Meter read",
                                                     "kind": "visit", "priority": "5",
                                                     "done": "on", "_addanother": "1"})
    assert answer.header("Location") == "/admin/notes.note/add/"

    # Newest first; sorted by a column the declaration sorts by; searched.
    assert [row[0] for row in rows(root.get("/admin/notes.note/"))] == [2, 1]
    assert [row[0] for row in rows(root.get("/admin/notes.note/?o=unit"))] == [1, 2]
    assert [row[0] for row in rows(root.get("/admin/notes.note/?o=-priority"))] == [2, 1]
    assert rows(root.get("/admin/notes.note/?q=SEAL")) == [(1, ["A1", "Fault", "2", "no"])]
    assert rows(root.get("/admin/notes.note/?q=%25")) == []      # % is a character
    assert root.get("/admin/notes.note/?o=body").status == 400   # not sortable
    assert root.get("/admin/notes.note/?o=id;drop").status == 400

    form = root.get("/admin/notes.note/1/change/")
    assert form.status == 200 and 'value="A1"' in form.body
    assert "Pump seal &lt;leaks&gt;</textarea>" in form.body
    refused = root.submit("/admin/notes.note/1/change/", dict(NOTE, unit="", priority="12",
                                                              kind="nope"))
    assert refused.status == 400
    assert errors(refused)[1:] == ["this field is required", "not one of the choices",
                                   "a number from 0 to 9"]
    answer = root.submit("/admin/notes.note/1/change/", dict(NOTE, priority="3", done="on"))
    assert answer.status == 303
    assert rows(root.get("/admin/notes.note/?o=unit"))[0] == (1, ["A1", "Fault", "3", "yes"])

    confirm = root.get("/admin/notes.note/2/delete/")
    assert confirm.status == 200 and "B7" in confirm.body
    assert root.submit("/admin/notes.note/2/delete/", {},
                       page="/admin/notes.note/2/delete/").status == 303
    assert root.get("/admin/notes.note/2/change/").status == 404
    assert [row[0] for row in rows(root.get("/admin/notes.note/"))] == [1]

    log = root.get("/admin/log/?model=notes.note").body.split("<tbody>")[1]
    assert [action for action in re.findall(r'class="badge (\w+)"', log)] == [
        "delete", "change", "add", "add"]
    assert "<b>priority</b>: 2 → 3" in log and "<b>done</b>: False → True" in log
    assert "HTTP app notes: tables at version 1 (up to date)" in srv.manage("syncdb").stdout


def test_an_apps_permissions_are_given_in_the_users_form(server_factory, tmp_path):
    srv, root = signed_in(server_factory, notes_app(tmp_path))
    assert root.submit("/admin/notes.note/add/", NOTE).status == 303
    answer = root.submit("/admin/users/add/", {"username": "clerk", "password1": PASSWORD,
                                               "password2": PASSWORD, "email": ""})
    assert answer.status == 303
    user_form = answer.header("Location")
    staff = {"username": "clerk", "email": "", "first_name": "", "last_name": "",
             "is_active": "on", "is_staff": "on"}
    assert root.submit(user_form, staff).status == 303
    clerk = Browser(srv.http_port)
    assert clerk.sign_in("clerk", PASSWORD).status == 303
    token = clerk.csrf("/admin/")
    assert "notes.note" not in clerk.get("/admin/").body
    for path in ("/admin/notes.note/", "/admin/notes.note/add/", "/admin/notes.note/1/change/",
                 "/admin/notes.note/1/delete/"):
        assert clerk.get(path).status == 403, path
        assert clerk.post(path, dict(NOTE, csrf_token=token)).status == 403, path

    # The user form offers the app's permissions beside the built-in ones.
    offered = root.get(user_form).body
    for action in ("view", "add", "change", "delete"):
        assert 'value="notes.note.%s"' % action in offered
    assert "notes: view" in offered
    answer = root.submit(user_form, list(staff.items()) + [
        ("permissions", "notes.note.view"), ("permissions", "notes.note.add")])
    assert answer.status == 303, errors(answer)

    assert clerk.get("/admin/notes.note/").status == 200
    assert clerk.submit("/admin/notes.note/add/", dict(NOTE, unit="C3")).status == 303
    assert [row[1][0] for row in rows(clerk.get("/admin/notes.note/"))] == ["C3", "A1"]
    # view without change: the read-only view, and no change or delete.
    detail = clerk.get("/admin/notes.note/1/change/")
    assert detail.status == 200 and "<textarea" not in detail.body and "Fault" in detail.body
    assert clerk.post("/admin/notes.note/1/change/", dict(NOTE, csrf_token=token)).status == 403
    assert clerk.post("/admin/notes.note/1/delete/", {"csrf_token": token}).status == 403
    assert [row[1][0] for row in rows(clerk.get("/admin/notes.note/"))] == ["C3", "A1"]


def test_a_new_migration_runs_at_the_next_start_and_the_rows_stay(server_factory, tmp_path):
    apps = notes_app(tmp_path)
    srv, root = signed_in(server_factory, apps)
    assert root.submit("/admin/notes.note/add/", NOTE).status == 303
    assert srv.stop() == 0
    package = apps / "notes"
    (package / "migrations" / "0002_place.sql").write_text(
        "ALTER TABLE notes_note ADD COLUMN place TEXT NOT NULL DEFAULT 'unknown';\n")
    (package / "admin.py").write_text(with_column('{"name": "place"},').replace(
        '"list": ["unit",', '"list": ["unit", "place",'))
    srv.start()
    assert "HTTP app notes: tables at version 2 (were at 1)" in srv.errors()
    root = Browser(srv.http_port)
    assert root.sign_in("Administrator", PASSWORD).status == 303
    assert rows(root.get("/admin/notes.note/")) == [(1, ["A1", "unknown", "Fault", "2", "no"])]


def serve_fails(srv):
    """serve's stderr; it must not start (2)."""
    result = subprocess.run(srv.command + ["--config", str(srv.conf), "serve"], cwd=srv.dir,
                            env=srv.env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, (result.stdout, result.stderr)
    return result.stderr


def start_fails(srv):
    """serve and manage syncdb: [the stderr of each]; each stops (2: the
    server could not start, 1: the command failed)."""
    result = srv.manage("syncdb", check=False)
    assert result.returncode == 1, (result.stdout, result.stderr)
    return [serve_fails(srv), result.stderr]


# The engine's own words for what a statement lacks.
NO_TABLE = {"sqlite3": "no such table: notes_nothing",
            "postgresql": 'relation "notes_nothing" does not exist'}
NO_COLUMN = {"sqlite3": "no such column: notes_note.colour",
             "postgresql": "column notes_note.colour does not exist"}


@pytest.mark.parametrize("migrations, message", [
    ({"0001_notes.sql": SCHEMA + "CREATE TABLE units_extra (id INTEGER PRIMARY KEY);\n"},
     "0001_notes.sql: statement 3 (CREATE TABLE units_extra (id INTEGER PRIMARY KEY);): "
     "table units_extra is not the app's: an app's tables and indexes are named notes_..."),
    ({"0001_notes.sql": SCHEMA + "INSERT INTO notes_nothing VALUES (1);\n"},
     "0001_notes.sql: statement 3 (INSERT INTO notes_nothing VALUES (1);): {no_table}"),
    ({"0001_notes.sql": SCHEMA, "0003_more.sql": "CREATE TABLE notes_more (a);\n"},
     "0003_more.sql: expected 0002_what.sql next"),
])
def test_a_wrong_migration_stops_the_start_naming_the_app_and_the_file(
        server_factory, tmp_path, migrations, message):
    apps = notes_app(tmp_path, migrations)
    srv = server_factory(conf(apps), start=False)
    message = message.format(no_table=NO_TABLE[srv.engine])
    for said in start_fails(srv):
        assert "HTTP app notes: %s" % (apps / "notes" / "migrations") in said
        assert message in said, said
    # Nothing of the app's is left: its scripts ran in one transaction.
    db = srv.database()
    assert db.app_tables.version("notes") == 0
    tables = ("SELECT count(*) FROM sqlite_master WHERE name LIKE 'notes%'"
              if srv.engine == "sqlite3" else
              "SELECT count(*) FROM pg_class WHERE relname LIKE 'notes%'")
    assert db.one(tables) == (0,)
    db.close()


@pytest.mark.parametrize("column, message", [
    ('{"name": "colour"},', "HTTP app notes: admin model notes.note, table notes_note: {no_column}"),
    ('{"name": "when", "type": "date"},',
     "MODELS[0]: model note: columns[5] (when): type: one of text, integer, boolean, choice, "
     "not 'date'"),
    ('{"name": "when", "size": 3},', "columns[5]: unknown key 'size'"),
])
def test_a_wrong_admin_declaration_stops_the_start(server_factory, tmp_path, column, message):
    apps = notes_app(tmp_path, admin=with_column(column))
    srv = server_factory(conf(apps), start=False)
    said = serve_fails(srv)
    assert "HTTP app notes" in said
    assert message.format(no_column=NO_COLUMN[srv.engine]) in said, said


PAGES = '''"""notes: notes on units, with a page of them (/notes/)."""

import html
import json


def application(environ, start_response):
    notes = environ["texmate.tables"]["note"]
    if environ["REQUEST_METHOD"] == "POST":
        # A page's writes join the shared transaction, as the admin's do.
        notes.add({"unit": "B7", "body": "from the page", "kind": "visit"})
    total, found = notes.find(search="seal")
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps({"total": total, "bodies": [html.escape(n.body) for n in found],
                        "first": notes.get(found[0].id).unit if found else None}).encode()]
'''


def test_an_apps_own_pages_read_and_write_its_tables(server_factory, tmp_path):
    """environ["texmate.tables"] gives an app's pages the rows of the
    models its admin.py declares: what the admin adds, the page reads, and
    what the page adds, the admin lists."""
    apps = notes_app(tmp_path)
    (apps / "notes" / "__init__.py").write_text(PAGES)
    srv = server_factory(conf(apps) + "notes.url: notes/\n", start=False)
    srv.manage("changepassword", "Administrator", "--noinput",
               env=dict(srv.env, TXM_PASSWORD=PASSWORD))
    srv.start()
    root = Browser(srv.http_port)
    assert root.sign_in("Administrator", PASSWORD).status == 303
    added = root.post("/admin/notes.note/add/", dict(
        NOTE, csrf_token=root.csrf("/admin/notes.note/add/"), _save="1"))
    assert added.status == 303
    page = root.get("/notes/")
    assert page.status == 200 and json.loads(page.body) == {
        "total": 1, "bodies": ["Pump seal &lt;leaks&gt;"], "first": "A1"}
    assert root.post("/notes/", {}).status == 200
    units = [cells[0] for _, cells in rows(root.get("/admin/notes.note/"))]
    assert sorted(units) == ["A1", "B7"]
