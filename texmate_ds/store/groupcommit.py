"""`GroupCommit`, the store's writer service on the server's loop.

Uploads handled in one loop turn share one transaction, committed once
before the next ``select()``; with ``COMMIT_INTERVAL: 1`` (`durable`) the
answers of the requests that wrote are released only after that commit,
so an ``OK`` means on disk while many meters share each fsync. With
``COMMIT_INTERVAL: N`` it commits every N uploads or ``COMMIT_DELAY`` ms,
whichever comes first.
"""

import logging
import time

from texmate_ds.store.errors import StoreError

log = logging.getLogger("texmate_ds.store")


class GroupCommit:
    """Decides when the shared transaction of `db` commits.

    `after_commit(fn)` registers `fn(ok)` to run once the current
    transaction ends: ``ok`` is True when it committed, False when the commit
    failed and everything in it was rolled back.
    """

    def __init__(self, db, loop, interval, delay_ms):
        self.db = db
        self.loop = loop
        self.interval = interval
        self.delay = delay_ms / 1000.0
        self.durable = interval == 1
        self._waiting = []
        self._timer = None
        self.commits = 0
        self.commit_seconds = 0.0

    def start(self):
        self.loop.turn_hooks.append(self.turn)

    def stop(self):
        self.commit()

    def after_commit(self, fn):
        self._waiting.append(fn)

    def turn(self):
        """Runs before every select(): commit now, or make sure a timer will."""
        if self.durable:
            # Answers released by a commit let their channels read on, and
            # pipelined uploads among those write again: commit those too,
            # or they would wait for a select() that nothing wakes.
            while self.db.in_transaction:
                self.commit()
            return
        if not self.db.in_transaction:
            return
        if self.db.samples.uploads_pending >= self.interval:
            self.commit()
        elif self._timer is None:
            self._timer = self.loop.call_later(self.delay, self.commit)

    def commit(self):
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self.db.in_transaction:
            return
        started = time.monotonic()
        try:
            self.db.commit()
            ok = True
        except StoreError as exc:
            log.error("commit failed, %d uploads rolled back: %s",
                      self.db.samples.uploads_pending, exc)
            try:
                self.db.rollback()
            except StoreError as exc2:
                log.error("rollback failed too: %s", exc2)
            ok = False
        self.commits += 1
        self.commit_seconds += time.monotonic() - started
        waiting, self._waiting = self._waiting, []
        for fn in waiting:
            # Guarded each: one that fails must not leave the answers of
            # the others held.
            self.loop.call_guarded("an after_commit callback", fn, ok)
