"""auth without the web: password hashes and the sign-in throttle (on a
clock the test turns by hand)."""

import hashlib

import pytest

from texmate_ds import auth


def test_pbkdf2_and_legacy_sha1_hashes():
    encoded = auth.hash_password("pw", iterations=1000)
    assert auth.check_password("pw", encoded) and not auth.check_password("px", encoded)
    assert auth.needs_upgrade(encoded)
    legacy = "sha1$$" + hashlib.sha1(b"pw").hexdigest()
    assert auth.check_password("pw", legacy) and auth.needs_upgrade(legacy)


@pytest.mark.parametrize("encoded", [
    "", "pbkdf2_sha256$", "pbkdf2_sha256$x$salt$abc", "pbkdf2_sha256$10", "md5$$x", "admin",
])
def test_malformed_hashes_match_nothing(encoded):
    assert not auth.check_password("admin", encoded)


class Clock:
    now = 1000.0

    def __call__(self):
        return self.now


def test_throttle_counts_failures_per_key_in_a_sliding_window():
    clock = Clock()
    throttle = auth.Throttle(limit=3, window=60, clock=clock)
    for _ in range(2):
        throttle.failed(("user:ann", "address:1"))
        clock.now += 10
    assert throttle.retry_after(("user:ann",)) == 0
    throttle.failed(("user:ann", "address:1"))  # third, at 1020
    assert throttle.retry_after(("user:ann",)) == 40  # the first leaves at 1060
    assert throttle.retry_after(("user:bob", "address:1")) == 40
    assert throttle.retry_after(("user:bob", "address:2")) == 0
    clock.now = 1060
    assert throttle.retry_after(("user:ann",)) == 0
    throttle.forget("user:ann")
    assert throttle.retry_after(("address:1",)) == 0


def test_throttle_forgets_stale_keys_when_full():
    clock = Clock()
    throttle = auth.Throttle(limit=1, window=60, clock=clock)
    throttle.MAX_KEYS = 3
    throttle.failed(("a", "b", "c"))
    clock.now += 61
    throttle.failed(("d",))
    assert sorted(throttle._failures) == ["d"]
