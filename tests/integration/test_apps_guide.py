"""docs/apps.md is true: its TTP app, its HTTP app and its test, taken
from the page as a reader would copy them, run against the real server."""

import re
import subprocess
import sys
import urllib.request

from conftest import ROOT, child_env

GUIDE = (ROOT / "docs" / "apps.md").read_text()
BLOCKS = re.findall(r"```python\n(.*?)```", GUIDE, re.S)


def block(first_line):
    (found,) = [b for b in BLOCKS if b.startswith(first_line)]
    return found


def test_the_guides_ttp_and_http_apps_answer_as_it_says(server_factory):
    srv = server_factory("[ttpapps]\ngreet: on\ngreet.GREETING: good morning\n"
                         "[httpapps]\nhello: on\nhello.url: hello/\nhello.TITLE: Good morning\n",
                         start=False)
    for folder, name, first in (("TTPApps", "greet.py", '"""greet:'),
                                ("HTTPApps", "hello.py", '"""hello:')):
        (srv.dir / folder).mkdir()
        (srv.dir / folder / name).write_text(block(first))
    srv.add_unit("A1", "secret", 2)
    listed = srv.manage("apps").stdout
    assert "GREETING = good morning   (default hello)" in listed
    assert "TITLE = Good morning   (default Hello)" in listed
    srv.start()
    try:
        assert srv.ask("TTP /greet/A1 secret") == "OK good morning A1"
        assert srv.ask("TTP /greet/A1 wrong") == "402 Unauthorized"
        page = urllib.request.urlopen("http://127.0.0.1:%d/hello/" % srv.http_port, timeout=10)
        assert "<h1>Good morning, stranger</h1>" in page.read().decode()
    finally:
        srv.stop()


def test_the_guides_test_of_an_app_passes(tmp_path):
    (tmp_path / "TTPApps").mkdir()
    (tmp_path / "TTPApps" / "greet.py").write_text(block('"""greet:'))
    (tmp_path / "test_greet.py").write_text(block("import pathlib"))
    result = subprocess.run([sys.executable, "test_greet.py"], cwd=tmp_path, env=child_env(),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "OK" in result.stderr, result.stderr[-3000:]
