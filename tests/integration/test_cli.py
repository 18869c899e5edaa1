"""The one entry point, end to end (docs/configuration.md, "The command line"): ``serve``
start-up and shutdown, configuration and app errors, ``client``,
``simulate`` and the one-file ``.pyz`` release.

Everything runs as a real subprocess (``python -m texmate_ds`` or
``python texmate_ds.pyz``) talking TTP over loopback sockets, with a time
limit on every process and socket.
"""

import datetime
import json
import re
import signal
import socket
import subprocess
import sys

import pytest

from texmate_ds import __version__, store

from conftest import BASE_CONF, ROOT, Server, child_env

SCHEMA = store.SCHEMA_VERSION
RUN_TIMEOUT = 30


# -- helpers ------------------------------------------------------------------

def run(*args, cwd=None, env=None, timeout=RUN_TIMEOUT):
    """``python -m texmate_ds ARGS`` to completion (stdin empty)."""
    return subprocess.run(
        [sys.executable, "-m", "texmate_ds"] + [str(a) for a in args],
        cwd=cwd, env=env or child_env(), capture_output=True, text=True,
        timeout=timeout, stdin=subprocess.DEVNULL)


def free_port():
    """A port nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        return True
    except OSError:
        return False


def no_traceback(result):
    assert "Traceback" not in result.stderr, result.stderr


def samples_of(srv, code):
    return srv.query("SELECT s.id, s.ts FROM samples s JOIN units u ON u.id = s.unit_id"
                     " WHERE u.code = ? ORDER BY s.id", (code,))


def failed_start(srv, timeout=20):
    """Run ``serve`` for a configuration that must not start; its
    CompletedProcess. A start that hangs instead fails the test at
    `timeout` (subprocess.TimeoutExpired): no stopwatch is asked."""
    return run("--config", srv.conf, "serve", cwd=srv.dir, timeout=timeout)


# -- --help, --version, unknown command --------------------------------------

def test_help():
    result = run("--help")
    assert result.returncode == 0
    for word in ("serve", "manage", "client", "simulate", "--config"):
        assert word in result.stdout


def test_version():
    result = run("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == "texmate_ds %s" % __version__


def test_unknown_command(tmp_path):
    result = run("frobnicate", cwd=tmp_path)
    assert result.returncode == 2
    assert "unknown command 'frobnicate'" in result.stderr
    assert "usage" in result.stderr
    no_traceback(result)


def test_serve_with_extra_arguments(server_factory):
    srv = server_factory(start=False)
    result = run("--config", srv.conf, "serve", "now", cwd=srv.dir)
    assert result.returncode == 2
    assert "unexpected arguments now" in result.stderr


# -- configuration errors stop start-up before anything is bound -------------

@pytest.mark.parametrize("mistake,line,named", [
    ("DS_PORT: abc", 5, "[main] DS_PORT"),
    ("DS_PORT: {ds}\nDS_PROT: 1", 6, "[main] DS_PROT"),
], ids=["bad-value", "unknown-key"])
def test_config_error_stops_startup(server_factory, mistake, line, named):
    http, ds = free_port(), free_port()
    srv = server_factory(start=False)
    srv.conf.write_text("# a site configuration with a mistake\nDS_BIND: 127.0.0.1\n"
                        "HTTP_BIND: 127.0.0.1\nHTTP_PORT: %d\n%s\n"
                        % (http, mistake.format(ds=ds)))
    result = failed_start(srv)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "%s:%d: %s" % (srv.conf, line, named) in result.stderr
    assert "configuration error" in result.stderr
    no_traceback(result)
    assert "ready" not in result.stdout and "listening" not in result.stdout
    assert not listening(http) and not listening(ds)
    assert not (srv.dir / "db").exists(), "no database before the configuration is valid"


def test_missing_config_file(tmp_path):
    missing = tmp_path / "nowhere.conf"
    result = run("--config", missing, "serve", cwd=tmp_path, timeout=20)
    assert result.returncode == 2
    assert str(missing) in result.stderr and "no such file" in result.stderr
    no_traceback(result)
    env = child_env()
    env["TXM_CONF"] = str(missing)
    result = run("serve", cwd=tmp_path, env=env, timeout=20)
    assert result.returncode == 2
    assert "TXM_CONF" in result.stderr and "no such file" in result.stderr


def test_config_option_without_path(tmp_path):
    result = run("--config", cwd=tmp_path, timeout=20)
    assert "--config needs a PATH" in result.stderr
    assert result.returncode == 2


# -- site TTP apps at start-up ------------------------------------------------

DUP_APP = '''"""dup: claims the code of the bundled up app"""


class DupProducer:
    def __init__(self, server, request, unit, key):
        pass

    def more(self):
        return ""


Extension = {"code": "up", "producer": DupProducer, "run_before": None, "run_after": None}
'''

BOOM_APP = '''"""boom: fails at import"""
raise RuntimeError("kaboom at import")
'''

HELLO_APP = '''"""hello: says hello"""


class HelloProducer:
    def __init__(self, server, request, unit, key):
        self.data = "OK hello %s\\r" % unit

    def more(self):
        data, self.data = self.data, ""
        return data


Extension = {"code": "hi", "producer": HelloProducer, "run_before": None, "run_after": None}
'''


def site_app_server(server_factory, name, source, on=True):
    """A configuration on fixed free ports with TTPApps/NAME.py, turned on."""
    http, ds = free_port(), free_port()
    srv = server_factory(start=False)
    srv.conf.write_text(srv.conf.read_text().replace("DS_PORT: 0", "DS_PORT: %d" % ds)
                        .replace("HTTP_PORT: 0", "HTTP_PORT: %d" % http)
                        + "[ttpapps]\n%s: %s\n" % (name, "on" if on else "off"))
    (srv.dir / "TTPApps").mkdir()
    (srv.dir / "TTPApps" / (name + ".py")).write_text(source)
    return srv, (http, ds)


def test_site_app_with_a_taken_code_stops_startup(server_factory):
    srv, ports = site_app_server(server_factory, "dup", DUP_APP)
    result = failed_start(srv)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "cannot start" in result.stderr
    message = result.stderr.splitlines()[-1]
    assert "TTP app code 'up' is claimed by both" in message, result.stderr
    assert "up (bundled)" in message
    assert re.search(r"\bdup \(\S*TTPApps/dup\.py\)", message), message
    no_traceback(result)
    assert "ready" not in result.stdout
    assert not any(listening(p) for p in ports)


def test_site_app_failing_at_import_stops_startup(server_factory):
    srv, ports = site_app_server(server_factory, "boom", BOOM_APP)
    result = failed_start(srv)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "TTP app boom" in result.stderr
    assert "RuntimeError: kaboom at import" in result.stderr
    assert "ready" not in result.stdout
    assert not any(listening(p) for p in ports)
    assert srv.untouched()


def test_site_app_serves_its_code(server_factory):
    srv, _ = site_app_server(server_factory, "hello", HELLO_APP)
    srv.start()
    assert srv.ask("TTP /hi/X1 anykey") == "OK hello X1"
    assert srv.ask("TTP /ok/X1 anykey") == "405 Unit not found"
    assert srv.stop() == 0


def test_site_app_turned_off_is_not_served(server_factory):
    srv, _ = site_app_server(server_factory, "hello", HELLO_APP, on=False)
    srv.start()
    assert srv.ask("TTP /hi/X1 anykey") == "501 Not implemented"
    assert srv.stop() == 0


GREET_APP = '''"""greet: answers with its options (TTP /gr/<unit> <key>)."""
from texmate_ds import ttp

OPTIONS = {
    "GREETING": ("hello", "what it answers"),
    "TIMES": (1, "how many times"),
}
at_start = {}


def start(server):
    at_start.update(options)


class Greet(ttp.Answer):
    def __init__(self, server, request, unit, key):
        super().__init__("OK %s %d %s\\r" % (" ".join([options["GREETING"]] * options["TIMES"]),
                                              options["TIMES"], at_start == dict(options)))


Extension = {"code": "gr", "producer": Greet, "start": start}
'''


def test_site_app_gets_its_options_and_the_defaults(server_factory):
    srv, _ = site_app_server(server_factory, "greet", GREET_APP)
    srv.start()
    assert srv.ask("TTP /gr/X1 anykey") == "OK hello 1 True"
    assert srv.stop() == 0
    srv.conf.write_text(srv.conf.read_text() + "greet.GREETING: good day\n")
    srv.start()
    # TIMES left at its default; start(server) saw the same values.
    assert srv.ask("TTP /gr/X1 anykey") == "OK good day 1 True"
    assert srv.stop() == 0
    srv.conf.write_text(srv.conf.read_text() + "greet.times: 2\n")
    srv.start()
    assert srv.ask("TTP /gr/X1 anykey") == "OK good day good day 2 True"
    assert srv.stop() == 0


def test_a_bad_option_stops_startup_naming_its_line(server_factory):
    srv, ports = site_app_server(server_factory, "greet", GREET_APP)
    srv.conf.write_text(srv.conf.read_text() + "greet.TIMES: twice\n")
    line = srv.conf.read_text().count("\n")
    result = failed_start(srv)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert result.stderr.splitlines()[-1] == (
        "texmate_ds: cannot start: %s:%d: [ttpapps] greet.TIMES: expected an integer, "
        "got 'twice'" % (srv.conf, line))
    no_traceback(result)
    assert not any(listening(p) for p in ports)
    assert srv.untouched()


# -- start-up output and stopping --------------------------------------------

def test_startup_output_and_signals(server_factory):
    srv = server_factory()
    out = srv.output()
    lines = out.splitlines()
    db = store.address(srv.settings())
    assert lines[0].startswith("texmate_ds %s (Python " % __version__)
    assert "config: %s (--config)" % srv.conf in lines
    assert "database: %s (schema version %d)" % (db, SCHEMA) in lines
    assert "TTP: listening on 127.0.0.1:%d" % srv.ttp_port in lines
    assert "HTTP: listening on 127.0.0.1:%d" % srv.http_port in lines
    assert srv.ttp_port != srv.http_port and 0 not in (srv.ttp_port, srv.http_port)
    assert "web: http://127.0.0.1:%d/" % srv.http_port in lines
    # A new database: the Administrator with the default password, and a warning.
    assert any(l.startswith("WARNING: user Administrator still has the default password")
               for l in lines)
    assert lines[-1] == "ready"
    assert listening(srv.http_port)

    answers = srv.exchange("TTP /ok/NOPE k\rTTP /ok/NOPE k\rTTP /nosuch/NOPE k\r", 3)
    assert answers == ["405 Unit not found", "405 Unit not found", "501 Not implemented"]
    assert srv.stop() == 0
    assert srv.output().splitlines()[-1] == "stopped after 3 TTP requests"
    assert "Traceback" not in srv.errors()
    assert not listening(srv.ttp_port)

    # SIGINT stops it the same way.
    srv.start()
    assert "config: %s (--config)" % srv.conf in srv.output()
    srv.proc.send_signal(signal.SIGINT)
    assert srv.proc.wait(20) == 0
    assert srv.output().splitlines()[-1] == "stopped after 0 TTP requests"
    assert "Traceback" not in srv.errors()


# -- client -------------------------------------------------------------------

def client(server, *args, port=None):
    return run("client", "--port", port or server.ttp_port, *args)


def test_client_up_and_duplicate(server):
    result = client(server, "up", "A1", "k1", "2010-1-1 0:0:0;1;2;3;4")
    assert (result.returncode, result.stdout) == (0, "OK\n"), result.stderr
    result = client(server, "up", "A1", "k1", "2010-1-1 0:0:0;1;2;3;4")
    assert result.returncode == 1
    assert result.stdout == "406 Duplicate sample 1<2010-1-1 0:0:0>\n"


def test_client_up_several_samples(server):
    result = client(server, "up", "B7", "k7", "2010-2-1 0:0:0;1;2", "2010-2-1 0:0:1;3;4")
    assert (result.returncode, result.stdout) == (0, "OK\n")
    result = client(server, "dl", "B7", "k7", "from<2010-2-1 0:0:0>")
    assert re.fullmatch(r"OK <\d+ 2010-02-01 00:00:00 L1=1 L2=2><\d+ 2010-02-01 00:00:01 "
                        r"L1=3 L2=4>\n", result.stdout), result.stdout


def test_client_dl(server):
    assert client(server, "up", "A1", "k1", "2010-3-1 0:0:0;1.5;-2;0;1e20").returncode == 0
    result = client(server, "dl", "A1", "k1", "last")
    assert result.returncode == 0
    assert re.fullmatch(r"OK <\d+ \d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d{6})?"
                        r" L1=\S+ L2=\S+ L3=\S+ L4=\S+>\n", result.stdout), result.stdout
    result = client(server, "dl", "A1", "k1", "<2010-3-1 0:0:0>")
    assert result.returncode == 0
    assert re.fullmatch(r"OK <\d+ 2010-03-01 00:00:00 L1=1.5 L2=-2 L3=0 L4=1e\+20>\n",
                        result.stdout), result.stdout
    result = client(server, "dl", "A1", "k1", "<1999-1-1 0:0:0>")
    assert (result.returncode, result.stdout) == (1, "404 Data not found\n")


def test_client_ok_and_errors(server):
    result = client(server, "ok", "A1", "k1")
    assert (result.returncode, result.stdout) == (0, "OK\n")
    result = client(server, "ok", "A1", "wrong")
    assert (result.returncode, result.stdout) == (1, "402 Unauthorized\n")
    result = client(server, "up", "A1", "wrong", "2010-4-1 0:0:0;1;2;3;4")
    assert (result.returncode, result.stdout) == (1, "402 Unauthorized\n")
    result = client(server, "ok", "NOSUCH", "k1")
    assert (result.returncode, result.stdout) == (1, "405 Unit not found\n")


def test_client_raw(server):
    result = client(server, "raw", "TTP /ok/A1 k1", "TTP /ok/A1 bad")
    assert result.returncode == 1
    assert result.stdout == "OK\n402 Unauthorized\n"
    result = client(server, "raw", "TTP /ok/A1 k1", "TTP /ok/B7 k7")
    assert (result.returncode, result.stdout) == (0, "OK\nOK\n")


def test_client_nothing_listening(server):
    port = free_port()
    result = client(server, "ok", "A1", "k1", port=port)
    assert result.returncode == 2
    assert "127.0.0.1:%d" % port in result.stderr
    assert result.stdout == ""
    no_traceback(result)


def test_client_up_now_twice(server):
    before = samples_of(server, "A1")
    for _ in range(2):
        result = client(server, "up", "A1", "k1", "now;1;2;3;4")
        assert (result.returncode, result.stdout) == (0, "OK\n"), result.stderr
    after = samples_of(server, "A1")
    new = after[len(before):]
    assert after[:len(before)] == before
    assert len(new) == 2 and new[0][1] != new[1][1]
    # 'now' is the meter's local time, to the microsecond.
    now = datetime.datetime.now()
    for _, ts in new:
        stamp = datetime.datetime(1970, 1, 1) + datetime.timedelta(microseconds=ts)
        assert abs((stamp - now).total_seconds()) < 60, stamp


# -- simulate -----------------------------------------------------------------

def test_simulate(server, tmp_path):
    figures = tmp_path / "figures.json"
    result = run("simulate", "--port", server.ttp_port, "--meters", 5, "--interval", 0.2,
                 "--duration", 2, "--create", server.conf, "--fields", 3, "--json", figures,
                 timeout=30)
    assert result.returncode == 0, (result.stdout, result.stderr)
    assert "errors: none" in result.stdout
    assert "connection failures: 0, unanswered at the end: 0" in result.stdout
    assert "meters: 5 uploading" in result.stdout

    listed = server.manage("listunits", input="").stdout
    for n in range(1, 6):
        row = re.search(r"^SIM%d\s+SIM%d\s+3\s+yes\s+(\d+)\s+\d{4}-" % (n, n), listed, re.M)
        assert row and int(row.group(1)) > 0, listed
        assert samples_of(server, "SIM%d" % n)

    data = json.loads(figures.read_text())
    assert data["meters"] == 5 and data["fields"] == 3
    assert data["errors"] == {}
    assert data["ok"] == data["requests_sent"] > 0
    stored = sum(len(samples_of(server, "SIM%d" % n)) for n in range(1, 6))
    assert stored == data["ok"]


def test_simulate_create_names_a_missing_config(tmp_path):
    result = run("simulate", "--meters", 1, "--duration", 1, "--create", "nowhere.conf",
                 cwd=tmp_path)
    assert result.returncode == 2, (result.stdout, result.stderr)
    no_traceback(result)
    assert result.stderr.strip() == (
        "texmate_ds simulate: --create nowhere.conf: --config nowhere.conf: no such file")


# -- the one-file release -----------------------------------------------------

def clean_env():
    """The environment without the project on the path."""
    return child_env(project_on_path=False)


@pytest.fixture
def pyz_server(tmp_path):
    build = tmp_path / "build"
    pyz = build / "texmate_ds.pyz"
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "build_pyz.py"), "-o", str(pyz)],
                            cwd=tmp_path, env=clean_env(), capture_output=True, text=True,
                            timeout=60, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    assert pyz.is_file()
    srv = Server(tmp_path / "elsewhere", BASE_CONF, command=[sys.executable, str(pyz)],
                 env=clean_env())
    assert ROOT not in srv.dir.parents and srv.dir != ROOT
    yield srv
    srv.kill()


def test_pyz_runs_alone(pyz_server):
    srv = pyz_server
    result = subprocess.run([sys.executable, srv.command[1], "--version"], cwd=srv.dir,
                            env=clean_env(), capture_output=True, text=True, timeout=30)
    assert result.stdout.strip() == "texmate_ds %s" % __version__
    assert srv.manage("addunit", "P1", "pk", "--fields", "1").stdout.strip() == \
        "unit P1 added (1 fields)"

    srv.start()
    assert "config: %s (--config)" % srv.conf in srv.output()
    assert srv.ask("TTP /up/P1/<2010-1-1 0:0:0;42> pk") == "OK"
    assert srv.ask("TTP /ok/P1 pk") == "OK"          # the bundled app, from inside the zip
    assert srv.ask("TTP /ok/P1 nope") == "402 Unauthorized"
    assert srv.stop() == 0
    assert "stopped after 3 TTP requests" in srv.output()

    srv.start()
    assert srv.ask("TTP /dl/P1/last pk") == "OK <1 2010-01-01 00:00:00 L1=42>"
    assert srv.stop() == 0
    assert "2010-01-01 00:00:00,42" in srv.manage("export", "P1").stdout
    assert "Traceback" not in srv.errors()


def test_output_cut_short_by_the_reader_is_not_a_crash(server_factory):
    srv = server_factory(start=False)
    srv.add_unit("A1", "k1", 1)
    srv.start()
    for start in range(0, 6000, 2000):  # ~130 KB of CSV, more than a pipe holds
        body = "".join("<2010-1-1 %d:%d:%d;%d>" % (i // 3600, i // 60 % 60, i % 60, i)
                       for i in range(start, start + 2000))
        assert srv.ask("TTP /up/A1/%s k1" % body) == "OK"
    result = subprocess.run(
        "%s -m texmate_ds --config %s manage export A1 | head -1"
        % (sys.executable, srv.conf), shell=True, cwd=srv.dir, env=srv.env,
        capture_output=True, text=True, timeout=60)
    assert result.stdout == "id,timestamp,L1\n"
    assert "Traceback" not in result.stderr
