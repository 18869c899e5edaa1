"""Two texmate_ds processes on one PostgreSQL database behind a real
HAProxy (tests/haproxy.py: TCP mode for TTP and HTTP, round robin, the
health check on /healthz), as docs/scale-out.md sets them up:

- a person signs in, changes the default password and reads pages
  through HAProxy while consecutive requests alternate between the two
  processes: sessions and CSRF secrets are the database's, not a
  process's;
- kill -9 of one process under 50 uploading meters: every sample
  answered OK is in the database, and the meters reconnect, through
  HAProxy, to the survivor and go on;
- PostgreSQL restarted under the same load: uploads answer 500 while it
  is away (never OK for a sample that is not stored) and OK again once
  it is back, without restarting texmate_ds.

The meters are `Fleet`: texmate_ds.client's AsyncTTPClient, 50 of them
in one asyncio loop in a thread of the test, each sending its next upload
as soon as its answer is in. Bounded: every wait has a deadline, and the
fleet stops by itself after `Fleet.SECONDS`.

Several processes need a shared database, so on the sqlite3 parameter
these tests skip, saying so.
"""

import asyncio
import collections
import datetime
import re
import threading
import time

import haproxy
import pytest

from texmate_ds.client import AsyncTTPClient, TTPConnectionError

from conftest import Browser, engine_conf

PASSWORD = "two-processes-1"
METERS = 50
KEY = "kh"
# OK answers each meter must get in each phase of a fault test.
PER_PHASE = 5
# Seconds a phase may take at most (a PostgreSQL restart's included).
PHASE_TIMEOUT = 60


@pytest.fixture
def pair(server_factory, engine, tmp_path):
    """(first, second, HAProxy): two servers on one new database, both up
    behind HAProxy; the database has the meters M1..M50 (one field)."""
    if engine != "postgresql":
        pytest.skip("several processes share a database on PostgreSQL only")
    why = haproxy.available()
    if why:
        pytest.skip(why)
    database = engine_conf(engine)
    first = server_factory(start=False, name="first", conf=database)
    first.add_units(["M%d" % n for n in range(1, METERS + 1)], KEY, 1)
    first.start()
    second = server_factory(name="second", conf=database)
    balancer = haproxy.HAProxy(tmp_path / "haproxy", [first, second])
    try:
        balancer.wait_all("UP")
        yield first, second, balancer
    finally:
        balancer.stop()


def sessions(balancer, side):
    """Connections HAProxy has sent to each server of `side` so far."""
    rows = balancer.command("show stat").splitlines()
    header = rows[0].lstrip("# ").split(",")
    counts = {}
    for row in rows[1:]:
        cells = dict(zip(header, row.split(",")))
        if cells["pxname"] == side and cells["svname"] in balancer.names:
            counts[cells["svname"]] = int(cells["stot"])
    return counts


def test_a_person_signs_in_through_haproxy_whichever_process_answers(pair):
    first, second, balancer = pair
    before = sessions(balancer, "http")
    browser = Browser(balancer.http_port)
    signed = browser.sign_in("Administrator", "admin")
    assert (signed.status, signed.header("Location")) == (303, "/password/?next=%2F")
    token = browser.csrf("/password/?next=%2F")
    changed = browser.post("/password/", {"csrf_token": token, "old_password": "admin",
                                          "new_password": PASSWORD,
                                          "new_password2": PASSWORD, "next": "/"})
    assert (changed.status, changed.header("Location")) == (303, "/")
    for _ in range(4):
        home = browser.get("/")
        assert home.status == 200 and '<a href="/units/M1/">' in home.body, (
            home.status, home.header("Location"))
    # The new password, not the old, from fresh browsers landing on each.
    for _ in range(2):
        assert Browser(balancer.http_port).sign_in("Administrator", "admin").status == 403
        assert Browser(balancer.http_port).sign_in("Administrator", PASSWORD).status == 303
    served = sessions(balancer, "http")
    # Round robin: each process answered about half of those requests.
    assert all(served[name] - before[name] >= 5 for name in balancer.names), served


class Fleet:
    """METERS meters M1..MN uploading one sample a request through
    `port`, each as fast as its answers come, and remembering every value
    the server answered OK; after an error answer or a lost connection a
    meter waits PAUSE s, as a real one retries later. Runs in a thread of
    its own from `start()` until `stop()`, or SECONDS at most."""

    SECONDS = 180
    PAUSE = 0.05
    BASE = datetime.datetime(2021, 3, 1)

    def __init__(self, port):
        self.port = port
        self.acked = {"M%d" % n: [] for n in range(1, METERS + 1)}
        self.answers = collections.Counter()    # answer code (200 = OK) -> count
        self.cut = 0            # exchanges cut short (TTPConnectionError)
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)
        self._failure = None

    def start(self):
        self._thread.start()
        return self

    async def _run(self):
        try:
            await asyncio.gather(*(self._meter(code) for code in self.acked))
        except BaseException as exc:    # seen by wait() and stop()
            self._failure = exc

    async def _meter(self, code):
        deadline = time.monotonic() + self.SECONDS
        async with AsyncTTPClient("127.0.0.1", self.port, timeout=15, unit=code,
                                  key=KEY) as client:
            n = 0
            while not self._stopping.is_set() and time.monotonic() < deadline:
                n += 1
                try:
                    answer = await client.up([(self.BASE + datetime.timedelta(seconds=n), [n])])
                except TTPConnectionError:
                    self.cut += 1
                    await asyncio.sleep(self.PAUSE)
                    continue
                self.answers[answer.code] += 1
                if answer.ok:
                    self.acked[code].append(n)
                else:
                    await asyncio.sleep(self.PAUSE)

    def oks(self):
        return {code: len(values) for code, values in self.acked.items()}

    def wait_each(self, more, what):
        """Until every meter has `more` OK answers beyond now."""
        floor = self.oks()
        deadline = time.monotonic() + PHASE_TIMEOUT
        while time.monotonic() < deadline:
            if self._failure is not None or not self._thread.is_alive():
                raise AssertionError("the meters stopped: %r" % self._failure)
            now = self.oks()
            if all(now[code] >= floor[code] + more for code in now):
                return
            time.sleep(0.05)
        behind = sorted(code for code, count in self.oks().items()
                        if count < floor[code] + more)
        raise AssertionError("%s: in %d s, %d meters got fewer than %d OK: %s; answers %s,"
                             " %d cut" % (what, PHASE_TIMEOUT, len(behind), more, behind[:10],
                                          dict(self.answers), self.cut))

    def stop(self):
        self._stopping.set()
        self._thread.join(30)
        assert not self._thread.is_alive()
        assert self._failure is None, self._failure


def stored(srv):
    """{code: set of values} of the samples in the database."""
    db = srv.database()
    try:
        rows = db.all("SELECT units.code, samples.v1 FROM samples"
                      " JOIN units ON units.id = samples.unit_id")
    finally:
        db.close()
    values = collections.defaultdict(set)
    for code, value in rows:
        values[code].add(int(value))
    return values


def assert_every_ok_stored(fleet, srv):
    found = stored(srv)
    missing = {code: sorted(set(values) - found[code])
               for code, values in fleet.acked.items() if set(values) - found[code]}
    assert not missing, "answered OK but not stored: %s" % missing


def test_kill_9_of_one_process_under_50_meters(pair):
    first, second, balancer = pair
    fleet = Fleet(balancer.ttp_port).start()
    try:
        fleet.wait_each(PER_PHASE, "before the kill")
        first.proc.kill()           # SIGKILL: no goodbye, no last commit
        first.proc.wait(10)
        balancer.wait_all("DOWN", ["s1"])
        fleet.wait_each(PER_PHASE, "after the kill, through the survivor")
    finally:
        fleet.stop()
    assert second.proc.poll() is None
    assert set(fleet.answers) == {200}, fleet.answers
    assert_every_ok_stored(fleet, second)
    print("answers %s, %d exchanges cut by the kill" % (dict(fleet.answers), fleet.cut))


def test_postgresql_restarted_under_load(pair, postgres_cluster):
    first, second, balancer = pair
    fleet = Fleet(balancer.ttp_port).start()
    try:
        fleet.wait_each(PER_PHASE, "before the restart")
        postgres_cluster.restart(down_seconds=1.0)
        fleet.wait_each(PER_PHASE, "after the restart")
    finally:
        fleet.stop()
    # The same two processes served throughout, and answered 500 while
    # the database was away: never a connection dropped, never a false OK.
    assert first.proc.poll() is None and second.proc.poll() is None
    assert fleet.cut == 0
    assert set(fleet.answers) == {200, 500} and fleet.answers[500] >= 1, fleet.answers
    assert_every_ok_stored(fleet, second)
    for srv in (first, second):
        assert re.search(r"connected to .* again", srv.errors())
    print("answers %s" % dict(fleet.answers))
