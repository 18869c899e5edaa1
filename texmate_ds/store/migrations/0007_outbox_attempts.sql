-- 7: every attempt at sending a letter of the outbox, with the server's
-- reply (the outbox row keeps the last one; this, each one before it).
CREATE TABLE outbox_attempts (
    id INTEGER PRIMARY KEY,
    letter_id INTEGER NOT NULL REFERENCES outbox(id) ON DELETE CASCADE,
    at INTEGER NOT NULL,
    state TEXT NOT NULL,
    reply TEXT NOT NULL DEFAULT ''
);
CREATE INDEX outbox_attempts_letter_id ON outbox_attempts (letter_id, id);
