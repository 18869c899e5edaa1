-- 2: the web UI: sessions, API tokens, multiple-meter displays, and each
-- unit's graph options (axes: JSON list of {"label", "fields"}).
CREATE TABLE sessions (
    key_hash TEXT PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    csrf TEXT NOT NULL,
    expires INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX sessions_user_id ON sessions (user_id);
CREATE TABLE api_tokens (
    id INTEGER PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    created INTEGER NOT NULL,
    last_used INTEGER,
    UNIQUE (user_id, name)
);
CREATE TABLE displays (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    refresh INTEGER NOT NULL CHECK (refresh >= 1),
    created INTEGER NOT NULL
);
CREATE TABLE display_channels (
    display_id INTEGER NOT NULL REFERENCES displays(id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    unit_id INTEGER NOT NULL REFERENCES units(id) ON DELETE CASCADE,
    field INTEGER NOT NULL CHECK (field BETWEEN 1 AND 32),
    PRIMARY KEY (display_id, position),
    UNIQUE (display_id, unit_id, field)
) WITHOUT ROWID;
CREATE INDEX display_channels_unit_id ON display_channels (unit_id);
ALTER TABLE units ADD COLUMN graph_width INTEGER NOT NULL DEFAULT 800;
ALTER TABLE units ADD COLUMN graph_height INTEGER NOT NULL DEFAULT 300;
ALTER TABLE units ADD COLUMN graph_axes TEXT NOT NULL DEFAULT '[]';
