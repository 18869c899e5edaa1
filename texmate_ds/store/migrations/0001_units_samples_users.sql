-- 1: units, samples, dl cursors, users.
CREATE TABLE units (
    id INTEGER PRIMARY KEY,
    code TEXT NOT NULL UNIQUE,
    key TEXT NOT NULL,
    name TEXT NOT NULL DEFAULT '',
    description TEXT NOT NULL DEFAULT '',
    fields INTEGER NOT NULL CHECK (fields BETWEEN 1 AND 32),
    field_names TEXT NOT NULL DEFAULT '',
    enabled INTEGER NOT NULL DEFAULT 1,
    source_id INTEGER REFERENCES units(id) ON DELETE SET NULL,
    created INTEGER NOT NULL
);
CREATE TABLE unit_reads (
    reader_id INTEGER NOT NULL REFERENCES units(id) ON DELETE CASCADE,
    source_id INTEGER NOT NULL REFERENCES units(id) ON DELETE CASCADE,
    PRIMARY KEY (reader_id, source_id)
) WITHOUT ROWID;
-- Timestamps are the meter's clock in integer microseconds; a value per
-- field in v1..v32 (NULL: empty), so statistics are SQL aggregates.
CREATE TABLE samples (
    id INTEGER PRIMARY KEY,
    unit_id INTEGER NOT NULL REFERENCES units(id) ON DELETE CASCADE,
    ts INTEGER NOT NULL,
    received INTEGER NOT NULL,
    v1 REAL,
    v2 REAL,
    v3 REAL,
    v4 REAL,
    v5 REAL,
    v6 REAL,
    v7 REAL,
    v8 REAL,
    v9 REAL,
    v10 REAL,
    v11 REAL,
    v12 REAL,
    v13 REAL,
    v14 REAL,
    v15 REAL,
    v16 REAL,
    v17 REAL,
    v18 REAL,
    v19 REAL,
    v20 REAL,
    v21 REAL,
    v22 REAL,
    v23 REAL,
    v24 REAL,
    v25 REAL,
    v26 REAL,
    v27 REAL,
    v28 REAL,
    v29 REAL,
    v30 REAL,
    v31 REAL,
    v32 REAL,
    UNIQUE (unit_id, ts)
);
-- (unit_id, rowid): the dl "next" mailbox walks a unit's samples in
-- arrival order.
CREATE INDEX samples_unit_id ON samples (unit_id);
CREATE TABLE dl_cursors (
    reader_id INTEGER NOT NULL REFERENCES units(id) ON DELETE CASCADE,
    source_id INTEGER NOT NULL REFERENCES units(id) ON DELETE CASCADE,
    sample_id INTEGER NOT NULL,
    PRIMARY KEY (reader_id, source_id)
) WITHOUT ROWID;
CREATE TABLE users (
    id INTEGER PRIMARY KEY,
    username TEXT NOT NULL UNIQUE COLLATE NOCASE,
    password TEXT NOT NULL,
    email TEXT NOT NULL DEFAULT '',
    first_name TEXT NOT NULL DEFAULT '',
    last_name TEXT NOT NULL DEFAULT '',
    is_active INTEGER NOT NULL DEFAULT 1,
    is_staff INTEGER NOT NULL DEFAULT 0,
    is_superuser INTEGER NOT NULL DEFAULT 0,
    must_change_password INTEGER NOT NULL DEFAULT 0,
    date_joined INTEGER NOT NULL,
    last_login INTEGER
);
