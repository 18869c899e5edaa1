"""Who a web request is from, behind a reverse proxy: http.client_address
and what build_environ makes of X-Forwarded-For and the URL scheme; and
what HTTPServer makes of the HTTPS settings."""

import pytest

from texmate_ds import config, http

LOCAL = config.networks("127.0.0.1")
PROXIES = config.networks("127.0.0.1, 10.0.0.0/8, 2001:db8::/32")


@pytest.mark.parametrize("peer,forwarded,proxies,client", [
    # Nothing to believe: the peer.
    ("127.0.0.1", None, LOCAL, "127.0.0.1"),
    ("127.0.0.1", "", LOCAL, "127.0.0.1"),
    ("127.0.0.1", "203.0.113.9", (), "127.0.0.1"),
    # From a trusted proxy: the address it saw.
    ("127.0.0.1", "203.0.113.9", LOCAL, "203.0.113.9"),
    ("127.0.0.1", " 203.0.113.9 ", LOCAL, "203.0.113.9"),
    # What the client wrote itself, left of that, is never believed.
    ("127.0.0.1", "1.2.3.4, 203.0.113.9", LOCAL, "203.0.113.9"),
    ("127.0.0.1", "not an address, 203.0.113.9", LOCAL, "203.0.113.9"),
    # Through a chain of trusted proxies: the first address that is not one.
    ("127.0.0.1", "1.2.3.4, 203.0.113.9, 10.1.2.3, 10.4.5.6", PROXIES, "203.0.113.9"),
    # Every hop a proxy: the browser runs on a proxy's host.
    ("127.0.0.1", "10.1.2.3, 127.0.0.1", PROXIES, "10.1.2.3"),
    # From anyone else the header is ignored.
    ("192.0.2.1", "203.0.113.9", LOCAL, "192.0.2.1"),
    ("10.9.9.8", "203.0.113.9", config.networks("10.9.9.9"), "10.9.9.8"),
    # Malformed where it matters: the peer.
    ("127.0.0.1", "203.0.113.9, garbage", LOCAL, "127.0.0.1"),
    ("127.0.0.1", "203.0.113.9:4711", LOCAL, "127.0.0.1"),
    ("127.0.0.1", "203.0.113.9,", LOCAL, "127.0.0.1"),
    ("127.0.0.1", "unknown", LOCAL, "127.0.0.1"),
    # IPv6, and IPv4 peers of a dual-stack socket.
    ("2001:db8::1", "2001:FFFF:0::2, 2001:0db8:0::ff", PROXIES, "2001:ffff::2"),
    ("::ffff:127.0.0.1", "203.0.113.9", LOCAL, "203.0.113.9"),
    ("127.0.0.1", "::ffff:203.0.113.9", LOCAL, "203.0.113.9"),
])
def test_client_address(peer, forwarded, proxies, client):
    assert http.client_address(peer, forwarded, proxies) == client


def environ(headers, scheme="http", proxies=(), peer="127.0.0.1"):
    head = http.RequestHead("GET", "/", "HTTP/1.1", [("Host", "x")] + headers, True, 0, False)
    return http.build_environ(head, b"", ("127.0.0.1", 8080), (peer, 50000),
                              http.ErrorStream(), scheme, proxies)


def test_build_environ_believes_a_trusted_proxy_and_keeps_its_headers():
    headers = [("X-Forwarded-For", "198.51.100.1"), ("X-Forwarded-For", "203.0.113.9"),
               ("X-Forwarded-Proto", "https")]
    seen = environ(headers, "https", LOCAL)
    assert seen["REMOTE_ADDR"] == "203.0.113.9"     # the two fields read as one list
    assert seen["HTTP_X_FORWARDED_FOR"] == "198.51.100.1,203.0.113.9"
    assert seen["HTTP_X_FORWARDED_PROTO"] == "https"
    assert seen["wsgi.url_scheme"] == "https"


def test_build_environ_ignores_forwarding_when_not_behind_a_proxy_or_from_others():
    headers = [("X-Forwarded-For", "203.0.113.9"), ("X-Forwarded-Proto", "https")]
    for proxies, peer in (((), "127.0.0.1"), (LOCAL, "192.0.2.1")):
        seen = environ(headers, proxies=proxies, peer=peer)
        assert seen["REMOTE_ADDR"] == peer
        assert seen["wsgi.url_scheme"] == "http"
        assert seen["HTTP_X_FORWARDED_FOR"] == "203.0.113.9"    # left as it came


@pytest.mark.parametrize("values,scheme", [
    ({}, "http"),
    ({"HTTPS_CERT_FILE": "c.pem", "HTTPS_KEY_FILE": "k.pem"}, "https"),
    # Behind a TLS-terminating proxy every request is https, so every
    # cookie is Secure, whatever X-Forwarded-Proto says.
    ({"BEHIND_HTTPS_PROXY": True}, "https"),
])
def test_the_server_scheme_and_refusal(values, scheme):
    settings = config.Settings(**values)
    context = object() if values.get("HTTPS_CERT_FILE") else None
    server = http.HTTPServer(settings, None, None, tls_context=context)
    assert server.scheme == scheme
    assert server.proxies == (LOCAL if values.get("BEHIND_HTTPS_PROXY") else ())
    # Past MAX_CONNECTIONS a TLS client is only closed: a plain-text 503
    # would be garbage to it.
    assert server.refusal == (b"" if context else http.REFUSAL)
