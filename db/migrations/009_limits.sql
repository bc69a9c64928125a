-- 009_limits: the server's auth gate (issue 7).
--
-- The server checks a credential before it parses or forwards a request body
-- (server/authgate.h): auth_lookup() says whose it is, and auth_changed()
-- tells every server process to forget what it cached about credentials the
-- moment one is revoked or disabled. The API functions still authenticate and
-- authorize every call themselves (_auth, _auth_role).

-- The user a credential belongs to, or NULL when it is unknown, revoked,
-- expired, idle too long or its user disabled. p_kind names the credential
-- kind ('bearer', or 'session' for a cookie session, 007_people), p_hash is
-- the hex SHA-256 of its secret. The same rules as _auth() (007_people).
CREATE FUNCTION auth_lookup(p_kind text, p_hash text) RETURNS uuid
LANGUAGE sql STABLE AS $$
    SELECT t.user_id
      FROM tokens t JOIN users u ON u.id = t.user_id
     WHERE p_kind = 'bearer' AND t.token_hash = p_hash AND t.revoked_at IS NULL
       AND (t.expires_at IS NULL OR t.expires_at > now()) AND u.disabled_at IS NULL
    UNION ALL
    SELECT s.user_id
      FROM sessions s JOIN users u ON u.id = s.user_id
     WHERE p_kind = 'session' AND s.secret_hash = p_hash AND s.expires_at > now()
       AND s.last_seen_at + make_interval(secs => s.idle_seconds) > now()
       AND u.disabled_at IS NULL
$$;

-- Call from any SQL that revokes, expires or disables a credential (or a user):
-- every server's cache is emptied when the transaction commits.
CREATE FUNCTION auth_changed(p_kind text, p_hash text) RETURNS void
LANGUAGE sql AS $$
    SELECT pg_notify('accord_auth', p_kind || ':' || coalesce(p_hash, ''))
$$;

CREATE FUNCTION _tokens_auth_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM auth_changed('bearer', OLD.token_hash);
    RETURN NULL;
END $$;

CREATE TRIGGER tokens_auth_changed AFTER UPDATE OR DELETE ON tokens
    FOR EACH ROW EXECUTE FUNCTION _tokens_auth_changed();

-- After an upload's insert failed, the server removes the file it wrote unless
-- some artifact or finished upload has the same bytes (the store is
-- content-addressed: identical uploads share one file).
CREATE FUNCTION artifact_file_unused(p_sha256 text) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT NOT EXISTS (SELECT 1 FROM artifacts WHERE sha256 = p_sha256)
       AND NOT EXISTS (SELECT 1 FROM uploads WHERE sha256 = p_sha256)
$$;
