-- The fingerprint store (layout 2): what lib/atlas/store.py executes to create it, and
-- the one description of its tables. Runs are shown to others only when `shared`;
-- `run_owners` lists the sessions that made a run (one copy per identical run).
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    source TEXT NOT NULL,
    doc_key TEXT UNIQUE,
    shared INTEGER NOT NULL DEFAULT 0,
    model TEXT NOT NULL,
    prompt TEXT NOT NULL,
    settings TEXT NOT NULL,
    created REAL NOT NULL,
    n_tokens INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS run_owners (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    owner TEXT NOT NULL,
    PRIMARY KEY (run_id, owner)
);
CREATE TABLE IF NOT EXISTS tokens (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    step INTEGER,
    position INTEGER NOT NULL,
    token_id INTEGER NOT NULL,
    label TEXT NOT NULL,
    context TEXT NOT NULL,
    fingerprint BLOB NOT NULL,
    zone TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS tokens_run ON tokens(run_id);
CREATE INDEX IF NOT EXISTS runs_created ON runs(created);
CREATE INDEX IF NOT EXISTS run_owners_owner ON run_owners(owner);
