"""Moving a site from SQLite to PostgreSQL with ``manage
migrate-to-postgresql`` (docs/scale-out.md, "Moving a site"): a site
built by real use on SQLite (uploads over TTP, a meter's ``dl next``
half read, a script watching events, users signed in, admin changes in
the log, an HTTP app's own rows, an alarm with its letter queued) is
stopped, copied, and started again on PostgreSQL with the same txm.conf
but for its [database]; every row of every table is the same on both
sides, and meters, browsers and scripts carry on where they were.

Then what the copy refuses and how it fails: a target that holds rows
(named), a row PostgreSQL will not take (nothing copied, and a second try
into the same database works once the row is mended); and the same
command going back from PostgreSQL to a SQLite file.

These need the test run's PostgreSQL (`postgres_cluster`) and skip with
its reason where there is none. The servers here run on SQLite and then
on PostgreSQL, whatever the `engine` of the other tests.
"""

import json

from postgres import free_port
from test_admin import PASSWORD, Browser
from test_admin_apps import NOTE, notes_app, rows
from test_events_stream import Stream

from texmate_ds.store import copy

from conftest import BASE_CONF, Server

ANN = "ann's own password"


def every_row(srv):
    """{table: its rows, sorted} of every table of the server's database,
    columns in the order of their names."""
    db = srv.database()
    try:
        return {key: sorted(db.all("SELECT %s FROM %s" % (
            ", ".join('"%s"' % c for c in sorted(table.columns)), table.name)), key=repr)
            for key, table in copy.catalog(db).items()}
    finally:
        db.close()


def migrate(srv, to_config, check=True):
    return srv.manage("migrate-to-postgresql", "--to-config", to_config, check=check)


def postgresql_conf(cluster, folder):
    """A new database of `cluster`, and a file of its [database] lines."""
    path = folder / "postgresql.conf"
    path.write_text(cluster.conf(cluster.database()))
    return path


def dl_next(srv, code, key):
    return srv.ask("TTP /dl/%s/next %s" % (code, key))


def test_a_site_in_use_moves_to_postgresql_and_carries_on(postgres_cluster, tmp_path):
    site = BASE_CONF + "HTTP_APPS_DIR: %s\n[email]\nEMAIL_HOST: 127.0.0.1\nEMAIL_PORT: %d\n" \
        "[httpapps]\nnotes: on\n" % (notes_app(tmp_path), free_port())
    srv = Server(tmp_path / "site", site)
    srv.add_unit("A1", "k1", 2)
    srv.add_unit("B7", "k7", 1, "--source", "A1", "--reads", "A1")
    srv.manage("changepassword", "Administrator", "--noinput",
               env=dict(srv.env, TXM_PASSWORD=PASSWORD))
    srv.manage("adduser", "ann", "--email", "ann@example.org", "--all-units", "--noinput",
               env=dict(srv.env, TXM_PASSWORD=ANN))
    token = srv.manage("addtoken", "Administrator", "--name", "script").stdout.strip()
    db = srv.database()
    a1, ann_id = db.units.get("A1").id, db.accounts.get_user_by_name("ann").id
    db.close()
    try:
        srv.start()
        watching = Stream(srv, "/events?units=A1", token)
        for second in range(1, 6):
            assert srv.ask("TTP /up/A1/<2024-03-01 00:00:%02d;%d;1> k1" % (second, second)) \
                == "OK"
        ids = [watching.event()["id"] for _ in range(5)]
        watching.close()
        assert dl_next(srv, "A1", "k1").endswith("00:00:01 L1=1 L2=1>")
        assert dl_next(srv, "A1", "k1").endswith("00:00:02 L1=2 L2=1>")
        assert dl_next(srv, "B7", "k7").endswith("00:00:01 L1=1 L2=1>")
        root = Browser(srv.http_port)
        assert root.sign_in("Administrator", PASSWORD).status == 303
        assert root.submit("/admin/mailinglists/%d/change/" % a1,
                           [("users", str(ann_id))]).status == 303
        assert root.submit("/admin/notes.note/add/", NOTE).status == 303
        ann = Browser(srv.http_port)
        assert ann.sign_in("ann", ANN).status == 303
        assert srv.ask("TTP /al/A1/2/<2024-03-01 00:00:09;high> k1") == "OK"
        assert srv.stop() == 0
        before = every_row(srv)
        assert len(before["samples"]) == 5 and len(before["outbox"]) == 1
        assert before["sessions"] and before["notes_note"] and before["action_log"]

        target = postgresql_conf(postgres_cluster, tmp_path)
        moved = migrate(srv, target)
        assert "committed" in moved.stdout, moved.stdout
        counts = dict(line.split() for line in moved.stdout.splitlines()[1:-2])
        assert counts == {table: str(len(rows)) for table, rows in before.items()
                          if table != "app_schema"}
        srv.conf.write_text(site + target.read_text())
        assert every_row(srv) == before

        srv.start()
        assert srv.db_path.endswith("(PostgreSQL)")
        # The meters' cursors are where they were; new samples come after.
        assert dl_next(srv, "A1", "k1").endswith("00:00:03 L1=3 L2=1>")
        assert dl_next(srv, "B7", "k7").endswith("00:00:02 L1=2 L2=1>")
        assert srv.ask("TTP /up/A1/<2024-03-01 00:00:06;6;1> k1") == "OK"
        got = [dl_next(srv, "A1", "k1") for _ in range(4)]
        assert [answer[-19:] for answer in got[:3]] == [
            "00:00:04 L1=4 L2=1>", "00:00:05 L1=5 L2=1>", "00:00:06 L1=6 L2=1>"]
        assert got[3] == "404 Data not found"
        # A script resuming its stream from the third sample gets the rest.
        again = Stream(srv, "/events?units=A1", token, last_event_id=ids[2])
        missed = [json.loads(again.event()["data"])["timestamp"] for _ in range(3)]
        again.close()
        assert missed == ["2024-03-01 00:00:04", "2024-03-01 00:00:05", "2024-03-01 00:00:06"]
        # The browsers' sessions hold; the alarm, its letter, the log and the
        # app's note are in the admin; ann signs in with her password.
        root.port = ann.port = srv.http_port
        assert "high" in root.get("/admin/alarms/").body
        assert "ann@example.org" in root.get("/admin/outbox/").body
        log = root.get("/admin/log/").body
        assert "mailinglists" in log and "notes.note" in log
        assert rows(root.get("/admin/notes.note/")) == [(1, ["A1", "Fault", "2", "no"])]
        assert ann.get("/").status == 200 and "ann" in ann.get("/").body
        assert Browser(srv.http_port).sign_in("ann", ANN).status == 303
        # New rows take ids past the copied ones (PostgreSQL's identity
        # sequences were moved), the app's table's as the store's.
        srv.add_unit("C3", "k3", 1)
        assert srv.ask("TTP /up/C3/<2024-03-01 00:00:00;1> k3") == "OK"
        db = srv.database()
        try:
            assert db.units.get("C3").id == 3
            assert db.insert("notes_note", unit="C3", body="", kind="visit", priority=1) == 2
            db.commit()
        finally:
            db.close()
    finally:
        srv.kill()


def test_a_target_holding_rows_is_refused_and_a_failed_copy_leaves_none(postgres_cluster,
                                                                       tmp_path):
    srv = Server(tmp_path / "site", BASE_CONF)
    srv.add_unit("A1", "k1", 1)
    # Two names SQLite's NOCASE (A to Z only) tells apart and PostgreSQL's
    # case-insensitive collation does not.
    for name in ("Ärger", "ärger"):
        srv.manage("adduser", name, "--noinput", env=dict(srv.env, TXM_PASSWORD=ANN))
    target = postgresql_conf(postgres_cluster, tmp_path)
    into = Server(tmp_path / "target", target.read_text())    # for its database()
    failed = migrate(srv, target, check=False)
    assert failed.returncode == 1
    assert "nothing copied: table users: " in failed.stderr
    assert "(ärger) already exists" in failed.stderr
    assert not any(every_row(into).values())

    # Mended, the copy goes into the same database (its schema from the
    # first try taken as it is)...
    db = srv.database()
    db.accounts.change_user(db.accounts.get_user_by_name("ärger").id, username="aerger")
    db.commit()
    db.close()
    assert "committed" in migrate(srv, target).stdout
    copied = every_row(into)
    assert copied == every_row(srv) and len(copied["users"]) == 3

    # ... and not again: the target holds rows, named, and they stay as they are.
    again = migrate(srv, target, check=False)
    assert again.returncode == 1
    assert "is not empty: it holds " in again.stderr
    assert "units (1 row)" in again.stderr and "users (3 rows)" in again.stderr
    assert every_row(into) == copied
    same = srv.manage("migrate-to-postgresql", "--to-config", srv.conf, check=False)
    assert same.returncode == 1 and "is the source and the target" in same.stderr
    missing = srv.manage("migrate-to-postgresql", "--to-config", target, "--from", "no.db",
                         check=False)
    assert missing.returncode == 1 and "--from no.db: no such file" in missing.stderr


def test_the_same_command_goes_back_from_postgresql_to_a_sqlite_file(postgres_cluster,
                                                                     tmp_path):
    srv = Server(tmp_path / "site", BASE_CONF)
    srv.add_unit("A1", "k1", 2)
    srv.add_unit("B7", "k7", 1)
    # A unit whose source comes after it: the copy sets it once both are in.
    srv.manage("changeunit", "A1", "--source", "B7")
    srv.manage("adddisplay", "Plant", "--channels", "A1:1,2", "--channels", "B7:1")
    # More samples than a batch of the copy holds, twice over.
    csv = tmp_path / "a1.csv"
    csv.write_text("id,timestamp,L1,L2\n" + "".join(
        ",2024-01-01 %02d:%02d:%02d,%d.5,\n" % (i // 3600, i // 60 % 60, i % 60, i)
        for i in range(2 * copy.BATCH + 7)))
    srv.manage("import", "A1", csv)
    original = every_row(srv)
    target = postgresql_conf(postgres_cluster, tmp_path)
    assert "committed" in migrate(srv, target).stdout
    srv.conf.write_text(BASE_CONF + target.read_text())
    assert every_row(srv) == original
    # B7 changed is read after A1 (PostgreSQL writes a new version of a
    # row), so going back A1 comes first, its source not there yet.
    srv.manage("changeunit", "B7", "--name", "Seven")
    on_postgresql = every_row(srv)

    back = tmp_path / "back.conf"
    back.write_text("[database]\nDATABASE_NAME: %s\n" % (tmp_path / "back.db"))
    moved = migrate(srv, back)
    assert "samples" in moved.stdout and str(2 * copy.BATCH + 7) in moved.stdout
    srv.conf.write_text(BASE_CONF + back.read_text())
    assert every_row(srv) == on_postgresql
