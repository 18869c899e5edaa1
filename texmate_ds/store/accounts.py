"""Accounts: users, web sessions, API tokens and sign-in attempts (later
groups and permissions).

`auth` decides everything (hashing, expiry, throttling limits); this keeps
the rows. Session keys and API tokens arrive hashed, so the database never
holds a secret that signs anyone in. Usernames compare without case (the
column's collation); sign-in attempts get them folded by `auth`. Times are
integer microseconds (`times.now`).
"""

import collections

from texmate_ds import times
from texmate_ds.store.sql import filters

_USER_COLUMNS = ("id", "username", "password", "email", "first_name", "last_name",
                 "is_active", "is_staff", "is_superuser", "must_change_password",
                 "date_joined", "last_login")
_SELECT_USER = "SELECT %s FROM users" % ", ".join(_USER_COLUMNS)


class User(collections.namedtuple("User", _USER_COLUMNS)):
    """A user as stored; `password` is the hash, the flags are bools."""

    __slots__ = ()

    @classmethod
    def from_row(cls, row):
        (user_id, username, password, email, first_name, last_name, is_active, is_staff,
         is_superuser, must_change_password, date_joined, last_login) = row
        return cls(user_id, username, password, email, first_name, last_name,
                   bool(is_active), bool(is_staff), bool(is_superuser),
                   bool(must_change_password), date_joined, last_login)


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
                 is_superuser=False, must_change_password=False):
        """The new User; Conflict if the username is taken (in any case)."""
        user_id = self.db.insert(
            "users", username=username, password=password_hash, email=email,
            is_staff=int(is_staff), is_superuser=int(is_superuser),
            must_change_password=int(must_change_password), date_joined=times.now())
        return self.get_user(user_id)

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

    def delete_api_token(self, user_id, name):
        """True if the user had a token of that name."""
        return self.db.write("DELETE FROM api_tokens WHERE user_id = ? AND name = ?",
                             (user_id, name)).rowcount == 1
