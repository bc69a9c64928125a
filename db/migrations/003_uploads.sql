-- SPDX-License-Identifier: Apache-2.0
-- 003_uploads.sql - resumable uploads (tus 1.0 core + creation).
--
-- A large video arrives as chunks, each no larger than the server's body
-- limit. The server writes a chunk at its offset into <data-dir>/uploads/
-- <id>.part and fsyncs it, and only then advances upload_offset here, so the
-- offset never counts bytes that are not on disk. Flow of one PATCH:
--
--   api_upload_begin    authorize, check the offset, take a short write lease
--                       (a second PATCH of the same upload meanwhile gets 423)
--   (disk)              pwrite + fsync the chunk; on the last one hash the file
--   api_upload_advance  commit the new offset (and, when complete, the hash),
--                       drop the lease; a lost lease or moved offset is 409
--   (disk)              move the part into the content-addressed store
--   api_upload_finish   create the artifact (api_artifact_upload), link it
--
-- The hash is recorded before the part file moves, so when the last step
-- fails (database down) a retried PATCH can finish from the store alone.

-- The uploads table is in 001_schema.sql.

CREATE FUNCTION _upload_json(u uploads) RETURNS json
LANGUAGE sql STABLE AS $$
    SELECT json_build_object('id', u.id, 'offset', u.upload_offset, 'length', u.upload_length,
                             'kind', u.kind, 'media_type', u.media_type,
                             'filename', u.filename, 'artifact_id', u.artifact_id,
                             'created_at', _ts(u.created_at), 'updated_at', _ts(u.updated_at))
$$;

-- The caller's own upload (row-locked when p_lock). 404 unknown, 403 someone else's.
CREATE FUNCTION _upload_own(v_me users, p_id uuid, p_lock boolean) RETURNS uploads
LANGUAGE plpgsql AS $$
DECLARE
    u uploads;
BEGIN
    IF p_lock THEN
        SELECT * INTO u FROM uploads WHERE id = p_id FOR UPDATE;
    ELSE
        SELECT * INTO u FROM uploads WHERE id = p_id;
    END IF;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'upload not found' USING ERRCODE = 'AC404', DETAIL = 'not_found';
    END IF;
    IF u.owner_id <> v_me.id THEN
        RAISE EXCEPTION 'this upload belongs to someone else'
            USING ERRCODE = 'AC403', DETAIL = 'forbidden';
    END IF;
    RETURN u;
END $$;

-- The size limit (Tus-Max-Size) is the server's and checked there.
CREATE FUNCTION api_upload_create(p_token text, p_kind text, p_media_type text,
                                  p_filename text, p_length bigint) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    v_me users := _auth_role(p_token, '{earner}');
    u uploads;
BEGIN
    PERFORM _check_kind(p_kind, 'Upload-Metadata kind');
    p_media_type := coalesce(nullif(p_media_type, ''), 'application/octet-stream');
    IF length(p_media_type) > 255 THEN
        PERFORM _bad('Upload-Metadata filetype must be at most 255 characters');
    END IF;
    p_filename := nullif(p_filename, '');
    IF length(p_filename) > 255 THEN
        PERFORM _bad('Upload-Metadata filename must be at most 255 characters');
    END IF;
    IF p_length IS NULL OR p_length < 1 THEN
        PERFORM _bad('Upload-Length must be a number of bytes >= 1');
    END IF;
    INSERT INTO uploads (owner_id, kind, media_type, filename, upload_length)
    VALUES (v_me.id, p_kind, p_media_type, p_filename, p_length)
    RETURNING * INTO u;
    INSERT INTO audit_log (actor_id, action, object_type, object_id, detail)
    VALUES (v_me.id, 'upload.create', 'upload', u.id,
            jsonb_build_object('length', p_length, 'kind', p_kind));
    RETURN _upload_json(u);
END $$;

CREATE FUNCTION api_upload_get(p_token text, p_id uuid) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    v_me users := _auth_role(p_token, '{earner}');
BEGIN
    RETURN _upload_json(_upload_own(v_me, p_id, false));
END $$;

-- Before a chunk of p_len bytes is written at p_offset. Returns the upload
-- plus "lease" (pass it to api_upload_advance) and "finish": true when all
-- bytes are already in but the artifact was not made (retry the last step).
CREATE FUNCTION api_upload_begin(p_token text, p_id uuid, p_offset bigint,
                                 p_len bigint) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    v_me users := _auth_role(p_token, '{earner}');
    u uploads := _upload_own(v_me, p_id, true);
    v_finish boolean := false;
BEGIN
    IF u.artifact_id IS NOT NULL THEN
        RAISE EXCEPTION 'this upload is complete: it is artifact %', u.artifact_id
            USING ERRCODE = 'AC409', DETAIL = 'upload_complete';
    END IF;
    IF p_offset IS NULL OR p_len IS NULL OR p_len < 0 THEN
        PERFORM _bad('Upload-Offset and the chunk size must be numbers of bytes >= 0');
    END IF;
    IF p_offset <> u.upload_offset THEN
        RAISE EXCEPTION 'Upload-Offset is %, but the server has % bytes of this upload; ask with HEAD and continue from there',
                        p_offset, u.upload_offset
            USING ERRCODE = 'AC409', DETAIL = 'offset_mismatch';
    END IF;
    IF p_offset + p_len > u.upload_length THEN
        PERFORM _bad(format('the chunk would end at byte %s, past Upload-Length %s',
                            p_offset + p_len, u.upload_length), 'length_exceeded');
    END IF;
    IF u.upload_offset = u.upload_length THEN
        v_finish := true;
    ELSIF p_len > 0 THEN
        IF u.lease_until > now() THEN
            RAISE EXCEPTION 'another PATCH of this upload is being written; try again shortly'
                USING ERRCODE = 'AC423', DETAIL = 'upload_locked';
        END IF;
        -- Long enough for a chunk's fsync and the final hash; a crashed
        -- server's lease runs out by itself.
        UPDATE uploads SET lease_id = gen_random_uuid(),
                           lease_until = now() + interval '120 seconds'
         WHERE id = u.id
        RETURNING * INTO u;
    END IF;
    RETURN json_build_object('id', u.id, 'offset', u.upload_offset,
                             'length', u.upload_length, 'lease', u.lease_id,
                             'finish', v_finish, 'sha256', u.sha256);
END $$;

-- After the chunk [p_from, p_to) is on disk: commits the offset and drops the
-- lease. p_to = p_from only drops the lease (the write failed). p_sha256 is
-- the whole file's hash, required when p_to reaches the length.
CREATE FUNCTION api_upload_advance(p_token text, p_id uuid, p_lease uuid, p_from bigint,
                                   p_to bigint, p_sha256 text) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    v_me users := _auth_role(p_token, '{earner}');
    u uploads := _upload_own(v_me, p_id, true);
BEGIN
    IF p_lease IS NULL OR u.lease_id IS DISTINCT FROM p_lease OR u.upload_offset <> p_from THEN
        RAISE EXCEPTION 'this chunk took too long and another PATCH took its place; ask with HEAD and continue from there'
            USING ERRCODE = 'AC409', DETAIL = 'lease_lost';
    END IF;
    IF p_to IS NULL OR p_to < p_from OR p_to > u.upload_length THEN
        PERFORM _bad(format('the new offset %s is outside %s..%s', p_to, p_from, u.upload_length));
    END IF;
    IF p_to = u.upload_length AND (p_sha256 IS NULL OR lower(p_sha256) !~ '^[0-9a-f]{64}$') THEN
        PERFORM _bad('sha256 must be 64 hex digits');
    END IF;
    UPDATE uploads
       SET upload_offset = p_to, lease_id = NULL, lease_until = NULL,
           sha256 = CASE WHEN p_to = upload_length THEN lower(p_sha256) END,
           updated_at = now()
     WHERE id = u.id
    RETURNING * INTO u;
    RETURN _upload_json(u);
END $$;

-- The file is in the store: creates the artifact exactly as a one-shot
-- upload does (same checks, same audit row). Idempotent: a finished upload
-- answers with its artifact.
CREATE FUNCTION api_upload_finish(p_token text, p_id uuid, p_sha256 text) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    v_me users := _auth_role(p_token, '{earner}');
    u uploads := _upload_own(v_me, p_id, true);
    v_artifact json;
BEGIN
    IF u.artifact_id IS NOT NULL THEN
        RETURN _upload_json(u);
    END IF;
    IF u.sha256 IS NULL THEN
        RAISE EXCEPTION 'the upload has % of % bytes', u.upload_offset, u.upload_length
            USING ERRCODE = 'AC409', DETAIL = 'upload_incomplete';
    END IF;
    IF lower(p_sha256) IS DISTINCT FROM u.sha256 THEN
        -- the file changed between the last chunk and the move: a server bug (500)
        RAISE EXCEPTION 'upload %: stored sha256 % differs from the recorded %',
                        u.id, p_sha256, u.sha256;
    END IF;
    v_artifact := api_artifact_upload(p_token, u.kind, u.media_type, u.filename,
                                      u.upload_length, u.sha256);
    UPDATE uploads SET artifact_id = (v_artifact ->> 'id')::uuid, updated_at = now()
     WHERE id = u.id
    RETURNING * INTO u;
    INSERT INTO audit_log (actor_id, action, object_type, object_id, detail)
    VALUES (v_me.id, 'upload.finish', 'upload', u.id,
            jsonb_build_object('artifact_id', u.artifact_id, 'bytes', u.upload_length));
    RETURN _upload_json(u);
END $$;
