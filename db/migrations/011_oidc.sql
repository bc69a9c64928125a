-- SPDX-License-Identifier: Apache-2.0
-- 011_oidc.sql - single sign-on with OpenID Connect (issue 10, item 4).
--
-- An admin configures identity providers; a person signs in through one with
-- the authorization code flow (PKCE S256, state, nonce). The server does the
-- network part (discovery, token endpoint, JWKS, id_token verification, in
-- server/oidc*.c); the database keeps the providers, the pending sign-ins and
-- the (issuer, subject) -> user links, and decides who may come in.
--
--   oidc_login_begin   a sign-in starts: state (hashed), nonce, PKCE verifier
--   oidc_login_take    the callback consumes the state (single use, 10 min)
--   oidc_login_finish  the verified claims become a user (matched, invited,
--                      linked by email, or signed up) - or a refusal
--
-- Client secrets are stored here because the server must send them to the
-- token endpoint; no API answer ever contains one (client_secret_set says
-- whether there is one), and the server never logs them.

CREATE TABLE oidc_providers (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name            text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    issuer          text NOT NULL CHECK (length(issuer) BETWEEN 8 AND 2048),
    client_id       text NOT NULL CHECK (length(client_id) BETWEEN 1 AND 512),
    client_secret   text CHECK (length(client_secret) BETWEEN 1 AND 2048),
    allowed_domains text[] NOT NULL DEFAULT '{}' CHECK (cardinality(allowed_domains) <= 100),
    tenant_ids      text[] NOT NULL DEFAULT '{}' CHECK (cardinality(tenant_ids) <= 100),
    default_roles   text[] NOT NULL DEFAULT '{earner}'
                    CHECK (cardinality(default_roles) >= 1
                           AND default_roles <@ ARRAY['earner','assessor','expert','lead']::text[]),
    allow_signup    boolean NOT NULL DEFAULT false,
    -- the organisation new people join (006): without one an earner cannot submit
    org_id          uuid REFERENCES organisations (id),
    enabled         boolean NOT NULL DEFAULT true,
    created_by      uuid REFERENCES users (id),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX oidc_providers_issuer_client_key ON oidc_providers (issuer, client_id);

-- A sign-in in progress. state_hash: SHA-256 of the state sent to the provider;
-- browser_hash: SHA-256 of the cookie set on the browser that started it (so
-- a callback URL is useless in any other browser: no login CSRF).
CREATE TABLE oidc_logins (
    state_hash    text PRIMARY KEY CHECK (state_hash ~ '^[0-9a-f]{64}$'),
    provider_id   uuid NOT NULL REFERENCES oidc_providers (id) ON DELETE CASCADE,
    browser_hash  text NOT NULL CHECK (browser_hash ~ '^[0-9a-f]{64}$'),
    nonce         text NOT NULL CHECK (length(nonce) BETWEEN 32 AND 128),
    code_verifier text NOT NULL CHECK (length(code_verifier) BETWEEN 43 AND 128),
    redirect_uri  text NOT NULL CHECK (length(redirect_uri) <= 2048),
    return_to     text NOT NULL CHECK (length(return_to) <= 1024),
    -- the invitation link the person came from (SHA-256 of its secret), if any
    invitation_hash text CHECK (invitation_hash ~ '^[0-9a-f]{64}$'),
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL,
    taken_at      timestamptz,
    finished_at   timestamptz
);
CREATE INDEX oidc_logins_expires_idx ON oidc_logins (expires_at);

-- Who a provider's subject is here. The issuer (not the provider row) is the
-- key: re-creating a provider for the same issuer keeps everyone's link.
CREATE TABLE user_identities (
    issuer        text NOT NULL CHECK (length(issuer) <= 2048),
    subject       text NOT NULL CHECK (length(subject) BETWEEN 1 AND 255),
    user_id       uuid NOT NULL REFERENCES users (id),
    email         text CHECK (length(email) <= 320),
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_login_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (issuer, subject)
);
CREATE INDEX user_identities_user_idx ON user_identities (user_id);

-- ---------------------------------------------------------------------------
-- Administration (admins only)
-- ---------------------------------------------------------------------------

CREATE FUNCTION _oidc_provider_json(p oidc_providers) RETURNS json
LANGUAGE sql STABLE AS $$
    SELECT json_build_object('id', p.id, 'name', p.name, 'issuer', p.issuer,
                             'client_id', p.client_id,
                             'client_secret_set', p.client_secret IS NOT NULL,
                             'allowed_domains', p.allowed_domains,
                             'tenant_ids', p.tenant_ids,
                             'default_roles', p.default_roles,
                             'allow_signup', p.allow_signup, 'org_id', p.org_id,
                             'org', (SELECT o.name FROM organisations o WHERE o.id = p.org_id),
                             'enabled', p.enabled,
                             'created_at', _ts(p.created_at), 'updated_at', _ts(p.updated_at))
$$;

-- A JSON array of short strings (domains, tenant ids, roles) as text[].
CREATE FUNCTION _oidc_strings(v jsonb, p_field text, p_max int, p_len int) RETURNS text[]
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    a jsonb := _j_array(v, p_field, false, p_max);
BEGIN
    IF a IS NULL THEN
        RETURN NULL;
    END IF;
    IF EXISTS (SELECT 1 FROM jsonb_array_elements(a) x
                WHERE jsonb_typeof(x) <> 'string' OR length(x #>> '{}') NOT BETWEEN 1 AND p_len) THEN
        PERFORM _bad(format('%s must be an array of strings of 1 to %s characters', p_field, p_len));
    END IF;
    RETURN ARRAY(SELECT DISTINCT x FROM jsonb_array_elements_text(a) x ORDER BY 1);
END $$;

-- Applies the fields present in b to p and validates the whole (create and update).
CREATE FUNCTION _oidc_provider_apply(p oidc_providers, b jsonb) RETURNS oidc_providers
LANGUAGE plpgsql AS $$
DECLARE
    v_bad text;
    v_creating boolean := p.issuer IS NULL;
BEGIN
    IF b ? 'name' OR v_creating THEN
        p.name := _j_text(b -> 'name', 'name', true, 100);
    END IF;
    IF b ? 'issuer' OR v_creating THEN
        p.issuer := _j_text(b -> 'issuer', 'issuer', true, 2048);
    END IF;
    IF b ? 'client_id' OR v_creating THEN
        p.client_id := _j_text(b -> 'client_id', 'client_id', true, 512);
    END IF;
    IF b ? 'client_secret' THEN
        -- null (or "") removes the secret: a public client using PKCE alone
        p.client_secret := nullif(_j_text(b -> 'client_secret', 'client_secret', false, 2048, true), '');
    END IF;
    IF b ? 'allowed_domains' THEN
        p.allowed_domains := coalesce(_oidc_strings(b -> 'allowed_domains', 'allowed_domains', 100, 253), '{}');
        p.allowed_domains := ARRAY(SELECT DISTINCT lower(d) FROM unnest(p.allowed_domains) d ORDER BY 1);
    END IF;
    IF b ? 'tenant_ids' THEN
        p.tenant_ids := coalesce(_oidc_strings(b -> 'tenant_ids', 'tenant_ids', 100, 128), '{}');
    END IF;
    IF b ? 'default_roles' THEN
        p.default_roles := _oidc_strings(b -> 'default_roles', 'default_roles', 4, 20);
    END IF;
    IF b ? 'allow_signup' THEN
        p.allow_signup := _j_bool(b -> 'allow_signup', 'allow_signup', false);
    END IF;
    IF b ? 'enabled' THEN
        p.enabled := _j_bool(b -> 'enabled', 'enabled', true);
    END IF;
    IF b ? 'org_id' OR b ? 'org' THEN
        p.org_id := _org_from_body(b); -- an existing organisation, by id or name; null clears
    END IF;
    SELECT k INTO v_bad FROM jsonb_object_keys(b) k
     WHERE k NOT IN ('name','issuer','client_id','client_secret','allowed_domains','tenant_ids',
                     'default_roles','allow_signup','org_id','org','enabled') LIMIT 1;
    IF FOUND THEN
        PERFORM _bad(format('unknown field "%s"', left(v_bad, 64)));
    END IF;

    -- The issuer is compared byte for byte with the discovery document and
    -- the id_token's iss, so it must be exactly what the provider calls itself.
    -- Plain http only for a provider on this machine (development, tests).
    IF p.issuer !~ '^https://[^/?#@\s]+(/[^?#\s]*)?$'
       AND p.issuer !~ '^http://(127\.[0-9.]+|localhost|\[::1\])(:[0-9]{1,5})?(/[^?#\s]*)?$' THEN
        RAISE EXCEPTION 'issuer must be an https:// URL without query or fragment (http:// only on loopback)'
            USING ERRCODE = 'AC422', DETAIL = 'invalid_issuer';
    END IF;
    IF p.default_roles IS NULL OR cardinality(p.default_roles) = 0 THEN
        RAISE EXCEPTION 'default_roles must list at least one of earner, assessor, expert, lead'
            USING ERRCODE = 'AC422', DETAIL = 'invalid_roles';
    END IF;
    SELECT r INTO v_bad FROM unnest(p.default_roles) r
     WHERE r NOT IN ('earner','assessor','expert','lead') LIMIT 1;
    IF FOUND THEN
        -- a provider never mints admins: admins are made by admins
        RAISE EXCEPTION 'default role "%" is not allowed: new people may get earner, assessor, expert or lead',
                        left(v_bad, 40)
            USING ERRCODE = 'AC422', DETAIL = 'invalid_roles';
    END IF;
    SELECT d INTO v_bad FROM unnest(p.allowed_domains) d
     WHERE d !~ '^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$' LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'allowed_domains: "%" is not a domain name (like district.example.org)',
                        left(v_bad, 80)
            USING ERRCODE = 'AC422', DETAIL = 'invalid_domain';
    END IF;
    IF p.allow_signup AND cardinality(p.allowed_domains) = 0 AND cardinality(p.tenant_ids) = 0 THEN
        RAISE EXCEPTION 'allow_signup needs allowed_domains or tenant_ids: otherwise anyone with an account at the provider could join'
            USING ERRCODE = 'AC422', DETAIL = 'signup_unrestricted';
    END IF;
    IF EXISTS (SELECT 1 FROM oidc_providers o
                WHERE o.issuer = p.issuer AND o.client_id = p.client_id
                  AND o.id IS DISTINCT FROM p.id) THEN
        RAISE EXCEPTION 'a provider with this issuer and client_id exists already'
            USING ERRCODE = 'AC409', DETAIL = 'provider_exists';
    END IF;
    p.updated_at := now();
    RETURN p;
END $$;

CREATE FUNCTION api_oidc_provider_create(p_token text, p_body jsonb) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    v_me users := _auth_role(p_token, '{admin}');
    p oidc_providers;
BEGIN
    IF (SELECT count(*) FROM oidc_providers) >= 50 THEN
        RAISE EXCEPTION 'at most 50 identity providers can be configured'
            USING ERRCODE = 'AC422', DETAIL = 'too_many_providers';
    END IF;
    p.default_roles := '{earner}';
    p.allowed_domains := '{}';
    p.tenant_ids := '{}';
    p.allow_signup := false;
    p.enabled := true;
    p := _oidc_provider_apply(p, _body(p_body));
    INSERT INTO oidc_providers (name, issuer, client_id, client_secret, allowed_domains, tenant_ids,
                                default_roles, allow_signup, org_id, enabled, created_by)
    VALUES (p.name, p.issuer, p.client_id, p.client_secret, p.allowed_domains, p.tenant_ids,
            p.default_roles, p.allow_signup, p.org_id, p.enabled, v_me.id)
    RETURNING * INTO p;
    INSERT INTO audit_log (actor_id, action, object_type, object_id, detail)
    VALUES (v_me.id, 'oidc_provider.create', 'oidc_provider', p.id,
            jsonb_build_object('issuer', p.issuer, 'allow_signup', p.allow_signup));
    RETURN _oidc_provider_json(p);
END $$;

CREATE FUNCTION api_oidc_provider_list(p_token text) RETURNS json
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_me users := _auth_role(p_token, '{admin}');
BEGIN
    RETURN json_build_object('providers', coalesce(
        (SELECT json_agg(_oidc_provider_json(p) ORDER BY p.name, p.id) FROM oidc_providers p),
        '[]'::json));
END $$;

CREATE FUNCTION _oidc_provider_find(p_id uuid, p_lock boolean) RETURNS oidc_providers
LANGUAGE plpgsql AS $$
DECLARE
    p oidc_providers;
BEGIN
    IF p_lock THEN
        SELECT * INTO p FROM oidc_providers WHERE id = p_id FOR UPDATE;
    ELSE
        SELECT * INTO p FROM oidc_providers WHERE id = p_id;
    END IF;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'identity provider not found' USING ERRCODE = 'AC404', DETAIL = 'not_found';
    END IF;
    RETURN p;
END $$;

CREATE FUNCTION api_oidc_provider_get(p_token text, p_id uuid) RETURNS json
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_me users := _auth_role(p_token, '{admin}');
BEGIN
    RETURN _oidc_provider_json(_oidc_provider_find(p_id, false));
END $$;

CREATE FUNCTION api_oidc_provider_update(p_token text, p_id uuid, p_body jsonb) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    v_me users := _auth_role(p_token, '{admin}');
    b jsonb := _body(p_body);
    p oidc_providers := _oidc_provider_find(p_id, true);
BEGIN
    p := _oidc_provider_apply(p, b);
    UPDATE oidc_providers
       SET name = p.name, issuer = p.issuer, client_id = p.client_id,
           client_secret = p.client_secret, allowed_domains = p.allowed_domains,
           tenant_ids = p.tenant_ids, default_roles = p.default_roles,
           allow_signup = p.allow_signup, org_id = p.org_id, enabled = p.enabled,
           updated_at = p.updated_at
     WHERE id = p_id;
    -- the audit names the fields changed, never the secret's value
    INSERT INTO audit_log (actor_id, action, object_type, object_id, detail)
    VALUES (v_me.id, 'oidc_provider.update', 'oidc_provider', p_id,
            jsonb_build_object('fields', (SELECT jsonb_agg(k ORDER BY k) FROM jsonb_object_keys(b) k)));
    RETURN _oidc_provider_json(p);
END $$;

CREATE FUNCTION api_oidc_provider_delete(p_token text, p_id uuid) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    v_me users := _auth_role(p_token, '{admin}');
    p oidc_providers := _oidc_provider_find(p_id, true);
BEGIN
    DELETE FROM oidc_providers WHERE id = p_id;   -- pending sign-ins go with it
    INSERT INTO audit_log (actor_id, action, object_type, object_id, detail)
    VALUES (v_me.id, 'oidc_provider.delete', 'oidc_provider', p_id,
            jsonb_build_object('issuer', p.issuer));
    RETURN NULL;
END $$;

-- The sign-in page's buttons: public, names only.
CREATE FUNCTION api_oidc_providers_public() RETURNS json
LANGUAGE sql STABLE AS $$
    SELECT json_build_object('providers', coalesce(
        (SELECT json_agg(json_build_object('id', p.id, 'name', p.name) ORDER BY p.name, p.id)
           FROM oidc_providers p WHERE p.enabled), '[]'::json))
$$;

-- ---------------------------------------------------------------------------
-- The sign-in itself (called by the server, never a route of its own)
-- ---------------------------------------------------------------------------

-- A sign-in starts. Returns what the server needs to build the authorization
-- request: {issuer, client_id}. Pending sign-ins are bounded: expired ones are
-- swept here, and at most 10000 may be in flight (a flood answers 503).
CREATE FUNCTION oidc_login_begin(p_provider_id uuid, p_state_hash text, p_browser_hash text,
                                 p_nonce text, p_code_verifier text, p_redirect_uri text,
                                 p_return_to text, p_invitation_hash text) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    p oidc_providers;
BEGIN
    SELECT * INTO p FROM oidc_providers WHERE id = p_provider_id AND enabled;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no such identity provider (or it is disabled)'
            USING ERRCODE = 'AC404', DETAIL = 'not_found';
    END IF;
    DELETE FROM oidc_logins WHERE expires_at < now() - interval '1 hour';
    IF (SELECT count(*) FROM oidc_logins WHERE expires_at > now()) >= 10000 THEN
        RAISE EXCEPTION 'too many sign-ins in progress; try again in a minute'
            USING ERRCODE = '53300';
    END IF;
    IF p_invitation_hash IS NOT NULL THEN
        -- a dead link is said now, not after the trip to the provider
        PERFORM _invitation_by_secret(p_invitation_hash, false);
    END IF;
    INSERT INTO oidc_logins (state_hash, provider_id, browser_hash, nonce, code_verifier,
                             redirect_uri, return_to, invitation_hash, expires_at)
    VALUES (p_state_hash, p.id, p_browser_hash, p_nonce, p_code_verifier, p_redirect_uri,
            p_return_to, p_invitation_hash, now() + interval '10 minutes');
    RETURN json_build_object('issuer', p.issuer, 'client_id', p.client_id);
END $$;

-- The callback consumes the state: single use, within 10 minutes, from the
-- browser that started it. Returns the login with its provider, secret
-- included (for the token request; the server never logs or answers it).
CREATE FUNCTION oidc_login_take(p_state_hash text, p_browser_hash text) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    l oidc_logins;
    p oidc_providers;
BEGIN
    SELECT * INTO l FROM oidc_logins WHERE state_hash = p_state_hash FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'this sign-in is unknown or has expired; start again'
            USING ERRCODE = 'AC400', DETAIL = 'invalid_state';
    END IF;
    IF l.taken_at IS NOT NULL THEN
        RAISE EXCEPTION 'this sign-in link was used already; start again'
            USING ERRCODE = 'AC400', DETAIL = 'state_used';
    END IF;
    IF l.expires_at <= now() THEN
        RAISE EXCEPTION 'this sign-in took too long (over 10 minutes); start again'
            USING ERRCODE = 'AC400', DETAIL = 'login_expired';
    END IF;
    IF p_browser_hash IS NULL OR p_browser_hash <> l.browser_hash THEN
        RAISE EXCEPTION 'this sign-in was started in another browser; start again here'
            USING ERRCODE = 'AC400', DETAIL = 'browser_mismatch';
    END IF;
    SELECT * INTO p FROM oidc_providers WHERE id = l.provider_id AND enabled;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'the identity provider was disabled meanwhile'
            USING ERRCODE = 'AC400', DETAIL = 'invalid_state';
    END IF;
    UPDATE oidc_logins SET taken_at = now() WHERE state_hash = p_state_hash;
    RETURN json_build_object('provider_id', p.id, 'issuer', p.issuer, 'client_id', p.client_id,
                             'client_secret', p.client_secret, 'nonce', l.nonce,
                             'code_verifier', l.code_verifier, 'redirect_uri', l.redirect_uri);
END $$;

-- The people side of issue 10 (007_people: invitations, disabled users).
-- _oidc_invitation_accept: a pending invitation for this email becomes a user
-- (or, for an existing user's new-password link, is theirs); returns the
-- user's id, or NULL when there is none.
CREATE FUNCTION _oidc_invitation_accept(p_email text, p_name text) RETURNS uuid
LANGUAGE sql AS $$
    SELECT (invitation_take_for_email(p_email)).id
$$;

CREATE FUNCTION _oidc_user_active(p_user_id uuid) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT EXISTS (SELECT 1 FROM users WHERE id = p_user_id AND disabled_at IS NULL)
$$;

CREATE FUNCTION _oidc_refuse(p_msg text, p_code text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '%', p_msg USING ERRCODE = 'AC403', DETAIL = p_code;
END $$;

-- The server verified the id_token (signature, iss, aud, exp, iat, nonce) and
-- passes its claims {iss, sub, email, email_verified, name, tid}. Decides who
-- this is, in this order:
--   1. a known (issuer, subject): that user;
--   1b. a sign-in started from an invitation link: the invited user;
--   2. a verified email with a pending invitation: the invited user;
--   3. a verified email of an existing user, in one of the provider's
--      allowed_domains (the provider speaks for that domain): linked;
--   4. allow_signup, and a verified email of an allowed domain or anyone
--      of an allowed tenant: a new user with the provider's default_roles,
--      in its organisation.
-- tenant_ids, when set, gate every sign-in. Returns {user_id, return_to, how}.
CREATE FUNCTION oidc_login_finish(p_state_hash text, p_claims jsonb) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    l oidc_logins;
    p oidc_providers;
    v_iss text := p_claims ->> 'iss';
    v_sub text := p_claims ->> 'sub';
    v_email text := lower(nullif(p_claims ->> 'email', ''));
    v_verified boolean := coalesce((p_claims -> 'email_verified') = 'true'::jsonb, false);
    v_name text := left(coalesce(nullif(btrim(p_claims ->> 'name'), ''),
                                 nullif(btrim(concat_ws(' ', p_claims ->> 'given_name',
                                                        p_claims ->> 'family_name')), ''),
                                 split_part(p_claims ->> 'email', '@', 1), 'Someone'), 320);
    v_tid text := p_claims ->> 'tid';
    v_domain text;
    v_domain_ok boolean;
    v_tenant_ok boolean;
    v_uid uuid;
    v_how text;
    v users;
BEGIN
    SELECT * INTO l FROM oidc_logins WHERE state_hash = p_state_hash FOR UPDATE;
    IF NOT FOUND OR l.taken_at IS NULL OR l.finished_at IS NOT NULL THEN
        RAISE EXCEPTION 'this sign-in is not in progress; start again'
            USING ERRCODE = 'AC400', DETAIL = 'invalid_state';
    END IF;
    UPDATE oidc_logins SET finished_at = now() WHERE state_hash = p_state_hash;
    p := _oidc_provider_find(l.provider_id, false);
    IF v_iss IS DISTINCT FROM p.issuer OR v_sub IS NULL OR length(v_sub) NOT BETWEEN 1 AND 255 THEN
        PERFORM _bad('the identity provider answered for another issuer or without a subject',
                     'invalid_token');
    END IF;
    IF v_email IS NOT NULL AND (length(v_email) > 320 OR v_email !~ '^[^@\s]+@[^@\s]+$') THEN
        v_email := NULL;
    END IF;
    v_domain := split_part(v_email, '@', 2);
    v_domain_ok := v_verified AND v_email IS NOT NULL AND v_domain = ANY (p.allowed_domains);
    v_tenant_ok := v_tid IS NOT NULL AND v_tid = ANY (p.tenant_ids);
    IF cardinality(p.tenant_ids) > 0 AND NOT v_tenant_ok THEN
        PERFORM _oidc_refuse('your organisation (tenant) may not sign in here', 'tenant_not_allowed');
    END IF;

    SELECT user_id INTO v_uid FROM user_identities WHERE issuer = p.issuer AND subject = v_sub;
    IF FOUND THEN
        v_how := 'identity';
        UPDATE user_identities SET last_login_at = now(), email = coalesce(v_email, email)
         WHERE issuer = p.issuer AND subject = v_sub;
    ELSIF l.invitation_hash IS NOT NULL THEN
        -- from an invitation link: whoever holds it may take it (as with a
        -- password), whatever email the provider knows them by
        v := _invitation_accept(_invitation_by_secret(l.invitation_hash, true));
        v_uid := v.id;
        v_how := 'invitation_link';
        IF EXISTS (SELECT 1 FROM user_identities WHERE user_id = v_uid AND issuer = p.issuer) THEN
            PERFORM _oidc_refuse('this account signs in with another account at this provider',
                                 'identity_conflict');
        END IF;
        INSERT INTO user_identities (issuer, subject, user_id, email)
        VALUES (p.issuer, v_sub, v_uid, v_email);
        INSERT INTO audit_log (actor_id, action, object_type, object_id, detail)
        VALUES (v_uid, 'identity.link', 'user', v_uid,
                jsonb_build_object('issuer', p.issuer, 'how', v_how, 'provider_id', p.id));
    ELSE
        IF v_email IS NOT NULL AND v_verified THEN
            v_uid := _oidc_invitation_accept(v_email, v_name);
            v_how := 'invitation';
            IF v_uid IS NULL AND v_domain_ok THEN
                SELECT id INTO v_uid FROM users WHERE lower(email) = v_email;
                v_how := 'email';
                IF v_uid IS NOT NULL AND EXISTS (SELECT 1 FROM user_identities
                                                  WHERE user_id = v_uid AND issuer = p.issuer) THEN
                    -- already linked to another account at this provider
                    PERFORM _oidc_refuse('this email belongs to a person who signs in with another account at this provider',
                                         'identity_conflict');
                END IF;
            END IF;
        END IF;
        -- Sign-up: a verified email of an allowed domain, or anyone of an
        -- allowed tenant (the admin trusts that directory, and Entra ID sends
        -- no email_verified); the email only names the new account.
        IF v_uid IS NULL AND p.allow_signup AND v_email IS NOT NULL AND (v_domain_ok OR v_tenant_ok) THEN
            IF EXISTS (SELECT 1 FROM users WHERE lower(email) = v_email) THEN
                PERFORM _oidc_refuse('an account with this email exists; ask an admin to link it',
                                     'email_taken');
            END IF;
            v := _user_insert(v_email, v_name, p.default_roles, p.org_id);
            v_uid := v.id;
            v_how := 'signup';
            INSERT INTO audit_log (actor_id, action, object_type, object_id, detail)
            VALUES (v_uid, 'user.create', 'user', v_uid,
                    jsonb_build_object('roles', v.roles, 'via', 'oidc', 'provider_id', p.id));
        END IF;
        IF v_uid IS NULL THEN
            IF v_email IS NULL OR NOT v_verified THEN
                PERFORM _oidc_refuse('the identity provider did not vouch for your email address, and this account is not linked to anyone here',
                                     'email_not_verified');
            END IF;
            PERFORM _oidc_refuse('there is no account for you here; ask for an invitation',
                                 'not_invited');
        END IF;
        INSERT INTO user_identities (issuer, subject, user_id, email)
        VALUES (p.issuer, v_sub, v_uid, v_email);
        INSERT INTO audit_log (actor_id, action, object_type, object_id, detail)
        VALUES (v_uid, 'identity.link', 'user', v_uid,
                jsonb_build_object('issuer', p.issuer, 'how', v_how, 'provider_id', p.id));
    END IF;
    IF NOT _oidc_user_active(v_uid) THEN
        PERFORM _oidc_refuse('this account is disabled', 'user_disabled');
    END IF;
    INSERT INTO audit_log (actor_id, action, object_type, object_id, detail)
    VALUES (v_uid, 'session.oidc', 'user', v_uid,
            jsonb_build_object('provider_id', p.id, 'how', v_how));
    RETURN json_build_object('user_id', v_uid, 'return_to', l.return_to, 'how', v_how);
END $$;
