"""Who may do and see what (docs/web.md, "Who sees what").

`Access` is one visitor's answer to both questions, made once per
request from their grants (`store.Accounts.grants`: their own and their
groups' together) and kept on it as ``request.access``:

* `may(model, action)`: an admin permission, ``units.change``. A
  superuser may do everything; anyone else what they were given. Only
  staff reach the admin at all (the admin's own guard).
* `sees(unit)` and `seen_by`: unit access. A superuser, a user given
  "all units" (directly or through a group) and, with ``LOGIN_REQUIRED:
  no``, an anonymous visitor see every unit; anyone else only the units
  given them. A unit they may not see is answered exactly like one that
  does not exist (404), so its code cannot be probed. `seen_by` is what
  the store's lists take: None for every unit, else the user's id.

`Visitor` is what a site HTTP app is told of who signed in
(``environ["texmate.user"]``, set by `site.Site.mount`): the user's name
and flags, read-only, and the same `may` and `sees` answers, never the
password hash.
"""

ACTIONS = ("view", "add", "change", "delete")


class Access:
    def __init__(self, store, user):
        self.user = user
        self.superuser = user is not None and user.is_superuser
        if user is None or self.superuser:
            self._grants = None
        else:
            self._grants = store.accounts.grants(user)

    @property
    def seen_by(self):
        """None when every unit is seen, else the user id whose unit access
        decides (the store's ``seen_by``)."""
        if self._grants is None or self._grants.all_units:
            return None
        return self.user.id

    def sees(self, unit):
        return self.sees_id(unit.id)

    def sees_id(self, unit_id):
        return self.seen_by is None or unit_id in self._grants.unit_ids

    def may(self, model, action):
        """May this visitor `action` (one of ACTIONS) `model` in the admin?"""
        if self.superuser:
            return True
        return self._grants is not None and "%s.%s" % (model, action) in self._grants.permissions


class Visitor:
    """A signed-in user as a site HTTP app sees them: `username`, `is_staff`,
    `is_superuser` (read-only), `may(model, action)` and `sees(unit)` as
    `Access` answers them (`unit`: a `store.Unit`, as ``server.store`` or
    ``texmate_ds.models`` give). Their grants are read on the first
    question, so an app that asks none costs no read."""

    __slots__ = ("_store", "_user", "_access")

    def __init__(self, store, user):
        self._store = store
        # Without the hash: nothing an app holds can leak it.
        self._user = user._replace(password="")
        self._access = None

    username = property(lambda self: self._user.username)
    is_staff = property(lambda self: self._user.is_staff)
    is_superuser = property(lambda self: self._user.is_superuser)

    def _asked(self):
        if self._access is None:
            self._access = Access(self._store, self._user)
        return self._access

    def may(self, model, action):
        return self._asked().may(model, action)

    def sees(self, unit):
        return self._asked().sees(unit)

    def __repr__(self):
        return "<Visitor %s>" % self.username
