"""Passwords: PBKDF2-SHA256 hashes in Django's text form
(``pbkdf2_sha256$<iterations>$<salt>$<base64 hash>``), and the vendor's
legacy unsalted ``sha1$$<hex>`` form, which is still accepted so the
manual's SQL reset keeps working (callers re-hash it at the next sign-in).
"""

import base64
import hashlib
import hmac
import secrets

ITERATIONS = 260000
DEFAULT_PASSWORD = "admin"


def hash_password(password, salt=None, iterations=ITERATIONS):
    salt = salt or secrets.token_hex(12)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), iterations)
    return "pbkdf2_sha256$%d$%s$%s" % (iterations, salt, base64.b64encode(digest).decode())


def check_password(password, encoded):
    algorithm, _, rest = encoded.partition("$")
    if algorithm == "pbkdf2_sha256":
        iterations, salt, _ = rest.split("$", 2)
        return hmac.compare_digest(hash_password(password, salt, int(iterations)), encoded)
    if algorithm == "sha1":
        salt, _, hexdigest = rest.partition("$")
        computed = hashlib.sha1((salt + password).encode()).hexdigest()
        return hmac.compare_digest(computed, hexdigest)
    return False


def needs_upgrade(encoded):
    return not encoded.startswith("pbkdf2_sha256$%d$" % ITERATIONS)
