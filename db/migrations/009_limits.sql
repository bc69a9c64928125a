-- SPDX-License-Identifier: Apache-2.0
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

-- Quotas (issue 7): what one user may keep and have pending. The server passes
-- its settings (--quota-bytes, --quota-in-flight). "Stored" counts the user's
-- artifacts with bytes plus unfinished uploads (they become artifacts);
-- "in flight" counts unfinished uploads' announced lengths.
CREATE FUNCTION _upload_allowance(v_me users, p_bytes bigint, p_stored_max bigint,
                                  p_in_flight_max bigint) RETURNS void
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_stored bigint;
    v_flight bigint;
BEGIN
    IF p_bytes IS NULL OR p_bytes < 0 THEN
        PERFORM _bad('the upload size must be a number of bytes >= 0');
    END IF;
    SELECT coalesce(sum(bytes), 0) INTO v_stored
      FROM artifacts WHERE owner_id = v_me.id AND sha256 IS NOT NULL;
    SELECT coalesce(sum(upload_length), 0) INTO v_flight
      FROM uploads WHERE owner_id = v_me.id AND artifact_id IS NULL;
    IF p_in_flight_max IS NOT NULL AND v_flight + p_bytes > p_in_flight_max THEN
        RAISE EXCEPTION 'your unfinished uploads would come to % bytes, over your limit of % bytes in progress; finish them or cancel some (DELETE /v1/uploads/{id})',
                        v_flight + p_bytes, p_in_flight_max
            USING ERRCODE = 'AC413', DETAIL = 'quota_exceeded';
    END IF;
    IF p_stored_max IS NOT NULL AND v_stored + v_flight + p_bytes > p_stored_max THEN
        RAISE EXCEPTION 'this upload would bring your stored and unfinished uploads to % bytes, over your quota of % bytes',
                        v_stored + v_flight + p_bytes, p_stored_max
            USING ERRCODE = 'AC413', DETAIL = 'quota_exceeded';
    END IF;
END $$;

-- POST /v1/artifacts before its bytes are written: may this user upload this
-- kind, and do p_bytes more fit the quota? (Replaces api_artifact_precheck.)
CREATE FUNCTION api_artifact_allowance(p_token text, p_kind text, p_bytes bigint,
                                       p_stored_max bigint) RETURNS json
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_me users := _auth_role(p_token, '{earner,lead}');
BEGIN
    PERFORM _check_kind(p_kind, 'X-Artifact-Kind');
    PERFORM _upload_allowance(v_me, p_bytes, p_stored_max, NULL);
    RETURN json_build_object('user_id', v_me.id);
END $$;

-- POST /v1/uploads before the upload is created.
CREATE FUNCTION api_upload_allowance(p_token text, p_length bigint, p_stored_max bigint,
                                     p_in_flight_max bigint) RETURNS json
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_me users := _auth_role(p_token, '{earner}');
BEGIN
    PERFORM _upload_allowance(v_me, p_length, p_stored_max, p_in_flight_max);
    RETURN json_build_object('user_id', v_me.id);
END $$;

-- tus termination: DELETE /v1/uploads/{id}. An unfinished upload goes (the
-- server then removes its part file); a finished one is an artifact now (409).
CREATE FUNCTION api_upload_delete(p_token text, p_id uuid) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    v_me users := _auth_role(p_token, '{earner}');
    u uploads := _upload_own(v_me, p_id, true);
BEGIN
    IF u.artifact_id IS NOT NULL THEN
        RAISE EXCEPTION 'this upload is complete: it is artifact %', u.artifact_id
            USING ERRCODE = 'AC409', DETAIL = 'upload_complete';
    END IF;
    IF u.lease_until > now() THEN
        RAISE EXCEPTION 'a PATCH of this upload is being written; try again shortly'
            USING ERRCODE = 'AC423', DETAIL = 'upload_locked';
    END IF;
    DELETE FROM uploads WHERE id = u.id;
    INSERT INTO audit_log (actor_id, action, object_type, object_id, detail)
    VALUES (v_me.id, 'upload.delete', 'upload', u.id,
            jsonb_build_object('offset', u.upload_offset, 'length', u.upload_length));
    RETURN NULL;
END $$;

-- tus expiration: unfinished uploads untouched for p_seconds go, at most 500 a
-- call, skipping any being written. Returns their ids (the server removes the
-- part files).
CREATE FUNCTION upload_sweep(p_seconds bigint) RETURNS json
LANGUAGE sql AS $$
    WITH gone AS (
        DELETE FROM uploads
         WHERE id IN (SELECT id FROM uploads
                       WHERE artifact_id IS NULL
                         AND updated_at < now() - make_interval(secs => p_seconds)
                         AND (lease_until IS NULL OR lease_until < now())
                       ORDER BY updated_at
                       LIMIT 500
                         FOR UPDATE SKIP LOCKED)
        RETURNING id, owner_id, upload_offset, upload_length),
    audited AS (
        INSERT INTO audit_log (actor_id, action, object_type, object_id, detail)
        SELECT NULL, 'upload.expire', 'upload', id,
               jsonb_build_object('owner_id', owner_id, 'offset', upload_offset,
                                  'length', upload_length)
          FROM gone)
    SELECT coalesce(json_agg(id), '[]'::json) FROM gone
$$;
