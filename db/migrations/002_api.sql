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

CREATE FUNCTION _credential_json(c credentials) RETURNS json
LANGUAGE sql STABLE AS $$
    SELECT json_build_object('id', c.id, 'title', c.title, 'description', c.description,
                             'stakes', c.stakes, 'rubric_id', c.rubric_id,
                             'evidence', c.evidence,
                             'pass_rule', json_build_object('min_level_each', c.min_level_each),
                             'max_attempts', c.max_attempts,
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
                             max_attempts, created_by)
    VALUES (v_title, v_desc, v_stakes, v_rubric_id, v_norm, v_min_level,
            coalesce(v_max, 3), v_me.id)
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
-- Artifacts
-- ---------------------------------------------------------------------------

CREATE FUNCTION api_artifact_precheck(p_token text, p_kind text) RETURNS json
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_me users := _auth_role(p_token, '{earner}');
BEGIN
    PERFORM _check_kind(p_kind, 'X-Artifact-Kind');
    RETURN json_build_object('user_id', v_me.id);
END $$;

CREATE FUNCTION api_artifact_upload(p_token text, p_kind text, p_media_type text,
                                    p_filename text, p_bytes bigint, p_sha256 text) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    v_me users := _auth_role(p_token, '{earner}');
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
    v_me users := _auth_role(p_token, '{earner}');
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
-- of a submission containing the artifact. 404 if it does not exist, else 403.
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
    SELECT * INTO s FROM submissions WHERE id = p_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'submission not found' USING ERRCODE = 'AC404', DETAIL = 'not_found';
    END IF;
    IF s.earner_id <> v_me.id AND NOT 'lead' = ANY(v_me.roles) THEN
        RAISE EXCEPTION 'this submission is not yours'
            USING ERRCODE = 'AC403', DETAIL = 'forbidden';
    END IF;
    RETURN _submission_json(s);
END $$;

-- ---------------------------------------------------------------------------
-- Reviews
-- ---------------------------------------------------------------------------

-- Claims the oldest eligible submission (a lease of p_lease_seconds), or
-- returns NULL (204) when nothing is eligible.
--
-- Claimable = status 'queued', or 'in_review' with an expired lease (no
-- background job needed). The queued candidate comes from the partial index
-- submissions_queue_cred_idx / submissions_queue_idx in queue order; an
-- expired lease older in queue order than it wins (submissions_leased_idx,
-- small). Rows are locked FOR UPDATE SKIP LOCKED so concurrent assessors
-- never wait on each other.
CREATE FUNCTION api_review_claim(p_token text, p_body jsonb, p_lease_seconds int) RETURNS json
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan AS $$
DECLARE
    v_me users := _auth_role(p_token, '{assessor,expert}');
    b jsonb := _body(p_body);
    v_filter uuid := _j_uuid(b -> 'credential_id', 'credential_id', false);
    v_lease int := coalesce(p_lease_seconds, 7200);
    v_creds uuid[];
    v_old reviews;
    s submissions;
    sx submissions;
    r reviews;
BEGIN
    IF v_lease < 1 OR v_lease > 30 * 86400 THEN
        PERFORM _bad('the lease must be between 1 second and 30 days');
    END IF;
    -- credentials this assessor may review now (expert grants only on high stakes)
    SELECT array_agg(g.credential_id) INTO v_creds
      FROM assessor_grants g
      JOIN credentials c ON c.id = g.credential_id
     WHERE g.user_id = v_me.id
       AND (v_filter IS NULL OR g.credential_id = v_filter)
       AND CASE WHEN g.pool = 'expert' THEN 'expert' = ANY(v_me.roles)
                ELSE c.stakes = 'low' AND 'assessor' = ANY(v_me.roles) END;
    IF v_creds IS NULL THEN
        RETURN NULL;
    END IF;

    IF cardinality(v_creds) = 1 THEN
        SELECT s1.* INTO s
          FROM submissions s1
         WHERE s1.status = 'queued' AND s1.credential_id = v_creds[1]
           AND s1.earner_id <> v_me.id
           AND (v_me.org IS NULL OR s1.earner_org IS NULL OR s1.earner_org <> v_me.org)
           AND NOT EXISTS (SELECT 1 FROM reviews rv
                            WHERE rv.submission_id = s1.id AND rv.assessor_id = v_me.id)
         ORDER BY s1.queued_at, s1.id
         LIMIT 1
           FOR UPDATE OF s1 SKIP LOCKED;
    ELSE
        SELECT s1.* INTO s
          FROM submissions s1
         WHERE s1.status = 'queued' AND s1.credential_id = ANY(v_creds)
           AND s1.earner_id <> v_me.id
           AND (v_me.org IS NULL OR s1.earner_org IS NULL OR s1.earner_org <> v_me.org)
           AND NOT EXISTS (SELECT 1 FROM reviews rv
                            WHERE rv.submission_id = s1.id AND rv.assessor_id = v_me.id)
         ORDER BY s1.queued_at, s1.id
         LIMIT 1
           FOR UPDATE OF s1 SKIP LOCKED;
    END IF;

    -- an expired lease that is older in queue order (the partial index
    -- submissions_leased_idx holds only submissions under review)
    SELECT s1.* INTO sx
      FROM submissions s1
     WHERE s1.status = 'in_review' AND s1.lease_expires_at < now()
       AND s1.credential_id = ANY(v_creds)
       AND s1.earner_id <> v_me.id
       AND (v_me.org IS NULL OR s1.earner_org IS NULL OR s1.earner_org <> v_me.org)
       AND (s.id IS NULL OR (s1.queued_at, s1.id) < (s.queued_at, s.id))
       AND NOT EXISTS (SELECT 1 FROM reviews rv
                        WHERE rv.submission_id = s1.id AND rv.assessor_id = v_me.id)
     ORDER BY s1.queued_at, s1.id
     LIMIT 1
       FOR UPDATE OF s1 SKIP LOCKED;
    IF FOUND THEN
        s := sx;
    END IF;
    IF s.id IS NULL THEN
        RETURN NULL;
    END IF;

    IF s.status = 'in_review' THEN
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

    -- review row, submission update and audit row in one statement
    WITH nr AS (
        INSERT INTO reviews (submission_id, assessor_id, lease_expires_at)
        VALUES (s.id, v_me.id, now() + make_interval(secs => v_lease))
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

CREATE FUNCTION api_review_get(p_token text, p_id uuid) RETURNS json
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_me users := _auth(p_token);
    r reviews := _review_visible(v_me, p_id);
    s submissions;
BEGIN
    SELECT * INTO s FROM submissions WHERE id = r.submission_id;
    RETURN _review_json(r, s);
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
       SET status = 'queued', lease_expires_at = NULL, current_review_id = NULL,
           updated_at = now()
     WHERE id = r.submission_id AND current_review_id = r.id
    RETURNING credential_id INTO v_cid;
    INSERT INTO audit_log (actor_id, action, object_type, object_id, detail)
    VALUES (v_me.id, 'review.release', 'review', r.id,
            jsonb_build_object('submission_id', r.submission_id));
    IF v_cid IS NOT NULL THEN
        PERFORM pg_notify('accord_queue', v_cid::text);
    END IF;
    RETURN json_build_object('id', r.id, 'status', 'released');
END $$;

-- Scores a held review: every criterion once at one of its levels, then the
-- verdict, and on a pass the award, all in one transaction.
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
    l record;
    v_keys text[];
    v_levels jsonb[];
    v_arts uuid[];
    -- normalized scores
    n_crit text[] := '{}';
    n_pos int[] := '{}';
    n_lvl int[] := '{}';
    n_com text[] := '{}';
    n_ev jsonb[] := '{}';
    e jsonb;
    ev jsonb;
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
    v_pass boolean := true;
    v_fast boolean;
    v_min int;
    v_verdict text;
    v_award uuid;
BEGIN
    -- 404 / 403 / 409 first, then the body
    l := _review_lock_active(v_me, p_id);
    r := l.r;
    s := l.s;
    b := _body(p_body);
    v_arr := _j_array(b -> 'scores', 'scores', true, 64);
    v_feedback := _j_text(b -> 'feedback', 'feedback', true, 20000, true);
    SELECT c1 AS c, k.keys, k.levels INTO l
      FROM credentials c1
      JOIN rubrics rb ON rb.id = c1.rubric_id,
           LATERAL (SELECT array_agg(x ->> 'key' ORDER BY o) AS keys,
                           array_agg(x -> 'levels' ORDER BY o) AS levels
                      FROM jsonb_array_elements(rb.criteria) WITH ORDINALITY t(x, o)) k
     WHERE c1.id = s.credential_id;
    c := l.c;
    v_keys := l.keys;
    v_levels := l.levels;

    -- Fast path: one query validates and normalizes well-formed scores
    -- without citations (the common case). Anything else, or anything wrong,
    -- goes through the loop below, which names the problem.
    SELECT coalesce(bool_and(coalesce(q.ok, false)), false)
               AND count(*) = cardinality(v_keys) AND count(DISTINCT q.pos) = count(*),
           array_agg(q.crit ORDER BY q.i), array_agg(q.pos ORDER BY q.i),
           array_agg(q.lvl ORDER BY q.i), array_agg(q.com ORDER BY q.i), min(q.lvl)
      INTO v_fast, n_crit, n_pos, n_lvl, n_com, v_min
      FROM (SELECT t.i, t.crit, t.pos, t.lvl, t.com,
                   t.pos IS NOT NULL AND t.lvl IS NOT NULL AND t.comok AND t.evok
                   AND v_levels[t.pos] @> jsonb_build_array(jsonb_build_object('value', t.lvl)) AS ok
              FROM (SELECT x.i,
                           x.j ->> 'criterion' AS crit,
                           CASE WHEN jsonb_typeof(x.j -> 'criterion') = 'string'
                                THEN array_position(v_keys, x.j ->> 'criterion') END AS pos,
                           CASE WHEN jsonb_typeof(x.j -> 'level') = 'number'
                                 AND (x.j -> 'level')::numeric BETWEEN -1000000 AND 1000000
                                 AND (x.j -> 'level')::numeric = trunc((x.j -> 'level')::numeric)
                                THEN (x.j -> 'level')::numeric::int END AS lvl,
                           CASE WHEN jsonb_typeof(x.j -> 'comment') = 'string'
                                THEN x.j ->> 'comment' END AS com,
                           coalesce(jsonb_typeof(x.j -> 'comment'), 'null') = 'null'
                             OR (jsonb_typeof(x.j -> 'comment') = 'string'
                                 AND length(x.j ->> 'comment') <= 5000) AS comok,
                           coalesce(jsonb_typeof(x.j -> 'evidence'), 'null') = 'null'
                             OR x.j -> 'evidence' = '[]'::jsonb AS evok
                      FROM jsonb_array_elements(v_arr) WITH ORDINALITY x(j, i)) t) q;
    IF v_fast THEN
        n_ev := array_fill('[]'::jsonb, ARRAY[cardinality(n_crit)]);
        v_pass := v_min >= c.min_level_each;
    ELSE
        n_crit := '{}';
        n_pos := '{}';
        n_lvl := '{}';
        n_com := '{}';
        n_ev := '{}';
        FOR e IN SELECT x FROM jsonb_array_elements(v_arr) x LOOP
            f := format('scores[%s]', i);
            IF jsonb_typeof(e) <> 'object' THEN
                PERFORM _bad(format('%s must be an object {"criterion","level","comment"?,"evidence"?}', f));
            END IF;
            v_key := _j_text(e -> 'criterion', f || '.criterion', true, 64);
            v_lvl := _j_int(e -> 'level', f || '.level', true);
            n_com := n_com || _j_text(e -> 'comment', f || '.comment', false, 5000, true);
            k := array_position(v_keys, v_key);
            IF k IS NULL THEN
                RAISE EXCEPTION 'unknown criterion "%": the rubric''s criteria are %', v_key,
                                array_to_string(v_keys, ', ')
                    USING ERRCODE = 'AC422', DETAIL = 'invalid_scores';
            END IF;
            IF v_key = ANY(n_crit) THEN
                RAISE EXCEPTION 'criterion "%" is scored more than once', v_key
                    USING ERRCODE = 'AC422', DETAIL = 'invalid_scores';
            END IF;
            IF NOT (v_levels[k] @> jsonb_build_array(jsonb_build_object('value', v_lvl))) THEN
                RAISE EXCEPTION 'level % is not a level of criterion "%" (levels: %)', v_lvl, v_key,
                                (SELECT string_agg(lv ->> 'value', ', ')
                                   FROM jsonb_array_elements(v_levels[k]) lv)
                    USING ERRCODE = 'AC422', DETAIL = 'invalid_scores';
            END IF;
            ev_arr := _j_array(e -> 'evidence', f || '.evidence', false, 20);
            ev_norm := '[]';
            j := 0;
            IF ev_arr IS NOT NULL THEN
                FOR ev IN SELECT x FROM jsonb_array_elements(ev_arr) x LOOP
                    IF jsonb_typeof(ev) <> 'object' THEN
                        PERFORM _bad(format('%s.evidence[%s] must be an object', f, j));
                    END IF;
                    v_aid := _j_uuid(ev -> 'artifact_id', format('%s.evidence[%s].artifact_id', f, j), true);
                    v_start := _j_seconds(ev -> 'start_s', format('%s.evidence[%s].start_s', f, j));
                    v_end := _j_seconds(ev -> 'end_s', format('%s.evidence[%s].end_s', f, j));
                    v_note := _j_text(ev -> 'note', format('%s.evidence[%s].note', f, j), false, 1000, true);
                    IF v_arts IS NULL THEN
                        SELECT array_agg(artifact_id) INTO v_arts
                          FROM submission_artifacts WHERE submission_id = s.id;
                    END IF;
                    IF NOT (v_aid = ANY(v_arts)) THEN
                        RAISE EXCEPTION '%.evidence[%] cites artifact %, which is not part of this submission',
                                        f, j, v_aid
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
            n_crit := n_crit || v_key;
            n_pos := n_pos || k;
            n_lvl := n_lvl || v_lvl;
            n_ev := n_ev || ev_norm;
            IF v_lvl < c.min_level_each THEN
                v_pass := false;
            END IF;
            i := i + 1;
        END LOOP;
        IF cardinality(n_crit) < cardinality(v_keys) THEN
            RAISE EXCEPTION 'every criterion must be scored; missing: %',
                            (SELECT string_agg(x, ', ') FROM unnest(v_keys) x WHERE x <> ALL(n_crit))
                USING ERRCODE = 'AC422', DETAIL = 'invalid_scores';
        END IF;
    END IF;

    v_verdict := CASE WHEN v_pass THEN 'pass' ELSE 'resubmit' END;
    IF v_pass THEN
        v_award := gen_random_uuid();
    END IF;
    -- scores, review, award, submission and audit rows in one statement
    WITH sc AS (
        INSERT INTO review_scores (review_id, criterion, position, level, comment, evidence)
        SELECT r.id, t.crit, t.pos, t.lvl, t.com, t.ev
          FROM unnest(n_crit, n_pos, n_lvl, n_com, n_ev) AS t(crit, pos, lvl, com, ev)),
    rv AS (
        UPDATE reviews
           SET status = 'submitted', verdict = v_verdict, feedback = v_feedback,
               scored_at = now(), ended_at = now()
         WHERE id = r.id),
    aw AS (
        INSERT INTO awards (id, credential_id, earner_id, submission_id)
        SELECT v_award, c.id, s.earner_id, s.id
         WHERE v_pass),
    up AS (
        UPDATE submissions
           SET status = CASE WHEN v_pass THEN 'passed' ELSE 'returned' END,
               lease_expires_at = NULL, current_review_id = NULL,
               decided_review_id = r.id, award_id = v_award, updated_at = now()
         WHERE id = s.id)
    INSERT INTO audit_log (actor_id, action, object_type, object_id, detail)
    SELECT v_me.id, 'review.score', 'review', r.id,
           jsonb_build_object('submission_id', s.id, 'verdict', v_verdict)
    UNION ALL
    SELECT v_me.id, 'award.issue', 'award', v_award,
           jsonb_build_object('submission_id', s.id, 'credential_id', c.id,
                              'earner_id', s.earner_id)
     WHERE v_pass;
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
