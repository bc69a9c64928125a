-- SPDX-License-Identifier: Apache-2.0
-- 023_grant: evidence read grants a server may reuse for a moment (issue 15).
--
-- A server keeps an evidence read's authorization for a moment and reuses
-- it for the reader's further ranges without a round trip (server/read_grant.h:
-- at most 2 s, dropped at once by any write through that server, any
-- accord_auth notification and any change its live catch-up sees). Both
-- evidence read functions now also say how long the clock alone keeps the
-- reader's right (grant_ms), so that a right which lapses by itself — a
-- review lease — is never reused past its end:
--   the owner, a lead, the assessor of an open calibration session showing
--     it: NULL (nothing but time-less changes end it: the server's cap);
--   an assessor holding a review lease on it: the lease's remaining time.
-- 021's api_artifact_content (audit_ms) and api_artifact_reread, carried
-- forward, plus grant_ms.

-- How long (ms) the clock alone keeps v_me's right to read a (NULL: until
-- something changes; 0: no right at all, which _artifact_readable refuses).
-- The same three ways in as 006's _artifact_readable.
CREATE FUNCTION _artifact_grant_ms(v_me users, a artifacts) RETURNS bigint
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_lease timestamptz;
BEGIN
    IF a.owner_id = v_me.id OR 'lead' = ANY(v_me.roles) THEN
        RETURN NULL;
    END IF;
    IF EXISTS (SELECT 1
                 FROM anchor_artifacts aa
                 JOIN calibration_items ci ON ci.anchor_id = aa.anchor_id
                 JOIN calibration_sessions cs ON cs.id = ci.session_id
                WHERE aa.artifact_id = a.id AND cs.assessor_id = v_me.id
                  AND cs.status = 'open') THEN
        RETURN NULL;
    END IF;
    SELECT max(r.lease_expires_at) INTO v_lease
      FROM submission_artifacts sa
      JOIN reviews r ON r.submission_id = sa.submission_id
      JOIN submissions s ON s.id = r.submission_id AND s.current_review_id = r.id
     WHERE sa.artifact_id = a.id AND r.assessor_id = v_me.id
       AND r.status = 'active' AND r.lease_expires_at > now();
    RETURN coalesce(greatest(floor(extract(epoch FROM v_lease - now()) * 1000)::bigint, 0), 0);
END $$;

CREATE OR REPLACE FUNCTION api_artifact_content(p_token text, p_id uuid) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    v_me users := _auth(p_token);
    a artifacts := _artifact_readable(v_me, p_id);
    v_at timestamptz;
BEGIN
    INSERT INTO audit_log (actor_id, action, object_type, object_id, detail)
    VALUES (v_me.id, 'artifact.read', 'artifact', a.id,
            jsonb_build_object('sha256', a.sha256, 'url', a.url));
    SELECT max(l.at) INTO v_at
      FROM audit_log l
     WHERE l.object_id = a.id AND l.action = 'artifact.read' AND l.actor_id = v_me.id
       AND l.at > now() - interval '1 minute';
    RETURN json_build_object('id', a.id, 'sha256', a.sha256, 'media_type', a.media_type,
                             'bytes', a.bytes, 'url', a.url, 'filename', a.filename,
                             'object_key', a.object_key,
                             'audit_ms', coalesce(floor(extract(epoch FROM v_at + interval '1 minute' - now())
                                                        * 1000)::bigint, 0),
                             'grant_ms', _artifact_grant_ms(v_me, a));
END $$;

CREATE OR REPLACE FUNCTION api_artifact_reread(p_token text, p_id uuid) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    v_me users := _auth(p_token);
    a artifacts := _artifact_readable(v_me, p_id);
BEGIN
    RETURN json_build_object('id', a.id, 'sha256', a.sha256, 'media_type', a.media_type,
                             'bytes', a.bytes, 'url', a.url, 'filename', a.filename,
                             'object_key', a.object_key,
                             'grant_ms', _artifact_grant_ms(v_me, a));
END $$;
