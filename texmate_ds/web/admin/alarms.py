"""Alarms, the outbox and the mailing lists in the admin (docs/web.md,
"Administration Control Panel").

* Alarms: every unit's, newest first (``before=ID`` pages on), filtered
  by unit, state (active, acknowledged) and date; each with how its
  messages went. Never added or changed here, but acknowledged (who,
  when, a note: ``alarms.change``) one by one on its page or selected
  in the list; deleted as samples are (`per_unit.UnitRows`), under
  ``ALLOW_ALARM_DELETION``.
* The outbox: every message with its state (queued, sent, failed),
  attempts and the server's last reply; "retry" queues the selected
  again (``outbox.change``).
* Mailing lists: a row per unit, its form the users (with an email
  address) its alarms are mailed to, and "send a test message" to the
  selected lists' people.
"""

import collections
from urllib.parse import urlencode

from texmate_ds import alarms, chores, times
from texmate_ds.web import app, forms, html, ranges
from texmate_ds.web.admin.options import Column, Filter, Listing, ModelAdmin, row_id
from texmate_ds.web.admin.per_unit import UnitRows
from texmate_ds.web.admin.views import record, selected

PAGE = 100
# An alarm as the list shows it: with its unit and its letters' states.
Shown = collections.namedtuple("Shown", "id alarm unit letters")
STATES = (("active", "active"), ("acknowledged", "acknowledged"))


def _acknowledgeable(request, model, rows):
    if not model.allows(request, "change"):
        raise app.HTTPError(403, "you may not acknowledge alarms")
    return [row for row in rows if row.alarm.active]


class AlarmAdmin(UnitRows):
    name = "alarms"
    description = "What meters raised, and silent meters: acknowledge, delete."
    singular = "alarm"
    plural = "alarms"
    paging_params = ("before",)
    switch = "ALLOW_ALARM_DELETION"
    step = chores.DeleteAlarms
    no_unit = "any unit"
    actions = ("acknowledge_selected", "delete_selected")
    columns = (Column("received", "Received", None, "time"), Column("unit", "Unit"),
               Column("level", "Level", None, "num"), Column("kind", "Kind"),
               Column("data", "Data"), Column("state", "State"),
               Column("letters", "Messages"))

    def allows(self, request, action, row=None):
        if action == "change":       # acknowledging: the only change there is
            return request.access.may(self.name, action)
        return super().allows(request, action, row)

    def count_all(self, store, unit):
        return store.alarms.count(unit)

    def count_before(self, store, unit, before):
        return store.alarms.count(unit, before)

    def filters(self, request):
        return super().filters(request) + [
            Filter("state", "State", [("", "any")] + list(STATES))]

    def get(self, request, pk):
        if row_id(pk) is None:
            return None
        alarm = request.store.alarms.get(row_id(pk))
        unit = alarm and request.store.units.get_by_id(alarm.unit_id)
        if unit is None or not request.access.sees(unit):
            return None
        return self._shown(request, [alarm])[0]

    def _shown(self, request, alarms):
        st = request.store
        units = {}
        letters = st.outbox.states_of(a.id for a in alarms)
        shown = []
        for alarm in alarms:
            if alarm.unit_id not in units:
                units[alarm.unit_id] = st.units.get_by_id(alarm.unit_id)
            shown.append(Shown(alarm.id, alarm, units[alarm.unit_id],
                               letters.get(alarm.id, {})))
        return shown

    def describe(self, row):
        return "%s level %d at %s" % (row.unit.code, row.alarm.level,
                                      times.shown(row.alarm.received))

    def cell(self, request, row, name):
        alarm = row.alarm
        if name == "unit":
            return row.unit.code
        if name == "data":
            return "; ".join(alarm.data)[:80]
        if name == "state":
            return "active" if alarm.active else "acknowledged by %s" % alarm.acknowledged_by
        if name == "letters":
            return ", ".join("%d %s" % (n, state) for state, n in sorted(row.letters.items()))
        return getattr(alarm, name)

    def find(self, request, query):
        given = query.given
        unit = self._unit(request, given["unit"])
        state = given["state"]
        if state not in ("", "active", "acknowledged"):
            raise app.HTTPError(400, "state: active or acknowledged")
        before = given["before"]
        if before and row_id(before) is None:
            raise app.HTTPError(400, "before: an alarm id")
        alarms = request.store.alarms.find(
            unit=unit, active=None if not state else state == "active",
            seen_by=request.access.seen_by, before=int(before) if before else None,
            limit=PAGE + 1, start=ranges.moment(given, "from"),
            end=ranges.moment(given, "to", day_end=True))
        more = len(alarms) > PAGE
        alarms = alarms[:PAGE]
        return Listing(self._shown(request, alarms), None,
                       first=query.string(before=None) if before else None,
                       next=query.string(before=str(alarms[-1].id)) if more else None)

    def form(self, request, row):
        alarm = row.alarm
        fields = [forms.Text("unit", "Unit"), forms.Text("level", "Level"),
                  forms.Text("kind", "Kind"), forms.Text("received", "Received"),
                  forms.Text("meter_time", "The meter's time")] + [
            forms.Text("d%d" % i, "d%d" % i) for i in range(len(alarm.data))] + [
            forms.Text("state", "State"), forms.Text("messages", "Messages")]
        initial = {"unit": row.unit.described, "level": alarm.level, "kind": alarm.kind,
                   "received": times.shown(alarm.received),
                   "meter_time": times.text(alarm.meter_ts) if alarm.meter_ts else "",
                   "state": self.cell(request, row, "state") + (
                       " at %s%s" % (times.shown(alarm.acknowledged),
                                     ": " + alarm.note if alarm.note else "")
                       if not alarm.active else ""),
                   "messages": self.cell(request, row, "letters")}
        initial.update(("d%d" % i, item) for i, item in enumerate(alarm.data))
        return forms.Form(fields, initial)

    def links(self, request, row):
        links = [(request.url_for("admin_list", "outbox") + "?" + urlencode(
            {"alarm": row.id}), "Its messages")]
        if row.alarm.active and self.allows(request, "change"):
            links.insert(0, (request.url_for("admin_alarm_ack", str(row.id)), "Acknowledge"))
        return links

    def delete(self, request, row):
        request.store.alarms.delete_ids([row.id])

    def action_acknowledge_selected(self, request):
        rows = _acknowledgeable(request, self, selected(request, self))
        for row in rows:
            request.store.alarms.acknowledge(row.alarm, request.user.username)
            record(request, self, "change", row, {"acknowledged": [None, request.user.username]})
        html.flash(request, "%d alarm(s) acknowledged." % len(rows))
        return app.redirect(request.url_for("admin_list", self.name), 303)

    action_acknowledge_selected.permission = "change"
    action_acknowledge_selected.text = "Acknowledge the selected %(plural)s"


@app.page
def acknowledge(request, pk):
    """An alarm's acknowledgement: a note, then who and when."""
    model = request.site.admin.lookup("alarms")
    row = model.get(request, pk)
    if row is None:
        raise app.HTTPError(404, "no such alarm")
    if not _acknowledgeable(request, model, [row]):
        html.flash(request, "That alarm was acknowledged already.")
        return app.redirect(request.url_for("admin_change", "alarms", pk), 303)
    form = forms.Form([forms.Text("note", "Note", "what was done, for whoever looks next",
                                  max_length=500, multiline=True)])
    if request.method == "POST" and form.bind(request.form):
        request.store.alarms.acknowledge(row.alarm, request.user.username,
                                         form.cleaned["note"])
        record(request, model, "change", row, {"acknowledged": [None, request.user.username]},
               form.cleaned["note"])
        html.flash(request, "The alarm “%s” was acknowledged." % model.describe(row))
        return app.redirect(request.url_for("admin_list", "alarms"), 303)
    return html.render(request, "admin/acknowledge.html", "Acknowledge: %s"
                       % model.describe(row), model=model, fields=form.rows(), form=form,
                       key=row.id)


class OutboxAdmin(ModelAdmin):
    name = "outbox"
    description = "Every alarm message, sent or still to send, with the server's replies."
    singular = "outbox message"
    plural = "outbox messages"
    read_only = True
    actions = ("retry_selected",)
    paging_params = ("before",)
    columns = (Column("created", "Queued", None, "time"), Column("kind", "Kind"),
               Column("recipient", "To"), Column("subject", "Subject"),
               Column("state", "State"), Column("attempts", "Attempts", None, "num"),
               Column("last_attempt", "Last attempt", None, "time"),
               Column("last_reply", "Last reply"))

    def allows(self, request, action, row=None):
        return action not in ("add", "delete") and request.access.may(self.name, action)

    def filters(self, request):
        return [Filter("state", "State", [("", "any")] + [(s, s) for s in (
            "queued", "sent", "failed")]), Filter("alarm", "Alarm", None, "an alarm's id")]

    def get(self, request, pk):
        """The letter, if this visitor sees the unit of its alarm (a letter
        of no alarm, a test message, only with every unit)."""
        letter = None if row_id(pk) is None else request.store.outbox.get(row_id(pk))
        if letter is None or request.access.seen_by is None:
            return letter
        alarm = letter.alarm_id and request.store.alarms.get(letter.alarm_id)
        return letter if alarm and request.access.sees_id(alarm.unit_id) else None

    def describe(self, letter):
        return "%s to %s" % (letter.subject or letter.kind, letter.recipient)

    def cell(self, request, letter, name):
        value = getattr(letter, name)
        return value[:60] if isinstance(value, str) else value

    def find(self, request, query):
        given = query.given
        state, alarm, before = given["state"], given["alarm"], given["before"]
        if state not in ("", "queued", "sent", "failed"):
            raise app.HTTPError(400, "state: queued, sent or failed")
        for name, value in (("alarm", alarm), ("before", before)):
            if value and row_id(value) is None:
                raise app.HTTPError(400, "%s: an id" % name)
        letters = request.store.outbox.find(state or None, int(alarm) if alarm else None,
                                            int(before) if before else None, PAGE + 1,
                                            seen_by=request.access.seen_by)
        more = len(letters) > PAGE
        letters = letters[:PAGE]
        return Listing(letters, None, first=query.string(before=None) if before else None,
                       next=query.string(before=str(letters[-1].id)) if more else None)

    def form(self, request, letter):
        names = ("kind", "recipient", "subject", "body", "state", "attempts", "created",
                 "last_attempt", "next_attempt", "last_reply")
        fields = [forms.Text(name, name.replace("_", " ").capitalize(),
                             multiline=name == "body") for name in names]
        initial = {name: getattr(letter, name) for name in names}
        for name in ("created", "last_attempt", "next_attempt"):
            initial[name] = times.shown(initial[name]) if initial[name] else "—"
        attempts = request.store.outbox.attempts(letter)
        fields += [forms.Text("attempt%d" % number, "Attempt %d" % number)
                   for number in range(1, len(attempts) + 1)]
        initial.update(("attempt%d" % number, "%s, %s: %s" % (times.shown(at), state, reply))
                       for number, (at, state, reply) in enumerate(attempts, 1))
        return forms.Form(fields, initial)

    def links(self, request, letter):
        if letter.alarm_id is None:
            return []
        return [(request.url_for("admin_change", "alarms", str(letter.alarm_id)), "Its alarm")]

    def action_retry_selected(self, request):
        letters = [letter for letter in selected(request, self) if letter.state != "sent"]
        for letter in letters:
            request.store.outbox.retry(letter)
            record(request, self, "change", letter, {"state": [letter.state, "queued"]})
        html.flash(request, "%d message(s) queued again." % len(letters))
        return app.redirect(request.url_for("admin_list", self.name), 303)

    action_retry_selected.permission = "change"
    action_retry_selected.text = "Retry the selected %(plural)s"


MESSAGE_PARAMS = ("message_level", "message_subject", "message_body")
SUBJECT_MAX, BODY_MAX = 200, 10000


class Messages(forms.Field):
    """A unit's alarm messages as rows of a level (empty: every level), a
    subject and a body, a row for each message set and one more, blank,
    for a new one; a row whose subject and body are both empty is no
    message. `check(subject, body)` refuses a template that does not
    parse (ValueError saying which, the line and why)."""

    kind = "messages"
    lists = True

    def __init__(self, name, label, check, help=""):
        super().__init__(name, label, help)
        self.check = check

    def read(self, params):
        return {param: params.getlist(param) for param in MESSAGE_PARAMS}

    def clean(self, raw):
        rows = list(zip(*(raw[param] for param in MESSAGE_PARAMS)))
        messages, levels = [], set()
        for number, (level, subject, body) in enumerate(rows, 1):
            level, subject, body = level.strip(), subject.strip(), body.strip()
            if not subject and not body:
                continue
            if not (level == "" or (level.isdigit() and int(level) < 100)):
                raise forms.Invalid("message %d: the level is 0 to 99, or empty for every "
                                    "level" % number)
            level = int(level) if level else None
            if level in levels:
                raise forms.Invalid("message %d: a second message for %s" % (
                    number, "every level" if level is None else "level %d" % level))
            levels.add(level)
            if not subject or not body or len(subject) > SUBJECT_MAX or len(body) > BODY_MAX:
                raise forms.Invalid("message %d: a subject (%d characters at most) and a body "
                                    "(%d at most)" % (number, SUBJECT_MAX, BODY_MAX))
            try:
                self.check(subject, body)
            except ValueError as exc:
                raise forms.Invalid("message %d: %s" % (number, exc)) from None
            messages.append((level, subject, body))
        return tuple(messages)

    def shown(self, value):
        if isinstance(value, dict):     # as posted: shown again as typed
            rows = list(zip(*(value[param] for param in MESSAGE_PARAMS)))
        else:
            rows = [("" if level is None else str(level), subject, body)
                    for level, subject, body in value or ()]
            rows.append(("", "", ""))
        return [{"level": level, "subject": subject, "body": body}
                for level, subject, body in rows]


class MailingListAdmin(ModelAdmin):
    name = "mailinglists"
    description = "Who gets each unit's alarms by email; send a test message."
    singular = "mailing list"
    plural = "mailing lists"
    actions = ("send_test",)
    columns = (Column("code", "Unit", "code"), Column("name", "Name", "name"),
               Column("people", "People", None, "num"))
    search = "unit code or name"
    default_order = "code"

    def allows(self, request, action, row=None):
        # A list is a unit's: it comes and goes with it.
        return action not in ("add", "delete") and request.access.may(self.name, action)

    def get(self, request, pk):
        return request.site.admin.lookup("units").get(request, pk)

    def describe(self, unit):
        return unit.described

    def search_rows(self, request, query, offset, limit):
        total, listed = request.site.admin.lookup("units").search_rows(
            request, query, offset, limit)
        return total, [row.unit for row in listed]

    def cell(self, request, unit, name):
        if name == "people":
            return len(request.store.alarms.mailing_list(unit))
        return getattr(unit, name)

    def form(self, request, unit):
        st = request.store
        users = [(str(u.id), "%s <%s>" % (u.username, u.email))
                 for u in st.accounts.all_users() if u.email]
        return forms.Form(
            [forms.Many("users", "People", users,
                        "users with an email address; add addresses to users in Users"),
             Messages("messages", "Alarm messages", alarms.check_message,
                      "the subject and body of the email, per level, in the template "
                      "language: {{ unit }}, {{ unit.name }}, {{ level }}, {{ data.0 }}, "
                      "{{ received }}, {% if %}, {% for x in data %}; a level without one "
                      "takes the unit's message for every level, then the built-in one")],
            {"users": {str(i) for i in st.alarms.mailing_list(unit)},
             "messages": tuple((m.level, m.subject, m.body) for m in st.alarms.messages(unit))})

    def save(self, request, form, unit):
        st = request.store
        st.alarms.set_mailing_list(unit, [int(i) for i in form.cleaned["users"]])
        for message in st.alarms.messages(unit):
            st.alarms.delete_message(message.id)
        for level, subject, body in form.cleaned["messages"]:
            st.alarms.set_message(unit, level, subject, body)
        changes = form.changed()
        if "messages" in changes:   # a template is the admin's text: the log says which
            changes["messages"] = [sorted("every level" if m[0] is None else "level %d" % m[0]
                                          for m in values or ()) for values in
                                   changes["messages"]]
        return unit, changes

    def action_send_test(self, request):
        if not self.allows(request, "change"):
            raise app.HTTPError(403, "you may not send test messages")
        st = request.store
        sent = 0
        for unit in selected(request, self):
            for address in st.alarms.recipients(unit):
                st.outbox.add(None, "email", address, "Test message for %s" % unit.described,
                              "This is a test of the alarm email of unit %s, sent from the "
                              "administration panel by %s.\n" % (unit.described,
                                                                  request.user.username))
                sent += 1
        html.flash(request, "%d test message(s) queued: see the outbox." % sent)
        return app.redirect(request.url_for("admin_list", "outbox"), 303)

    action_send_test.permission = "change"
    action_send_test.text = "Send a test message to the selected %(plural)s"
