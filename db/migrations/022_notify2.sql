-- SPDX-License-Identifier: Apache-2.0
-- 022_notify2: NOTIFY off the write path (issue 14).
--
-- A NOTIFY makes its transaction's commit take a cluster-wide lock and wait
-- for every other notifying commit: 014's triggers (one pg_notify per changed
-- submission while a stream was open) cut the claim -> score loop at 16
-- clients to about a fifth. Now a change only stamps its row with the id of
-- the transaction that made it (live_xid, next to 014's live_seq/live_at);
-- nothing is announced at commit. Each server instead
--   * sends one payload-less NOTIFY accord_live at most every 50 ms when its
--     own requests changed something (server/livelisten.c, "the announcer");
--   * on every accord_live, and every second regardless (changes made by other
--     tools, a lost notification), asks live_changes() what changed since the
--     snapshot of its previous call, on its one listening connection.
-- A snapshot is exact where a sequence is not: a row stamped with a lower
-- live_seq may commit after a higher one was read, but a transaction not
-- visible in the previous snapshot is either still running (and not visible
-- now either) or committed since (and visible now).
--
-- The same holds for the outbox: events no longer NOTIFY accord_outbox at
-- commit (_outbox_emit below); the delivery threads wake on accord_live and
-- poll. Rare admin actions (retry, an invitation) still NOTIFY accord_outbox.
--
-- accord_queue (submit, release, revoking a grant: 002, 006, 012) had no
-- listener at all; those pg_notify calls are removed from whatever the
-- current definitions are (rewritten in place, so later redefinitions by
-- earlier-numbered migrations are carried forward).

-- 014's announcing machinery ------------------------------------------------

DROP TRIGGER submissions_live_notify ON submissions;
DROP TRIGGER assessor_grants_live_notify ON assessor_grants;
DROP FUNCTION _live_submission_notify();
DROP FUNCTION _live_grant_notify();
DROP FUNCTION live_server_report(uuid, int);
DROP FUNCTION _live_watched();
DROP TABLE live_servers;

-- Stamps ----------------------------------------------------------------------

-- live_xid: the transaction of the row's last change that streams care about;
-- live_e_xid: of the last change its earner sees (status, award);
-- live_a_xid: of the last change into, out of or within adjudication (leads).
ALTER TABLE submissions ADD COLUMN live_xid xid8,
                        ADD COLUMN live_e_xid xid8,
                        ADD COLUMN live_a_xid xid8;
CREATE INDEX submissions_live_xid_idx ON submissions (live_xid) WHERE live_xid IS NOT NULL;
ALTER TABLE credentials ADD COLUMN live_xid xid8;
CREATE INDEX credentials_live_xid_idx ON credentials (live_xid) WHERE live_xid IS NOT NULL;

CREATE OR REPLACE FUNCTION _live_submission_stamp() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_xid xid8;
BEGIN
    IF NEW.status = 'validity' THEN
        RETURN NEW;
    END IF;
    IF TG_OP = 'INSERT' OR NEW.status IS DISTINCT FROM OLD.status
       OR NEW.stage IS DISTINCT FROM OLD.stage
       OR NEW.current_review_id IS DISTINCT FROM OLD.current_review_id
       OR NEW.award_id IS DISTINCT FROM OLD.award_id THEN
        v_xid := pg_current_xact_id();
        NEW.live_seq := nextval('live_seq');
        NEW.live_at := clock_timestamp();
        NEW.live_xid := v_xid;
        IF TG_OP = 'INSERT' OR NEW.status IS DISTINCT FROM OLD.status
           OR NEW.award_id IS DISTINCT FROM OLD.award_id THEN
            NEW.live_e_xid := v_xid;
        END IF;
        IF NEW.stage = 'adjudication' OR (TG_OP = 'UPDATE' AND OLD.stage = 'adjudication') THEN
            NEW.live_a_xid := v_xid;
        END IF;
    END IF;
    RETURN NEW;
END $$;

CREATE OR REPLACE FUNCTION _live_credential_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.peer_paused_at IS DISTINCT FROM OLD.peer_paused_at THEN
        NEW.live_seq := nextval('live_seq');
        NEW.live_xid := pg_current_xact_id();
    END IF;
    RETURN NEW;
END $$;

-- Grants change rarely (a lead's action): one small row each, kept 10 minutes.
CREATE TABLE live_grant_changes (
    user_id uuid NOT NULL,
    xid     xid8 NOT NULL DEFAULT pg_current_xact_id(),
    at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX live_grant_changes_xid_idx ON live_grant_changes (xid);
CREATE INDEX live_grant_changes_at_idx ON live_grant_changes (at);

CREATE FUNCTION _live_grant_stamp() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM live_grant_changes WHERE at < now() - interval '10 minutes';
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        INSERT INTO live_grant_changes (user_id) VALUES (OLD.user_id);
    END IF;
    IF TG_OP = 'INSERT' OR (TG_OP = 'UPDATE' AND NEW.user_id IS DISTINCT FROM OLD.user_id) THEN
        INSERT INTO live_grant_changes (user_id) VALUES (NEW.user_id);
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER assessor_grants_live_stamp AFTER INSERT OR UPDATE OR DELETE ON assessor_grants
    FOR EACH ROW EXECUTE FUNCTION _live_grant_stamp();

-- What changed ---------------------------------------------------------------

-- Everything stamped by a transaction that the snapshot p_since (text of a
-- pg_snapshot from this function's previous answer) did not see, and this
-- statement's snapshot, to pass next time. Each change is one line in the
-- format server/live.c parses:
--   s SEQ SUBMISSION CREDENTIAL EARNER|- FLAGS   a submission changed
--       FLAGS: q (queue counts may have changed), e (what its earner sees),
--       a (it entered, left or changed within adjudication)
--   c SEQ CREDENTIAL                              peer review paused/resumed
--   u 0 USER                                      a user's grants changed
--   R                                             more than p_limit: look again at everything
-- p_since NULL: only the snapshot (the first call after connecting).
-- One statement, so the snapshot returned is the one the rows were read with.
CREATE FUNCTION live_changes(p_since text, p_limit int) RETURNS json
LANGUAGE sql STABLE AS $$
    WITH prev AS (
        SELECT p_since::pg_snapshot AS snap, pg_snapshot_xmin(p_since::pg_snapshot) AS xmin
         WHERE p_since IS NOT NULL
    ), changed AS (
        SELECT format('s %s %s %s %s q%s%s', s.live_seq, s.id, s.credential_id,
                      coalesce(s.earner_id::text, '-'),
                      CASE WHEN s.live_e_xid >= p.xmin
                                AND NOT pg_visible_in_snapshot(s.live_e_xid, p.snap)
                           THEN 'e' ELSE '' END,
                      CASE WHEN s.live_a_xid >= p.xmin
                                AND NOT pg_visible_in_snapshot(s.live_a_xid, p.snap)
                           THEN 'a' ELSE '' END) AS line
          FROM prev p JOIN submissions s ON s.live_xid >= p.xmin
         WHERE NOT pg_visible_in_snapshot(s.live_xid, p.snap) AND s.status <> 'validity'
        UNION ALL
        SELECT format('c %s %s', c.live_seq, c.id)
          FROM prev p JOIN credentials c ON c.live_xid >= p.xmin
         WHERE NOT pg_visible_in_snapshot(c.live_xid, p.snap)
        UNION ALL
        SELECT DISTINCT format('u 0 %s', g.user_id)
          FROM prev p JOIN live_grant_changes g ON g.xid >= p.xmin
         WHERE NOT pg_visible_in_snapshot(g.xid, p.snap)
    ), bounded AS (
        SELECT line FROM changed LIMIT greatest(p_limit, 1) + 1
    )
    SELECT json_build_object(
        'snapshot', pg_current_snapshot()::text,
        'changes', CASE WHEN (SELECT count(*) FROM bounded) > greatest(p_limit, 1)
                        THEN json_build_array('R')
                        ELSE (SELECT coalesce(json_agg(line), '[]') FROM bounded) END)
$$;

-- The outbox: no NOTIFY at commit -------------------------------------------

CREATE OR REPLACE FUNCTION _outbox_emit(p_type text, p_payload jsonb, p_mail jsonb,
                                        p_dedupe text DEFAULT NULL) RETURNS uuid
LANGUAGE plpgsql AS $$
DECLARE
    v_id uuid;
BEGIN
    -- nobody to tell (the common case for claims without webhooks): no rows
    IF coalesce(jsonb_array_length(p_mail), 0) = 0
       AND NOT EXISTS (SELECT 1 FROM webhooks w
                        WHERE w.disabled_at IS NULL AND p_type = ANY(_event_types())
                          AND (p_type = ANY(w.events) OR '*' = ANY(w.events))) THEN
        RETURN NULL;
    END IF;
    INSERT INTO events (type, payload, dedupe_key) VALUES (p_type, p_payload, p_dedupe)
    ON CONFLICT (dedupe_key) DO NOTHING
    RETURNING id INTO v_id;
    IF v_id IS NULL THEN
        RETURN NULL;
    END IF;
    INSERT INTO outbox (event_id, channel, webhook_id)
    SELECT v_id, 'webhook', w.id FROM webhooks w
     WHERE w.disabled_at IS NULL AND p_type = ANY(_event_types())
       AND (p_type = ANY(w.events) OR '*' = ANY(w.events));
    INSERT INTO outbox (event_id, channel, user_id, reason)
    SELECT DISTINCT ON (m.user_id) v_id, 'email', m.user_id, m.reason
      FROM (SELECT (x ->> 'user_id')::uuid AS user_id, x ->> 'reason' AS reason
              FROM jsonb_array_elements(coalesce(p_mail, '[]')) x LIMIT 1000) m
      JOIN users u ON u.id = m.user_id AND u.disabled_at IS NULL
     ORDER BY m.user_id;
    -- the delivery threads of the server that made the change wake on its
    -- announcement (accord_live), the others within their poll interval
    RETURN v_id;
END $$;

-- accord_queue: announced to nobody -----------------------------------------

DO $$
DECLARE
    f record;
    v_def text;
BEGIN
    FOR f IN SELECT p.oid FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
              WHERE n.nspname = current_schema() AND p.prosrc LIKE '%pg_notify(''accord_queue''%'
    LOOP
        v_def := regexp_replace(pg_get_functiondef(f.oid),
                                'PERFORM pg_notify\(''accord_queue'', [a-z_.]+::text\);', '', 'g');
        IF v_def LIKE '%pg_notify(''accord_queue''%' THEN
            RAISE EXCEPTION 'cannot remove accord_queue from %', f.oid::regprocedure;
        END IF;
        EXECUTE v_def;
    END LOOP;
END $$;

-- /metrics: the outbox's backlog ---------------------------------------------

-- Deliveries pending (due or backing off, mail waiting for its digest) and
-- dead, per channel, and the age of the oldest pending one. Read through the
-- partial indexes of 013 (pending, dead): cheap however much was delivered.
CREATE FUNCTION outbox_metrics() RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'pending', jsonb_build_object(
            'webhook', (SELECT count(*) FROM outbox WHERE status = 'pending' AND channel = 'webhook'),
            'email', (SELECT count(*) FROM outbox WHERE status = 'pending' AND channel = 'email')),
        'dead', jsonb_build_object(
            'webhook', (SELECT count(*) FROM outbox WHERE status = 'dead' AND channel = 'webhook'),
            'email', (SELECT count(*) FROM outbox WHERE status = 'dead' AND channel = 'email')),
        'oldest_pending_age_seconds',
            coalesce(round(extract(epoch FROM now() - (SELECT min(created_at) FROM outbox
                                                       WHERE status = 'pending'))::numeric, 3), 0))
$$;

-- Webhook outcomes, many at once ---------------------------------------------

-- The outcomes of a delivery thread's batch (server/outbox.c), in one
-- transaction instead of one per attempt: p_results [{id, ok, status, error,
-- duration_ms, retry_seconds}], each as outbox_result() records it.
CREATE FUNCTION outbox_results(p_results jsonb, p_max_attempts int) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    r jsonb;
BEGIN
    FOR r IN SELECT x FROM jsonb_array_elements(p_results) x LIMIT 1000 LOOP
        PERFORM outbox_result((r ->> 'id')::bigint, (r ->> 'ok')::boolean,
                              (r ->> 'status')::int, r ->> 'error',
                              (r ->> 'duration_ms')::int, (r ->> 'retry_seconds')::float8,
                              p_max_attempts);
    END LOOP;
END $$;

-- The credential's own turnaround target -------------------------------------

-- Programmes promise different turnarounds (5 or 14 business days): a lead
-- sets review_policy.turnaround_hours per credential; NULL keeps the
-- server's --turnaround-hours. outbox_scan() tells leads of submissions
-- waiting longer than their credential's target.
ALTER TABLE credentials ADD COLUMN turnaround_hours int
    CHECK (turnaround_hours BETWEEN 1 AND 8760);

CREATE OR REPLACE FUNCTION _policy_json(c credentials) RETURNS json
LANGUAGE sql IMMUTABLE AS $$
    SELECT json_build_object('validity_rate', c.validity_rate,
                             'second_score_rate', _second_rate(c),
                             'second_score_floor', c.second_score_floor,
                             'reliability_threshold', c.reliability_threshold,
                             'min_pairs', c.min_pairs, 'peer_wait_hours', c.peer_wait_hours,
                             'turnaround_hours', c.turnaround_hours)
$$;

-- Small edits to the current definitions of longer functions, each checked:
-- the new key is accepted and kept wherever the policy is read or written.
DO $$
DECLARE
    e record;
    v_def text;
    v_new text;
BEGIN
    FOR e IN SELECT * FROM (VALUES
        ('_policy_apply(credentials,jsonb)'::regprocedure,
         'min_pairs,peer_wait_hours}''',
         'min_pairs,peer_wait_hours,turnaround_hours}'''),
        ('_policy_apply(credentials,jsonb)'::regprocedure,
         '    RETURN c;
END',
         '    IF p ? ''turnaround_hours'' THEN
        c.turnaround_hours := _j_int_range(p -> ''turnaround_hours'', ''turnaround_hours'', 1, 8760,
                                           ''invalid_policy'');
    END IF;
    RETURN c;
END'),
        ('api_credential_policy_put(text,uuid,jsonb)'::regprocedure,
         '           peer_wait_hours = c.peer_wait_hours
',
         '           peer_wait_hours = c.peer_wait_hours, turnaround_hours = c.turnaround_hours
'),
        ('api_credential_create(text,jsonb)'::regprocedure,
         'min_pairs, peer_wait_hours)
    VALUES',
         'min_pairs, peer_wait_hours, turnaround_hours)
    VALUES'),
        ('api_credential_create(text,jsonb)'::regprocedure,
         'p.min_pairs, p.peer_wait_hours)
    RETURNING',
         'p.min_pairs, p.peer_wait_hours, p.turnaround_hours)
    RETURNING'),
        ('outbox_scan(int,int)'::regprocedure,
         'make_interval(hours => p_turnaround_hours)',
         'make_interval(hours => coalesce(c.turnaround_hours, p_turnaround_hours))'),
        ('outbox_scan(int,int)'::regprocedure,
         'SELECT s.id, s.credential_id, s.attempt, s.created_at, c.title
',
         'SELECT s.id, s.credential_id, s.attempt, s.created_at, c.title,
               coalesce(c.turnaround_hours, p_turnaround_hours) AS target
'),
        ('outbox_scan(int,int)'::regprocedure,
         '''turnaround_hours'', p_turnaround_hours)',
         '''turnaround_hours'', x.target)')
    ) AS t(fn, old, new)
    LOOP
        v_def := pg_get_functiondef(e.fn);
        v_new := replace(v_def, e.old, e.new);
        IF v_new = v_def OR position(e.old IN v_new) > 0 AND position(e.old IN e.new) = 0 THEN
            RAISE EXCEPTION '022: cannot edit %: % not found once', e.fn, e.old;
        END IF;
        EXECUTE v_new;
    END LOOP;
END $$;
