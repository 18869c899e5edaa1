"""auth without the web: password hashes and the sign-in throttle (on an
in-memory store and a clock the test turns by hand)."""

import hashlib

import pytest

from texmate_ds import auth, store


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
    now = 1_000_000.0

    def __call__(self):
        return self.now


@pytest.fixture
def throttled():
    """(Throttle on a clock the test turns, an in-memory store, the clock)."""
    st = store.Database(":memory:")
    st.migrate()
    clock = Clock()
    return auth.Throttle(clock=clock), st, clock


def rows(st):
    return st.one("SELECT count(*) FROM sign_in_attempts")[0]


def refusal(throttle, st, username, address):
    with pytest.raises(auth.SignInRefused) as refused:
        throttle.admit(st, username, address)
    return refused.value


def test_checks_in_flight_count_and_a_refusal_writes_nothing(throttled):
    throttle, st, clock = throttled
    for _ in range(5):
        throttle.admit(st, "Ann", "10.0.0.1")  # none settled yet
    clock.now += 100
    changes = st.changes
    refused = refusal(throttle, st, "ann", "10.0.0.1")  # usernames compare without case
    assert refused.retry_after == 800 and "try again in 14 minute(s)" in refused.reason
    assert st.changes == changes and rows(st) == 5
    # The same user elsewhere, and another user here, go on.
    throttle.admit(st, "ann", "10.0.0.2")
    throttle.admit(st, "bob", "10.0.0.1")
    clock.now += 800
    throttle.admit(st, "ann", "10.0.0.1")


def test_a_right_password_gives_its_slot_back_a_wrong_one_does_not(throttled):
    throttle, st, _ = throttled
    user = store.User(1, "ann", "hash", "", "", "", True, False, False, False, 0, None)
    for _ in range(20):
        attempt = throttle.admit(st, "ann", "10.0.0.1")
        assert auth.settle(st, attempt, user, (True, None)) is user
    for _ in range(5):
        attempt = throttle.admit(st, "ann", "10.0.0.1")
        with pytest.raises(auth.SignInRefused, match="wrong username or password"):
            auth.settle(st, attempt, user, (False, None))
    assert refusal(throttle, st, "ann", "10.0.0.1").retry_after == 900


def test_one_address_trying_many_usernames_meets_the_address_limit(throttled):
    throttle, st, _ = throttled
    for n in range(20):
        throttle.admit(st, "user%d" % n, "10.0.0.1")
    refused = refusal(throttle, st, "someone", "10.0.0.1")
    assert refused.news == [("sign-ins throttled for 900 s: 20 password checks in 15 minutes"
                             " for any username from 10.0.0.1 (now someone)"
                             " (manage unlock clears it)")]
    throttle.admit(st, "someone", "10.0.0.2")


def test_many_addresses_guessing_one_account_meet_the_per_username_ceiling(throttled):
    throttle, st, clock = throttled
    for n in range(100):
        throttle.admit(st, "ann", "10.0.%d.%d" % divmod(n, 4))  # 4 a address
        clock.now += 1
    refused = refusal(throttle, st, "ann", "10.9.9.9")
    assert refused.retry_after == 3600 - 100
    assert "for ann from any address (now from 10.9.9.9)" in refused.news[0]
    throttle.admit(st, "bob", "10.9.9.9")


def test_attempts_older_than_the_longest_window_are_deleted_as_we_go(throttled):
    throttle, st, clock = throttled
    for n in range(30):
        throttle.admit(st, "user%d" % n, "10.0.0.%d" % n)
    clock.now += 3600
    throttle.admit(st, "ann", "10.0.0.1")
    assert rows(st) == 31
    clock.now += 1
    throttle.admit(st, "ann", "10.0.0.1")
    assert rows(st) == 2


def test_each_throttling_is_news_once(throttled):
    throttle, st, clock = throttled
    for _ in range(5):
        throttle.admit(st, "ann", "10.0.0.1")
        clock.now += 1
    assert len(refusal(throttle, st, "ann", "10.0.0.1").news) == 1
    assert refusal(throttle, st, "ann", "10.0.0.1").news == []
    # Once the oldest check has left the window, one more is admitted, and
    # reaching the limit again is a new throttling.
    clock.now += 900 - 5
    throttle.admit(st, "ann", "10.0.0.1")
    again = refusal(throttle, st, "ann", "10.0.0.1")
    assert again.retry_after == 1 and len(again.news) == 1
    # As after `unlock`.
    auth.unlock(st, "ann")
    for _ in range(5):
        throttle.admit(st, "ann", "10.0.0.1")
    assert len(refusal(throttle, st, "ann", "10.0.0.1").news) == 1


def test_unlock_clears_one_users_attempts_or_all(throttled):
    throttle, st, _ = throttled
    for username in ("ann", "bob"):
        for _ in range(5):
            throttle.admit(st, username, "10.0.0.1")
    assert auth.unlock(st, "ANN") == 5
    throttle.admit(st, "ann", "10.0.0.1")
    refusal(throttle, st, "bob", "10.0.0.1")
    assert auth.unlock(st) == 6
    throttle.admit(st, "bob", "10.0.0.1")


def test_logged_throttlings_are_forgotten_once_ended_when_too_many(throttled):
    throttle, st, clock = throttled
    throttle.MAX_LOGGED = 2
    for address in ("10.0.0.1", "10.0.0.2"):
        for _ in range(5):
            throttle.admit(st, "ann", address)
        refusal(throttle, st, "ann", address)
    clock.now += 900
    for _ in range(5):
        throttle.admit(st, "ann", "10.0.0.3")
    refusal(throttle, st, "ann", "10.0.0.3")
    assert len(throttle._logged) == 1
