"""Site TTP apps reacting to other units' uploads, against the real server
over real sockets (docs/protocol.md, "Reacting to other units' uploads"):
the example examples/TTPApps/watch.py loaded from a TTPApps folder as a
site would; a subscriber that fails on every event, logged once, its
writes undone, while the server and the other subscribers go on; an app
whose start fails stops the start, named."""

import json
import subprocess
import sys
import time

from conftest import ROOT

FAILING_APP = '''"""flaky: one subscriber failing on every upload, one counting (TTP /flaky/<unit> <key>)."""
from texmate_ds import alarms, ttp

calls = {"failing": 0, "counting": 0}


def start(server):
    server.subscribe(["sample"], lambda event: failing(server, event))
    server.subscribe(["sample"], counting)


def failing(server, event):
    calls["failing"] += 1
    unit = server.store.units.get(event.data["unit"])
    alarms.raise_alarm(server.store, unit, 9, ["written, then undone"])
    raise RuntimeError("flaky fails on sample %d" % event.data["id"])


def counting(event):
    calls["counting"] += 1


class Calls(ttp.Answer):
    def __init__(self, server, request, unit, key):
        super().__init__("OK %(failing)d %(counting)d\\r" % calls)


Extension = {"code": "flaky", "producer": Calls, "start": start}
'''

BROKEN_START_APP = '''"""broken: its start fails."""
from texmate_ds import ttp


def start(server):
    server.subscribe(["uploads"], print)


Extension = {"code": "broken", "producer": ttp.Answer, "start": start}
'''


def site_app(server_factory, name, source, *units):
    """A server (not started) with TTPApps/NAME.py turned on and `units`
    (code, key, fields) added."""
    srv = server_factory("[ttpapps]\n%s: on\n" % name, start=False)
    (srv.dir / "TTPApps").mkdir()
    (srv.dir / "TTPApps" / (name + ".py")).write_text(source)
    for code, key, fields in units:
        srv.add_unit(code, key, fields)
    return srv


def eventually(srv, line, answer, seconds=5):
    """Ask `line` until it answers `answer`: the app reacts at the end of
    the loop turn that committed the upload, and its writes commit with the
    next turn."""
    deadline = time.monotonic() + seconds
    while True:
        got = srv.ask(line)
        if got == answer or time.monotonic() > deadline:
            return got
        time.sleep(0.02)


def alarms_of(srv, code):
    return [(level, json.loads(data)) for level, data in srv.query(
        "SELECT level, data FROM alarms JOIN units ON units.id = unit_id WHERE code = ?"
        " ORDER BY alarms.id", (code,))]


def wait_for_alarms(srv, code, count, seconds=5):
    deadline = time.monotonic() + seconds
    while len(alarms_of(srv, code)) < count and time.monotonic() < deadline:
        time.sleep(0.02)
    return alarms_of(srv, code)


def test_the_watch_example_reacts_to_another_units_upload(server_factory):
    srv = site_app(server_factory, "watch", (ROOT / "examples" / "TTPApps" / "watch.py").read_text(),
                   ("A1", "k1", 2), ("B7", "k7", 1))
    srv.start()
    assert "TTP app watch: /watch/ (%s)" % (srv.dir / "TTPApps" / "watch.py") in srv.errors()
    assert srv.ask("TTP /watch/B7/A1 k7") == "OK 0"
    assert srv.ask("TTP /watch/B7/B7 k7") == "404 Data not found"  # not watched
    assert srv.ask("TTP /watch/B7/A1 nope") == "402 Unauthorized"
    assert srv.ask("TTP /up/A1/<2024-3-1 8:00:00;99.5;1000> k1") == "OK"  # L2 is not watched
    assert srv.ask("TTP /up/A1/<2024-3-1 8:01:00;150;0> k1") == "OK"
    assert eventually(srv, "TTP /watch/B7/A1 k7", "OK 1") == "OK 1"
    assert wait_for_alarms(srv, "A1", 1) == [(50, ["L1 is 150", "over the limit of 100"])]
    # Over still: no second alarm. Under, then over again: a new one.
    assert srv.ask("TTP /up/A1/<2024-3-1 8:02:00;170;0> k1") == "OK"
    assert srv.ask("TTP /up/A1/<2024-3-1 8:03:00;20;0> k1") == "OK"
    assert eventually(srv, "TTP /watch/B7/A1 k7", "OK 0") == "OK 0"
    assert srv.ask("TTP /up/A1/<2024-3-1 8:04:00;101;0> k1") == "OK"
    assert eventually(srv, "TTP /watch/B7/A1 k7", "OK 1") == "OK 1"
    assert [a[1][0] for a in wait_for_alarms(srv, "A1", 2)] == ["L1 is 150", "L1 is 101"]
    assert srv.stop() == 0
    # Restarted, it starts from the newest sample stored: over, with no new alarm.
    srv.start()
    assert srv.ask("TTP /watch/B7/A1 k7") == "OK 1"
    assert len(alarms_of(srv, "A1")) == 2
    assert "Traceback" not in srv.errors()
    assert srv.stop() == 0


def test_a_failing_subscriber_is_logged_and_the_server_and_the_others_go_on(server_factory):
    srv = site_app(server_factory, "flaky", FAILING_APP, ("A1", "k1", 1))
    srv.start()
    assert srv.ask("TTP /up/A1/<2024-3-1 8:00:00;1> k1") == "OK"
    assert srv.ask("TTP /up/A1/<2024-3-1 8:01:00;2> k1") == "OK"
    # The failing one is still called, and the other one too.
    assert eventually(srv, "TTP /flaky/A1 k1", "OK 2 2") == "OK 2 2"
    assert srv.ask("TTP /ok/A1 k1") == "OK"
    assert srv.ask("TTP /dl/A1/last k1") == "OK <2 2024-03-01 08:01:00 L1=2>"
    errors = srv.errors()
    # One failure a minute is logged, with its traceback; the next is counted.
    assert errors.count("failed on the sample event") == 1, errors
    assert "TTP app subscriber _txm_ttpapp_flaky.start.<locals>.<lambda> failed on the sample " \
           "event 1 of unit A1, its writes undone" in errors
    assert "Traceback" in errors and "RuntimeError: flaky fails on sample 1" in errors
    assert alarms_of(srv, "A1") == []  # what it wrote before raising was undone
    assert srv.stop() == 0


def test_an_app_whose_start_fails_stops_the_start_named(server_factory):
    srv = site_app(server_factory, "broken", BROKEN_START_APP)
    result = subprocess.run([sys.executable, "-m", "texmate_ds", "--config", str(srv.conf),
                             "serve"], cwd=srv.dir, env=srv.env, capture_output=True, text=True,
                            timeout=30, stdin=subprocess.DEVNULL)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert ("cannot start: TTP app broken (%s) failed to start: ValueError: no event topic "
            "'uploads'" % (srv.dir / "TTPApps" / "broken.py")) in result.stderr
    assert "Traceback" in result.stderr  # the log says where
    assert "listening" not in result.stdout and "ready" not in result.stdout



SURFACE_APP = '''"""surface: what an app sees of the server (TTP /surface/<unit> <key>)."""
from texmate_ds import ttp

later = []


def start(server):
    # A timer that fails is logged and the one after it still runs.
    server.call_later(0.01, lambda: 1 / 0)
    server.call_later(0.05, lambda: later.append(server.log.name))


class Surface(ttp.Answer):
    def __init__(self, server, request, unit, key):
        server.authenticate(unit, key)
        names = sorted(n for n in dir(server) if not n.startswith("_"))
        unit = server.models.Unit.objects.get(code=unit)
        server.bytes_out.value += 1
        error = server.ERROR_MESSAGE % {"code": 404, "message": server.responses[404]}
        super().__init__("OK %s %s %s %s" % (",".join(names), ",".join(later), unit.code, error))


Extension = {"code": "surface", "producer": Surface, "start": start}
'''


def test_an_app_sees_the_documented_server_and_nothing_more(server_factory):
    """``server`` is the documented surface (docs/apps.md): the answer
    texts, bytes_out, the models, settings, store, events and subscribe,
    after_commit, a logger and call_later (whose failing timer is logged
    and harms nothing), authenticate; not the TTP server's channels,
    counters, loop or group commit."""
    srv = site_app(server_factory, "surface", SURFACE_APP, ("A1", "k1", 1))
    srv.start()
    try:
        deadline = time.monotonic() + 10
        while True:   # until the later timer ran
            answer = srv.ask("TTP /surface/A1 k1")
            if "texmate_ds.apps" in answer or time.monotonic() > deadline:
                break
            time.sleep(0.02)
        assert answer.startswith("OK "), (answer, srv.errors()[-3000:])
        names, later, code, error = answer.split(" ", 4)[1:5]
        assert names.split(",") == sorted([
            "ERROR_MESSAGE", "after_commit", "authenticate", "bytes_out", "call_later",
            "events", "log", "models", "responses", "settings", "store", "subscribe"])
        assert (later, code, error) == ("texmate_ds.apps", "A1", "404 Data not found")
        assert srv.ask("TTP /surface/A1 wrong") == "402 Unauthorized"
    finally:
        assert srv.stop() == 0
    assert "ZeroDivisionError" in srv.errors()
