-- SPDX-License-Identifier: Apache-2.0
-- 012_web.sql - what the web app needs from the API (issue 11):
--   earners read the rubric they will be scored on; results for people
--   (criterion titles, level labels, the credential's title);
--   review drafts saved on the server as the assessor types; lease extension;
--   "my reviews"; grants listed and revoked; a lead's override of a final
--   result; who scored what (leads); the adjudication queue.
-- Functions of 002/004/006 that change are redefined here (CREATE OR REPLACE);
-- each says what it adds.

-- ===========================================================================
-- Rubrics for earners; results people can read
-- ===========================================================================

-- 002's read, plus: anyone signed in (earners) reads the rubric of a
-- credential, since an earner may apply to every credential and is scored on
-- it. A rubric no credential uses yet is a lead's draft: leads, assessors and
-- experts only, as before.
CREATE OR REPLACE FUNCTION api_rubric_get(p_token text, p_id uuid) RETURNS json
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_me users := _auth(p_token);
    r rubrics;
BEGIN
    SELECT * INTO r FROM rubrics WHERE id = p_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'rubric not found' USING ERRCODE = 'AC404', DETAIL = 'not_found';
    END IF;
    IF NOT (v_me.roles && '{lead,assessor,expert}'::text[])
       AND NOT EXISTS (SELECT 1 FROM credentials c WHERE c.rubric_id = r.id) THEN
        RAISE EXCEPTION 'this rubric is not used by any credential yet'
            USING ERRCODE = 'AC403', DETAIL = 'forbidden';
    END IF;
    RETURN _rubric_json(r);
END $$;

-- 002's read, plus the credential's rubric (what the earner is scored on).
CREATE OR REPLACE FUNCTION api_credential_get(p_token text, p_id uuid) RETURNS json
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_me users := _auth(p_token);
    c credentials;
    rb rubrics;
BEGIN
    SELECT * INTO c FROM credentials WHERE id = p_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'credential not found' USING ERRCODE = 'AC404', DETAIL = 'not_found';
    END IF;
    SELECT * INTO rb FROM rubrics WHERE id = c.rubric_id;
    RETURN (_credential_json(c)::jsonb || jsonb_build_object('rubric', _rubric_json(rb)))::json;
END $$;

-- 002's scores, plus each criterion's title and the label of the level
-- reached (from the rubric the review was scored on): a result reads
-- "Student voice and peer feedback: Approaching", not "student-voice: 2".
CREATE OR REPLACE FUNCTION _scores_json(p_review_id uuid) RETURNS json
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_criteria jsonb;
BEGIN
    SELECT rb.criteria INTO v_criteria
      FROM reviews rv
      JOIN submissions s ON s.id = rv.submission_id
      JOIN credentials c ON c.id = s.credential_id
      JOIN rubrics rb ON rb.id = c.rubric_id
     WHERE rv.id = p_review_id;
    RETURN (SELECT coalesce(json_agg(json_build_object(
                                'criterion', sc.criterion, 'criterion_title', k.x ->> 'title',
                                'level', sc.level,
                                'level_label', (SELECT lv ->> 'label'
                                                  FROM jsonb_array_elements(k.x -> 'levels') lv
                                                 WHERE lv -> 'value' = to_jsonb(sc.level)),
                                'comment', sc.comment, 'evidence', sc.evidence)
                            ORDER BY sc.position), '[]'::json)
              FROM review_scores sc
              LEFT JOIN LATERAL (SELECT x FROM jsonb_array_elements(v_criteria) x
                                  WHERE x ->> 'key' = sc.criterion LIMIT 1) k ON true
             WHERE sc.review_id = p_review_id);
END $$;

-- 002's submission, plus credential:{id,title} (a status page names what was applied for).
CREATE OR REPLACE FUNCTION _submission_json(s submissions) RETURNS json
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN json_build_object('id', s.id, 'credential_id', s.credential_id,
                             'credential', (SELECT json_build_object('id', c.id, 'title', c.title)
                                              FROM credentials c WHERE c.id = s.credential_id),
                             'earner_id', s.earner_id, 'attempt', s.attempt,
                             'previous_id', s.previous_id, 'status', s.status,
                             'artifacts', _submission_artifacts_json(s.id),
                             'result', CASE WHEN s.decided_review_id IS NOT NULL
                                            THEN _result_json(s.decided_review_id) END,
                             'award_id', s.award_id,
                             'created_at', _ts(s.created_at),
                             'updated_at', _ts(s.updated_at));
END $$;

-- ===========================================================================
-- Review drafts: saved on the server as the assessor types
-- ===========================================================================
--
-- One draft per active review, readable and writable only by its holder
-- while the review is active (a lead does not read unfinished work). A save
-- names the version it started from (optimistic: a second device or a stale
-- tab gets 409 draft_conflict rather than overwriting newer text). Drafts
-- are unfinished, so they are not checked against the rubric, only for
-- shape and size. A draft ends with its review: scored, released, expired or
-- its grant revoked (the trigger below).
CREATE TABLE review_drafts (
    review_id  uuid PRIMARY KEY REFERENCES reviews (id),
    draft      jsonb NOT NULL CHECK (jsonb_typeof(draft) = 'object'),
    version    int NOT NULL CHECK (version >= 1),
    bytes      int NOT NULL CHECK (bytes BETWEEN 2 AND 131072),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION _review_drafts_end() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM review_drafts WHERE review_id = NEW.id;
    RETURN NULL;
END $$;

CREATE TRIGGER reviews_draft_end AFTER UPDATE OF status ON reviews
    FOR EACH ROW WHEN (OLD.status = 'active' AND NEW.status <> 'active')
    EXECUTE FUNCTION _review_drafts_end();

CREATE FUNCTION _draft_bad(p_msg text) RETURNS void
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    RAISE EXCEPTION 'draft%', p_msg USING ERRCODE = 'AC422', DETAIL = 'invalid_draft';
END $$;

-- A text field of a draft: absent/null, or a string of at most p_max characters.
CREATE FUNCTION _draft_text(v jsonb, p_where text, p_max int) RETURNS void
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF v IS NULL OR jsonb_typeof(v) = 'null' THEN
        RETURN;
    END IF;
    IF jsonb_typeof(v) <> 'string' THEN
        PERFORM _draft_bad(format('%s must be a string', p_where));
    END IF;
    IF length(v #>> '{}') > p_max THEN
        PERFORM _draft_bad(format('%s must be at most %s characters', p_where, p_max));
    END IF;
END $$;

-- The draft's shape (422 invalid_draft naming the field): {scores:[{criterion,
-- level?,comment?,evidence?:[{artifact_id,start_s?,end_s?,note?}]}], feedback?}
-- with the bounds of a score set. Returns it with scores and feedback present.
CREATE FUNCTION _draft_check(d jsonb) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    e jsonb;
    ev jsonb;
    i int := 0;
    j int;
    f text;
    g text;
    v_bad text;
BEGIN
    IF d IS NULL OR jsonb_typeof(d) <> 'object' THEN
        PERFORM _draft_bad(' must be an object {"scores":[...],"feedback":"..."}');
    END IF;
    SELECT string_agg(k, ', ' ORDER BY k) INTO v_bad
      FROM jsonb_object_keys(d) k WHERE k NOT IN ('scores', 'feedback');
    IF v_bad IS NOT NULL THEN
        PERFORM _draft_bad(format(' has unknown fields: %s (known: scores, feedback)', left(v_bad, 200)));
    END IF;
    PERFORM _draft_text(d -> 'feedback', '.feedback', 20000);
    IF coalesce(jsonb_typeof(d -> 'scores'), 'null') = 'null' THEN
        d := d || '{"scores":[]}';
    ELSIF jsonb_typeof(d -> 'scores') <> 'array' THEN
        PERFORM _draft_bad('.scores must be an array');
    ELSIF jsonb_array_length(d -> 'scores') > 32 THEN
        PERFORM _draft_bad('.scores has more than 32 entries (a rubric has at most 32 criteria)');
    END IF;
    FOR e IN SELECT x FROM jsonb_array_elements(d -> 'scores') x LOOP
        f := format('.scores[%s]', i);
        IF jsonb_typeof(e) <> 'object' THEN
            PERFORM _draft_bad(f || ' must be an object {"criterion","level"?,"comment"?,"evidence"?}');
        END IF;
        SELECT string_agg(k, ', ' ORDER BY k) INTO v_bad
          FROM jsonb_object_keys(e) k WHERE k NOT IN ('criterion', 'level', 'comment', 'evidence');
        IF v_bad IS NOT NULL THEN
            PERFORM _draft_bad(format('%s has unknown fields: %s', f, left(v_bad, 200)));
        END IF;
        IF jsonb_typeof(e -> 'criterion') IS DISTINCT FROM 'string'
           OR length(e ->> 'criterion') NOT BETWEEN 1 AND 64 THEN
            PERFORM _draft_bad(f || '.criterion must be a criterion key (1 to 64 characters)');
        END IF;
        IF coalesce(jsonb_typeof(e -> 'level'), 'null') NOT IN ('null', 'number') THEN
            PERFORM _draft_bad(f || '.level must be a level value (a whole number 0-100) or null');
        END IF;
        IF jsonb_typeof(e -> 'level') = 'number' THEN
            IF (e -> 'level')::numeric <> trunc((e -> 'level')::numeric)
               OR (e -> 'level')::numeric NOT BETWEEN 0 AND 100 THEN
                PERFORM _draft_bad(f || '.level must be a level value (a whole number 0-100) or null');
            END IF;
        END IF;
        PERFORM _draft_text(e -> 'comment', f || '.comment', 5000);
        IF coalesce(jsonb_typeof(e -> 'evidence'), 'null') NOT IN ('null', 'array') THEN
            PERFORM _draft_bad(f || '.evidence must be an array');
        END IF;
        IF jsonb_array_length(coalesce(nullif(e -> 'evidence', 'null'), '[]')) > 20 THEN
            PERFORM _draft_bad(f || '.evidence has more than 20 citations');
        END IF;
        j := 0;
        FOR ev IN SELECT x FROM jsonb_array_elements(coalesce(nullif(e -> 'evidence', 'null'), '[]')) x LOOP
            g := format('%s.evidence[%s]', f, j);
            IF jsonb_typeof(ev) <> 'object' THEN
                PERFORM _draft_bad(g || ' must be an object {"artifact_id","start_s"?,"end_s"?,"note"?}');
            END IF;
            SELECT string_agg(k, ', ' ORDER BY k) INTO v_bad
              FROM jsonb_object_keys(ev) k WHERE k NOT IN ('artifact_id', 'start_s', 'end_s', 'note');
            IF v_bad IS NOT NULL THEN
                PERFORM _draft_bad(format('%s has unknown fields: %s', g, left(v_bad, 200)));
            END IF;
            IF jsonb_typeof(ev -> 'artifact_id') IS DISTINCT FROM 'string'
               OR NOT _is_uuid(ev ->> 'artifact_id') THEN
                PERFORM _draft_bad(g || '.artifact_id must be an artifact''s UUID');
            END IF;
            IF coalesce(jsonb_typeof(ev -> 'start_s'), 'null') NOT IN ('null', 'number')
               OR coalesce(jsonb_typeof(ev -> 'end_s'), 'null') NOT IN ('null', 'number') THEN
                PERFORM _draft_bad(g || ': start_s and end_s must be seconds (0 to 1000000000) or null');
            END IF;
            IF coalesce((ev ->> 'start_s')::numeric, 0) NOT BETWEEN 0 AND 1e9
               OR coalesce((ev ->> 'end_s')::numeric, 0) NOT BETWEEN 0 AND 1e9 THEN
                PERFORM _draft_bad(g || ': start_s and end_s must be seconds (0 to 1000000000) or null');
            END IF;
            PERFORM _draft_text(ev -> 'note', g || '.note', 1000);
            j := j + 1;
        END LOOP;
        i := i + 1;
    END LOOP;
    IF NOT d ? 'feedback' OR jsonb_typeof(d -> 'feedback') = 'null' THEN
        d := d || '{"feedback":""}';
    END IF;
    RETURN d;
END $$;

-- The caller's review for a draft: theirs (403), active (409 not_active /
-- already_scored / lease_lost as a score would answer). p_lock: under the
-- submission's row lock, as every change to a review (002).
CREATE FUNCTION _draft_review(v_me users, p_id uuid, p_lock boolean) RETURNS reviews
LANGUAGE plpgsql AS $$
DECLARE
    r reviews;
    l record;
BEGIN
    IF p_lock THEN
        l := _review_lock_active(v_me, p_id);
        RETURN l.r;
    END IF;
    SELECT * INTO r FROM reviews WHERE id = p_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'review not found' USING ERRCODE = 'AC404', DETAIL = 'not_found';
    END IF;
    IF r.assessor_id <> v_me.id THEN
        RAISE EXCEPTION 'this review is not yours' USING ERRCODE = 'AC403', DETAIL = 'forbidden';
    END IF;
    IF r.status = 'submitted' THEN
        RAISE EXCEPTION 'this review was already scored; its draft is gone'
            USING ERRCODE = 'AC409', DETAIL = 'already_scored';
    ELSIF r.status <> 'active' THEN
        RAISE EXCEPTION 'this review is no longer yours (%); its draft is gone', r.status
            USING ERRCODE = 'AC409', DETAIL = 'not_active';
    END IF;
    RETURN r;
END $$;

-- GET /v1/reviews/{id}/draft (its holder, active review).
CREATE FUNCTION api_review_draft_get(p_token text, p_id uuid) RETURNS json
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_me users := _auth(p_token);
    r reviews := _draft_review(v_me, p_id, false);
    d review_drafts;
BEGIN
    SELECT * INTO d FROM review_drafts WHERE review_id = r.id;
    IF NOT FOUND THEN
        RETURN json_build_object('review_id', r.id, 'draft', json_build_object('scores', '[]'::json,
                                                                              'feedback', ''),
                                 'version', 0, 'updated_at', NULL);
    END IF;
    RETURN json_build_object('review_id', r.id, 'draft', d.draft, 'version', d.version,
                             'updated_at', _ts(d.updated_at));
END $$;

-- PUT /v1/reviews/{id}/draft {draft, version} (its holder, active review).
CREATE FUNCTION api_review_draft_put(p_token text, p_id uuid, p_body jsonb) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    v_me users := _auth(p_token);
    r reviews := _draft_review(v_me, p_id, true);
    b jsonb := _body(p_body);
    v_version int;
    v_draft jsonb;
    v_bytes int;
    d review_drafts;
BEGIN
    PERFORM _only_keys(b, '{draft,version}', 'field');
    v_version := _j_int(b -> 'version', 'version', true);
    IF v_version < 0 THEN
        PERFORM _bad('version must be the version last read or written (0 when there is no draft yet)');
    END IF;
    IF NOT b ? 'draft' THEN
        PERFORM _bad('draft is required');
    END IF;
    v_draft := _draft_check(b -> 'draft');
    v_bytes := octet_length(v_draft::text);
    IF v_bytes > 131072 THEN
        RAISE EXCEPTION 'the draft is % bytes; at most 131072 are kept', v_bytes
            USING ERRCODE = 'AC413', DETAIL = 'draft_too_large';
    END IF;
    SELECT * INTO d FROM review_drafts WHERE review_id = r.id;
    IF coalesce(d.version, 0) <> v_version THEN
        RAISE EXCEPTION 'the draft changed since version % (it is version %, saved at %, perhaps on another device): read it again (GET) and merge',
                        v_version, coalesce(d.version, 0), coalesce(_ts(d.updated_at), 'never')
            USING ERRCODE = 'AC409', DETAIL = 'draft_conflict';
    END IF;
    INSERT INTO review_drafts AS rd (review_id, draft, version, bytes)
    VALUES (r.id, v_draft, 1, v_bytes)
    ON CONFLICT (review_id) DO UPDATE
       SET draft = excluded.draft, version = rd.version + 1, bytes = excluded.bytes,
           updated_at = now()
    RETURNING * INTO d;
    RETURN json_build_object('review_id', r.id, 'version', d.version,
                             'updated_at', _ts(d.updated_at));
END $$;

-- ===========================================================================
-- Lease extension
-- ===========================================================================
--
-- The holder of an active, unexpired lease may extend it twice: each
-- extension sets it to now + the lease length (ACCORD_LEASE_SECONDS), so a
-- review never stays locked longer than three leases. An expired lease is not
-- extended (409 lease_expired: score now, or claim again), whatever the item.
ALTER TABLE reviews ADD COLUMN extensions int NOT NULL DEFAULT 0 CHECK (extensions BETWEEN 0 AND 2);

CREATE FUNCTION _max_extensions() RETURNS int
LANGUAGE sql IMMUTABLE AS $$ SELECT 2 $$;

CREATE FUNCTION api_review_extend(p_token text, p_id uuid, p_lease_seconds int) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    v_me users := _auth(p_token);
    l record := _review_lock_active(v_me, p_id);
    r reviews := l.r;
    v_until timestamptz;
BEGIN
    IF r.lease_expires_at <= now() THEN
        RAISE EXCEPTION 'your lease expired at %: score now, or claim again', _ts(r.lease_expires_at)
            USING ERRCODE = 'AC409', DETAIL = 'lease_expired';
    END IF;
    IF r.extensions >= _max_extensions() THEN
        RAISE EXCEPTION 'this lease was extended % times already, the most allowed; it ends at %',
                        r.extensions, _ts(r.lease_expires_at)
            USING ERRCODE = 'AC409', DETAIL = 'extend_limit';
    END IF;
    v_until := greatest(r.lease_expires_at,
                        now() + make_interval(secs => coalesce(p_lease_seconds, 7200)));
    UPDATE reviews SET lease_expires_at = v_until, extensions = extensions + 1
     WHERE id = r.id RETURNING * INTO r;
    UPDATE submissions SET lease_expires_at = v_until, updated_at = now()
     WHERE id = r.submission_id AND current_review_id = r.id;
    INSERT INTO audit_log (actor_id, action, object_type, object_id, detail)
    VALUES (v_me.id, 'review.extend', 'review', r.id,
            jsonb_build_object('submission_id', r.submission_id,
                               'lease_expires_at', _ts(v_until), 'extensions', r.extensions));
    RETURN json_build_object('id', r.id, 'status', r.status,
                             'lease_expires_at', _ts(r.lease_expires_at),
                             'extensions_left', _max_extensions() - r.extensions);
END $$;

-- ===========================================================================
-- "My reviews" and "My qualifications" (assessors, experts)
-- ===========================================================================

-- GET /v1/me/reviews?status=active|past&limit= : the caller's own reviews,
-- newest first. A validity item is listed as the first score it looks like
-- (the assessor must not tell it apart); never the earner's identity.
CREATE FUNCTION api_my_reviews(p_token text, p_query jsonb) RETURNS json
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_me users := _auth_role(p_token, '{assessor,expert,lead}');
    q jsonb := _body(p_query);
    v_past boolean;
    v_limit int := 50;
BEGIN
    PERFORM _only_keys(q, '{status,limit}', 'query parameter');
    IF coalesce(q ->> 'status', 'active') NOT IN ('active', 'past') THEN
        PERFORM _bad('status must be "active" (held now) or "past" (scored, released or expired)');
    END IF;
    v_past := coalesce(q ->> 'status', 'active') = 'past';
    IF q ? 'limit' THEN
        IF (q ->> 'limit') !~ '^[0-9]{1,4}$' OR (q ->> 'limit')::int NOT BETWEEN 1 AND 200 THEN
            PERFORM _bad('limit must be a whole number from 1 to 200');
        END IF;
        v_limit := (q ->> 'limit')::int;
    END IF;
    RETURN json_build_object('reviews',
        (SELECT coalesce(json_agg(x.j ORDER BY x.claimed_at DESC, x.id), '[]'::json)
           FROM (SELECT rv.id, rv.claimed_at,
                        json_build_object(
                            'id', rv.id, 'status', rv.status,
                            'kind', CASE WHEN rv.stage IN ('second', 'adjudication') THEN rv.stage
                                         ELSE 'first' END,
                            'credential', json_build_object('id', c.id, 'title', c.title),
                            'submission_id', s.id, 'attempt', s.attempt,
                            'claimed_at', _ts(rv.claimed_at),
                            'lease_expires_at', _ts(rv.lease_expires_at),
                            'extensions_left', CASE WHEN rv.status = 'active'
                                                    THEN _max_extensions() - rv.extensions END,
                            'has_draft', EXISTS (SELECT 1 FROM review_drafts d WHERE d.review_id = rv.id),
                            'scored_at', _ts(rv.scored_at), 'verdict', rv.verdict) AS j
                   FROM reviews rv
                   JOIN submissions s ON s.id = rv.submission_id
                   JOIN credentials c ON c.id = s.credential_id
                  WHERE rv.assessor_id = v_me.id
                    AND (rv.status = 'active') <> v_past
                  ORDER BY rv.claimed_at DESC, rv.id
                  LIMIT v_limit) x));
END $$;

-- 004's list, plus per rubric its title, the thresholds the window is held
-- to (so the numbers explain the status) and qualified_at; and the rubrics
-- the caller holds a grant on but has no qualification for yet (a
-- calibration session comes first).
CREATE OR REPLACE FUNCTION api_my_qualifications(p_token text) RETURNS json
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_me users := _auth(p_token);
BEGIN
    RETURN json_build_object(
        'qualifications',
        (SELECT coalesce(json_agg((_qualification_json(q)::jsonb || jsonb_build_object(
                                       'rubric', jsonb_build_object('id', rb.id, 'title', rb.title),
                                       'qualified_at', _ts(q.qualified_at),
                                       'thresholds', jsonb_build_object(
                                           'exact_min', rb.cal_exact_min,
                                           'adjacent_min', rb.cal_adjacent_min,
                                           'verdict_min', rb.cal_verdict_min,
                                           'window', rb.cal_window,
                                           'min_items', rb.cal_min_items)))::json
                                  ORDER BY q.updated_at, q.rubric_id), '[]'::json)
           FROM qualifications q JOIN rubrics rb ON rb.id = q.rubric_id
          WHERE q.user_id = v_me.id),
        'uncalibrated',
        (SELECT coalesce(json_agg(json_build_object('rubric', json_build_object('id', x.id, 'title', x.title),
                                                    'credentials', x.creds)
                                  ORDER BY x.title, x.id), '[]'::json)
           FROM (SELECT rb.id, rb.title,
                        json_agg(json_build_object('id', c.id, 'title', c.title)
                                 ORDER BY c.title, c.id) AS creds
                   FROM assessor_grants g
                   JOIN credentials c ON c.id = g.credential_id
                   JOIN rubrics rb ON rb.id = c.rubric_id
                  WHERE g.user_id = v_me.id
                    AND NOT EXISTS (SELECT 1 FROM qualifications q
                                     WHERE q.user_id = v_me.id AND q.rubric_id = rb.id)
                  GROUP BY rb.id, rb.title) x));
END $$;

-- ===========================================================================
-- Grants: list and revoke (lead)
-- ===========================================================================

-- GET /v1/credentials/{id}/assessors
CREATE FUNCTION api_assessor_list(p_token text, p_credential uuid) RETURNS json
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_me users := _auth_role(p_token, '{lead}');
    c credentials;
BEGIN
    SELECT * INTO c FROM credentials WHERE id = p_credential;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'credential not found' USING ERRCODE = 'AC404', DETAIL = 'not_found';
    END IF;
    RETURN json_build_object('assessors',
        (SELECT coalesce(json_agg(json_build_object(
                    'user_id', u.id, 'name', u.name, 'email', u.email, 'pool', g.pool,
                    'waive_award', g.waive_award, 'created_at', _ts(g.created_at),
                    'qualification', (SELECT q.status FROM qualifications q
                                       WHERE q.user_id = u.id AND q.rubric_id = c.rubric_id),
                    'active_reviews', (SELECT count(*) FROM reviews rv
                                         JOIN submissions s ON s.id = rv.submission_id
                                        WHERE rv.assessor_id = u.id AND rv.status = 'active'
                                          AND s.credential_id = c.id))
                    ORDER BY g.created_at, u.id), '[]'::json)
           FROM assessor_grants g JOIN users u ON u.id = g.user_id
          WHERE g.credential_id = c.id));
END $$;

-- DELETE /v1/credentials/{id}/assessors/{user_id}: the grant goes, and with
-- it the assessor's active leases on the credential (each submission goes
-- back where a release puts it; not counted as the assessor's churn: it was
-- not their doing). Audited: the revocation and each ended review.
CREATE FUNCTION api_assessor_revoke(p_token text, p_credential uuid, p_user uuid) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    v_me users := _auth_role(p_token, '{lead}');
    g assessor_grants;
    v_ended uuid[];
BEGIN
    IF NOT EXISTS (SELECT 1 FROM credentials WHERE id = p_credential) THEN
        RAISE EXCEPTION 'credential not found' USING ERRCODE = 'AC404', DETAIL = 'not_found';
    END IF;
    DELETE FROM assessor_grants WHERE credential_id = p_credential AND user_id = p_user
    RETURNING * INTO g;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'this user holds no grant on this credential'
            USING ERRCODE = 'AC404', DETAIL = 'not_found';
    END IF;
    -- every change to a review happens under its submission's row lock (002)
    PERFORM 1 FROM submissions s
      WHERE s.credential_id = p_credential
        AND s.current_review_id IN (SELECT rv.id FROM reviews rv
                                     WHERE rv.assessor_id = p_user AND rv.status = 'active')
      ORDER BY s.id
        FOR UPDATE;
    WITH ended AS (
        UPDATE reviews rv SET status = 'released', ended_at = now()
          FROM submissions s
         WHERE s.id = rv.submission_id AND s.credential_id = p_credential
           AND rv.assessor_id = p_user AND rv.status = 'active'
        RETURNING rv.id)
    SELECT coalesce(array_agg(id ORDER BY id), '{}') INTO v_ended FROM ended;
    WITH back AS (
        UPDATE submissions
           SET status = CASE WHEN status = 'validity' THEN 'validity'
                             WHEN stage = 'first' THEN 'queued' ELSE 'in_review' END,
               lease_expires_at = NULL, current_review_id = NULL, updated_at = now()
         WHERE current_review_id = ANY(v_ended)
        RETURNING id, queued_at, status, stage),
    head AS (
        SELECT queued_at, id FROM back WHERE status = 'queued' AND stage = 'first'
         ORDER BY queued_at, id LIMIT 1)
    -- as a release does (017's claim cursors): the queue's cursors of the
    -- credential come back to the oldest submission put back
    UPDATE claim_cursors cc
       SET queued_at = head.queued_at, submission_id = head.id, moved_at = now()
      FROM head
     WHERE cc.credential_id = p_credential
       AND (cc.queued_at, cc.submission_id) > (head.queued_at, head.id);
    INSERT INTO audit_log (actor_id, action, object_type, object_id, object_ids, detail)
    VALUES (v_me.id, 'assessor.revoke', 'credential', p_credential,
            CASE WHEN cardinality(v_ended) > 0 THEN v_ended END,
            jsonb_build_object('user_id', p_user, 'pool', g.pool, 'ended_reviews', to_jsonb(v_ended)));
    INSERT INTO audit_log (actor_id, action, object_type, object_id, detail)
    SELECT v_me.id, 'review.release', 'review', x,
           jsonb_build_object('assessor_id', p_user, 'why', 'grant_revoked')
      FROM unnest(v_ended) x;
    IF cardinality(v_ended) > 0 THEN
        PERFORM pg_notify('accord_queue', p_credential::text);
    END IF;
    RETURN NULL;
END $$;

-- ===========================================================================
-- A lead's override of a final result
-- ===========================================================================
--
-- The decided review stays as scored (its scores are what the assessor
-- gave, and what reliability measures); the override is a row of its own
-- that the result shows: `verdict` becomes the override's and `override`
-- says so (verdict before, the lead's feedback to the earner, when) — never
-- the lead's identity nor the lead's reason, which go to the audit log and to
-- leads (GET /v1/submissions/{id}/reviews). The award follows the verdict as
-- the scoring path does it: a pass issues the award (the badge trigger of 008
-- makes its badge and completes stacks); a resubmit revokes the award's badge
-- and the stack badges it completed (as POST /v1/awards/{id}/revoke does).
-- A revoked badge is never issued again: passing a result whose award was
-- revoked is 409 award_revoked.
CREATE TABLE result_overrides (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    submission_id    uuid NOT NULL REFERENCES submissions (id),
    review_id        uuid NOT NULL REFERENCES reviews (id),
    verdict          text NOT NULL CHECK (verdict IN ('pass','resubmit')),
    previous_verdict text NOT NULL CHECK (previous_verdict IN ('pass','resubmit')),
    reason           text NOT NULL CHECK (length(reason) BETWEEN 1 AND 2000),
    feedback         text CHECK (length(feedback) <= 20000),
    lead_id          uuid NOT NULL REFERENCES users (id),
    award_id         uuid REFERENCES awards (id),
    at               timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX result_overrides_review_idx ON result_overrides (review_id, at DESC, id DESC);
CREATE INDEX result_overrides_submission_idx ON result_overrides (submission_id, at);

-- 002's result, plus the latest override of it (`override`, null when none).
CREATE OR REPLACE FUNCTION _result_json(p_review_id uuid) RETURNS json
LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF p_review_id IS NULL THEN
        RETURN NULL;
    END IF;
    RETURN (SELECT json_build_object('verdict', coalesce(o.verdict, r.verdict),
                                     'scores', _scores_json(r.id),
                                     'feedback', r.feedback,
                                     'decided_at', _ts(coalesce(o.at, r.scored_at)),
                                     'override', CASE WHEN o.id IS NOT NULL THEN
                                         json_build_object('verdict', o.verdict,
                                                           'previous_verdict', o.previous_verdict,
                                                           'feedback', o.feedback,
                                                           'at', _ts(o.at)) END)
              FROM reviews r
              LEFT JOIN LATERAL (SELECT x.* FROM result_overrides x
                                  WHERE x.review_id = r.id
                                  ORDER BY x.at DESC, x.id DESC LIMIT 1) o ON true
             WHERE r.id = p_review_id AND r.status = 'submitted');
END $$;

-- POST /v1/submissions/{id}/override {verdict, reason, feedback?} (lead)
CREATE FUNCTION api_submission_override(p_token text, p_id uuid, p_body jsonb) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    v_me users := _auth_role(p_token, '{lead}');
    b jsonb := _body(p_body);
    v_verdict text;
    v_reason text;
    v_feedback text;
    v_prev text;
    v_award uuid;
    v_why text;
    s submissions;
    c credentials;
    a awards;
    bd badges;
BEGIN
    PERFORM _only_keys(b, '{verdict,reason,feedback}', 'field');
    v_verdict := _j_text(b -> 'verdict', 'verdict', true, 20);
    IF v_verdict NOT IN ('pass', 'resubmit') THEN
        PERFORM _bad('verdict must be "pass" or "resubmit"');
    END IF;
    v_reason := btrim(_j_text(b -> 'reason', 'reason', true, 2000));
    IF v_reason = '' THEN
        PERFORM _bad('reason must say why the result is overridden');
    END IF;
    v_feedback := nullif(btrim(_j_text(b -> 'feedback', 'feedback', false, 20000, true)), '');
    SELECT * INTO s FROM submissions WHERE id = p_id AND status <> 'validity';
    IF NOT FOUND THEN
        RAISE EXCEPTION 'submission not found' USING ERRCODE = 'AC404', DETAIL = 'not_found';
    END IF;
    -- the earner's chain, then the row: as resubmitting locks it
    PERFORM _lock_chain(s.earner_id, s.credential_id);
    SELECT * INTO s FROM submissions WHERE id = p_id FOR UPDATE;
    IF s.earner_id = v_me.id THEN
        RAISE EXCEPTION 'you cannot override the result of your own submission'
            USING ERRCODE = 'AC403', DETAIL = 'forbidden';
    END IF;
    IF v_me.org_id IS NOT NULL AND s.earner_org_id = v_me.org_id THEN
        RAISE EXCEPTION 'this earner is of your own organisation: another lead must decide'
            USING ERRCODE = 'AC403', DETAIL = 'forbidden';
    END IF;
    IF s.status NOT IN ('returned', 'passed') OR s.decided_review_id IS NULL THEN
        RAISE EXCEPTION 'only a final result can be overridden; this submission is %',
                        replace(s.status, '_', ' ')
            USING ERRCODE = 'AC409', DETAIL = 'not_final';
    END IF;
    IF EXISTS (SELECT 1 FROM submissions n WHERE n.previous_id = s.id) THEN
        RAISE EXCEPTION 'the earner has resubmitted since (attempt %): only the latest attempt''s result can be overridden',
                        s.attempt + 1
            USING ERRCODE = 'AC409', DETAIL = 'not_latest';
    END IF;
    v_prev := CASE WHEN s.status = 'passed' THEN 'pass' ELSE 'resubmit' END;
    IF v_prev = v_verdict THEN
        RAISE EXCEPTION 'the result is already "%"', v_verdict
            USING ERRCODE = 'AC409', DETAIL = 'no_change';
    END IF;
    SELECT * INTO c FROM credentials WHERE id = s.credential_id;
    IF v_verdict = 'pass' THEN
        SELECT * INTO a FROM awards WHERE earner_id = s.earner_id AND credential_id = c.id;
        IF FOUND THEN
            SELECT * INTO bd FROM badges WHERE award_id = a.id;
            IF bd.revoked_at IS NOT NULL THEN
                RAISE EXCEPTION 'the earner''s award for this credential was revoked at %; a revoked badge is not issued again',
                                _ts_s(bd.revoked_at)
                    USING ERRCODE = 'AC409', DETAIL = 'award_revoked';
            END IF;
            v_award := a.id;
        ELSE
            v_award := gen_random_uuid();
            INSERT INTO awards (id, credential_id, earner_id, submission_id)
            VALUES (v_award, c.id, s.earner_id, s.id);
            INSERT INTO audit_log (actor_id, action, object_type, object_id, detail)
            VALUES (v_me.id, 'award.issue', 'award', v_award,
                    jsonb_build_object('submission_id', s.id, 'credential_id', c.id,
                                       'earner_id', s.earner_id, 'via', 'override'));
        END IF;
        UPDATE submissions SET status = 'passed', award_id = v_award, updated_at = now()
         WHERE id = s.id RETURNING * INTO s;
    ELSE
        IF s.award_id IS NOT NULL THEN
            v_award := s.award_id;
            -- told to the earner (their awards list), not to the world (008)
            v_why := format('a program lead changed the result of attempt %s to resubmit', s.attempt);
            UPDATE badges SET revoked_at = now(), revoked_by = v_me.id, revoke_reason = v_why
             WHERE award_id = s.award_id AND revoked_at IS NULL
            RETURNING * INTO bd;
            IF bd.id IS NOT NULL THEN
                INSERT INTO audit_log (actor_id, action, object_type, object_id, detail)
                VALUES (v_me.id, 'badge.revoke', 'badge', bd.id,
                        jsonb_build_object('reason', v_why, 'earner_id', bd.earner_id,
                                           'via', 'override'));
                -- a stack counts only while every member does (008's revocation)
                WITH st AS (
                    UPDATE badges sb
                       SET revoked_at = now(), revoked_by = v_me.id,
                           revoke_reason = left(format('%s, a credential of this stack, was revoked: %s',
                                                       c.title, v_why), 2000)
                     WHERE sb.earner_id = s.earner_id AND sb.revoked_at IS NULL
                       AND sb.stack_id IN (SELECT m.stack_id FROM stack_members m
                                            WHERE m.credential_id = c.id)
                    RETURNING sb.id, sb.revoke_reason)
                INSERT INTO audit_log (actor_id, action, object_type, object_id, detail)
                SELECT v_me.id, 'badge.revoke', 'badge', st.id,
                       jsonb_build_object('reason', st.revoke_reason, 'earner_id', s.earner_id,
                                          'with_member', bd.id, 'via', 'override')
                  FROM st;
            END IF;
        END IF;
        UPDATE submissions SET status = 'returned', award_id = NULL, updated_at = now()
         WHERE id = s.id RETURNING * INTO s;
    END IF;
    INSERT INTO result_overrides (submission_id, review_id, verdict, previous_verdict, reason,
                                  feedback, lead_id, award_id)
    VALUES (s.id, s.decided_review_id, v_verdict, v_prev, v_reason, v_feedback, v_me.id, v_award);
    INSERT INTO audit_log (actor_id, action, object_type, object_id, detail)
    VALUES (v_me.id, 'submission.override', 'submission', s.id,
            jsonb_build_object('verdict', v_verdict, 'previous_verdict', v_prev,
                               'reason', v_reason, 'feedback', v_feedback,
                               'decided_review_id', s.decided_review_id, 'award_id', v_award));
    RETURN _submission_json(s);
END $$;

-- ===========================================================================
-- Who scored what (leads); the adjudication queue
-- ===========================================================================

-- GET /v1/submissions/{id}/reviews (lead): every review of the submission
-- with its assessor, scores and routing, and every override with its lead
-- and reason. A read of scores and identities: audited.
CREATE FUNCTION api_submission_reviews(p_token text, p_id uuid) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    v_me users := _auth_role(p_token, '{lead}');
    s submissions;
    v_ids uuid[];
BEGIN
    SELECT * INTO s FROM submissions WHERE id = p_id AND status <> 'validity';
    IF NOT FOUND THEN
        RAISE EXCEPTION 'submission not found' USING ERRCODE = 'AC404', DETAIL = 'not_found';
    END IF;
    SELECT coalesce(array_agg(rv.id ORDER BY rv.claimed_at, rv.id), '{}') INTO v_ids
      FROM reviews rv WHERE rv.submission_id = s.id;
    PERFORM _audit_read(v_me.id, 'submission.reviews_read', 'submission', s.id,
                        CASE WHEN cardinality(v_ids) > 0 THEN v_ids END, '{}');
    RETURN json_build_object(
        'submission_id', s.id, 'status', s.status, 'stage', s.stage,
        'decided_review_id', s.decided_review_id,
        'reviews',
        (SELECT coalesce(json_agg(json_build_object(
                    'id', rv.id, 'kind', rv.stage, 'stage', rv.stage, 'pool', rv.pool,
                    'status', rv.status,
                    'assessor', json_build_object('id', u.id, 'name', u.name),
                    'claimed_at', _ts(rv.claimed_at), 'scored_at', _ts(rv.scored_at),
                    'verdict', rv.verdict,
                    'scores', CASE WHEN rv.status = 'submitted' THEN _scores_json(rv.id) END,
                    'feedback', rv.feedback, 'routing', rv.routing)
                    ORDER BY rv.claimed_at, rv.id), '[]'::json)
           FROM reviews rv JOIN users u ON u.id = rv.assessor_id
          WHERE rv.submission_id = s.id),
        'overrides',
        (SELECT coalesce(json_agg(json_build_object(
                    'verdict', o.verdict, 'previous_verdict', o.previous_verdict,
                    'reason', o.reason, 'feedback', o.feedback,
                    'lead', json_build_object('id', u.id, 'name', u.name), 'at', _ts(o.at))
                    ORDER BY o.at, o.id), '[]'::json)
           FROM result_overrides o JOIN users u ON u.id = o.lead_id
          WHERE o.submission_id = s.id));
END $$;

-- GET /v1/adjudications (lead, expert): submissions waiting for an
-- adjudication, oldest first (at most 200). A lead sees every credential's,
-- with why (the disagreement); an expert those of credentials they hold an
-- expert grant on and may take (another organisation's earner, not a
-- submission they scored). Claiming is POST /v1/reviews/claim.
CREATE FUNCTION api_adjudication_list(p_token text) RETURNS json
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_me users := _auth_role(p_token, '{lead,expert}');
    v_lead boolean := 'lead' = ANY(v_me.roles);
BEGIN
    RETURN json_build_object('adjudications',
        (SELECT coalesce(json_agg(x.j ORDER BY x.since, x.id), '[]'::json)
           FROM (SELECT s.id, w.since,
                        json_build_object(
                            'submission_id', s.id,
                            'credential', json_build_object('id', c.id, 'title', c.title),
                            'stakes', c.stakes, 'attempt', s.attempt,
                            'waiting_since', _ts(w.since),
                            'claimed', s.current_review_id IS NOT NULL
                                       AND s.lease_expires_at >= now(),
                            'lease_expires_at', _ts(s.lease_expires_at),
                            'reason', CASE WHEN v_lead THEN s.routing END) AS j
                   FROM submissions s
                   JOIN credentials c ON c.id = s.credential_id
                   LEFT JOIN LATERAL (SELECT max(rv.scored_at) AS since FROM reviews rv
                                       WHERE rv.submission_id = s.id
                                         AND rv.status = 'submitted') w ON true
                  WHERE s.status = 'in_review' AND s.stage = 'adjudication'
                    AND (v_lead
                         OR (EXISTS (SELECT 1 FROM assessor_grants g
                                      WHERE g.user_id = v_me.id AND g.credential_id = c.id
                                        AND g.pool = 'expert')
                             AND _independent(v_me.org_id, s.earner_org_id)
                             AND NOT EXISTS (SELECT 1 FROM reviews rv
                                              WHERE rv.submission_id = s.id
                                                AND rv.assessor_id = v_me.id
                                                AND rv.status = 'submitted')))
                  ORDER BY w.since, s.id
                  LIMIT 200) x));
END $$;

-- ===========================================================================
-- Routing history: the reliability estimate over time (the lead's chart)
-- ===========================================================================
--
-- routing_update() (005) writes each new estimate into credentials.routing_state
-- after a completed peer/expert pair; this trigger keeps every estimate, so the
-- routing report can draw kappa over time with its interval against the
-- threshold. One row per estimate (per pair: bounded by the reviews people do).
CREATE TABLE routing_history (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    credential_id uuid NOT NULL REFERENCES credentials (id),
    at            timestamptz NOT NULL DEFAULT now(),
    pairs         int NOT NULL,
    kappa         float8 NOT NULL,
    ci_lo         float8,
    ci_hi         float8
);
CREATE INDEX routing_history_idx ON routing_history (credential_id, id DESC);

CREATE FUNCTION _routing_history_add() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF jsonb_typeof(NEW.routing_state -> 'kappa') = 'number' THEN
        INSERT INTO routing_history (credential_id, pairs, kappa, ci_lo, ci_hi)
        VALUES (NEW.id, coalesce((NEW.routing_state ->> 'pairs')::int, 0),
                (NEW.routing_state ->> 'kappa')::float8,
                CASE WHEN jsonb_typeof(NEW.routing_state -> 'ci' -> 0) = 'number'
                     THEN (NEW.routing_state -> 'ci' ->> 0)::float8 END,
                CASE WHEN jsonb_typeof(NEW.routing_state -> 'ci' -> 1) = 'number'
                     THEN (NEW.routing_state -> 'ci' ->> 1)::float8 END);
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER credentials_routing_history AFTER UPDATE OF routing_state ON credentials
    FOR EACH ROW WHEN (NEW.routing_state IS DISTINCT FROM OLD.routing_state)
    EXECUTE FUNCTION _routing_history_add();

-- 006's report, plus per credential its reliability `threshold` and
-- `history` (the estimates after each pair, oldest first, the last 200).
CREATE OR REPLACE FUNCTION api_report_routing(p_token text) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    v_me users := _auth_role(p_token, '{lead}');
BEGIN
    PERFORM _audit_read(v_me.id, 'report.read', 'report', NULL, NULL,
                        jsonb_build_object('report', 'routing'));
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

-- 004's master scores of an anchor, plus criterion titles and level labels
-- (the calibration result shows the masters to people, as a result does).
CREATE OR REPLACE FUNCTION _anchor_master_json(p_anchor uuid) RETURNS json
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN (SELECT json_build_object(
                       'scores', (SELECT coalesce(json_agg(json_build_object(
                                                'criterion', s.criterion,
                                                'criterion_title', k.x ->> 'title',
                                                'level', s.level,
                                                'level_label', (SELECT lv ->> 'label'
                                                                  FROM jsonb_array_elements(k.x -> 'levels') lv
                                                                 WHERE lv -> 'value' = to_jsonb(s.level)),
                                                'rationale', s.rationale, 'evidence', s.evidence)
                                            ORDER BY s.position), '[]'::json)
                                    FROM anchor_scores s
                                    LEFT JOIN LATERAL (SELECT x FROM jsonb_array_elements(rb.criteria) x
                                                        WHERE x ->> 'key' = s.criterion LIMIT 1) k ON true
                                   WHERE s.anchor_id = a.id),
                       'feedback', a.master_feedback)
              FROM anchors a JOIN rubrics rb ON rb.id = a.rubric_id
             WHERE a.id = p_anchor);
END $$;

-- GET /v1/rubrics: the rubrics a caller may read (as GET /v1/rubrics/{id}:
-- leads, assessors and experts all; anyone else those a credential uses),
-- newest first, at most 500, as summaries (the criteria come with GET by id).
CREATE FUNCTION api_rubric_list(p_token text) RETURNS json
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_me users := _auth(p_token);
    v_all boolean := v_me.roles && '{lead,assessor,expert}'::text[];
BEGIN
    RETURN json_build_object('rubrics',
        (SELECT coalesce(json_agg(json_build_object(
                    'id', r.id, 'title', r.title, 'description', r.description,
                    'criteria_count', jsonb_array_length(r.criteria),
                    'created_at', _ts(r.created_at),
                    'credentials', (SELECT coalesce(json_agg(json_build_object('id', c.id, 'title', c.title)
                                                             ORDER BY c.title, c.id), '[]'::json)
                                      FROM credentials c WHERE c.rubric_id = r.id))
                    ORDER BY r.created_at DESC, r.id), '[]'::json)
           FROM (SELECT * FROM rubrics r1
                  WHERE v_all OR EXISTS (SELECT 1 FROM credentials c1 WHERE c1.rubric_id = r1.id)
                  ORDER BY r1.created_at DESC, r1.id
                  LIMIT 500) r));
END $$;
