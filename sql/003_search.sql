-- 003: contrastive search jobs: their checkpoints, progress events and the
-- pseudo-labels their data exploration produced.

-- The latest resumable state of a search job (src/search.h's blob): a
-- restart, even after kill -9, resumes from here.
CREATE TABLE search_checkpoints (
    job_id      INTEGER PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE,
    step        INTEGER NOT NULL,
    state       BLOB NOT NULL,
    extra       TEXT NOT NULL DEFAULT '{}',
    updated_at  REAL NOT NULL
);

-- Progress records, numbered per job from 1; clients poll "since N".
-- A resumed job writes the same numbers again, hence the replace.
CREATE TABLE search_events (
    job_id      INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    seq         INTEGER NOT NULL,
    data        TEXT NOT NULL,
    created_at  REAL NOT NULL,
    PRIMARY KEY (job_id, seq)
) WITHOUT ROWID;

-- Pairs the job's comparator labelled itself: label 1 when a beats b.
CREATE TABLE pseudo_labels (
    job_id      INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    seq         INTEGER NOT NULL,
    arch_a      TEXT NOT NULL,
    arch_b      TEXT NOT NULL,
    label       INTEGER NOT NULL CHECK (label IN (0, 1)),
    confidence  REAL NOT NULL CHECK (confidence >= 0.5 AND confidence <= 1),
    step        INTEGER NOT NULL,
    PRIMARY KEY (job_id, seq)
) WITHOUT ROWID;
