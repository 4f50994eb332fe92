-- 006: ids are never reused once architectures and measurements can be
-- deleted (DELETE /v1/architectures/{id}, .../measurements/{id}).
--
-- SQLite gives a new row max(id) + 1, so deleting the newest row would
-- hand its id to the next insert: a client's stale id (a retried DELETE,
-- a search job's labelled set, a model's training ids) would then name
-- another row.  The triggers below keep the highest id ever deleted per
-- table, and store_arch.c's inserts take the next id above both it and
-- the current maximum (the guarantee of AUTOINCREMENT, without
-- rebuilding the tables).
CREATE TABLE id_floor (
    tbl TEXT PRIMARY KEY,
    hw  INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TRIGGER architectures_id_floor AFTER DELETE ON architectures
BEGIN
    INSERT INTO id_floor (tbl, hw) VALUES ('architectures', old.id)
    ON CONFLICT (tbl) DO UPDATE SET hw = max(hw, excluded.hw);
END;

CREATE TRIGGER measurements_id_floor AFTER DELETE ON measurements
BEGIN
    INSERT INTO id_floor (tbl, hw) VALUES ('measurements', old.id)
    ON CONFLICT (tbl) DO UPDATE SET hw = max(hw, excluded.hw);
END;
