-- SPDX-License-Identifier: Apache-2.0
-- 013_outbox.sql - notifications (issue 14 items 1, 2, 4): a transactional
-- outbox, email and webhooks.
--
-- Every event worth telling someone about becomes a row of `events`, written
-- by a trigger in the same transaction as the change that caused it, together
-- with one `outbox` row per destination: each enabled webhook subscribed to
-- the event's type, and each person who should get an email. No SQL function
-- of earlier migrations is redefined: the triggers watch the tables (and the
-- append-only audit log) those functions already write.
--
-- The server's delivery threads (server/outbox.h) take due rows with
-- FOR UPDATE SKIP LOCKED and a lease (several servers may run), deliver
-- outside any transaction, and record the outcome: done, or a retry at a
-- back-off the server computes (with jitter), or `dead` after the last
-- attempt. A lead or admin lists dead rows and sends them back to pending.
-- A delivery whose server died (kill -9) is taken again when its lease runs
-- out, with the same idempotency key (webhook-id: the event's id).

-- Events and destinations --------------------------------------------------

CREATE TABLE events (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    type       text NOT NULL CHECK (type ~ '^[a-z_]+(\.[a-z_]+)+$' AND length(type) <= 64),
    payload    jsonb NOT NULL CHECK (jsonb_typeof(payload) = 'object'),
    -- time-based events (a lease about to expire, a submission overdue) are
    -- found by a periodic scan on every server: the key makes each once only
    dedupe_key text UNIQUE CHECK (length(dedupe_key) <= 200),
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX events_created_idx ON events (created_at);

-- Webhook endpoints (admins). secret: Standard Webhooks "whsec_" + base64 of
-- the HMAC key; it must be readable to sign, so it is stored as given.
CREATE TABLE webhooks (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    url         text NOT NULL CHECK (length(url) BETWEEN 10 AND 2048),
    events      text[] NOT NULL CHECK (cardinality(events) BETWEEN 1 AND 32),
    secret      text NOT NULL CHECK (secret ~ '^whsec_[A-Za-z0-9+/]{32,88}={0,2}$'),
    description text CHECK (length(description) <= 500),
    created_by  uuid REFERENCES users (id),
    created_at  timestamptz NOT NULL DEFAULT now(),
    disabled_at timestamptz
);

-- One delivery: (event, webhook) or (event, person) or (event, address) for
-- mail to someone who has no account yet (an invitation).
-- reason: why this person gets it (earner, assessor, lead, invitee).
CREATE TABLE outbox (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id     uuid NOT NULL REFERENCES events (id),
    channel      text NOT NULL CHECK (channel IN ('webhook','email')),
    webhook_id   uuid REFERENCES webhooks (id),
    user_id      uuid REFERENCES users (id),
    address      text CHECK (length(address) BETWEEN 3 AND 320),
    reason       text CHECK (reason IN ('earner','assessor','lead','invitee')),
    status       text NOT NULL DEFAULT 'pending'
                 CHECK (status IN ('pending','done','dead','skipped')),
    attempts     int NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_at      timestamptz NOT NULL DEFAULT now(),
    locked_until timestamptz,
    last_status  int,
    last_error   text CHECK (length(last_error) <= 500),
    created_at   timestamptz NOT NULL DEFAULT now(),
    done_at      timestamptz,
    CHECK ((channel = 'webhook') = (webhook_id IS NOT NULL)),
    CHECK (channel = 'webhook' OR (user_id IS NULL) <> (address IS NULL))
);
CREATE INDEX outbox_due_idx ON outbox (next_at, id) WHERE status = 'pending';
CREATE INDEX outbox_dead_idx ON outbox (id) WHERE status = 'dead';
CREATE INDEX outbox_webhook_idx ON outbox (webhook_id, id) WHERE webhook_id IS NOT NULL;
CREATE INDEX outbox_event_idx ON outbox (event_id);

-- Every webhook attempt: the delivery log admins read.
CREATE TABLE webhook_attempts (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    outbox_id   bigint NOT NULL REFERENCES outbox (id),
    webhook_id  uuid NOT NULL REFERENCES webhooks (id),
    attempt     int NOT NULL,
    at          timestamptz NOT NULL DEFAULT now(),
    status      int,
    error       text CHECK (length(error) <= 500),
    duration_ms int
);
CREATE INDEX webhook_attempts_idx ON webhook_attempts (webhook_id, id DESC);

-- Mail: per-person preferences, the digest clock, unsubscribe links.
CREATE TABLE notify_prefs (
    user_id    uuid PRIMARY KEY REFERENCES users (id),
    email      boolean NOT NULL DEFAULT true,
    muted      text[] NOT NULL DEFAULT '{}' CHECK (cardinality(muted) <= 32),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- recipient: a user id, or "addr:" + lower-case address
CREATE TABLE mail_state (
    recipient    text PRIMARY KEY CHECK (length(recipient) <= 330),
    last_sent_at timestamptz,
    locked_until timestamptz
);

-- One per mail sent (the link in it); only the SHA-256 is kept.
CREATE TABLE unsubscribe_tokens (
    token_hash text PRIMARY KEY CHECK (token_hash ~ '^[0-9a-f]{64}$'),
    user_id    uuid NOT NULL REFERENCES users (id),
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX unsubscribe_tokens_created_idx ON unsubscribe_tokens (created_at);

-- The event types webhooks subscribe to and people may mute.
CREATE FUNCTION _event_types() RETURNS text[]
LANGUAGE sql IMMUTABLE AS $$
    SELECT '{submission.queued,review.claimed,submission.result,award.issued,award.revoked,assessor.recalibration_needed,assessor.qualification_regained,routing.peer_paused,routing.peer_resumed,adjudication.waiting,submission.overdue,review.lease_expiring}'::text[]
$$;

-- Emitting ------------------------------------------------------------------

-- Writes the event and its deliveries. p_mail: [{user_id, reason}] (at most
-- 1000 people). Returns the event's id, or NULL when p_dedupe was used before.
CREATE FUNCTION _outbox_emit(p_type text, p_payload jsonb, p_mail jsonb,
                             p_dedupe text DEFAULT NULL) RETURNS uuid
LANGUAGE plpgsql AS $$
DECLARE
    v_id uuid;
    n_hooks int;
    n_mail int;
BEGIN
    -- nobody to tell (the common case for claims without webhooks): no rows,
    -- no NOTIFY (it serialises commits)
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
    GET DIAGNOSTICS n_hooks = ROW_COUNT;
    INSERT INTO outbox (event_id, channel, user_id, reason)
    SELECT DISTINCT ON (m.user_id) v_id, 'email', m.user_id, m.reason
      FROM (SELECT (x ->> 'user_id')::uuid AS user_id, x ->> 'reason' AS reason
              FROM jsonb_array_elements(coalesce(p_mail, '[]')) x LIMIT 1000) m
      JOIN users u ON u.id = m.user_id AND u.disabled_at IS NULL
     ORDER BY m.user_id;
    GET DIAGNOSTICS n_mail = ROW_COUNT;
    -- wakes the delivery threads of every server at commit (webhooks at
    -- once; mail waits for its digest anyway, and the threads poll)
    IF n_hooks > 0 THEN
        PERFORM pg_notify('accord_outbox', '');
    END IF;
    RETURN v_id;
END $$;

CREATE FUNCTION _mail_to(p_users uuid[], p_reason text) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(jsonb_agg(jsonb_build_object('user_id', u, 'reason', p_reason)), '[]')
      FROM unnest(p_users) u WHERE u IS NOT NULL
$$;

-- Leads hear about routing, adjudication and overdue work.
CREATE FUNCTION _leads() RETURNS uuid[]
LANGUAGE sql STABLE AS $$
    SELECT coalesce(array_agg(id), '{}') FROM (
        SELECT id FROM users WHERE 'lead' = ANY(roles) AND disabled_at IS NULL
         ORDER BY created_at, id LIMIT 200) l
$$;

-- A submission's public facts: what its earner may be told about it.
CREATE FUNCTION _submission_event(s submissions) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object('submission_id', s.id, 'credential_id', s.credential_id,
                              'credential_title', c.title, 'attempt', s.attempt,
                              'max_attempts', c.max_attempts, 'status', s.status)
      FROM credentials c WHERE c.id = s.credential_id
$$;

-- Triggers ------------------------------------------------------------------

-- submissions: queued (earner: received; assessors with a grant: the queue
-- digest), result final, adjudication waiting.
CREATE FUNCTION _outbox_on_submission() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v jsonb;
    v_assessors uuid[];
BEGIN
    IF NEW.earner_id IS NULL THEN
        RETURN NULL; -- validity items are nobody's business
    END IF;
    v := _submission_event(NEW);
    IF TG_OP = 'INSERT' THEN
        IF NEW.status = 'queued' THEN
            SELECT coalesce(array_agg(g.user_id), '{}') INTO v_assessors
              FROM (SELECT g.user_id FROM assessor_grants g
                     WHERE g.credential_id = NEW.credential_id AND g.user_id <> NEW.earner_id
                     ORDER BY g.user_id LIMIT 1000) g;
            PERFORM _outbox_emit('submission.queued', v,
                                 _mail_to(ARRAY[NEW.earner_id], 'earner')
                                 || _mail_to(v_assessors, 'assessor'));
        END IF;
        RETURN NULL;
    END IF;
    IF OLD.status IS DISTINCT FROM NEW.status AND NEW.status IN ('returned', 'passed') THEN
        PERFORM _outbox_emit('submission.result',
                             v || jsonb_build_object('verdict',
                                                     CASE WHEN NEW.status = 'passed' THEN 'pass'
                                                          ELSE 'resubmit' END),
                             _mail_to(ARRAY[NEW.earner_id], 'earner'));
    END IF;
    IF OLD.stage IS DISTINCT FROM NEW.stage AND NEW.stage = 'adjudication' THEN
        PERFORM _outbox_emit('adjudication.waiting', v - 'status', _mail_to(_leads(), 'lead'));
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER submissions_outbox AFTER INSERT OR UPDATE ON submissions
    FOR EACH ROW EXECUTE FUNCTION _outbox_on_submission();

-- reviews: claimed (integrations only: the earner sees "in review" in the app).
CREATE FUNCTION _outbox_on_review() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    s submissions;
BEGIN
    IF NEW.stage = 'validity' THEN
        RETURN NULL;
    END IF;
    SELECT * INTO s FROM submissions WHERE id = NEW.submission_id;
    IF s.earner_id IS NULL THEN
        RETURN NULL;
    END IF;
    PERFORM _outbox_emit('review.claimed',
                         jsonb_build_object('review_id', NEW.id, 'submission_id', s.id,
                                            'credential_id', s.credential_id, 'stage', NEW.stage,
                                            'lease_expires_at', _ts(NEW.lease_expires_at)),
                         NULL);
    RETURN NULL;
END $$;

CREATE TRIGGER reviews_outbox AFTER INSERT ON reviews
    FOR EACH ROW EXECUTE FUNCTION _outbox_on_review();

-- awards and badge revocation
CREATE FUNCTION _outbox_on_award() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM _outbox_emit('award.issued',
                         jsonb_build_object('award_id', NEW.id, 'credential_id', NEW.credential_id,
                                            'credential_title',
                                            (SELECT title FROM credentials WHERE id = NEW.credential_id),
                                            'submission_id', NEW.submission_id,
                                            'earner_id', NEW.earner_id),
                         _mail_to(ARRAY[NEW.earner_id], 'earner'));
    RETURN NULL;
END $$;

CREATE TRIGGER awards_outbox AFTER INSERT ON awards
    FOR EACH ROW EXECUTE FUNCTION _outbox_on_award();

CREATE FUNCTION _outbox_on_badge() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    a awards;
BEGIN
    IF OLD.revoked_at IS NOT NULL OR NEW.revoked_at IS NULL OR NEW.award_id IS NULL THEN
        RETURN NULL;
    END IF;
    SELECT * INTO a FROM awards WHERE id = NEW.award_id;
    PERFORM _outbox_emit('award.revoked',
                         jsonb_build_object('award_id', a.id, 'credential_id', a.credential_id,
                                            'credential_title',
                                            (SELECT title FROM credentials WHERE id = a.credential_id),
                                            'earner_id', a.earner_id,
                                            'reason', NEW.revoke_reason),
                         _mail_to(ARRAY[a.earner_id], 'earner'));
    RETURN NULL;
END $$;

CREATE TRIGGER badges_outbox AFTER UPDATE OF revoked_at ON badges
    FOR EACH ROW EXECUTE FUNCTION _outbox_on_badge();

-- qualifications: flagged for recalibration, or qualified again after it
CREATE FUNCTION _outbox_on_qualification() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v jsonb;
BEGIN
    v := jsonb_build_object('user_id', NEW.user_id, 'rubric_id', NEW.rubric_id,
                            'rubric_title', (SELECT title FROM rubrics WHERE id = NEW.rubric_id));
    IF NEW.status = 'needs_recalibration'
       AND (TG_OP = 'INSERT' OR OLD.status IS DISTINCT FROM 'needs_recalibration') THEN
        PERFORM _outbox_emit('assessor.recalibration_needed', v,
                             _mail_to(ARRAY[NEW.user_id], 'assessor'));
    ELSIF TG_OP = 'UPDATE' AND NEW.status = 'qualified' AND OLD.status = 'needs_recalibration' THEN
        PERFORM _outbox_emit('assessor.qualification_regained', v,
                             _mail_to(ARRAY[NEW.user_id], 'assessor'));
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER qualifications_outbox AFTER INSERT OR UPDATE ON qualifications
    FOR EACH ROW EXECUTE FUNCTION _outbox_on_qualification();

-- routing: peer review paused or resumed (the audit row carries the reason)
CREATE FUNCTION _outbox_on_audit() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM _outbox_emit(CASE NEW.action WHEN 'routing.pause' THEN 'routing.peer_paused'
                                         ELSE 'routing.peer_resumed' END,
                         jsonb_build_object('credential_id', NEW.object_id,
                                            'credential_title',
                                            (SELECT title FROM credentials WHERE id = NEW.object_id),
                                            'reason', NEW.detail ->> 'reason'),
                         _mail_to(_leads(), 'lead'));
    RETURN NULL;
END $$;

CREATE TRIGGER audit_log_outbox AFTER INSERT ON audit_log
    FOR EACH ROW WHEN (NEW.action IN ('routing.pause', 'routing.resume'))
    EXECUTE FUNCTION _outbox_on_audit();

-- Time-based events, found by every server's scan; the dedupe key makes each
-- once only. Bounded per call. Returns how many were emitted.
CREATE FUNCTION outbox_scan(p_lease_warn_seconds int, p_turnaround_hours int) RETURNS int
LANGUAGE plpgsql AS $$
DECLARE
    n int := 0;
    x record;
BEGIN
    FOR x IN
        SELECT r.id, r.assessor_id, r.lease_expires_at, s.id AS sid, s.credential_id, c.title
          FROM reviews r JOIN submissions s ON s.id = r.submission_id
          JOIN credentials c ON c.id = s.credential_id
         WHERE r.status = 'active' AND r.stage <> 'validity'
           AND r.lease_expires_at > now()
           AND r.lease_expires_at <= now() + make_interval(secs => p_lease_warn_seconds)
           AND NOT EXISTS (SELECT 1 FROM events e WHERE e.dedupe_key = 'lease:' || r.id)
         ORDER BY r.lease_expires_at LIMIT 100
    LOOP
        IF _outbox_emit('review.lease_expiring',
                        jsonb_build_object('review_id', x.id, 'submission_id', x.sid,
                                           'credential_id', x.credential_id,
                                           'credential_title', x.title,
                                           'lease_expires_at', _ts(x.lease_expires_at)),
                        _mail_to(ARRAY[x.assessor_id], 'assessor'), 'lease:' || x.id) IS NOT NULL THEN
            n := n + 1;
        END IF;
    END LOOP;
    FOR x IN
        SELECT s.id, s.credential_id, s.attempt, s.created_at, c.title
          FROM submissions s JOIN credentials c ON c.id = s.credential_id
         WHERE s.status IN ('queued', 'in_review') AND s.earner_id IS NOT NULL
           AND s.created_at < now() - make_interval(hours => p_turnaround_hours)
           AND NOT EXISTS (SELECT 1 FROM events e WHERE e.dedupe_key = 'overdue:' || s.id)
         ORDER BY s.created_at LIMIT 100
    LOOP
        IF _outbox_emit('submission.overdue',
                        jsonb_build_object('submission_id', x.id, 'credential_id', x.credential_id,
                                           'credential_title', x.title, 'attempt', x.attempt,
                                           'submitted_at', _ts(x.created_at),
                                           'turnaround_hours', p_turnaround_hours),
                        _mail_to(_leads(), 'lead'), 'overdue:' || x.id) IS NOT NULL THEN
            n := n + 1;
        END IF;
    END LOOP;
    -- housekeeping, bounded per call: mail no server took within a week (no
    -- SMTP settings anywhere) is dropped; settled deliveries, their log and
    -- their events go after 90 days; unsubscribe links stop after a year
    UPDATE outbox SET status = 'skipped', done_at = now(),
                      last_error = 'no server mailed it within 7 days (no SMTP settings?)'
     WHERE id IN (SELECT id FROM outbox
                   WHERE status = 'pending' AND channel = 'email'
                     AND created_at < now() - interval '7 days' LIMIT 1000);
    DELETE FROM webhook_attempts
     WHERE id IN (SELECT id FROM webhook_attempts WHERE at < now() - interval '90 days' LIMIT 1000);
    DELETE FROM outbox o
     WHERE o.id IN (SELECT id FROM outbox WHERE status IN ('done', 'skipped')
                       AND created_at < now() - interval '90 days' LIMIT 1000)
       AND NOT EXISTS (SELECT 1 FROM webhook_attempts a WHERE a.outbox_id = o.id);
    DELETE FROM events e
     WHERE e.id IN (SELECT id FROM events WHERE created_at < now() - interval '90 days'
                     ORDER BY created_at LIMIT 1000)
       AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.event_id = e.id);
    DELETE FROM unsubscribe_tokens WHERE created_at < now() - interval '365 days';
    RETURN n;
END $$;

-- Delivery (the server's outbox threads) ---------------------------------------

-- Takes up to p_limit due webhook deliveries. Each is leased for its place
-- in the batch times one attempt's timeout, plus p_margin seconds: the thread
-- delivers them one after another. Returns [{id, event_id, type, created_at,
-- payload, url, secret, attempts, webhook_id}] in delivery order.
CREATE FUNCTION outbox_take_webhooks(p_limit int, p_timeout_ms int, p_margin int) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    v json;
BEGIN
    WITH due AS (
        SELECT o.id, row_number() OVER (ORDER BY o.next_at, o.id) AS n FROM (
            SELECT o.id, o.next_at FROM outbox o
             WHERE o.status = 'pending' AND o.channel = 'webhook' AND o.next_at <= now()
               AND (o.locked_until IS NULL OR o.locked_until < now())
             ORDER BY o.next_at, o.id
             LIMIT least(greatest(p_limit, 1), 100)
             FOR UPDATE SKIP LOCKED) o),
    taken AS (
        UPDATE outbox o
           SET locked_until = now() + make_interval(secs => due.n * p_timeout_ms / 1000.0 + p_margin),
               attempts = o.attempts + 1
          FROM due WHERE o.id = due.id
        RETURNING o.*, due.n)
    SELECT json_agg(json_build_object('id', t.id, 'event_id', e.id, 'type', e.type,
                                      'created_at', _ts(e.created_at), 'payload', e.payload,
                                      'url', w.url, 'secret', w.secret, 'attempts', t.attempts,
                                      'webhook_id', w.id)
                    ORDER BY t.n)
      INTO v
      FROM taken t JOIN events e ON e.id = t.event_id JOIN webhooks w ON w.id = t.webhook_id;
    RETURN coalesce(v, '[]');
END $$;

-- The outcome of one attempt at row p_id. p_retry_seconds: the back-off the
-- server drew; after p_max_attempts attempts a failure is final ('dead').
CREATE FUNCTION outbox_result(p_id bigint, p_ok boolean, p_status int, p_error text,
                              p_duration_ms int, p_retry_seconds float8, p_max_attempts int)
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    o outbox;
BEGIN
    SELECT * INTO o FROM outbox WHERE id = p_id FOR UPDATE;
    IF NOT FOUND OR o.status <> 'pending' THEN
        RETURN; -- already settled (a retry by hand, another server after a lease ran out)
    END IF;
    IF o.channel = 'webhook' THEN
        INSERT INTO webhook_attempts (outbox_id, webhook_id, attempt, status, error, duration_ms)
        VALUES (o.id, o.webhook_id, o.attempts, p_status, left(p_error, 500), p_duration_ms);
    END IF;
    UPDATE outbox
       SET status = CASE WHEN p_ok THEN 'done'
                         WHEN attempts >= p_max_attempts THEN 'dead' ELSE 'pending' END,
           next_at = CASE WHEN p_ok THEN next_at
                          ELSE now() + make_interval(secs => greatest(p_retry_seconds, 0)) END,
           locked_until = NULL, last_status = p_status, last_error = left(p_error, 500),
           done_at = CASE WHEN p_ok THEN now() END
     WHERE id = p_id;
END $$;

-- Mail: the recipients whose digest is due (their oldest pending mail waited
-- p_delay seconds, their last mail went p_interval seconds ago or never),
-- each locked for p_lease_seconds. Returns [{recipient, user_id, address,
-- name, items: [{id, type, reason, created_at, payload}], waiting:
-- [{credential_id, title, count}]}]. Rows for people who turned email off,
-- muted the type or were disabled are skipped here.
CREATE FUNCTION outbox_take_mail(p_limit int, p_interval int, p_delay float8,
                                 p_lease_seconds int) RETURNS json
-- (p_lease_seconds: per recipient, times its place in the batch)
LANGUAGE plpgsql AS $$
DECLARE
    v json;
BEGIN
    UPDATE outbox o SET status = 'skipped', done_at = now()
      FROM users u LEFT JOIN notify_prefs p ON p.user_id = u.id
     WHERE o.status = 'pending' AND o.channel = 'email' AND o.user_id = u.id
       AND (u.disabled_at IS NOT NULL OR NOT coalesce(p.email, true)
            OR (SELECT type FROM events WHERE id = o.event_id) = ANY(coalesce(p.muted, '{}')));
    INSERT INTO mail_state (recipient)
    SELECT DISTINCT coalesce(o.user_id::text, 'addr:' || lower(o.address))
      FROM outbox o
     WHERE o.status = 'pending' AND o.channel = 'email' AND o.next_at <= now()
    ON CONFLICT DO NOTHING;
    WITH due AS (
      SELECT d.recipient, row_number() OVER () AS n FROM (
        SELECT m.recipient FROM mail_state m
         WHERE (m.locked_until IS NULL OR m.locked_until < now())
           AND (m.last_sent_at IS NULL
                OR m.last_sent_at <= now() - make_interval(secs => p_interval))
           AND EXISTS (SELECT 1 FROM outbox o
                        WHERE o.status = 'pending' AND o.channel = 'email'
                          AND o.next_at <= now()
                          AND coalesce(o.user_id::text, 'addr:' || lower(o.address)) = m.recipient
                          AND o.created_at <= now() - make_interval(secs => p_delay))
         LIMIT least(greatest(p_limit, 1), 50)
         FOR UPDATE SKIP LOCKED) d),
    taken AS (
        UPDATE mail_state m SET locked_until = now() + make_interval(secs => due.n * p_lease_seconds)
          FROM due WHERE m.recipient = due.recipient
        RETURNING m.recipient)
    SELECT json_agg(r) INTO v FROM (
        SELECT t.recipient,
               u.id AS user_id,
               coalesce(u.email, (SELECT o.address FROM outbox o
                                   WHERE 'addr:' || lower(o.address) = t.recipient LIMIT 1)) AS address,
               u.name,
               (SELECT json_agg(json_build_object('id', o.id, 'type', e.type, 'reason', o.reason,
                                                  'attempts', o.attempts,
                                                  'created_at', _ts(e.created_at),
                                                  'payload', e.payload) ORDER BY o.id)
                  FROM (SELECT * FROM outbox o
                         WHERE o.status = 'pending' AND o.channel = 'email' AND o.next_at <= now()
                           AND coalesce(o.user_id::text, 'addr:' || lower(o.address)) = t.recipient
                         ORDER BY o.id LIMIT 50) o
                  JOIN events e ON e.id = o.event_id) AS items,
               (SELECT json_agg(json_build_object('credential_id', c.id, 'title', c.title,
                                                  'count', (SELECT count(*) FROM submissions s
                                                             WHERE s.credential_id = c.id
                                                               AND s.status = 'queued'))
                                ORDER BY c.title, c.id)
                  FROM credentials c
                 WHERE u.id IS NOT NULL
                   AND c.id IN (SELECT (e.payload ->> 'credential_id')::uuid
                                  FROM outbox o JOIN events e ON e.id = o.event_id
                                 WHERE o.user_id = u.id AND o.status = 'pending'
                                   AND o.reason = 'assessor' AND e.type = 'submission.queued')) AS waiting
          FROM taken t LEFT JOIN users u ON u.id::text = t.recipient) r;
    RETURN coalesce(v, '[]');
END $$;

-- After a mail attempt for p_recipient covering rows p_ids (p_sent: false
-- when nothing was left to say, e.g. the queue emptied). On success the
-- digest clock restarts and the rows are done (an invitation's link is wiped:
-- the mail was its only reason to be kept). p_token_hash: the unsubscribe
-- link in the mail (kept only when it was sent).
CREATE FUNCTION outbox_mail_result(p_recipient text, p_ids bigint[], p_ok boolean, p_sent boolean,
                                   p_error text, p_retry_seconds float8, p_max_attempts int,
                                   p_token_hash text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF p_ok THEN
        UPDATE outbox SET status = 'done', done_at = now(), attempts = attempts + 1,
                          last_error = NULL
         WHERE id = ANY(p_ids) AND status = 'pending';
        UPDATE mail_state
           SET last_sent_at = CASE WHEN p_sent THEN now() ELSE last_sent_at END,
               locked_until = NULL
         WHERE recipient = p_recipient;
        IF p_token_hash IS NOT NULL AND _is_uuid(p_recipient) THEN
            INSERT INTO unsubscribe_tokens (token_hash, user_id)
            VALUES (p_token_hash, p_recipient::uuid) ON CONFLICT DO NOTHING;
        END IF;
        UPDATE events e SET payload = e.payload - 'url'
          FROM outbox o WHERE o.id = ANY(p_ids) AND e.id = o.event_id
           AND e.type = 'invitation.created';
    ELSE
        UPDATE outbox
           SET attempts = attempts + 1,
               status = CASE WHEN attempts + 1 >= p_max_attempts THEN 'dead' ELSE 'pending' END,
               next_at = now() + make_interval(secs => greatest(p_retry_seconds, 0)),
               last_error = left(p_error, 500)
         WHERE id = ANY(p_ids) AND status = 'pending';
        UPDATE mail_state SET locked_until = NULL WHERE recipient = p_recipient;
    END IF;
END $$;

-- The API -------------------------------------------------------------------

CREATE FUNCTION _webhook_json(w webhooks) RETURNS json
LANGUAGE sql STABLE AS $$
    SELECT json_build_object('id', w.id, 'url', w.url, 'events', to_json(w.events),
                             'description', w.description, 'enabled', w.disabled_at IS NULL,
                             'created_at', _ts(w.created_at))
$$;

-- POST /v1/webhooks (admins). The server checked and normalised the URL and
-- made the secret when none was given; the answer shows the secret once.
CREATE FUNCTION api_webhook_create(p_token text, p_body jsonb, p_url text, p_secret text)
RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    v_me users := _auth_role(p_token, '{admin}');
    b jsonb := _body(p_body);
    v_events text[];
    v_desc text := _j_text(b -> 'description', 'description', false, 500);
    w webhooks;
BEGIN
    PERFORM _only_keys(b, '{url,events,secret,description}', 'field');
    IF jsonb_typeof(b -> 'events') IS DISTINCT FROM 'array'
       OR jsonb_array_length(b -> 'events') NOT BETWEEN 1 AND 32 THEN
        PERFORM _bad('events must be an array of 1 to 32 event types (or ["*"])', 'invalid_events');
    END IF;
    SELECT array_agg(DISTINCT x) INTO v_events FROM jsonb_array_elements_text(b -> 'events') x;
    IF EXISTS (SELECT 1 FROM unnest(v_events) x WHERE x <> '*' AND x <> ALL(_event_types())) THEN
        PERFORM _bad('unknown event type: events are ' || array_to_string(_event_types(), ', ')
                     || ' (or *)', 'invalid_events');
    END IF;
    IF (SELECT count(*) FROM webhooks WHERE disabled_at IS NULL) >= 100 THEN
        RAISE EXCEPTION 'at most 100 webhooks: delete some first'
            USING ERRCODE = 'AC422', DETAIL = 'too_many_webhooks';
    END IF;
    INSERT INTO webhooks (url, events, secret, description, created_by)
    VALUES (p_url, v_events, p_secret, v_desc, v_me.id) RETURNING * INTO w;
    INSERT INTO audit_log (actor_id, action, object_type, object_id, detail)
    VALUES (v_me.id, 'webhook.create', 'webhook', w.id,
            jsonb_build_object('url', w.url, 'events', to_jsonb(w.events)));
    RETURN _webhook_json(w)::jsonb || jsonb_build_object('secret', w.secret);
END $$;

CREATE FUNCTION api_webhook_list(p_token text) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    v_me users := _auth_role(p_token, '{admin}');
BEGIN
    RETURN json_build_object('webhooks', coalesce(
        (SELECT json_agg(_webhook_json(w) ORDER BY w.created_at, w.id)
           FROM webhooks w WHERE w.disabled_at IS NULL), '[]'));
END $$;

CREATE FUNCTION _webhook_find(p_id uuid) RETURNS webhooks
LANGUAGE plpgsql AS $$
DECLARE
    w webhooks;
BEGIN
    SELECT * INTO w FROM webhooks WHERE id = p_id AND disabled_at IS NULL;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'webhook not found' USING ERRCODE = 'AC404', DETAIL = 'not_found';
    END IF;
    RETURN w;
END $$;

CREATE FUNCTION api_webhook_get(p_token text, p_id uuid) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    v_me users := _auth_role(p_token, '{admin}');
BEGIN
    RETURN _webhook_json(_webhook_find(p_id));
END $$;

-- DELETE /v1/webhooks/{id}: no more deliveries; pending ones are dropped.
CREATE FUNCTION api_webhook_delete(p_token text, p_id uuid) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    v_me users := _auth_role(p_token, '{admin}');
    w webhooks := _webhook_find(p_id);
BEGIN
    UPDATE webhooks SET disabled_at = now() WHERE id = w.id;
    UPDATE outbox SET status = 'skipped', done_at = now(), last_error = 'webhook deleted'
     WHERE webhook_id = w.id AND status IN ('pending', 'dead');
    INSERT INTO audit_log (actor_id, action, object_type, object_id)
    VALUES (v_me.id, 'webhook.delete', 'webhook', w.id);
    RETURN NULL;
END $$;

-- GET /v1/webhooks/{id}/deliveries?page= : the delivery log, newest first.
CREATE FUNCTION api_webhook_deliveries(p_token text, p_id uuid, p_query jsonb) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    v_me users := _auth_role(p_token, '{admin}');
    w webhooks := _webhook_find(p_id);
    v_page int := _q_page(p_query);
    v_rows json;
    v_n int;
BEGIN
    PERFORM _q_unknown(p_query, '{page}');
    SELECT json_agg(x ORDER BY x.id DESC), count(*) INTO v_rows, v_n FROM (
        SELECT a.id, json_build_object('event_id', o.event_id, 'type', e.type,
                                       'delivery_id', o.id, 'attempt', a.attempt,
                                       'at', _ts(a.at), 'status', a.status, 'error', a.error,
                                       'duration_ms', a.duration_ms,
                                       'delivery_status', o.status) AS j
          FROM webhook_attempts a JOIN outbox o ON o.id = a.outbox_id
          JOIN events e ON e.id = o.event_id
         WHERE a.webhook_id = w.id
         ORDER BY a.id DESC OFFSET (v_page - 1) * 50 LIMIT 51) x;
    RETURN json_build_object(
        'deliveries', coalesce((SELECT json_agg(y.j) FROM (
                                  SELECT x -> 'j' AS j FROM json_array_elements(v_rows) x
                                  LIMIT 50) y), '[]'),
        'page', v_page, 'per_page', 50, 'has_more', coalesce(v_n, 0) > 50);
END $$;

-- What a dead delivery shows: never the payload (it may name people), only
-- what an operator needs to decide on a retry.
CREATE FUNCTION _dead_json(o outbox) RETURNS json
LANGUAGE sql STABLE AS $$
    SELECT json_build_object('id', o.id::text, 'event_id', o.event_id, 'type', e.type,
                             'channel', o.channel, 'webhook_id', o.webhook_id,
                             'user_id', o.user_id, 'attempts', o.attempts,
                             'last_status', o.last_status, 'last_error', o.last_error,
                             'created_at', _ts(o.created_at), 'status', o.status)
      FROM events e WHERE e.id = o.event_id
$$;

-- GET /v1/outbox/dead?page= (leads and admins): deliveries that gave up.
CREATE FUNCTION api_outbox_dead(p_token text, p_query jsonb) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    v_me users := _auth_role(p_token, '{admin,lead}');
    v_page int := _q_page(p_query);
    v_rows json;
    v_n int;
BEGIN
    PERFORM _q_unknown(p_query, '{page}');
    SELECT json_agg(_dead_json(o) ORDER BY o.id DESC), count(*) INTO v_rows, v_n
      FROM (SELECT * FROM outbox WHERE status = 'dead'
             ORDER BY id DESC OFFSET (v_page - 1) * 50 LIMIT 51) o;
    RETURN json_build_object(
        'deliveries', coalesce((SELECT json_agg(x) FROM (SELECT x FROM json_array_elements(v_rows) x
                                                          LIMIT 50) y), '[]'),
        'page', v_page, 'per_page', 50, 'has_more', coalesce(v_n, 0) > 50);
END $$;

-- POST /v1/outbox/retry {ids: ["..."]} or {all: true} (leads and admins):
-- dead deliveries go back to pending with a fresh set of attempts.
CREATE FUNCTION api_outbox_retry(p_token text, p_body jsonb) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    v_me users := _auth_role(p_token, '{admin,lead}');
    b jsonb := _body(p_body);
    v_ids bigint[];
    v_all boolean := _j_bool(b -> 'all', 'all', false);
    v_n int;
BEGIN
    PERFORM _only_keys(b, '{ids,all}', 'field');
    IF b ? 'ids' THEN
        IF jsonb_typeof(b -> 'ids') <> 'array' OR jsonb_array_length(b -> 'ids') NOT BETWEEN 1 AND 500
           OR EXISTS (SELECT 1 FROM jsonb_array_elements(b -> 'ids') x
                       WHERE jsonb_typeof(x) <> 'string' OR x #>> '{}' !~ '^[0-9]{1,18}$') THEN
            PERFORM _bad('ids must be an array of 1 to 500 delivery ids (strings of digits)');
        END IF;
        SELECT array_agg((x #>> '{}')::bigint) INTO v_ids FROM jsonb_array_elements(b -> 'ids') x;
    ELSIF NOT v_all THEN
        PERFORM _bad('give ids (dead delivery ids) or "all": true');
    END IF;
    WITH r AS (
        UPDATE outbox SET status = 'pending', attempts = 0, next_at = now(), locked_until = NULL
         WHERE status = 'dead' AND (v_ids IS NULL OR id = ANY(v_ids))
        RETURNING id)
    SELECT count(*) INTO v_n FROM r;
    INSERT INTO audit_log (actor_id, action, object_type, object_id, detail)
    VALUES (v_me.id, 'outbox.retry', 'outbox', NULL,
            jsonb_build_object('ids', to_jsonb(v_ids), 'all', v_all, 'count', v_n));
    IF v_n > 0 THEN
        PERFORM pg_notify('accord_outbox', '');
    END IF;
    RETURN json_build_object('retried', v_n);
END $$;

-- GET/PUT /v1/me/notifications: {email, muted, types}
CREATE FUNCTION _prefs_json(p_user uuid) RETURNS json
LANGUAGE sql STABLE AS $$
    SELECT json_build_object('email', coalesce(p.email, true),
                             'muted', to_json(coalesce(p.muted, '{}')),
                             'types', to_json(_event_types()))
      FROM (SELECT 1) one LEFT JOIN notify_prefs p ON p.user_id = p_user
$$;

CREATE FUNCTION api_my_notifications(p_token text) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    v_me users := _auth(p_token);
BEGIN
    RETURN _prefs_json(v_me.id);
END $$;

CREATE FUNCTION api_my_notifications_put(p_token text, p_body jsonb) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    v_me users := _auth(p_token);
    b jsonb := _body(p_body);
    v_email boolean;
    v_muted text[];
BEGIN
    PERFORM _only_keys(b, '{email,muted}', 'field');
    IF b ? 'email' THEN
        v_email := _j_bool(b -> 'email', 'email', true);
    END IF;
    IF b ? 'muted' THEN
        IF jsonb_typeof(b -> 'muted') <> 'array' OR jsonb_array_length(b -> 'muted') > 32
           OR EXISTS (SELECT 1 FROM jsonb_array_elements(b -> 'muted') x
                       WHERE jsonb_typeof(x) <> 'string' OR x #>> '{}' <> ALL(_event_types())) THEN
            PERFORM _bad('muted must be an array of event types: '
                         || array_to_string(_event_types(), ', '));
        END IF;
        SELECT coalesce(array_agg(DISTINCT x #>> '{}'), '{}') INTO v_muted
          FROM jsonb_array_elements(b -> 'muted') x;
    END IF;
    INSERT INTO notify_prefs AS p (user_id, email, muted)
    VALUES (v_me.id, coalesce(v_email, true), coalesce(v_muted, '{}'))
    ON CONFLICT (user_id) DO UPDATE
       SET email = coalesce(v_email, p.email), muted = coalesce(v_muted, p.muted),
           updated_at = now();
    RETURN _prefs_json(v_me.id);
END $$;

-- The one-click unsubscribe (RFC 8058): the link's token, from the query.
-- GET tells what the link would do; POST does it. Unknown links are 404.
CREATE FUNCTION api_unsubscribe(p_query jsonb, p_do boolean) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    v_token text := p_query ->> 'token';
    v_user uuid;
BEGIN
    PERFORM _q_unknown(p_query, '{token}');
    IF v_token IS NULL OR v_token !~ '^[0-9a-f]{64}$' THEN
        RAISE EXCEPTION 'this unsubscribe link is not valid'
            USING ERRCODE = 'AC404', DETAIL = 'not_found';
    END IF;
    SELECT user_id INTO v_user FROM unsubscribe_tokens
     WHERE token_hash = encode(sha256(convert_to(v_token, 'UTF8')), 'hex');
    IF NOT FOUND THEN
        RAISE EXCEPTION 'this unsubscribe link is not valid'
            USING ERRCODE = 'AC404', DETAIL = 'not_found';
    END IF;
    IF p_do THEN
        INSERT INTO notify_prefs AS p (user_id, email) VALUES (v_user, false)
        ON CONFLICT (user_id) DO UPDATE SET email = false, updated_at = now();
        INSERT INTO audit_log (actor_id, action, object_type, object_id)
        VALUES (v_user, 'notifications.unsubscribe', 'user', v_user);
    END IF;
    RETURN json_build_object('email', (SELECT coalesce(p.email, true) FROM (SELECT 1) one
                                        LEFT JOIN notify_prefs p ON p.user_id = v_user),
                             'unsubscribed', p_do OR NOT coalesce((SELECT email FROM notify_prefs
                                                                    WHERE user_id = v_user), true));
END $$;

-- Invitations (issue 10) are mailed when the server has SMTP settings: POST
-- /v1/invitations then calls this instead of api_invitation_create (same
-- answer). The link (with its secret) stays in the event only until the mail
-- has gone (outbox_mail_result wipes it); never to webhooks.
CREATE FUNCTION api_invitation_create_mail(p_token text, p_body jsonb, p_secret_hash text,
                                           p_url text) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    v json := api_invitation_create(p_token, p_body, p_secret_hash);
    v_event uuid;
BEGIN
    INSERT INTO events (type, payload)
    VALUES ('invitation.created',
            jsonb_build_object('invitation_id', v ->> 'id', 'url', p_url,
                               'organisation', v ->> 'org',
                               'invited_by', (SELECT name FROM users
                                               WHERE id = (v ->> 'invited_by')::uuid)))
    RETURNING id INTO v_event;
    INSERT INTO outbox (event_id, channel, address, reason)
    VALUES (v_event, 'email', v ->> 'email', 'invitee');
    PERFORM pg_notify('accord_outbox', '');
    RETURN v;
END $$;
