"""Accounts: users, groups, what each may do (permissions) and see (unit
access), web sessions, API tokens and sign-in attempts.

A permission is text, ``"<admin model>.<action>"`` (``units.change``);
which exist is the admin's to say. A user's grants are their own plus
those of their groups (`grants`), read in one go per request.

`auth` decides everything (hashing, expiry, throttling limits); this keeps
the rows. Session keys and API tokens arrive hashed, so the database never
holds a secret that signs anyone in. Usernames compare without case (the
column's collation); sign-in attempts get them folded by `auth`. Times are
integer microseconds (`times.now`).
"""

import collections

from texmate_ds import times
from texmate_ds.store.sql import (
    UNITS_SEEN_BY,
    filters,
    matching,
    order_by,
    page,
    searching,
)

_USER_COLUMNS = ("id", "username", "password", "email", "first_name", "last_name",
                 "is_active", "is_staff", "is_superuser", "must_change_password",
                 "date_joined", "last_login", "all_units")
_SELECT_USER = "SELECT %s FROM users" % ", ".join(_USER_COLUMNS)
# What `query_users` compares and sorts by: every column but the password.
_USER_QUERIED = {column: column for column in _USER_COLUMNS if column != "password"}


class User(collections.namedtuple("User", _USER_COLUMNS, defaults=(False,))):
    """A user as stored; `password` is the hash, the flags are bools
    (`all_units`: sees every unit, whatever their unit access says)."""

    __slots__ = ()

    @classmethod
    def from_row(cls, row):
        return cls(*row[:6], *(bool(flag) for flag in row[6:10]), row[10], row[11],
                   bool(row[12]))


# A group: its `name` and whether its members see every unit.
Group = collections.namedtuple("Group", "id name all_units")
_SELECT_GROUP = "SELECT id, name, all_units FROM groups"

# What a user may do and see: `permissions` (frozenset of text) and unit
# access, both their own and their groups' together: `all_units`, or the
# ids in `unit_ids`.
Grants = collections.namedtuple("Grants", "permissions all_units unit_ids")

# What users and groups sort by in the admin.
USER_ORDERS = {"username": "username", "email": "email", "is_staff": "is_staff",
               "is_superuser": "is_superuser", "is_active": "is_active",
               "last_login": "last_login", "id": "id"}
GROUP_ORDERS = {"name": "name", "id": "id"}
# The user settings `change_user` sets (the password has its own call).
USER_SETTINGS = ("username", "email", "first_name", "last_name", "is_active", "is_staff",
                 "is_superuser", "all_units")


# A web session: `key_hash` the digest of the cookie's secret, `csrf` the
# secret its forms carry, `expires` in microseconds.
Session = collections.namedtuple("Session", "key_hash user_id csrf expires")
# An API token: `token_hash` the digest of the secret the script sends.
ApiToken = collections.namedtuple("ApiToken", "id user_id name token_hash created last_used")
_SELECT_TOKEN = "SELECT %s FROM api_tokens" % ", ".join(ApiToken._fields)


class Accounts:
    def __init__(self, db):
        self.db = db

    # -- users

    def add_user(self, username, password_hash, email="", is_staff=False,
                 is_superuser=False, must_change_password=False, **settings):
        """The new User; Conflict if the username is taken (in any case).
        `settings`: more of `USER_SETTINGS` (first_name, all_units...)."""
        user_id = self.db.insert(
            "users", username=username, password=password_hash, email=email,
            is_staff=int(is_staff), is_superuser=int(is_superuser),
            must_change_password=int(must_change_password), date_joined=times.now(),
            **_stored(settings))
        return self.get_user(user_id)

    def change_user(self, user_id, **settings):
        """Set `USER_SETTINGS` of the user; Conflict if a new username is
        taken."""
        if settings:
            settings = _stored(settings)
            self.db.write("UPDATE users SET %s WHERE id = ?" % ", ".join(
                "%s = ?" % column for column in settings), (*settings.values(), user_id))
        return self.get_user(user_id)

    def delete_user(self, user_id):
        """Delete the user with their sessions, tokens, groups and grants."""
        self.db.write("DELETE FROM users WHERE id = ?", (user_id,))

    def count_active_superusers(self, besides=None):
        """Active superusers, leaving out user `besides` (None: none)."""
        return self.db.one(
            "SELECT count(*) FROM users WHERE is_superuser = 1 AND is_active = 1 AND id <> ?",
            (-1 if besides is None else besides,))[0]

    def find_users(self, search=None, offset=0, limit=100, order="username"):
        """(how many in all, [User] of this page): those whose username,
        email or names hold `search`, sorted by `order` (`USER_ORDERS`)."""
        where, params = filters(searching(
            self.db.dialect, ("username", "email", "first_name", "last_name"), search))
        total = self.db.one("SELECT count(*) FROM users WHERE " + where, params)[0]
        rows = self.db.all(_SELECT_USER + " WHERE %s ORDER BY %s LIMIT ? OFFSET ?" % (
            where, order_by(USER_ORDERS, order, "id")), params + [limit, offset])
        return total, [User.from_row(row) for row in rows]

    def query_users(self, conditions=(), order="username", limit=None, offset=0):
        """[User] for which all `conditions` hold (`sql.matching` over the
        columns but the password; a username compares without case),
        sorted by the column `order` (``-username``: descending; ties by
        id), `limit` of them (None: all) after the first `offset`: one
        statement (the apps' querysets, `texmate_ds.models`)."""
        where, params = matching(_USER_QUERIED, conditions)
        limits, more = page(limit, offset)
        return [User.from_row(row) for row in self.db.all(
            "%s WHERE %s ORDER BY %s%s" % (_SELECT_USER, where,
                                           order_by(_USER_QUERIED, order, "id"), limits),
            params + more)]

    def count_users_matching(self, conditions=()):
        """How many users `query_users` finds with those `conditions` in all."""
        where, params = matching(_USER_QUERIED, conditions)
        return self.db.one("SELECT count(*) FROM users WHERE " + where, params)[0]

    def all_users(self):
        """Every User, by username."""
        return [User.from_row(row) for row in self.db.all(_SELECT_USER + " ORDER BY username")]

    def count_users(self):
        return self.db.one("SELECT count(*) FROM users")[0]

    def get_user(self, user_id):
        """The User with that id, or None."""
        row = self.db.one(_SELECT_USER + " WHERE id = ?", (user_id,))
        return User.from_row(row) if row else None

    def get_user_by_name(self, username):
        row = self.db.one(_SELECT_USER + " WHERE username = ?", (username,))
        return User.from_row(row) if row else None

    # -- groups, permissions and unit access

    def add_group(self, name, all_units=False):
        """The new Group; Conflict if the name is taken (in any case)."""
        return self.get_group(self.db.insert("groups", name=name, all_units=int(all_units)))

    def get_group(self, group_id):
        row = self.db.one(_SELECT_GROUP + " WHERE id = ?", (group_id,))
        return Group(row[0], row[1], bool(row[2])) if row else None

    def get_group_by_name(self, name):
        """The Group of that name in any case, or None."""
        row = self.db.one(_SELECT_GROUP + " WHERE name = ?", (name,))
        return Group(row[0], row[1], bool(row[2])) if row else None

    def change_group(self, group_id, name, all_units):
        self.db.write("UPDATE groups SET name = ?, all_units = ? WHERE id = ?",
                      (name, int(all_units), group_id))
        return self.get_group(group_id)

    def delete_group(self, group_id):
        """Delete the group; its members stay, without what it gave them."""
        self.db.write("DELETE FROM groups WHERE id = ?", (group_id,))

    def find_groups(self, search=None, offset=0, limit=100, order="name"):
        """(how many in all, [Group] of this page), as `find_users`."""
        where, params = filters(searching(self.db.dialect, ("name",), search))
        total = self.db.one("SELECT count(*) FROM groups WHERE " + where, params)[0]
        rows = self.db.all(_SELECT_GROUP + " WHERE %s ORDER BY %s LIMIT ? OFFSET ?" % (
            where, order_by(GROUP_ORDERS, order, "id")), params + [limit, offset])
        return total, [Group(row[0], row[1], bool(row[2])) for row in rows]

    def groups_of(self, user_id):
        """The ids of the user's groups."""
        return {row[0] for row in self.db.all(
            "SELECT group_id FROM user_groups WHERE user_id = ?", (user_id,))}

    def set_groups(self, user_id, group_ids):
        self._set("user_groups", "user_id", user_id, "group_id", group_ids)

    def permissions(self, owner, owner_id):
        """The permissions given to a "user" or a "group" directly."""
        return {row[0] for row in self.db.all(
            "SELECT permission FROM %s_permissions WHERE %s_id = ?" % _owner(owner),
            (owner_id,))}

    def set_permissions(self, owner, owner_id, permissions):
        table, column = _owner(owner)
        self._set(table + "_permissions", column + "_id", owner_id, "permission", permissions)

    def units_of(self, owner, owner_id):
        """The ids of the units a "user" or a "group" was given access to."""
        return {row[0] for row in self.db.all(
            "SELECT unit_id FROM %s_units WHERE %s_id = ?" % _owner(owner), (owner_id,))}

    def set_units(self, owner, owner_id, unit_ids):
        table, column = _owner(owner)
        self._set(table + "_units", column + "_id", owner_id, "unit_id", unit_ids)

    def _set(self, table, key, key_value, column, values):
        """`table` holds exactly `values` in `column` for `key` = key_value."""
        self.db.write("DELETE FROM %s WHERE %s = ?" % (table, key), (key_value,))
        self.db.executemany("INSERT INTO %s (%s, %s) VALUES (?, ?)" % (table, key, column),
                            [(key_value, value) for value in sorted(set(values))])

    def grants(self, user):
        """`user`'s Grants: their own and their groups' (three reads)."""
        permissions = self.db.all(
            "SELECT permission FROM user_permissions WHERE user_id = ? UNION"
            " SELECT p.permission FROM group_permissions p JOIN user_groups m"
            " ON m.group_id = p.group_id WHERE m.user_id = ?", (user.id, user.id))
        all_units = user.all_units or self.db.one(
            "SELECT count(*) FROM groups g JOIN user_groups m ON m.group_id = g.id"
            " WHERE m.user_id = ? AND g.all_units = 1", (user.id,))[0] > 0
        units = () if all_units else self.db.all(UNITS_SEEN_BY, (user.id, user.id))
        return Grants(frozenset(row[0] for row in permissions), all_units,
                      frozenset(row[0] for row in units))

    # -- passwords and sign-ins

    def set_password(self, user_id, password_hash, must_change=False):
        """False if there is no such user."""
        return self.db.write(
            "UPDATE users SET password = ?, must_change_password = ? WHERE id = ?",
            (password_hash, int(must_change), user_id)).rowcount == 1

    def record_login(self, user_id):
        self.db.write("UPDATE users SET last_login = ? WHERE id = ?", (times.now(), user_id))

    # -- sessions

    def add_session(self, key_hash, user_id, csrf, expires):
        self.db.write("INSERT INTO sessions (key_hash, user_id, csrf, expires)"
                      " VALUES (?, ?, ?, ?)", (key_hash, user_id, csrf, expires))

    def get_session(self, key_hash):
        """The Session if it has not expired, else None."""
        row = self.db.one(
            "SELECT key_hash, user_id, csrf, expires FROM sessions"
            " WHERE key_hash = ? AND expires > ?", (key_hash, times.now()))
        return Session(*row) if row else None

    def delete_session(self, key_hash):
        self._delete_sessions("key_hash = ?", (key_hash,))

    def delete_user_sessions(self, user_id, keep=None):
        """Every session of the user but `keep` (after a password change)."""
        if keep is None:
            self._delete_sessions("user_id = ?", (user_id,))
        else:
            self._delete_sessions("user_id = ? AND key_hash <> ?", (user_id, keep))

    def delete_expired_sessions(self):
        self._delete_sessions("expires <= ?", (times.now(),))

    def _delete_sessions(self, where, params):
        self.db.write("DELETE FROM sessions WHERE " + where, params)

    # -- sign-in attempts (auth.Throttle decides; these count and keep them)

    def add_sign_in_attempt(self, username, address, at):
        """A password check about to run; returns its id."""
        return self.db.insert("sign_in_attempts", username=username, address=address, at=at)

    def nth_sign_in_attempt(self, n, since, username=None, address=None):
        """When the n-th newest attempt after `since` was made, counting
        only those of `username` and from `address` (None: any); None
        when there are fewer than n."""
        where, params = filters(("at > ?", since), ("username = ?", username),
                                ("address = ?", address))
        row = self.db.one(
            "SELECT at FROM sign_in_attempts WHERE %s ORDER BY at DESC LIMIT 1 OFFSET ?"
            % where, params + [n - 1])
        return row[0] if row else None

    def delete_sign_in_attempt(self, attempt_id):
        self.db.write("DELETE FROM sign_in_attempts WHERE id = ?", (attempt_id,))

    def delete_sign_in_attempts(self, before=None, username=None):
        """Attempts made before `before`, or of `username`, or (neither)
        every one; returns how many went."""
        where, params = filters(("at < ?", before), ("username = ?", username))
        return self.db.write("DELETE FROM sign_in_attempts WHERE " + where, params).rowcount

    # -- API tokens

    def add_api_token(self, user_id, name, token_hash):
        """The new token's id; Conflict if the user has one of that name."""
        return self.db.insert("api_tokens", user_id=user_id, name=name, token_hash=token_hash,
                              created=times.now())

    def get_api_token(self, token_hash):
        row = self.db.one(_SELECT_TOKEN + " WHERE token_hash = ?", (token_hash,))
        return ApiToken(*row) if row else None

    def touch_api_token(self, token_id):
        self.db.write("UPDATE api_tokens SET last_used = ? WHERE id = ?",
                      (times.now(), token_id))

    def api_tokens(self, user_id):
        """The user's [ApiToken], by name."""
        return [ApiToken(*row) for row in self.db.all(
            _SELECT_TOKEN + " WHERE user_id = ? ORDER BY name", (user_id,))]

    def api_token_named(self, user_id, name):
        """The user's ApiToken of that name, or None."""
        row = self.db.one(_SELECT_TOKEN + " WHERE user_id = ? AND name = ?", (user_id, name))
        return ApiToken(*row) if row else None

    def api_token(self, token_id):
        """The ApiToken with that id, or None."""
        row = self.db.one(_SELECT_TOKEN + " WHERE id = ?", (token_id,))
        return ApiToken(*row) if row else None

    def find_api_tokens(self, user_id=None, search=None, offset=0, limit=100):
        """(how many in all, [ApiToken] of this page) by user and name."""
        where, params = filters(("t.user_id = ?", user_id),
                                searching(self.db.dialect, ("t.name", "u.username"), search))
        join = " FROM api_tokens t JOIN users u ON u.id = t.user_id WHERE " + where
        total = self.db.one("SELECT count(*)" + join, params)[0]
        rows = self.db.all("SELECT %s%s ORDER BY u.username, t.name LIMIT ? OFFSET ?" % (
            ", ".join("t." + f for f in ApiToken._fields), join), params + [limit, offset])
        return total, [ApiToken(*row) for row in rows]

    def delete_api_token(self, user_id, name):
        """True if the user had a token of that name."""
        return self.db.write("DELETE FROM api_tokens WHERE user_id = ? AND name = ?",
                             (user_id, name)).rowcount == 1


def _stored(settings):
    """User settings as columns: flags as 0 or 1; an unknown one refused."""
    unknown = set(settings) - set(USER_SETTINGS)
    if unknown:
        raise ValueError("not a user setting: %s" % ", ".join(sorted(unknown)))
    return {column: int(value) if isinstance(value, bool) else value
            for column, value in settings.items()}


def _owner(owner):
    """(table prefix, id column prefix) of grants to a "user" or "group"."""
    if owner not in ("user", "group"):
        raise ValueError("grants go to a user or a group, not %r" % owner)
    return owner, owner
