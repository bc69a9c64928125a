-- SPDX-License-Identifier: Apache-2.0
-- tests/bench/scaling_reports.sql - the report-scaling database (issue 15,
-- items 3-5), filled with plain bulk SQL into a migrated, empty database.
--
--   psql "$URL" -v big=100000 -v mid=10000 -v small=1000 -f tests/bench/scaling_reports.sql
--
-- Credentials "report-big" (:big scored submissions), "report-mid" (:mid)
-- and "report-small" (:small), all on a rubric of 4 criteria with levels 1..4. Each scored
-- submission has two submitted reviews (a peer and an expert of 40
-- assessors, 4 scores each; the expert agrees with the peer 70% of the time,
-- else is one level off), is passed, and is seeded by its number, so the
-- data and every statistic are the same in every run. A lead "report-lead"
-- has the bearer token 'acc_' || md5('report-lead') twice.
\if :{?big}
\else
\set big 100000
\endif
\if :{?mid}
\else
\set mid 0
\endif
\if :{?small}
\else
\set small 1000
\endif
SET synchronous_commit = off;
BEGIN;
INSERT INTO organisations (name) VALUES ('report-earners'), ('report-assessors');
INSERT INTO users (email, name, roles, org_id)
SELECT 'report-lead@example.org', 'Report Lead', '{lead}', id FROM organisations WHERE name = 'report-assessors';
INSERT INTO tokens (token_hash, user_id)
SELECT encode(sha256(convert_to('acc_' || md5('report-lead') || md5('report-lead'), 'UTF8')), 'hex'), id
  FROM users WHERE email = 'report-lead@example.org';
INSERT INTO rubrics (title, description, criteria, created_by)
SELECT 'Report rubric', 'four criteria, four levels',
       (SELECT jsonb_agg(jsonb_build_object(
                   'key', 'c' || k, 'title', 'Criterion ' || k, 'description', NULL,
                   'levels', (SELECT jsonb_agg(jsonb_build_object('value', v, 'label', 'Level ' || v) ORDER BY v)
                                FROM generate_series(1, 4) v)) ORDER BY k)
          FROM generate_series(1, 4) k),
       (SELECT id FROM users WHERE email = 'report-lead@example.org');
INSERT INTO credentials (title, description, stakes, rubric_id, evidence, min_level_each, created_by,
                         validity_rate, second_score_rate)
SELECT t, NULL, 'low', r.id, '[]', 1, r.created_by, 0, 0
  FROM rubrics r, unnest(ARRAY['report-big', 'report-mid', 'report-small']) t WHERE r.title = 'Report rubric';
INSERT INTO users (email, name, roles, org_id)
SELECT 'report-assessor-' || i || '@example.org', 'Assessor ' || i, '{assessor,expert}', o.id
  FROM organisations o, generate_series(1, 40) i WHERE o.name = 'report-assessors';
INSERT INTO users (email, name, roles, org_id)
SELECT 'report-earner-' || i || '@example.org', 'Earner ' || i, '{earner}', o.id
  FROM organisations o, generate_series(1, greatest(:big, :mid, :small)) i WHERE o.name = 'report-earners';

CREATE TEMP TABLE subs ON COMMIT DROP AS
SELECT gen_random_uuid() AS id, c.id AS cred, u.id AS earner, u.org_id AS org, n,
       gen_random_uuid() AS peer_review, gen_random_uuid() AS expert_review,
       now() - interval '30 days' + n * interval '1 second' AS at
  FROM credentials c
  JOIN LATERAL generate_series(1, CASE c.title WHEN 'report-big' THEN :big
                                               WHEN 'report-mid' THEN :mid ELSE :small END) n ON true
  JOIN users u ON u.email = 'report-earner-' || n || '@example.org'
 WHERE c.title IN ('report-big', 'report-mid', 'report-small');
CREATE TEMP TABLE assessors ON COMMIT DROP AS
SELECT id, row_number() OVER (ORDER BY email) - 1 AS k FROM users WHERE email LIKE 'report-assessor-%';

INSERT INTO submissions (id, credential_id, earner_id, earner_org_id, status, queued_at, created_at, updated_at, stage)
SELECT id, cred, earner, org, 'passed', at, at, at, 'first' FROM subs;
INSERT INTO reviews (id, submission_id, assessor_id, status, claimed_at, lease_expires_at, verdict, scored_at,
                     ended_at, stage, pool)
SELECT s.peer_review, s.id, a.id, 'submitted', s.at, s.at + interval '2 hours', 'pass', s.at + interval '1 hour',
       s.at + interval '1 hour', 'first', 'peer'
  FROM subs s JOIN assessors a ON a.k = s.n % 40;
INSERT INTO reviews (id, submission_id, assessor_id, status, claimed_at, lease_expires_at, verdict, scored_at,
                     ended_at, stage, pool)
SELECT s.expert_review, s.id, a.id, 'submitted', s.at, s.at + interval '2 hours', 'pass', s.at + interval '2 hours',
       s.at + interval '2 hours', 'second', 'expert'
  FROM subs s JOIN assessors a ON a.k = (s.n * 7 + 3) % 40;
-- peer level from the submission's number; the expert agrees 70% of the time
INSERT INTO review_scores (review_id, criterion, position, level)
SELECT s.peer_review, 'c' || k, k, 1 + (s.n * 31 + k * 17) % 4
  FROM subs s, generate_series(1, 4) k;
INSERT INTO review_scores (review_id, criterion, position, level)
SELECT s.expert_review, 'c' || k, k,
       CASE WHEN (s.n * 13 + k * 7) % 10 < 7 THEN 1 + (s.n * 31 + k * 17) % 4
            ELSE 1 + ((s.n * 31 + k * 17) % 4 + 1) % 4 END
  FROM subs s, generate_series(1, 4) k;
COMMIT;
VACUUM ANALYZE;
