"""``texmate_ds manage``, end to end (docs/configuration.md, "The command line").

Every command runs as ``python -m texmate_ds --config ... manage ...`` in a
subprocess against a real database, on each engine (a SQLite file, a
PostgreSQL database); effects are checked by reading it on the test's own
connection and, where the server is involved, over TTP on a loopback
socket.  Manage commands get an empty stdin (a pipe, never the
terminal pytest may have), so a command that wrongly prompts fails at once
instead of waiting.
"""

import csv
import hashlib
import io
import re
import sqlite3
import subprocess
import sys
import threading
import time

import pytest

from texmate_ds import auth, config, store, times

from conftest import child_env, postgres_connection, sqlite_only

SCHEMA = store.SCHEMA_VERSION
COMMANDS = ("syncdb", "createsuperuser", "changepassword", "reset_admin_password",
            "addunit", "listunits", "export", "import", "backup", "apps", "check", "unlock")
RUN_TIMEOUT = 30


# -- helpers ------------------------------------------------------------------

def env(**extra):
    """The child environment, without a stray TXM_PASSWORD, plus `extra`."""
    e = child_env()
    e.update(extra)
    return e


def manage(srv, *args, check=True, **extra_env):
    return srv.manage(*args, check=check, env=env(**extra_env), input="")


def refused(result, *words):
    """A clean refusal: non-zero status, a message naming `words`, no traceback."""
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    for word in words:
        assert word in result.stderr, result.stderr


def db_path(srv):
    return srv.dir / "db" / "data_server3.db"


def where(srv):
    """The database as manage names it: a SQLite file, a PostgreSQL database."""
    return store.address(srv.settings())


def version(srv):
    db = srv.database()
    try:
        return db.version
    finally:
        db.close()


def query_file(path, sql, params=()):
    """The rows of `sql` in the SQLite file `path` (a backup)."""
    conn = sqlite3.connect(str(path), timeout=10)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def user(srv, username):
    """The user's row as a dict, or None (also when a refusal left no
    database at all)."""
    if srv.untouched():
        return None
    db = srv.database()
    try:
        cursor = db.execute("SELECT * FROM users WHERE username = ?", (username,))
        row = cursor.fetchone()
        return dict(zip([d[0] for d in cursor.description], row)) if row else None
    finally:
        db.close()


def serve_once(srv, timeout=20):
    """Run ``serve`` expecting it to refuse to start; its CompletedProcess."""
    return subprocess.run(
        [sys.executable, "-m", "texmate_ds", "--config", str(srv.conf), "serve"],
        cwd=srv.dir, env=env(), capture_output=True, text=True, timeout=timeout,
        stdin=subprocess.DEVNULL)


def sha1(path):
    return hashlib.sha1(path.read_bytes()).hexdigest()


def unit_rows(srv):
    """Everything addunit writes: units and read permissions."""
    return (srv.query("SELECT code, key, name, fields, field_names, enabled, source_id"
                      " FROM units ORDER BY id"),
            srv.query("SELECT * FROM unit_reads ORDER BY 1, 2"))


@pytest.fixture
def fresh(server_factory):
    """A server folder with its txm.conf, not started, no database yet."""
    return server_factory(start=False)


# -- help ---------------------------------------------------------------------

def test_help_lists_every_command(fresh):
    out = manage(fresh, "help").stdout
    for command in COMMANDS:
        assert re.search(r"^\s+%s\s+\S" % command, out, re.M), (command, out)
    # And the same without "help".
    assert manage(fresh).stdout == out


@pytest.mark.parametrize("args", [("help", "addunit"), ("addunit", "--help")],
                         ids=["help-addunit", "addunit--help"])
def test_help_explains_addunit(fresh, args):
    out = manage(fresh, *args).stdout
    assert "texmate_ds manage addunit" in out
    assert "add a unit" in out
    for option in ("code", "key", "--fields", "--name", "--field-names", "--source",
                   "--reads", "--disabled", "1 to 32"):
        assert option in out, (option, out)
    assert fresh.untouched(), "help must not touch the database"


def test_unknown_command_is_refused(fresh):
    result = manage(fresh, "frobnicate", check=False)
    refused(result, "frobnicate")
    result = manage(fresh, "help", "frobnicate", check=False)
    refused(result, "frobnicate")


# -- syncdb -------------------------------------------------------------------

def test_syncdb_creates_then_is_up_to_date(fresh):
    db = where(fresh)
    first = manage(fresh, "syncdb").stdout
    assert first.strip() == "database %s: schema version %d (created)" % (db, SCHEMA)
    second = manage(fresh, "syncdb").stdout
    assert second.strip() == "database %s: schema version %d (up to date)" % (db, SCHEMA)
    assert version(fresh) == SCHEMA
    rows = fresh.query("SELECT id, username, password, must_change_password, is_staff,"
                       " is_superuser FROM users")
    assert len(rows) == 1, rows
    uid, name, password, must_change, staff, superuser = rows[0]
    assert (uid, name, must_change, staff, superuser) == (1, "Administrator", 1, 1, 1)
    assert password.startswith("pbkdf2_sha256$")
    assert auth.check_password(auth.DEFAULT_PASSWORD, password)


def _db_state(srv):
    """What a refusal must leave as it was: the file byte for byte, its
    version, journal and schema (SQLite); the version and every table's
    columns and indexes (PostgreSQL)."""
    if srv.engine == "sqlite3":
        path = db_path(srv)
        return {
            "sha1": sha1(path),
            "version": query_file(path, "PRAGMA user_version"),
            "journal": query_file(path, "PRAGMA journal_mode"),
            "schema": query_file(path, "SELECT type, name, sql FROM sqlite_master ORDER BY name"),
        }
    with postgres_connection(srv) as conn:
        return {
            "version": conn.execute("SELECT version FROM texmate_schema").fetchall(),
            "columns": conn.execute(
                "SELECT table_name, column_name, data_type, column_default"
                " FROM information_schema.columns WHERE table_schema = 'public'"
                " ORDER BY 1, 2").fetchall(),
            "indexes": conn.execute("SELECT indexname, indexdef FROM pg_indexes"
                                    " WHERE schemaname = 'public' ORDER BY 1").fetchall(),
        }


def rows(srv, sql):
    """The rows of `sql` on the driver's own connection (the store refuses
    a schema too new)."""
    if srv.engine == "sqlite3":
        return query_file(db_path(srv), sql)
    with postgres_connection(srv) as conn:
        return conn.execute(sql).fetchall()


def set_version(srv, number):
    """Write schema version `number` as a newer texmate_ds would have."""
    if srv.engine == "sqlite3":
        conn = sqlite3.connect(str(db_path(srv)))
        conn.execute("PRAGMA user_version = %d" % number)
        conn.commit()
        conn.close()
    else:
        srv.through_store(lambda db: db.write("UPDATE texmate_schema SET version = ?", (number,)))


def test_schema_newer_than_known_is_refused_and_left_alone(fresh):
    manage(fresh, "syncdb")
    manage(fresh, "addunit", "U1", "k", "--fields", "1")
    set_version(fresh, SCHEMA + 1)
    before = _db_state(fresh)
    users = rows(fresh, "SELECT * FROM users")
    units = rows(fresh, "SELECT * FROM units")

    result = manage(fresh, "syncdb", check=False)
    refused(result, "schema version %d" % (SCHEMA + 1), "upgrade texmate_ds")
    result = manage(fresh, "listunits", check=False)
    refused(result, "schema version %d" % (SCHEMA + 1))
    result = serve_once(fresh)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "cannot start" in result.stderr
    assert "schema version %d" % (SCHEMA + 1) in result.stderr
    assert "ready" not in result.stdout

    assert _db_state(fresh) == before
    assert rows(fresh, "SELECT * FROM users") == users
    assert rows(fresh, "SELECT * FROM units") == units


def test_schema_newer_than_known_keeps_its_journal_mode(fresh):
    sqlite_only(fresh.engine, "a SQLite file's journal mode")
    # A database written by a (hypothetical) newer texmate_ds in rollback-journal mode.
    db = db_path(fresh)
    db.parent.mkdir()
    conn = sqlite3.connect(str(db))
    conn.execute("CREATE TABLE future (x)")
    conn.execute("PRAGMA user_version = %d" % (SCHEMA + 5))
    conn.commit()
    conn.close()
    before = _db_state(fresh)
    refused(manage(fresh, "syncdb", check=False), "schema version %d" % (SCHEMA + 5))
    assert serve_once(fresh).returncode == 2
    assert _db_state(fresh) == before


# -- users --------------------------------------------------------------------

def test_createsuperuser_noinput(fresh):
    result = manage(fresh, "createsuperuser", "--username", "alice", "--email",
                    "alice@example.com", "--noinput", TXM_PASSWORD="s3cret-Pw")
    assert "alice" in result.stdout
    row = user(fresh, "alice")
    assert row["email"] == "alice@example.com"
    assert (row["is_superuser"], row["is_staff"], row["must_change_password"]) == (1, 1, 0)
    assert auth.check_password("s3cret-Pw", row["password"])
    assert not auth.check_password("admin", row["password"])

    # The same name again is refused, and the first user is left as it was.
    again = manage(fresh, "createsuperuser", "--username", "alice", "--email", "x@y",
                   "--noinput", TXM_PASSWORD="other", check=False)
    refused(again, "alice", "exists")
    assert user(fresh, "alice") == row
    assert fresh.query("SELECT count(*) FROM users") == [(2,)]


def test_createsuperuser_noinput_needs_txm_password(fresh):
    result = manage(fresh, "createsuperuser", "--username", "bob", "--email", "b@x",
                    "--noinput", check=False)
    refused(result, "TXM_PASSWORD")
    assert user(fresh, "bob") is None
    # An empty TXM_PASSWORD is no password either.
    result = manage(fresh, "createsuperuser", "--username", "bob", "--email", "b@x",
                    "--noinput", TXM_PASSWORD="", check=False)
    refused(result, "TXM_PASSWORD")
    assert user(fresh, "bob") is None


def test_createsuperuser_without_terminal_is_refused(fresh):
    result = manage(fresh, "createsuperuser", "--username", "carol", "--email", "c@x",
                    check=False, TXM_PASSWORD="ignored-without-noinput")
    refused(result, "terminal", "--noinput", "TXM_PASSWORD")
    assert user(fresh, "carol") is None
    result = manage(fresh, "createsuperuser", check=False)
    refused(result, "--username")


def test_createsuperuser_without_terminal_or_email_is_refused_cleanly(fresh):
    result = manage(fresh, "createsuperuser", "--username", "dave", check=False)
    refused(result, "terminal")
    assert user(fresh, "dave") is None


def test_changepassword(fresh):
    manage(fresh, "syncdb")
    old = user(fresh, "Administrator")
    result = manage(fresh, "changepassword", "Administrator", "--noinput",
                    TXM_PASSWORD="n3w-pass")
    assert "Administrator" in result.stdout
    new = user(fresh, "Administrator")
    assert new["password"] != old["password"]
    assert new["password"].startswith("pbkdf2_sha256$")
    assert auth.check_password("n3w-pass", new["password"])
    assert not auth.check_password("admin", new["password"])
    assert new["must_change_password"] == 0

    refused(manage(fresh, "changepassword", "nobody", "--noinput", TXM_PASSWORD="x",
                   check=False), "nobody")
    refused(manage(fresh, "changepassword", "Administrator", "--noinput", check=False),
            "TXM_PASSWORD")
    refused(manage(fresh, "changepassword", "Administrator", check=False), "terminal")
    assert user(fresh, "Administrator") == new


def test_reset_admin_password_and_the_start_warning(fresh):
    warning = "WARNING: user Administrator still has the default password"
    manage(fresh, "changepassword", "Administrator", "--noinput", TXM_PASSWORD="first-pw")
    assert user(fresh, "Administrator")["must_change_password"] == 0

    result = manage(fresh, "reset_admin_password")
    assert "Administrator" in result.stdout and "'admin'" in result.stdout
    row = user(fresh, "Administrator")
    assert row["id"] == 1
    assert auth.check_password("admin", row["password"])
    assert row["must_change_password"] == 1

    fresh.start()
    assert warning in fresh.output()
    assert fresh.stop() == 0

    manage(fresh, "changepassword", "Administrator", "--noinput", TXM_PASSWORD="second-pw")
    row = user(fresh, "Administrator")
    assert auth.check_password("second-pw", row["password"])
    assert row["must_change_password"] == 0
    fresh.start()
    assert "default password" not in fresh.output()
    assert fresh.stop() == 0


# -- addunit ------------------------------------------------------------------

def test_addunit_then_ok_over_ttp(server):
    result = manage(server, "addunit", "NEW1", "nk-1", "--fields", "3", "--name", "Tank 3",
                    "--description", "north side")
    assert result.stdout.strip() == "unit NEW1 added (3 fields)"
    assert server.query("SELECT name, description, fields, enabled, key FROM units"
                        " WHERE code = 'NEW1'") == [("Tank 3", "north side", 3, 1, "nk-1")]
    assert server.ask("TTP /ok/NEW1 nk-1") == "OK"
    assert server.ask("TTP /ok/NEW1 wrong") == "402 Unauthorized"
    assert server.ask("TTP /up/NEW1/<2010-1-1 0:0:0;1;2;3> nk-1") == "OK"


ADDUNIT_REFUSALS = {
    "code-with-dash": (["A-1", "k", "--fields", "2"], "A-1"),
    "code-33-chars": (["X" * 33, "k", "--fields", "2"], "X" * 33),
    "fields-0": (["R9", "k", "--fields", "0"], "--fields"),
    "fields-33": (["R9", "k", "--fields", "33"], "--fields"),
    "key-with-space": (["R9", "a b", "--fields", "1"], "key"),
    "key-65-chars": (["R9", "k" * 65, "--fields", "1"], "key"),
    "duplicate-code": (["A1", "other", "--fields", "4"], "A1"),
    "unknown-source": (["R9", "k", "--fields", "1", "--source", "NOSUCH"], "NOSUCH"),
    "unknown-reads": (["R9", "k", "--fields", "1", "--reads", "B7,NOSUCH"], "NOSUCH"),
    "too-many-field-names": (["R9", "k", "--fields", "2", "--field-names", "a,b,c"],
                             "--field-names"),
}


@pytest.mark.parametrize("args,named", list(ADDUNIT_REFUSALS.values()),
                         ids=list(ADDUNIT_REFUSALS))
def test_addunit_refusals_change_nothing(server, args, named):
    listed = manage(server, "listunits").stdout
    rows = unit_rows(server)
    result = manage(server, "addunit", *args, check=False)
    refused(result, "manage addunit", named)
    assert unit_rows(server) == rows
    assert manage(server, "listunits").stdout == listed


def test_addunit_refuses_a_key_no_meter_can_send(server):
    rows = unit_rows(server)
    refused(manage(server, "addunit", "NA1", "cl\u00e9", "--fields", "1", check=False), "key")
    assert unit_rows(server) == rows


def test_addunit_source_and_reads_over_ttp(server):
    assert server.ask("TTP /up/A1/<2011-5-5 1:2:3;1;2;3;4><2011-5-5 1:2:4;1.5;-2;0;9> k1") == "OK"
    manage(server, "addunit", "R", "keyR", "--fields", "4", "--source", "A1")
    assert server.query("SELECT s.code FROM units r JOIN units s"
                        " ON s.id = r.source_id WHERE r.code = 'R'") == [("A1",)]
    for selector in ("last", "first", "<2011-5-5 1:2:4>"):
        theirs = server.ask("TTP /dl/A1/%s k1" % selector)
        assert theirs.startswith("OK <")
        assert server.ask("TTP /dl/R/%s keyR" % selector) == theirs
    assert re.fullmatch(r"OK <\d+ 2011-05-05 01:02:04 L1=1.5 L2=-2 L3=0 L4=9>",
                        server.ask("TTP /dl/R/<2011-5-5 1:2:4> keyR"))

    assert server.ask("TTP /up/B7/<2011-6-6 0:0:0;7;8> k7") == "OK"
    manage(server, "addunit", "RB", "kRB", "--fields", "1", "--reads", "B7")
    manage(server, "addunit", "NR", "kNR", "--fields", "1")
    b7 = server.ask("TTP /dl/B7/last k7")
    assert b7.startswith("OK <")
    assert server.ask("TTP /dl/RB/last/B7 kRB") == b7
    assert server.ask("TTP /dl/NR/last/B7 kNR") == "403 Forbidden"
    # A permission is for the unit named, and the configured source is not B7.
    assert server.ask("TTP /dl/RB/last/A1 kRB") == "403 Forbidden"
    assert server.ask("TTP /dl/R/last/B7 keyR") == "403 Forbidden"


def test_addunit_disabled(server):
    result = manage(server, "addunit", "DIS1", "kd", "--fields", "1", "--disabled")
    assert result.stdout.strip() == "unit DIS1 added (1 fields, disabled)"
    assert server.ask("TTP /up/DIS1/<2010-1-1 0:0:0;1> kd") == "403 Forbidden"
    assert server.ask("TTP /dl/DIS1/last kd") == "403 Forbidden"
    # Authentication comes first: a wrong key is still 402.
    assert server.ask("TTP /up/DIS1/<2010-1-1 0:0:0;1> bad") == "402 Unauthorized"
    assert server.query("SELECT count(*) FROM samples s JOIN units u"
                        " ON u.id = s.unit_id WHERE u.code = 'DIS1'") == [(0,)]
    assert re.search(r"^DIS1\s+1\s+no\s+0\s+-$", manage(server, "listunits").stdout, re.M)


# -- listunits ----------------------------------------------------------------

def test_listunits(server):
    manage(server, "addunit", "LU1", "kl", "--fields", "3", "--name", "Boiler room")
    manage(server, "addunit", "LU2", "kl", "--fields", "2", "--name", "Spare")
    before = manage(server, "listunits").stdout
    assert re.search(r"^LU1\s+Boiler room\s+3\s+yes\s+0\s+-$", before, re.M), before
    # Newest by timestamp, not by arrival.
    assert server.ask("TTP /up/LU1/<2010-1-2 3:4:5.25;1;2;3> kl") == "OK"
    assert server.ask("TTP /up/LU1/<2010-1-1 0:0:0;1;2;3><9-1-1 0:0:0;4;5;6> kl") == "OK"
    out = manage(server, "listunits").stdout
    lines = out.splitlines()
    assert re.fullmatch(r"code\s+name\s+fields\s+enabled\s+samples\s+last sample", lines[0])
    assert re.search(r"^LU1\s+Boiler room\s+3\s+yes\s+3\s+2010-01-02 03:04:05\.250000$",
                     out, re.M), out
    assert re.search(r"^LU2\s+Spare\s+2\s+yes\s+0\s+-$", out, re.M), out
    codes = [line.split()[0] for line in lines[1:]]
    assert codes == sorted(codes)
    assert {"A1", "B7", "LU1", "LU2"} <= set(codes)


# -- export -------------------------------------------------------------------

EXPORT_UPLOAD = ("<2010-1-2 12:0:0;11;11.5;-0.001>"
                 "<2010-1-1 0:0:0;1;2;3>"
                 "<2010-1-2 0:0:0;+2.50;1e20;-3>"
                 "<2010-1-1 12:0:0.5;0;0.1;100>"
                 "<2010-1-3 0:0:0;7;8;9>")
EXPORT_ROWS = [  # oldest first
    ["2010-01-01 00:00:00", "1", "2", "3"],
    ["2010-01-01 12:00:00.500000", "0", "0.1", "100"],
    ["2010-01-02 00:00:00", "2.5", "1e+20", "-3"],
    ["2010-01-02 12:00:00", "11", "11.5", "-0.001"],
    ["2010-01-03 00:00:00", "7", "8", "9"],
]


@pytest.fixture(scope="module")
def export_unit(server):
    manage(server, "addunit", "EX1", "ke", "--fields", "3")
    assert server.ask("TTP /up/EX1/%s ke" % EXPORT_UPLOAD) == "OK"
    ids = [r[0] for r in server.query("SELECT s.id FROM samples s JOIN units u"
                                      " ON u.id = s.unit_id WHERE u.code = 'EX1' ORDER BY s.ts")]
    assert len(ids) == 5
    return [[str(i)] + row for i, row in zip(ids, EXPORT_ROWS)]


def parse_csv(text):
    return list(csv.reader(io.StringIO(text)))


def test_export_everything(server, export_unit):
    rows = parse_csv(manage(server, "export", "EX1").stdout)
    assert rows[0] == ["id", "timestamp", "L1", "L2", "L3"]
    assert rows[1:] == export_unit
    # Sample ids follow arrival, rows follow timestamps.
    assert [r[0] for r in rows[1:]] != sorted(r[0] for r in rows[1:])


@pytest.mark.parametrize("limits,wanted", [
    (["--from", "2010-1-2"], [2, 3, 4]),
    (["--from", "2010-1-1 12:0:0.5"], [1, 2, 3, 4]),
    (["--from", "2010-1-1 12:0:0.500001"], [2, 3, 4]),
    (["--to", "2010-1-2 0:0:0"], [0, 1, 2]),
    (["--from", "2010-1-1 12:00:00.5", "--to", "2010-01-02 12:00:00"], [1, 2, 3]),
    (["--from", "2011-1-1"], []),
    (["--to", "2010-1-2"], [0, 1, 2, 3]),   # a date alone: the whole day
    (["--from", "2010-1-2", "--to", "2010-1-2"], [2, 3]),
], ids=["from-date", "from-ts-inclusive", "from-ts-after", "to-ts-inclusive", "both", "none",
        "to-date-whole-day", "one-day"])
def test_export_range(server, export_unit, limits, wanted):
    rows = parse_csv(manage(server, "export", "EX1", *limits).stdout)
    assert rows[0] == ["id", "timestamp", "L1", "L2", "L3"]
    assert rows[1:] == [export_unit[i] for i in wanted]


def test_export_field_names_and_output_file(server, tmp_path):
    manage(server, "addunit", "EX2", "ke", "--fields", "3", "--field-names", "temp, press")
    assert server.ask("TTP /up/EX2/<2010-1-1 0:0:0;-1;2.25;3e-7> ke") == "OK"
    stdout = manage(server, "export", "EX2").stdout
    rows = parse_csv(stdout)
    assert rows[0] == ["id", "timestamp", "temp", "press", "L3"]
    assert rows[1][1:] == ["2010-01-01 00:00:00", "-1", "2.25", "3e-07"]

    target = tmp_path / "ex2.csv"
    result = manage(server, "export", "EX2", "-o", target)
    assert result.stdout == ""
    data = target.read_bytes()
    assert data.startswith(b"id,timestamp,temp,press,L3\r\n")
    assert parse_csv(data.decode()) == rows


def test_export_refusals(server, export_unit, tmp_path):
    target = tmp_path / "nosuch.csv"
    refused(manage(server, "export", "NOSUCH", "-o", target, check=False), "NOSUCH")
    assert not target.exists()
    for option, text in (("--from", "2010-13-1"), ("--to", "2010-1-1 25:0:0"),
                         ("--from", "yesterday")):
        result = manage(server, "export", "EX1", option, text, "-o", target, check=False)
        refused(result, "bad timestamp", text)
        assert result.stdout == ""
        assert not target.exists()


# -- backup -------------------------------------------------------------------

def test_backup_while_serving_and_uploading(server, tmp_path):
    sqlite_only(server.engine, "manage backup copies SQLite files (on PostgreSQL it refuses,"
                " naming pg_dump: test_backup_refuses_naming_pg_dump)")
    manage(server, "addunit", "BK1", "kb", "--fields", "1")
    with server.connect() as sock:
        for i in range(20):
            answer = server.exchange("TTP /up/BK1/<2012-1-1 0:0:%d;%d> kb\r" % (i, i), sock=sock)
            assert answer == ["OK"]

    stop = threading.Event()
    sent = [0]
    problems = []

    def upload():
        try:
            with server.connect(timeout=5) as sock:
                while not stop.is_set():
                    n = sent[0]
                    line = "TTP /up/BK1/<2012-1-2 %d:%d:%d;%d> kb\r" % (
                        n // 3600, n // 60 % 60, n % 60, n)
                    answer = server.exchange(line, sock=sock)
                    if answer != ["OK"]:
                        problems.append(answer)
                        return
                    sent[0] += 1
        except Exception as exc:  # reported below, in the test's thread
            problems.append(exc)

    uploader = threading.Thread(target=upload, daemon=True)
    uploader.start()
    try:
        deadline = time.monotonic() + 10
        while sent[0] < 5 and not problems and time.monotonic() < deadline:
            time.sleep(0.01)
        at_start = sent[0]
        target = tmp_path / "copy.db"
        result = manage(server, "backup", target)
        at_end = sent[0]
    finally:
        stop.set()
        uploader.join(10)
    assert not uploader.is_alive()
    assert not problems, problems
    assert at_end > at_start > 0, "uploads should have gone on during the backup"
    assert result.stdout.startswith("backup written to %s (" % target)

    assert query_file(target, "PRAGMA integrity_check") == [("ok",)]
    assert query_file(target, "PRAGMA user_version") == [(SCHEMA,)]
    first_day = query_file(target, "SELECT s.ts FROM samples s JOIN units u ON u.id = s.unit_id"
                      " WHERE u.code = 'BK1' AND s.ts < ? ORDER BY s.ts",
                      (times.parse("2012-1-2 0:0:0"),))
    assert [r[0] for r in first_day] == [
        times.parse("2012-1-1 0:0:%d" % i) for i in range(20)]
    copied = query_file(target, "SELECT count(*) FROM samples s JOIN units u ON u.id = s.unit_id"
                   " WHERE u.code = 'BK1'")[0][0]
    assert 20 + at_start <= copied <= 20 + sent[0]
    assert {r[0] for r in query_file(target, "SELECT code FROM units")} >= {"A1", "B7", "BK1"}

    # An existing file is never overwritten.
    digest = sha1(target)
    refused(manage(server, "backup", target, check=False), str(target), "exists")
    assert sha1(target) == digest


def test_backup_refuses_naming_pg_dump(server, tmp_path):
    if server.engine != "postgresql":
        pytest.skip("PostgreSQL-only: SQLite's backup is test_backup_while_serving_and_uploading")
    target = tmp_path / "copy.dump"
    result = manage(server, "backup", target, check=False)
    settings = server.settings()
    refused(result, "manage backup", "SQLite files only",
            "pg_dump --host=127.0.0.1 --port=%d --username=%s --format=custom --file=%s %s\n" % (
                settings.DATABASE_PORT, settings.DATABASE_USER, target, settings.DATABASE_NAME))
    assert result.stdout == ""
    assert not target.exists()


# -- apps ---------------------------------------------------------------------

HELLO_APP = '''"""hello: says hello"""
raise SystemExit(3)   # never reached unless something imports this file


class HelloProducer:
    def __init__(self, server, request, unit, key):
        self.data = "OK hello\\r"

    def more(self):
        data, self.data = self.data, ""
        return data


Extension = {"code": "hi", "producer": HelloProducer, "run_before": None, "run_after": None}
'''

APP_LINE = re.compile(r"^  (\w+)\s+(on|off)\s+(bundled|site)\s+(.*)$", re.M)


def listed_apps(srv):
    result = manage(srv, "apps")
    return {m.group(1): (m.group(2), m.group(3), m.group(4))
            for m in APP_LINE.finditer(result.stdout)}, result.stdout


def test_apps_bundled(fresh):
    apps, out = listed_apps(fresh)
    assert {name: apps[name][:2] for name in ("up", "dl", "ok")} == {
        "up": ("on", "bundled"), "dl": ("on", "bundled"), "ok": ("on", "bundled")}
    assert apps["ok"][2].startswith("ok: liveness")
    assert "TTP apps (bundled, and site apps in %s)" % (fresh.dir / "TTPApps") in out
    assert "HTTP apps" in out
    assert fresh.untouched(), "apps must not need the database"


def test_apps_ok_turned_off(server_factory):
    srv = server_factory("[ttpapps]\nok: off\n", start=False)
    apps, _ = listed_apps(srv)
    assert apps["ok"][:2] == ("off", "bundled")
    assert apps["up"][:2] == ("on", "bundled")


def test_apps_lists_site_app_without_importing_it(fresh):
    (fresh.dir / "TTPApps").mkdir()
    (fresh.dir / "TTPApps" / "hello.py").write_text(HELLO_APP)
    apps, _ = listed_apps(fresh)
    assert apps["hello"][:2] == ("off", "site")
    # check imports only what is on; an off site app must not run either.
    result = manage(fresh, "check")
    assert "configuration OK" in result.stdout
    assert "hello" not in result.stdout.split("TTP apps:")[-1].splitlines()[0]
    # Turned on, apps still only lists it.
    fresh.conf.write_text(fresh.conf.read_text() + "[ttpapps]\nhello: on\n")
    apps, _ = listed_apps(fresh)
    assert apps["hello"][:2] == ("on", "site")


def test_apps_shows_site_app_description(fresh):
    (fresh.dir / "TTPApps").mkdir()
    (fresh.dir / "TTPApps" / "hello.py").write_text(HELLO_APP)
    apps, _ = listed_apps(fresh)
    assert apps["hello"] == ("off", "site", "hello: says hello")


HTTP_APP = '''"""report: the plant's daily report"""
raise SystemExit(3)   # never reached unless something imports this file
'''
HTTP_APP_LINE = re.compile(r"^  (\w+)\s+(on|off)\s+(\(no url\)|\S+)\s+(.*)$", re.M)


def test_apps_lists_http_apps_with_descriptions_without_importing_them(fresh):
    out = manage(fresh, "apps").stdout
    assert out.split("HTTP apps (in %s):\n" % (fresh.dir / "HTTPApps"))[1] == "  (none)\n"
    folder = fresh.dir / "HTTPApps"
    folder.mkdir()
    (folder / "report.py").write_text(HTTP_APP)
    (folder / "extra").mkdir()
    (folder / "extra" / "__init__.py").write_text('"""extra: a package, not turned on"""\n')
    fresh.conf.write_text(fresh.conf.read_text() + "[httpapps]\nreport: on\n"
                          "report.url: tools/report/\nghost: off\n")
    out = manage(fresh, "apps").stdout
    listed = {m.group(1): m.groups()[1:]
              for m in HTTP_APP_LINE.finditer(out.split("HTTP apps")[1])}
    assert listed == {"extra": ("off", "(no url)", "extra: a package, not turned on"),
                      "ghost": ("off", "(no url)", "(not found)"),
                      "report": ("on", "/tools/report/", "report: the plant's daily report")}


RELAY_APP = '''"""relay: passes a unit's uploads on"""
raise SystemExit(3)   # never reached unless something imports this file

OPTIONS = {
    "SOURCE": ("A1", "the unit whose uploads are relayed"),
    "OFFSET_SECONDS": (0, "added to each timestamp"),
}
'''


def test_apps_lists_each_apps_options_without_importing_it(fresh):
    (fresh.dir / "TTPApps").mkdir()
    (fresh.dir / "TTPApps" / "relay.py").write_text(RELAY_APP)
    out = manage(fresh, "apps").stdout
    # Off: what it declares, at the defaults.
    assert ("  relay        off  site     relay: passes a unit's uploads on\n"
            "      SOURCE = A1   (default A1)   the unit whose uploads are relayed\n"
            "      OFFSET_SECONDS = 0   (default 0)   added to each timestamp\n") in out
    fresh.conf.write_text(fresh.conf.read_text() + "[ttpapps]\nrelay: on\n"
                          "relay.OFFSET_SECONDS: -3600\n")
    out = manage(fresh, "apps").stdout
    assert ("  relay        on   site     relay: passes a unit's uploads on\n"
            "      SOURCE = A1   (default A1)   the unit whose uploads are relayed\n"
            "      OFFSET_SECONDS = -3600   (default 0)   added to each timestamp\n") in out
    assert fresh.untouched()


def test_apps_shows_why_the_options_of_an_app_turned_off_cannot_be_read(fresh):
    (fresh.dir / "TTPApps").mkdir()
    app = fresh.dir / "TTPApps" / "relay.py"
    app.write_text('"""relay"""\nOPTIONS = {"SOURCE": "A1"}\n')
    out = manage(fresh, "apps").stdout
    assert ("      (its options cannot be read: %s:2: OPTIONS SOURCE: expected (default, "
            '"help"): a literal default and its help text)\n' % app) in out


@pytest.mark.parametrize("lines, message", [
    ("relay: on\nrelay.OFFSET_SECONDS: soon\n",
     "{conf}:{line}: [ttpapps] relay.OFFSET_SECONDS: expected an integer, got 'soon'"),
    ("relay: on\nrelay.SOURCES: B7\n",
     "{conf}:{line}: [ttpapps] relay.SOURCES: unknown option: relay declares SOURCE, "
     "OFFSET_SECONDS (did you mean relay.SOURCE?)"),
    ("relay.SOURCE: B7\n",
     "{conf}:{line}: [ttpapps] relay.SOURCE: relay is off, so its options are not used"),
    ("nosuch.SOURCE: B7\n",
     "{conf}:{line}: [ttpapps] nosuch.SOURCE: no app nosuch is bundled or in {dir}/TTPApps"),
])
def test_apps_and_check_refuse_a_bad_option(fresh, lines, message):
    (fresh.dir / "TTPApps").mkdir()
    (fresh.dir / "TTPApps" / "relay.py").write_text(RELAY_APP.replace("raise SystemExit(3)", ""))
    fresh.conf.write_text(fresh.conf.read_text() + "[ttpapps]\n" + lines)
    expected = message.format(conf=fresh.conf, line=fresh.conf.read_text().count("\n"),
                              dir=fresh.dir)
    for command in ("apps", "check"):
        result = manage(fresh, command, check=False)
        assert result.returncode == 2, (command, result.stdout, result.stderr)
        refused(result, "manage %s: %s" % (command, expected))
        assert "configuration OK" not in result.stdout


def test_check_refuses_a_malformed_declaration_naming_the_apps_file(fresh):
    (fresh.dir / "TTPApps").mkdir()
    app = fresh.dir / "TTPApps" / "relay.py"
    app.write_text('"""relay"""\nOPTIONS = {\n    "URL": ("r/", "where")}\n')
    fresh.conf.write_text(fresh.conf.read_text() + "[ttpapps]\nrelay: on\n")
    for command in ("apps", "check"):
        result = manage(fresh, command, check=False)
        assert result.returncode == 2, (command, result.stdout, result.stderr)
        refused(result, "%s:3: OPTIONS URL: URL cannot be an option" % app)


def test_check_shows_the_option_lines_and_loads_the_app_with_them(fresh):
    (fresh.dir / "TTPApps").mkdir()
    source = RELAY_APP.replace("raise SystemExit(3)", "") + (
        'Extension = {"code": "rl", "producer": object}\n')
    (fresh.dir / "TTPApps" / "relay.py").write_text(source)
    fresh.conf.write_text(fresh.conf.read_text() + "[ttpapps]\nrelay: on\nrelay.source: B7\n")
    line = fresh.conf.read_text().count("\n")
    out = manage(fresh, "check").stdout
    assert "  [ttpapps] relay.SOURCE = B7   (%s:%d)" % (fresh.conf, line) in out
    assert "/rl/ (relay)" in out and out.rstrip().endswith("configuration OK")


def test_apps_unknown_app_turned_on(server_factory):
    srv = server_factory("[ttpapps]\nnosuch: on\n", start=False)
    result = manage(srv, "apps", check=False)
    refused(result, "nosuch")
    assert result.returncode == 2


# -- check --------------------------------------------------------------------

def test_check_prints_every_setting_and_source(server_factory):
    srv = server_factory("[email]\nEMAIL_HOST_PASSWORD: hunter2\n", start=False)
    out = manage(srv, "check").stdout
    conf = srv.conf
    assert "config: %s (--config)" % conf in out
    for key in config.DEFAULTS:
        assert re.search(r"^  \[%s\] %s = .*   \((default|%s:\d+)\)$"
                         % (key.section, key.name, re.escape(str(conf))), out, re.M), key.name
    assert "  [main] DS_PORT = 0   (%s:1)" % conf in out
    assert "  [main] DS_BIND = 127.0.0.1   (%s:3)" % conf in out
    assert "  [main] SOCKET_OPEN = yes   (default)" in out
    if srv.engine == "sqlite3":
        assert "  [database] DATABASE_NAME = %s   (default)" % db_path(srv) in out
    else:
        assert re.search(r"^  \[database\] DATABASE_NAME = %s   \(%s:\d+\)$" % (
            srv.settings().DATABASE_NAME, re.escape(str(conf))), out, re.M), out
    assert "  [email] EMAIL_HOST_PASSWORD = ********   (%s:6)" % conf in out
    assert "hunter2" not in out
    assert "  [ttpapps] ok = on   (default)" in out
    assert "TTP apps: /al/ (al), /dl/ (dl), /ok/ (ok), /up/ (up)" in out
    assert out.rstrip().endswith("configuration OK")


def test_check_bad_config(fresh):
    fresh.conf.write_text("# site settings\nHTTP_PORT: 0\nDS_PORT: x\n")
    result = manage(fresh, "check", check=False)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "%s:3" % fresh.conf in result.stderr
    assert "DS_PORT" in result.stderr and "'x'" in result.stderr
    assert "configuration OK" not in result.stdout
