-- 3: sign-in throttling (auth.Throttle): a row per password check that
-- failed or is still running, kept no longer than the longest window (each
-- admitted check deletes the older ones through the index on at). In the
-- database, so that `manage unlock` reaches the running server.
CREATE TABLE sign_in_attempts (
    id INTEGER PRIMARY KEY,
    username TEXT NOT NULL,
    address TEXT NOT NULL,
    at INTEGER NOT NULL
);
CREATE INDEX sign_in_attempts_username ON sign_in_attempts (username, at);
CREATE INDEX sign_in_attempts_address ON sign_in_attempts (address, at);
CREATE INDEX sign_in_attempts_at ON sign_in_attempts (at);
