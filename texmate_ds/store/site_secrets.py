"""The site's secrets: keys made once, at random, and kept in the database
(``site_secrets``, migration 10), so that every process sharing it signs
and checks with the same one.

`SiteSecrets.get` reads a secret, and makes it if it is missing: an
insert that skips a name taken, then a read of what is stored. Two
processes making the same secret at once thus both end with the one that
was stored first (on PostgreSQL the second insert waits for the first to
commit, then skips). A secret found stored is kept: it is read once
per connection, and writes nothing.
"""

import secrets

_READ = "SELECT value FROM site_secrets WHERE name = ?"


class SiteSecrets:
    def __init__(self, db):
        self.db = db
        # name -> a secret found stored: it never changes, so no request
        # reads it again.
        self._stored = {}

    def get(self, name, nbytes=32):
        """The secret `name` as bytes: the stored one, or `nbytes` random
        bytes made now within the shared transaction (stored when it
        commits; a rollback takes it back, and the next call makes it
        again)."""
        secret = self._stored.get(name)
        if secret is not None:
            return secret
        row = self.db.one(_READ, (name,))
        if row is not None:
            secret = self._stored[name] = bytes.fromhex(row[0])
            return secret
        self.db.write(self.db.dialect.insert_ignoring("site_secrets", ("name", "value")),
                      (name, secrets.token_hex(nbytes)))
        return bytes.fromhex(self.db.one(_READ, (name,))[0])
