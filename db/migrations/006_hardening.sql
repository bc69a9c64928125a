-- SPDX-License-Identifier: Apache-2.0
-- 006_hardening.sql - the database side of issue 7 (hardening):
--   organisations as records with ids (item 12),
--   evidence readable only under an active lease, claim/release churn (item 2),
--   calibration that cannot be gamed, validity items that cannot be recognised
--   (items 3 and 4),
--   audit of every read of evidence and scores, refusals, the audit route (item 11),
--   seedable random draws (item 14).
-- Functions of 002/004/005 that change are redefined here (CREATE OR REPLACE);
-- each says which behaviour it adds.

-- ===========================================================================
-- Organisations (item 12)
-- ===========================================================================
--
-- Policy. An organisation is a record an admin creates (POST /v1/organisations)
-- and assigns (POST /v1/users with org_id, PUT /v1/users/{id}/organisation).
-- The conflict-of-interest check compares ids and fails closed: a reviewer
-- and an earner are independent only when both have an organisation and the
-- two differ. So an earner without an organisation cannot submit, and a peer
-- or expert grant needs a user with one (422 organisation_required, telling
-- the admin what to do). Leads adjudicate any organisation's work except
-- their own organisation's (a lead without one adjudicates all: leads read
-- every submission anyway).

-- The key names are compared by: case, surrounding and repeated white space ignored.
CREATE FUNCTION _org_key(p_name text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT lower(regexp_replace(btrim(p_name), '\s+', ' ', 'g'))
$$;

CREATE TABLE organisations (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name        text NOT NULL CHECK (length(btrim(name)) BETWEEN 1 AND 200),
    created_by  uuid REFERENCES users (id),
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX organisations_name_key ON organisations (_org_key(name));

ALTER TABLE users ADD COLUMN org_id uuid REFERENCES organisations (id);
CREATE INDEX users_org_idx ON users (org_id);
-- the earner's organisation at submission time (was the free-text earner_org)
ALTER TABLE submissions ADD COLUMN earner_org_id uuid REFERENCES organisations (id);

-- Existing free-text organisations become records: one per distinct key.
INSERT INTO organisations (name)
SELECT DISTINCT ON (_org_key(x.name)) left(btrim(x.name), 200)
  FROM (SELECT org AS name, created_at FROM users WHERE btrim(coalesce(org, '')) <> ''
        UNION ALL
        SELECT earner_org, created_at FROM submissions WHERE btrim(coalesce(earner_org, '')) <> '') x
 ORDER BY _org_key(x.name), x.created_at;
UPDATE users u SET org_id = o.id FROM organisations o WHERE _org_key(u.org) = _org_key(o.name);
UPDATE submissions s SET earner_org_id = o.id
  FROM organisations o WHERE _org_key(s.earner_org) = _org_key(o.name);
-- No free text is left to compare by mistake.
ALTER TABLE users DROP COLUMN org;
ALTER TABLE submissions DROP COLUMN earner_org;

-- True when a reviewer of organisation p_reviewer may review work of an
-- earner of organisation p_earner (fails closed on a missing organisation).
CREATE FUNCTION _independent(p_reviewer uuid, p_earner uuid) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT p_reviewer IS NOT NULL AND p_earner IS NOT NULL AND p_reviewer <> p_earner
$$;

CREATE FUNCTION _org_json(o organisations) RETURNS json
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN json_build_object('id', o.id, 'name', o.name,
                             'members', (SELECT count(*) FROM users u WHERE u.org_id = o.id),
                             'created_at', _ts(o.created_at));
END $$;

-- Now with org_id; "org" is the organisation's name (display only).
CREATE OR REPLACE FUNCTION _user_json(u users) RETURNS json
LANGUAGE sql STABLE AS $$
    SELECT json_build_object('id', u.id, 'email', u.email, 'name', u.name,
                             'roles', u.roles, 'org_id', u.org_id,
                             'org', (SELECT o.name FROM organisations o WHERE o.id = u.org_id),
                             'created_at', _ts(u.created_at))
$$;

CREATE OR REPLACE FUNCTION api_me(p_token text) RETURNS json
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v users := _auth(p_token);
BEGIN
    RETURN json_build_object('id', v.id, 'email', v.email, 'name', v.name,
                             'roles', v.roles, 'org_id', v.org_id,
                             'org', (SELECT o.name FROM organisations o WHERE o.id = v.org_id));
END $$;

-- The organisation a request names: org_id (a UUID), or org (the name of an
-- existing organisation, matched by _org_key). NULL when neither is given.
-- 422 unknown_organisation when it does not exist.
CREATE FUNCTION _org_from_body(b jsonb) RETURNS uuid
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_id uuid := _j_uuid(b -> 'org_id', 'org_id', false);
    v_name text := _j_text(b -> 'org', 'org', false, 320, true);
    v_named uuid;
BEGIN
    IF v_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM organisations WHERE id = v_id) THEN
        RAISE EXCEPTION 'organisation % does not exist: create it first (POST /v1/organisations)', v_id
            USING ERRCODE = 'AC422', DETAIL = 'unknown_organisation';
    END IF;
    IF btrim(coalesce(v_name, '')) = '' THEN
        RETURN v_id;
    END IF;
    SELECT id INTO v_named FROM organisations WHERE _org_key(name) = _org_key(v_name);
    IF NOT FOUND THEN
        RAISE EXCEPTION 'there is no organisation named "%": create it first (POST /v1/organisations) or give org_id',
                        left(v_name, 200)
            USING ERRCODE = 'AC422', DETAIL = 'unknown_organisation';
    END IF;
    IF v_id IS NOT NULL AND v_id <> v_named THEN
        PERFORM _bad('org and org_id name different organisations');
    END IF;
    RETURN v_named;
END $$;

-- Validates and inserts a user (api_user_create, admin_user_add); p_org_id exists.
DROP FUNCTION _user_insert(text, text, text[], text);
CREATE FUNCTION _user_insert(p_email text, p_name text, p_roles text[], p_org_id uuid) RETURNS users
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
    INSERT INTO users (email, name, roles, org_id)
    VALUES (p_email, p_name,
            ARRAY(SELECT DISTINCT r FROM unnest(p_roles) r ORDER BY 1), p_org_id)
    RETURNING * INTO v;
    RETURN v;
END $$;

CREATE OR REPLACE FUNCTION api_user_create(p_token text, p_body jsonb) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    v_me users := _auth_role(p_token, '{admin}');
    b jsonb := _body(p_body);
    v_email text := _j_text(b -> 'email', 'email', true, 320);
    v_name text := _j_text(b -> 'name', 'name', true, 320);
    v_org uuid := _org_from_body(b);
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
    VALUES (v_me.id, 'user.create', 'user', v.id,
            jsonb_build_object('roles', v.roles, 'org_id', v.org_id));
    RETURN _user_json(v);
END $$;

-- CLI: accord user add [--org NAME]. The shell user stands in for an admin:
-- the organisation is found by name (_org_key) or created, and the audit log
-- says which.
CREATE OR REPLACE FUNCTION admin_user_add(p_email text, p_name text, p_roles text[], p_org text)
RETURNS uuid
LANGUAGE plpgsql AS $$
DECLARE
    v_org uuid;
    v users;
BEGIN
    IF btrim(coalesce(p_org, '')) <> '' THEN
        IF length(btrim(p_org)) > 200 THEN
            PERFORM _bad('the organisation name must be at most 200 characters');
        END IF;
        SELECT id INTO v_org FROM organisations WHERE _org_key(name) = _org_key(p_org);
        IF NOT FOUND THEN
            INSERT INTO organisations (name) VALUES (btrim(p_org)) RETURNING id INTO v_org;
            INSERT INTO audit_log (actor_id, action, object_type, object_id, detail)
            VALUES (NULL, 'organisation.create', 'organisation', v_org,
                    jsonb_build_object('name', btrim(p_org), 'via', 'cli'));
        END IF;
    END IF;
    v := _user_insert(p_email, p_name, p_roles, v_org);
    INSERT INTO audit_log (actor_id, action, object_type, object_id, detail)
    VALUES (NULL, 'user.create', 'user', v.id,
            jsonb_build_object('roles', v.roles, 'org_id', v_org, 'via', 'cli'));
    RETURN v.id;
END $$;

CREATE FUNCTION api_org_create(p_token text, p_body jsonb) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    v_me users := _auth_role(p_token, '{admin}');
    b jsonb := _body(p_body);
    v_name text := _j_text(b -> 'name', 'name', true, 200);
    o organisations;
BEGIN
    PERFORM _only_keys(b, '{name}', 'field');
    IF btrim(v_name) = '' THEN
        PERFORM _bad('name must not be blank');
    END IF;
    SELECT * INTO o FROM organisations WHERE _org_key(name) = _org_key(v_name);
    IF FOUND THEN
        RAISE EXCEPTION 'an organisation named "%" already exists (id %); names are compared ignoring case and spacing',
                        o.name, o.id
            USING ERRCODE = 'AC409', DETAIL = 'organisation_exists';
    END IF;
    INSERT INTO organisations (name, created_by) VALUES (btrim(v_name), v_me.id) RETURNING * INTO o;
    INSERT INTO audit_log (actor_id, action, object_type, object_id, detail)
    VALUES (v_me.id, 'organisation.create', 'organisation', o.id, jsonb_build_object('name', o.name));
    RETURN _org_json(o);
END $$;

-- Admins assign organisations; leads see them (grants, reports).
CREATE FUNCTION api_org_list(p_token text) RETURNS json
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_me users := _auth_role(p_token, '{admin,lead}');
BEGIN
    RETURN json_build_object('organisations',
        (SELECT coalesce(json_agg(_org_json(o) ORDER BY _org_key(o.name), o.id), '[]'::json)
           FROM (SELECT * FROM organisations ORDER BY _org_key(name), id LIMIT 5000) o));
END $$;

-- PUT /v1/users/{id}/organisation {"org_id": uuid | null} (or "org": name).
CREATE FUNCTION api_user_org_set(p_token text, p_user uuid, p_body jsonb) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    v_me users := _auth_role(p_token, '{admin}');
    b jsonb := _body(p_body);
    v_org uuid;
    u users;
BEGIN
    PERFORM _only_keys(b, '{org_id,org}', 'field');
    IF NOT (b ? 'org_id' OR b ? 'org') THEN
        PERFORM _bad('give org_id (a UUID, or null to leave the user without an organisation)');
    END IF;
    v_org := _org_from_body(b);
    SELECT * INTO u FROM users WHERE id = p_user FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'user not found' USING ERRCODE = 'AC404', DETAIL = 'not_found';
    END IF;
    INSERT INTO audit_log (actor_id, action, object_type, object_id, detail)
    VALUES (v_me.id, 'user.organisation', 'user', u.id,
            jsonb_build_object('from', u.org_id, 'to', v_org));
    UPDATE users SET org_id = v_org WHERE id = u.id RETURNING * INTO u;
    RETURN _user_json(u);
END $$;

-- 422 organisation_required unless u has an organisation.
CREATE FUNCTION _require_org(u users, p_why text) RETURNS void
LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF u.org_id IS NULL THEN
        RAISE EXCEPTION '%', p_why USING ERRCODE = 'AC422', DETAIL = 'organisation_required';
    END IF;
END $$;

-- Copies the earner's organisation id; an earner needs one (policy above).
CREATE OR REPLACE FUNCTION _submission_insert(v_me users, c credentials, p_ids uuid[],
                                              p_attempt int, p_previous uuid) RETURNS submissions
LANGUAGE plpgsql AS $$
DECLARE
    s submissions;
BEGIN
    PERFORM _require_org(v_me, 'your account has no organisation, so no independent reviewer can be chosen: ask an admin to assign yours (PUT /v1/users/{id}/organisation), then submit again');
    INSERT INTO submissions (credential_id, earner_id, earner_org_id, attempt, previous_id)
    VALUES (c.id, v_me.id, v_me.org_id, p_attempt, p_previous)
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

-- 002's grant, plus: the grantee needs an organisation (policy above).
CREATE OR REPLACE FUNCTION api_assessor_grant(p_token text, p_credential_id uuid, p_body jsonb)
RETURNS json
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
    PERFORM _require_org(u, 'this user has no organisation, so their independence from the earners cannot be checked: an admin must assign one (PUT /v1/users/{id}/organisation) before the grant');
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

-- ===========================================================================
-- Seeded random draws (item 14)
-- ===========================================================================
--
-- Every random draw of the server goes through _draw(key). With the setting
-- accord.random_seed (the server passes ACCORD_RANDOM_SEED as it) the draw
-- is a pure function of the seed and the key, and the key names the objects
-- the draw is about (the assessor, the credential and the claim's ordinal;
-- the review): the same seed and the same objects give the same draws.
-- Without it, random().
CREATE FUNCTION _draw(p_key text) RETURNS float8
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_seed text := current_setting('accord.random_seed', true);
BEGIN
    IF v_seed IS NULL OR v_seed = '' THEN
        RETURN random();
    END IF;
    -- 52 bits of MD5: uniform on [0, 1); not for secrets, only for sampling
    RETURN ('x' || left(md5(v_seed || '/' || p_key), 13))::bit(52)::bigint::float8
           / 4503599627370496.0;
END $$;

-- ===========================================================================
-- Evidence access and claim churn (item 2)
-- ===========================================================================
--
-- An assessor reads a submission's evidence only while holding an active,
-- unexpired lease on a review of it; release, expiry and scoring end access
-- at once. Calibration evidence: only while the session showing it is open.
-- Churn: reviews an assessor claimed and then released or let lapse without
-- scoring, counted over the last 24 hours, are bounded by the setting
-- accord.max_releases (ACCORD_MAX_RELEASES, default 10); at the bound
-- further claims answer 429 until the oldest drops out of the 24 hours. The
-- release that reaches the bound writes a review.churn_limit audit row; the
-- assessors report shows the count per assessor.

CREATE FUNCTION _max_releases() RETURNS int
LANGUAGE sql STABLE AS $$
    SELECT coalesce(nullif(current_setting('accord.max_releases', true), '')::int, 10)
$$;

-- Reviews given back unscored: one row per release and per lease taken
-- over after it expired (small: the claim path reads it on every claim).
CREATE TABLE churn_events (
    user_id    uuid NOT NULL REFERENCES users (id),
    review_id  uuid NOT NULL REFERENCES reviews (id),
    kind       text NOT NULL CHECK (kind IN ('released','expired')),
    claimed_at timestamptz NOT NULL,
    at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX churn_events_idx ON churn_events (user_id, claimed_at);
INSERT INTO churn_events (user_id, review_id, kind, claimed_at, at)
SELECT assessor_id, id, status, claimed_at, coalesce(ended_at, claimed_at)
  FROM reviews WHERE status IN ('released','expired') AND claimed_at > now() - interval '24 hours';

-- Claimed in the last 24 hours and given back unscored: released, taken
-- over after expiry, or lapsed and not taken over yet (read through the
-- small index of leased submissions).
CREATE FUNCTION _churn_count(p_user uuid) RETURNS int
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN (SELECT count(*) FROM churn_events e
             WHERE e.user_id = p_user AND e.claimed_at > now() - interval '24 hours')
         + (SELECT count(*) FROM submissions s JOIN reviews r ON r.id = s.current_review_id
             WHERE s.status = 'in_review' AND s.lease_expires_at < now()
               AND r.assessor_id = p_user AND r.status = 'active'
               AND r.claimed_at > now() - interval '24 hours');
END $$;

CREATE FUNCTION _churn_check(v_me users) RETURNS void
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_n int := _churn_count(v_me.id);
    v_max int := _max_releases();
BEGIN
    IF v_n >= v_max THEN
        RAISE EXCEPTION 'you gave back % reviews unscored in the last 24 hours (released or lease lapsed; the limit is %): no new claims until the oldest is 24 hours old. Score what you claim; a lead sees this in the assessors report',
                        v_n, v_max
            USING ERRCODE = 'AC429', DETAIL = 'churn_limit';
    END IF;
END $$;

-- Read access: the uploader; a lead; an assessor holding an active unexpired
-- lease on a review of a submission containing the artifact; the assessor of
-- an open calibration session showing an anchor with it. 404 if it does not
-- exist, else 403.
CREATE OR REPLACE FUNCTION _artifact_readable(v_me users, p_id uuid) RETURNS artifacts
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
                 JOIN submissions s ON s.id = r.submission_id AND s.current_review_id = r.id
                WHERE sa.artifact_id = p_id AND r.assessor_id = v_me.id
                  AND r.status = 'active' AND r.lease_expires_at > now()) THEN
        RETURN a;
    END IF;
    IF EXISTS (SELECT 1
                 FROM anchor_artifacts aa
                 JOIN calibration_items ci ON ci.anchor_id = aa.anchor_id
                 JOIN calibration_sessions cs ON cs.id = ci.session_id
                WHERE aa.artifact_id = p_id AND cs.assessor_id = v_me.id
                  AND cs.status = 'open') THEN
        RETURN a;
    END IF;
    RAISE EXCEPTION 'you may read this evidence only while you hold an active review of it'
        USING ERRCODE = 'AC403', DETAIL = 'forbidden';
END $$;

-- 002's release, plus the churn audit row when this release reaches the bound.
CREATE OR REPLACE FUNCTION api_review_release(p_token text, p_id uuid) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    v_me users := _auth(p_token);
    r reviews;
    s submissions;
    l record;
    v_cid uuid;
    v_n int;
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
    INSERT INTO churn_events (user_id, review_id, kind, claimed_at)
    VALUES (v_me.id, r.id, 'released', r.claimed_at);
    v_n := _churn_count(v_me.id);
    IF v_n = _max_releases() THEN
        INSERT INTO audit_log (actor_id, action, object_type, object_id, detail)
        VALUES (v_me.id, 'review.churn_limit', 'user', v_me.id,
                jsonb_build_object('unscored_24h', v_n, 'limit', _max_releases(),
                                   'last_review_id', r.id));
    END IF;
    IF v_cid IS NOT NULL THEN
        PERFORM pg_notify('accord_queue', v_cid::text);
    END IF;
    RETURN json_build_object('id', r.id, 'status', 'released');
END $$;

-- ===========================================================================
-- Calibration that cannot be gamed; validity items that cannot be recognised
-- (items 3 and 4)
-- ===========================================================================
--
-- Anchors have a purpose: practice (masters shown after each item; never
-- qualify anyone, never a validity item), qualification (qualification
-- sessions; validity items for those who never saw them) and validity
-- (validity items only). An anchor's masters, once a user has seen them
-- (a completed qualification session's result, a practice item, a lead's
-- read), are recorded in anchor_exposures and that anchor never again
-- qualifies that user nor becomes their validity item. A validity item is
-- further never an anchor the user was shown in any way before, and its
-- evidence is served under fresh artifact ids (aliases of the anchor's
-- artifacts), so no id repeats across items or users.

-- the seeded draws' key reads an assessor's latest review: 001's index on
-- assessor_id, with claimed_at added (no extra index to keep up)
CREATE INDEX reviews_assessor_claimed_idx ON reviews (assessor_id, claimed_at);
DROP INDEX reviews_assessor_idx;

ALTER TABLE anchors ADD COLUMN purpose text NOT NULL DEFAULT 'qualification'
    CHECK (purpose IN ('practice','qualification','validity'));
ALTER TABLE calibration_sessions ADD COLUMN purpose text NOT NULL DEFAULT 'qualification'
    CHECK (purpose IN ('practice','qualification'));
ALTER TABLE rubrics ADD COLUMN cal_max_failed int NOT NULL DEFAULT 3
    CHECK (cal_max_failed BETWEEN 1 AND 20);

CREATE TABLE anchor_exposures (
    user_id    uuid NOT NULL REFERENCES users (id),
    anchor_id  uuid NOT NULL REFERENCES anchors (id),
    via        text NOT NULL CHECK (via IN ('session_result','practice','anchor_read')),
    at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, anchor_id)
);
-- what was seen before this migration: every completed session's result
INSERT INTO anchor_exposures (user_id, anchor_id, via, at)
SELECT DISTINCT ON (cs.assessor_id, ci.anchor_id) cs.assessor_id, ci.anchor_id, 'session_result',
       cs.completed_at
  FROM calibration_sessions cs JOIN calibration_items ci ON ci.session_id = cs.id
 WHERE cs.status = 'completed'
 ORDER BY cs.assessor_id, ci.anchor_id, cs.completed_at;

-- A lead lets an assessor try again after cal_max_failed failed sessions.
CREATE TABLE calibration_allowances (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id    uuid NOT NULL REFERENCES users (id),
    rubric_id  uuid NOT NULL REFERENCES rubrics (id),
    reason     text NOT NULL CHECK (length(reason) BETWEEN 1 AND 2000),
    granted_by uuid REFERENCES users (id),
    at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX calibration_allowances_idx ON calibration_allowances (user_id, rubric_id, at DESC);

-- A validity item's evidence: an alias artifact per anchor artifact (same
-- bytes, fresh id), so the item cannot be recognised by its artifact ids.
ALTER TABLE artifacts ADD COLUMN alias_of uuid REFERENCES artifacts (id);

CREATE FUNCTION _anchor_exposed(p_user uuid, p_anchor uuid, p_via text) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO anchor_exposures (user_id, anchor_id, via) VALUES (p_user, p_anchor, p_via)
    ON CONFLICT (user_id, anchor_id) DO NOTHING
$$;

-- Shown to p_user before in any way: seen masters, a session item, a validity item.
CREATE FUNCTION _anchor_shown(p_user uuid, p_anchor uuid) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT EXISTS (SELECT 1 FROM anchor_exposures e WHERE e.user_id = p_user AND e.anchor_id = p_anchor)
        OR EXISTS (SELECT 1 FROM calibration_items ci JOIN calibration_sessions cs ON cs.id = ci.session_id
                    WHERE ci.anchor_id = p_anchor AND cs.assessor_id = p_user)
        OR EXISTS (SELECT 1 FROM submissions vs JOIN reviews rv ON rv.submission_id = vs.id
                    WHERE vs.anchor_id = p_anchor AND rv.assessor_id = p_user)
$$;

-- Creates a validity item for credential p_cred from an anchor (purpose
-- validity or qualification) of its rubric never shown to the assessor;
-- NULL when there is none. The draw is seeded (_draw).
DROP FUNCTION _validity_claim(users, uuid, text, timestamptz, int);
CREATE FUNCTION _validity_claim(v_me users, p_cred uuid, p_pool text, p_claims text,
                                p_lease int) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    c credentials;
    v_anchor uuid;
    s submissions;
    r reviews;
    v_made timestamptz;
BEGIN
    SELECT * INTO c FROM credentials WHERE id = p_cred;
    SELECT a.id INTO v_anchor
      FROM anchors a
     WHERE a.rubric_id = c.rubric_id AND a.purpose IN ('validity','qualification')
       AND NOT _anchor_shown(v_me.id, a.id)
     ORDER BY _draw(format('anchor/%s/%s/%s', v_me.id, a.id, p_claims)), a.id
     LIMIT 1;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    INSERT INTO submissions (credential_id, earner_id, attempt, status, anchor_id, lease_expires_at)
    VALUES (c.id, NULL, 1, 'validity', v_anchor, now() + make_interval(secs => p_lease))
    RETURNING * INTO s;
    -- The dressing: a lead's file name ("anchor3.mp4") or title would give the
    -- item away, and so would evidence created at the moment of the claim; an
    -- alias has a neutral name (kind and extension) and the age of the
    -- evidence at the head of the queue.
    v_made := coalesce((SELECT min(q.queued_at) FROM submissions q
                         WHERE q.credential_id = c.id AND q.status = 'queued'),
                       now() - interval '1 hour' * (1 + 23 * _draw(format('age/%s/%s', v_me.id, p_claims))))
              - interval '1 minute' * (1 + 59 * _draw(format('made/%s/%s', v_me.id, p_claims)));
    WITH al AS (
        INSERT INTO artifacts (owner_id, kind, media_type, filename, bytes, sha256, url, title,
                               alias_of, created_at)
        SELECT a.owner_id, a.kind, a.media_type,
               CASE WHEN a.filename IS NOT NULL
                    THEN a.kind || coalesce(lower(substring(a.filename FROM '(\.[A-Za-z0-9]{1,8})$')), '') END,
               a.bytes, a.sha256, a.url, NULL, a.id, v_made
          FROM anchor_artifacts aa JOIN artifacts a ON a.id = aa.artifact_id
         WHERE aa.anchor_id = v_anchor
        RETURNING id, alias_of)
    INSERT INTO submission_artifacts (submission_id, artifact_id, position)
    SELECT s.id, al.id, aa.position
      FROM al JOIN anchor_artifacts aa ON aa.artifact_id = al.alias_of AND aa.anchor_id = v_anchor;
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
    v_claims text;
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
    PERFORM _churn_check(v_me);
    IF v_gc IS NULL AND NOT v_adj THEN
        RETURN NULL;
    END IF;

    -- validity items: with probability validity_rate per eligible credential
    IF v_gc IS NOT NULL THEN
        FOR i IN 1 .. cardinality(v_gc) LOOP
            IF v_grate[i] > 0 AND v_claims IS NULL THEN
                -- which claim this is, for the seeded draws' key (item 14): the
                -- assessor's latest review before it
                SELECT coalesce((SELECT rv.id::text FROM reviews rv WHERE rv.assessor_id = v_me.id
                                  ORDER BY rv.claimed_at DESC, rv.id DESC LIMIT 1), 'first')
                  INTO v_claims;
            END IF;
            IF v_grate[i] > 0
               AND _draw(format('validity/%s/%s/%s', v_me.id, v_gc[i], v_claims)) < v_grate[i] THEN
                v_valid := _validity_claim(v_me, v_gc[i], v_gpool[i], v_claims, v_lease);
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
           AND _independent(v_me.org_id, s1.earner_org_id)
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
           AND _independent(v_me.org_id, s1.earner_org_id)
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
           AND _independent(v_me.org_id, s1.earner_org_id)
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
           AND (_independent(v_me.org_id, s1.earner_org_id)
                OR (v_adj AND s1.stage = 'adjudication'
                    AND (v_me.org_id IS NULL OR s1.earner_org_id IS DISTINCT FROM v_me.org_id)))
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
       AND (_independent(v_me.org_id, s1.earner_org_id)
            OR (v_adj AND s1.stage = 'adjudication'
                AND (v_me.org_id IS NULL OR s1.earner_org_id IS DISTINCT FROM v_me.org_id)))
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
        IF v_old.id IS NOT NULL THEN
            INSERT INTO churn_events (user_id, review_id, kind, claimed_at)
            VALUES (v_old.assessor_id, v_old.id, 'expired', v_old.claimed_at);
        END IF;
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
                v_draw := _draw('second/' || r.id);
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

CREATE OR REPLACE FUNCTION api_anchor_create(p_token text, p_body jsonb) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    v_me users := _auth_role(p_token, '{lead}');
    b jsonb := _body(p_body);
    v_rid uuid := _j_uuid(b -> 'rubric_id', 'rubric_id', true);
    v_ids uuid[] := _j_artifact_ids(b);
    v_master jsonb := b -> 'master';
    v_purpose text := coalesce(_j_text(b -> 'purpose', 'purpose', false, 32), 'qualification');
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
    IF v_purpose NOT IN ('practice','qualification','validity') THEN
        PERFORM _bad('purpose must be "practice", "qualification" or "validity"');
    END IF;
    r := _rubric_lookup(v_rid, 'unknown_rubric');
    SELECT x INTO v_missing FROM unnest(v_ids) x
     WHERE NOT EXISTS (SELECT 1 FROM artifacts WHERE id = x) LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'artifact % does not exist', v_missing
            USING ERRCODE = 'AC422', DETAIL = 'unknown_artifact';
    END IF;
    k := _rubric_keys(r.criteria);
    INSERT INTO anchors (rubric_id, master_feedback, created_by, purpose)
    VALUES (r.id, v_feedback, v_me.id, v_purpose)
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
            jsonb_build_object('rubric_id', r.id, 'artifact_ids', to_jsonb(v_ids), 'purpose', v_purpose));
    -- its author has seen its masters
    PERFORM _anchor_exposed(v_me.id, a.id, 'anchor_read');
    RETURN _anchor_json(a);
END $$;

CREATE OR REPLACE FUNCTION api_calibration_item_score(p_token text, p_session uuid, p_item uuid,
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
    IF cs.purpose = 'practice' THEN
        -- practice: the master at once; the anchor is seen (and never qualifies anyone)
        PERFORM _anchor_exposed(v_me.id, ci.anchor_id, 'practice');
        IF v_left = 0 THEN
            UPDATE calibration_sessions SET status = 'completed', completed_at = now()
             WHERE id = cs.id;
        END IF;
        RETURN json_build_object('session_id', cs.id, 'item_id', ci.id, 'scored', true,
                                 'remaining', v_left, 'master', _anchor_master_json(ci.anchor_id),
                                 'status', CASE WHEN v_left = 0 THEN 'completed' ELSE 'open' END);
    END IF;
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
    -- the result shows every item's master: those anchors are seen for good
    PERFORM _anchor_exposed(v_me.id, i.anchor_id, 'session_result')
       FROM calibration_items i WHERE i.session_id = cs.id;
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

CREATE OR REPLACE FUNCTION _anchor_json(a anchors) RETURNS json
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN json_build_object(
        'id', a.id, 'rubric_id', a.rubric_id, 'purpose', a.purpose,
        'artifact_ids', (SELECT coalesce(json_agg(aa.artifact_id ORDER BY aa.position), '[]'::json)
                           FROM anchor_artifacts aa WHERE aa.anchor_id = a.id),
        'master', _anchor_master_json(a.id),
        'created_at', _ts(a.created_at));
END $$;

CREATE OR REPLACE FUNCTION _calibration_json(r rubrics) RETURNS json
LANGUAGE sql STABLE AS $$
    SELECT json_build_object('rubric_id', r.id, 'exact_min', r.cal_exact_min,
                             'adjacent_min', r.cal_adjacent_min, 'verdict_min', r.cal_verdict_min,
                             'set_size', r.cal_set_size, 'window', r.cal_window,
                             'min_items', r.cal_min_items, 'verdict_level', r.cal_verdict_level,
                             'max_failed_sessions', r.cal_max_failed)
$$;

-- 004's settings, plus max_failed_sessions.
CREATE OR REPLACE FUNCTION api_rubric_calibration_put(p_token text, p_rubric uuid, p_body jsonb)
RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    v_me users := _auth_role(p_token, '{lead}');
    b jsonb := _body(p_body);
    r rubrics := _rubric_lookup(p_rubric);
    v_vl int;
BEGIN
    PERFORM _only_keys(b, '{rubric_id,exact_min,adjacent_min,verdict_min,set_size,window,min_items,verdict_level,max_failed_sessions}',
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
    r.cal_max_failed := coalesce(_j_int_range(b -> 'max_failed_sessions', 'max_failed_sessions', 1, 20, 'invalid_calibration'), r.cal_max_failed);
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
           cal_verdict_level = r.cal_verdict_level, cal_max_failed = r.cal_max_failed
     WHERE id = r.id
    RETURNING * INTO r;
    INSERT INTO audit_log (actor_id, action, object_type, object_id, detail)
    VALUES (v_me.id, 'rubric.calibration_update', 'rubric', r.id, _calibration_json(r)::jsonb);
    RETURN _calibration_json(r);
END $$;

CREATE OR REPLACE FUNCTION _session_json(cs calibration_sessions) RETURNS json
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN json_build_object(
        'id', cs.id, 'rubric_id', cs.rubric_id, 'purpose', cs.purpose, 'status', cs.status,
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

-- Where an assessor stands on a rubric's qualification sessions.
CREATE FUNCTION _calibration_standing(p_user uuid, r rubrics,
                                      OUT failed int, OUT allowed_at timestamptz,
                                      OUT new_anchors int)
LANGUAGE plpgsql STABLE AS $$
BEGIN
    SELECT max(al.at) INTO allowed_at FROM calibration_allowances al
     WHERE al.user_id = p_user AND al.rubric_id = r.id;
    SELECT count(*) INTO failed FROM calibration_sessions cs
     WHERE cs.assessor_id = p_user AND cs.rubric_id = r.id AND cs.purpose = 'qualification'
       AND cs.status = 'completed' AND NOT (cs.result ->> 'qualified')::boolean
       AND cs.completed_at > coalesce(allowed_at, '-infinity');
    -- qualification anchors whose masters p_user never saw and that were never their validity item
    SELECT count(*) INTO new_anchors FROM anchors a
     WHERE a.rubric_id = r.id AND a.purpose = 'qualification'
       AND NOT EXISTS (SELECT 1 FROM anchor_exposures e WHERE e.user_id = p_user AND e.anchor_id = a.id)
       AND NOT EXISTS (SELECT 1 FROM submissions vs JOIN reviews rv ON rv.submission_id = vs.id
                        WHERE vs.anchor_id = a.id AND rv.assessor_id = p_user);
END $$;

-- POST /v1/calibration/sessions {"rubric_id", "purpose"?: "qualification" | "practice"}.
-- Qualification: only with a grant on a credential of the rubric (403
-- no_grant); one open at a time (409 session_open); at most the rubric's
-- max_failed_sessions failed sessions since a lead last allowed another (409
-- calibration_attempts_exhausted); items are qualification anchors whose
-- masters the assessor never saw (422 anchor_pool_exhausted when fewer than
-- set_size remain), never shown before first.
CREATE OR REPLACE FUNCTION api_calibration_session_create(p_token text, p_body jsonb) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    v_me users := _auth_role(p_token, '{assessor,expert}');
    b jsonb := _body(p_body);
    v_rid uuid := _j_uuid(b -> 'rubric_id', 'rubric_id', true);
    v_purpose text := coalesce(_j_text(b -> 'purpose', 'purpose', false, 32), 'qualification');
    r rubrics;
    cs calibration_sessions;
    st record;
    v_open uuid;
BEGIN
    PERFORM _only_keys(b, '{rubric_id,purpose}', 'field');
    IF v_purpose NOT IN ('qualification','practice') THEN
        PERFORM _bad('purpose must be "qualification" or "practice"');
    END IF;
    r := _rubric_lookup(v_rid, 'unknown_rubric');
    IF NOT EXISTS (SELECT 1 FROM assessor_grants g JOIN credentials c ON c.id = g.credential_id
                    WHERE g.user_id = v_me.id AND c.rubric_id = r.id) THEN
        RAISE EXCEPTION 'calibration on this rubric needs a grant to review one of its credentials: ask a lead'
            USING ERRCODE = 'AC403', DETAIL = 'no_grant';
    END IF;
    -- one session start at a time per assessor and rubric
    PERFORM pg_advisory_xact_lock(hashtextextended('calibration/' || v_me.id || '/' || r.id, 0));
    SELECT id INTO v_open FROM calibration_sessions
     WHERE assessor_id = v_me.id AND rubric_id = r.id AND status = 'open' AND purpose = v_purpose
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'you have an open % session on this rubric (%): finish it first', v_purpose, v_open
            USING ERRCODE = 'AC409', DETAIL = 'session_open';
    END IF;
    IF v_purpose = 'practice' THEN
        IF NOT EXISTS (SELECT 1 FROM anchors WHERE rubric_id = r.id AND purpose = 'practice') THEN
            RAISE EXCEPTION 'this rubric has no practice anchors: a lead can add some (POST /v1/anchors with "purpose": "practice")'
                USING ERRCODE = 'AC422', DETAIL = 'no_anchors';
        END IF;
        INSERT INTO calibration_sessions (rubric_id, assessor_id, purpose)
        VALUES (r.id, v_me.id, 'practice') RETURNING * INTO cs;
        INSERT INTO calibration_items (session_id, anchor_id, position)
        SELECT cs.id, x.id, row_number() OVER (ORDER BY x.seen, x.created_at, x.id)
          FROM (SELECT a.id, a.created_at,
                       EXISTS (SELECT 1 FROM anchor_exposures e
                                WHERE e.user_id = v_me.id AND e.anchor_id = a.id) AS seen
                  FROM anchors a WHERE a.rubric_id = r.id AND a.purpose = 'practice'
                 ORDER BY 3, a.created_at, a.id LIMIT r.cal_set_size) x;
    ELSE
        IF NOT EXISTS (SELECT 1 FROM anchors WHERE rubric_id = r.id AND purpose = 'qualification') THEN
            RAISE EXCEPTION 'this rubric has no anchors yet: a lead must add some before calibration'
                USING ERRCODE = 'AC422', DETAIL = 'no_anchors';
        END IF;
        st := _calibration_standing(v_me.id, r);
        IF st.failed >= r.cal_max_failed THEN
            RAISE EXCEPTION 'you failed % calibration sessions on this rubric (the limit is %): a lead must allow another attempt (POST /v1/assessors/%/calibration-attempts)',
                            st.failed, r.cal_max_failed, v_me.id
                USING ERRCODE = 'AC409', DETAIL = 'calibration_attempts_exhausted';
        END IF;
        IF st.new_anchors < r.cal_set_size THEN
            RAISE EXCEPTION 'the anchor pool is exhausted for you: % of this rubric''s qualification anchors are new to you and a set needs %. Tell a lead: they must add at least % anchors (POST /v1/anchors, purpose "qualification"); anchors whose master scores you have seen never count again',
                            st.new_anchors, r.cal_set_size, r.cal_set_size - st.new_anchors
                USING ERRCODE = 'AC422', DETAIL = 'anchor_pool_exhausted';
        END IF;
        INSERT INTO calibration_sessions (rubric_id, assessor_id, purpose)
        VALUES (r.id, v_me.id, 'qualification') RETURNING * INTO cs;
        -- never shown to this assessor first, then least recently shown
        INSERT INTO calibration_items (session_id, anchor_id, position)
        SELECT cs.id, x.id, row_number() OVER (ORDER BY x.last NULLS FIRST, x.created_at, x.id)
          FROM (SELECT a.id, a.created_at,
                       (SELECT max(s2.created_at) FROM calibration_items ci
                          JOIN calibration_sessions s2 ON s2.id = ci.session_id
                         WHERE ci.anchor_id = a.id AND s2.assessor_id = v_me.id) AS last
                  FROM anchors a
                 WHERE a.rubric_id = r.id AND a.purpose = 'qualification'
                   AND NOT EXISTS (SELECT 1 FROM anchor_exposures e
                                    WHERE e.user_id = v_me.id AND e.anchor_id = a.id)
                   AND NOT EXISTS (SELECT 1 FROM submissions vs JOIN reviews rv ON rv.submission_id = vs.id
                                    WHERE vs.anchor_id = a.id AND rv.assessor_id = v_me.id)
                 ORDER BY 3 NULLS FIRST, a.created_at, a.id
                 LIMIT r.cal_set_size) x;
    END IF;
    INSERT INTO audit_log (actor_id, action, object_type, object_id, detail)
    VALUES (v_me.id, 'calibration.session_create', 'calibration_session', cs.id,
            jsonb_build_object('rubric_id', r.id, 'purpose', cs.purpose,
                               'anchor_ids', (SELECT jsonb_agg(anchor_id ORDER BY position)
                                                FROM calibration_items WHERE session_id = cs.id)));
    RETURN _session_json(cs);
END $$;

-- POST /v1/assessors/{id}/calibration-attempts {"rubric_id", "reason"} (lead):
-- failed sessions before now no longer count against the limit.
CREATE FUNCTION api_calibration_allow(p_token text, p_user uuid, p_body jsonb) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    v_me users := _auth_role(p_token, '{lead}');
    b jsonb := _body(p_body);
    v_rid uuid := _j_uuid(b -> 'rubric_id', 'rubric_id', true);
    v_reason text := _j_text(b -> 'reason', 'reason', true, 2000);
    r rubrics;
    al calibration_allowances;
BEGIN
    PERFORM _only_keys(b, '{rubric_id,reason}', 'field');
    IF btrim(v_reason) = '' THEN
        PERFORM _bad('reason must not be blank: say why (it goes to the audit log)');
    END IF;
    IF NOT EXISTS (SELECT 1 FROM users WHERE id = p_user) THEN
        RAISE EXCEPTION 'user not found' USING ERRCODE = 'AC404', DETAIL = 'not_found';
    END IF;
    r := _rubric_lookup(v_rid, 'unknown_rubric');
    INSERT INTO calibration_allowances (user_id, rubric_id, reason, granted_by)
    VALUES (p_user, r.id, v_reason, v_me.id) RETURNING * INTO al;
    INSERT INTO audit_log (actor_id, action, object_type, object_id, detail)
    VALUES (v_me.id, 'calibration.allow', 'user', p_user,
            jsonb_build_object('rubric_id', r.id, 'reason', v_reason));
    RETURN json_build_object('user_id', p_user, 'rubric_id', r.id, 'reason', al.reason,
                             'max_failed_sessions', r.cal_max_failed, 'at', _ts(al.at));
END $$;

-- ===========================================================================
-- Audit of reads and refusals; the audit route (item 11)
-- ===========================================================================
--
-- Every read of evidence or scores by anyone but its own subject (the
-- earner of a submission, the uploader of an artifact) writes an audit row
-- in the same transaction as the read: artifact metadata and content,
-- submissions (one row per lead list, naming every submission in
-- object_ids), reviews, anchors with their masters, calibration sessions,
-- every report and ratings.csv, and the audit log itself. Refusals (403,
-- 429) roll back with their transaction, so the server records them after
-- the rollback with audit_refusal() in a transaction of their own.

ALTER TABLE audit_log ADD COLUMN object_ids uuid[];
-- (every request writes audit rows: the indexes are what the audit route
-- needs and cheap to keep: the GIN index holds only multi-object rows, and
-- BRIN suits an append-only log whose times grow with its ids)
CREATE INDEX audit_log_object_ids_idx ON audit_log USING gin (object_ids)
    WHERE object_ids IS NOT NULL;
CREATE INDEX audit_log_actor_idx ON audit_log (actor_id, id);
CREATE INDEX audit_log_at_idx ON audit_log USING brin (at);

CREATE FUNCTION _audit_read(p_actor uuid, p_action text, p_type text, p_id uuid, p_ids uuid[],
                            p_detail jsonb) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO audit_log (actor_id, action, object_type, object_id, object_ids, detail)
    VALUES (p_actor, p_action, p_type, p_id, p_ids, coalesce(p_detail, '{}'))
$$;

-- Called by the server after a request was refused (403, 429): p_route is
-- the route pattern ("/v1/artifacts/{id}/content"), p_object the first id of
-- the path. The token may be unknown (actor NULL).
CREATE FUNCTION audit_refusal(p_token text, p_method text, p_route text, p_object uuid,
                              p_status int, p_code text, p_message text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_actor uuid;
    v_type text;
BEGIN
    SELECT t.user_id INTO v_actor FROM tokens t
     WHERE t.token_hash = p_token AND t.revoked_at IS NULL;
    -- the object type: the path segment before the first {id}, singular
    v_type := coalesce(substring(left(p_route, 200) FROM '^/v1/(?:calibration/)?([a-z_.-]+?)s?/\{id\}'),
                       'route');
    IF p_route LIKE '/v1/calibration/sessions/%' THEN
        v_type := 'calibration_session';
    ELSIF p_route LIKE '/v1/assessors/%' THEN
        v_type := 'user';
    END IF;
    INSERT INTO audit_log (actor_id, action, object_type, object_id, detail)
    VALUES (v_actor, 'access.refused', v_type, p_object,
            jsonb_build_object('method', left(p_method, 16), 'route', left(p_route, 200),
                               'status', p_status, 'code', left(p_code, 64),
                               'message', left(p_message, 500)));
END $$;

-- GET /v1/audit?user_id=&object_id=&action=&since=&until=&before=&limit=
-- (lead, admin): newest first; `next_before` pages on.
CREATE FUNCTION api_audit_list(p_token text, p_query jsonb) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    v_me users := _auth_role(p_token, '{lead,admin}');
    q jsonb := _body(p_query);
    v_user uuid;
    v_obj uuid;
    v_action text;
    v_since timestamptz;
    v_until timestamptz;
    v_before bigint;
    v_limit int;
    v_rows json;
    v_last bigint;
    v_n int;
BEGIN
    PERFORM _only_keys(q, '{user_id,object_id,action,since,until,before,limit}', 'query parameter');
    v_user := _q_uuid(q -> 'user_id', 'user_id', false);
    v_obj := _q_uuid(q -> 'object_id', 'object_id', false);
    v_action := _j_text(q -> 'action', 'action', false, 64);
    v_since := _q_time(q -> 'since', 'since');
    v_until := _q_time(q -> 'until', 'until');
    IF q ? 'before' THEN
        IF (q ->> 'before') !~ '^[0-9]{1,18}$' THEN
            PERFORM _bad('before must be an entry id (a whole number) from next_before');
        END IF;
        v_before := (q ->> 'before')::bigint;
    END IF;
    IF q ? 'limit' THEN
        IF (q ->> 'limit') !~ '^[0-9]{1,4}$' OR (q ->> 'limit')::int NOT BETWEEN 1 AND 500 THEN
            PERFORM _bad('limit must be a whole number from 1 to 500');
        END IF;
        v_limit := (q ->> 'limit')::int;
    END IF;
    v_limit := coalesce(v_limit, 100);
    SELECT json_agg(json_build_object('id', x.id, 'at', _ts(x.at), 'actor_id', x.actor_id,
                                      'action', x.action, 'object_type', x.object_type,
                                      'object_id', x.object_id, 'object_ids', x.object_ids,
                                      'detail', x.detail) ORDER BY x.id DESC),
           min(x.id), count(*)
      INTO v_rows, v_last, v_n
      FROM (SELECT * FROM audit_log l
             WHERE (v_user IS NULL OR l.actor_id = v_user)
               AND (v_obj IS NULL OR l.object_id = v_obj
                    OR (l.object_ids IS NOT NULL AND l.object_ids @> ARRAY[v_obj]))
               AND (v_action IS NULL OR l.action = v_action)
               AND (v_since IS NULL OR l.at >= v_since)
               AND (v_until IS NULL OR l.at < v_until)
               AND (v_before IS NULL OR l.id < v_before)
             ORDER BY l.id DESC
             LIMIT v_limit) x;
    -- reading the log is a read of what it says: audited too (after the page is taken)
    PERFORM _audit_read(v_me.id, 'audit.read', 'audit_log', NULL, NULL, q);
    RETURN json_build_object('entries', coalesce(v_rows, '[]'::json),
                             'next_before', CASE WHEN v_n = v_limit THEN v_last END);
END $$;

CREATE OR REPLACE FUNCTION api_artifact_get(p_token text, p_id uuid) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    v_me users := _auth(p_token);
    a artifacts;
BEGIN
    a := _artifact_readable(v_me, p_id);
    IF a.owner_id <> v_me.id THEN
        PERFORM _audit_read(v_me.id, 'artifact.get', 'artifact', a.id, NULL, '{}');
    END IF;
    RETURN _artifact_json(a);
END $$;
CREATE OR REPLACE FUNCTION api_submission_get(p_token text, p_id uuid) RETURNS json
LANGUAGE plpgsql AS $$
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
    IF s.earner_id IS DISTINCT FROM v_me.id THEN
        PERFORM _audit_read(v_me.id, 'submission.read', 'submission', s.id, NULL, '{}');
    END IF;
    RETURN _submission_json(s);
END $$;
CREATE OR REPLACE FUNCTION api_submission_list(p_token text) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    v_me users := _auth_role(p_token, '{earner,lead}');
BEGIN
    IF 'lead' = ANY(v_me.roles) THEN
        -- bounded: the newest 500; one audit row naming them all
        PERFORM _audit_read(v_me.id, 'submission.list', 'submission', NULL,
                            ARRAY(SELECT s.id FROM submissions s WHERE s.status <> 'validity'
                                   ORDER BY s.created_at DESC, s.id LIMIT 500), '{}');
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
CREATE OR REPLACE FUNCTION api_review_get(p_token text, p_id uuid) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    v_me users := _auth(p_token);
    r reviews := _review_visible(v_me, p_id);
    s submissions;
BEGIN
    SELECT * INTO s FROM submissions WHERE id = r.submission_id;
    PERFORM _audit_read(v_me.id, 'review.read', 'review', r.id, NULL,
                        jsonb_build_object('submission_id', r.submission_id));
    RETURN _review_view(r, s, 'lead' = ANY(v_me.roles));
END $$;
CREATE OR REPLACE FUNCTION api_anchor_list(p_token text, p_query jsonb) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    v_me users := _auth_role(p_token, '{lead}');
    q jsonb := _body(p_query);
    v_rid uuid;
    v_ids uuid[];
BEGIN
    PERFORM _only_keys(q, '{rubric_id}', 'query parameter');
    v_rid := _q_uuid(q -> 'rubric_id', 'rubric_id', true);
    IF v_rid IS NOT NULL THEN
        PERFORM _rubric_lookup(v_rid);
    END IF;
    v_ids := ARRAY(SELECT a.id FROM anchors a WHERE v_rid IS NULL OR a.rubric_id = v_rid
                    ORDER BY a.created_at, a.id LIMIT 1000);
    -- masters read: audited, and seen by this reader for good
    PERFORM _audit_read(v_me.id, 'anchor.list', 'anchor', NULL, v_ids,
                        jsonb_build_object('rubric_id', v_rid));
    PERFORM _anchor_exposed(v_me.id, x, 'anchor_read') FROM unnest(v_ids) x;
    RETURN json_build_object('anchors',
        (SELECT coalesce(json_agg(_anchor_json(x) ORDER BY x.created_at, x.id), '[]'::json)
           FROM (SELECT * FROM anchors a WHERE a.id = ANY(v_ids)) x));
END $$;
CREATE OR REPLACE FUNCTION api_anchor_get(p_token text, p_id uuid) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    v_me users := _auth_role(p_token, '{lead}');
    a anchors;
BEGIN
    SELECT * INTO a FROM anchors WHERE id = p_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'anchor not found' USING ERRCODE = 'AC404', DETAIL = 'not_found';
    END IF;
    PERFORM _audit_read(v_me.id, 'anchor.read', 'anchor', a.id, NULL, '{}');
    PERFORM _anchor_exposed(v_me.id, a.id, 'anchor_read');
    RETURN _anchor_json(a);
END $$;
CREATE OR REPLACE FUNCTION api_calibration_session_get(p_token text, p_id uuid) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    v_me users := _auth(p_token);
    cs calibration_sessions;
BEGIN
    cs := _session_visible(v_me, p_id);
    PERFORM _audit_read(v_me.id, 'calibration_session.read', 'calibration_session', cs.id, NULL,
                        jsonb_build_object('status', cs.status));
    RETURN _session_json(cs);
END $$;
CREATE OR REPLACE FUNCTION api_report_agreement_rows(p_token text, p_query jsonb) RETURNS json
LANGUAGE plpgsql AS $$
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
    PERFORM _audit_read(v_me.id, 'report.read', 'credential', c.id, NULL,
                        jsonb_build_object('report', 'agreement', 'query', q));
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
CREATE OR REPLACE FUNCTION api_report_ratings_csv(p_token text, p_query jsonb) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    v_me users := _auth_role(p_token, '{lead}');
    q jsonb := _body(p_query);
    c credentials;
BEGIN
    PERFORM _only_keys(q, '{credential_id}', 'query parameter');
    c := _query_credential(q);
    PERFORM _audit_read(v_me.id, 'report.read', 'credential', c.id, NULL,
                        jsonb_build_object('report', 'ratings.csv', 'query', q));
    RETURN json_build_object('csv',
        'unit,rater,score' || E'\n' ||
        coalesce((SELECT string_agg(x.submission_id || ':' || x.criterion || ',' || x.assessor_id || ',' || x.level,
                                    E'\n' ORDER BY x.submission_id, x.cpos, x.assessor_id) || E'\n'
                    FROM _live_scores(c.id, 'all', NULL) x), ''));
END $$;
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
                                               AND s.stage = 'adjudication')))
                                  ORDER BY c.created_at, c.id), '[]'::json)
           FROM credentials c));
END $$;
CREATE OR REPLACE FUNCTION api_report_assessors(p_token text, p_query jsonb) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    v_me users := _auth_role(p_token, '{lead}');
    q jsonb := _body(p_query);
    v_rid uuid;
    rb rubrics;
BEGIN
    PERFORM _only_keys(q, '{rubric_id}', 'query parameter');
    v_rid := _q_uuid(q -> 'rubric_id', 'rubric_id', true);
    rb := _rubric_lookup(v_rid);
    PERFORM _audit_read(v_me.id, 'report.read', 'rubric', rb.id, NULL,
                        jsonb_build_object('report', 'assessors'));
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

-- 002's visibility, plus (item 2): a review its holder released or lost to
-- expiry is no longer theirs to read (it shows the submission's evidence and
-- earlier results); a lead reads every review.
CREATE OR REPLACE FUNCTION _review_visible(v_me users, p_id uuid) RETURNS reviews
LANGUAGE plpgsql STABLE AS $$
DECLARE
    r reviews;
BEGIN
    SELECT * INTO r FROM reviews WHERE id = p_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'review not found' USING ERRCODE = 'AC404', DETAIL = 'not_found';
    END IF;
    IF 'lead' = ANY(v_me.roles) THEN
        RETURN r;
    END IF;
    IF r.assessor_id <> v_me.id THEN
        RAISE EXCEPTION 'this review is not yours'
            USING ERRCODE = 'AC403', DETAIL = 'forbidden';
    END IF;
    IF r.status IN ('released','expired') THEN
        RAISE EXCEPTION 'this review was % and is no longer yours to read', r.status
            USING ERRCODE = 'AC403', DETAIL = 'forbidden';
    END IF;
    RETURN r;
END $$;
