-- 002: background jobs and trained comparator models.

-- A background job (comparator training, search).  params, progress and
-- result are JSON documents; times are unix seconds (fractional).
CREATE TABLE jobs (
    id          INTEGER PRIMARY KEY,
    kind        TEXT NOT NULL CHECK (kind IN ('train', 'search')),
    state       TEXT NOT NULL CHECK (state IN ('queued', 'running', 'waiting',
                    'succeeded', 'failed', 'cancelled')),
    params      TEXT NOT NULL,
    progress    TEXT,
    result      TEXT,
    error       TEXT,
    created_at  REAL NOT NULL,
    started_at  REAL,
    finished_at REAL,
    updated_at  REAL NOT NULL
);
CREATE INDEX jobs_state ON jobs (state);

-- A trained comparator: its settings, figures, training set and weights
-- (the serialised network, see src/nac.h).  The newest published model
-- of a (space, dataset) is the one served.
CREATE TABLE models (
    id          INTEGER PRIMARY KEY,
    space       TEXT NOT NULL,
    dataset     TEXT NOT NULL,
    metric      TEXT NOT NULL DEFAULT '',
    job_id      INTEGER REFERENCES jobs (id) ON DELETE SET NULL,
    config      TEXT NOT NULL,
    figures     TEXT NOT NULL,
    train_ids   TEXT NOT NULL,
    weights     BLOB NOT NULL,
    published   INTEGER NOT NULL DEFAULT 1 CHECK (published IN (0, 1)),
    created_at  REAL NOT NULL
);
CREATE INDEX models_serving ON models (space, dataset, id);
