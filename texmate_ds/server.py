"""``serve``: assemble the running server from its parts and run it.

Start-up does everything that can fail before binding a port (settings,
apps, the HTTPS certificate and key, database schema and the HTTP apps'
tables, the apps' ``start``), so a mistake stops the server with a clear
message and nothing half-started; then it binds both listeners, prints
where everything is, and runs the loop until SIGINT or SIGTERM. Stopping
closes the listeners, lets in-flight answers finish, stops the services in
reverse order (the mail service finishes or leaves the letter in hand, a
chore stops between two chunks, the group commit writes everything
pending) and exits 0.
"""

import faulthandler
import logging
import signal
import sys

from texmate_ds import (
    __version__,
    alarms,
    auth,
    chores,
    config,
    events,
    http,
    loop,
    mail,
    metrics,
    models,
    plugins,
    relay,
    store,
    tls,
    ttp,
    web,
)
from texmate_ds.web import live as web_live

log = logging.getLogger("texmate_ds")

# Seconds between dead-channel sweeps at the most, for a server too idle to
# reach MAINTENANCE_INTERVAL requests (docs/protocol.md, "Connections and framing").
IDLE_SWEEP_SECONDS = 30


class StartupError(Exception):
    """Start-up cannot go on; the message says why (exit status 2)."""


def open_store(settings):
    """The store, its schema created or upgraded, with the Administrator
    user on a database that has no users yet."""
    where = store.address(settings)
    try:
        st = store.Database(where, durable=settings.COMMIT_INTERVAL == 1)
    except store.SchemaTooNew as exc:
        raise StartupError(str(exc)) from None
    except store.StoreError as exc:
        raise StartupError("database %s: %s" % (where, exc)) from None
    st.migrate()
    if st.accounts.count_users() == 0:
        try:
            st.accounts.add_user("Administrator", auth.hash_password(auth.DEFAULT_PASSWORD),
                                 is_staff=True, is_superuser=True, must_change_password=True)
            st.commit()
        except store.Conflict:
            # Another process sharing the database made it first.
            st.rollback()
        else:
            log.warning("created user Administrator with password '%s'", auth.DEFAULT_PASSWORD)
    return st


def migrate_apps(st, apps):
    """Run each HTTP app's migrations (`plugins.AppInfo.migrations`) that
    the database lacks, after the store's own, then check that the tables
    its admin models declare have their columns: [(app, old version, new
    version)]. `StartupError` naming the app, and the file where one is
    to blame (`store.MigrationError`)."""
    done = []
    for app in apps:
        try:
            old, new = st.app_tables.migrate(app.name, app.migrations())
        except (plugins.AppError, store.StoreError) as exc:
            raise StartupError("HTTP app %s: %s" % (app.name, exc)) from None
        for model in app.admin:
            try:
                st.app_tables.check(model.table)
            except store.StoreError as exc:
                raise StartupError("HTTP app %s: admin model %s, table %s: %s" % (
                    app.name, model.name, model.table.name, exc)) from None
        if new != old:
            log.info("HTTP app %s: tables at version %d (were at %d)", app.name, new, old)
        done.append((app, old, new))
    return done


def default_password_in_force(st):
    admin = st.accounts.get_user(1)
    return bool(admin and admin.must_change_password)


# Worker threads for the web's slow work (loop.Pool), and how many pieces
# of it one client address may have queued or running (browsers open six
# connections to a site at most; beyond it the answer is 503).
WEB_WORKERS = 2
WEB_WORK_PER_CLIENT = 8

# Descriptors beyond the connections: listeners, the database, logs.
SPARE_DESCRIPTORS = 64


def web_address(host, port, scheme="http"):
    if host in ("0.0.0.0", "::", ""):
        host = "localhost"
    elif ":" in host:
        host = "[%s]" % host
    return "%s://%s:%d/" % (scheme, host, port)


def serve(settings, out=sys.stdout):
    try:
        extensions = plugins.load_ttp_apps(settings)
        http_apps = plugins.load_http_apps(settings)
        tls_context = tls.server_context(settings)
        st = open_store(settings)
    except (plugins.AppError, OSError, config.ConfigError) as exc:
        raise StartupError(str(exc)) from None
    # The apps' tables after the store's own schema; their admin models' too.
    migrate_apps(st, [app for app, _ in http_apps])
    needed = settings.MAX_CONNECTIONS + settings.MAX_HTTP_CONNECTIONS + SPARE_DESCRIPTORS
    limit = loop.raise_open_files(needed)
    if limit is not None and limit < needed:
        log.warning("open files are limited to %d: fewer than MAX_CONNECTIONS (%d) + "
                    "MAX_HTTP_CONNECTIONS (%d) connections will fit", limit,
                    settings.MAX_CONNECTIONS, settings.MAX_HTTP_CONNECTIONS)
    models.bind(st)
    the_loop = loop.Loop()
    commits = store.GroupCommit(st, the_loop, settings.COMMIT_INTERVAL, settings.COMMIT_DELAY)
    the_loop.add_service(commits)
    the_loop.turn_hooks.append(st.notice_others)
    server = ttp.TTPServer(settings, st, commits, events.Bus(), extensions, the_loop)
    # Where other processes share the database (PostgreSQL), what they
    # commit is published on this bus too, and their changes to cached
    # rows drop this store's cache (relay.py); stopped before the group
    # commit, it does nothing on SQLite.
    the_loop.add_service(relay.Relay(the_loop, st, server.events))
    try:
        # Before the listeners: an app that subscribes at start misses no upload.
        plugins.start_ttp_apps(extensions, server.app_server)
    except plugins.AppError as exc:
        raise StartupError(str(exc)) from None
    # The web UI is a WSGI app on the same store; /metrics reads the
    # servers' counters through `metrics`, made once both servers exist.
    # The web's slow work (a graph over a year, a password hash) runs on
    # worker threads, each with its own connection, beside the loop.
    workers = loop.Pool(the_loop, WEB_WORKERS, lambda: store.Database(store.address(settings)),
                        WEB_WORK_PER_CLIENT)
    the_loop.add_service(workers)
    # Long writes (the admin's deletions of many samples) go a chunk per
    # loop turn, each committed with that turn's uploads; stopped before
    # the group commit's last commit, which writes what they did.
    long_writes = chores.Chores(the_loop, commits)
    the_loop.add_service(long_writes)
    # Alarm letters (emails, webhooks) go out of the outbox from a thread
    # with its own connection, never the loop's, woken after each commit
    # of this store that queued letters (alarms, the admin's retries and
    # test messages). Stopped before the group commit: the letter in hand
    # is finished or left queued.
    mailer = mail.MailService(settings)
    st.outbox.on_queued.append(mailer.wake)
    the_loop.add_service(mailer)
    site = http.HTTPServer(settings, None, the_loop, workers, tls_context, long_writes, commits)
    # /events streams subscribe to the TTP server's bus (events published
    # after each commit) and keep alive on the loop's timers.
    live = web_live.Live(server.events, the_loop, settings.MAX_EVENT_STREAMS)
    ui = web.make_app(st, settings, metrics.Metrics(the_loop, server, site, st, commits), live,
                      [model for app, _ in http_apps for model in app.admin])
    # The site's HTTP apps beside the UI, each at its url (one without is
    # loaded, not mapped); the UI tells them who signed in.
    site.app = http.Mounted(ui, [(app.url, ui.mount(application, app.admin))
                                 for app, application in http_apps if app.url is not None])
    try:
        # Each port has its own budget: nothing on the web port can ever
        # take a meter's room, nor the other way round.
        ttp_host, ttp_port = the_loop.listen(
            settings.DS_BIND, settings.DS_PORT, server.accept,
            ("MAX_CONNECTIONS", settings.MAX_CONNECTIONS), ttp.error_text(502).encode())
        http_host, http_port = the_loop.listen(
            settings.HTTP_BIND, settings.HTTP_PORT, site.accept,
            ("MAX_HTTP_CONNECTIONS", settings.MAX_HTTP_CONNECTIONS), site.refusal)
    except OSError as exc:
        raise StartupError("cannot listen: %s" % exc) from None
    # Started with the loop, after the group commit: a check's alarms are
    # committed (and their letters queued) by the next turn's commit.
    the_loop.add_service(alarms.SilentMeters(server, settings.SILENT_CHECK_SECONDS))
    the_loop.every(min(IDLE_SWEEP_SECONDS, settings.CHANNEL_TIMEOUT), server.sweep)
    the_loop.every(ttp.REFUSAL_LOG_SECONDS, server.refusals.flush)
    the_loop.install_signal_handlers()
    # `kill -USR1 PID` writes every thread's stack to stderr: where a
    # server that seems stuck is stuck.
    faulthandler.register(signal.SIGUSR1, all_threads=True)

    def say(line):
        print(line, file=out, flush=True)

    say("texmate_ds %s (Python %s)" % (__version__, sys.version.split()[0]))
    say("config: %s (%s)" % (settings.config_path or "none", settings.config_how))
    say("database: %s (schema version %d)" % (store.address(settings), st.version))
    say("TTP: listening on %s:%d" % (ttp_host, ttp_port))
    say("HTTP: listening on %s:%d" % (http_host, http_port))
    say("web: %s" % web_address(http_host, http_port, "https" if tls_context else "http"))
    if default_password_in_force(st):
        say("WARNING: user Administrator still has the default password '%s'; change it "
            "with: texmate_ds manage changepassword Administrator" % auth.DEFAULT_PASSWORD)
    say("ready")
    try:
        the_loop.run()
    finally:
        server.refusals.flush()  # what the last minute counted
        st.close()
    say("stopped after %d TTP requests" % server.requests.value)
