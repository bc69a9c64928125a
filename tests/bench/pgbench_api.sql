-- SPDX-License-Identifier: Apache-2.0
-- tests/bench/pgbench_api.sql - the same claim -> score cycle as
-- pgbench_cycle.sql, through api_review_claim / api_review_score (what the
-- server runs per request, minus HTTP). Compare the two at equal -c:
--
--   pgbench -n -M prepared -c 16 -j 2 -T 30 -f tests/bench/pgbench_api.sql "$DATABASE_URL"
\set a random(1, 64)
\set l1 random(2, 4)
\set l2 random(2, 4)
\set l3 random(2, 4)
\set l4 random(2, 4)
SELECT api_review_claim(encode(sha256(convert_to('acc_' || lpad(:a::text, 64, '0'), 'UTF8')), 'hex'),
                        '{}'::jsonb, 7200) ->> 'id' AS rid \gset
SELECT api_review_score(encode(sha256(convert_to('acc_' || lpad(:a::text, 64, '0'), 'UTF8')), 'hex'), :rid,
    jsonb_build_object('scores', jsonb_build_array(
        jsonb_build_object('criterion', 'c1', 'level', :l1::int, 'comment', 'bench comment'),
        jsonb_build_object('criterion', 'c2', 'level', :l2::int, 'comment', 'bench comment'),
        jsonb_build_object('criterion', 'c3', 'level', :l3::int, 'comment', 'bench comment'),
        jsonb_build_object('criterion', 'c4', 'level', :l4::int, 'comment', 'bench comment')),
      'feedback', 'Bench feedback'));
