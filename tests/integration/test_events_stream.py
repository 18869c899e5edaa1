"""``/events`` over raw sockets against the real server: the event format,
the unit filter, who may watch what, resuming with Last-Event-ID, and
the cap on open streams."""

import json
import socket

import pytest

from conftest import child_env

KEY = "k1"


@pytest.fixture
def srv(server_factory):
    srv = server_factory("MAX_EVENT_STREAMS: 2\n", start=False)
    srv.add_unit("A1", KEY, 2)
    srv.add_unit("B7", KEY, 1)
    env = dict(child_env(), TXM_PASSWORD="pw-for-ann")
    srv.manage("changepassword", "Administrator", "--noinput", env=env)
    srv.token = srv.manage("addtoken", "Administrator", "--name", "t").stdout.strip()
    srv.manage("adduser", "ann", "--noinput", env=env)
    db = srv.database()
    ann = db.accounts.get_user_by_name("ann")
    db.accounts.set_units("user", ann.id, [db.units.get("A1").id])
    db.commit()
    db.close()
    srv.ann = srv.manage("addtoken", "ann", "--name", "t").stdout.strip()
    srv.start()
    return srv


class Stream:
    """A raw HTTP/1.1 connection reading an event stream."""

    def __init__(self, srv, path, token, last_event_id=None):
        self.sock = socket.create_connection(("127.0.0.1", srv.http_port), timeout=10)
        extra = "Last-Event-ID: %s\r\n" % last_event_id if last_event_id else ""
        self.sock.sendall(("GET %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n%s\r\n"
                           % (path, token, extra)).encode())
        self.data = b""
        while b"\r\n\r\n" not in self.data:
            self.data += self._recv()
        head, self.data = self.data.split(b"\r\n\r\n", 1)
        self.head = head.decode()
        self.status = int(self.head.split()[1])
        self.text = ""

    def _recv(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError("the stream ended")
        return chunk

    def _unchunk(self):
        """Move whole chunks of the chunked body into `text`."""
        while True:
            line, sep, rest = self.data.partition(b"\r\n")
            if not sep:
                return
            size = int(line, 16)
            if len(rest) < size + 2:
                return
            self.text += rest[:size].decode()
            self.data = rest[size + 2:]

    def event(self):
        """The next event block as {field: value}, comments skipped."""
        while True:
            self._unchunk()
            if "\n\n" in self.text:
                block, self.text = self.text.split("\n\n", 1)
                fields = {}
                for line in block.split("\n"):
                    if line.startswith(":"):
                        continue
                    name, _, value = line.partition(": ")
                    fields[name] = value
                if "event" in fields:
                    return fields
                continue
            self.data += self._recv()

    def close(self):
        self.sock.close()


def test_samples_and_alarms_arrive_after_their_commit_for_the_units_asked(srv):
    stream = Stream(srv, "/events?units=A1", srv.token)
    try:
        assert stream.status == 200 and "text/event-stream" in stream.head
        assert srv.ask("TTP /up/B7/<2024-03-01 00:00:00;5> %s" % KEY) == "OK"
        assert srv.ask("TTP /up/A1/<2024-03-01 00:00:01;1.5;2> %s" % KEY) == "OK"
        first = stream.event()
        assert first["event"] == "sample"
        data = json.loads(first["data"])
        assert data == {"unit": "A1", "id": int(first["id"]),
                        "timestamp": "2024-03-01 00:00:01", "values": [1.5, 2.0]}
        assert srv.ask("TTP /al/A1/2/<2024-03-01 00:00:02;high> %s" % KEY) == "OK"
        alarm = stream.event()
        assert alarm["event"] == "alarm" and alarm["id"].startswith("a")
        assert json.loads(alarm["data"])["data"] == ["2024-03-01 00:00:02", "high"]
    finally:
        stream.close()


def test_a_reconnecting_client_gets_what_it_missed_first(srv):
    stream = Stream(srv, "/events?units=A1", srv.token)
    assert srv.ask("TTP /up/A1/<2024-03-01 00:00:01;1;1> %s" % KEY) == "OK"
    seen = stream.event()["id"]
    stream.close()
    for second in (2, 3):
        assert srv.ask("TTP /up/A1/<2024-03-01 00:00:%02d;%d;1> %s" % (second, second, KEY)) \
            == "OK"
    again = Stream(srv, "/events?units=A1", srv.token, last_event_id=seen)
    try:
        missed = [json.loads(again.event()["data"])["timestamp"] for _ in range(2)]
        assert missed == ["2024-03-01 00:00:02", "2024-03-01 00:00:03"]
    finally:
        again.close()


def test_only_units_the_viewer_sees_and_only_so_many_streams(srv):
    for path, token, status in (("/events?units=B7", srv.ann, 403),
                                ("/events?units=NOPE", srv.token, 403),
                                ("/events", "not-a-token", 401),
                                ("/events?evil=1", srv.token, 400)):
        refused = Stream(srv, path, token)
        assert refused.status == status, path
        refused.close()
    mine = Stream(srv, "/events", srv.ann)          # by default: A1 only, for ann
    other = Stream(srv, "/events?units=A1,B7", srv.token)
    try:
        full = Stream(srv, "/events", srv.token)
        assert full.status == 503 and "Retry-After:" in full.head
        full.close()
        assert srv.ask("TTP /up/B7/<2024-03-01 00:00:00;5> %s" % KEY) == "OK"
        assert srv.ask("TTP /up/A1/<2024-03-01 00:00:01;1;2> %s" % KEY) == "OK"
        assert json.loads(mine.event()["data"])["unit"] == "A1"
        assert [json.loads(other.event()["data"])["unit"] for _ in range(2)] == ["B7", "A1"]
    finally:
        mine.close()
        other.close()
