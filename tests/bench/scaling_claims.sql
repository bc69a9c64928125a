-- SPDX-License-Identifier: Apache-2.0
-- tests/bench/scaling_claims.sql - the claim-scaling database (issue 15,
-- items 1-2), filled with plain bulk SQL into a migrated, empty database:
--
--   * 1,000 low-stakes credentials on one rubric (validity_rate 0: the queue,
--     not the validity draw, is measured), 100 queued submissions each,
--     interleaved in time (credential k's i-th submission at i*1000 + k us):
--     10^5 clean queued submissions, earners of organisation scale-b;
--   * credential "own": 10^5 submissions by earners of organisation scale-a
--     at the head, then 100 by scale-b;
--   * credential "released": 10^5 submissions at the head that assessor
--     "rel" claimed and released (review rows, status released), then 100
--     others;
--   * assessors (organisation scale-assessors unless said; bearer token
--     bench_token(name): 'acc_' and md5('scale-' || name) twice): g1 (1 grant), g10, g100, g500 (the first
--     N credentials), own (organisation scale-a, granted "own"), rel
--     (granted "released"), loop (granted "own", where
--     all is eligible for it: the claim -> release loop), all qualified on the rubric;
--   * procedure bench_claims(name, n, mode): n claims by that assessor, each
--     committed and timed inside the database (the function's own time:
--     no network, no commit), into bench_latency. mode 'undo' puts the
--     claimed submission back as if never claimed (the queue stays as it
--     was); mode 'release' releases it through api_review_release.
-- Sizes (psql variables): creds (1000), per (100 per credential), heads (100000).
\if :{?creds}
\else
\set creds 1000
\endif
\if :{?per}
\else
\set per 100
\endif
\if :{?heads}
\else
\set heads 100000
\endif
SET synchronous_commit = off;
BEGIN;
CREATE FUNCTION bench_token(p_name text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$ SELECT 'acc_' || md5('scale-' || p_name) || md5('scale-' || p_name) $$;
INSERT INTO organisations (name) VALUES ('scale-a'), ('scale-b'), ('scale-assessors');
INSERT INTO users (email, name, roles, org_id)
SELECT 'scale-lead@example.org', 'Scale Lead', '{lead}', id FROM organisations WHERE name = 'scale-assessors';
INSERT INTO rubrics (title, description, criteria, created_by)
SELECT 'Scale rubric', 'two criteria',
       '[{"key":"c1","title":"C1","description":null,"levels":[{"value":1,"label":"a"},{"value":2,"label":"b"}]},
         {"key":"c2","title":"C2","description":null,"levels":[{"value":1,"label":"a"},{"value":2,"label":"b"}]}]',
       (SELECT id FROM users WHERE email = 'scale-lead@example.org');
INSERT INTO credentials (title, description, stakes, rubric_id, evidence, min_level_each, created_by,
                         validity_rate, second_score_rate)
SELECT 'scale-' || lpad(k::text, 4, '0'), NULL, 'low', r.id, '[]', 1, r.created_by, 0, 0
  FROM rubrics r, generate_series(1, :creds) k WHERE r.title = 'Scale rubric';
INSERT INTO credentials (title, description, stakes, rubric_id, evidence, min_level_each, created_by,
                         validity_rate, second_score_rate)
SELECT t, NULL, 'low', r.id, '[]', 1, r.created_by, 0, 0
  FROM rubrics r, unnest(ARRAY['scale-own', 'scale-released']) t WHERE r.title = 'Scale rubric';

INSERT INTO users (email, name, roles, org_id)
SELECT 'scale-a-' || i || '@example.org', 'A ' || i, '{earner}', o.id
  FROM organisations o, generate_series(1, :heads) i WHERE o.name = 'scale-a';
INSERT INTO users (email, name, roles, org_id)
SELECT 'scale-b-' || i || '@example.org', 'B ' || i, '{earner}', o.id
  FROM organisations o, generate_series(1, :per) i WHERE o.name = 'scale-b';

CREATE TEMP TABLE earner_a ON COMMIT DROP AS
SELECT u.id, u.org_id, split_part(split_part(u.email, '-', 3), '@', 1)::int AS i
  FROM users u WHERE u.email LIKE 'scale-a-%';
CREATE TEMP TABLE earner_b ON COMMIT DROP AS
SELECT u.id, u.org_id, split_part(split_part(u.email, '-', 3), '@', 1)::int AS i
  FROM users u WHERE u.email LIKE 'scale-b-%';

-- the clean queue, interleaved
INSERT INTO submissions (credential_id, earner_id, earner_org_id, status, queued_at, created_at, updated_at)
SELECT c.id, b.id, b.org_id, 'queued',
       now() - interval '10 days' + (b.i * 1000 + right(c.title, 4)::int) * interval '1 microsecond',
       now() - interval '10 days', now() - interval '10 days'
  FROM credentials c, earner_b b
 WHERE c.title ~ '^scale-[0-9]{4}$';
-- the two heads of ineligible work, then eligible work behind them
INSERT INTO submissions (credential_id, earner_id, earner_org_id, status, queued_at, created_at, updated_at)
SELECT c.id, a.id, a.org_id, 'queued', now() - interval '20 days' + a.i * interval '1 millisecond',
       now() - interval '20 days', now() - interval '20 days'
  FROM credentials c, earner_a a
 WHERE c.title IN ('scale-own', 'scale-released');
INSERT INTO submissions (credential_id, earner_id, earner_org_id, status, queued_at, created_at, updated_at)
SELECT c.id, b.id, b.org_id, 'queued', now() - interval '5 days' + b.i * interval '1 millisecond',
       now() - interval '5 days', now() - interval '5 days'
  FROM credentials c, earner_b b
 WHERE c.title IN ('scale-own', 'scale-released');

-- assessors
INSERT INTO users (email, name, roles, org_id)
SELECT 'scale-' || n || '@example.org', 'Assessor ' || n, '{assessor}',
       (SELECT id FROM organisations WHERE name = CASE WHEN n = 'own' THEN 'scale-a' ELSE 'scale-assessors' END)
  FROM unnest(ARRAY['g1', 'g10', 'g100', 'g500', 'own', 'rel', 'loop']) n;
INSERT INTO tokens (token_hash, user_id)
SELECT encode(sha256(convert_to(bench_token(n), 'UTF8')), 'hex'), u.id
  FROM unnest(ARRAY['g1', 'g10', 'g100', 'g500', 'own', 'rel', 'loop']) n
  JOIN users u ON u.email = 'scale-' || n || '@example.org';
INSERT INTO assessor_grants (credential_id, user_id, pool, granted_by)
SELECT c.id, u.id, 'peer', c.created_by
  FROM users u, credentials c
 WHERE (u.email, c.title ~ '^scale-[0-9]{4}$') IN (('scale-g1@example.org', true), ('scale-g10@example.org', true),
                                                   ('scale-g100@example.org', true), ('scale-g500@example.org', true))
   AND right(c.title, 4)::int <= CASE u.email WHEN 'scale-g1@example.org' THEN 1 WHEN 'scale-g10@example.org' THEN 10
                                              WHEN 'scale-g100@example.org' THEN 100 WHEN 'scale-g500@example.org' THEN 500
                                              ELSE 1 END;
INSERT INTO assessor_grants (credential_id, user_id, pool, granted_by)
SELECT c.id, u.id, 'peer', c.created_by FROM users u, credentials c
 WHERE (u.email, c.title) IN (('scale-own@example.org', 'scale-own'), ('scale-rel@example.org', 'scale-released'),
                              ('scale-loop@example.org', 'scale-own'));
INSERT INTO qualifications (user_id, rubric_id, status, reason, qualified_at)
SELECT u.id, r.id, 'qualified', 'bench', now() FROM users u, rubrics r
 WHERE u.email ~ '^scale-(g1|g10|g100|g500|own|rel|loop)@' AND r.title = 'Scale rubric';

-- "rel" claimed and released the 10^5 at the head of scale-released
INSERT INTO reviews (submission_id, assessor_id, status, claimed_at, lease_expires_at, ended_at, stage, pool)
SELECT s.id, u.id, 'released', s.queued_at + interval '1 hour', s.queued_at + interval '3 hours',
       s.queued_at + interval '2 hours', 'first', 'peer'
  FROM submissions s JOIN credentials c ON c.id = s.credential_id, users u
 WHERE c.title = 'scale-released' AND s.earner_org_id = (SELECT id FROM organisations WHERE name = 'scale-a')
   AND u.email = 'scale-rel@example.org';

CREATE TABLE bench_latency (scenario text, n int, ms float8);

CREATE PROCEDURE bench_claims(p_name text, p_n int, p_mode text)
LANGUAGE plpgsql AS $$
DECLARE
    v_tok text := encode(sha256(convert_to(bench_token(p_name), 'UTF8')), 'hex');
    t0 timestamptz;
    j json;
    i int;
BEGIN
    -- the claim -> release loop may give back more than the usual bound
    PERFORM set_config('accord.max_releases', '10000', false);
    FOR i IN 1 .. p_n LOOP
        t0 := clock_timestamp();
        j := api_review_claim(v_tok, '{}', 7200);
        INSERT INTO bench_latency VALUES (p_name, i, extract(epoch FROM clock_timestamp() - t0) * 1000);
        IF j IS NULL THEN
            RAISE EXCEPTION 'bench_claims %: claim % found nothing', p_name, i;
        END IF;
        COMMIT;
        IF p_mode = 'release' THEN
            PERFORM api_review_release(v_tok, (j ->> 'id')::uuid);
        ELSE
            UPDATE submissions SET status = 'queued', current_review_id = NULL, lease_expires_at = NULL
             WHERE id = (j -> 'submission' ->> 'id')::uuid;
            DELETE FROM reviews WHERE id = (j ->> 'id')::uuid;
        END IF;
        COMMIT;
    END LOOP;
END $$;
COMMIT;
VACUUM ANALYZE;
