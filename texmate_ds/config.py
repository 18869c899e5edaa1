"""Settings: the table of defaults, the txm.conf search, parsing and errors.

Every setting the server knows is one row of ``DEFAULTS``: its section,
its key, its default, what it means, and the converter that turns the
text of a txm.conf value into that default's type (int, bool, str or
path) and enforces its range.  Nothing else declares a setting, so the
documentation (``txm.conf`` at the project root), ``manage check`` and the
parser cannot drift apart.

There is no module-global settings object.  ``load()`` finds the file
(``--config``, ``TXM_CONF``, ``./txm.conf``, ``~/txm.conf``,
``/etc/txm.conf``, else built-in defaults), parses and validates it, and
returns a ``Settings`` that the caller hands on to whoever needs it.
Tests and tools build one directly: ``Settings(DS_PORT=0, ...)``.

Anything wrong in the file raises ``ConfigError`` whose text is one line
naming the file, line, section, key and what was expected; the server
prints it and exits with status 2 before binding anything.  Nothing is
silently ignored.

The apps' own options, ``name.KEY: value`` in [ttpapps] and [httpapps],
are declared by the apps, not here: parsing keeps their text and line
(``Settings.app_options``), and plugins.py types each by its declared
default with the converters txm.conf's keys use (`converter_for`) and
words its mistakes as this module does (``Settings.error``).
"""

import collections
import configparser
import difflib
import ipaddress
import os
import re

__all__ = ["ConfigError", "DEFAULTS", "Settings", "converter_for", "find_config",
           "load", "parse", "show"]


class ConfigError(Exception):
    """A configuration problem; ``str()`` is one line for the operator."""


# -- converters: text from txm.conf -> typed value, or ValueError(why) --

def _got(expected, text):
    return "expected %s, got %r" % (expected, text)


def _integer(lo=None, hi=None):
    # No `lo`: any integer (an app option's; txm.conf's own keys all have
    # a lower bound).
    expected = ("an integer" if lo is None else
                "an integer from %d to %d" % (lo, hi) if hi is not None
                else "an integer >= %d" % lo)

    def convert(text):
        # int() alone would also take '1_000' and non-ASCII digits.
        if not re.fullmatch(r"[+-]?[0-9]+", text):
            raise ValueError(_got(expected, text))
        value = int(text)
        if ((lo is not None and value < lo)
                or (hi is not None and value > hi)):
            raise ValueError(_got(expected, text))
        return value
    return convert


_BOOLEANS = configparser.ConfigParser.BOOLEAN_STATES


def _boolean(text):
    if text.lower() not in _BOOLEANS:
        raise ValueError(_got("yes or no (or on/off, true/false, 1/0)", text))
    return _BOOLEANS[text.lower()]


def _text(text):
    return text


def _nonempty(text):
    if not text:
        raise ValueError(_got("a non-empty value", text))
    return text


def _path(text):
    # The vendor's Windows file says 'db\data_server3.db'; it must work
    # unchanged here.  Resolution against the file's directory happens in
    # Settings, so that overrides and defaults are resolved the same way.
    return _nonempty(text).replace("\\", "/")


def _optional_path(text):
    # Empty means "not set" (HTTPS off); anything else is a path.
    return text.replace("\\", "/")


def _addresses(text):
    """Comma-separated IP addresses or networks (``10.0.0.0/8``), kept as
    text in one normalised spelling; `networks` reads it back."""
    try:
        found = networks(text)
    except ValueError:
        raise ValueError(_got("IP addresses or networks separated by commas",
                              text)) from None
    if not found:
        raise ValueError(_got("at least one IP address", text))
    return ", ".join(str(n) if n.num_addresses > 1 else str(n.network_address)
                     for n in found)


def networks(text):
    """The networks of a PROXY_ADDRESSES value (ValueError if malformed)."""
    return [ipaddress.ip_network(part.strip(), strict=False)
            for part in text.split(",") if part.strip()]


def _log_level(text):
    if text.lower() not in ("debug", "info", "warning", "error"):
        raise ValueError(_got("one of debug, info, warning, error", text))
    return text.lower()


ENGINES = ("sqlite3", "postgresql")


def _engine(text):
    if text.lower() not in ENGINES:
        raise ValueError(_got("sqlite3 or postgresql", text))
    return text.lower()


def converter_for(default):
    """The converter of an app option declared with `default`: typed by the
    default as txm.conf's own keys are, a bool (yes/no...), an int (any
    integer) or a str (any text).  TypeError for a default of another
    type."""
    # bool before int: True is an int too.
    for kind, convert in ((bool, _boolean), (int, _integer()), (str, _text)):
        if isinstance(default, kind):
            return lambda text: _value(convert, text)
    raise TypeError("a default must be a bool, an int or a str, as txm.conf's "
                    "values are; got %r" % (default,))


def _value(convert, text):
    """`convert(text)`; its ValueError says when a comment was on the line."""
    try:
        return convert(text)
    except ValueError as e:
        why = str(e)
        if " #" in text or " ;" in text:
            why += " (comments must be on a line of their own)"
        raise ValueError(why) from None


Key = collections.namedtuple("Key", "section name default meaning convert")

_PORT = _integer(0, 65535)      # 0: the OS picks a free port (tests use it)
_POSITIVE = _integer(1)

DEFAULTS = (
    Key("main", "DS_PORT", 9995, "TTP listener port", _PORT),
    Key("main", "HTTP_PORT", 8080, "web listener port", _PORT),
    Key("main", "DS_BIND", "0.0.0.0", "TTP listen address", _nonempty),
    Key("main", "HTTP_BIND", "0.0.0.0", "web listen address", _nonempty),
    Key("main", "MAINTENANCE_INTERVAL", 500,
        "requests between dead-channel sweeps", _POSITIVE),
    Key("main", "CHANNEL_TIMEOUT", 600,
        "seconds before a busy or idle channel is dead", _POSITIVE),
    Key("main", "HTTP_HEADER_TIMEOUT", 10,
        "seconds a web client has to send a request head, and may stay idle "
        "between requests; a body must then keep arriving at 500 bytes/s",
        _POSITIVE),
    Key("main", "SOCKET_OPEN", True,
        "keep TTP connections open between requests", _boolean),
    Key("main", "MAX_CONNECTIONS", 10000,
        "open TTP connections at most", _POSITIVE),
    Key("main", "MAX_HTTP_CONNECTIONS", 1000,
        "open web connections at most, counted apart from TTP's", _POSITIVE),
    Key("main", "MAX_EVENT_STREAMS", 1000,
        "open /events streams at most", _POSITIVE),
    Key("main", "HTTPS_CERT_FILE", "",
        "PEM certificate (chain): the web port speaks HTTPS", _optional_path),
    Key("main", "HTTPS_KEY_FILE", "",
        "PEM private key of HTTPS_CERT_FILE", _optional_path),
    Key("main", "BEHIND_HTTPS_PROXY", False,
        "the web is reached through a TLS-terminating reverse proxy",
        _boolean),
    Key("main", "PROXY_ADDRESSES", "127.0.0.1",
        "addresses of trusted reverse proxies", _addresses),
    Key("main", "MAX_REQUEST_BYTES", 65536, "longest TTP request line",
        _integer(256)),
    Key("main", "DL_MAX_SAMPLES", 1000,
        "samples one dl ... from<TS> returns at most", _POSITIVE),
    Key("main", "TTP_APPS_DIR", "TTPApps", "folder of site TTP apps", _path),
    Key("main", "HTTP_APPS_DIR", "HTTPApps", "folder of site HTTP apps",
        _path),
    Key("main", "LOGIN_REQUIRED", True,
        "the web UI (not /admin/, which always needs staff) needs a login",
        _boolean),
    Key("main", "SESSION_DAYS", 14, "days a web sign-in lasts", _POSITIVE),
    Key("main", "SILENT_CHECK_SECONDS", 30,
        "seconds between looks for silent meters", _POSITIVE),
    Key("main", "LOG_LEVEL", "info", "debug, info, warning, error",
        _log_level),
    Key("email", "EMAIL_HOST", "localhost", "SMTP server", _nonempty),
    Key("email", "EMAIL_PORT", 25, "SMTP port", _integer(1, 65535)),
    Key("email", "EMAIL_USE_TLS", False, "STARTTLS", _boolean),
    Key("email", "EMAIL_USE_SSL", False, "SMTP over TLS", _boolean),
    Key("email", "EMAIL_HOST_USER", "", "SMTP login user", _text),
    Key("email", "EMAIL_HOST_PASSWORD", "", "SMTP login password", _text),
    Key("email", "DEFAULT_FROM_EMAIL", "dataserver@localhost", "sender",
        _nonempty),
    Key("email", "EMAIL_RETRY_HOURS", 24,
        "hours an alarm's email or webhook is retried before it is failed; "
        "0: tried once", _integer(0)),
    Key("database", "DATABASE_ENGINE", "sqlite3", "the store", _engine),
    Key("database", "DATABASE_NAME", "db/data_server3.db",
        "database file (SQLite) or database name (PostgreSQL)", _path),
    Key("database", "DATABASE_HOST", "",
        "PostgreSQL server (a path: its Unix socket folder; empty: libpq's default)",
        _text),
    Key("database", "DATABASE_PORT", 5432, "PostgreSQL port", _integer(1, 65535)),
    Key("database", "DATABASE_USER", "", "PostgreSQL login (empty: libpq's default)",
        _text),
    Key("database", "DATABASE_PASSWORD", "",
        "PostgreSQL password (empty: PGPASSWORD or ~/.pgpass)", _text),
    Key("database", "COMMIT_INTERVAL", 1, "uploads per commit", _POSITIVE),
    Key("database", "COMMIT_DELAY", 50,
        "ms a batched commit waits at most", _integer(0)),
    Key("graph", "MAX_PLOT_POINTS", 0,
        "points per line at most; 0 = automatic", _integer(0)),
    Key("admin", "ALLOW_SAMPLE_DELETION", True,
        "samples can be deleted from the admin", _boolean),
    Key("admin", "ALLOW_ALARM_DELETION", True,
        "alarms can be deleted from the admin", _boolean),
)

_BY_NAME = {key.name: key for key in DEFAULTS}
_SECTIONS = {}     # section -> {KEY: Key}
for _key in DEFAULTS:
    _SECTIONS.setdefault(_key.section, {})[_key.name] = _key
del _key
APP_SECTIONS = ("ttpapps", "httpapps")
_PATH_KEYS = tuple(key.name for key in DEFAULTS
                   if key.convert in (_path, _optional_path))


def _resolve(value, base_dir):
    if not value:
        return value    # an optional path left empty
    path = os.path.expanduser(os.fspath(value))
    return os.path.normpath(os.path.join(base_dir, path))


def show(value):
    """A typed value as txm.conf would write it (booleans yes/no)."""
    if value is True or value is False:
        return "yes" if value else "no"
    return str(value)


class Settings:
    """The server's configuration, one attribute per key of docs/configuration.md.

    ``Settings(**overrides)`` starts from the defaults; overrides are typed
    values (``DS_PORT=0``, ``SOCKET_OPEN=False``) and may also set
    ``base_dir`` (what relative paths resolve against; default: the current
    directory), ``ttpapps``, ``httpapps``, ``config_path`` and
    ``config_how``.  Paths always come out absolute.
    """

    def __init__(self, base_dir=None, config_path=None,
                 config_how="built-in defaults", ttpapps=None, httpapps=None,
                 **values):
        for name in values:
            if name not in _BY_NAME:
                raise TypeError("Settings() got an unknown setting %r"
                                % name)
        self.base_dir = os.path.abspath(base_dir or os.getcwd())
        self.config_path = config_path
        self.config_how = config_how
        self.ttpapps = {"ok": True}
        self.ttpapps.update(ttpapps or {})
        self.httpapps = dict(httpapps or {})
        # The apps' own options, {section: {app: {KEY: text}}}: text, as
        # only the app's declaration (plugins.py) says what type each is.
        # Set by `parse` only, as each has its line in `lines`.
        self.app_options = {section: {} for section in APP_SECTIONS}
        # (section, key as shown) -> line in config_path; absent: default.
        self.lines = {}
        # PostgreSQL's DATABASE_NAME names a database, not a file.
        named = values.get("DATABASE_ENGINE", "sqlite3") == "postgresql"
        for key in DEFAULTS:
            value = values.get(key.name, key.default)
            if key.name in _PATH_KEYS and not (named and key.name == "DATABASE_NAME"):
                value = _resolve(value, self.base_dir)
            setattr(self, key.name, value)

    def __repr__(self):
        return "<Settings from %s>" % (self.config_path or self.config_how)

    def describe(self):
        """Lines ``[section] KEY = value   (default|file:line)``."""
        rows = [(key.section, key.name, getattr(self, key.name))
                for key in DEFAULTS]
        rows += [("ttpapps", name, on) for name, on in self.ttpapps.items()]
        rows += self._option_rows("ttpapps")
        for name, app in self.httpapps.items():
            rows.append(("httpapps", name, app["on"]))
            if app["url"] is not None:
                rows.append(("httpapps", name + ".url", app["url"]))
        rows += self._option_rows("httpapps")
        out = []
        for section, name, value in rows:
            if name in ("EMAIL_HOST_PASSWORD", "DATABASE_PASSWORD") and value:
                value = "********"      # manage check output gets pasted
            elif section in APP_SECTIONS and value in (True, False):
                value = "on" if value else "off"
            line = self.lines.get((section, name))
            where = ("%s:%d" % (self.config_path, line) if line
                     else "default")
            out.append("[%s] %s = %s   (%s)" % (section, name, show(value),
                                               where))
        return out

    def _option_rows(self, section):
        return [(section, "%s.%s" % (app, key), text)
                for app, given in self.app_options[section].items()
                for key, text in given.items()]

    def error(self, section, key, why):
        """A ConfigError naming the file and the line that set `key` of
        `section` (as shown: ``relay.SOURCE``), and `why`."""
        return _error(self.config_path, self.lines[(section, key)], section,
                      key, why)


# -- finding the file --------------------------------------------------

def find_config(cli_path=None, environ=None, cwd=None, home=None):
    """Return ``(absolute path or None, how it was found)``.

    An explicit ``--config`` or ``TXM_CONF`` naming a missing file is an
    error: the operator asked for that file, falling back would hide it.
    """
    environ = os.environ if environ is None else environ
    cwd = os.getcwd() if cwd is None else cwd
    home = os.path.expanduser("~") if home is None else home
    explicit = [("--config %s", cli_path, "--config"),
                ("TXM_CONF=%s", environ.get("TXM_CONF") or None, "TXM_CONF")]
    for label, given, how in explicit:
        if given is not None:
            path = os.path.join(cwd, os.path.expanduser(given))
            if not os.path.isfile(path):
                raise ConfigError((label % given) + ": no such file")
            return os.path.abspath(path), how
    for folder, how in ((cwd, "current directory"), (home, "home directory"),
                        ("/etc", "/etc")):
        path = os.path.join(folder, "txm.conf")
        if os.path.isfile(path):
            return os.path.abspath(path), how
    return None, "built-in defaults"


def load(cli_path=None, environ=None, cwd=None, home=None):
    """Find, parse and validate the configuration; return ``Settings``."""
    path, how = find_config(cli_path, environ, cwd, home)
    if path is None:
        return Settings(base_dir=os.getcwd() if cwd is None else cwd,
                        config_how=how)
    return parse(path, how=how)


# -- parsing -----------------------------------------------------------

def parse(path, text=None, how="--config"):
    """Parse txm.conf at ``path`` (or ``text``, said to come from it)."""
    path = os.path.abspath(path)
    if text is None:
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as e:
            raise ConfigError("%s: cannot read: %s" % (path, e.strerror))
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as e:
            raise ConfigError("%s:%d: not UTF-8 text" % (
                path, data[:e.start].count(b"\n") + 1)) from None
    entries = _read(path, text)
    settings = _build(path, entries)
    settings.config_how = how
    return settings


def _read(path, text):
    """Return ``{(section, key): (value, line)}``, sections lower-cased.

    configparser parses; a small scan of the lines supplies the line
    numbers configparser does not keep.
    """
    parser = configparser.ConfigParser(
        interpolation=None, strict=True,
        # A [DEFAULT] section would leak its keys into every section; no
        # header can name '\n', so [DEFAULT] becomes an unknown section.
        default_section="\n")
    lines = re.split(r"\r\n|\r|\n", text)    # as an editor counts them
    # Keys before any header belong to [main] (the vendor's minimal file).
    opening = next((l.strip() for l in lines
                    if l.strip() and l.strip()[0] not in "#;"), "")
    offset = 0 if parser.SECTCRE.match(opening) else 1
    if offset:
        lines.insert(0, "[main]")
    try:
        parser.read_string("\n".join(lines), source=path)
    except configparser.DuplicateSectionError as e:
        hint = (" (keys before the first header already belong to [main])"
                if offset and e.section.strip().lower() == "main" else "")
        raise ConfigError("%s:%d: [%s]: duplicate section%s" % (
            path, e.lineno - offset, e.section, hint))
    except configparser.DuplicateOptionError as e:
        first = _scan(lines, parser).get((e.section, e.option), offset)
        raise ConfigError("%s:%d: %s: duplicate key (first set on line %d)" % (
            path, e.lineno - offset, _where(e.section, e.option),
            first - offset))
    except configparser.ParsingError as e:
        lineno = e.errors[0][0]     # its line text differs across versions
        raise ConfigError("%s:%d: syntax error: expected 'KEY: value' or "
                          "'[section]', got %r" % (path, lineno - offset,
                                                   lines[lineno - 1].strip()))
    line_of = _scan(lines, parser)
    entries, seen = {}, {}
    for section in parser.sections():
        name = section.strip().lower()
        at = line_of.get((section, None), offset) - offset
        if name in seen:
            # Line 0 is the [main] the keys before any header belong to.
            also = ("keys before the first header already belong to [main]"
                    if seen[name] == 0 else "also on line %d" % seen[name])
            raise ConfigError("%s:%d: [%s]: duplicate section (%s)" % (
                path, at, section, also))
        seen[name] = at
        if name not in _SECTIONS and name not in APP_SECTIONS:
            raise ConfigError("%s:%d: [%s]: unknown section%s" % (
                path, at, section, _suggest(name, list(_SECTIONS) +
                                            list(APP_SECTIONS))))
        for key, value in parser.items(section):
            at = line_of.get((section, key), offset) - offset
            entries[(name, key)] = (value, at)
    return entries


def _scan(lines, parser):
    """Map (section, key) and (section, None) to their first line number.

    Sections are named as configparser names them (as written).

    Mirrors configparser's reading closely enough for real files: comment
    and blank lines are skipped, a line indented deeper than the key above
    it continues that key's value.
    """
    found, section, key, key_indent = {}, None, None, 0
    for lineno, line in enumerate(lines, 1):
        stripped = line.strip()
        if not stripped or stripped[0] in "#;":
            continue
        indent = len(line) - len(line.lstrip())
        if key is not None and indent > key_indent:
            continue
        header = parser.SECTCRE.match(stripped)
        if header:
            section, key = header.group("header"), None
            found.setdefault((section, None), lineno)
            continue
        option = parser.OPTCRE.match(stripped)
        if option:
            key = parser.optionxform(option.group("option").strip())
            key_indent = indent
            found.setdefault((section, key), lineno)
    return found


def _where(section, key):
    """``[main] DS_PORT``: the fixed sections' keys shown upper-case, the
    apps' as written, but for an option's name in capitals
    (``[ttpapps] relay.SOURCE``)."""
    section = section.strip().lower()
    if section not in APP_SECTIONS:
        return "[%s] %s" % (section, key.upper())
    name, dot, attr = key.partition(".")
    if dot and attr.lower() != "url":
        key = name + dot + attr.upper()
    return "[%s] %s" % (section, key)


def _error(path, line, section, key, why):
    return ConfigError("%s:%d: %s: %s" % (path, line, _where(section, key),
                                          why))


def _suggest(word, choices):
    close = difflib.get_close_matches(word, choices, n=1)
    return " (did you mean %s?)" % close[0] if close else ""


# An app option's name, as an app declares it and txm.conf gives it (any
# case there); URL is not one: in [httpapps] ``name.url`` is where the app
# is mounted.
OPTION_NAME = re.compile(r"[A-Z][A-Z0-9_]*")


def _app_setting(section, key, text):
    """``name: on/off``, ``name.OPTION: value``, and in [httpapps]
    ``name.url: prefix/``.

    Returns ``(name, attr, value)``: attr None for on/off (value a bool),
    ``"url"`` for the URL prefix, which comes back as ``/prefix/`` so that
    mounting never has to guess about slashes, else the option's name in
    upper case, its value the text as written (the app's declaration types
    it, `converter_for`).
    """
    name, dot, attr = key.partition(".")
    url = section == "httpapps" and attr == "url"
    if not name.isidentifier() or (
            dot and not url and not OPTION_NAME.fullmatch(attr.upper())):
        raise ValueError("expected an app %s, where name is a Python module "
                         "name and OPTION an option it declares" % (
                             "name, name.url or name.OPTION"
                             if section == "httpapps" else
                             "name or name.OPTION"))
    if url:
        if not text.strip("/") or any(c.isspace() for c in text):
            raise ValueError(_got("a URL prefix such as %s/" % name, text))
        return name, "url", "/" + text.strip("/") + "/"
    if dot:
        return name, attr.upper(), text
    if text.lower() not in _BOOLEANS:
        raise ValueError(_got("on or off (or yes/no, true/false, 1/0)", text))
    return name, None, _BOOLEANS[text.lower()]


def _build(path, entries):
    values, lines = {}, {}
    apps = {section: {} for section in APP_SECTIONS}
    options = {section: {} for section in APP_SECTIONS}

    def fail(section, key, line, why):
        return _error(path, line, section, key, why)

    # In file order, so that the first mistake in the file is the one shown.
    for (section, key), (text, line) in sorted(entries.items(),
                                                key=lambda e: e[1][1]):
        if section in APP_SECTIONS:
            try:
                name, attr, value = _app_setting(section, key, text)
            except ValueError as e:
                raise fail(section, key, line, str(e))
            if attr is None or attr == "url":
                apps[section].setdefault(name, {})["on" if attr is None
                                                   else "url"] = value
                lines[(section, key)] = line
            else:
                options[section].setdefault(name, {})[attr] = value
                lines[(section, "%s.%s" % (name, attr))] = line
            continue
        known = _SECTIONS[section]
        spec = known.get(key.upper())
        if spec is None:
            home = _BY_NAME.get(key.upper())
            why = ("unknown key (it belongs in [%s])" % home.section if home
                   else "unknown key" + _suggest(key.upper(), list(known)))
            raise fail(section, key, line, why)
        try:
            values[spec.name] = _value(spec.convert, text)
        except ValueError as e:
            raise fail(section, key, line, str(e))
        lines[(section, spec.name)] = line

    # An [httpapps] app is named by its on/off line: its url and options
    # without one are a mistake (a misspelt name), not an app.
    for (section, key), line in sorted(lines.items(), key=lambda e: e[1]):
        name = key.partition(".")[0]
        if section == "httpapps" and "on" not in apps[section].get(name, {}):
            raise fail(section, key, line,
                       "no '%s: on' or '%s: off' line for this app"
                       % (name, name))
    for app in apps["httpapps"].values():
        app.setdefault("url", None)

    if values.get("EMAIL_USE_TLS") and values.get("EMAIL_USE_SSL"):
        later = max(("EMAIL_USE_TLS", "EMAIL_USE_SSL"),
                    key=lambda k: lines[("email", k)])
        raise fail("email", later, lines[("email", later)],
                   "EMAIL_USE_TLS and EMAIL_USE_SSL cannot both be yes "
                   "(STARTTLS or SMTP over TLS: choose one)")

    given = [k for k in ("HTTPS_CERT_FILE", "HTTPS_KEY_FILE") if values.get(k)]
    if len(given) == 1:
        missing = ({"HTTPS_CERT_FILE", "HTTPS_KEY_FILE"} - set(given)).pop()
        raise fail("main", given[0], lines[("main", given[0])],
                   "HTTPS needs both HTTPS_CERT_FILE and HTTPS_KEY_FILE; "
                   "%s is not set" % missing)

    settings = Settings(base_dir=os.path.dirname(path), config_path=path,
                        ttpapps={n: a["on"] for n, a in
                                 apps["ttpapps"].items()},
                        httpapps=apps["httpapps"], **values)
    settings.app_options = options
    settings.lines = lines
    return settings
