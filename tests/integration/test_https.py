"""HTTPS on the web port and the reverse-proxy settings, over real sockets.

The real server runs with a self-signed certificate made by openssl (the
conftest `certificate`; skipped where openssl is missing) and clients use
the standard `ssl` module: pages, sign-in and a streamed CSV over TLS,
handshakes that stall or fail, and the start refused over a bad file. Two
tests run an `http.HTTPServer` on a loop in this process, to see output
held back over TLS as over plain TCP, and a cut answer reset. Behind a
proxy, who signed in is read from the server's log, where the sign-in
names REMOTE_ADDR, the address its throttle counts.
"""

import csv
import io
import re
import select
import socket
import ssl
import subprocess
import threading
import time
from http.client import HTTPSConnection

import pytest

from texmate_ds import config, tls

from conftest import BASE_CONF, Browser, Server, loop_serving, server_on
from test_http import Client, request

NEW_PASSWORD = "pump-station-7"
HEADER_TIMEOUT = 2
SAMPLES = 3000


def client_context(certificate):
    return ssl.create_default_context(cafile=str(certificate[0]))


def https_conf(certificate, extra=""):
    """The txm.conf lines, after BASE_CONF's, of HTTPS with `certificate`."""
    return "HTTPS_CERT_FILE: %s\nHTTPS_KEY_FILE: %s\n%s" % (certificate[0], certificate[1], extra)


class TLSClient(Client):
    """test_http's strict reader over TLS. With ``ragged=False`` a
    connection that ends without the server's close_notify raises."""

    def __init__(self, port, context, ragged=True):
        super().__init__(port)
        self.sock = context.wrap_socket(self.sock, server_hostname="127.0.0.1",
                                        suppress_ragged_eofs=ragged)


class HTTPSBrowser(Browser):
    def __init__(self, port, context):
        super().__init__(port)
        self.context = context

    def connect(self):
        return HTTPSConnection("127.0.0.1", self.port, timeout=10, context=self.context)


def cookie_lines(answer):
    return {line.split("=", 1)[0]: line for line in answer.headers.get_all("Set-Cookie") or []}


def wait_for(predicate, seconds=10):
    """True once `predicate()` is, False after `seconds`: for log lines
    the server writes as it goes."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def read_to_close(sock, seconds=15):
    """What the server sends on `sock` until it closes it (FIN or reset);
    fails if it is still open after `seconds`."""
    sock.settimeout(seconds)
    data = b""
    try:
        while True:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    except ConnectionResetError:
        pass
    except socket.timeout:
        raise AssertionError("still open after %d s" % seconds) from None
    return data


def client_hello(certificate):
    """The first flight of a real TLS client, to send part of."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    client = client_context(certificate).wrap_bio(incoming, outgoing,
                                                  server_hostname="127.0.0.1")
    with pytest.raises(ssl.SSLWantReadError):
        client.do_handshake()
    return outgoing.read()


@pytest.fixture(scope="module")
def https(tmp_path_factory, certificate, engine):
    """One HTTPS server for the module: unit A1 (4 fields, key k1), the
    Administrator's password changed to NEW_PASSWORD."""
    srv = server_on(engine, tmp_path_factory.mktemp("https") / "srv",
                    https_conf(certificate, "HTTP_HEADER_TIMEOUT: %d\n" % HEADER_TIMEOUT))
    srv.add_unit("A1", "k1", 4)
    srv.manage("changepassword", "Administrator", "--noinput",
               env=dict(srv.env, TXM_PASSWORD=NEW_PASSWORD))
    srv.context = client_context(certificate)
    yield srv.start()
    srv.kill()


def test_healthz_over_https_with_keep_alive(https):
    assert "web: https://127.0.0.1:%d/" % https.http_port in https.output()
    client = TLSClient(https.http_port, https.context, ragged=False)
    assert client.sock.version() in ("TLSv1.2", "TLSv1.3")
    for _ in range(3):
        client.send(request("/healthz"))
        answer = client.response()
        assert (answer.status, answer.body) == (200, b"ok\n")
        assert "connection" not in answer.headers
    # Pipelined, then closed by the request: the end is a clean TLS close.
    client.send(request("/healthz") + request("/nothing") +
                request("/healthz", headers="Connection: close\r\n"))
    assert [client.response().status for _ in range(3)] == [200, 404, 200]
    assert client.closed()


def test_sign_in_over_https_sets_secure_cookies(https):
    browser = HTTPSBrowser(https.http_port, https.context)
    form = browser.get("/login/")
    assert "Secure" in cookie_lines(form)["txm_csrf"].split("; ")
    signed = browser.sign_in("Administrator", NEW_PASSWORD)
    assert (signed.status, signed.header("Location")) == (303, "/")
    session = cookie_lines(signed)["txm_session"]
    assert {"Secure", "HttpOnly"} <= set(session.split("; "))
    home = browser.get("/")
    assert home.status == 200 and '<a href="/units/A1/">' in home.body


def test_a_long_csv_arrives_whole_over_tls(https):
    rows = ["<2024-01-01 %02d:%02d:%02d;%d;%d;3.5;4>" % (i // 3600, i // 60 % 60, i % 60, i,
                                                          i * 7)
            for i in range(SAMPLES)]
    lines = ["TTP /up/A1/%s k1\r" % "".join(rows[at:at + 100]) for at in range(0, SAMPLES, 100)]
    assert https.exchange("".join(lines), answers=len(lines)) == ["OK"] * len(lines)

    browser = HTTPSBrowser(https.http_port, https.context)
    assert browser.sign_in("Administrator", NEW_PASSWORD).status == 303
    path = "/units/A1/samples.csv?from=2024-01-01&to=2024-01-01"
    chunked = browser.get(path)
    assert chunked.header("Transfer-Encoding") == "chunked"
    table = list(csv.reader(io.StringIO(chunked.body)))
    assert len(table) == SAMPLES + 1 and len(chunked.raw) > 100000
    assert table[-1][1:] == ["2024-01-01 00:49:59", str(SAMPLES - 1), str(7 * (SAMPLES - 1)),
                             "3.5", "4"]
    # HTTP/1.0: the body ends with the connection, and TLS says it ended.
    client = TLSClient(https.http_port, https.context, ragged=False)
    client.send(request(path, version="HTTP/1.0",
                        headers="Cookie: txm_session=%s\r\n" % browser.cookies["txm_session"]))
    whole = client.response()
    assert whole.headers["connection"] == "close"
    assert whole.body == chunked.raw


def test_a_stalled_handshake_holds_up_nobody_and_is_closed(https, certificate):
    hello = client_hello(certificate)
    silent = socket.create_connection(("127.0.0.1", https.http_port))
    partial = socket.create_connection(("127.0.0.1", https.http_port))
    partial.sendall(hello[:10])
    dribbler = socket.create_connection(("127.0.0.1", https.http_port))
    dribbler.sendall(hello[:1])
    # Served while all three wait, well within their HTTP_HEADER_TIMEOUT.
    browser = HTTPSBrowser(https.http_port, https.context)
    assert browser.get("/healthz").body == "ok\n"
    # A byte every 0.2 s never completes the handshake in time: closed.
    dribbled = 1
    for byte in hello[1:1 + 5 * HEADER_TIMEOUT * 3]:
        if select.select([dribbler], [], [], 0.2)[0]:
            break
        try:
            dribbler.sendall(bytes([byte]))
        except (BrokenPipeError, ConnectionResetError):
            break
        dribbled += 1
    assert dribbled < len(hello)
    for sock in (silent, partial, dribbler):
        read_to_close(sock)
        sock.close()
    assert "Traceback" not in https.errors()


@pytest.mark.parametrize("data,logged,answer", [
    # Nothing comes back: no answer a browser could misread.
    (request("/plain-to-https"), r"'GET /plain-to-https HTTP/1.1\r\nHo'", b""),
    # A TLS alert, at most.
    (b"\x1b[2J\x00garbage" * 4, r"'\x1b[2J\x00garbage\x1b[2J", None),
])
def test_plain_http_and_garbage_close_only_their_connection(https, data, logged, answer):
    kept = TLSClient(https.http_port, https.context)
    kept.send(request("/healthz"))
    assert kept.response().status == 200
    bad = socket.create_connection(("127.0.0.1", https.http_port), timeout=10)
    bad.sendall(data)
    got = read_to_close(bad)
    assert got == answer if answer is not None else len(got) < 10
    bad.close()
    kept.send(request("/healthz"))
    assert kept.response().status == 200
    kept.close()
    assert wait_for(lambda: logged in https.errors())
    line = [line for line in https.errors().splitlines() if logged in line]
    assert len(line) == 1 and " INFO texmate_ds.loop: 127.0.0.1:" in line[0]
    assert "TLS handshake failed" in line[0] and line[0].endswith("; closing")
    assert "Traceback" not in https.errors()


def test_a_bad_certificate_or_key_stops_the_start(tmp_path, certificate):
    missing = tmp_path / "nowhere" / "cert.pem"
    srv = Server(tmp_path / "srv", BASE_CONF + "HTTPS_CERT_FILE: %s\nHTTPS_KEY_FILE: %s\n"
                 % (missing, certificate[1]))
    result = subprocess.run(srv.command + ["--config", str(srv.conf), "serve"], cwd=srv.dir,
                            env=srv.env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "listening" not in result.stdout
    expected = "%s:5: [main] HTTPS_CERT_FILE: %s: cannot read it" % (srv.conf, missing)
    assert "texmate_ds: cannot start: " + expected in result.stderr
    assert "Traceback" not in result.stderr
    check = srv.manage("check", check=False)
    assert check.returncode == 2 and expected in check.stderr
    # With good files, check says where the web will be.
    srv.conf.write_text(BASE_CONF + https_conf(certificate))
    assert "web at https://127.0.0.1:0/" in srv.manage("check").stdout


# -- flow control over TLS, on a loop in this process ---------------------------

def serving(app, certificate):
    """`app` over HTTPS on a real loop in a thread (conftest.loop_serving)."""
    settings = config.Settings(HTTP_HEADER_TIMEOUT=5, HTTPS_CERT_FILE=str(certificate[0]),
                               HTTPS_KEY_FILE=str(certificate[1]))
    return loop_serving(app, settings, tls_context=tls.server_context(settings))


def test_output_is_held_back_over_tls_as_over_tcp(certificate):
    block = b"b" * 65536
    made = []
    closed = threading.Event()

    def endless(environ, start_response):
        assert environ["wsgi.url_scheme"] == "https"
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        try:
            for _ in range(100000):     # 6.5 GB if it were all made
                made.append(1)
                yield block
        finally:
            closed.set()

    with serving(endless, certificate) as server:
        client = TLSClient(server.port, client_context(certificate))
        client.send(request("/big"))
        assert client._line() == b"HTTP/1.1 200 OK"
        time.sleep(0.5)     # time to run ahead, were it not held back
        assert len(made) < 1000
        client.close()
        assert closed.wait(10), "the app's iterable was not closed"


def test_an_answer_cut_short_ends_in_a_reset_not_a_tls_close(certificate):
    def failing(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield b"first part\n"
        raise ValueError("mid-stream")

    with serving(failing, certificate) as server:
        client = TLSClient(server.port, client_context(certificate), ragged=False)
        # HTTP/1.0: the body would end with the connection, so a clean TLS
        # close after the first part would pass it off as the whole.
        client.send(request("/cut", version="HTTP/1.0"))
        assert client._line() == b"HTTP/1.1 200 OK"
        with pytest.raises((ConnectionResetError, ssl.SSLError)):
            client.rest()
        client.close()


# -- behind a reverse proxy -------------------------------------------------------

@pytest.mark.parametrize("proxies,seen", [
    ("", "203.0.113.9"),                         # 127.0.0.1, the default: trusted
    ("PROXY_ADDRESSES: 10.9.9.9\n", "127.0.0.1"),   # the header comes from anyone
])
def test_behind_a_proxy_the_client_is_the_forwarded_address(server_factory, proxies, seen):
    srv = server_factory("BEHIND_HTTPS_PROXY: yes\n" + proxies)
    browser = Browser(srv.http_port)
    forwarded = {"X-Forwarded-For": "198.51.100.1, 203.0.113.9", "X-Forwarded-Proto": "https"}
    form = browser.get("/login/", **forwarded)
    # TLS ends at the proxy, so the cookie is Secure, from whomever.
    assert "Secure" in cookie_lines(form)["txm_csrf"].split("; ")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.body).group(1)
    signed = browser.post("/login/", {"username": "Administrator", "password": "admin",
                                      "next": "/", "csrf_token": token}, **forwarded)
    assert signed.status == 303
    assert "Secure" in cookie_lines(signed)["txm_session"].split("; ")
    assert wait_for(lambda: "Administrator signed in from " in srv.errors())
    assert "Administrator signed in from %s\n" % seen in srv.errors()
