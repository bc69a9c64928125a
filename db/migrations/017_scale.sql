-- SPDX-License-Identifier: Apache-2.0
-- 017_scale: cost that stays flat as the work grows (issue 15).
--
-- Claims (items 1-2): the queue is walked per granted credential and the
-- heads merged, and each assessor keeps a cursor per credential past the
-- work that can never be theirs. db/README.md ("The claim queue") explains
-- the design and why a claim stays flat.

-- ===========================================================================
-- The claim queue (items 1 and 2)
-- ===========================================================================
--
-- A claim cursor (user, credential) says: every queued first-stage
-- submission of the credential before (queued_at, submission_id) in queue
-- order is permanently ineligible for this user while they belong to org_id
-- (their own work, their organisation's work, work they reviewed before:
-- none of that ever changes for a submission). Two events can put eligible
-- work before a cursor, and both lower it: work going back to the queue with
-- its old queued_at (a release, a revoked grant's leases: the trigger
-- submissions_back_in_queue below) and a submission committed late with an
-- older queued_at (a cursor only passes
-- work queued more than _cursor_margin() ago, and no transaction lives that
-- long: statement_timeout is 30 s).
CREATE TABLE claim_cursors (
    user_id       uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    credential_id uuid NOT NULL REFERENCES credentials (id) ON DELETE CASCADE,
    org_id        uuid,
    queued_at     timestamptz NOT NULL,
    submission_id uuid NOT NULL,
    moved_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, credential_id)
);
-- a release lowers every cursor of its credential
CREATE INDEX claim_cursors_credential_idx ON claim_cursors (credential_id);

CREATE FUNCTION _cursor_margin() RETURNS interval
LANGUAGE sql IMMUTABLE AS $$ SELECT interval '2 minutes' $$;

-- The head of each granted credential's queue for p_user: the oldest queued
-- submission at or after the user's cursor, queued before p_before (the
-- low-stakes wait of an expert grant; 'infinity' otherwise) and eligible
-- (not their own, another organisation's, never reviewed by them). One
-- probe of submissions_queue_cred_idx per grant: no row of a credential the
-- user holds no grant on is ever read. Unlocked: the caller locks the row it
-- takes (SKIP LOCKED), walking from the winning head.
CREATE FUNCTION _queue_heads(p_user uuid, p_org uuid, p_creds uuid[], p_before timestamptz[])
RETURNS TABLE (credential_id uuid, before timestamptz, queued_at timestamptz, id uuid)
LANGUAGE sql STABLE AS $$
    SELECT g.cid, g.before, h.queued_at, h.id
      FROM unnest(p_creds, p_before) AS g (cid, before)
      LEFT JOIN claim_cursors cc
             ON cc.user_id = p_user AND cc.credential_id = g.cid AND cc.org_id = p_org
     CROSS JOIN LATERAL (
            SELECT s1.queued_at, s1.id
              FROM submissions s1
             WHERE s1.status = 'queued' AND s1.credential_id = g.cid
               AND (s1.queued_at, s1.id) >= (coalesce(cc.queued_at, '-infinity'),
                                             coalesce(cc.submission_id, '00000000-0000-0000-0000-000000000000'))
               AND s1.queued_at < g.before
               AND s1.earner_id <> p_user
               AND _independent(p_org, s1.earner_org_id)
               AND NOT EXISTS (SELECT 1 FROM reviews rv
                                WHERE rv.submission_id = s1.id AND rv.assessor_id = p_user)
             ORDER BY s1.queued_at, s1.id
             LIMIT 1) h
$$;

-- Moves p_user's cursor on p_cred forward to p_to, the head just found (the
-- first eligible submission: all before it are ineligible), or, when there
-- was none (p_to NULL), past everything queued before p_before, when at
-- least 32 queued submissions lie between the cursor and there. Only past
-- work queued longer than _cursor_margin() ago. Cheap when there is nothing
-- to pass: one probe of the queue index.
CREATE FUNCTION _claim_cursor_advance(p_user uuid, p_org uuid, p_cred uuid,
                                      p_to_at timestamptz, p_to_id uuid,
                                      p_before timestamptz) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_from_at timestamptz := '-infinity';
    v_from_id uuid := '00000000-0000-0000-0000-000000000000';
    v_to_at timestamptz := coalesce(p_to_at, 'infinity');
    v_to_id uuid := coalesce(p_to_id, 'ffffffff-ffff-ffff-ffff-ffffffffffff');
    v_skipped int;
    t record;
BEGIN
    IF p_org IS NULL THEN
        RETURN;
    END IF;
    SELECT cc.queued_at, cc.submission_id INTO t
      FROM claim_cursors cc
     WHERE cc.user_id = p_user AND cc.credential_id = p_cred AND cc.org_id = p_org;
    IF FOUND THEN
        v_from_at := t.queued_at;
        v_from_id := t.submission_id;
    END IF;
    SELECT count(*) INTO v_skipped
      FROM (SELECT 1 FROM submissions s1
             WHERE s1.status = 'queued' AND s1.credential_id = p_cred
               AND (s1.queued_at, s1.id) >= (v_from_at, v_from_id)
               AND (s1.queued_at, s1.id) < (v_to_at, v_to_id)
             LIMIT 32) x;
    IF v_skipped < 32 THEN
        RETURN;
    END IF;
    -- the furthest point within the margin: the head itself, or the last
    -- (ineligible) submission before it
    SELECT s1.queued_at, s1.id INTO t
      FROM submissions s1
     WHERE s1.status = 'queued' AND s1.credential_id = p_cred
       AND (s1.queued_at, s1.id) <= (v_to_at, v_to_id)
       AND s1.queued_at < now() - _cursor_margin()
       AND (p_to_at IS NOT NULL OR s1.queued_at < p_before)
     ORDER BY s1.queued_at DESC, s1.id DESC
     LIMIT 1;
    IF NOT FOUND OR (t.queued_at, t.id) <= (v_from_at, v_from_id) THEN
        RETURN;
    END IF;
    INSERT INTO claim_cursors (user_id, credential_id, org_id, queued_at, submission_id)
    VALUES (p_user, p_cred, p_org, t.queued_at, t.id)
    ON CONFLICT (user_id, credential_id) DO UPDATE
       SET org_id = EXCLUDED.org_id, queued_at = EXCLUDED.queued_at,
           submission_id = EXCLUDED.submission_id, moved_at = now();
END $$;

-- An assessor with many grants walks the whole queue instead (one probe
-- per grant would cost a probe per grant). A walk cursor says: every queued
-- submission before this point of the whole queue is not claimable by this
-- user for a first score while their first-score credentials are the set
-- hashed in grants_sig and they belong to org_id (a new grant, a lapsed or
-- restored qualification, a paused peer pool or a change of roles changes
-- the set, and the cursor no longer applies). Work put back in the queue
-- lowers it (below).
CREATE TABLE claim_walk_cursors (
    user_id       uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    org_id        uuid,
    grants_sig    text NOT NULL,
    queued_at     timestamptz NOT NULL,
    submission_id uuid NOT NULL,
    moved_at      timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION _grants_sig(p_creds uuid[]) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT md5(string_agg(c::text, ',' ORDER BY c)) FROM unnest(p_creds) AS c
$$;

-- The oldest eligible queued submission of any of p_creds, walking
-- submissions_queue_idx from the user's walk cursor (unlocked; NULLs when
-- there is none), and the cursor moved past what the walk passed (when at
-- least 32 rows, older than the margin). The credential test is written as
-- an expression, so that it is a filter on the walk and never an index
-- condition (which would read every row of every granted credential and
-- sort them: 300 ms at 500 grants); the plan is cached (planning a
-- 500-element array per call cost ~15 ms).
CREATE FUNCTION _queue_walk(v_me users, p_creds uuid[], p_sig text,
                            OUT credential_id uuid, OUT queued_at timestamptz, OUT id uuid)
LANGUAGE plpgsql AS $$
DECLARE
    v_at timestamptz := '-infinity';
    v_id uuid := '00000000-0000-0000-0000-000000000000';
    v_to_at timestamptz;
    v_to_id uuid;
    v_n int;
    t record;
BEGIN
    IF v_me.org_id IS NULL THEN
        RETURN;
    END IF;
    SELECT w.queued_at, w.submission_id INTO t
      FROM claim_walk_cursors w
     WHERE w.user_id = v_me.id AND w.org_id = v_me.org_id AND w.grants_sig = p_sig;
    IF FOUND THEN
        v_at := t.queued_at;
        v_id := t.submission_id;
    END IF;
    SELECT x.credential_id, x.queued_at, x.id INTO credential_id, queued_at, id
      FROM submissions x
     WHERE x.status = 'queued' AND (x.queued_at, x.id) >= (v_at, v_id)
       AND x.credential_id::text::uuid = ANY (p_creds)
       AND x.earner_id <> v_me.id
       AND _independent(v_me.org_id, x.earner_org_id)
       AND NOT EXISTS (SELECT 1 FROM reviews rv
                        WHERE rv.submission_id = x.id AND rv.assessor_id = v_me.id)
     ORDER BY x.queued_at, x.id
     LIMIT 1;
    v_to_at := coalesce(queued_at, 'infinity');
    v_to_id := coalesce(id, 'ffffffff-ffff-ffff-ffff-ffffffffffff');
    SELECT count(*) INTO v_n
      FROM (SELECT 1 FROM submissions x
             WHERE x.status = 'queued' AND (x.queued_at, x.id) >= (v_at, v_id)
               AND (x.queued_at, x.id) < (v_to_at, v_to_id)
             LIMIT 32) z;
    IF v_n < 32 THEN
        RETURN;
    END IF;
    SELECT x.queued_at, x.id INTO t
      FROM submissions x
     WHERE x.status = 'queued' AND (x.queued_at, x.id) <= (v_to_at, v_to_id)
       AND x.queued_at < now() - _cursor_margin()
     ORDER BY x.queued_at DESC, x.id DESC
     LIMIT 1;
    IF FOUND AND (t.queued_at, t.id) > (v_at, v_id) THEN
        INSERT INTO claim_walk_cursors (user_id, org_id, grants_sig, queued_at, submission_id)
        VALUES (v_me.id, v_me.org_id, p_sig, t.queued_at, t.id)
        ON CONFLICT (user_id) DO UPDATE
           SET org_id = EXCLUDED.org_id, grants_sig = EXCLUDED.grants_sig,
               queued_at = EXCLUDED.queued_at, submission_id = EXCLUDED.submission_id,
               moved_at = now();
    END IF;
END $$;

-- Takes (locks) the oldest eligible queued submission of p_cred at or after
-- the head (p_at, p_id) that no other claim holds, and moves the user's
-- cursor past the work before the head; NULL when every one is held.
CREATE FUNCTION _queue_take(v_me users, p_cred uuid, p_at timestamptz, p_id uuid,
                            p_before timestamptz) RETURNS submissions
LANGUAGE plpgsql AS $$
DECLARE
    s submissions;
BEGIN
    SELECT s1.* INTO s
      FROM submissions s1
     WHERE s1.status = 'queued' AND s1.credential_id = p_cred
       AND (s1.queued_at, s1.id) >= (p_at, p_id)
       AND s1.queued_at < p_before
       AND s1.earner_id <> v_me.id
       AND _independent(v_me.org_id, s1.earner_org_id)
       AND NOT EXISTS (SELECT 1 FROM reviews rv
                        WHERE rv.submission_id = s1.id AND rv.assessor_id = v_me.id)
     ORDER BY s1.queued_at, s1.id
     LIMIT 1
       FOR UPDATE OF s1 SKIP LOCKED;
    IF FOUND THEN
        PERFORM _claim_cursor_advance(v_me.id, v_me.org_id, p_cred, p_at, p_id, p_before);
    END IF;
    RETURN s;
END $$;

-- Work that goes back to the queue (a release, a revoked grant's ended
-- leases, whatever else may in future) returns at its old place: every
-- cursor beyond it comes back to it. One trigger for every path, so that no
-- path can forget.
CREATE FUNCTION _queue_returned() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE claim_cursors cc
       SET queued_at = NEW.queued_at, submission_id = NEW.id, moved_at = now()
     WHERE cc.credential_id = NEW.credential_id
       AND (cc.queued_at, cc.submission_id) > (NEW.queued_at, NEW.id);
    UPDATE claim_walk_cursors w
       SET queued_at = NEW.queued_at, submission_id = NEW.id, moved_at = now()
     WHERE (w.queued_at, w.submission_id) > (NEW.queued_at, NEW.id);
    RETURN NULL;
END $$;
CREATE TRIGGER submissions_back_in_queue AFTER UPDATE OF status ON submissions
    FOR EACH ROW WHEN (NEW.status = 'queued' AND OLD.status IS DISTINCT FROM 'queued')
    EXECUTE FUNCTION _queue_returned();
-- 006's claim (issue 7: churn cap, leases, validity items, routing), carried
-- forward; what changed is how the first-score queue is read (and the
-- validity draws, computed in one statement).
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
    v_gsince timestamptz[];  -- qualified_at
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
BEGIN
    IF v_lease < 1 OR v_lease > 30 * 86400 THEN
        PERFORM _bad('the lease must be between 1 second and 30 days');
    END IF;
    SELECT array_agg(x.credential_id), array_agg(x.mode), array_agg(x.pool),
           array_agg(x.validity_rate), array_agg(x.qualified_at), array_agg(x.peer_wait_hours)
      INTO v_gc, v_gmode, v_gpool, v_grate, v_gsince, v_gwait
      FROM (SELECT g.credential_id, g.pool, c1.validity_rate, q.qualified_at, c1.peer_wait_hours,
                   CASE WHEN g.pool = 'peer' THEN
                            CASE WHEN c1.peer_paused_at IS NULL THEN 'peer'
                                 WHEN q.qualified_at > c1.peer_paused_at THEN 'peer_requalified' END
                        WHEN c1.stakes = 'high' THEN 'expert_high'
                        WHEN c1.peer_paused_at IS NOT NULL THEN 'expert_low_paused'
                        ELSE 'expert_low' END AS mode
              FROM assessor_grants g
              JOIN credentials c1 ON c1.id = g.credential_id
              JOIN qualifications q ON q.user_id = g.user_id AND q.rubric_id = c1.rubric_id
                                   AND q.status = 'qualified'
             WHERE g.user_id = v_me.id
               AND (v_filter IS NULL OR g.credential_id = v_filter)
               AND CASE WHEN g.pool = 'expert' THEN 'expert' = ANY(v_me.roles)
                        ELSE c1.stakes = 'low' AND 'assessor' = ANY(v_me.roles) END) x
     WHERE x.mode IS NOT NULL;
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
        IF EXISTS (SELECT 1 FROM unnest(v_grate) x WHERE x > 0) THEN
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
        SELECT array_agg(g.cid) FILTER (WHERE g.mode IN ('peer','peer_requalified','expert_high','expert_low_paused')),
               array_agg(g.cid) FILTER (WHERE g.mode NOT IN ('peer','peer_requalified','expert_high','expert_low_paused')),
               array_agg(g.wait) FILTER (WHERE g.mode NOT IN ('peer','peer_requalified','expert_high','expert_low_paused')),
               array_agg(g.cid) FILTER (WHERE g.pool = 'expert')
          INTO v_first, v_waitc, v_waith, v_second
          FROM unnest(v_gc, v_gmode, v_gpool, v_gwait) AS g (cid, mode, pool, wait);
    END IF;

    -- first scores, and low-stakes first scores that waited longer than
    -- peer_wait_hours (expert grants): the head of each credential's queue
    -- (_queue_heads: one index probe per grant, from the user's cursor),
    -- oldest first; the row is taken, locked, walking from the winning head
    -- (SKIP LOCKED: a head another claim holds is passed over).
    SELECT array_agg(q.cid), array_agg(q.before) INTO v_qc, v_qbefore
      FROM (SELECT unnest(v_first) AS cid, 'infinity'::timestamptz AS before
            UNION ALL
            SELECT w.cid, now() - make_interval(secs => w.hours * 3600)
              FROM unnest(v_waitc, v_waith) AS w (cid, hours)) q;
    -- Many grants (more than 32 first-score credentials): one walk of the
    -- whole queue from the user's walk cursor stands for their probes.
    IF cardinality(v_first) > 32 THEN
        SELECT * INTO v_walk_cred, v_walk_at, v_walk_id
          FROM _queue_walk(v_me, v_first, _grants_sig(v_first));
        SELECT array_agg(w.cid), array_agg(now() - make_interval(secs => w.hours * 3600))
          INTO v_qc, v_qbefore
          FROM unnest(v_waitc, v_waith) AS w (cid, hours);
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


-- ===========================================================================
-- Reports (items 3-5)
-- ===========================================================================
--
-- A report reads the scored rows of one credential. Every review now carries
-- its credential (copied from its submission on insert: a submission never
-- changes credential) and its levels in criterion order (set when its scores
-- are inserted: scores are never changed), so the rows of a report are one
-- range of a partial index on scored reviews, whatever else the database
-- holds; no join, no hash of every score in the database.
ALTER TABLE reviews ADD COLUMN credential_id uuid REFERENCES credentials (id);
ALTER TABLE reviews ADD COLUMN levels int[];
UPDATE reviews r SET credential_id = s.credential_id FROM submissions s WHERE s.id = r.submission_id;
UPDATE reviews r SET levels = x.levels
  FROM (SELECT review_id, array_agg(level ORDER BY position) AS levels
          FROM review_scores GROUP BY review_id) x
 WHERE x.review_id = r.id;
-- the rows in the reports' order (ratings.csv pages by submission) ...
CREATE INDEX reviews_scored_credential_idx ON reviews (credential_id, submission_id, assessor_id)
    WHERE status = 'submitted' AND stage <> 'validity';
-- ... and the newest score of a credential (the report cache's stamp)
CREATE INDEX reviews_scored_at_idx ON reviews (credential_id, scored_at)
    WHERE status = 'submitted' AND stage <> 'validity';

CREATE FUNCTION _review_credential() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.credential_id := (SELECT s.credential_id FROM submissions s WHERE s.id = NEW.submission_id);
    RETURN NEW;
END $$;
CREATE TRIGGER reviews_credential BEFORE INSERT ON reviews
    FOR EACH ROW EXECUTE FUNCTION _review_credential();

CREATE FUNCTION _review_levels() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE reviews r SET levels = x.levels
      FROM (SELECT n.review_id, array_agg(n.level ORDER BY n.position) AS levels
              FROM new_scores n GROUP BY n.review_id) x
     WHERE r.id = x.review_id;
    RETURN NULL;
END $$;
CREATE TRIGGER review_scores_levels AFTER INSERT ON review_scores
    REFERENCING NEW TABLE AS new_scores
    FOR EACH STATEMENT EXECUTE FUNCTION _review_levels();

-- 005's _live_scores (still read by other code) with a plan per call: after
-- five calls a cached generic plan hashed every score of the database even
-- for a small credential.
ALTER FUNCTION _live_scores(uuid, text, timestamptz) SET plan_cache_mode = force_custom_plan;

-- The agreement report's data: 006's checks and audit row, then a header
-- line (JSON: credential_id, pool, since, criteria, levels, stamp,
-- cacheable, unchanged) and, unless unchanged, one line per scored review:
-- "submission assessor level1,level2,..." (criterion order), ordered by
-- submission and assessor (string_agg of an ordered subquery: the rows
-- come in index order or sorted in memory, not spilled). stamp names the
-- newest score; unchanged is true
-- when it equals p_known (the server's cached copy is still the answer);
-- cacheable is false while a score could still commit with an older time
-- (the newest is less than a minute old).
CREATE FUNCTION api_report_agreement_data(p_token text, p_query jsonb, p_known text) RETURNS text
LANGUAGE plpgsql
SET plan_cache_mode = force_custom_plan
SET work_mem = '32MB' AS $$
DECLARE
    v_me users := _auth_role(p_token, '{lead}');
    q jsonb := _body(p_query);
    c credentials;
    rb rubrics;
    v_pool text;
    v_since timestamptz;
    v_newest timestamptz;
    v_stamp text;
    v_same boolean;
BEGIN
    PERFORM _only_keys(q, '{credential_id,pool,since}', 'query parameter');
    c := _query_credential(q);
    v_pool := coalesce(_j_text(q -> 'pool', 'pool', false, 16), 'all');
    IF v_pool NOT IN ('peer','expert','all') THEN
        PERFORM _bad('pool must be peer, expert or all');
    END IF;
    v_since := _q_time(q -> 'since', 'since');
    SELECT * INTO rb FROM rubrics WHERE id = c.rubric_id;
    PERFORM _audit_read(v_me.id, 'report.read', 'credential', c.id, NULL,
                        jsonb_build_object('report', 'agreement', 'query', q));
    SELECT max(r.scored_at) INTO v_newest
      FROM reviews r
     WHERE r.credential_id = c.id AND r.status = 'submitted' AND r.stage <> 'validity';
    v_stamp := format('%s/%s/%s/%s', c.id, v_pool, coalesce(_ts(v_since), ''), coalesce(_ts(v_newest), 'none'));
    v_same := p_known IS NOT NULL AND p_known = v_stamp;
    RETURN json_build_object(
        'credential_id', c.id, 'pool', v_pool, 'since', _ts(v_since),
        'criteria', (SELECT json_agg(x ->> 'key' ORDER BY o)
                       FROM jsonb_array_elements(rb.criteria) WITH ORDINALITY t(x, o)),
        'levels', (SELECT coalesce(json_agg(DISTINCT (l ->> 'value')::int ORDER BY (l ->> 'value')::int), '[]'::json)
                     FROM jsonb_array_elements(rb.criteria) cr, jsonb_array_elements(cr -> 'levels') l),
        'stamp', v_stamp,
        'cacheable', v_newest IS NULL OR v_newest < now() - interval '1 minute',
        'unchanged', v_same)::text
        || E'\n'
        || CASE WHEN v_same THEN '' ELSE coalesce(
               (SELECT string_agg(x.line, E'\n')
                  FROM (SELECT r.submission_id || ' ' || r.assessor_id || ' '
                               || array_to_string(r.levels, ',', '') AS line
                          FROM reviews r
                         WHERE r.credential_id = c.id AND r.status = 'submitted'
                           AND r.stage <> 'validity'
                           AND (v_pool = 'all' OR r.pool = v_pool)
                           AND (v_since IS NULL OR r.scored_at >= v_since)
                         ORDER BY r.submission_id, r.assessor_id) x), '') END;
END $$;

-- ratings.csv, a page at a time: the rows of up to p_limit (1..5000)
-- submissions after p_after (NULL: from the first, with the CSV header and
-- the audit row), as "unit,rater,score" lines in 006's order. The first
-- line of the answer is the last submission id of the page ('' when the
-- page was not full: the last page).
CREATE FUNCTION api_report_ratings_page(p_token text, p_query jsonb, p_after uuid, p_limit int)
RETURNS text
LANGUAGE plpgsql
SET plan_cache_mode = force_custom_plan AS $$
DECLARE
    v_me users := _auth_role(p_token, '{lead}');
    q jsonb := _body(p_query);
    c credentials;
    v_keys text[];
    v_last uuid;
    v_n int;
    v_csv text;
BEGIN
    PERFORM _only_keys(q, '{credential_id}', 'query parameter');
    c := _query_credential(q);
    IF p_limit IS NULL OR p_limit < 1 OR p_limit > 5000 THEN
        PERFORM _bad('page size out of range');
    END IF;
    IF p_after IS NULL THEN
        PERFORM _audit_read(v_me.id, 'report.read', 'credential', c.id, NULL,
                            jsonb_build_object('report', 'ratings.csv', 'query', q));
    END IF;
    SELECT array_agg(x ->> 'key' ORDER BY o) INTO v_keys
      FROM credentials c2 JOIN rubrics rb ON rb.id = c2.rubric_id,
           jsonb_array_elements(rb.criteria) WITH ORDINALITY t(x, o)
     WHERE c2.id = c.id;
    WITH subs AS (
        SELECT DISTINCT r.submission_id
          FROM reviews r
         WHERE r.credential_id = c.id AND r.status = 'submitted' AND r.stage <> 'validity'
           AND (p_after IS NULL OR r.submission_id > p_after)
         ORDER BY r.submission_id
         LIMIT p_limit)
    SELECT (array_agg(subs.submission_id ORDER BY subs.submission_id DESC))[1], count(*)
      INTO v_last, v_n FROM subs;
    SELECT string_agg(r.submission_id || ':' || v_keys[k.pos] || ',' || r.assessor_id || ',' || k.level,
                      E'\n' ORDER BY r.submission_id, k.pos, r.assessor_id)
      INTO v_csv
      FROM reviews r
      CROSS JOIN LATERAL unnest(r.levels) WITH ORDINALITY AS k (level, pos)
     WHERE r.credential_id = c.id AND r.status = 'submitted' AND r.stage <> 'validity'
       AND (p_after IS NULL OR r.submission_id > p_after)
       AND r.submission_id <= v_last
       AND k.level IS NOT NULL;
    RETURN CASE WHEN v_n = p_limit THEN v_last::text ELSE '' END || E'\n'
        || CASE WHEN p_after IS NULL THEN 'unit,rater,score' || E'\n' ELSE '' END
        || coalesce(v_csv || E'\n', '');
END $$;

-- ===========================================================================
-- Evidence bytes (item 6)
-- ===========================================================================
--
-- A video player asks for many ranges of one file. Every viewing is still
-- audited, but one artifact.read row per reader, artifact and minute stands
-- for all its ranges: the first read of the minute writes its row (durably,
-- before any byte goes out), the others find it and write nothing, so their
-- transaction commits without a WAL flush. A BEFORE INSERT trigger, so that
-- every function that audits an evidence read is covered (003's and any
-- later definition of api_artifact_content alike).
CREATE FUNCTION _artifact_read_once_a_minute() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM audit_log a
                WHERE a.object_id = NEW.object_id AND a.action = 'artifact.read'
                  AND a.actor_id IS NOT DISTINCT FROM NEW.actor_id
                  AND a.at > now() - interval '1 minute') THEN
        RETURN NULL;
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER audit_log_artifact_read_once BEFORE INSERT ON audit_log
    FOR EACH ROW WHEN (NEW.action = 'artifact.read')
    EXECUTE FUNCTION _artifact_read_once_a_minute();
