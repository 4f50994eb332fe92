-- 007: a search's checkpoint goes when the search ends.
--
-- A checkpoint (controller and comparator weights, optimiser state, the
-- pool: 2.7 MB for a 300-step NAS-Bench-201 search) exists to resume an
-- unfinished search after a restart; once the job has succeeded, failed or
-- been cancelled nothing reads it, and a daemon that runs many searches
-- kept every one.  The trigger drops it in the statement that ends the
-- job, so no path that ends one can forget; the DELETE frees those kept so
-- far (SQLite reuses the pages; VACUUM with the daemon stopped gives them
-- back to the file system).
CREATE TRIGGER jobs_drop_checkpoint
AFTER UPDATE OF state ON jobs
WHEN new.state IN ('succeeded', 'failed', 'cancelled')
BEGIN
    DELETE FROM search_checkpoints WHERE job_id = new.id;
END;

DELETE FROM search_checkpoints
 WHERE job_id IN (SELECT id FROM jobs
                   WHERE state IN ('succeeded', 'failed', 'cancelled'));
