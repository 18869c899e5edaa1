"""Alarms end to end: ``al`` over real sockets against the real server (what
is stored, every refusal storing nothing, the letters queued for a unit's
mailing list and webhook), silent-meter alarms raised and ended by the
server's own check, and, in-process, that the ``OK`` and the ``alarm``
event come only after the commit.

The server runs with ``SILENT_CHECK_SECONDS: 1``; a test makes a meter
silent by dating its newest upload back through the store, as two minutes
of waiting would. Waiting for the check polls the database with a
deadline: nothing asserts how long anything took.
"""

import itertools
import json
import socket
import subprocess
import time

import pytest
import test_sample_events as sample_events

from texmate_ds import times

from conftest import _factory

_codes = itertools.count(1)


@pytest.fixture(scope="module")
def server(tmp_path_factory, engine):
    make, servers = _factory(tmp_path_factory.mktemp("alarms"), engine)
    yield make("SILENT_CHECK_SECONDS: 1\n")
    for srv in servers:
        srv.kill()


def new_unit(server, fields=2, *extra):
    code = "AL%d" % next(_codes)
    server.add_unit(code, "key" + code, fields, "--name", "Pump " + code, *extra)
    return code, "key" + code


def alarms_of(server, code):
    return server.query("SELECT a.kind, a.level, a.data, a.meter_ts, a.received, a.id"
                        " FROM alarms a JOIN units u ON u.id = a.unit_id WHERE u.code = ?"
                        " ORDER BY a.id", (code,))


def letters_of(server, alarm_id):
    return server.query("SELECT kind, recipient, subject, body, state FROM outbox"
                        " WHERE alarm_id = ? ORDER BY id", (alarm_id,))


def wait_for(what, timeout=15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = what()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError("still not so after %d s" % timeout)


# -- al (docs/protocol.md) ---------------------------------------------------------

def test_the_manuals_alarm_is_stored_and_on_disk_when_ok_comes(server):
    code, key = new_unit(server)
    before = times.now()
    assert server.ask("TTP /al/%s/2/<2009-1-16 15:30:45;high> %s" % (code, key)) == "OK"
    # A connection of its own sees it as soon as the OK is in: committed.
    [(kind, level, data, meter_ts, received, _)] = alarms_of(server, code)
    assert (kind, level, json.loads(data), meter_ts) == (
        "meter", 2, ["2009-1-16 15:30:45", "high"], times.parse("2009-1-16 15:30:45"))
    assert before <= received <= times.now()


@pytest.mark.parametrize("argument, level, data, meter_ts", [
    ("0/<>", 0, [], None),
    ("99/<high>", 99, ["high"], None),
    ("07/<9-1-16 8:0:0.5;a b c;16/01/2009;x=1,y=2>", 7,
     ["9-1-16 8:0:0.5", "a b c", "16/01/2009", "x=1,y=2"], times.parse("2009-01-16 08:00:00.5")),
    ("3/<;>", 3, ["", ""], None),
    ("3/<2009-2-30 1:2:3>", 3, ["2009-2-30 1:2:3"], None),          # no such day: text only
])
def test_levels_and_data_items_as_sent(server, argument, level, data, meter_ts):
    code, key = new_unit(server)
    assert server.ask("TTP /al/%s/%s %s" % (code, argument, key)) == "OK"
    [(_, got_level, got_data, got_ts, _, _)] = alarms_of(server, code)
    assert (got_level, json.loads(got_data), got_ts) == (level, data, meter_ts)


@pytest.mark.parametrize("argument, answer", [
    ("100/<>", "400 Bad request"),
    ("-1/<>", "400 Bad request"),
    ("+2/<>", "400 Bad request"),
    ("x/<>", "400 Bad request"),
    ("/<>", "400 Bad request"),
    ("2", "400 Bad request"),
    ("2/", "400 Bad request"),
    ("2/high", "400 Bad request"),
    ("2/<high", "400 Bad request"),
    ("2/<a<b>", "400 Bad request"),
    ("2/<a><b>", "400 Bad request"),
    ("2/<a>b", "400 Bad request"),
    ("2/<a>/", "400 Bad request"),
])
def test_malformed_alarms_answer_400_and_store_nothing(server, argument, answer):
    code, key = new_unit(server)
    assert server.ask("TTP /al/%s/%s %s" % (code, argument, key)) == answer
    assert alarms_of(server, code) == []


def test_authentication_comes_first_and_refusals_store_nothing(server):
    code, key = new_unit(server)
    off, off_key = new_unit(server, 2, "--disabled")
    answers = server.exchange(
        "TTP /al/%s/2/<x> wrong\rTTP /al/%s/999/<<> wrong\rTTP /al/NOPE/2/<x> %s\r"
        "TTP /al/%s/2/<x> %s\rTTP /al/%s/2/<x> %s\r" % (
            code, code, key, off, off_key, code, key), 5)
    assert answers == ["402 Unauthorized", "402 Unauthorized", "405 Unit not found",
                       "403 Forbidden", "OK"]
    assert len(alarms_of(server, code)) == 1 and alarms_of(server, off) == []
    assert key not in server.errors() and "TTP /al/%s/2/<x> ***" % code in server.errors()


def test_pipelined_alarms_are_answered_in_order_and_all_stored(server):
    code, key = new_unit(server)
    lines = "".join("TTP /al/%s/%d/<n%d> %s\r" % (code, n % 100, n, key) for n in range(200))
    assert server.exchange(lines, 200) == ["OK"] * 200
    assert [json.loads(a[2]) for a in alarms_of(server, code)] == [["n%d" % n]
                                                                  for n in range(200)]


# -- the letters an alarm queues -------------------------------------------------------

def test_an_alarm_queues_an_email_per_address_and_a_webhook(server):
    code, key = new_unit(server)
    example = "{% if data.0 %}The localtime for this Alarm was {{ data.0 }}{% endif %}"

    def configure(db):
        unit = db.units.get(code)
        users = [db.accounts.add_user("%s-%s" % (code, name), "x", email=email)
                 for name, email in (("ann", "ann@example.org"), ("bo", "bo@example.org"),
                                     ("cy", ""))]
        db.alarms.set_mailing_list(unit, [user.id for user in users])
        db.units.change(unit, webhook_url="http://127.0.0.1:9/hook")
        db.alarms.set_message(unit, 2, "{{ unit.name }}: level {{ level }} ({{ data.1 }})", example)
    server.through_store(configure)
    assert server.ask("TTP /al/%s/2/<2009-1-16 15:30:45;high> %s" % (code, key)) == "OK"
    assert server.ask("TTP /al/%s/5/<> %s" % (code, key)) == "OK"
    first, other = alarms_of(server, code)
    subject = "Pump %s: level 2 (high)" % code
    letters = letters_of(server, first[5])
    assert [letter[:3] + letter[4:] for letter in letters] == [
        ("email", "ann@example.org", subject, "queued"),
        ("email", "bo@example.org", subject, "queued"),
        ("webhook", "http://127.0.0.1:9/hook", subject, "queued")]
    assert letters[0][3] == letters[1][3] == \
        "The localtime for this Alarm was 2009-1-16 15:30:45"
    hook = json.loads(letters[2][3])
    assert hook["id"] == first[5] and hook["unit"]["code"] == code
    assert (hook["kind"], hook["level"], hook["data"], hook["meter_time"], hook["text"]) == (
        "meter", 2, ["2009-1-16 15:30:45", "high"], "2009-01-16 15:30:45", subject)
    # Level 5 has no message of its own: the built-in one.
    level5 = letters_of(server, other[5])
    assert level5[0][2].startswith("Alarm level 5 from %s (Pump %s) at " % (code, code))
    assert "Data: none" in level5[0][3]


def test_a_message_that_fails_at_send_time_never_costs_the_alarm(server):
    code, key = new_unit(server)

    def configure(db):
        unit = db.units.get(code)
        user = db.accounts.add_user(code + "-ann", "x", email="ann@example.org")
        db.alarms.set_mailing_list(unit, [user.id])
        # Stored past the admin's check (as an old database might hold it).
        db.alarms.set_message(unit, None, "{% if level %}", "{% for a in data %}{% for b in data %}"
                              "{% for c in data %}{% for d in data %}.{% endfor %}{% endfor %}"
                              "{% endfor %}{% endfor %}")
    server.through_store(configure)
    assert server.ask("TTP /al/%s/1/<0;1;2;3;4;5;6;7;8;9> %s" % (code, key)) == "OK"
    [alarm] = alarms_of(server, code)
    [letter] = letters_of(server, alarm[5])
    assert letter[2].startswith("Alarm level 1 from ") and "  d9: 9\n" in letter[3]
    assert "the subject of its alarm message failed (TemplateSyntaxError" in server.errors()
    assert "the body of its alarm message failed (TemplateLimitError" in server.errors()


# -- silent meters ------------------------------------------------------------------

def test_a_silent_meter_gets_one_alarm_and_one_when_it_is_back(server):
    code, key = new_unit(server)
    assert server.ask("TTP /up/%s/<2009-1-16 15:30:45;1;2> %s" % (code, key)) == "OK"

    def silent_for_two_minutes(db):
        unit = db.units.change(db.units.get(code), silent_minutes=1, silent_level=4)
        user = db.accounts.add_user(code + "-ops", "x", email="ops@example.org")
        db.alarms.set_mailing_list(unit, [user.id])
        db.execute("UPDATE units SET last_received = ? WHERE id = ?",
                   (times.now() - 2 * times.MINUTE, unit.id))
    server.through_store(silent_for_two_minutes)
    [silent] = wait_for(lambda: alarms_of(server, code))
    assert silent[:2] == ("silent", 4) and silent[3] is None
    assert json.loads(silent[2])[1] == "expected every minute"
    assert server.query("SELECT silent_since FROM units WHERE code = ?", (code,)) == [
        (silent[4],)]
    [letter] = letters_of(server, silent[5])
    assert letter[:3] == ("email", "ops@example.org",
                          "Silent meter %s (Pump %s): level 4 alarm at %s"
                          % (code, code, times.shown(silent[4])))
    assert "unit %s: no data since " % code in server.errors()
    time.sleep(1.5)                                     # a look or more later: still one
    assert len(alarms_of(server, code)) == 1

    assert server.ask("TTP /up/%s/<2009-1-16 15:30:46;1;2> %s" % (code, key)) == "OK"
    _, back = wait_for(lambda: alarms_of(server, code)[1:] and alarms_of(server, code))
    assert back[:2] == ("back", 4)
    assert json.loads(back[2])[1] == "silent alarm raised at %s" % times.shown(silent[4])
    assert letters_of(server, back[5])[0][2].startswith("%s (Pump %s) is back online: level 4"
                                                        % (code, code))
    assert server.query("SELECT silent_since FROM units WHERE code = ?", (code,)) == [(None,)]


def test_a_meter_that_never_uploaded_is_silent_from_its_creation(server):
    code, _ = new_unit(server)
    quiet, _ = new_unit(server)

    def configure(db):
        db.units.change(db.units.get(code), silent_minutes=5)
        db.units.change(db.units.get(quiet), silent_minutes=5)
        db.execute("UPDATE units SET created = ? WHERE code = ?",
                   (times.now() - 6 * times.MINUTE, code))
    server.through_store(configure)
    [silent] = wait_for(lambda: alarms_of(server, code))
    assert silent[:2] == ("silent", 1)                  # the default level
    assert alarms_of(server, quiet) == []               # created just now


# -- in-process: the OK and the event wait for the commit ---------------------------

class Site(sample_events.Site):
    """test_sample_events' parts, turned by the test (its Spoiler app as
    ``zz``), listening to alarms; what a second connection sees of them
    as each event comes."""

    def __init__(self, engine, path):
        super().__init__(engine, path, 1)
        self.subscription.close()
        self.subscription = self.bus.subscribe(["alarm"], {"A1"}, size=10, wake=self._woken)
        self.meter.setblocking(False)

    def _woken(self):
        self.committed_then.append(self.committed())

    def committed(self):
        return self.other.execute("SELECT count(*) FROM alarms").fetchone()[0]

    def received(self, peek=False):
        try:
            return self.meter.recv(65536, socket.MSG_PEEK if peek else 0).decode()
        except BlockingIOError:
            return ""


@pytest.fixture
def site(tmp_path, engine):
    made = Site(engine, tmp_path / "data.db")
    yield made
    made.close()


def test_the_ok_and_the_event_come_after_the_commit(site, monkeypatch):
    at_commit = []
    commit = site.store.commit

    def noting():
        at_commit.append(site.received(peek=True))
        commit()
    monkeypatch.setattr(site.store, "commit", noting)    # undone before the site closes
    site.meter.sendall(b"TTP /al/A1/2/<2009-1-16 15:30:45;high> k1\r")
    site.loop._turn(0.5)                # read and stored, in the open transaction
    assert site.received() == "" and site.committed() == 0
    assert site.subscription.take() == []
    site.loop._turn(0.01)               # the group commit, then the answer
    assert at_commit == [""]            # nothing had gone out when it committed
    assert site.received() == "OK\r" and site.committed() == 1
    site.published()
    [event] = site.events
    alarm_id = site.other.execute("SELECT id, received FROM alarms").fetchone()
    assert event.topic == "alarm" and event.data == {
        "unit": "A1", "id": alarm_id[0], "kind": "meter", "level": 2,
        "data": ("2009-1-16 15:30:45", "high"), "meter_ts": times.parse("2009-1-16 15:30:45"),
        "received": alarm_id[1]}
    assert site.committed_then == [1]        # on disk when the event came


def test_a_failed_commit_answers_500_stores_nothing_and_tells_nobody(site, caplog):
    site.meter.sendall(b"TTP /zz/A1 k1\rTTP /al/A1/2/<x> k1\r")
    got = ""
    for _ in range(50):
        site.loop._turn(0.01)
        got += site.received()
        if got.count("\r") == 2:
            break
    assert got == "500 Internal error\r500 Internal error\r"
    assert site.committed() == 0 and site.subscription.take() == []
    assert "commit failed" in caplog.text
    site.meter.sendall(b"TTP /al/A1/2/<x> k1\r")
    for _ in range(50):
        site.loop._turn(0.01)
        got = site.received()
        if got:
            break
    assert got == "OK\r" and site.committed() == 1
    assert [data["data"] for data in site.published()] == [("x",)]


def test_letters_wake_the_mail_service_after_the_commit_only(site):
    woken = []
    site.store.outbox.on_queued.append(lambda: woken.append(site.other.execute(
        "SELECT count(*) FROM outbox").fetchone()[0]))
    db = site.store
    user = db.accounts.add_user("ann", "x", email="ann@example.org")
    db.alarms.set_mailing_list(db.units.get("A1"), [user.id])
    db.commit()
    site.meter.sendall(b"TTP /al/A1/2/<x> k1\r")
    site.loop._turn(0.5)
    assert woken == []
    site.loop._turn(0.01)
    assert site.received() == "OK\r"
    assert woken == [1]                  # the letter was there to read when it woke


# -- the simulator ------------------------------------------------------------------

def test_simulated_meters_raise_an_alarm_every_n_requests(server, tmp_path):
    figures = tmp_path / "figures.json"
    result = subprocess.run(
        server.command + ["simulate", "--port", str(server.ttp_port), "--meters", "3",
                          "--interval", "0.1", "--duration", "1.5", "--prefix", "SIMAL",
                          "--alarm-every", "3", "--create", str(server.conf),
                          "--json", str(figures)],
        env=server.env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, (result.stdout, result.stderr)
    data = json.loads(figures.read_text())
    assert data["alarm_every"] == 3 and data["errors"] == {}
    assert "alarms raised and answered OK: %d" % data["alarms_ok"] in result.stdout
    stored = server.query("SELECT u.code, a.level, a.data, a.meter_ts FROM alarms a"
                          " JOIN units u ON u.id = a.unit_id WHERE u.code LIKE 'SIMAL%'")
    assert len(stored) == data["alarms_ok"] >= 3
    assert all(level == 1 and json.loads(items)[1].startswith("simulated alarm ")
               and meter_ts is not None for _, level, items, meter_ts in stored)
    samples = server.query("SELECT count(*) FROM samples s JOIN units u ON u.id = s.unit_id"
                           " WHERE u.code LIKE 'SIMAL%'")[0][0]
    assert samples == data["samples_ok"] and data["ok"] == data["alarms_ok"] + samples
    # Each meter's every third answered request was an alarm.
    assert data["alarms_ok"] in range(data["ok"] // 3 - 3, data["ok"] // 3 + 4)
