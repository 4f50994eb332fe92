-- 008: finished jobs can be deleted (DELETE /v1/jobs/{id}?purge=true).
--
-- Their events, pseudo-labels and checkpoint go by the foreign keys of
-- sql/003 (ON DELETE CASCADE); a model keeps its weights and loses only
-- its job_id (ON DELETE SET NULL).  As for architectures (sql/006), a
-- deleted job's id is never handed to a new job: a client polling a
-- stale id must get 404, not somebody else's job.
CREATE TRIGGER jobs_id_floor AFTER DELETE ON jobs
BEGIN
    INSERT INTO id_floor (tbl, hw) VALUES ('jobs', old.id)
    ON CONFLICT (tbl) DO UPDATE SET hw = max(hw, excluded.hw);
END;
