-- 4: the action log (store.actionlog): who added, changed or deleted what,
-- and when, written in the same transaction as the change it records.
-- `changes` is JSON: {"field": [old, new]}, a secret as "(changed)".
CREATE TABLE action_log (
    id INTEGER PRIMARY KEY,
    at INTEGER NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    model TEXT NOT NULL,
    object_id TEXT NOT NULL,
    object_repr TEXT NOT NULL DEFAULT '',
    changes TEXT NOT NULL DEFAULT '{}',
    message TEXT NOT NULL DEFAULT ''
);
CREATE INDEX action_log_at ON action_log (at);
CREATE INDEX action_log_object ON action_log (model, object_id);
