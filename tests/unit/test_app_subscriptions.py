"""TTPServer.subscribe (ttp.AppSubscription) and the apps' start hook
(plugins.start_ttp_apps), on a real Loop turned by the test, a real event
bus and a real store on a file with its GroupCommit: events reach the
callback on the loop after the publisher returned, in order, by topic and
unit; a failing callback is logged (escaped, throttled), its writes undone,
and neither it nor anyone else loses the subscription; an overflow is
told and the subscription taken again; close stops it at once."""

import logging

import pytest

from texmate_ds import config, events, loop, plugins, store, ttp


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


class Site:
    def __init__(self, path):
        self.store = store.Database(str(path))
        self.store.migrate()
        self.unit = self.store.units.add("A1", "k", 1)
        self.store.commit()
        self.loop = loop.Loop()
        self.commits = store.GroupCommit(self.store, self.loop, 1, 50)
        self.commits.start()
        self.server = ttp.TTPServer(config.Settings(), self.store, self.commits, events.Bus(),
                                    {}, self.loop)

    def sample(self, id, unit="A1"):
        self.server.events.publish("sample", unit=unit, id=id, timestamp=id, values=(1.0,))

    def turn(self, n=2):
        for _ in range(n):
            self.loop._turn(0)

    def close(self):
        self.store.close()
        self.loop.selector.close()


@pytest.fixture
def site(tmp_path):
    s = Site(tmp_path / "data.db")
    yield s
    s.close()


def ids(got):
    return [(e.topic, e.data["id"]) for e in got]


def test_events_come_on_the_loop_after_the_publisher_in_order_by_topic_and_unit(site):
    got, every = [], []
    site.server.subscribe(["sample"], got.append, units={"A1"})
    site.server.subscribe(["sample", "alarm"], every.append)
    site.sample(1)
    site.sample(2, unit="B7")
    site.server.events.publish("alarm", unit="A1", id=7, kind="meter", level=1, data=(),
                               meter_ts=None, received=0)
    site.sample(3)
    assert got == [] and every == []  # never inside the publisher
    site.turn(1)
    assert ids(got) == [("sample", 1), ("sample", 3)]
    assert ids(every) == [("sample", 1), ("sample", 2), ("alarm", 7), ("sample", 3)]
    site.sample(4)
    site.turn(1)
    assert ids(got)[-1] == ("sample", 4)


def test_a_callback_writes_in_the_shared_transaction_for_the_next_commit(site):
    def write(event):
        site.store.units.add("W%d" % event.data["id"], "k", 1)

    site.server.subscribe(["sample"], write)
    site.sample(1)
    site.turn(1)
    assert site.store.in_transaction
    site.turn(1)  # the group commit of the next turn
    assert not site.store.in_transaction and site.store.units.get("W1") is not None


def test_a_failing_callback_is_logged_escaped_its_writes_undone_and_it_goes_on(site, caplog):
    calls, others = [], []

    def failing(event):
        calls.append(event.data["id"])
        site.store.units.add("X%d" % event.data["id"], "k", 1)
        raise ValueError("bad \x1b[31m value\r\nforged line")

    site.server.subscribe(["sample"], failing)
    site.server.subscribe(["sample"], others.append)
    site.sample(1)
    site.sample(2)
    site.turn()
    assert calls == [1, 2] and ids(others) == [("sample", 1), ("sample", 2)]
    assert site.store.units.get("X1") is None and site.store.units.get("X2") is None
    failures = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(failures) == 1  # the second, in the same minute, is counted only
    text = failures[0].getMessage()
    assert "TTP app subscriber " in text and ".failing failed on the sample event 1 of unit A1" in text
    assert "Traceback" in text and "ValueError: bad \\x1b[31m value\\r" in text
    assert "\x1b" not in text and "\r" not in text
    site.sample(3)
    site.turn()
    assert calls == [1, 2, 3]


def test_failures_are_logged_once_a_minute_with_the_count_held_back(site, caplog):
    clock = Clock()

    def failing(event):
        raise RuntimeError("always")

    ttp.AppSubscription(site.server, ["sample"], failing, None, clock=clock)
    for id in range(1, 5):
        site.sample(id)
        site.turn()
        clock.now += 20
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    # At 1000 s the first; 1020 and 1040 held back; 1060 is a minute on.
    assert len(lines) == 2
    assert "sample event 1 " in lines[0] and "not logged" not in lines[0]
    assert "sample event 4 " in lines[1] and "; 2 more not logged since the last" in lines[1]


def test_an_overflow_is_told_then_the_subscription_goes_on(site, caplog, monkeypatch):
    monkeypatch.setattr(ttp, "SUBSCRIPTION_QUEUE", 3)
    got = []
    site.server.subscribe(["sample"], got.append)
    for id in range(1, 7):  # one turn, more than the queue holds
        site.sample(id)
    site.turn(1)
    # What the queue held, then the news that the rest was missed.
    assert [e.data["id"] for e in got[:-1]] == [1, 2, 3] and got[-1] is events.OVERFLOWED
    assert "missed events: more than 3 in one loop turn (SUBSCRIPTION_QUEUE); subscribed again" \
        in caplog.text
    site.sample(7)
    site.turn(1)
    assert got[-1].data["id"] == 7


def test_close_stops_at_once_even_what_is_queued(site):
    got = []
    sub = site.server.subscribe(["sample"], got.append)
    site.sample(1)
    sub.close()
    sub.close()  # again: harmless
    site.turn()
    assert got == []
    assert not site.server.events.wants("sample", "A1")

    def first_only(event):
        got.append(event)
        mine.close()

    mine = site.server.subscribe(["sample"], first_only)
    site.sample(2)
    site.sample(3)
    site.turn()
    assert ids(got) == [("sample", 2)]


def test_a_topic_not_declared_is_refused_at_once(site):
    with pytest.raises(ValueError, match="no event topic 'samples'"):
        site.server.subscribe(["samples"], print)


def extension(name, start):
    return plugins.Extension(plugins.AppInfo(name, True, None, True), name, None, None, None,
                             start)


def test_apps_start_once_in_code_order_and_a_failing_start_names_its_app(site, caplog):
    started = []

    def starter(name):
        return lambda server: started.append((name, server))

    apps = {"b": extension("b", starter("b")), "a": extension("a", starter("a")),
            "c": extension("c", None)}
    plugins.start_ttp_apps(apps, site.server)
    assert started == [("a", site.server), ("b", site.server)]

    def broken(server):
        raise KeyError("A9")

    with pytest.raises(plugins.AppError,
                       match=r"TTP app z \(bundled\) failed to start: KeyError: 'A9'"):
        plugins.start_ttp_apps({"z": extension("z", broken)}, site.server)
    assert "Traceback" in caplog.text
