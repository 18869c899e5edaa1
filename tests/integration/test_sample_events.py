"""``sample`` events are published after the commit, never before and never
for a commit that failed; a failing after_commit callback (such as a
publisher) keeps no other upload's answer held.

The real server runs in a process of its own, where no test can subscribe,
so this runs its parts in-process: a real Database (on each engine), the
GroupCommit on a real Loop turned by the test, the bundled apps, the relay
(which on PostgreSQL publishes every commit's events, the loop's own too,
as it hears the commit's notice), and a meter's uploads through a real
TTPChannel over a socket pair. A second connection to the database tells
what was committed when each event came.
"""

import socket

import pytest

from texmate_ds import config, events, loop, plugins, relay, store, times, ttp

from conftest import database_settings, spoil_commit


class Spoiler(ttp.Answer):
    """A test app leaving a row in the transaction that its COMMIT refuses
    (`conftest.spoil_commit`): the commit of the whole group fails, as a
    full disk makes it fail."""

    def __init__(self, server, request, unit, key):
        spoil_commit(server.store)
        super().__init__("OK\r")


class Site:
    """The server's parts on a database of `engine` (the SQLite file
    `path`), one meter connected (`meter`)."""

    def __init__(self, engine, path, commit_interval):
        settings = config.Settings(COMMIT_INTERVAL=commit_interval,
                                   **database_settings(engine, path))
        self.store = store.Database(store.address(settings), durable=commit_interval == 1)
        self.store.migrate()
        self.unit = self.store.units.add("A1", "k1", 2)
        self.store.units.add("B7", "k7", 1)
        self.store.commit()
        self.loop = loop.Loop()
        self.commits = store.GroupCommit(self.store, self.loop, commit_interval, 50)
        self.commits.start()
        self.bus = events.Bus()
        self.relay = relay.Relay(self.loop, self.store, self.bus)
        self.relay.start()
        extensions = plugins.load_ttp_apps(settings)
        extensions["zz"] = plugins.Extension(plugins.AppInfo("zz", False, None, True), "zz",
                                             Spoiler, None, None)
        self.server = ttp.TTPServer(settings, self.store, self.commits, self.bus, extensions,
                                    self.loop)
        ours, self.meter = socket.socketpair()
        self.meter.settimeout(5)
        ttp.TTPChannel(self.server, self.loop, ours, ("meter", 1))
        self.other = store.Database(store.address(settings))
        self.events = []
        self.committed_then = []
        self.subscription = self.bus.subscribe(["sample"], {"A1"}, size=100, wake=self._woken)

    def _woken(self):
        # What another connection sees as each batch of events arrives.
        self.committed_then.append(self.other.execute("SELECT count(*) FROM samples").fetchone()[0])

    def send(self, *lines):
        self.meter.sendall(b"".join(line.encode() + b"\r" for line in lines))

    def answers(self, count):
        got = b""
        for _ in range(300):
            if got.count(b"\r") >= count:
                return got.decode().split("\r")[:count]
            self.loop._turn(0.01)
            self.meter.setblocking(False)
            try:
                got += self.meter.recv(65536)
            except BlockingIOError:
                pass
        raise AssertionError("%d answers expected, got %r" % (count, got))

    def turn(self, n=3):
        for _ in range(n):
            self.loop._turn(0.01)

    def published(self):
        """The events published over a few turns of the loop, or as many as
        it takes the first to come (on PostgreSQL, once the relay hears
        the commit's notice), 300 at most."""
        self.turn()
        for _ in range(300):
            if len(self.subscription) or not self.store.events_relayed:
                break
            self.loop._turn(0.01)
        taken = self.subscription.take()
        self.events += taken
        return [event.data for event in taken]

    def close(self):
        self.relay.stop()
        self.other.close()
        self.meter.close()
        for channel in list(self.loop.channels):
            channel.close()
        self.loop.selector.close()
        self.store.close()


@pytest.fixture
def site(tmp_path, engine):
    made = []

    def make(commit_interval=1):
        made.append(Site(engine, tmp_path / "data.db", commit_interval))
        return made[-1]
    yield make
    for each in made:
        each.close()


def stored(site, ts):
    return site.other.execute("SELECT id FROM samples WHERE ts = ?", (times.parse(ts),)).fetchone()[0]


def test_samples_are_published_once_committed_with_their_stored_ids(site):
    s = site()
    s.send("TTP /up/A1/<2009-1-16 15:30:45;11;22> k1",
           "TTP /up/A1/<2009-1-16 15:30:46;12;-0><2009-1-16 15:30:45;1;1><2009-1-16 15:30:47;13;24> k1",
           "TTP /up/B7/<2009-1-16 15:30:45;5> k7")
    assert s.answers(3) == ["OK", "406 Duplicate sample 2<2009-1-16 15:30:45>", "OK"]
    assert s.published() == [
        {"unit": "A1", "id": stored(s, "2009-1-16 15:30:45"),
         "timestamp": times.parse("2009-1-16 15:30:45"), "values": (11.0, 22.0)},
        {"unit": "A1", "id": stored(s, "2009-1-16 15:30:46"),
         "timestamp": times.parse("2009-1-16 15:30:46"), "values": (12.0, 0.0)},
        {"unit": "A1", "id": stored(s, "2009-1-16 15:30:47"),
         "timestamp": times.parse("2009-1-16 15:30:47"), "values": (13.0, 24.0)},
    ]   # as stored (-0 reads back 0), the duplicate left out, B7 not asked for
    assert s.committed_then == [4]   # every sample of the batch was on disk


def test_a_failed_commit_publishes_nothing_and_the_retry_does(site, caplog):
    s = site()
    s.send("TTP /zz/A1 k1", "TTP /up/A1/<2009-1-16 15:30:45;11;22> k1")
    assert s.answers(2) == ["500 Internal error", "500 Internal error"]
    assert "commit failed, 1 uploads rolled back" in caplog.text
    assert s.published() == [] and s.committed_then == []
    assert s.other.execute("SELECT count(*) FROM samples").fetchone()[0] == 0
    s.send("TTP /up/A1/<2009-1-16 15:30:45;11;22> k1")
    assert s.answers(1) == ["OK"]
    assert [event["id"] for event in s.published()] == [stored(s, "2009-1-16 15:30:45")]


def test_with_commit_interval_n_the_ok_comes_first_and_the_event_with_the_commit(site):
    s = site(commit_interval=100)
    s.send("TTP /up/A1/<2009-1-16 15:30:45;11;22> k1")
    assert s.answers(1) == ["OK"]
    assert s.subscription.take() == []   # answered, not yet committed
    assert s.other.execute("SELECT count(*) FROM samples").fetchone()[0] == 0
    s.turn(20)   # COMMIT_DELAY (50 ms) passes
    assert [event["unit"] for event in s.published()] == ["A1"]
    assert s.committed_then == [1]


def test_an_upload_nobody_listens_to_waits_for_its_commit_as_before(site):
    s = site()
    s.subscription.close()
    others = s.bus.subscribe(["sample"], {"B7"}, size=1)
    s.send("TTP /up/A1/<2009-1-16 15:30:45;11;22> k1")
    s.loop._turn(0.05)   # read and dispatched, not yet committed
    assert len(s.commits._waiting) == 1   # its held answer's release, nothing more
    assert s.answers(1) == ["OK"]
    assert others.take() == []


def test_an_after_commit_callback_that_fails_holds_up_no_other(site, caplog):
    s = site()

    def broken(committed):
        raise RuntimeError("a follower broke")
    s.send("TTP /up/A1/<2009-1-16 15:30:45;11;22> k1")
    s.loop._turn(0.05)   # the upload is in the open transaction
    s.commits.after_commit(broken)
    s.send("TTP /up/A1/<2009-1-16 15:30:46;11;22> k1")
    assert s.answers(2) == ["OK", "OK"]
    assert len(s.published()) == 2
    assert "an after_commit callback failed" in caplog.text and "a follower broke" in caplog.text
