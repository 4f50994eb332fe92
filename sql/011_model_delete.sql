-- 011: models can be deleted (DELETE /v1/nac/{id}), so their ids, like
-- the other tables' (sql/006), are never handed out again: a search's
-- params and a client's notes name models by id.  store_job.c inserts a
-- model above both the highest id and the highest one ever deleted.
CREATE TRIGGER models_id_floor AFTER DELETE ON models
BEGIN
    INSERT INTO id_floor (tbl, hw) VALUES ('models', old.id)
    ON CONFLICT (tbl) DO UPDATE SET hw = max(hw, excluded.hw);
END;
