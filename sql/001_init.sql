-- 001_init.sql - schema v1: the architecture catalogue.
--
-- Applied by store.c inside one transaction that also sets
-- PRAGMA user_version = 1, so a crash leaves either no schema or all of it.
-- Lengths are checked in bytes and match the fixed buffers of
-- struct ctnas_arch_row / struct ctnas_measurement in store.h, so a row read
-- back always fits.

-- One row per distinct architecture of a space; hash is the space's
-- canonical hash (isomorphic cells share it), so (space, hash) is identity.
CREATE TABLE architectures (
    id         INTEGER PRIMARY KEY,
    space      TEXT NOT NULL
               CHECK (length(CAST(space AS BLOB)) BETWEEN 1 AND 31),
    encoding   TEXT NOT NULL
               CHECK (length(CAST(encoding AS BLOB)) BETWEEN 1 AND 511),
    hash       TEXT NOT NULL
               CHECK (length(CAST(hash AS BLOB)) BETWEEN 1 AND 32),
    created_at INTEGER NOT NULL,
    UNIQUE (space, hash)
);

-- Listing one space in id order walks this index without a sort (the
-- UNIQUE index above is ordered by hash within a space).
CREATE INDEX architectures_space_id ON architectures (space, id);

-- Measured results.  An architecture may carry many per dataset and metric
-- (several seeds, several epoch budgets); listings order by their mean.
CREATE TABLE measurements (
    id         INTEGER PRIMARY KEY,
    arch_id    INTEGER NOT NULL
               REFERENCES architectures (id) ON DELETE CASCADE,
    dataset    TEXT NOT NULL
               CHECK (length(CAST(dataset AS BLOB)) BETWEEN 1 AND 63),
    metric     TEXT NOT NULL
               CHECK (length(CAST(metric AS BLOB)) BETWEEN 1 AND 63),
    value      REAL NOT NULL,
    epochs     INTEGER NOT NULL DEFAULT 0 CHECK (epochs >= 0),
    source     TEXT NOT NULL DEFAULT 'api'
               CHECK (length(CAST(source AS BLOB)) BETWEEN 1 AND 63),
    created_at INTEGER NOT NULL
);

-- Idempotency: re-posting or re-importing the same result stores it once.
-- It also serves the foreign key (cascade deletes), "the measurements of
-- architecture N", the triggers' means below, and (scanned whole, already
-- grouped by arch_id) the rare listing by the mean over every metric.
CREATE UNIQUE INDEX measurements_identity
    ON measurements (arch_id, dataset, metric, value, epochs, source);

-- The mean of each architecture's measurements per (dataset, metric),
-- kept by the triggers below and never written by C code.  A listing
-- ordered by a metric walks arch_scores_order from its cursor on, so a page
-- costs its own length rather than a GROUP BY over the whole catalogue.
-- space is copied from the architecture (it never changes) so a space
-- filter needs no join.
CREATE TABLE arch_scores (
    arch_id INTEGER NOT NULL,
    dataset TEXT NOT NULL,
    metric  TEXT NOT NULL,
    space   TEXT NOT NULL,
    mean    REAL NOT NULL,
    PRIMARY KEY (arch_id, dataset, metric)
) WITHOUT ROWID;

-- Walked forwards for ascending order; backwards for descending, where
-- SQLite sorts only each run of equal means to put ties by arch_id
-- ascending.  (A second, DESC index would avoid that small sort but cost
-- every insert a third b-tree.)
CREATE INDEX arch_scores_order
    ON arch_scores (dataset, metric, mean, arch_id, space);

-- A new measurement changes one mean.  avg() over the identity index sums
-- in value order, so the same values always give the same mean.
CREATE TRIGGER measurements_scores_insert AFTER INSERT ON measurements
BEGIN
    INSERT INTO arch_scores (arch_id, dataset, metric, space, mean)
        SELECT m.arch_id, m.dataset, m.metric, a.space, avg(m.value)
          FROM measurements AS m JOIN architectures AS a ON a.id = m.arch_id
         WHERE m.arch_id = new.arch_id AND m.dataset = new.dataset
           AND m.metric = new.metric
         GROUP BY m.arch_id, m.dataset, m.metric
        ON CONFLICT (arch_id, dataset, metric)
        DO UPDATE SET mean = excluded.mean;
END;

-- Deletions (also those cascading from an architecture) recompute from
-- what is left; a mean with nothing left, or whose architecture is gone,
-- disappears.
CREATE TRIGGER measurements_scores_delete AFTER DELETE ON measurements
BEGIN
    DELETE FROM arch_scores
     WHERE arch_id = old.arch_id AND dataset = old.dataset
       AND metric = old.metric;
    INSERT INTO arch_scores (arch_id, dataset, metric, space, mean)
        SELECT m.arch_id, m.dataset, m.metric, a.space, avg(m.value)
          FROM measurements AS m JOIN architectures AS a ON a.id = m.arch_id
         WHERE m.arch_id = old.arch_id AND m.dataset = old.dataset
           AND m.metric = old.metric
         GROUP BY m.arch_id, m.dataset, m.metric;
END;

-- A measurement is a recorded fact: a corrected result is a new row.
-- (This also keeps arch_scores right without an update trigger.)
CREATE TRIGGER measurements_immutable BEFORE UPDATE ON measurements
BEGIN
    SELECT RAISE(ABORT, 'measurements are immutable');
END;
