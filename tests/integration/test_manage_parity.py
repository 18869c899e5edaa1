"""The manage commands of issue 10's parity list, end to end: ``users``,
``adduser``, ``changeunit``, ``deleteunit``, ``deleteold``, and the
action log rows each writes (read with the test's own store.Database).
Each runs as a subprocess against a real database, on each engine."""

import getpass
import re
import subprocess
import sys

import pytest

from texmate_ds import store, times

from conftest import child_env

ACTOR = "manage:" + getpass.getuser()


@pytest.fixture
def srv(server_factory):
    srv = server_factory(start=False)
    manage(srv, "addunit", "A1", "secret-key-1", "--fields", "4", "--name", "Pump",
           "--axis", "Flow:3,4")
    manage(srv, "addunit", "B7", "k7", "--fields", "2")
    return srv


def manage(srv, *args, check=True, **extra_env):
    env = child_env()
    env.update(extra_env)
    return srv.manage(*args, check=check, env=env, input="")


def refused(result, *words, status=1):
    assert result.returncode == status and "Traceback" not in result.stderr, result.stderr
    for word in words:
        assert word in result.stderr, result.stderr


def log_entries(srv, **filters):
    db = srv.database()
    try:
        return db.log.entries(**filters)
    finally:
        db.close()


def units(srv):
    db = srv.database()
    try:
        return {u.code: (u, db.units.reads(u), db.units.graph_options(u), db.samples.count(u))
                for u in db.units.all()}
    finally:
        db.close()


def add_samples(srv, code, timestamps):
    db = srv.database()
    unit = db.units.get(code)
    db.samples.add(unit, [(ts, (1.0,) * unit.fields) for ts in timestamps])
    db.close()


def test_help_lists_the_new_commands(srv):
    out = manage(srv, "help").stdout
    for command in ("users", "adduser", "changeunit", "deleteunit", "deleteold"):
        assert re.search(r"^\s+%s\s+\S" % command, out, re.M), (command, out)
    assert re.search(r"one writer\s+at\s+a\s+time", manage(srv, "deleteold", "--help").stdout)


# -- users and adduser -----------------------------------------------------------

def test_adduser_then_users(srv):
    result = manage(srv, "adduser", "ann", "--email", "ann@example.com", "--staff",
                    "--noinput", TXM_PASSWORD="a long one")
    assert result.stdout.strip() == "user ann created (staff)"
    manage(srv, "adduser", "bob", "--noinput", TXM_PASSWORD="another one")
    lines = manage(srv, "users").stdout.splitlines()
    assert re.fullmatch(r"username\s+staff\s+superuser\s+active\s+last login", lines[0])
    assert [line.split() for line in lines[1:]] == [
        ["Administrator", "yes", "yes", "yes", "-"], ["ann", "yes", "no", "yes", "-"],
        ["bob", "no", "no", "yes", "-"]]
    db = srv.database()
    ann = db.accounts.get_user_by_name("ann")
    assert (ann.email, ann.is_staff, ann.is_superuser) == ("ann@example.com", True, False)
    db.close()
    entries = log_entries(srv, model="users")
    assert [(e.actor, e.action, e.object_repr, e.changes, e.message) for e in entries] == [
        (ACTOR, "add", "bob", {}, ""), (ACTOR, "add", "ann", {}, "staff")]


def test_adduser_refusals(srv):
    manage(srv, "adduser", "ann", "--noinput", TXM_PASSWORD="pw")
    refused(manage(srv, "adduser", "ANN", "--noinput", TXM_PASSWORD="pw", check=False),
            "exists already")
    refused(manage(srv, "adduser", "cy", "--noinput", check=False), "TXM_PASSWORD")
    refused(manage(srv, "adduser", "cy", check=False), "no terminal")
    refused(manage(srv, "adduser", "cy", "--group", "ops", "--noinput", check=False,
                   TXM_PASSWORD="pw"), "no group 'ops'")
    assert [e.object_repr for e in log_entries(srv, model="users")] == ["ann"]


def test_createsuperuser_and_changepassword_log_too_never_the_password(srv):
    manage(srv, "createsuperuser", "--noinput", "--username", "ops", TXM_PASSWORD="s3cret-pw")
    manage(srv, "changepassword", "ops", "--noinput", TXM_PASSWORD="n3w-pw")
    entries = log_entries(srv, model="users")
    assert [(e.action, e.changes, e.message) for e in entries] == [
        ("change", {"password": "(changed)"}, ""), ("add", {}, "staff, superuser")]
    db = srv.database()
    text = str(db.all("SELECT * FROM action_log"))
    db.close()
    assert "s3cret" not in text and "n3w" not in text


# -- changeunit ----------------------------------------------------------------------

def test_changeunit_changes_only_what_is_given_and_logs_old_and_new(srv):
    before = units(srv)
    result = manage(srv, "changeunit", "A1", "--name", "Pump 2", "--field-names", "a,b",
                    "--source", "B7", "--reads", "B7", "--graph-size", "640x200",
                    "--axis", "Flow:1,2", "--fields", "2", "--disabled")
    assert result.stdout.strip() == (
        "unit A1 changed: axes, enabled, field_names, fields, graph_size, name, reads, source")
    after = units(srv)
    a1, reads, options, _ = after["A1"]
    assert (a1.name, a1.fields, a1.field_names, a1.enabled, a1.key, a1.description) == (
        "Pump 2", 2, ("a", "b"), False, "secret-key-1", "")
    assert a1.source_id == after["B7"][0].id and reads == ["B7"]
    assert options == store.GraphOptions(640, 200, (store.Axis("Flow", (1, 2)),))
    assert after["B7"] == before["B7"]
    [entry] = log_entries(srv, model="units", object_id=a1.id, actor=ACTOR, limit=1)
    assert (entry.action, entry.object_repr) == ("change", "A1 (Pump 2)")
    assert entry.changes == {
        "name": ["Pump", "Pump 2"], "fields": [4, 2], "field_names": ["", "a,b"],
        "enabled": [True, False], "source": [None, "B7"], "reads": [[], ["B7"]],
        "graph_size": ["800x300", "640x200"], "axes": [["Flow:3,4"], ["Flow:1,2"]]}

    manage(srv, "changeunit", "A1", "--no-source", "--enabled", "--reads", "")
    a1, reads, _, _ = units(srv)["A1"]
    assert (a1.source_id, a1.enabled, reads) == (None, True, [])
    assert log_entries(srv, limit=1)[0].changes == {
        "source": ["B7", None], "enabled": [False, True], "reads": [["B7"], []]}


def test_changeunit_key_logs_changed_never_the_key(srv):
    manage(srv, "changeunit", "A1", "--key", "new-secret-2")
    assert units(srv)["A1"][0].key == "new-secret-2"
    [entry] = log_entries(srv, model="units", limit=1)
    assert entry.changes == {"key": "(changed)"}
    db = srv.database()
    text = str(db.all("SELECT * FROM action_log"))
    db.close()
    assert "secret-key-1" not in text and "new-secret-2" not in text


def test_changeunit_with_nothing_different_logs_nothing(srv):
    entries = log_entries(srv)
    out = manage(srv, "changeunit", "A1", "--name", "Pump").stdout
    assert out.strip() == "unit A1 unchanged (nothing given differs)"
    assert log_entries(srv) == entries


@pytest.mark.parametrize("args, words, status", [
    (("NOSUCH", "--name", "x"), ["NOSUCH"], 1),
    (("A1", "--fields", "3"), ["axis 'Flow'", "1 to 3"], 1),
    (("A1", "--fields", "33"), ["--fields"], 1),
    (("A1", "--key", "a b"), ["key"], 1),
    (("A1", "--source", "NOSUCH"), ["NOSUCH"], 1),
    (("A1", "--reads", "B7,NOSUCH"), ["NOSUCH"], 1),
    (("A1", "--field-names", "a,b,c,d,e"), ["--field-names", "5 names for 4"], 1),
    (("A1", "--graph-size", "20x20"), ["100 to 4000"], 1),
    (("A1", "--axis", "Flow:9"), ["field numbers from 1 to 4"], 1),
    (("A1", "--source", "B7", "--no-source"), ["not allowed with"], 2),
    (("A1", "--enabled", "--disabled"), ["not allowed with"], 2),
])
def test_changeunit_refusals_change_nothing(srv, args, words, status):
    before, entries = units(srv), log_entries(srv)
    refused(manage(srv, "changeunit", *args, "--name", "changed?", check=False), *words,
            status=status)
    assert units(srv) == before and log_entries(srv) == entries


def test_changeunit_refuses_fewer_fields_than_a_display_shows(srv):
    manage(srv, "adddisplay", "Plant", "--channels", "B7:2")
    before = units(srv)
    refused(manage(srv, "changeunit", "B7", "--fields", "1", check=False),
            "display shows field(s) 2 of unit B7")
    assert units(srv) == before


# -- deleteunit --------------------------------------------------------------------------

def test_deleteunit_without_yes_changes_nothing(srv):
    add_samples(srv, "A1", [1, 2, 3])
    manage(srv, "changeunit", "B7", "--source", "A1", "--reads", "A1")
    before, entries = units(srv), log_entries(srv)
    result = manage(srv, "deleteunit", "A1", check=False)
    refused(result, "--yes")
    assert result.stdout.strip() == (
        "would delete unit A1 (Pump) with 3 samples, 0 dl cursors, 1 read permissions, "
        "0 display channels; B7 would read themselves by default (no source)")
    assert units(srv) == before and log_entries(srv) == entries


def test_deleteunit_yes_takes_its_samples_and_frees_its_readers(srv):
    add_samples(srv, "A1", range(1, 12))
    add_samples(srv, "B7", [5])
    manage(srv, "changeunit", "B7", "--source", "A1", "--reads", "A1")
    a1_id = units(srv)["A1"][0].id
    assert manage(srv, "deleteunit", "A1", "--yes").stdout.startswith(
        "deleted unit A1 (Pump) with 11 samples")
    left = units(srv)
    assert set(left) == {"B7"}
    b7, reads, _, count = left["B7"]
    assert (b7.source_id, reads, count) == (None, [], 1)
    db = srv.database()
    assert db.one("SELECT count(*) FROM samples WHERE unit_id = ?", (a1_id,)) == (0,)
    db.close()
    [entry] = log_entries(srv, model="units", object_id=a1_id, limit=1)
    assert (entry.action, entry.object_repr, entry.message) == (
        "delete", "A1 (Pump)", "with 11 samples")
    refused(manage(srv, "deleteunit", "A1", "--yes", check=False), "no unit 'A1'")


# -- deleteold -----------------------------------------------------------------------------

CUT = times.parse("2010-01-02 00:00:00")
SECOND = 1000000


def test_deleteold_deletes_exactly_the_older_ones_in_chunks(srv):
    # 25,000 samples a second apart, 20,000 of them before the cut.
    add_samples(srv, "A1", [CUT + (i - 20000) * SECOND for i in range(25000)])
    add_samples(srv, "B7", [CUT - SECOND])
    entries = log_entries(srv)
    result = manage(srv, "deleteold", "A1", "--before", "2010-1-2", check=False)
    refused(result, "--yes")
    assert result.stdout.strip() == "would delete 20000 samples of A1 before 2010-01-02 00:00:00"
    assert log_entries(srv) == entries

    result = manage(srv, "deleteold", "A1", "--before", "2010-1-2", "--yes")
    assert result.stdout.splitlines() == [
        "deleted 10000 of 20000 samples...", "deleted 20000 of 20000 samples...",
        "deleted 20000 samples of A1 before 2010-01-02 00:00:00"]
    db = srv.database()
    a1 = db.units.get("A1")
    assert db.samples.count(a1) == 5000 and db.samples.first(a1)[1] == CUT
    assert db.samples.count(db.units.get("B7")) == 1
    db.close()
    [entry] = log_entries(srv, model="samples")
    assert (entry.actor, entry.action, entry.object_id, entry.message) == (
        ACTOR, "delete", str(a1.id), "20000 samples before 2010-01-02 00:00:00")

    out = manage(srv, "deleteold", "A1", "--before", "2010-1-2", "--yes").stdout
    assert out.strip() == "no samples of A1 before 2010-01-02 00:00:00: nothing to delete"
    assert len(log_entries(srv, model="samples")) == 1


@pytest.mark.parametrize("args, words, status", [
    (("NOSUCH", "--before", "2010-1-1"), ["NOSUCH"], 1),
    (("A1", "--before", "yesterday"), ["--before", "'yesterday'"], 1),
    (("A1",), ["--before"], 2),
])
def test_deleteold_refusals(srv, args, words, status):
    refused(manage(srv, "deleteold", *args, "--yes", check=False), *words, status=status)


def test_commands_while_the_server_serves(srv):
    srv.start()
    assert srv.ask("TTP /up/A1/<2009-1-1 0:0:0;1;2;3;4><2011-1-1 0:0:0;1;2;3;4> secret-key-1"
                   ) == "OK"
    manage(srv, "changeunit", "A1", "--key", "k2")
    assert srv.ask("TTP /ok/A1 k2") == "OK"
    out = manage(srv, "deleteold", "A1", "--before", "2010-1-1", "--yes").stdout
    assert out.strip() == "deleted 1 samples of A1 before 2010-01-01 00:00:00"
    assert srv.ask("TTP /dl/A1/first k2").startswith("OK <")
    manage(srv, "deleteunit", "B7", "--yes")
    assert srv.ask("TTP /ok/B7 k7") == "405 Unit not found"
    client = subprocess.run(
        [sys.executable, "-m", "texmate_ds", "client", "--port", str(srv.ttp_port),
         "ok", "A1", "k2"], env=child_env(), capture_output=True, text=True, timeout=30)
    assert (client.returncode, client.stdout.strip()) == (0, "OK")
    assert srv.stop() == 0


def test_displays_tokens_and_unlocks_are_logged_too(srv):
    manage(srv, "adddisplay", "Plant", "--refresh", "5", "--channels", "A1:1,2")
    manage(srv, "addtoken", "Administrator", "--name", "grafana")
    manage(srv, "revoketoken", "Administrator", "grafana")
    manage(srv, "unlock")   # nothing to forget: nothing logged
    logged = [(e.action, e.model, e.object_repr, e.message, e.actor)
              for e in log_entries(srv, limit=3)]
    assert logged == [
        ("delete", "tokens", "grafana of Administrator", "", ACTOR),
        ("add", "tokens", "grafana of Administrator", "", ACTOR),
        ("add", "displays", "Plant", "2 channel(s), refresh 5 s", ACTOR)]
    token = manage(srv, "addtoken", "Administrator", "--name", "again").stdout.strip()
    assert all(token not in e.changes and token not in e.message for e in log_entries(srv))


def test_unlock_is_logged_when_it_forgets_something(srv):
    manage(srv, "syncdb")
    db = srv.database()
    db.accounts.add_sign_in_attempt("administrator", "127.0.0.2", times.now())
    db.close()
    manage(srv, "unlock", "Administrator")
    entry = log_entries(srv, model="sign_in_attempts")[0]
    assert (entry.action, entry.object_repr, entry.message) == (
        "delete", "Administrator", "1 attempt(s)")


def test_adduser_puts_the_user_in_groups_and_log_shows_it(srv):
    db = srv.database()
    db.accounts.add_group("Operators")
    db.close()
    refused(manage(srv, "adduser", "ann", "--group", "Nobody", "--noinput",
                   check=False, TXM_PASSWORD="pw-for-ann"), "no group 'Nobody'")
    manage(srv, "adduser", "ann", "--group", "operators", "--all-units", "--noinput",
           TXM_PASSWORD="pw-for-ann")
    db = srv.database()
    ann = db.accounts.get_user_by_name("ann")
    assert ann.all_units and db.accounts.groups_of(ann.id) == {
        db.accounts.get_group_by_name("Operators").id}
    db.close()
    shown = manage(srv, "log", "--model", "users").stdout
    assert "ann" in shown and "group Operators" in shown and "all units" in shown
    manage(srv, "changeunit", "A1", "--name", "Main\x1bpump")
    shown = manage(srv, "log", "--model", "units", "--limit", "1").stdout
    assert "Main\\x1bpump" in shown and "\x1b" not in shown
    assert manage(srv, "log", "--user", "nobody").stdout == "no entries\n"


def test_changeunit_sets_units_of_measure_and_report_fields(srv):
    manage(srv, "changeunit", "A1", "--field-units", "m3/h,m,,bar", "--report-fields", "4,1")
    unit = units(srv)["A1"][0]
    assert unit.field_units == ("m3/h", "m", "", "bar") and unit.report_fields == (1, 4)
    [entry] = log_entries(srv, model="units", limit=1)
    assert entry.changes == {"field_units": ["", "m3/h,m,,bar"], "report_fields": ["", "1,4"]}
    refused(manage(srv, "changeunit", "A1", "--report-fields", "5", check=False),
            "--report-fields: field numbers from 1 to 4")
    refused(manage(srv, "changeunit", "A1", "--field-units", "a,b,c,d,e", check=False),
            "5 units for 4 fields")
    manage(srv, "changeunit", "A1", "--report-fields", "")
    assert units(srv)["A1"][0].report_fields == ()
