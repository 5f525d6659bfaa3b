CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS tokens (
    id          TEXT PRIMARY KEY,
    hash        TEXT NOT NULL UNIQUE,
    prefix      TEXT NOT NULL,
    role        TEXT NOT NULL CHECK (role IN ('admin', 'analyst', 'applicant')),
    project     TEXT,
    applicant   TEXT,
    name        TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    created_by  TEXT NOT NULL,
    expires_at  TEXT,
    revoked_at  TEXT,
    CHECK ((role = 'analyst') = (project IS NOT NULL)),
    CHECK ((role = 'applicant') = (applicant IS NOT NULL))
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
    token_collected  INTEGER NOT NULL DEFAULT 0,
    applicant        TEXT,
    institution_id   TEXT,
    waiting_reasons  TEXT
);
CREATE TABLE IF NOT EXISTS institutions (
    id             TEXT PRIMARY KEY,
    name           TEXT NOT NULL,
    oidc_issuer    TEXT,
    email_domains  TEXT NOT NULL,
    org_values     TEXT NOT NULL,
    created_at     TEXT NOT NULL,
    created_by     TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS applicants (
    id           TEXT PRIMARY KEY,
    institution  TEXT NOT NULL REFERENCES institutions (id),
    name         TEXT NOT NULL,
    email        TEXT NOT NULL,
    issuer       TEXT,
    subject      TEXT,
    created_at   TEXT NOT NULL,
    created_by   TEXT NOT NULL,
    UNIQUE (issuer, subject)
);
CREATE TABLE IF NOT EXISTS oidc_logins (
    state          TEXT PRIMARY KEY,
    nonce          TEXT NOT NULL,
    code_verifier  TEXT NOT NULL,
    institution    TEXT,
    created_at     TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS tokens_applicant ON tokens (applicant);
CREATE INDEX IF NOT EXISTS applications_applicant ON applications (applicant, route, submitted_at);
CREATE INDEX IF NOT EXISTS applications_institution ON applications (institution_id, route, submitted_at);
