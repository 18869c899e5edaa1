-- 6: alarms and the messages that tell people of them. An alarm is what
-- a meter raised (`al`, kind 'meter') or what the server saw (a silent
-- meter: 'silent', and 'back' when its data resumed); it is active until
-- acknowledged. `data` is JSON: the list of the alarm's data items (text).
CREATE TABLE alarms (
    id INTEGER PRIMARY KEY,
    unit_id INTEGER NOT NULL REFERENCES units(id) ON DELETE CASCADE,
    kind TEXT NOT NULL DEFAULT 'meter',
    level INTEGER NOT NULL CHECK (level BETWEEN 0 AND 99),
    data TEXT NOT NULL DEFAULT '[]',
    meter_ts INTEGER,
    received INTEGER NOT NULL,
    acknowledged INTEGER,
    acknowledged_by TEXT NOT NULL DEFAULT '',
    note TEXT NOT NULL DEFAULT ''
);
CREATE INDEX alarms_unit_received ON alarms (unit_id, received);
CREATE INDEX alarms_active ON alarms (acknowledged, unit_id);
-- Alarm messages: a subject and a body template for a unit and a level;
-- level NULL is the unit's default for every level, unit_id NULL the
-- site's default. Templates are in the sandbox policy of templates.py.
CREATE TABLE alarm_messages (
    id INTEGER PRIMARY KEY,
    unit_id INTEGER REFERENCES units(id) ON DELETE CASCADE,
    level INTEGER CHECK (level BETWEEN 0 AND 99),
    subject TEXT NOT NULL,
    body TEXT NOT NULL,
    UNIQUE (unit_id, level)
);
-- A unit's mailing list: the users its alarms are mailed to.
CREATE TABLE mailing_list (
    unit_id INTEGER NOT NULL REFERENCES units(id) ON DELETE CASCADE,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    PRIMARY KEY (unit_id, user_id)
) WITHOUT ROWID;
CREATE INDEX mailing_list_user_id ON mailing_list (user_id);
-- The outbox: every message to send, written in the same transaction as
-- the alarm it tells of, sent by the mail service (mail.py) with retries.
-- state: queued, sent, failed. kind: email (recipient an address) or
-- webhook (recipient a URL, body the JSON to post).
CREATE TABLE outbox (
    id INTEGER PRIMARY KEY,
    alarm_id INTEGER REFERENCES alarms(id) ON DELETE SET NULL,
    kind TEXT NOT NULL,
    recipient TEXT NOT NULL,
    subject TEXT NOT NULL DEFAULT '',
    body TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'queued',
    created INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt INTEGER NOT NULL,
    last_attempt INTEGER,
    last_reply TEXT NOT NULL DEFAULT ''
);
CREATE INDEX outbox_due ON outbox (state, next_attempt);
CREATE INDEX outbox_alarm_id ON outbox (alarm_id);
-- Per unit: a webhook for its alarms, and the silent-meter alarm (raised
-- when no sample came for silent_minutes; silent_since: when it was);
-- last_received, when its newest upload came, by the server's clock
-- (last_ts is the meter's), kept with the counts.
ALTER TABLE units ADD COLUMN webhook_url TEXT NOT NULL DEFAULT '';
ALTER TABLE units ADD COLUMN silent_minutes INTEGER;
ALTER TABLE units ADD COLUMN silent_level INTEGER NOT NULL DEFAULT 1;
ALTER TABLE units ADD COLUMN silent_since INTEGER;
ALTER TABLE units ADD COLUMN last_received INTEGER;
UPDATE units SET last_received = (SELECT max(received) FROM samples WHERE samples.unit_id = units.id);
