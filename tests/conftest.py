"""Shared test fixtures.

`server_factory` starts the real server (``python -m texmate_ds serve``) as
a subprocess in a temporary folder with its own txm.conf, on ports the OS
picks (``DS_PORT: 0``), bound to 127.0.0.1, and stops it after the test.
Tests talk to it over real sockets; nothing of ours is mocked.

The servers these fixtures start run on each engine in turn (the
`engine` parameter): SQLite in their folder, and PostgreSQL, a cluster
the test run starts itself (`tests/postgres.py`) with a new database for
every server. Where PostgreSQL cannot be had, its half skips with the
reason printed.

scripts/test.py runs the suite on several pytest processes at once, each
with its own PostgreSQL cluster; `workers` (registered here) shares the
tests out between them.

Slow tests (``@pytest.mark.slow``) run when TXM_SLOW=1 (CI sets it through
scripts/test.py); otherwise they are skipped with that reason printed.
"""

import contextlib
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlencode
from wsgiref.simple_server import WSGIRequestHandler, make_server

import postgres
import pytest
import workers

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT = 20
ENGINES = ("sqlite3", "postgresql")


def pytest_configure(config):
    config.pluginmanager.register(workers, "texmate_ds-workers")


def pytest_collection_modifyitems(config, items):
    if os.environ.get("TXM_SLOW") == "1":
        return
    skip = pytest.mark.skip(reason="slow test: runs in CI, or locally with TXM_SLOW=1")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


def child_env(project_on_path=True):
    """The environment for servers and commands the tests start: never a
    TXM_CONF of the caller's; the project on PYTHONPATH unless the test
    proves something runs without it (the .pyz)."""
    env = dict(os.environ)
    for name in ("PYTHONPATH", "TXM_CONF", "TXM_PASSWORD"):
        env.pop(name, None)
    if project_on_path:
        env["PYTHONPATH"] = str(ROOT)
    return env


def run_bench(tmp_path, script, *args, timeout=120):
    """Run bench/`script` with `args` and ``--json`` into `tmp_path`: its
    stdout and the report it wrote, once it exited 0."""
    out = tmp_path / (script.rsplit(".", 1)[0] + ".json")
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), *args, "--json", str(out)],
        cwd=ROOT, env=child_env(), capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout, json.loads(out.read_text())


class Server:
    """A running server process and the ways tests reach it."""

    def __init__(self, folder, conf_text, command=None, env=None, engine="sqlite3"):
        self.engine = engine
        self.env = env or child_env()
        self.dir = Path(folder)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.conf = self.dir / "txm.conf"
        self.conf.write_text(conf_text)
        self.command = command or [sys.executable, "-m", "texmate_ds"]
        self.proc = None
        self.ttp_port = self.http_port = None

    # -- commands -------------------------------------------------------------

    def manage(self, *args, check=True, env=None, input=None):
        result = subprocess.run(
            self.command + ["--config", str(self.conf), "manage"] + [str(a) for a in args],
            cwd=self.dir, env=env or self.env, capture_output=True, text=True,
            timeout=60, input=input)
        if check and result.returncode != 0:
            raise AssertionError("manage %s failed (%d): %s%s" % (
                args, result.returncode, result.stdout, result.stderr))
        return result

    def add_unit(self, code, key, fields, *extra):
        self.manage("addunit", code, key, "--fields", fields, *extra)

    def add_units(self, codes, key, fields):
        """Many units at once, as `simulate --create` adds them."""
        from texmate_ds import simulate
        simulate.ensure_units(str(self.conf), codes, key, fields)

    def settings(self):
        from texmate_ds import config
        return config.parse(str(self.conf))

    def database_conf(self):
        """Its txm.conf's [database] lines, for a second server process on
        the same database (``make(..., conf=first.database_conf())``);
        nothing on SQLite, whose file is in each server's own folder."""
        text = self.conf.read_text()
        at = text.find("[database]")
        return "" if at < 0 else "\n" + text[at:]

    def database(self):
        """A store.Database on the server's database, whichever engine:
        what ``manage`` would open."""
        from texmate_ds import store
        return store.Database(store.address(self.settings()))

    def untouched(self):
        """True while nothing made the server's database: no file (SQLite),
        no table (PostgreSQL, whose database the test run made empty)."""
        if self.engine == "sqlite3":
            return not os.path.exists(self.settings().DATABASE_NAME)
        return self.query("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == [(0,)]

    def query(self, sql, params=()):
        """The rows of one read (``?`` SQL) of the server's database, on a
        connection opened and closed for it."""
        db = self.database()
        try:
            return db.all(sql, params)
        finally:
            db.close()

    def through_store(self, change):
        """`change(db)` on a connection of the test's own, committed: a
        write as ``manage`` or another process makes it."""
        db = self.database()
        try:
            change(db)
            db.commit()
        finally:
            db.close()

    # -- process --------------------------------------------------------------

    def start(self):
        self.out_path = self.dir / "server.out"
        self.err_path = self.dir / "server.err"
        with open(self.out_path, "w") as out, open(self.err_path, "w") as err:
            self.proc = subprocess.Popen(
                self.command + ["--config", str(self.conf), "serve"],
                cwd=self.dir, env=self.env, stdout=out, stderr=err,
                stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            text = self.out_path.read_text()
            if "\nready\n" in text:
                self.ttp_port = int(re.search(r"^TTP: listening on .*:(\d+)$", text, re.M).group(1))
                self.http_port = int(re.search(r"^HTTP: listening on .*:(\d+)$", text, re.M).group(1))
                self.db_path = re.search(r"^database: (.*) \(schema", text, re.M).group(1)
                return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        self.kill()
        raise AssertionError("server did not start:\n%s\n%s" % (self.output(), self.errors()))

    def keep_ports(self):
        """Write the ports it listens on now into its txm.conf, so that
        the next `start()` (after `stop()` or `kill()`) listens on the same
        ones: a restart that clients (a browser's EventSource, a meter)
        reach again at the address they had."""
        text = self.conf.read_text()
        for key, port in (("DS_PORT", self.ttp_port), ("HTTP_PORT", self.http_port)):
            text = re.sub(r"^%s: .*$" % key, "%s: %d" % (key, port), text, flags=re.M)
        self.conf.write_text(text)

    def output(self):
        return self.out_path.read_text()

    def errors(self):
        return self.err_path.read_text()

    def stop(self, timeout=20):
        """SIGTERM and wait; returns the exit status."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with open("/proc/%d/status" % self.proc.pid) as f:
                    masks = "".join(l for l in f if l.startswith(("Sig", "ShdPnd")))
                self.proc.send_signal(signal.SIGUSR1)  # stacks to stderr
                time.sleep(1)
                self.kill()
                raise AssertionError("server ignored SIGTERM for %d s; signal masks:\n%s"
                                     "its stderr:\n%s" % (timeout, masks, self.errors()[-6000:]))
        return self.proc.returncode

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    # -- talking TTP ----------------------------------------------------------

    def connect(self, timeout=10):
        sock = socket.create_connection(("127.0.0.1", self.ttp_port), timeout=timeout)
        return sock

    def exchange(self, data, answers=1, sock=None):
        """Send raw bytes, read `answers` answers (each ending with \\r)."""
        own = sock is None
        sock = sock or self.connect()
        try:
            sock.sendall(data if isinstance(data, bytes) else data.encode())
            return read_answers(sock, answers)
        finally:
            if own:
                sock.close()

    def ask(self, line):
        """One request line (without \\r) on a new connection; its answer."""
        return self.exchange(line + "\r")[0]

    def ask_noticed(self, line, check):
        """The answer to `line`, a request that changes nothing, once this
        server noticed a change to cached rows (units, permissions) that
        another connection committed. On SQLite the first answer counts:
        the server reads whether another connection committed at each loop
        turn. PostgreSQL's NOTIFY reaches the server a moment after the
        writer's commit returned, so there `line` is asked again until
        `check(answer)`, 5 s at most."""
        deadline = time.monotonic() + 5
        while True:
            answer = self.ask(line)
            if check(answer) or self.engine == "sqlite3" or time.monotonic() > deadline:
                return answer
            time.sleep(0.02)


def read_answers(sock, count):
    buf = b""
    while buf.count(b"\r") < count:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed after %r" % buf)
        buf += chunk
    return [a.decode("ascii") for a in buf.split(b"\r")[:count]]


def read_all(sock):
    """Everything `sock` receives until the server closes (or resets) it."""
    data = b""
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return data
            data += chunk
    except ConnectionResetError:
        return data


BASE_CONF = """\
DS_PORT: 0
HTTP_PORT: 0
DS_BIND: 127.0.0.1
HTTP_BIND: 127.0.0.1
"""


_cluster = None


@pytest.fixture(scope="session")
def postgres_cluster():
    """The test run's PostgreSQL (`postgres.Cluster`), started at the
    first test that asks; skipped, with the reason, where there is none."""
    global _cluster
    why = postgres.available()
    if why:
        pytest.skip("PostgreSQL half skipped: " + why)
    _cluster = postgres.Cluster()
    yield _cluster
    _cluster.remove()
    _cluster = None


@pytest.fixture(scope="session", params=ENGINES)
def engine(request):
    """The store engine of the servers the fixtures start: each test using
    them runs on both."""
    if request.param == "postgresql":
        request.getfixturevalue("postgres_cluster")
    return request.param


def sqlite_only(engine, why):
    """Skip the PostgreSQL run of a test about SQLite itself (its file,
    its journal, its locks), printing `why` it has no meaning there."""
    if engine != "sqlite3":
        pytest.skip("SQLite-only: " + why)


def database_settings(engine, path):
    """Settings(**...) values putting a store a test makes itself on
    `engine`: the SQLite file `path`, or a new PostgreSQL database
    (`store.address(config.Settings(**values))` is what to open)."""
    if engine == "sqlite3":
        return {"DATABASE_NAME": str(path)}
    return _cluster.settings_values(_cluster.database())


@pytest.fixture
def store_db(engine, tmp_path):
    """A migrated store.Database of the test's own on `engine` (the SQLite
    file t.db in its folder, or a new PostgreSQL database), closed after
    it; ``store.Database(store_db.path)`` is a second connection to it."""
    from texmate_ds import config, store
    settings = config.Settings(**database_settings(engine, tmp_path / "t.db"))
    db = store.Database(store.address(settings))
    db.migrate()
    yield db
    db.close()


def spoil_commit(db):
    """Leave in `db`'s open transaction a row its COMMIT refuses (checked
    only then), as a full disk makes a commit fail: a dangling reference
    on SQLite; on PostgreSQL, which defers only a constraint declared
    deferrable, a duplicate in a temporary table made (and undone) in the
    transaction. Returns the engine's words for the failure."""
    from texmate_ds.store.sqlite import SQLite
    db.begin()
    if isinstance(db.dialect, SQLite):
        db.execute("PRAGMA defer_foreign_keys = ON")
        db.execute("INSERT INTO unit_reads (reader_id, source_id) VALUES (998, 999)")
        return "FOREIGN KEY constraint failed"
    db.execute("CREATE TEMPORARY TABLE spoiler (n BIGINT UNIQUE DEFERRABLE INITIALLY DEFERRED)")
    db.execute("INSERT INTO spoiler VALUES (1), (1)")
    return "duplicate key value violates unique constraint"


def postgres_connection(srv):
    """The driver's own connection (psycopg, autocommit, as superuser) to
    the PostgreSQL database of `srv`: to look at one the store refuses to
    open (a schema too new)."""
    return _cluster.connect(srv.settings().DATABASE_NAME)


def engine_conf(engine):
    """txm.conf lines putting a server on `engine`: nothing for SQLite (its
    file in the server's folder), a new database for PostgreSQL."""
    if engine == "sqlite3":
        return ""
    return "\n" + _cluster.conf(_cluster.database())


def with_database(text, database):
    """The txm.conf `text` with the [database] section `database` added:
    its keys under the header `text` has, if it has one (a section is
    written once)."""
    header = re.compile(r"^\[database\][ \t]*\n", re.M)
    if not database.strip() or not header.search(text):
        return text + database
    keys = database.split("[database]\n", 1)[1]
    return header.sub(lambda found: found.group(0) + keys, text, count=1)


def server_on(engine, folder, extra="", conf=None, **options):
    """A Server (not started) in `folder` on `engine`, its txm.conf
    BASE_CONF + `extra` and a new database's [database] lines, or `conf`'s
    (a second process on the same one); `options`: Server's own."""
    return Server(folder, with_database(
        BASE_CONF + extra, engine_conf(engine) if conf is None else conf),
        engine=engine, **options)


def _factory(folder, engine):
    servers = []

    def make(extra="", start=True, name="srv", conf=None):
        """`conf`: the [database] lines to use instead of a new database's
        (a second process on the same one)."""
        srv = server_on(engine, folder / name, extra, conf)
        servers.append(srv)
        if start:
            srv.start()
        return srv
    return make, servers


@pytest.fixture
def server_factory(tmp_path, engine):
    """`make(extra_conf='', start=True, name='srv')` -> Server on `engine`,
    stopped (killed) after the test."""
    make, servers = _factory(tmp_path, engine)
    yield make
    for srv in servers:
        srv.kill()


@pytest.fixture(scope="module")
def server(tmp_path_factory, engine):
    """One running server per test module and engine, with units A1 (4
    fields, key k1) and B7 (2 fields, key k7). Tests sharing it use their
    own units or timestamps."""
    make, servers = _factory(tmp_path_factory.mktemp("shared"), engine)
    srv = make(start=False)
    srv.add_unit("A1", "k1", 4)
    srv.add_unit("B7", "k7", 2)
    yield srv.start()
    srv.kill()


@pytest.fixture(scope="session")
def certificate(tmp_path_factory):
    """(cert.pem, key.pem): a self-signed certificate for localhost and
    127.0.0.1, made with openssl as the README says; skipped without it."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed: no certificate for the HTTPS tests")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                    "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-days", "2",
                    "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    return cert, key


@contextlib.contextmanager
def loop_serving(app, settings, make_context=None, tls_context=None):
    """`app` served on 127.0.0.1 by a real `loop.Loop` and `http.HTTPServer`
    in a thread of the test; yields the HTTPServer (its `port` set). Its
    counters are final once this exits. With `make_context`, the server has
    a one-thread `loop.Pool` whose workers get that context
    (``environ[http.OFFLOAD]``); with `tls_context`, it speaks HTTPS."""
    from texmate_ds import http, loop
    the_loop = loop.Loop()
    pool = None
    if make_context is not None:
        pool = loop.Pool(the_loop, 1, make_context, 8)
        the_loop.add_service(pool)
    server = http.HTTPServer(settings, app, the_loop, pool, tls_context)
    server.port = the_loop.listen("127.0.0.1", 0, server.accept, ("MAX_HTTP_CONNECTIONS", 100),
                                  server.refusal)[1]
    thread = threading.Thread(target=the_loop.run, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        the_loop.stop()
        thread.join(20)
        assert not thread.is_alive()


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, *args):
        pass


class WSGISite:
    """The web UI on wsgiref (127.0.0.1, a port the OS picks) in a thread,
    over a store.Database on `engine` (the SQLite file `path`, or a new
    PostgreSQL database): the WSGI app as any WSGI server would run it.
    `db` is the test's own connection to the same database, as ``manage``
    would have; `stop()` ends both."""

    def __init__(self, engine, path, routes=None, metrics=None, **settings):
        from texmate_ds import config, store
        self.settings = config.Settings(**dict(database_settings(engine, path), **settings))
        self.address = store.address(self.settings)
        self.db = store.Database(self.address)
        self.db.migrate()
        self._routes = routes
        self._metrics = metrics
        started = threading.Event()
        self.thread = threading.Thread(target=self._serve, args=(started,), daemon=True)
        self.thread.start()
        started.wait(10)

    def _serve(self, started):
        from texmate_ds import store
        from texmate_ds.web import committing, site
        st = store.Database(self.address)     # SQLite connections stay in their thread
        ui = site.Site(st, self.settings, self._metrics, self._routes or site.ROUTES)
        self.server = make_server("127.0.0.1", 0, committing(ui, st),
                                  handler_class=_QuietHandler)
        self.port = self.server.server_port
        started.set()
        self.server.serve_forever(poll_interval=0.05)
        self.server.server_close()
        st.close()

    def stop(self):
        self.server.shutdown()
        self.thread.join(10)
        self.db.close()


class Answer:
    def __init__(self, response):
        self.status = response.status
        self.headers = response.headers
        self.raw = response.read()
        self.body = self.raw.decode("utf-8")

    def header(self, name):
        return self.headers.get(name)


class Browser:
    """An HTTP client that keeps cookies like a browser and never follows
    redirects; `sign_in` fills the sign-in form as a person would.

    `source` is the loopback address its connections come from (Linux
    routes all of 127.0.0.0/8 to lo), so one test can play clients at
    several addresses."""

    def __init__(self, port, source=None):
        self.port = port
        self.source = source
        self.cookies = {}

    def connect(self):
        return http.client.HTTPConnection(
            "127.0.0.1", self.port, timeout=10,
            source_address=(self.source, 0) if self.source else None)

    def request(self, method, path, form=None, headers=()):
        conn = self.connect()
        sent = dict(headers)
        if self.cookies:
            sent["Cookie"] = "; ".join("%s=%s" % c for c in self.cookies.items())
        body = None
        if form is not None:
            body = form if isinstance(form, bytes) else urlencode(form).encode()
            sent.setdefault("Content-Type", "application/x-www-form-urlencoded")
        conn.request(method, path, body, sent)
        answer = Answer(conn.getresponse())
        conn.close()
        for cookie in answer.headers.get_all("Set-Cookie") or []:
            name, _, value = cookie.split(";")[0].partition("=")
            if "Max-Age=0" in cookie:
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = value
        return answer

    def get(self, path, **headers):
        return self.request("GET", path, headers=headers)

    def post(self, path, form, **headers):
        return self.request("POST", path, form, headers)

    def csrf(self, path):
        return re.search(r'name="csrf_token" value="([^"]+)"', self.get(path).body).group(1)

    def sign_in(self, username, password, next="/"):
        return self.post("/login/", {"username": username, "password": password, "next": next,
                                     "csrf_token": self.csrf("/login/")})
