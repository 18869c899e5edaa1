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
