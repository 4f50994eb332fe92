-- 004: a search job's labelled set moves out of its params.
--
-- The ids of the measured architectures a search job started from are
-- read only when the job resumes, but params is read on every poll; with
-- a whole catalogue labelled (15,625 NAS-Bench-201 cells) parsing them
-- dominated GET /v1/searches/{id}.  A JSON array of architecture ids, or
-- NULL for jobs that have none (and for older rows, whose params still
-- carry "label_ids").
ALTER TABLE jobs ADD COLUMN label_ids TEXT;
