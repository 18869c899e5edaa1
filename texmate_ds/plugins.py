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
  ``[httpapps]``; `load_http_apps` gives the (prefix, application) pairs
  `http.Mounted` routes to.

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
"""

import ast
import importlib
import importlib.util
import logging
import os
import pkgutil
import sys

log = logging.getLogger("texmate_ds.plugins")


class AppError(Exception):
    """An app (TTP or HTTP) that cannot be loaded; stops the server at start."""


class AppInfo:
    """An app found on disk, before (or without) importing it. `spec` is
    None for an HTTP app that ``[httpapps]`` names but the folder lacks;
    `url` is an HTTP app's mount prefix, if it has one."""

    def __init__(self, name, bundled, spec, enabled, url=None):
        self.name = name
        self.bundled = bundled
        self.spec = spec
        self.enabled = enabled
        self.url = url

    @property
    def where(self):
        return "bundled" if self.bundled else self.spec.origin

    def description(self):
        """First line of the module docstring, read without running it."""
        if self.spec is None:
            return "(not found)"
        try:
            source = self.spec.loader.get_source(self.spec.name)
            doc = ast.get_docstring(ast.parse(source)) or ""
        except (SyntaxError, OSError, ImportError) as exc:
            return "(cannot read: %s)" % exc
        return doc.strip().splitlines()[0] if doc.strip() else ""


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
    has it. Naming an app there that does not exist is an `AppError`."""
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
    return [found[name] for name in sorted(found)]


def load_ttp_apps(settings):
    """Import every TTP app turned on; returns {code: Extension}."""
    extensions = {}
    for app in find_ttp_apps(settings):
        if not app.enabled:
            continue
        try:
            module = _import(app)
        except Exception as exc:
            raise AppError("TTP app %s (%s) failed to import: %s: %s"
                           % (app.name, app.where, type(exc).__name__, exc)) from exc
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
    each other one in the folder, off."""
    found = _find_site(settings.HTTP_APPS_DIR, "httpapp")
    apps = [AppInfo(name, False, found.get(name.lower(), (None, None))[1], conf["on"],
                    conf["url"])
            for name, conf in settings.httpapps.items()]
    named = {name.lower() for name in settings.httpapps}
    apps += [AppInfo(name, False, spec, False)
             for key, (name, spec) in found.items() if key not in named]
    return sorted(apps, key=lambda app: app.name)


def load_http_apps(settings):
    """[(prefix, application)] of the HTTP apps turned on. One without a
    url, missing from the folder, failing to import or without a callable
    ``application`` is an `AppError`."""
    mounted = []
    for app in find_http_apps(settings):
        if not app.enabled:
            continue
        name = app.name
        if app.url is None:
            raise AppError("[httpapps] turns on %s but gives no %s.url to mount it at"
                           % (name, name))
        if app.spec is None:
            raise AppError("[httpapps] turns on %s, but there is no %s.py or %s/ in %s"
                           % (name, name, name, settings.HTTP_APPS_DIR))
        try:
            application = getattr(_import(app), "application", None)
        except Exception as exc:
            raise AppError("HTTP app %s (%s) failed to import: %s: %s"
                           % (name, app.where, type(exc).__name__, exc)) from exc
        if not callable(application):
            raise AppError("HTTP app %s (%s) must define a WSGI callable named application"
                           % (name, app.where))
        log.info("HTTP app %s: %s (%s)", name, app.url, app.where)
        mounted.append((app.url, application))
    return mounted
