"""The HTTP apps' own tables in the store (`store.app_tables`): which
statements an app's migration may run, the scripts applied once each in
one transaction per app with the version kept, a failing or refused one
named and leaving nothing behind, and the rows of a declared table read
and written through its declared columns only."""

import re

import pytest

from texmate_ds import store
from texmate_ds.store import app_tables
from texmate_ds.store.app_tables import check_statement
from texmate_ds.store.sqlite import SQLite

FIRST = ("HTTPApps/notes/migrations/0001_notes.sql", """\
-- Notes; a row per note.
CREATE TABLE notes_note (
    id INTEGER PRIMARY KEY,
    unit TEXT NOT NULL DEFAULT '',
    body TEXT NOT NULL DEFAULT 'it''s; here',
    "order" INTEGER,
    done INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX notes_note_unit ON notes_note (unit);
""")
SECOND = ("HTTPApps/notes/migrations/0002_tags.sql", """\
CREATE TABLE notes_tag (id INTEGER PRIMARY KEY, name TEXT UNIQUE);
INSERT INTO notes_tag (name) VALUES ('urgent');
""")


@pytest.fixture
def db(store_db):
    return store_db


# The catalogue's tables and named indexes of the app (PostgreSQL's also
# has the index of each primary key and UNIQUE, SQLite's names no index
# for either).
OBJECTS = {
    "sqlite3": "SELECT name FROM sqlite_master WHERE name LIKE 'notes%' ORDER BY name",
    "postgresql": "SELECT c.relname FROM pg_class c WHERE c.relname LIKE 'notes%'"
                  " AND (c.relkind = 'r' OR c.relkind = 'i' AND NOT EXISTS"
                  " (SELECT 1 FROM pg_constraint k WHERE k.conindid = c.oid)) ORDER BY 1",
}
# The engine's own words for what a statement lacks.
NO_TABLE = {"sqlite3": "no such table: notes_nothing",
            "postgresql": 'relation "notes_nothing" does not exist'}
NO_COLUMN = {"sqlite3": "no such column: notes_note.colour",
             "postgresql": "column notes_note.colour does not exist"}


def app_objects(db):
    return [name for (name,) in db.all(OBJECTS[engine_of(db)])]


def engine_of(db):
    return "sqlite3" if isinstance(db.dialect, SQLite) else "postgresql"


# -- what an app's script may run ----------------------------------------------

@pytest.mark.parametrize("statement", [
    "CREATE TABLE notes_x (a)",
    'CREATE TABLE IF NOT EXISTS "Notes_X" (a)',
    "-- a comment; then\n/* another */ CREATE UNIQUE INDEX notes_i ON notes_x (a)",
    "CREATE INDEX IF NOT EXISTS [notes_i] ON `notes_x` (a)",
    "ALTER TABLE notes_x ADD COLUMN b TEXT NOT NULL DEFAULT ''",
    "ALTER TABLE notes_x RENAME COLUMN b TO c",
    "ALTER TABLE notes_x RENAME TO notes_y",
    "DROP TABLE IF EXISTS notes_x",
    "DROP INDEX notes_i",
    "INSERT INTO notes_x (a) SELECT code FROM units",
    "INSERT OR IGNORE INTO notes_x VALUES (1)",
    "REPLACE INTO notes_x VALUES (1)",
    "UPDATE OR REPLACE notes_x SET a = 'units'",
    'UPDATE "notes_x" SET a = 1',
    "DELETE FROM notes_x WHERE a = 'DROP TABLE units'",
])
def test_an_apps_script_may_make_and_fill_its_own_tables(statement):
    check_statement("notes", statement)


@pytest.mark.parametrize("statement, reason", [
    ("CREATE TABLE units_extra (a)", "table units_extra is not the app's: an app's tables "
                                     "and indexes are named notes_..."),
    ("CREATE TABLE notes_ (a)", "table notes_ is not the app's"),
    ("CREATE TABLE notesx (a)", "table notesx is not the app's"),
    ('CREATE TABLE IF NOT EXISTS "units" (a)', "table units is not the app's"),
    ("CREATE INDEX notes_i ON units (code)", "table units is not the app's"),
    ("CREATE INDEX units_i ON notes_x (a)", "index units_i is not the app's"),
    ("CREATE TABLE main.notes_x (a)", "table named with a schema (main.)"),
    ("ALTER TABLE units ADD COLUMN x", "table units is not the app's"),
    ("ALTER TABLE notes_x RENAME TO units", "table units is not the app's"),
    ("DROP TABLE units", "table units is not the app's"),
    ("DROP INDEX IF EXISTS action_log_at", "index action_log_at is not the app's"),
    ("INSERT INTO users (username) VALUES ('x')", "table users is not the app's"),
    ("INSERT OR REPLACE INTO [users] VALUES (1)", "table users is not the app's"),
    ("UPDATE users SET is_superuser = 1", "table users is not the app's"),
    ("UPDATE OR IGNORE 'users' SET is_superuser = 1", "expected the table's name"),
    ("DELETE FROM units", "table units is not the app's"),
    ("DELETE notes_x", "expected DELETE FROM and the table"),
    ("CREATE TEMP TABLE notes_t (a)", "an app's migration may run CREATE TABLE, CREATE "
                                      "INDEX, ALTER TABLE"),
    ("CREATE VIEW notes_v AS SELECT * FROM users", "may run CREATE TABLE"),
    ("CREATE TRIGGER notes_t AFTER INSERT ON notes_x BEGIN DELETE FROM units; END",
     "may run CREATE TABLE"),
    ("PRAGMA foreign_keys = OFF", "may run CREATE TABLE"),
    ("ATTACH 'other.db' AS other", "may run CREATE TABLE"),
    ("BEGIN", "may run CREATE TABLE"),
    ("WITH x AS (SELECT 1) DELETE FROM units", "may run CREATE TABLE"),
    ("-- only a comment;", "may run CREATE TABLE"),
    ("CREATE TABLE", "expected the table's name"),
])
def test_an_apps_script_touches_nothing_but_its_own_tables(statement, reason):
    with pytest.raises(ValueError, match=re.escape(reason)):
        check_statement("notes", statement)


def test_quotes_and_comments_never_closed_are_read_to_the_end_once():
    with pytest.raises(ValueError, match="may run"):
        check_statement("notes", "/*" + "*" * 100_000)
    with pytest.raises(ValueError, match="may run"):
        check_statement("notes", "-" * 100_000)
    with pytest.raises(ValueError, match="table's name"):
        check_statement("notes", "CREATE TABLE 'notes_x" + "''" * 50_000)
    with pytest.raises(ValueError, match="not the app's"):
        check_statement("notes", 'CREATE TABLE "' + '""' * 50_000)
    check_statement("notes", 'CREATE TABLE "notes_' + '""' * 50_000)


# -- migrating -----------------------------------------------------------------

def test_each_script_runs_once_and_the_version_is_kept(db):
    assert db.app_tables.version("notes") == 0
    assert db.app_tables.migrate("notes", [FIRST]) == (0, 1)
    assert db.app_tables.migrate("Notes", [FIRST]) == (1, 1)     # names in any case
    assert db.app_tables.migrate("notes", [FIRST, SECOND]) == (1, 2)
    assert db.app_tables.migrate("notes", [FIRST, SECOND]) == (2, 2)
    assert db.app_tables.version("notes") == 2 and db.app_tables.version("other") == 0
    assert app_objects(db) == ["notes_note", "notes_note_unit", "notes_tag"]
    assert db.all("SELECT name FROM notes_tag") == [("urgent",)]
    assert db.all("SELECT app, version FROM app_schema") == [("notes", 2)]
    assert not db.in_transaction


def test_a_failing_script_is_named_and_leaves_the_apps_tables_as_they_were(db):
    db.app_tables.migrate("notes", [FIRST])
    broken = (SECOND[0], SECOND[1] + "INSERT INTO notes_nothing VALUES (1);\n")
    with pytest.raises(store.MigrationError) as raised:
        db.app_tables.migrate("notes", [FIRST, broken])
    assert str(raised.value) == (
        "HTTPApps/notes/migrations/0002_tags.sql: statement 3 "
        "(INSERT INTO notes_nothing VALUES (1);): " + NO_TABLE[engine_of(db)])
    assert db.app_tables.version("notes") == 1 and "notes_tag" not in app_objects(db)
    assert not db.in_transaction


def test_a_refused_script_runs_no_statement_at_all(db):
    refused = ("m/0001_x.sql", "CREATE TABLE notes_first (a);\nDROP TABLE units;\n")
    with pytest.raises(store.MigrationError, match=r"^m/0001_x\.sql: statement 2 "
                       r"\(DROP TABLE units;\): table units is not the app's"):
        db.app_tables.migrate("notes", [refused])
    assert app_objects(db) == [] and db.one("SELECT count(*) FROM units") == (0,)


def test_a_script_ending_inside_a_statement_and_a_database_ahead_are_refused(db):
    with pytest.raises(store.MigrationError, match="m/0001_x.sql: the script ends inside"):
        db.app_tables.migrate("notes", [("m/0001_x.sql", "CREATE TABLE notes_x (a")])
    db.app_tables.migrate("notes", [FIRST, SECOND])
    with pytest.raises(store.MigrationError, match="tables at version 2, but it has 1 "
                                                   "migration"):
        db.app_tables.migrate("notes", [FIRST])
    assert db.app_tables.version("notes") == 2


# -- a declared table's rows -----------------------------------------------------

@pytest.fixture
def notes(db):
    db.app_tables.migrate("notes", [FIRST])
    return app_tables.declare("notes", "notes_note", ["unit", "body", "order", "done"],
                              searched=["unit", "body"], sorted_by=["unit", "order"])


def test_rows_are_added_found_changed_and_deleted(db, notes):
    tables = db.app_tables
    tables.check(notes)
    first = tables.add(notes, {"unit": "A1", "body": "50% done", "order": 2, "done": 0})
    second = tables.add(notes, {"unit": "B7", "order": 1})
    assert first == (1, "A1", "50% done", 2, 0) and first.order == 2
    assert second.body == "it's; here"                      # the table's default
    assert tables.find(notes) == (2, [second, first])        # newest first
    assert tables.find(notes, order="order") == (2, [second, first])
    assert tables.find(notes, order="-unit") == (2, [second, first])
    assert tables.find(notes, "a1") == (1, [first])
    assert tables.find(notes, "%") == (1, [first])          # a character, not a wildcard
    assert tables.find(notes, "it's") == (1, [second])
    assert tables.find(notes, offset=1, limit=1) == (2, [first])
    changed = tables.change(notes, first.id, {"done": 1, "order": None})
    assert (changed.done, changed.order, changed.unit) == (1, None, "A1")
    tables.delete(notes, second.id)
    assert tables.get(notes, second.id) is None and tables.change(notes, second.id, {}) is None
    assert tables.find(notes)[0] == 1


def test_only_declared_columns_and_orders_are_taken(db, notes):
    with pytest.raises(ValueError, match="no declared column 'id'"):
        db.app_tables.add(notes, {"id": 5, "unit": "A1"})
    with pytest.raises(ValueError, match="no declared column 'password'"):
        db.app_tables.change(notes, 1, {"password": "x"})
    with pytest.raises(ValueError, match="cannot sort by 'body'"):
        db.app_tables.find(notes, order="body")
    with pytest.raises(ValueError, match="cannot sort by"):
        db.app_tables.find(notes, order="unit; DROP TABLE units")


def test_a_table_without_its_declared_columns_fails_its_check(db, notes):
    missing = app_tables.declare("notes", "notes_note", ["colour"])
    with pytest.raises(store.StoreError, match=NO_COLUMN[engine_of(db)]), db.atomic():
        db.app_tables.check(missing)
    with pytest.raises(store.StoreError, match=NO_TABLE[engine_of(db)]), db.atomic():
        db.app_tables.check(app_tables.declare("notes", "notes_nothing", ["a"]))


@pytest.mark.parametrize("table, columns, reason", [
    ("units", ["a"], "table units is not the app's"),
    ("notes_x; DROP", ["a"], "table 'notes_x; DROP': letters, digits and _"),
    ("notes_x", ["A"], "column 'A': lower-case letters"),
    ("notes_x", ['a"b'], "column 'a\"b'"),
    ("notes_x", ["id"], "column 'id'"),
    ("notes_x", ["class"], "column 'class'"),
    ("notes_x", ["a", "a"], "a column is declared twice"),
])
def test_a_declaration_is_checked(table, columns, reason):
    with pytest.raises(ValueError, match=re.escape(reason)):
        app_tables.declare("notes", table, columns)
    with pytest.raises(ValueError, match="searched 'b' is not a declared column"):
        app_tables.declare("notes", "notes_x", ["a"], searched=["b"])
