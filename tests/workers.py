"""The suite on several pytest processes at once: the worker's half.

scripts/test.py starts N pytest processes on the same arguments, each
with TXM_TEST_CLAIMS naming one file they share. Every worker collects
the whole suite in the same order and cuts it into runs: the longest
stretches of items from one module (a module's fixtures, a `server`
among them, are made once a run, as in one process). The workers then
take runs in that order, each the next one nobody has taken, from a
counter in the shared file under an exclusive `flock`.

So a worker runs a subsequence of the collected order, as pytest does
when ``-k`` deselects: every fixture sees the teardowns it would see
there. A worker that drew short modules simply takes more of them, and
the suite ends within about one module's time of its ideal. The runs
are in collection order, not longest first, because the session-scoped
`engine` parameter groups the suite by engine: reordering would set each
engine up again many times.

The file holds the digest of the collected node ids beside the counter,
so workers that collected different tests (an argument read differently,
an id made at random) stop with a usage error instead of running some
tests twice and others never.
"""

import fcntl
import hashlib
import itertools
import os

import pytest

CLAIMS = "TXM_TEST_CLAIMS"


def cut(items):
    """The items as a list of runs, each a list of consecutive items of
    one module."""
    return [list(run) for _, run in itertools.groupby(items, key=lambda item: item.module)]


def digest(items):
    return hashlib.sha256("\n".join(item.nodeid for item in items).encode()).hexdigest()


def take(path, collected, count):
    """The index of the next run nobody has taken, marked taken; None
    once all `count` are."""
    with open(path, "a+") as shared:
        fcntl.flock(shared, fcntl.LOCK_EX)    # released as the file closes
        shared.seek(0)
        words = shared.read().split()
        if words and words[0] != collected:
            raise pytest.UsageError(
                "the test workers collected different tests (digest %s, another %s): "
                "run with TXM_TEST_WORKERS=1 to see which" % (collected[:12], words[0][:12]))
        index = int(words[1]) if words else 0
        if index >= count:
            return None
        shared.seek(0)
        shared.truncate()
        shared.write("%s %d\n" % (collected, index + 1))
        return index


def taken_items(path, runs, collected):
    """The items of the runs this worker takes, one run at a time."""
    for index in iter(lambda: take(path, collected, len(runs)), None):
        yield from runs[index]


@pytest.hookimpl(tryfirst=True)
def pytest_runtestloop(session):
    """pytest's own loop over the items this worker takes (None, so that
    pytest's runs, when this process is the only one)."""
    path = os.environ.get(CLAIMS)
    if not path:
        return None
    if session.testsfailed and not session.config.option.continue_on_collection_errors:
        raise session.Interrupted("%d error(s) during collection" % session.testsfailed)
    if session.config.option.collectonly:
        return True
    items = taken_items(path, cut(session.items), digest(session.items))
    # pytest tears a fixture down according to the item that comes next:
    # that is the next one this worker runs, so the next run is taken as
    # its last item starts.
    item = next(items, None)
    while item is not None:
        following = next(items, None)
        item.config.hook.pytest_runtest_protocol(item=item, nextitem=following)
        if session.shouldfail:
            raise session.Failed(session.shouldfail)
        if session.shouldstop:
            raise session.Interrupted(session.shouldstop)
        item = following
    return True
