"""txm.conf: search order, parsing, conversion, errors, the example file."""

import os

import pytest

from texmate_ds import config
from texmate_ds.config import ConfigError, Settings, find_config, load, parse

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
CONF = "/site/txm.conf"


def error(text):
    with pytest.raises(ConfigError) as info:
        parse(CONF, text)
    return str(info.value)


# -- search order ---------------------------------------------------------

@pytest.fixture
def dirs(tmp_path):
    """A current directory, a home directory and a spare directory."""
    made = {}
    for name in ("cwd", "home", "other"):
        made[name] = tmp_path / name
        made[name].mkdir()
    return made


def write(folder, text="DS_PORT: 1\n", name="txm.conf"):
    path = folder / name
    path.write_text(text)
    return str(path)


def find(dirs, cli_path=None, environ=None):
    return find_config(cli_path, environ or {}, str(dirs["cwd"]),
                       str(dirs["home"]))


def test_search_order(dirs, monkeypatch):
    monkeypatch.setattr(os.path, "isfile", _no_etc(os.path.isfile))
    assert find(dirs) == (None, "built-in defaults")
    home = write(dirs["home"])
    assert find(dirs) == (home, "home directory")
    here = write(dirs["cwd"])
    assert find(dirs) == (here, "current directory")
    env = write(dirs["other"], name="env.conf")
    assert find(dirs, environ={"TXM_CONF": env}) == (env, "TXM_CONF")
    cli = write(dirs["other"], name="cli.conf")
    assert find(dirs, cli, {"TXM_CONF": env}) == (cli, "--config")


def test_etc_comes_last(dirs, monkeypatch):
    monkeypatch.setattr(os.path, "isfile", lambda p: p == "/etc/txm.conf")
    assert find(dirs) == ("/etc/txm.conf", "/etc")


def _no_etc(isfile):
    # The machine running the tests may have an /etc/txm.conf of its own.
    return lambda p: p != "/etc/txm.conf" and isfile(p)


def test_relative_explicit_paths_resolve_against_cwd(dirs):
    path = write(dirs["cwd"], name="mine.conf")
    assert find(dirs, "mine.conf") == (path, "--config")
    assert find(dirs, environ={"TXM_CONF": "mine.conf"}) == (path, "TXM_CONF")


def test_empty_txm_conf_is_unset(dirs, monkeypatch):
    monkeypatch.setattr(os.path, "isfile", _no_etc(os.path.isfile))
    assert find(dirs, environ={"TXM_CONF": ""}) == (None, "built-in defaults")


def test_missing_explicit_file_is_an_error(dirs):
    write(dirs["cwd"])      # present, but the operator asked for another
    with pytest.raises(ConfigError) as info:
        find(dirs, "/x/y.conf")
    assert str(info.value) == "--config /x/y.conf: no such file"
    with pytest.raises(ConfigError) as info:
        find(dirs, environ={"TXM_CONF": "/x/y.conf"})
    assert str(info.value) == "TXM_CONF=/x/y.conf: no such file"


def test_load_without_file_uses_defaults_and_cwd(dirs, monkeypatch):
    monkeypatch.setattr(os.path, "isfile", _no_etc(os.path.isfile))
    settings = load(environ={}, cwd=str(dirs["cwd"]), home=str(dirs["home"]))
    assert settings.config_path is None
    assert settings.config_how == "built-in defaults"
    assert settings.base_dir == str(dirs["cwd"])
    assert settings.DATABASE_NAME == str(dirs["cwd"] / "db" /
                                         "data_server3.db")
    assert settings.DS_PORT == 9995


def test_load_reads_the_file_found(dirs):
    path = write(dirs["home"], "DS_PORT: 1234\n")
    settings = load(environ={}, cwd=str(dirs["cwd"]), home=str(dirs["home"]))
    assert (settings.config_path, settings.config_how) == (path,
                                                          "home directory")
    assert settings.base_dir == str(dirs["home"])
    assert settings.DS_PORT == 1234
    assert settings.TTP_APPS_DIR == str(dirs["home"] / "TTPApps")


def test_unreadable_file(tmp_path):
    with pytest.raises(ConfigError) as info:
        parse(str(tmp_path / "gone.conf"))
    assert str(info.value).startswith(str(tmp_path / "gone.conf") +
                                      ": cannot read: ")


# -- format ---------------------------------------------------------------

def test_vendor_minimal_file_without_section():
    # Indented as the manual prints it.
    settings = parse(CONF, "        \tDS_PORT: 9996\n"
                           "        \tHTTP_PORT: 8081\n")
    assert (settings.DS_PORT, settings.HTTP_PORT) == (9996, 8081)
    assert settings.lines == {("main", "DS_PORT"): 1,
                              ("main", "HTTP_PORT"): 2}


def test_keys_before_first_header_then_sections():
    text = "# minimal\n\nDS_PORT = 1\n[graph]\nMAX_PLOT_POINTS: 7\n"
    settings = parse(CONF, text)
    assert (settings.DS_PORT, settings.MAX_PLOT_POINTS) == (1, 7)
    assert settings.lines[("graph", "MAX_PLOT_POINTS")] == 5
    assert error(text + "MAX_PLOT_POINT: 3\n") == (
        "/site/txm.conf:6: [graph] MAX_PLOT_POINT: unknown key "
        "(did you mean MAX_PLOT_POINTS?)")


def test_keys_and_sections_are_case_insensitive():
    settings = parse(CONF, "[Main]\nds_port: 5\n[EMAIL]\nEmail_Port: 26\n")
    assert (settings.DS_PORT, settings.EMAIL_PORT) == (5, 26)


def test_windows_line_endings():
    assert error("DS_PORT: 1\r\n\r\nHTTP_PORT: x\r\n").startswith(
        "/site/txm.conf:3: [main] HTTP_PORT:")


def test_comments_and_no_interpolation():
    settings = parse(CONF, "; a comment\n[email]\n# another\n"
                           "EMAIL_HOST_PASSWORD: 100%%sec%(x)s\n")
    assert settings.EMAIL_HOST_PASSWORD == "100%%sec%(x)s"


def test_utf8_bom_file(tmp_path):
    path = tmp_path / "txm.conf"
    path.write_bytes(b"\xef\xbb\xbfDS_PORT: 7\n")
    assert parse(str(path)).DS_PORT == 7


def test_not_utf8(tmp_path):
    path = tmp_path / "txm.conf"
    path.write_bytes(b"DS_PORT: 7\n# caf\xe9\n")
    with pytest.raises(ConfigError) as info:
        parse(str(path))
    assert str(info.value) == "%s:2: not UTF-8 text" % path


# -- conversions ----------------------------------------------------------

FULL = """\
[main]
DS_PORT: 1
HTTP_PORT: 0
DS_BIND: 127.0.0.1
HTTP_BIND: ::1
MAINTENANCE_INTERVAL: 2
CHANNEL_TIMEOUT: 3
HTTP_HEADER_TIMEOUT: 6
SOCKET_OPEN: no
MAX_CONNECTIONS: 4
MAX_HTTP_CONNECTIONS: 3
MAX_EVENT_STREAMS: 9
HTTPS_CERT_FILE: tls/cert.pem
HTTPS_KEY_FILE: /etc/tls/key.pem
BEHIND_HTTPS_PROXY: yes
PROXY_ADDRESSES: 10.1.2.3 , 192.168.0.0/16,::1
MAX_REQUEST_BYTES: 256
DL_MAX_SAMPLES: 5
TTP_APPS_DIR: apps/ttp
HTTP_APPS_DIR: /srv/http
LOGIN_REQUIRED: off
SESSION_DAYS: 2
SILENT_CHECK_SECONDS: 7
LOG_LEVEL: DEBUG
[email]
EMAIL_HOST: mail.example.com
EMAIL_PORT: 587
EMAIL_USE_TLS: true
EMAIL_USE_SSL: 0
EMAIL_HOST_USER: meter
EMAIL_HOST_PASSWORD: s3cret: yes
DEFAULT_FROM_EMAIL: ds@example.com
EMAIL_RETRY_HOURS: 48
[database]
DATABASE_ENGINE: SQLite3
DATABASE_NAME: data/x.db
DATABASE_HOST: db.example.com
DATABASE_PORT: 6543
DATABASE_USER: txm
DATABASE_PASSWORD: pw
COMMIT_INTERVAL: 100
COMMIT_DELAY: 0
[graph]
MAX_PLOT_POINTS: 2000
[admin]
ALLOW_SAMPLE_DELETION: No
ALLOW_ALARM_DELETION: FALSE
"""

EXPECTED = {
    "DS_PORT": 1, "HTTP_PORT": 0, "DS_BIND": "127.0.0.1", "HTTP_BIND": "::1",
    "MAINTENANCE_INTERVAL": 2, "CHANNEL_TIMEOUT": 3, "HTTP_HEADER_TIMEOUT": 6,
    "SOCKET_OPEN": False, "MAX_CONNECTIONS": 4, "MAX_HTTP_CONNECTIONS": 3, "MAX_EVENT_STREAMS": 9,
    "HTTPS_CERT_FILE": "/site/tls/cert.pem", "HTTPS_KEY_FILE": "/etc/tls/key.pem",
    "BEHIND_HTTPS_PROXY": True, "PROXY_ADDRESSES": "10.1.2.3, 192.168.0.0/16, ::1",
    "MAX_REQUEST_BYTES": 256,
    "DL_MAX_SAMPLES": 5,
    "TTP_APPS_DIR": "/site/apps/ttp", "HTTP_APPS_DIR": "/srv/http",
    "LOGIN_REQUIRED": False, "SESSION_DAYS": 2, "SILENT_CHECK_SECONDS": 7, "LOG_LEVEL": "debug",
    "EMAIL_HOST": "mail.example.com", "EMAIL_PORT": 587,
    "EMAIL_USE_TLS": True, "EMAIL_USE_SSL": False, "EMAIL_HOST_USER": "meter",
    "EMAIL_HOST_PASSWORD": "s3cret: yes",
    "DEFAULT_FROM_EMAIL": "ds@example.com", "EMAIL_RETRY_HOURS": 48,
    "DATABASE_ENGINE": "sqlite3",
    "DATABASE_NAME": "/site/data/x.db", "DATABASE_HOST": "db.example.com",
    "DATABASE_PORT": 6543, "DATABASE_USER": "txm", "DATABASE_PASSWORD": "pw",
    "COMMIT_INTERVAL": 100,
    "COMMIT_DELAY": 0, "MAX_PLOT_POINTS": 2000,
    "ALLOW_SAMPLE_DELETION": False, "ALLOW_ALARM_DELETION": False,
}


def test_every_key_converted_to_its_type():
    assert set(EXPECTED) == {key.name for key in config.DEFAULTS}
    settings = parse(CONF, FULL)
    for name, value in EXPECTED.items():
        got = getattr(settings, name)
        assert (got, type(got)) == (value, type(value)), name


def test_every_default_passes_its_own_converter():
    for key in config.DEFAULTS:
        assert key.convert(config.show(key.default)) == key.default, key.name


@pytest.mark.parametrize("word,value", [
    ("yes", True), ("Yes", True), ("ON", True), ("true", True), ("1", True),
    ("no", False), ("NO", False), ("off", False), ("False", False),
    ("0", False)])
def test_booleans_in_every_spelling(word, value):
    assert parse(CONF, "SOCKET_OPEN: %s" % word).SOCKET_OPEN is value
    assert parse(CONF, "[ttpapps]\nx: %s" % word).ttpapps["x"] is value


@pytest.mark.parametrize("text,value", [("0", 0), ("65535", 65535),
                                        ("+80", 80), (" 81 ", 81)])
def test_port_range_ends(text, value):
    assert parse(CONF, "DS_PORT:%s" % text).DS_PORT == value


def test_relative_paths_resolve_against_the_file(tmp_path):
    (tmp_path / "conf").mkdir()
    path = tmp_path / "conf" / "txm.conf"
    path.write_text("TTP_APPS_DIR: ../apps\n[database]\nDATABASE_NAME: x.db\n")
    settings = parse(str(path))
    assert settings.base_dir == str(tmp_path / "conf")
    assert settings.TTP_APPS_DIR == str(tmp_path / "apps")
    assert settings.HTTP_APPS_DIR == str(tmp_path / "conf" / "HTTPApps")
    assert settings.DATABASE_NAME == str(tmp_path / "conf" / "x.db")


def test_vendor_backslash_path():
    text = ("[database]\nDATABASE_ENGINE: sqlite3\n"
            "DATABASE_NAME: db\\data_server3.db\n")
    assert parse(CONF, text).DATABASE_NAME == "/site/db/data_server3.db"


def test_tilde_expands(monkeypatch):
    monkeypatch.setenv("HOME", "/home/op")
    assert parse(CONF, "HTTP_APPS_DIR: ~/web").HTTP_APPS_DIR == "/home/op/web"


# -- errors ----------------------------------------------------------------

@pytest.mark.parametrize("line,expected", [
    ("DS_PORT: abc", "[main] DS_PORT: expected an integer from 0 to 65535, "
                     "got 'abc'"),
    ("DS_PORT: 65536", "[main] DS_PORT: expected an integer from 0 to 65535, "
                       "got '65536'"),
    ("HTTP_PORT: 1_000", "[main] HTTP_PORT: expected an integer from 0 to "
                         "65535, got '1_000'"),
    ("DS_PORT:", "[main] DS_PORT: expected an integer from 0 to 65535, "
                 "got ''"),
    ("CHANNEL_TIMEOUT: 0", "[main] CHANNEL_TIMEOUT: expected an integer "
                           ">= 1, got '0'"),
    ("MAX_REQUEST_BYTES: 255", "[main] MAX_REQUEST_BYTES: expected an integer"
                               " >= 256, got '255'"),
    ("SOCKET_OPEN: maybe", "[main] SOCKET_OPEN: expected yes or no (or "
                           "on/off, true/false, 1/0), got 'maybe'"),
    ("LOG_LEVEL: verbose", "[main] LOG_LEVEL: expected one of debug, info, "
                           "warning, error, got 'verbose'"),
    ("DS_BIND:", "[main] DS_BIND: expected a non-empty value, got ''"),
    ("DS_PROT: 1", "[main] DS_PROT: unknown key (did you mean DS_PORT?)"),
    ("XYZZY: 1", "[main] XYZZY: unknown key"),
    ("EMAIL_PORT: 25", "[main] EMAIL_PORT: unknown key (it belongs in "
                       "[email])"),
    ("DS_PORT: 99 # the port", "[main] DS_PORT: expected an integer from 0 "
                               "to 65535, got '99 # the port' (comments must "
                               "be on a line of their own)"),
])
def test_bad_values_name_file_line_key_and_expectation(line, expected):
    assert error("# header\n\n" + line + "\n") == (
        "/site/txm.conf:3: " + expected)


@pytest.mark.parametrize("text,expected", [
    ("[email]\nEMAIL_PORT: 0", "2: [email] EMAIL_PORT: expected an integer "
                               "from 1 to 65535, got '0'"),
    ("[database]\nCOMMIT_DELAY: -1", "2: [database] COMMIT_DELAY: expected an"
                                     " integer >= 0, got '-1'"),
    ("[graph]\nMAX_PLOT_POINTS: many", "2: [graph] MAX_PLOT_POINTS: expected "
                                       "an integer >= 0, got 'many'"),
    ("[database]\nDATABASE_ENGINE: mysql",
     "2: [database] DATABASE_ENGINE: expected sqlite3 or postgresql, got 'mysql'"),
    ("[emial]\nEMAIL_PORT: 25", "1: [emial]: unknown section (did you mean "
                                "email?)"),
    ("[DEFAULT]\nDS_PORT: 1", "1: [DEFAULT]: unknown section"),
    ("DS_PORT: 1\n\nDS_PORT: 2", "3: [main] DS_PORT: duplicate key (first "
                                 "set on line 1)"),
    ("[email]\nemail_port: 1\nEMAIL_PORT: 2", "3: [email] EMAIL_PORT: "
                                              "duplicate key (first set on "
                                              "line 2)"),
    ("[graph]\n[admin]\n[graph]", "3: [graph]: duplicate section"),
    ("[graph]\n[Graph]", "2: [Graph]: duplicate section (also on line 1)"),
    ("DS_PORT: 1\n[main]", "2: [main]: duplicate section (keys before the "
                           "first header already belong to [main])"),
    ("DS_PORT: 1\nthis is not a setting", "2: syntax error: expected 'KEY: "
                                          "value' or '[section]', got 'this "
                                          "is not a setting'"),
    ("[email]\nEMAIL_USE_TLS: yes\nEMAIL_USE_SSL: on",
     "3: [email] EMAIL_USE_SSL: EMAIL_USE_TLS and EMAIL_USE_SSL cannot both "
     "be yes (STARTTLS or SMTP over TLS: choose one)"),
    ("[ttpapps]\nok: maybe", "2: [ttpapps] ok: expected on or off (or "
                             "yes/no, true/false, 1/0), got 'maybe'"),
    ("[ttpapps]\nmy-app: on", "2: [ttpapps] my-app: expected an app name or "
                              "name.OPTION, where name is a Python module "
                              "name and OPTION an option it declares"),
    ("[ttpapps]\nrelay.source-unit: A1",
     "2: [ttpapps] relay.SOURCE-UNIT: expected an app name or name.OPTION, "
     "where name is a Python module name and OPTION an option it declares"),
    ("[httpapps]\niphone: on\niphone.a.b: x/",
     "3: [httpapps] iphone.A.B: expected an app name, name.url or "
     "name.OPTION, where name is a Python module name and OPTION an option "
     "it declares"),
    ("[httpapps]\niphone.title: Plant",
     "2: [httpapps] iphone.TITLE: no 'iphone: on' or 'iphone: off' line for "
     "this app"),
    ("[httpapps]\niphone.url: iphone/",
     "2: [httpapps] iphone.url: no 'iphone: on' or 'iphone: off' line for "
     "this app"),
    ("[httpapps]\niphone: on\niphone.url:",
     "3: [httpapps] iphone.url: expected a URL prefix such as iphone/, "
     "got ''"),
    ("[httpapps]\niphone: on\niphone.url: /",
     "3: [httpapps] iphone.url: expected a URL prefix such as iphone/, "
     "got '/'"),
])
def test_errors(text, expected):
    assert error(text) == "/site/txm.conf:" + expected


def test_continuation_lines_keep_line_numbers():
    text = "[email]\nEMAIL_HOST_USER: a\n  b\n\n  c\nEMAIL_PORT: x\n"
    assert error(text).startswith("/site/txm.conf:6: [email] EMAIL_PORT:")
    assert parse(CONF, text.replace(": x", ": 26")).EMAIL_HOST_USER == \
        "a\nb\n\nc"


def test_first_error_in_file_order_is_reported():
    assert error("DS_PORT: x\nHTTP_PORT: y\n").startswith(
        "/site/txm.conf:1: [main] DS_PORT")


# -- apps sections -------------------------------------------------------

def test_ttpapps_default_and_overrides():
    assert Settings().ttpapps == {"ok": True}
    settings = parse(CONF, "[ttpapps]\nok: off\nmyapp: on\n")
    assert settings.ttpapps == {"ok": False, "myapp": True}


def test_httpapps():
    settings = parse(CONF, "[httpapps]\niphone: on\niphone.url: iphone/\n"
                           "report: off\nlegacy: yes\nlegacy.url: /old\n")
    assert settings.httpapps == {
        "iphone": {"on": True, "url": "/iphone/"},
        "report": {"on": False, "url": None},
        "legacy": {"on": True, "url": "/old/"},
    }
    assert Settings().httpapps == {}


# -- Settings without a file, describe() ---------------------------------

def test_settings_overrides(tmp_path):
    settings = Settings(DS_PORT=0, SOCKET_OPEN=False, base_dir=str(tmp_path),
                        DATABASE_NAME=tmp_path / "sub" / "t.db")
    assert (settings.DS_PORT, settings.SOCKET_OPEN) == (0, False)
    assert settings.DATABASE_NAME == str(tmp_path / "sub" / "t.db")
    assert settings.TTP_APPS_DIR == str(tmp_path / "TTPApps")
    assert settings.HTTP_PORT == 8080
    with pytest.raises(TypeError):
        Settings(DS_PROT=1)


def test_describe():
    settings = parse(CONF, "DS_PORT: 1\n[email]\nEMAIL_HOST_PASSWORD: pw\n"
                           "[httpapps]\nx: on\nx.url: x/\n")
    lines = settings.describe()
    assert lines[0] == "[main] DS_PORT = 1   (/site/txm.conf:1)"
    assert lines[1] == "[main] HTTP_PORT = 8080   (default)"
    assert "[main] SOCKET_OPEN = yes   (default)" in lines
    assert "[email] EMAIL_HOST_PASSWORD = ********   (/site/txm.conf:3)" \
        in lines
    assert "[database] DATABASE_NAME = /site/db/data_server3.db   (default)" \
        in lines
    assert lines[-3:] == ["[ttpapps] ok = on   (default)",
                          "[httpapps] x = on   (/site/txm.conf:5)",
                          "[httpapps] x.url = /x/   (/site/txm.conf:6)"]
    assert len(lines) == len(config.DEFAULTS) + 3


# -- the documented example ----------------------------------------------

def test_example_txm_conf_equals_the_defaults():
    path = os.path.join(ROOT, "txm.conf")
    settings = load(cli_path=path, environ={})
    defaults = Settings(base_dir=ROOT)
    for key in config.DEFAULTS:
        assert getattr(settings, key.name) == getattr(defaults, key.name), \
            key.name
        assert (key.section, key.name) in settings.lines, key.name
    assert settings.ttpapps == {"ok": True}
    assert settings.httpapps == {}


def test_example_txm_conf_documents_every_key():
    with open(os.path.join(ROOT, "txm.conf")) as f:
        lines = f.read().splitlines()
    settings = parse(os.path.join(ROOT, "txm.conf"))
    for (section, name), line in settings.lines.items():
        assert lines[line - 2].startswith("# "), name


def test_https_needs_both_files():
    with pytest.raises(config.ConfigError) as caught:
        parse(CONF, "HTTP_PORT: 1\nHTTPS_CERT_FILE: cert.pem\n")
    assert str(caught.value) == (
        "/site/txm.conf:2: [main] HTTPS_CERT_FILE: HTTPS needs both HTTPS_CERT_FILE and "
        "HTTPS_KEY_FILE; HTTPS_KEY_FILE is not set")
    assert parse(CONF, "HTTPS_CERT_FILE:\n").HTTPS_CERT_FILE == ""


@pytest.mark.parametrize("text", ["", "localhost", "10.0.0.300", "1.2.3.4;5.6.7.8"])
def test_proxy_addresses_must_be_addresses(text):
    with pytest.raises(config.ConfigError) as caught:
        parse(CONF, "PROXY_ADDRESSES: %s\n" % text)
    assert "PROXY_ADDRESSES: expected" in str(caught.value)


def test_a_main_header_after_keys_without_one_says_why_it_is_a_duplicate():
    with pytest.raises(config.ConfigError) as caught:
        parse(CONF, "DS_PORT: 1\n[MAIN]\nHTTP_PORT: 2\n")
    assert str(caught.value) == (
        "/site/txm.conf:2: [MAIN]: duplicate section (keys before the first header "
        "already belong to [main])")
