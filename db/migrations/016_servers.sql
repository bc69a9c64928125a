-- SPDX-License-Identifier: Apache-2.0
-- 016_servers.sql - several servers on one database (issue 13 item 3), and
-- the read replica's split of a report into access (primary) and data
-- (replica) (item 4).
--
-- The reliability estimate (005_routing.sql) is recomputed by whichever
-- server recorded a new peer/expert pair, after it answered. With several
-- servers two recomputes of one credential can cross: the one that read
-- fewer pairs may write last and undo the newer estimate. And a server that
-- dies between the score and the recompute loses it. So each estimate
-- carries how many pairs the credential had when it was read ("seen");
-- routing_update ignores an estimate older than the one it holds, and any
-- server's sweep (server/reliability.c) finds credentials whose estimate is
-- behind their pairs and recomputes them.

-- pairs_total: score_pairs rows of the credential (kept by a trigger, so
-- finding the credentials that are behind is a look at one small index).
ALTER TABLE credentials ADD COLUMN pairs_total bigint NOT NULL DEFAULT 0,
                        ADD COLUMN reliability_seen bigint NOT NULL DEFAULT 0;
UPDATE credentials c
   SET pairs_total = (SELECT count(*) FROM score_pairs sp WHERE sp.credential_id = c.id);
CREATE INDEX credentials_reliability_due_idx ON credentials (id)
    WHERE pairs_total > reliability_seen;

CREATE FUNCTION _score_pairs_count() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE credentials SET pairs_total = pairs_total + 1 WHERE id = NEW.credential_id;
    RETURN NULL;
END $$;
CREATE TRIGGER score_pairs_count AFTER INSERT ON score_pairs
    FOR EACH ROW EXECUTE FUNCTION _score_pairs_count();

-- reliability_pairs() plus the credential's pair count in the same snapshot.
CREATE FUNCTION reliability_pairs_seen(p_credential uuid) RETURNS json
LANGUAGE sql STABLE AS $$
    SELECT (reliability_pairs(p_credential)::jsonb
            || jsonb_build_object('seen', (SELECT c.pairs_total FROM credentials c
                                            WHERE c.id = p_credential)))::json
$$;

-- Applies an estimate read when the credential had p_seen pairs, unless a
-- newer one (more pairs seen) was applied meanwhile: then the routing state
-- stays as it is and is returned unchanged. The credential row's lock
-- orders concurrent updates.
CREATE FUNCTION routing_update(p_credential uuid, p_pairs int, p_kappa float8, p_lo float8,
                               p_hi float8, p_seen bigint) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    v_held bigint;
BEGIN
    SELECT reliability_seen INTO v_held FROM credentials WHERE id = p_credential FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'credential not found' USING ERRCODE = 'AC404', DETAIL = 'not_found';
    END IF;
    IF p_seen < v_held THEN
        RETURN _routing_json(p_credential);
    END IF;
    UPDATE credentials SET reliability_seen = p_seen WHERE id = p_credential;
    RETURN routing_update(p_credential, p_pairs, p_kappa, p_lo, p_hi);
END $$;

-- Credentials whose estimate has not seen all their pairs (a recompute lost
-- with its server, or one still under way), at most p_limit of them.
CREATE FUNCTION reliability_stale(p_limit int) RETURNS json
LANGUAGE sql STABLE AS $$
    SELECT coalesce(json_agg(x.id), '[]'::json)
      FROM (SELECT c.id FROM credentials c
             WHERE c.pairs_total > c.reliability_seen
             LIMIT least(greatest(p_limit, 1), 100)) x
$$;
