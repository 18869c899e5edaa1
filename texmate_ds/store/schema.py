"""The schema's history: numbered SQL scripts in ``migrations/``, and how a
script is cut into statements.

* ``migrations/NNNN_what.sql`` is the script that takes a database from
  version NNNN - 1 to NNNN. Scripts are append-only: a released one never
  changes, a change to the schema is a new file, named in `MIGRATIONS`.
  The database carries its version (the dialect keeps it), and
  `Database.migrate` runs the missing scripts and sets the new version in
  one transaction, so an upgrade never half-happens and never drops data.
* Scripts are read with ``pkgutil.get_data``, so they work from inside
  the ``.pyz`` as from a checkout.
* `statements` cuts a script at each ``;`` that ends a statement in the
  engine's own reading (`complete`): one inside a string literal, a
  comment or a trigger body does not.
"""

import pkgutil

MIGRATIONS = (
    "0001_units_samples_users",
    "0002_web_ui",
    "0003_sign_in_attempts",
    "0004_action_log",
    "0005_admin",
    "0006_alarms",
    "0007_outbox_attempts",
    "0008_unit_intervals",
    "0009_app_schema",
    "0010_site_secrets",
)
VERSION = len(MIGRATIONS)


class ScriptError(Exception):
    """A migration script that does not end in a whole statement."""


def script(version):
    """The text of the script that makes `version` (1-based)."""
    name = "migrations/%s.sql" % MIGRATIONS[version - 1]
    return pkgutil.get_data(__package__, name).decode("utf-8")


def statements(text, complete):
    """The statements of `text`, each with its ``;``, in order.

    `complete(text)` tells whether text is one or more whole statements.
    What follows the last one may be blank lines and ``--`` comments only;
    anything else raises ScriptError rather than running half a statement.
    """
    pieces = text.split(";")
    pending = ""
    for piece in pieces[:-1]:
        pending += piece + ";"
        if complete(pending):
            yield pending.strip()
            pending = ""
    rest = pending + pieces[-1]
    if any(line.strip() and not line.strip().startswith("--") for line in rest.splitlines()):
        raise ScriptError("the script ends inside a statement: %r" % rest.strip()[:80])
