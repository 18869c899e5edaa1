"""The TTP client and the simulator, against a throwaway TTP stand-in.

The real server is not needed: ``StandIn`` below is a few lines of
thread-per-connection TTP on a loopback port, with modes for the awkward
things servers do (close after each answer, split an answer over two
writes, die in the middle of an answer or before answering).  Every socket
wait is bounded by a timeout and every simulation by its duration.
"""

import datetime
import json
import re
import socket
import threading
import time

import pytest

from texmate_ds import client, simulate
from texmate_ds.client import ResponseSplitter, TTPClient

TIMEOUT = 5.0
DL_ANSWER = "OK <1 2009-01-16 15:30:45 L1=1>"


class StandIn:
    """A tiny TTP server.  Modes: ``normal``, ``close`` (close after each
    answer), ``split`` (each answer in two writes), ``truncate`` (half an
    answer, then close), ``mute`` (close without answering)."""

    def __init__(self, mode="normal"):
        self.mode = mode
        self.requests = []
        self.connections = 0
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=128)
        self._listener.settimeout(0.1)
        self.port = self._listener.getsockname()[1]
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def stop(self):
        self._stopping.set()
        self._thread.join(TIMEOUT)
        self._listener.close()

    def _accept(self):
        while not self._stopping.is_set():
            try:
                conn, _ = self._listener.accept()
            except socket.timeout:
                continue
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        conn.settimeout(TIMEOUT)
        buffer = b""
        with conn:
            while not self._stopping.is_set():
                try:
                    data = conn.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                buffer += data
                while b"\r" in buffer:
                    line, buffer = buffer.split(b"\r", 1)
                    buffer = buffer.lstrip(b"\n")
                    if not self._answer(conn, line.decode("ascii")):
                        return

    def _answer(self, conn, line):
        """Answer one request; False when the connection must close."""
        self.requests.append(line)
        answer = answer_for(line).encode("ascii") + b"\r"
        if self.mode == "mute":
            return False
        if self.mode == "truncate":
            conn.sendall(answer[:len(answer) // 2])
            return False
        if self.mode == "split":
            conn.sendall(answer[:3])
            time.sleep(0.05)
            conn.sendall(answer[3:])
        else:
            conn.sendall(answer)
        return self.mode != "close"


def answer_for(line):
    path = line.split(" ", 1)[1].rsplit(" ", 1)[0]
    app, unit = path.split("/")[1:3]
    if unit.startswith("NOPE"):
        return "405 Unit not found"
    return DL_ANSWER if app == "dl" else "OK"


@pytest.fixture
def standin():
    servers = []

    def start(mode="normal"):
        servers.append(StandIn(mode))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- ResponseSplitter and helpers (no sockets) -------------------------------

def test_splitter_joins_pieces_and_ignores_lf_after_cr():
    splitter = ResponseSplitter()
    assert splitter.feed(b"OK <1 2009") == []
    assert splitter.partial == b"OK <1 2009"
    assert splitter.feed(b">\r\nOK\r") == ["OK <1 2009>", "OK"]
    assert splitter.feed(b"\n405 Unit not found\r") == ["405 Unit not found"]
    assert splitter.feed(b"\n") == []
    assert splitter.feed(b"\nOK\r") == ["\nOK"]   # only one \n is a terminator's
    assert splitter.partial == b""


def test_answer_code():
    assert client.answer_code("OK") == "OK"
    assert client.answer_code(DL_ANSWER) == "OK"
    assert client.answer_code("406 Duplicate sample 1<7-1-16 1:2:3>") == "406"
    assert client.answer_code("500") == "500"
    assert client.answer_code("garbage") == "?"


def test_format_ts():
    assert client.format_ts(datetime.datetime(2009, 1, 16, 15, 30, 45)) == "2009-01-16 15:30:45"
    assert (client.format_ts(datetime.datetime(2009, 1, 16, 15, 30, 45, 42))
            == "2009-01-16 15:30:45.000042")


def test_request_lines():
    assert (client.up_request("U1", "K", ["2009-1-16 15:30:45;11;22", "2009-1-16 15:30:46;12;23"])
            == "TTP /up/U1/<2009-1-16 15:30:45;11;22><2009-1-16 15:30:46;12;23> K")
    assert client.dl_request("U1", "K", "last") == "TTP /dl/U1/last K"
    assert client.dl_request("A1", "K", "from<9-1-16 0:0:0>", "B7") == \
        "TTP /dl/A1/from<9-1-16 0:0:0>/B7 K"
    assert client.al_request("U1", "K", 2, "d0;d1") == "TTP /al/U1/2/<d0;d1> K"
    assert client.ok_request("U1", "K") == "TTP /ok/U1 K"


def test_request_refuses_lines_that_would_shift_answers():
    with TTPClient(port=free_port()) as c:
        for line in ["", "\r", "TTP /ok/A K\rTTP /ok/B K"]:
            with pytest.raises(ValueError):
                c.request(line)


# -- TTPClient ---------------------------------------------------------------

def test_request_and_pipeline(standin):
    server = standin()
    with TTPClient(port=server.port, timeout=TIMEOUT) as c:
        assert c.ok("U1", "K") == "OK"
        assert c.request("TTP /dl/U1/last K\r") == DL_ANSWER
        assert c.up("U1", "K", ["2009-1-16 15:30:45;11;22"]) == "OK"
        assert c.dl("U1", "K", "last") == DL_ANSWER
        assert c.al("NOPE", "K", 2, "d0;d1") == "405 Unit not found"
        assert c.pipeline(["TTP /ok/U1 K", "TTP /dl/U1/last K", "TTP /ok/NOPE K"]) == \
            ["OK", DL_ANSWER, "405 Unit not found"]
    assert server.connections == 1
    assert server.requests[2] == "TTP /up/U1/<2009-1-16 15:30:45;11;22> K"


def test_reconnects_when_server_closes_after_each_answer(standin):
    server = standin("close")
    with TTPClient(port=server.port, timeout=TIMEOUT) as c:
        assert [c.ok("U%d" % n, "K") for n in range(3)] == ["OK"] * 3
        assert c.pipeline(["TTP /ok/U1 K", "TTP /dl/U1/last K", "TTP /ok/NOPE K"]) == \
            ["OK", DL_ANSWER, "405 Unit not found"]
    assert server.connections == 6


def test_answer_split_over_two_writes(standin):
    server = standin("split")
    with TTPClient(port=server.port, timeout=TIMEOUT) as c:
        assert c.dl("U1", "K", "last") == DL_ANSWER
        assert c.pipeline(["TTP /ok/U1 K", "TTP /dl/U1/last K"]) == ["OK", DL_ANSWER]


def test_close_in_the_middle_of_an_answer_raises(standin):
    server = standin("truncate")
    with TTPClient(port=server.port, timeout=TIMEOUT) as c:
        with pytest.raises(ConnectionError, match="middle of an answer"):
            c.dl("U1", "K", "last")


def test_close_before_the_first_answer_raises(standin):
    server = standin("mute")
    with TTPClient(port=server.port, timeout=TIMEOUT) as c:
        with pytest.raises(ConnectionError, match="before answering"):
            c.ok("U1", "K")
    assert server.connections == 1     # no retry: the server may have acted


# -- the client command --------------------------------------------------------

def test_main_exit_codes(standin, capsys):
    server = standin()
    port = str(server.port)
    assert client.main(["--port", port, "ok", "U1", "K"]) == 0
    assert capsys.readouterr().out == "OK\n"
    assert client.main(["--port", port, "dl", "U1", "K", "last"]) == 0
    assert capsys.readouterr().out == DL_ANSWER + "\n"
    assert client.main(["--port", port, "al", "U1", "K", "2", "d0;d1"]) == 0
    assert client.main(["--port", port, "up", "NOPE", "K", "2009-1-16 15:30:45;1"]) == 1
    assert capsys.readouterr().out.endswith("405 Unit not found\n")

    closed = str(free_port())
    assert client.main(["--port", closed, "--timeout", "2", "ok", "U1", "K"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "127.0.0.1:%s" % closed in captured.err
    assert "refused" in captured.err.lower()


def test_main_raw_pipelines(standin, capsys):
    server = standin()
    assert client.main(["--port", str(server.port), "raw",
                        "TTP /ok/U1 K", "TTP /dl/U1/last K", "TTP /ok/NOPE K"]) == 1
    assert capsys.readouterr().out.splitlines() == ["OK", DL_ANSWER, "405 Unit not found"]
    assert server.connections == 1


def test_main_up_now(standin, capsys):
    server = standin()
    assert client.main(["--port", str(server.port), "up", "U1", "K", "now;1;2", "now;3;4"]) == 0
    ts = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d{6})?"
    match = re.fullmatch(r"TTP /up/U1/<(%s);1;2><(%s);3;4> K" % (ts, ts), server.requests[0])
    assert match
    assert match.group(1) < match.group(3)


# -- the simulator ---------------------------------------------------------------

def test_meter_timestamps_strictly_increase():
    meter = simulate.Meter("SIM1", "simkey", fields=3, samples_per_request=2, interval=1.0)
    now = datetime.datetime(2024, 5, 1, 12, 0, 0)
    first = meter.next_samples(now)
    second = meter.next_samples(now)     # a clock that did not move
    stamps = [s.split(";")[0] for s in first + second]
    assert stamps == ["2024-05-01 11:59:59.500000", "2024-05-01 12:00:00",
                      "2024-05-01 12:00:00.000001", "2024-05-01 12:00:00.000002"]
    assert all(len(s.split(";")) == 4 for s in first + second)
    assert simulate.Meter("SIM1", "simkey", 3).next_samples(now)[0] != \
        simulate.Meter("SIM2", "simkey", 3).next_samples(now)[0]


def test_meter_raises_an_alarm_every_nth_request():
    meter = simulate.Meter("SIM1", "simkey", fields=2, samples_per_request=3, alarm_every=3)
    requests = [meter.next_request() for _ in range(7)]
    kinds = [r.split("/")[1] for r in requests]
    assert kinds == ["up", "up", "al", "up", "up", "al", "up"]
    assert re.fullmatch(r"TTP /al/SIM1/1/<\d{4}-\d\d-\d\d [0-9:.]+;simulated alarm 2> simkey",
                        requests[5])
    assert (meter.last_samples, meter.last_was_alarm, meter.alarms) == (3, False, 2)
    never = simulate.Meter("SIM2", "simkey", fields=1)
    assert all(never.next_request().startswith("TTP /up/") for _ in range(5))


def test_percentile():
    values = [float(n) for n in range(1, 101)]
    assert simulate.percentile(values, 0.5) == 50.0
    assert simulate.percentile(values, 0.99) == 99.0
    assert simulate.percentile([7.0], 0.99) == 7.0
    assert simulate.percentile([], 0.5) is None


def run_simulate(port, *options, tmp_path):
    out = tmp_path / "figures.json"
    status = simulate.main(["--port", str(port), "--json", str(out)] + list(options))
    return status, json.loads(out.read_text())


def test_simulate_five_meters(standin, tmp_path, capsys):
    server = standin()
    status, fig = run_simulate(server.port, "--meters", "5", "--interval", "0.1",
                               "--duration", "2", "--samples", "2", tmp_path=tmp_path)
    assert status == 0
    assert fig["errors"] == {} and fig["connection_failures"] == 0 and fig["unanswered"] == 0
    assert fig["meters"] == 5 and fig["ok"] == fig["answered"] == fig["requests_sent"]
    assert 35 <= fig["requests_per_s"] <= 55      # 5 meters, 10 requests/s each
    assert fig["samples_per_s"] == pytest.approx(2 * fig["requests_per_s"], rel=0.01)
    assert 0 < fig["median_ms"] <= fig["p99_ms"] < 1000
    assert server.connections == 1 + 5     # the reachability probe, then one per meter
    assert {line.split("/")[2] for line in server.requests} == {"SIM1", "SIM2", "SIM3",
                                                                "SIM4", "SIM5"}
    assert re.fullmatch(r"TTP /up/SIM\d/(<[^<>]+(;-?\d+\.\d{3}){4}>){2} simkey",
                        server.requests[0])
    printed = capsys.readouterr().out
    assert "samples/s" in printed and "median" in printed


def test_simulate_open_no_and_downloads(standin, tmp_path):
    server = standin()
    status, fig = run_simulate(server.port, "--meters", "2", "--download", "2", "--interval",
                               "0.2", "--duration", "1", "--open-no", tmp_path=tmp_path)
    assert status == 0
    assert server.connections == 1 + fig["answered"]    # the probe, then one per request
    downloads = [line for line in server.requests if line.startswith("TTP /dl/")]
    assert downloads and set(downloads) <= {"TTP /dl/SIM1/last simkey",
                                            "TTP /dl/SIM2/last simkey"}


def test_simulate_against_a_server_that_closes_after_each_answer(standin, tmp_path):
    server = standin("close")
    status, fig = run_simulate(server.port, "--meters", "3", "--interval", "0.2",
                               "--duration", "1", tmp_path=tmp_path)
    assert status == 0 and fig["connection_failures"] == 0 and fig["ok"] >= 9


def test_simulate_counts_error_answers(standin, tmp_path):
    server = standin()
    status, fig = run_simulate(server.port, "--meters", "2", "--prefix", "NOPE", "--interval",
                               "0.2", "--duration", "0.5", tmp_path=tmp_path)
    assert status == 1
    assert fig["ok"] == 0 and fig["errors"] == {"405": fig["answered"]} and fig["answered"] > 0


def test_simulate_without_a_server(capsys):
    port = free_port()
    assert simulate.main(["--port", str(port), "--duration", "1"]) == 2
    assert "127.0.0.1:%d" % port in capsys.readouterr().err
