-- SPDX-License-Identifier: Apache-2.0
-- 005_routing.sql - calibration (issue 4): the reliability-driven peer/expert
-- split and the lead reports.
--
-- Completed low-stakes peer/expert pairs (score_pairs, written by
-- api_review_score) feed the reliability estimate, computed by the server in C
-- from reliability_pairs() and applied by routing_update(): peer review pauses
-- and resumes, and the second-score share follows the estimate.

-- ---------------------------------------------------------------------------
-- Reliability (internal: only the server calls these, no token)
-- ---------------------------------------------------------------------------

-- The pairs the estimate uses: the most recent 200 scored since the last
-- pause began (all of them before any pause); while paused, those whose peer
-- scored after the pause.
CREATE FUNCTION reliability_pairs(p_credential uuid) RETURNS json
LANGUAGE plpgsql STABLE AS $$
DECLARE
    c credentials;
    rb rubrics;
BEGIN
    SELECT * INTO c FROM credentials WHERE id = p_credential;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'credential not found' USING ERRCODE = 'AC404', DETAIL = 'not_found';
    END IF;
    SELECT * INTO rb FROM rubrics WHERE id = c.rubric_id;
    RETURN json_build_object(
        'credential_id', c.id,
        'paused', c.peer_paused_at IS NOT NULL,
        'levels', (SELECT coalesce(json_agg(DISTINCT (l ->> 'value')::int ORDER BY (l ->> 'value')::int), '[]'::json)
                     FROM jsonb_array_elements(rb.criteria) cr, jsonb_array_elements(cr -> 'levels') l),
        'rows', (SELECT coalesce(json_agg(json_build_array(x.unit, x.rater, x.level)
                                          ORDER BY x.paired_at DESC, x.unit, x.rater DESC), '[]'::json)
                   FROM (SELECT p.paired_at, p.submission_id || ':' || sc.criterion AS unit,
                                CASE WHEN sc.review_id = p.peer_review_id THEN 'peer' ELSE 'expert' END AS rater,
                                sc.level
                           FROM (SELECT * FROM score_pairs sp
                                  WHERE sp.credential_id = c.id
                                    AND sp.peer_scored_at > coalesce(c.peer_paused_at,
                                                                     (c.routing_state ->> 'since')::timestamptz,
                                                                     '-infinity')
                                  ORDER BY sp.paired_at DESC
                                  LIMIT 200) p
                           JOIN review_scores sc ON sc.review_id IN (p.peer_review_id, p.expert_review_id)) x));
END $$;

-- Applies a new estimate (p_kappa/p_lo/p_hi NULL = undefined): pause / resume
-- peer review, the second-score share; returns the routing state.
CREATE FUNCTION routing_update(p_credential uuid, p_pairs int, p_kappa float8, p_lo float8,
                               p_hi float8) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    c credentials;
    v_t numeric;
    v_share numeric;
    v_reason text;
    v_state jsonb;
    v_ci text;
    v_since timestamptz;
BEGIN
    SELECT * INTO c FROM credentials WHERE id = p_credential FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'credential not found' USING ERRCODE = 'AC404', DETAIL = 'not_found';
    END IF;
    v_t := c.reliability_threshold;
    -- the pairs reliability_pairs() hands out (p_pairs is only a fallback)
    SELECT least(count(*), 200) INTO p_pairs
      FROM score_pairs sp
     WHERE sp.credential_id = c.id
       AND sp.peer_scored_at > coalesce(c.peer_paused_at, (c.routing_state ->> 'since')::timestamptz,
                                        '-infinity');
    v_ci := CASE WHEN p_lo IS NOT NULL THEN format('%s–%s', round(p_lo::numeric, 2), round(p_hi::numeric, 2)) END;
    -- second-score share: the default below min_pairs (or undefined); then
    -- 1.0 at or under the threshold, the floor at threshold + 0.2, linear between
    -- (on the lower bound of the interval)
    IF p_kappa IS NULL OR p_lo IS NULL OR p_pairs < c.min_pairs THEN
        v_share := NULL;
    ELSIF p_lo::numeric <= v_t THEN
        v_share := 1.0;
    ELSIF p_lo::numeric >= v_t + 0.2 THEN
        v_share := c.second_score_floor;
    ELSE
        v_share := round(1.0 + (p_lo::numeric - v_t) / 0.2 * (c.second_score_floor - 1.0), 4);
    END IF;
    v_reason := c.routing_state ->> 'reason';
    IF p_kappa IS NOT NULL AND p_lo IS NOT NULL AND p_pairs >= c.min_pairs THEN
        IF c.peer_paused_at IS NULL AND p_lo::numeric < v_t THEN
            v_reason := format('peer review paused: quadratic-weighted kappa %s (95%% CI %s) over %s peer/expert pairs; the lower bound is under the threshold %s',
                               round(p_kappa::numeric, 2), v_ci, p_pairs, v_t);
            c.peer_paused_at := now();
            UPDATE credentials SET peer_paused_at = c.peer_paused_at WHERE id = c.id;
            INSERT INTO audit_log (actor_id, action, object_type, object_id, detail)
            VALUES (NULL, 'routing.pause', 'credential', c.id,
                    jsonb_build_object('kappa', p_kappa, 'ci', jsonb_build_array(p_lo, p_hi),
                                       'pairs', p_pairs, 'threshold', v_t, 'reason', v_reason));
            -- the credential's qualified peers need recalibration
            PERFORM _qualification_put(g.user_id, c.rubric_id, 'needs_recalibration',
                                       format('peer review of "%s" paused: kappa %s (95%% CI %s) over %s pairs is under %s',
                                              c.title, round(p_kappa::numeric, 2), v_ci, p_pairs, v_t),
                                       NULL, 'routing')
              FROM assessor_grants g
              JOIN qualifications q ON q.user_id = g.user_id AND q.rubric_id = c.rubric_id
                                   AND q.status = 'qualified'
             WHERE g.credential_id = c.id AND g.pool = 'peer';
        ELSIF c.peer_paused_at IS NOT NULL AND p_lo::numeric >= v_t THEN
            v_reason := format('peer review resumed: kappa %s (95%% CI %s) over %s pairs since the pause reaches the threshold %s',
                               round(p_kappa::numeric, 2), v_ci, p_pairs, v_t);
            v_since := c.peer_paused_at;
            c.peer_paused_at := NULL;
            UPDATE credentials SET peer_paused_at = NULL WHERE id = c.id;
            INSERT INTO audit_log (actor_id, action, object_type, object_id, detail)
            VALUES (NULL, 'routing.resume', 'credential', c.id,
                    jsonb_build_object('kappa', p_kappa, 'ci', jsonb_build_array(p_lo, p_hi),
                                       'pairs', p_pairs, 'threshold', v_t, 'reason', v_reason));
        END IF;
    END IF;
    v_since := coalesce(v_since, (c.routing_state ->> 'since')::timestamptz);
    v_state := jsonb_build_object('since', _ts(v_since), 'pairs', p_pairs, 'kappa', p_kappa,
                                  'ci', CASE WHEN p_lo IS NOT NULL THEN jsonb_build_array(p_lo, p_hi) END,
                                  'share', v_share, 'reason', v_reason, 'updated_at', _ts(now()));
    UPDATE credentials SET routing_state = v_state WHERE id = c.id;
    RETURN _routing_json(c.id);
END $$;

CREATE FUNCTION _routing_json(p_credential uuid) RETURNS json
LANGUAGE plpgsql STABLE AS $$
DECLARE
    c credentials;
BEGIN
    SELECT * INTO c FROM credentials WHERE id = p_credential;
    RETURN json_build_object(
        'credential_id', c.id, 'title', c.title, 'stakes', c.stakes,
        'peer_review', CASE WHEN c.peer_paused_at IS NULL THEN 'active' ELSE 'paused' END,
        'paused_at', _ts(c.peer_paused_at),
        'reason', c.routing_state -> 'reason',
        'pairs', coalesce((c.routing_state ->> 'pairs')::int, 0),
        'kappa', c.routing_state -> 'kappa', 'ci', c.routing_state -> 'ci',
        'second_score_share', coalesce((c.routing_state ->> 'share')::numeric, _second_rate(c)));
END $$;

-- ---------------------------------------------------------------------------
-- Reports (lead). p_query: the URL query as a JSON object of strings.
-- ---------------------------------------------------------------------------

-- credential_id from the query: 400 when missing or not a canonical UUID,
-- 404 unknown.
CREATE FUNCTION _query_credential(q jsonb) RETURNS credentials
LANGUAGE plpgsql STABLE AS $$
DECLARE
    c credentials;
    v_id uuid := _q_uuid(q -> 'credential_id', 'credential_id', true);
BEGIN
    SELECT * INTO c FROM credentials WHERE id = v_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'credential not found' USING ERRCODE = 'AC404', DETAIL = 'not_found';
    END IF;
    RETURN c;
END $$;

-- An ISO 8601 / RFC 3339 timestamp string; 400 when malformed.
CREATE FUNCTION _q_time(v jsonb, p_field text) RETURNS timestamptz
LANGUAGE plpgsql STABLE AS $$
DECLARE
    s text := _j_text(v, p_field, false, 64);
BEGIN
    IF s IS NULL THEN
        RETURN NULL;
    END IF;
    IF s !~ '^\d{4}-\d\d-\d\d([T ]\d\d:\d\d(:\d\d(\.\d{1,6})?)?(Z|z|[+-]\d\d(:?\d\d)?)?)?$' THEN
        PERFORM _bad(format('%s must be an ISO 8601 timestamp such as 2025-01-31T00:00:00Z', p_field));
    END IF;
    BEGIN
        RETURN s::timestamptz;
    EXCEPTION WHEN OTHERS THEN
        PERFORM _bad(format('%s is not a valid date or time: %s', p_field, s));
    END;
    RETURN NULL;
END $$;

-- The live scores of a credential (all submitted non-validity reviews).
CREATE FUNCTION _live_scores(p_credential uuid, p_pool text, p_since timestamptz)
RETURNS TABLE (submission_id uuid, assessor_id uuid, criterion text, cpos int, level int)
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN QUERY
    SELECT s.id, r.assessor_id, sc.criterion, sc.position, sc.level
      FROM submissions s
      JOIN reviews r ON r.submission_id = s.id
      JOIN review_scores sc ON sc.review_id = r.id
     WHERE s.credential_id = p_credential AND s.status <> 'validity'
       AND r.status = 'submitted' AND r.stage <> 'validity'
       AND (p_pool = 'all' OR r.pool = p_pool)
       AND (p_since IS NULL OR r.scored_at >= p_since);
END $$;

CREATE FUNCTION api_report_agreement_rows(p_token text, p_query jsonb) RETURNS json
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_me users := _auth_role(p_token, '{lead}');
    q jsonb := _body(p_query);
    c credentials;
    rb rubrics;
    v_pool text;
    v_since timestamptz;
BEGIN
    PERFORM _only_keys(q, '{credential_id,pool,since}', 'query parameter');
    c := _query_credential(q);
    v_pool := coalesce(_j_text(q -> 'pool', 'pool', false, 16), 'all');
    IF v_pool NOT IN ('peer','expert','all') THEN
        PERFORM _bad('pool must be peer, expert or all');
    END IF;
    v_since := _q_time(q -> 'since', 'since');
    SELECT * INTO rb FROM rubrics WHERE id = c.rubric_id;
    RETURN json_build_object(
        'credential_id', c.id, 'pool', v_pool, 'since', _ts(v_since),
        'criteria', (SELECT json_agg(x ->> 'key' ORDER BY o)
                       FROM jsonb_array_elements(rb.criteria) WITH ORDINALITY t(x, o)),
        'levels', (SELECT coalesce(json_agg(DISTINCT (l ->> 'value')::int ORDER BY (l ->> 'value')::int), '[]'::json)
                     FROM jsonb_array_elements(rb.criteria) cr, jsonb_array_elements(cr -> 'levels') l),
        'rows', (SELECT coalesce(json_agg(json_build_array(x.cpos - 1, x.submission_id, x.assessor_id, x.level)
                                          ORDER BY x.cpos, x.submission_id, x.assessor_id), '[]'::json)
                   FROM _live_scores(c.id, v_pool, v_since) x));
END $$;

CREATE FUNCTION api_report_ratings_csv(p_token text, p_query jsonb) RETURNS json
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_me users := _auth_role(p_token, '{lead}');
    q jsonb := _body(p_query);
    c credentials;
BEGIN
    PERFORM _only_keys(q, '{credential_id}', 'query parameter');
    c := _query_credential(q);
    RETURN json_build_object('csv',
        'unit,rater,score' || E'\n' ||
        coalesce((SELECT string_agg(x.submission_id || ':' || x.criterion || ',' || x.assessor_id || ',' || x.level,
                                    E'\n' ORDER BY x.submission_id, x.cpos, x.assessor_id) || E'\n'
                    FROM _live_scores(c.id, 'all', NULL) x), ''));
END $$;

CREATE FUNCTION api_report_routing(p_token text) RETURNS json
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_me users := _auth_role(p_token, '{lead}');
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
                                               AND s.stage = 'adjudication')))
                                  ORDER BY c.created_at, c.id), '[]'::json)
           FROM credentials c));
END $$;

-- Per assessor on a rubric: qualification, live items, validity window,
-- severity (mean signed level difference, positive = lenient) vs masters
-- (validity items) and vs experts (double scores), and a trend (the exact
-- share of the window's items, oldest first).
CREATE FUNCTION api_report_assessors(p_token text, p_query jsonb) RETURNS json
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_me users := _auth_role(p_token, '{lead}');
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
             OR EXISTS (SELECT 1 FROM calibration_window cw WHERE cw.user_id = u.id AND cw.rubric_id = rb.id)));
END $$;
