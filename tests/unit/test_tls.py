"""tls.py without sockets: the server's `TLSLayer` and a client
`ssl.SSLObject` (the standard library's own client) over memory buffers,
the bytes carried between them by the test in pieces of odd sizes; and
`server_context`'s refusals of files that cannot serve HTTPS."""

import ssl
import subprocess
import warnings

import pytest

from texmate_ds import config, loop, tls


@pytest.fixture(scope="module")
def context(certificate):
    settings = config.Settings(HTTPS_CERT_FILE=str(certificate[0]),
                               HTTPS_KEY_FILE=str(certificate[1]))
    return tls.server_context(settings)


class Client:
    """A TLS client over memory buffers, trusting the test's certificate."""

    def __init__(self, certificate, alpn=(), ciphers=None, **versions):
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.load_verify_locations(str(certificate[0]))
        if alpn:
            context.set_alpn_protocols(alpn)
        if ciphers:
            context.set_ciphers(ciphers)
        for name, version in versions.items():
            setattr(context, name, version)
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.ssl = context.wrap_bio(self.incoming, self.outgoing, server_hostname="localhost")

    def handshake(self):
        """True once done; what it has to send is in `outgoing`."""
        try:
            self.ssl.do_handshake()
        except ssl.SSLWantReadError:
            return False
        return True

    def read_all(self):
        chunks = []
        while True:
            try:
                chunk = self.ssl.read(65536)
            except (ssl.SSLWantReadError, ssl.SSLZeroReturnError):
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)


def pieces(data, sizes):
    """`data` cut into pieces of the given sizes, cycled."""
    at, turn = 0, 0
    while at < len(data):
        size = sizes[turn % len(sizes)]
        yield data[at:at + size]
        at += size
        turn += 1


def to_server(client, layer, sizes):
    """What the client has to send, fed to the layer piece by piece; the
    plaintext that comes out."""
    return b"".join(layer.receive(piece) for piece in pieces(client.outgoing.read(), sizes))


def to_client(layer, client, sizes):
    for piece in pieces(layer.outgoing(), sizes):
        client.incoming.write(piece)


def connect(layer, client, sizes):
    for _ in range(10):
        done = client.handshake()
        assert to_server(client, layer, sizes) == b""
        to_client(layer, client, sizes)
        if done and layer.handshaken:
            return
    raise AssertionError("no handshake after 10 round trips")


SPLITS = [(1,), (7, 13), (333, 1, 5000), (1 << 20,)]


@pytest.mark.parametrize("sizes", SPLITS)
def test_handshake_and_data_both_ways_however_split(context, certificate, sizes):
    layer, client = tls.TLSLayer(context), Client(certificate)
    assert layer.send(b"too early") == 0    # nothing is taken before the handshake
    connect(layer, client, sizes)
    assert client.ssl.version() in ("TLSv1.2", "TLSv1.3")
    assert client.ssl.selected_alpn_protocol() is None   # the client offered none

    request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" + bytes(range(256)) * 200
    client.ssl.write(request)
    assert to_server(client, layer, sizes) == request

    answer = b"".join(b"%d,row\n" % i for i in range(20000))
    taken = 0
    while taken < len(answer):
        taken += layer.send(answer[taken:taken + 16384])
    assert layer.wants_write
    to_client(layer, client, sizes)
    assert not layer.wants_write
    assert client.read_all() == answer
    assert not layer.peer_closed


def test_alpn_offers_http_1_1(context, certificate):
    layer, client = tls.TLSLayer(context), Client(certificate, alpn=["h2", "http/1.1"])
    connect(layer, client, (4096,))
    assert client.ssl.selected_alpn_protocol() == "http/1.1"


def test_the_clients_close_notify_ends_its_side(context, certificate):
    layer, client = tls.TLSLayer(context), Client(certificate)
    connect(layer, client, (97,))
    client.ssl.write(b"last words")
    with pytest.raises(ssl.SSLWantReadError):
        client.ssl.unwrap()     # sends close_notify, then waits for ours
    assert to_server(client, layer, (5,)) == b"last words"
    assert layer.peer_closed
    # The answer may still go out (TLS 1.3 half-close), then our goodbye.
    assert layer.send(b"answer") == 6
    layer.goodbye()
    to_client(layer, client, (11,))
    assert client.read_all() == b"answer"


def test_goodbye_sends_close_notify_once_the_session_began(context, certificate):
    layer = tls.TLSLayer(context)
    layer.goodbye()
    assert layer.outgoing() == b""      # no session yet: nothing to end
    client = Client(certificate)
    connect(layer, client, (1000,))
    layer.goodbye()
    to_client(layer, client, (3,))
    assert client.read_all() == b""     # a clean end, not a cut


def test_a_partial_client_hello_waits_for_more(context, certificate):
    layer, client = tls.TLSLayer(context), Client(certificate)
    client.handshake()
    hello = client.outgoing.read()
    assert layer.receive(hello[:10]) == b""
    assert not layer.handshaken and not layer.wants_write
    assert layer.receive(hello[10:]) == b""
    assert layer.wants_write    # the server's flight is ready to go


@pytest.mark.parametrize("data,shown", [
    (b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", r"'GET /healthz HTTP/1.1\r\nHost: x\r\n'"),
    (b"\x00\x1b[2J\xff" + b"junk" * 20, r"\x00\x1b[2J\xffjunk"),
])
def test_garbage_and_plain_http_fail_in_one_escaped_line(context, data, shown):
    layer = tls.TLSLayer(context)
    with pytest.raises(tls.TLSError) as failed:
        layer.receive(data)
    message = str(failed.value)
    assert isinstance(failed.value, loop.TransportError)
    assert message.startswith("TLS handshake failed (")
    assert shown in message
    assert message.isprintable() and len(message) < 200


def test_a_bad_record_after_the_handshake_fails(context, certificate):
    layer, client = tls.TLSLayer(context), Client(certificate)
    connect(layer, client, (512,))
    client.ssl.write(b"hello")
    record = bytearray(client.outgoing.read())
    record[-1] ^= 1     # the authentication tag no longer matches
    with pytest.raises(tls.TLSError, match=r"^TLS failed \("):
        layer.receive(bytes(record))


def test_tls_below_1_2_is_refused(context, certificate):
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)     # TLS 1.1 is, rightly
        # SECLEVEL 0, or OpenSSL 3 would not even offer TLS 1.1.
        client = Client(certificate, ciphers="DEFAULT:@SECLEVEL=0",
                        minimum_version=ssl.TLSVersion.TLSv1,
                        maximum_version=ssl.TLSVersion.TLSv1_1)
    layer = tls.TLSLayer(context)
    client.handshake()
    with pytest.raises(tls.TLSError, match="UNSUPPORTED_PROTOCOL"):
        to_server(client, layer, (100,))
    assert layer.wants_write    # the alert that tells the client why


# -- server_context --------------------------------------------------------------

def test_no_files_no_https():
    assert tls.server_context(config.Settings()) is None


@pytest.fixture(scope="module")
def bad_files(certificate, tmp_path_factory):
    folder = tmp_path_factory.mktemp("bad-tls")
    other, encrypted = folder / "other.pem", folder / "encrypted.pem"
    subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt",
                    "rsa_keygen_bits:2048", "-out", str(other)],
                   check=True, capture_output=True, timeout=60)
    subprocess.run(["openssl", "pkey", "-in", str(certificate[1]), "-aes256", "-passout",
                    "pass:secret", "-out", str(encrypted)],
                   check=True, capture_output=True, timeout=60)
    return {"cert": str(certificate[0]), "key": str(certificate[1]), "other": str(other),
            "encrypted": str(encrypted), "missing": str(folder / "missing.pem")}


@pytest.mark.parametrize("cert,key,blamed,why", [
    ("missing", "key", "HTTPS_CERT_FILE", "cannot read it (No such file or directory)"),
    ("cert", "missing", "HTTPS_KEY_FILE", "cannot read it (No such file or directory)"),
    ("key", "key", "HTTPS_CERT_FILE", "no PEM certificate in it"),
    ("cert", "cert", "HTTPS_KEY_FILE", "no PEM private key in it"),
    ("cert", "other", "HTTPS_KEY_FILE", "not the private key of HTTPS_CERT_FILE"),
    ("cert", "encrypted", "HTTPS_KEY_FILE", "the key is encrypted"),
])
def test_unusable_files_are_named_with_their_key(bad_files, cert, key, blamed, why):
    settings = config.Settings(HTTPS_CERT_FILE=bad_files[cert], HTTPS_KEY_FILE=bad_files[key])
    with pytest.raises(config.ConfigError) as refused:
        tls.server_context(settings)
    path = bad_files[cert if blamed == "HTTPS_CERT_FILE" else key]
    assert str(refused.value).startswith("[main] %s: %s: %s" % (blamed, path, why))


def test_the_error_names_the_line_of_txm_conf(bad_files, tmp_path):
    conf = tmp_path / "txm.conf"
    settings = config.parse(str(conf), "HTTP_PORT: 0\nHTTPS_CERT_FILE: %s\nHTTPS_KEY_FILE: %s\n"
                            % (bad_files["cert"], bad_files["other"]))
    with pytest.raises(config.ConfigError) as refused:
        tls.server_context(settings)
    assert str(refused.value).startswith("%s:3: [main] HTTPS_KEY_FILE: " % conf)
