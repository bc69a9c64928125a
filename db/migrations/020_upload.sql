-- SPDX-License-Identifier: Apache-2.0
-- 020_upload.sql - a tus upload's SHA-256 advances as its chunks are written
-- (issue 15 item 7), so the last PATCH never reads the whole file again.
--
-- Between PATCHes the hash's state lives here, beside the offset it belongs
-- to, so the next chunk may go through any server, after any restart:
--   hashed_bytes  bytes the state covers: upload_offset rounded down to a
--                 whole 64-byte block (the rest is re-read from the part file)
--   hash_state    SHA-256's chaining value after hashed_bytes (32 bytes,
--                 FIPS 180-4's H(i) as big-endian words); NULL at 0 bytes
-- Uploads begun before this migration have no state: their next chunk
-- hashes what the part file already holds, once.

ALTER TABLE uploads
    ADD COLUMN hashed_bytes bigint NOT NULL DEFAULT 0,
    ADD COLUMN hash_state bytea,
    ADD CONSTRAINT uploads_hash_state_check
        CHECK (hashed_bytes >= 0 AND hashed_bytes % 64 = 0 AND hashed_bytes <= upload_offset
               AND (hash_state IS NULL) = (hashed_bytes = 0)
               AND (hash_state IS NULL OR length(hash_state) = 32));

-- As 003_uploads.sql's, plus the hash's state ("hashed", "hash_state" in hex).
CREATE OR REPLACE FUNCTION api_upload_begin(p_token text, p_id uuid, p_offset bigint,
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
        -- The lease acknowledges nothing: were it lost in a database crash,
        -- the chunk's advance would be refused (409 lease_lost) and the client
        -- asks with HEAD. So its commit does not wait for the WAL's fsync
        -- (one less per chunk); the advance's commit still does, and flushes
        -- this one with it.
        PERFORM set_config('synchronous_commit', 'off', true);
        -- Long enough for a chunk's fsync; a crashed server's lease runs out by itself.
        UPDATE uploads SET lease_id = gen_random_uuid(),
                           lease_until = now() + interval '120 seconds'
         WHERE id = u.id
        RETURNING * INTO u;
    END IF;
    RETURN json_build_object('id', u.id, 'offset', u.upload_offset,
                             'length', u.upload_length, 'lease', u.lease_id,
                             'finish', v_finish, 'sha256', u.sha256,
                             'hashed', u.hashed_bytes,
                             'hash_state', encode(u.hash_state, 'hex'));
END $$;

-- After the chunk [p_from, p_to) is on disk: commits the offset with the
-- hash's state (p_hashed bytes, p_state the chaining value in hex) and drops
-- the lease. p_to = p_from only drops the lease (the write failed). p_sha256
-- is the whole file's hash, required when p_to reaches the length.
DROP FUNCTION api_upload_advance(text, uuid, uuid, bigint, bigint, text);
CREATE FUNCTION api_upload_advance(p_token text, p_id uuid, p_lease uuid, p_from bigint,
                                   p_to bigint, p_sha256 text, p_hashed bigint,
                                   p_state text) RETURNS json
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
    IF p_to > p_from AND NOT (p_hashed IS NOT NULL AND p_hashed % 64 = 0
                              AND p_hashed > p_to - 64 AND p_hashed <= p_to
                              AND (p_hashed = 0) = (p_state IS NULL)
                              AND (p_state IS NULL OR lower(p_state) ~ '^[0-9a-f]{64}$')) THEN
        PERFORM _bad(format('the hash state must cover %s rounded down to 64 bytes, not %s',
                            p_to, p_hashed));
    END IF;
    UPDATE uploads
       SET upload_offset = p_to, lease_id = NULL, lease_until = NULL,
           sha256 = CASE WHEN p_to = upload_length THEN lower(p_sha256) END,
           hashed_bytes = CASE WHEN p_to > p_from THEN p_hashed ELSE hashed_bytes END,
           hash_state = CASE WHEN p_to > p_from THEN decode(p_state, 'hex') ELSE hash_state END,
           updated_at = now()
     WHERE id = u.id
    RETURNING * INTO u;
    RETURN _upload_json(u);
END $$;
