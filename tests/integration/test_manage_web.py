"""The manage commands for the web UI, end to end: graph options on
``addunit``, ``adddisplay``, ``addtoken`` and ``revoketoken``."""

import json
import re

import pytest

from texmate_ds import auth

from conftest import child_env


@pytest.fixture
def srv(server_factory):
    return server_factory(start=False)


def manage(srv, *args, check=True):
    return srv.manage(*args, check=check, env=child_env(), input="")


def refused(result, words):
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert words in result.stderr, result.stderr


def test_addunit_takes_graph_options(srv):
    manage(srv, "addunit", "A1", "k", "--fields", "4", "--graph-size", "640x200",
           "--axis", "Flow: l/s:1,2", "--axis", "Pressure:3")
    manage(srv, "addunit", "B7", "k", "--fields", "2")
    rows = dict((code, (w, h, json.loads(axes))) for code, w, h, axes in srv.query(
        "SELECT code, graph_width, graph_height, graph_axes FROM units"))
    assert rows == {"A1": (640, 200, [{"label": "Flow: l/s", "fields": [1, 2]},
                                      {"label": "Pressure", "fields": [3]}]),
                    "B7": (800, 300, [])}


@pytest.mark.parametrize("args, words", [
    (("--graph-size", "640"), "WIDTHxHEIGHT"),
    (("--graph-size", "20x20"), "100 to 4000 pixels"),
    (("--axis", "Flow"), "NAME:N"),
    (("--axis", "Flow:1,x"), "NAME:N"),
    (("--axis", "Flow:5"), "field numbers from 1 to 4"),
])
def test_addunit_refuses_bad_graph_options_and_adds_nothing(srv, args, words):
    manage(srv, "syncdb")
    refused(manage(srv, "addunit", "A1", "k", "--fields", "4", *args, check=False), words)
    assert srv.query("SELECT count(*) FROM units") == [(0,)]


def test_adddisplay(srv):
    manage(srv, "addunit", "A1", "k", "--fields", "4")
    manage(srv, "addunit", "B7", "k", "--fields", "2")
    out = manage(srv, "adddisplay", "Plant", "--refresh", "5",
                 "--channels", "A1:1,2", "--channels", "B7:2").stdout
    assert "/views/1/" in out
    assert srv.query("SELECT name, refresh FROM displays") == [("Plant", 5)]
    assert srv.query("SELECT u.code, c.field FROM display_channels c JOIN units u"
                      " ON u.id = c.unit_id ORDER BY c.position") == [
        ("A1", 1), ("A1", 2), ("B7", 2)]


@pytest.mark.parametrize("args, words", [
    (("--channels", "A1:5"), "fields 1 to 4, not 5"),
    (("--channels", "Z9:1"), "no unit 'Z9'"),
    (("--channels", "A1:1", "--channels", "A1:1"), "named twice"),
    (("--channels", "A1"), "NAME:N"),
    (("--channels", "A1:1", "--refresh", "0"), "refresh of 1 s or more"),
])
def test_adddisplay_refusals_add_nothing(srv, args, words):
    manage(srv, "addunit", "A1", "k", "--fields", "4")
    refused(manage(srv, "adddisplay", "Plant", *args, check=False), words)
    assert srv.query("SELECT count(*) FROM displays") == [(0,)]


def test_addtoken_prints_the_token_once_and_stores_its_hash(srv):
    manage(srv, "syncdb")
    made = manage(srv, "addtoken", "Administrator", "--name", "prometheus")
    token = made.stdout.strip()
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", token)
    assert "shown only this once" in made.stderr
    assert srv.query("SELECT name, token_hash FROM api_tokens") == [
        ("prometheus", auth.digest(token))]
    refused(manage(srv, "addtoken", "Administrator", "--name", "prometheus", check=False),
            "already a token named 'prometheus'")
    refused(manage(srv, "addtoken", "nobody", check=False), "no user 'nobody'")
    manage(srv, "revoketoken", "Administrator", "prometheus")
    assert srv.query("SELECT count(*) FROM api_tokens") == [(0,)]
    refused(manage(srv, "revoketoken", "Administrator", "prometheus", check=False),
            "no token named 'prometheus'")
