"""Apps' options: ``name.KEY: value`` lines in [ttpapps] and [httpapps],
checked against the ``OPTIONS`` an app declares, read from its source
without running it (plugins.py). Every mistake names its file, its line
and its key: txm.conf's for a wrong line, the app's for a wrong
declaration."""

import sys

import pytest

from texmate_ds import config, plugins
from texmate_ds.config import ConfigError
from texmate_ds.plugins import AppError, Option

# Any import of an app here would stop the test run: nothing is imported.
RELAY = '''"""relay: passes a unit's uploads on."""
raise SystemExit("imported")

OPTIONS = {
    "SOURCE": ("A1", "the unit whose uploads are relayed"),
    "OFFSET_SECONDS": (0, "added to each timestamp"),
    "STRICT": (False, "refuse what cannot be relayed"),
}
'''


@pytest.fixture
def site(tmp_path):
    """(folder with TTPApps/relay.py and HTTPApps/report.py, settings(text))."""
    for kind, name in (("TTPApps", "relay"), ("HTTPApps", "report")):
        (tmp_path / kind).mkdir()
        (tmp_path / kind / (name + ".py")).write_text(RELAY.replace("relay", name))

    def settings(text):
        return config.parse(str(tmp_path / "txm.conf"), text)
    return tmp_path, settings


def ttp_options(settings):
    return {app.name: app.options for app in plugins.find_ttp_apps(settings)}


def test_parsed_option_lines_keep_their_text_and_line(site):
    _, settings = site
    got = settings("[ttpapps]\nrelay: on\nrelay.source: B7\nRelay.Offset_Seconds: -5\n"
                   "[httpapps]\nreport: off\nreport.url: r/\nreport.TITLE: Plant 3\n")
    assert got.app_options == {"ttpapps": {"relay": {"SOURCE": "B7", "OFFSET_SECONDS": "-5"}},
                               "httpapps": {"report": {"TITLE": "Plant 3"}}}
    assert (got.lines[("ttpapps", "relay.SOURCE")],
            got.lines[("ttpapps", "relay.OFFSET_SECONDS")],
            got.lines[("httpapps", "report.TITLE")]) == (3, 4, 8)
    # Options are not apps: [ttpapps] has relay alone, [httpapps] report's url.
    assert got.ttpapps == {"ok": True, "relay": True}
    assert got.httpapps == {"report": {"on": False, "url": "/r/"}}
    assert got.describe()[-5:] == [
        "[ttpapps] relay.SOURCE = B7   (%s:3)" % got.config_path,
        "[ttpapps] relay.OFFSET_SECONDS = -5   (%s:4)" % got.config_path,
        "[httpapps] report = off   (%s:6)" % got.config_path,
        "[httpapps] report.url = /r/   (%s:7)" % got.config_path,
        "[httpapps] report.TITLE = Plant 3   (%s:8)" % got.config_path]


def test_an_app_gets_txm_confs_values_typed_and_the_defaults(site):
    _, settings = site
    options = ttp_options(settings("[ttpapps]\nrelay: on\nrelay.OFFSET_SECONDS: -3600\n"
                                   "relay.STRICT: on\n"))
    assert options["relay"] == [
        Option("SOURCE", "A1", "A1", "the unit whose uploads are relayed"),
        Option("OFFSET_SECONDS", -3600, 0, "added to each timestamp"),
        Option("STRICT", True, False, "refuse what cannot be relayed")]
    assert options["ok"] == []          # bundled apps declare none
    http = {app.name: app.options for app in plugins.find_http_apps(
        settings("[httpapps]\nreport: on\nreport.source: B7\n"))}
    assert [o.value for o in http["report"]] == ["B7", 0, False]


def test_an_app_turned_off_is_listed_with_its_declared_defaults(site):
    _, settings = site
    relay = [app for app in plugins.find_ttp_apps(settings("")) if app.name == "relay"][0]
    assert relay.options is None
    assert [(o.name, o.value) for o in relay.listed_options()] == [
        ("SOURCE", "A1"), ("OFFSET_SECONDS", 0), ("STRICT", False)]


@pytest.mark.parametrize("text, line, key, why", [
    ("[ttpapps]\nrelay: on\nrelay.SOURCES: B7\n", 3, "[ttpapps] relay.SOURCES",
     "unknown option: relay declares SOURCE, OFFSET_SECONDS, STRICT "
     "(did you mean relay.SOURCE?)"),
    ("[ttpapps]\nok.TIMEOUT: 5\n", 2, "[ttpapps] ok.TIMEOUT",
     "unknown option: ok declares none"),
    ("[ttpapps]\nrelay: on\n\nrelay.offset_seconds: 1.5\n", 4,
     "[ttpapps] relay.OFFSET_SECONDS", "expected an integer, got '1.5'"),
    ("[ttpapps]\nrelay: on\nrelay.STRICT: maybe\n", 3, "[ttpapps] relay.STRICT",
     "expected yes or no (or on/off, true/false, 1/0), got 'maybe'"),
    ("[ttpapps]\nrelay: on\nrelay.OFFSET_SECONDS: 5 # an hour\n", 3,
     "[ttpapps] relay.OFFSET_SECONDS",
     "expected an integer, got '5 # an hour' (comments must be on a line of their own)"),
    ("[ttpapps]\nrelay.SOURCE: B7\n", 2, "[ttpapps] relay.SOURCE",
     "relay is off, so its options are not used (turn it on, or remove the line)"),
    ("[ttpapps]\nrelay: off\nrelay.SOURCE: B7\n", 3, "[ttpapps] relay.SOURCE",
     "relay is off, so its options are not used (turn it on, or remove the line)"),
    ("[ttpapps]\nrelya.SOURCE: B7\n", 2, "[ttpapps] relya.SOURCE",
     "no app relya is bundled or in {dir}/TTPApps"),
    # TTP apps have no url: it would be an option, and none can be URL.
    ("[ttpapps]\nrelay: on\nrelay.url: r/\n", 3, "[ttpapps] relay.URL",
     "unknown option: relay declares SOURCE, OFFSET_SECONDS, STRICT"),
    ("[httpapps]\nreport: on\nreport.urls: r/\n", 3, "[httpapps] report.URLS",
     "unknown option: report declares SOURCE, OFFSET_SECONDS, STRICT "
     "(did you mean report.url?)"),
    ("[httpapps]\nreport: off\nreport.SOURCE: B7\n", 3, "[httpapps] report.SOURCE",
     "report is off, so its options are not used (turn it on, or remove the line)"),
    ("[httpapps]\nghost: on\nghost.SOURCE: B7\n", 3, "[httpapps] ghost.SOURCE",
     "no app ghost in {dir}/HTTPApps (no ghost.py or ghost/)"),
])
def test_a_wrong_option_line_names_txm_conf_its_line_and_key(site, text, line, key, why):
    folder, settings = site
    parsed = settings(text)
    find = plugins.find_http_apps if "[httpapps]" in text else plugins.find_ttp_apps
    with pytest.raises(ConfigError) as caught:
        find(parsed)
    assert str(caught.value) == "%s:%d: %s: %s" % (
        folder / "txm.conf", line, key, why.format(dir=folder))


def test_the_first_wrong_line_in_the_file_is_the_one_named(site):
    _, settings = site
    with pytest.raises(ConfigError) as caught:
        plugins.find_ttp_apps(settings("[ttpapps]\nrelay: on\nrelay.STRICT: x\n"
                                       "nosuch.A: 1\nrelay.SOURCES: x\n"))
    assert ":3: [ttpapps] relay.STRICT:" in str(caught.value)


@pytest.mark.parametrize("declaration, line, key, why", [
    ('OPTIONS = {"SOURCE": "A1"}', 1, "SOURCE",
     'expected (default, "help"): a literal default and its help text'),
    ('OPTIONS = {"SOURCE": ("A1",)}', 1, "SOURCE",
     'expected (default, "help"): a literal default and its help text'),
    ('OPTIONS = {"SOURCE": ("A1", 7)}', 1, "SOURCE",
     'expected (default, "help"): a literal default and its help text'),
    ('OPTIONS = {\n    "SOURCE": (UNIT, "the unit"),\n}', 2, "SOURCE",
     'expected (default, "help"): a literal default and its help text'),
    ('OPTIONS = {"RATE": (1.5, "per second")}', 1, "RATE",
     "a default must be a bool, an int or a str, as txm.conf's values are; got 1.5"),
    ('OPTIONS = {"RATE": (None, "per second")}', 1, "RATE",
     "a default must be a bool, an int or a str, as txm.conf's values are; got None"),
    ('OPTIONS = {"source": ("A1", "the unit")}', 1, "source",
     "expected a name of capitals, digits and _, as txm.conf's keys"),
    ('OPTIONS = {"A.B": ("A1", "the unit")}', 1, "A.B",
     "expected a name of capitals, digits and _, as txm.conf's keys"),
    ('OPTIONS = {1: ("A1", "the unit")}', 1, "1",
     "expected a name of capitals, digits and _, as txm.conf's keys"),
    ("OPTIONS = {**BASE}", 1, "**BASE",
     "expected a name of capitals, digits and _, as txm.conf's keys"),
    ('OPTIONS = {"URL": ("r/", "where")}', 1, "URL",
     "URL cannot be an option: in [httpapps] name.url is where an HTTP app is mounted"),
    ('OPTIONS = {"A": (1, "a"),\n           "A": (2, "a")}', 2, "A", "declared twice"),
])
def test_a_wrong_declaration_names_the_apps_file_its_line_and_key(site, declaration, line,
                                                                  key, why):
    folder, settings = site
    app = folder / "TTPApps" / "relay.py"
    app.write_text('"""relay"""\n' + declaration + "\n")
    with pytest.raises(AppError) as caught:
        plugins.find_ttp_apps(settings("[ttpapps]\nrelay: on\n"))
    assert str(caught.value) == "%s:%d: OPTIONS %s: %s" % (app, line + 1, key, why)


@pytest.mark.parametrize("declaration, line, why", [
    ("OPTIONS = dict(A=(1, 'a'))", 1,
     'expected OPTIONS = {"KEY": (default, "help"), ...}, a dict of literals'),
    ("OPTIONS: dict = {}", 1,
     'expected OPTIONS = {"KEY": (default, "help"), ...}, a dict of literals'),
    ("OPTIONS = OTHER = {}", 1,
     'expected OPTIONS = {"KEY": (default, "help"), ...}, a dict of literals'),
    ("OPTIONS = {}\nOPTIONS |= {'A': (1, 'a')}", 2,
     "set again (first on line 2); declare them once"),
])
def test_options_are_one_plain_assignment(site, declaration, line, why):
    folder, settings = site
    app = folder / "TTPApps" / "relay.py"
    app.write_text('"""relay"""\n' + declaration + "\n")
    with pytest.raises(AppError) as caught:
        plugins.find_ttp_apps(settings("[ttpapps]\nrelay: on\n"))
    assert str(caught.value) == "%s:%d: OPTIONS: %s" % (app, line + 1, why)


def test_a_wrong_declaration_of_an_app_turned_off_stops_nothing(site):
    folder, settings = site
    (folder / "TTPApps" / "relay.py").write_text('OPTIONS = {"x": (1, "")}\n')
    relay = [app for app in plugins.find_ttp_apps(settings("")) if app.name == "relay"][0]
    with pytest.raises(AppError):       # manage apps shows why, for this app alone
        relay.listed_options()


def test_option_types_follow_the_defaults_as_txm_confs_keys_do():
    assert config.converter_for(True)("off") is False
    assert config.converter_for(0)("-12") == -12
    assert config.converter_for("")("any text at all") == "any text at all"
    with pytest.raises(ValueError):
        config.converter_for(0)("1_000")


def test_a_loaded_app_reads_its_options_read_only(site):
    folder, settings = site
    (folder / "TTPApps" / "relay.py").write_text(
        'OPTIONS = {"SOURCE": ("A1", "the unit")}\n'
        'Extension = {"code": "rl", "producer": object}\n')
    extensions = plugins.load_ttp_apps(settings("[ttpapps]\nrelay: on\nrelay.SOURCE: B7\n"))
    module = sys.modules[extensions["rl"].app.spec.name]
    assert dict(module.options) == {"SOURCE": "B7"}
    with pytest.raises(TypeError):
        module.options["SOURCE"] = "C1"
