"""loop.Pool: the client with the fewest running first, clients in turn
among equals, a cap per client, cancelled work never runs, results back
on the loop thread."""

import threading

import pytest

from texmate_ds import loop


@pytest.fixture
def pool_of():
    """pool_of(threads, per_client): a started Pool, stopped after the test."""
    made = []

    def make(threads, per_client):
        the_loop = loop.Loop()
        pool = loop.Pool(the_loop, threads, object, per_client)
        pool.start()
        made.append(pool)
        return pool

    yield make
    for pool in made:
        pool.stop()
        pool.loop.selector.close()


@pytest.fixture
def pool(pool_of):
    return pool_of(1, 3)


def settle(pool, done, count):
    """Turn the loop until `count` results are back."""
    for _ in range(200):
        if len(done) >= count:
            return
        pool.loop._turn(0.05)
    raise AssertionError("only %d of %d results came back" % (len(done), count))


def test_clients_take_turns_and_each_has_a_cap(pool):
    started, gate = threading.Event(), threading.Event()
    ran, done = [], []

    def work(name):
        def run(context):
            if name == "a1":
                started.set()
                gate.wait(10)
            ran.append(name)
            return name
        return run

    pool.submit(work("a1"), lambda f: done.append(f.result()), "10.0.0.1")
    assert started.wait(10)
    for name in ("a2", "a3"):
        pool.submit(work(name), lambda f: done.append(f.result()), "10.0.0.1")
    with pytest.raises(loop.Busy):
        pool.submit(work("a4"), done.append, "10.0.0.1")
    pool.submit(work("b1"), lambda f: done.append(f.result()), "10.0.0.2")
    gate.set()
    settle(pool, done, 4)
    # a1 was running and a2, a3 queued before b1 came: after a2, b1 goes
    # before a3.
    assert ran == ["a1", "a2", "b1", "a3"]
    assert done == ran
    assert (pool.done, pool.refused, pool.dropped) == (4, 1, 0)
    # Room again for the first client once its work is done.
    pool.submit(work("a5"), lambda f: done.append(f.result()), "10.0.0.1")
    settle(pool, done, 5)


def test_a_free_worker_takes_the_client_with_the_fewest_running_first(pool_of):
    pool = pool_of(2, 8)
    gates = {name: threading.Event() for name in ("a1", "a2", "b1")}
    running, ran, done = threading.Semaphore(0), [], []

    def work(name):
        def run(context):
            ran.append(name)
            running.release()
            if name in gates:
                gates[name].wait(10)
            return name
        return run

    try:
        for name in ("a1", "a2"):
            pool.submit(work(name), lambda f: done.append(f.result()), "10.0.0.1")
        assert running.acquire(timeout=10) and running.acquire(timeout=10)
        for name in ("a3", "a4"):
            pool.submit(work(name), lambda f: done.append(f.result()), "10.0.0.1")
        pool.submit(work("b1"), lambda f: done.append(f.result()), "10.0.0.2")
        # a is first in line, but it has two running and b none: the first
        # worker free serves b.
        gates["a1"].set()
        assert running.acquire(timeout=10)
        assert ran[2] == "b1"
        gates["a2"].set()
        gates["b1"].set()
        settle(pool, done, 5)
        assert sorted(ran[3:]) == ["a3", "a4"]
    finally:
        for gate in gates.values():
            gate.set()


def test_cancelled_work_never_runs_and_frees_its_place(pool):
    gate = threading.Event()
    ran, done = [], []

    def run(name):
        def work(context):
            if name == "first":
                gate.wait(10)
            ran.append(name)
        return work

    pool.submit(run("first"), done.append, "c")
    dropped = [pool.submit(run("never%d" % i), done.append, "c") for i in range(2)]
    for job in dropped:
        job.cancel()
        job.cancel()   # twice is harmless
    pool.submit(run("later"), done.append, "c")
    gate.set()
    settle(pool, done, 2)
    assert ran == ["first", "later"]
    assert pool.dropped == 2


def test_a_failure_comes_back_as_the_futures_exception(pool):
    done = []

    def work(context):
        raise ValueError("no such range")

    pool.submit(work, done.append, "c")
    settle(pool, done, 1)
    with pytest.raises(ValueError, match="no such range"):
        done[0].result()
