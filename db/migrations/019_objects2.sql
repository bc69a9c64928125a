-- SPDX-License-Identifier: Apache-2.0
-- 019_objects2.sql - a multipart upload's completing lease is short and
-- renewed (issue 13: a server killed while completing).
--
-- api_object_upload_complete_begin (015) gives the completing server a lease
-- of p_lease seconds. It was 15 minutes, long enough for any read-back, so a
-- server killed while completing kept the upload locked (423) for that long.
-- Now the lease is a minute and the completing server renews it every 20 s
-- while it works (s3_uploads.c): a dead server's lease runs out within a
-- minute, and any server then finishes the upload.

CREATE FUNCTION object_upload_complete_renew(p_id uuid, p_lease bigint) RETURNS void
LANGUAGE sql AS $$
    UPDATE object_uploads SET lease_until = now() + make_interval(secs => p_lease)
     WHERE id = p_id AND state = 'completing'
$$;
