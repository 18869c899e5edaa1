"""The store's own exceptions: what callers catch instead of the engine's.

The dialect turns every error of its driver into one of these, with the
engine's message, so no module outside the store names ``sqlite3``.
"""


class StoreError(Exception):
    """The database failed or refused something; the message says what."""


class Conflict(StoreError):
    """A unique key is taken: a unit code, a username, a user's token name."""


class NotFound(StoreError):
    """A row asked for, or referred to by a new one, is not there."""


class SchemaTooNew(StoreError):
    """The database was made by a newer texmate_ds; it is left untouched."""


class MigrationError(StoreError):
    """An app's migration script refused (a table not the app's), failed
    (SQLite's reason) or behind the database; the message names the file."""
