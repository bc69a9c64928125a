-- SPDX-License-Identifier: Apache-2.0
-- 001_schema.sql - accord's tables, indexes and constraints.
--
-- Run by the server inside one transaction. Conventions:
--   * ids are uuid (gen_random_uuid()), timestamps timestamptz (UTC on output);
--   * every text column is bounded by a CHECK, so nothing unbounded is stored
--     even if a function forgets a check;
--   * the review queue is the set of submissions with status 'queued' (plus
--     'in_review' ones whose lease expired); see the partial indexes below.

-- Users and tokens ----------------------------------------------------------

CREATE TABLE users (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    email       text NOT NULL CHECK (length(email) BETWEEN 3 AND 320),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 320),
    roles       text[] NOT NULL
                CHECK (cardinality(roles) >= 1
                       AND roles <@ ARRAY['earner','assessor','expert','lead','admin']::text[]),
    org         text CHECK (length(org) BETWEEN 1 AND 320),
    created_at  timestamptz NOT NULL DEFAULT now()
);
-- emails are unique regardless of case
CREATE UNIQUE INDEX users_email_key ON users (lower(email));

-- A token is stored only as the hex SHA-256 of the bearer token.
CREATE TABLE tokens (
    token_hash  text PRIMARY KEY CHECK (token_hash ~ '^[0-9a-f]{64}$'),
    user_id     uuid NOT NULL REFERENCES users (id),
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);
CREATE INDEX tokens_user_idx ON tokens (user_id);

-- Rubrics and credentials ----------------------------------------------------

-- criteria is the normalized array the server validated:
-- [{key,title,description,levels:[{value,label}] sorted ascending}]
CREATE TABLE rubrics (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    title       text NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
    description text CHECK (length(description) <= 5000),
    criteria    jsonb NOT NULL CHECK (jsonb_typeof(criteria) = 'array'),
    created_by  uuid REFERENCES users (id),
    created_at  timestamptz NOT NULL DEFAULT now(),
    -- calibration settings (API: GET/PUT /v1/rubrics/{id}/calibration)
    cal_exact_min    numeric NOT NULL DEFAULT 0.70 CHECK (cal_exact_min BETWEEN 0 AND 1),
    cal_adjacent_min numeric NOT NULL DEFAULT 0.95 CHECK (cal_adjacent_min BETWEEN 0 AND 1),
    cal_verdict_min  numeric NOT NULL DEFAULT 0.80 CHECK (cal_verdict_min BETWEEN 0 AND 1),
    cal_set_size     int NOT NULL DEFAULT 5 CHECK (cal_set_size BETWEEN 1 AND 50),
    cal_window       int NOT NULL DEFAULT 20 CHECK (cal_window BETWEEN 1 AND 500),
    cal_min_items    int NOT NULL DEFAULT 8 CHECK (cal_min_items BETWEEN 1 AND 500),
    cal_verdict_level int   -- NULL: the middle level of the first criterion
);

-- Review policy: second_score_rate NULL = the stakes default (0.20 low, 0.25
-- high). peer_paused_at: peer review paused (low stakes) since then;
-- routing_state: the last reliability estimate (pairs, kappa, ci, share,
-- reason) written by routing_update().
CREATE TABLE credentials (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    title          text NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
    description    text CHECK (length(description) <= 5000),
    stakes         text NOT NULL CHECK (stakes IN ('low','high')),
    rubric_id      uuid NOT NULL REFERENCES rubrics (id),
    evidence       jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(evidence) = 'array'),
    min_level_each int NOT NULL,
    max_attempts   int NOT NULL DEFAULT 3 CHECK (max_attempts BETWEEN 1 AND 20),
    created_by     uuid REFERENCES users (id),
    created_at     timestamptz NOT NULL DEFAULT now(),
    validity_rate         numeric NOT NULL DEFAULT 0.05 CHECK (validity_rate BETWEEN 0 AND 1),
    second_score_rate     numeric CHECK (second_score_rate BETWEEN 0 AND 1),
    second_score_floor    numeric NOT NULL DEFAULT 0.10 CHECK (second_score_floor BETWEEN 0 AND 1),
    reliability_threshold numeric NOT NULL DEFAULT 0.60 CHECK (reliability_threshold BETWEEN -1 AND 1),
    min_pairs             int NOT NULL DEFAULT 30 CHECK (min_pairs BETWEEN 1 AND 100000),
    peer_wait_hours       numeric NOT NULL DEFAULT 72 CHECK (peer_wait_hours BETWEEN 0 AND 8760),
    peer_paused_at        timestamptz,
    routing_state         jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX credentials_title_idx ON credentials (title);

-- Who may review what. One grant per (credential, user); granting again replaces.
CREATE TABLE assessor_grants (
    credential_id uuid NOT NULL REFERENCES credentials (id),
    user_id       uuid NOT NULL REFERENCES users (id),
    pool          text NOT NULL CHECK (pool IN ('peer','expert')),
    waive_award   boolean NOT NULL DEFAULT false,
    granted_by    uuid REFERENCES users (id),
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (credential_id, user_id)
);
-- the claim path reads "my grants"
CREATE INDEX assessor_grants_user_idx ON assessor_grants (user_id, credential_id);

-- Artifacts -------------------------------------------------------------------

-- Either uploaded bytes (sha256 + bytes, content-addressed on disk) or an
-- external URL.
CREATE TABLE artifacts (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    owner_id    uuid NOT NULL REFERENCES users (id),
    kind        text NOT NULL CHECK (kind IN ('video','plan','reflection','other')),
    media_type  text CHECK (length(media_type) <= 255),
    filename    text CHECK (length(filename) <= 255),
    bytes       bigint CHECK (bytes >= 0),
    sha256      text CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    url         text CHECK (length(url) <= 2048),
    title       text CHECK (length(title) <= 200),
    created_at  timestamptz NOT NULL DEFAULT now(),
    CHECK ((url IS NULL) = (sha256 IS NOT NULL AND bytes IS NOT NULL))
);
CREATE INDEX artifacts_owner_idx ON artifacts (owner_id);

-- A resumable upload (tus) in progress; see 003_uploads.sql.
CREATE TABLE uploads (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    owner_id      uuid NOT NULL REFERENCES users (id),
    kind          text NOT NULL CHECK (kind IN ('video','plan','reflection','other')),
    media_type    text NOT NULL CHECK (length(media_type) BETWEEN 1 AND 255),
    filename      text CHECK (length(filename) BETWEEN 1 AND 255),
    upload_length bigint NOT NULL CHECK (upload_length >= 1),
    upload_offset bigint NOT NULL DEFAULT 0
                  CHECK (upload_offset >= 0 AND upload_offset <= upload_length),
    sha256        text CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    lease_id      uuid,
    lease_until   timestamptz,
    artifact_id   uuid UNIQUE REFERENCES artifacts (id),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CHECK (sha256 IS NULL OR upload_offset = upload_length),
    CHECK (artifact_id IS NULL OR sha256 IS NOT NULL)
);
CREATE INDEX uploads_owner_idx ON uploads (owner_id);

-- Anchors (calibration) -------------------------------------------------------

-- Anchors: evidence with master scores, per rubric. Never shown to earners.
CREATE TABLE anchors (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    rubric_id       uuid NOT NULL REFERENCES rubrics (id),
    master_feedback text NOT NULL CHECK (length(master_feedback) <= 20000),
    created_by      uuid REFERENCES users (id),
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX anchors_rubric_idx ON anchors (rubric_id, created_at, id);

CREATE TABLE anchor_artifacts (
    anchor_id   uuid NOT NULL REFERENCES anchors (id),
    artifact_id uuid NOT NULL REFERENCES artifacts (id),
    position    int NOT NULL,
    PRIMARY KEY (anchor_id, artifact_id)
);
CREATE INDEX anchor_artifacts_artifact_idx ON anchor_artifacts (artifact_id);

CREATE TABLE anchor_scores (
    anchor_id uuid NOT NULL REFERENCES anchors (id),
    criterion text NOT NULL CHECK (length(criterion) <= 64),
    position  int NOT NULL,
    level     int NOT NULL,
    rationale text CHECK (length(rationale) <= 5000),
    evidence  jsonb NOT NULL DEFAULT '[]',
    PRIMARY KEY (anchor_id, criterion)
);

-- Submissions, reviews, scores, awards ------------------------------------------

CREATE TABLE awards (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    credential_id  uuid NOT NULL REFERENCES credentials (id),
    earner_id      uuid NOT NULL REFERENCES users (id),
    submission_id  uuid NOT NULL,
    issued_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (earner_id, credential_id)
);

-- status: queued -> in_review -> returned | passed (release / lease expiry put
-- an in_review submission back to queued / claimable).
-- earner_org is the earner's organisation at submission time, copied here so
-- the claim path needs no join to users.
-- lease_expires_at / current_review_id describe the active review (in_review).
-- A validity item (calibration) is a submission with status 'validity', no
-- earner, tied to an anchor: no queue, list or report ever selects that status.
-- Stages: first -> (second -> (adjudication)). A submission waiting for a
-- second score or an adjudication stays 'in_review' (the earner sees in_review
-- and no result) with stage 'second' or 'adjudication' and no current review.
CREATE TABLE submissions (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    credential_id     uuid NOT NULL REFERENCES credentials (id),
    earner_id         uuid REFERENCES users (id),
    earner_org        text,
    attempt           int NOT NULL DEFAULT 1 CHECK (attempt BETWEEN 1 AND 20),
    previous_id       uuid REFERENCES submissions (id),
    status            text NOT NULL DEFAULT 'queued'
                      CHECK (status IN ('queued','in_review','returned','passed','validity')),
    queued_at         timestamptz NOT NULL DEFAULT now(),
    lease_expires_at  timestamptz,
    current_review_id uuid,
    decided_review_id uuid,
    award_id          uuid REFERENCES awards (id),
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    anchor_id         uuid REFERENCES anchors (id),
    stage             text NOT NULL DEFAULT 'first'
                      CHECK (stage IN ('first','second','adjudication')),
    routing           jsonb,
    CONSTRAINT submissions_earner_or_validity
        CHECK ((earner_id IS NULL) = (status = 'validity'))
);
-- One chain of attempts per (earner, credential): latest = highest attempt.
-- Also the safety net against two concurrent first submissions.
CREATE UNIQUE INDEX submissions_earner_cred_attempt_key
    ON submissions (earner_id, credential_id, attempt);

-- The claim path. Oldest first within one credential (the common case: an
-- assessor with one grant, or a credential_id filter) ...
CREATE INDEX submissions_queue_cred_idx
    ON submissions (credential_id, queued_at, id) WHERE status = 'queued';
-- ... and across credentials (assessor with several grants).
CREATE INDEX submissions_queue_idx
    ON submissions (queued_at, id) WHERE status = 'queued';
-- Leases that may have expired (small: only submissions under review).
CREATE INDEX submissions_leased_idx
    ON submissions (lease_expires_at) WHERE status = 'in_review';
-- second scores and adjudications waiting for a claim (small)
CREATE INDEX submissions_stage_wait_idx
    ON submissions (queued_at, id) WHERE status = 'in_review' AND current_review_id IS NULL;
CREATE INDEX submissions_anchor_idx ON submissions (anchor_id) WHERE anchor_id IS NOT NULL;

CREATE TABLE submission_artifacts (
    submission_id uuid NOT NULL REFERENCES submissions (id),
    artifact_id   uuid NOT NULL REFERENCES artifacts (id),
    position      int NOT NULL,
    PRIMARY KEY (submission_id, artifact_id)
);
-- artifact read access: "a review of a submission containing it"
CREATE INDEX submission_artifacts_artifact_idx ON submission_artifacts (artifact_id);

-- status: active -> submitted | released | expired (taken over after its lease ran out)
-- pool: the reviewer's capacity ('lead' = adjudication by a lead); routing:
-- why the review went where it went.
CREATE TABLE reviews (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    submission_id    uuid NOT NULL REFERENCES submissions (id),
    assessor_id      uuid NOT NULL REFERENCES users (id),
    status           text NOT NULL DEFAULT 'active'
                     CHECK (status IN ('active','submitted','released','expired')),
    claimed_at       timestamptz NOT NULL DEFAULT now(),
    lease_expires_at timestamptz NOT NULL,
    verdict          text CHECK (verdict IN ('pass','resubmit')),
    feedback         text CHECK (length(feedback) <= 20000),
    scored_at        timestamptz,
    ended_at         timestamptz,
    stage            text NOT NULL DEFAULT 'first'
                     CHECK (stage IN ('first','second','adjudication','validity')),
    pool             text CHECK (pool IN ('peer','expert','lead')),
    routing          jsonb
);
-- eligibility ("has not reviewed this attempt") and artifact access
CREATE INDEX reviews_submission_assessor_idx ON reviews (submission_id, assessor_id);
CREATE INDEX reviews_assessor_idx ON reviews (assessor_id);

-- The long table (review, criterion, level) the reliability statistics read.
CREATE TABLE review_scores (
    review_id  uuid NOT NULL REFERENCES reviews (id),
    criterion  text NOT NULL CHECK (length(criterion) <= 64),
    position   int NOT NULL,
    level      int NOT NULL,
    comment    text CHECK (length(comment) <= 5000),
    evidence   jsonb NOT NULL DEFAULT '[]',
    PRIMARY KEY (review_id, criterion)
);

ALTER TABLE awards
    ADD FOREIGN KEY (submission_id) REFERENCES submissions (id);

-- Completed low-stakes peer/expert pairs: what the reliability estimate reads.
CREATE TABLE score_pairs (
    credential_id    uuid NOT NULL REFERENCES credentials (id),
    submission_id    uuid NOT NULL REFERENCES submissions (id),
    peer_review_id   uuid NOT NULL REFERENCES reviews (id),
    expert_review_id uuid NOT NULL REFERENCES reviews (id),
    peer_scored_at   timestamptz NOT NULL,
    paired_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (submission_id, expert_review_id)
);
CREATE INDEX score_pairs_cred_idx ON score_pairs (credential_id, paired_at DESC);

-- Calibration: qualification sessions, qualifications, the rolling window ------
-- Shares are numeric (0.70 stays 0.70 in JSON). Level distances count
-- positions in the criterion's sorted levels, not level values.

-- Qualification sessions (calibration sets).
CREATE TABLE calibration_sessions (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    rubric_id    uuid NOT NULL REFERENCES rubrics (id),
    assessor_id  uuid NOT NULL REFERENCES users (id),
    status       text NOT NULL DEFAULT 'open' CHECK (status IN ('open','completed')),
    result       jsonb,
    created_at   timestamptz NOT NULL DEFAULT now(),
    completed_at timestamptz
);
CREATE INDEX calibration_sessions_assessor_idx ON calibration_sessions (assessor_id, rubric_id);

CREATE TABLE calibration_items (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    session_id uuid NOT NULL REFERENCES calibration_sessions (id),
    anchor_id  uuid NOT NULL REFERENCES anchors (id),
    position   int NOT NULL,
    feedback   text CHECK (length(feedback) <= 20000),
    verdict    text CHECK (verdict IN ('pass','resubmit')),
    scored_at  timestamptz,
    UNIQUE (session_id, position)
);
CREATE INDEX calibration_items_anchor_idx ON calibration_items (anchor_id);

CREATE TABLE calibration_item_scores (
    item_id   uuid NOT NULL REFERENCES calibration_items (id),
    criterion text NOT NULL CHECK (length(criterion) <= 64),
    position  int NOT NULL,
    level     int NOT NULL,
    comment   text CHECK (length(comment) <= 5000),
    evidence  jsonb NOT NULL DEFAULT '[]',
    PRIMARY KEY (item_id, criterion)
);

-- Qualification per (assessor, rubric). No row = not qualified.
-- qualified_at: when the assessor last qualified; the rolling window counts
-- only items scored since then.
CREATE TABLE qualifications (
    user_id      uuid NOT NULL REFERENCES users (id),
    rubric_id    uuid NOT NULL REFERENCES rubrics (id),
    status       text NOT NULL CHECK (status IN ('qualified','needs_recalibration')),
    reason       text CHECK (length(reason) <= 2000),
    qualified_at timestamptz,
    updated_by   uuid REFERENCES users (id),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, rubric_id)
);
CREATE INDEX qualifications_rubric_idx ON qualifications (rubric_id);

-- The rolling window: one row per validity item scored (source 'validity',
-- vs the master) or per live peer/expert pair (source 'double', the peer vs
-- the expert). n = criteria compared; diff_sum = sum of signed level-position
-- differences (positive = more lenient than the reference).
CREATE TABLE calibration_window (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id       uuid NOT NULL REFERENCES users (id),
    rubric_id     uuid NOT NULL REFERENCES rubrics (id),
    source        text NOT NULL CHECK (source IN ('validity','double')),
    n             int NOT NULL CHECK (n > 0),
    n_exact       int NOT NULL,
    n_adjacent    int NOT NULL,
    exact         numeric NOT NULL,
    adjacent      numeric NOT NULL,
    verdict_agree boolean NOT NULL,
    diff_sum      int NOT NULL DEFAULT 0,
    anchor_id     uuid REFERENCES anchors (id),
    review_id     uuid,
    scored_at     timestamptz NOT NULL,
    at            timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX calibration_window_idx ON calibration_window (user_id, rubric_id, scored_at DESC, id DESC);

-- Audit log (append-only) -------------------------------------------------------

CREATE TABLE audit_log (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    actor_id    uuid,
    action      text NOT NULL,
    object_type text NOT NULL,
    object_id   uuid,
    at          timestamptz NOT NULL DEFAULT now(),
    detail      jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_object_idx ON audit_log (object_id);

CREATE FUNCTION audit_log_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only';
END $$;

CREATE TRIGGER audit_log_append_only
    BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate
    BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
