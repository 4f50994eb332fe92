-- 009: a waiting search can be told to go on without the measurements
-- it still waits for (POST /v1/searches/{id}/continue).
--
-- The request names the round it was made in (the row's progress.round
-- when the search was waiting), not a flag to clear later: a search that
-- resumes, after a crash, from the checkpoint it took when that round
-- ended goes on again as told, and one waiting after a later round is
-- not pushed on by an old request.  NULL: never told.
ALTER TABLE jobs ADD COLUMN continue_round INTEGER;
