-- 005_routing.sql - calibration (issue 4), part 2: the review pipeline.
--
-- Claim eligibility needs `qualified` on the credential's rubric. A claim may
-- hand out a validity item (an anchor dressed as a live submission). Reviews
-- have stages: first -> (second -> (adjudication)); the submission is final
-- only at the end, and only then does the earner see a result. Completed
-- low-stakes peer/expert pairs feed the reliability estimate (computed by the
-- server in C from reliability_pairs(), applied by routing_update()).
--
-- Replaces api_review_claim / api_review_score / api_review_release /
-- api_review_get / api_submission_list / api_submission_get of 002 (same
-- behaviour for everything issue 2 defined).

-- ---------------------------------------------------------------------------
-- Views of reviews
-- ---------------------------------------------------------------------------

-- The review as its holder sees it (002's _review_json) plus, for an
-- adjudication, the two earlier score sets without identities; a lead also
-- sees the routing explanation.
CREATE FUNCTION _review_view(r reviews, s submissions, p_lead boolean) RETURNS json
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v jsonb := _review_json(r, s)::jsonb;
BEGIN
    IF r.stage = 'adjudication' THEN
        v := v || jsonb_build_object('adjudication', jsonb_build_object('score_sets',
                (SELECT coalesce(jsonb_agg(jsonb_build_object('scores', _scores_json(p.id)::jsonb,
                                                              'feedback', p.feedback)
                                           ORDER BY p.scored_at, p.id), '[]'::jsonb)
                   FROM reviews p
                  WHERE p.submission_id = s.id AND p.status = 'submitted'
                    AND p.stage IN ('first','second'))));
    END IF;
    IF p_lead THEN
        v := v || jsonb_build_object('routing', r.routing, 'stage', r.stage, 'pool', r.pool);
    END IF;
    RETURN v::json;
END $$;

CREATE OR REPLACE FUNCTION api_review_get(p_token text, p_id uuid) RETURNS json
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_me users := _auth(p_token);
    r reviews := _review_visible(v_me, p_id);
    s submissions;
BEGIN
    SELECT * INTO s FROM submissions WHERE id = r.submission_id;
    RETURN _review_view(r, s, 'lead' = ANY(v_me.roles));
END $$;

-- ---------------------------------------------------------------------------
-- Claim
-- ---------------------------------------------------------------------------

-- Creates a validity item for credential c from an anchor of its rubric the
-- assessor has not seen since qualifying; NULL when there is none.
CREATE FUNCTION _validity_claim(v_me users, p_cred uuid, p_pool text, p_since timestamptz,
                                p_lease int) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    c credentials;
    v_anchor uuid;
    s submissions;
    r reviews;
BEGIN
    SELECT * INTO c FROM credentials WHERE id = p_cred;
    SELECT a.id INTO v_anchor
      FROM anchors a
     WHERE a.rubric_id = c.rubric_id
       AND NOT EXISTS (SELECT 1 FROM submissions vs JOIN reviews rv ON rv.submission_id = vs.id
                        WHERE vs.anchor_id = a.id AND rv.assessor_id = v_me.id
                          AND rv.claimed_at >= coalesce(p_since, '-infinity'))
     ORDER BY random()
     LIMIT 1;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    INSERT INTO submissions (credential_id, earner_id, earner_org, attempt, status, anchor_id,
                             lease_expires_at)
    VALUES (c.id, NULL, NULL, 1, 'validity', v_anchor, now() + make_interval(secs => p_lease))
    RETURNING * INTO s;
    INSERT INTO submission_artifacts (submission_id, artifact_id, position)
    SELECT s.id, aa.artifact_id, aa.position FROM anchor_artifacts aa WHERE aa.anchor_id = v_anchor;
    INSERT INTO reviews (submission_id, assessor_id, lease_expires_at, stage, pool, routing)
    VALUES (s.id, v_me.id, s.lease_expires_at, 'validity', p_pool,
            jsonb_build_object('rule', 'validity_item', 'anchor_id', v_anchor,
                               'validity_rate', c.validity_rate))
    RETURNING * INTO r;
    UPDATE submissions SET current_review_id = r.id WHERE id = s.id RETURNING * INTO s;
    INSERT INTO audit_log (actor_id, action, object_type, object_id, detail)
    VALUES (v_me.id, 'review.claim', 'review', r.id,
            jsonb_build_object('submission_id', s.id, 'lease_expires_at', _ts(r.lease_expires_at),
                               'validity_item', true, 'anchor_id', v_anchor));
    RETURN _review_json(r, s);
END $$;

-- Claims the oldest eligible work (a lease of p_lease_seconds), or returns
-- NULL (204) when nothing is eligible. Eligibility per grant (with
-- `qualified` on the credential's rubric):
--   peer grant (low stakes): first scores, unless peer review is paused and
--     the peer qualified before the pause;
--   expert grant, high stakes: first and second scores, adjudications;
--   expert grant, low stakes: second scores and adjudications; first scores
--     while peer review is paused or once they waited peer_wait_hours;
--   lead (no grant needed): adjudications of any credential.
-- The common path (one grant, first scores, no validity draw hit) is the
-- single-credential index scan of 002.
CREATE OR REPLACE FUNCTION api_review_claim(p_token text, p_body jsonb, p_lease_seconds int) RETURNS json
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan AS $$
DECLARE
    v_me users := _auth_role(p_token, '{assessor,expert,lead}');
    b jsonb := _body(p_body);
    v_filter uuid := _j_uuid(b -> 'credential_id', 'credential_id', false);
    v_lease int := coalesce(p_lease_seconds, 7200);
    v_lead boolean := 'lead' = ANY(v_me.roles);
    -- per eligible grant
    v_gc uuid[];        -- credential
    v_gmode text[];     -- peer | peer_requalified | expert_high | expert_low_paused | expert_low
    v_gpool text[];
    v_grate numeric[];  -- validity_rate
    v_gsince timestamptz[];  -- qualified_at
    v_gwait numeric[];  -- peer_wait_hours
    v_first uuid[];     -- first scores unconditionally
    v_waitc uuid[];     -- first scores after waiting (low-stakes expert)
    v_waith numeric[];
    v_second uuid[];    -- second scores / adjudication (expert grants)
    v_adj boolean;      -- lead: adjudications of any credential
    i int;
    v_old reviews;
    s submissions;
    sx submissions;
    r reviews;
    c credentials;
    v_mode text;
    v_pool text;
    v_routing jsonb;
    v_valid json;
BEGIN
    IF v_lease < 1 OR v_lease > 30 * 86400 THEN
        PERFORM _bad('the lease must be between 1 second and 30 days');
    END IF;
    SELECT array_agg(x.credential_id), array_agg(x.mode), array_agg(x.pool),
           array_agg(x.validity_rate), array_agg(x.qualified_at), array_agg(x.peer_wait_hours)
      INTO v_gc, v_gmode, v_gpool, v_grate, v_gsince, v_gwait
      FROM (SELECT g.credential_id, g.pool, c1.validity_rate, q.qualified_at, c1.peer_wait_hours,
                   CASE WHEN g.pool = 'peer' THEN
                            CASE WHEN c1.peer_paused_at IS NULL THEN 'peer'
                                 WHEN q.qualified_at > c1.peer_paused_at THEN 'peer_requalified' END
                        WHEN c1.stakes = 'high' THEN 'expert_high'
                        WHEN c1.peer_paused_at IS NOT NULL THEN 'expert_low_paused'
                        ELSE 'expert_low' END AS mode
              FROM assessor_grants g
              JOIN credentials c1 ON c1.id = g.credential_id
              JOIN qualifications q ON q.user_id = g.user_id AND q.rubric_id = c1.rubric_id
                                   AND q.status = 'qualified'
             WHERE g.user_id = v_me.id
               AND (v_filter IS NULL OR g.credential_id = v_filter)
               AND CASE WHEN g.pool = 'expert' THEN 'expert' = ANY(v_me.roles)
                        ELSE c1.stakes = 'low' AND 'assessor' = ANY(v_me.roles) END) x
     WHERE x.mode IS NOT NULL;
    v_adj := v_lead;
    IF v_gc IS NULL AND NOT v_adj THEN
        RETURN NULL;
    END IF;

    -- validity items: with probability validity_rate per eligible credential
    IF v_gc IS NOT NULL THEN
        FOR i IN 1 .. cardinality(v_gc) LOOP
            IF v_grate[i] > 0 AND random() < v_grate[i] THEN
                v_valid := _validity_claim(v_me, v_gc[i], v_gpool[i], v_gsince[i], v_lease);
                IF v_valid IS NOT NULL THEN
                    RETURN v_valid;
                END IF;
            END IF;
        END LOOP;
        FOR i IN 1 .. cardinality(v_gc) LOOP
            IF v_gmode[i] IN ('peer','peer_requalified','expert_high','expert_low_paused') THEN
                v_first := v_first || v_gc[i];
            ELSE
                v_waitc := v_waitc || v_gc[i];
                v_waith := v_waith || v_gwait[i];
            END IF;
            IF v_gpool[i] = 'expert' THEN
                v_second := v_second || v_gc[i];
            END IF;
        END LOOP;
    END IF;

    -- first scores: queued submissions (002's queries)
    IF cardinality(v_first) = 1 THEN
        SELECT s1.* INTO s
          FROM submissions s1
         WHERE s1.status = 'queued' AND s1.credential_id = v_first[1]
           AND s1.earner_id <> v_me.id
           AND (v_me.org IS NULL OR s1.earner_org IS NULL OR s1.earner_org <> v_me.org)
           AND NOT EXISTS (SELECT 1 FROM reviews rv
                            WHERE rv.submission_id = s1.id AND rv.assessor_id = v_me.id)
         ORDER BY s1.queued_at, s1.id
         LIMIT 1
           FOR UPDATE OF s1 SKIP LOCKED;
    ELSIF cardinality(v_first) > 1 THEN
        SELECT s1.* INTO s
          FROM submissions s1
         WHERE s1.status = 'queued' AND s1.credential_id = ANY(v_first)
           AND s1.earner_id <> v_me.id
           AND (v_me.org IS NULL OR s1.earner_org IS NULL OR s1.earner_org <> v_me.org)
           AND NOT EXISTS (SELECT 1 FROM reviews rv
                            WHERE rv.submission_id = s1.id AND rv.assessor_id = v_me.id)
         ORDER BY s1.queued_at, s1.id
         LIMIT 1
           FOR UPDATE OF s1 SKIP LOCKED;
    END IF;

    -- low-stakes first scores that waited longer than peer_wait_hours (experts)
    FOR i IN 1 .. coalesce(cardinality(v_waitc), 0) LOOP
        SELECT s1.* INTO sx
          FROM submissions s1
         WHERE s1.status = 'queued' AND s1.credential_id = v_waitc[i]
           AND s1.queued_at < now() - make_interval(secs => v_waith[i] * 3600)
           AND (s.id IS NULL OR (s1.queued_at, s1.id) < (s.queued_at, s.id))
           AND s1.earner_id <> v_me.id
           AND (v_me.org IS NULL OR s1.earner_org IS NULL OR s1.earner_org <> v_me.org)
           AND NOT EXISTS (SELECT 1 FROM reviews rv
                            WHERE rv.submission_id = s1.id AND rv.assessor_id = v_me.id)
         ORDER BY s1.queued_at, s1.id
         LIMIT 1
           FOR UPDATE OF s1 SKIP LOCKED;
        IF FOUND THEN
            s := sx;
        END IF;
    END LOOP;

    -- second scores and adjudications waiting for a claim
    IF v_second IS NOT NULL OR v_adj THEN
        SELECT s1.* INTO sx
          FROM submissions s1
         WHERE s1.status = 'in_review' AND s1.current_review_id IS NULL
           AND ((s1.stage = 'second' AND s1.credential_id = ANY(v_second))
                OR (s1.stage = 'adjudication'
                    AND ((v_adj AND (v_filter IS NULL OR s1.credential_id = v_filter))
                         OR s1.credential_id = ANY(v_second))))
           AND (s.id IS NULL OR (s1.queued_at, s1.id) < (s.queued_at, s.id))
           AND s1.earner_id <> v_me.id
           AND (v_me.org IS NULL OR s1.earner_org IS NULL OR s1.earner_org <> v_me.org)
           AND NOT EXISTS (SELECT 1 FROM reviews rv
                            WHERE rv.submission_id = s1.id AND rv.assessor_id = v_me.id
                              AND rv.status = 'submitted')
           AND NOT EXISTS (SELECT 1 FROM reviews rv
                            WHERE rv.submission_id = s1.id AND rv.assessor_id = v_me.id
                              AND rv.stage = s1.stage)
         ORDER BY s1.queued_at, s1.id
         LIMIT 1
           FOR UPDATE OF s1 SKIP LOCKED;
        IF FOUND THEN
            s := sx;
        END IF;
    END IF;

    -- an expired lease that is older in queue order, in a stage this
    -- assessor may take
    SELECT s1.* INTO sx
      FROM submissions s1
     WHERE s1.status = 'in_review' AND s1.lease_expires_at < now()
       AND ((s1.stage = 'first'
             AND (s1.credential_id = ANY(v_first)
                  OR (s1.credential_id = ANY(v_waitc)
                      AND s1.queued_at < now() - make_interval(
                              secs => v_waith[array_position(v_waitc, s1.credential_id)] * 3600))))
            OR (s1.stage = 'second' AND s1.credential_id = ANY(v_second))
            OR (s1.stage = 'adjudication'
                AND ((v_adj AND (v_filter IS NULL OR s1.credential_id = v_filter))
                     OR s1.credential_id = ANY(v_second))))
       AND s1.earner_id <> v_me.id
       AND (v_me.org IS NULL OR s1.earner_org IS NULL OR s1.earner_org <> v_me.org)
       AND (s.id IS NULL OR (s1.queued_at, s1.id) < (s.queued_at, s.id))
       AND NOT EXISTS (SELECT 1 FROM reviews rv
                        WHERE rv.submission_id = s1.id AND rv.assessor_id = v_me.id
                          AND (s1.stage = 'first' OR rv.status = 'submitted' OR rv.stage = s1.stage))
     ORDER BY s1.queued_at, s1.id
     LIMIT 1
       FOR UPDATE OF s1 SKIP LOCKED;
    IF FOUND THEN
        s := sx;
    END IF;
    IF s.id IS NULL THEN
        RETURN NULL;
    END IF;

    IF s.status = 'in_review' AND s.current_review_id IS NOT NULL THEN
        UPDATE reviews SET status = 'expired', ended_at = now()
         WHERE id = s.current_review_id AND status = 'active'
        RETURNING * INTO v_old;
        INSERT INTO audit_log (actor_id, action, object_type, object_id, detail)
        VALUES (NULL, 'review.lease_expired', 'review', s.current_review_id,
                jsonb_build_object('submission_id', s.id,
                                   'assessor_id', v_old.assessor_id,
                                   'lease_expires_at', _ts(s.lease_expires_at),
                                   'taken_over_by', v_me.id));
    END IF;

    -- why this review went to this assessor
    i := array_position(v_gc, s.credential_id);
    v_mode := v_gmode[i];
    IF s.stage = 'first' THEN
        v_pool := v_gpool[i];
        IF v_mode = 'peer' THEN
            v_routing := jsonb_build_object('rule', 'peer');
        ELSIF v_mode = 'expert_high' THEN
            v_routing := jsonb_build_object('rule', 'high_stakes_expert');
        ELSE
            SELECT * INTO c FROM credentials WHERE id = s.credential_id;
            IF v_mode = 'peer_requalified' THEN
                v_routing := jsonb_build_object('rule', 'peer_requalified', 'always_double', true,
                                                'paused_at', _ts(c.peer_paused_at));
            ELSIF v_mode = 'expert_low_paused' THEN
                v_routing := jsonb_build_object('rule', 'peer_paused',
                                                'kappa', c.routing_state -> 'kappa',
                                                'ci', c.routing_state -> 'ci',
                                                'pairs', c.routing_state -> 'pairs',
                                                'paused_at', _ts(c.peer_paused_at));
            ELSE
                v_routing := jsonb_build_object('rule', 'peer_wait',
                                                'waited_hours', round(extract(epoch FROM now() - s.queued_at)::numeric / 3600, 1),
                                                'peer_wait_hours', c.peer_wait_hours);
            END IF;
        END IF;
    ELSE
        v_pool := CASE WHEN v_gpool[i] = 'expert' THEN 'expert' ELSE 'lead' END;
        v_routing := s.routing;
    END IF;

    -- review row, submission update and audit row in one statement
    WITH nr AS (
        INSERT INTO reviews (submission_id, assessor_id, lease_expires_at, stage, pool, routing)
        VALUES (s.id, v_me.id, now() + make_interval(secs => v_lease), s.stage, v_pool, v_routing)
        RETURNING *),
    up AS (
        UPDATE submissions sub
           SET status = 'in_review', lease_expires_at = nr.lease_expires_at,
               current_review_id = nr.id, updated_at = now()
          FROM nr
         WHERE sub.id = nr.submission_id),
    au AS (
        INSERT INTO audit_log (actor_id, action, object_type, object_id, detail)
        SELECT v_me.id, 'review.claim', 'review', nr.id,
               jsonb_build_object('submission_id', nr.submission_id,
                                  'lease_expires_at', _ts(nr.lease_expires_at))
          FROM nr)
    SELECT * INTO r FROM nr;
    s.status := 'in_review';
    IF r.stage = 'adjudication' OR v_lead THEN
        RETURN _review_view(r, s, false);
    END IF;
    RETURN _review_json(r, s);
END $$;

-- ---------------------------------------------------------------------------
-- Release
-- ---------------------------------------------------------------------------

-- A released first score goes back to the queue; a released second score or
-- adjudication waits for another claim in its stage; a released validity
-- item just disappears.
CREATE OR REPLACE FUNCTION api_review_release(p_token text, p_id uuid) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    v_me users := _auth(p_token);
    r reviews;
    s submissions;
    l record;
    v_cid uuid;
BEGIN
    SELECT * INTO l FROM _review_lock_active(v_me, p_id);
    r := l.r;
    s := l.s;
    UPDATE reviews SET status = 'released', ended_at = now() WHERE id = r.id;
    UPDATE submissions
       SET status = CASE WHEN status = 'validity' THEN 'validity'
                         WHEN stage = 'first' THEN 'queued' ELSE 'in_review' END,
           lease_expires_at = NULL, current_review_id = NULL,
           updated_at = now()
     WHERE id = r.submission_id AND current_review_id = r.id
    RETURNING CASE WHEN status <> 'validity' THEN credential_id END INTO v_cid;
    INSERT INTO audit_log (actor_id, action, object_type, object_id, detail)
    VALUES (v_me.id, 'review.release', 'review', r.id,
            jsonb_build_object('submission_id', r.submission_id));
    IF v_cid IS NOT NULL THEN
        PERFORM pg_notify('accord_queue', v_cid::text);
    END IF;
    RETURN json_build_object('id', r.id, 'status', 'released');
END $$;

-- ---------------------------------------------------------------------------
-- Score
-- ---------------------------------------------------------------------------

-- Inserts a window row (assessor vs reference) and checks the window.
CREATE FUNCTION _window_add(p_user uuid, p_rubric rubrics, p_source text, p_cmp record,
                            p_verdict_agree boolean, p_anchor uuid, p_review uuid,
                            p_scored_at timestamptz) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF p_cmp.n IS NULL OR p_cmp.n = 0 THEN
        RETURN;
    END IF;
    INSERT INTO calibration_window (user_id, rubric_id, source, n, n_exact, n_adjacent, exact,
                                    adjacent, verdict_agree, diff_sum, anchor_id, review_id,
                                    scored_at)
    VALUES (p_user, p_rubric.id, p_source, p_cmp.n, p_cmp.n_exact, p_cmp.n_adj,
            _share(p_cmp.n_exact, p_cmp.n), _share(p_cmp.n_adj, p_cmp.n), p_verdict_agree,
            p_cmp.diff_sum, p_anchor, p_review, p_scored_at);
    PERFORM _window_check(p_user, p_rubric.id);
END $$;

-- Scores a held review: every criterion once at one of its levels (002's
-- validation, now _scores_norm), then by stage:
--   validity: compared with the anchor's master (window row); nothing else;
--   first: second-scored with probability = the credential's current share,
--     always near the cut or for a peer requalified during a pause; else final
--     (a policy second_score_rate of 0 turns double scoring off, near-cut
--     included; requalified peers during a pause are still double-scored);
--   second: disagreement (verdicts differ or a criterion > 1 level apart) ->
--     adjudication; else final (low stakes: these scores; high: the first's);
--   adjudication: final with these scores.
-- Final = the submission passed/returned, award on a pass, as in 002.
-- A completed low-stakes peer/expert pair adds "_reliability_due" (the
-- credential id) to the answer: the server strips it and recomputes the
-- reliability estimate.
CREATE OR REPLACE FUNCTION api_review_score(p_token text, p_id uuid, p_body jsonb) RETURNS json
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan AS $$
DECLARE
    v_me users := _auth(p_token);
    b jsonb;
    v_arr jsonb;
    v_feedback text;
    r reviews;
    s submissions;
    c credentials;
    rb rubrics;
    l record;
    n record;
    k record;
    cm record;
    f reviews;
    v_keys text[];
    v_levels jsonb[];
    v_pass boolean;
    v_verdict text;
    v_award uuid;
    v_final boolean := true;
    v_decided uuid;
    v_fpass boolean;
    v_stage text;
    v_sub_routing jsonb;
    v_decision jsonb;
    v_share numeric;
    v_draw float8;
    v_below int;
    v_cut int;
    v_due uuid;
    v_vl int;
    m_crit text[];
    m_lvl int[];
    f_crit text[];
    f_lvl int[];
BEGIN
    -- 404 / 403 / 409 first, then the body
    l := _review_lock_active(v_me, p_id);
    r := l.r;
    s := l.s;
    IF r.stage = 'validity' AND r.lease_expires_at < now() THEN
        RAISE EXCEPTION 'your lease on this review expired at %', _ts(r.lease_expires_at)
            USING ERRCODE = 'AC409', DETAIL = 'lease_lost';
    END IF;
    b := _body(p_body);
    v_arr := _j_array(b -> 'scores', 'scores', true, 64);
    v_feedback := _j_text(b -> 'feedback', 'feedback', true, 20000, true);
    SELECT c1 AS c, rb1 AS rb, k1.keys, k1.levels INTO l
      FROM credentials c1
      JOIN rubrics rb1 ON rb1.id = c1.rubric_id,
           LATERAL (SELECT array_agg(x ->> 'key' ORDER BY o) AS keys,
                           array_agg(x -> 'levels' ORDER BY o) AS levels
                      FROM jsonb_array_elements(rb1.criteria) WITH ORDINALITY t(x, o)) k1
     WHERE c1.id = s.credential_id;
    c := l.c;
    rb := l.rb;
    v_keys := l.keys;
    v_levels := l.levels;
    n := _scores_norm(v_arr, v_keys, v_levels, c.min_level_each, s.id, NULL, 'comment');
    v_pass := n.pass;
    v_verdict := CASE WHEN v_pass THEN 'pass' ELSE 'resubmit' END;
    v_stage := s.stage;
    v_decided := r.id;
    v_fpass := v_pass;

    IF r.stage = 'validity' THEN
        v_final := false;
    ELSIF r.stage = 'first' THEN
        -- near the cut: a resubmit where exactly one criterion sits exactly
        -- one level under min_level_each and all others pass
        IF NOT v_pass AND _second_rate(c) > 0 THEN
            SELECT count(*) FILTER (WHERE t.lvl < c.min_level_each),
                   count(*) FILTER (WHERE t.lvl < c.min_level_each
                                      AND t.lvl = (SELECT max((lv ->> 'value')::int)
                                                     FROM jsonb_array_elements(v_levels[t.pos]) lv
                                                    WHERE (lv ->> 'value')::int < c.min_level_each))
              INTO v_below, v_cut
              FROM unnest(n.pos, n.lvl) t(pos, lvl);
        END IF;
        IF coalesce((r.routing ->> 'always_double')::boolean, false) THEN
            v_decision := jsonb_build_object('rule', 'peer_paused_double');
        ELSIF v_below = 1 AND v_cut = 1 THEN
            v_decision := jsonb_build_object('rule', 'near_cut');
        ELSE
            v_share := coalesce((c.routing_state ->> 'share')::numeric, _second_rate(c));
            IF v_share > 0 THEN
                v_draw := random();
                IF v_draw < v_share THEN
                    v_decision := jsonb_build_object('rule', 'second_score_random',
                                                     'share', v_share, 'draw', round(v_draw::numeric, 4));
                END IF;
            END IF;
        END IF;
        IF v_decision IS NOT NULL THEN
            v_final := false;
            v_stage := 'second';
            v_sub_routing := v_decision;
        END IF;
    ELSIF r.stage = 'second' THEN
        SELECT * INTO f FROM reviews
         WHERE submission_id = s.id AND stage = 'first' AND status = 'submitted'
         ORDER BY scored_at DESC LIMIT 1;
        SELECT array_agg(criterion), array_agg(level) INTO f_crit, f_lvl
          FROM review_scores WHERE review_id = f.id;
        cm := _cmp(rb.criteria, f_crit, f_lvl, n.crit, n.lvl);
        IF f.verdict <> v_verdict OR cm.max_dist > 1 THEN
            v_final := false;
            v_stage := 'adjudication';
            v_sub_routing := jsonb_build_object('rule', 'disagreement',
                                                'verdicts', jsonb_build_array(f.verdict, v_verdict),
                                                'criteria', to_jsonb(cm.far),
                                                'max_distance', cm.max_dist);
        ELSIF c.stakes = 'high' THEN
            v_decided := f.id;
            v_fpass := f.verdict = 'pass';
        END IF;
        v_decision := jsonb_build_object('compared_with', f.id, 'exact', cm.n_exact, 'n', cm.n,
                                         'max_distance', cm.max_dist,
                                         'outcome', CASE WHEN v_final THEN 'final' ELSE 'adjudication' END);
        IF c.stakes = 'low' AND f.pool = 'peer' AND r.pool = 'expert' THEN
            INSERT INTO score_pairs (credential_id, submission_id, peer_review_id, expert_review_id,
                                     peer_scored_at)
            VALUES (c.id, s.id, f.id, r.id, f.scored_at);
            PERFORM _window_add(f.assessor_id, rb, 'double', cm, f.verdict = v_verdict, NULL, f.id,
                                f.scored_at);
            v_due := c.id;
        END IF;
    END IF;

    IF v_final AND v_fpass THEN
        v_award := gen_random_uuid();
    END IF;
    -- scores, review, award, submission and audit rows in one statement
    WITH sc AS (
        INSERT INTO review_scores (review_id, criterion, position, level, comment, evidence)
        SELECT r.id, t.crit, t.pos, t.lvl, t.com, t.ev
          FROM unnest(n.crit, n.pos, n.lvl, n.com, n.ev) AS t(crit, pos, lvl, com, ev)),
    rv AS (
        UPDATE reviews
           SET status = 'submitted', verdict = v_verdict, feedback = v_feedback,
               scored_at = now(), ended_at = now(),
               routing = CASE WHEN v_decision IS NULL THEN routing
                              ELSE coalesce(routing, '{}') || jsonb_build_object('decision', v_decision) END
         WHERE id = r.id),
    aw AS (
        INSERT INTO awards (id, credential_id, earner_id, submission_id)
        SELECT v_award, c.id, s.earner_id, s.id
         WHERE v_award IS NOT NULL),
    up AS (
        UPDATE submissions
           SET status = CASE WHEN r.stage = 'validity' THEN 'validity'
                             WHEN NOT v_final THEN 'in_review'
                             WHEN v_fpass THEN 'passed' ELSE 'returned' END,
               stage = v_stage,
               routing = CASE WHEN v_sub_routing IS NULL THEN routing ELSE v_sub_routing END,
               lease_expires_at = NULL, current_review_id = NULL,
               decided_review_id = CASE WHEN v_final THEN v_decided END,
               award_id = v_award, updated_at = now()
         WHERE id = s.id)
    INSERT INTO audit_log (actor_id, action, object_type, object_id, detail)
    SELECT v_me.id, 'review.score', 'review', r.id,
           jsonb_build_object('submission_id', s.id, 'verdict', v_verdict)
    UNION ALL
    SELECT NULL, 'submission.route', 'submission', s.id,
           jsonb_build_object('stage', v_stage, 'routing', v_sub_routing, 'after_review', r.id)
     WHERE v_sub_routing IS NOT NULL
    UNION ALL
    SELECT NULL, 'submission.decide', 'submission', s.id,
           jsonb_build_object('decided_review_id', v_decided, 'stage', r.stage,
                              'verdict', CASE WHEN v_fpass THEN 'pass' ELSE 'resubmit' END)
     WHERE v_final AND r.stage <> 'first'
    UNION ALL
    SELECT v_me.id, 'award.issue', 'award', v_award,
           jsonb_build_object('submission_id', s.id, 'credential_id', c.id,
                              'earner_id', s.earner_id)
     WHERE v_award IS NOT NULL;

    IF r.stage = 'validity' THEN
        SELECT array_agg(criterion), array_agg(level) INTO m_crit, m_lvl
          FROM anchor_scores WHERE anchor_id = s.anchor_id;
        cm := _cmp(rb.criteria, n.crit, n.lvl, m_crit, m_lvl);
        v_vl := _verdict_level(rb);
        PERFORM _window_add(v_me.id, rb, 'validity', cm,
                            (SELECT bool_and(x >= v_vl) FROM unnest(n.lvl) x)
                              = (SELECT bool_and(x >= v_vl) FROM unnest(m_lvl) x),
                            s.anchor_id, r.id, now());
    END IF;
    IF v_due IS NOT NULL THEN
        RETURN json_build_object('id', r.id, 'status', 'submitted', 'verdict', v_verdict,
                                 'submission_id', s.id, 'award_id', v_award,
                                 '_reliability_due', v_due);
    END IF;
    RETURN json_build_object('id', r.id, 'status', 'submitted', 'verdict', v_verdict,
                             'submission_id', s.id, 'award_id', v_award);
END $$;

-- ---------------------------------------------------------------------------
-- Submissions: validity items are invisible (002's functions otherwise)
-- ---------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION api_submission_list(p_token text) RETURNS json
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_me users := _auth_role(p_token, '{earner,lead}');
BEGIN
    IF 'lead' = ANY(v_me.roles) THEN
        -- bounded: the newest 500
        RETURN json_build_object('submissions',
            (SELECT coalesce(json_agg(q.j ORDER BY q.created_at DESC, q.id), '[]'::json)
               FROM (SELECT _submission_json(s) AS j, s.created_at, s.id
                       FROM submissions s
                      WHERE s.status <> 'validity'
                      ORDER BY s.created_at DESC, s.id LIMIT 500) q));
    END IF;
    RETURN json_build_object('submissions',
        (SELECT coalesce(json_agg(_submission_json(s) ORDER BY s.created_at DESC, s.id), '[]'::json)
           FROM submissions s WHERE s.earner_id = v_me.id));
END $$;

CREATE OR REPLACE FUNCTION api_submission_get(p_token text, p_id uuid) RETURNS json
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_me users := _auth(p_token);
    s submissions;
BEGIN
    SELECT * INTO s FROM submissions WHERE id = p_id AND status <> 'validity';
    IF NOT FOUND THEN
        RAISE EXCEPTION 'submission not found' USING ERRCODE = 'AC404', DETAIL = 'not_found';
    END IF;
    IF s.earner_id IS DISTINCT FROM v_me.id AND NOT 'lead' = ANY(v_me.roles) THEN
        RAISE EXCEPTION 'this submission is not yours'
            USING ERRCODE = 'AC403', DETAIL = 'forbidden';
    END IF;
    RETURN _submission_json(s);
END $$;

-- ---------------------------------------------------------------------------
-- Reliability (internal: only the server calls these, no token)
-- ---------------------------------------------------------------------------

-- The peer/expert pairs the estimate uses: the most recent 200 when peer
-- review is active; while paused only pairs whose peer scored after the pause.
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
                                    AND (c.peer_paused_at IS NULL OR sp.peer_scored_at > c.peer_paused_at)
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
BEGIN
    SELECT * INTO c FROM credentials WHERE id = p_credential FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'credential not found' USING ERRCODE = 'AC404', DETAIL = 'not_found';
    END IF;
    v_t := c.reliability_threshold;
    p_pairs := coalesce(p_pairs, 0);
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
            c.peer_paused_at := NULL;
            UPDATE credentials SET peer_paused_at = NULL WHERE id = c.id;
            INSERT INTO audit_log (actor_id, action, object_type, object_id, detail)
            VALUES (NULL, 'routing.resume', 'credential', c.id,
                    jsonb_build_object('kappa', p_kappa, 'ci', jsonb_build_array(p_lo, p_hi),
                                       'pairs', p_pairs, 'threshold', v_t, 'reason', v_reason));
        END IF;
    END IF;
    v_state := jsonb_build_object('pairs', p_pairs, 'kappa', p_kappa,
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

-- credential_id from the query: 400 when missing or malformed, 404 unknown.
CREATE FUNCTION _query_credential(q jsonb) RETURNS credentials
LANGUAGE plpgsql STABLE AS $$
DECLARE
    c credentials;
    v_id uuid := _j_uuid(q -> 'credential_id', 'credential_id', true);
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
    v_rid := _j_uuid(q -> 'rubric_id', 'rubric_id', true);
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
