-- SPDX-License-Identifier: Apache-2.0
-- 015_objects.sql - evidence in S3-compatible object storage (issue 13).
--
-- An artifact's bytes are the object sha256/<hex> (POST /v1/artifacts, tus)
-- or, for a presigned multipart upload, uploads/<upload id>: artifacts.object_key.
-- A multipart upload (object_uploads) goes creating -> open -> completing ->
-- done; the server records every part the client reports (object_upload_parts)
-- so that an upload resumes after a dropped connection, and checks the parts
-- against the store before it completes. The artifact row is made only after
-- the server has hashed the completed object: an artifact that can be
-- submitted always has bytes whose SHA-256 accord computed itself.

ALTER TABLE artifacts ADD COLUMN object_key text
    CHECK (object_key ~ '^uploads/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$');

CREATE TABLE object_uploads (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    owner_id        uuid NOT NULL REFERENCES users (id),
    kind            text NOT NULL CHECK (kind IN ('video','plan','reflection','other')),
    media_type      text NOT NULL CHECK (length(media_type) BETWEEN 1 AND 255),
    filename        text CHECK (length(filename) BETWEEN 1 AND 255),
    bytes           bigint NOT NULL CHECK (bytes >= 1),
    part_size       bigint NOT NULL CHECK (part_size >= 1),
    parts           int NOT NULL CHECK (parts BETWEEN 1 AND 10000),
    sha256          text CHECK (sha256 ~ '^[0-9a-f]{64}$'), -- announced by the client, if it did
    store_upload_id text CHECK (length(store_upload_id) BETWEEN 1 AND 255),
    state           text NOT NULL DEFAULT 'creating'
                    CHECK (state IN ('creating','open','completing','done')),
    lease_until     timestamptz, -- 'completing': a server works on it until then
    artifact_id     uuid UNIQUE REFERENCES artifacts (id),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CHECK (parts = (bytes + part_size - 1) / part_size),
    CHECK ((state = 'done') = (artifact_id IS NOT NULL)),
    CHECK (state = 'creating' OR store_upload_id IS NOT NULL)
);
CREATE INDEX object_uploads_owner_idx ON object_uploads (owner_id) WHERE state <> 'done';
CREATE INDEX object_uploads_updated_idx ON object_uploads (updated_at) WHERE state <> 'done';

CREATE TABLE object_upload_parts (
    upload_id   uuid NOT NULL REFERENCES object_uploads (id) ON DELETE CASCADE,
    part_number int NOT NULL CHECK (part_number BETWEEN 1 AND 10000),
    etag        text NOT NULL CHECK (etag ~ '^"?[0-9A-Za-z-]{1,100}"?$'),
    recorded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (upload_id, part_number)
);

-- The object key of a multipart upload.
CREATE FUNCTION _object_upload_key(p_id uuid) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT 'uploads/' || p_id::text
$$;

-- Quotas (009_limits.sql) count unfinished multipart uploads too: in flight
-- and as stored. Same behaviour as 009 otherwise.
CREATE OR REPLACE FUNCTION _upload_allowance(v_me users, p_bytes bigint, p_stored_max bigint,
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
    v_flight := v_flight + (SELECT coalesce(sum(bytes), 0) FROM object_uploads
                             WHERE owner_id = v_me.id AND state <> 'done');
    IF p_in_flight_max IS NOT NULL AND v_flight + p_bytes > p_in_flight_max THEN
        RAISE EXCEPTION 'your unfinished uploads would come to % bytes, over your limit of % bytes in progress; finish them or cancel some (DELETE /v1/uploads/{id} or /v1/object-uploads/{id})',
                        v_flight + p_bytes, p_in_flight_max
            USING ERRCODE = 'AC413', DETAIL = 'quota_exceeded';
    END IF;
    IF p_stored_max IS NOT NULL AND v_stored + v_flight + p_bytes > p_stored_max THEN
        RAISE EXCEPTION 'this upload would bring your stored and unfinished uploads to % bytes, over your quota of % bytes',
                        v_stored + v_flight + p_bytes, p_stored_max
            USING ERRCODE = 'AC413', DETAIL = 'quota_exceeded';
    END IF;
END $$;

-- The content route needs to know which object holds the bytes.
CREATE OR REPLACE FUNCTION api_artifact_content(p_token text, p_id uuid) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    v_me users := _auth(p_token);
    a artifacts := _artifact_readable(v_me, p_id);
BEGIN
    INSERT INTO audit_log (actor_id, action, object_type, object_id, detail)
    VALUES (v_me.id, 'artifact.read', 'artifact', a.id,
            jsonb_build_object('sha256', a.sha256, 'url', a.url));
    RETURN json_build_object('id', a.id, 'sha256', a.sha256, 'media_type', a.media_type,
                             'bytes', a.bytes, 'url', a.url, 'filename', a.filename,
                             'object_key', a.object_key);
END $$;

-- The caller's own upload, locked; 404 when there is none, 403 when it is another's.
CREATE FUNCTION _object_upload_own(v_me users, p_id uuid) RETURNS object_uploads
LANGUAGE plpgsql AS $$
DECLARE
    u object_uploads;
BEGIN
    SELECT * INTO u FROM object_uploads WHERE id = p_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'upload not found' USING ERRCODE = 'AC404', DETAIL = 'not_found';
    END IF;
    IF u.owner_id <> v_me.id THEN
        RAISE EXCEPTION 'this upload belongs to someone else'
            USING ERRCODE = 'AC403', DETAIL = 'forbidden';
    END IF;
    RETURN u;
END $$;

-- Parts, records and completes need the store's upload id: not before the
-- store made the upload (a server that died in between leaves the row to the
-- sweep).
CREATE FUNCTION _object_upload_ready(u object_uploads) RETURNS void
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF u.state = 'creating' THEN
        RAISE EXCEPTION 'this upload is still being created in the store; try again shortly'
            USING ERRCODE = 'AC409', DETAIL = 'upload_not_ready';
    END IF;
END $$;

CREATE FUNCTION _object_upload_json(u object_uploads) RETURNS json
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN json_build_object(
        'id', u.id, 'state', CASE u.state WHEN 'completing' THEN 'open' ELSE u.state END,
        'kind', u.kind, 'media_type', u.media_type, 'filename', u.filename,
        'bytes', u.bytes, 'part_size', u.part_size, 'parts', u.parts, 'sha256', u.sha256,
        'parts_done', (SELECT coalesce(json_agg(json_build_object('part_number', p.part_number,
                                                                  'etag', p.etag)
                                                ORDER BY p.part_number), '[]'::json)
                         FROM object_upload_parts p WHERE p.upload_id = u.id),
        'artifact_id', u.artifact_id,
        'created_at', _ts(u.created_at), 'updated_at', _ts(u.updated_at));
END $$;

-- POST /v1/object-uploads {kind, media_type, bytes, filename?, sha256?}: the
-- row first (authorization, quota, limits), then the server asks the store
-- for a multipart upload and calls object_upload_opened (or _discard).
CREATE FUNCTION api_object_upload_create(p_token text, p_body jsonb, p_part_size bigint,
                                         p_max_bytes bigint, p_stored_max bigint,
                                         p_in_flight_max bigint) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    v_me users := _auth_role(p_token, '{earner,lead}');
    b jsonb := _body(p_body);
    v_kind text := _check_kind(_j_text(b -> 'kind', 'kind', true, 200));
    v_media text := _j_text(b -> 'media_type', 'media_type', true, 255);
    v_filename text := _j_text(b -> 'filename', 'filename', false, 255);
    v_sha text := lower(_j_text(b -> 'sha256', 'sha256', false, 64));
    v_bytes bigint;
    v_open int;
    u object_uploads;
BEGIN
    IF jsonb_typeof(b -> 'bytes') IS DISTINCT FROM 'number'
       OR (b ->> 'bytes')::numeric <> trunc((b ->> 'bytes')::numeric)
       OR (b ->> 'bytes')::numeric < 1 OR (b ->> 'bytes')::numeric > p_max_bytes THEN
        PERFORM _bad(format('bytes must be the file''s size: a whole number from 1 to %s',
                            p_max_bytes));
    END IF;
    v_bytes := (b ->> 'bytes')::bigint;
    IF v_media ~ '[^\x20-\x7e]' THEN
        PERFORM _bad('media_type must be printable ASCII');
    END IF;
    IF v_filename ~ '[\x00-\x1f\x7f]' THEN
        PERFORM _bad('filename must not contain control characters');
    END IF;
    IF v_sha IS NOT NULL AND v_sha !~ '^[0-9a-f]{64}$' THEN
        PERFORM _bad('sha256 must be 64 hex digits (the SHA-256 of the whole file), or absent');
    END IF;
    IF (v_bytes + p_part_size - 1) / p_part_size > 10000 THEN
        PERFORM _bad(format('a file of %s bytes needs more than 10000 parts of %s bytes',
                            v_bytes, p_part_size));
    END IF;
    -- a bound on what one person can have open at once
    SELECT count(*) INTO v_open FROM object_uploads
     WHERE owner_id = v_me.id AND state <> 'done';
    IF v_open >= 20 THEN
        RAISE EXCEPTION 'you have 20 unfinished uploads; finish or cancel one first'
            USING ERRCODE = 'AC429', DETAIL = 'too_many_uploads';
    END IF;
    PERFORM _upload_allowance(v_me, v_bytes, p_stored_max, p_in_flight_max);
    INSERT INTO object_uploads (owner_id, kind, media_type, filename, bytes, part_size, parts,
                                sha256)
    VALUES (v_me.id, v_kind, v_media, v_filename, v_bytes, p_part_size,
            ((v_bytes + p_part_size - 1) / p_part_size)::int, v_sha)
    RETURNING * INTO u;
    RETURN json_build_object('id', u.id, 'object_key', _object_upload_key(u.id),
                             'media_type', u.media_type);
END $$;

-- The store made the multipart upload: the client may now ask for part URLs.
CREATE FUNCTION object_upload_opened(p_id uuid, p_store_upload_id text) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    u object_uploads;
BEGIN
    UPDATE object_uploads SET state = 'open', store_upload_id = p_store_upload_id,
                              updated_at = now()
     WHERE id = p_id AND state = 'creating'
    RETURNING * INTO u;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'upload not found' USING ERRCODE = 'AC404', DETAIL = 'not_found';
    END IF;
    INSERT INTO audit_log (actor_id, action, object_type, object_id, detail)
    VALUES (u.owner_id, 'object_upload.create', 'object_upload', u.id,
            jsonb_build_object('bytes', u.bytes, 'parts', u.parts));
    RETURN _object_upload_json(u);
END $$;

-- The store could not make it (down): nothing of it is kept.
CREATE FUNCTION object_upload_discard(p_id uuid) RETURNS void
LANGUAGE sql AS $$
    DELETE FROM object_uploads WHERE id = p_id AND state <> 'done'
$$;

CREATE FUNCTION api_object_upload_get(p_token text, p_id uuid) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    v_me users := _auth(p_token);
BEGIN
    RETURN _object_upload_json(_object_upload_own(v_me, p_id));
END $$;

-- POST /v1/object-uploads/{id}/part-urls {part_numbers: [..]}: what the server
-- needs to presign PUTs of these parts of the caller's own open upload.
CREATE FUNCTION api_object_upload_part_urls(p_token text, p_id uuid, p_body jsonb) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    v_me users := _auth(p_token);
    u object_uploads := _object_upload_own(v_me, p_id);
    b jsonb := _body(p_body);
    v_numbers int[];
BEGIN
    PERFORM _object_upload_ready(u);
    IF u.state = 'done' THEN
        RAISE EXCEPTION 'this upload is complete: it is artifact %', u.artifact_id
            USING ERRCODE = 'AC409', DETAIL = 'upload_complete';
    END IF;
    IF jsonb_typeof(b -> 'part_numbers') IS DISTINCT FROM 'array'
       OR jsonb_array_length(b -> 'part_numbers') NOT BETWEEN 1 AND 100 THEN
        PERFORM _bad('part_numbers must be a list of 1 to 100 part numbers');
    END IF;
    IF EXISTS (SELECT 1 FROM jsonb_array_elements(b -> 'part_numbers') e
                WHERE jsonb_typeof(e) <> 'number' OR e::numeric <> trunc(e::numeric)
                   OR e::numeric < 1 OR e::numeric > u.parts) THEN
        PERFORM _bad(format('part numbers go from 1 to %s for this upload', u.parts));
    END IF;
    SELECT array_agg(DISTINCT e::text::int ORDER BY e::text::int) INTO v_numbers
      FROM jsonb_array_elements(b -> 'part_numbers') e;
    UPDATE object_uploads SET updated_at = now() WHERE id = u.id;
    RETURN json_build_object(
        'object_key', _object_upload_key(u.id), 'store_upload_id', u.store_upload_id,
        'parts', (SELECT json_agg(json_build_object(
                             'part_number', n,
                             'bytes', CASE WHEN n < u.parts THEN u.part_size
                                           ELSE u.bytes - (u.parts - 1) * u.part_size END)
                         ORDER BY n)
                    FROM unnest(v_numbers) n));
END $$;

-- PUT /v1/object-uploads/{id}/parts/{n} {etag}: the client sent part n and
-- the store answered with this ETag. Recorded (again, if sent again).
CREATE FUNCTION api_object_upload_part_done(p_token text, p_id uuid, p_body jsonb) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    v_me users := _auth(p_token);
    u object_uploads := _object_upload_own(v_me, p_id);
    b jsonb := _body(p_body);
    v_n int := _j_int(b -> 'part_number', 'part_number', true);
    v_etag text := _j_text(b -> 'etag', 'etag', true, 102);
BEGIN
    PERFORM _object_upload_ready(u);
    IF u.state = 'done' THEN
        RAISE EXCEPTION 'this upload is complete: it is artifact %', u.artifact_id
            USING ERRCODE = 'AC409', DETAIL = 'upload_complete';
    END IF;
    IF v_n < 1 OR v_n > u.parts THEN
        PERFORM _bad(format('part_number goes from 1 to %s for this upload', u.parts));
    END IF;
    IF v_etag !~ '^"?[0-9A-Za-z-]{1,100}"?$' THEN
        PERFORM _bad('etag must be the ETag header the store answered the part''s PUT with');
    END IF;
    INSERT INTO object_upload_parts (upload_id, part_number, etag)
    VALUES (u.id, v_n, v_etag)
    ON CONFLICT (upload_id, part_number) DO UPDATE SET etag = EXCLUDED.etag, recorded_at = now();
    UPDATE object_uploads SET updated_at = now() WHERE id = u.id;
    RETURN json_build_object('part_number', v_n,
                             'parts_done', (SELECT count(*) FROM object_upload_parts
                                             WHERE upload_id = u.id));
END $$;

-- POST /v1/object-uploads/{id}/complete, first step: every part recorded?
-- Then the upload is the caller's server's for p_lease seconds while it checks
-- the parts against the store, completes it there and hashes the object.
CREATE FUNCTION api_object_upload_complete_begin(p_token text, p_id uuid, p_lease bigint)
RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    v_me users := _auth(p_token);
    u object_uploads := _object_upload_own(v_me, p_id);
    v_missing int[];
BEGIN
    PERFORM _object_upload_ready(u);
    IF u.state = 'done' THEN
        RAISE EXCEPTION 'this upload is complete: it is artifact %', u.artifact_id
            USING ERRCODE = 'AC409', DETAIL = 'upload_complete';
    END IF;
    IF u.state = 'completing' AND u.lease_until > now() THEN
        RAISE EXCEPTION 'this upload is being completed; try again shortly'
            USING ERRCODE = 'AC423', DETAIL = 'upload_locked';
    END IF;
    SELECT array_agg(n ORDER BY n) INTO v_missing
      FROM generate_series(1, u.parts) n
     WHERE NOT EXISTS (SELECT 1 FROM object_upload_parts p
                        WHERE p.upload_id = u.id AND p.part_number = n);
    IF v_missing IS NOT NULL THEN
        RAISE EXCEPTION 'parts % of % are not recorded yet: send them (PUT to their URLs, then record each) and complete again',
                        array_to_string(v_missing[1:20], ', ')
                        || CASE WHEN cardinality(v_missing) > 20 THEN ', ...' ELSE '' END,
                        u.parts
            USING ERRCODE = 'AC409', DETAIL = 'missing_parts';
    END IF;
    UPDATE object_uploads SET state = 'completing', lease_until = now() + make_interval(secs => p_lease),
                              updated_at = now()
     WHERE id = u.id;
    RETURN json_build_object(
        'object_key', _object_upload_key(u.id), 'store_upload_id', u.store_upload_id,
        'bytes', u.bytes, 'part_size', u.part_size, 'parts', u.parts, 'sha256', u.sha256,
        'parts_done', (SELECT json_agg(json_build_object('part_number', p.part_number,
                                                         'etag', p.etag)
                                       ORDER BY p.part_number)
                         FROM object_upload_parts p WHERE p.upload_id = u.id));
END $$;

-- Completing failed: back to open, forgetting the parts the store does not
-- hold as recorded (p_bad_parts: the client sends them again). p_gone: the
-- store lost the whole upload (aborted or expired there): the row goes.
CREATE FUNCTION object_upload_complete_failed(p_id uuid, p_bad_parts int[], p_gone boolean)
RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF p_gone THEN
        DELETE FROM object_uploads WHERE id = p_id AND state <> 'done';
        RETURN;
    END IF;
    DELETE FROM object_upload_parts WHERE upload_id = p_id AND part_number = ANY(p_bad_parts);
    UPDATE object_uploads SET state = 'open', lease_until = NULL, updated_at = now()
     WHERE id = p_id AND state = 'completing';
END $$;

-- The object is complete in the store and accord hashed it: the artifact.
CREATE FUNCTION api_object_upload_complete_finish(p_token text, p_id uuid, p_sha256 text,
                                                  p_bytes bigint) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    v_me users := _auth(p_token);
    u object_uploads := _object_upload_own(v_me, p_id);
    a artifacts;
BEGIN
    IF u.state <> 'completing' THEN
        RAISE EXCEPTION 'this upload is not being completed (state %)', u.state
            USING ERRCODE = 'AC409', DETAIL = 'upload_state';
    END IF;
    IF p_bytes <> u.bytes THEN
        PERFORM _bad(format('the stored object has %s bytes, the upload announced %s',
                            p_bytes, u.bytes), 'size_mismatch');
    END IF;
    INSERT INTO artifacts (owner_id, kind, media_type, filename, bytes, sha256, object_key)
    VALUES (v_me.id, u.kind, u.media_type, u.filename, p_bytes, lower(p_sha256),
            _object_upload_key(u.id))
    RETURNING * INTO a;
    UPDATE object_uploads SET state = 'done', artifact_id = a.id, lease_until = NULL,
                              updated_at = now()
     WHERE id = u.id;
    DELETE FROM object_upload_parts WHERE upload_id = u.id;
    INSERT INTO audit_log (actor_id, action, object_type, object_id, detail)
    VALUES (v_me.id, 'artifact.upload', 'artifact', a.id,
            jsonb_build_object('sha256', a.sha256, 'bytes', a.bytes, 'object_upload', u.id));
    RETURN _artifact_json(a);
END $$;

-- DELETE /v1/object-uploads/{id}: an unfinished upload goes; the server then
-- aborts it in the store (its parts' bytes go there too).
CREATE FUNCTION api_object_upload_delete(p_token text, p_id uuid) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    v_me users := _auth(p_token);
    u object_uploads := _object_upload_own(v_me, p_id);
BEGIN
    IF u.state = 'done' THEN
        RAISE EXCEPTION 'this upload is complete: it is artifact %', u.artifact_id
            USING ERRCODE = 'AC409', DETAIL = 'upload_complete';
    END IF;
    IF u.state = 'completing' AND u.lease_until > now() THEN
        RAISE EXCEPTION 'this upload is being completed; try again shortly'
            USING ERRCODE = 'AC423', DETAIL = 'upload_locked';
    END IF;
    DELETE FROM object_uploads WHERE id = u.id;
    INSERT INTO audit_log (actor_id, action, object_type, object_id, detail)
    VALUES (v_me.id, 'object_upload.delete', 'object_upload', u.id,
            jsonb_build_object('bytes', u.bytes));
    RETURN json_build_object('object_key', _object_upload_key(u.id),
                             'store_upload_id', u.store_upload_id);
END $$;

-- Unfinished multipart uploads untouched for p_seconds (--upload-expiry) go,
-- as tus uploads do (009's upload_sweep); the server then aborts them in the
-- store. Audited; at most 500 a call.
CREATE FUNCTION object_upload_sweep(p_seconds bigint) RETURNS json
LANGUAGE sql AS $$
    WITH gone AS (
        DELETE FROM object_uploads
         WHERE id IN (SELECT id FROM object_uploads
                       WHERE state <> 'done'
                         AND updated_at < now() - make_interval(secs => p_seconds)
                         AND (lease_until IS NULL OR lease_until < now())
                       ORDER BY updated_at
                       LIMIT 500
                         FOR UPDATE SKIP LOCKED)
        RETURNING id, owner_id, bytes, store_upload_id),
    audited AS (
        INSERT INTO audit_log (actor_id, action, object_type, object_id, detail)
        SELECT NULL, 'object_upload.expire', 'object_upload', id,
               jsonb_build_object('owner_id', owner_id, 'bytes', bytes)
          FROM gone)
    SELECT coalesce(json_agg(json_build_object('object_key', _object_upload_key(id),
                                               'store_upload_id', store_upload_id)),
                    '[]'::json)
      FROM gone WHERE store_upload_id IS NOT NULL
$$;

-- Before a submission or a resubmission under ACCORD_STORAGE=s3: the objects
-- holding the caller's own listed artifacts, so the server can check they
-- are still in the store before the submission is made (409
-- evidence_missing otherwise, nothing made). Validation and authorization of
-- the body stay with the call that follows; a malformed body gives [].
CREATE FUNCTION api_artifacts_stored(p_token text, p_body jsonb) RETURNS json
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_me users := _auth(p_token);
    v_ids uuid[];
BEGIN
    IF p_body IS NULL OR jsonb_typeof(p_body) <> 'object'
       OR jsonb_typeof(p_body -> 'artifact_ids') IS DISTINCT FROM 'array'
       OR jsonb_array_length(p_body -> 'artifact_ids') > 100
       OR EXISTS (SELECT 1 FROM jsonb_array_elements(p_body -> 'artifact_ids') e
                   WHERE jsonb_typeof(e) <> 'string' OR NOT _is_uuid(e #>> '{}')) THEN
        RETURN '[]'::json;
    END IF;
    SELECT array_agg((e #>> '{}')::uuid) INTO v_ids
      FROM jsonb_array_elements(p_body -> 'artifact_ids') e;
    RETURN (SELECT coalesce(json_agg(json_build_object('id', a.id, 'sha256', a.sha256,
                                                       'object_key', a.object_key,
                                                       'bytes', a.bytes)), '[]'::json)
              FROM artifacts a
             WHERE a.id = ANY(v_ids) AND a.owner_id = v_me.id AND a.sha256 IS NOT NULL);
END $$;
