"""Sign-in throttling over the real server (README, "Sign-in throttling"):
what one address can try, that a flood from one address never locks the
same user out at another, that ``manage unlock`` clears a throttle while
the server runs, and what the log says.

Clients at different addresses are browsers whose connections are bound
to different loopback addresses (Linux routes all of 127.0.0.0/8 to lo).
Every sign-in here is a real PBKDF2 check of about 0.2 s on the server's
two workers, so the floods are as short as the limits allow.
"""

import threading

from conftest import Browser

# Password checks per username and address in 15 minutes (auth.Throttle).
LIMIT = 5
ADMIN = "Administrator"
RIGHT = "admin"  # the first start's default password


def flood(srv, source, username=ADMIN):
    """Wrong passwords from `source` until the server throttles; that 429."""
    browser = Browser(srv.http_port, source)
    for n in range(LIMIT):
        answer = browser.sign_in(username, "wrong-%d" % n)
        assert answer.status == 403 and "wrong username or password" in answer.body
    throttled = browser.sign_in(username, "wrong-again")
    assert throttled.status == 429, throttled.body
    return throttled


def signed_in(answer, browser):
    return answer.status == 303 and "txm_session" in browser.cookies


def test_concurrent_guesses_from_one_address_run_at_most_the_limit_of_checks(server_factory):
    srv = server_factory()
    count, right = 60, 37
    browsers = [Browser(srv.http_port) for _ in range(count)]
    # Each guess with its own CSRF token, fetched before any is sent.
    forms = [{"username": ADMIN, "password": RIGHT if i == right else "guess-%d" % i,
              "next": "/", "csrf_token": browser.csrf("/login/")}
             for i, browser in enumerate(browsers)]
    answers = [None] * count
    start = threading.Barrier(count)

    def guess(i):
        start.wait(30)
        answers[i] = browsers[i].post("/login/", forms[i])

    threads = [threading.Thread(target=guess, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert None not in answers
    wrong = [i for i, a in enumerate(answers) if a.status == 403]
    throttled = [i for i, a in enumerate(answers) if a.status == 429]
    assert len(wrong) <= LIMIT, [a.status for a in answers]
    assert all("wrong username or password" in answers[i].body for i in wrong)
    assert all(int(answers[i].header("Retry-After")) > 0 for i in throttled)
    # The right password was checked (and signed in) or throttled, like any other.
    assert answers[right].status in (303, 429)
    assert signed_in(answers[right], browsers[right]) == (answers[right].status == 303)
    assert sorted(wrong + throttled + [right] * (answers[right].status == 303)) \
        == list(range(count))


def test_a_flood_from_one_address_does_not_lock_the_user_out_elsewhere(server_factory):
    srv = server_factory()
    throttled = flood(srv, "127.0.0.2")
    assert 0 < int(throttled.header("Retry-After")) <= 15 * 60
    assert "too many failed sign-ins" in throttled.body
    # Even the right password, from the flooded address ...
    assert Browser(srv.http_port, "127.0.0.2").sign_in(ADMIN, RIGHT).status == 429
    # ... but the Administrator at another address signs in.
    elsewhere = Browser(srv.http_port, "127.0.0.3")
    assert signed_in(elsewhere.sign_in(ADMIN, RIGHT), elsewhere)


def test_manage_unlock_clears_throttles_while_the_server_runs(server_factory):
    srv = server_factory()
    flood(srv, "127.0.0.2")
    flood(srv, "127.0.0.2", "nobody")
    out = srv.manage("unlock", ADMIN).stdout
    assert ADMIN.lower() in out.lower()
    back = Browser(srv.http_port, "127.0.0.2")
    assert signed_in(back.sign_in(ADMIN, RIGHT), back)
    # Another username's throttle at that address is left alone ...
    assert Browser(srv.http_port, "127.0.0.2").sign_in("nobody", "x").status == 429
    # ... until `unlock` without a user clears every throttle.
    assert "every" in srv.manage("unlock").stdout
    assert Browser(srv.http_port, "127.0.0.2").sign_in("nobody", "x").status == 403


def test_throttling_is_logged_once_with_the_address(server_factory):
    srv = server_factory()
    flood(srv, "127.0.0.2")
    flood(srv, "127.0.0.4", "evil\nWARNING forged line")
    for _ in range(10):
        assert Browser(srv.http_port, "127.0.0.2").sign_in(ADMIN, "more").status == 429
    warnings = [line for line in srv.errors().splitlines() if " WARNING " in line]
    about = [line for line in warnings if "127.0.0.2" in line]
    assert len(about) == 1, warnings
    assert "throttled" in about[0] and ADMIN in about[0]
    # A username with a line break is escaped, never a line of its own.
    assert not any(line.startswith("WARNING forged") for line in srv.errors().splitlines())
    assert any(r"evil\nWARNING forged line" in line and "127.0.0.4" in line
               for line in warnings)
    # Each wrong password is a line; the throttled requests are not.
    from_there = [line for line in srv.errors().splitlines() if "127.0.0.2" in line]
    assert len(from_there) == LIMIT + 1, from_there


def test_the_password_form_counts_in_the_same_throttle(server_factory):
    srv = server_factory()
    browser = Browser(srv.http_port, "127.0.0.5")
    assert signed_in(browser.sign_in(ADMIN, RIGHT), browser)
    csrf = browser.csrf("/password/")
    change = {"old_password": "wrong", "new_password": "n3w-secret",
              "new_password2": "n3w-secret", "csrf_token": csrf, "next": "/"}
    for _ in range(LIMIT):
        assert browser.post("/password/", change).status == 403
    throttled = browser.post("/password/", dict(change, old_password=RIGHT))
    assert throttled.status == 429 and int(throttled.header("Retry-After")) > 0
    assert Browser(srv.http_port, "127.0.0.5").sign_in(ADMIN, RIGHT).status == 429
