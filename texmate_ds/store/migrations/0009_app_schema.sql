-- 9: the site's HTTP apps' own tables (store/app_tables.py). An app's
-- migrations (its package's migrations/NNNN_*.sql) are applied after the
-- store's own, and each app's schema version is kept here, by its name in
-- lower case: the number of its scripts the database has run.
CREATE TABLE app_schema (
    app TEXT PRIMARY KEY,
    version INTEGER NOT NULL
);
