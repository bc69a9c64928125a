-- 009_limits: the server's auth gate (issue 7).
--
-- The server checks a credential before it parses or forwards a request body
-- (server/authgate.h): auth_lookup() says whose it is, and auth_changed()
-- tells every server process to forget what it cached about credentials the
-- moment one is revoked or disabled. The API functions still authenticate and
-- authorize every call themselves (_auth, _auth_role).

-- The user a credential belongs to, or NULL when it is unknown, revoked or
-- expired. p_kind names the credential kind ('bearer'; cookie sessions add
-- theirs), p_hash is the hex SHA-256 of its secret.
CREATE FUNCTION auth_lookup(p_kind text, p_hash text) RETURNS uuid
LANGUAGE sql STABLE AS $$
    SELECT t.user_id
      FROM tokens t
     WHERE p_kind = 'bearer' AND t.token_hash = p_hash AND t.revoked_at IS NULL
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
