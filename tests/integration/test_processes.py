"""Two server processes on one PostgreSQL database keep every promise one
process keeps (docs/architecture.md, "Several processes on PostgreSQL"),
each reached at its own ports: events uploaded through one reach the
other's streams and TTP apps; unit changes made on one take effect on the
other; any process takes any session cookie and CSRF token; sign-in
throttles count across processes; ``dl next`` of one reader through both
at once sends each sample once, and misses none that committed after a
later one was stored; each outbox letter is sent once; one
silent-meter alarm for a silent unit.

Several processes share a database on PostgreSQL only: on SQLite (one
process) every test here skips, saying so. Waiting for another process
polls with a deadline; nothing asserts how long anything took.
"""

import json
import threading
import time

import pytest
import test_admin
from test_events_stream import Stream

from texmate_ds import times

from conftest import Browser, child_env, read_answers
from smtp_sink import SMTPSink, parsed

KEY = "k1"
PASSWORD = "a long password"

HEARD_APP = '''"""heard: what this process's bus published (TTP /heard/<unit> <key>)."""
from texmate_ds import ttp

heard = []


def start(server):
    server.subscribe(["sample", "alarm"], heard.append)


class Heard(ttp.Answer):
    def __init__(self, server, request, unit, key):
        server.authenticate(unit, key)
        super().__init__("OK%s\\r" % "".join(
            " %s:%s:%d" % (e.topic, e.data["unit"], e.data["id"]) for e in heard))


Extension = {"code": "heard", "producer": Heard, "start": start}
'''


@pytest.fixture
def pair(server_factory, engine):
    """make(extra="") -> (a, b): two started servers on one new database,
    b with the TTP app ``heard``; units A1 (2 fields), B7 (1) and M (1),
    all of key KEY; the Administrator's password PASSWORD and an API token
    of theirs (``a.token``)."""
    if engine != "postgresql":
        pytest.skip("several processes share a database on PostgreSQL only "
                    "(SQLite: one process)")

    def make(extra=""):
        a = server_factory(extra, start=False, name="a")
        for code, fields in (("A1", 2), ("B7", 1), ("M", 1)):
            a.add_unit(code, KEY, fields)
        env = dict(child_env(), TXM_PASSWORD=PASSWORD)
        a.manage("changepassword", "Administrator", "--noinput", env=env)
        a.token = a.manage("addtoken", "Administrator", "--name", "t").stdout.strip()
        a.start()
        b = server_factory(extra + "[ttpapps]\nheard: on\n", start=False, name="b",
                           conf=a.database_conf())
        (b.dir / "TTPApps").mkdir()
        (b.dir / "TTPApps" / "heard.py").write_text(HEARD_APP)
        b.start()
        return a, b
    return make


def wait_for(what, timeout=15):
    deadline = time.monotonic() + timeout
    while True:
        found = what()
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def sample_of(event):
    return json.loads(event["data"])


def heard_by(b, a, stream, second):
    """Upload a sample of M through `a` at `second` and wait for `stream`
    (on `b`, watching M) to get it: then `b` has heard of everything `a`
    committed before, notifications coming in commit order."""
    assert a.ask("TTP /up/M/<2024-05-01 00:00:%02d;%d> %s" % (second, second, KEY)) == "OK"
    assert sample_of(stream.event())["timestamp"] == "2024-05-01 00:00:%02d" % second


# -- events ---------------------------------------------------------------------------

def test_samples_and_alarms_of_one_process_reach_the_streams_and_apps_of_the_other(pair):
    a, b = pair()
    stream = Stream(b, "/events?units=A1", a.token)
    try:
        assert stream.status == 200
        assert a.ask("TTP /up/B7/<2024-03-01 00:00:00;5> %s" % KEY) == "OK"      # not watched
        assert a.ask("TTP /up/A1/<2024-03-01 00:00:01;1.5;2><2024-03-01 00:00:02;3;4> %s"
                     % KEY) == "OK"
        first, second = stream.event(), stream.event()
        assert first["event"] == second["event"] == "sample"
        assert sample_of(first) == {"unit": "A1", "id": int(first["id"]),
                                    "timestamp": "2024-03-01 00:00:01", "values": [1.5, 2.0]}
        assert sample_of(second)["values"] == [3.0, 4.0]
        assert a.ask("TTP /al/A1/2/<2024-03-01 00:00:03;high> %s" % KEY) == "OK"
        alarm = stream.event()
        assert alarm["event"] == "alarm" and alarm["id"].startswith("a")
        assert json.loads(alarm["data"])["data"] == ["2024-03-01 00:00:03", "high"]
        # Its own uploads b publishes once, as its relay hears their commit.
        assert b.ask("TTP /up/A1/<2024-03-01 00:00:04;5;6> %s" % KEY) == "OK"
        assert a.ask("TTP /up/A1/<2024-03-01 00:00:05;7;8> %s" % KEY) == "OK"
        assert [sample_of(stream.event())["timestamp"] for _ in range(2)] == [
            "2024-03-01 00:00:04", "2024-03-01 00:00:05"]
    finally:
        stream.close()
    # The TTP app on b heard them all, each once, b's own among them.
    heard = wait_for(lambda: heard_on(b, 6))
    assert heard[1:4] == ["sample:A1:" + first["id"], "sample:A1:" + second["id"],
                          "alarm:A1:" + alarm["id"][1:]]
    assert heard[0].startswith("sample:B7:") and len(set(heard)) == 6


def heard_on(b, count):
    """What the app ``heard`` on `b` says its bus published, once it is
    `count` events."""
    heard = b.ask("TTP /heard/M %s" % KEY).split()[1:]
    return heard if len(heard) >= count else None


def test_a_stream_resumes_on_one_process_from_what_the_other_stored(pair):
    a, b = pair()
    stream = Stream(b, "/events?units=A1", a.token)
    assert a.ask("TTP /up/A1/<2024-03-02 00:00:01;1;1> %s" % KEY) == "OK"
    seen = stream.event()["id"]
    stream.close()
    for second in (2, 3):
        assert a.ask("TTP /up/A1/<2024-03-02 00:00:%02d;%d;1> %s" % (second, second, KEY)) \
            == "OK"
    again = Stream(b, "/events?units=A1", a.token, last_event_id=seen)
    try:
        missed = [sample_of(again.event())["timestamp"] for _ in range(2)]
        assert missed == ["2024-03-02 00:00:02", "2024-03-02 00:00:03"]
        assert a.ask("TTP /up/A1/<2024-03-02 00:00:04;4;1> %s" % KEY) == "OK"
        assert sample_of(again.event())["timestamp"] == "2024-03-02 00:00:04"
    finally:
        again.close()


def stored_sample(store, unit, second):
    store.samples.add(unit, [(times.parse("2024-03-06 00:00:%02d" % second), (1.0,))])


def up_request(code, second):
    values = "2;2" if code == "A1" else "2"
    return "TTP /up/%s/<2024-03-06 00:00:%02d;%s> %s" % (code, second, values, KEY)


def stored_alarm(store, unit, second):
    store.alarms.add(unit, 2, ["2024-03-06 00:00:%02d" % second, "high"])


def al_request(code, second):
    return "TTP /al/%s/2/<2024-03-06 00:00:%02d;high> %s" % (code, second, KEY)


# How the test's own transaction stores one of a unit at a second, and the
# TTP request through ``a`` that does.
HELD = {"sample": (stored_sample, up_request), "alarm": (stored_alarm, al_request)}


@pytest.mark.parametrize("topic", sorted(HELD))
def test_streams_get_the_events_of_two_units_in_id_order_though_the_later_waits(pair, topic):
    """A transaction (a connection of the test's, through the store) has
    stored a sample (an alarm) of B7 and not committed yet when ``a``
    stores one of A1: the later one waits for the first one's commit, so
    ids commit in their order, and a stream watching both units gets the
    two in id order on either process, ``a``'s own not overtaking the
    other commit it waited for. So the Last-Event-ID of the first is an
    exact place to resume from: the other one comes next, and nothing
    else."""
    store_held, request = HELD[topic]
    a, b = pair()
    streams = [Stream(srv, "/events?units=A1,B7", a.token) for srv in (a, b)]
    turn = a.database()
    try:
        store_held(turn, turn.units.get("B7"), 1)
        later = []
        upload = threading.Thread(target=lambda: later.append(a.ask(request("A1", 2))))
        upload.start()
        wait_for(lambda: later, timeout=2)     # answered at once if nothing holds it back
        turn.commit()
    finally:
        turn.close()
    upload.join(30)
    assert later == ["OK"]
    firsts = []
    try:
        for stream in streams:
            got = [stream.event(), stream.event()]
            assert [(e["event"], sample_of(e)["unit"]) for e in got] == [
                (topic, "B7"), (topic, "A1")]
            assert sample_of(got[0])["id"] < sample_of(got[1])["id"]
            firsts.append(got)
    finally:
        for stream in streams:
            stream.close()
    # Each resumes on the other process.
    streams = [Stream(srv, "/events?units=A1,B7", a.token, last_event_id=got[0]["id"])
               for srv, got in ((b, firsts[0]), (a, firsts[1]))]
    try:
        assert [stream.event()["id"] for stream in streams] == [firsts[0][1]["id"]] * 2
        assert a.ask(request("B7", 3)) == "OK"
        for stream in streams:
            assert sample_of(stream.event())["unit"] == "B7"
    finally:
        for stream in streams:
            stream.close()


# -- caches ---------------------------------------------------------------------------

def test_unit_changes_on_one_process_take_effect_on_the_other(pair):
    a, b = pair()
    marker = Stream(b, "/events?units=M", a.token)
    try:
        assert b.ask("TTP /up/A1/<2024-03-03 00:00:01;1;1> %s" % KEY) == "OK"   # cached on b
        admin = Browser(a.http_port)
        assert admin.sign_in("Administrator", PASSWORD).status == 303
        page = "/admin/units/A1/change/"
        answer = admin.post(page, [("csrf_token", admin.csrf(page))]
                            + test_admin.unit_form(key=KEY, name="Pump", enabled=None))
        assert answer.status == 303
        assert a.ask("TTP /up/A1/<2024-03-03 00:00:02;1;1> %s" % KEY) == "403 Forbidden"
        heard_by(b, a, marker, 1)
        assert b.ask("TTP /up/A1/<2024-03-03 00:00:03;1;1> %s" % KEY) == "403 Forbidden"

        assert b.ask("TTP /up/B7/<2024-03-03 00:00:01;1> %s" % KEY) == "OK"
        a.manage("changeunit", "B7", "--key", "new-key", "--name", "Tank")
        heard_by(b, a, marker, 2)
        assert b.ask("TTP /up/B7/<2024-03-03 00:00:02;1> %s" % KEY) == "402 Unauthorized"
        assert b.ask("TTP /up/B7/<2024-03-03 00:00:03;1> new-key") == "OK"
        # The unit page b makes (partly on a worker thread) names it anew.
        admin.port = b.http_port
        page = admin.get("/units/B7/")
        assert page.status == 200 and "Tank" in page.body
    finally:
        marker.close()


def settled(srv):
    """Return once what `srv` answered so far is committed. A web answer
    goes out just before the commit of the loop turn that made it (which
    a second process may not see yet); a request after it is served after
    that commit."""
    assert Browser(srv.http_port).get("/healthz").status == 200


# -- sessions, CSRF, throttles --------------------------------------------------------

def test_any_process_takes_any_session_cookie_and_csrf_token(pair):
    a, b = pair()
    browser = Browser(a.http_port)
    token = browser.csrf("/login/")         # the sign-in form, served by a
    browser.port = b.http_port              # sent to b, with a's txm_csrf cookie
    answer = browser.post("/login/", {"username": "Administrator", "password": PASSWORD,
                                      "next": "/", "csrf_token": token})
    assert answer.status == 303, answer.body
    settled(b)
    browser.port = a.http_port              # b's session cookie on a
    assert browser.get("/").status == 200
    token = browser.csrf("/password/")
    browser.port = b.http_port              # a's form, posted to b
    assert browser.post("/logout/", {"csrf_token": token}).status == 303
    settled(b)
    browser.port = a.http_port              # signed out everywhere
    assert browser.get("/").status in (302, 303)


def test_failed_sign_ins_on_one_process_count_on_the_other(pair):
    a, b = pair()
    for _ in range(5):
        answer = Browser(a.http_port).sign_in("Administrator", "wrong")
        assert answer.status == 403 and "wrong username or password" in answer.body
    refused = Browser(b.http_port).sign_in("Administrator", PASSWORD)
    assert refused.status == 429 and refused.header("Retry-After")
    assert "too many failed sign-ins" in refused.body


# -- dl next ----------------------------------------------------------------------------

def test_one_reader_through_both_processes_at_once_gets_each_sample_once(pair):
    a, b = pair()
    a.add_unit("RD", KEY, 1, "--reads", "A1")
    total = 60
    uploaded = []
    got = {"a": [], "b": []}
    done = threading.Event()
    failures = []

    def upload():
        try:
            for n in range(total):
                srv = (a, b)[n % 2]
                line = "TTP /up/A1/<2024-03-04 00:%02d:%02d;%d;0> %s" % (n // 60, n % 60, n, KEY)
                assert srv.ask(line) == "OK"
                uploaded.append(n)
        except Exception as exc:
            failures.append(exc)
        finally:
            done.set()

    def read(name, first):
        """dl next through a, b, a, ... (or b, a, ...), on a connection to each."""
        socks = [srv.connect() for srv in ((a, b) if first == "a" else (b, a))]
        try:
            deadline = time.monotonic() + 60
            n = 0
            while time.monotonic() < deadline:
                sock = socks[n % 2]
                n += 1
                sock.sendall(("TTP /dl/RD/next/A1 %s\r" % KEY).encode())
                [answer] = read_answers(sock, 1)
                if answer.startswith("OK <"):
                    got[name].append(int(answer[4:].split()[0]))
                elif answer != "404 Data not found":
                    raise AssertionError(answer)
                elif done.is_set() and len(got["a"]) + len(got["b"]) >= len(uploaded):
                    return
        except Exception as exc:
            failures.append(exc)
        finally:
            for sock in socks:
                sock.close()

    threads = [threading.Thread(target=upload)] + [
        threading.Thread(target=read, args=(name, name)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(90)
    assert not failures and not any(t.is_alive() for t in threads)
    delivered = got["a"] + got["b"]
    assert len(delivered) == len(set(delivered)) == total     # none twice, none missing
    assert got["a"] and got["b"]                              # both took their share
    db = a.database()
    try:
        stored = [row[0] for row in db.all(
            "SELECT s.id FROM samples s JOIN units u ON u.id = s.unit_id WHERE u.code = 'A1'")]
    finally:
        db.close()
    assert sorted(delivered) == sorted(stored)
    assert a.ask("TTP /dl/RD/next/A1 %s" % KEY) == b.ask("TTP /dl/RD/next/A1 %s" % KEY) \
        == "404 Data not found"


def test_a_sample_stored_first_reaches_the_reader_though_a_later_one_commits_first(pair):
    """One process's turn has stored a sample of a unit and not committed
    yet (here a connection of the test's, through the store, holds it
    open) when another process stores a later one: the later one cannot
    commit, nor reach a reader, before the first, or the reader's cursor
    would pass over the first for good."""
    a, b = pair()
    a.add_unit("RD", KEY, 1, "--reads", "B7")
    turn = a.database()
    try:
        unit = turn.units.get("B7")
        assert turn.samples.add(unit, [(times.parse("2024-03-05 00:00:01"), (1.0,))]) == []
        later = []
        upload = threading.Thread(target=lambda: later.append(
            a.ask("TTP /up/B7/<2024-03-05 00:00:02;2> %s" % KEY)))
        upload.start()
        wait_for(lambda: later, timeout=2)     # answered at once if nothing holds it back
        # The read waits too (a cursor is taken after the lock that orders
        # samples' ids, Samples.cursor), so it is asked from a thread.
        meanwhile = []
        read = threading.Thread(target=lambda: meanwhile.append(
            b.ask("TTP /dl/RD/next/B7 %s" % KEY)))
        read.start()
        wait_for(lambda: meanwhile, timeout=1)
        turn.commit()
    finally:
        turn.close()
    upload.join(30)
    read.join(30)
    assert later == ["OK"]
    [read_meanwhile] = meanwhile
    got = [read_meanwhile] if read_meanwhile.startswith("OK") else []
    while len(got) < 3:
        got.append(b.ask("TTP /dl/RD/next/B7 %s" % KEY))
        if not got[-1].startswith("OK"):
            break
    assert [answer.partition(" L1=")[2] or answer for answer in got] == [
        "1>", "2>", "404 Data not found"]


# -- mail and the silent-meter sweep ------------------------------------------------------

def email_conf(port):
    return "[email]\nEMAIL_HOST: 127.0.0.1\nEMAIL_PORT: %d\n" % port


def on_mailing_list(srv, code):
    db = srv.database()
    try:
        unit = db.units.get(code)
        user = db.accounts.add_user(code + "-ops", "x", email="ops@example.org")
        db.alarms.set_mailing_list(unit, [user.id])
        db.commit()
        return unit
    finally:
        db.close()


def letters(srv):
    db = srv.database()
    try:
        return db.outbox.find(limit=10000)
    finally:
        db.close()


def test_each_letter_is_sent_by_one_process(pair):
    with SMTPSink() as sink:
        a, b = pair(email_conf(sink.port))
        on_mailing_list(a, "A1")
        count = 24
        for n in range(count):
            srv = (a, b)[n % 2]
            assert srv.ask("TTP /al/A1/1/<n%d> %s" % (n, KEY)) == "OK"
        sink.wait_for(count)
        assert wait_for(lambda: all(letter.state == "sent" for letter in letters(a)))
        # A look of each mail service later, still one message a letter.
        time.sleep(2.5)
        sent = letters(a)
        assert len(sent) == count and {letter.attempts for letter in sent} == {1}
        ids = [parsed(message)["Message-ID"] for message in sink.messages]
        assert len(ids) == len(set(ids)) == count


def test_a_silent_unit_gets_one_alarm_and_one_email_from_two_processes(pair):
    with SMTPSink() as sink:
        a, b = pair("SILENT_CHECK_SECONDS: 1\n" + email_conf(sink.port))
        unit = on_mailing_list(a, "B7")
        db = a.database()
        try:
            db.units.change(unit, silent_minutes=1, silent_level=4)
            db.execute("UPDATE units SET last_received = ? WHERE id = ?",
                       (times.now() - 2 * times.MINUTE, unit.id))
            db.commit()
            # Both processes look while the unit's row is held: the one that
            # took the sweep's lock waits on it, the other passes.
            assert db.one_locked("SELECT id FROM units WHERE id = ?", (unit.id,))
            time.sleep(2.5)
            db.commit()
        finally:
            db.close()
        [message] = sink.wait_for(1)
        assert parsed(message)["Subject"].startswith("Silent meter B7")
        time.sleep(2.5)                         # a look or two more of each: still one
        assert len(sink.messages) == 1
        db = a.database()
        try:
            kinds = db.all("SELECT kind FROM alarms WHERE unit_id = ?", (unit.id,))
        finally:
            db.close()
        assert kinds == [("silent",)]
        assert "unit B7: no data since" in a.errors() + b.errors()
