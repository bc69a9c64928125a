-- SPDX-License-Identifier: Apache-2.0
-- 008_badges.sql - verifiable badges (issue 12): every award and every
-- completed stack is an Open Badges 3.0 OpenBadgeCredential that the server
-- builds in C from badge_row() and signs once as a VC-JWT (RS256), stored in
-- badges.jwt. Signing keys, revocation (1EdTech Revocation List), stacks and
-- the earner's privacy settings live here.
--
-- The scoring function is untouched: a trigger on awards gives each new award
-- its badge row and issues the stack badges it completes.

-- Signing keys ---------------------------------------------------------------

-- The private key is a 0600 PEM file <key dir>/<id>.pem on the server, never
-- in the database. One key is active (retired_at and revoked_at NULL).
-- Retired keys stay published (old badges still verify); a revoked key
-- (compromised) is no longer published and its badges are signed again.
CREATE TABLE signing_keys (
    id          uuid PRIMARY KEY,
    public_jwk  jsonb NOT NULL CHECK (jsonb_typeof(public_jwk) = 'object'),
    public_pem  text NOT NULL CHECK (length(public_pem) BETWEEN 100 AND 4000),
    created_at  timestamptz NOT NULL DEFAULT now(),
    retired_at  timestamptz,
    revoked_at  timestamptz
);
CREATE UNIQUE INDEX signing_keys_one_active ON signing_keys ((true))
    WHERE retired_at IS NULL AND revoked_at IS NULL;

-- Credentials may expire: badges of a credential with badge_valid_days carry validUntil.
ALTER TABLE credentials
    ADD COLUMN badge_valid_days int CHECK (badge_valid_days BETWEEN 1 AND 36500);

-- Stacks ---------------------------------------------------------------------

CREATE TABLE stacks (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    title       text NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
    description text CHECK (length(description) <= 5000),
    created_by  uuid REFERENCES users (id),
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE stack_members (
    stack_id      uuid NOT NULL REFERENCES stacks (id),
    credential_id uuid NOT NULL REFERENCES credentials (id),
    position      int NOT NULL,
    PRIMARY KEY (stack_id, credential_id),
    UNIQUE (stack_id, position)
);
CREATE INDEX stack_members_credential_idx ON stack_members (credential_id);

-- Badges ---------------------------------------------------------------------

-- One per award (id = the award's id) and one per completed stack and earner.
-- jwt: the signed VC-JWT, NULL until the server signs it (on first read) or
-- after a change of what it says (name display, public evidence).
-- salt: hashes the earner's email into the credential's identifier.
CREATE TABLE badges (
    id               uuid PRIMARY KEY,
    earner_id        uuid NOT NULL REFERENCES users (id),
    award_id         uuid UNIQUE REFERENCES awards (id),
    stack_id         uuid REFERENCES stacks (id),
    issued_at        timestamptz NOT NULL DEFAULT date_trunc('second', now()),
    valid_until      timestamptz,
    salt             text NOT NULL DEFAULT replace(gen_random_uuid()::text, '-', ''),
    visibility       text NOT NULL DEFAULT 'link' CHECK (visibility IN ('public','link','private')),
    name_display     text NOT NULL DEFAULT 'full' CHECK (name_display IN ('full','initials')),
    public_artifacts uuid[] NOT NULL DEFAULT '{}' CHECK (cardinality(public_artifacts) <= 20),
    jwt              text CHECK (length(jwt) <= 262144),
    signed_kid       uuid REFERENCES signing_keys (id),
    signed_at        timestamptz,
    revoked_at       timestamptz,
    revoked_by       uuid REFERENCES users (id),
    revoke_reason    text CHECK (length(revoke_reason) BETWEEN 1 AND 2000),
    CHECK ((award_id IS NULL) <> (stack_id IS NULL)),
    CHECK ((revoked_at IS NULL) = (revoke_reason IS NULL)),
    CHECK ((jwt IS NULL) = (signed_kid IS NULL))
);
CREATE UNIQUE INDEX badges_stack_earner_key ON badges (stack_id, earner_id) WHERE stack_id IS NOT NULL;
CREATE INDEX badges_earner_idx ON badges (earner_id);
CREATE INDEX badges_revoked_idx ON badges (revoked_at) WHERE revoked_at IS NOT NULL;
CREATE INDEX badges_signed_kid_idx ON badges (signed_kid);

-- Issuing --------------------------------------------------------------------

-- Stack badges the earner has just completed (every member held, not revoked).
CREATE FUNCTION _stacks_complete(p_earner uuid, p_credential uuid) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF p_credential IS NOT NULL
       AND NOT EXISTS (SELECT 1 FROM stack_members WHERE credential_id = p_credential) THEN
        RETURN;
    END IF;
    -- Two awards of one earner committing at once must not both miss the
    -- other: one waits here, and its next statement sees the other's award.
    PERFORM pg_advisory_xact_lock(hashtext('accord.stack'), hashtext(p_earner::text));
    WITH done AS (
        INSERT INTO badges (id, earner_id, stack_id)
        SELECT gen_random_uuid(), p_earner, st.id
          FROM stacks st
         WHERE (p_credential IS NULL
                OR st.id IN (SELECT stack_id FROM stack_members WHERE credential_id = p_credential))
           AND NOT EXISTS (SELECT 1 FROM badges b WHERE b.stack_id = st.id AND b.earner_id = p_earner)
           AND NOT EXISTS (SELECT 1 FROM stack_members m
                            WHERE m.stack_id = st.id
                              AND NOT EXISTS (SELECT 1 FROM awards a JOIN badges b ON b.award_id = a.id
                                               WHERE a.earner_id = p_earner
                                                 AND a.credential_id = m.credential_id
                                                 AND b.revoked_at IS NULL))
        ON CONFLICT DO NOTHING
        RETURNING id, stack_id)
    INSERT INTO audit_log (actor_id, action, object_type, object_id, detail)
    SELECT NULL, 'stack.complete', 'badge', done.id,
           jsonb_build_object('stack_id', done.stack_id, 'earner_id', p_earner)
      FROM done;
END $$;

CREATE FUNCTION _badge_on_award() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO badges (id, earner_id, award_id, issued_at, valid_until)
    SELECT NEW.id, NEW.earner_id, NEW.id, date_trunc('second', NEW.issued_at),
           date_trunc('second', NEW.issued_at) + c.badge_valid_days * interval '1 day'
      FROM credentials c WHERE c.id = NEW.credential_id;
    PERFORM _stacks_complete(NEW.earner_id, NEW.credential_id);
    RETURN NULL;
END $$;

CREATE TRIGGER awards_badge AFTER INSERT ON awards
    FOR EACH ROW EXECUTE FUNCTION _badge_on_award();

-- awards made before this migration
INSERT INTO badges (id, earner_id, award_id, issued_at)
SELECT a.id, a.earner_id, a.id, date_trunc('second', a.issued_at) FROM awards a;

-- The data a badge is built from ---------------------------------------------

CREATE FUNCTION _epoch(t timestamptz) RETURNS bigint
LANGUAGE sql IMMUTABLE AS $$
    SELECT floor(extract(epoch FROM t))::bigint
$$;

CREATE FUNCTION _ts_s(t timestamptz) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
$$;

CREATE FUNCTION _initials(p_name text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT string_agg(upper(left(w, 1)) || '.', ' ')
      FROM regexp_split_to_table(btrim(p_name), '\s+') w WHERE w <> ''
$$;

CREATE FUNCTION _badge_status(b badges) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN b.revoked_at IS NOT NULL THEN 'revoked'
                WHEN b.valid_until IS NOT NULL AND b.valid_until <= now() THEN 'expired'
                ELSE 'valid' END
$$;

-- What an Achievement is built from (server/badge.c): a credential with its rubric ...
CREATE FUNCTION _achievement_json(c credentials, rb rubrics) RETURNS json
LANGUAGE sql STABLE AS $$
    SELECT json_build_object('id', c.id, 'kind', 'credential', 'title', c.title,
                             'description', c.description, 'stakes', c.stakes,
                             'criteria', rb.criteria, 'min_level_each', c.min_level_each,
                             'rubric_title', rb.title)
$$;

-- ... or a stack with its members (and, for an earner, their member badges).
CREATE FUNCTION _stack_achievement_json(p_stack uuid, p_earner uuid) RETURNS json
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN (SELECT json_build_object(
                'id', st.id, 'kind', 'stack', 'title', st.title, 'description', st.description,
                'members', (SELECT json_agg(json_build_object(
                                'credential_id', m.credential_id, 'title', c.title,
                                'badge_id', mb.id) ORDER BY m.position)
                              FROM stack_members m
                              JOIN credentials c ON c.id = m.credential_id
                              LEFT JOIN awards a ON a.credential_id = m.credential_id
                                                AND a.earner_id = p_earner
                              LEFT JOIN badges mb ON mb.award_id = a.id
                             WHERE m.stack_id = st.id))
              FROM stacks st WHERE st.id = p_stack);
END $$;

-- The Achievement at its id URL (public): a credential's or a stack's.
CREATE FUNCTION api_achievement_public(p_id uuid) RETURNS json
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v json;
BEGIN
    SELECT _achievement_json(c, rb) INTO v
      FROM credentials c JOIN rubrics rb ON rb.id = c.rubric_id WHERE c.id = p_id;
    IF v IS NULL THEN
        v := _stack_achievement_json(p_id, NULL);
    END IF;
    IF v IS NULL THEN
        RAISE EXCEPTION 'achievement not found' USING ERRCODE = 'AC404', DETAIL = 'not_found';
    END IF;
    RETURN json_build_object('achievement', v);
END $$;

-- Everything the server needs to build, sign and show a badge (server/badge.h).
CREATE FUNCTION _badge_row(b badges) RETURNS json
LANGUAGE plpgsql STABLE AS $$
DECLARE
    u users;
    v_ach json;
    v_results json;
    v_assess json;
    v_evidence json;
    v_active uuid;
    k signing_keys;
BEGIN
    SELECT * INTO u FROM users WHERE id = b.earner_id;
    SELECT id INTO v_active FROM signing_keys WHERE retired_at IS NULL AND revoked_at IS NULL;
    SELECT * INTO k FROM signing_keys WHERE id = b.signed_kid;
    IF b.award_id IS NOT NULL THEN
        SELECT _achievement_json(c, rb),
               (SELECT coalesce(json_agg(json_build_object('criterion', rs.criterion, 'level', rs.level)
                                         ORDER BY rs.position), '[]')
                  FROM review_scores rs WHERE rs.review_id = s.decided_review_id),
               json_build_object(
                   'attempt', s.attempt,
                   'stakes', c.stakes,
                   'pools', (SELECT coalesce(json_agg(DISTINCT r.pool), '[]') FROM reviews r
                              WHERE r.submission_id = s.id AND r.status = 'submitted'),
                   'reviews', (SELECT count(*) FROM reviews r
                                WHERE r.submission_id = s.id AND r.status = 'submitted'),
                   'calibrated', (SELECT coalesce(bool_and(EXISTS (
                                          SELECT 1 FROM qualifications q
                                           WHERE q.user_id = r.assessor_id AND q.rubric_id = c.rubric_id
                                             AND q.status = 'qualified')), false)
                                    FROM reviews r
                                   WHERE r.submission_id = s.id AND r.status = 'submitted'
                                     AND r.pool IS DISTINCT FROM 'lead')),
               (SELECT coalesce(json_agg(json_build_object('id', ar.id, 'title', coalesce(ar.title, ar.filename),
                                                           'kind', ar.kind, 'media_type', ar.media_type,
                                                           'sha256', ar.sha256, 'url', ar.url)
                                         ORDER BY x.o), '[]')
                  FROM unnest(b.public_artifacts) WITH ORDINALITY x(aid, o)
                  JOIN artifacts ar ON ar.id = x.aid)
          INTO v_ach, v_results, v_assess, v_evidence
          FROM awards a
          JOIN credentials c ON c.id = a.credential_id
          JOIN rubrics rb ON rb.id = c.rubric_id
          JOIN submissions s ON s.id = a.submission_id
         WHERE a.id = b.award_id;
    ELSE
        v_ach := _stack_achievement_json(b.stack_id, b.earner_id);
        v_results := '[]';
        v_evidence := '[]';
    END IF;
    RETURN json_build_object(
        'id', b.id,
        'kind', CASE WHEN b.award_id IS NOT NULL THEN 'award' ELSE 'stack' END,
        'issued_at', _ts_s(b.issued_at), 'nbf', _epoch(b.issued_at),
        'valid_until', _ts_s(b.valid_until), 'exp', _epoch(b.valid_until),
        'status', _badge_status(b), 'revoked_at', _ts_s(b.revoked_at),
        'visibility', b.visibility, 'name_display', b.name_display,
        'earner_name', CASE WHEN b.name_display = 'initials' THEN _initials(u.name) ELSE u.name END,
        'salt', b.salt,
        'identity_hash', encode(sha256(convert_to(lower(u.email) || b.salt, 'UTF8')), 'hex'),
        'achievement', v_ach, 'results', v_results, 'assessment', v_assess,
        'evidence', v_evidence,
        'jwt', b.jwt, 'signed_kid', b.signed_kid,
        'signed_key_pem', k.public_pem,
        'signed_key_state', CASE WHEN k.id IS NULL THEN NULL
                                 WHEN k.revoked_at IS NOT NULL THEN 'revoked'
                                 WHEN k.retired_at IS NOT NULL THEN 'retired' ELSE 'active' END,
        'active_kid', v_active);
END $$;

-- The public page and the credential at the award's URL: anyone with the link,
-- unless the earner made it private (then 404, as for an unknown id).
-- p_full false: the caller only serves the stored JWT, so a signed badge
-- answers just that (half the cost of the whole row); an unsigned one always
-- gets the whole row, to be signed.
CREATE FUNCTION api_badge_public(p_id uuid, p_full boolean) RETURNS json
LANGUAGE plpgsql STABLE AS $$
DECLARE
    b badges;
BEGIN
    SELECT * INTO b FROM badges WHERE id = p_id;
    IF NOT FOUND OR b.visibility = 'private' THEN
        RAISE EXCEPTION 'award not found' USING ERRCODE = 'AC404', DETAIL = 'not_found';
    END IF;
    IF NOT p_full AND b.jwt IS NOT NULL THEN
        RETURN json_build_object('id', b.id, 'jwt', b.jwt, 'signed_kid', b.signed_kid,
                                 'status', _badge_status(b));
    END IF;
    RETURN _badge_row(b);
END $$;

-- The earner's own badge (downloads), whatever its visibility; leads too
-- (a lead's read of someone's badge, scores included, is audited).
CREATE FUNCTION api_my_badge(p_token text, p_id uuid) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    v_me users := _auth(p_token);
    b badges;
BEGIN
    SELECT * INTO b FROM badges WHERE id = p_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'award not found' USING ERRCODE = 'AC404', DETAIL = 'not_found';
    END IF;
    IF b.earner_id <> v_me.id THEN
        IF NOT 'lead' = ANY(v_me.roles) THEN
            RAISE EXCEPTION 'this award belongs to someone else'
                USING ERRCODE = 'AC403', DETAIL = 'forbidden';
        END IF;
        PERFORM _audit_read(v_me.id, 'badge.read', 'badge', p_id, NULL,
                            jsonb_build_object('earner_id', b.earner_id));
    END IF;
    RETURN _badge_row(b);
END $$;

-- Stores the JWT the server signed. A concurrent signer may have stored it
-- first (the same bytes: RS256 is deterministic); a key revoked meanwhile is
-- refused, so the next read signs again with the active key.
CREATE FUNCTION badge_store_jwt(p_id uuid, p_kid uuid, p_jwt text) RETURNS json
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE badges SET jwt = p_jwt, signed_kid = p_kid, signed_at = now()
     WHERE id = p_id AND jwt IS NULL
       AND EXISTS (SELECT 1 FROM signing_keys k WHERE k.id = p_kid AND k.revoked_at IS NULL);
    RETURN NULL;
END $$;

-- Keys (the CLI and the server's start) -------------------------------------

CREATE FUNCTION signing_key_active() RETURNS uuid
LANGUAGE sql STABLE AS $$
    SELECT id FROM signing_keys WHERE retired_at IS NULL AND revoked_at IS NULL
$$;

-- Makes p_id the active key. p_revoke_old: the old key is compromised, so it
-- is no longer published and its badges are signed again on their next read.
CREATE FUNCTION signing_key_add(p_id uuid, p_jwk jsonb, p_pem text, p_revoke_old boolean)
RETURNS uuid
LANGUAGE plpgsql AS $$
DECLARE
    v_old uuid;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('accord.signing_keys'));
    SELECT id INTO v_old FROM signing_keys WHERE retired_at IS NULL AND revoked_at IS NULL;
    IF v_old IS NOT NULL THEN
        UPDATE signing_keys
           SET retired_at = now(), revoked_at = CASE WHEN p_revoke_old THEN now() END
         WHERE id = v_old;
        IF p_revoke_old THEN
            UPDATE badges SET jwt = NULL, signed_kid = NULL, signed_at = NULL WHERE signed_kid = v_old;
        END IF;
    END IF;
    INSERT INTO signing_keys (id, public_jwk, public_pem) VALUES (p_id, p_jwk, p_pem);
    INSERT INTO audit_log (actor_id, action, object_type, object_id, detail)
    VALUES (NULL, CASE WHEN v_old IS NULL THEN 'key.create' ELSE 'key.rotate' END, 'signing_key', p_id,
            jsonb_build_object('previous', v_old, 'previous_revoked', p_revoke_old AND v_old IS NOT NULL));
    RETURN v_old;
END $$;

-- The first key, unless another server made one meanwhile: returns the active key.
CREATE FUNCTION signing_key_first(p_id uuid, p_jwk jsonb, p_pem text) RETURNS uuid
LANGUAGE plpgsql AS $$
DECLARE
    v uuid;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('accord.signing_keys'));
    v := signing_key_active();
    IF v IS NOT NULL THEN
        RETURN v;
    END IF;
    PERFORM signing_key_add(p_id, p_jwk, p_pem, false);
    RETURN p_id;
END $$;

-- Published keys (public) ------------------------------------------------------

CREATE FUNCTION _jwk_json(k signing_keys, p_base text) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT k.public_jwk || jsonb_build_object('kid', p_base || '/v1/keys/' || k.id,
                                              'alg', 'RS256', 'use', 'sig')
           || CASE WHEN k.retired_at IS NULL THEN '{}'::jsonb
                   ELSE jsonb_build_object('accord_retired_at', _epoch(k.retired_at)) END
$$;

CREATE FUNCTION api_jwks(p_base text) RETURNS json
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN json_build_object('keys',
        (SELECT coalesce(jsonb_agg(_jwk_json(k, p_base) ORDER BY k.created_at DESC), '[]')
           FROM signing_keys k WHERE k.revoked_at IS NULL));
END $$;

CREATE FUNCTION api_jwk_get(p_base text, p_id uuid) RETURNS json
LANGUAGE plpgsql STABLE AS $$
DECLARE
    k signing_keys;
BEGIN
    SELECT * INTO k FROM signing_keys WHERE id = p_id AND revoked_at IS NULL;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no published key with this id' USING ERRCODE = 'AC404', DETAIL = 'not_found';
    END IF;
    RETURN _jwk_json(k, p_base);
END $$;

-- The 1EdTech Revocation List (Open Badges 3.0, "Revocation"): every revoked
-- credential of this issuer. The reason is told to the earner, not the world.
CREATE FUNCTION api_revocation_list(p_base text) RETURNS json
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN json_build_object(
        'id', p_base || '/v1/issuer/revocations',
        'issuer', p_base || '/v1/issuer',
        'revokedCredentials',
        (SELECT coalesce(json_agg(json_build_object('id', p_base || '/v1/awards/' || b.id,
                                                    'revoked', true,
                                                    'revokedAt', _ts_s(b.revoked_at))
                                  ORDER BY b.revoked_at, b.id), '[]')
           FROM badges b WHERE b.revoked_at IS NOT NULL));
END $$;

-- Revocation (lead) --------------------------------------------------------------

CREATE FUNCTION api_badge_revoke(p_token text, p_id uuid, p_body jsonb) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    v_me users := _auth_role(p_token, '{lead}');
    b jsonb := _body(p_body);
    v_reason text;
    v_stacks json;
    bd badges;
BEGIN
    PERFORM _only_keys(b, '{reason}', 'field');
    SELECT * INTO bd FROM badges WHERE id = p_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'award not found' USING ERRCODE = 'AC404', DETAIL = 'not_found';
    END IF;
    IF bd.revoked_at IS NOT NULL THEN
        RAISE EXCEPTION 'this award was already revoked at %', _ts_s(bd.revoked_at)
            USING ERRCODE = 'AC409', DETAIL = 'already_revoked';
    END IF;
    v_reason := btrim(_j_text(b -> 'reason', 'reason', true, 2000));
    IF v_reason = '' THEN
        PERFORM _bad('reason must say why the award is revoked');
    END IF;
    UPDATE badges SET revoked_at = now(), revoked_by = v_me.id, revoke_reason = v_reason
     WHERE id = p_id RETURNING * INTO bd;
    INSERT INTO audit_log (actor_id, action, object_type, object_id, detail)
    VALUES (v_me.id, 'badge.revoke', 'badge', p_id,
            jsonb_build_object('reason', v_reason, 'earner_id', bd.earner_id));
    -- A stack counts only while every member does: its badge goes with a member.
    WITH st AS (
        UPDATE badges sb
           SET revoked_at = now(), revoked_by = v_me.id,
               revoke_reason = left(format('%s, a credential of this stack, was revoked: %s',
                                           c.title, v_reason), 2000)
          FROM awards a JOIN credentials c ON c.id = a.credential_id
         WHERE a.id = bd.award_id AND sb.earner_id = bd.earner_id AND sb.revoked_at IS NULL
           AND sb.stack_id IN (SELECT m.stack_id FROM stack_members m
                                WHERE m.credential_id = a.credential_id)
        RETURNING sb.id, sb.revoke_reason),
    au AS (
        INSERT INTO audit_log (actor_id, action, object_type, object_id, detail)
        SELECT v_me.id, 'badge.revoke', 'badge', st.id,
               jsonb_build_object('reason', st.revoke_reason, 'earner_id', bd.earner_id,
                                  'with_member', p_id)
          FROM st)
    SELECT coalesce(json_agg(st.id ORDER BY st.id), '[]') INTO v_stacks FROM st;
    RETURN json_build_object('id', bd.id, 'status', _badge_status(bd),
                             'revoked_at', _ts(bd.revoked_at), 'reason', bd.revoke_reason,
                             'stack_badges_revoked', v_stacks);
END $$;

-- The earner's awards -------------------------------------------------------------

CREATE FUNCTION _my_badge_json(b badges, p_base text) RETURNS json
LANGUAGE sql STABLE AS $$
    SELECT json_build_object(
        'id', b.id,
        'kind', CASE WHEN b.award_id IS NOT NULL THEN 'award' ELSE 'stack' END,
        'title', coalesce((SELECT c.title FROM awards a JOIN credentials c ON c.id = a.credential_id
                            WHERE a.id = b.award_id),
                          (SELECT st.title FROM stacks st WHERE st.id = b.stack_id)),
        'credential_id', (SELECT a.credential_id FROM awards a WHERE a.id = b.award_id),
        'stack_id', b.stack_id,
        'issued_at', _ts(b.issued_at), 'valid_until', _ts(b.valid_until),
        'status', _badge_status(b),
        'revoked_at', _ts(b.revoked_at), 'revocation_reason', b.revoke_reason,
        'visibility', b.visibility, 'name_display', b.name_display,
        'public_artifact_ids', to_json(b.public_artifacts),
        'share_url', CASE WHEN b.visibility <> 'private' THEN p_base || '/v1/awards/' || b.id END,
        'download', json_build_object('jwt', '/v1/me/awards/' || b.id || '/badge.jwt',
                                      'json', '/v1/me/awards/' || b.id || '/badge.json'))
$$;

CREATE FUNCTION api_my_awards(p_token text, p_base text) RETURNS json
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_me users := _auth(p_token);
BEGIN
    RETURN json_build_object('awards',
        (SELECT coalesce(json_agg(_my_badge_json(b, p_base) ORDER BY b.issued_at DESC, b.id), '[]')
           FROM badges b WHERE b.earner_id = v_me.id));
END $$;

-- The earner's privacy controls. A change of what the credential says (name,
-- public evidence) drops the stored JWT: the next read signs the new one.
CREATE FUNCTION api_my_award_update(p_token text, p_base text, p_id uuid, p_body jsonb) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    v_me users := _auth(p_token);
    b jsonb := _body(p_body);
    bd badges;
    v_vis text;
    v_name text;
    v_arts uuid[];
    v_bad uuid;
BEGIN
    PERFORM _only_keys(b, '{visibility,name_display,public_artifact_ids}', 'field');
    SELECT * INTO bd FROM badges WHERE id = p_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'award not found' USING ERRCODE = 'AC404', DETAIL = 'not_found';
    END IF;
    IF bd.earner_id <> v_me.id THEN
        RAISE EXCEPTION 'only the earner changes how an award is shown'
            USING ERRCODE = 'AC403', DETAIL = 'forbidden';
    END IF;
    v_vis := coalesce(_j_text(b -> 'visibility', 'visibility', false, 16), bd.visibility);
    IF v_vis NOT IN ('public','link','private') THEN
        PERFORM _bad('visibility is "public" (listed on the earner''s public page), "link" '
                     '(anyone with the link) or "private"');
    END IF;
    v_name := coalesce(_j_text(b -> 'name_display', 'name_display', false, 16), bd.name_display);
    IF v_name NOT IN ('full','initials') THEN
        PERFORM _bad('name_display is "full" or "initials"');
    END IF;
    v_arts := bd.public_artifacts;
    IF b ? 'public_artifact_ids' THEN
        PERFORM _j_array(b -> 'public_artifact_ids', 'public_artifact_ids', true, 20);
        SELECT coalesce(array_agg(_j_uuid(x, 'public_artifact_ids[]', true) ORDER BY o), '{}')
          INTO v_arts
          FROM jsonb_array_elements(b -> 'public_artifact_ids') WITH ORDINALITY t(x, o);
        IF cardinality(v_arts) <> (SELECT count(DISTINCT x) FROM unnest(v_arts) x) THEN
            PERFORM _bad('public_artifact_ids lists an artifact twice', 'duplicate_artifact');
        END IF;
        IF bd.award_id IS NULL AND cardinality(v_arts) > 0 THEN
            RAISE EXCEPTION 'a stack badge has no evidence of its own: its evidence is its member badges'
                USING ERRCODE = 'AC422', DETAIL = 'not_evidence';
        END IF;
        SELECT x INTO v_bad FROM unnest(v_arts) x
         WHERE NOT EXISTS (SELECT 1 FROM awards a JOIN submission_artifacts sa
                                   ON sa.submission_id = a.submission_id
                            WHERE a.id = bd.award_id AND sa.artifact_id = x)
         LIMIT 1;
        IF v_bad IS NOT NULL THEN
            RAISE EXCEPTION 'artifact % is not evidence of this award', v_bad
                USING ERRCODE = 'AC422', DETAIL = 'not_evidence';
        END IF;
    END IF;
    IF v_name <> bd.name_display OR v_arts <> bd.public_artifacts THEN
        UPDATE badges SET jwt = NULL, signed_kid = NULL, signed_at = NULL WHERE id = p_id;
    END IF;
    UPDATE badges SET visibility = v_vis, name_display = v_name, public_artifacts = v_arts
     WHERE id = p_id RETURNING * INTO bd;
    INSERT INTO audit_log (actor_id, action, object_type, object_id, detail)
    VALUES (v_me.id, 'badge.settings', 'badge', p_id,
            jsonb_build_object('visibility', v_vis, 'name_display', v_name,
                               'public_artifact_ids', to_jsonb(v_arts)));
    RETURN _my_badge_json(bd, p_base);
END $$;

-- An earner's public badges (no token): those they chose to list. Any id
-- answers (an empty list says nothing about whether the user exists).
CREATE FUNCTION api_earner_badges(p_base text, p_earner uuid) RETURNS json
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN json_build_object('badges',
        (SELECT coalesce(json_agg(json_build_object(
                    'id', b.id, 'url', p_base || '/v1/awards/' || b.id,
                    'kind', CASE WHEN b.award_id IS NOT NULL THEN 'award' ELSE 'stack' END,
                    'title', coalesce((SELECT c.title FROM awards a
                                         JOIN credentials c ON c.id = a.credential_id
                                        WHERE a.id = b.award_id),
                                      (SELECT st.title FROM stacks st WHERE st.id = b.stack_id)),
                    'issued_at', _ts(b.issued_at), 'status', _badge_status(b))
                    ORDER BY b.issued_at DESC, b.id), '[]')
           FROM badges b
          WHERE b.earner_id = p_earner AND b.visibility = 'public'));
END $$;

-- Expiry of a credential's badges (lead) -----------------------------------------

CREATE FUNCTION api_credential_badge_put(p_token text, p_id uuid, p_body jsonb) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    v_me users := _auth_role(p_token, '{lead}');
    b jsonb := _body(p_body);
    v_days int;
BEGIN
    PERFORM _only_keys(b, '{valid_days}', 'field');
    IF NOT (b ? 'valid_days') THEN
        PERFORM _bad('valid_days is required (a number of days, or null: never expires)');
    END IF;
    v_days := _j_int_range(b -> 'valid_days', 'valid_days', 1, 36500, 'bad_request');
    UPDATE credentials SET badge_valid_days = v_days WHERE id = p_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'credential not found' USING ERRCODE = 'AC404', DETAIL = 'not_found';
    END IF;
    INSERT INTO audit_log (actor_id, action, object_type, object_id, detail)
    VALUES (v_me.id, 'credential.badge', 'credential', p_id, jsonb_build_object('valid_days', v_days));
    RETURN json_build_object('credential_id', p_id, 'valid_days', v_days);
END $$;

-- Stacks ---------------------------------------------------------------------------

CREATE FUNCTION _stack_json(st stacks, v_me users) RETURNS json
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_lead boolean := 'lead' = ANY(v_me.roles);
BEGIN
    RETURN json_build_object(
        'id', st.id, 'title', st.title, 'description', st.description,
        'created_at', _ts(st.created_at),
        'credentials', (SELECT json_agg(json_build_object('id', c.id, 'title', c.title,
                                                          'position', m.position)
                                        ORDER BY m.position)
                          FROM stack_members m JOIN credentials c ON c.id = m.credential_id
                         WHERE m.stack_id = st.id),
        'progress', json_build_object(
            'held', (SELECT count(*) FROM stack_members m
                      WHERE m.stack_id = st.id
                        AND EXISTS (SELECT 1 FROM awards a JOIN badges b ON b.award_id = a.id
                                     WHERE a.earner_id = v_me.id AND a.credential_id = m.credential_id
                                       AND b.revoked_at IS NULL)),
            'held_credential_ids', (SELECT coalesce(json_agg(m.credential_id ORDER BY m.position), '[]')
                                      FROM stack_members m
                                     WHERE m.stack_id = st.id
                                       AND EXISTS (SELECT 1 FROM awards a JOIN badges b ON b.award_id = a.id
                                                    WHERE a.earner_id = v_me.id
                                                      AND a.credential_id = m.credential_id
                                                      AND b.revoked_at IS NULL)),
            'total', (SELECT count(*) FROM stack_members m WHERE m.stack_id = st.id),
            'badge_id', (SELECT b.id FROM badges b WHERE b.stack_id = st.id AND b.earner_id = v_me.id)),
        'completions', CASE WHEN v_lead THEN
                           (SELECT count(*) FROM badges b WHERE b.stack_id = st.id AND b.revoked_at IS NULL)
                       END);
END $$;

CREATE FUNCTION api_stack_create(p_token text, p_body jsonb) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    v_me users := _auth_role(p_token, '{lead}');
    b jsonb := _body(p_body);
    v_title text;
    v_desc text;
    v_ids uuid[];
    v_dup uuid;
    v_unknown uuid;
    st stacks;
    e record;
BEGIN
    PERFORM _only_keys(b, '{title,description,credential_ids}', 'field');
    v_title := _j_text(b -> 'title', 'title', true, 200);
    v_desc := _j_text(b -> 'description', 'description', false, 5000);
    PERFORM _j_array(b -> 'credential_ids', 'credential_ids', true, 50);
    SELECT coalesce(array_agg(_j_uuid(x, 'credential_ids[]', true) ORDER BY o), '{}') INTO v_ids
      FROM jsonb_array_elements(b -> 'credential_ids') WITH ORDINALITY t(x, o);
    IF cardinality(v_ids) < 2 THEN
        RAISE EXCEPTION 'a stack has at least 2 credentials, got %', cardinality(v_ids)
            USING ERRCODE = 'AC422', DETAIL = 'too_few_credentials';
    END IF;
    SELECT x INTO v_dup FROM unnest(v_ids) x GROUP BY x HAVING count(*) > 1 LIMIT 1;
    IF v_dup IS NOT NULL THEN
        RAISE EXCEPTION 'credential % is listed twice', v_dup
            USING ERRCODE = 'AC422', DETAIL = 'duplicate_credential';
    END IF;
    SELECT x INTO v_unknown FROM unnest(v_ids) x
     WHERE NOT EXISTS (SELECT 1 FROM credentials c WHERE c.id = x) LIMIT 1;
    IF v_unknown IS NOT NULL THEN
        RAISE EXCEPTION 'no credential with id %', v_unknown
            USING ERRCODE = 'AC422', DETAIL = 'unknown_credential';
    END IF;
    INSERT INTO stacks (title, description, created_by) VALUES (v_title, v_desc, v_me.id)
    RETURNING * INTO st;
    INSERT INTO stack_members (stack_id, credential_id, position)
    SELECT st.id, x, o::int FROM unnest(v_ids) WITH ORDINALITY t(x, o);
    INSERT INTO audit_log (actor_id, action, object_type, object_id, detail)
    VALUES (v_me.id, 'stack.create', 'stack', st.id,
            jsonb_build_object('title', v_title, 'credential_ids', to_jsonb(v_ids)));
    -- earners who already hold every member get the stack badge now
    FOR e IN SELECT a.earner_id FROM awards a JOIN badges bd ON bd.award_id = a.id
              WHERE a.credential_id = v_ids[1] AND bd.revoked_at IS NULL LOOP
        PERFORM _stacks_complete(e.earner_id, v_ids[1]);
    END LOOP;
    RETURN _stack_json(st, v_me);
END $$;

CREATE FUNCTION api_stack_get(p_token text, p_id uuid) RETURNS json
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_me users := _auth(p_token);
    st stacks;
BEGIN
    SELECT * INTO st FROM stacks WHERE id = p_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'stack not found' USING ERRCODE = 'AC404', DETAIL = 'not_found';
    END IF;
    RETURN _stack_json(st, v_me);
END $$;

CREATE FUNCTION api_stack_list(p_token text) RETURNS json
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_me users := _auth(p_token);
BEGIN
    RETURN json_build_object('stacks',
        (SELECT coalesce(json_agg(_stack_json(st, v_me) ORDER BY st.created_at, st.id), '[]')
           FROM stacks st));
END $$;

-- Report: completions per stack (lead).
CREATE FUNCTION api_report_stacks(p_token text) RETURNS json
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_me users := _auth_role(p_token, '{lead}');
BEGIN
    RETURN json_build_object('stacks',
        (SELECT coalesce(json_agg(json_build_object(
                    'id', st.id, 'title', st.title,
                    'credentials', (SELECT count(*) FROM stack_members m WHERE m.stack_id = st.id),
                    'completions', (SELECT count(*) FROM badges b
                                     WHERE b.stack_id = st.id AND b.revoked_at IS NULL),
                    'revoked', (SELECT count(*) FROM badges b
                                 WHERE b.stack_id = st.id AND b.revoked_at IS NOT NULL))
                    ORDER BY st.created_at, st.id), '[]')
           FROM stacks st));
END $$;
