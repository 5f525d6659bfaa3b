CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS tokens (
    id          TEXT PRIMARY KEY,
    hash        TEXT NOT NULL UNIQUE,
    prefix      TEXT NOT NULL,
    role        TEXT NOT NULL CHECK (role IN ('admin', 'analyst')),
    project     TEXT,
    name        TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    created_by  TEXT NOT NULL,
    expires_at  TEXT,
    revoked_at  TEXT,
    CHECK ((role = 'admin') = (project IS NULL))
);
CREATE INDEX IF NOT EXISTS tokens_project ON tokens (project);
CREATE TABLE IF NOT EXISTS applications (
    id               TEXT PRIMARY KEY,
    status_key_hash  TEXT NOT NULL,
    body             TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'rejected')),
    submitted_at     TEXT NOT NULL,
    decided_at       TEXT,
    decided_by       TEXT,
    route            TEXT,
    reason           TEXT,
    project          TEXT,
    granted_epsilon  REAL,
    granted_delta    REAL,
    expires          TEXT,
    token_collected  INTEGER NOT NULL DEFAULT 0
);
