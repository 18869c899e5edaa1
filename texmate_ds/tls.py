"""TLS for the web port, sans-IO: the standard `ssl` module between memory
buffers, so HTTPS runs on the same non-blocking loop as everything else.

`TLSLayer` is one server-side TLS session with no socket inside: an
`ssl.SSLObject` made by ``SSLContext.wrap_bio`` over two `ssl.MemoryBIO`.
Its owner (`loop.Channel`, as the channel's ``transport``) feeds it the
bytes it reads with ``receive(ciphertext)``, which returns the plaintext
they carry; hands it plaintext with ``send(plaintext)``, which returns how
much it took; and writes whatever ``outgoing()`` returns to the socket.
The handshake is driven by the data alone: ``receive`` advances it, and
``send`` takes nothing until it is done. So a handshake never blocks the
loop, however slowly (or never) the client's bytes come; the channel's own
timer (HTTP_HEADER_TIMEOUT) decides how long it may take.

What a client gets wrong (garbage, a plain-HTTP request, a broken
handshake, a bad record) raises `TLSError`, one line for the log, with the
first bytes the client sent escaped; the channel closes that connection
only.

`server_context(settings)` builds the one `ssl.SSLContext` of the server
from HTTPS_CERT_FILE and HTTPS_KEY_FILE at start-up: TLS 1.2 at least,
HTTP/1.1 offered by ALPN, no renegotiation. A file that is missing,
unreadable, not PEM, encrypted or not a matching pair is a
`config.ConfigError` naming the key and the file, before any port is bound.
"""

from texmate_ds import config, loop

try:
    import ssl
except ImportError:  # a Python built without OpenSSL: HTTPS cannot be on
    ssl = None

# Plaintext taken from the SSLObject at a time.
READ_SIZE = 65536
# Bytes of the start of a connection kept to describe a failed handshake.
FIRST_BYTES = 32


class TLSError(loop.TransportError):
    """The client's TLS failed; ``str()`` is one line, client bytes escaped."""


def _escaped(data):
    """Bytes fit for a log line: control and non-ASCII bytes escaped."""
    return data.decode("latin-1").encode("unicode_escape").decode("ascii")


class TLSLayer:
    """One server-side TLS session between memory buffers (see the module
    docstring). ``handshaken`` turns true once the handshake is done;
    ``peer_closed`` once the client sent its close_notify."""

    def __init__(self, context):
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._ssl = context.wrap_bio(self._incoming, self._outgoing, server_side=True)
        self._first = b""
        self._failed = False
        self.handshaken = False
        self.peer_closed = False

    @property
    def wants_write(self):
        """True while ciphertext waits for `outgoing()`."""
        return self._outgoing.pending > 0

    def receive(self, data):
        """The plaintext carried by `data` (bytes from the client), b"" when
        it carries none yet (a handshake under way). Raises `TLSError`."""
        self._incoming.write(data)
        if not self.handshaken:
            if len(self._first) < FIRST_BYTES:
                self._first += data[:FIRST_BYTES - len(self._first)]
            try:
                self._ssl.do_handshake()
            except ssl.SSLWantReadError:
                return b""
            except ssl.SSLError as exc:
                raise self._failure(exc) from None
            self.handshaken = True
        chunks = []
        while not self.peer_closed:
            try:
                chunk = self._ssl.read(READ_SIZE)
            except ssl.SSLWantReadError:
                break
            except ssl.SSLZeroReturnError:
                chunk = b""
            except ssl.SSLError as exc:
                raise self._failure(exc) from None
            if not chunk:  # the client's close_notify
                self.peer_closed = True
            chunks.append(chunk)
        return b"".join(chunks)

    def send(self, data):
        """Encrypt `data` (plaintext) for `outgoing()`; returns how many of
        its bytes were taken: none before the handshake is done."""
        if not self.handshaken or not data:
            return 0
        try:
            return self._ssl.write(data)
        except ssl.SSLError as exc:
            raise self._failure(exc) from None

    def outgoing(self):
        """The ciphertext to write to the client, taken from the layer."""
        return self._outgoing.read()

    def goodbye(self):
        """Queue a close_notify, so the client can tell the end of the
        connection from a cut; nothing if the session never began or failed."""
        if not self.handshaken or self._failed:
            return
        try:
            self._ssl.unwrap()
        except ssl.SSLError:
            pass  # it waits for the client's close_notify; ours is queued

    def _failure(self, exc):
        self._failed = True
        reason = exc.reason or exc.__class__.__name__
        if self.handshaken:
            return TLSError("TLS failed (%s)" % reason)
        return TLSError("TLS handshake failed (%s); the connection began '%s'"
                        % (reason, _escaped(self._first)))


def server_context(settings):
    """The server's `ssl.SSLContext` from HTTPS_CERT_FILE and HTTPS_KEY_FILE,
    or None when they are not set (HTTPS off). Raises `config.ConfigError`
    naming the key and file at fault."""
    cert_file, key_file = settings.HTTPS_CERT_FILE, settings.HTTPS_KEY_FILE
    if not cert_file:
        return None

    def fail(name, why):
        line = settings.lines.get(("main", name))
        where = "%s:%d: " % (settings.config_path, line) if line else ""
        return config.ConfigError("%s[main] %s: %s: %s" % (where, name, getattr(settings, name),
                                                           why))

    if ssl is None:
        raise fail("HTTPS_CERT_FILE", "this Python has no ssl module, so HTTPS cannot be on")
    # Reading each file first says which one is missing or unreadable;
    # OpenSSL's own errors do not.
    for name in ("HTTPS_CERT_FILE", "HTTPS_KEY_FILE"):
        try:
            with open(getattr(settings, name), "rb"):
                pass
        except OSError as exc:
            raise fail(name, "cannot read it (%s)" % exc.strerror) from None
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cafile=cert_file)
    except ssl.SSLError:
        raise fail("HTTPS_CERT_FILE", "no PEM certificate in it") from None

    def no_passphrase():
        # Without this, OpenSSL would prompt on the terminal for a passphrase.
        raise _Encrypted()

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    # A client-started renegotiation is only a way to make the server work.
    context.options |= getattr(ssl, "OP_NO_RENEGOTIATION", 0)
    context.set_alpn_protocols(["http/1.1"])
    try:
        context.load_cert_chain(cert_file, key_file, password=no_passphrase)
    except _Encrypted:
        raise fail("HTTPS_KEY_FILE", "the key is encrypted; give it without a passphrase "
                                     "(openssl pkey -in KEY -out PLAIN_KEY)") from None
    except ssl.SSLError as exc:
        why = ("not the private key of HTTPS_CERT_FILE" if exc.reason == "KEY_VALUES_MISMATCH"
               else "no PEM private key in it")
        raise fail("HTTPS_KEY_FILE", why) from None
    return context


class _Encrypted(Exception):
    """The key file asks for a passphrase."""
