-- SPDX-License-Identifier: Apache-2.0
-- 002_api.sql - the api_* functions the server calls (one call = one round
-- trip = one transaction), their helpers, and the admin_* functions of the CLI.
--
-- Calling convention (db/README.md): p_token is the hex SHA-256 of the bearer
-- token or NULL; bodies are jsonb as the client sent them; the result is the
-- json response body (SQL NULL = 204); failures raise SQLSTATE AC<status> with
-- a message for people and a machine-readable code in DETAIL.
--
-- Helpers are named _*; they are internal and may change in later migrations.

-- ---------------------------------------------------------------------------
-- Output helpers
-- ---------------------------------------------------------------------------

-- RFC 3339 in UTC, whatever the session's TimeZone.
CREATE FUNCTION _ts(t timestamptz) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
$$;

CREATE FUNCTION _user_json(u users) RETURNS json
LANGUAGE sql STABLE AS $$
    SELECT json_build_object('id', u.id, 'email', u.email, 'name', u.name,
                             'roles', u.roles, 'org', u.org,
                             'created_at', _ts(u.created_at))
$$;

CREATE FUNCTION _rubric_json(r rubrics) RETURNS json
LANGUAGE sql STABLE AS $$
    SELECT json_build_object('id', r.id, 'title', r.title, 'description', r.description,
                             'criteria', r.criteria, 'created_at', _ts(r.created_at))
$$;

-- The review policy with the stakes default filled in (calibration, 004).
CREATE FUNCTION _second_rate(c credentials) RETURNS numeric
LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(c.second_score_rate, CASE WHEN c.stakes = 'high' THEN 0.25 ELSE 0.20 END)
$$;

CREATE FUNCTION _policy_json(c credentials) RETURNS json
LANGUAGE sql IMMUTABLE AS $$
    SELECT json_build_object('validity_rate', c.validity_rate,
                             'second_score_rate', _second_rate(c),
                             'second_score_floor', c.second_score_floor,
                             'reliability_threshold', c.reliability_threshold,
                             'min_pairs', c.min_pairs, 'peer_wait_hours', c.peer_wait_hours)
$$;

CREATE FUNCTION _credential_json(c credentials) RETURNS json
LANGUAGE sql STABLE AS $$
    SELECT json_build_object('id', c.id, 'title', c.title, 'description', c.description,
                             'stakes', c.stakes, 'rubric_id', c.rubric_id,
                             'evidence', c.evidence,
                             'pass_rule', json_build_object('min_level_each', c.min_level_each),
                             'max_attempts', c.max_attempts,
                             'review_policy', _policy_json(c),
                             'created_at', _ts(c.created_at))
$$;

-- Never contains the owner: artifacts are shown to blind assessors.
CREATE FUNCTION _artifact_json(a artifacts) RETURNS json
LANGUAGE sql STABLE AS $$
    SELECT json_build_object('id', a.id, 'kind', a.kind, 'media_type', a.media_type,
                             'filename', a.filename, 'bytes', a.bytes, 'sha256', a.sha256,
                             'url', a.url, 'title', a.title,
                             'created_at', _ts(a.created_at))
$$;

-- (helpers with a FROM clause are plpgsql, not sql: PostgreSQL 15 cannot
-- inline them and would plan a sql function's query again on every call,
-- while plpgsql caches its plans per session)
CREATE FUNCTION _submission_artifacts_json(p_submission_id uuid) RETURNS json
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN (SELECT coalesce(json_agg(_artifact_json(a) ORDER BY sa.position), '[]'::json)
              FROM submission_artifacts sa
              JOIN artifacts a ON a.id = sa.artifact_id
             WHERE sa.submission_id = p_submission_id);
END $$;

CREATE FUNCTION _scores_json(p_review_id uuid) RETURNS json
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN (SELECT coalesce(json_agg(json_build_object('criterion', s.criterion, 'level', s.level,
                                                       'comment', s.comment, 'evidence', s.evidence)
                                     ORDER BY s.position), '[]'::json)
              FROM review_scores s
             WHERE s.review_id = p_review_id);
END $$;

-- The result of a decided review as an earner (or a later assessor) sees it:
-- never who wrote it.
CREATE FUNCTION _result_json(p_review_id uuid) RETURNS json
LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF p_review_id IS NULL THEN
        RETURN NULL;
    END IF;
    RETURN (SELECT json_build_object('verdict', r.verdict, 'scores', _scores_json(r.id),
                                     'feedback', r.feedback, 'decided_at', _ts(r.scored_at))
              FROM reviews r
             WHERE r.id = p_review_id AND r.status = 'submitted');
END $$;

CREATE FUNCTION _submission_json(s submissions) RETURNS json
LANGUAGE sql STABLE AS $$
    SELECT json_build_object('id', s.id, 'credential_id', s.credential_id,
                             'earner_id', s.earner_id, 'attempt', s.attempt,
                             'previous_id', s.previous_id, 'status', s.status,
                             'artifacts', _submission_artifacts_json(s.id),
                             'result', CASE WHEN s.decided_review_id IS NOT NULL
                                            THEN _result_json(s.decided_review_id) END,
                             'award_id', s.award_id,
                             'created_at', _ts(s.created_at),
                             'updated_at', _ts(s.updated_at))
$$;

-- A review as its assessor sees it: blind (no earner id, name, email or org).
-- One query: the claim path calls it on every claim.
CREATE FUNCTION _review_json(r reviews, s submissions) RETURNS json
LANGUAGE plpgsql STABLE
SET plan_cache_mode = force_generic_plan AS $$
BEGIN
    RETURN (
        SELECT CASE WHEN r.status = 'submitted' THEN
                   json_build_object('id', r.id, 'status', r.status,
                                     'lease_expires_at', _ts(r.lease_expires_at),
                                     'credential', v.cred, 'submission', v.sub,
                                     'rubric', v.rubric,
                                     'scores', _scores_json(r.id), 'verdict', r.verdict,
                                     'feedback', r.feedback, 'scored_at', _ts(r.scored_at))
               ELSE
                   json_build_object('id', r.id, 'status', r.status,
                                     'lease_expires_at', _ts(r.lease_expires_at),
                                     'credential', v.cred, 'submission', v.sub,
                                     'rubric', v.rubric)
               END
          FROM (SELECT json_build_object('id', c.id, 'title', c.title, 'stakes', c.stakes) AS cred,
                       json_build_object(
                           'id', s.id,
                           'attempt', s.attempt,
                           'artifacts',
                               (SELECT coalesce(json_agg(_artifact_json(a) ORDER BY sa.position),
                                                '[]'::json)
                                  FROM submission_artifacts sa
                                  JOIN artifacts a ON a.id = sa.artifact_id
                                 WHERE sa.submission_id = s.id),
                           'previous_result',
                               CASE WHEN s.previous_id IS NOT NULL THEN
                                   (SELECT _result_json(p.decided_review_id)
                                      FROM submissions p WHERE p.id = s.previous_id)
                               END) AS sub,
                       _rubric_json(rb) AS rubric
                  FROM credentials c
                  JOIN rubrics rb ON rb.id = c.rubric_id
                 WHERE c.id = s.credential_id) v);
END $$;

-- ---------------------------------------------------------------------------
-- Authentication and authorization
-- ---------------------------------------------------------------------------

CREATE FUNCTION _auth(p_token text) RETURNS users
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v users;
BEGIN
    IF p_token IS NULL THEN
        RAISE EXCEPTION 'a bearer token is required (Authorization: Bearer <token>)'
            USING ERRCODE = 'AC401', DETAIL = 'unauthorized';
    END IF;
    SELECT usr.* INTO v
      FROM tokens t JOIN users usr ON usr.id = t.user_id
     WHERE t.token_hash = p_token AND t.revoked_at IS NULL;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown or revoked token'
            USING ERRCODE = 'AC401', DETAIL = 'unauthorized';
    END IF;
    RETURN v;
END $$;

-- Authenticates and requires at least one of p_roles.
CREATE FUNCTION _auth_role(p_token text, p_roles text[]) RETURNS users
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v users := _auth(p_token);
BEGIN
    IF NOT (v.roles && p_roles) THEN
        RAISE EXCEPTION 'this needs the % role', array_to_string(p_roles, ' or ')
            USING ERRCODE = 'AC403', DETAIL = 'forbidden';
    END IF;
    RETURN v;
END $$;

-- ---------------------------------------------------------------------------
-- Input helpers: JSON type checks (AC400 naming the field)
-- ---------------------------------------------------------------------------

CREATE FUNCTION _bad(p_msg text, p_code text DEFAULT 'bad_request') RETURNS void
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    RAISE EXCEPTION '%', p_msg USING ERRCODE = 'AC400', DETAIL = p_code;
END $$;

CREATE FUNCTION _body(p_body jsonb) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF p_body IS NULL THEN
        RETURN '{}'::jsonb;
    END IF;
    IF jsonb_typeof(p_body) <> 'object' THEN
        PERFORM _bad('the request body must be a JSON object');
    END IF;
    RETURN p_body;
END $$;

-- A string field; NULL when absent or JSON null and not required.
CREATE FUNCTION _j_text(v jsonb, p_field text, p_required boolean, p_max int,
                        p_allow_empty boolean DEFAULT false) RETURNS text
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    s text;
BEGIN
    IF v IS NULL OR jsonb_typeof(v) = 'null' THEN
        IF p_required THEN
            PERFORM _bad(format('%s is required', p_field));
        END IF;
        RETURN NULL;
    END IF;
    IF jsonb_typeof(v) <> 'string' THEN
        PERFORM _bad(format('%s must be a string', p_field));
    END IF;
    s := v #>> '{}';
    IF length(s) > p_max THEN
        PERFORM _bad(format('%s must be at most %s characters', p_field, p_max));
    END IF;
    IF s = '' AND NOT p_allow_empty THEN
        PERFORM _bad(format('%s must not be empty', p_field));
    END IF;
    RETURN s;
END $$;

CREATE FUNCTION _is_uuid(s text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT s ~ '^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$'
$$;

-- A UUID string field. The pattern admits only forms uuid_in accepts, so the
-- cast below cannot fail; no subtransaction is needed.
CREATE FUNCTION _j_uuid(v jsonb, p_field text, p_required boolean) RETURNS uuid
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    s text;
BEGIN
    IF v IS NULL OR jsonb_typeof(v) = 'null' THEN
        IF p_required THEN
            PERFORM _bad(format('%s is required', p_field));
        END IF;
        RETURN NULL;
    END IF;
    IF jsonb_typeof(v) <> 'string' THEN
        PERFORM _bad(format('%s must be a UUID string', p_field));
    END IF;
    s := v #>> '{}';
    IF NOT _is_uuid(s) THEN
        PERFORM _bad(format('%s is not a valid UUID: %s', p_field, left(s, 64)), 'invalid_uuid');
    END IF;
    RETURN s::uuid;
END $$;

-- An integer field (a JSON number without a fractional part, within int range).
CREATE FUNCTION _j_int(v jsonb, p_field text, p_required boolean) RETURNS int
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    n numeric;
BEGIN
    IF v IS NULL OR jsonb_typeof(v) = 'null' THEN
        IF p_required THEN
            PERFORM _bad(format('%s is required', p_field));
        END IF;
        RETURN NULL;
    END IF;
    IF jsonb_typeof(v) <> 'number' THEN
        PERFORM _bad(format('%s must be an integer', p_field));
    END IF;
    n := v::numeric;
    IF n <> trunc(n) OR n < -2147483648 OR n > 2147483647 THEN
        PERFORM _bad(format('%s must be an integer', p_field));
    END IF;
    RETURN n::int;
END $$;

-- A number field >= 0 (seconds into a video).
CREATE FUNCTION _j_seconds(v jsonb, p_field text) RETURNS numeric
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    n numeric;
BEGIN
    IF v IS NULL OR jsonb_typeof(v) = 'null' THEN
        RETURN NULL;
    END IF;
    IF jsonb_typeof(v) <> 'number' THEN
        PERFORM _bad(format('%s must be a number of seconds', p_field));
    END IF;
    n := v::numeric;
    IF n < 0 OR n > 1e9 THEN
        PERFORM _bad(format('%s must be between 0 and 1000000000 seconds', p_field));
    END IF;
    RETURN n;
END $$;

CREATE FUNCTION _j_bool(v jsonb, p_field text, p_default boolean) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF v IS NULL OR jsonb_typeof(v) = 'null' THEN
        RETURN p_default;
    END IF;
    IF jsonb_typeof(v) <> 'boolean' THEN
        PERFORM _bad(format('%s must be true or false', p_field));
    END IF;
    RETURN v::boolean;
END $$;

-- An array field with at most p_max elements; NULL when absent and optional.
CREATE FUNCTION _j_array(v jsonb, p_field text, p_required boolean, p_max int) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF v IS NULL OR jsonb_typeof(v) = 'null' THEN
        IF p_required THEN
            PERFORM _bad(format('%s is required', p_field));
        END IF;
        RETURN NULL;
    END IF;
    IF jsonb_typeof(v) <> 'array' THEN
        PERFORM _bad(format('%s must be an array', p_field));
    END IF;
    IF jsonb_array_length(v) > p_max THEN
        PERFORM _bad(format('%s has %s entries; at most %s are allowed',
                            p_field, jsonb_array_length(v), p_max));
    END IF;
    RETURN v;
END $$;

CREATE FUNCTION _check_kind(p_kind text, p_field text DEFAULT 'kind') RETURNS text
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF p_kind IS NULL OR p_kind NOT IN ('video','plan','reflection','other') THEN
        PERFORM _bad(format('%s must be one of video, plan, reflection, other (got %s)',
                            p_field, coalesce('"' || left(p_kind, 40) || '"', 'nothing')));
    END IF;
    RETURN p_kind;
END $$;

-- artifact_ids: an array of 1..100 distinct UUID strings, in the given order.
CREATE FUNCTION _j_artifact_ids(p_body jsonb) RETURNS uuid[]
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    arr jsonb := _j_array(p_body -> 'artifact_ids', 'artifact_ids', true, 100);
    ids uuid[] := '{}';
    e jsonb;
    i int := 0;
    u uuid;
BEGIN
    FOR e IN SELECT x FROM jsonb_array_elements(arr) x LOOP
        u := _j_uuid(e, format('artifact_ids[%s]', i), true);
        IF u = ANY(ids) THEN
            RAISE EXCEPTION 'artifact % is listed more than once', u
                USING ERRCODE = 'AC422', DETAIL = 'duplicate_artifact';
        END IF;
        ids := ids || u;
        i := i + 1;
    END LOOP;
    IF cardinality(ids) = 0 THEN
        RAISE EXCEPTION 'a submission needs at least one artifact'
            USING ERRCODE = 'AC422', DETAIL = 'missing_evidence';
    END IF;
    RETURN ids;
END $$;

-- The artifacts exist (422 unknown_artifact) and are the earner's own (403).
CREATE FUNCTION _check_artifacts(p_ids uuid[], p_owner uuid) RETURNS void
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_missing uuid;
    v_foreign uuid;
BEGIN
    SELECT x INTO v_missing
      FROM unnest(p_ids) x
     WHERE NOT EXISTS (SELECT 1 FROM artifacts a WHERE a.id = x)
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'artifact % does not exist', v_missing
            USING ERRCODE = 'AC422', DETAIL = 'unknown_artifact';
    END IF;
    SELECT a.id INTO v_foreign
      FROM artifacts a
     WHERE a.id = ANY(p_ids) AND a.owner_id <> p_owner
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'artifact % is not yours: submit only artifacts you uploaded', v_foreign
            USING ERRCODE = 'AC403', DETAIL = 'forbidden';
    END IF;
END $$;

-- The credential's evidence requirements (422 missing_evidence naming each shortfall).
CREATE FUNCTION _check_evidence(c credentials, p_ids uuid[]) RETURNS void
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_msg text;
BEGIN
    SELECT string_agg(format('needs at least %s %s artifact%s, has %s',
                             req.min, req.kind, CASE WHEN req.min = 1 THEN '' ELSE 's' END,
                             req.have), '; ' ORDER BY req.ord)
      INTO v_msg
      FROM (SELECT e.ord, e.x ->> 'kind' AS kind, (e.x ->> 'min')::int AS min,
                   (SELECT count(*) FROM artifacts a
                     WHERE a.id = ANY(p_ids) AND a.kind = e.x ->> 'kind') AS have
              FROM jsonb_array_elements(c.evidence) WITH ORDINALITY e(x, ord)) req
     WHERE req.have < req.min;
    IF v_msg IS NOT NULL THEN
        RAISE EXCEPTION '%', v_msg USING ERRCODE = 'AC422', DETAIL = 'missing_evidence';
    END IF;
END $$;

-- ---------------------------------------------------------------------------
-- Users and tokens
-- ---------------------------------------------------------------------------

-- Validates and inserts a user (shared by api_user_create and admin_user_add).
CREATE FUNCTION _user_insert(p_email text, p_name text, p_roles text[], p_org text) RETURNS users
LANGUAGE plpgsql AS $$
DECLARE
    v users;
    v_bad text;
BEGIN
    IF p_email IS NULL OR length(p_email) > 320 OR p_email !~ '^[^@\s]+@[^@\s]+$' THEN
        PERFORM _bad('email must look like name@example.org (at most 320 characters)');
    END IF;
    IF p_name IS NULL OR length(p_name) = 0 OR length(p_name) > 320 THEN
        PERFORM _bad('name must be 1 to 320 characters');
    END IF;
    IF p_org = '' THEN
        p_org := NULL;
    END IF;
    IF length(p_org) > 320 THEN
        PERFORM _bad('org must be at most 320 characters');
    END IF;
    IF p_roles IS NULL OR cardinality(p_roles) = 0 THEN
        RAISE EXCEPTION 'roles must list at least one of earner, assessor, expert, lead, admin'
            USING ERRCODE = 'AC422', DETAIL = 'invalid_roles';
    END IF;
    SELECT r INTO v_bad FROM unnest(p_roles) r
     WHERE r IS NULL OR r NOT IN ('earner','assessor','expert','lead','admin') LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'unknown role "%": roles are earner, assessor, expert, lead, admin',
                        left(coalesce(v_bad, 'null'), 40)
            USING ERRCODE = 'AC422', DETAIL = 'invalid_roles';
    END IF;
    IF EXISTS (SELECT 1 FROM users WHERE lower(email) = lower(p_email)) THEN
        RAISE EXCEPTION 'a user with email % already exists', p_email
            USING ERRCODE = 'AC409', DETAIL = 'email_taken';
    END IF;
    INSERT INTO users (email, name, roles, org)
    VALUES (p_email, p_name,
            ARRAY(SELECT DISTINCT r FROM unnest(p_roles) r ORDER BY 1), p_org)
    RETURNING * INTO v;
    RETURN v;
END $$;

CREATE FUNCTION api_me(p_token text) RETURNS json
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v users := _auth(p_token);
BEGIN
    RETURN json_build_object('id', v.id, 'email', v.email, 'name', v.name,
                             'roles', v.roles, 'org', v.org);
END $$;

CREATE FUNCTION api_user_create(p_token text, p_body jsonb) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    v_me users := _auth_role(p_token, '{admin}');
    b jsonb := _body(p_body);
    v_email text := _j_text(b -> 'email', 'email', true, 320);
    v_name text := _j_text(b -> 'name', 'name', true, 320);
    v_org text := _j_text(b -> 'org', 'org', false, 320, true);
    v_rarr jsonb := _j_array(b -> 'roles', 'roles', true, 10);
    v_roles text[];
    v users;
BEGIN
    IF EXISTS (SELECT 1 FROM jsonb_array_elements(v_rarr) x WHERE jsonb_typeof(x) <> 'string') THEN
        PERFORM _bad('roles must be an array of strings');
    END IF;
    v_roles := ARRAY(SELECT x FROM jsonb_array_elements_text(v_rarr) x);
    v := _user_insert(v_email, v_name, v_roles, v_org);
    INSERT INTO audit_log (actor_id, action, object_type, object_id, detail)
    VALUES (v_me.id, 'user.create', 'user', v.id, jsonb_build_object('roles', v.roles));
    RETURN _user_json(v);
END $$;

CREATE FUNCTION api_token_create(p_token text, p_user_id uuid, p_new_token_hash text) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    v_me users := _auth_role(p_token, '{admin}');
BEGIN
    IF p_new_token_hash IS NULL OR p_new_token_hash !~ '^[0-9a-f]{64}$' THEN
        PERFORM _bad('the new token hash must be 64 lower-case hex digits');
    END IF;
    IF NOT EXISTS (SELECT 1 FROM users WHERE id = p_user_id) THEN
        RAISE EXCEPTION 'user not found' USING ERRCODE = 'AC404', DETAIL = 'not_found';
    END IF;
    IF EXISTS (SELECT 1 FROM tokens WHERE token_hash = p_new_token_hash) THEN
        RAISE EXCEPTION 'token already exists; try again'
            USING ERRCODE = 'AC409', DETAIL = 'conflict';
    END IF;
    INSERT INTO tokens (token_hash, user_id) VALUES (p_new_token_hash, p_user_id);
    INSERT INTO audit_log (actor_id, action, object_type, object_id)
    VALUES (v_me.id, 'token.create', 'user', p_user_id);
    RETURN json_build_object('user_id', p_user_id);
END $$;

-- CLI: accord user add. No auth (the CLI runs with database access).
CREATE FUNCTION admin_user_add(p_email text, p_name text, p_roles text[], p_org text) RETURNS uuid
LANGUAGE plpgsql AS $$
DECLARE
    v users := _user_insert(p_email, p_name, p_roles, p_org);
BEGIN
    INSERT INTO audit_log (actor_id, action, object_type, object_id, detail)
    VALUES (NULL, 'user.create', 'user', v.id, jsonb_build_object('roles', v.roles, 'via', 'cli'));
    RETURN v.id;
END $$;

-- CLI: accord token create. Returns the user's id.
CREATE FUNCTION admin_token_add(p_email text, p_token_hash text) RETURNS uuid
LANGUAGE plpgsql AS $$
DECLARE
    v_uid uuid;
BEGIN
    SELECT id INTO v_uid FROM users WHERE lower(email) = lower(p_email);
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no user with email %', p_email
            USING ERRCODE = 'AC404', DETAIL = 'not_found',
                  HINT = 'create the user first: accord user add';
    END IF;
    IF p_token_hash IS NULL OR p_token_hash !~ '^[0-9a-f]{64}$' THEN
        PERFORM _bad('the token hash must be 64 lower-case hex digits');
    END IF;
    INSERT INTO tokens (token_hash, user_id) VALUES (p_token_hash, v_uid);
    INSERT INTO audit_log (actor_id, action, object_type, object_id, detail)
    VALUES (NULL, 'token.create', 'user', v_uid, '{"via":"cli"}');
    RETURN v_uid;
END $$;

-- ---------------------------------------------------------------------------
-- Rubrics and credentials
-- ---------------------------------------------------------------------------

-- The server has validated and normalized the rubric already.
CREATE FUNCTION api_rubric_create(p_token text, p_rubric jsonb) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    v_me users := _auth_role(p_token, '{lead}');
    b jsonb := _body(p_rubric);
    v_title text := _j_text(b -> 'title', 'title', true, 200);
    v_desc text := _j_text(b -> 'description', 'description', false, 5000, true);
    v_crit jsonb := _j_array(b -> 'criteria', 'criteria', true, 32);
    r rubrics;
BEGIN
    INSERT INTO rubrics (title, description, criteria, created_by)
    VALUES (v_title, v_desc, v_crit, v_me.id)
    RETURNING * INTO r;
    INSERT INTO audit_log (actor_id, action, object_type, object_id)
    VALUES (v_me.id, 'rubric.create', 'rubric', r.id);
    RETURN _rubric_json(r);
END $$;

CREATE FUNCTION api_rubric_get(p_token text, p_id uuid) RETURNS json
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_me users := _auth_role(p_token, '{lead,assessor,expert}');
    r rubrics;
BEGIN
    SELECT * INTO r FROM rubrics WHERE id = p_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'rubric not found' USING ERRCODE = 'AC404', DETAIL = 'not_found';
    END IF;
    RETURN _rubric_json(r);
END $$;

-- review_policy is optional (defaults of the credentials table; see _policy_apply).
CREATE FUNCTION api_credential_create(p_token text, p_body jsonb) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    v_me users := _auth_role(p_token, '{lead}');
    b jsonb := _body(p_body);
    v_title text := _j_text(b -> 'title', 'title', true, 200);
    v_desc text := _j_text(b -> 'description', 'description', false, 5000, true);
    v_stakes text := _j_text(b -> 'stakes', 'stakes', true, 200);
    v_rubric_id uuid := _j_uuid(b -> 'rubric_id', 'rubric_id', true);
    v_ev jsonb := _j_array(b -> 'evidence', 'evidence', true, 4);
    v_rule jsonb := b -> 'pass_rule';
    v_min_level int;
    v_max int := _j_int(b -> 'max_attempts', 'max_attempts', false);
    v_norm jsonb := '[]';
    v_kinds text[] := '{}';
    e jsonb;
    i int := 0;
    v_kind text;
    v_n int;
    r rubrics;
    c credentials;
    p credentials;
BEGIN
    IF v_stakes NOT IN ('low','high') THEN
        PERFORM _bad('stakes must be "low" or "high"');
    END IF;
    IF v_rule IS NULL OR jsonb_typeof(v_rule) <> 'object' THEN
        PERFORM _bad('pass_rule must be an object {"min_level_each": <level>}');
    END IF;
    v_min_level := _j_int(v_rule -> 'min_level_each', 'pass_rule.min_level_each', true);
    FOR e IN SELECT x FROM jsonb_array_elements(v_ev) x LOOP
        IF jsonb_typeof(e) <> 'object' THEN
            PERFORM _bad(format('evidence[%s] must be an object {"kind":..., "min":...}', i));
        END IF;
        v_kind := _check_kind(_j_text(e -> 'kind', format('evidence[%s].kind', i), true, 200),
                              format('evidence[%s].kind', i));
        v_n := _j_int(e -> 'min', format('evidence[%s].min', i), true);
        IF v_n < 1 OR v_n > 50 THEN
            RAISE EXCEPTION 'evidence[%].min must be between 1 and 50, got %', i, v_n
                USING ERRCODE = 'AC422', DETAIL = 'invalid_evidence';
        END IF;
        IF v_kind = ANY(v_kinds) THEN
            RAISE EXCEPTION 'evidence lists kind % twice', v_kind
                USING ERRCODE = 'AC422', DETAIL = 'invalid_evidence';
        END IF;
        v_kinds := v_kinds || v_kind;
        v_norm := v_norm || jsonb_build_array(jsonb_build_object('kind', v_kind, 'min', v_n));
        i := i + 1;
    END LOOP;
    IF v_max IS NOT NULL AND (v_max < 1 OR v_max > 20) THEN
        RAISE EXCEPTION 'max_attempts must be between 1 and 20, got %', v_max
            USING ERRCODE = 'AC422', DETAIL = 'invalid_max_attempts';
    END IF;
    -- review policy: defaults, then the given fields
    p.validity_rate := 0.05;
    p.second_score_floor := 0.10;
    p.reliability_threshold := 0.60;
    p.min_pairs := 30;
    p.peer_wait_hours := 72;
    p := _policy_apply(p, b -> 'review_policy');
    SELECT * INTO r FROM rubrics WHERE id = v_rubric_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'rubric % does not exist', v_rubric_id
            USING ERRCODE = 'AC422', DETAIL = 'unknown_rubric';
    END IF;
    IF NOT EXISTS (SELECT 1
                     FROM jsonb_array_elements(r.criteria) cr,
                          jsonb_array_elements(cr -> 'levels') l
                    WHERE l -> 'value' = to_jsonb(v_min_level)) THEN
        RAISE EXCEPTION 'pass_rule.min_level_each (%) is not one of the rubric''s level values',
                        v_min_level
            USING ERRCODE = 'AC422', DETAIL = 'invalid_pass_rule';
    END IF;
    INSERT INTO credentials (title, description, stakes, rubric_id, evidence, min_level_each,
                             max_attempts, created_by, validity_rate, second_score_rate,
                             second_score_floor, reliability_threshold, min_pairs, peer_wait_hours)
    VALUES (v_title, v_desc, v_stakes, v_rubric_id, v_norm, v_min_level,
            coalesce(v_max, 3), v_me.id, p.validity_rate, p.second_score_rate,
            p.second_score_floor, p.reliability_threshold, p.min_pairs, p.peer_wait_hours)
    RETURNING * INTO c;
    INSERT INTO audit_log (actor_id, action, object_type, object_id)
    VALUES (v_me.id, 'credential.create', 'credential', c.id);
    RETURN _credential_json(c);
END $$;

CREATE FUNCTION api_credential_list(p_token text) RETURNS json
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_me users := _auth(p_token);
BEGIN
    RETURN json_build_object('credentials',
        (SELECT coalesce(json_agg(_credential_json(c) ORDER BY c.created_at, c.id), '[]'::json)
           FROM credentials c));
END $$;

CREATE FUNCTION api_credential_get(p_token text, p_id uuid) RETURNS json
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_me users := _auth(p_token);
    c credentials;
BEGIN
    SELECT * INTO c FROM credentials WHERE id = p_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'credential not found' USING ERRCODE = 'AC404', DETAIL = 'not_found';
    END IF;
    RETURN _credential_json(c);
END $$;

CREATE FUNCTION api_assessor_grant(p_token text, p_credential_id uuid, p_body jsonb) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    v_me users := _auth_role(p_token, '{lead}');
    b jsonb := _body(p_body);
    v_uid uuid := _j_uuid(b -> 'user_id', 'user_id', true);
    v_pool text := _j_text(b -> 'pool', 'pool', true, 200);
    v_waive boolean := _j_bool(b -> 'waive_award', 'waive_award', false);
    c credentials;
    u users;
    g assessor_grants;
BEGIN
    IF v_pool NOT IN ('peer','expert') THEN
        PERFORM _bad('pool must be "peer" or "expert"');
    END IF;
    SELECT * INTO c FROM credentials WHERE id = p_credential_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'credential not found' USING ERRCODE = 'AC404', DETAIL = 'not_found';
    END IF;
    SELECT * INTO u FROM users WHERE id = v_uid;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'user % does not exist', v_uid
            USING ERRCODE = 'AC422', DETAIL = 'unknown_user';
    END IF;
    IF v_pool = 'expert' THEN
        IF NOT 'expert' = ANY(u.roles) THEN
            RAISE EXCEPTION 'an expert grant needs a user with the expert role'
                USING ERRCODE = 'AC422', DETAIL = 'invalid_grant';
        END IF;
    ELSE
        IF c.stakes = 'high' THEN
            RAISE EXCEPTION 'high-stakes credentials are reviewed by experts only: grant pool "expert"'
                USING ERRCODE = 'AC422', DETAIL = 'invalid_grant';
        END IF;
        IF NOT 'assessor' = ANY(u.roles) THEN
            RAISE EXCEPTION 'a peer grant needs a user with the assessor role'
                USING ERRCODE = 'AC422', DETAIL = 'invalid_grant';
        END IF;
        IF NOT v_waive AND NOT EXISTS (SELECT 1 FROM awards a
                                        WHERE a.earner_id = v_uid AND a.credential_id = c.id) THEN
            RAISE EXCEPTION 'a peer must hold an award for this credential (or set waive_award: true)'
                USING ERRCODE = 'AC422', DETAIL = 'invalid_grant';
        END IF;
    END IF;
    INSERT INTO assessor_grants AS ag (credential_id, user_id, pool, waive_award, granted_by)
    VALUES (c.id, v_uid, v_pool, v_waive, v_me.id)
    ON CONFLICT (credential_id, user_id) DO UPDATE
       SET pool = excluded.pool, waive_award = excluded.waive_award,
           granted_by = excluded.granted_by, created_at = now()
    RETURNING * INTO g;
    INSERT INTO audit_log (actor_id, action, object_type, object_id, detail)
    VALUES (v_me.id, 'assessor.grant', 'credential', c.id,
            jsonb_build_object('user_id', v_uid, 'pool', v_pool, 'waive_award', v_waive));
    RETURN json_build_object('credential_id', g.credential_id, 'user_id', g.user_id,
                             'pool', g.pool, 'waive_award', g.waive_award,
                             'created_at', _ts(g.created_at));
END $$;

-- ---------------------------------------------------------------------------
-- Artifacts: earners upload evidence, leads upload anchor evidence
-- ---------------------------------------------------------------------------

CREATE FUNCTION api_artifact_precheck(p_token text, p_kind text) RETURNS json
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_me users := _auth_role(p_token, '{earner,lead}');
BEGIN
    PERFORM _check_kind(p_kind, 'X-Artifact-Kind');
    RETURN json_build_object('user_id', v_me.id);
END $$;

CREATE FUNCTION api_artifact_upload(p_token text, p_kind text, p_media_type text,
                                    p_filename text, p_bytes bigint, p_sha256 text) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    v_me users := _auth_role(p_token, '{earner,lead}');
    a artifacts;
BEGIN
    PERFORM _check_kind(p_kind, 'X-Artifact-Kind');
    IF p_media_type IS NULL OR p_media_type = '' OR length(p_media_type) > 255 THEN
        PERFORM _bad('Content-Type must be a media type of 1 to 255 characters');
    END IF;
    IF p_filename = '' THEN
        p_filename := NULL;
    END IF;
    IF length(p_filename) > 255 THEN
        PERFORM _bad('X-Filename must be at most 255 characters');
    END IF;
    IF p_bytes IS NULL OR p_bytes < 0 THEN
        PERFORM _bad('the artifact size must be a number of bytes >= 0');
    END IF;
    IF p_sha256 IS NULL OR lower(p_sha256) !~ '^[0-9a-f]{64}$' THEN
        PERFORM _bad('sha256 must be 64 hex digits');
    END IF;
    INSERT INTO artifacts (owner_id, kind, media_type, filename, bytes, sha256)
    VALUES (v_me.id, p_kind, p_media_type, p_filename, p_bytes, lower(p_sha256))
    RETURNING * INTO a;
    INSERT INTO audit_log (actor_id, action, object_type, object_id, detail)
    VALUES (v_me.id, 'artifact.upload', 'artifact', a.id,
            jsonb_build_object('sha256', a.sha256, 'bytes', a.bytes));
    RETURN _artifact_json(a);
END $$;

CREATE FUNCTION api_artifact_register(p_token text, p_body jsonb) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    v_me users := _auth_role(p_token, '{earner,lead}');
    b jsonb := _body(p_body);
    v_kind text := _check_kind(_j_text(b -> 'kind', 'kind', true, 200));
    v_url text := _j_text(b -> 'url', 'url', true, 2048);
    v_title text := _j_text(b -> 'title', 'title', false, 200, true);
    a artifacts;
BEGIN
    IF v_url !~* '^https?://[^\s/?#]+[^\s]*$' THEN
        PERFORM _bad('url must be an absolute http:// or https:// URL');
    END IF;
    INSERT INTO artifacts (owner_id, kind, url, title)
    VALUES (v_me.id, v_kind, v_url, nullif(v_title, ''))
    RETURNING * INTO a;
    INSERT INTO audit_log (actor_id, action, object_type, object_id, detail)
    VALUES (v_me.id, 'artifact.register', 'artifact', a.id, jsonb_build_object('url', a.url));
    RETURN _artifact_json(a);
END $$;

-- Read access: the uploader; a lead; an assessor who holds or held a review
-- of a submission containing the artifact; the assessor of a calibration
-- session showing an anchor with it. 404 if it does not exist, else 403.
CREATE FUNCTION _artifact_readable(v_me users, p_id uuid) RETURNS artifacts
LANGUAGE plpgsql STABLE AS $$
DECLARE
    a artifacts;
BEGIN
    SELECT * INTO a FROM artifacts WHERE id = p_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'artifact not found' USING ERRCODE = 'AC404', DETAIL = 'not_found';
    END IF;
    IF a.owner_id = v_me.id OR 'lead' = ANY(v_me.roles) THEN
        RETURN a;
    END IF;
    IF EXISTS (SELECT 1
                 FROM submission_artifacts sa
                 JOIN reviews r ON r.submission_id = sa.submission_id
                WHERE sa.artifact_id = p_id AND r.assessor_id = v_me.id) THEN
        RETURN a;
    END IF;
    IF EXISTS (SELECT 1
                 FROM anchor_artifacts aa
                 JOIN calibration_items ci ON ci.anchor_id = aa.anchor_id
                 JOIN calibration_sessions cs ON cs.id = ci.session_id
                WHERE aa.artifact_id = p_id AND cs.assessor_id = v_me.id) THEN
        RETURN a;
    END IF;
    RAISE EXCEPTION 'you may not read this artifact'
        USING ERRCODE = 'AC403', DETAIL = 'forbidden';
END $$;

CREATE FUNCTION api_artifact_get(p_token text, p_id uuid) RETURNS json
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_me users := _auth(p_token);
BEGIN
    RETURN _artifact_json(_artifact_readable(v_me, p_id));
END $$;

CREATE FUNCTION api_artifact_content(p_token text, p_id uuid) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    v_me users := _auth(p_token);
    a artifacts := _artifact_readable(v_me, p_id);
BEGIN
    INSERT INTO audit_log (actor_id, action, object_type, object_id, detail)
    VALUES (v_me.id, 'artifact.read', 'artifact', a.id,
            jsonb_build_object('sha256', a.sha256, 'url', a.url));
    RETURN json_build_object('id', a.id, 'sha256', a.sha256, 'media_type', a.media_type,
                             'bytes', a.bytes, 'url', a.url, 'filename', a.filename);
END $$;

-- ---------------------------------------------------------------------------
-- Submissions
-- ---------------------------------------------------------------------------

-- Serializes submit/resubmit of one earner for one credential.
CREATE FUNCTION _lock_chain(p_earner uuid, p_credential uuid) RETURNS void
LANGUAGE sql AS $$
    SELECT pg_advisory_xact_lock(hashtextextended(p_earner::text || p_credential::text, 0))
$$;

CREATE FUNCTION _submission_insert(v_me users, c credentials, p_ids uuid[], p_attempt int,
                                   p_previous uuid) RETURNS submissions
LANGUAGE plpgsql AS $$
DECLARE
    s submissions;
BEGIN
    INSERT INTO submissions (credential_id, earner_id, earner_org, attempt, previous_id)
    VALUES (c.id, v_me.id, v_me.org, p_attempt, p_previous)
    RETURNING * INTO s;
    INSERT INTO submission_artifacts (submission_id, artifact_id, position)
    SELECT s.id, x.id, x.ord FROM unnest(p_ids) WITH ORDINALITY x(id, ord);
    INSERT INTO audit_log (actor_id, action, object_type, object_id, detail)
    VALUES (v_me.id, CASE WHEN p_previous IS NULL THEN 'submission.create'
                          ELSE 'submission.resubmit' END,
            'submission', s.id,
            jsonb_build_object('credential_id', c.id, 'attempt', p_attempt,
                               'previous_id', p_previous, 'artifact_ids', to_jsonb(p_ids)));
    PERFORM pg_notify('accord_queue', c.id::text);
    RETURN s;
END $$;

CREATE FUNCTION api_submission_create(p_token text, p_body jsonb) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    v_me users := _auth_role(p_token, '{earner}');
    b jsonb := _body(p_body);
    v_cid uuid := _j_uuid(b -> 'credential_id', 'credential_id', true);
    v_ids uuid[] := _j_artifact_ids(b);
    c credentials;
    l submissions;
    s submissions;
BEGIN
    SELECT * INTO c FROM credentials WHERE id = v_cid;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'credential % does not exist', v_cid
            USING ERRCODE = 'AC422', DETAIL = 'unknown_credential';
    END IF;
    PERFORM _check_artifacts(v_ids, v_me.id);
    PERFORM _lock_chain(v_me.id, c.id);
    SELECT * INTO l FROM submissions
     WHERE earner_id = v_me.id AND credential_id = c.id
     ORDER BY attempt DESC LIMIT 1;
    IF FOUND THEN
        IF l.status = 'passed' THEN
            RAISE EXCEPTION 'you have already passed this credential'
                USING ERRCODE = 'AC409', DETAIL = 'already_passed';
        ELSIF l.status = 'returned' AND l.attempt >= c.max_attempts THEN
            RAISE EXCEPTION 'all % attempts for this credential are used', c.max_attempts
                USING ERRCODE = 'AC409', DETAIL = 'attempts_exhausted';
        ELSE
            RAISE EXCEPTION 'you already have a submission for this credential (%, attempt %, %): resubmit it instead of starting over',
                            l.id, l.attempt, l.status
                USING ERRCODE = 'AC409', DETAIL = 'already_submitted';
        END IF;
    END IF;
    PERFORM _check_evidence(c, v_ids);
    -- (a separate statement, so the reply sees the rows just inserted)
    s := _submission_insert(v_me, c, v_ids, 1, NULL);
    RETURN _submission_json(s);
END $$;

CREATE FUNCTION api_submission_resubmit(p_token text, p_id uuid, p_body jsonb) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    v_me users := _auth_role(p_token, '{earner}');
    v_ids uuid[];
    s submissions;
    c credentials;
    v_later int;
BEGIN
    SELECT * INTO s FROM submissions WHERE id = p_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'submission not found' USING ERRCODE = 'AC404', DETAIL = 'not_found';
    END IF;
    IF s.earner_id <> v_me.id THEN
        RAISE EXCEPTION 'only its earner can resubmit a submission'
            USING ERRCODE = 'AC403', DETAIL = 'forbidden';
    END IF;
    v_ids := _j_artifact_ids(_body(p_body));
    SELECT * INTO c FROM credentials WHERE id = s.credential_id;
    PERFORM _lock_chain(v_me.id, c.id);
    SELECT * INTO s FROM submissions WHERE id = p_id FOR UPDATE;
    SELECT max(attempt) INTO v_later FROM submissions
     WHERE earner_id = v_me.id AND credential_id = c.id AND attempt > s.attempt;
    IF v_later IS NOT NULL THEN
        RAISE EXCEPTION 'attempt % was already resubmitted (the latest is attempt %): only the latest attempt can be resubmitted',
                        s.attempt, v_later
            USING ERRCODE = 'AC409', DETAIL = 'not_returned';
    END IF;
    IF s.status <> 'returned' THEN
        RAISE EXCEPTION 'this submission is %: it can be resubmitted only after a "resubmit" verdict',
                        replace(s.status, '_', ' ')
            USING ERRCODE = 'AC409', DETAIL = 'not_returned';
    END IF;
    IF s.attempt >= c.max_attempts THEN
        RAISE EXCEPTION 'all % attempts for this credential are used', c.max_attempts
            USING ERRCODE = 'AC409', DETAIL = 'attempts_exhausted';
    END IF;
    PERFORM _check_artifacts(v_ids, v_me.id);
    PERFORM _check_evidence(c, v_ids);
    s := _submission_insert(v_me, c, v_ids, s.attempt + 1, s.id);
    RETURN _submission_json(s);
END $$;

-- Validity items (status 'validity') are never listed or shown.
CREATE FUNCTION api_submission_list(p_token text) RETURNS json
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

CREATE FUNCTION api_submission_get(p_token text, p_id uuid) RETURNS json
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
-- Reviews
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
-- The common path (one grant, first scores, no validity draw hit) is a
-- single-credential index scan.
--
-- Claimable first scores = status 'queued', or 'in_review' with an expired
-- lease (no background job needed). The queued candidate comes from the
-- partial index submissions_queue_cred_idx / submissions_queue_idx in queue
-- order; an expired lease older in queue order than it wins
-- (submissions_leased_idx, small). Rows are locked FOR UPDATE SKIP LOCKED so
-- concurrent assessors never wait on each other.
CREATE FUNCTION api_review_claim(p_token text, p_body jsonb, p_lease_seconds int) RETURNS json
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

-- Its holder or a lead. 404 when it does not exist.
CREATE FUNCTION _review_visible(v_me users, p_id uuid) RETURNS reviews
LANGUAGE plpgsql STABLE AS $$
DECLARE
    r reviews;
BEGIN
    SELECT * INTO r FROM reviews WHERE id = p_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'review not found' USING ERRCODE = 'AC404', DETAIL = 'not_found';
    END IF;
    IF r.assessor_id <> v_me.id AND NOT 'lead' = ANY(v_me.roles) THEN
        RAISE EXCEPTION 'this review is not yours'
            USING ERRCODE = 'AC403', DETAIL = 'forbidden';
    END IF;
    RETURN r;
END $$;

-- The review as its holder sees it (_review_json) plus, for an
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

CREATE FUNCTION api_review_get(p_token text, p_id uuid) RETURNS json
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_me users := _auth(p_token);
    r reviews := _review_visible(v_me, p_id);
    s submissions;
BEGIN
    SELECT * INTO s FROM submissions WHERE id = r.submission_id;
    RETURN _review_view(r, s, 'lead' = ANY(v_me.roles));
END $$;

-- Locks the review's submission (every change to a review happens under its
-- submission's row lock: claim takeover, release, score), then reads the
-- review afresh; checks that the caller holds it and that it is still active.
CREATE FUNCTION _review_lock_active(v_me users, p_id uuid, OUT r reviews, OUT s submissions)
LANGUAGE plpgsql AS $$
BEGIN
    SELECT s1.* INTO s FROM submissions s1
     WHERE s1.id = (SELECT rv.submission_id FROM reviews rv WHERE rv.id = p_id)
       FOR UPDATE;
    SELECT * INTO r FROM reviews WHERE id = p_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'review not found' USING ERRCODE = 'AC404', DETAIL = 'not_found';
    END IF;
    IF r.assessor_id <> v_me.id THEN
        RAISE EXCEPTION 'this review is not yours'
            USING ERRCODE = 'AC403', DETAIL = 'forbidden';
    END IF;
    IF r.status = 'submitted' THEN
        RAISE EXCEPTION 'this review was already scored'
            USING ERRCODE = 'AC409', DETAIL = 'already_scored';
    ELSIF r.status = 'released' THEN
        RAISE EXCEPTION 'this review was released and is no longer active'
            USING ERRCODE = 'AC409', DETAIL = 'not_active';
    ELSIF r.status = 'expired' OR s.current_review_id IS DISTINCT FROM r.id THEN
        RAISE EXCEPTION 'your lease on this review expired at % and another assessor has claimed the submission since',
                        _ts(r.lease_expires_at)
            USING ERRCODE = 'AC409', DETAIL = 'lease_lost';
    END IF;
END $$;

-- A released first score goes back to the queue; a released second score or
-- adjudication waits for another claim in its stage; a released validity
-- item just disappears.
CREATE FUNCTION api_review_release(p_token text, p_id uuid) RETURNS json
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

-- Scores a held review: every criterion once at one of its levels
-- (_scores_norm), then the verdict, all in one transaction; by stage:
--   validity: compared with the anchor's master (window row); nothing else;
--   first: second-scored with probability = the credential's current share,
--     always near the cut or for a peer requalified during a pause; else final
--     (a policy second_score_rate of 0 turns double scoring off, near-cut
--     included; requalified peers during a pause are still double-scored);
--   second: disagreement (verdicts differ or a criterion > 1 level apart) ->
--     adjudication; else final (low stakes: these scores; high: the first's);
--   adjudication: final with these scores.
-- Final = the submission passed/returned, award on a pass.
-- A completed low-stakes peer/expert pair adds "_reliability_due" (the
-- credential id) to the answer: the server strips it and recomputes the
-- reliability estimate.
CREATE FUNCTION api_review_score(p_token text, p_id uuid, p_body jsonb) RETURNS json
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
-- Awards (public)
-- ---------------------------------------------------------------------------

CREATE FUNCTION api_award_get(p_id uuid) RETURNS json
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v json;
BEGIN
    SELECT json_build_object('id', a.id,
                             'credential', json_build_object('id', c.id, 'title', c.title),
                             'earner', json_build_object('name', u.name),
                             'issued_at', _ts(a.issued_at))
      INTO v
      FROM awards a
      JOIN credentials c ON c.id = a.credential_id
      JOIN users u ON u.id = a.earner_id
     WHERE a.id = p_id;
    IF v IS NULL THEN
        RAISE EXCEPTION 'award not found' USING ERRCODE = 'AC404', DETAIL = 'not_found';
    END IF;
    RETURN v;
END $$;
