"""Authentication: password hashes, sign-in with throttling, sessions and
API tokens.

* Passwords: PBKDF2-SHA256 hashes in Django's text form
  (``pbkdf2_sha256$<iterations>$<salt>$<base64 hash>``), and the vendor's
  legacy unsalted ``sha1$$<hex>`` form, still accepted so the manual's SQL
  reset keeps working and re-hashed at the next successful sign-in.
* Sessions and API tokens are random 32-byte secrets (43 URL-safe
  characters). The browser or the script holds the secret; the store keeps
  only its SHA-256, so a copy of the database signs nobody in. Each session
  carries its own CSRF secret, which its forms must echo.
* Throttling lives in memory (a restart forgives): `Throttle` counts failed
  sign-ins per username and per client address over a sliding window.

Nothing here knows HTTP: the web turns `SignInRefused` into an answer and
the session secret into a cookie.
"""

import base64
import collections
import hashlib
import hmac
import math
import secrets
import sqlite3
import time

from texmate_ds.store import now_us

ITERATIONS = 260000
DEFAULT_PASSWORD = "admin"
# API tokens are touched (last_used) at most this often, so a script
# polling every second does not make every request a database write.
TOKEN_TOUCH_US = 60 * 1_000_000


def hash_password(password, salt=None, iterations=ITERATIONS):
    salt = salt or secrets.token_hex(12)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), iterations)
    return "pbkdf2_sha256$%d$%s$%s" % (iterations, salt, base64.b64encode(digest).decode())


def check_password(password, encoded):
    """Does `password` match the stored `encoded` hash? A malformed hash
    (a hand-made SQL reset gone wrong) matches nothing."""
    algorithm, _, rest = encoded.partition("$")
    if algorithm == "pbkdf2_sha256":
        try:
            iterations, salt, _ = rest.split("$", 2)
            computed = hash_password(password, salt, int(iterations))
        except ValueError:
            return False
        return hmac.compare_digest(computed, encoded)
    if algorithm == "sha1":
        salt, _, hexdigest = rest.partition("$")
        computed = hashlib.sha1((salt + password).encode()).hexdigest()
        return hmac.compare_digest(computed, hexdigest)
    return False


def needs_upgrade(encoded):
    return not encoded.startswith("pbkdf2_sha256$%d$" % ITERATIONS)


# Checked when the username is unknown, so that answering takes as long as
# for a known one and does not tell which usernames exist. No password
# hashes to 32 zero bytes.
_NOBODY = "pbkdf2_sha256$%d$nobody$%s" % (ITERATIONS, base64.b64encode(bytes(32)).decode())


def new_secret():
    return secrets.token_urlsafe(32)


def digest(secret):
    return hashlib.sha256(secret.encode()).hexdigest()


# -- sign-in ------------------------------------------------------------------

class SignInRefused(Exception):
    """`reason` for the visitor; `retry_after` seconds when throttled."""

    def __init__(self, reason, retry_after=None):
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class Throttle:
    """At most `limit` failed sign-ins per key (a username, an address) in
    `window` seconds; then `retry_after` says how long to wait."""

    # Keys remembered at most; beyond it the stale ones are dropped.
    MAX_KEYS = 10000

    def __init__(self, limit=5, window=15 * 60, clock=time.monotonic):
        self.limit = limit
        self.window = window
        self.clock = clock
        self._failures = collections.defaultdict(collections.deque)

    def _recent(self, key, now):
        failures = self._failures.get(key)
        if failures is None:
            return ()
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        if not failures:
            del self._failures[key]
        return failures

    def retry_after(self, keys):
        """Seconds until every key is under the limit again (0: now)."""
        now = self.clock()
        waits = [failures[-self.limit] + self.window - now
                 for failures in (self._recent(k, now) for k in keys)
                 if len(failures) >= self.limit]
        return max(1, math.ceil(max(waits))) if waits else 0

    def failed(self, keys):
        now = self.clock()
        if len(self._failures) >= self.MAX_KEYS:
            for key in list(self._failures):
                self._recent(key, now)
        for key in keys:
            self._failures[key].append(now)

    def forget(self, key):
        self._failures.pop(key, None)


# Signing in takes three steps, so that the slow one can run off the loop:
# `admit` (the throttle), `verify` (the hash, anywhere), `settle` (the
# throttle's bookkeeping and the hash upgrade, where the store is written).

def admit(throttle, username, address):
    """The throttle's keys for this sign-in; SignInRefused if throttled."""
    keys = ("user:" + username.lower(), "address:" + address)  # usernames compare without case
    wait = throttle.retry_after(keys)
    if wait:
        raise SignInRefused("too many failed sign-ins: try again in %d minute(s)"
                            % -(-wait // 60), retry_after=wait)
    return keys


def verify(password, user):
    """The slow part (PBKDF2, about 0.2 s; no database): (does `password`
    match `user`'s hash, the new hash when it does and the stored one is
    outdated). An unknown user (None) takes as long and matches nothing."""
    matches = check_password(password, user["password"] if user else _NOBODY)
    upgrade = matches and user is not None and needs_upgrade(user["password"])
    return matches and user is not None, hash_password(password) if upgrade else None


def settle(store, throttle, keys, user, verified):
    """After `verify`: the user, else SignInRefused; counts the failure or
    forgets earlier ones, and stores the upgraded hash."""
    matches, new_hash = verified
    if not matches:
        throttle.failed(keys)
        raise SignInRefused("wrong username or password")
    if not user["is_active"]:
        raise SignInRefused("this account is disabled")
    throttle.forget(keys[0])
    if new_hash is not None:
        store.set_password(user["id"], new_hash, must_change=bool(user["must_change_password"]))
    return user


# -- sessions -----------------------------------------------------------------

Session = collections.namedtuple("Session", "key_hash user csrf")


def start_session(store, user_id, days):
    """A new session for the user; returns its secret (for the cookie)."""
    secret = new_secret()
    store.delete_expired_sessions()
    store.add_session(digest(secret), user_id, new_secret(),
                      now_us() + days * 86400 * 1_000_000)
    store.record_login(user_id)
    return secret


def find_session(store, secret):
    """The live Session for a cookie's secret, or None (unknown, expired,
    or its user is gone or disabled)."""
    if not secret:
        return None
    key_hash = digest(secret)
    found = store.get_session(key_hash)
    if found is None:
        return None
    user = store.get_user(user_id=found[0])
    if user is None or not user["is_active"]:
        return None
    return Session(key_hash, user, found[1])


def end_session(store, session):
    store.delete_session(session.key_hash)


def check_new_password(password):
    """ValueError for an empty password or the default one."""
    if not password:
        raise ValueError("the new password is empty")
    if password == DEFAULT_PASSWORD:
        raise ValueError("choose a password other than the default one")


def change_password(store, session, password_hash):
    """Set the session user's password to a `hash_password` of one that
    `check_new_password` accepted; their other sessions end."""
    user_id = session.user["id"]
    store.set_password(user_id, password_hash)
    store.delete_user_sessions(user_id, keep=session.key_hash)


# -- API tokens ---------------------------------------------------------------

def create_api_token(store, user_id, name):
    """A new token for the user, returned once; ValueError if the user
    already has one of that name."""
    secret = new_secret()
    try:
        store.add_api_token(user_id, name, digest(secret))
    except sqlite3.IntegrityError:
        raise ValueError("there is already a token named %r" % name) from None
    return secret


def revoke_api_token(store, user_id, name):
    """True if the user had a token of that name (now gone)."""
    return store.delete_api_token(user_id, name)


def token_user(store, secret):
    """The active user an API token belongs to, or None."""
    token = store.get_api_token(digest(secret))
    if token is None:
        return None
    user = store.get_user(user_id=token["user_id"])
    if user is None or not user["is_active"]:
        return None
    last_used = token["last_used"] or 0
    if now_us() - last_used >= TOKEN_TOUCH_US:
        store.touch_api_token(token["id"])
    return user
