-- SPDX-License-Identifier: Apache-2.0
-- 007_people.sql - people, not tokens (issue 10): passwords, browser
-- sessions, manageable API tokens, invitations, user administration and
-- sign-in throttling.
--
-- The credential every api_* function takes as p_token is now one of
--   * the hex SHA-256 of a bearer token (64 hex digits), as before, or
--   * 's:' followed by the hex SHA-256 of a session cookie's secret.
-- _auth() tells them apart by the prefix, so every existing api_* function
-- accepts cookie sessions with no change and still in one round trip.
--
-- Passwords are argon2id strings made by the server (libsodium
-- crypto_pwhash_str) off the event loop; the database never sees a password.
-- Secrets (session cookies, invitation links, tokens) are stored only as
-- SHA-256 hashes.
--
-- Functions for other modules (documented in db/README.md):
--   session_create(...)               a signed-in browser session for a user id
--   invitation_take_for_email(email)  the pending invitation of an email,
--                                     accepted: for single sign-on (issue 10 item 4)

-- ---------------------------------------------------------------------------
-- Tables
-- ---------------------------------------------------------------------------

-- A disabled user's tokens and sessions stop working at once; disabling also
-- revokes the tokens and ends the sessions, so enabling again does not revive them.
ALTER TABLE users ADD COLUMN disabled_at timestamptz;

-- Kept apart from users so that no users row (which _auth hands to every
-- function) carries a password hash.
CREATE TABLE passwords (
    user_id     uuid PRIMARY KEY REFERENCES users (id),
    hash        text NOT NULL CHECK (hash LIKE '$argon2id$%' AND length(hash) <= 256),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

ALTER TABLE tokens
    ADD COLUMN id uuid NOT NULL DEFAULT gen_random_uuid(),
    ADD COLUMN name text CHECK (length(name) BETWEEN 1 AND 100),
    ADD COLUMN expires_at timestamptz,
    ADD COLUMN created_by uuid REFERENCES users (id);
CREATE UNIQUE INDEX tokens_id_key ON tokens (id);

-- A browser session. The cookie holds 32 random bytes; only their SHA-256 is
-- here. Idle limit and absolute end are fixed when the session starts (from
-- the server's settings then).
CREATE TABLE sessions (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    secret_hash   text NOT NULL UNIQUE CHECK (secret_hash ~ '^[0-9a-f]{64}$'),
    user_id       uuid NOT NULL REFERENCES users (id),
    method        text NOT NULL CHECK (method IN ('password', 'invitation', 'oidc')),
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_seen_at  timestamptz NOT NULL DEFAULT now(),
    idle_seconds  int NOT NULL CHECK (idle_seconds > 0),
    expires_at    timestamptz NOT NULL
);
CREATE INDEX sessions_user_idx ON sessions (user_id);

CREATE TABLE invitations (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    secret_hash  text NOT NULL UNIQUE CHECK (secret_hash ~ '^[0-9a-f]{64}$'),
    email        text NOT NULL CHECK (length(email) BETWEEN 3 AND 320),
    name         text NOT NULL CHECK (length(name) BETWEEN 1 AND 320),
    roles        text[] NOT NULL
                 CHECK (cardinality(roles) >= 1
                        AND roles <@ ARRAY['earner','assessor','expert','lead','admin']::text[]),
    org_id       uuid REFERENCES organisations (id),
    user_id      uuid REFERENCES users (id), -- the existing user (a new-password link), or the one created
    invited_by   uuid REFERENCES users (id), -- NULL: from the command line
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    accepted_at  timestamptz,
    revoked_at   timestamptz
);
CREATE INDEX invitations_email_idx ON invitations (lower(email));
CREATE INDEX invitations_created_idx ON invitations (created_at DESC, id);

-- Failed and in-flight sign-in attempts per key: 'ea:<email>|<address>',
-- 'a:<address>', 'e:<email>'. Rows forget an hour after their last attempt.
CREATE TABLE sign_in_throttle (
    key              text PRIMARY KEY CHECK (length(key) <= 400),
    failures         int NOT NULL,
    last_failure_at  timestamptz NOT NULL,
    blocked_until    timestamptz
);
CREATE INDEX sign_in_throttle_age_idx ON sign_in_throttle (last_failure_at);

-- Addresses a user signed in from (the 20 most recent): attempts from these
-- skip the per-email throttle, so strangers elsewhere cannot lock them out.
CREATE TABLE known_addresses (
    user_id       uuid NOT NULL REFERENCES users (id),
    addr          text NOT NULL CHECK (length(addr) <= 64),
    last_seen_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, addr)
);

-- ---------------------------------------------------------------------------
-- Authentication: tokens and sessions
-- ---------------------------------------------------------------------------

-- Tells the servers' credential caches (server/authgate.h) that credentials
-- changed: the same channel and payload form as auth_changed() (009_limits,
-- which runs later, so it cannot be called from here): 'session:<hash>' or
-- 'user:<id>' (every credential of a user). Token updates notify by trigger (009).
CREATE FUNCTION _auth_changed(p_what text) RETURNS void
LANGUAGE sql AS $$
    SELECT pg_notify('accord_auth', p_what)
$$;

-- Volatile now: a session's idle clock is touched (at most once a minute, so
-- a busy browser costs one small write a minute, not one per request).
CREATE OR REPLACE FUNCTION _auth(p_token text) RETURNS users
LANGUAGE plpgsql AS $$
DECLARE
    v users;
    s sessions;
BEGIN
    IF p_token IS NULL THEN
        RAISE EXCEPTION 'sign in, or send a bearer token (Authorization: Bearer <token>)'
            USING ERRCODE = 'AC401', DETAIL = 'unauthorized';
    END IF;
    IF left(p_token, 2) = 's:' THEN
        SELECT * INTO s FROM sessions WHERE secret_hash = substr(p_token, 3);
        IF NOT FOUND OR s.expires_at <= now()
           OR s.last_seen_at + make_interval(secs => s.idle_seconds) <= now() THEN
            RAISE EXCEPTION 'your session has ended; sign in again'
                USING ERRCODE = 'AC401', DETAIL = 'session_ended';
        END IF;
        SELECT * INTO v FROM users WHERE id = s.user_id AND disabled_at IS NULL;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'your session has ended; sign in again'
                USING ERRCODE = 'AC401', DETAIL = 'session_ended';
        END IF;
        IF s.last_seen_at < now() - interval '60 seconds' THEN
            UPDATE sessions SET last_seen_at = now() WHERE id = s.id;
        END IF;
        RETURN v;
    END IF;
    SELECT usr.* INTO v
      FROM tokens t JOIN users usr ON usr.id = t.user_id
     WHERE t.token_hash = p_token AND t.revoked_at IS NULL
       AND (t.expires_at IS NULL OR t.expires_at > now())
       AND usr.disabled_at IS NULL;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown, expired or revoked token'
            USING ERRCODE = 'AC401', DETAIL = 'unauthorized';
    END IF;
    RETURN v;
END $$;

-- How the caller authenticated (for GET /v1/me).
CREATE FUNCTION _auth_info(p_token text) RETURNS json
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN left(p_token, 2) = 's:' THEN
               (SELECT json_build_object('method', 'session', 'session_id', s.id,
                                         'signed_in_with', s.method,
                                         'signed_in_at', _ts(s.created_at),
                                         'expires_at', _ts(least(s.expires_at,
                                             s.last_seen_at + make_interval(secs => s.idle_seconds))),
                                         'idle_seconds', s.idle_seconds,
                                         'absolute_expires_at', _ts(s.expires_at))
                  FROM sessions s WHERE s.secret_hash = substr(p_token, 3))
           ELSE
               (SELECT json_build_object('method', 'token', 'token_id', t.id, 'token_name', t.name,
                                         'expires_at', _ts(t.expires_at))
                  FROM tokens t WHERE t.token_hash = p_token)
           END
$$;

CREATE OR REPLACE FUNCTION api_me(p_token text) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    v users := _auth(p_token);
BEGIN
    RETURN (_user_json(v)::jsonb - 'created_at'
            || jsonb_build_object('auth', _auth_info(p_token)))::json;
END $$;

-- A user as an administrator sees them.
CREATE FUNCTION _person_json(u users) RETURNS json
LANGUAGE sql STABLE AS $$
    SELECT (_user_json(u)::jsonb
            || jsonb_build_object('disabled', u.disabled_at IS NOT NULL,
                                  'disabled_at', _ts(u.disabled_at),
                                  'has_password', EXISTS (SELECT 1 FROM passwords p
                                                           WHERE p.user_id = u.id)))::json
$$;

-- The roles a lead manages (invites, lists); admins manage everyone.
CREATE FUNCTION _lead_roles() RETURNS text[]
LANGUAGE sql IMMUTABLE AS $$ SELECT '{earner,assessor}'::text[] $$;

CREATE FUNCTION _manages(v_me users, p_roles text[]) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    SELECT 'admin' = ANY(v_me.roles) OR ('lead' = ANY(v_me.roles) AND p_roles <@ _lead_roles())
$$;

-- ---------------------------------------------------------------------------
-- Sessions
-- ---------------------------------------------------------------------------

-- Starts a signed-in browser session for p_user_id. Called by the server after
-- it verified a password, accepted an invitation, or (issue 10 item 4)
-- completed single sign-on: see server/session.h. p_old_hash is the session
-- the browser came with, ended here (a new id at every sign-in). Keeps at most
-- 20 sessions per user (the oldest go). Refuses a disabled user (403).
-- Returns {user, session}.
CREATE FUNCTION session_create(p_user_id uuid, p_secret_hash text, p_old_hash text,
                               p_method text, p_idle_seconds int, p_lifetime_seconds int,
                               p_addr text) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    v users;
    s sessions;
BEGIN
    SELECT * INTO v FROM users WHERE id = p_user_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'user not found' USING ERRCODE = 'AC404', DETAIL = 'not_found';
    END IF;
    IF v.disabled_at IS NOT NULL THEN
        RAISE EXCEPTION 'this account is disabled; ask an administrator'
            USING ERRCODE = 'AC403', DETAIL = 'account_disabled';
    END IF;
    IF p_old_hash IS NOT NULL THEN
        DELETE FROM sessions WHERE secret_hash = p_old_hash;
        IF FOUND THEN
            PERFORM _auth_changed('session:' || p_old_hash);
        END IF;
    END IF;
    DELETE FROM sessions
     WHERE user_id = v.id
       AND (expires_at <= now() OR last_seen_at + make_interval(secs => idle_seconds) <= now()
            OR id IN (SELECT id FROM sessions WHERE user_id = v.id
                       ORDER BY created_at DESC OFFSET 19));
    INSERT INTO sessions (secret_hash, user_id, method, idle_seconds, expires_at)
    VALUES (p_secret_hash, v.id, p_method, p_idle_seconds,
            now() + make_interval(secs => p_lifetime_seconds))
    RETURNING * INTO s;
    IF p_addr IS NOT NULL THEN
        INSERT INTO known_addresses (user_id, addr) VALUES (v.id, left(p_addr, 64))
        ON CONFLICT (user_id, addr) DO UPDATE SET last_seen_at = now();
        DELETE FROM known_addresses
         WHERE user_id = v.id
           AND addr IN (SELECT addr FROM known_addresses WHERE user_id = v.id
                         ORDER BY last_seen_at DESC OFFSET 20);
    END IF;
    INSERT INTO audit_log (actor_id, action, object_type, object_id, detail)
    VALUES (v.id, 'session.start', 'user', v.id,
            jsonb_build_object('method', p_method, 'session_id', s.id, 'addr', p_addr));
    RETURN json_build_object('user', _user_json(v),
                             'session', json_build_object('id', s.id, 'method', s.method,
                                                          'expires_at', _ts(s.expires_at),
                                                          'idle_seconds', s.idle_seconds));
END $$;

-- DELETE /v1/sessions/current: signs out the cookie session the request came with.
CREATE FUNCTION api_session_end(p_token text) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    v_me users := _auth(p_token);
    v_id uuid;
BEGIN
    IF left(p_token, 2) <> 's:' THEN
        RAISE EXCEPTION 'this request used a bearer token, not a session: revoke the token instead'
            USING ERRCODE = 'AC409', DETAIL = 'not_a_session';
    END IF;
    DELETE FROM sessions WHERE secret_hash = substr(p_token, 3) RETURNING id INTO v_id;
    PERFORM _auth_changed('session:' || substr(p_token, 3));
    INSERT INTO audit_log (actor_id, action, object_type, object_id, detail)
    VALUES (v_me.id, 'session.end', 'user', v_me.id, jsonb_build_object('session_id', v_id));
    RETURN NULL;
END $$;

-- ---------------------------------------------------------------------------
-- Password sign-in and its throttle
-- ---------------------------------------------------------------------------

-- Seconds until p_key may try again (0: now).
CREATE FUNCTION _throttle_wait(p_key text) RETURNS int
LANGUAGE sql STABLE AS $$
    SELECT coalesce((SELECT ceil(extract(epoch FROM t.blocked_until - now()))::int
                       FROM sign_in_throttle t
                      WHERE t.key = p_key AND t.blocked_until > now()
                        AND t.last_failure_at > now() - interval '1 hour'), 0)
$$;

-- Counts an attempt against p_key: after p_free attempts in a row, each one
-- blocks the key for p_base * 2^(n - p_free) seconds, at most p_cap.
CREATE FUNCTION _throttle_count(p_key text, p_free int, p_base int, p_cap int) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO sign_in_throttle AS t (key, failures, last_failure_at)
    VALUES (p_key, 1, now())
    ON CONFLICT (key) DO UPDATE
       SET failures = CASE WHEN t.last_failure_at > now() - interval '1 hour'
                           THEN least(t.failures + 1, 1000) ELSE 1 END,
           last_failure_at = now();
    UPDATE sign_in_throttle
       SET blocked_until = CASE WHEN failures >= p_free
                                THEN now() + make_interval(secs => least(p_cap::float8,
                                         p_base * power(2, least(failures - p_free, 30))))
                           END
     WHERE key = p_key;
$$;

-- Takes back one counted attempt (it succeeded).
CREATE FUNCTION _throttle_uncount(p_key text, p_free int) RETURNS void
LANGUAGE sql AS $$
    UPDATE sign_in_throttle
       SET failures = greatest(failures - 1, 0),
           blocked_until = CASE WHEN failures - 1 >= p_free THEN blocked_until END
     WHERE key = p_key;
$$;

-- The throttle policy (see API.md, "Signing in"):
--   per email and address  5 free attempts, then 30 s doubling up to 15 min;
--   per address            30 free attempts (all emails), then the same;
--   per email              20 free attempts (all addresses), then the same,
--                          except from addresses the user signed in from before.
-- An attempt counts when it starts (so parallel guesses are counted too,
-- exactly: the counters are locked while one is read and counted) and is
-- taken back when it succeeds.
CREATE FUNCTION _throttle_keys(p_email text, p_addr text,
                               OUT k_pair text, OUT k_addr text, OUT k_email text)
LANGUAGE sql IMMUTABLE AS $$
    SELECT 'ea:' || lower(p_email) || '|' || p_addr, 'a:' || p_addr, 'e:' || lower(p_email)
$$;

-- Step 1 of POST /v1/sessions: {"wait": seconds} when throttled, else the
-- password hash to verify ({"user_id": null, "hash": null} for an unknown
-- email: the server then verifies against a dummy hash, so both take as long).
CREATE FUNCTION api_sign_in_begin(p_email text, p_addr text) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    k record := _throttle_keys(left(p_email, 320), left(p_addr, 64));
    v_user uuid;
    v_hash text;
    v_known boolean;
    v_wait int;
BEGIN
    -- forget old counters, never waiting for a row another attempt holds
    DELETE FROM sign_in_throttle
     WHERE key IN (SELECT key FROM sign_in_throttle
                    WHERE last_failure_at < now() - interval '1 hour'
                    LIMIT 100 FOR UPDATE SKIP LOCKED);
    -- this attempt's three counters, locked in one order: concurrent attempts
    -- on a key queue here, so each sees the ones before it (exact counting)
    INSERT INTO sign_in_throttle (key, failures, last_failure_at)
    SELECT x, 0, now() FROM unnest(ARRAY[k.k_pair, k.k_addr, k.k_email]) x ORDER BY x
    ON CONFLICT (key) DO NOTHING;
    PERFORM 1 FROM sign_in_throttle WHERE key IN (k.k_pair, k.k_addr, k.k_email)
     ORDER BY key FOR UPDATE;
    SELECT u.id, p.hash INTO v_user, v_hash
      FROM users u LEFT JOIN passwords p ON p.user_id = u.id
     WHERE lower(u.email) = lower(p_email);
    v_known := v_user IS NOT NULL
               AND EXISTS (SELECT 1 FROM known_addresses
                            WHERE user_id = v_user AND addr = left(p_addr, 64));
    v_wait := greatest(_throttle_wait(k.k_pair), _throttle_wait(k.k_addr),
                       CASE WHEN v_known THEN 0 ELSE _throttle_wait(k.k_email) END);
    IF v_wait > 0 THEN
        RETURN json_build_object('wait', v_wait);
    END IF;
    PERFORM _throttle_count(k.k_pair, 5, 30, 900);
    PERFORM _throttle_count(k.k_addr, 30, 30, 900);
    PERFORM _throttle_count(k.k_email, 20, 30, 900);
    RETURN json_build_object('user_id', v_user, 'hash', v_hash);
END $$;

-- Step 2: the server verified the password (p_ok). On success the attempt is
-- taken back and a session starts ({user, session}); on failure NULL (the
-- attempt stays counted; the server answers 401).
CREATE FUNCTION api_sign_in_finish(p_email text, p_addr text, p_user_id uuid, p_ok boolean,
                                   p_secret_hash text, p_old_hash text, p_idle_seconds int,
                                   p_lifetime_seconds int) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    k record := _throttle_keys(left(p_email, 320), left(p_addr, 64));
BEGIN
    IF NOT p_ok OR p_user_id IS NULL THEN
        IF p_user_id IS NOT NULL THEN
            INSERT INTO audit_log (actor_id, action, object_type, object_id, detail)
            VALUES (NULL, 'session.sign_in_failed', 'user', p_user_id,
                    jsonb_build_object('addr', p_addr));
        END IF;
        RETURN NULL;
    END IF;
    DELETE FROM sign_in_throttle WHERE key IN (k.k_pair, k.k_email);
    PERFORM _throttle_uncount(k.k_addr, 30);
    RETURN session_create(p_user_id, p_secret_hash, p_old_hash, 'password', p_idle_seconds,
                          p_lifetime_seconds, p_addr);
END $$;

-- CLI: accord user password --email E (the hash made by the CLI). Ends the
-- user's sessions: a new password signs everyone else out.
CREATE FUNCTION admin_password_set(p_email text, p_hash text) RETURNS uuid
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
    PERFORM _password_store(v_uid, p_hash);
    INSERT INTO audit_log (actor_id, action, object_type, object_id, detail)
    VALUES (NULL, 'user.password', 'user', v_uid, '{"via":"cli"}');
    RETURN v_uid;
END $$;

CREATE FUNCTION _password_store(p_user_id uuid, p_hash text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF p_hash IS NULL OR p_hash NOT LIKE '$argon2id$%' OR length(p_hash) > 256 THEN
        PERFORM _bad('the password hash must be an argon2id string');
    END IF;
    INSERT INTO passwords (user_id, hash) VALUES (p_user_id, p_hash)
    ON CONFLICT (user_id) DO UPDATE SET hash = excluded.hash, updated_at = now();
    DELETE FROM sessions WHERE user_id = p_user_id;
    PERFORM _auth_changed('user:' || p_user_id);
END $$;

-- ---------------------------------------------------------------------------
-- API tokens
-- ---------------------------------------------------------------------------

CREATE FUNCTION _token_json(t tokens) RETURNS json
LANGUAGE sql STABLE AS $$
    SELECT json_build_object('id', t.id, 'name', t.name, 'created_at', _ts(t.created_at),
                             'expires_at', _ts(t.expires_at),
                             'expired', t.expires_at IS NOT NULL AND t.expires_at <= now())
$$;

-- Inserts a token for p_user (at most 100 live ones per user).
CREATE FUNCTION _token_insert(p_user users, p_hash text, p_name text, p_expires timestamptz,
                              p_by uuid) RETURNS tokens
LANGUAGE plpgsql AS $$
DECLARE
    t tokens;
BEGIN
    IF p_hash IS NULL OR p_hash !~ '^[0-9a-f]{64}$' THEN
        PERFORM _bad('the new token hash must be 64 lower-case hex digits');
    END IF;
    IF p_user.disabled_at IS NOT NULL THEN
        RAISE EXCEPTION 'this user is disabled; enable them first'
            USING ERRCODE = 'AC409', DETAIL = 'user_disabled';
    END IF;
    IF (SELECT count(*) FROM tokens
         WHERE user_id = p_user.id AND revoked_at IS NULL
           AND (expires_at IS NULL OR expires_at > now())) >= 100 THEN
        RAISE EXCEPTION 'at most 100 live tokens per user: revoke some first'
            USING ERRCODE = 'AC422', DETAIL = 'too_many_tokens';
    END IF;
    IF EXISTS (SELECT 1 FROM tokens WHERE token_hash = p_hash) THEN
        RAISE EXCEPTION 'token already exists; try again' USING ERRCODE = 'AC409', DETAIL = 'conflict';
    END IF;
    INSERT INTO tokens (token_hash, user_id, name, expires_at, created_by)
    VALUES (p_hash, p_user.id, p_name, p_expires, p_by)
    RETURNING * INTO t;
    RETURN t;
END $$;

-- {name (1..100, required), expires_in (seconds, 60 .. 2 years, optional)}
CREATE FUNCTION _token_body(p_body jsonb, OUT o_name text, OUT o_expires timestamptz)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    b jsonb := _body(p_body);
    v_secs int := _j_int(b -> 'expires_in', 'expires_in', false);
BEGIN
    o_name := _j_text(b -> 'name', 'name', true, 100);
    IF v_secs IS NOT NULL AND (v_secs < 60 OR v_secs > 63072000) THEN
        PERFORM _bad('expires_in must be from 60 to 63072000 seconds (two years)');
    END IF;
    o_expires := CASE WHEN v_secs IS NOT NULL THEN now() + make_interval(secs => v_secs) END;
END $$;

-- POST /v1/users/{id}/tokens (admins): now with an optional {name, expires_in}.
CREATE OR REPLACE FUNCTION api_token_create(p_token text, p_user_id uuid, p_new_token_hash text)
RETURNS json
LANGUAGE plpgsql AS $$
BEGIN
    RETURN api_user_token_create(p_token, p_user_id, p_new_token_hash, '{}');
END $$;

CREATE FUNCTION api_user_token_create(p_token text, p_user_id uuid, p_new_token_hash text,
                                      p_body jsonb) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    v_me users := _auth_role(p_token, '{admin}');
    b jsonb := _body(p_body);
    v_name text := coalesce(_j_text(b -> 'name', 'name', false, 100), 'issued by an administrator');
    v_secs int := _j_int(b -> 'expires_in', 'expires_in', false);
    u users;
    t tokens;
BEGIN
    IF v_secs IS NOT NULL AND (v_secs < 60 OR v_secs > 63072000) THEN
        PERFORM _bad('expires_in must be from 60 to 63072000 seconds (two years)');
    END IF;
    SELECT * INTO u FROM users WHERE id = p_user_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'user not found' USING ERRCODE = 'AC404', DETAIL = 'not_found';
    END IF;
    t := _token_insert(u, p_new_token_hash, v_name,
                       CASE WHEN v_secs IS NOT NULL THEN now() + make_interval(secs => v_secs) END,
                       v_me.id);
    INSERT INTO audit_log (actor_id, action, object_type, object_id, detail)
    VALUES (v_me.id, 'token.create', 'user', p_user_id, jsonb_build_object('token_id', t.id));
    RETURN (_token_json(t)::jsonb || jsonb_build_object('user_id', p_user_id))::json;
END $$;

-- GET /v1/me/tokens: the caller's live tokens (revoked ones are gone; expired
-- ones are listed, marked, for 30 days).
CREATE FUNCTION api_my_tokens(p_token text) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    v_me users := _auth(p_token);
BEGIN
    RETURN json_build_object('tokens', (
        SELECT coalesce(json_agg(_token_json(t) ORDER BY t.created_at DESC, t.id), '[]')
          FROM tokens t
         WHERE t.user_id = v_me.id AND t.revoked_at IS NULL
           AND (t.expires_at IS NULL OR t.expires_at > now() - interval '30 days')));
END $$;

-- POST /v1/me/tokens {name, expires_in?}. Made with a token, the new token
-- expires no later than that one (an expiring token cannot mint a lasting one).
CREATE FUNCTION api_my_token_create(p_token text, p_body jsonb, p_new_token_hash text) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    v_me users := _auth(p_token);
    b record := _token_body(p_body);
    v_limit timestamptz;
    t tokens;
BEGIN
    IF left(p_token, 2) <> 's:' THEN
        SELECT expires_at INTO v_limit FROM tokens WHERE token_hash = p_token;
        IF v_limit IS NOT NULL THEN
            b.o_expires := least(coalesce(b.o_expires, v_limit), v_limit);
        END IF;
    END IF;
    t := _token_insert(v_me, p_new_token_hash, b.o_name, b.o_expires, v_me.id);
    INSERT INTO audit_log (actor_id, action, object_type, object_id, detail)
    VALUES (v_me.id, 'token.create', 'user', v_me.id, jsonb_build_object('token_id', t.id));
    RETURN _token_json(t);
END $$;

CREATE FUNCTION _token_revoke(v_me users, p_id uuid, p_own_only boolean) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    t tokens;
BEGIN
    SELECT * INTO t FROM tokens WHERE id = p_id AND revoked_at IS NULL FOR UPDATE;
    IF NOT FOUND OR (p_own_only AND t.user_id <> v_me.id) THEN
        RAISE EXCEPTION 'token not found (or already revoked)'
            USING ERRCODE = 'AC404', DETAIL = 'not_found';
    END IF;
    UPDATE tokens SET revoked_at = now() WHERE id = p_id; -- its trigger tells the caches (009)
    INSERT INTO audit_log (actor_id, action, object_type, object_id, detail)
    VALUES (v_me.id, 'token.revoke', 'user', t.user_id, jsonb_build_object('token_id', t.id));
END $$;

-- DELETE /v1/me/tokens/{id}
CREATE FUNCTION api_my_token_revoke(p_token text, p_id uuid) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    v_me users := _auth(p_token);
BEGIN
    PERFORM _token_revoke(v_me, p_id, true);
    RETURN NULL;
END $$;

-- DELETE /v1/tokens/{id} (admins: anyone's)
CREATE FUNCTION api_token_revoke(p_token text, p_id uuid) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    v_me users := _auth_role(p_token, '{admin}');
BEGIN
    PERFORM _token_revoke(v_me, p_id, false);
    RETURN NULL;
END $$;

-- CLI: accord token revoke --id ID | --email E (every token of that user).
-- Returns how many tokens were revoked.
CREATE FUNCTION admin_token_revoke(p_id uuid, p_email text) RETURNS int
LANGUAGE plpgsql AS $$
DECLARE
    n int := 0;
    t tokens;
BEGIN
    FOR t IN SELECT * FROM tokens
              WHERE revoked_at IS NULL
                AND ((p_id IS NOT NULL AND id = p_id)
                     OR (p_email IS NOT NULL
                         AND user_id = (SELECT id FROM users WHERE lower(email) = lower(p_email))))
              FOR UPDATE LOOP
        UPDATE tokens SET revoked_at = now() WHERE token_hash = t.token_hash;
        INSERT INTO audit_log (actor_id, action, object_type, object_id, detail)
        VALUES (NULL, 'token.revoke', 'user', t.user_id,
                jsonb_build_object('token_id', t.id, 'via', 'cli'));
        n := n + 1;
    END LOOP;
    IF n = 0 THEN
        RAISE EXCEPTION 'no live token matches' USING ERRCODE = 'AC404', DETAIL = 'not_found';
    END IF;
    RETURN n;
END $$;

-- ---------------------------------------------------------------------------
-- Users: listing, reading, changing
-- ---------------------------------------------------------------------------

-- A page number from the query (1 .. 10000).
CREATE FUNCTION _q_page(p_query jsonb) RETURNS int
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    s text := p_query ->> 'page';
BEGIN
    IF s IS NULL THEN
        RETURN 1;
    END IF;
    IF s !~ '^[0-9]{1,5}$' OR s::int < 1 OR s::int > 10000 THEN
        PERFORM _bad('page must be a whole number from 1 to 10000');
    END IF;
    RETURN s::int;
END $$;

CREATE FUNCTION _q_unknown(p_query jsonb, p_allowed text[]) RETURNS void
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    k text;
BEGIN
    SELECT x INTO k FROM jsonb_object_keys(coalesce(p_query, '{}')) x
     WHERE x <> ALL(p_allowed) LIMIT 1;
    IF FOUND THEN
        PERFORM _bad(format('unknown query parameter "%s" (allowed: %s)', left(k, 64),
                            array_to_string(p_allowed, ', ')));
    END IF;
END $$;

-- GET /v1/users?q=&role=&org=&disabled=&page= (50 a page, by name). Admins
-- see everyone; leads see the people whose roles they manage. org is an
-- organisation's id or name (006: compared by _org_key).
CREATE FUNCTION api_user_list(p_token text, p_query jsonb) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    v_me users := _auth_role(p_token, '{admin,lead}');
    q jsonb := coalesce(p_query, '{}');
    v_page int := _q_page(q);
    v_text text := q ->> 'q';
    v_role text := q ->> 'role';
    v_org text := q ->> 'org';
    v_org_id uuid;
    v_disabled text := q ->> 'disabled';
    v_rows json;
    v_n int;
BEGIN
    PERFORM _q_unknown(q, '{q,role,org,disabled,page}');
    IF v_org IS NOT NULL THEN
        IF _is_uuid(v_org) THEN
            v_org_id := v_org::uuid;
        ELSE
            SELECT id INTO v_org_id FROM organisations WHERE _org_key(name) = _org_key(v_org);
            IF NOT FOUND THEN
                RETURN json_build_object('users', '[]'::json, 'page', v_page, 'per_page', 50,
                                         'has_more', false);
            END IF;
        END IF;
    END IF;
    IF v_role IS NOT NULL AND v_role NOT IN ('earner','assessor','expert','lead','admin') THEN
        PERFORM _bad('role must be one of earner, assessor, expert, lead, admin');
    END IF;
    IF v_disabled IS NOT NULL AND v_disabled NOT IN ('true', 'false') THEN
        PERFORM _bad('disabled must be true or false');
    END IF;
    IF v_text = '' THEN
        v_text := NULL;
    END IF;
    SELECT json_agg(_person_json(u) ORDER BY u.name, u.id), count(*)
      INTO v_rows, v_n
      FROM (SELECT * FROM users u
             WHERE _manages(v_me, u.roles)
               AND (v_text IS NULL
                    OR strpos(lower(u.name), lower(v_text)) > 0
                    OR strpos(lower(u.email), lower(v_text)) > 0)
               AND (v_role IS NULL OR v_role = ANY(u.roles))
               AND (v_org_id IS NULL OR u.org_id = v_org_id)
               AND (v_disabled IS NULL OR (u.disabled_at IS NOT NULL) = v_disabled::boolean)
             ORDER BY u.name, u.id
             OFFSET (v_page - 1) * 50 LIMIT 51) u;
    RETURN json_build_object(
        'users', coalesce((SELECT json_agg(x) FROM (SELECT x FROM json_array_elements(v_rows) x
                                                     LIMIT 50) y), '[]'),
        'page', v_page, 'per_page', 50, 'has_more', coalesce(v_n, 0) > 50);
END $$;

-- GET /v1/users/{id}
CREATE FUNCTION api_user_get(p_token text, p_id uuid) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    v_me users := _auth_role(p_token, '{admin,lead}');
    u users;
BEGIN
    SELECT * INTO u FROM users WHERE id = p_id;
    IF NOT FOUND OR NOT _manages(v_me, u.roles) THEN
        RAISE EXCEPTION 'user not found' USING ERRCODE = 'AC404', DETAIL = 'not_found';
    END IF;
    RETURN _person_json(u);
END $$;

-- A roles array from JSON: 1..5 known role names.
CREATE FUNCTION _j_roles(v jsonb, p_required boolean) RETURNS text[]
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    arr jsonb := _j_array(v, 'roles', p_required, 10);
    v_roles text[];
    v_bad text;
BEGIN
    IF arr IS NULL THEN
        RETURN NULL;
    END IF;
    IF EXISTS (SELECT 1 FROM jsonb_array_elements(arr) x WHERE jsonb_typeof(x) <> 'string') THEN
        PERFORM _bad('roles must be an array of strings');
    END IF;
    v_roles := ARRAY(SELECT DISTINCT x FROM jsonb_array_elements_text(arr) x ORDER BY 1);
    IF cardinality(v_roles) = 0 THEN
        RAISE EXCEPTION 'roles must list at least one of earner, assessor, expert, lead, admin'
            USING ERRCODE = 'AC422', DETAIL = 'invalid_roles';
    END IF;
    SELECT r INTO v_bad FROM unnest(v_roles) r
     WHERE r NOT IN ('earner','assessor','expert','lead','admin') LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'unknown role "%": roles are earner, assessor, expert, lead, admin',
                        left(v_bad, 40)
            USING ERRCODE = 'AC422', DETAIL = 'invalid_roles';
    END IF;
    RETURN v_roles;
END $$;

-- Disables a user: every token revoked, every session ended, pending
-- invitations to them revoked; caches told.
CREATE FUNCTION _user_disable(v_me users, u users) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE users SET disabled_at = now() WHERE id = u.id;
    UPDATE tokens SET revoked_at = now() WHERE user_id = u.id AND revoked_at IS NULL;
    DELETE FROM sessions WHERE user_id = u.id;
    UPDATE invitations SET revoked_at = now()
     WHERE lower(email) = lower(u.email) AND accepted_at IS NULL AND revoked_at IS NULL;
    PERFORM _auth_changed('user:' || u.id);
    INSERT INTO audit_log (actor_id, action, object_type, object_id)
    VALUES (v_me.id, 'user.disable', 'user', u.id);
END $$;

-- PATCH /v1/users/{id} {name?, roles?, disabled?} (admins). An admin cannot
-- disable themselves or drop their own admin role (nobody would be left to undo it).
CREATE FUNCTION api_user_patch(p_token text, p_id uuid, p_body jsonb) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    v_me users := _auth_role(p_token, '{admin}');
    b jsonb := _body(p_body);
    v_name text := _j_text(b -> 'name', 'name', false, 320);
    v_roles text[] := _j_roles(b -> 'roles', false);
    v_disabled boolean := _j_bool(b -> 'disabled', 'disabled', NULL);
    v_bad text;
    u users;
BEGIN
    SELECT k INTO v_bad FROM jsonb_object_keys(b) k
     WHERE k NOT IN ('name', 'roles', 'disabled') LIMIT 1;
    IF FOUND THEN
        PERFORM _bad(format('unknown field "%s": a user''s name, roles and disabled can change',
                            left(v_bad, 64)));
    END IF;
    SELECT * INTO u FROM users WHERE id = p_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'user not found' USING ERRCODE = 'AC404', DETAIL = 'not_found';
    END IF;
    IF u.id = v_me.id AND (v_disabled OR (v_roles IS NOT NULL AND NOT 'admin' = ANY(v_roles))) THEN
        RAISE EXCEPTION 'you cannot disable yourself or remove your own admin role'
            USING ERRCODE = 'AC409', DETAIL = 'self_lockout';
    END IF;
    IF v_name IS NOT NULL THEN
        UPDATE users SET name = v_name WHERE id = u.id;
    END IF;
    IF v_roles IS NOT NULL AND v_roles IS DISTINCT FROM u.roles THEN
        UPDATE users SET roles = v_roles WHERE id = u.id;
        PERFORM _auth_changed('user:' || u.id);
        INSERT INTO audit_log (actor_id, action, object_type, object_id, detail)
        VALUES (v_me.id, 'user.roles', 'user', u.id,
                jsonb_build_object('from', u.roles, 'to', v_roles));
    END IF;
    IF v_disabled AND u.disabled_at IS NULL THEN
        PERFORM _user_disable(v_me, u);
    ELSIF v_disabled = false AND u.disabled_at IS NOT NULL THEN
        UPDATE users SET disabled_at = NULL WHERE id = u.id;
        INSERT INTO audit_log (actor_id, action, object_type, object_id)
        VALUES (v_me.id, 'user.enable', 'user', u.id);
    END IF;
    SELECT * INTO u FROM users WHERE id = p_id;
    RETURN _person_json(u);
END $$;

-- ---------------------------------------------------------------------------
-- Invitations
-- ---------------------------------------------------------------------------

CREATE FUNCTION _invitation_status(i invitations) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN i.accepted_at IS NOT NULL THEN 'accepted'
                WHEN i.revoked_at IS NOT NULL THEN 'revoked'
                WHEN i.expires_at <= now() THEN 'expired'
                ELSE 'pending' END
$$;

CREATE FUNCTION _invitation_json(i invitations) RETURNS json
LANGUAGE sql STABLE AS $$
    SELECT json_build_object('id', i.id, 'email', i.email, 'name', i.name, 'roles', i.roles,
                             'org_id', i.org_id,
                             'org', (SELECT o.name FROM organisations o WHERE o.id = i.org_id),
                             'user_id', i.user_id, 'invited_by', i.invited_by,
                             'status', _invitation_status(i),
                             'created_at', _ts(i.created_at), 'expires_at', _ts(i.expires_at),
                             'accepted_at', _ts(i.accepted_at))
$$;

-- POST /v1/invitations {email, name, roles, org_id? | org?}: admins invite anyone,
-- leads earners and assessors. For an existing user (a lost password) the
-- link lets them choose a new one: their name and roles stay, and a lead may
-- only send it to people they manage. A new invitation to an email revokes
-- the pending ones. p_secret_hash: SHA-256 of the link's secret (the server
-- makes the secret and the url).
CREATE FUNCTION api_invitation_create(p_token text, p_body jsonb, p_secret_hash text) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    v_me users := _auth_role(p_token, '{admin,lead}');
    b jsonb := _body(p_body);
    v_email text := _j_text(b -> 'email', 'email', true, 320);
    v_name text := _j_text(b -> 'name', 'name', false, 320);
    v_roles text[] := _j_roles(b -> 'roles', false);
    v_org uuid := _org_from_body(b); -- an existing organisation (006), by id or name
    u users;
    i invitations;
BEGIN
    IF p_secret_hash IS NULL OR p_secret_hash !~ '^[0-9a-f]{64}$' THEN
        PERFORM _bad('the invitation secret hash must be 64 lower-case hex digits');
    END IF;
    IF v_email !~ '^[^@\s]+@[^@\s]+$' THEN
        PERFORM _bad('email must look like name@example.org (at most 320 characters)');
    END IF;
    SELECT * INTO u FROM users WHERE lower(email) = lower(v_email);
    IF FOUND THEN
        IF NOT _manages(v_me, u.roles) THEN
            RAISE EXCEPTION 'leads may invite earners and assessors only'
                USING ERRCODE = 'AC403', DETAIL = 'forbidden';
        END IF;
        IF u.disabled_at IS NOT NULL THEN
            RAISE EXCEPTION 'this user is disabled; enable them first'
                USING ERRCODE = 'AC409', DETAIL = 'user_disabled';
        END IF;
        IF v_roles IS NOT NULL AND v_roles IS DISTINCT FROM u.roles THEN
            RAISE EXCEPTION 'a user with email % exists with roles %: change roles with PATCH /v1/users/%',
                            u.email, array_to_string(u.roles, ','), u.id
                USING ERRCODE = 'AC409', DETAIL = 'email_taken';
        END IF;
        v_name := u.name;
        v_roles := u.roles;
        v_org := u.org_id;
    ELSE
        IF v_name IS NULL THEN
            PERFORM _bad('name is required');
        END IF;
        IF v_roles IS NULL THEN
            PERFORM _bad('roles is required');
        END IF;
        IF NOT _manages(v_me, v_roles) THEN
            RAISE EXCEPTION 'leads may invite earners and assessors only'
                USING ERRCODE = 'AC403', DETAIL = 'forbidden';
        END IF;
    END IF;
    IF (SELECT count(*) FROM invitations
         WHERE invited_by = v_me.id AND accepted_at IS NULL AND revoked_at IS NULL
           AND expires_at > now()) >= 1000 THEN
        RAISE EXCEPTION 'you have 1000 pending invitations: revoke some first'
            USING ERRCODE = 'AC422', DETAIL = 'too_many_invitations';
    END IF;
    UPDATE invitations SET revoked_at = now()
     WHERE lower(email) = lower(v_email) AND accepted_at IS NULL AND revoked_at IS NULL;
    INSERT INTO invitations (secret_hash, email, name, roles, org_id, user_id, invited_by,
                             expires_at)
    VALUES (p_secret_hash, coalesce(u.email, v_email), v_name, v_roles, v_org, u.id, v_me.id,
            now() + interval '7 days')
    RETURNING * INTO i;
    INSERT INTO audit_log (actor_id, action, object_type, object_id, detail)
    VALUES (v_me.id, 'invitation.create', 'invitation', i.id,
            jsonb_build_object('roles', v_roles, 'user_id', u.id));
    RETURN _invitation_json(i);
END $$;

-- GET /v1/invitations?status=&page= (newest first, 50 a page): admins see
-- all, leads those for the roles they manage.
CREATE FUNCTION api_invitation_list(p_token text, p_query jsonb) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    v_me users := _auth_role(p_token, '{admin,lead}');
    q jsonb := coalesce(p_query, '{}');
    v_page int := _q_page(q);
    v_status text := q ->> 'status';
    v_rows json[];
BEGIN
    PERFORM _q_unknown(q, '{status,page}');
    IF v_status IS NOT NULL AND v_status NOT IN ('pending','accepted','revoked','expired') THEN
        PERFORM _bad('status must be one of pending, accepted, revoked, expired');
    END IF;
    v_rows := ARRAY(SELECT _invitation_json(i) FROM invitations i
                     WHERE _manages(v_me, i.roles)
                       AND (v_status IS NULL OR _invitation_status(i) = v_status)
                     ORDER BY i.created_at DESC, i.id
                     OFFSET (v_page - 1) * 50 LIMIT 51);
    RETURN json_build_object('invitations', to_json(v_rows[1:50]), 'page', v_page,
                             'per_page', 50, 'has_more', cardinality(v_rows) > 50);
END $$;

-- DELETE /v1/invitations/{id}: a pending invitation stops working.
CREATE FUNCTION api_invitation_revoke(p_token text, p_id uuid) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    v_me users := _auth_role(p_token, '{admin,lead}');
    i invitations;
BEGIN
    SELECT * INTO i FROM invitations WHERE id = p_id FOR UPDATE;
    IF NOT FOUND OR NOT _manages(v_me, i.roles) THEN
        RAISE EXCEPTION 'invitation not found' USING ERRCODE = 'AC404', DETAIL = 'not_found';
    END IF;
    IF i.accepted_at IS NOT NULL THEN
        RAISE EXCEPTION 'this invitation was already accepted: disable the user instead'
            USING ERRCODE = 'AC409', DETAIL = 'invitation_used';
    END IF;
    IF i.revoked_at IS NULL THEN
        UPDATE invitations SET revoked_at = now() WHERE id = i.id;
        INSERT INTO audit_log (actor_id, action, object_type, object_id)
        VALUES (v_me.id, 'invitation.revoke', 'invitation', i.id);
    END IF;
    RETURN NULL;
END $$;

-- The usable invitation with this secret, locked; else 404 with a code that
-- says why (invitation_unknown, invitation_used, invitation_revoked,
-- invitation_expired). Whoever holds the secret may know its state.
CREATE FUNCTION _invitation_by_secret(p_secret_hash text, p_lock boolean) RETURNS invitations
LANGUAGE plpgsql AS $$
DECLARE
    i invitations;
BEGIN
    IF p_lock THEN
        SELECT * INTO i FROM invitations WHERE secret_hash = p_secret_hash FOR UPDATE;
    ELSE
        SELECT * INTO i FROM invitations WHERE secret_hash = p_secret_hash;
    END IF;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'this invitation link is not valid: ask for a new one'
            USING ERRCODE = 'AC404', DETAIL = 'invitation_unknown';
    END IF;
    IF i.accepted_at IS NOT NULL THEN
        RAISE EXCEPTION 'this invitation link was already used: sign in, or ask for a new link'
            USING ERRCODE = 'AC404', DETAIL = 'invitation_used';
    END IF;
    IF i.revoked_at IS NOT NULL THEN
        RAISE EXCEPTION 'this invitation link was withdrawn: ask for a new one'
            USING ERRCODE = 'AC404', DETAIL = 'invitation_revoked';
    END IF;
    IF i.expires_at <= now() THEN
        RAISE EXCEPTION 'this invitation link has expired: ask for a new one'
            USING ERRCODE = 'AC404', DETAIL = 'invitation_expired';
    END IF;
    RETURN i;
END $$;

-- POST /v1/invitations/open {secret} (public): what the invitation page shows.
CREATE FUNCTION api_invitation_open(p_secret_hash text) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    i invitations := _invitation_by_secret(p_secret_hash, false);
BEGIN
    RETURN json_build_object('email', i.email, 'name', i.name, 'roles', i.roles,
                             'org', (SELECT o.name FROM organisations o WHERE o.id = i.org_id),
                             'existing_user', i.user_id IS NOT NULL,
                             'invited_by', (SELECT name FROM users WHERE id = i.invited_by),
                             'expires_at', _ts(i.expires_at));
END $$;

-- Accepts a locked, usable invitation: the user it names, or a new one made
-- from it. Shared by the password page and single sign-on.
CREATE FUNCTION _invitation_accept(i invitations) RETURNS users
LANGUAGE plpgsql AS $$
DECLARE
    u users;
BEGIN
    IF i.user_id IS NOT NULL THEN
        SELECT * INTO u FROM users WHERE id = i.user_id;
    ELSE
        -- an account made for this email after the invitation may have other
        -- roles: the link must not hand it over
        IF EXISTS (SELECT 1 FROM users WHERE lower(email) = lower(i.email)) THEN
            RAISE EXCEPTION 'an account with this email exists now: ask for a new link'
                USING ERRCODE = 'AC409', DETAIL = 'email_taken';
        END IF;
        u := _user_insert(i.email, i.name, i.roles, i.org_id);
    END IF;
    IF u.disabled_at IS NOT NULL THEN
        RAISE EXCEPTION 'this account is disabled; ask an administrator'
            USING ERRCODE = 'AC403', DETAIL = 'account_disabled';
    END IF;
    UPDATE invitations SET accepted_at = now(), user_id = u.id WHERE id = i.id;
    INSERT INTO audit_log (actor_id, action, object_type, object_id, detail)
    VALUES (u.id, 'invitation.accept', 'invitation', i.id, jsonb_build_object('user_id', u.id));
    RETURN u;
END $$;

-- POST /v1/invitations/accept {secret, password} (public): the person sets a
-- password (hashed by the server) and is signed in ({user, session}).
CREATE FUNCTION api_invitation_accept(p_secret_hash text, p_password_hash text,
                                      p_session_hash text, p_old_hash text,
                                      p_idle_seconds int, p_lifetime_seconds int,
                                      p_addr text) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    i invitations := _invitation_by_secret(p_secret_hash, true);
    u users := _invitation_accept(i);
BEGIN
    PERFORM _password_store(u.id, p_password_hash);
    RETURN session_create(u.id, p_session_hash, p_old_hash, 'invitation', p_idle_seconds,
                          p_lifetime_seconds, p_addr);
END $$;

-- For single sign-on (issue 10 item 4): a person signing in for the first time
-- with a verified email. Accepts the pending invitation to that email and
-- returns its user (created from the invitation when new), or NULL when there
-- is none. Raises 403 account_disabled for a disabled user.
CREATE FUNCTION invitation_take_for_email(p_email text) RETURNS users
LANGUAGE plpgsql AS $$
DECLARE
    i invitations;
BEGIN
    SELECT * INTO i FROM invitations
     WHERE lower(email) = lower(p_email) AND accepted_at IS NULL AND revoked_at IS NULL
       AND expires_at > now()
     ORDER BY created_at DESC LIMIT 1
     FOR UPDATE;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    RETURN _invitation_accept(i);
END $$;

-- CLI: accord user invite (the first lead, from the shell). Returns the
-- invitation's id; the CLI makes the secret and prints the link.
CREATE FUNCTION admin_invitation_add(p_email text, p_name text, p_roles text[], p_org text,
                                     p_secret_hash text) RETURNS uuid
LANGUAGE plpgsql AS $$
DECLARE
    i invitations;
    u users;
    v_org uuid;
BEGIN
    IF p_secret_hash IS NULL OR p_secret_hash !~ '^[0-9a-f]{64}$' THEN
        PERFORM _bad('the invitation secret hash must be 64 lower-case hex digits');
    END IF;
    -- the same checks as a new user (the user row itself is made on acceptance)
    IF p_email IS NULL OR length(p_email) > 320 OR p_email !~ '^[^@\s]+@[^@\s]+$' THEN
        PERFORM _bad('email must look like name@example.org (at most 320 characters)');
    END IF;
    SELECT * INTO u FROM users WHERE lower(email) = lower(p_email);
    IF FOUND AND u.disabled_at IS NOT NULL THEN
        RAISE EXCEPTION 'this user is disabled' USING ERRCODE = 'AC409', DETAIL = 'user_disabled';
    END IF;
    IF NOT FOUND THEN
        IF p_roles IS NULL OR cardinality(p_roles) = 0
           OR NOT p_roles <@ '{earner,assessor,expert,lead,admin}'::text[] THEN
            RAISE EXCEPTION 'roles must list some of earner, assessor, expert, lead, admin'
                USING ERRCODE = 'AC422', DETAIL = 'invalid_roles';
        END IF;
        -- like accord user add: the organisation by name, made when new (006)
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
    END IF;
    UPDATE invitations SET revoked_at = now()
     WHERE lower(email) = lower(p_email) AND accepted_at IS NULL AND revoked_at IS NULL;
    INSERT INTO invitations (secret_hash, email, name, roles, org_id, user_id, invited_by,
                             expires_at)
    VALUES (p_secret_hash, coalesce(u.email, p_email), coalesce(u.name, p_name, p_email),
            coalesce(u.roles, ARRAY(SELECT DISTINCT r FROM unnest(p_roles) r ORDER BY 1)),
            coalesce(u.org_id, v_org), u.id, NULL, now() + interval '7 days')
    RETURNING * INTO i;
    INSERT INTO audit_log (actor_id, action, object_type, object_id, detail)
    VALUES (NULL, 'invitation.create', 'invitation', i.id, '{"via":"cli"}');
    RETURN i.id;
END $$;
