-- SPDX-License-Identifier: Apache-2.0
-- 021_scale2: claims flat up to 500 grants, evidence reads (issue 15).
--
-- db/README.md ("The claim queue") explains the design.

-- ===========================================================================
-- The many-grants walk is always an ordered index range
-- ===========================================================================
--
-- _queue_walk's plan is cached (planning a 500-element array per call cost
-- ~15 ms), and a cached generic plan cannot know how few rows pass the
-- credential filter: it scanned and sorted the whole queue (55 ms at
-- 3 x 10^5 queued, every claim). Walking submissions_queue_idx in order and
-- stopping at the first row that passes is always right here: the walk
-- starts at the user's walk cursor and the rows it passes move the cursor.
ALTER FUNCTION _queue_walk(users, uuid[], text) SET enable_sort = off SET enable_seqscan = off;

-- ===========================================================================
-- Claim profiles: a claim reads one row, not a row per grant
-- ===========================================================================
--
-- A claim needs the assessor's grants as routing sees them: per granted
-- credential the mode (peer, peer_requalified, expert_high,
-- expert_low_paused, expert_low), pool, validity rate and peer wait, and
-- from those the first-score, waiting and second-score credential sets.
-- Reading them joins grants, credentials and qualifications: 500 grants
-- cost ~5 ms per claim. They change rarely (a grant, a qualification, a
-- role, a credential's stakes/pause/rates), so they are kept per user.
--
-- Staleness is decided by an epoch, never by deleting the row: every change
-- a profile depends on bumps the epoch of every user it touches (an upsert,
-- which waits for a claim's uncommitted insert of the same row), and a
-- claim keeps what it built only if the epoch is still the one it read
-- before building (ON CONFLICT ... WHERE). A claim that built from a
-- snapshot older than a change therefore never stores it as current.
CREATE TABLE claim_profiles (
    user_id      uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    epoch        bigint NOT NULL DEFAULT 2,  -- a claim that found no row builds at 1
    built_epoch  bigint,                     -- the epoch the arrays are for (NULL: none)
    gc           uuid[],                     -- per eligible grant: credential ...
    gmode        text[],                     -- ... routing mode
    gpool        text[],
    grate        numeric[],                  -- validity_rate
    gwait        numeric[],                  -- peer_wait_hours
    first        uuid[],                     -- first scores unconditionally
    waitc        uuid[],                     -- first scores after waiting (low-stakes expert)
    waith        numeric[],
    second       uuid[],                     -- second scores / adjudication (expert grants)
    first_sig    text,                       -- _grants_sig(first): the walk cursor's key
    any_validity boolean
);

-- p_user's grants as a claim reads them (p_filter: one credential only).
-- The roles are read here, in the same snapshot as the grants.
CREATE FUNCTION _claim_grants(p_user uuid, p_filter uuid) RETURNS claim_profiles
LANGUAGE sql STABLE AS $$
    SELECT p_user, NULL::bigint, NULL::bigint, z.gc, z.gmode, z.gpool, z.grate, z.gwait,
           z.first, z.waitc, z.waith, z.second, _grants_sig(z.first), coalesce(z.any_validity, false)
      FROM (SELECT array_agg(x.credential_id) AS gc, array_agg(x.mode) AS gmode,
                   array_agg(x.pool) AS gpool, array_agg(x.validity_rate) AS grate,
                   array_agg(x.peer_wait_hours) AS gwait,
                   array_agg(x.credential_id) FILTER (WHERE x.mode IN ('peer','peer_requalified','expert_high','expert_low_paused')) AS first,
                   array_agg(x.credential_id) FILTER (WHERE x.mode NOT IN ('peer','peer_requalified','expert_high','expert_low_paused')) AS waitc,
                   array_agg(x.peer_wait_hours) FILTER (WHERE x.mode NOT IN ('peer','peer_requalified','expert_high','expert_low_paused')) AS waith,
                   array_agg(x.credential_id) FILTER (WHERE x.pool = 'expert') AS second,
                   bool_or(x.validity_rate > 0) AS any_validity
              FROM (SELECT g.credential_id, g.pool, c1.validity_rate, c1.peer_wait_hours,
                           CASE WHEN g.pool = 'peer' THEN
                                    CASE WHEN c1.peer_paused_at IS NULL THEN 'peer'
                                         WHEN q.qualified_at > c1.peer_paused_at THEN 'peer_requalified' END
                                WHEN c1.stakes = 'high' THEN 'expert_high'
                                WHEN c1.peer_paused_at IS NOT NULL THEN 'expert_low_paused'
                                ELSE 'expert_low' END AS mode
                      FROM users u
                      JOIN assessor_grants g ON g.user_id = u.id
                      JOIN credentials c1 ON c1.id = g.credential_id
                      JOIN qualifications q ON q.user_id = g.user_id AND q.rubric_id = c1.rubric_id
                                           AND q.status = 'qualified'
                     WHERE u.id = p_user
                       AND (p_filter IS NULL OR g.credential_id = p_filter)
                       AND CASE WHEN g.pool = 'expert' THEN 'expert' = ANY(u.roles)
                                ELSE c1.stakes = 'low' AND 'assessor' = ANY(u.roles) END) x
             WHERE x.mode IS NOT NULL) z
$$;

-- Every kept profile of p_users is out of date from now on.
CREATE FUNCTION _claim_profiles_stale(p_users uuid[]) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO claim_profiles AS cp (user_id)
    SELECT u.id FROM users u WHERE u.id = ANY (p_users) ORDER BY u.id
    ON CONFLICT (user_id) DO UPDATE SET epoch = cp.epoch + 1
$$;

-- grants and qualifications: their users (statement triggers: a bulk grant is one upsert per user)
CREATE FUNCTION _claim_profiles_changed_rows() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM _claim_profiles_stale(ARRAY(SELECT DISTINCT c.user_id FROM changed c));
    RETURN NULL;
END $$;
CREATE FUNCTION _claim_profiles_updated_rows() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM _claim_profiles_stale(ARRAY(SELECT c.user_id FROM changed c
                                        UNION SELECT o.user_id FROM changed_old o));
    RETURN NULL;
END $$;
CREATE TRIGGER assessor_grants_profiles_ins AFTER INSERT ON assessor_grants
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION _claim_profiles_changed_rows();
CREATE TRIGGER assessor_grants_profiles_del AFTER DELETE ON assessor_grants
    REFERENCING OLD TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION _claim_profiles_changed_rows();
CREATE TRIGGER assessor_grants_profiles_upd AFTER UPDATE ON assessor_grants
    REFERENCING OLD TABLE AS changed_old NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION _claim_profiles_updated_rows();
CREATE TRIGGER qualifications_profiles_ins AFTER INSERT ON qualifications
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION _claim_profiles_changed_rows();
CREATE TRIGGER qualifications_profiles_del AFTER DELETE ON qualifications
    REFERENCING OLD TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION _claim_profiles_changed_rows();
CREATE TRIGGER qualifications_profiles_upd AFTER UPDATE ON qualifications
    REFERENCING OLD TABLE AS changed_old NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION _claim_profiles_updated_rows();

-- a credential's routing inputs: everyone granted on it
CREATE FUNCTION _claim_profiles_credential() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM _claim_profiles_stale(ARRAY(SELECT g.user_id FROM assessor_grants g
                                         WHERE g.credential_id = NEW.id));
    RETURN NULL;
END $$;
CREATE TRIGGER credentials_profiles AFTER UPDATE ON credentials
    FOR EACH ROW
    WHEN (OLD.stakes IS DISTINCT FROM NEW.stakes
          OR OLD.peer_paused_at IS DISTINCT FROM NEW.peer_paused_at
          OR OLD.validity_rate IS DISTINCT FROM NEW.validity_rate
          OR OLD.peer_wait_hours IS DISTINCT FROM NEW.peer_wait_hours
          OR OLD.rubric_id IS DISTINCT FROM NEW.rubric_id)
    EXECUTE FUNCTION _claim_profiles_credential();

-- a user's roles
CREATE FUNCTION _claim_profiles_user() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM _claim_profiles_stale(ARRAY[NEW.id]);
    RETURN NULL;
END $$;
CREATE TRIGGER users_profiles AFTER UPDATE ON users
    FOR EACH ROW WHEN (OLD.roles IS DISTINCT FROM NEW.roles)
    EXECUTE FUNCTION _claim_profiles_user();

-- ===========================================================================
-- Evidence reads: audited once, authorized every time
-- ===========================================================================
--
-- 017 writes one artifact.read row per reader, artifact and minute (its
-- trigger drops the others). A video player's many ranges still each paid
-- for the INSERT and the trigger's look-up. Now the audited read also says
-- how long its row stands (audit_ms: a minute from the row's time, the one
-- just written or the one the trigger found); the server remembers that and
-- authorizes the reader's further ranges within it with
-- api_artifact_reread — the same authorization (_auth, _artifact_readable:
-- a lease that ended, a revoked token refuse at once), no audit row, no
-- write. 015's api_artifact_content, carried forward, plus audit_ms.
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
                                                        * 1000)::bigint, 0));
END $$;

-- A further read by a reader whose artifact.read row stands (the server
-- knows): authorized like api_artifact_content, the same answer without
-- audit_ms, nothing written.
CREATE FUNCTION api_artifact_reread(p_token text, p_id uuid) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    v_me users := _auth(p_token);
    a artifacts := _artifact_readable(v_me, p_id);
BEGIN
    RETURN json_build_object('id', a.id, 'sha256', a.sha256, 'media_type', a.media_type,
                             'bytes', a.bytes, 'url', a.url, 'filename', a.filename,
                             'object_key', a.object_key);
END $$;

-- 017's claim, carried forward; what changed is where the grants come from
-- (the kept profile) and that the per-grant arrays are not rebuilt per claim.
CREATE OR REPLACE FUNCTION api_review_claim(p_token text, p_body jsonb, p_lease_seconds int) RETURNS json
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan AS $$
DECLARE
    v_me users := _auth_role(p_token, '{assessor,expert,lead}');
    b jsonb := _body(p_body);
    v_filter uuid := _j_uuid(b -> 'credential_id', 'credential_id', false);
    v_lease int := coalesce(p_lease_seconds, 7200);
    v_lead boolean := 'lead' = ANY(v_me.roles);
    -- per eligible grant
    v_gc uuid[];        -- credential
    v_gmode text[];     -- peer | peer_requalified | expert_high | expert_low_paused | expert_low
    v_gpool text[];
    v_grate numeric[];  -- validity_rate
    v_gwait numeric[];  -- peer_wait_hours
    v_first uuid[];     -- first scores unconditionally
    v_waitc uuid[];     -- first scores after waiting (low-stakes expert)
    v_waith numeric[];
    v_second uuid[];    -- second scores / adjudication (expert grants)
    v_adj boolean;      -- lead: adjudications of any credential
    i int;
    v_old reviews;
    s submissions;
    sx submissions;
    r reviews;
    c credentials;
    v_mode text;
    v_pool text;
    v_routing jsonb;
    v_valid json;
    v_claims text;
    v_seed text := coalesce(current_setting('accord.random_seed', true), '');
    v_qc uuid[];        -- the queues walked for first scores: credential ...
    v_qbefore timestamptz[];  -- ... and the newest queued_at it may take
    h record;
    v_walk_cred uuid;   -- the many-grants walk's head
    v_walk_at timestamptz;
    v_walk_id uuid;
    p claim_profiles;   -- the grants, from the user's kept profile
    v_epoch bigint;
BEGIN
    IF v_lease < 1 OR v_lease > 30 * 86400 THEN
        PERFORM _bad('the lease must be between 1 second and 30 days');
    END IF;
    -- the grants as a claim reads them: kept per user until something they
    -- depend on changes (_claim_profiles_stale), so that a claim reads one row
    -- and not a row per grant (500 grants cost ~5 ms per claim otherwise)
    IF v_filter IS NULL THEN
        SELECT * INTO p FROM claim_profiles cp WHERE cp.user_id = v_me.id;
        IF p.user_id IS NULL OR p.built_epoch IS DISTINCT FROM p.epoch THEN
            v_epoch := coalesce(p.epoch, 1);
            p := _claim_grants(v_me.id, NULL);
            INSERT INTO claim_profiles AS cp
                   (user_id, epoch, built_epoch, gc, gmode, gpool, grate, gwait,
                    first, waitc, waith, second, first_sig, any_validity)
            VALUES (v_me.id, v_epoch, v_epoch, p.gc, p.gmode, p.gpool, p.grate, p.gwait,
                    p.first, p.waitc, p.waith, p.second, p.first_sig, p.any_validity)
            ON CONFLICT (user_id) DO UPDATE
               SET built_epoch = EXCLUDED.built_epoch, gc = EXCLUDED.gc, gmode = EXCLUDED.gmode,
                   gpool = EXCLUDED.gpool, grate = EXCLUDED.grate, gwait = EXCLUDED.gwait,
                   first = EXCLUDED.first, waitc = EXCLUDED.waitc, waith = EXCLUDED.waith,
                   second = EXCLUDED.second, first_sig = EXCLUDED.first_sig,
                   any_validity = EXCLUDED.any_validity
             WHERE cp.epoch = EXCLUDED.built_epoch;
        END IF;
    ELSE
        p := _claim_grants(v_me.id, v_filter);
    END IF;
    v_gc := p.gc;
    v_gmode := p.gmode;
    v_gpool := p.gpool;
    v_grate := p.grate;
    v_gwait := p.gwait;
    v_adj := v_lead;
    PERFORM _churn_check(v_me);
    IF v_gc IS NULL AND NOT v_adj THEN
        RETURN NULL;
    END IF;

    -- validity items: with probability validity_rate per eligible credential.
    -- The draws are _draw()'s, computed in one statement (a PL/pgSQL call
    -- per grant cost 4-5 ms at 500 grants); the loop visits only the hits,
    -- in grant order, as before.
    IF v_gc IS NOT NULL THEN
        IF p.any_validity THEN
            -- which claim this is, for the seeded draws' key (item 14): the
            -- assessor's latest review before it
            SELECT coalesce((SELECT rv.id::text FROM reviews rv WHERE rv.assessor_id = v_me.id
                              ORDER BY rv.claimed_at DESC, rv.id DESC LIMIT 1), 'first')
              INTO v_claims;
            FOR i IN SELECT g.k
                       FROM unnest(v_gc, v_grate) WITH ORDINALITY AS g (cid, rate, k)
                      WHERE g.rate > 0
                        AND CASE WHEN v_seed = '' THEN random()
                                 ELSE ('x' || left(md5(v_seed || '/' || format('validity/%s/%s/%s',
                                                   v_me.id, g.cid, v_claims)), 13))::bit(52)::bigint::float8
                                      / 4503599627370496.0 END < g.rate
                      ORDER BY g.k LOOP
                v_valid := _validity_claim(v_me, v_gc[i], v_gpool[i], v_claims, v_lease);
                IF v_valid IS NOT NULL THEN
                    RETURN v_valid;
                END IF;
            END LOOP;
        END IF;
        v_first := p.first;
        v_waitc := p.waitc;
        v_waith := p.waith;
        v_second := p.second;
    END IF;

    -- first scores, and low-stakes first scores that waited longer than
    -- peer_wait_hours (expert grants): the head of each credential's queue
    -- (_queue_heads: one index probe per grant, from the user's cursor),
    -- oldest first; the row is taken, locked, walking from the winning head
    -- (SKIP LOCKED: a head another claim holds is passed over).
    -- Many grants (more than 32 first-score credentials): one walk of the
    -- whole queue from the user's walk cursor stands for their probes.
    IF cardinality(v_first) > 32 THEN
        SELECT * INTO v_walk_cred, v_walk_at, v_walk_id
          FROM _queue_walk(v_me, v_first, p.first_sig);
        SELECT array_agg(w.cid), array_agg(now() - make_interval(secs => w.hours * 3600))
          INTO v_qc, v_qbefore
          FROM unnest(v_waitc, v_waith) AS w (cid, hours);
    ELSE
        SELECT array_agg(q.cid), array_agg(q.before) INTO v_qc, v_qbefore
          FROM (SELECT unnest(v_first) AS cid, 'infinity'::timestamptz AS before
                UNION ALL
                SELECT w.cid, now() - make_interval(secs => w.hours * 3600)
                  FROM unnest(v_waitc, v_waith) AS w (cid, hours)) q;
    END IF;
    IF v_qc IS NOT NULL OR v_walk_id IS NOT NULL THEN
        FOR h IN SELECT v_walk_cred AS credential_id, 'infinity'::timestamptz AS before,
                        v_walk_at AS queued_at, v_walk_id AS id
                  WHERE v_walk_id IS NOT NULL
                 UNION ALL
                 SELECT * FROM _queue_heads(v_me.id, v_me.org_id, v_qc, v_qbefore)
                  ORDER BY 3, 4 LOOP
            s := _queue_take(v_me, h.credential_id, h.queued_at, h.id, h.before);
            EXIT WHEN s.id IS NOT NULL;
        END LOOP;
        IF s.id IS NULL AND v_walk_id IS NOT NULL THEN
            -- every row from the walk's head on held by other claims: the probes
            FOR h IN SELECT * FROM _queue_heads(v_me.id, v_me.org_id, v_first,
                                                array_fill('infinity'::timestamptz,
                                                           ARRAY[cardinality(v_first)])) hd
                      ORDER BY hd.queued_at, hd.id LOOP
                s := _queue_take(v_me, h.credential_id, h.queued_at, h.id, h.before);
                EXIT WHEN s.id IS NOT NULL;
            END LOOP;
        END IF;
        IF s.id IS NULL THEN
            -- no first score for this user: pass for good what never can be
            FOR h IN SELECT g.cid, g.before
                       FROM unnest(v_qc, v_qbefore) AS g (cid, before)
                      WHERE NOT EXISTS (SELECT 1 FROM _queue_heads(v_me.id, v_me.org_id,
                                                                   ARRAY[g.cid], ARRAY[g.before])) LOOP
                PERFORM _claim_cursor_advance(v_me.id, v_me.org_id, h.cid, NULL, NULL, h.before);
            END LOOP;
        END IF;
    END IF;

    -- second scores and adjudications waiting for a claim
    IF v_second IS NOT NULL OR v_adj THEN
        SELECT s1.* INTO sx
          FROM submissions s1
         WHERE s1.status = 'in_review' AND s1.current_review_id IS NULL
           AND ((s1.stage = 'second' AND s1.credential_id = ANY(v_second))
                OR (s1.stage = 'adjudication'
                    AND ((v_adj AND (v_filter IS NULL OR s1.credential_id = v_filter))
                         OR s1.credential_id = ANY(v_second))))
           AND (s.id IS NULL OR (s1.queued_at, s1.id) < (s.queued_at, s.id))
           AND s1.earner_id <> v_me.id
           AND (_independent(v_me.org_id, s1.earner_org_id)
                OR (v_adj AND s1.stage = 'adjudication'
                    AND (v_me.org_id IS NULL OR s1.earner_org_id IS DISTINCT FROM v_me.org_id)))
           AND NOT EXISTS (SELECT 1 FROM reviews rv
                            WHERE rv.submission_id = s1.id AND rv.assessor_id = v_me.id
                              AND rv.status = 'submitted')
           AND NOT EXISTS (SELECT 1 FROM reviews rv
                            WHERE rv.submission_id = s1.id AND rv.assessor_id = v_me.id
                              AND rv.stage = s1.stage)
         ORDER BY s1.queued_at, s1.id
         LIMIT 1
           FOR UPDATE OF s1 SKIP LOCKED;
        IF FOUND THEN
            s := sx;
        END IF;
    END IF;

    -- an expired lease that is older in queue order, in a stage this
    -- assessor may take
    SELECT s1.* INTO sx
      FROM submissions s1
     WHERE s1.status = 'in_review' AND s1.lease_expires_at < now()
       AND ((s1.stage = 'first'
             AND (s1.credential_id = ANY(v_first)
                  OR (s1.credential_id = ANY(v_waitc)
                      AND s1.queued_at < now() - make_interval(
                              secs => v_waith[array_position(v_waitc, s1.credential_id)] * 3600))))
            OR (s1.stage = 'second' AND s1.credential_id = ANY(v_second))
            OR (s1.stage = 'adjudication'
                AND ((v_adj AND (v_filter IS NULL OR s1.credential_id = v_filter))
                     OR s1.credential_id = ANY(v_second))))
       AND s1.earner_id <> v_me.id
       AND (_independent(v_me.org_id, s1.earner_org_id)
            OR (v_adj AND s1.stage = 'adjudication'
                AND (v_me.org_id IS NULL OR s1.earner_org_id IS DISTINCT FROM v_me.org_id)))
       AND (s.id IS NULL OR (s1.queued_at, s1.id) < (s.queued_at, s.id))
       AND NOT EXISTS (SELECT 1 FROM reviews rv
                        WHERE rv.submission_id = s1.id AND rv.assessor_id = v_me.id
                          AND (s1.stage = 'first' OR rv.status = 'submitted' OR rv.stage = s1.stage))
     ORDER BY s1.queued_at, s1.id
     LIMIT 1
       FOR UPDATE OF s1 SKIP LOCKED;
    IF FOUND THEN
        s := sx;
    END IF;
    IF s.id IS NULL THEN
        RETURN NULL;
    END IF;

    IF s.status = 'in_review' AND s.current_review_id IS NOT NULL THEN
        UPDATE reviews SET status = 'expired', ended_at = now()
         WHERE id = s.current_review_id AND status = 'active'
        RETURNING * INTO v_old;
        INSERT INTO audit_log (actor_id, action, object_type, object_id, detail)
        VALUES (NULL, 'review.lease_expired', 'review', s.current_review_id,
                jsonb_build_object('submission_id', s.id,
                                   'assessor_id', v_old.assessor_id,
                                   'lease_expires_at', _ts(s.lease_expires_at),
                                   'taken_over_by', v_me.id));
        IF v_old.id IS NOT NULL THEN
            INSERT INTO churn_events (user_id, review_id, kind, claimed_at)
            VALUES (v_old.assessor_id, v_old.id, 'expired', v_old.claimed_at);
        END IF;
    END IF;

    -- why this review went to this assessor
    i := array_position(v_gc, s.credential_id);
    v_mode := v_gmode[i];
    IF s.stage = 'first' THEN
        v_pool := v_gpool[i];
        IF v_mode = 'peer' THEN
            v_routing := jsonb_build_object('rule', 'peer');
        ELSIF v_mode = 'expert_high' THEN
            v_routing := jsonb_build_object('rule', 'high_stakes_expert');
        ELSE
            SELECT * INTO c FROM credentials WHERE id = s.credential_id;
            IF v_mode = 'peer_requalified' THEN
                v_routing := jsonb_build_object('rule', 'peer_requalified', 'always_double', true,
                                                'paused_at', _ts(c.peer_paused_at));
            ELSIF v_mode = 'expert_low_paused' THEN
                v_routing := jsonb_build_object('rule', 'peer_paused',
                                                'kappa', c.routing_state -> 'kappa',
                                                'ci', c.routing_state -> 'ci',
                                                'pairs', c.routing_state -> 'pairs',
                                                'paused_at', _ts(c.peer_paused_at));
            ELSE
                v_routing := jsonb_build_object('rule', 'peer_wait',
                                                'waited_hours', round(extract(epoch FROM now() - s.queued_at)::numeric / 3600, 1),
                                                'peer_wait_hours', c.peer_wait_hours);
            END IF;
        END IF;
    ELSE
        v_pool := CASE WHEN v_gpool[i] = 'expert' THEN 'expert' ELSE 'lead' END;
        v_routing := s.routing;
    END IF;

    -- review row, submission update and audit row in one statement
    WITH nr AS (
        INSERT INTO reviews (submission_id, assessor_id, lease_expires_at, stage, pool, routing)
        VALUES (s.id, v_me.id, now() + make_interval(secs => v_lease), s.stage, v_pool, v_routing)
        RETURNING *),
    up AS (
        UPDATE submissions sub
           SET status = 'in_review', lease_expires_at = nr.lease_expires_at,
               current_review_id = nr.id, updated_at = now()
          FROM nr
         WHERE sub.id = nr.submission_id),
    au AS (
        INSERT INTO audit_log (actor_id, action, object_type, object_id, detail)
        SELECT v_me.id, 'review.claim', 'review', nr.id,
               jsonb_build_object('submission_id', nr.submission_id,
                                  'lease_expires_at', _ts(nr.lease_expires_at))
          FROM nr)
    SELECT * INTO r FROM nr;
    s.status := 'in_review';
    IF r.stage = 'adjudication' OR v_lead THEN
        RETURN _review_view(r, s, false);
    END IF;
    RETURN _review_json(r, s);
END $$;
