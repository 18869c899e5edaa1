"""``manage``: the administration commands (docs/configuration.md, "The command line").

Each command is a small function taking the parsed arguments and the
settings; `COMMANDS` is the table the parser is built from, so ``manage
help`` and ``manage COMMAND --help`` list exactly what exists. Commands open
their own connection to the database, so they are safe to run while the
server is serving (WAL mode lets both work).
"""

import argparse
import getpass
import os
import re
import sys
import time

from texmate_ds import (
    auth,
    config,
    export,
    importer,
    plugins,
    rules,
    server,
    store,
    times,
    tls,
    ttp,
)


class CommandError(Exception):
    """The command cannot do what was asked; message for the operator."""


def _store(settings):
    return server.open_store(settings)


def _unit(st, code):
    unit = st.units.get(code)
    if unit is None:
        raise CommandError("no unit %r (manage listunits shows them)" % code)
    return unit


def _password(args, prompt_user):
    """The new password: TXM_PASSWORD with --noinput, else asked twice."""
    if args.noinput:
        password = os.environ.get("TXM_PASSWORD")
        if not password:
            raise CommandError("--noinput needs the password in the TXM_PASSWORD environment variable")
        return password
    if not sys.stdin.isatty():
        raise CommandError("no terminal to ask for a password: use --noinput with TXM_PASSWORD")
    while True:
        first = getpass.getpass("Password for %s: " % prompt_user)
        if first and first == getpass.getpass("Password (again): "):
            return first
        print("The passwords were empty or did not match; try again.", file=sys.stderr)


def _timestamp(option, text, end=False):
    """A time as the web's ``from``/``to`` read it (`times.moment`): a date
    alone is the start of that day, or with `end` its last microsecond, so
    ``--to 2010-1-2`` includes the 2nd; ``-7d`` and the like count back
    from now."""
    if text is None:
        return None
    try:
        return times.moment(option, text, times.now(), day_end=end)
    except times.BadTime as exc:
        raise CommandError("bad timestamp: %s" % exc) from None


def _numbered(text, option):
    """``NAME:1,2`` (as --axis and --channels take it) -> (NAME, [1, 2])."""
    name, colon, numbers = text.rpartition(":")
    try:
        fields = [int(n) for n in numbers.split(",")]
    except ValueError:
        fields = None
    if not colon or not name or not fields:
        raise CommandError("%s %r: expected NAME:N[,N...] with field numbers" % (option, text))
    return name, fields


def _graph_size(text):
    width, x, height = text.lower().partition("x")
    if not (x and width.isdigit() and height.isdigit()):
        raise CommandError("--graph-size %r: expected WIDTHxHEIGHT in pixels, e.g. 800x300"
                           % text)
    return int(width), int(height)


def _user(st, username):
    user = st.accounts.get_user_by_name(username)
    if not user:
        raise CommandError("no user %r" % username)
    return user


def cmd_syncdb(args, settings):
    """create or upgrade the database schema (idempotent)"""
    try:
        st = store.Database(settings.DATABASE_NAME)
    except store.SchemaTooNew as exc:
        raise CommandError(str(exc)) from None
    old, new = st.migrate()
    st.close()
    _store(settings).close()  # adds the Administrator to a new database
    state = ("created" if old == 0 else "up to date" if old == new
             else "upgraded from version %d" % old)
    print("database %s: schema version %d (%s)" % (settings.DATABASE_NAME, new, state))


def cmd_createsuperuser(args, settings):
    """create a user with every permission"""
    if not args.noinput and not sys.stdin.isatty():
        raise CommandError("no terminal to ask on: use --noinput with --username "
                           "and TXM_PASSWORD")
    username = args.username
    if not username:
        if args.noinput:
            raise CommandError("--username is required with --noinput")
        username = input("Username: ").strip()
    email = args.email if args.email is not None else (
        "" if args.noinput else input("Email address: ").strip())
    st = _store(settings)
    if st.accounts.get_user_by_name(username):
        raise CommandError("user %r exists already" % username)
    password = _password(args, username)
    st.accounts.add_user(username, auth.hash_password(password), email=email,
                         is_staff=True, is_superuser=True)
    st.close()
    print("superuser %s created" % username)


def cmd_changepassword(args, settings):
    """set a user's password"""
    st = _store(settings)
    user = _user(st, args.user)
    password = _password(args, user.username)
    st.accounts.set_password(user.id, auth.hash_password(password),
                             must_change=password == auth.DEFAULT_PASSWORD)
    st.close()
    print("password changed for %s" % user.username)


def cmd_reset_admin_password(args, settings):
    """set user id 1 (Administrator) back to password 'admin'"""
    st = _store(settings)
    if not st.accounts.set_password(1, auth.hash_password(auth.DEFAULT_PASSWORD),
                                    must_change=True):
        raise CommandError("there is no user with id 1")
    user = st.accounts.get_user(1)
    st.close()
    print("password of %s (user id 1) reset to '%s'; change it at the next sign-in"
          % (user.username, auth.DEFAULT_PASSWORD))


def cmd_unlock(args, settings):
    """clear sign-in throttles: every one, or USER's at any address"""
    st = _store(settings)
    forgotten = auth.unlock(st, args.user)
    st.close()
    whose = "every sign-in throttle" if args.user is None else "sign-in throttles of %s" % args.user
    print("%s cleared (%d counted attempt(s) forgotten)" % (whose, forgotten))


def cmd_addunit(args, settings):
    """add a unit (meter)"""
    try:
        ttp.check_unit_code(args.code)
    except ttp.TTPError:
        raise CommandError("unit code %r: 1 to 32 letters and digits" % args.code) from None
    if not 1 <= args.fields <= 32:
        raise CommandError("--fields: a number from 1 to 32")
    if not re.match(r"[\x21-\x7e]{1,64}\Z", args.key):
        raise CommandError("key: 1 to 64 printable ASCII characters without spaces "
                           "(what a meter can send)")
    names = [n.strip() for n in args.field_names.split(",")] if args.field_names else []
    if len(names) > args.fields:
        raise CommandError("--field-names: %d names for %d fields" % (len(names), args.fields))
    axes = []
    for text in args.axis:
        label, fields = _numbered(text, "--axis")
        axes.append(store.Axis(label, tuple(fields)))
    size = _graph_size(args.graph_size) if args.graph_size else None
    st = _store(settings)
    if st.units.get(args.code):
        raise CommandError("unit %s exists already" % args.code)
    source = _unit(st, args.source) if args.source else None
    readable = [_unit(st, c) for c in args.reads.split(",")] if args.reads else []
    unit = st.units.add(args.code, args.key, args.fields, name=args.name or "",
                        description=args.description or "", field_names=names,
                        enabled=not args.disabled, source=source)
    for other in readable:
        st.units.allow_read(unit, other)
    if size or axes:
        options = st.units.graph_options(unit)._replace(axes=tuple(axes))
        if size:
            options = options._replace(width=size[0], height=size[1])
        try:
            rules.check_graph_options(unit, options)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        st.units.set_graph_options(unit, options)
    st.close()
    print("unit %s added (%d fields%s)" % (unit.code, unit.fields,
                                           "" if unit.enabled else ", disabled"))


def cmd_adddisplay(args, settings):
    """add a multiple-meter display (units and channels to show together)"""
    st = _store(settings)
    channels = []
    for text in args.channels:
        code, fields = _numbered(text, "--channels")
        unit = _unit(st, code)
        channels.extend((unit, field) for field in fields)
    try:
        rules.check_display(args.name, args.refresh, channels)
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    display = st.displays.add(args.name, args.refresh, channels)
    st.close()
    print("display %d %r added: /views/%d/" % (display.id, args.name, display.id))


def cmd_addtoken(args, settings):
    """create an API token for a user (printed once) for Authorization: Bearer"""
    st = _store(settings)
    user = _user(st, args.user)
    try:
        token = auth.create_api_token(st, user.id, args.name)
    except ValueError as exc:
        raise CommandError("%s (revoke it with: manage revoketoken %s %s)"
                           % (exc, user.username, args.name)) from None
    st.close()
    print("API token %r for %s; it is shown only this once:" % (args.name, user.username),
          file=sys.stderr)
    print(token)


def cmd_revoketoken(args, settings):
    """delete a user's API token by name"""
    st = _store(settings)
    user = _user(st, args.user)
    if not auth.revoke_api_token(st, user.id, args.name):
        raise CommandError("%s has no token named %r" % (user.username, args.name))
    st.close()
    print("API token %r of %s revoked" % (args.name, user.username))


def cmd_listunits(args, settings):
    """list the units with their sample counts"""
    st = _store(settings)
    rows = [("code", "name", "fields", "enabled", "samples", "last sample")]
    for unit in st.units.all():
        last = st.samples.last(unit)
        rows.append((unit.code, unit.name, str(unit.fields), "yes" if unit.enabled else "no",
                     str(st.samples.count(unit)), times.text(last[1]) if last else "-"))
    st.close()
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())


def cmd_export(args, settings):
    """write a unit's samples as CSV (stdout or -o FILE)"""
    start, end = _timestamp("--from", args.from_), _timestamp("--to", args.to, end=True)
    st = _store(settings)
    unit = _unit(st, args.unit)
    out = open(args.output, "w", newline="", encoding="utf-8") if args.output else sys.stdout
    try:
        for chunk in export.csv_chunks(st, unit, start, end):
            out.write(chunk)
    finally:
        if args.output:
            out.close()
        st.close()


class _Progress:
    """The import's progress bar on stderr (a terminal): rows done of the
    file's rows, and rows/s, redrawn at most `EVERY` seconds."""

    EVERY = 0.25

    def __init__(self, path, out=sys.stderr):
        self.out = out
        self.total = self._count_rows(path)
        self.started = self.shown = time.monotonic()
        self.width = 0

    @staticmethod
    def _count_rows(path):
        """Lines after the header (one pass over the bytes, about 50 ms a
        million rows); only for the bar, so a newline in a quoted header
        cell may make it one off."""
        lines = 0
        last = b"\n"
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                lines += block.count(b"\n")
                last = block[-1:]
        return max(0, lines - 1 + (last != b"\n"))

    def _draw(self, text):
        self.out.write("\r" + text.ljust(self.width))
        self.out.flush()
        self.width = len(text)

    def rows(self, done):
        now = time.monotonic()
        if now - self.shown < self.EVERY:
            return
        self.shown = now
        rate = done / (now - self.started) if now > self.started else 0
        share = " (%d%%)" % (100 * done // self.total) if self.total else ""
        self._draw("import: %d/%d rows%s, %d rows/s" % (done, self.total, share, rate))

    def storing(self, count):
        self._draw("import: storing %d samples..." % count)

    def clear(self):
        if self.width:
            self.out.write("\r%s\r" % (" " * self.width))
            self.out.flush()


def _duplicate_lines(result):
    more = result.duplicates - len(result.listed)
    yield "%d duplicate timestamp(s)%s:" % (
        result.duplicates, " (the first %d listed)" % len(result.listed) if more else "")
    for row, ts, note in result.listed:
        yield "  row %d: %s (%s)" % (row, times.text(ts), note)


def cmd_import(args, settings):
    """read samples into a unit from CSV as export writes it (all or nothing)"""
    st = _store(settings)
    try:
        unit = _unit(st, args.unit)
        try:
            binary = open(args.file, "rb")
        except OSError as exc:
            raise CommandError("%s: %s" % (args.file, exc.strerror)) from None
        with binary:
            progress = _Progress(args.file) if sys.stderr.isatty() else None
            try:
                result = importer.import_csv(st, unit, binary, args.duplicates, progress)
            except importer.BadFile as exc:
                raise CommandError("%s: %s; nothing imported" % (args.file, exc)) from None
            except importer.Raced as exc:
                raise CommandError("%s: %s; nothing imported" % (args.file, exc)) from None
            finally:
                if progress:
                    progress.clear()
    finally:
        st.close()
    if not result.rows:
        print("%s has no samples (a header only): nothing imported" % args.file)
        return
    if result.duplicates:
        print("\n".join(_duplicate_lines(result)), file=sys.stderr)
    if result.stored is None:
        raise CommandError("%d duplicate timestamp(s) and --duplicates refuse: nothing imported"
                           % result.duplicates)
    seconds = max(result.seconds, 1e-6)
    print("imported %d samples into %s (%d duplicates skipped) in %.1f s, %d rows/s"
          % (result.stored, unit.code, result.duplicates, result.seconds,
             result.rows / seconds))


def cmd_backup(args, settings):
    """copy the database with SQLite's online backup (safe while serving)"""
    if os.path.exists(args.path):
        raise CommandError("%s exists; choose a new file name" % args.path)
    st = _store(settings)
    try:
        st.backup(args.path)
    except store.StoreError as exc:
        raise CommandError("backup to %s failed: %s" % (args.path, exc)) from None
    finally:
        st.close()
    print("backup written to %s (%d bytes)" % (args.path, os.path.getsize(args.path)))


def cmd_apps(args, settings):
    """list every TTP and HTTP app found, on or off, without running them"""
    print("TTP apps (bundled, and site apps in %s):" % settings.TTP_APPS_DIR)
    for app in plugins.find_ttp_apps(settings):
        print("  %-12s %-3s  %-8s %s" % (app.name, "on" if app.enabled else "off",
                                         "bundled" if app.bundled else "site",
                                         app.description()))
    print("HTTP apps (in %s):" % settings.HTTP_APPS_DIR)
    found = plugins.find_http_apps(settings)
    if not found:
        print("  (none)")
    for app in found:
        print("  %-12s %-3s  %-16s %s" % (app.name, "on" if app.enabled else "off",
                                          app.url or "(no url)", app.description()))


def cmd_check(args, settings):
    """validate the configuration and the apps; print what would run"""
    print("config: %s (%s)" % (settings.config_path or "none", settings.config_how))
    for line in settings.describe():
        print("  " + line)
    extensions = plugins.load_ttp_apps(settings)
    print("TTP apps: " + ", ".join("/%s/ (%s)" % (code, ext.app.name)
                                   for code, ext in sorted(extensions.items())))
    mounted = plugins.load_http_apps(settings)
    if mounted:
        print("HTTP apps: " + ", ".join(prefix for prefix, _ in mounted))
    https = tls.server_context(settings) is not None
    print("would listen: TTP %s:%d, HTTP %s:%d; web at %s" % (
        settings.DS_BIND, settings.DS_PORT, settings.HTTP_BIND, settings.HTTP_PORT,
        server.web_address(settings.HTTP_BIND, settings.HTTP_PORT, "https" if https else "http")))
    print("configuration OK")


COMMANDS = {name[4:]: fn for name, fn in globals().items() if name.startswith("cmd_")}


def build_parser():
    parser = argparse.ArgumentParser(prog="texmate_ds manage",
                                     description="Administration commands.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    parsers = {name: sub.add_parser(name, help=fn.__doc__, description=fn.__doc__)
               for name, fn in COMMANDS.items()}
    sub.add_parser("help", help="list the commands, or explain one").add_argument(
        "topic", nargs="?")
    p = parsers["createsuperuser"]
    p.add_argument("--username")
    p.add_argument("--email")
    p.add_argument("--noinput", action="store_true", help="password from TXM_PASSWORD")
    p = parsers["changepassword"]
    p.add_argument("user")
    p.add_argument("--noinput", action="store_true", help="password from TXM_PASSWORD")
    parsers["unlock"].add_argument("user", nargs="?", metavar="USER",
                                   help="a username (none: every throttle)")
    p = parsers["addunit"]
    p.add_argument("code")
    p.add_argument("key")
    p.add_argument("--fields", type=int, required=True, help="number of data fields, 1 to 32")
    p.add_argument("--name")
    p.add_argument("--description")
    p.add_argument("--field-names", help="comma-separated names of the fields")
    p.add_argument("--source", metavar="CODE", help="the unit whose samples dl returns by default")
    p.add_argument("--reads", metavar="CODE,CODE", help="other units this unit may dl from")
    p.add_argument("--disabled", action="store_true")
    p.add_argument("--graph-size", metavar="WxH", help="graph width and height in pixels")
    p.add_argument("--axis", metavar="LABEL:N,N", action="append", default=[],
                   help="a graph axis and its field numbers (repeat for more axes; "
                        "none: one axis with every field)")
    p = parsers["adddisplay"]
    p.add_argument("name")
    p.add_argument("--refresh", type=int, default=10, metavar="S",
                   help="seconds between reloads of the page (default 10)")
    p.add_argument("--channels", metavar="CODE:N,N", action="append", required=True,
                   help="a unit and its field numbers to show (repeat for more units)")
    for name in ("addtoken", "revoketoken"):
        parsers[name].add_argument("user")
    parsers["addtoken"].add_argument("--name", default="api", help="the token's name (default api)")
    parsers["revoketoken"].add_argument("name")
    p = parsers["export"]
    p.add_argument("unit")
    p.add_argument("--from", dest="from_", metavar="TS")
    p.add_argument("--to", metavar="TS")
    p.add_argument("-o", "--output", metavar="FILE")
    p = parsers["import"]
    p.add_argument("unit")
    p.add_argument("file", help="CSV: header id,timestamp,<one name per field>, a row per "
                                "sample (UTF-8)")
    p.add_argument("--duplicates", choices=("skip", "refuse"), default="skip",
                   help="a timestamp stored already or repeated in the file: skip it "
                        "(the default) or refuse the file")
    parsers["backup"].add_argument("path")
    return parser


def main(argv, settings):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command in (None, "help"):
        topic = getattr(args, "topic", None)
        if topic:
            if topic not in COMMANDS:
                parser.error("no command %r" % topic)
            parser.parse_args([topic, "--help"])
        parser.print_help()
        return 0
    try:
        COMMANDS[args.command](args, settings)
    except (CommandError, server.StartupError, plugins.AppError, config.ConfigError) as exc:
        print("manage %s: %s" % (args.command, exc), file=sys.stderr)
        return 2 if isinstance(exc, (plugins.AppError, config.ConfigError)) else 1
    except store.StoreError as exc:
        print("manage %s: database %s: %s" % (args.command, settings.DATABASE_NAME, exc),
              file=sys.stderr)
        return 1
    return 0
