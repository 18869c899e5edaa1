"""The client library (texmate_ds/client.py, docs/client.md) against the
real server: docs/client.md's first example as written, uploads and
downloads as objects, error answers and `TTPError`, pipelines,
reconnecting after the server closed an idle connection (CHANNEL_TIMEOUT:
1 here) or restarted, ``SOCKET_OPEN: no``, and both clients closing what
they opened. Whether a connection is open is asked of the server itself
(``texmate_connections_open`` in /metrics).
"""

import asyncio
import contextlib
import datetime
import http.client
import io
import re
import textwrap
import time

import pytest

from texmate_ds.client import AsyncTTPClient, TTPClient, TTPError

from conftest import ROOT, server_on

TIMEOUT = 10.0
PASSWORD = "pump-station-7"
UNITS = ["C%d" % n for n in range(1, 10)]
DAY = datetime.datetime(2011, 5, 1, 8, 0, 0)


def with_token(srv):
    """`srv` (not started) with an API token of the Administrator, for /metrics."""
    srv.manage("changepassword", "Administrator", "--noinput",
               env=dict(srv.env, TXM_PASSWORD=PASSWORD))
    srv.token = srv.manage("addtoken", "Administrator", "--name", "t").stdout.strip()
    return srv


@pytest.fixture(scope="module")
def srv(tmp_path_factory, engine):
    """A server that closes TTP connections idle for a second, with units
    C1..C9 (4 fields, key ``secret``): each test has its own."""
    server = server_on(engine, tmp_path_factory.mktemp("client"), "CHANNEL_TIMEOUT: 1\n")
    server.add_units(UNITS, "secret", 4)
    yield with_token(server).start()
    server.kill()


def ttp_connections(srv):
    """TTP connections open on the server, by its own count."""
    conn = http.client.HTTPConnection("127.0.0.1", srv.http_port, timeout=TIMEOUT)
    try:
        conn.request("GET", "/metrics", headers={"Authorization": "Bearer " + srv.token})
        body = conn.getresponse().read().decode()
    finally:
        conn.close()
    return int(float(re.search(r'^texmate_connections_open\{protocol="ttp"\} (\S+)$', body,
                               re.M).group(1)))


def wait_for(condition, seconds=TIMEOUT):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def client(srv, unit, **options):
    return TTPClient("127.0.0.1", srv.ttp_port, TIMEOUT, unit=unit, key="secret", **options)


def test_the_example_of_the_docs_prints_what_they_say(server_factory):
    server = server_factory(start=False)
    server.add_units(["A1"], "secret", 4)
    server.start()
    section = (ROOT / "docs" / "client.md").read_text().split("## In ten lines")[1]
    code, printed = re.search(r"\n\n((?:    .*\n|\n)+?)\nprints\n\n((?:    .*\n)+)", section).groups()
    code = textwrap.dedent(code).replace("9995", str(server.ttp_port))
    assert len(code.strip().splitlines()) == 10
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(code, {})
    assert out.getvalue() == textwrap.dedent(printed)


def test_uploads_and_downloads_as_objects(srv):
    later = DAY + datetime.timedelta(seconds=1, microseconds=250000)
    with client(srv, "C1", check=True) as c:
        assert c.up([(DAY, [11, 22.5, -3, 1e20]), ("11-5-1 8:0:1.25", ["1", "2", "3.5", "-0"])])
        answer = c.dl(since=DAY)
        first, second = answer.samples
        assert (first.timestamp, first.values) == (DAY, [11, 22.5, -3, 1e20])
        assert (second.timestamp, second.values) == (later, [1, 2, 3.5, 0])
        assert second.timestamp_text == "2011-05-01 08:00:01.250000"
        assert first.id < second.id
        assert answer == "OK <%d 2011-05-01 08:00:00 L1=11 L2=22.5 L3=-3 L4=1e+20><%d " \
            "2011-05-01 08:00:01.250000 L1=1 L2=2 L3=3.5 L4=0>" % (first.id, second.id)
        assert c.dl(later).samples == [second]
        assert c.dl("first").samples == c.dl("next").samples == [first]
        assert c.dl().samples == c.dl("next").samples == [second]
        # Downloaded samples go up again as they are, to another unit.
        assert c.up(answer.samples, unit="C2")
        assert [(s.timestamp, s.values) for s in c.dl(since=DAY, unit="C2").samples] == \
            [(DAY, first.values), (later, second.values)]
        assert c.al(2, [DAY, "tank 2/high"]).ok


def test_error_answers_come_back_or_raise(srv):
    with client(srv, "C3") as c:
        assert (c.ok(key="wrong").code, c.ok(key="wrong").message) == (402, "Unauthorized")
        assert c.ok(unit="NOSUCH").code == 405
        assert c.dl().code == 404
        assert c.up([(DAY, [1])]) == "400 Bad request"     # C3 has 4 fields: the server says
        with pytest.raises(TTPError) as caught:
            c.up([(DAY, [1, 2, 3, 4])], key="wrong", check=True)
        assert (caught.value.code, str(caught.value)) == (402, "402 Unauthorized")
        assert c.up([(DAY, [1, 2, 3, 4]), ("2011-5-1 8:0:1", [1, 2, 3, 4])]).ok
        duplicate = c.up([("2011-5-1 8:0:1.0", [5, 5, 5, 5]), ("2011-5-1 8:0:2", [6, 6, 6, 6]),
                          (DAY, [7, 7, 7, 7])])
        assert (duplicate.code, duplicate.message.split(" 1<")[0]) == (406, "Duplicate sample")
        assert duplicate.duplicates == [(1, "2011-5-1 8:0:1.0"), (3, "2011-05-01 08:00:00")]
        assert c.dl().samples[0].values == [6, 6, 6, 6]     # the others were stored


def test_pipelines_answer_in_request_order(srv):
    stamps = [DAY + datetime.timedelta(seconds=n) for n in range(300)]
    with client(srv, "C4", check=True) as c:
        uploads = c.pipeline()
        for n, stamp in enumerate(stamps):
            uploads.up([(stamp, [n, n, n, n])])
        assert uploads.execute() == ["OK"] * 300
        reads = c.pipeline()
        for stamp in reversed(stamps):
            reads.dl(stamp)
        assert [a.samples[0].values[0] for a in reads.execute()] == list(range(299, -1, -1))
        ok, wrong, last = c.pipeline().ok().ok(key="wrong", check=False).dl().execute()
        assert (ok.code, wrong.code, last.samples[0].timestamp) == (200, 402, stamps[-1])
        assert c.pipeline(["TTP /ok/C4 secret", "TTP /ok/C4 x secret", "TTP /zz/C4 secret"],
                          check=False) == ["OK", "400 Bad request", "501 Not implemented"]
        with pytest.raises(TTPError) as caught:
            c.pipeline(["TTP /ok/C4 secret", "TTP /ok/C4 wrong", "TTP /dl/C4/first secret"])
        assert [a.code for a in caught.value.answers] == [200, 402, 200]


def test_reconnects_after_the_server_closed_an_idle_connection(srv):
    with client(srv, "C5") as c:
        assert c.pipeline().ok().ok().execute() == ["OK", "OK"]
        assert ttp_connections(srv) == 1
        wait_for(lambda: ttp_connections(srv) == 0)     # CHANNEL_TIMEOUT: 1
        assert c.up([(DAY, [1, 2, 3, 4])]) == "OK"
        assert c.dl().samples[0].timestamp == DAY
        assert ttp_connections(srv) == 1
    assert "no progress for" in srv.errors()


def test_the_async_client_against_the_server(srv):
    async def talk():
        async with AsyncTTPClient("127.0.0.1", srv.ttp_port, TIMEOUT, unit="C6",
                                  key="secret") as c:
            assert await c.up([(DAY, [1, 2, 3, 4]), (DAY.replace(second=1), [5, 6, 7, 8])])
            assert [s.values for s in (await c.dl(since=DAY)).samples] == \
                [[1, 2, 3, 4], [5, 6, 7, 8]]
            assert (await c.ok(key="wrong")).code == 402
            with pytest.raises(TTPError):
                await c.ok(key="wrong", check=True)
            answers = await c.pipeline().dl(DAY).dl(DAY.replace(second=1)).dl("next").execute()
            assert [a.samples[0].values[0] for a in answers] == [1, 5, 1]
            while ttp_connections(srv):     # closed while idle (CHANNEL_TIMEOUT: 1)
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.05)       # for the loop to read the end
            assert (await c.dl("next")).samples[0].values == [5, 6, 7, 8]
            assert ttp_connections(srv) == 1

    asyncio.run(talk())
    wait_for(lambda: ttp_connections(srv) == 0, 0.8)   # closed by the client, not the sweep


def test_the_context_manager_closes_and_a_restart_is_survived(server_factory):
    server = with_token(server_factory(start=False))
    server.add_units(["R1"], "secret", 4)
    server.start().keep_ports()
    with client(server, "R1", check=True) as c:
        assert c.up([(DAY, [1, 2, 3, 4])])
        assert ttp_connections(server) == 1
    wait_for(lambda: ttp_connections(server) == 0)
    with client(server, "R1", check=True) as c:
        assert c.pipeline().ok().ok().execute()
        assert server.stop() == 0
        server.start()
        assert c.dl().samples[0].timestamp == DAY
    wait_for(lambda: ttp_connections(server) == 0)


def test_socket_open_no(server_factory):
    server = server_factory("SOCKET_OPEN: no\n", start=False)
    server.add_units(["S1"], "secret", 4)
    server.start()
    with client(server, "S1", check=True) as c:
        assert [c.ok() for _ in range(3)] == ["OK"] * 3
        stamps = [DAY + datetime.timedelta(seconds=n) for n in range(5)]
        uploads = c.pipeline()
        for n, stamp in enumerate(stamps):
            uploads.up([(stamp, [n, n, n, n])])
        assert uploads.execute() == ["OK"] * 5
        assert [a.samples[0].values[0] for a in c.pipeline().dl("first").dl().execute()] == [0, 4]
