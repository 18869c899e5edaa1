-- 10: the site's secrets (store/site_secrets.py), each made once by the
-- first process that needs it and read by every other: several processes
-- sharing one database then sign and check with the same key (the CSRF
-- tokens of visitors without a session), whichever served the form.
CREATE TABLE site_secrets (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
