"""chores.Chores on a real Loop turned by the test, over a real store on a
file with its GroupCommit: a step per turn, the chores taking turns, each
chunk committed before the next; a failing step dropped alone; the bound;
a stop between two chunks; and run_at_once for servers without the loop.
A second connection to the file tells what was committed when."""

import logging
import sqlite3

import pytest

from texmate_ds import chores, loop, store


class Site:
    """A store with unit A1 holding `samples` samples, its GroupCommit and
    Chores on a Loop; `committed()` counts A1's samples as another
    connection sees them."""

    def __init__(self, path, samples=0, interval=1):
        self.store = store.Database(str(path), durable=interval == 1)
        self.store.migrate()
        self.unit = self.store.units.add("A1", "k", 1)
        if samples:
            self.store.samples.add(self.unit, [(ts, (1.0,)) for ts in range(samples)])
        self.store.commit()
        self.loop = loop.Loop()
        self.commits = store.GroupCommit(self.store, self.loop, interval, 60000)
        self.chores = chores.Chores(self.loop, self.commits)
        for service in (self.commits, self.chores):
            self.loop.add_service(service)
            service.start()
        self.other = sqlite3.connect(str(path))
        self.turn_number = 0

    def committed(self):
        return self.other.execute("SELECT count(*) FROM samples").fetchone()[0]

    def turn(self, n=1):
        for _ in range(n):
            self.turn_number += 1
            self.loop._turn(0.01)

    def close(self):
        self.other.close()
        self.store.close()
        self.loop.selector.close()


@pytest.fixture
def site(tmp_path):
    made = []

    def make(**kw):
        made.append(Site(tmp_path / ("db%d.db" % len(made)), **kw))
        return made[-1]
    yield make
    for one in made:
        one.close()


class Recorder:
    """A step that notes, each time it runs, the test's turn and what
    another connection sees committed, then deletes `chunk` samples."""

    def __init__(self, site, name, chunk, log):
        self.site, self.name, self.chunk, self.log = site, name, chunk, log
        self.deleting = chores.DeleteSamples(site.store, site.unit, chunk=chunk)

    def __call__(self):
        self.log.append((self.name, self.site.turn_number, self.site.committed()))
        return self.deleting()

    @property
    def progress(self):
        return self.deleting.progress


def test_one_step_per_turn_each_chunk_committed_before_the_next(site):
    s = site(samples=25)
    steps, ended = [], []
    a = s.chores.submit("a", Recorder(s, "a", 5, steps), ended.append)
    b = s.chores.submit("b", Recorder(s, "b", 5, steps), ended.append)
    assert s.chores.active() == [a, b]
    s.turn(8)
    # Round robin, one step a turn; each step sees the chunk before it on
    # disk. 25 samples go in five full chunks; the sixth finds none.
    assert steps == [("a", 1, 25), ("b", 2, 20), ("a", 3, 15), ("b", 4, 10),
                     ("a", 5, 5), ("b", 6, 0), ("a", 7, 0)]
    assert ended == [b, a] and a.finished and b.finished
    assert (a.steps, b.steps) == (4, 3)
    assert (a.progress, b.progress) == ("15 deleted", "10 deleted")
    assert s.chores.active() == [] and not s.store.in_transaction


def test_the_uploads_of_a_turn_ride_in_the_chunks_commit(site):
    s = site(samples=10)
    s.chores.submit("a", chores.DeleteSamples(s.store, s.unit, chunk=3))
    s.turn()   # the first chunk
    commits = s.commits.commits
    s.store.samples.add(s.unit, [(100, (1.0,))])   # an upload read in the next turn
    s.loop._run_soon()
    assert s.commits.commits == commits + 1 and not s.store.in_transaction
    assert s.committed() == 10 - 6 + 1


def test_chunks_are_committed_even_when_the_group_commit_would_wait(site):
    s = site(samples=10, interval=100)
    steps = []
    s.chores.submit("a", Recorder(s, "a", 4, steps))
    s.turn(4)
    assert steps == [("a", 1, 10), ("a", 2, 6), ("a", 3, 2)]
    assert s.committed() == 0 and not s.store.in_transaction


def test_select_does_not_sleep_while_a_chore_has_work(site):
    s = site(samples=10)
    timeouts = []
    select = s.loop.selector.select
    s.loop.selector.select = lambda timeout=None: timeouts.append(timeout) or select(timeout)
    s.loop.call_later(60, lambda: None)
    s.chores.submit("a", chores.DeleteSamples(s.store, s.unit, chunk=4))
    for _ in range(3):
        s.loop._turn()   # no timeout given: the loop picks it
    assert timeouts == [0, 0, 0] and s.chores.active() == []


def test_a_failing_step_is_logged_undone_and_dropped_alone(site, caplog):
    s = site(samples=20)
    ended = []
    turns = []

    def broken():
        turns.append(s.turn_number)
        s.store.samples.delete_oldest(s.unit, 5)   # undone with the step
        if len(turns) == 2:
            raise RuntimeError("disk on fire \x1b[31m")
        return False
    bad = s.chores.submit("bad\x1b[2J", broken, ended.append)
    good = s.chores.submit("good", chores.DeleteSamples(s.store, s.unit, chunk=4), ended.append)
    with caplog.at_level(logging.INFO, "texmate_ds.chores"):
        s.turn(9)
    assert turns == [1, 3]
    assert ended == [bad, good] and bad.outcome == "failed" and good.finished
    assert bad.steps == 1
    # The good one deleted what the bad one's first step left (20 - 5); the
    # failed step's deletion was undone, so there was something to find.
    assert good.step.deleted == 15 and s.committed() == 0
    text = caplog.text
    assert "chore bad\\x1b[2J failed in step 2; dropped" in text
    assert "Traceback" in text and "RuntimeError: disk on fire \\x1b[31m" in text
    assert "\x1b" not in text
    assert "chore good finished after 4 step(s) (15 deleted)" in text


def test_a_refused_commit_ends_the_chore_as_failed(site, caplog):
    s = site(samples=5)
    ended = []

    def dangling():
        s.store.samples.delete_oldest(s.unit, 1)
        s.store.execute("PRAGMA defer_foreign_keys = ON")
        s.store.execute("INSERT INTO unit_reads VALUES (?, ?)", (s.unit.id, s.unit.id + 9))
        return False
    chore = s.chores.submit("dangling", dangling, ended.append)
    s.turn(2)
    assert ended == [chore] and chore.outcome == "failed"
    assert s.committed() == 5 and s.chores.active() == []
    assert "commit failed" in caplog.text


def test_done_that_fails_is_logged_and_its_writes_undone(site, caplog):
    s = site(samples=3)

    def done(chore):
        s.store.samples.add(s.unit, [(500, (1.0,))])
        raise ValueError("no log for you")
    s.chores.submit("a", chores.DeleteSamples(s.store, s.unit, chunk=10), done)
    s.turn(2)
    assert s.committed() == 0
    assert "the end of chore a failed" in caplog.text and "no log for you" in caplog.text


def test_more_than_the_bound_is_busy(site):
    s = site()
    for n in range(chores.MAX_CHORES):
        s.chores.submit("c%d" % n, lambda: False)
    with pytest.raises(chores.Busy):
        s.chores.submit("one too many", lambda: False)
    assert issubclass(chores.Busy, loop.Busy) and s.chores.refused == 1
    assert len(s.chores.active()) == chores.MAX_CHORES


def test_a_stop_ends_a_chore_between_chunks_and_keeps_what_went(site):
    s = site(samples=100)
    ended = []
    seen = []
    deleting = chores.DeleteSamples(s.store, s.unit, total=100, chunk=10)

    def step():
        seen.append(s.committed())
        if len(seen) == 3:
            s.loop.stop()   # SIGTERM during the third chunk
        return deleting()
    step.progress = "a closure may say it too"

    def done(chore):
        ended.append((chore.outcome, chore.finished, chore.steps, chore.progress))
        s.store.log.record("test", "delete", "samples", s.unit.id, "A1",
                           message="%d samples (interrupted)" % deleting.deleted)
    s.chores.submit("delete A1", step, done)
    s.loop.turn_hooks.remove(s.commits.turn)   # run() starts the services again
    s.loop.run()   # and stops them as the server does, in reverse
    assert seen == [100, 90, 80]
    assert ended == [("stopped", False, 3, "a closure may say it too")]
    assert deleting.progress == "30 of 100"
    assert s.committed() == 70
    assert s.other.execute("SELECT message FROM action_log").fetchall() == [
        ("30 samples (interrupted)",)]


def test_run_at_once_commits_after_each_step(tmp_path):
    st = store.Database(str(tmp_path / "once.db"))
    st.migrate()
    unit = st.units.add("A1", "k", 1)
    st.samples.add(unit, [(ts, (1.0,)) for ts in range(7)])
    st.commit()
    other = sqlite3.connect(str(tmp_path / "once.db"))
    seen = []
    deleting = chores.DeleteSamples(st, unit, before=6, total=6, chunk=2)

    def step():
        seen.append(other.execute("SELECT count(*) FROM samples").fetchone()[0])
        return deleting()
    ended = []
    chore = chores.run_at_once(st, chores.Chore("a", step, ended.append))
    assert ended == [chore] and chore.finished and chore.steps == 4
    assert seen == [7, 5, 3, 1]
    assert deleting.progress == "6 of 6" and st.samples.count(unit) == 1
    other.close()
    st.close()


def test_cancel_drops_a_chore_only_before_its_first_step(site):
    s = site(samples=10)
    ended = []
    started = s.chores.submit("started", chores.DeleteSamples(s.store, s.unit, chunk=2),
                              ended.append)
    s.turn()
    waiting = s.chores.submit("waiting", lambda: True, ended.append)
    assert not s.chores.cancel(started) and s.chores.cancel(waiting)
    assert not s.chores.cancel(waiting)
    assert s.chores.active() == [started]
    s.turn(10)
    assert ended == [started] and waiting.outcome is None
