-- 5: the administration panel. Units get a unit of measure per field, the
-- fields reports offer, and their sample count and newest timestamp kept
-- beside them (the home page and the units list read these, not a count
-- over millions of rows; `samples` maintains them with every write).
ALTER TABLE units ADD COLUMN field_units TEXT NOT NULL DEFAULT '';
ALTER TABLE units ADD COLUMN report_fields TEXT NOT NULL DEFAULT '';
ALTER TABLE units ADD COLUMN sample_count INTEGER NOT NULL DEFAULT 0;
ALTER TABLE units ADD COLUMN last_ts INTEGER;
UPDATE units SET
    sample_count = (SELECT count(*) FROM samples WHERE samples.unit_id = units.id),
    last_ts = (SELECT max(ts) FROM samples WHERE samples.unit_id = units.id);
-- Groups, permissions ("units.change": an admin model and an action) and
-- unit access, each given to a user directly or through a group. A user
-- or group with all_units sees every unit, present and future.
CREATE TABLE groups (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE COLLATE NOCASE,
    all_units INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE user_groups (
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    group_id INTEGER NOT NULL REFERENCES groups(id) ON DELETE CASCADE,
    PRIMARY KEY (user_id, group_id)
) WITHOUT ROWID;
CREATE INDEX user_groups_group_id ON user_groups (group_id);
CREATE TABLE user_permissions (
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    permission TEXT NOT NULL,
    PRIMARY KEY (user_id, permission)
) WITHOUT ROWID;
CREATE TABLE group_permissions (
    group_id INTEGER NOT NULL REFERENCES groups(id) ON DELETE CASCADE,
    permission TEXT NOT NULL,
    PRIMARY KEY (group_id, permission)
) WITHOUT ROWID;
CREATE TABLE user_units (
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    unit_id INTEGER NOT NULL REFERENCES units(id) ON DELETE CASCADE,
    PRIMARY KEY (user_id, unit_id)
) WITHOUT ROWID;
CREATE INDEX user_units_unit_id ON user_units (unit_id);
CREATE TABLE group_units (
    group_id INTEGER NOT NULL REFERENCES groups(id) ON DELETE CASCADE,
    unit_id INTEGER NOT NULL REFERENCES units(id) ON DELETE CASCADE,
    PRIMARY KEY (group_id, unit_id)
) WITHOUT ROWID;
CREATE INDEX group_units_unit_id ON group_units (unit_id);
-- Until this version every user saw every unit; they still do. New users
-- see none until given access.
ALTER TABLE users ADD COLUMN all_units INTEGER NOT NULL DEFAULT 0;
UPDATE users SET all_units = 1;
