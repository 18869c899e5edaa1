"""Apps, TTP and HTTP, found in one place: discovery, description without
importing, loading and validation.

* TTP apps (docs/protocol.md, "Site TTP apps") are modules defining ``Extension``: the
  bundled ones are the modules of the ``texmate_ds.apps`` package, a
  site's own are the modules and packages in ``TTP_APPS_DIR``. A bundled
  app is on unless ``[ttpapps]`` says off; a site app is off unless it says
  on, so dropping a file into the folder never runs code by itself. A site
  app with a bundled app's name replaces it (as the vendor's
  ``TTPApps/ok.py`` did). `load_ttp_apps` makes the {code: `Extension`}
  table the TTP channel dispatches on; `start_ttp_apps` then calls the
  ``start(server)`` of each app that has one, once, before the server
  listens: where an app subscribes to events (``server.subscribe``).
* HTTP apps are modules or packages in ``HTTP_APPS_DIR`` with a WSGI
  callable named ``application``, on and mounted at ``name.url`` by
  ``[httpapps]``; `load_http_apps` gives the (AppInfo, application) pairs,
  and the server has `http.Mounted` route to those with a url. An app
  turned on without one is loaded (imported, its ``application`` checked)
  but not mapped to any URL, as the vendor's manual has it. A package
  app may have tables of its own and manage them in the admin, as the
  vendor's Django apps did with their models and ``admin.py``:
  ``migrations/NNNN_what.sql``, read by `AppInfo.migrations` without
  running the app and applied by the server at start (`store.app_tables`,
  which checks that they touch only the app's own tables), and an
  ``admin.py`` whose ``MODELS`` declare the app's admin models, imported
  with the app and made into `AppInfo.admin` (`web.admin.tables`).

Finding reads folders only, through ``pkgutil`` and ``importlib`` so that
it works inside the ``.pyz``, and `AppInfo.description` reads a module's
docstring without running it: ``manage apps`` lists everything, on or off,
and runs nothing. Loading imports only what is on. A site's module is
imported as ``_txm_<kind>_<name>`` rather than ``<name>``, so a site app
called ``json`` never replaces the real ``json``. Anything amiss (an app
turned on that does not exist, one that fails to import or lacks what it
must define, two claiming one code, one whose ``start`` raises) is an
`AppError`, which stops the server at start and ``manage check`` (which
imports the apps but starts none) with exit status 2.

Options. An app (either kind) declares the ``name.KEY: value`` lines its
``[ttpapps]`` or ``[httpapps]`` section may give it in one module-level
literal, ``OPTIONS = {"KEY": (default, "help")}``, read from the source
with `ast` like the docstring, so that ``manage apps`` lists them without
running the app, and typed by the default as txm.conf's own keys are
(`config.converter_for`: bool, int or str). `find_ttp_apps` and
`find_http_apps` check every option line against the declarations: one
for an app not found or turned off, a name the app does not declare or a
bad value is a `config.ConfigError` naming txm.conf's file, line and key;
a malformed declaration is an `AppError` naming the app's file, line and
key. Each app turned on gets `AppInfo.options`, and once imported the
module's ``options``: a read-only {KEY: value} of every option declared,
the default where txm.conf says nothing. A module attribute, rather than
an argument, because it is one way for both kinds and for every callable
an app has (``start``, producers, subscribers, ``application``), with no
signature changed; it is set after the import and before any of them
runs, so only code at import time cannot read it.
"""

import ast
import collections
import difflib
import importlib
import importlib.resources
import importlib.util
import logging
import os
import pkgutil
import re
import sys
import types

from texmate_ds import config
from texmate_ds.web.admin import tables

log = logging.getLogger("texmate_ds.plugins")


class AppError(Exception):
    """An app (TTP or HTTP) that cannot be loaded; stops the server at start."""


# One option of an app: `value` is txm.conf's, typed, else the `default`.
Option = collections.namedtuple("Option", "name value default help")


class AppInfo:
    """An app found on disk, before (or without) importing it. `spec` is
    None for an HTTP app that ``[httpapps]`` names but the folder lacks;
    `url` is an HTTP app's mount prefix, if it has one. `options`
    ([`Option`]) is set by `find_ttp_apps` and `find_http_apps` on the apps
    turned on, once checked; `admin` ([`tables.TableAdmin`]: the models
    its ``admin.py`` declares) by `load_http_apps`."""

    def __init__(self, name, bundled, spec, enabled, url=None):
        self.name = name
        self.bundled = bundled
        self.spec = spec
        self.enabled = enabled
        self.url = url
        self.options = None
        self.admin = []

    @property
    def where(self):
        return "bundled" if self.bundled else self.spec.origin

    def _tree(self):
        return ast.parse(self.spec.loader.get_source(self.spec.name), self.spec.origin)

    def description(self):
        """First line of the module docstring, read without running it."""
        if self.spec is None:
            return "(not found)"
        try:
            doc = ast.get_docstring(self._tree()) or ""
        except (SyntaxError, OSError, ImportError) as exc:
            return "(cannot read: %s)" % exc
        return doc.strip().splitlines()[0] if doc.strip() else ""

    def declared_options(self):
        """{KEY: (default, help)} of the module's ``OPTIONS``, in the order
        declared, read from its source without running it (none for an app
        not found). `AppError` naming the file, the line and the key for a
        declaration other than one module-level ``OPTIONS = {...}`` of
        literals."""
        if self.spec is None:
            return {}
        origin = self.spec.origin
        try:
            tree = self._tree()
        except (SyntaxError, OSError, ImportError) as exc:
            raise AppError("%s: cannot read its OPTIONS: %s" % (origin, exc)) from None
        # Every module-level binding of the name counts: with a second one,
        # or one that is not a plain assignment, what is listed and checked
        # would not be what the module holds.
        bindings = [node for node in tree.body if _binds_options(node)]
        if not bindings:
            return {}
        node = bindings[-1]
        if len(bindings) > 1:
            raise AppError("%s:%d: OPTIONS: set again (first on line %d); declare them "
                           "once" % (origin, node.lineno, bindings[0].lineno))
        if (not isinstance(node, ast.Assign) or len(node.targets) != 1
                or not isinstance(node.value, ast.Dict)):
            raise AppError('%s:%d: OPTIONS: expected OPTIONS = {"KEY": (default, "help"), '
                           '...}, a dict of literals' % (origin, node.lineno))
        declared = {}
        for key, value in zip(node.value.keys, node.value.values):
            # `key` is None for a {**spread}.
            name = key.value if isinstance(key, ast.Constant) else None
            shown = name if isinstance(name, str) else (
                ast.unparse(key) if key is not None else "**" + ast.unparse(value))
            line = (key or value).lineno

            def bad(why):
                return AppError("%s:%d: OPTIONS %s: %s" % (origin, line, shown, why))
            if not isinstance(name, str) or not config.OPTION_NAME.fullmatch(name):
                raise bad("expected a name of capitals, digits and _, as txm.conf's keys")
            if name == "URL":
                raise bad("URL cannot be an option: in [httpapps] name.url is where an "
                          "HTTP app is mounted")
            if name in declared:
                raise bad("declared twice")
            try:
                entry = ast.literal_eval(value)
            except ValueError:
                entry = None
            if not (isinstance(entry, tuple) and len(entry) == 2 and isinstance(entry[1], str)):
                raise bad('expected (default, "help"): a literal default and its help text')
            try:
                config.converter_for(entry[0])
            except TypeError as exc:
                raise bad(str(exc)) from None
            declared[name] = entry
        return declared

    def migrations(self):
        """[(file, text)] of the package's ``migrations/NNNN_what.sql``,
        0001 first (none for a module, or an app not found), read without
        running the app. `AppError` naming the file for one named out of
        that shape, out of sequence, or not UTF-8."""
        if self.spec is None or self.spec.submodule_search_locations is None:
            return []
        # A module made from the spec but never run: importlib.resources
        # reads the package's files through its loader, from a folder or
        # from inside a zip (the .pyz) alike.
        folder = importlib.resources.files(importlib.util.module_from_spec(self.spec))
        folder = folder / "migrations"
        if not folder.is_dir():
            return []
        scripts = []
        for entry in sorted(folder.iterdir(), key=lambda entry: entry.name):
            if not entry.name.endswith(".sql"):
                continue
            number = entry.name[:4]
            if not (_MIGRATION.fullmatch(entry.name) and int(number) == len(scripts) + 1):
                raise AppError("%s: expected %04d_what.sql next: an app's migrations are "
                               "numbered from 0001, one after another, as the store's own"
                               % (entry, len(scripts) + 1))
            try:
                text = entry.read_bytes().decode("utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise AppError("%s: cannot read it: %s" % (entry, exc)) from None
            scripts.append((str(entry), text))
        return scripts

    def listed_options(self):
        """[`Option`] as ``manage apps`` shows them: those checked for an
        app turned on, else its declaration at the defaults."""
        if self.options is not None:
            return self.options
        return [Option(name, default, default, help_text)
                for name, (default, help_text) in self.declared_options().items()]


# An app's migration script: NNNN_what.sql (letters, digits and _).
_MIGRATION = re.compile(r"[0-9]{4}_[A-Za-z0-9_]+\.sql")


def _binds_options(node):
    """Does the module-level statement `node` set the name OPTIONS?"""
    if not isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
        return False
    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
    return any(isinstance(target, ast.Name) and target.id == "OPTIONS" for target in targets)


def _check_options(settings, section, found, folder):
    """Check each option line of `section` against the declarations of
    the apps `found` ({lower-case name: `AppInfo`}), in file order, and
    give each app turned on its `options`. `folder` is where the site's
    apps are looked for, named when one is missing."""
    given = settings.app_options[section]
    lines = sorted((settings.lines[(section, "%s.%s" % (name, key))], name, key, text)
                   for name, keys in given.items() for key, text in keys.items())
    declared = {}
    values = {}
    for _, name, key, text in lines:
        shown = "%s.%s" % (name, key)
        app = found.get(name)
        if app is None or app.spec is None:
            raise settings.error(section, shown, "no app %s %s" % (
                name, "is bundled or in %s" % folder if section == "ttpapps"
                else "in %s (no %s.py or %s/)" % (folder, name, name)))
        if not app.enabled:
            raise settings.error(section, shown, "%s is off, so its options are not used "
                                 "(turn it on, or remove the line)" % app.name)
        if name not in declared:
            declared[name] = app.declared_options()
        if key not in declared[name]:
            spelt = {option: option for option in declared[name]}
            if section == "httpapps":
                spelt["URL"] = "url"    # the mount: a likely meaning of URLS
            close = difflib.get_close_matches(key, list(spelt), n=1)
            raise settings.error(section, shown, "unknown option: %s declares %s%s" % (
                app.name, ", ".join(declared[name]) or "none",
                " (did you mean %s.%s?)" % (name, spelt[close[0]]) if close else ""))
        default = declared[name][key][0]
        try:
            values[(name, key)] = config.converter_for(default)(text)
        except ValueError as exc:
            raise settings.error(section, shown, str(exc)) from None
    for name, app in found.items():
        if app.enabled and app.spec is not None:
            if name not in declared:
                declared[name] = app.declared_options()
            app.options = [Option(key, values.get((name, key), default), default, help_text)
                           for key, (default, help_text) in declared[name].items()]


def _find_site(folder, kind):
    """{lower-case name: (name, spec)} of the modules and packages in
    `folder` (none if it does not exist)."""
    found = {}
    if not os.path.isdir(folder):
        return found
    for info in pkgutil.iter_modules([folder]):
        origin = info.module_finder.find_spec(info.name).origin
        spec = importlib.util.spec_from_file_location(
            "_txm_%s_%s" % (kind, info.name), origin,
            submodule_search_locations=[os.path.dirname(origin)] if info.ispkg else None)
        found[info.name.lower()] = (info.name, spec)
    return found


def _import(app):
    if app.bundled:
        # By name, through the import system: inside the .pyz on Python 3.9
        # the zip importer has no exec_module().
        return importlib.import_module(app.spec.name)
    module = importlib.util.module_from_spec(app.spec)
    sys.modules[app.spec.name] = module
    app.spec.loader.exec_module(module)
    return module


# -- TTP apps -----------------------------------------------------------------

class Extension:
    """A loaded TTP app: the code it serves and its callables."""

    def __init__(self, app, code, producer, run_before, run_after, start=None):
        self.app = app
        self.code = code
        self.producer = producer
        self.run_before = run_before
        self.run_after = run_after
        self.start = start


def find_ttp_apps(settings):
    """Every TTP app, by name: bundled ones, then the site's (a site app
    with a bundled app's name replaces it), each on or off as ``[ttpapps]``
    has it, those turned on with their `options`. Turning on an app there
    that does not exist is an `AppError`; a wrong option line a
    `config.ConfigError` (`_check_options`)."""
    from texmate_ds import apps as bundled_package
    found = {}
    for info in pkgutil.iter_modules(bundled_package.__path__):
        spec = importlib.util.find_spec("texmate_ds.apps." + info.name)
        found[info.name.lower()] = AppInfo(info.name, True, spec,
                                           settings.ttpapps.get(info.name.lower(), True))
    site_dir = settings.TTP_APPS_DIR
    for key, (name, spec) in _find_site(site_dir, "ttpapp").items():
        found[key] = AppInfo(name, False, spec, settings.ttpapps.get(key, False))
    missing = sorted(n for n, on in settings.ttpapps.items() if on and n not in found)
    if missing:
        raise AppError("[ttpapps] turns on %s, but no such app is bundled or in %s"
                       % (", ".join(missing), site_dir))
    _check_options(settings, "ttpapps", found, site_dir)
    return [found[name] for name in sorted(found)]


def _load(app, kind):
    """Import `app` (`kind`: "TTP" or "HTTP"), then give the module its
    ``options``: {KEY: value}, read-only (see the module docstring)."""
    try:
        module = _import(app)
    except Exception as exc:
        raise AppError("%s app %s (%s) failed to import: %s: %s"
                       % (kind, app.name, app.where, type(exc).__name__, exc)) from exc
    module.options = types.MappingProxyType({option.name: option.value
                                             for option in app.options})
    return module


def load_ttp_apps(settings):
    """Import every TTP app turned on; returns {code: Extension}."""
    extensions = {}
    for app in find_ttp_apps(settings):
        if not app.enabled:
            continue
        module = _load(app, "TTP")
        ext = getattr(module, "Extension", None)
        if not isinstance(ext, dict) or not ext.get("code") or not ext.get("producer"):
            raise AppError("TTP app %s (%s) must define Extension = {'code': ..., "
                           "'producer': ...}" % (app.name, app.where))
        code = ext["code"]
        if code in extensions:
            raise AppError("TTP app code '%s' is claimed by both %s (%s) and %s (%s)"
                           % (code, extensions[code].app.name, extensions[code].app.where,
                              app.name, app.where))
        extensions[code] = Extension(app, code, ext["producer"],
                                     ext.get("run_before"), ext.get("run_after"),
                                     ext.get("start"))
        log.info("TTP app %s: /%s/ (%s)", app.name, code, app.where)
    return extensions


def start_ttp_apps(extensions, server):
    """Call ``start(server)`` of each app in `extensions` whose Extension
    has one, in code order. One that raises is logged with its traceback
    (it ran the app's own logic, on the site's data: the reason alone
    seldom says where) and is an `AppError` naming the app: an app the
    site turned on does not run half started."""
    for code, ext in sorted(extensions.items()):
        if ext.start is None:
            continue
        try:
            ext.start(server)
        except Exception as exc:
            log.exception("TTP app %s (%s) failed to start", ext.app.name, ext.app.where)
            raise AppError("TTP app %s (%s) failed to start: %s: %s"
                           % (ext.app.name, ext.app.where, type(exc).__name__, exc)) from exc


# -- HTTP apps ----------------------------------------------------------------

def find_http_apps(settings):
    """Every HTTP app, by name: each one ``[httpapps]`` names, on or off as
    it says, with its url (its `spec` None if HTTP_APPS_DIR lacks it), and
    each other one in the folder, off; those turned on with their
    `options`. A wrong option line is a `config.ConfigError`
    (`_check_options`)."""
    found = _find_site(settings.HTTP_APPS_DIR, "httpapp")
    apps = {name.lower(): AppInfo(name, False, found.get(name.lower(), (None, None))[1],
                                  conf["on"], conf["url"])
            for name, conf in settings.httpapps.items()}
    for key, (name, spec) in found.items():
        apps.setdefault(key, AppInfo(name, False, spec, False))
    _check_options(settings, "httpapps", apps, settings.HTTP_APPS_DIR)
    return sorted(apps.values(), key=lambda app: app.name)


def _admin_models(app, module):
    """The `tables.TableAdmin` s of the ``MODELS`` that the package's
    ``admin.py`` declares (none without one), imported once the package
    is; `AppError` naming the file for one that fails to import, lacks
    MODELS or declares a model wrongly."""
    if not hasattr(module, "__path__"):
        return []
    name = module.__name__ + ".admin"
    where = os.path.join(os.path.dirname(app.spec.origin), "admin.py")
    try:
        if importlib.util.find_spec(name) is None:
            return []
        declared = importlib.import_module(name)
    except Exception as exc:
        raise AppError("HTTP app %s (%s) failed to import: %s: %s"
                       % (app.name, where, type(exc).__name__, exc)) from exc
    models = getattr(declared, "MODELS", None)
    if not isinstance(models, (list, tuple)):
        raise AppError("HTTP app %s (%s) must define MODELS = [{...}, ...], its admin "
                       "models" % (app.name, where))
    made = []
    for index, declaration in enumerate(models):
        try:
            made.append(tables.TableAdmin(app.name, declaration))
        except ValueError as exc:
            raise AppError("HTTP app %s (%s): MODELS[%d]: %s"
                           % (app.name, where, index, exc)) from None
        if [model.name for model in made].count(made[-1].name) > 1:
            raise AppError("HTTP app %s (%s): MODELS[%d]: a model named %s is declared "
                           "already" % (app.name, where, index, made[-1].name))
    return made


def load_http_apps(settings):
    """[(AppInfo, application)] of the HTTP apps turned on, each imported
    and its callable ``application`` checked, and the models of a package's
    ``admin.py`` made (`AppInfo.admin`); the server mounts those with a
    `url`, the others are loaded but not mapped (the vendor's manual). One
    missing from the folder, failing to import, without ``application`` or
    declaring a model wrongly is an `AppError`."""
    loaded = []
    for app in find_http_apps(settings):
        if not app.enabled:
            continue
        name = app.name
        if app.spec is None:
            raise AppError("[httpapps] turns on %s, but there is no %s.py or %s/ in %s"
                           % (name, name, name, settings.HTTP_APPS_DIR))
        module = _load(app, "HTTP")
        application = getattr(module, "application", None)
        if not callable(application):
            raise AppError("HTTP app %s (%s) must define a WSGI callable named application"
                           % (name, app.where))
        app.admin = _admin_models(app, module)
        if app.url is None:
            log.info("HTTP app %s: loaded, not mapped: no url (%s)", name, app.where)
        else:
            log.info("HTTP app %s: %s (%s)", name, app.url, app.where)
        loaded.append((app, application))
    return loaded
