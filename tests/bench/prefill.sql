-- SPDX-License-Identifier: Apache-2.0
-- tests/bench/prefill.sql - fills a migrated, empty accord database for the
-- claim -> score benchmark.
--
--   psql "$DATABASE_URL" -v ON_ERROR_STOP=1 -v n=100000 -f tests/bench/prefill.sql
--
-- Creates (plain bulk SQL, not n function calls):
--   * a lead, bench-lead@example.org;
--   * a rubric "Bench rubric": 4 criteria c1..c4, levels 1..4;
--   * a low-stakes credential titled 'Bench credential' (evidence: 1 plan,
--     pass: every criterion >= 3, max_attempts 3) whose review policy has
--     validity_rate 0 and second_score_rate 0: no validity items and no double
--     scoring (near-cut included), so the benchmark measures the plain
--     claim -> score loop of issue 2 (issue 4's sampling is tested elsewhere);
--   * :n earners (one submission each: the schema allows one attempt chain per
--     earner and credential) in 2 organisations, one plan artifact each;
--   * :n queued submissions, oldest first in generate_series order;
--   * 64 assessors (role assessor, org 'bench-assessors', peer grants with
--     waive_award) whose bearer tokens are 'acc_' + i as 64 digits (i = 1..64;
--     shaped like real tokens, which the auth gate insists on), stored as
--     encode(sha256(token), 'hex') like the server does,
--     qualified on the bench rubric (live claims need it since issue 4).
-- Prints the credential id and the counts at the end.

\if :{?n}
\else
\set n 100000
\endif

SET synchronous_commit = off;

BEGIN;

-- organisations are records (issue 7)
INSERT INTO organisations (name)
VALUES ('bench-office'), ('bench-org-a'), ('bench-org-b'), ('bench-assessors');

INSERT INTO users (email, name, roles, org_id)
SELECT 'bench-lead@example.org', 'Bench Lead', '{lead}', o.id
  FROM organisations o WHERE o.name = 'bench-office';

INSERT INTO rubrics (title, description, criteria, created_by)
SELECT 'Bench rubric', 'four criteria, four levels',
       (SELECT jsonb_agg(jsonb_build_object(
                   'key', 'c' || k, 'title', 'Criterion ' || k, 'description', NULL,
                   'levels', (SELECT jsonb_agg(jsonb_build_object('value', v, 'label', 'Level ' || v)
                                               ORDER BY v)
                                FROM generate_series(1, 4) v))
                   ORDER BY k)
          FROM generate_series(1, 4) k),
       (SELECT id FROM users WHERE email = 'bench-lead@example.org');

INSERT INTO credentials (title, description, stakes, rubric_id, evidence, min_level_each,
                         max_attempts, created_by, validity_rate, second_score_rate)
SELECT 'Bench credential', 'benchmark credential', 'low', r.id,
       '[{"kind":"plan","min":1}]', 3, 3, r.created_by, 0, 0
  FROM rubrics r WHERE r.title = 'Bench rubric';

-- earners: bench-earner-<i>@example.org, two organisations
INSERT INTO users (email, name, roles, org_id, created_at)
SELECT 'bench-earner-' || i || '@example.org', 'Bench Earner ' || i, '{earner}',
       (SELECT o.id FROM organisations o
         WHERE o.name = CASE WHEN i % 2 = 0 THEN 'bench-org-a' ELSE 'bench-org-b' END),
       now() - interval '1 day'
  FROM generate_series(1, :n) i;

-- one plan artifact per earner
INSERT INTO artifacts (owner_id, kind, media_type, filename, bytes, sha256, created_at)
SELECT u.id, 'plan', 'application/pdf', 'plan.pdf', 4096,
       encode(sha256(convert_to(u.email, 'UTF8')), 'hex'), now() - interval '1 day'
  FROM users u
 WHERE u.email LIKE 'bench-earner-%';

-- n queued submissions, queue order = earner number
CREATE TEMP TABLE bench_subs ON COMMIT DROP AS
SELECT gen_random_uuid() AS id, u.id AS earner_id, u.org_id AS earner_org_id, a.id AS artifact_id,
       now() - interval '1 hour'
             + split_part(split_part(u.email, '-', 3), '@', 1)::int * interval '1 microsecond'
           AS queued_at
  FROM users u
  JOIN artifacts a ON a.owner_id = u.id
 WHERE u.email LIKE 'bench-earner-%';

INSERT INTO submissions (id, credential_id, earner_id, earner_org_id, attempt, status, queued_at,
                         created_at, updated_at)
SELECT b.id, c.id, b.earner_id, b.earner_org_id, 1, 'queued', b.queued_at, b.queued_at, b.queued_at
  FROM bench_subs b, credentials c
 WHERE c.title = 'Bench credential'
 ORDER BY b.queued_at;

INSERT INTO submission_artifacts (submission_id, artifact_id, position)
SELECT b.id, b.artifact_id, 1 FROM bench_subs b;

-- 64 assessors with known tokens and peer grants
INSERT INTO users (email, name, roles, org_id)
SELECT 'bench-assessor-' || i || '@example.org', 'Bench Assessor ' || i, '{assessor}',
       (SELECT o.id FROM organisations o WHERE o.name = 'bench-assessors')
  FROM generate_series(1, 64) i;

INSERT INTO tokens (token_hash, user_id)
SELECT encode(sha256(convert_to('acc_' || lpad(i::text, 64, '0'), 'UTF8')), 'hex'), u.id
  FROM generate_series(1, 64) i
  JOIN users u ON u.email = 'bench-assessor-' || i || '@example.org';

INSERT INTO assessor_grants (credential_id, user_id, pool, waive_award, granted_by)
SELECT c.id, u.id, 'peer', true, c.created_by
  FROM credentials c, users u
 WHERE c.title = 'Bench credential' AND u.email LIKE 'bench-assessor-%';

INSERT INTO qualifications (user_id, rubric_id, status, reason, qualified_at, updated_by)
SELECT u.id, c.rubric_id, 'qualified', 'bench', now(), c.created_by
  FROM credentials c, users u
 WHERE c.title = 'Bench credential' AND u.email LIKE 'bench-assessor-%';

COMMIT;

VACUUM ANALYZE users;
VACUUM ANALYZE tokens;
VACUUM ANALYZE artifacts;
VACUUM ANALYZE submissions;
VACUUM ANALYZE submission_artifacts;
VACUUM ANALYZE assessor_grants;
VACUUM ANALYZE credentials;
VACUUM ANALYZE qualifications;

SELECT c.id AS bench_credential_id,
       (SELECT count(*) FROM submissions WHERE status = 'queued' AND credential_id = c.id) AS queued,
       (SELECT count(*) FROM assessor_grants WHERE credential_id = c.id) AS assessors
  FROM credentials c WHERE c.title = 'Bench credential';
