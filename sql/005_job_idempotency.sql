-- 005: idempotent job submission.
--
-- A client may send "Idempotency-Key: <key>" with a POST that creates a
-- job.  The key and the fingerprint of the request (MD5 of the job kind
-- and the canonical JSON body) are kept with the job, so a retry of the
-- same request (after a lost answer, a timeout, a 500) finds the job it
-- created instead of making a second one, even across restarts.  NULL for
-- jobs submitted without a key and for older rows.
ALTER TABLE jobs ADD COLUMN idem_key TEXT
    CHECK (idem_key IS NULL OR length(CAST(idem_key AS BLOB)) BETWEEN 1 AND 255);
ALTER TABLE jobs ADD COLUMN idem_hash TEXT;
CREATE UNIQUE INDEX jobs_idem_key ON jobs (idem_key)
    WHERE idem_key IS NOT NULL;
