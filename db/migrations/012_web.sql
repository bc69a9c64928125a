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
