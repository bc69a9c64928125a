-- SPDX-License-Identifier: Apache-2.0
-- tests/bench/pgbench_cycle.sql - the claim -> score cycle as plain SQL (no
-- api_* functions): the yardstick for the functions' overhead.
--
--   pgbench -n -M prepared -c 16 -j 2 -T 30 -f tests/bench/pgbench_cycle.sql "$DATABASE_URL"
--
-- Needs tests/bench/prefill.sql first, with more queued submissions than the
-- run will claim (a claim that finds nothing makes \gset fail and the client
-- stop). Use -M prepared or -M extended: the uuids travel as parameters.
--
-- Like the functions, each cycle is two transactions (one statement each):
-- authenticate by token hash, claim the oldest eligible queued submission with
-- FOR UPDATE SKIP LOCKED (review row + submission update + audit row), then
-- score it (4 scores, verdict, review + submission update, award on a pass,
-- audit rows).
\set a random(1, 64)
\set l1 random(2, 4)
\set l2 random(2, 4)
\set l3 random(2, 4)
\set l4 random(2, 4)
WITH me AS (
    SELECT u.id, u.org_id FROM tokens t JOIN users u ON u.id = t.user_id
     WHERE t.token_hash = encode(sha256(convert_to('acc_' || lpad(:a::text, 64, '0'), 'UTF8')), 'hex')
       AND t.revoked_at IS NULL),
cand AS (
    SELECT s.id FROM submissions s, me
     WHERE s.status = 'queued'
       AND s.credential_id = (SELECT id FROM credentials WHERE title = 'Bench credential')
       AND s.earner_id <> me.id
       AND me.org_id IS NOT NULL AND s.earner_org_id IS NOT NULL AND s.earner_org_id <> me.org_id
       AND NOT EXISTS (SELECT 1 FROM reviews r WHERE r.submission_id = s.id AND r.assessor_id = me.id)
     ORDER BY s.queued_at, s.id
     LIMIT 1
       FOR UPDATE OF s SKIP LOCKED),
rv AS (
    INSERT INTO reviews (submission_id, assessor_id, lease_expires_at)
    SELECT cand.id, me.id, now() + interval '7200 seconds' FROM cand, me
    RETURNING id, submission_id, assessor_id, lease_expires_at),
up AS (
    UPDATE submissions s
       SET status = 'in_review', lease_expires_at = rv.lease_expires_at,
           current_review_id = rv.id, updated_at = now()
      FROM rv WHERE s.id = rv.submission_id),
au AS (
    INSERT INTO audit_log (actor_id, action, object_type, object_id, detail)
    SELECT rv.assessor_id, 'review.claim', 'review', rv.id,
           jsonb_build_object('submission_id', rv.submission_id)
      FROM rv)
SELECT rv.id AS rid FROM rv \gset
WITH me AS (
    SELECT u.id FROM tokens t JOIN users u ON u.id = t.user_id
     WHERE t.token_hash = encode(sha256(convert_to('acc_' || lpad(:a::text, 64, '0'), 'UTF8')), 'hex')
       AND t.revoked_at IS NULL),
rv AS (
    UPDATE reviews r
       SET status = 'submitted',
           verdict = CASE WHEN least(:l1::int, :l2::int, :l3::int, :l4::int) >= 3 THEN 'pass' ELSE 'resubmit' END,
           feedback = 'Bench feedback', scored_at = now(), ended_at = now()
      FROM me
     WHERE r.id = :rid AND r.assessor_id = me.id AND r.status = 'active'
    RETURNING r.id, r.submission_id, r.assessor_id, r.verdict),
sc AS (
    INSERT INTO review_scores (review_id, criterion, position, level, comment)
    SELECT rv.id, 'c' || k, k, (ARRAY[:l1::int, :l2::int, :l3::int, :l4::int])[k], 'bench comment'
      FROM rv, generate_series(1, 4) k),
aw AS (
    INSERT INTO awards (credential_id, earner_id, submission_id)
    SELECT s.credential_id, s.earner_id, s.id
      FROM rv JOIN submissions s ON s.id = rv.submission_id
     WHERE rv.verdict = 'pass'
    RETURNING id, submission_id),
up AS (
    UPDATE submissions s
       SET status = CASE WHEN rv.verdict = 'pass' THEN 'passed' ELSE 'returned' END,
           lease_expires_at = NULL, current_review_id = NULL, decided_review_id = rv.id,
           award_id = (SELECT aw.id FROM aw), updated_at = now()
      FROM rv WHERE s.id = rv.submission_id),
au AS (
    INSERT INTO audit_log (actor_id, action, object_type, object_id, detail)
    SELECT rv.assessor_id, 'award.issue', 'award', aw.id,
           jsonb_build_object('submission_id', aw.submission_id)
      FROM rv, aw)
INSERT INTO audit_log (actor_id, action, object_type, object_id, detail)
SELECT rv.assessor_id, 'review.score', 'review', rv.id,
       jsonb_build_object('submission_id', rv.submission_id, 'verdict', rv.verdict)
  FROM rv;
