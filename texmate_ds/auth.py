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
* Throttling counts password checks, not failures: an attempt is written
  to the store when it is admitted, before its hash is worked out, so
  checks in flight count and no burst of concurrent guesses gets past the
  limit. A check whose password matched gives its slot back; a failed one
  stays counted for the window. `Throttle.LIMITS` are sliding windows per
  (username, address), per address and, much higher, per username: a
  flood from one address locks the user out at that address only, while
  guessing spread over many addresses still meets the per-username
  ceiling. The attempts live in the database, so ``manage unlock`` (another
  process) can clear them, and a restart forgives nothing.

Nothing here knows HTTP: the web turns `SignInRefused` into an answer and
the session secret into a cookie.
"""

import base64
import collections
import hashlib
import hmac
import math
import secrets
import time

from texmate_ds import store, times

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
    """`reason` for the visitor; `retry_after` seconds when throttled, and
    then `news`: a line for the log about each limit this refusal found
    newly reached (each throttling is told once per process)."""

    def __init__(self, reason, retry_after=None, news=()):
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after
        self.news = list(news)


# At most `checks` password checks in `seconds` per key; `by` names the
# attempt's parts that make the key, `scope` says in the log whom it hit.
Limit = collections.namedtuple("Limit", "checks seconds by scope")


def _us(seconds):
    return int(seconds * 1_000_000)


class Throttle:
    """Admits a password check (`admit`) unless a limit is reached.

    Per (username, address): a person mistyping, or one address guessing
    one account. Per address: one address trying many usernames. Per
    username, much higher: many addresses guessing one account; reaching
    it locks that user out everywhere until the window passes or ``manage
    unlock USER``. The store keeps the attempts; this object keeps only the
    limits and which throttlings it has already logged."""

    LIMITS = (
        Limit(5, 15 * 60, ("username", "address"), "{username} from {address}"),
        Limit(20, 15 * 60, ("address",), "any username from {address} (now {username})"),
        Limit(100, 60 * 60, ("username",), "{username} from any address (now from {address})"),
    )
    # Throttlings remembered as logged; past this many, ended ones are dropped.
    MAX_LOGGED = 10000

    def __init__(self, clock=time.time):
        # Wall-clock time: the attempts outlive the process.
        self.clock = clock
        # (limit, key) -> (the attempt that reached the limit, when it ends).
        self._logged = {}

    def admit(self, db, username, address):
        """Count a password check about to run and return its attempt id
        (for `settle`), or raise SignInRefused, writing nothing."""
        now = self.clock()
        parts = {"username": username.lower(), "address": address}  # usernames compare without case
        waits, news = [], []
        for limit in self.LIMITS:
            key = {name: parts[name] for name in limit.by}
            reached = db.accounts.nth_sign_in_attempt(limit.checks, _us(now - limit.seconds), **key)
            if reached is None:
                continue
            wait = reached / 1_000_000 + limit.seconds - now
            waits.append(wait)
            if self._first(limit, key, reached, now + wait):
                news.append("sign-ins throttled for %d s: %d password checks in %d minutes "
                            "for %s (manage unlock clears it)" % (
                                math.ceil(wait), limit.checks, limit.seconds // 60,
                                limit.scope.format(username=username, address=address)))
        if waits:
            wait = max(1, math.ceil(max(waits)))
            raise SignInRefused("too many failed sign-ins: try again in %d minute(s)"
                                % -(-wait // 60), retry_after=wait, news=news)
        longest = max(limit.seconds for limit in self.LIMITS)
        db.accounts.delete_sign_in_attempts(before=_us(now - longest))
        return db.accounts.add_sign_in_attempt(parts["username"], address, _us(now))

    def _first(self, limit, key, reached, ends):
        """Is this the first refusal of this throttling (a limit reached by
        the attempt at `reached`) seen here? Remembers it."""
        name = (limit, tuple(key.values()))
        if self._logged.get(name, (None,))[0] == reached:
            return False
        if len(self._logged) >= self.MAX_LOGGED:
            now = self.clock()
            self._logged = {n: v for n, v in self._logged.items() if v[1] > now}
        self._logged[name] = (reached, ends)
        return True


# Signing in takes three steps, so that the slow one can run off the loop:
# `Throttle.admit` (counts the attempt), `verify` (the hash, anywhere),
# `settle` (gives a good password's slot back, stores the upgraded hash).

def verify(password, user):
    """The slow part (PBKDF2, about 0.2 s; no database): (does `password`
    match `user`'s hash, the new hash when it does and the stored one is
    outdated). An unknown user (None) takes as long and matches nothing."""
    matches = check_password(password, user.password if user else _NOBODY)
    upgrade = matches and user is not None and needs_upgrade(user.password)
    return matches and user is not None, hash_password(password) if upgrade else None


def settle(db, attempt, user, verified):
    """After `verify`: the user, else SignInRefused. A wrong password's
    attempt stays counted; a right one's is deleted, so someone who signs
    in often never runs into the limit."""
    matches, new_hash = verified
    if not matches:
        raise SignInRefused("wrong username or password")
    db.accounts.delete_sign_in_attempt(attempt)
    if not user.is_active:
        raise SignInRefused("this account is disabled")
    if new_hash is not None:
        db.accounts.set_password(user.id, new_hash, must_change=user.must_change_password)
    return user


def unlock(db, username=None):
    """Clear sign-in throttles: every one, or `username`'s at any address;
    returns how many counted attempts were forgotten."""
    return db.accounts.delete_sign_in_attempts(
        username=None if username is None else username.lower())


# -- sessions -----------------------------------------------------------------

Session = collections.namedtuple("Session", "key_hash user csrf")


def start_session(db, user_id, days):
    """A new session for the user; returns its secret (for the cookie)."""
    secret = new_secret()
    db.accounts.delete_expired_sessions()
    db.accounts.add_session(digest(secret), user_id, new_secret(),
                            times.now() + days * 86400 * 1_000_000)
    db.accounts.record_login(user_id)
    return secret


def find_session(db, secret):
    """The live Session for a cookie's secret, or None (unknown, expired,
    or its user is gone or disabled)."""
    if not secret:
        return None
    key_hash = digest(secret)
    found = db.accounts.get_session(key_hash)
    if found is None:
        return None
    user = db.accounts.get_user(found.user_id)
    if user is None or not user.is_active:
        return None
    return Session(key_hash, user, found.csrf)


def end_session(db, session):
    db.accounts.delete_session(session.key_hash)


def check_new_password(password):
    """ValueError for an empty password or the default one."""
    if not password:
        raise ValueError("the new password is empty")
    if password == DEFAULT_PASSWORD:
        raise ValueError("choose a password other than the default one")


def change_password(db, session, password_hash):
    """Set the session user's password to a `hash_password` of one that
    `check_new_password` accepted; their other sessions end."""
    user_id = session.user.id
    db.accounts.set_password(user_id, password_hash)
    db.accounts.delete_user_sessions(user_id, keep=session.key_hash)


# -- API tokens ---------------------------------------------------------------

def create_api_token(db, user_id, name):
    """A new token for the user, returned once; ValueError if the user
    already has one of that name."""
    secret = new_secret()
    try:
        db.accounts.add_api_token(user_id, name, digest(secret))
    except store.Conflict:
        raise ValueError("there is already a token named %r" % name) from None
    return secret


def revoke_api_token(db, user_id, name):
    """True if the user had a token of that name (now gone)."""
    return db.accounts.delete_api_token(user_id, name)


def token_user(db, secret):
    """The active user an API token belongs to, or None."""
    token = db.accounts.get_api_token(digest(secret))
    if token is None:
        return None
    user = db.accounts.get_user(token.user_id)
    if user is None or not user.is_active:
        return None
    last_used = token.last_used or 0
    if times.now() - last_used >= TOKEN_TOUCH_US:
        db.accounts.touch_api_token(token.id)
    return user
