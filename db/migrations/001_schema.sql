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
    created_at  timestamptz NOT NULL DEFAULT now()
);

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
    created_at     timestamptz NOT NULL DEFAULT now()
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
CREATE TABLE submissions (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    credential_id     uuid NOT NULL REFERENCES credentials (id),
    earner_id         uuid NOT NULL REFERENCES users (id),
    earner_org        text,
    attempt           int NOT NULL DEFAULT 1 CHECK (attempt BETWEEN 1 AND 20),
    previous_id       uuid REFERENCES submissions (id),
    status            text NOT NULL DEFAULT 'queued'
                      CHECK (status IN ('queued','in_review','returned','passed')),
    queued_at         timestamptz NOT NULL DEFAULT now(),
    lease_expires_at  timestamptz,
    current_review_id uuid,
    decided_review_id uuid,
    award_id          uuid REFERENCES awards (id),
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
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

CREATE TABLE submission_artifacts (
    submission_id uuid NOT NULL REFERENCES submissions (id),
    artifact_id   uuid NOT NULL REFERENCES artifacts (id),
    position      int NOT NULL,
    PRIMARY KEY (submission_id, artifact_id)
);
-- artifact read access: "a review of a submission containing it"
CREATE INDEX submission_artifacts_artifact_idx ON submission_artifacts (artifact_id);

-- status: active -> submitted | released | expired (taken over after its lease ran out)
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
    ended_at         timestamptz
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
