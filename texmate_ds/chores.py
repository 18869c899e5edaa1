"""`Chores`: long writes done a chunk per loop turn, between the meters.

Deleting a million samples is one statement that SQLite runs in a second or
two, and on the loop thread that is a second or two in which no meter gets
an answer. So a long write (the admin's "delete all samples of a unit" and
"delete samples older than a date") is a *chore*: a ``step()`` that does one
bounded chunk of writes and returns True once nothing is left, which the
`Chores` service calls once per loop turn until then.

* A step runs at the end of a turn (`loop.Loop.call_soon`), after the
  turn's sockets were served, in a savepoint of the shared transaction
  (`Database.atomic`), so its chunk is all or nothing. The service then
  commits through the `GroupCommit`: the uploads read in that turn ride in
  the same commit (one fsync for both), their held ``OK``s go out, and the
  chunk is on disk before the next one starts, whatever COMMIT_INTERVAL
  says. While a chore is queued ``select()`` does not sleep (a soon call
  is waiting), so the chore goes as fast as the turns do, and a meter's
  answer waits for two chunks at most: the one running as its request
  comes in, and the one its commit shares. How much a chunk holds is the
  step's business; `DeleteSamples` takes `DELETE_CHUNK` samples, a size
  chosen by measurement (bench/deleteold.py).
* One step per turn in all, the chores taking turns (round robin): the
  loop's cost per turn is one chunk however many are queued, and a small
  deletion queued behind a million-sample one finishes in a few turns
  rather than after it. At most `MAX_CHORES` are queued, the running ones
  included; `submit` raises `Busy` beyond that (the web answers 503).
* A step that raises is logged with its traceback (escaped: a chore's name
  and messages may quote what a client sent), its chunk is undone, and
  that chore alone is dropped; the others go on. KeyboardInterrupt and
  SystemExit propagate.
* ``done(chore)`` runs once, when the chore is over, with ``chore.outcome``
  ``"finished"``, ``"failed"`` (a step, or the commit of its chunk, failed)
  or ``"stopped"`` (the server is stopping: no chunk starts once the loop
  is, and the chunks done stay done and committed). Its writes (the
  action log entry that says what went) are committed right after it.
* ``chore.progress`` is what the step says it has done (the step's own
  ``progress`` attribute: ``"400,000 of 1,000,000"``), and `Chores.active`
  lists the chores queued, for a page that shows them.

Outside texmate_ds's server (the web UI on wsgiref, in the tests) there is
no loop to share: `run_at_once` takes a chore's steps one after another,
committing after each, and returns when it is over.
"""

import logging
import traceback
from collections import deque

from texmate_ds import loop
from texmate_ds.store import StoreError

log = logging.getLogger("texmate_ds.chores")

# Chores queued at once, running ones included.
MAX_CHORES = 16
# Samples a `DeleteSamples` step deletes. A chunk holds the loop for as long
# as it takes and lengthens every turn it runs in, so it is small: 50 busy
# meters' median answer stays within 2x of the idle one with 500 (1.6-1.7x
# here, a million samples in about 4.5 s), not with 1,000 (2.1-2.2x), by
# bench/deleteold.py. `manage deleteold` runs in a process of its own and
# holds only the write lock, so its chunks (manage.DELETE_CHUNK) are larger.
DELETE_CHUNK = 500


class Busy(loop.Busy):
    """`MAX_CHORES` chores are queued already."""


class Chore:
    """One long write: its `name` (for pages and the log), its ``step()``
    and ``done(chore)``, the `steps` taken, and once it is over its
    `outcome` (None until then; see the module docstring)."""

    def __init__(self, name, step, done=None):
        self.name = name
        self.step = step
        self.done = done
        self.steps = 0
        self.outcome = None

    @property
    def finished(self):
        """True when its last step was done and committed."""
        return self.outcome == "finished"

    @property
    def progress(self):
        """What the step says it has done so far ("" if it says nothing)."""
        return getattr(self.step, "progress", "")

    def advance(self, store):
        """Take one step in a savepoint of `store`'s shared transaction; True
        once the chore is over (its last step taken, or a step failed). The
        caller commits."""
        try:
            with store.atomic():
                last = self.step()
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception:
            log.error("chore %s failed in step %d; dropped, that step undone:\n%s",
                      loop.printable(self.name), self.steps + 1,
                      loop.printable(traceback.format_exc(), lines=True).rstrip())
            self.outcome = "failed"
            return True
        self.steps += 1
        if last:
            self.outcome = "finished"
        return bool(last)

    def end(self, store, outcome=None):
        """The chore is over (with `outcome`, unless `advance` set one):
        ``done(self)`` in a savepoint of `store`'s transaction, logged and
        undone if it fails. The caller commits."""
        if outcome is not None:
            self.outcome = outcome
        log.info("chore %s %s after %d step(s)%s", loop.printable(self.name), self.outcome,
                 self.steps, " (%s)" % loop.printable(str(self.progress)) if self.progress else "")
        if self.done is None:
            return
        try:
            with store.atomic():
                self.done(self)
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception:
            log.error("the end of chore %s failed:\n%s", loop.printable(self.name),
                      loop.printable(traceback.format_exc(), lines=True).rstrip())


class Chores:
    """The service running chores on `loop`, committing through `commits`
    (the `GroupCommit` of the store the steps write to)."""

    def __init__(self, loop_, commits, limit=MAX_CHORES):
        self.loop = loop_
        self.commits = commits
        self.store = commits.db
        self.limit = limit
        self.refused = 0
        # The chores queued; the first takes the next step.
        self._queue = deque()
        self._scheduled = False

    def start(self):
        pass

    def stop(self):
        """End every chore still queued as stopped (between two chunks:
        nothing runs on the loop now) and commit what their `done` wrote."""
        queue, self._queue = self._queue, deque()
        for chore in queue:
            chore.end(self.store, "stopped")
        self._commit()

    def submit(self, name, step, done=None):
        """Queue a chore: ``step()`` is called once per loop turn, its chores
        taking turns, until it returns True; then ``done(chore)``. Returns
        the `Chore`; raises `Busy` when `limit` are queued already. Loop
        thread only."""
        if len(self._queue) >= self.limit:
            self.refused += 1
            raise Busy("%d chores are queued already" % self.limit)
        chore = Chore(name, step, done)
        self._queue.append(chore)
        log.info("chore %s queued", loop.printable(name))
        self._schedule()
        return chore

    def active(self):
        """The chores queued, the one taking the next step first."""
        return list(self._queue)

    def cancel(self, chore):
        """Drop `chore` if it has taken no step yet, without calling its
        `done` (a web view that failed after submitting it: like the view's
        writes, its chore never was); True if it was dropped."""
        if chore.steps or chore not in self._queue:
            return False
        self._queue.remove(chore)
        log.info("chore %s cancelled before its first step", loop.printable(chore.name))
        return True

    def _schedule(self):
        if self._queue and not self._scheduled:
            self._scheduled = True
            self.loop.call_soon(self._step)

    def _step(self):
        self._scheduled = False
        if self.loop.stopping or not self._queue:
            return   # stop() ends what is left
        chore = self._queue[0]
        over = chore.advance(self.store)
        if not self._commit():
            # The commit was refused (and logged): this chunk is undone
            # with the uploads that shared it.
            over = True
            chore.outcome = "failed"
        if over:
            self._queue.popleft()
            chore.end(self.store)
            self._commit()
        else:
            self._queue.rotate(-1)
        self._schedule()

    def _commit(self):
        """Commit the shared transaction now; False if the commit failed."""
        if not self.store.in_transaction:
            return True
        outcome = []
        self.commits.after_commit(outcome.append)
        self.commits.commit()
        return outcome == [True]


def run_at_once(store, chore):
    """Take the steps of `chore` one after another on `store`, committing
    after each, then end it; for a WSGI server without texmate_ds's loop.
    Returns the chore."""
    over = False
    while not over:
        over = chore.advance(store)
        try:
            store.commit()
        except StoreError as exc:
            log.error("chore %s: commit failed: %s", loop.printable(chore.name), exc)
            store.rollback()
            over = True
            chore.outcome = "failed"
    chore.end(store)
    store.commit()
    return chore


class DeleteSamples:
    """The step of a chore deleting `unit`'s samples (only those with ts <
    `before` unless None), oldest first, `chunk` per step
    (`Samples.delete_oldest`). `deleted` counts what went; `total`, when
    the caller counted beforehand, only shows in `progress`."""

    def __init__(self, store, unit, before=None, total=None, chunk=DELETE_CHUNK):
        self.store = store
        self.unit = unit
        self.before = before
        self.total = total
        self.chunk = chunk
        self.deleted = 0

    # The repository whose `delete_oldest(unit, limit, before)` it calls.
    rows = "samples"

    def __call__(self):
        gone = getattr(self.store, self.rows).delete_oldest(self.unit, self.chunk, self.before)
        self.deleted += gone
        return gone < self.chunk

    @property
    def progress(self):
        if self.total is None:
            return "%s deleted" % format(self.deleted, ",")
        return "%s of %s" % (format(self.deleted, ","), format(self.total, ","))


class DeleteAlarms(DeleteSamples):
    """The same for `unit`'s alarms (`Alarms.delete_oldest`; `before` is
    when they were received)."""

    rows = "alarms"
