-- 006_calibration_fixes.sql - fixes to 004/005 from the HTTP tests.
--
-- * resumable uploads (tus) stay earner-only: leads upload anchor evidence
--   with POST /v1/artifacts (004 had opened both);
-- * query-string ids must be canonical (dashed) UUIDs;
-- * a blank qualification reason is refused;
-- * after peer review resumes, the estimate reads only pairs scored since the
--   last pause began (else the unreliable pairs that caused the pause would
--   pause it again at once), and routing_update counts the pairs itself.

DO $$
DECLARE
    f record;
    v_new text;
BEGIN
    FOR f IN SELECT p.proname, pg_get_functiondef(p.oid) AS def
               FROM pg_proc p
              WHERE p.pronamespace = 'public'::regnamespace
                AND p.proname IN ('api_upload_create', 'api_upload_get', 'api_upload_begin',
                                  'api_upload_advance', 'api_upload_finish') LOOP
        v_new := replace(f.def, '_auth_role(p_token, ''{earner,lead}'')',
                         '_auth_role(p_token, ''{earner}'')');
        IF v_new = f.def THEN
            RAISE EXCEPTION '006: % does not authorize with {earner,lead}', f.proname;
        END IF;
        EXECUTE v_new;
    END LOOP;
END $$;

-- A UUID query parameter: the canonical 8-4-4-4-12 form only.
CREATE FUNCTION _q_uuid(v jsonb, p_field text, p_required boolean) RETURNS uuid
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF jsonb_typeof(v) = 'string'
       AND (v #>> '{}') !~ '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$' THEN
        PERFORM _bad(format('%s is not a valid UUID: %s', p_field, left(v #>> '{}', 64)), 'invalid_uuid');
    END IF;
    RETURN _j_uuid(v, p_field, p_required);
END $$;

CREATE OR REPLACE FUNCTION api_anchor_list(p_token text, p_query jsonb) RETURNS json
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_me users := _auth_role(p_token, '{lead}');
    q jsonb := _body(p_query);
    v_rid uuid;
BEGIN
    PERFORM _only_keys(q, '{rubric_id}', 'query parameter');
    v_rid := _q_uuid(q -> 'rubric_id', 'rubric_id', false);
    IF v_rid IS NOT NULL THEN
        PERFORM _rubric_lookup(v_rid);
    END IF;
    RETURN json_build_object('anchors',
        (SELECT coalesce(json_agg(_anchor_json(x) ORDER BY x.created_at, x.id), '[]'::json)
           FROM (SELECT * FROM anchors a
                  WHERE v_rid IS NULL OR a.rubric_id = v_rid
                  ORDER BY a.created_at, a.id LIMIT 1000) x));
END $$;

CREATE OR REPLACE FUNCTION _query_credential(q jsonb) RETURNS credentials
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

CREATE OR REPLACE FUNCTION api_report_assessors(p_token text, p_query jsonb) RETURNS json
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
                        'vs_master', (SELECT round(sum(cw.diff_sum)::numeric / nullif(sum(cw.n), 0), 3)
                                        FROM calibration_window cw
                                       WHERE cw.user_id = u.id AND cw.rubric_id = rb.id
                                         AND cw.source = 'validity'),
                        'vs_experts', (SELECT round(sum(cw.diff_sum)::numeric / nullif(sum(cw.n), 0), 3)
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

-- The pairs the estimate uses: the most recent 200 scored since the last
-- pause began (all of them before any pause); while paused, those whose peer
-- scored after the pause.
CREATE OR REPLACE FUNCTION reliability_pairs(p_credential uuid) RETURNS json
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

CREATE OR REPLACE FUNCTION routing_update(p_credential uuid, p_pairs int, p_kappa float8, p_lo float8,
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

CREATE OR REPLACE FUNCTION api_qualification_set(p_token text, p_user uuid, p_body jsonb) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    v_me users := _auth_role(p_token, '{lead}');
    b jsonb := _body(p_body);
    v_rid uuid := _j_uuid(b -> 'rubric_id', 'rubric_id', true);
    v_status text := _j_text(b -> 'status', 'status', true, 64);
    v_reason text := _j_text(b -> 'reason', 'reason', true, 2000);
    u users;
    r rubrics;
    q qualifications;
BEGIN
    IF btrim(v_reason) = '' THEN
        PERFORM _bad('reason must not be blank: say why (it goes to the audit log)');
    END IF;
    IF v_status NOT IN ('qualified','needs_recalibration') THEN
        PERFORM _bad('status must be "qualified" or "needs_recalibration"');
    END IF;
    SELECT * INTO u FROM users WHERE id = p_user;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'user not found' USING ERRCODE = 'AC404', DETAIL = 'not_found';
    END IF;
    IF NOT (u.roles && '{assessor,expert}') THEN
        RAISE EXCEPTION 'only assessors and experts are qualified to score'
            USING ERRCODE = 'AC422', DETAIL = 'invalid_qualification';
    END IF;
    r := _rubric_lookup(v_rid, 'unknown_rubric');
    q := _qualification_put(u.id, r.id, v_status, v_reason, v_me.id, 'lead');
    RETURN json_build_object('user_id', q.user_id, 'rubric_id', q.rubric_id, 'status', q.status,
                             'reason', q.reason, 'updated_at', _ts(q.updated_at));
END $$;
