"""A site's own app modules, found in a folder (``TTP_APPS_DIR``,
``HTTP_APPS_DIR``) and imported under private names.

Each module is imported as ``_txm_<kind>_<name>`` rather than ``<name>``,
so a site app called ``json`` never replaces the real ``json``. Finding
reads the folder only; nothing runs until `load`.
"""

import importlib.util
import os
import pkgutil
import sys


class AppError(Exception):
    """An app (TTP or HTTP) that cannot be loaded; stops the server at start."""


def find(folder, kind):
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


def load(spec):
    """Run the module of `spec` (found by `find`) and return it."""
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module
