"""alarms.py: messages rendered through the real sandbox, their fallbacks,
the admin's check, the letters an alarm queues (with the alarm, or not at
all), the webhook's JSON, and the silent-meter check over a real store."""

import json
import logging
import types

import pytest

from texmate_ds import alarms, events, store, times
from texmate_ds.store.alarms import Message


def fresh():
    db = store.Database(":memory:")
    db.migrate()
    unit = db.units.add("A1", "k", 3, name="Pump 1", description="north well",
                        field_names=("Flow", "", "Level"))
    db.commit()
    return db, unit


def an_alarm(db, unit, level=2, data=("2009-1-16 15:30:45", "high", "11.5"), kind="meter"):
    return db.alarms.add(unit, level, data, meter_ts=alarms.meter_time(data), kind=kind,
                         received=times.parse("2024-03-01 08:15:30.25"))


def message(subject, body="-"):
    return Message(None, None, None, subject, body)


def rendered(subject, body="-", data=("2009-1-16 15:30:45", "high", "11.5"), kind="meter"):
    db, unit = fresh()
    return alarms.render(message(subject, body), unit, an_alarm(db, unit, data=data, kind=kind))


# -- what a message may use ------------------------------------------------------

@pytest.mark.parametrize("source, text", [
    ("{{ level }}", "2"),
    ("{{ unit }}", "A1"),
    ("{{ unit.code }}/{{ unit.name }}/{{ unit.description }}", "A1/Pump 1/north well"),
    ("{{ unit.fields|join:', ' }}", "Flow, L2, Level"),
    ("{{ unit.fields.2 }} {{ unit.fields|length }}", "Level 3"),
    ("{{ data.0 }} {{ data.1 }} [{{ data.7 }}]", "2009-1-16 15:30:45 high []"),
    ("{{ data }}", "['2009-1-16 15:30:45', 'high', '11.5']"),
    ("{{ data|length }} {{ data|join:'|' }}", "3 2009-1-16 15:30:45|high|11.5"),
    ("{{ received }}", "2024-03-01 08:15:30"),
    ("{{ received|date:'d.m.Y H\\hi' }}", "01.03.2024 08h15"),
    ("{{ data.0|date:'Y-m-d H:i:s' }} {{ data.0|date }}", "2009-01-16 15:30:45 2009-01-16 15:30:45"),
    ("{{ kind }} {{ kind|upper }} {{ unit.name|lower }}", "meter METER pump 1"),
    ("{{ data.2|floatformat:2 }} {{ data.2|floatformat }}", "11.50 11.5"),
    ("{{ data.9|default:'none' }} {{ data.1|default:'none' }}", "none high"),
    ("{{ level|yesno:'raised,cleared' }}", "raised"),
    ("{{ unit.name|urlencode }}", "Pump%201"),
    ("{% if level > 1 %}high{% elif level == 1 %}one{% else %}low{% endif %}", "high"),
    ("{% if 'high' in data and not data.5 %}yes{% endif %}", "yes"),
    ("{% if kind != 'meter' or level >= 99 %}x{% else %}meter{% endif %}", "meter"),
    ("{% if data|length <= 3 %}few{% endif %}", "few"),
    ("{% for d in data %}{{ forloop.counter }}:{{ d }}{% if not forloop.last %}, {% endif %}"
     "{% endfor %}", "1:2009-1-16 15:30:45, 2:high, 3:11.5"),
    ("{% for f in unit.fields %}{% if forloop.first %}{{ f }}{% endif %}{% endfor %}", "Flow"),
    ("{% for x in data.5 %}{{ x }}{% empty %}nothing{% endfor %}", "nothing"),
    ("a{# a comment #}b", "ab"),
    ("{{ 'literal' }} {{ 12 }} {{ True }}", "literal 12 True"),
])
def test_every_construct_renders_in_a_subject_and_a_body(source, text):
    subject, body = rendered(source, source)
    assert body == text
    assert subject == " ".join(text.split())


def test_the_manuals_example():
    example = "{% if data.0 %}The localtime for this Alarm was {{ data.0 }}{% endif %}"
    alarms.check_message("Alarm {{ level }} from {{ unit.name }}", example)
    assert rendered("s", example)[1] == "The localtime for this Alarm was 2009-1-16 15:30:45"
    assert rendered("s", example, data=())[1] == ""


def test_a_subject_is_one_line_and_never_empty():
    subject, body = rendered("  {{ unit }}\n  level\t{{ level }}\n", "line 1\nline 2\n")
    assert subject == "A1 level 2"
    assert body == "line 1\nline 2\n"
    assert rendered("{% if data.9 %}x{% endif %}")[0] == \
        "Alarm level 2 from A1 (Pump 1) at 2024-03-01 08:15:30"


# -- the built-in message ----------------------------------------------------------

def test_the_built_in_message_names_unit_level_time_and_every_item():
    db, unit = fresh()
    subject, body = alarms.render(None, unit, an_alarm(db, unit))
    assert subject == "Alarm level 2 from A1 (Pump 1) at 2024-03-01 08:15:30"
    assert body == ("Unit A1 (Pump 1) raised an alarm at level 2.\n\n"
                    "Received: 2024-03-01 08:15:30 (server time)\n"
                    "Meter time: 2009-01-16 15:30:45\n"
                    "Data:\n  d0: 2009-1-16 15:30:45\n  d1: high\n  d2: 11.5\n")
    bare = db.units.add("B7", "k", 1)
    subject, body = alarms.render(None, bare, an_alarm(db, bare, level=0, data=("no time",)))
    assert subject == "Alarm level 0 from B7 at 2024-03-01 08:15:30"
    assert "Meter time" not in body and "  d0: no time\n" in body
    assert alarms.render(None, bare, an_alarm(db, bare, data=()))[1].endswith("Data: none\n")


def test_the_built_in_messages_of_silent_and_back():
    db, unit = fresh()
    silent = an_alarm(db, unit, level=1, data=("no data since x",), kind="silent")
    back = an_alarm(db, unit, level=1, data=("data again at y",), kind="back")
    assert alarms.render(None, unit, silent)[0] == \
        "Silent meter A1 (Pump 1): level 1 alarm at 2024-03-01 08:15:30"
    assert alarms.render(None, unit, silent)[1].startswith(
        "Unit A1 (Pump 1) has gone silent (a level 1 alarm).\n")
    assert alarms.render(None, unit, back)[0] == \
        "A1 (Pump 1) is back online: level 1 at 2024-03-01 08:15:30"
    assert rendered("{{ kind }}", kind="silent")[0] == "silent"


# -- a template never fails an alarm -----------------------------------------------

def test_a_render_past_the_budget_falls_back_and_is_logged(caplog):
    loops = "{% for a in data %}{% for b in data %}{% for c in data %}" \
            "{% for d in data %}.{% endfor %}{% endfor %}{% endfor %}{% endfor %}"
    db, unit = fresh()
    alarm = an_alarm(db, unit, data=tuple("0123456789"))   # 10,000 iterations
    with caplog.at_level(logging.WARNING, "texmate_ds.alarms"):
        subject, body = alarms.render(message("Level {{ level }}", loops), unit, alarm)
    assert subject == "Level 2"                            # the part that worked stays
    assert body == alarms.default_body(unit, alarm)
    assert "unit A1, level 2: the body of its alarm message failed (TemplateLimitError: " \
           "more than 1000 loop iterations); the built-in body is sent instead" in caplog.text
    big = "{% for a in data %}" + "x" * 7000 + "{% endfor %}"      # 70,000 characters
    assert alarms.render(message(big, "ok"), unit, alarm) == (
        alarms.default_subject(unit, alarm), "ok")


def test_a_stored_message_that_does_not_parse_falls_back(caplog):
    db, unit = fresh()
    alarm = an_alarm(db, unit)
    with caplog.at_level(logging.WARNING, "texmate_ds.alarms"):
        subject, body = alarms.render(message("{{ level", "{% if %}"), unit, alarm)
    assert (subject, body) == (alarms.default_subject(unit, alarm),
                               alarms.default_body(unit, alarm))
    assert "the subject of its alarm message failed (TemplateSyntaxError: line 1: {{ is " \
           "never closed by }})" in caplog.text
    assert "the body of its alarm message failed (TemplateSyntaxError" in caplog.text


def test_any_failure_falls_back_and_is_logged_escaped(caplog, monkeypatch):
    class Broken:
        def render(self, names):
            raise RuntimeError("odd \x1b[2J\nnext line " + "x" * 400)
    monkeypatch.setattr(alarms, "_compiled", lambda source: Broken())
    db, unit = fresh()
    alarm = an_alarm(db, unit)
    with caplog.at_level(logging.WARNING, "texmate_ds.alarms"):
        assert alarms.render(message("s", "b"), unit, alarm) == (
            alarms.default_subject(unit, alarm), alarms.default_body(unit, alarm))
    assert "(RuntimeError: odd \\x1b[2J\\nnext line xxx" in caplog.text
    assert "\x1b" not in caplog.text and "x" * 301 not in caplog.text


# -- the admin's check -------------------------------------------------------------

@pytest.mark.parametrize("subject, body, template, line, reason", [
    ("{% if level %}", "ok", "subject", 1, "{% if %} is never closed"),
    ("ok", "Dear all,\n\n{{ data.0 }\nbye", "body", 3, "{{ is never closed by }}"),
    ("ok", "a\nb\n{{ user.password }}", "body", 3,
     "unknown name 'user' (this template may use data, kind, level, received, unit)"),
    ("{{ unit._meta }}", "ok", "subject", 1, "private"),
    ("ok", "{{ data|safe }}", "body", 1, "the filter 'safe' is not allowed here"),
    ("ok", '{% include "x.html" %}', "body", 1, "{% include %} is not allowed here"),
    ("ok", "{{ unit.name|date:'Q' }}", "body", 1, "Q"),
    ("ok", "x" * 65537, "body", 1, "longer than 65536 characters"),
])
def test_check_message_names_the_template_the_line_and_the_reason(subject, body, template,
                                                                     line, reason):
    with pytest.raises(alarms.MessageError) as caught:
        alarms.check_message(subject, body)
    error = caught.value
    assert isinstance(error, ValueError)
    assert (error.template, error.line) == (template, line)
    assert reason in error.reason
    assert str(error).startswith("%s, line %d: " % (template, line))


def test_check_message_takes_what_renders():
    alarms.check_message("{{ unit }} {{ level }} {{ kind }}",
                         "{{ received }}{% for d in data %}{{ d }}{% endfor %}")


# -- raising: the alarm and its letters, together ----------------------------------

def with_list(db, unit, addresses):
    ids = [db.accounts.add_user("user%d" % n, "x", email=address).id
           for n, address in enumerate(addresses)]
    db.alarms.set_mailing_list(unit, ids)


def test_an_alarm_queues_an_email_per_address_and_its_webhook():
    db, unit = fresh()
    with_list(db, unit, ["bo@x.org", "ann@x.org", ""])
    unit = db.units.change(unit, webhook_url="https://hooks.example/T1")
    db.alarms.set_message(unit, 2, "{{ unit.name }}: level {{ level }}",
                          "{% if data.0 %}The localtime for this Alarm was {{ data.0 }}{% endif %}")
    data = ["2009-1-16 15:30:45", "high"]
    alarm = alarms.raise_alarm(db, unit, 2, data, meter_ts=alarms.meter_time(data))
    db.commit()
    assert alarm == db.alarms.get(alarm.id)
    assert (alarm.unit_id, alarm.kind, alarm.level, alarm.data, alarm.meter_ts) == (
        unit.id, "meter", 2, ("2009-1-16 15:30:45", "high"), times.parse("2009-1-16 15:30:45"))
    letters = sorted(db.outbox.find(alarm_id=alarm.id), key=lambda letter: letter.id)
    assert [(l.kind, l.recipient, l.subject, l.state) for l in letters] == [
        ("email", "ann@x.org", "Pump 1: level 2", "queued"),
        ("email", "bo@x.org", "Pump 1: level 2", "queued"),
        ("webhook", "https://hooks.example/T1", "Pump 1: level 2", "queued")]
    assert letters[0].body == "The localtime for this Alarm was 2009-1-16 15:30:45"
    assert json.loads(letters[2].body) == {
        "id": alarm.id, "unit": {"id": unit.id, "code": "A1", "name": "Pump 1"},
        "kind": "meter", "level": 2, "data": ["2009-1-16 15:30:45", "high"],
        "meter_time": "2009-01-16 15:30:45", "received": times.text(alarm.received),
        "text": "Pump 1: level 2"}


def test_the_webhook_json_keeps_text_as_sent_and_null_without_a_meter_time():
    db, unit = fresh()
    alarm = an_alarm(db, unit, data=('say "hi" \\ ✓', ""))
    body = json.loads(alarms.webhook_body(unit, alarm, "subject"))
    assert body["data"] == ['say "hi" \\ ✓', ""] and body["meter_time"] is None
    assert body["received"] == "2024-03-01 08:15:30.250000"


def test_no_list_and_no_webhook_queue_nothing():
    db, unit = fresh()
    alarm = alarms.raise_alarm(db, unit, 0, [])
    assert db.outbox.find(alarm_id=alarm.id) == []
    assert alarm.data == () and alarm.meter_ts is None


def test_an_alarm_whose_letters_fail_leaves_nothing_and_the_transaction_goes_on(monkeypatch):
    db, unit = fresh()
    with_list(db, unit, ["ann@x.org", "bo@x.org"])
    db.samples.add(unit, [(1, (1.0, 2.0, 3.0))])        # someone else's write, same transaction
    added = []

    def add(*args):
        if added:
            raise store.StoreError("disk full")
        added.append(args)
        return real(*args)
    real = db.outbox.add
    monkeypatch.setattr(db.outbox, "add", add)
    with pytest.raises(store.StoreError):
        alarms.raise_alarm(db, unit, 1, ["x"])
    db.commit()
    assert db.alarms.count(unit) == 0 and db.outbox.counts() == {}
    assert db.samples.count(unit) == 1


def test_the_mail_service_is_woken_after_a_commit_that_queued_letters_only():
    db, unit = fresh()
    with_list(db, unit, ["ann@x.org"])
    db.commit()
    woken = []
    db.outbox.on_queued.append(lambda: woken.append(db.outbox.counts()))
    alarms.raise_alarm(db, unit, 1, [])
    assert woken == []                                  # not before the commit
    db.commit()
    assert woken == [{"queued": 1}]                     # after it: the letter is there to read
    db.commit()
    alarms.raise_alarm(db, db.units.add("B7", "k", 1), 1, [])     # B7 has no list
    db.commit()
    alarms.raise_alarm(db, unit, 1, [])
    db.rollback()
    assert woken == [{"queued": 1}]
    db.outbox.retry(db.outbox.find()[0])
    db.commit()
    assert len(woken) == 2


def test_a_failing_wake_up_is_logged_and_the_commit_stands(caplog):
    db, unit = fresh()
    with_list(db, unit, ["ann@x.org"])

    def broken():
        raise RuntimeError("no mail service")
    db.outbox.on_queued.append(broken)
    alarms.raise_alarm(db, unit, 1, [])
    db.commit()
    assert "an outbox wake-up hook failed" in caplog.text
    assert db.outbox.counts() == {"queued": 1} and not db.in_transaction


@pytest.mark.parametrize("data, ts", [
    (["2009-1-16 15:30:45"], times.parse("2009-1-16 15:30:45")),
    (["9-1-16 15:30:45.5", "x"], times.parse("2009-1-16 15:30:45.5")),
    (["2009-2-30 15:30:45"], None), (["high"], None), ([""], None), ([], None),
    ([" 2009-1-16 15:30:45"], None),
])
def test_d0_is_the_meters_time_when_it_reads_as_one(data, ts):
    assert alarms.meter_time(data) == ts


def test_announce_publishes_after_the_commit_and_only_to_listeners():
    db, unit = fresh()
    bus = events.Bus()
    waiting = []
    server = types.SimpleNamespace(store=db, events=bus, after_commit=waiting.append)  # as apps
    alarm = alarms.raise_alarm(db, unit, 3, ["2009-1-16 15:30:45"], meter_ts=5)
    alarms.announce(server, unit, alarm)
    assert waiting == []                                # nobody listens: nothing to do
    sub = bus.subscribe(["alarm"], {"A1"}, size=10)
    alarms.announce(server, unit, alarm)
    waiting[0](False)                                   # rolled back: never told
    assert sub.take() == []
    waiting[0](True)
    assert [e.data for e in sub.take()] == [{
        "unit": "A1", "id": alarm.id, "kind": "meter", "level": 3,
        "data": ("2009-1-16 15:30:45",), "meter_ts": 5, "received": alarm.received}]


# -- silent meters -----------------------------------------------------------------

class Site:
    """A store and the parts of a server the silent-meter check uses."""

    def __init__(self):
        self.store = db = store.Database(":memory:")
        db.migrate()
        self.later = []
        self.waiting = []
        self.bus = events.Bus()
        self.loop = types.SimpleNamespace(call_later=lambda delay, fn: self.later.append(fn),
                                          every=lambda interval, fn: None)
        self.server = types.SimpleNamespace(store=db, loop=self.loop, events=self.bus,
                                            after_commit=self.waiting.append)
        self.check = alarms.SilentMeters(self.server, 30)

    def unit(self, code, minutes, created_ago=0, level=1, **more):
        unit = self.store.units.add(code, "k", 1)
        unit = self.store.units.change(unit, silent_minutes=minutes, silent_level=level, **more)
        self.store.execute("UPDATE units SET created = ? WHERE id = ?",
                           (times.now() - created_ago, unit.id))
        return unit

    def kinds(self, raised):
        return sorted((self.store.units.get_by_id(a.unit_id).code, a.kind, a.level)
                      for a in raised)


def test_a_silent_meter_is_told_once_and_its_return_once():
    site = Site()
    db = site.store
    quiet = site.unit("Q1", 5, created_ago=6 * times.MINUTE, level=7)
    site.unit("N1", 5, created_ago=4 * times.MINUTE)             # not yet
    site.unit("F1", None, created_ago=60 * times.MINUTE)         # not watched
    site.unit("D1", 5, created_ago=60 * times.MINUTE, enabled=False)
    with_list(db, quiet, ["ann@x.org"])
    db.commit()
    raised = site.check.check()
    assert site.kinds(raised) == [("Q1", "silent", 7)]
    assert raised[0].data[1] == "expected every 5 minutes"
    assert raised[0].data[0].startswith("no data since ")
    assert [l.subject for l in db.outbox.find()] == [
        "Silent meter Q1: level 7 alarm at %s" % times.shown(raised[0].received)]
    db.commit()
    assert site.check.check() == []                              # told once
    db.samples.add(quiet, [(1, (1.0,))])                         # uploading again
    back = site.check.check()
    assert site.kinds(back) == [("Q1", "back", 7)]
    assert back[0].data[1] == "silent alarm raised at %s" % times.shown(raised[0].received)
    assert len(db.outbox.find()) == 2
    db.commit()
    assert site.check.check() == []
    assert site.later == []
    assert len(site.waiting) == 0                                # no subscriber to publish to


def test_a_meter_that_uploaded_recently_is_not_silent_and_one_silent_again_is():
    site = Site()
    db = site.store
    unit = site.unit("A1", 1, created_ago=10 * times.MINUTE)
    db.samples.add(unit, [(1, (1.0,))])
    assert site.check.check() == []                              # the tally counts before the look
    db.execute("UPDATE units SET last_received = ? WHERE id = ?",
               (times.now() - 2 * times.MINUTE, unit.id))
    assert site.kinds(site.check.check()) == [("A1", "silent", 1)]
    db.samples.add(unit, [(2, (1.0,))])
    assert site.kinds(site.check.check()) == [("A1", "back", 1)]
    db.execute("UPDATE units SET last_received = ? WHERE id = ?",
               (times.now() - 2 * times.MINUTE, unit.id))
    assert site.kinds(site.check.check()) == [("A1", "silent", 1)]


def test_the_check_publishes_its_alarms_after_the_commit():
    site = Site()
    site.unit("A1", 1, created_ago=2 * times.MINUTE)
    sub = site.bus.subscribe(["alarm"], size=10)
    raised = site.check.check()
    assert sub.take() == []
    for publish in site.waiting:
        publish(True)
    assert [(e.data["unit"], e.data["kind"], e.data["id"]) for e in sub.take()] == [
        ("A1", "silent", raised[0].id)]


def test_many_silent_meters_go_a_batch_a_turn():
    site = Site()
    for n in range(alarms.SILENT_BATCH * 2 + 50):
        site.unit("S%d" % n, 1, created_ago=2 * times.MINUTE)
    sizes = [len(site.check.check())]
    while site.later:                   # what the loop does: the next turn, after its commit
        sizes.append(len(site.later.pop()()))
    assert sizes == [100, 100, 50]
    assert site.store.alarms.count(site.store.units.get("S0")) == 1


def test_one_units_failure_is_logged_and_the_others_are_told(caplog, monkeypatch):
    site = Site()
    site.unit("A1", 1, created_ago=2 * times.MINUTE)
    site.unit("B7", 1, created_ago=2 * times.MINUTE)
    real = alarms.raise_alarm

    def failing(db, unit, *args, **kwargs):
        if unit.code == "A1":
            raise store.StoreError("no room")
        return real(db, unit, *args, **kwargs)
    monkeypatch.setattr(alarms, "raise_alarm", failing)
    assert site.kinds(site.check.check()) == [("B7", "silent", 1)]
    assert "the silent-meter alarm of unit A1 failed" in caplog.text
    monkeypatch.setattr(alarms, "raise_alarm", real)
    assert site.kinds(site.check.check()) == [("A1", "silent", 1)]     # tried again


def test_the_look_is_one_query_over_ten_thousand_units():
    site = Site()
    db = site.store
    db.executemany("INSERT INTO units (code, key, fields, created, silent_minutes, last_received)"
                   " VALUES (?, 'k', 1, ?, ?, ?)",
                   [("U%d" % n, times.now(), 5 if n % 2 else None, times.now())
                    for n in range(10000)])
    db.commit()
    calls = []
    real = db.all
    db.all = lambda *args: calls.append(args[0]) or real(*args)
    db.one = lambda *args: calls.append(args[0])
    assert site.check.check() == []
    assert len(calls) == 1 and calls[0].startswith("SELECT")
