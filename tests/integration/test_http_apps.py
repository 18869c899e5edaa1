"""The site's own WSGI apps ([httpapps], from HTTP_APPS_DIR), mounted by
the real server at their URL prefixes beside the web UI; one without a url
loaded but not mapped; their options; who signed in, as the app sees it;
and every way a configuration of them can be wrong stops the start with a
clear message."""

import http.client
import json
import subprocess
import sys

import pytest

from conftest import BASE_CONF, Browser, child_env

HELLO = '''"""hello: says where it was mounted."""
import json


def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps([environ["SCRIPT_NAME"], environ["PATH_INFO"]]).encode()]
'''


def get(port, path):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", path)
    answer = conn.getresponse()
    result = answer.status, answer.read()
    conn.close()
    return result


def test_an_http_app_is_mounted_at_its_prefix(server_factory, tmp_path):
    apps = tmp_path / "HTTPApps"
    apps.mkdir()
    (apps / "hello.py").write_text(HELLO)
    srv = server_factory("HTTP_APPS_DIR: %s\n[httpapps]\nhello: on\nhello.url: tools/hello/\n"
                         % apps)
    for path, mounted in (("/tools/hello/x/y?z=1", ["/tools/hello", "/x/y"]),
                          ("/tools/hello", ["/tools/hello", ""])):
        status, body = get(srv.http_port, path)
        assert (status, json.loads(body)) == (200, mounted)
    assert get(srv.http_port, "/tools/hellox")[0] == 404   # not the app: the UI's 404
    assert get(srv.http_port, "/healthz") == (200, b"ok\n")
    assert "HTTP app hello: /tools/hello/" in srv.errors()


@pytest.mark.parametrize("conf, files, message", [
    ("[httpapps]\nhello: on\nhello.url: h/\n", {}, "there is no hello.py or hello/"),
    # Without a url it is loaded all the same, and checked.
    ("[httpapps]\nhello: on\n", {"hello.py": "x = 1\n"},
     "must define a WSGI callable named application"),
    ("[httpapps]\nhello: on\nhello.url: h/\n", {"hello.py": "x = 1\n"},
     "must define a WSGI callable named application"),
    ("[httpapps]\nhello: on\nhello.url: h/\n", {"hello.py": "import nothing_at_all\n"},
     "failed to import: ModuleNotFoundError"),
])
def test_a_wrong_http_app_stops_the_start(tmp_path, conf, files, message):
    apps = tmp_path / "HTTPApps"
    apps.mkdir()
    for name, text in files.items():
        (apps / name).write_text(text)
    (tmp_path / "txm.conf").write_text(BASE_CONF + "HTTP_APPS_DIR: %s\n" % apps + conf)
    for command in (["serve"], ["manage", "check"]):
        result = subprocess.run(
            [sys.executable, "-m", "texmate_ds", "--config", str(tmp_path / "txm.conf")]
            + command, cwd=tmp_path, env=child_env(), capture_output=True, text=True,
            timeout=60)
        assert result.returncode == 2, (command, result.stdout, result.stderr)
        assert message in result.stderr, (command, result.stderr)
    assert not (tmp_path / "db").exists()   # stopped before the database was touched


LOADED = '''"""loaded: an app with no url; leaves a mark when imported."""
import pathlib

pathlib.Path(__file__).with_name("imported").write_text("yes")


def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"mapped after all"]
'''


def test_an_http_app_without_url_is_loaded_and_not_mapped(server_factory, tmp_path):
    apps = tmp_path / "HTTPApps"
    apps.mkdir()
    (apps / "loaded.py").write_text(LOADED)
    srv = server_factory("HTTP_APPS_DIR: %s\n[httpapps]\nloaded: on\n" % apps)
    assert (apps / "imported").read_text() == "yes"
    for path in ("/loaded/", "/loaded", "/loaded/x", "/HTTPApps/loaded/", "/x/loaded/"):
        status, body = get(srv.http_port, path)
        assert status == 404 and b"mapped after all" not in body, path
    assert "HTTP app loaded: loaded, not mapped: no url (%s)" % (apps / "loaded.py") \
        in srv.errors()
    listed = srv.manage("apps").stdout.split("HTTP apps")[1]
    assert "  loaded       on   (no url)" in listed
    assert "      loaded, not mapped: no url\n" in listed
    assert "HTTP apps: loaded (loaded, not mapped: no url)" in srv.manage("check").stdout


GREETER = '''"""greeter: greets with its options."""
import json

OPTIONS = {
    "GREETING": ("hello", "what it says"),
    "TIMES": (1, "how many times"),
    "LOUD": (False, "in capitals"),
}


def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "application/json")])
    text = " ".join([options["GREETING"]] * options["TIMES"])
    return [json.dumps([text.upper() if options["LOUD"] else text, dict(options)]).encode()]
'''


def test_an_http_app_gets_its_options(server_factory, tmp_path):
    apps = tmp_path / "HTTPApps"
    apps.mkdir()
    (apps / "greeter.py").write_text(GREETER)
    srv = server_factory("HTTP_APPS_DIR: %s\n[httpapps]\ngreeter: on\ngreeter.url: hi/\n"
                         "greeter.greeting: good day\ngreeter.LOUD: yes\n" % apps)
    status, body = get(srv.http_port, "/hi/")
    assert (status, json.loads(body)) == (200, [
        "GOOD DAY", {"GREETING": "good day", "TIMES": 1, "LOUD": True}])
    listed = srv.manage("apps").stdout
    assert ("      GREETING = good day   (default hello)   what it says\n"
            "      TIMES = 1   (default 1)   how many times\n"
            "      LOUD = yes   (default no)   in capitals\n") in listed


WHO = '''"""who: tells who the server says signed in."""
import json

from texmate_ds.models import Unit


def application(environ, start_response):
    user = environ["texmate.user"]
    seen = None
    if user is not None:
        try:
            user.is_superuser = True
            writable = True
        except AttributeError:
            writable = False
        seen = {"username": user.username, "is_staff": user.is_staff,
                "is_superuser": user.is_superuser,
                "may_change_units": user.may("units", "change"),
                "sees_A1": user.sees(Unit.objects.get(code="A1")),
                "writable": writable,
                "hash_anywhere": any("pbkdf2" in repr(getattr(user, name, ""))
                                     for name in dir(user))}
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(seen).encode()]
'''


def test_an_http_app_is_told_who_signed_in(server_factory, tmp_path):
    apps = tmp_path / "HTTPApps"
    apps.mkdir()
    (apps / "who.py").write_text(WHO)
    srv = server_factory("HTTP_APPS_DIR: %s\n[httpapps]\nwho: on\nwho.url: who/\n" % apps,
                         start=False)
    srv.add_unit("A1", "k1", 1)
    for user, flag in (("ann", "--staff"), ("boss", "--superuser")):
        srv.manage("adduser", user, flag, "--noinput",
                   env=dict(child_env(), TXM_PASSWORD="pw of " + user))
    srv.start()

    anonymous = Browser(srv.http_port)
    answer = anonymous.get("/who/")
    assert (answer.status, json.loads(answer.body)) == (200, None)

    ann = Browser(srv.http_port)
    assert ann.sign_in("ann", "pw of ann").status == 303
    assert json.loads(ann.get("/who/x").body) == {
        "username": "ann", "is_staff": True, "is_superuser": False,
        "may_change_units": False, "sees_A1": False, "writable": False,
        "hash_anywhere": False}
    boss = Browser(srv.http_port)
    assert boss.sign_in("boss", "pw of boss").status == 303
    assert json.loads(boss.get("/who/").body) == {
        "username": "boss", "is_staff": False, "is_superuser": True,
        "may_change_units": True, "sees_A1": True, "writable": False,
        "hash_anywhere": False}
    # Signed in with the default password, the Administrator is no one to
    # an app until it is changed, as the UI lets them no further either.
    admin = Browser(srv.http_port)
    assert admin.sign_in("Administrator", "admin").header("Location").startswith("/password/")
    assert json.loads(admin.get("/who/").body) is None
    # Signed out: anonymous again.
    ann.post("/logout/", {"csrf_token": ann.csrf("/")})
    assert json.loads(ann.get("/who/").body) is None
