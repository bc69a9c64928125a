-- SPDX-License-Identifier: Apache-2.0
-- 014_live: live updates for the web app (issue 14 item 3; server/live.h).
--
-- Every change a signed-in person may want to see at once is announced on
-- channel accord_live when its transaction commits. Triggers, not the API
-- functions, send them: every path that changes a submission (submit, claim,
-- release, score, lease takeover, and whatever later migrations add) is
-- covered without redefining any of those functions.
--
-- Payloads (space-separated, parsed by server/livelisten.c):
--   s SEQ SUBMISSION CREDENTIAL EARNER|- FLAGS   a submission changed
--       FLAGS: q (queue counts may have changed), e (what its earner sees
--       changed), a (it entered or left adjudication), or '-'
--   c SEQ CREDENTIAL                              peer review paused/resumed
--   u 0 USER                                      a user's grants changed
-- Nothing in a payload is shown to anyone: a server uses it to decide which
-- of its streams need a fresh look, then reads what each may see with
-- live_batch() below.
--
-- SEQ orders one row's changes (live_seq); live_at is when the row changed.
-- A stream's event ids are the database's clock (epoch milliseconds) when the
-- batch that sent them started, so a client that comes back with
-- Last-Event-ID gets every own submission changed since, less an overlap.

CREATE SEQUENCE live_seq;

-- Who is watching. A NOTIFY makes its transaction's commit wait for every
-- other notifying commit (PostgreSQL serialises them, fsync included): on the
-- claim -> score loop at 16 clients that cut throughput to one client's
-- (tests/bench: 50 cycles/s against 300 without). So the triggers announce a
-- change only while some server has a live stream open: each server reports
-- its count (server/livelisten.c, every 30 s and when it leaves or reaches 0);
-- a report older than 90 s no longer counts (a server that died). UNLOGGED:
-- nothing here needs to survive a crash.
CREATE UNLOGGED TABLE live_servers (
    id       uuid PRIMARY KEY,
    streams  int NOT NULL CHECK (streams >= 0),
    seen_at  timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION live_server_report(p_id uuid, p_streams int) RETURNS void
LANGUAGE sql AS $$
    DELETE FROM live_servers WHERE seen_at < now() - interval '10 minutes';
    INSERT INTO live_servers (id, streams, seen_at) VALUES (p_id, p_streams, now())
    ON CONFLICT (id) DO UPDATE SET streams = excluded.streams, seen_at = excluded.seen_at;
$$;

CREATE FUNCTION _live_watched() RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT EXISTS (SELECT 1 FROM live_servers
                    WHERE streams > 0 AND seen_at > now() - interval '90 seconds')
$$;

ALTER TABLE submissions ADD COLUMN live_seq bigint NOT NULL DEFAULT 0,
                        ADD COLUMN live_at timestamptz;
-- an earner's changes since a point (stream resume)
CREATE INDEX submissions_live_idx ON submissions (earner_id, live_at)
    WHERE earner_id IS NOT NULL;
ALTER TABLE credentials ADD COLUMN live_seq bigint NOT NULL DEFAULT 0;

CREATE FUNCTION _live_submission_stamp() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status = 'validity' THEN
        RETURN NEW;
    END IF;
    IF TG_OP = 'INSERT' OR NEW.status IS DISTINCT FROM OLD.status
       OR NEW.stage IS DISTINCT FROM OLD.stage
       OR NEW.current_review_id IS DISTINCT FROM OLD.current_review_id
       OR NEW.award_id IS DISTINCT FROM OLD.award_id THEN
        NEW.live_seq := nextval('live_seq');
        NEW.live_at := clock_timestamp();
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER submissions_live_stamp BEFORE INSERT OR UPDATE ON submissions
    FOR EACH ROW EXECUTE FUNCTION _live_submission_stamp();

CREATE FUNCTION _live_submission_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_flags text := '';
BEGIN
    IF NEW.status = 'validity' OR (TG_OP = 'UPDATE' AND NEW.live_seq = OLD.live_seq)
       OR NOT _live_watched() THEN
        RETURN NULL;
    END IF;
    v_flags := 'q';
    IF TG_OP = 'INSERT' THEN
        v_flags := v_flags || 'e' || CASE WHEN NEW.stage = 'adjudication' THEN 'a' ELSE '' END;
    ELSE
        IF NEW.status IS DISTINCT FROM OLD.status OR NEW.award_id IS DISTINCT FROM OLD.award_id THEN
            v_flags := v_flags || 'e';
        END IF;
        IF NEW.stage = 'adjudication' OR OLD.stage = 'adjudication' THEN
            v_flags := v_flags || 'a';
        END IF;
    END IF;
    PERFORM pg_notify('accord_live', format('s %s %s %s %s %s', NEW.live_seq, NEW.id,
                                            NEW.credential_id, coalesce(NEW.earner_id::text, '-'),
                                            v_flags));
    RETURN NULL;
END $$;

CREATE TRIGGER submissions_live_notify AFTER INSERT OR UPDATE ON submissions
    FOR EACH ROW EXECUTE FUNCTION _live_submission_notify();

CREATE FUNCTION _live_credential_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.peer_paused_at IS DISTINCT FROM OLD.peer_paused_at THEN
        NEW.live_seq := nextval('live_seq');
        IF _live_watched() THEN
            PERFORM pg_notify('accord_live', format('c %s %s', NEW.live_seq, NEW.id));
        END IF;
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER credentials_live_notify BEFORE UPDATE ON credentials
    FOR EACH ROW EXECUTE FUNCTION _live_credential_notify();

CREATE FUNCTION _live_grant_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT _live_watched() THEN
        RETURN NULL;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        PERFORM pg_notify('accord_live', format('u 0 %s', OLD.user_id));
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        PERFORM pg_notify('accord_live', format('u 0 %s', NEW.user_id));
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER assessor_grants_live_notify AFTER INSERT OR UPDATE OR DELETE ON assessor_grants
    FOR EACH ROW EXECUTE FUNCTION _live_grant_notify();

-- Overlap on resume: a change stamped shortly before the batch that sent a
-- client's Last-Event-ID may have committed, or been announced, after it;
-- changes this close are sent again (states, so a repeat is harmless).
CREATE FUNCTION _live_overlap() RETURNS interval
LANGUAGE sql IMMUTABLE AS $$ SELECT interval '30 seconds' $$;

-- A credential's queue as the review queue counts it (api_report_routing).
CREATE FUNCTION _live_queue(p_ids uuid[]) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT coalesce(jsonb_object_agg(c.id, jsonb_build_object(
               'title', c.title, 'stakes', c.stakes,
               'peer_review', CASE WHEN c.peer_paused_at IS NULL THEN 'active' ELSE 'paused' END,
               'first', coalesce(q.first, 0), 'second', coalesce(q.second, 0),
               'adjudication', coalesce(q.adjudication, 0))), '{}'::jsonb)
      FROM credentials c
      LEFT JOIN (SELECT s.credential_id,
                        count(*) FILTER (WHERE s.status = 'queued'
                                            OR (s.stage = 'first' AND s.lease_expires_at < now()))
                            AS first,
                        count(*) FILTER (WHERE s.status = 'in_review' AND s.stage = 'second'
                                           AND (s.current_review_id IS NULL
                                                OR s.lease_expires_at < now())) AS second,
                        count(*) FILTER (WHERE s.status = 'in_review' AND s.stage = 'adjudication'
                                           AND (s.current_review_id IS NULL
                                                OR s.lease_expires_at < now())) AS adjudication
                   FROM submissions s
                  WHERE s.credential_id = ANY(p_ids) AND s.status IN ('queued', 'in_review')
                  GROUP BY s.credential_id) q ON q.credential_id = c.id
     WHERE c.id = ANY(p_ids)
$$;

-- What a lead sees of a credential's routing.
CREATE FUNCTION _live_routing(c credentials) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'credential_id', c.id, 'title', c.title,
        'peer_review', CASE WHEN c.peer_paused_at IS NULL THEN 'active' ELSE 'paused' END,
        'paused_at', _ts(c.peer_paused_at),
        'reason', CASE WHEN c.peer_paused_at IS NOT NULL THEN c.routing_state -> 'reason' END,
        'adjudication_waiting',
            (SELECT count(*) FROM submissions s
              WHERE s.credential_id = c.id AND s.status = 'in_review'
                AND s.stage = 'adjudication'
                AND (s.current_review_id IS NULL OR s.lease_expires_at < now())))
$$;

-- An earner's submission as the stream shows it: its state, never a result
-- (the web app reads the result with GET /v1/submissions/{id}).
CREATE FUNCTION _live_submission(s submissions) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object('id', s.id, 'credential_id', s.credential_id,
                              'attempt', s.attempt, 'status', s.status,
                              'award_id', s.award_id, 'updated_at', _ts(s.updated_at),
                              'seq', s.live_seq)
$$;

-- One call per batch of a server's event loop (server/live.c), however many
-- streams it serves. p_req (all keys optional):
--   users:   [{"u": USER, "since": MS|null}]    streams opening or refreshing:
--            each user's roles and grants, and (since given: epoch ms, an event
--            id) own submissions changed after since less _live_overlap() (at
--            most 100; "more": true when there are more)
--   creds:   [CREDENTIAL]   queue counts wanted (the users' grants are added)
--   subs:    [SUBMISSION]   current state wanted (changed submissions)
--   routing: [CREDENTIAL]   routing wanted for leads
--   check:   [{"k": KIND, "h": HASH}]  credentials to check (auth_lookup)
-- Every list is bounded by the caller (server/live.c) and again here.
CREATE FUNCTION live_batch(p_req jsonb) RETURNS json
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_users jsonb := '{}';
    v_creds uuid[];
    v_lead boolean := false;
    v_routing jsonb;
    u record;
BEGIN
    IF jsonb_typeof(p_req) <> 'object' THEN
        RAISE EXCEPTION 'live_batch wants an object' USING ERRCODE = 'AC400';
    END IF;
    v_creds := ARRAY(SELECT DISTINCT x::uuid
                       FROM jsonb_array_elements_text(coalesce(p_req -> 'creds', '[]')) x
                      LIMIT 10000);
    FOR u IN
        SELECT DISTINCT ON (x ->> 'u') (x ->> 'u')::uuid AS id, (x ->> 'since')::bigint AS since
          FROM jsonb_array_elements(coalesce(p_req -> 'users', '[]')) x
         ORDER BY x ->> 'u', (x ->> 'since')::bigint NULLS FIRST
         LIMIT 10000
    LOOP
        DECLARE
            v users;
            v_grants jsonb;
            v_subs jsonb := '[]';
            v_more boolean := false;
        BEGIN
            SELECT * INTO v FROM users WHERE id = u.id;
            IF NOT FOUND OR v.disabled_at IS NOT NULL THEN
                v_users := v_users || jsonb_build_object(u.id::text, jsonb_build_object('active', false));
                CONTINUE;
            END IF;
            SELECT coalesce(jsonb_agg(jsonb_build_object('credential_id', g.credential_id,
                                                         'pool', g.pool)
                                      ORDER BY g.credential_id), '[]')
              INTO v_grants
              FROM (SELECT * FROM assessor_grants
                     WHERE user_id = v.id AND v.roles && '{assessor,expert}'::text[]
                     ORDER BY credential_id LIMIT 100) g;
            v_creds := v_creds || ARRAY(SELECT (g ->> 'credential_id')::uuid
                                          FROM jsonb_array_elements(v_grants) g);
            IF 'lead' = ANY(v.roles) THEN
                v_lead := true;
            END IF;
            IF u.since IS NOT NULL THEN
                SELECT coalesce(jsonb_agg(_live_submission(s) ORDER BY s.live_seq), '[]'),
                       count(*) > 100
                  INTO v_subs, v_more
                  FROM (SELECT * FROM submissions
                         WHERE earner_id = v.id
                           AND live_at > to_timestamp(u.since / 1000.0) - _live_overlap()
                         ORDER BY live_at DESC LIMIT 101) s;
                IF v_more THEN
                    v_subs := '[]';
                END IF;
            END IF;
            v_users := v_users || jsonb_build_object(u.id::text, jsonb_build_object(
                'active', true, 'roles', to_jsonb(v.roles), 'grants', v_grants,
                'subs', v_subs, 'more', v_more));
        END;
    END LOOP;
    -- a lead's stream opens with every credential whose routing is not the default
    SELECT coalesce(jsonb_object_agg(r ->> 'credential_id', r), '{}')
      INTO v_routing
      FROM (SELECT _live_routing(c) AS r
              FROM credentials c
             WHERE c.id = ANY(ARRAY(SELECT x::uuid FROM jsonb_array_elements_text(
                                        coalesce(p_req -> 'routing', '[]')) x LIMIT 10000))
                OR (v_lead AND (c.peer_paused_at IS NOT NULL
                                OR EXISTS (SELECT 1 FROM submissions s
                                            WHERE s.credential_id = c.id
                                              AND s.status = 'in_review'
                                              AND s.stage = 'adjudication')))
             LIMIT 1000) x;
    RETURN json_build_object(
        'now_ms', (extract(epoch FROM now()) * 1000)::bigint,
        'users', v_users,
        'queue', _live_queue(v_creds),
        'subs', (SELECT coalesce(jsonb_agg(_live_submission(s)
                                           || jsonb_build_object('earner_id', s.earner_id)), '[]')
                   FROM submissions s
                  WHERE s.id = ANY(ARRAY(SELECT x::uuid FROM jsonb_array_elements_text(
                                             coalesce(p_req -> 'subs', '[]')) x LIMIT 10000))
                    AND s.earner_id IS NOT NULL),
        'routing', v_routing,
        'invalid', (SELECT coalesce(jsonb_agg(x), '[]')
                      FROM (SELECT x FROM jsonb_array_elements(coalesce(p_req -> 'check', '[]')) x
                             LIMIT 10000) y
                     WHERE auth_lookup(x ->> 'k', x ->> 'h') IS NULL));
END $$;
