-- 010: the --job-retention sweep finds what is due without a scan.
--
-- Each of its small transactions looks for ended jobs by finished_at,
-- oldest first; through jobs_state alone that read every ended job and
-- sorted them, holding the write lock 30 ms on 200,000 rows even when
-- nothing was due.  Only ended jobs have finished_at.  Deleting a job
-- also sets its models' job_id to NULL (sql/002), which looked through
-- every model without an index on job_id.
CREATE INDEX jobs_finished ON jobs (finished_at) WHERE finished_at IS NOT NULL;
CREATE INDEX models_job ON models (job_id) WHERE job_id IS NOT NULL;
