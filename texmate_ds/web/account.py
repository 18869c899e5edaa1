"""The visitor's account: sign in (/login/), sign out (/logout/) and change
the password (/password/).

Signing in always starts a new session (a session made before sign-in is
never promoted) and answers 303 to ``next`` when it is a path on this
site, else to ``/``. A user marked "must change password" (the
Administrator with ``admin``) is sent to /password/ first; every page
sends them there until it is done. Changing the password ends the user's
other sessions. Refusals re-show the form with one line saying why: 400
for a form filled in wrongly, 403 for wrong credentials or a disabled
account, 429 with Retry-After when sign-ins are throttled.

Both forms check a password in three steps (`auth.Throttle.admit` on the
loop counts the attempt, `auth.verify` hashes on a worker, `auth.settle`
back on the loop), so the current password of the password form is
throttled like a sign-in. A refusal at the throttle is not logged each
time, only as a WARNING when a limit is first reached: a flood of guesses
makes one line, not one per guess.
"""

import logging

from texmate_ds import auth
from texmate_ds.web import app, html

log = logging.getLogger("texmate_ds.web")


def _after(request):
    return app.local_path(request.form.get("next") or request.query.get("next")
                          or request.url_for("home"))


def _login_form(request, status=200, error="", headers=()):
    return html.render(request, "login.html", "Sign in", status=status, headers=headers,
                       error=error, next=_after(request),
                       username=request.form.get("username", ""))


def _refusal(refused):
    """(status, reason, headers) of a form answering a SignInRefused."""
    if refused.retry_after:
        return 429, refused.reason, [("Retry-After", str(refused.retry_after))]
    return 403, refused.reason, ()


@app.public
def login(request):
    if request.method == "GET":
        return _login_form(request)
    username = request.form.get("username", "").strip()
    password = request.form.get("password", "")
    if not username or not password:
        return _login_form(request, 400, "enter a username and a password")
    try:
        attempt = _admit(request, username)
    except auth.SignInRefused as refused:
        return _login_form(request, *_refusal(refused))
    user = request.store.accounts.get_user_by_name(username)
    # The password hash takes 0.2 s: worked out off the loop.
    return app.Later(lambda store: auth.verify(password, user),
                     lambda verified: _signed_in(request, attempt, user, verified))


def _admit(request, username):
    """The throttle's attempt id; SignInRefused (logged when news) if throttled."""
    try:
        return request.site.throttle.admit(request.store, username, request.remote_addr)
    except auth.SignInRefused as refused:
        for line in refused.news:
            log.warning("%s", app.printable(line))
        raise


def _signed_in(request, attempt, user, verified):
    try:
        user = auth.settle(request.store, attempt, user, verified)
    except auth.SignInRefused as refused:
        log.info("sign-in refused for %s from %s: %s",
                 app.printable(request.form.get("username", "").strip()),
                 app.printable(request.remote_addr), refused.reason)
        return _login_form(request, *_refusal(refused))
    if request.session is not None:
        auth.end_session(request.store, request.session)
    days = request.settings.SESSION_DAYS
    request.set_cookie(app.SESSION_COOKIE, auth.start_session(request.store, user.id, days),
                       max_age=days * 86400)
    log.info("%s signed in from %s", app.printable(user.username),
             app.printable(request.remote_addr))
    if user.must_change_password:
        return app.redirect(app.with_next(request, "password", _after(request)), 303)
    return app.redirect(_after(request), 303)


@app.signed_in
def logout(request):
    if request.session is not None:
        auth.end_session(request.store, request.session)
    request.set_cookie(app.SESSION_COOKIE, "", max_age=0)
    return app.redirect(request.url_for("login"), 303)


def _password_form(request, status=200, error="", headers=()):
    return html.render(request, "password.html", "Change password", status=status,
                       headers=headers, error=error, next=_after(request))


@app.signed_in
def password(request):
    if request.method == "GET":
        return _password_form(request)
    form = request.form
    if form.get("new_password", "") != form.get("new_password2", ""):
        return _password_form(request, 400, "the two new passwords differ")
    new = form.get("new_password", "")
    try:
        auth.check_new_password(new)
        attempt = _admit(request, request.user.username)
    except ValueError as exc:
        return _password_form(request, 400, str(exc))
    except auth.SignInRefused as refused:
        return _password_form(request, *_refusal(refused))
    user = request.user
    # Both hashes take 0.2 s each: worked out off the loop.
    return app.Later(
        lambda store: (auth.verify(form.get("old_password", ""), user), auth.hash_password(new)),
        lambda hashes: _password_changed(request, attempt, *hashes))


def _password_changed(request, attempt, verified, new_hash):
    try:
        auth.settle(request.store, attempt, request.user, verified)
    except auth.SignInRefused:
        return _password_form(request, 403, "the current password is wrong")
    auth.change_password(request.store, request.session, new_hash)
    log.info("%s changed their password", app.printable(request.user.username))
    return app.redirect(_after(request), 303)


ROUTES = [
    app.Route("/login/", login, "login", methods=("GET", "POST")),
    app.Route("/logout/", logout, "logout", methods=("POST",)),
    app.Route("/password/", password, "password", methods=("GET", "POST")),
]
