"""Bad peers and bad days: nothing acknowledged is lost, nothing crashes.

Each test starts its own server. Loads are small and bounded in count and
time; everything targets 127.0.0.1.
"""

import json
import os
import random
import signal
import socket
import subprocess
import threading
import time

import pytest

from conftest import read_answers, sqlite_only


def count_samples(srv, code):
    return srv.query("SELECT count(*) FROM samples JOIN units ON units.id = unit_id"
                     " WHERE code = ?", (code,))[0][0]


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])


class Uploader(threading.Thread):
    """A meter uploading one sample per request as fast as answers come,
    remembering every timestamp the server acknowledged with OK."""

    def __init__(self, srv, code, key, seconds):
        super().__init__(daemon=True)
        self.srv, self.code, self.key, self.seconds = srv, code, key, seconds
        self.acked = []  # (timestamp in µs, value sent) of every upload answered OK

    def run(self):
        from texmate_ds import times
        try:
            sock = self.srv.connect(timeout=5)
            deadline = time.monotonic() + self.seconds
            i = 0
            while time.monotonic() < deadline:
                ts = "2015-1-1 %d:%d:%d" % (i // 3600, i // 60 % 60, i % 60)
                sock.sendall(("TTP /up/%s/<%s;%d> %s\r" % (self.code, ts, i, self.key)).encode())
                if read_answers(sock, 1) == ["OK"]:
                    self.acked.append((times.parse(ts), i))
                i += 1
        except (OSError, ConnectionError):
            pass  # the server was killed under us: that is the test


def test_sigterm_commits_batched_uploads(server_factory):
    srv = server_factory("[database]\nCOMMIT_INTERVAL: 100000\nCOMMIT_DELAY: 600000\n", start=False)
    srv.add_unit("B1", "kb", 1)
    srv.start()
    body = "".join("<2014-1-1 0:%d:%d;%d>" % (i // 60, i % 60, i) for i in range(500))
    assert srv.ask("TTP /up/B1/%s kb" % body) == "OK"
    for i in range(50):
        assert srv.ask("TTP /up/B1/<2014-1-2 0:0:%d;%d> kb" % (i, i)) == "OK"
    # Acknowledged but not committed yet: another connection sees nothing.
    assert count_samples(srv, "B1") == 0
    assert srv.stop() == 0
    assert count_samples(srv, "B1") == 550


def under_load(srv, prefix, key):
    """50 units, the server started, and a meter uploading to each."""
    codes = ["%s%d" % (prefix, n) for n in range(50)]
    srv.add_units(codes, key, 1)
    srv.start()
    meters = [Uploader(srv, code, key, 10) for code in codes]
    for m in meters:
        m.start()
    return meters


def assert_acknowledged_stored(srv, meters):
    """Every sample a meter saw OK for is stored, with the value it sent."""
    db = srv.database()
    total = 0
    for m in meters:
        m.join(10)
        assert m.acked, "meter %s got no answer" % m.code
        stored = dict(db.all(
            "SELECT ts, v1 FROM samples JOIN units ON units.id = unit_id WHERE code = ?",
            (m.code,)))
        for ts, value in m.acked:
            assert stored.get(ts) == value, (m.code, ts, value)
        total += len(m.acked)
    db.close()
    assert total > 500


def test_sigterm_during_batched_load_loses_nothing(server_factory):
    srv = server_factory("[database]\nCOMMIT_INTERVAL: 100\nCOMMIT_DELAY: 5000\n", start=False)
    meters = under_load(srv, "T", "kt")
    time.sleep(1.0)
    assert srv.stop() == 0
    assert_acknowledged_stored(srv, meters)


def test_kill_9_loses_no_acknowledged_sample(server_factory):
    """up1 load (50 meters, durable acks), then kill -9: after restart every
    acknowledged sample is there."""
    srv = server_factory(start=False)  # COMMIT_INTERVAL: 1, the default
    meters = under_load(srv, "K", "kk")
    time.sleep(1.5)
    srv.proc.send_signal(signal.SIGKILL)
    srv.proc.wait(10)
    srv.start()  # SQLite recovers from its WAL on restart
    assert_acknowledged_stored(srv, meters)
    assert srv.ask("TTP /dl/K0/<2015-1-1 0:0:7> kk").endswith(" L1=7>")


def test_max_connections_answers_502(server_factory):
    srv = server_factory("MAX_CONNECTIONS: 5\n", start=False)
    srv.add_unit("A1", "k1", 1)
    srv.start()
    socks = [srv.connect() for _ in range(5)]
    for s in socks:
        s.sendall(b"TTP /ok/A1 k1\r")
        assert read_answers(s, 1) == ["OK"]
    extra = srv.connect()
    assert extra.recv(100) == b"502 Service temporarily overloaded\r"
    assert extra.recv(100) == b""
    extra.close()
    assert "MAX_CONNECTIONS (5) reached: refused 1 connection(s)" in srv.errors()
    # The web port has its own budget (MAX_HTTP_CONNECTIONS): still open.
    web = socket.create_connection(("127.0.0.1", srv.http_port), timeout=5)
    web.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert web.recv(100).startswith(b"HTTP/1.1 200 OK")
    web.close()
    socks.pop().close()
    time.sleep(0.2)
    assert srv.ask("TTP /ok/A1 k1") == "OK"
    for s in socks:
        s.close()


def test_garbage_gets_spec_codes_and_the_server_stays_up(server_factory):
    """Seeded random bytes, mutated and truncated valid requests, absurd
    numbers: every line gets a spec'd code, never 500, and nothing odd is
    stored."""
    srv = server_factory(start=False)
    srv.add_unit("G1", "kg", 2)
    srv.start()
    rng = random.Random(20091116)
    valid = [b"TTP /up/G1/<2009-1-16 15:30:45;11;22> kg", b"TTP /dl/G1/last kg",
             b"TTP /dl/G1/from<9-1-16 0:0:0> kg", b"TTP /ok/G1 kg",
             b"TTP /al/G1/2/<2009-1-16 15:30:45;high> kg"]
    odd_numbers = [b"1e999", b"nan", b"-0", b"inf", b"1" * 400, b"0x1F", b"1e-999", b"--1"]
    cases = []
    for _ in range(3000):
        kind = rng.random()
        base = bytearray(rng.choice(valid))
        if kind < 0.3:
            line = bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 80)))
        elif kind < 0.6:
            for _ in range(rng.randint(1, 4)):
                base[rng.randrange(len(base))] = rng.getrandbits(8)
            line = bytes(base)
        elif kind < 0.8:
            line = bytes(base[:rng.randrange(1, len(base))])
        else:
            line = b"TTP /up/G1/<2009-1-%d 1:2:3;%s;%s> kg" % (
                rng.randint(1, 31), rng.choice(odd_numbers), rng.choice(odd_numbers))
        line = line.replace(b"\r", b"").replace(b"\n", b"")
        if line:
            cases.append(line)
    allowed = {"OK", "400", "402", "404", "405", "406", "501"}
    sock = srv.connect()
    for start in range(0, len(cases), 100):
        batch = cases[start:start + 100]
        sock.sendall(b"".join(c + b"\r" for c in batch))
        for line, answer in zip(batch, read_answers(sock, len(batch))):
            assert answer[:3] in allowed or answer.startswith("OK"), (line, answer)
    sock.close()
    assert srv.ask("TTP /ok/G1 kg") == "OK"
    assert srv.proc.poll() is None
    for v1, v2 in srv.query("SELECT v1, v2 FROM samples"):
        assert abs(v1) < 1e308 and abs(v2) < 1e308
    for level, data in srv.query("SELECT level, data FROM alarms"):
        assert 0 <= level <= 99
        assert not any(c in item for item in json.loads(data) for c in ";<>"), data


def test_stalled_half_requests_and_resets_do_not_block_others(server_factory):
    srv = server_factory(start=False)
    srv.add_unit("A1", "k1", 1)
    srv.start()
    stalled = []
    for i in range(200):
        s = srv.connect()
        s.sendall(b"TTP /up/A1/<2009-1-16 15:30:4")
        stalled.append(s)
    silent = [srv.connect() for _ in range(100)]
    for _ in range(50):
        s = srv.connect()
        s.sendall(b"TTP /up/A1/<2009-1-16 15:3")
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        s.close()
    # Answered at all: the socket's timeout fails a server held up.
    assert srv.ask("TTP /ok/A1 k1") == "OK"
    for s in stalled + silent:
        s.close()
    assert srv.ask("TTP /up/A1/<2009-1-16 15:30:45;1> k1") == "OK"
    assert count_samples(srv, "A1") == 1


def test_site_apps_load_like_bundled_ones_and_vendor_ok_runs(server_factory, tmp_path):
    """The vendor's OK app from the App Guide, with only its import line
    changed, as a site app replacing the bundled one."""
    srv = server_factory("[ttpapps]\nok: on\n", start=False)
    vendor = open(os.path.join(os.path.dirname(__file__), "..", "fixtures", "vendor_ok.py")).read()
    changed = vendor.replace("from texmatedse.core.units.models import Unit",
                             "from texmate_ds.models import Unit")
    assert changed.count("\n") == vendor.count("\n") and changed != vendor
    apps = srv.dir / "TTPApps"
    apps.mkdir()
    (apps / "ok.py").write_text(changed)
    srv.add_unit("A1", "k1", 1)
    srv.start()
    assert "TTP app ok: /ok/ (%s)" % (apps / "ok.py") in srv.errors()
    assert srv.ask("TTP /ok/A1 k1") == "OK"
    assert srv.ask("TTP /ok/A1 nope") == "402 Unauthorized"
    assert srv.ask("TTP /ok/ZZ k1") == "405 Unit not found"


def test_bundled_ok_is_the_vendor_app_with_its_import_changed():
    here = os.path.dirname(__file__)
    vendor = open(os.path.join(here, "..", "fixtures", "vendor_ok.py")).read()
    from texmate_ds.apps import ok
    bundled = open(ok.__file__).read()
    body = bundled[bundled.index("# -*- coding"):]
    assert body == vendor.replace("from texmatedse.core.units.models import Unit",
                                  "from texmate_ds.models import Unit")


def test_app_exceptions_answer_500_and_the_server_lives(server_factory):
    srv = server_factory("[ttpapps]\nboom: on\n", start=False)
    apps = srv.dir / "TTPApps"
    apps.mkdir()
    (apps / "boom.py").write_text('''"""boom: fails in every way an app can."""
class Early:
    def __init__(self, server, request, unit, key):
        if request.endswith("init"):
            raise ValueError("broken in __init__")
        self.n = 0
    def more(self):
        self.n += 1
        if self.n == 1:
            if "late" in self.request_kind:
                return "OK partial"
            raise KeyError("broken in more")
        raise RuntimeError("broken after a partial answer")
    request_kind = ""

def before(server, request, unit, key):
    if request.endswith("refuse"):
        return 403
    Early.request_kind = request

Extension = {"code": "bm", "producer": Early, "run_before": before, "run_after": None}
''')
    srv.add_unit("A1", "k1", 1)
    srv.start()
    assert srv.ask("TTP /bm/A1 init") == "500 Internal error"
    assert srv.ask("TTP /bm/A1 more") == "500 Internal error"
    assert srv.ask("TTP /bm/A1 refuse") == "403 Forbidden"
    sock = srv.connect()
    sock.sendall(b"TTP /bm/A1 late\r")
    data = b""
    while True:  # a started answer cannot be taken back: the channel closes
        chunk = sock.recv(100)
        if not chunk:
            break
        data += chunk
    assert b"\r" not in data  # never an answer that looks complete
    assert srv.ask("TTP /ok/A1 k1") == "OK"
    errors = srv.errors()
    assert "broken in __init__" in errors and "broken in more" in errors
    assert "Traceback" in errors


def chattr(flag, *paths):
    return subprocess.run(["chattr", flag] + [str(p) for p in paths],
                          capture_output=True, text=True)


def test_read_only_database_answers_500_and_recovers(server_factory, engine):
    sqlite_only(engine, "the fault is the SQLite file made immutable (chattr +i)")
    srv = server_factory(start=False)
    srv.add_unit("A1", "k1", 1)
    srv.start()
    assert srv.ask("TTP /up/A1/<2009-1-1 0:0:1;1> k1") == "OK"
    files = [srv.db_path, srv.db_path + "-wal"]
    result = chattr("+i", *files)
    if result.returncode != 0:
        pytest.skip("cannot make the database immutable here (chattr +i needs root on "
                    "ext2/3/4 or xfs): %s" % result.stderr.strip())
    try:
        assert srv.ask("TTP /up/A1/<2009-1-1 0:0:2;2> k1") == "500 Internal error"
        assert srv.ask("TTP /up/A1/<2009-1-1 0:0:3;3><2009-1-1 0:0:4;4> k1") == "500 Internal error"
        assert srv.ask("TTP /ok/A1 k1") == "OK"
        assert srv.ask("TTP /dl/A1/last k1").endswith("L1=1>")
    finally:
        chattr("-i", *files)
    assert "commit failed" in srv.errors()
    # The cause is gone: the server recovers by itself.
    assert srv.ask("TTP /up/A1/<2009-1-1 0:0:2;2> k1") == "OK"
    assert srv.stop() == 0
    assert count_samples(srv, "A1") == 2


@pytest.fixture
def small_fs(tmp_path):
    """A 3 MiB tmpfs to hold a database, unmounted after the test."""
    mnt = tmp_path / "fs"
    mnt.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mnt)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root): %s" % result.stderr.strip())
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)])


def test_full_disk_answers_500_and_recovers(server_factory, small_fs, engine):
    sqlite_only(engine, "the full disk is the SQLite file's (PostgreSQL's is its server's)")
    srv = server_factory("[database]\nDATABASE_NAME: %s/data.db\n" % small_fs, start=False)
    srv.add_unit("F1", "kf", 8)
    srv.start()
    sock = srv.connect()
    answers = []
    for i in range(2000):
        body = "".join("<2016-1-1 %d:%d:%d;%s>" % (i % 24, i // 24 % 60, j, ";".join(["1.2345"] * 8))
                       for j in range(60))
        sock.sendall(("TTP /up/F1/%s kf\r" % body).encode())
        answers.append(read_answers(sock, 1)[0])
        if answers[-1] != "OK":
            break
    assert answers[-1] == "500 Internal error", answers[-3:]
    assert "full" in srv.errors()
    assert srv.ask("TTP /ok/F1 kf") == "OK"
    stored = count_samples(srv, "F1")
    subprocess.run(["mount", "-o", "remount,size=64m", str(small_fs)], check=True)
    sock.sendall(b"TTP /up/F1/<2017-1-1 0:0:0;1;2;3;4;5;6;7;8> kf\r")
    assert read_answers(sock, 1) == ["OK"]
    sock.close()
    assert srv.stop() == 0
    # Everything acknowledged is there; nothing of the failed request is.
    assert count_samples(srv, "F1") == stored + 1 == 60 * answers.count("OK") + 1



def test_dead_channels_are_swept(server_factory):
    srv = server_factory("CHANNEL_TIMEOUT: 1\nMAINTENANCE_INTERVAL: 3\n", start=False)
    srv.add_unit("A1", "k1", 1)
    srv.start()
    idle = srv.connect()
    half = srv.connect()
    half.sendall(b"TTP /ok/A1 k")  # a request that never ends
    busy = srv.connect()
    deadline = time.monotonic() + 4
    while time.monotonic() < deadline:  # a live meter keeps its connection
        busy.sendall(b"TTP /ok/A1 k1\r")
        assert read_answers(busy, 1) == ["OK"]
        time.sleep(0.2)
    for sock in (idle, half):
        sock.settimeout(5)
        assert sock.recv(100) == b""
    busy.sendall(b"TTP /ok/A1 k1\r")
    assert read_answers(busy, 1) == ["OK"]
    assert "no progress for" in srv.errors()


def test_commit_delay_commits_a_quiet_batch(server_factory):
    srv = server_factory("[database]\nCOMMIT_INTERVAL: 1000\nCOMMIT_DELAY: 100\n", start=False)
    srv.add_unit("D1", "kd", 1)
    srv.start()
    assert srv.ask("TTP /up/D1/<2014-1-1 0:0:0;1> kd") == "OK"
    deadline = time.monotonic() + 10
    while count_samples(srv, "D1") == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert count_samples(srv, "D1") == 1  # committed long before 1000 uploads


def test_run_before_and_run_after(server_factory):
    """run_before may refuse with a code; run_after runs once the answer
    is written, before the next request on the connection is answered."""
    srv = server_factory("[ttpapps]\necho: on\n", start=False)
    apps = srv.dir / "TTPApps"
    apps.mkdir()
    (apps / "echo.py").write_text('''"""echo: answers with what run_after has seen so far."""
from texmate_ds import ttp

FLUSHED = []


def before(server, request, unit, key):
    server.authenticate(unit, key)  # raises TTPError 405/402/403
    return 404 if request.argument == "missing" else None


class Echo(ttp.Answer):
    def __init__(self, server, request, unit, key):
        super().__init__("OK %d %s\\r" % (len(FLUSHED), ",".join(FLUSHED)))


def after(server, request, unit, key):
    FLUSHED.append(request.argument)


Extension = {"code": "ec", "producer": Echo, "run_before": before, "run_after": after}
''')
    srv.add_unit("A1", "k1", 1)
    srv.start()
    answers = srv.exchange(b"TTP /ec/A1/a k1\rTTP /ec/A1/b k1\rTTP /ec/A1/missing k1\r"
                           b"TTP /ec/A1/c k1\rTTP /ec/A1 bad\r", 5)
    assert answers == ["OK 0 ", "OK 1 a", "404 Data not found", "OK 2 a,b", "402 Unauthorized"]



def test_abuse_at_scale_while_a_meter_works(server_factory):
    """Issue 3's crowd: 2,000 connections that send half a request and
    stall, 500 that never send, 100 that send without ever reading; a
    normal meter keeps getting its answers, and the server's memory stays
    bounded by its per-connection caps."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 4000 <= hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (4000, hard))
    elif soft < 4000:
        pytest.skip("needs 4000 open files; the hard limit here is %d" % hard)
    srv = server_factory(start=False)
    srv.add_unit("A1", "k1", 1)
    srv.start()
    body = "".join("<2012-1-1 1:%d:%d;%d>" % (i // 60, i % 60, i) for i in range(1000))
    assert srv.ask("TTP /up/A1/%s k1" % body) == "OK"
    before = rss_kib(srv.proc.pid)
    crowd = []
    try:
        for _ in range(2000):
            s = srv.connect()
            s.sendall(b"TTP /up/A1/<2009-1-16 15:3")
            crowd.append(s)
        crowd.extend(srv.connect() for _ in range(500))
        hogs = []
        for _ in range(100):
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.connect(("127.0.0.1", srv.ttp_port))
            s.setblocking(False)
            hogs.append(s)
        crowd.extend(hogs)
        request = b"TTP /dl/A1/from<2012-1-1 0:0:0> k1\r" * 200
        deadline = time.monotonic() + 3
        while hogs and time.monotonic() < deadline:
            for s in list(hogs):
                try:
                    s.send(request)
                except BlockingIOError:
                    hogs.remove(s)  # the server stopped reading it: its cap works
        meter = srv.connect()
        times = []
        for i in range(30):
            t0 = time.monotonic()
            meter.sendall(b"TTP /up/A1/<2013-1-1 0:0:%d;%d> k1\rTTP /dl/A1/last k1\r" % (i, i))
            answers = read_answers(meter, 2)
            times.append(time.monotonic() - t0)
            assert answers[0] == "OK" and answers[1].endswith(" L1=%d>" % i)
        grown = rss_kib(srv.proc.pid) - before
        times.sort()
        print("meter answer time with the crowd: median %.1f ms, max %.1f ms; "
              "server grew %d KiB for 2,600 connections" % (
                  times[len(times) // 2] * 1000, times[-1] * 1000, grown))
        assert grown < 150 * 1024, "server grew by %d KiB" % grown
        meter.close()
    finally:
        for s in crowd:
            s.close()
    assert srv.ask("TTP /ok/A1 k1") == "OK"


def test_huge_uploads_and_bounded_memory(server_factory):
    """Requests with huge numbers of samples: the largest that fits in
    MAX_REQUEST_BYTES is stored whole; one bad sample at its end stores
    nothing; a longer one is refused and its connection closed. Thousands
    of such requests leave the server's memory where it was."""
    srv = server_factory(start=False)
    srv.add_unit("H1", "kh", 1)
    srv.start()

    def body(first, count, last_value="1"):
        samples = ["<2018-1-1 %d:%d:%d;%d>" % (i // 3600, i // 60 % 60, i % 60, i)
                   for i in range(first, first + count - 1)]
        i = first + count - 1
        samples.append("<2018-1-1 %d:%d:%d;%s>" % (i // 3600, i // 60 % 60, i % 60, last_value))
        return "".join(samples)

    fits = "TTP /up/H1/%s kh" % body(0, 2500)
    assert len(fits) < 65536
    assert srv.ask(fits) == "OK"
    assert count_samples(srv, "H1") == 2500
    assert srv.ask("TTP /up/H1/%s kh" % body(10000, 2500, "1e999")) == "400 Bad request"
    assert srv.ask("TTP /up/H1/%s kh" % body(20000, 2500, "nan")) == "400 Bad request"
    assert count_samples(srv, "H1") == 2500
    sock = srv.connect()
    sock.sendall(("TTP /up/H1/%s kh\r" % body(30000, 4000)).encode())
    assert read_answers(sock, 1) == ["400 Bad request"]
    assert sock.recv(100) == b""
    sock.close()

    before = rss_kib(srv.proc.pid)
    sock = srv.connect()
    duplicate = ("TTP /up/H1/%s kh\r" % body(0, 2500)).encode()
    broken = ("TTP /up/H1/%s kh\r" % body(40000, 2500, "-")).encode()
    for _ in range(100):
        sock.sendall(duplicate + broken)
        answers = read_answers(sock, 2)
        assert answers[0].startswith("406 Duplicate sample 1<2018-1-1 0:0:0>2<")
        assert answers[1] == "400 Bad request"
    sock.close()
    grown = rss_kib(srv.proc.pid) - before
    print("200 requests of 2,500 samples: server grew %d KiB" % grown)
    assert grown < 32 * 1024
    assert count_samples(srv, "H1") == 2500
