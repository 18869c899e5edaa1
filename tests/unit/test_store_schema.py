"""The schema's history: the migration runner, and the ladder (a database
made at every earlier version, with a row in every table it has, upgrades
to the newest with nothing lost), on each engine: PostgreSQL runs the same
scripts, turned into its words by its dialect."""

import os

import pytest

from texmate_ds import config, store
from texmate_ds.store import schema
from texmate_ds.store.sqlite import SQLite

from conftest import database_settings

complete = SQLite.complete_statement


# -- cutting scripts into statements -------------------------------------------

SCRIPT = """\
-- A comment; with a semicolon.
CREATE TABLE t (a TEXT DEFAULT 'x;y');
CREATE TABLE log (a TEXT);
CREATE TRIGGER t_log AFTER INSERT ON t BEGIN
    INSERT INTO log VALUES (new.a || ';');  -- a comment; in the body
    DELETE FROM log WHERE a = ';;';
END;
INSERT INTO t VALUES ('semi;colon
over two lines'); INSERT INTO t VALUES ('a;b');
/* a block comment; */ INSERT INTO t VALUES (';');
-- the end; nothing follows
"""


def test_a_semicolon_in_a_literal_comment_or_trigger_body_ends_no_statement():
    statements = list(schema.statements(SCRIPT, complete))
    assert statements == [
        "-- A comment; with a semicolon.\nCREATE TABLE t (a TEXT DEFAULT 'x;y');",
        "CREATE TABLE log (a TEXT);",
        "CREATE TRIGGER t_log AFTER INSERT ON t BEGIN\n"
        "    INSERT INTO log VALUES (new.a || ';');  -- a comment; in the body\n"
        "    DELETE FROM log WHERE a = ';;';\nEND;",
        "INSERT INTO t VALUES ('semi;colon\nover two lines');",
        "INSERT INTO t VALUES ('a;b');",
        "/* a block comment; */ INSERT INTO t VALUES (';');",
    ]
    db = store.Database(":memory:")
    for statement in statements:
        db.execute(statement)
    assert db.all("SELECT a FROM t") == [("semi;colon\nover two lines",), ("a;b",), (";",)]
    assert db.all("SELECT a FROM log") == [("semi;colon\nover two lines;",), ("a;b;",)]


@pytest.mark.parametrize("script", [
    "CREATE TABLE t (a);\nCREATE TABLE u (b)\n",
    "INSERT INTO t VALUES ('not closed;\n",
    "CREATE TRIGGER t_log AFTER INSERT ON t BEGIN\n    DELETE FROM log;\n",
])
def test_a_script_ending_inside_a_statement_is_refused(script):
    with pytest.raises(schema.ScriptError):
        list(schema.statements(script, complete))


def test_the_migrations_listed_are_the_files_shipped():
    folder = os.path.join(os.path.dirname(schema.__file__), "migrations")
    assert sorted(os.listdir(folder)) == [name + ".sql" for name in schema.MIGRATIONS]
    for version, name in enumerate(schema.MIGRATIONS, 1):
        assert name.startswith("%04d_" % version)
        assert list(schema.statements(schema.script(version), complete))


def new_address(engine, path):
    """Where a new, empty database of `engine` is (the SQLite file `path`)."""
    return store.address(config.Settings(**database_settings(engine, path)))


def test_a_failing_migration_leaves_the_database_as_it_was(tmp_path, monkeypatch, engine):
    db = store.Database(new_address(engine, tmp_path / "t.db"))
    db.migrate(store.SCHEMA_VERSION - 1)
    db.write("INSERT INTO units (code, key, fields, created) VALUES ('A1', 'k', 1, 0)")
    db.commit()
    broken = "CREATE TABLE new_one (a TEXT);\nCREATE TABLE units (a TEXT);\n"   # units exists
    monkeypatch.setattr(schema, "script", lambda version: broken)
    with pytest.raises(store.StoreError, match="already exists"):
        db.migrate()
    assert db.version == store.SCHEMA_VERSION - 1 and not db.in_transaction
    assert "new_one" not in tables(db)
    assert db.one("SELECT code FROM units") == ("A1",)
    db.close()


# -- the ladder ----------------------------------------------------------------

VALUES = {"v%d" % i: i * 1.5 - 20 for i in range(1, store.MAX_FIELDS + 1)}

# Rows for every table of the newest schema, by column; a database at an
# earlier version gets each table it has, with the columns it has.
ROWS = {
    "units": [
        dict(id=1, code="A1", key="k1", name="Pump", description="the first", fields=32,
             field_names="Flow,,Level", enabled=1, source_id=None, created=5,
             graph_width=640, graph_height=200,
             graph_axes='[{"label": "Flow", "fields": [1, 2]}]', field_units="m³/h,,m",
             report_fields="1,3", sample_count=2, last_ts=10, webhook_url="https://x/hook",
             silent_minutes=15, silent_level=3, silent_since=None, last_received=12,
             expected_interval=60, usual_interval=15),
        dict(id=2, code="B7", key="k;'2", name="", description="", fields=2, field_names="",
             enabled=0, source_id=1, created=6, graph_width=800, graph_height=300,
             graph_axes="[]", field_units="", report_fields="", sample_count=1, last_ts=10,
             webhook_url="", silent_minutes=None, silent_level=1, silent_since=None,
             last_received=13, expected_interval=None, usual_interval=None),
    ],
    "unit_reads": [dict(reader_id=2, source_id=1)],
    "samples": [
        dict(id=1, unit_id=1, ts=10, received=11, **VALUES),
        dict(id=2, unit_id=1, ts=-5, received=12, v1=None, v32=1e300),
        dict(id=3, unit_id=2, ts=10, received=13, v1=0.1, v2=-0.0),
    ],
    "dl_cursors": [dict(reader_id=2, source_id=1, sample_id=1)],
    "users": [
        dict(id=1, username="Administrator", password="pbkdf2_sha256$1$s$h", email="",
             first_name="", last_name="", is_active=1, is_staff=1, is_superuser=1,
             must_change_password=1, date_joined=1, last_login=None, all_units=1),
        dict(id=2, username="ann", password="sha1$$x", email="ann@example.com",
             first_name="Ann", last_name="Ö", is_active=0, is_staff=0, is_superuser=0,
             must_change_password=0, date_joined=2, last_login=99, all_units=1),
    ],
    "sessions": [dict(key_hash="h1", user_id=2, csrf="c1", expires=10 ** 18)],
    "api_tokens": [dict(id=1, user_id=1, name="prometheus", token_hash="t1", created=3,
                        last_used=None),
                   dict(id=2, user_id=2, name="cron", token_hash="t2", created=4,
                        last_used=8)],
    "displays": [dict(id=1, name="Plant", refresh=5, created=4)],
    "display_channels": [dict(display_id=1, position=0, unit_id=2, field=2),
                         dict(display_id=1, position=1, unit_id=1, field=32)],
    "sign_in_attempts": [dict(id=1, username="ann", address="10.0.0.1", at=7)],
    "groups": [dict(id=1, name="Operators", all_units=0), dict(id=2, name="Viewers",
                                                              all_units=1)],
    "user_groups": [dict(user_id=2, group_id=1)],
    "user_permissions": [dict(user_id=2, permission="samples.view")],
    "group_permissions": [dict(group_id=1, permission="units.change")],
    "user_units": [dict(user_id=2, unit_id=1)],
    "group_units": [dict(group_id=1, unit_id=2)],
    "alarms": [dict(id=1, unit_id=1, kind="meter", level=2, data='["2009-1-16 15:30:45", "hi"]',
                    meter_ts=5, received=6, acknowledged=None, acknowledged_by="", note=""),
               dict(id=2, unit_id=2, kind="silent", level=1, data="[]", meter_ts=None,
                    received=7, acknowledged=8, acknowledged_by="ann", note="checked")],
    "alarm_messages": [dict(id=1, unit_id=1, level=2, subject="{{ unit }}", body="{{ data.0 }}"),
                       dict(id=2, unit_id=None, level=None, subject="s", body="b")],
    "mailing_list": [dict(unit_id=1, user_id=2)],
    "outbox": [dict(id=1, alarm_id=1, kind="email", recipient="ann@example.com",
                    subject="A1", body="hi", state="queued", created=6, attempts=1,
                    next_attempt=9, last_attempt=7, last_reply="451 later")],
    "outbox_attempts": [dict(id=1, letter_id=1, at=7, state="queued", reply="451 later")],
    "action_log": [
        dict(id=1, at=8, actor="manage:root", action="change", model="unit", object_id="1",
             object_repr="A1 (Pump)", changes='{"key": "(changed)", "name": ["", "Pump"]}',
             message=""),
        dict(id=2, at=9, actor="ann", action="delete", model="samples", object_id="2",
             object_repr="B7", changes="{}", message="3 samples before 2010-01-01"),
    ],
    "app_schema": [dict(app="notes", version=2)],
    "site_secrets": [dict(name="csrf", value="00ff" * 16)],
}


# Columns a migration fills from what is there rather than with their
# default: (table, column) -> [(id, value)] for the ladder's rows.
DERIVED = {
    ("units", "sample_count"): [(1, 2), (2, 1)],      # A1 has two samples, B7 one
    ("units", "last_ts"): [(1, 10), (2, 10)],
    ("users", "all_units"): [(1, 1), (2, 1)],          # everyone saw every unit before
    ("units", "last_received"): [(1, 12), (2, 13)],
    # The mean spacing of each unit's newest samples: A1's -5 and 10; B7 has one.
    ("units", "usual_interval"): [(1, 15), (2, None)],
}


# Each engine's catalogue: the schema's tables (not the engine's own, nor
# PostgreSQL's texmate_schema, the version SQLite keeps in its header);
# a table's columns in order, with their defaults as SQL.
CATALOGUE = {
    "sqlite3": (
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
        "SELECT name, dflt_value FROM pragma_table_info(?) ORDER BY cid"),
    "postgresql": (
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
        " AND tablename <> 'texmate_schema'",
        "SELECT column_name, column_default FROM information_schema.columns"
        " WHERE table_schema = 'public' AND table_name = ? ORDER BY ordinal_position"),
}


def catalogue(db):
    return CATALOGUE["sqlite3" if isinstance(db.dialect, SQLite) else "postgresql"]


def tables(db):
    return {name for (name,) in db.all(catalogue(db)[0])}


def column_defaults(db, table):
    """[(column, its default as SQL, or None)] of `table`, in order."""
    return db.all(catalogue(db)[1], (table,))


def columns(db, table):
    return [name for name, _ in column_defaults(db, table)]


def contents(db, table, names):
    return db.all("SELECT %s FROM %s ORDER BY %s" % (", ".join(names), table, ", ".join(names)))


def test_the_ladder_rows_cover_every_table(store_db):
    db = store_db
    assert tables(db) == set(ROWS), "give the ladder rows for each table a migration adds"
    for table, rows in ROWS.items():
        for row in rows:
            assert set(row) <= set(columns(db, table)), (table, row)


@pytest.mark.parametrize("version", range(1, store.SCHEMA_VERSION))
def test_every_earlier_version_upgrades_with_nothing_lost(tmp_path, version, engine):
    path = new_address(engine, tmp_path / ("v%d.db" % version))
    db = store.Database(path)
    assert db.migrate(version) == (0, version)
    before = {}
    present = tables(db)
    assert present <= set(ROWS), "no ladder rows for %s" % (present - set(ROWS))
    for table in [t for t in ROWS if t in present]:   # in ROWS' order: parents first
        names = columns(db, table)
        for row in ROWS[table]:
            given = [name for name in names if name in row]
            db.write("INSERT INTO %s (%s) VALUES (%s)" % (
                table, ", ".join(given), ", ".join("?" * len(given))), [row[n] for n in given])
        before[table] = names, contents(db, table, names)
        assert len(before[table][1]) == len(ROWS[table])
    db.close()

    db = store.Database(path)
    assert db.migrate() == (version, store.SCHEMA_VERSION)
    assert db.version == store.SCHEMA_VERSION
    for table, (names, rows) in before.items():
        assert contents(db, table, names) == rows, table
        added = [name for name in columns(db, table) if name not in names]
        for name, default in column_defaults(db, table):
            if (table, name) in DERIVED:
                assert contents(db, table, ["id", name]) == DERIVED[table, name], (table, name)
            elif name in added:
                values = {value for (value,) in db.all("SELECT %s FROM %s" % (name, table))}
                assert values == {db.one("SELECT " + (default or "NULL"))[0]}, (table, name)
    # And the repositories read what was there.
    a1 = db.units.get("A1")
    assert (a1.field_names, db.units.get("B7").enabled) == (("Flow", "", "Level"), False)
    assert db.samples.at(a1, 10) == (1, 10) + tuple(VALUES["v%d" % i] for i in range(1, 33))
    assert db.accounts.get_user_by_name("ANN").last_name == "Ö"
    if version < 2:
        assert db.units.graph_options(a1) == store.GraphOptions(800, 300, ())
    db.close()
