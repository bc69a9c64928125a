-- SPDX-License-Identifier: Apache-2.0
-- 004_calibration.sql - calibration (issue 4): rubric calibration settings,
-- credential review policy, anchors, qualification sessions, qualifications
-- and the rolling validity window. The tables are in 001_schema.sql; the
-- review pipeline that uses them (stages, validity items, double scoring) is
-- in 002_api.sql, the reliability-driven peer/expert split in 005_routing.sql.
--
-- Shares are numeric (0.70 stays 0.70 in JSON). Level distances ("within one
-- level", "more than one level apart") are counted in positions of the
-- criterion's sorted levels, not in level values.

-- ---------------------------------------------------------------------------
-- Helpers
-- ---------------------------------------------------------------------------

-- A number field (JSON number) within [p_lo, p_hi]; 422 p_code when outside.
CREATE FUNCTION _j_num(v jsonb, p_field text, p_lo numeric, p_hi numeric,
                       p_code text) RETURNS numeric
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    n numeric;
BEGIN
    IF v IS NULL OR jsonb_typeof(v) = 'null' THEN
        RETURN NULL;
    END IF;
    IF jsonb_typeof(v) <> 'number' THEN
        PERFORM _bad(format('%s must be a number', p_field));
    END IF;
    n := v::numeric;
    IF n < p_lo OR n > p_hi THEN
        RAISE EXCEPTION '% must be between % and %, got %', p_field, p_lo, p_hi, n
            USING ERRCODE = 'AC422', DETAIL = p_code;
    END IF;
    RETURN n;
END $$;

-- An integer field within [p_lo, p_hi]; 422 p_code when outside.
CREATE FUNCTION _j_int_range(v jsonb, p_field text, p_lo int, p_hi int, p_code text) RETURNS int
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    n int := _j_int(v, p_field, false);
BEGIN
    IF n < p_lo OR n > p_hi THEN
        RAISE EXCEPTION '% must be between % and %, got %', p_field, p_lo, p_hi, n
            USING ERRCODE = 'AC422', DETAIL = p_code;
    END IF;
    RETURN n;
END $$;

-- Rejects keys outside p_allowed (400 naming them).
CREATE FUNCTION _only_keys(b jsonb, p_allowed text[], p_what text) RETURNS void
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    v_bad text;
BEGIN
    SELECT string_agg(k, ', ' ORDER BY k) INTO v_bad
      FROM jsonb_object_keys(b) k WHERE k <> ALL(p_allowed);
    IF v_bad IS NOT NULL THEN
        PERFORM _bad(format('unknown %s: %s (known: %s)', p_what, left(v_bad, 200),
                            array_to_string(p_allowed, ', ')));
    END IF;
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

-- The level value verdicts on anchors are compared at.
CREATE FUNCTION _verdict_level(r rubrics) RETURNS int
LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(r.cal_verdict_level,
                    (SELECT (l ->> 'value')::int
                       FROM jsonb_array_elements(r.criteria -> 0 -> 'levels') WITH ORDINALITY t(l, o)
                      ORDER BY (l ->> 'value')::int
                     OFFSET jsonb_array_length(r.criteria -> 0 -> 'levels') / 2 LIMIT 1))
$$;

CREATE FUNCTION _calibration_json(r rubrics) RETURNS json
LANGUAGE sql STABLE AS $$
    SELECT json_build_object('rubric_id', r.id, 'exact_min', r.cal_exact_min,
                             'adjacent_min', r.cal_adjacent_min, 'verdict_min', r.cal_verdict_min,
                             'set_size', r.cal_set_size, 'window', r.cal_window,
                             'min_items', r.cal_min_items, 'verdict_level', r.cal_verdict_level)
$$;

-- Normalizes and validates scores (reviews, anchors and calibration items
-- alike, with the same messages and codes): every criterion once, at one of
-- its levels, comments (p_ckey: "comment", or "rationale" for master scores)
-- and cited evidence. Citable artifacts: those of submission p_sub or of anchor p_anchor.
-- pass: every level >= p_min.
CREATE FUNCTION _scores_norm(p_arr jsonb, p_keys text[], p_levels jsonb[], p_min int,
                             p_sub uuid, p_anchor uuid, p_ckey text,
                             OUT crit text[], OUT pos int[], OUT lvl int[], OUT com text[],
                             OUT ev jsonb[], OUT pass boolean)
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan AS $$
DECLARE
    v_fast boolean;
    v_min int;
    v_arts uuid[];
    e jsonb;
    ev1 jsonb;
    ev_arr jsonb;
    ev_norm jsonb;
    i int := 0;
    j int;
    k int;
    f text;
    v_key text;
    v_lvl int;
    v_aid uuid;
    v_start numeric;
    v_end numeric;
    v_note text;
BEGIN
    pass := true;
    -- Fast path: one query validates and normalizes well-formed scores
    -- without citations (the common case).
    SELECT coalesce(bool_and(coalesce(q.ok, false)), false)
               AND count(*) = cardinality(p_keys) AND count(DISTINCT q.pos) = count(*),
           array_agg(q.crit ORDER BY q.i), array_agg(q.pos ORDER BY q.i),
           array_agg(q.lvl ORDER BY q.i), array_agg(q.com ORDER BY q.i), min(q.lvl)
      INTO v_fast, crit, pos, lvl, com, v_min
      FROM (SELECT t.i, t.crit, t.pos, t.lvl, t.com,
                   t.pos IS NOT NULL AND t.lvl IS NOT NULL AND t.comok AND t.evok
                   AND p_levels[t.pos] @> jsonb_build_array(jsonb_build_object('value', t.lvl)) AS ok
              FROM (SELECT x.i,
                           x.j ->> 'criterion' AS crit,
                           CASE WHEN jsonb_typeof(x.j -> 'criterion') = 'string'
                                THEN array_position(p_keys, x.j ->> 'criterion') END AS pos,
                           CASE WHEN jsonb_typeof(x.j -> 'level') = 'number'
                                 AND (x.j -> 'level')::numeric BETWEEN -1000000 AND 1000000
                                 AND (x.j -> 'level')::numeric = trunc((x.j -> 'level')::numeric)
                                THEN (x.j -> 'level')::numeric::int END AS lvl,
                           CASE WHEN jsonb_typeof(x.j -> p_ckey) = 'string'
                                THEN x.j ->> p_ckey END AS com,
                           coalesce(jsonb_typeof(x.j -> p_ckey), 'null') = 'null'
                             OR (jsonb_typeof(x.j -> p_ckey) = 'string'
                                 AND length(x.j ->> p_ckey) <= 5000) AS comok,
                           coalesce(jsonb_typeof(x.j -> 'evidence'), 'null') = 'null'
                             OR x.j -> 'evidence' = '[]'::jsonb AS evok
                      FROM jsonb_array_elements(p_arr) WITH ORDINALITY x(j, i)) t) q;
    IF v_fast THEN
        ev := array_fill('[]'::jsonb, ARRAY[cardinality(crit)]);
        pass := v_min >= p_min;
        RETURN;
    END IF;
    crit := '{}';
    pos := '{}';
    lvl := '{}';
    com := '{}';
    ev := '{}';
    FOR e IN SELECT x FROM jsonb_array_elements(p_arr) x LOOP
        f := format('scores[%s]', i);
        IF jsonb_typeof(e) <> 'object' THEN
            PERFORM _bad(format('%s must be an object {"criterion","level","%s"?,"evidence"?}', f, p_ckey));
        END IF;
        v_key := _j_text(e -> 'criterion', f || '.criterion', true, 64);
        v_lvl := _j_int(e -> 'level', f || '.level', true);
        com := com || _j_text(e -> p_ckey, f || '.' || p_ckey, false, 5000, true);
        k := array_position(p_keys, v_key);
        IF k IS NULL THEN
            RAISE EXCEPTION 'unknown criterion "%": the rubric''s criteria are %', v_key,
                            array_to_string(p_keys, ', ')
                USING ERRCODE = 'AC422', DETAIL = 'invalid_scores';
        END IF;
        IF v_key = ANY(crit) THEN
            RAISE EXCEPTION 'criterion "%" is scored more than once', v_key
                USING ERRCODE = 'AC422', DETAIL = 'invalid_scores';
        END IF;
        IF NOT (p_levels[k] @> jsonb_build_array(jsonb_build_object('value', v_lvl))) THEN
            RAISE EXCEPTION 'level % is not a level of criterion "%" (levels: %)', v_lvl, v_key,
                            (SELECT string_agg(lv ->> 'value', ', ')
                               FROM jsonb_array_elements(p_levels[k]) lv)
                USING ERRCODE = 'AC422', DETAIL = 'invalid_scores';
        END IF;
        ev_arr := _j_array(e -> 'evidence', f || '.evidence', false, 20);
        ev_norm := '[]';
        j := 0;
        IF ev_arr IS NOT NULL THEN
            FOR ev1 IN SELECT x FROM jsonb_array_elements(ev_arr) x LOOP
                IF jsonb_typeof(ev1) <> 'object' THEN
                    PERFORM _bad(format('%s.evidence[%s] must be an object', f, j));
                END IF;
                v_aid := _j_uuid(ev1 -> 'artifact_id', format('%s.evidence[%s].artifact_id', f, j), true);
                v_start := _j_seconds(ev1 -> 'start_s', format('%s.evidence[%s].start_s', f, j));
                v_end := _j_seconds(ev1 -> 'end_s', format('%s.evidence[%s].end_s', f, j));
                v_note := _j_text(ev1 -> 'note', format('%s.evidence[%s].note', f, j), false, 1000, true);
                IF v_arts IS NULL THEN
                    IF p_sub IS NOT NULL THEN
                        SELECT coalesce(array_agg(artifact_id), '{}') INTO v_arts
                          FROM submission_artifacts WHERE submission_id = p_sub;
                    ELSE
                        SELECT coalesce(array_agg(artifact_id), '{}') INTO v_arts
                          FROM anchor_artifacts WHERE anchor_id = p_anchor;
                    END IF;
                END IF;
                IF NOT (v_aid = ANY(v_arts)) THEN
                    RAISE EXCEPTION '%.evidence[%] cites artifact %, which is not part of this %',
                                    f, j, v_aid, CASE WHEN p_sub IS NOT NULL THEN 'submission' ELSE 'evidence' END
                        USING ERRCODE = 'AC422', DETAIL = 'invalid_scores';
                END IF;
                IF v_end < v_start THEN
                    RAISE EXCEPTION '%.evidence[%]: end_s (%) is before start_s (%)', f, j, v_end, v_start
                        USING ERRCODE = 'AC422', DETAIL = 'invalid_scores';
                END IF;
                ev_norm := ev_norm || jsonb_build_array(jsonb_build_object(
                    'artifact_id', v_aid, 'start_s', v_start, 'end_s', v_end, 'note', v_note));
                j := j + 1;
            END LOOP;
        END IF;
        crit := crit || v_key;
        pos := pos || k;
        lvl := lvl || v_lvl;
        ev := ev || ev_norm;
        IF v_lvl < p_min THEN
            pass := false;
        END IF;
        i := i + 1;
    END LOOP;
    IF cardinality(crit) < cardinality(p_keys) THEN
        RAISE EXCEPTION 'every criterion must be scored; missing: %',
                        (SELECT string_agg(x, ', ') FROM unnest(p_keys) x WHERE x <> ALL(crit))
            USING ERRCODE = 'AC422', DETAIL = 'invalid_scores';
    END IF;
END $$;

-- The rubric's keys and level arrays in criterion order.
CREATE FUNCTION _rubric_keys(p_criteria jsonb, OUT keys text[], OUT levels jsonb[])
LANGUAGE sql IMMUTABLE AS $$
    SELECT array_agg(x ->> 'key' ORDER BY o), array_agg(x -> 'levels' ORDER BY o)
      FROM jsonb_array_elements(p_criteria) WITH ORDINALITY t(x, o)
$$;

-- Compares two score sets (a vs reference b) criterion by criterion, in
-- level positions: n compared, exact, within one, largest distance, signed
-- sum (a - b), and the criteria more than one level apart.
CREATE FUNCTION _cmp(p_criteria jsonb, a_crit text[], a_lvl int[], b_crit text[], b_lvl int[],
                     OUT n int, OUT n_exact int, OUT n_adj int, OUT max_dist int,
                     OUT diff_sum int, OUT far text[])
LANGUAGE plpgsql STABLE AS $$
BEGIN
    SELECT count(*), count(*) FILTER (WHERE t.ia = t.ib),
           count(*) FILTER (WHERE abs(t.ia - t.ib) <= 1),
           coalesce(max(abs(t.ia - t.ib)), 0), coalesce(sum(t.ia - t.ib), 0),
           coalesce(array_agg(t.c ORDER BY t.cp) FILTER (WHERE abs(t.ia - t.ib) > 1), '{}')
      INTO n, n_exact, n_adj, max_dist, diff_sum, far
      FROM (SELECT a.c, ca.o AS cp,
                   (SELECT lo FROM jsonb_array_elements(ca.x -> 'levels') WITH ORDINALITY l(l, lo)
                     WHERE (l.l ->> 'value')::int = a.v) AS ia,
                   (SELECT lo FROM jsonb_array_elements(ca.x -> 'levels') WITH ORDINALITY l(l, lo)
                     WHERE (l.l ->> 'value')::int = bb.v) AS ib
              FROM unnest(a_crit, a_lvl) a(c, v)
              JOIN unnest(b_crit, b_lvl) bb(c, v) ON bb.c = a.c
              JOIN jsonb_array_elements(p_criteria) WITH ORDINALITY ca(x, o) ON ca.x ->> 'key' = a.c) t;
END $$;

CREATE FUNCTION _share(p_num numeric, p_den numeric) RETURNS numeric
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN p_den > 0 THEN round(p_num / p_den, 4) END
$$;

-- The rolling window of (user, rubric): the last `window` rows scored since
-- the last qualification.
CREATE FUNCTION _window_stats(p_user uuid, p_rubric uuid,
                              OUT items int, OUT exact numeric, OUT adjacent numeric,
                              OUT verdict_agreement numeric)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_since timestamptz;
    v_size int;
BEGIN
    SELECT q.qualified_at INTO v_since FROM qualifications q
     WHERE q.user_id = p_user AND q.rubric_id = p_rubric;
    SELECT r.cal_window INTO v_size FROM rubrics r WHERE r.id = p_rubric;
    SELECT count(*), _share(sum(w.n_exact), sum(w.n)), _share(sum(w.n_adjacent), sum(w.n)),
           _share(count(*) FILTER (WHERE w.verdict_agree), count(*))
      INTO items, exact, adjacent, verdict_agreement
      FROM (SELECT * FROM calibration_window cw
             WHERE cw.user_id = p_user AND cw.rubric_id = p_rubric
               AND cw.scored_at >= coalesce(v_since, '-infinity')
             ORDER BY cw.scored_at DESC, cw.id DESC
             LIMIT v_size) w;
END $$;

-- After a window row: with at least min_items items and any share under its
-- threshold, a qualified assessor becomes needs_recalibration (audited).
CREATE FUNCTION _window_check(p_user uuid, p_rubric uuid) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    q qualifications;
    rb rubrics;
    w record;
    v_why text[] := '{}';
    v_reason text;
BEGIN
    SELECT * INTO q FROM qualifications WHERE user_id = p_user AND rubric_id = p_rubric FOR UPDATE;
    IF NOT FOUND OR q.status <> 'qualified' THEN
        RETURN false;
    END IF;
    SELECT * INTO rb FROM rubrics WHERE id = p_rubric;
    w := _window_stats(p_user, p_rubric);
    IF w.items < rb.cal_min_items THEN
        RETURN false;
    END IF;
    IF w.exact < rb.cal_exact_min THEN
        v_why := v_why || format('exact %s < %s', round(w.exact, 2), rb.cal_exact_min);
    END IF;
    IF w.adjacent < rb.cal_adjacent_min THEN
        v_why := v_why || format('adjacent %s < %s', round(w.adjacent, 2), rb.cal_adjacent_min);
    END IF;
    IF w.verdict_agreement < rb.cal_verdict_min THEN
        v_why := v_why || format('verdict agreement %s < %s', round(w.verdict_agreement, 2), rb.cal_verdict_min);
    END IF;
    IF cardinality(v_why) = 0 THEN
        RETURN false;
    END IF;
    v_reason := array_to_string(v_why, ', ') || format(' over the last %s items', w.items);
    UPDATE qualifications
       SET status = 'needs_recalibration', reason = v_reason, updated_by = NULL, updated_at = now()
     WHERE user_id = p_user AND rubric_id = p_rubric;
    INSERT INTO audit_log (actor_id, action, object_type, object_id, detail)
    VALUES (NULL, 'qualification.change', 'user', p_user,
            jsonb_build_object('rubric_id', p_rubric, 'status', 'needs_recalibration',
                               'reason', v_reason, 'source', 'window',
                               'window', jsonb_build_object('items', w.items, 'exact', w.exact,
                                                            'adjacent', w.adjacent,
                                                            'verdict_agreement', w.verdict_agreement)));
    RETURN true;
END $$;

-- Sets a qualification (upsert) and writes the audit row.
CREATE FUNCTION _qualification_put(p_user uuid, p_rubric uuid, p_status text, p_reason text,
                                   p_actor uuid, p_source text) RETURNS qualifications
LANGUAGE plpgsql AS $$
DECLARE
    q qualifications;
BEGIN
    INSERT INTO qualifications AS qq (user_id, rubric_id, status, reason, qualified_at, updated_by)
    VALUES (p_user, p_rubric, p_status, p_reason,
            CASE WHEN p_status = 'qualified' THEN now() END, p_actor)
    ON CONFLICT (user_id, rubric_id) DO UPDATE
       SET status = excluded.status, reason = excluded.reason,
           qualified_at = CASE WHEN excluded.status = 'qualified' THEN now() ELSE qq.qualified_at END,
           updated_by = excluded.updated_by, updated_at = now()
    RETURNING * INTO q;
    INSERT INTO audit_log (actor_id, action, object_type, object_id, detail)
    VALUES (p_actor, 'qualification.change', 'user', p_user,
            jsonb_build_object('rubric_id', p_rubric, 'status', p_status, 'reason', p_reason,
                               'source', p_source));
    RETURN q;
END $$;

CREATE FUNCTION _qualification_json(q qualifications) RETURNS json
LANGUAGE plpgsql STABLE AS $$
DECLARE
    w record := _window_stats(q.user_id, q.rubric_id);
BEGIN
    RETURN json_build_object('rubric_id', q.rubric_id, 'status', q.status, 'reason', q.reason,
                             'updated_at', _ts(q.updated_at),
                             'window', json_build_object('items', w.items, 'exact', w.exact,
                                                         'adjacent', w.adjacent,
                                                         'verdict_agreement', w.verdict_agreement));
END $$;

CREATE FUNCTION _rubric_lookup(p_id uuid, p_code text DEFAULT 'not_found') RETURNS rubrics
LANGUAGE plpgsql STABLE AS $$
DECLARE
    r rubrics;
BEGIN
    SELECT * INTO r FROM rubrics WHERE id = p_id;
    IF NOT FOUND THEN
        IF p_code = 'not_found' THEN
            RAISE EXCEPTION 'rubric not found' USING ERRCODE = 'AC404', DETAIL = 'not_found';
        END IF;
        RAISE EXCEPTION 'rubric % does not exist', p_id USING ERRCODE = 'AC422', DETAIL = p_code;
    END IF;
    RETURN r;
END $$;

-- ---------------------------------------------------------------------------
-- Rubric calibration settings and credential review policy
-- ---------------------------------------------------------------------------

CREATE FUNCTION api_rubric_calibration_get(p_token text, p_rubric uuid) RETURNS json
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_me users := _auth_role(p_token, '{lead,assessor,expert}');
BEGIN
    RETURN _calibration_json(_rubric_lookup(p_rubric));
END $$;

CREATE FUNCTION api_rubric_calibration_put(p_token text, p_rubric uuid, p_body jsonb) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    v_me users := _auth_role(p_token, '{lead}');
    b jsonb := _body(p_body);
    r rubrics := _rubric_lookup(p_rubric);
    v_vl int;
BEGIN
    PERFORM _only_keys(b, '{rubric_id,exact_min,adjacent_min,verdict_min,set_size,window,min_items,verdict_level}',
                       'calibration setting');
    IF b ? 'rubric_id' AND _j_uuid(b -> 'rubric_id', 'rubric_id', false) IS DISTINCT FROM r.id THEN
        PERFORM _bad('rubric_id does not match the rubric in the path');
    END IF;
    r.cal_exact_min := coalesce(_j_num(b -> 'exact_min', 'exact_min', 0, 1, 'invalid_calibration'), r.cal_exact_min);
    r.cal_adjacent_min := coalesce(_j_num(b -> 'adjacent_min', 'adjacent_min', 0, 1, 'invalid_calibration'), r.cal_adjacent_min);
    r.cal_verdict_min := coalesce(_j_num(b -> 'verdict_min', 'verdict_min', 0, 1, 'invalid_calibration'), r.cal_verdict_min);
    r.cal_set_size := coalesce(_j_int_range(b -> 'set_size', 'set_size', 1, 50, 'invalid_calibration'), r.cal_set_size);
    r.cal_window := coalesce(_j_int_range(b -> 'window', 'window', 1, 500, 'invalid_calibration'), r.cal_window);
    r.cal_min_items := coalesce(_j_int_range(b -> 'min_items', 'min_items', 1, 500, 'invalid_calibration'), r.cal_min_items);
    IF b ? 'verdict_level' THEN
        v_vl := _j_int(b -> 'verdict_level', 'verdict_level', false);
        IF v_vl IS NOT NULL AND NOT EXISTS (
                SELECT 1 FROM jsonb_array_elements(r.criteria) cr, jsonb_array_elements(cr -> 'levels') l
                 WHERE l -> 'value' = to_jsonb(v_vl)) THEN
            RAISE EXCEPTION 'verdict_level (%) is not one of the rubric''s level values', v_vl
                USING ERRCODE = 'AC422', DETAIL = 'invalid_calibration';
        END IF;
        r.cal_verdict_level := v_vl;
    END IF;
    UPDATE rubrics
       SET cal_exact_min = r.cal_exact_min, cal_adjacent_min = r.cal_adjacent_min,
           cal_verdict_min = r.cal_verdict_min, cal_set_size = r.cal_set_size,
           cal_window = r.cal_window, cal_min_items = r.cal_min_items,
           cal_verdict_level = r.cal_verdict_level
     WHERE id = r.id
    RETURNING * INTO r;
    INSERT INTO audit_log (actor_id, action, object_type, object_id, detail)
    VALUES (v_me.id, 'rubric.calibration_update', 'rubric', r.id, _calibration_json(r)::jsonb);
    RETURN _calibration_json(r);
END $$;

-- Validates a review_policy object onto c (partial).
CREATE FUNCTION _policy_apply(c credentials, p jsonb) RETURNS credentials
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF p IS NULL OR jsonb_typeof(p) = 'null' THEN
        RETURN c;
    END IF;
    IF jsonb_typeof(p) <> 'object' THEN
        PERFORM _bad('review_policy must be an object');
    END IF;
    PERFORM _only_keys(p, '{validity_rate,second_score_rate,second_score_floor,reliability_threshold,min_pairs,peer_wait_hours}',
                       'review_policy field');
    c.validity_rate := coalesce(_j_num(p -> 'validity_rate', 'validity_rate', 0, 1, 'invalid_policy'), c.validity_rate);
    c.second_score_rate := coalesce(_j_num(p -> 'second_score_rate', 'second_score_rate', 0, 1, 'invalid_policy'), c.second_score_rate);
    c.second_score_floor := coalesce(_j_num(p -> 'second_score_floor', 'second_score_floor', 0, 1, 'invalid_policy'), c.second_score_floor);
    c.reliability_threshold := coalesce(_j_num(p -> 'reliability_threshold', 'reliability_threshold', -1, 1, 'invalid_policy'), c.reliability_threshold);
    c.min_pairs := coalesce(_j_int_range(p -> 'min_pairs', 'min_pairs', 1, 100000, 'invalid_policy'), c.min_pairs);
    c.peer_wait_hours := coalesce(_j_num(p -> 'peer_wait_hours', 'peer_wait_hours', 0, 8760, 'invalid_policy'), c.peer_wait_hours);
    RETURN c;
END $$;

CREATE FUNCTION api_credential_policy_put(p_token text, p_credential uuid, p_body jsonb) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    v_me users := _auth_role(p_token, '{lead}');
    b jsonb := _body(p_body);
    c credentials;
BEGIN
    SELECT * INTO c FROM credentials WHERE id = p_credential FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'credential not found' USING ERRCODE = 'AC404', DETAIL = 'not_found';
    END IF;
    c := _policy_apply(c, b);
    UPDATE credentials
       SET validity_rate = c.validity_rate, second_score_rate = c.second_score_rate,
           second_score_floor = c.second_score_floor,
           reliability_threshold = c.reliability_threshold, min_pairs = c.min_pairs,
           peer_wait_hours = c.peer_wait_hours
     WHERE id = c.id
    RETURNING * INTO c;
    INSERT INTO audit_log (actor_id, action, object_type, object_id, detail)
    VALUES (v_me.id, 'credential.policy_update', 'credential', c.id, _policy_json(c)::jsonb);
    RETURN _policy_json(c);
END $$;

-- ---------------------------------------------------------------------------
-- Anchors (lead)
-- ---------------------------------------------------------------------------

CREATE FUNCTION _anchor_master_json(p_anchor uuid) RETURNS json
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN (SELECT json_build_object(
                       'scores', (SELECT coalesce(json_agg(json_build_object(
                                                'criterion', s.criterion, 'level', s.level,
                                                'rationale', s.rationale, 'evidence', s.evidence)
                                            ORDER BY s.position), '[]'::json)
                                    FROM anchor_scores s WHERE s.anchor_id = a.id),
                       'feedback', a.master_feedback)
              FROM anchors a WHERE a.id = p_anchor);
END $$;

CREATE FUNCTION _anchor_artifacts_json(p_anchor uuid) RETURNS json
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN (SELECT coalesce(json_agg(_artifact_json(a) ORDER BY aa.position), '[]'::json)
              FROM anchor_artifacts aa JOIN artifacts a ON a.id = aa.artifact_id
             WHERE aa.anchor_id = p_anchor);
END $$;

CREATE FUNCTION _anchor_json(a anchors) RETURNS json
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN json_build_object(
        'id', a.id, 'rubric_id', a.rubric_id,
        'artifact_ids', (SELECT coalesce(json_agg(aa.artifact_id ORDER BY aa.position), '[]'::json)
                           FROM anchor_artifacts aa WHERE aa.anchor_id = a.id),
        'master', _anchor_master_json(a.id),
        'created_at', _ts(a.created_at));
END $$;

CREATE FUNCTION api_anchor_create(p_token text, p_body jsonb) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    v_me users := _auth_role(p_token, '{lead}');
    b jsonb := _body(p_body);
    v_rid uuid := _j_uuid(b -> 'rubric_id', 'rubric_id', true);
    v_ids uuid[] := _j_artifact_ids(b);
    v_master jsonb := b -> 'master';
    v_arr jsonb;
    v_feedback text;
    r rubrics;
    k record;
    n record;
    v_missing uuid;
    a anchors;
BEGIN
    IF v_master IS NULL OR jsonb_typeof(v_master) <> 'object' THEN
        PERFORM _bad('master must be an object {"scores":[{"criterion","level","rationale"}],"feedback"}');
    END IF;
    v_arr := _j_array(v_master -> 'scores', 'master.scores', true, 64);
    v_feedback := _j_text(v_master -> 'feedback', 'master.feedback', true, 20000, true);
    r := _rubric_lookup(v_rid, 'unknown_rubric');
    SELECT x INTO v_missing FROM unnest(v_ids) x
     WHERE NOT EXISTS (SELECT 1 FROM artifacts WHERE id = x) LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'artifact % does not exist', v_missing
            USING ERRCODE = 'AC422', DETAIL = 'unknown_artifact';
    END IF;
    k := _rubric_keys(r.criteria);
    INSERT INTO anchors (rubric_id, master_feedback, created_by)
    VALUES (r.id, v_feedback, v_me.id)
    RETURNING * INTO a;
    INSERT INTO anchor_artifacts (anchor_id, artifact_id, position)
    SELECT a.id, x.id, x.ord FROM unnest(v_ids) WITH ORDINALITY x(id, ord);
    -- validated after the artifacts are linked: master citations may name them
    n := _scores_norm(v_arr, k.keys, k.levels, 0, NULL, a.id, 'rationale');
    INSERT INTO anchor_scores (anchor_id, criterion, position, level, rationale, evidence)
    SELECT a.id, t.crit, t.pos, t.lvl, t.com, t.ev
      FROM unnest(n.crit, n.pos, n.lvl, n.com, n.ev) AS t(crit, pos, lvl, com, ev);
    INSERT INTO audit_log (actor_id, action, object_type, object_id, detail)
    VALUES (v_me.id, 'anchor.create', 'anchor', a.id,
            jsonb_build_object('rubric_id', r.id, 'artifact_ids', to_jsonb(v_ids)));
    RETURN _anchor_json(a);
END $$;

-- p_query: the URL query as a JSON object of strings: rubric_id (required).
CREATE FUNCTION api_anchor_list(p_token text, p_query jsonb) RETURNS json
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_me users := _auth_role(p_token, '{lead}');
    q jsonb := _body(p_query);
    v_rid uuid;
BEGIN
    PERFORM _only_keys(q, '{rubric_id}', 'query parameter');
    v_rid := _q_uuid(q -> 'rubric_id', 'rubric_id', true);
    IF v_rid IS NOT NULL THEN
        PERFORM _rubric_lookup(v_rid);
    END IF;
    RETURN json_build_object('anchors',
        (SELECT coalesce(json_agg(_anchor_json(x) ORDER BY x.created_at, x.id), '[]'::json)
           FROM (SELECT * FROM anchors a
                  WHERE v_rid IS NULL OR a.rubric_id = v_rid
                  ORDER BY a.created_at, a.id LIMIT 1000) x));
END $$;

CREATE FUNCTION api_anchor_get(p_token text, p_id uuid) RETURNS json
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_me users := _auth_role(p_token, '{lead}');
    a anchors;
BEGIN
    SELECT * INTO a FROM anchors WHERE id = p_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'anchor not found' USING ERRCODE = 'AC404', DETAIL = 'not_found';
    END IF;
    RETURN _anchor_json(a);
END $$;

-- ---------------------------------------------------------------------------
-- Qualification sessions
-- ---------------------------------------------------------------------------

CREATE FUNCTION _session_json(cs calibration_sessions) RETURNS json
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN json_build_object(
        'id', cs.id, 'rubric_id', cs.rubric_id, 'status', cs.status,
        'rubric', (SELECT _rubric_json(r) FROM rubrics r WHERE r.id = cs.rubric_id),
        'items', (SELECT coalesce(json_agg(json_build_object(
                                      'id', ci.id, 'position', ci.position,
                                      'artifacts', _anchor_artifacts_json(ci.anchor_id),
                                      'scored', ci.scored_at IS NOT NULL)
                                  ORDER BY ci.position), '[]'::json)
                    FROM calibration_items ci WHERE ci.session_id = cs.id),
        'result', cs.result,
        'created_at', _ts(cs.created_at), 'completed_at', _ts(cs.completed_at));
END $$;

CREATE FUNCTION api_calibration_session_create(p_token text, p_body jsonb) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    v_me users := _auth_role(p_token, '{assessor,expert}');
    b jsonb := _body(p_body);
    v_rid uuid := _j_uuid(b -> 'rubric_id', 'rubric_id', true);
    r rubrics := _rubric_lookup(v_rid, 'unknown_rubric');
    cs calibration_sessions;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM anchors WHERE rubric_id = r.id) THEN
        RAISE EXCEPTION 'this rubric has no anchors yet: a lead must add some before calibration'
            USING ERRCODE = 'AC422', DETAIL = 'no_anchors';
    END IF;
    INSERT INTO calibration_sessions (rubric_id, assessor_id)
    VALUES (r.id, v_me.id)
    RETURNING * INTO cs;
    -- never scored by this assessor first, then least recently scored
    INSERT INTO calibration_items (session_id, anchor_id, position)
    SELECT cs.id, x.id, row_number() OVER (ORDER BY x.last NULLS FIRST, x.created_at, x.id)
      FROM (SELECT a.id, a.created_at,
                   greatest((SELECT max(ci.scored_at) FROM calibration_items ci
                              JOIN calibration_sessions s2 ON s2.id = ci.session_id
                             WHERE ci.anchor_id = a.id AND s2.assessor_id = v_me.id),
                            (SELECT max(w.scored_at) FROM calibration_window w
                             WHERE w.anchor_id = a.id AND w.user_id = v_me.id)) AS last
              FROM anchors a WHERE a.rubric_id = r.id
             ORDER BY 3 NULLS FIRST, a.created_at, a.id
             LIMIT r.cal_set_size) x;
    INSERT INTO audit_log (actor_id, action, object_type, object_id, detail)
    VALUES (v_me.id, 'calibration.session_create', 'calibration_session', cs.id,
            jsonb_build_object('rubric_id', r.id,
                               'anchor_ids', (SELECT jsonb_agg(anchor_id ORDER BY position)
                                                FROM calibration_items WHERE session_id = cs.id)));
    RETURN _session_json(cs);
END $$;

CREATE FUNCTION _session_visible(v_me users, p_id uuid) RETURNS calibration_sessions
LANGUAGE plpgsql STABLE AS $$
DECLARE
    cs calibration_sessions;
BEGIN
    SELECT * INTO cs FROM calibration_sessions WHERE id = p_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'calibration session not found' USING ERRCODE = 'AC404', DETAIL = 'not_found';
    END IF;
    IF cs.assessor_id <> v_me.id AND NOT 'lead' = ANY(v_me.roles) THEN
        RAISE EXCEPTION 'this calibration session is not yours'
            USING ERRCODE = 'AC403', DETAIL = 'forbidden';
    END IF;
    RETURN cs;
END $$;

CREATE FUNCTION api_calibration_session_get(p_token text, p_id uuid) RETURNS json
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_me users := _auth(p_token);
BEGIN
    RETURN _session_json(_session_visible(v_me, p_id));
END $$;

CREATE FUNCTION api_calibration_item_score(p_token text, p_session uuid, p_item uuid,
                                           p_body jsonb) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    v_me users := _auth(p_token);
    cs calibration_sessions;
    ci calibration_items;
    r rubrics;
    b jsonb;
    v_arr jsonb;
    v_feedback text;
    k record;
    n record;
    v_vl int;
    v_left int;
    t record;
    v_items json;
    v_exact numeric;
    v_adj numeric;
    v_ver numeric;
    v_ok boolean;
    v_why text[] := '{}';
    v_reason text;
    q qualifications;
BEGIN
    SELECT * INTO cs FROM calibration_sessions WHERE id = p_session FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'calibration session not found' USING ERRCODE = 'AC404', DETAIL = 'not_found';
    END IF;
    IF cs.assessor_id <> v_me.id THEN
        RAISE EXCEPTION 'this calibration session is not yours'
            USING ERRCODE = 'AC403', DETAIL = 'forbidden';
    END IF;
    SELECT * INTO ci FROM calibration_items WHERE id = p_item AND session_id = cs.id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'item not found in this session' USING ERRCODE = 'AC404', DETAIL = 'not_found';
    END IF;
    IF ci.scored_at IS NOT NULL THEN
        RAISE EXCEPTION 'this item was already scored' USING ERRCODE = 'AC409', DETAIL = 'already_scored';
    END IF;
    IF cs.status <> 'open' THEN
        RAISE EXCEPTION 'this calibration session is completed' USING ERRCODE = 'AC409', DETAIL = 'not_active';
    END IF;
    b := _body(p_body);
    v_arr := _j_array(b -> 'scores', 'scores', true, 64);
    v_feedback := _j_text(b -> 'feedback', 'feedback', true, 20000, true);
    SELECT * INTO r FROM rubrics WHERE id = cs.rubric_id;
    v_vl := _verdict_level(r);
    k := _rubric_keys(r.criteria);
    n := _scores_norm(v_arr, k.keys, k.levels, v_vl, NULL, ci.anchor_id, 'comment');
    INSERT INTO calibration_item_scores (item_id, criterion, position, level, comment, evidence)
    SELECT ci.id, t1.crit, t1.pos, t1.lvl, t1.com, t1.ev
      FROM unnest(n.crit, n.pos, n.lvl, n.com, n.ev) AS t1(crit, pos, lvl, com, ev);
    UPDATE calibration_items
       SET feedback = v_feedback, scored_at = now(),
           verdict = CASE WHEN n.pass THEN 'pass' ELSE 'resubmit' END
     WHERE id = ci.id;
    INSERT INTO audit_log (actor_id, action, object_type, object_id, detail)
    VALUES (v_me.id, 'calibration.item_score', 'calibration_session', cs.id,
            jsonb_build_object('item_id', ci.id, 'anchor_id', ci.anchor_id));
    SELECT count(*) INTO v_left FROM calibration_items WHERE session_id = cs.id AND scored_at IS NULL;
    IF v_left > 0 THEN
        RETURN json_build_object('session_id', cs.id, 'item_id', ci.id, 'scored', true,
                                 'remaining', v_left);
    END IF;

    -- the last item: agreement with the masters over the whole session
    SELECT _share(sum(x.n), 1) IS NOT NULL, _share(sum(x.n_exact), sum(x.n)),
           _share(sum(x.n_adj), sum(x.n)),
           _share(count(*) FILTER (WHERE x.vs = x.vm), count(*))
      INTO v_ok, v_exact, v_adj, v_ver
      FROM (SELECT c1.*,
                   (SELECT bool_and(s.level >= v_vl) FROM calibration_item_scores s WHERE s.item_id = i.id) AS vs,
                   (SELECT bool_and(m.level >= v_vl) FROM anchor_scores m WHERE m.anchor_id = i.anchor_id) AS vm
              FROM calibration_items i,
                   LATERAL _cmp(r.criteria,
                                ARRAY(SELECT s.criterion FROM calibration_item_scores s WHERE s.item_id = i.id),
                                ARRAY(SELECT s.level FROM calibration_item_scores s WHERE s.item_id = i.id),
                                ARRAY(SELECT m.criterion FROM anchor_scores m WHERE m.anchor_id = i.anchor_id),
                                ARRAY(SELECT m.level FROM anchor_scores m WHERE m.anchor_id = i.anchor_id)) c1
             WHERE i.session_id = cs.id) x;
    IF v_exact < r.cal_exact_min THEN
        v_why := v_why || format('exact %s < %s', round(v_exact, 2), r.cal_exact_min);
    END IF;
    IF v_adj < r.cal_adjacent_min THEN
        v_why := v_why || format('adjacent %s < %s', round(v_adj, 2), r.cal_adjacent_min);
    END IF;
    IF v_ver < r.cal_verdict_min THEN
        v_why := v_why || format('verdict agreement %s < %s', round(v_ver, 2), r.cal_verdict_min);
    END IF;
    v_ok := cardinality(v_why) = 0;
    SELECT json_agg(json_build_object(
               'item_id', i.id, 'anchor_id', i.anchor_id,
               'scores', (SELECT coalesce(json_agg(json_build_object('criterion', s.criterion, 'level', s.level,
                                                                     'comment', s.comment, 'evidence', s.evidence)
                                                   ORDER BY s.position), '[]'::json)
                            FROM calibration_item_scores s WHERE s.item_id = i.id),
               'feedback', i.feedback,
               'master', _anchor_master_json(i.anchor_id)) ORDER BY i.position)
      INTO v_items
      FROM calibration_items i WHERE i.session_id = cs.id;
    UPDATE calibration_sessions
       SET status = 'completed', completed_at = now(),
           result = jsonb_build_object('qualified', v_ok, 'exact', v_exact, 'adjacent', v_adj,
                                       'verdict_agreement', v_ver,
                                       'thresholds', jsonb_build_object('exact_min', r.cal_exact_min,
                                                                        'adjacent_min', r.cal_adjacent_min,
                                                                        'verdict_min', r.cal_verdict_min),
                                       'items', v_items::jsonb)
     WHERE id = cs.id
    RETURNING * INTO cs;
    INSERT INTO audit_log (actor_id, action, object_type, object_id, detail)
    VALUES (v_me.id, 'calibration.session_complete', 'calibration_session', cs.id,
            jsonb_build_object('rubric_id', r.id, 'qualified', v_ok, 'exact', v_exact,
                               'adjacent', v_adj, 'verdict_agreement', v_ver));
    SELECT * INTO q FROM qualifications WHERE user_id = v_me.id AND rubric_id = r.id FOR UPDATE;
    IF v_ok THEN
        PERFORM _qualification_put(v_me.id, r.id, 'qualified',
                                   format('calibration set passed: exact %s, adjacent %s, verdict agreement %s over %s items',
                                          round(v_exact, 2), round(v_adj, 2), round(v_ver, 2),
                                          json_array_length(v_items)),
                                   v_me.id, 'calibration_session');
    ELSIF q.status = 'qualified' THEN
        -- a qualified assessor who fails a set is no longer qualified
        PERFORM _qualification_put(v_me.id, r.id, 'needs_recalibration',
                                   'calibration set failed: ' || array_to_string(v_why, ', ')
                                   || format(' over %s items', json_array_length(v_items)),
                                   v_me.id, 'calibration_session');
    END IF;
    -- (not qualified before and failed: nothing to record beyond the session;
    -- needs_recalibration stays so, with its reason)
    RETURN json_build_object('session_id', cs.id, 'status', 'completed', 'result', cs.result);
END $$;

-- ---------------------------------------------------------------------------
-- Qualifications
-- ---------------------------------------------------------------------------

CREATE FUNCTION api_my_qualifications(p_token text) RETURNS json
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_me users := _auth(p_token);
BEGIN
    RETURN json_build_object('qualifications',
        (SELECT coalesce(json_agg(_qualification_json(q) ORDER BY q.updated_at, q.rubric_id), '[]'::json)
           FROM qualifications q WHERE q.user_id = v_me.id));
END $$;

CREATE FUNCTION api_qualification_set(p_token text, p_user uuid, p_body jsonb) RETURNS json
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
