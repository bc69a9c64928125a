-- SPDX-License-Identifier: Apache-2.0
-- 010_ops: what /metrics asks the database at each scrape (issue 9).
--
-- ops_metrics(): per credential, submissions waiting for a claim by stage
-- (the same definition as api_report_routing's queue: queued, or in review
-- with no live claim), the age of the oldest of them, adjudications open
-- (claimed or not) and whether peer review is paused. No user data: counts
-- and credential ids only. Only submissions still in the workflow are read
-- (status queued or in_review: the partial indexes of 001 cover them), so a
-- scrape stays cheap however many decided submissions accumulate.
CREATE FUNCTION ops_metrics() RETURNS json
LANGUAGE sql STABLE AS $$
    WITH live AS (
        SELECT s.credential_id,
               CASE WHEN s.status = 'queued' THEN 'first' ELSE s.stage END AS stage,
               s.queued_at,
               (s.status = 'queued'
                OR s.current_review_id IS NULL
                OR s.lease_expires_at < now()) AS waiting
          FROM submissions s
         WHERE s.status IN ('queued', 'in_review')
    ), per_cred AS (
        SELECT credential_id,
               count(*) FILTER (WHERE waiting AND stage = 'first') AS first_n,
               count(*) FILTER (WHERE waiting AND stage = 'second') AS second_n,
               count(*) FILTER (WHERE waiting AND stage = 'adjudication') AS adj_n,
               count(*) FILTER (WHERE stage = 'adjudication') AS adj_open,
               extract(epoch FROM now() - min(queued_at) FILTER (WHERE waiting)) AS oldest
          FROM live
         GROUP BY credential_id
    )
    SELECT json_build_object('credentials', coalesce(json_agg(json_build_object(
               'credential_id', c.id,
               'waiting', json_build_object('first', coalesce(p.first_n, 0),
                                            'second', coalesce(p.second_n, 0),
                                            'adjudication', coalesce(p.adj_n, 0)),
               'oldest_age_seconds', coalesce(round(p.oldest::numeric, 3), 0),
               'adjudications_open', coalesce(p.adj_open, 0),
               'peer_paused', c.peer_paused_at IS NOT NULL)
             ORDER BY c.created_at, c.id), '[]'::json))
      FROM credentials c
      LEFT JOIN per_cred p ON p.credential_id = c.id
$$;
