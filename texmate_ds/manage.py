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
from texmate_ds.web.app import printable


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


def _actor():
    """Who the action log names for a command: ``manage:<OS user>``."""
    try:
        return "manage:" + getpass.getuser()
    except (KeyError, OSError, ImportError):  # no login name for this uid
        return "manage:unknown"


def _print_table(rows):
    """`rows` of text cells, the first the header, in aligned columns."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())


def _add_user(args, settings, username, email, staff, superuser, groups=(), all_units=False):
    """Add a user, for createsuperuser and adduser alike: refused if the
    name is taken or a group unknown, the password from `_password`, an
    action log entry in the same transaction."""
    if not username:
        raise CommandError("a username cannot be empty")
    st = _store(settings)
    if st.accounts.get_user_by_name(username):
        raise CommandError("user %r exists already" % username)
    found = []
    for name in groups:
        group = st.accounts.get_group_by_name(name)
        if group is None:
            raise CommandError("no group %r (groups are made in the admin, /admin/groups/)"
                               % name)
        found.append(group)
    password = _password(args, username)
    user = st.accounts.add_user(username, auth.hash_password(password), email=email,
                                is_staff=staff, is_superuser=superuser, all_units=all_units)
    st.accounts.set_groups(user.id, [group.id for group in found])
    flags = [flag for flag, on in (("staff", staff), ("superuser", superuser),
                                   ("all units", all_units)) if on]
    flags += ["group %s" % group.name for group in found]
    st.log.record(_actor(), "add", "users", user.id, user.username, message=", ".join(flags))
    st.close()
    return user


def _state(old, new):
    return "created" if old == 0 else "up to date" if old == new else \
        "upgraded from version %d" % old


def cmd_syncdb(args, settings):
    """create or upgrade the database schema and the HTTP apps' tables (idempotent)"""
    # Found, not loaded: an app's migrations are read without running it.
    apps = [app for app in plugins.find_http_apps(settings) if app.enabled and app.spec]
    try:
        st = store.Database(store.address(settings))
    except store.SchemaTooNew as exc:
        raise CommandError(str(exc)) from None
    old, new = st.migrate()
    st.close()
    st = _store(settings)  # adds the Administrator to a new database
    try:
        done = server.migrate_apps(st, apps)
    finally:
        st.close()
    print("database %s: schema version %d (%s)" % (store.address(settings), new,
                                                   _state(old, new)))
    for app, old, new in done:
        if new:
            print("HTTP app %s: tables at version %d (%s)" % (app.name, new, _state(old, new)))


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
    _add_user(args, settings, username, email, staff=True, superuser=True)
    print("superuser %s created" % username)


def cmd_adduser(args, settings):
    """add a user: the password asked twice, or with --noinput from TXM_PASSWORD"""
    user = _add_user(args, settings, args.user, args.email, args.staff, args.superuser,
                     args.group, args.all_units)
    flags = [flag for flag, on in (("staff", user.is_staff), ("superuser", user.is_superuser),
                                   ("all units", user.all_units)) if on]
    flags += ["group %s" % name for name in args.group]
    print("user %s created%s" % (user.username, " (%s)" % ", ".join(flags) if flags else ""))


def cmd_users(args, settings):
    """list the users: username, staff, superuser, active, last login"""
    st = _store(settings)
    rows = [("username", "staff", "superuser", "active", "last login")]
    for user in st.accounts.all_users():
        rows.append((user.username,) + tuple(
            "yes" if flag else "no" for flag in (user.is_staff, user.is_superuser,
                                                 user.is_active))
            + (times.shown(user.last_login) if user.last_login else "-",))
    st.close()
    _print_table(rows)


def cmd_log(args, settings):
    """show the action log, newest first: who added, changed or deleted
    what, and when (the admin's log page, for a terminal)"""
    st = _store(settings)
    entries = st.log.entries(model=args.model, actor=args.user,
                             since=_timestamp("--from", args.from_),
                             until=_timestamp("--to", args.to, end=True), limit=args.limit)
    st.close()
    rows = [("when", "who", "action", "model", "object", "what")]
    for entry in entries:
        what = ["%s: %s" % (field, values if values == "(changed)" else "%s -> %s" % tuple(
            values)) for field, values in sorted(entry.changes.items())]
        rows.append((times.shown(entry.at), entry.actor, entry.action, entry.model,
                     entry.object_repr, "; ".join(what + ([entry.message] if entry.message
                                                          else []))))
    if len(rows) == 1:
        print("no entries")
        return
    # Names were typed in the admin: no control character reaches the terminal.
    _print_table([tuple(printable(cell) for cell in row) for row in rows])


def cmd_changepassword(args, settings):
    """set a user's password"""
    st = _store(settings)
    user = _user(st, args.user)
    password = _password(args, user.username)
    st.accounts.set_password(user.id, auth.hash_password(password),
                             must_change=password == auth.DEFAULT_PASSWORD)
    st.log.record(_actor(), "change", "users", user.id, user.username, {"password": None})
    st.close()
    print("password changed for %s" % user.username)


def cmd_reset_admin_password(args, settings):
    """set user id 1 (Administrator) back to password 'admin'"""
    st = _store(settings)
    if not st.accounts.set_password(1, auth.hash_password(auth.DEFAULT_PASSWORD),
                                    must_change=True):
        raise CommandError("there is no user with id 1")
    user = st.accounts.get_user(1)
    st.log.record(_actor(), "change", "users", user.id, user.username, {"password": None},
                  "reset to the default")
    st.close()
    print("password of %s (user id 1) reset to '%s'; change it at the next sign-in"
          % (user.username, auth.DEFAULT_PASSWORD))


def cmd_unlock(args, settings):
    """clear sign-in throttles: every one, or USER's at any address"""
    st = _store(settings)
    forgotten = auth.unlock(st, args.user)
    if forgotten:
        st.log.record(_actor(), "delete", "sign_in_attempts", args.user or "*",
                      args.user or "every user", message="%d attempt(s)" % forgotten)
    st.close()
    whose = "every sign-in throttle" if args.user is None else "sign-in throttles of %s" % args.user
    print("%s cleared (%d counted attempt(s) forgotten)" % (whose, forgotten))


def _checked_key(key):
    if not re.match(r"[\x21-\x7e]{1,64}\Z", key):
        raise CommandError("key: 1 to 64 printable ASCII characters without spaces "
                           "(what a meter can send)")
    return key


def _checked_fields(fields):
    if not 1 <= fields <= 32:
        raise CommandError("--fields: a number from 1 to 32")
    return fields


def _axes_text(axes):
    return ["%s:%s" % (axis.label, ",".join(map(str, axis.fields))) for axis in axes]


# The unit columns a person sets (the rest are the store's own).
UNIT_SETTINGS = ("key", "name", "description", "fields", "field_names", "field_units",
                 "report_fields", "enabled", "source_id")


def _apply_unit_options(st, unit, args):
    """Store on `unit` what `args` gives of the options addunit and
    changeunit share, each checked here once for both (None or no --axis:
    unchanged); returns (the unit as it is now, {setting: [old, new]} of
    what changed). addunit is a bare unit (code, key, fields) with these
    applied, in the same transaction, so a refusal leaves nothing."""
    key = unit.key if args.key is None else _checked_key(args.key)
    fields = unit.fields if args.fields is None else _checked_fields(args.fields)
    names = (tuple(n.strip() for n in args.field_names.split(",")) if args.field_names
             else () if args.field_names is not None else unit.field_names)
    if len(names) > fields:
        raise CommandError("--field-names: %d names for %d fields" % (len(names), fields))
    measures = (tuple(n.strip() for n in args.field_units.split(",")) if args.field_units
                else () if args.field_units is not None else unit.field_units)
    if len(measures) > fields:
        raise CommandError("--field-units: %d units for %d fields" % (len(measures), fields))
    report = unit.report_fields
    if args.report_fields is not None:   # "" is all
        try:
            report = tuple(sorted({int(n) for n in args.report_fields.split(",") if n.strip()}))
        except ValueError:
            report = (0,)
        if not set(report) <= set(range(1, fields + 1)):
            raise CommandError("--report-fields: field numbers from 1 to %d, comma-separated"
                               % fields)
    source = unit.source_id
    if args.source is not None:  # "" is --no-source
        source = _unit(st, args.source).id if args.source else None
    new = unit._replace(
        key=key, fields=fields, field_names=names, field_units=measures,
        report_fields=report, source_id=source,
        name=unit.name if args.name is None else args.name,
        description=unit.description if args.description is None else args.description,
        enabled=unit.enabled if args.enabled is None else args.enabled)
    values = {column: getattr(new, column) for column in UNIT_SETTINGS
              if getattr(new, column) != getattr(unit, column)}
    changes = {column: [getattr(unit, column), value] for column, value in values.items()}
    for joined in ("field_names", "field_units", "report_fields"):
        if joined in changes:
            changes[joined] = [",".join(map(str, values)) for values in changes[joined]]
    if "source_id" in changes:
        changes["source"] = [st.units.get_by_id(i).code if i else None
                             for i in changes.pop("source_id")]

    old_reads = st.units.reads(unit)
    reads = old_reads
    if args.reads is not None:  # "" is none
        reads = sorted({_unit(st, code.strip()).code for code in args.reads.split(",")
                        if code.strip()})
        if reads != old_reads:
            changes["reads"] = [old_reads, reads]

    options = st.units.graph_options(unit)
    new_options = options
    if args.graph_size:
        width, height = _graph_size(args.graph_size)
        new_options = new_options._replace(width=width, height=height)
    if args.axis:
        new_options = new_options._replace(axes=tuple(
            store.Axis(label, tuple(numbers))
            for label, numbers in (_numbered(text, "--axis") for text in args.axis)))
    try:
        rules.check_field_count(new, new_options, st.displays.fields_shown(unit))
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    if (options.width, options.height) != (new_options.width, new_options.height):
        changes["graph_size"] = ["%dx%d" % (o.width, o.height) for o in (options, new_options)]
    if options.axes != new_options.axes:
        changes["axes"] = [_axes_text(o.axes) for o in (options, new_options)]

    unit = st.units.change(unit, **values)
    if "reads" in changes:
        st.units.set_reads(unit, [st.units.get(code) for code in reads])
    if new_options != options:
        st.units.set_graph_options(unit, new_options)
    return unit, changes


def cmd_addunit(args, settings):
    """add a unit (meter)"""
    try:
        ttp.check_unit_code(args.code)
    except ttp.TTPError:
        raise CommandError("unit code %r: 1 to 32 letters and digits" % args.code) from None
    _checked_fields(args.fields)
    _checked_key(args.key)
    st = _store(settings)
    if st.units.get(args.code):
        raise CommandError("unit %s exists already" % args.code)
    unit, _ = _apply_unit_options(st, st.units.add(args.code, args.key, args.fields), args)
    st.log.record(_actor(), "add", "units", unit.id, unit.described,
                  message="%d fields" % unit.fields)
    st.close()
    print("unit %s added (%d fields%s)" % (unit.code, unit.fields,
                                           "" if unit.enabled else ", disabled"))


def cmd_changeunit(args, settings):
    """change a unit's options: only those given (the same checks as addunit)"""
    st = _store(settings)
    unit, changes = _apply_unit_options(st, _unit(st, args.code), args)
    if not changes:
        st.close()
        print("unit %s unchanged (nothing given differs)" % unit.code)
        return
    st.log.record(_actor(), "change", "units", unit.id, unit.described, changes)
    st.close()
    print("unit %s changed: %s" % (unit.code, ", ".join(sorted(changes))))


# Samples one transaction deletes at most: a running server waits for the
# write lock while one runs, so each stays short (tens of milliseconds).
DELETE_CHUNK = 10000


def _delete_samples(st, unit, before, total, finish):
    """Delete `unit`'s samples (with ts < `before` unless None), oldest
    first, `DELETE_CHUNK` in each transaction of its own, printing
    progress; `finish(deleted)` runs in the last one, so the action log
    entry commits with the last chunk. Interrupted, it logs what went."""
    deleted = 0
    st.commit()
    try:
        while True:
            st.dialect.begin_writing()
            gone = st.samples.delete_oldest(unit, DELETE_CHUNK, before)
            deleted += gone
            if gone < DELETE_CHUNK:
                finish(deleted)
                st.commit()
                return deleted
            st.commit()
            print("deleted %d of %d samples..." % (deleted, total), flush=True)
    except KeyboardInterrupt:
        st.rollback()
        st.log.record(_actor(), "delete", "samples", unit.id, unit.described,
                      message="%d samples (interrupted)" % deleted)
        st.close()
        raise CommandError("interrupted after deleting %d samples of %s; run it again to "
                           "go on" % (deleted, unit.code)) from None


def _refuse_without_yes(args, what):
    if not args.yes:
        print("would delete " + what)
        raise CommandError("nothing deleted: add --yes to delete it")


def cmd_deleteunit(args, settings):
    """delete a unit with its samples, cursors, read permissions and display
    channels (only with --yes; without, print what would go)"""
    st = _store(settings)
    unit = _unit(st, args.code)
    samples = st.samples.count(unit)
    counts, sourced = st.units.dependents(unit)
    what = "unit %s with %d samples, %s" % (unit.described, samples, ", ".join(
        "%d %s" % (n, name) for name, n in counts.items()))
    if sourced:
        what += "; %s would read themselves by default (no source)" % ", ".join(sourced)
    _refuse_without_yes(args, what)

    def finish(deleted):
        st.units.delete(unit)
        st.log.record(_actor(), "delete", "units", unit.id, unit.described,
                      message="with %d samples" % deleted)
    _delete_samples(st, unit, None, samples, finish)
    st.close()
    print("deleted " + what)


def cmd_deleteold(args, settings):
    """delete a unit's samples older than --before (only with --yes), in
    short transactions of 10,000 samples: safe while the server serves

    A running server shares the database, and SQLite lets one writer at a
    time: the server's loop waits for the write lock while another process
    holds it. So no transaction here holds it for long: each chunk of
    10,000 samples is deleted and committed on its own (tens of
    milliseconds), and the server's uploads go in between. The action log
    entry, with the total, commits with the last chunk."""
    before = _timestamp("--before", args.before)
    st = _store(settings)
    unit = _unit(st, args.unit)
    count = st.samples.count(unit, before)
    what = "%d samples of %s before %s" % (count, unit.code, times.text(before))
    if not count:
        st.close()
        print("no samples of %s before %s: nothing to delete" % (unit.code, times.text(before)))
        return
    _refuse_without_yes(args, what)

    def finish(deleted):
        st.log.record(_actor(), "delete", "samples", unit.id, unit.described,
                      message="%d samples before %s" % (deleted, times.text(before)))
    deleted = _delete_samples(st, unit, before, count, finish)
    st.close()
    print("deleted %d samples of %s before %s" % (deleted, unit.code, times.text(before)))


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
    st.log.record(_actor(), "add", "displays", display.id, display.name,
                  message="%d channel(s), refresh %d s" % (len(channels), args.refresh))
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
    st.log.record(_actor(), "add", "tokens", st.accounts.api_token_named(user.id, args.name).id,
                  "%s of %s" % (args.name, user.username))
    st.close()
    print("API token %r for %s; it is shown only this once:" % (args.name, user.username),
          file=sys.stderr)
    print(token)


def cmd_revoketoken(args, settings):
    """delete a user's API token by name"""
    st = _store(settings)
    user = _user(st, args.user)
    token = st.accounts.api_token_named(user.id, args.name)
    if token is None or not auth.revoke_api_token(st, user.id, args.name):
        raise CommandError("%s has no token named %r" % (user.username, args.name))
    st.log.record(_actor(), "delete", "tokens", token.id,
                  "%s of %s" % (args.name, user.username))
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
    _print_table(rows)


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
                result = importer.import_csv(
                    st, unit, binary, args.duplicates, progress,
                    on_stored=lambda stored: st.log.record(
                        _actor(), "add", "samples", unit.id, unit.described,
                        message="%d imported from %s" % (stored, os.path.basename(args.file))))
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
    """copy a SQLite database, safe while serving (PostgreSQL: says how with pg_dump)"""
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


def _print_options(app):
    """`app`'s options under its line: name = value (default) help."""
    try:
        options = app.listed_options()
    except plugins.AppError as exc:
        # Only an app turned off gets here: one turned on stopped the
        # listing already, as it would stop the server.
        print("      (its options cannot be read: %s)" % exc)
        return
    for option in options:
        print("      %s = %s   (default %s)   %s" % (
            option.name, config.show(option.value), config.show(option.default), option.help))


def cmd_apps(args, settings):
    """list every TTP and HTTP app found, on or off, with its options, without running them"""
    print("TTP apps (bundled, and site apps in %s):" % settings.TTP_APPS_DIR)
    for app in plugins.find_ttp_apps(settings):
        print("  %-12s %-3s  %-8s %s" % (app.name, "on" if app.enabled else "off",
                                         "bundled" if app.bundled else "site",
                                         app.description()))
        _print_options(app)
    print("HTTP apps (in %s):" % settings.HTTP_APPS_DIR)
    found = plugins.find_http_apps(settings)
    if not found:
        print("  (none)")
    for app in found:
        print("  %-12s %-3s  %-16s %s" % (app.name, "on" if app.enabled else "off",
                                          app.url or "(no url)", app.description()))
        if app.enabled and app.url is None:
            print("      loaded, not mapped: no url")
        _print_options(app)


def cmd_check(args, settings):
    """validate the configuration and the apps; print what would run"""
    print("config: %s (%s)" % (settings.config_path or "none", settings.config_how))
    for line in settings.describe():
        print("  " + line)
    extensions = plugins.load_ttp_apps(settings)
    print("TTP apps: " + ", ".join("/%s/ (%s)" % (code, ext.app.name)
                                   for code, ext in sorted(extensions.items())))
    http_apps = plugins.load_http_apps(settings)
    if http_apps:
        print("HTTP apps: " + ", ".join(
            app.url if app.url is not None else "%s (loaded, not mapped: no url)" % app.name
            for app, _ in http_apps))
    models = ["%s (%s)" % (model.name, model.table.name)
              for app, _ in http_apps for model in app.admin]
    if models:
        print("HTTP apps' admin models: " + ", ".join(models))
    https = tls.server_context(settings) is not None
    print("would listen: TTP %s:%d, HTTP %s:%d; web at %s" % (
        settings.DS_BIND, settings.DS_PORT, settings.HTTP_BIND, settings.HTTP_PORT,
        server.web_address(settings.HTTP_BIND, settings.HTTP_PORT, "https" if https else "http")))
    print("configuration OK")


def cmd_migrate_to_postgresql(args, settings):
    """copy the site's database, every row of every table with its id, into a new
    PostgreSQL database, all or nothing

    The source is the database txm.conf names, or --from a SQLite file; the
    target is the [database] section of --to-config FILE (a txm.conf: only
    that section is read), a database holding no row. Stop the server
    first: what it stores once the copy has begun is not copied. With
    txm.conf on PostgreSQL and --to-config naming a SQLite file, it copies
    the other way. docs/scale-out.md, "Moving a site"."""
    target_settings = config.parse(args.to_config)
    target = store.address(target_settings)
    if args.from_ is not None:
        if not os.path.isfile(args.from_):
            raise CommandError("--from %s: no such file" % args.from_)
        source = os.path.abspath(args.from_)
    else:
        source = store.address(settings)
        if settings.DATABASE_ENGINE == "sqlite3" and not os.path.isfile(source):
            raise CommandError("%s: no such file (--from names another)" % source)
    if source == target:
        raise CommandError("%s is the source and the target" % (source,))
    # Every app's migrations, on or off: the source may hold the tables of one now off.
    scripts = {app.name.lower(): app.migrations()
               for app in plugins.find_http_apps(settings) if app.spec}
    opened = []
    try:
        for where, address in (("source", source), ("target", target)):
            try:
                opened.append(store.Database(address))
            except store.StoreError as exc:
                raise CommandError("%s %s: %s" % (where, address, exc)) from None
        src, dst = opened
        print("copying %s (schema version %d) into %s" % (source, src.version, target))
        tty = sys.stdout.isatty()

        def copied(table, rows, done):
            if done or tty:
                print("%s  %-24s %10d" % ("\r" if tty else "", table, rows),
                      end="\n" if done else "", flush=True)
        started = time.monotonic()
        try:
            tables = store.copy_database(src, dst, scripts, copied)
        except store.StoreError as exc:
            if tty:
                print()     # ends the line of a table's progress
            raise CommandError("nothing copied: %s" % exc) from None
    finally:
        for db in opened:
            db.close()
    print("copied %d tables, %d rows in %.1f s; each table's count is the same in both; "
          "committed" % (len(tables), sum(rows for _, rows in tables),
                         time.monotonic() - started))
    print("next: put the [database] lines of %s into txm.conf and start the server"
          % args.to_config)


COMMANDS = {name[4:]: fn for name, fn in globals().items() if name.startswith("cmd_")}
# A Python name holds no hyphen.
COMMANDS["migrate-to-postgresql"] = COMMANDS.pop("migrate_to_postgresql")


def _unit_options(p, adding):
    """addunit's and changeunit's arguments, defined once: changeunit's are
    all optional, None (or no --axis) leaving a setting as it is."""
    p.add_argument("code")
    if adding:
        p.add_argument("key")
        p.add_argument("--fields", type=int, required=True, help="number of data fields, 1 to 32")
    else:
        p.add_argument("--key", help="a new key")
        p.add_argument("--fields", type=int, help="number of data fields, 1 to 32 (fewer: "
                       "refused while graph axes or displays use the fields that would go)")
    p.add_argument("--name")
    p.add_argument("--description")
    p.add_argument("--field-names", help="comma-separated names of the fields")
    p.add_argument("--field-units", metavar="UNITS",
                   help="comma-separated units of measure of the fields (m3/h,bar,...)")
    p.add_argument("--report-fields", metavar="N,N",
                   help="the fields the unit page and exports offer ('' for all)")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--source", metavar="CODE",
                        help="the unit whose samples dl returns by default")
    enabled = p.add_mutually_exclusive_group()
    if not adding:
        source.add_argument("--no-source", dest="source", action="store_const", const="",
                            help="dl returns the unit's own samples by default")
        enabled.add_argument("--enabled", dest="enabled", action="store_const", const=True)
    enabled.add_argument("--disabled", dest="enabled", action="store_const", const=False)
    p.add_argument("--reads", metavar="CODE,CODE", help="other units this unit may dl from"
                   + ("" if adding else " (replacing those it had; '' for none)"))
    p.add_argument("--graph-size", metavar="WxH", help="graph width and height in pixels")
    p.add_argument("--axis", metavar="LABEL:N,N", action="append", default=[],
                   help="a graph axis and its field numbers (repeat for more axes; "
                        + ("none: one axis with every field)" if adding
                           else "replacing the unit's axes)"))


def build_parser():
    parser = argparse.ArgumentParser(prog="texmate_ds manage",
                                     description="Administration commands.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    # The list shows a docstring's first paragraph; COMMAND --help all of it.
    parsers = {name: sub.add_parser(name, help=fn.__doc__.split("\n\n")[0],
                                    description=fn.__doc__)
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
    p = parsers["adduser"]
    p.add_argument("user")
    p.add_argument("--email", default="")
    p.add_argument("--staff", action="store_true", help="may use /metrics (and the admin)")
    p.add_argument("--superuser", action="store_true", help="has every permission")
    p.add_argument("--group", metavar="G", action="append", default=[],
                   help="a group (made in the admin) the user is in; repeat for more")
    p.add_argument("--all-units", action="store_true",
                   help="sees every unit (otherwise only those the admin or groups give)")
    p.add_argument("--noinput", action="store_true", help="password from TXM_PASSWORD")
    p = parsers["log"]
    p.add_argument("--model", help="units, users, samples, ... (the admin's names)")
    p.add_argument("--user", help="who: a username, or manage:<OS user>")
    p.add_argument("--from", dest="from_", metavar="TS")
    p.add_argument("--to", metavar="TS")
    p.add_argument("--limit", type=int, default=50, help="entries at most (default 50)")
    _unit_options(parsers["addunit"], adding=True)
    _unit_options(parsers["changeunit"], adding=False)
    p = parsers["deleteunit"]
    p.add_argument("code")
    p.add_argument("--yes", action="store_true", help="delete (without: show what would go)")
    p = parsers["deleteold"]
    p.add_argument("unit")
    p.add_argument("--before", metavar="TS", required=True,
                   help="samples older than this go: a date, a date and time, or -30d "
                        "and the like (with the =: --before=-30d)")
    p.add_argument("--yes", action="store_true", help="delete (without: show how many)")
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
    p = parsers["migrate-to-postgresql"]
    p.add_argument("--to-config", metavar="FILE", required=True,
                   help="a txm.conf whose [database] names the target (PostgreSQL)")
    p.add_argument("--from", dest="from_", metavar="PATH",
                   help="the SQLite file to copy (default: the one txm.conf names)")
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
        print("manage %s: database %s: %s" % (args.command, store.address(settings), exc),
              file=sys.stderr)
        return 1
    return 0
