-- SPDX-License-Identifier: Apache-2.0
-- 018_replica: reports read from a streaming standby (issue 13 item 4).
--
-- A standby cannot write, and every report writes its report.read audit row.
-- So a report read from the replica is split in two (server/replica.h):
--
--   api_report_access(token, report, query)   on the primary: who asks, the
--                                               query's checks, the audit row
--   report_agreement_data(query, known)       on the replica (or, when it
--   report_ratings_page(query, after, limit)   cannot answer, the primary):
--   report_assessors_data(query)               the data; read-only, no token
--   report_routing_data()
--
-- The one-call functions (017's api_report_agreement_data and
-- api_report_ratings_page, 006's api_report_assessors, 012's
-- api_report_routing) keep their contract and are now the two halves in one
-- transaction, so both paths build the same answer from the same code.
--
-- The report cache (server/report_cache.h) keeps an agreement answer while
-- the newest score is unchanged, once that score is over a minute older
-- than "now" (no transaction lives a minute: one that began earlier and
-- commits later cannot slip in under the kept stamp). On a standby "now" is
-- not what the data shows: it shows the primary as of the last transaction
-- it replayed. report_agreement_data measures the minute from that commit's
-- time (pg_last_xact_replay_timestamp()), read before the data: every
-- transaction the standby has not replayed yet commits after it, so began
-- less than a minute before it, so after any score a cacheable answer saw.

-- The query checks of a report (017's, 006's: in their order) and its audit row.
CREATE FUNCTION _report_access(v_me users, p_report text, p_query jsonb) RETURNS credentials
LANGUAGE plpgsql AS $$
DECLARE
    q jsonb := _body(p_query);
    c credentials;
    rb rubrics;
    v_pool text;
BEGIN
    CASE p_report
    WHEN 'agreement' THEN
        PERFORM _only_keys(q, '{credential_id,pool,since}', 'query parameter');
        c := _query_credential(q);
        v_pool := coalesce(_j_text(q -> 'pool', 'pool', false, 16), 'all');
        IF v_pool NOT IN ('peer','expert','all') THEN
            PERFORM _bad('pool must be peer, expert or all');
        END IF;
        PERFORM _q_time(q -> 'since', 'since');
    WHEN 'ratings.csv' THEN
        PERFORM _only_keys(q, '{credential_id}', 'query parameter');
        c := _query_credential(q);
    WHEN 'assessors' THEN
        -- 006's checks and audit row: the rubric is the object
        PERFORM _only_keys(q, '{rubric_id}', 'query parameter');
        rb := _rubric_lookup(_q_uuid(q -> 'rubric_id', 'rubric_id', true));
        PERFORM _audit_read(v_me.id, 'report.read', 'rubric', rb.id, NULL,
                            jsonb_build_object('report', 'assessors'));
        RETURN NULL;
    WHEN 'routing' THEN
        -- 006's (and 012's) audit row: no object, no query
        PERFORM _audit_read(v_me.id, 'report.read', 'report', NULL, NULL,
                            jsonb_build_object('report', 'routing'));
        RETURN NULL;
    ELSE
        PERFORM _bad(format('unknown report %s', left(p_report, 40)));
    END CASE;
    PERFORM _audit_read(v_me.id, 'report.read', 'credential', c.id, NULL,
                        jsonb_build_object('report', p_report, 'query', q));
    RETURN c;
END $$;

-- The primary's half of a report the replica answers.
CREATE FUNCTION api_report_access(p_token text, p_report text, p_query jsonb) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    v_me users := _auth_role(p_token, '{lead}');
BEGIN
    PERFORM _report_access(v_me, p_report, p_query);
    RETURN json_build_object('report', p_report);
END $$;

-- 017's agreement data without the token and the audit row: a header line
-- (JSON: credential_id, pool, since, criteria, levels, stamp, cacheable,
-- unchanged), then unless unchanged one line per scored review. Volatile on
-- purpose: each statement takes its own snapshot, after v_horizon was read.
CREATE FUNCTION report_agreement_data(p_query jsonb, p_known text) RETURNS text
LANGUAGE plpgsql
SET plan_cache_mode = force_custom_plan
SET work_mem = '32MB' AS $$
DECLARE
    v_horizon timestamptz := CASE WHEN pg_is_in_recovery()
                                  THEN coalesce(pg_last_xact_replay_timestamp(), '-infinity')
                                  ELSE now() END;
    q jsonb := _body(p_query);
    c credentials;
    rb rubrics;
    v_pool text;
    v_since timestamptz;
    v_newest timestamptz;
    v_stamp text;
    v_same boolean;
BEGIN
    PERFORM _only_keys(q, '{credential_id,pool,since}', 'query parameter');
    c := _query_credential(q);
    v_pool := coalesce(_j_text(q -> 'pool', 'pool', false, 16), 'all');
    IF v_pool NOT IN ('peer','expert','all') THEN
        PERFORM _bad('pool must be peer, expert or all');
    END IF;
    v_since := _q_time(q -> 'since', 'since');
    SELECT * INTO rb FROM rubrics WHERE id = c.rubric_id;
    SELECT max(r.scored_at) INTO v_newest
      FROM reviews r
     WHERE r.credential_id = c.id AND r.status = 'submitted' AND r.stage <> 'validity';
    v_stamp := format('%s/%s/%s/%s', c.id, v_pool, coalesce(_ts(v_since), ''), coalesce(_ts(v_newest), 'none'));
    v_same := p_known IS NOT NULL AND p_known = v_stamp;
    RETURN json_build_object(
        'credential_id', c.id, 'pool', v_pool, 'since', _ts(v_since),
        'criteria', (SELECT json_agg(x ->> 'key' ORDER BY o)
                       FROM jsonb_array_elements(rb.criteria) WITH ORDINALITY t(x, o)),
        'levels', (SELECT coalesce(json_agg(DISTINCT (l ->> 'value')::int ORDER BY (l ->> 'value')::int), '[]'::json)
                     FROM jsonb_array_elements(rb.criteria) cr, jsonb_array_elements(cr -> 'levels') l),
        'stamp', v_stamp,
        'cacheable', v_newest IS NULL OR v_newest < v_horizon - interval '1 minute',
        'unchanged', v_same)::text
        || E'\n'
        || CASE WHEN v_same THEN '' ELSE coalesce(
               (SELECT string_agg(x.line, E'\n')
                  FROM (SELECT r.submission_id || ' ' || r.assessor_id || ' '
                               || array_to_string(r.levels, ',', '') AS line
                          FROM reviews r
                         WHERE r.credential_id = c.id AND r.status = 'submitted'
                           AND r.stage <> 'validity'
                           AND (v_pool = 'all' OR r.pool = v_pool)
                           AND (v_since IS NULL OR r.scored_at >= v_since)
                         ORDER BY r.submission_id, r.assessor_id) x), '') END;
END $$;

-- 017's ratings.csv page without the token and the audit row (the first
-- page's row is written by the caller: api_report_access, or below).
CREATE FUNCTION report_ratings_page(p_query jsonb, p_after uuid, p_limit int) RETURNS text
LANGUAGE plpgsql
SET plan_cache_mode = force_custom_plan AS $$
DECLARE
    q jsonb := _body(p_query);
    c credentials;
    v_keys text[];
    v_last uuid;
    v_n int;
    v_csv text;
BEGIN
    PERFORM _only_keys(q, '{credential_id}', 'query parameter');
    c := _query_credential(q);
    IF p_limit IS NULL OR p_limit < 1 OR p_limit > 5000 THEN
        PERFORM _bad('page size out of range');
    END IF;
    SELECT array_agg(x ->> 'key' ORDER BY o) INTO v_keys
      FROM credentials c2 JOIN rubrics rb ON rb.id = c2.rubric_id,
           jsonb_array_elements(rb.criteria) WITH ORDINALITY t(x, o)
     WHERE c2.id = c.id;
    WITH subs AS (
        SELECT DISTINCT r.submission_id
          FROM reviews r
         WHERE r.credential_id = c.id AND r.status = 'submitted' AND r.stage <> 'validity'
           AND (p_after IS NULL OR r.submission_id > p_after)
         ORDER BY r.submission_id
         LIMIT p_limit)
    SELECT (array_agg(subs.submission_id ORDER BY subs.submission_id DESC))[1], count(*)
      INTO v_last, v_n FROM subs;
    SELECT string_agg(r.submission_id || ':' || v_keys[k.pos] || ',' || r.assessor_id || ',' || k.level,
                      E'\n' ORDER BY r.submission_id, k.pos, r.assessor_id)
      INTO v_csv
      FROM reviews r
      CROSS JOIN LATERAL unnest(r.levels) WITH ORDINALITY AS k (level, pos)
     WHERE r.credential_id = c.id AND r.status = 'submitted' AND r.stage <> 'validity'
       AND (p_after IS NULL OR r.submission_id > p_after)
       AND r.submission_id <= v_last
       AND k.level IS NOT NULL;
    RETURN CASE WHEN v_n = p_limit THEN v_last::text ELSE '' END || E'\n'
        || CASE WHEN p_after IS NULL THEN 'unit,rater,score' || E'\n' ELSE '' END
        || coalesce(v_csv || E'\n', '');
END $$;

-- 017's one-call functions, now the two halves above in one transaction.
CREATE OR REPLACE FUNCTION api_report_agreement_data(p_token text, p_query jsonb, p_known text) RETURNS text
LANGUAGE plpgsql
SET plan_cache_mode = force_custom_plan
SET work_mem = '32MB' AS $$
DECLARE
    v_me users := _auth_role(p_token, '{lead}');
BEGIN
    PERFORM _report_access(v_me, 'agreement', p_query);
    RETURN report_agreement_data(p_query, p_known);
END $$;

CREATE OR REPLACE FUNCTION api_report_ratings_page(p_token text, p_query jsonb, p_after uuid, p_limit int)
RETURNS text
LANGUAGE plpgsql
SET plan_cache_mode = force_custom_plan AS $$
DECLARE
    v_me users := _auth_role(p_token, '{lead}');
BEGIN
    IF p_after IS NULL THEN
        -- 017 checked the page size before the audit row: so here
        IF p_limit IS NULL OR p_limit < 1 OR p_limit > 5000 THEN
            PERFORM _only_keys(_body(p_query), '{credential_id}', 'query parameter');
            PERFORM _query_credential(_body(p_query));
            PERFORM _bad('page size out of range');
        END IF;
        PERFORM _report_access(v_me, 'ratings.csv', p_query);
    END IF;
    RETURN report_ratings_page(p_query, p_after, p_limit);
END $$;

-- ---------------------------------------------------------------------------
-- The assessors and routing reports: the same split. Their data halves are
-- the latest bodies without the token and the audit row (assessors: 006's;
-- routing: 012_web's, with threshold and history), and the one-call
-- functions are the two halves in one transaction.

CREATE FUNCTION report_assessors_data(p_query jsonb) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    q jsonb := _body(p_query);
    v_rid uuid;
    rb rubrics;
BEGIN
    PERFORM _only_keys(q, '{rubric_id}', 'query parameter');
    v_rid := _q_uuid(q -> 'rubric_id', 'rubric_id', true);
    rb := _rubric_lookup(v_rid);
    RETURN json_build_object('rubric_id', rb.id, 'assessors',
        (SELECT coalesce(json_agg(json_build_object(
                    'user_id', u.id, 'name', u.name,
                    'status', qq.status, 'reason', qq.reason,
                    'calibration', (SELECT json_build_object(
                                        'failed_sessions', st.failed,
                                        'max_failed_sessions', rb.cal_max_failed,
                                        'blocked', st.failed >= rb.cal_max_failed,
                                        'last_allowed_at', _ts(st.allowed_at),
                                        'new_anchors', st.new_anchors,
                                        'anchor_pool_exhausted', st.new_anchors < rb.cal_set_size)
                                      FROM _calibration_standing(u.id, rb) st),
                    'churn', (SELECT json_build_object('unscored_24h', ch.n, 'limit', _max_releases(),
                                                       'blocked', ch.n >= _max_releases())
                                FROM (SELECT _churn_count(u.id) AS n) ch),
                    'items_scored', (SELECT count(*) FROM reviews r
                                       JOIN submissions s ON s.id = r.submission_id
                                       JOIN credentials c ON c.id = s.credential_id
                                      WHERE r.assessor_id = u.id AND r.status = 'submitted'
                                        AND r.stage <> 'validity' AND c.rubric_id = rb.id),
                    'validity', (SELECT json_build_object('items', w.items, 'exact', w.exact,
                                                          'adjacent', w.adjacent,
                                                          'verdict_agreement', w.verdict_agreement)
                                   FROM _window_stats(u.id, rb.id) w),
                    'severity', json_build_object(
                        'vs_master', (SELECT sum(cw.diff_sum)::float8 / nullif(sum(cw.n), 0)
                                        FROM calibration_window cw
                                       WHERE cw.user_id = u.id AND cw.rubric_id = rb.id
                                         AND cw.source = 'validity'),
                        'vs_experts', (SELECT sum(cw.diff_sum)::float8 / nullif(sum(cw.n), 0)
                                         FROM calibration_window cw
                                        WHERE cw.user_id = u.id AND cw.rubric_id = rb.id
                                          AND cw.source = 'double')),
                    'trend', (SELECT coalesce(json_agg(json_build_object('scored_at', _ts(t.scored_at),
                                                                         'source', t.source,
                                                                         'exact', t.exact)
                                                       ORDER BY t.scored_at, t.id), '[]'::json)
                                FROM (SELECT * FROM calibration_window cw
                                       WHERE cw.user_id = u.id AND cw.rubric_id = rb.id
                                       ORDER BY cw.scored_at DESC, cw.id DESC
                                       LIMIT rb.cal_window) t))
                  ORDER BY u.name, u.id), '[]'::json)
           FROM users u
           LEFT JOIN qualifications qq ON qq.user_id = u.id AND qq.rubric_id = rb.id
          WHERE qq.user_id IS NOT NULL
             OR EXISTS (SELECT 1 FROM calibration_window cw WHERE cw.user_id = u.id AND cw.rubric_id = rb.id)
             OR EXISTS (SELECT 1 FROM calibration_sessions cs WHERE cs.assessor_id = u.id AND cs.rubric_id = rb.id)));
END $$;

CREATE FUNCTION report_routing_data() RETURNS json
LANGUAGE plpgsql AS $$
BEGIN
    RETURN json_build_object('credentials',
        (SELECT coalesce(json_agg((_routing_json(c.id)::jsonb || jsonb_build_object(
                     'queue', jsonb_build_object(
                         'first', (SELECT count(*) FROM submissions s
                                    WHERE s.credential_id = c.id
                                      AND (s.status = 'queued'
                                           OR (s.status = 'in_review' AND s.stage = 'first'
                                               AND s.lease_expires_at < now()))),
                         'second', (SELECT count(*) FROM submissions s
                                     WHERE s.credential_id = c.id AND s.status = 'in_review'
                                       AND s.stage = 'second'
                                       AND (s.current_review_id IS NULL OR s.lease_expires_at < now())),
                         'adjudication', (SELECT count(*) FROM submissions s
                                           WHERE s.credential_id = c.id AND s.status = 'in_review'
                                             AND s.stage = 'adjudication'
                                             AND (s.current_review_id IS NULL OR s.lease_expires_at < now()))),
                     'oldest_waiting_hours',
                         (SELECT round(extract(epoch FROM now() - min(s.queued_at))::numeric / 3600, 2)
                            FROM submissions s
                           WHERE s.credential_id = c.id
                             AND (s.status = 'queued'
                                  OR (s.status = 'in_review'
                                      AND (s.current_review_id IS NULL OR s.lease_expires_at < now())))),
                     'adjudications_open', (SELECT count(*) FROM submissions s
                                             WHERE s.credential_id = c.id AND s.status = 'in_review'
                                               AND s.stage = 'adjudication'),
                     'threshold', c.reliability_threshold,
                     'history', (SELECT coalesce(jsonb_agg(jsonb_build_object(
                                            'at', _ts(h.at), 'pairs', h.pairs, 'kappa', h.kappa,
                                            'ci', CASE WHEN h.ci_lo IS NOT NULL
                                                       THEN jsonb_build_array(h.ci_lo, h.ci_hi) END)
                                            ORDER BY h.id), '[]'::jsonb)
                                   FROM (SELECT * FROM routing_history rh
                                          WHERE rh.credential_id = c.id
                                          ORDER BY rh.id DESC LIMIT 200) h)))
                                  ORDER BY c.created_at, c.id), '[]'::json)
           FROM credentials c));
END $$;

CREATE OR REPLACE FUNCTION api_report_assessors(p_token text, p_query jsonb) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    v_me users := _auth_role(p_token, '{lead}');
BEGIN
    PERFORM _report_access(v_me, 'assessors', p_query);
    RETURN report_assessors_data(p_query);
END $$;

CREATE OR REPLACE FUNCTION api_report_routing(p_token text) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    v_me users := _auth_role(p_token, '{lead}');
BEGIN
    PERFORM _report_access(v_me, 'routing', NULL);
    RETURN report_routing_data();
END $$;
